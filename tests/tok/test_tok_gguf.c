/* Tokenizers built from GGUF tokenizer.ggml.* keys through
 * flx_tokenizer_load (GGUF reading lives in ref/tokenizer_load.c): the
 * Llama-3 vocabulary must behave exactly like its tokenizer.json, the
 * stories260K vocabulary like tok512.bin. */
#include "tok_spm_util.h"

Test(tok_gguf, llama3_vocab_gguf_vectors_and_wiki)
{
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    int rc = flx_tokenizer_load(&t, flx_test_data("llama3-tokenizer/llama3-vocab.gguf"), &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_tokenizer_get_kind(t), FLX_TOK_BPE);
    cr_assert_eq(flx_tokenizer_n_vocab(t), 128256);
    cr_assert_eq(flx_tokenizer_bos(t), 128000);
    cr_assert_eq(flx_tokenizer_eos(t), 128001);
    cr_assert_eq(flx_tokenizer_adds_bos(t), 1);   /* tokenizer.ggml.add_bos_token = true */
    tok_check_llama_bpe_vectors(t);
    tok_check_wiki(t);
    static const char text[] = "<|begin_of_text|>Hello<|eot_id|>";
    static const int32_t with[] = {128000, 9906, 128009};
    tok_expect(t, text, strlen(text), 0, 1, with, 3, "parse_special");
    flx_tokenizer_free(t);
}

Test(tok_gguf, stories260k_gguf_matches_tok512)
{
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    int rc = flx_tokenizer_load(&t, flx_test_data("stories260K/stories260K.gguf"), &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_tokenizer_get_kind(t), FLX_TOK_SPM);
    cr_assert_eq(flx_tokenizer_n_vocab(t), 512);
    cr_assert_eq(flx_tokenizer_bos(t), 1);
    cr_assert_eq(flx_tokenizer_eos(t), 2);
    cr_assert_eq(flx_tokenizer_adds_bos(t), 1);
    static const int32_t once[] = {1, 403, 407, 261, 378};
    tok_expect(t, "Once upon a time", 16, 1, 0, once, 5, "Once upon a time");
    tok512 v;
    tok512_read(&v);
    tok512_check_paragraphs(t, &v, 40);
    tok512_free(&v);
    flx_tokenizer_free(t);
}
