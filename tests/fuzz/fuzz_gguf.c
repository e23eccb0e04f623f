/* libFuzzer target: GGUF files.  The input is one .gguf file: it is parsed
 * (flx_gguf_open), every key is read through the typed getters, every tensor
 * of a type the loader converts is dequantized, the tokenizer keys are built
 * into a tokenizer, and finally the whole model loader runs on it. */
#include "fuzz_util.h"
#include "flx_gguf.h"
#include "flx_model.h"
#include "flx_tokenizer.h"

static void walk_kvs(const flx_gguf *g)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const flx_gguf_kv *kv = &g->kvs[i];
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.ptr);
        flx_error err = {0};
        int64_t iv; double dv; int bv; flx_gguf_str sv;
        fuzz_check_error(flx_gguf_get_int(g, key, &iv, &err), &err);
        fuzz_check_error(flx_gguf_get_float(g, key, &dv, &err), &err);
        fuzz_check_error(flx_gguf_get_bool(g, key, &bv, &err), &err);
        if (flx_gguf_get_str(g, key, &sv, &err) == FLX_OK) fuzz_touch(sv.ptr, sv.len);
        if (kv->type != 9) continue;           /* arrays */
        char **strs = NULL;
        if (flx_gguf_array_strings(g, kv, &strs, &err) == FLX_OK) {
            for (uint64_t j = 0; j < kv->arr_count; j++) fuzz_touch(strs[j], strlen(strs[j]));
            free(strs);
        } else fuzz_check_error(err.code, &err);
        int32_t *iarr = NULL;
        if (flx_gguf_array_i32(g, kv, &iarr, &err) == FLX_OK) {
            fuzz_touch(iarr, kv->arr_count * sizeof *iarr);
            free(iarr);
        }
        float *farr = NULL;
        if (flx_gguf_array_f32(g, kv, &farr, &err) == FLX_OK) {
            fuzz_touch(farr, kv->arr_count * sizeof *farr);
            free(farr);
        }
    }
}

static void walk_tensors(const flx_gguf *g)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const flx_gguf_tensor *t = &g->tensors[i];
        fuzz_touch(t->name.ptr, t->name.len);
        fuzz_touch(t->data, t->bytes);
        if (!flx_ggml_can_dequantize(t->type) || t->n_elems > (1 << 20)) continue;
        float *dst = malloc((size_t)t->n_elems * sizeof *dst + 1);
        if (!dst) abort();
        flx_ggml_dequantize(t->type, t->data, dst, t->n_elems);
        free(dst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.gguf", data, size);
    flx_gguf g;
    flx_error err = {0};
    int rc = flx_gguf_open(&g, path, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) {
        walk_kvs(&g);
        walk_tensors(&g);
        flx_tokenizer *tok = NULL;
        rc = flx_gguf_load_tokenizer(&g, &tok, &err);
        fuzz_check_error(rc, &err);
        if (rc == FLX_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            static const char text[] = "Hello world, it's 2026!";
            if (flx_tokenizer_encode(tok, text, sizeof text - 1, 1, 1, &ids, &n, &err) == FLX_OK) {
                char *back = NULL;
                size_t bytes = 0;
                if (flx_tokenizer_decode(tok, ids, n, &back, &bytes, &err) == FLX_OK) free(back);
                free(ids);
            }
            flx_tokenizer_free(tok);
        }
        flx_gguf_close(&g);
        flx_model m;
        rc = flx_model_load_threads(&m, path, 1, &err);
        fuzz_check_error(rc, &err);
        if (rc == FLX_OK) flx_model_free(&m);
    }
    return 0;
}
