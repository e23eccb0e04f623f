/* Model assembly: HF and GGUF copies of the same weights, BF16 rounding,
 * RoPE frequencies, sharded folders, quantized GGUF tensors, config.json. */
#include "flx_gguf.h"
#include "flx_model.h"
#include "flx_safetensors.h"
#include "load_test_util.h"

#include <math.h>
#include <unistd.h>

static void load_ok(flx_model *m, const char *path)
{
    flx_error err = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    int rc = flx_model_load(m, p, &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
}

static size_t n_matrix(const flx_llama_config *c, int which)
{
    size_t d = (size_t)c->d_model, q = (size_t)c->n_heads * c->head_dim,
           kv = (size_t)c->n_kv_heads * c->head_dim, f = (size_t)c->d_ff;
    switch (which) {
    case 0: return d;        /* attn_norm */
    case 1: return q * d;    /* wq */
    case 2: return kv * d;   /* wk */
    case 3: return kv * d;   /* wv */
    case 4: return d * q;    /* wo */
    case 5: return d;        /* ffn_norm */
    case 6: case 7: case 8: return f * d;
    default: return 0;
    }
}

static const float *layer_ptr(const flx_llama_layer *L, int which)
{
    const float *p[9] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->ffn_norm,
                         L->w_gate, L->w_up, L->w_down};
    return p[which];
}

/* Within each head of hd rows: gguf row 2i + a == hf row a*hd/2 + i. */
static void assert_qk_permuted(const float *hf, const float *gg, int n_heads, int hd, int cols)
{
    for (int h = 0; h < n_heads; h++)
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < hd / 2; i++) {
                const float *rh = hf + ((size_t)h * hd + (size_t)a * hd / 2 + i) * cols;
                const float *rg = gg + ((size_t)h * hd + 2 * (size_t)i + a) * cols;
                cr_assert_eq(memcmp(rh, rg, (size_t)cols * 4), 0, "head %d a %d i %d", h, a, i);
            }
}

Test(model, stories260k_hf_config_and_storage)
{
    flx_model m;
    load_ok(&m, flx_test_data("stories260K/hf"));
    const flx_llama_config *c = &m.cfg;
    cr_assert_str_eq(m.format, "hf");
    cr_assert_eq(c->n_vocab, 512);
    cr_assert_eq(c->d_model, 64);
    cr_assert_eq(c->n_layers, 5);
    cr_assert_eq(c->n_heads, 8);
    cr_assert_eq(c->n_kv_heads, 4);
    cr_assert_eq(c->head_dim, 8);
    cr_assert_eq(c->d_ff, 172);
    cr_assert_eq(c->max_seq_len, 512);
    cr_assert_eq(c->rms_eps, 1e-5f);
    cr_assert_eq(c->rope_theta, 10000.0);
    cr_assert_eq(c->rope_llama3, 0);
    cr_assert_eq(c->rope_pairing, FLX_ROPE_SPLIT_HALF);
    cr_assert_eq(c->tie_embeddings, 1);
    cr_assert_eq(c->bos_id, 1);
    cr_assert_eq(c->eos_id, 2);
    cr_assert_eq(m.w.output, m.w.tok_embd);
    cr_assert_eq(m.n_params, 260032);
    cr_assert_eq(m.weight_bytes_f32, 260032 * 4);
    cr_assert_eq(m.n_tensors, 47);
    cr_assert_str_eq(m.dtypes, "F32 x47");
    /* F32 weights are used in place: the mapping is kept, nothing copied */
    cr_assert_eq(m.n_maps, 1);
    cr_assert_eq(m.n_owned, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(m.w.rope_inv_freq[i], pow(10000.0, -2.0 * i / 8.0), 1e-15);
    cr_assert_null(m.tok, "the HF folder has no tokenizer.json");
    flx_model_free(&m);

    /* the same folder through config.json and model.safetensors paths */
    load_ok(&m, flx_test_data("stories260K/hf/config.json"));
    cr_assert_eq(m.n_tensors, 47);
    flx_model_free(&m);
    load_ok(&m, flx_test_data("stories260K/hf/model.safetensors"));
    cr_assert_eq(m.n_tensors, 47);
    flx_model_free(&m);
}

Test(model, stories260k_gguf_matches_hf_up_to_qk_permutation)
{
    flx_model h, g;
    load_ok(&h, flx_test_data("stories260K/hf"));
    load_ok(&g, flx_test_data("stories260K/stories260K.gguf"));
    cr_assert_str_eq(g.format, "gguf");
    cr_assert_eq(g.cfg.rope_pairing, FLX_ROPE_ADJACENT);
    cr_assert_eq(g.cfg.n_vocab, 512);
    cr_assert_eq(g.cfg.n_kv_heads, 4);
    cr_assert_eq(g.cfg.head_dim, 8);
    cr_assert_eq(g.cfg.max_seq_len, 512);
    cr_assert_eq(g.cfg.rms_eps, 1e-5f);
    cr_assert_eq(g.cfg.tie_embeddings, 1);
    cr_assert_eq(g.cfg.bos_id, 1);
    cr_assert_eq(g.cfg.eos_id, 2);
    cr_assert_eq(g.rope_freqs_tensor, 0);
    cr_assert_eq(g.n_params, h.n_params);
    cr_assert_eq(memcmp(h.w.tok_embd, g.w.tok_embd, 512 * 64 * 4), 0);
    cr_assert_eq(memcmp(h.w.out_norm, g.w.out_norm, 64 * 4), 0);
    for (int l = 0; l < 5; l++) {
        const flx_llama_layer *a = &h.w.layers[l], *b = &g.w.layers[l];
        assert_qk_permuted(a->wq, b->wq, 8, 8, 64);
        assert_qk_permuted(a->wk, b->wk, 4, 8, 64);
        cr_assert_neq(memcmp(a->wq, b->wq, 64 * 64 * 4), 0, "q rows must differ in order");
        for (int w = 0; w < 9; w++) {
            if (w == 1 || w == 2) continue;
            cr_assert_eq(memcmp(layer_ptr(a, w), layer_ptr(b, w), n_matrix(&h.cfg, w) * 4), 0,
                         "layer %d weight %d", l, w);
        }
    }
    for (int i = 0; i < 4; i++) cr_assert_eq(h.w.rope_inv_freq[i], g.w.rope_inv_freq[i]);
    /* the SentencePiece vocabulary is present; it loads once the engine exists */
    if (!g.tok) cr_assert_neq(g.tok_note[0], '\0');
    else cr_assert_eq(flx_tokenizer_n_vocab(g.tok), 512);
    flx_model_free(&h);
    flx_model_free(&g);
}

Test(model, bf16_folder_is_rounded_f32_and_thread_independent)
{
    flx_model a, b, b1;
    load_ok(&a, flx_test_data("stories260K/hf"));
    load_ok(&b, flx_test_data("stories260K/hf-bf16"));
    flx_error err = {0};
    char p[4096];
    snprintf(p, sizeof p, "%s", flx_test_data("stories260K/hf-bf16"));
    cr_assert_eq(flx_model_load_threads(&b1, p, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(b.dtypes, "BF16 x47");
    cr_assert_eq(b.n_maps, 0, "converted sources are unmapped");
    cr_assert_eq(b.weight_bytes_f32, a.weight_bytes_f32);
    for (int64_t i = 0; i < 512 * 64; i++)
        cr_assert_eq(b.w.tok_embd[i], flx_bf16_to_f32(flx_f32_to_bf16(a.w.tok_embd[i])));
    for (int l = 0; l < 5; l++)
        for (int w = 0; w < 9; w++) {
            const float *x = layer_ptr(&a.w.layers[l], w), *y = layer_ptr(&b.w.layers[l], w);
            const float *y1 = layer_ptr(&b1.w.layers[l], w);
            size_t n = n_matrix(&a.cfg, w);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(y[i], flx_bf16_to_f32(flx_f32_to_bf16(x[i])), "l%d w%d [%zu]", l, w, i);
            cr_assert_eq(memcmp(y, y1, n * 4), 0);
        }
    flx_model_free(&a);
    flx_model_free(&b);
    flx_model_free(&b1);
}

Test(model, tiny_llama3_hf_vs_gguf_rope_and_permutation)
{
    flx_model h, g;
    load_ok(&h, flx_test_data("tiny-llama3-random"));
    load_ok(&g, flx_test_data("tiny-llama3-random.gguf"));
    const flx_llama_config *c = &h.cfg;
    cr_assert_eq(c->n_vocab, 128256);
    cr_assert_eq(c->head_dim, 16);
    cr_assert_eq(c->d_ff, 256);
    cr_assert_eq(c->max_seq_len, 131072);
    cr_assert_eq(c->rope_theta, 500000.0);
    cr_assert_eq(c->rope_llama3, 1);
    cr_assert_eq(c->rope_factor, 32.0);
    cr_assert_eq(c->rope_low_freq_factor, 1.0);
    cr_assert_eq(c->rope_high_freq_factor, 4.0);
    cr_assert_eq(c->rope_orig_max_pos, 8192);
    cr_assert_eq(c->bos_id, 128000);
    cr_assert_eq(c->eos_id, 128001);
    cr_assert_eq(c->tie_embeddings, 1);
    cr_assert_eq(g.cfg.tie_embeddings, 1);
    cr_assert_eq(g.cfg.bos_id, 128000);
    cr_assert_eq(g.cfg.n_vocab, 128256);
    cr_assert_eq(g.rope_freqs_tensor, 1);
    cr_assert_str_eq(h.dtypes, "BF16 x20");
    cr_assert_str_eq(g.dtypes, "F32 x5, BF16 x15");
    /* rope: HF formula vs divisors from rope_freqs.weight */
    for (int i = 0; i < 8; i++) {
        double base = pow(500000.0, -2.0 * i / 16.0);
        double want = i < 4 ? base : i == 4 ? base / 3.2922621 : base / 32.0;
        cr_assert(fabs(h.w.rope_inv_freq[i] - want) <= 1e-6 * want, "hf i=%d", i);
        cr_assert(fabs(g.w.rope_inv_freq[i] - h.w.rope_inv_freq[i]) <= 1e-6 * h.w.rope_inv_freq[i],
                  "gguf i=%d: %.17g vs %.17g", i, g.w.rope_inv_freq[i], h.w.rope_inv_freq[i]);
    }
    cr_assert_eq(memcmp(h.w.tok_embd, g.w.tok_embd, (size_t)128256 * 64 * 4), 0);
    for (int l = 0; l < 2; l++) {
        assert_qk_permuted(h.w.layers[l].wq, g.w.layers[l].wq, 4, 16, 64);
        assert_qk_permuted(h.w.layers[l].wk, g.w.layers[l].wk, 2, 16, 64);
        cr_assert_eq(memcmp(h.w.layers[l].w_down, g.w.layers[l].w_down, 64 * 256 * 4), 0);
        cr_assert_eq(memcmp(h.w.layers[l].attn_norm, g.w.layers[l].attn_norm, 64 * 4), 0);
    }
    /* both carry the Llama-3 tokenizer (attached once the engine is built) */
    if (h.tok) cr_assert_eq(flx_tokenizer_n_vocab(h.tok), 128256);
    if (g.tok) cr_assert_eq(flx_tokenizer_bos(g.tok), 128000);
    flx_model_free(&h);
    flx_model_free(&g);
}

Test(model, sharded_folder_equals_single_file)
{
    char src[4096];
    snprintf(src, sizeof src, "%s", flx_test_data("stories260K/hf-bf16"));
    char path[4096];
    snprintf(path, sizeof path, "%s", flx_test_data("stories260K/hf-bf16/model.safetensors"));
    flx_safetensors st;
    flx_error err = {0};
    cr_assert_eq(flx_st_open(&st, path, &err), FLX_OK, "%s", err.msg);
    const char *dir = flx_test_tmpdir();
    const char *shard_name[2] = {"model-00001-of-00002.safetensors",
                                 "model-00002-of-00002.safetensors"};
    size_t split = 20;
    tbuf idx = {0};
    tb_bytes(&idx, "{\"metadata\":{},\"weight_map\":{", 29);
    for (int s = 0; s < 2; s++) {
        size_t lo = s ? split : 0, hi = s ? st.n_tensors : split;
        flx_st_desc *d = calloc(hi - lo, sizeof *d);
        const void **data = calloc(hi - lo, sizeof *data);
        for (size_t i = lo; i < hi; i++) {
            d[i - lo].name = st.tensors[i].name;
            d[i - lo].dtype = st.tensors[i].dtype;
            d[i - lo].n_dims = st.tensors[i].n_dims;
            memcpy(d[i - lo].shape, st.tensors[i].shape, sizeof d[i - lo].shape);
            data[i - lo] = st.tensors[i].data;
            char e[256];
            snprintf(e, sizeof e, "%s\"%s\":\"%s\"", i ? "," : "", st.tensors[i].name, shard_name[s]);
            tb_bytes(&idx, e, strlen(e));
        }
        char out[512];
        snprintf(out, sizeof out, "%s/%s", dir, shard_name[s]);
        cr_assert_eq(flx_st_write(out, d, data, hi - lo, NULL, NULL, 0, &err), FLX_OK, "%s", err.msg);
        free(d);
        free(data);
    }
    tb_bytes(&idx, "}}", 3);
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, (const char *)idx.p);
    free(idx.p);
    size_t n;
    snprintf(path, sizeof path, "%s", flx_test_data("stories260K/hf-bf16/config.json"));
    uint8_t *cfg = read_all(path, &n);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_bytes(p, cfg, n);
    free(cfg);
    flx_st_close(&st);

    flx_model a, b;
    load_ok(&a, src);
    load_ok(&b, dir);
    cr_assert_eq(b.n_tensors, 47);
    cr_assert_eq(memcmp(a.w.tok_embd, b.w.tok_embd, 512 * 64 * 4), 0);
    for (int l = 0; l < 5; l++)
        for (int w = 0; w < 9; w++)
            cr_assert_eq(memcmp(layer_ptr(&a.w.layers[l], w), layer_ptr(&b.w.layers[l], w),
                                n_matrix(&a.cfg, w) * 4), 0);
    flx_model_free(&a);
    flx_model_free(&b);

    /* an index that names a tensor absent from its shard */
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00002-of-00002.safetensors\"}}");
    cr_assert_neq(flx_model_load(&a, dir, &err), FLX_OK);
    cr_assert(strstr(err.msg, "model.embed_tokens.weight"), "%s", err.msg);
    write_text(p, "{\"weight_map\":{\"model.embed_tokens.weight\":\"../evil.safetensors\"}}");
    cr_assert_eq(flx_model_load(&a, dir, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "weight_map"), "%s", err.msg);
}

/* A one-layer GGUF model whose matrices are Q8_0 / Q4_0 with exact values. */
static void q8_matrix(tbuf *b, int rows, int cols, int salt)
{
    for (int r = 0; r < rows; r++)
        for (int blk = 0; blk < cols / 32; blk++) {
            tb_u16(b, 0x2400);   /* d = 2^-6 */
            for (int j = 0; j < 32; j++)
                tb_u8(b, (uint8_t)(int8_t)(((r * 31 + blk * 7 + j * 5 + salt) % 255) - 127));
        }
}
static float q8_value(int r, int c, int salt)
{
    return (float)(((r * 31 + (c / 32) * 7 + (c % 32) * 5 + salt) % 255) - 127) / 64.0f;
}
static void q4_matrix(tbuf *b, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int blk = 0; blk < cols / 32; blk++) {
            tb_u16(b, 0x3800);   /* d = 0.5 */
            for (int j = 0; j < 16; j++)
                tb_u8(b, (uint8_t)((((r + j + 3) & 15) << 4) | ((r + j) & 15)));
        }
}
static float q4_value(int r, int c)
{
    int j = c % 32;
    int nib = j < 16 ? ((r + j) & 15) : ((r + (j - 16) + 3) & 15);
    return (float)(nib - 8) * 0.5f;
}

static tbuf quant_model_file(int with_nan)
{
    const int d = 32, f = 64, vocab = 40, hd = 16;
    tgguf g = {0};
    tg_str(&g, "general.architecture", "llama");
    tg_u32(&g, "llama.embedding_length", d);
    tg_u32(&g, "llama.block_count", 1);
    tg_u32(&g, "llama.feed_forward_length", f);
    tg_u32(&g, "llama.attention.head_count", 2);
    tg_u32(&g, "llama.attention.head_count_kv", 1);
    tg_u32(&g, "llama.context_length", 128);
    tg_f32(&g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    tg_f32(&g, "llama.rope.freq_base", 10000.0f);
    float norm[64];
    for (int i = 0; i < 64; i++) norm[i] = 1.0f + (float)i / 64.0f;
    if (with_nan) norm[5] = NAN;
    tbuf t = {0};
    uint64_t ne[2];
    q8_matrix(&t, vocab, d, 0);
    ne[0] = d; ne[1] = vocab;
    tg_tensor(&g, "token_embd.weight", 2, ne, FLX_GGML_Q8_0, t.p, t.n);
    t.n = 0;
    ne[0] = d;
    tg_tensor(&g, "blk.0.attn_norm.weight", 1, ne, FLX_GGML_F32, norm, d * 4);
    const char *q8names[] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight",
                             "blk.0.attn_output.weight"};
    int rows[] = {2 * hd, hd, hd, d};
    for (int i = 0; i < 4; i++) {
        q8_matrix(&t, rows[i], d, i + 1);
        ne[0] = d; ne[1] = (uint64_t)rows[i];
        tg_tensor(&g, q8names[i], 2, ne, FLX_GGML_Q8_0, t.p, t.n);
        t.n = 0;
    }
    ne[0] = d;
    tg_tensor(&g, "blk.0.ffn_norm.weight", 1, ne, FLX_GGML_F32, norm + 32, d * 4);
    q4_matrix(&t, f, d);
    ne[0] = d; ne[1] = f;
    tg_tensor(&g, "blk.0.ffn_gate.weight", 2, ne, FLX_GGML_Q4_0, t.p, t.n);
    tg_tensor(&g, "blk.0.ffn_up.weight", 2, ne, FLX_GGML_Q4_0, t.p, t.n);
    t.n = 0;
    q4_matrix(&t, d, f);
    ne[0] = f; ne[1] = d;
    tg_tensor(&g, "blk.0.ffn_down.weight", 2, ne, FLX_GGML_Q4_0, t.p, t.n);
    t.n = 0;
    ne[0] = d;
    tg_tensor(&g, "output_norm.weight", 1, ne, FLX_GGML_F32, norm, d * 4);
    q8_matrix(&t, vocab, d, 9);
    ne[0] = d; ne[1] = vocab;
    tg_tensor(&g, "output.weight", 2, ne, FLX_GGML_Q8_0, t.p, t.n);
    free(t.p);
    return tg_finish(&g);
}

Test(model, gguf_q8_0_and_q4_0_dequantized_on_load)
{
    tbuf f = quant_model_file(0);
    char p[512];
    snprintf(p, sizeof p, "%s/q.gguf", flx_test_tmpdir());
    write_bytes(p, f.p, f.n);
    free(f.p);
    flx_model m;
    load_ok(&m, p);
    cr_assert_eq(m.cfg.n_vocab, 40, "vocab from token_embd when llama.vocab_size is absent");
    cr_assert_eq(m.cfg.head_dim, 16);
    cr_assert_eq(m.cfg.tie_embeddings, 0);
    cr_assert_neq(m.w.output, m.w.tok_embd);
    cr_assert_str_eq(m.dtypes, "F32 x3, Q4_0 x3, Q8_0 x6");
    for (int r = 0; r < 40; r++)
        for (int c = 0; c < 32; c++) {
            cr_assert_eq(m.w.tok_embd[r * 32 + c], q8_value(r, c, 0));
            cr_assert_eq(m.w.output[r * 32 + c], q8_value(r, c, 9));
        }
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 32; c++) cr_assert_eq(m.w.layers[0].wk[r * 32 + c], q8_value(r, c, 2));
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 32; c++) cr_assert_eq(m.w.layers[0].w_up[r * 32 + c], q4_value(r, c));
    for (int r = 0; r < 32; r++)
        for (int c = 0; c < 64; c++) cr_assert_eq(m.w.layers[0].w_down[r * 64 + c], q4_value(r, c));
    cr_assert_null(m.tok);
    cr_assert_eq(m.tok_note[0], '\0', "no tokenizer keys: nothing to report");
    flx_model_free(&m);

    /* a NaN in a norm vector is named */
    f = quant_model_file(1);
    write_bytes(p, f.p, f.n);
    free(f.p);
    flx_error err = {0};
    cr_assert_eq(flx_model_load(&m, p, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "blk.0.attn_norm.weight") && strstr(err.msg, "element 5"), "%s", err.msg);
    cr_assert(strstr(err.msg, p), "%s", err.msg);
}

/* ---------------------------------------------------------------- config.json */

static int parse(const char *json, flx_llama_config *c, flx_error *err)
{
    return flx_hf_config_parse(json, strlen(json), "cfg.json", c, err);
}

#define BASE "\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4," \
             "\"intermediate_size\":128"

Test(model, config_defaults_and_llama3_fields)
{
    flx_llama_config c;
    flx_error err = {0};
    cr_assert_eq(parse("{" BASE "}", &c, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(c.n_kv_heads, 4);
    cr_assert_eq(c.head_dim, 16);
    cr_assert_eq(c.max_seq_len, 2048);
    cr_assert_eq(c.rms_eps, 1e-6f);
    cr_assert_eq(c.rope_theta, 10000.0);
    cr_assert_eq(c.tie_embeddings, 0);
    cr_assert_eq(c.bos_id, -1);
    cr_assert_eq(c.eos_id, -1);
    cr_assert_eq(c.rope_llama3, 0);

    cr_assert_eq(parse("{" BASE ",\"num_key_value_heads\":2,\"head_dim\":32,\"rope_theta\":500000.0,"
                       "\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":true,\"bos_token_id\":1,"
                       "\"eos_token_id\":[3,2],\"model_type\":\"llama\",\"hidden_act\":\"silu\","
                       "\"attention_bias\":false,\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                       "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
                       "\"rope_type\":\"llama3\"}}", &c, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(c.n_kv_heads, 2);
    cr_assert_eq(c.head_dim, 32);
    cr_assert_eq(c.rope_theta, 500000.0);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.bos_id, 1);
    cr_assert_eq(c.eos_id, 3);
    cr_assert_eq(c.rope_llama3, 1);
    cr_assert_eq(c.rope_factor, 8.0);
    cr_assert_eq(c.rope_orig_max_pos, 8192);
    /* legacy "type" key and "default" scaling */
    cr_assert_eq(parse("{" BASE ",\"rope_scaling\":{\"type\":\"default\"}}", &c, &err), FLX_OK);
    cr_assert_eq(c.rope_llama3, 0);
    cr_assert_eq(parse("{" BASE ",\"rope_scaling\":null,\"bos_token_id\":null}", &c, &err), FLX_OK);
}

#define EXPECT_CFG_ERR(json, code, field)                                                     \
    do {                                                                                      \
        flx_llama_config c_;                                                                  \
        flx_error e_ = {0};                                                                   \
        cr_assert_eq(parse(json, &c_, &e_), code, "%s -> %s", json, e_.msg);                 \
        cr_assert(strstr(e_.msg, "cfg.json") && strstr(e_.msg, field), "%s: %s", field, e_.msg); \
    } while (0)

Test(model, config_errors_name_the_field)
{
    EXPECT_CFG_ERR("{\"hidden_size\":64}", FLX_EFORMAT, "vocab_size");
    EXPECT_CFG_ERR("{\"vocab_size\":\"many\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":4,\"intermediate_size\":128}", FLX_EFORMAT, "vocab_size");
    EXPECT_CFG_ERR("{\"vocab_size\":100,\"hidden_size\":64.5,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":4,\"intermediate_size\":128}", FLX_EFORMAT, "hidden_size");
    EXPECT_CFG_ERR("{\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":-2,"
                   "\"num_attention_heads\":4,\"intermediate_size\":128}", FLX_EFORMAT,
                   "num_hidden_layers");
    EXPECT_CFG_ERR("{\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":0,\"intermediate_size\":128}", FLX_EFORMAT,
                   "num_attention_heads");
    EXPECT_CFG_ERR("{" BASE ",\"num_key_value_heads\":3}", FLX_EFORMAT, "num_key_value_heads");
    EXPECT_CFG_ERR("{" BASE ",\"head_dim\":15}", FLX_EFORMAT, "head_dim");
    EXPECT_CFG_ERR("{\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":4,\"intermediate_size\":99999999999}", FLX_EFORMAT,
                   "intermediate_size");
    EXPECT_CFG_ERR("{" BASE ",\"rms_norm_eps\":-1}", FLX_EFORMAT, "rms_norm_eps");
    EXPECT_CFG_ERR("{" BASE ",\"rope_theta\":\"big\"}", FLX_EFORMAT, "rope_theta");
    EXPECT_CFG_ERR("{" BASE ",\"tie_word_embeddings\":1}", FLX_EFORMAT, "tie_word_embeddings");
    EXPECT_CFG_ERR("{" BASE ",\"eos_token_id\":\"</s>\"}", FLX_EFORMAT, "eos_token_id");
    EXPECT_CFG_ERR("{" BASE ",\"bos_token_id\":100}", FLX_EFORMAT, "bos");
    EXPECT_CFG_ERR("{" BASE ",\"model_type\":\"mistral\"}", FLX_EUNSUPPORTED, "model_type");
    EXPECT_CFG_ERR("{" BASE ",\"hidden_act\":\"gelu\"}", FLX_EUNSUPPORTED, "hidden_act");
    EXPECT_CFG_ERR("{" BASE ",\"mlp_bias\":true}", FLX_EUNSUPPORTED, "mlp_bias");
    EXPECT_CFG_ERR("{" BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
                   FLX_EUNSUPPORTED, "rope_scaling.rope_type");
    EXPECT_CFG_ERR("{" BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
                   FLX_EFORMAT, "rope_scaling.low_freq_factor");
    EXPECT_CFG_ERR("{" BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
                   "\"low_freq_factor\":4,\"high_freq_factor\":1,"
                   "\"original_max_position_embeddings\":8192}}", FLX_EFORMAT, "rope_scaling");
    EXPECT_CFG_ERR("[1,2]", FLX_EFORMAT, "object");
    EXPECT_CFG_ERR("{\"vocab_size\":", FLX_EFORMAT, "JSON");
}

Test(model, untied_config_without_lm_head_names_the_tensor)
{
    const char *dir = flx_test_tmpdir();
    char p[512], src[4096];
    snprintf(src, sizeof src, "%s", flx_test_data("stories260K/hf/model.safetensors"));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cr_assert_eq(symlink(src, p), 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"vocab_size\":512,\"hidden_size\":64,\"num_hidden_layers\":5,"
                  "\"num_attention_heads\":8,\"num_key_value_heads\":4,\"intermediate_size\":172,"
                  "\"tie_word_embeddings\":false}");
    flx_model m;
    flx_error err = {0};
    cr_assert_eq(flx_model_load(&m, dir, &err), FLX_ENOTFOUND);
    cr_assert(strstr(err.msg, "lm_head.weight") && strstr(err.msg, "tie_word_embeddings"), "%s",
              err.msg);
    /* a config that disagrees with the tensor shapes */
    write_text(p, "{\"vocab_size\":512,\"hidden_size\":64,\"num_hidden_layers\":5,"
                  "\"num_attention_heads\":8,\"num_key_value_heads\":8,\"intermediate_size\":172,"
                  "\"tie_word_embeddings\":true}");
    cr_assert_eq(flx_model_load(&m, dir, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "k_proj") && strstr(err.msg, "[32, 64]") && strstr(err.msg, "[64, 64]"),
              "%s", err.msg);
    /* more layers than the file has */
    write_text(p, "{\"vocab_size\":512,\"hidden_size\":64,\"num_hidden_layers\":6,"
                  "\"num_attention_heads\":8,\"num_key_value_heads\":4,\"intermediate_size\":172,"
                  "\"tie_word_embeddings\":true}");
    cr_assert_eq(flx_model_load(&m, dir, &err), FLX_ENOTFOUND);
    cr_assert(strstr(err.msg, "model.layers.5.input_layernorm.weight"), "%s", err.msg);
}

Test(model, f16_folder_is_rounded_f32)
{
    char src[4096];
    snprintf(src, sizeof src, "%s", flx_test_data("stories260K/hf/model.safetensors"));
    flx_safetensors st;
    flx_error err = {0};
    cr_assert_eq(flx_st_open(&st, src, &err), FLX_OK, "%s", err.msg);
    flx_st_desc *d = calloc(st.n_tensors, sizeof *d);
    const void **data = calloc(st.n_tensors, sizeof *data);
    for (size_t i = 0; i < st.n_tensors; i++) {
        const flx_st_tensor *t = &st.tensors[i];
        d[i].name = t->name;
        d[i].dtype = FLX_ST_F16;
        d[i].n_dims = t->n_dims;
        memcpy(d[i].shape, t->shape, sizeof d[i].shape);
        uint16_t *h = malloc((size_t)t->n_elems * 2);
        for (int64_t k = 0; k < t->n_elems; k++) {
            float f;
            memcpy(&f, t->data + 4 * k, 4);
            h[k] = flx_f32_to_f16(f);
        }
        data[i] = h;
    }
    const char *dir = flx_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cr_assert_eq(flx_st_write(p, d, data, st.n_tensors, NULL, NULL, 0, &err), FLX_OK, "%s", err.msg);
    size_t n;
    uint8_t *cfg = read_all(flx_test_data("stories260K/hf/config.json"), &n);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_bytes(p, cfg, n);
    free(cfg);
    flx_model a, h;
    load_ok(&a, flx_test_data("stories260K/hf"));
    load_ok(&h, dir);
    cr_assert_str_eq(h.dtypes, "F16 x47");
    for (int l = 0; l < 5; l++)
        for (int w = 0; w < 9; w++) {
            const float *x = layer_ptr(&a.w.layers[l], w), *y = layer_ptr(&h.w.layers[l], w);
            for (size_t i = 0; i < n_matrix(&a.cfg, w); i++)
                cr_assert_eq(y[i], flx_f16_to_f32(flx_f32_to_f16(x[i])), "l%d w%d [%zu]", l, w, i);
        }
    for (size_t i = 0; i < st.n_tensors; i++) free((void *)data[i]);
    free(data);
    free(d);
    flx_st_close(&st);
    flx_model_free(&a);
    flx_model_free(&h);
}
