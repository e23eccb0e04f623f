/* replaced by the tokenizer sources */
typedef int flx_tokenizer_placeholder_t;
