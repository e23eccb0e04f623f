/* Test helpers of the rotation / GPTQ suites: a small F32 safetensors
 * checkpoint reader, a synthetic llama3-style model, and an independent,
 * slow, double-precision Llama forward with the online R3/R4 ops and an
 * activation capture callback.  Written for the tests only: the library's
 * own loader and forward are checked elsewhere; this one is the
 * independent reference the rotations are compared against. */
#ifndef QTEST_MODEL_H
#define QTEST_MODEL_H

#include "test_util.h"
#include "flx_model.h"
#include "flx_rotate.h"

#include <cjson/cJSON.h>
#include <math.h>

static inline float *qt_alloc(flx_model *m, size_t n)
{
    float *p = flx_model_alloc(m, n * sizeof(float));
    cr_assert(p != NULL);
    return p;
}

static inline int qt_json_int(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* Loads an HF folder with F32 tensors (stories260K/hf). */
static inline void qt_load_hf(flx_model *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    char path[4096];
    char *txt = NULL, *bin = NULL;
    size_t n = 0;
    flx_error err = { 0 };
    snprintf(path, sizeof path, "%.4000s/config.json", dir);
    cr_assert_eq(flx_read_file(path, 1 << 20, &txt, &n, &err), FLX_OK, "%s", err.msg);
    cJSON *c = cJSON_Parse(txt);
    cr_assert(c != NULL);
    flx_llama_config *g = &m->cfg;
    g->n_vocab = qt_json_int(c, "vocab_size", 0);
    g->d_model = qt_json_int(c, "hidden_size", 0);
    g->n_layers = qt_json_int(c, "num_hidden_layers", 0);
    g->n_heads = qt_json_int(c, "num_attention_heads", 0);
    g->n_kv_heads = qt_json_int(c, "num_key_value_heads", g->n_heads);
    g->head_dim = qt_json_int(c, "head_dim", g->d_model / g->n_heads);
    g->d_ff = qt_json_int(c, "intermediate_size", 0);
    g->max_seq_len = qt_json_int(c, "max_position_embeddings", 0);
    g->rms_eps = (float)cJSON_GetObjectItemCaseSensitive(c, "rms_norm_eps")->valuedouble;
    g->rope_theta = cJSON_GetObjectItemCaseSensitive(c, "rope_theta")->valuedouble;
    g->rope_pairing = FLX_ROPE_SPLIT_HALF;
    g->tie_embeddings = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings"));
    g->bos_id = 1;
    g->eos_id = 2;
    cJSON_Delete(c);
    free(txt);

    snprintf(path, sizeof path, "%.4000s/model.safetensors", dir);
    cr_assert_eq(flx_read_file(path, 1 << 26, &bin, &n, &err), FLX_OK, "%s", err.msg);
    uint64_t nh;
    memcpy(&nh, bin, 8);
    char *hj = malloc(nh + 1);
    memcpy(hj, bin + 8, nh);
    hj[nh] = 0;
    cJSON *h = cJSON_Parse(hj);
    cr_assert(h != NULL);
    const char *data = bin + 8 + nh;
    m->w.layers = calloc((size_t)g->n_layers, sizeof *m->w.layers);
    const cJSON *t;
    cJSON_ArrayForEach(t, h) {
        if (!strcmp(t->string, "__metadata__")) continue;
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring, "F32");
        float *dst = qt_alloc(m, (e - b) / 4);
        memcpy(dst, data + b, e - b);
        const char *nm = t->string;
        int l = -1;
        char field[128] = "";
        if (sscanf(nm, "model.layers.%d.%127s", &l, field) == 2) {
            flx_llama_layer *L = &m->w.layers[l];
            if (!strcmp(field, "input_layernorm.weight")) L->attn_norm = dst;
            else if (!strcmp(field, "self_attn.q_proj.weight")) L->wq = dst;
            else if (!strcmp(field, "self_attn.k_proj.weight")) L->wk = dst;
            else if (!strcmp(field, "self_attn.v_proj.weight")) L->wv = dst;
            else if (!strcmp(field, "self_attn.o_proj.weight")) L->wo = dst;
            else if (!strcmp(field, "post_attention_layernorm.weight")) L->ffn_norm = dst;
            else if (!strcmp(field, "mlp.gate_proj.weight")) L->w_gate = dst;
            else if (!strcmp(field, "mlp.up_proj.weight")) L->w_up = dst;
            else if (!strcmp(field, "mlp.down_proj.weight")) L->w_down = dst;
            else cr_assert_fail("unknown tensor %s", nm);
        } else if (!strcmp(nm, "model.embed_tokens.weight")) m->w.tok_embd = dst;
        else if (!strcmp(nm, "model.norm.weight")) m->w.out_norm = dst;
        else if (!strcmp(nm, "lm_head.weight")) m->w.output = dst;
        else cr_assert_fail("unknown tensor %s", nm);
    }
    if (!m->w.output) m->w.output = m->w.tok_embd;
    cJSON_Delete(h);
    free(hj);
    free(bin);
    m->w.rope_inv_freq = malloc(sizeof(double) * (size_t)(g->head_dim / 2));
    flx_llama_rope_inv_freq(g, m->w.rope_inv_freq);
    snprintf(m->format, sizeof m->format, "hf");
}

/* A synthetic llama3-style model: GQA, tied head, llama3 RoPE scaling,
 * non-unit norm gains (so folding matters) and a few large residual
 * channels when outlier_gain > 0. */
static inline void qt_synth(flx_model *m, int d, int n_layers, int n_heads, int n_kv, int d_ff, int n_vocab,
                            uint64_t seed)
{
    memset(m, 0, sizeof *m);
    flx_llama_config *g = &m->cfg;
    g->n_vocab = n_vocab; g->d_model = d; g->n_layers = n_layers; g->n_heads = n_heads;
    g->n_kv_heads = n_kv; g->head_dim = d / n_heads; g->d_ff = d_ff; g->max_seq_len = 256;
    g->rms_eps = 1e-5f; g->rope_theta = 500000.0; g->rope_llama3 = 1; g->rope_factor = 32.0;
    g->rope_low_freq_factor = 1.0; g->rope_high_freq_factor = 4.0; g->rope_orig_max_pos = 64;
    g->rope_pairing = FLX_ROPE_SPLIT_HALF; g->tie_embeddings = 1; g->bos_id = 0; g->eos_id = 1;
    flx_rng r;
    flx_rng_seed(&r, seed);
#define QT_RAND(p, n, sd, mean) do { p = qt_alloc(m, (size_t)(n)); \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++) ((float *)p)[i_] = (float)((mean) + (sd) * flx_rng_normal(&r)); } while (0)
    const float *t;
    QT_RAND(t, (size_t)n_vocab * d, 0.5, 0.0); m->w.tok_embd = t; m->w.output = t;
    QT_RAND(t, d, 0.2, 1.0); m->w.out_norm = t;
    m->w.layers = calloc((size_t)n_layers, sizeof *m->w.layers);
    const int hd = d / n_heads;
    for (int l = 0; l < n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        double s = 1.0 / sqrt((double)d);
        QT_RAND(L->attn_norm, d, 0.2, 1.0);
        QT_RAND(L->wq, (size_t)n_heads * hd * d, 2 * s, 0.0);
        QT_RAND(L->wk, (size_t)n_kv * hd * d, 2 * s, 0.0);
        QT_RAND(L->wv, (size_t)n_kv * hd * d, s, 0.0);
        QT_RAND(L->wo, (size_t)d * n_heads * hd, s, 0.0);
        QT_RAND(L->ffn_norm, d, 0.2, 1.0);
        QT_RAND(L->w_gate, (size_t)d_ff * d, s, 0.0);
        QT_RAND(L->w_up, (size_t)d_ff * d, s, 0.0);
        QT_RAND(L->w_down, (size_t)d * d_ff, 1.0 / sqrt((double)d_ff), 0.0);
    }
#undef QT_RAND
    m->w.rope_inv_freq = malloc(sizeof(double) * (size_t)(hd / 2));
    flx_llama_rope_inv_freq(g, m->w.rope_inv_freq);
    snprintf(m->format, sizeof m->format, "synthetic");
}

/* Called with every linear input (double, n_tokens x n_in): kind 0 qkv,
 * 1 o, 2 gate/up, 3 down, 4 head (layer = n_layers); and with q (5), k (6)
 * after RoPE and R3, and v (7). */
typedef void (*qt_capture_fn)(void *ctx, int layer, int kind, const double *x, int n_tokens, int n_in);

static inline void qt_matmul_t(const double *x, int n, int n_in, const float *w, int n_out, double *y)
{
    for (int t = 0; t < n; t++)
        for (int o = 0; o < n_out; o++) {
            double s = 0;
            const float *wr = w + (size_t)o * n_in;
            for (int i = 0; i < n_in; i++) s += x[(size_t)t * n_in + i] * wr[i];
            y[(size_t)t * n_out + o] = s;
        }
}

static inline void qt_rmsnorm(const double *x, int n, int d, const float *g, float eps, double *y)
{
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < d; i++) ss += x[(size_t)t * d + i] * x[(size_t)t * d + i];
        double r = 1.0 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) y[(size_t)t * d + i] = x[(size_t)t * d + i] * r * g[i];
    }
}

/* Applies an online float op to a double block (rounding through float). */
static inline void qt_online(const flx_rotation_set *rs, int which, double *x, int64_t n_rows, int width)
{
    float *f = malloc(sizeof(float) * (size_t)n_rows * width);
    for (int64_t i = 0; i < n_rows * width; i++) f[i] = (float)x[i];
    if (which == 3) flx_rot_r3(rs, f, n_rows * width / rs->head_dim, NULL);
    else flx_rot_r4(rs, f, n_rows, NULL);
    for (int64_t i = 0; i < n_rows * width; i++) x[i] = f[i];
    free(f);
}

/* logits (n, n_vocab) of tokens at positions 0..n-1, double precision;
 * split-half RoPE.  rs (may be NULL) supplies online R3/R4. */
static inline void qt_forward(const flx_model *m, const int32_t *tok, int n, const flx_rotation_set *rs,
                              qt_capture_fn cap, void *cap_ctx, double *logits)
{
    const flx_llama_config *g = &m->cfg;
    const int d = g->d_model, hd = g->head_dim, nh = g->n_heads, nkv = g->n_kv_heads, dff = g->d_ff;
    const int qd = nh * hd, kvd = nkv * hd;
    double *x = calloc((size_t)n * d, 8), *xn = calloc((size_t)n * d, 8);
    double *q = calloc((size_t)n * qd, 8), *k = calloc((size_t)n * kvd, 8), *v = calloc((size_t)n * kvd, 8);
    double *a = calloc((size_t)n * qd, 8), *o = calloc((size_t)n * d, 8);
    double *gt = calloc((size_t)n * dff, 8), *up = calloc((size_t)n * dff, 8), *sc = calloc((size_t)n, 8);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < d; i++) x[(size_t)t * d + i] = m->w.tok_embd[(size_t)tok[t] * d + i];
    for (int l = 0; l < g->n_layers; l++) {
        const flx_llama_layer *L = &m->w.layers[l];
        qt_rmsnorm(x, n, d, L->attn_norm, g->rms_eps, xn);
        if (cap) cap(cap_ctx, l, 0, xn, n, d);
        qt_matmul_t(xn, n, d, L->wq, qd, q);
        qt_matmul_t(xn, n, d, L->wk, kvd, k);
        qt_matmul_t(xn, n, d, L->wv, kvd, v);
        for (int t = 0; t < n; t++)
            for (int pass = 0; pass < 2; pass++) {
                double *base = pass ? k + (size_t)t * kvd : q + (size_t)t * qd;
                int heads = pass ? nkv : nh;
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < hd / 2; i++) {
                        double ang = t * m->w.rope_inv_freq[i], c = cos(ang), s = sin(ang);
                        double *p = base + (size_t)h * hd;
                        double x0 = p[i], x1 = p[i + hd / 2];
                        p[i] = x0 * c - x1 * s;
                        p[i + hd / 2] = x1 * c + x0 * s;
                    }
            }
        if (rs && rs->r3) {
            qt_online(rs, 3, q, n, qd);
            qt_online(rs, 3, k, n, kvd);
        }
        if (cap) {   /* q, k after RoPE (and R3), v */
            cap(cap_ctx, l, 5, q, n, qd);
            cap(cap_ctx, l, 6, k, n, kvd);
            cap(cap_ctx, l, 7, v, n, kvd);
        }
        for (int h = 0; h < nh; h++) {
            int kh = h / (nh / nkv);
            for (int t = 0; t < n; t++) {
                double mx = -1e300;
                for (int u = 0; u <= t; u++) {
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += q[(size_t)t * qd + h * hd + i] * k[(size_t)u * kvd + kh * hd + i];
                    sc[u] = s / sqrt((double)hd);
                    if (sc[u] > mx) mx = sc[u];
                }
                double z = 0;
                for (int u = 0; u <= t; u++) { sc[u] = exp(sc[u] - mx); z += sc[u]; }
                for (int i = 0; i < hd; i++) {
                    double s = 0;
                    for (int u = 0; u <= t; u++) s += sc[u] * v[(size_t)u * kvd + kh * hd + i];
                    a[(size_t)t * qd + h * hd + i] = s / z;
                }
            }
        }
        if (cap) cap(cap_ctx, l, 1, a, n, qd);
        qt_matmul_t(a, n, qd, L->wo, d, o);
        for (size_t i = 0; i < (size_t)n * d; i++) x[i] += o[i];
        qt_rmsnorm(x, n, d, L->ffn_norm, g->rms_eps, xn);
        if (cap) cap(cap_ctx, l, 2, xn, n, d);
        qt_matmul_t(xn, n, d, L->w_gate, dff, gt);
        qt_matmul_t(xn, n, d, L->w_up, dff, up);
        for (size_t i = 0; i < (size_t)n * dff; i++) gt[i] = gt[i] / (1.0 + exp(-gt[i])) * up[i];
        if (rs && rs->r4) qt_online(rs, 4, gt, n, dff);
        if (cap) cap(cap_ctx, l, 3, gt, n, dff);
        qt_matmul_t(gt, n, dff, L->w_down, d, o);
        for (size_t i = 0; i < (size_t)n * d; i++) x[i] += o[i];
    }
    qt_rmsnorm(x, n, d, m->w.out_norm, g->rms_eps, xn);
    if (cap) cap(cap_ctx, g->n_layers, 4, xn, n, d);
    qt_matmul_t(xn, n, d, m->w.output, g->n_vocab, logits);
    free(x); free(xn); free(q); free(k); free(v); free(a); free(o); free(gt); free(up); free(sc);
}

/* Token ids of llama2.c's greedy reference sample (BOS + 200 ids). */
static inline int qt_story_ids(int32_t *ids, int cap)
{
    char *txt = NULL;
    size_t n = 0;
    cr_assert_eq(flx_read_file(flx_test_data("stories260K/expected_greedy_n200.ids.txt"), 1 << 20, &txt, &n, NULL),
                 FLX_OK);
    int k = 0;
    char *p = txt, *end;
    while (k < cap) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[k++] = (int32_t)v;
        p = end;
    }
    free(txt);
    return k;
}

#endif
