/* Synthetic models: shapes, determinism (seed, thread count), the written
 * HF folder loading back to the same weights. */
#include "flx_model.h"
#include "flx_safetensors.h"
#include "flx_synth.h"
#include "load_test_util.h"

#include <cjson/cJSON.h>
#include <math.h>

static const float *layer_w(const flx_llama_layer *L, int k)
{
    const float *p[9] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->ffn_norm,
                         L->w_gate, L->w_up, L->w_down};
    return p[k];
}

static size_t layer_n(const flx_llama_config *c, int k)
{
    size_t d = (size_t)c->d_model, q = (size_t)c->n_heads * c->head_dim,
           kv = (size_t)c->n_kv_heads * c->head_dim, f = (size_t)c->d_ff;
    size_t n[9] = {d, q * d, kv * d, kv * d, d * q, d, f * d, f * d, d * f};
    return n[k];
}

Test(synth, shapes)
{
    flx_llama_config c;
    flx_error err = {0};
    cr_assert_eq(flx_synth_config("llama-3.2-1b", &c, &err), FLX_OK);
    cr_assert_eq(c.n_vocab, 128256);
    cr_assert_eq(c.d_model, 2048);
    cr_assert_eq(c.n_layers, 16);
    cr_assert_eq(c.n_heads, 32);
    cr_assert_eq(c.n_kv_heads, 8);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.d_ff, 8192);
    cr_assert_eq(c.max_seq_len, 131072);
    cr_assert_eq(c.rms_eps, 1e-5f);
    cr_assert_eq(c.rope_theta, 500000.0);
    cr_assert_eq(c.rope_llama3, 1);
    cr_assert_eq(c.rope_factor, 32.0);
    cr_assert_eq(c.rope_high_freq_factor, 4.0);
    cr_assert_eq(c.rope_orig_max_pos, 8192);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.bos_id, 128000);
    cr_assert_eq(c.eos_id, 128001);
    cr_assert_eq(flx_llama_config_validate(&c, "x", &err), FLX_OK);
    cr_assert_eq(flx_synth_config("tiny", &c, &err), FLX_OK);
    cr_assert_eq(c.n_vocab, 258);
    cr_assert_eq(c.bos_id, 256);
    cr_assert_eq(flx_llama_config_validate(&c, "x", &err), FLX_OK);
    cr_assert_eq(flx_synth_config("huge", &c, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "huge"), "%s", err.msg);
}

Test(synth, build_is_deterministic_and_thread_independent)
{
    flx_llama_config c;
    flx_error err = {0};
    flx_synth_config("tiny", &c, &err);
    flx_model a, b, d;
    cr_assert_eq(flx_synth_build_threads(&a, &c, 7, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_synth_build_threads(&b, &c, 7, 3, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_synth_build(&d, &c, 8, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(a.format, "synthetic");
    cr_assert_eq(a.w.output, a.w.tok_embd);
    cr_assert_eq(memcmp(a.w.tok_embd, b.w.tok_embd, 258 * 64 * 4), 0);
    cr_assert_neq(memcmp(a.w.tok_embd, d.w.tok_embd, 258 * 64 * 4), 0, "the seed matters");
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++)
            cr_assert_eq(memcmp(layer_w(&a.w.layers[l], k), layer_w(&b.w.layers[l], k),
                                layer_n(&c, k) * 4), 0);
    /* statistics: matrices ~ N(0, 0.02^2), norms ~ 1 + 0.02 z, bounded draws */
    const float *w = a.w.layers[0].w_gate;
    size_t n = layer_n(&c, 6);
    double s = 0, s2 = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
        if (fabs(w[i]) > mx) mx = fabs(w[i]);
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    cr_assert(fabs(mean) < 0.002, "mean %g", mean);
    cr_assert(fabs(sd - 0.02) < 0.001, "sd %g", sd);
    cr_assert(mx <= 0.02 * 3.47 && mx > 0.02 * 2.5, "max %g", mx);
    for (int i = 0; i < 64; i++) cr_assert(fabs(a.w.out_norm[i] - 1.0f) < 0.07f);
    cr_assert_eq(a.n_params, 258 * 64 + 2 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 172 * 64) + 64);
    cr_assert_eq(a.weight_bytes_f32, (size_t)a.n_params * 4);
    /* rope: llama3 scaling of head_dim 16 like tiny-llama3-random */
    double base4 = pow(500000.0, -8.0 / 16.0);
    cr_assert(fabs(a.w.rope_inv_freq[4] - base4 / 3.2922621) < 1e-6 * base4);
    cr_assert_eq(a.w.rope_inv_freq[7], pow(500000.0, -14.0 / 16.0) / 32.0);
    if (a.tok) {
        cr_assert_eq(flx_tokenizer_n_vocab(a.tok), 258);
        cr_assert_eq(flx_tokenizer_bos(a.tok), 256);
    } else {
        cr_assert_neq(a.tok_note[0], '\0');
    }
    flx_model_free(&a);
    flx_model_free(&b);
    flx_model_free(&d);
}

Test(synth, written_folder_loads_back)
{
    flx_llama_config c;
    flx_error err = {0};
    flx_synth_config("tiny", &c, &err);
    flx_model mem;
    cr_assert_eq(flx_synth_build(&mem, &c, 42, &err), FLX_OK, "%s", err.msg);
    char d32[256], d16[256], d16b[256];
    snprintf(d32, sizeof d32, "%s", flx_test_tmpdir());
    snprintf(d16, sizeof d16, "%s", flx_test_tmpdir());
    snprintf(d16b, sizeof d16b, "%s", flx_test_tmpdir());
    cr_assert_eq(flx_synth_write_hf(d32, &c, 42, 0, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_synth_write_hf_ex(d16, &c, 42, 1, NULL, 1, 0, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_synth_write_hf_ex(d16b, &c, 42, 1, NULL, 2, 0, &err), FLX_OK, "%s", err.msg);
    /* same seed, any thread count: same bytes */
    const char *files[3] = {"model.safetensors", "config.json", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        char pa[512], pb[512];
        snprintf(pa, sizeof pa, "%s/%s", d16, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", d16b, files[i]);
        size_t na, nb;
        uint8_t *a = read_all(pa, &na), *b = read_all(pb, &nb);
        cr_assert(na == nb && memcmp(a, b, na) == 0, "%s differs", files[i]);
        free(a);
        free(b);
    }
    flx_model f32, b16;
    cr_assert_eq(flx_model_load(&f32, d32, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_model_load(&b16, d16, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(&f32.cfg, &mem.cfg, sizeof mem.cfg), 0, "config round trip");
    cr_assert_eq(memcmp(&b16.cfg, &mem.cfg, sizeof mem.cfg), 0, "config round trip");
    cr_assert_str_eq(b16.dtypes, "BF16 x20");
    size_t ne = 258 * 64;
    cr_assert_eq(memcmp(f32.w.tok_embd, mem.w.tok_embd, ne * 4), 0);
    for (size_t i = 0; i < ne; i++)
        cr_assert_eq(b16.w.tok_embd[i], flx_bf16_to_f32(flx_f32_to_bf16(mem.w.tok_embd[i])));
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++) {
            const float *m = layer_w(&mem.w.layers[l], k), *x = layer_w(&f32.w.layers[l], k),
                        *y = layer_w(&b16.w.layers[l], k);
            size_t n = layer_n(&c, k);
            cr_assert_eq(memcmp(m, x, n * 4), 0, "layer %d weight %d", l, k);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(y[i], flx_bf16_to_f32(flx_f32_to_bf16(m[i])));
        }
    cr_assert_eq(memcmp(f32.w.out_norm, mem.w.out_norm, 64 * 4), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(f32.w.rope_inv_freq[i], mem.w.rope_inv_freq[i]);

    /* the byte-level tokenizer.json: 256 byte tokens, no merges, BOS/EOS added */
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", d32);
    size_t n;
    char *text = (char *)read_all(p, &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    cr_assert_not_null(root);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cr_assert_str_eq(cJSON_GetObjectItem(model, "type")->valuestring, "BPE");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    cr_assert_eq(cJSON_GetArraySize(vocab), 256);
    cr_assert_eq(cJSON_GetObjectItem(vocab, "\xC4\xA0")->valueint, 32, "space is U+0120");
    cr_assert_eq(cJSON_GetObjectItem(vocab, "\xC4\x8A")->valueint, 10, "newline is U+010A");
    cr_assert_eq(cJSON_GetObjectItem(vocab, "A")->valueint, 65);
    cr_assert_eq(cJSON_GetObjectItem(vocab, "\xC3\xBF")->valueint, 255);
    cr_assert_eq(cJSON_GetObjectItem(vocab, "\xC5\x83")->valueint, 173, "soft hyphen is U+0143");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(model, "merges")), 0);
    cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    cr_assert_eq(cJSON_GetArraySize(added), 2);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(added, 0), "id")->valueint, 256);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(added, 1), "content")->valuestring,
                     "<|end_of_text|>");
    cJSON_Delete(root);
    free(text);
    if (f32.tok) cr_assert_eq(flx_tokenizer_n_vocab(f32.tok), 258);
    flx_model_free(&mem);
    flx_model_free(&f32);
    flx_model_free(&b16);
    rm_tree(d32);
    rm_tree(d16);
    rm_tree(d16b);
}

Test(synth, tokenizer_copy_and_failures_leave_nothing)
{
    flx_llama_config c;
    flx_error err = {0};
    flx_synth_config("tiny", &c, &err);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    /* a GGUF given as --tokenizer is refused before anything is written */
    char tok[4096];
    snprintf(tok, sizeof tok, "%s", flx_test_data("stories260K/stories260K.gguf"));
    cr_assert_eq(flx_synth_write_hf(dir, &c, 1, 1, tok, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "GGUF"), "%s", err.msg);
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cr_assert(!flx_file_exists(p));
    /* bad bos id for the byte vocabulary */
    flx_llama_config bad = c;
    bad.bos_id = 10;
    cr_assert_eq(flx_synth_write_hf(dir, &bad, 1, 1, NULL, &err), FLX_EINVAL);
    cr_assert(!flx_file_exists(p));
    /* a real tokenizer.json is copied byte for byte, if the vocabulary fits */
    snprintf(tok, sizeof tok, "%s", flx_test_data("tiny-llama3-random/tokenizer.json"));
    cr_assert_eq(flx_synth_write_hf(dir, &c, 1, 1, tok, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "128256") && strstr(err.msg, "258"), "%s", err.msg);
    cr_assert(!flx_file_exists(p));
    flx_llama_config big = c;
    big.n_vocab = 128256;
    big.bos_id = 128000;
    big.eos_id = 128001;
    cr_assert_eq(flx_synth_write_hf(dir, &big, 1, 1, tok, &err), FLX_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    size_t na, nb;
    uint8_t *a = read_all(tok, &na), *b = read_all(p, &nb);
    cr_assert(na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
    flx_model m;
    cr_assert_eq(flx_model_load(&m, dir, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(m.cfg.n_vocab, 128256);
    if (m.tok) cr_assert_eq(flx_tokenizer_n_vocab(m.tok), 128256);
    flx_model_free(&m);
    rm_tree(dir);
}
