/* flx_tokenizer_load: the source is chosen by content (GGUF magic or JSON),
 * and the GGUF tokenizer.ggml.* keys become the same tokenizer as the JSON. */
#include "flx_gguf.h"
#include "flx_tokenizer.h"
#include "load_test_util.h"

static flx_tokenizer *load(const char *rel)
{
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s", flx_test_data(rel));
    cr_assert_eq(flx_tokenizer_load(&t, p, &err), FLX_OK, "%s: %s", rel, err.msg);
    return t;
}

static void encode(const flx_tokenizer *t, const char *text, int add_bos, int32_t **ids, size_t *n)
{
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_encode(t, text, strlen(text), add_bos, 0, ids, n, &err), FLX_OK, "%s",
                 err.msg);
}

Test(tokload, llama3_gguf_and_json_agree)
{
    flx_tokenizer *g = load("llama3-tokenizer/llama3-vocab.gguf");
    flx_tokenizer *j = load("llama3-tokenizer/tokenizer.json");
    cr_assert_eq(flx_tokenizer_get_kind(g), FLX_TOK_BPE);
    cr_assert_eq(flx_tokenizer_n_vocab(g), 128256);
    cr_assert_eq(flx_tokenizer_bos(g), 128000);
    cr_assert_eq(flx_tokenizer_eos(g), 128001);
    cr_assert_eq(flx_tokenizer_adds_bos(g), 1);
    const char *text = " = Robert Boulter = \n \n Robert Boulter is an English film, 1234567 actor.";
    int32_t *a, *b;
    size_t na, nb;
    encode(g, text, 1, &a, &na);
    encode(j, text, 1, &b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
    cr_assert_eq(a[0], 128000);
    free(a);
    free(b);
    flx_tokenizer_free(g);
    flx_tokenizer_free(j);
}

Test(tokload, stories260k_gguf_spm_vocabulary)
{
    flx_tokenizer *t = load("stories260K/stories260K.gguf");
    cr_assert_eq(flx_tokenizer_get_kind(t), FLX_TOK_SPM);
    cr_assert_eq(flx_tokenizer_n_vocab(t), 512);
    cr_assert_eq(flx_tokenizer_bos(t), 1);
    cr_assert_eq(flx_tokenizer_eos(t), 2);
    int32_t *ids;
    size_t n;
    encode(t, "Once upon a time", 1, &ids, &n);   /* data README: [1, 403, 407, 261, 378] */
    int32_t want[5] = {1, 403, 407, 261, 378};
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(ids, want, sizeof want), 0);
    free(ids);
    flx_tokenizer_free(t);
}

Test(tokload, gguf_without_tokenizer_and_bad_files)
{
    tgguf g = {0};
    tg_str(&g, "general.architecture", "llama");
    tbuf f = tg_finish(&g);
    char p[512];
    snprintf(p, sizeof p, "%s/none.gguf", flx_test_tmpdir());
    write_bytes(p, f.p, f.n);
    free(f.p);
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_load(&t, p, &err), FLX_ENOTFOUND);
    cr_assert(strstr(err.msg, "tokenizer.ggml.model") && strstr(err.msg, p), "%s", err.msg);

    /* a bos id outside the vocabulary */
    g = (tgguf){0};
    const char *toks[3] = {"a", "b", "c"};
    tg_str(&g, "tokenizer.ggml.model", "gpt2");
    tg_arr_str(&g, "tokenizer.ggml.tokens", toks, 3);
    tg_u32(&g, "tokenizer.ggml.bos_token_id", 3);
    f = tg_finish(&g);
    write_bytes(p, f.p, f.n);
    free(f.p);
    cr_assert_eq(flx_tokenizer_load(&t, p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokenizer.ggml.bos_token_id"), "%s", err.msg);

    /* token_type of the wrong length, tokens of the wrong type */
    g = (tgguf){0};
    int32_t types[2] = {1, 1};
    tg_str(&g, "tokenizer.ggml.model", "gpt2");
    tg_arr_str(&g, "tokenizer.ggml.tokens", toks, 3);
    tg_arr_i32(&g, "tokenizer.ggml.token_type", types, 2);
    f = tg_finish(&g);
    write_bytes(p, f.p, f.n);
    free(f.p);
    cr_assert_eq(flx_tokenizer_load(&t, p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokenizer.ggml.token_type"), "%s", err.msg);
    g = (tgguf){0};
    tg_str(&g, "tokenizer.ggml.model", "gpt2");
    tg_arr_i32(&g, "tokenizer.ggml.tokens", types, 2);
    f = tg_finish(&g);
    write_bytes(p, f.p, f.n);
    free(f.p);
    cr_assert_eq(flx_tokenizer_load(&t, p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokenizer.ggml.tokens"), "%s", err.msg);

    /* neither GGUF nor JSON; missing file */
    write_text(p, "GGU");
    cr_assert_neq(flx_tokenizer_load(&t, p, &err), FLX_OK);
    cr_assert(strstr(err.msg, p), "%s", err.msg);
    cr_assert_eq(flx_tokenizer_load(&t, "/nonexistent/tok.json", &err), FLX_EIO);
    cr_assert_null(t);
}
