/* Tokenizer sources: a GGUF file's tokenizer.ggml.* keys or an HF
 * tokenizer.json, chosen by the file's first bytes.  The tokenizer engine
 * itself lives in tokenizer*.c; this file only gathers its description. */
#include "flx_gguf.h"
#include "flx_tokenizer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Optional array whose length must equal n_tokens. */
static int optional_array(const flx_gguf *g, const char *key, int64_t n_tokens,
                          const flx_gguf_kv **kv, flx_error *err)
{
    *kv = flx_gguf_find(g, key);
    if (!*kv) return FLX_OK;
    if ((*kv)->type != FLX_GGUF_ARRAY)
        return flx_fail(err, FLX_EFORMAT, "%s: %s (offset %zu) is not an array", g->map.path, key,
                        (*kv)->offset);
    if (n_tokens >= 0 && (*kv)->arr_count != (uint64_t)n_tokens)
        return flx_fail(err, FLX_EFORMAT, "%s: %s has %llu elements but tokenizer.ggml.tokens has "
                        "%lld", g->map.path, key, (unsigned long long)(*kv)->arr_count,
                        (long long)n_tokens);
    return FLX_OK;
}

static int token_id(const flx_gguf *g, const char *key, int64_t n_tokens, int32_t *out,
                    flx_error *err)
{
    int64_t v;
    *out = -1;
    int rc = flx_gguf_get_int(g, key, &v, err);
    if (rc == FLX_ENOTFOUND) return FLX_OK;
    if (rc) return rc;
    if (v < -1 || v >= n_tokens)
        return flx_fail(err, FLX_EFORMAT, "%s: %s = %lld is outside the vocabulary of %lld tokens",
                        g->map.path, key, (long long)v, (long long)n_tokens);
    *out = (int32_t)v;
    return FLX_OK;
}

int flx_gguf_load_tokenizer(const flx_gguf *g, flx_tokenizer **out, flx_error *err)
{
    *out = NULL;
    const char *path = g->map.path;
    flx_gguf_str model;
    int rc = flx_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc) return rc;   /* FLX_ENOTFOUND: no tokenizer in this file */
    flx_vocab_desc d;
    memset(&d, 0, sizeof d);
    if (flx_gguf_str_eq(model, "gpt2")) d.kind = FLX_TOK_BPE;
    else if (flx_gguf_str_eq(model, "llama")) d.kind = FLX_TOK_SPM;
    else
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: tokenizer.ggml.model = \"%.*s\" is not "
                        "supported (only \"gpt2\" and \"llama\")", path,
                        (int)(model.len < 64 ? model.len : 64), model.ptr);

    char **tokens = NULL, **merges = NULL, *pre = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    const flx_gguf_kv *kv;
    if ((rc = flx_gguf_get_array(g, "tokenizer.ggml.tokens", FLX_GGUF_STRING, &kv, err))) {
        if (rc == FLX_ENOTFOUND)
            rc = flx_fail(err, FLX_EFORMAT, "%s: tokenizer.ggml.tokens is missing", path);
        goto done;
    }
    if (kv->arr_count == 0 || kv->arr_count > FLX_TOK_MAX_VOCAB) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries (limit %d)", path,
                      (unsigned long long)kv->arr_count, FLX_TOK_MAX_VOCAB);
        goto done;
    }
    int64_t n = (int64_t)kv->arr_count;
    if ((rc = flx_gguf_array_strings(g, kv, &tokens, err))) goto done;
    if ((rc = optional_array(g, "tokenizer.ggml.scores", n, &kv, err))) goto done;
    if (kv && (rc = flx_gguf_array_f32(g, kv, &scores, err))) goto done;
    if ((rc = optional_array(g, "tokenizer.ggml.token_type", n, &kv, err))) goto done;
    if (kv && (rc = flx_gguf_array_i32(g, kv, &types, err))) goto done;
    if ((rc = optional_array(g, "tokenizer.ggml.merges", -1, &kv, err))) goto done;
    if (kv) {
        if (kv->arr_count > FLX_TOK_MAX_MERGES) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: tokenizer.ggml.merges has %llu entries (limit %d)",
                          path, (unsigned long long)kv->arr_count, FLX_TOK_MAX_MERGES);
            goto done;
        }
        if ((rc = flx_gguf_array_strings(g, kv, &merges, err))) goto done;
        d.n_merges = (int32_t)kv->arr_count;
    }
    if ((rc = token_id(g, "tokenizer.ggml.bos_token_id", n, &d.bos_id, err))) goto done;
    if ((rc = token_id(g, "tokenizer.ggml.eos_token_id", n, &d.eos_id, err))) goto done;
    if ((rc = token_id(g, "tokenizer.ggml.unknown_token_id", n, &d.unk_id, err))) goto done;
    d.add_bos = d.kind == FLX_TOK_SPM;
    rc = flx_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &d.add_bos, err);
    if (rc && rc != FLX_ENOTFOUND) goto done;
    flx_gguf_str pre_s;
    rc = flx_gguf_get_str(g, "tokenizer.ggml.pre", &pre_s, err);
    if (rc && rc != FLX_ENOTFOUND) goto done;
    if (rc == FLX_OK) {
        if (pre_s.len > 256 || memchr(pre_s.ptr, 0, (size_t)pre_s.len)) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: tokenizer.ggml.pre is not a short name", path);
            goto done;
        }
        pre = malloc((size_t)pre_s.len + 1);
        if (!pre) {
            rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(pre, pre_s.ptr, (size_t)pre_s.len);
        pre[pre_s.len] = '\0';
        d.pre = pre;
    }
    d.n_tokens = (int32_t)n;
    d.tokens = (const char *const *)tokens;
    d.scores = scores;
    d.token_types = types;
    d.merges = (const char *const *)merges;
    rc = flx_tokenizer_create(out, &d, err);
    if (rc != FLX_OK && err && strncmp(err->msg, path, strlen(path)) != 0) {
        /* the vocabulary builder does not know the file: name it here */
        char reason[FLX_ERROR_MSG_BYTES];
        memcpy(reason, err->msg, sizeof reason);
        flx_fail(err, rc, "%s: %s", path, reason);
    }
done:
    free(tokens);
    free(merges);
    free(scores);
    free(types);
    free(pre);
    return rc;
}

int flx_tokenizer_load(flx_tokenizer **out, const char *path, flx_error *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return flx_fail(err, FLX_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        flx_gguf g;
        int rc = flx_gguf_open(&g, path, err);
        if (rc) return rc;
        rc = flx_gguf_load_tokenizer(&g, out, err);
        if (rc == FLX_ENOTFOUND)
            rc = flx_fail(err, FLX_ENOTFOUND, "%s: GGUF file has no tokenizer (key "
                          "tokenizer.ggml.model is missing)", path);
        flx_gguf_close(&g);
        return rc;
    }
    return flx_tokenizer_load_json(out, path, err);
}
