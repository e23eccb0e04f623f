/* quantize_search.c -- `flxemu quantize --search-bits --budget B`: a greedy
 * choice of weight bits per tensor under an average-bits budget.
 *
 * Measure (layer-local, one float forward of the calibration windows):
 * for a linear with input X and weight W, the expected output error of a
 * weight quantization Ŵ with independent input channels is
 *     e(b) = sum_i E[x_i^2] * sum_r (ŵ_ri - w_ri)^2
 * (the diagonal of GPTQ's Hessian times the squared weight error).  Every
 * tensor starts at the recipe's bits; upgrades to 8 bits are taken in
 * decreasing order of (e(base) - e(8)) / (extra bits), while the average
 * bits per weight over the projections stays within the budget. */
#include "quantize_search.h"
#include "flx_gptq.h"
#include "flx_llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct search_ctx {
    const flx_rotation_set *rs;
    double *ex2;        /* [n_layers][4 input kinds] -> per-channel E[x^2] sums, d_ff wide */
    int64_t *rows;      /* [n_layers][4] */
    int32_t width;
    int32_t n_layers;
} search_ctx;

static int kind_slot(flx_linear_kind k)
{
    return k == FLX_LINEAR_QKV ? 0 : k == FLX_LINEAR_O ? 1 : k == FLX_LINEAR_GATE_UP ? 2 : 3;
}

static int s_linear(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in, flx_error *err)
{
    search_ctx *c = vctx;
    (void)err;
    flx_rot_online_input(c->rs, kind, x, n, NULL);
    if (layer >= c->n_layers) return FLX_OK;
    double *acc = c->ex2 + ((size_t)layer * 4 + kind_slot(kind)) * c->width;
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < n_in; i++) acc[i] += (double)x[t * n_in + i] * x[t * n_in + i];
    c->rows[layer * 4 + kind_slot(kind)] += n;
    return FLX_OK;
}

static int s_qkv(void *vctx, int layer, float *q, float *k, float *v, int64_t n, int64_t pos0,
                 const flx_llama_config *cfg, flx_error *err)
{
    search_ctx *c = vctx;
    (void)layer; (void)v; (void)pos0; (void)err;
    flx_rot_online_qk(c->rs, q, k, n, cfg, NULL);
    return FLX_OK;
}

typedef struct cand { double gain_per_bit; int idx; } cand;

static int by_gain(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->gain_per_bit != y->gain_per_bit) return x->gain_per_bit > y->gain_per_bit ? -1 : 1;
    return x->idx - y->idx;
}

static double weight_err(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, const double *ex2,
                         flx_error *err, int *rc)
{
    size_t nw = (size_t)n_out * n_in;
    int32_t ng = wq->group_size ? n_in / wq->group_size : 1;
    float *wh = malloc(nw * sizeof *wh);
    flx_wq_out o = { malloc(nw * sizeof(int32_t)), malloc((size_t)n_out * ng * sizeof(float)),
                     malloc((size_t)n_out * ng * sizeof(float)) };
    double e = 0;
    if (!wh || !o.q || !o.scale || !o.zero) *rc = flx_fail(err, FLX_ENOMEM, "out of memory");
    else *rc = flx_rtn(w, n_out, n_in, wq, &o, wh, err);
    for (size_t k = 0; *rc == FLX_OK && k < nw; k++) {
        double d = (double)wh[k] - w[k];
        e += d * d * ex2[k % (size_t)n_in];
    }
    free(wh); free(o.q); free(o.scale); free(o.zero);
    return e;
}

int quantize_search_bits(const flx_model *m, const flx_rotation_set *rs, const flx_recipe *r,
                         const flx_calib_data *cd, double budget, int n_threads, int32_t *w_bits_of,
                         double *avg_bits, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int L = c->n_layers;
    if (r->w_bits >= 8)
        return flx_fail(err, FLX_EINVAL, "--search-bits: recipe %s already has %d-bit weights; upgrades go to 8",
                        r->name, (int)r->w_bits);
    if (!(budget >= r->w_bits && budget <= 8))
        return flx_fail(err, FLX_EINVAL, "--budget %g: must lie between the recipe's %d bits and 8", budget,
                        (int)r->w_bits);
    int32_t width = c->d_ff > c->d_model ? c->d_ff : c->d_model;
    if (c->n_heads * c->head_dim > width) width = c->n_heads * c->head_dim;
    search_ctx sc = { rs, calloc((size_t)L * 4 * width, sizeof(double)), calloc((size_t)L * 4, sizeof(int64_t)),
                      width, L };
    cand *cs = calloc((size_t)L * 7, sizeof *cs);
    int rc = sc.ex2 && sc.rows && cs ? FLX_OK : flx_fail(err, FLX_ENOMEM, "out of memory");
    flx_llama_hooks hk = { .ctx = &sc, .linear_input = s_linear, .qkv = s_qkv };
    flx_llama_opts o = {0};
    o.n_threads = n_threads;
    o.max_tokens = cd->seqlen;
    o.max_ctx = cd->seqlen;
    o.head_rows = 1;
    o.hooks = &hk;
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    if (rc == FLX_OK) rc = flx_llama_init(&st, m, &o, err);
    for (int64_t w = 0; rc == FLX_OK && w < cd->n_windows; w++) {
        flx_llama_reset(&st);
        rc = flx_llama_forward(&st, cd->ids + w * cd->seqlen, cd->seqlen, err);
    }
    flx_llama_free(&st);
    /* e(base) and e(8) per projection */
    flx_wquant wq = flx_wquant_int4_channel(), w8;
    wq.bits = r->w.bits;
    wq.symmetric = r->w.scheme == FLX_QS_SYM;
    wq.group_size = r->w.gran == FLX_QG_GROUP ? r->w.group_size : 0;
    wq.clip = r->w.clip;
    wq.half_even = r->w.round == FLX_QR_HALF_EVEN;
    wq.mse_clip = r->w.mse_clip;
    w8 = wq;
    w8.bits = 8;
    const int32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int32_t outs[7] = {qd, kvd, kvd, c->d_model, c->d_ff, c->d_ff, c->d_model};
    const int32_t ins[7] = {c->d_model, c->d_model, c->d_model, qd, c->d_model, c->d_model, c->d_ff};
    const int slot[7] = {0, 0, 0, 1, 2, 2, 3};
    double total_w = 0, total_bits = 0;
    double *ex2 = malloc((size_t)width * sizeof *ex2);
    if (!ex2 && rc == FLX_OK) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
    for (int l = 0; rc == FLX_OK && l < L; l++) {
        const flx_llama_layer *Ly = &m->w.layers[l];
        const float *ws[7] = {Ly->wq, Ly->wk, Ly->wv, Ly->wo, Ly->w_gate, Ly->w_up, Ly->w_down};
        for (int i = 0; rc == FLX_OK && i < 7; i++) {
            const double *acc = sc.ex2 + ((size_t)l * 4 + slot[i]) * width;
            int64_t rows = sc.rows[l * 4 + slot[i]];
            for (int32_t k = 0; k < ins[i]; k++) ex2[k] = rows ? acc[k] / (double)rows : 0;
            double e0 = weight_err(ws[i], outs[i], ins[i], &wq, ex2, err, &rc);
            double e8 = rc == FLX_OK ? weight_err(ws[i], outs[i], ins[i], &w8, ex2, err, &rc) : 0;
            double nw = (double)outs[i] * ins[i];
            cs[l * 7 + i].idx = l * 7 + i;
            cs[l * 7 + i].gain_per_bit = (e0 - e8) / (nw * (8 - r->w_bits));
            total_w += nw;
            total_bits += nw * r->w_bits;
            w_bits_of[l * 7 + i] = r->w_bits;
        }
    }
    if (rc == FLX_OK) {
        qsort(cs, (size_t)L * 7, sizeof *cs, by_gain);
        for (int k = 0; k < L * 7; k++) {
            int l = cs[k].idx / 7, i = cs[k].idx % 7;
            double nw = (double)outs[i] * ins[i], extra = nw * (8 - r->w_bits);
            if ((total_bits + extra) / total_w > budget + 1e-12) continue;   /* a smaller one may still fit */
            total_bits += extra;
            w_bits_of[l * 7 + i] = 8;
        }
        *avg_bits = total_bits / total_w;
    }
    free(ex2);
    free(sc.ex2);
    free(sc.rows);
    free(cs);
    return rc;
}
