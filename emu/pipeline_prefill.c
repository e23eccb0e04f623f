/* The FlexLLM W4A4 prefill (reference-design §3.3; production top level
 * SpinQuant_Prefilling_mem_opt), layer by layer on token-major arrays, and
 * the decode-stage head that hardware perplexity applies to every position. */
#include "flx_emu.h"
#include "flx_qmodel.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* ceil(log2(n)): the PE's max_log2_k_size for an input width n */
static int log2_ceil(int64_t n)
{
    int l = 0;
    while (((int64_t)1 << l) < n) l++;
    return l;
}

/* Token-wise kernels over the pool: every kernel below computes a token's
 * outputs from that token's inputs alone, so splitting the tokens cannot
 * change a bit. */
typedef enum { ROW_QUANT, ROW_DEQUANT, ROW_RMSNORM, ROW_SILU, ROW_FHT, ROW_RESIDUAL, ROW_ROPE_Q8,
               ROW_DEQUANT_ATT, ROW_RMSNORM_DEC, ROW_KV_PACK } row_op;

typedef struct {
    row_op op;
    const flx_emu_fp *fp;
    float *y;
    const float *x, *x2, *gamma;
    const flx_qtensor *w;
    const struct lin_scratch *sc;
    int64_t width;
    float eps, scale;
    const struct rope_q8 *rq;
} row_job;

/* RoPE at the absolute position and the static INT8 quantizers of K, V, Q
 * (ROW_ROPE_Q8), and the attention dequantizer (ROW_DEQUANT_ATT), per token */
typedef struct rope_q8 {
    const flx_emu_engine *e;
    float *k, *v, *q, *o;
    int8_t *k8, *v8, *q8;
    const int32_t *acc_o;
    const float *qs, *ks, *vs, *as;
    int8_t *kp, *vp;
    int64_t pos0;                 /* position of the call's first row       */
    const int8_t *k_all, *v_all;  /* [pos0 + rows][KV]: cached + the call's */
} rope_q8;

static void run_rows(void *ctx, int64_t t0, int64_t t1, int thread_id);

static void rows_for(flx_pool *pool, int64_t n_tokens, row_job *j)
{
    flx_pool_for(pool, n_tokens, 16, run_rows, j);
}

typedef struct lin_scratch {
    int8_t  *q;
    float   *s, *b;
    int32_t *acc;
} lin_scratch;

static void run_rows(void *ctx, int64_t t0, int64_t t1, int thread_id)
{
    const row_job *j = ctx;
    const int64_t n = t1 - t0, W = j->width;
    switch (j->op) {
    case ROW_QUANT:
        flx_emu_quant_asym(j->sc->q + t0 * W, j->sc->s + t0, j->sc->b + t0, j->x + t0 * W, n, W, 4,
                           j->fp);
        break;
    case ROW_DEQUANT:
        flx_emu_dequant(j->y + t0 * W, j->sc->acc + t0 * W, j->sc->s + t0, j->sc->b + t0,
                        j->w->scale, j->w->wsum, n, W, j->fp);
        break;
    case ROW_RMSNORM:
        flx_emu_rmsnorm_pref(j->y + t0 * W, j->x + t0 * W, j->gamma, n, W, j->eps, j->fp);
        break;
    case ROW_SILU:
        flx_emu_silu_gate(j->y + t0 * W, j->x + t0 * W, j->x2 + t0 * W, n * W, j->fp);
        break;
    case ROW_FHT:
        for (int64_t t = t0; t < t1; t++) flx_emu_fht(j->y + t * W, W, j->scale, j->fp);
        break;
    case ROW_RESIDUAL:
        flx_emu_residual(j->y + t0 * W, j->x + t0 * W, j->x2 + t0 * W, n * W, j->fp);
        break;
    case ROW_ROPE_Q8: {
        const rope_q8 *r = j->rq;
        const flx_llama_config *c = &r->e->qm->cfg;
        const int64_t D = c->d_model, hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd;
        for (int64_t t = t0; t < t1; t++) {
            flx_emu_rope(r->k + t * KV, r->k + t * KV, c->n_kv_heads, (int)hd, r->e->rope_sin,
                         r->e->rope_cos, r->pos0 + t, j->fp);
            flx_emu_rope(r->q + t * D, r->q + t * D, c->n_heads, (int)hd, r->e->rope_sin,
                         r->e->rope_cos, r->pos0 + t, j->fp);
        }
        flx_emu_quant_static(r->k8 + t0 * KV, r->k + t0 * KV, n, c->n_kv_heads, (int)hd, r->ks,
                             1.0f, 8, 1, j->fp);
        flx_emu_quant_static(r->v8 + t0 * KV, r->v + t0 * KV, n, c->n_kv_heads, (int)hd, r->vs,
                             1.0f, 8, 1, j->fp);
        flx_emu_quant_static(r->q8 + t0 * D, r->q + t0 * D, n, c->n_heads, (int)hd, r->qs,
                             r->e->q_factor, 8, 1, j->fp);
        break;
    }
    case ROW_RMSNORM_DEC:           /* the head's final norm (decode tree) */
        for (int64_t t = t0; t < t1; t++)
            flx_emu_rmsnorm_dec(j->y + t * W, j->x + t * W, j->gamma, W, (int)j->scale, j->eps,
                                j->fp);
        break;
    case ROW_KV_PACK: {             /* here a "row" is a KV head */
        const rope_q8 *r = j->rq;
        const flx_llama_config *c = &r->e->qm->cfg;
        const int64_t hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd, Lp = W;
        const int64_t L64 = (Lp + 63) / 64 * 64;
        for (int64_t g = t0; g < t1; g++) {
            flx_emu_kpack(r->kp + g * Lp * hd, r->k_all + g * hd, KV, Lp, (int)hd);
            flx_emu_vpack(r->vp + g * L64 * hd, r->v_all + g * hd, KV, Lp, L64, (int)hd);
        }
        break;
    }
    case ROW_DEQUANT_ATT: {
        const rope_q8 *r = j->rq;
        const flx_llama_config *c = &r->e->qm->cfg;
        flx_emu_dequant_static(r->o + t0 * W, r->acc_o + t0 * W, n, c->n_heads, c->head_dim,
                               r->as, r->vs, c->n_kv_heads, j->fp);
        break;
    }
    }
}

/* A linear layer: per-token INT4 quantization of x, exact INT4 GEMM with
 * acc_bits accumulators, dequantization with weight scale and sum.
 * x: [T][n_in] -> y: [T][n_out].  Scratch: q [T][n_in], s/b [T],
 * acc [T][n_out]. */
static int linear(float *y, const float *x, const flx_qtensor *w, const flx_emu_wpack *wp,
                  int64_t T, int acc_bits, const lin_scratch *sc, const flx_emu_fp *fp,
                  flx_pool *pool, const char *name, int layer, flx_error *err)
{
    if (x) {            /* NULL: sc already holds this input's quantization */
        row_job q = { ROW_QUANT, fp, NULL, x, NULL, NULL, w, sc, w->n_in, 0.0f, 0.0f, NULL };
        rows_for(pool, T, &q);
    }
    int64_t wr = flx_emu_gemm_i4_wp(sc->acc, sc->q, w->q, wp, T, w->n_out, w->n_in, acc_bits,
                                    pool);
    if (wr < 0) return flx_fail(err, FLX_ENOMEM, "layer %d %s: out of memory", layer, name);
    if (wr > 0)
        return flx_fail(err, FLX_ENUMERIC,
                        "layer %d %s: %lld accumulators exceeded %d bits (impossible for INT4 "
                        "inputs of this width)", layer, name, (long long)wr, acc_bits);
    row_job d = { ROW_DEQUANT, fp, y, NULL, NULL, NULL, w, sc, w->n_out, 0.0f, 0.0f, NULL };
    rows_for(pool, T, &d);
    return FLX_OK;
}

/* ------------------------------------------------------------ attention */

typedef struct {
    const flx_emu_engine *e;
    int64_t  Lp;                  /* query rows (the call's, padded)  */
    int64_t  P, Lk;               /* first row's position; keys P+Lp  */
    const int8_t *q8, *k8, *v8;   /* [Lp][D], [Lk][KV], [Lk][KV]     */
    const float *q8f, *k8f, *v8f; /* the same integers as floats      */
    int32_t *acc_o;               /* [Lp][D]                          */
    const float *qs, *ks, *as;    /* per head                         */
    int32_t **acc;                /* per thread [Lp][Lk]              */
    float  **sc;                  /* per thread [Lp][Lk]              */
    int8_t **p8;                  /* per thread [Lp][Lk]              */
    int64_t *wrapped;             /* per head                         */
    int      amx;                 /* AMX path: the buffers below      */
    int64_t  L64;                 /* Lk rounded up to 64              */
    const int8_t *kp, *vp;        /* per KV head [Lk][hd], [L64][hd]  */
} att_job;

/* One head on AMX: blocks of 32 query rows, keys 0 .. block end.  Row i's
 * scores are the exact int32 sums converted to float (|sum| <= 2^20, the
 * value the sgemm path produced), then scaled, softmax_dec over keys 0..P+i
 * (the causal prefix, see below), uint8 P, zeros up to the 64-key tile;
 * A.V sums exactly in int32 and takes the 26-bit accumulator afterwards.
 * Query row i is at position P + i and keeps keys 0 .. P + i.
 * Thread scratch: acc [32][Lk] int32, sc [Lk] floats, p8 [32][L64]. */
static int64_t att_head_amx(const att_job *j, int64_t h, int tid)
{
    const flx_llama_config *c = &j->e->qm->cfg;
    const flx_emu_fp *fp = &j->e->opts.fp;
    const int hd = c->head_dim, G = c->n_heads / c->n_kv_heads;
    const int64_t D = c->d_model, Lp = j->Lp, Lk = j->Lk, P0 = j->P, L64 = j->L64, kvh = h / G;
    const int ftz = fp->ftz;
    const float si = ftz ? flx_emu_ftz(j->qs[h]) : j->qs[h];
    const float sw = ftz ? flx_emu_ftz(j->ks[kvh]) : j->ks[kvh];
    int32_t *S = j->acc[tid];
    float *row = j->sc[tid];
    uint8_t *P = (uint8_t *)j->p8[tid];
    const int8_t *kp = j->kp + kvh * Lk * hd, *vp = j->vp + kvh * L64 * hd;
    const int64_t lim = (int64_t)1 << 25;              /* A.V accumulator: 26 bits */
    int64_t wrapped = 0;
    for (int64_t r0 = 0; r0 < Lp; r0 += 32) {
        int64_t nk = P0 + (r0 + 32 < Lp ? r0 + 32 : Lp), nk64 = (nk + 63) / 64 * 64;
        flx_emu_qk32_amx(S, Lk, j->q8 + r0 * D + h * hd, D, kp, nk, hd);
        for (int64_t i = 0; i < 32; i++) {
            int64_t t = r0 + i, pos = P0 + t;          /* query row, its position */
            uint8_t *prow = P + i * L64;
            if (t >= Lp) { memset(prow, 0, (size_t)nk64); continue; }
            const int32_t *srow = S + i * Lk;
            for (int64_t k = 0; k <= pos; k++) {           /* ((float)acc * Q_s) * K_s */
                float v = (float)srow[k] * si;
                if (ftz) v = flx_emu_ftz(v);
                v = v * sw;
                row[k] = ftz ? flx_emu_ftz(v) : v;
            }
            flx_emu_softmax_dec(row, pos + 1, fp);
            flx_emu_quant_static((int8_t *)prow, row, 1, 1, (int)(pos + 1), &j->as[h], 1.0f, 8, 0, fp);
            memset(prow + pos + 1, 0, (size_t)(nk64 - pos - 1));
        }
        int32_t *o = j->acc_o + r0 * D + h * hd;
        flx_emu_av32_amx(o, D, P, L64, vp, nk64, hd);
        for (int64_t i = 0; i < 32 && r0 + i < Lp; i++)
            for (int d = 0; d < hd; d++) {
                int32_t v = o[i * D + d];
                if (v < -lim || v >= lim) {
                    wrapped++;
                    o[i * D + d] = flx_emu_wrap(v, 26);
                }
            }
    }
    return wrapped;
}

/* Query row i (position P + i) of the call attends keys 0 .. P + i: the
 * earlier calls' rows from the cache, then the call's own. */
static void att_heads(void *ctx, int64_t h0, int64_t h1, int tid)
{
    att_job *j = ctx;
    const flx_llama_config *c = &j->e->qm->cfg;
    const flx_emu_fp *fp = &j->e->opts.fp;
    const int hd = c->head_dim, G = c->n_heads / c->n_kv_heads;
    const int64_t D = c->d_model, KV = (int64_t)c->n_kv_heads * hd, Lp = j->Lp, Lk = j->Lk, P0 = j->P;
    if (j->amx) {
        flx_emu_amx_begin();
        for (int64_t h = h0; h < h1; h++) j->wrapped[h] = att_head_amx(j, h, tid);
        flx_emu_amx_end();
        return;
    }
    for (int64_t h = h0; h < h1; h++) {
        int64_t kvh = h / G;
        int32_t *acc = j->acc[tid];
        float *sc = j->sc[tid];
        int8_t *p8 = j->p8[tid];
        /* S = (int q8.k8) * Q_s * K_s over the full Lp x Lk (no causal skip) */
        int64_t w = 0, w2 = 0;
        if (j->e->opts.full_attention) {
            /* literally as the hardware: all Lp x Lk scores, mask, softmax */
            w = flx_emu_qk_i8(acc, Lk, j->q8 + h * hd, D, j->k8 + kvh * hd, KV, Lp, Lk, hd, 22);
            flx_emu_dequant_static(sc, acc, Lp, 1, (int)Lk, &j->qs[h], &j->ks[kvh], 1, fp);
            flx_emu_causal_mask(sc, Lk, Lp, Lk, P0);
            for (int64_t i = 0; i < Lp; i++) flx_emu_softmax_pref(sc + i * Lk, Lk, fp);
            flx_emu_quant_static(p8, sc, Lp, 1, (int)Lk, &j->as[h], 1.0f, 8, 0, fp);  /* uint8 P */
            w2 = flx_emu_av_u8i8(j->acc_o + h * hd, D, p8, Lk, 1, j->v8 + kvh * hd, KV, Lp, Lk,
                                 hd, 26);
        } else {
            /* Row i keeps keys 0..P+i.  A masked score gives exp(-1e32 - m) = +0
             * exactly (both exponentials, any ftz), which leaves S_(k mod 4)
             * unchanged and yields p = 0, p8 = 0: computing only the causal
             * prefix with a predicated tail gives the same bits (tested).
             * Blocks of 128 query rows read keys 0 .. block end only.
             * The INT8 products run through sgemm on the integers as floats:
             * |q8.k8| <= 64 * 2^14 = 2^20 and, per checked row, sum|p8| * 128
             * < 2^24, so every partial sum is an exact integer and the float
             * result equals (float)acc of the PE (and no accumulator wraps). */
            const int ftz = fp->ftz;
            const float si = ftz ? flx_emu_ftz(j->qs[h]) : j->qs[h];
            const float sw = ftz ? flx_emu_ftz(j->ks[kvh]) : j->ks[kvh];
            float *pf = (float *)acc;                 /* p8 as floats, [Lp][Lk] */
            for (int64_t r0 = 0; r0 < Lp; r0 += 128) {
                int64_t nr = Lp - r0 < 128 ? Lp - r0 : 128, nk = P0 + r0 + nr;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nk, hd, 1.0f,
                            j->q8f + r0 * D + h * hd, (int)D, j->k8f + kvh * hd, (int)KV, 0.0f,
                            sc + r0 * Lk, (int)Lk);
                int heavy = 0;
                for (int64_t i = r0; i < r0 + nr; i++) {
                    const int64_t pos = P0 + i;
                    float *row = sc + i * Lk;
                    int8_t *prow = p8 + i * Lk;
                    for (int64_t k = 0; k <= pos; k++) {    /* ((float)acc * Q_s) * K_s */
                        float v = row[k] * si;
                        if (ftz) v = flx_emu_ftz(v);
                        v = v * sw;
                        row[k] = ftz ? flx_emu_ftz(v) : v;
                    }
                    flx_emu_softmax_dec(row, pos + 1, fp);
                    flx_emu_quant_static(prow, row, 1, 1, (int)(pos + 1), &j->as[h], 1.0f, 8, 0, fp);
                    memset(prow + pos + 1, 0, (size_t)(nk - pos - 1));
                    int64_t sum = 0;
                    float *pr = pf + i * Lk;
                    for (int64_t k = 0; k < nk; k++) {
                        int32_t pv = (uint8_t)prow[k];      /* uint8 P reinterpreted */
                        pr[k] = (float)pv;
                        sum += pv;
                    }
                    heavy |= sum * 128 >= ((int64_t)1 << 24);
                }
                if (heavy) {                                 /* integer path, any sums */
                    int64_t wa = flx_emu_av_u8i8(j->acc_o + r0 * D + h * hd, D, p8 + r0 * Lk, Lk, 1,
                                                 j->v8 + kvh * hd, KV, nr, nk, hd, 26);
                    w2 = (wa < 0 || w2 < 0) ? -1 : w2 + wa;
                } else {
                    float ob[128 * 64];
                    float *o = hd <= 64 ? ob : malloc((size_t)(nr * hd) * sizeof(float));
                    if (!o) { w2 = -1; break; }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, hd, (int)nk,
                                1.0f, pf + r0 * Lk, (int)Lk, j->v8f + kvh * hd, (int)KV, 0.0f, o, hd);
                    for (int64_t i = 0; i < nr; i++)
                        for (int d = 0; d < hd; d++)
                            j->acc_o[(r0 + i) * D + h * hd + d] = (int32_t)o[i * hd + d];
                    if (o != ob) free(o);
                }
            }
        }
        j->wrapped[h] = (w < 0 || w2 < 0) ? -1 : w + w2;
    }
}

/* --------------------------------------------------------------- prefill */

typedef struct {
    float   *x, *h, *k, *v, *q, *o, *g, *u;
    int8_t  *k8, *v8, *q8;
    float   *k8f, *v8f, *q8f;
    int32_t *acc_o;
    lin_scratch lin;
    int      n_threads;
    int32_t **t_acc;
    float  **t_sc;
    int8_t **t_p8;
    int64_t *wrapped;
    int      amx;
    int8_t  *kp, *vp;
} pref_bufs;

static void pref_free(pref_bufs *b)
{
    free(b->x); free(b->h); free(b->k); free(b->v); free(b->q); free(b->o); free(b->g); free(b->u);
    free(b->k8); free(b->v8); free(b->q8); free(b->acc_o);
    free(b->k8f); free(b->v8f); free(b->q8f);
    free(b->lin.q); free(b->lin.s); free(b->lin.b); free(b->lin.acc);
    for (int i = 0; i < b->n_threads; i++) {
        if (b->t_acc) free(b->t_acc[i]);
        if (b->t_sc) free(b->t_sc[i]);
        if (b->t_p8) free(b->t_p8[i]);
    }
    free(b->t_acc); free(b->t_sc); free(b->t_p8); free(b->wrapped);
    free(b->kp); free(b->vp);
}

/* Lp query rows (the call's), Lk = P + Lp keys (the earlier calls' and the call's) */
static int pref_alloc(pref_bufs *b, const flx_llama_config *c, int64_t Lp, int64_t Lk, int n_threads, int amx)
{
    memset(b, 0, sizeof *b);
    b->amx = amx;
    const int64_t L32 = (Lp + 31) / 32 * 32, L64 = (Lk + 63) / 64 * 64;
    const size_t D = (size_t)c->d_model, KV = (size_t)c->n_kv_heads * c->head_dim;
    const size_t F = (size_t)c->d_ff, L = (size_t)Lp, K = (size_t)Lk, W = F > D ? F : D;
    b->x = malloc(L * D * sizeof(float));
    b->h = malloc(L * D * sizeof(float));
    b->k = malloc(L * KV * sizeof(float));
    b->v = malloc(L * KV * sizeof(float));
    b->q = malloc(L * D * sizeof(float));
    b->o = malloc(L * D * sizeof(float));
    b->g = malloc(L * F * sizeof(float));
    b->u = malloc(L * F * sizeof(float));
    b->k8 = malloc(K * KV);
    b->v8 = malloc(K * KV);
    b->q8 = calloc((size_t)L32 * D, 1);                /* AMX reads whole 32-row blocks */
    b->k8f = malloc(K * KV * sizeof(float));
    b->v8f = malloc(K * KV * sizeof(float));
    b->q8f = malloc(L * D * sizeof(float));
    b->acc_o = malloc((size_t)L32 * D * sizeof(int32_t));
    b->lin.q = malloc(L * W);
    b->lin.s = malloc(L * sizeof(float));
    b->lin.b = malloc(L * sizeof(float));
    b->lin.acc = malloc(L * W * sizeof(int32_t));
    b->n_threads = n_threads;
    b->t_acc = calloc((size_t)n_threads, sizeof *b->t_acc);
    b->t_sc = calloc((size_t)n_threads, sizeof *b->t_sc);
    b->t_p8 = calloc((size_t)n_threads, sizeof *b->t_p8);
    b->wrapped = calloc((size_t)c->n_heads, sizeof *b->wrapped);
    if (!b->x || !b->h || !b->k || !b->v || !b->q || !b->o || !b->g || !b->u || !b->k8 ||
        !b->v8 || !b->q8 || !b->acc_o || !b->k8f || !b->v8f || !b->q8f || !b->lin.q || !b->lin.s || !b->lin.b || !b->lin.acc ||
        !b->t_acc || !b->t_sc || !b->t_p8 || !b->wrapped)
        return -1;
    if (amx) {
        const size_t hd = (size_t)c->head_dim, KVH = (size_t)c->n_kv_heads;
        b->kp = malloc(KVH * K * hd);
        b->vp = malloc(KVH * (size_t)L64 * hd);
        if (!b->kp || !b->vp) return -1;
    }
    for (int i = 0; i < n_threads; i++) {
        size_t ra = amx ? 32 : L, rp = amx ? 32 * (size_t)L64 : L * K;   /* see att_head_amx */
        b->t_acc[i] = malloc(ra * K * sizeof(int32_t));
        b->t_sc[i] = malloc((amx ? 1 : L) * K * sizeof(float));
        b->t_p8[i] = malloc(rp);
        if (!b->t_acc[i] || !b->t_sc[i] || !b->t_p8[i]) return -1;
    }
    return 0;
}

static int check_finite(const float *x, int64_t n, int layer, const char *what, flx_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return flx_fail(err, FLX_ENUMERIC, "layer %d %s: non-finite value at element %lld",
                            layer, what, (long long)i);
    return FLX_OK;
}

static int prefill_rows(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv,
                        const int32_t *tokens, const float *embd, int64_t n, int64_t pos0,
                        flx_pool *pool, flx_error *err);

int flx_emu_prefill(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv,
                    const int32_t *tokens, int64_t n, flx_pool *pool, flx_error *err)
{
    return prefill_rows(e, hidden, kv, tokens, NULL, n, 0, pool, err);
}

int flx_emu_prefill_embd(const flx_emu_engine *e, float *hidden, const float *embd, int64_t n,
                         flx_pool *pool, flx_error *err)
{
    return prefill_rows(e, hidden, NULL, NULL, embd, n, 0, pool, err);
}

int flx_emu_prefill_at(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv, const int32_t *tokens,
                       const float *embd, int64_t n, int64_t pos0, flx_pool *pool, flx_error *err)
{
    if (pos0 < 0 || pos0 % 16)
        return flx_fail(err, FLX_EINVAL, "prefill call at position %lld: calls start at multiples of 16 "
                        "(every call is padded to a multiple of 16 rows)", (long long)pos0);
    if (pos0 > 0 && !kv)
        return flx_fail(err, FLX_EINVAL, "prefill call at position %lld: needs the KV cache of the "
                        "earlier calls", (long long)pos0);
    if (!tokens && !embd) return flx_fail(err, FLX_EINVAL, "prefill call: no input rows");
    return prefill_rows(e, hidden, kv, tokens, tokens ? NULL : embd, n, pos0, pool, err);
}

/* The prefill call of n rows at positions pos0 .. pos0+n-1 whose layer-0
 * input is the embedding of tokens[t] or, when tokens is NULL, the caller's
 * row embd[t] (the HMT segment loader writes such rows into pref_io region
 * 0).  With pos0 > 0, kv's rows 0 .. pos0-1 of every layer are the earlier
 * calls' keys and values: each layer's attention reads them, then the
 * call's own rows (reference-design §2.3: all keys stored before QK^T). */
static int prefill_rows(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv,
                        const int32_t *tokens, const float *embd, int64_t n, int64_t pos0,
                        flx_pool *pool, flx_error *err)
{
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    if (n < 1) return flx_fail(err, FLX_EINVAL, "prefill: no tokens");
    const int64_t Lp = (n + 15) / 16 * 16;             /* the host pads to a multiple of 16 */
    const int64_t Lk = pos0 + Lp;                       /* keys: earlier calls' + this call's */
    if (Lk > e->max_pos)
        return flx_fail(err, FLX_EINVAL, "prefill: %lld positions exceed the RoPE table (%lld)",
                        (long long)Lk, (long long)e->max_pos);
    if (kv && kv->cap < pos0 + n)
        return flx_fail(err, FLX_EINVAL, "prefill: KV cache holds %lld positions, need %lld",
                        (long long)kv->cap, (long long)(pos0 + n));
    const int64_t D = c->d_model, hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd;
    const int64_t F = c->d_ff;
    const int bits_d = log2_ceil(D) + 8, bits_f = log2_ceil(F) + 8;   /* L + 8 */
    int n_threads = pool ? flx_pool_threads(pool) : 1;
    pref_bufs b;
    const int amx = !e->opts.full_attention && hd % 64 == 0 && Lk < 65536 &&
                    flx_emu_amx_available();
    if (pref_alloc(&b, c, Lp, Lk, n_threads, amx)) {
        pref_free(&b);
        return flx_fail(err, FLX_ENOMEM, "prefill of %lld tokens: out of memory", (long long)Lp);
    }
    int rc = FLX_OK;
    /* layer-0 input: embeddings, zero rows for the padding */
    memset(b.x, 0, (size_t)(Lp * D) * sizeof(float));
    if (!tokens) memcpy(b.x, embd, (size_t)(n * D) * sizeof(float));
    for (int64_t t = 0; tokens && t < n && !rc; t++)
        rc = flx_emu_embed(b.x + t * D, qm->tok_embd, c->n_vocab, D, tokens[t], err);

    for (int l = 0; l < c->n_layers && !rc; l++) {
        const flx_qlayer *L = &qm->layers[l];
#define WP(i) (e->wpack ? &e->wpack[l * 7 + (i)] : NULL)
        const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
        const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
        const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
        const float *as = e->att_scales + ((int64_t)l * 4 + 3) * c->n_heads;
        /* h = RMSNorm(x); K, V, Q projections (one quantization serves all:
         * the hardware quantizes three times with identical results) */
        row_job rn = { ROW_RMSNORM, fp, b.h, b.x, NULL, L->attn_norm, NULL, NULL, D, c->rms_eps, 0.0f, NULL };
        rows_for(pool, Lp, &rn);
        if ((rc = linear(b.k, b.h, &L->wk, WP(1), Lp, bits_d, &b.lin, fp, pool, "wk", l, err)) ||
            (rc = linear(b.v, NULL, &L->wv, WP(2), Lp, bits_d, &b.lin, fp, pool, "wv", l, err)) ||
            (rc = linear(b.q, NULL, &L->wq, WP(0), Lp, bits_d, &b.lin, fp, pool, "wq", l, err)))
            break;
        /* RoPE at the absolute position t, static INT8 K, V, Q */
        /* keys and values: the earlier calls' rows 0 .. pos0-1, then the call's */
        int8_t *k8c = b.k8 + pos0 * KV, *v8c = b.v8 + pos0 * KV;
        if (pos0 > 0) flx_emu_kv_get_rows(kv, l, 0, pos0, b.k8, b.v8);
        rope_q8 rq = { e, b.k, b.v, b.q, b.o, k8c, v8c, b.q8, b.acc_o, qs, ks, vs, as, b.kp, b.vp,
                       pos0, b.k8, b.v8 };
        row_job rj = { ROW_ROPE_Q8, fp, NULL, NULL, NULL, NULL, NULL, NULL, D, 0.0f, 0.0f, &rq };
        rows_for(pool, Lp, &rj);
        if (kv) flx_emu_kv_put_rows(kv, l, pos0, n, k8c, v8c);
        /* attention, one head per task */
        const int64_t L64 = (Lk + 63) / 64 * 64;
        if (amx) {
            row_job kj = { ROW_KV_PACK, fp, NULL, NULL, NULL, NULL, NULL, NULL, Lk, 0.0f, 0.0f, &rq };
            flx_pool_for(pool, c->n_kv_heads, 1, run_rows, &kj);
        } else {
            for (int64_t i = 0; i < Lk * KV; i++) { b.k8f[i] = b.k8[i]; b.v8f[i] = b.v8[i]; }
            for (int64_t i = 0; i < Lp * D; i++) b.q8f[i] = b.q8[i];
        }
        att_job job = { e, Lp, pos0, Lk, b.q8, b.k8, b.v8, b.q8f, b.k8f, b.v8f, b.acc_o, qs, ks, as,
                        b.t_acc, b.t_sc, b.t_p8, b.wrapped, amx, L64, b.kp, b.vp };
        flx_pool_for(pool, c->n_heads, 1, att_heads, &job);
        for (int h = 0; h < c->n_heads && !rc; h++) {
            if (b.wrapped[h] < 0) rc = flx_fail(err, FLX_ENOMEM, "layer %d attention: out of memory", l);
            else if (b.wrapped[h] > 0)
                rc = flx_fail(err, FLX_ENUMERIC, "layer %d head %d: attention accumulator overflow", l, h);
        }
        if (rc) break;
        row_job dq = { ROW_DEQUANT_ATT, fp, NULL, NULL, NULL, NULL, NULL, NULL, D, 0.0f, 0.0f, &rq };
        rows_for(pool, Lp, &dq);
        /* O projection and the first residual: r0 = O(attn) + x (kept in x) */
        if ((rc = linear(b.h, b.o, &L->wo, WP(3), Lp, bits_d, &b.lin, fp, pool, "wo", l, err))) break;
        row_job r1 = { ROW_RESIDUAL, fp, b.x, b.h, b.x, NULL, NULL, NULL, D, 0.0f, 0.0f, NULL };
        rows_for(pool, Lp, &r1);
        /* FFN: gate/up on RMSNorm(r0), silu(gate) * up, R4 FHT, down, residual */
        row_job rn2 = { ROW_RMSNORM, fp, b.h, b.x, NULL, L->ffn_norm, NULL, NULL, D, c->rms_eps, 0.0f, NULL };
        rows_for(pool, Lp, &rn2);
        if ((rc = linear(b.g, b.h, &L->w_gate, WP(4), Lp, bits_d, &b.lin, fp, pool, "w_gate", l, err)) ||
            (rc = linear(b.u, b.h, &L->w_up, WP(5), Lp, bits_d, &b.lin, fp, pool, "w_up", l, err)))
            break;
        row_job sg = { ROW_SILU, fp, b.g, b.g, b.u, NULL, NULL, NULL, F, 0.0f, 0.0f, NULL };
        rows_for(pool, Lp, &sg);
        row_job fh = { ROW_FHT, fp, b.g, NULL, NULL, NULL, NULL, NULL, F, 0.0f, e->fht_scale, NULL };
        rows_for(pool, Lp, &fh);
        if ((rc = linear(b.h, b.g, &L->w_down, WP(6), Lp, bits_f, &b.lin, fp, pool, "w_down", l, err)))
            break;
        row_job r2 = { ROW_RESIDUAL, fp, b.x, b.h, b.x, NULL, NULL, NULL, D, 0.0f, 0.0f, NULL };
        rows_for(pool, Lp, &r2);
        rc = check_finite(b.x, n * D, l, "output", err);
#undef WP
    }
    if (!rc && hidden) memcpy(hidden, b.x, (size_t)(n * D) * sizeof(float));
    pref_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ head */

int flx_emu_head(const flx_emu_engine *e, float *logits, const float *hidden, int64_t n,
                 flx_pool *pool, flx_error *err)
{
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t D = c->d_model, V = c->n_vocab;
    const int bits = log2_ceil(D > c->d_ff ? D : c->d_ff) + 8;   /* decode engine: L = 13 */
    /* the int32 accumulators of a row block live in that block's logits
     * (the dequantizer reads acc[t][o] before writing y[t][o]) */
    int64_t rows = n < 1024 ? n : 1024;
    if (rows < 1) rows = 1;
    float *h = malloc((size_t)(rows * D) * sizeof(float));
    lin_scratch sc = { malloc((size_t)(rows * D)), malloc((size_t)rows * sizeof(float)),
                       malloc((size_t)rows * sizeof(float)), NULL };
    int rc = FLX_OK;
    if (!h || !sc.q || !sc.s || !sc.b)
        rc = flx_fail(err, FLX_ENOMEM, "head: out of memory");
    const flx_emu_wpack *wp = e->wpack ? &e->wpack[c->n_layers * 7] : NULL;
    for (int64_t r0 = 0; r0 < n && !rc; r0 += rows) {
        int64_t nr = n - r0 < rows ? n - r0 : rows;
        row_job nj = { ROW_RMSNORM_DEC, fp, h, hidden + r0 * D, NULL, qm->out_norm, NULL, NULL, D,
                       c->rms_eps, (float)e->opts.norm_lanes, NULL };
        rows_for(pool, nr, &nj);
        sc.acc = (int32_t *)(logits + r0 * V);
        rc = linear(logits + r0 * V, h, &qm->head, wp, nr, bits, &sc, fp, pool, "head",
                    c->n_layers, err);
    }
    free(h); free(sc.q); free(sc.s); free(sc.b);
    return rc;
}

int flx_emu_window_logits(const flx_emu_engine *e, const int32_t *tokens, int64_t n,
                          flx_emu_rows_fn rows_fn, void *ctx, flx_pool *pool, flx_error *err)
{
    const flx_llama_config *c = &e->qm->cfg;
    const int64_t D = c->d_model, V = c->n_vocab;
    float *hidden = malloc((size_t)(n > 0 ? n : 1) * (size_t)D * sizeof(float));
    if (!hidden) return flx_fail(err, FLX_ENOMEM, "window of %lld tokens: out of memory", (long long)n);
    int rc = flx_emu_prefill(e, hidden, NULL, tokens, n, pool, err);
    int64_t rows = ((int64_t)128 << 20) / (V * 4);      /* <= 128 MiB of logits at a time */
    if (rows > 32) rows &= ~(int64_t)31;                 /* whole 32-row GEMM tiles */
    if (rows < 1) rows = 1;
    float *logits = rc ? NULL : malloc((size_t)(rows < n ? rows : n) * (size_t)V * sizeof(float));
    if (!rc && !logits) rc = flx_fail(err, FLX_ENOMEM, "window logits: out of memory");
    for (int64_t r0 = 0; r0 < n && !rc; r0 += rows) {
        int64_t nr = n - r0 < rows ? n - r0 : rows;
        rc = flx_emu_head(e, logits, hidden + r0 * D, nr, pool, err);
        if (!rc) rc = rows_fn(ctx, r0, nr, logits);
    }
    free(logits);
    free(hidden);
    return rc;
}
