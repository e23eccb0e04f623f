/* replaced by the forward-pass sources */
typedef int flx_llama_placeholder_t;
