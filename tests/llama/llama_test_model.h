/* Tiny Llama models built by hand for the forward-pass tests, and a plain
 * double-precision scalar forward pass to check the OpenBLAS one against. */
#ifndef LLAMA_TEST_MODEL_H
#define LLAMA_TEST_MODEL_H

#include "flx_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline flx_llama_config tm_config(int n_layers, int d, int n_heads, int n_kv, int d_ff,
                                         int n_vocab)
{
    flx_llama_config c;
    memset(&c, 0, sizeof c);
    c.n_vocab = n_vocab;
    c.d_model = d;
    c.n_layers = n_layers;
    c.n_heads = n_heads;
    c.n_kv_heads = n_kv;
    c.head_dim = d / n_heads;
    c.d_ff = d_ff;
    c.max_seq_len = 4096;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0;
    c.rope_pairing = FLX_ROPE_SPLIT_HALF;
    c.tie_embeddings = 1;
    c.bos_id = 1;
    c.eos_id = 2;
    return c;
}

static inline float *tm_fill(flx_model *m, flx_rng *rng, size_t n, double mean, double sd)
{
    float *p = flx_model_alloc(m, n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + sd * flx_rng_normal(rng));
    return p;
}

/* Random weights: matrices N(0, sd^2), norm gains 1 + N(0, 0.1^2). */
static inline void tm_build(flx_model *m, const flx_llama_config *c, uint64_t seed, double sd)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    strcpy(m->format, "test");
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    size_t d = c->d_model, q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    m->w.tok_embd = tm_fill(m, &rng, (size_t)c->n_vocab * d, 0, 1.0);
    m->w.layers = calloc((size_t)c->n_layers, sizeof *m->w.layers);
    for (int l = 0; l < c->n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        L->attn_norm = tm_fill(m, &rng, d, 1, 0.1);
        L->wq = tm_fill(m, &rng, q * d, 0, sd * 3);
        L->wk = tm_fill(m, &rng, kv * d, 0, sd * 3);
        L->wv = tm_fill(m, &rng, kv * d, 0, sd);
        L->wo = tm_fill(m, &rng, d * q, 0, sd);
        L->ffn_norm = tm_fill(m, &rng, d, 1, 0.1);
        L->w_gate = tm_fill(m, &rng, (size_t)c->d_ff * d, 0, sd);
        L->w_up = tm_fill(m, &rng, (size_t)c->d_ff * d, 0, sd);
        L->w_down = tm_fill(m, &rng, d * c->d_ff, 0, sd);
    }
    m->w.out_norm = tm_fill(m, &rng, d, 1, 0.1);
    m->w.output = c->tie_embeddings ? m->w.tok_embd : tm_fill(m, &rng, (size_t)c->n_vocab * d, 0, sd);
    m->w.rope_inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(double));
    flx_llama_rope_inv_freq(c, m->w.rope_inv_freq);
}

/* ---- the double-precision scalar reference: one token at a time, llama2.c style ---- */

static void ref_rmsnorm(double *o, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) o[i] = w[i] * x[i] * inv;
}

static void ref_matvec(double *o, const double *x, const float *w, int n_in, int n_out)
{
    for (int r = 0; r < n_out; r++) {
        double s = 0;
        for (int i = 0; i < n_in; i++) s += (double)w[(size_t)r * n_in + i] * x[i];
        o[r] = s;
    }
}

static void ref_rope(double *v, int n_heads, int hd, int pos, const double *inv_freq, int adjacent)
{
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hd / 2; i++) {
            int ia = adjacent ? 2 * i : i, ib = adjacent ? 2 * i + 1 : i + hd / 2;
            double a = v[h * hd + ia], b = v[h * hd + ib], th = pos * inv_freq[i];
            v[h * hd + ia] = a * cos(th) - b * sin(th);
            v[h * hd + ib] = a * sin(th) + b * cos(th);
        }
}

/* logits (n, n_vocab) of tokens[0..n) at positions 0..n-1 */
static void ref_forward(const flx_model *m, const int32_t *tok, int n, double *logits)
{
    const flx_llama_config *c = &m->cfg;
    int d = c->d_model, hd = c->head_dim, q_dim = c->n_heads * hd, kv = c->n_kv_heads * hd;
    int grp = c->n_heads / c->n_kv_heads, adj = c->rope_pairing == FLX_ROPE_ADJACENT;
    double *x = calloc(d, 8), *xn = calloc(d, 8), *q = calloc(q_dim, 8), *att = calloc(q_dim, 8);
    double *o = calloc(d, 8), *g = calloc(c->d_ff, 8), *u = calloc(c->d_ff, 8), *sc = calloc(n, 8);
    double *K = calloc((size_t)c->n_layers * n * kv, 8), *V = calloc((size_t)c->n_layers * n * kv, 8);
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < d; i++) x[i] = m->w.tok_embd[(size_t)tok[t] * d + i];
        for (int l = 0; l < c->n_layers; l++) {
            const flx_llama_layer *L = &m->w.layers[l];
            double *k = K + ((size_t)l * n + t) * kv, *v = V + ((size_t)l * n + t) * kv;
            ref_rmsnorm(xn, x, L->attn_norm, d, c->rms_eps);
            ref_matvec(q, xn, L->wq, d, q_dim);
            ref_matvec(k, xn, L->wk, d, kv);
            ref_matvec(v, xn, L->wv, d, kv);
            ref_rope(q, c->n_heads, hd, t, m->w.rope_inv_freq, adj);
            ref_rope(k, c->n_kv_heads, hd, t, m->w.rope_inv_freq, adj);
            for (int h = 0; h < c->n_heads; h++) {
                int gi = h / grp;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = K + ((size_t)l * n + j) * kv + gi * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += q[h * hd + i] * kj[i];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += sc[j] / sum * V[((size_t)l * n + j) * kv + gi * hd + i];
                    att[h * hd + i] = a;
                }
            }
            ref_matvec(o, att, L->wo, q_dim, d);
            for (int i = 0; i < d; i++) x[i] += o[i];
            ref_rmsnorm(xn, x, L->ffn_norm, d, c->rms_eps);
            ref_matvec(g, xn, L->w_gate, d, c->d_ff);
            ref_matvec(u, xn, L->w_up, d, c->d_ff);
            for (int i = 0; i < c->d_ff; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_matvec(o, g, L->w_down, c->d_ff, d);
            for (int i = 0; i < d; i++) x[i] += o[i];
        }
        ref_rmsnorm(xn, x, m->w.out_norm, d, c->rms_eps);
        ref_matvec(logits + (size_t)t * c->n_vocab, xn, m->w.output, d, c->n_vocab);
    }
    free(x); free(xn); free(q); free(att); free(o); free(g); free(u); free(sc); free(K); free(V);
}

#endif
