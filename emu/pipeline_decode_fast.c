/* The decode step at interactive speed (docs/kernels.md "Fast decode").
 *
 * The same operations as flx_emu_decode_step_ex (pipeline_decode.c, kept as
 * the simple reference), in the same order and through the same kernels
 * wherever float arithmetic is involved, so the bits are the same.  What
 * differs is only how the work is laid out:
 *  - every INT4 matrix is packed once (two codes per byte) and the GEMV
 *    reads it in place (flx_emu_gemv_i4p_vnni): half the bytes per token;
 *  - K, V and Q (one input) are one GEMV over the pool, and so are gate and
 *    up, with the SiLU gate applied by the task that made the rows; each
 *    task dequantizes its own rows;
 *  - attention heads are split over the pool, a KV group per task.
 * Every output element is computed by exactly one task from its own inputs
 * in a fixed order, so the results do not depend on the thread count. */
#include "flx_emu.h"
#include "flx_qmodel.h"
#include "decode_kv.h"

#include <stdlib.h>
#include <string.h>

enum { N_MAT = 7 };   /* per layer: wq wk wv wo w_gate w_up w_down */

static const flx_qtensor *layer_tensor(const flx_qlayer *L, int i)
{
    const flx_qtensor *t[N_MAT] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    return t[i];
}

static const flx_qtensor *dec_tensor(const flx_emu_decoder *d, int64_t i)
{
    const flx_qmodel *qm = d->e->qm;
    return i < (int64_t)qm->cfg.n_layers * N_MAT ? layer_tensor(&qm->layers[i / N_MAT], (int)(i % N_MAT))
                                                 : &qm->head;
}

static int vnni_wanted(void)
{
    const char *off = getenv("FLXEMU_NO_VNNI");
    return !(off && *off && strcmp(off, "0")) && flx_emu_vnni_available();
}

/* ------------------------------------------------------------------ weights */

int flx_emu_decoder_init(flx_emu_decoder *d, const flx_emu_engine *e, flx_pool *pool,
                         flx_error *err)
{
    (void)pool;
    memset(d, 0, sizeof *d);
    d->e = e;
    d->vnni = vnni_wanted();
    const int64_t wide = e->qm->cfg.d_model > e->qm->cfg.d_ff ? e->qm->cfg.d_model : e->qm->cfg.d_ff;
    d->bits = 8;
    while (((int64_t)1 << (d->bits - 8)) < wide) d->bits++;    /* L + 8, as the reference */
    if (!e->wpack) return flx_fail(err, FLX_EINVAL, "decoder: the engine has no packed weights");
    const int64_t n_t = (int64_t)e->qm->cfg.n_layers * N_MAT + 1;
    for (int64_t i = 0; i < n_t; i++) {
        const flx_qtensor *t = dec_tensor(d, i);
        if (t->n_in > ((int64_t)1 << 19))
            return flx_fail(err, FLX_EUNSUPPORTED, "decoder: %d inputs per row exceed the packed "
                            "GEMV's exact range (2^19)", t->n_in);
        d->packed_bytes += e->wpack[i].o32 / 32 * e->wpack[i].k64 * 16;
    }
    d->w = e->wpack;
    return FLX_OK;
}

void flx_emu_decoder_free(flx_emu_decoder *d)
{
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------------------ GEMVs */

/* Up to three matrices sharing one quantized input; blocks of rows are the
 * pool's items, each dequantized by its task.  silu: two matrices (gate,
 * up) of equal shape walked together, y0 = silu(gate) * up per block. */
typedef struct {
    const flx_qtensor *t;
    const flx_emu_wpack *wp;
    float *y;
    int32_t *acc;
    int64_t first;          /* first block */
} gemv_mat;

typedef struct {
    gemv_mat m[3];
    int n_mat, silu, vnni, bits;
    int64_t rows, n_blocks;
    const uint8_t *ap;
    float s, b;
    const flx_emu_fp *fp;
    int64_t *bad;           /* [n_mat][n_blocks] out-of-range counts */
} gemv_job;

static void gemv_mat_rows(const gemv_job *j, const gemv_mat *m, int64_t o0, int64_t o1, int64_t *bad)
{
    const flx_qtensor *t = m->t;
    *bad = j->vnni ? flx_emu_gemv_i4p_vnni(m->acc, j->ap, m->wp, o0, o1, j->bits)
                   : flx_emu_gemv_i4p(m->acc, j->ap, m->wp, o0, o1, j->bits);
    flx_emu_dequant(m->y + o0, m->acc + o0, &j->s, &j->b, t->scale + o0, t->wsum + o0, 1, o1 - o0,
                    j->fp);
}

static void gemv_blocks(void *ctx, int64_t b0, int64_t b1, int thread_id)
{
    (void)thread_id;
    const gemv_job *j = ctx;
    for (int64_t b = b0; b < b1; b++) {
        if (j->silu) {
            int64_t o0 = b * j->rows, o1 = o0 + j->rows < j->m[0].t->n_out ? o0 + j->rows : j->m[0].t->n_out;
            gemv_mat_rows(j, &j->m[0], o0, o1, &j->bad[b]);
            gemv_mat_rows(j, &j->m[1], o0, o1, &j->bad[j->n_blocks + b]);
            flx_emu_silu_gate(j->m[0].y + o0, j->m[0].y + o0, j->m[1].y + o0, o1 - o0, j->fp);
            continue;
        }
        int i = 0;
        while (i + 1 < j->n_mat && b >= j->m[i + 1].first) i++;
        const gemv_mat *m = &j->m[i];
        int64_t o0 = (b - m->first) * j->rows;
        int64_t o1 = o0 + j->rows < m->t->n_out ? o0 + j->rows : m->t->n_out;
        gemv_mat_rows(j, m, o0, o1, &j->bad[b]);
    }
}

typedef struct {
    float *x, *h, *k, *v, *q, *o, *g, *u, *sc;
    int8_t *k8, *v8, *q8, *p8, *qa;
    uint8_t *ap;
    int32_t *acc, *acc_att, *acc_o;
    int64_t *bad;
    int64_t n_bad;
} fast_bufs;

/* quantize x[n_in] once, then y_i = dequant(W_i x) for the listed matrices
 * (silu: W_0 gate and W_1 up, y_0 = silu(gate) * up).  names[i] for errors. */
static int gemv_set(const flx_emu_decoder *d, fast_bufs *bf, const float *x, int n_mat,
                    const flx_qtensor *const *t, const flx_emu_wpack *const *wp, float *const *y,
                    int silu, int64_t rows, flx_pool *pool, const char *const *names, int layer,
                    flx_error *err)
{
    const flx_emu_fp *fp = &d->e->opts.fp;
    const int64_t n_in = t[0]->n_in;
    gemv_job j;
    memset(&j, 0, sizeof j);
    flx_emu_quant_asym(bf->qa, &j.s, &j.b, x, 1, n_in, 4, fp);
    flx_emu_i4p_act(bf->ap, bf->qa, n_in);
    j.n_mat = n_mat;
    j.silu = silu;
    j.vnni = d->vnni;
    j.bits = d->bits;
    j.rows = rows;
    j.ap = bf->ap;
    j.fp = fp;
    j.bad = bf->bad;
    int64_t blocks = 0, acc_at = 0;
    for (int i = 0; i < n_mat; i++) {
        j.m[i] = (gemv_mat){ t[i], wp[i], y[i], bf->acc + acc_at, blocks };
        acc_at += t[i]->n_out;
        if (!silu || i == 0) blocks += (t[i]->n_out + rows - 1) / rows;
    }
    j.n_blocks = blocks;
    if (blocks * n_mat > bf->n_bad)
        return flx_fail(err, FLX_EINVAL, "decode: internal block count");
    memset(bf->bad, 0, (size_t)(blocks * n_mat) * sizeof *bf->bad);
    flx_pool_for(pool, blocks, 1, gemv_blocks, &j);
    for (int i = 0; i < n_mat; i++) {
        int64_t b0 = silu ? i * blocks : j.m[i].first;
        int64_t b1 = silu ? b0 + blocks : (i + 1 < n_mat ? j.m[i + 1].first : blocks);
        for (int64_t b = b0; b < b1; b++)
            if (bf->bad[b])
                return flx_fail(err, FLX_ENUMERIC, "decode layer %d %s: accumulator overflow", layer,
                                names[i]);
    }
    return FLX_OK;
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    const flx_emu_engine *e;
    const fast_bufs *bf;
    const int8_t *kc, *vc;
    const float *qs, *ks, *as;
    int64_t S, scratch;     /* keys; per-thread scratch rows of S          */
    int vnni;
    int64_t *bad;           /* [n_heads]: -1 no memory, 1 wrapped, 0 fine */
} att_job;

/* One KV group per item: QK^T of its G query heads against all S keys,
 * then per head the reference's dequantizer, softmax and P quantizer, then
 * A.V of the G heads; every value computed as flx_emu_decode_step_ex does. */
static void att_groups(void *ctx, int64_t g0, int64_t g1, int thread_id)
{
    const att_job *j = ctx;
    const flx_llama_config *c = &j->e->qm->cfg;
    const flx_emu_fp *fp = &j->e->opts.fp;
    const int64_t hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd, S = j->S;
    const int G = c->n_heads / c->n_kv_heads;
    float *sc = j->bf->sc + (int64_t)thread_id * S;
    int32_t *acc = j->bf->acc_att + (int64_t)thread_id * j->scratch;
    int8_t *p8 = j->bf->p8 + (int64_t)thread_id * j->scratch;
    for (int64_t kvh = g0; kvh < g1; kvh++) {
        const int8_t *q = j->bf->q8 + kvh * G * hd, *k = j->kc + kvh * hd, *v = j->vc + kvh * hd;
        int64_t w = j->vnni ? flx_emu_qk_i8_vnni(acc, S, q, hd, k, KV, G, S, (int)hd, 22)
                            : flx_emu_qk_i8(acc, S, q, hd, k, KV, G, S, (int)hd, 22);
        for (int i = 0; i < G; i++) {
            const int64_t h = kvh * G + i;
            flx_emu_dequant_static(sc, acc + i * S, 1, 1, (int)S, &j->qs[h], &j->ks[kvh], 1, fp);
            flx_emu_softmax_dec(sc, S, fp);
            flx_emu_quant_static(p8 + i * S, sc, 1, 1, (int)S, &j->as[h], 1.0f, 8, 0, fp);
        }
        int32_t *o = j->bf->acc_o + kvh * G * hd;
        int64_t w2 = j->vnni ? flx_emu_av_u8i8_vnni(o, hd, p8, S, 1, v, KV, G, S, (int)hd, 27)
                             : flx_emu_av_u8i8(o, hd, p8, S, 1, v, KV, G, S, (int)hd, 27);
        for (int i = 0; i < G; i++) j->bad[kvh * G + i] = (w < 0 || w2 < 0) ? -1 : (w || w2);
    }
}

/* ------------------------------------------------------------------ the step */

static void bufs_free(fast_bufs *b)
{
    free(b->x); free(b->h); free(b->k); free(b->v); free(b->q); free(b->o); free(b->g);
    free(b->u); free(b->sc); free(b->k8); free(b->v8); free(b->q8); free(b->p8); free(b->qa);
    free(b->ap); free(b->acc); free(b->acc_att); free(b->acc_o); free(b->bad);
}

enum { ROWS_LAYER = 32, ROWS_HEAD = 128 };

int flx_emu_decoder_step(const flx_emu_decoder *d, float *logits, float *hidden, flx_emu_kv *kv,
                         int32_t token, int64_t pos, flx_pool *pool, flx_error *err)
{
    const flx_emu_engine *e = d->e;
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t D = c->d_model, hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd;
    const int64_t F = c->d_ff, V = c->n_vocab, S = pos + 1;
    if (pos < 0 || pos >= e->max_pos || pos >= kv->cap)
        return flx_fail(err, FLX_EINVAL, "decode: position %lld outside the table (%lld) or KV "
                        "cache (%lld)", (long long)pos, (long long)e->max_pos, (long long)kv->cap);
    const int n_thr = pool ? flx_pool_threads(pool) : 1;
    const int64_t WI = F > D ? F : D;                       /* widest GEMV input  */
    const int64_t WO = (V > 2 * F ? V : 2 * F) > D + 2 * KV ? (V > 2 * F ? V : 2 * F) : D + 2 * KV;
    int64_t n_bad = WO / ROWS_LAYER + 8;
    if (n_bad < c->n_heads) n_bad = c->n_heads;
    fast_bufs b;
    memset(&b, 0, sizeof b);
    b.x = malloc((size_t)D * 4); b.h = malloc((size_t)D * 4); b.k = malloc((size_t)KV * 4);
    b.v = malloc((size_t)KV * 4); b.q = malloc((size_t)D * 4); b.o = malloc((size_t)D * 4);
    b.g = malloc((size_t)F * 4); b.u = malloc((size_t)F * 4);
    const int64_t G = c->n_heads / c->n_kv_heads;
    b.sc = malloc((size_t)(n_thr * S) * 4); b.acc_att = malloc((size_t)(n_thr * G * S) * 4);
    b.p8 = malloc((size_t)(n_thr * G * S));
    b.k8 = malloc((size_t)KV); b.v8 = malloc((size_t)KV); b.q8 = malloc((size_t)D);
    b.qa = malloc((size_t)WI); b.ap = aligned_alloc(64, (size_t)(flx_emu_i4p_act_bytes(WI) + 63) / 64 * 64);
    b.acc = malloc((size_t)WO * 4); b.acc_o = malloc((size_t)D * 4);
    b.bad = malloc((size_t)n_bad * 2 * sizeof *b.bad);
    b.n_bad = n_bad * 2;
    int rc = FLX_OK;
    if (!b.x || !b.h || !b.k || !b.v || !b.q || !b.o || !b.g || !b.u || !b.sc || !b.acc_att ||
        !b.p8 || !b.k8 || !b.v8 || !b.q8 || !b.qa || !b.ap || !b.acc || !b.acc_o || !b.bad)
        rc = flx_fail(err, FLX_ENOMEM, "decode: out of memory");
    if (!rc) rc = flx_emu_embed(b.x, qm->tok_embd, V, D, token, err);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        const flx_qlayer *L = &qm->layers[l];
        const flx_emu_wpack *pw = d->w + (int64_t)l * N_MAT;
        const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
        const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
        const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
        const float *as = e->att_scales + ((int64_t)l * 4 + 3) * c->n_heads;
        flx_emu_rmsnorm_dec(b.h, b.x, L->attn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        {
            const flx_qtensor *t[3] = { &L->wk, &L->wv, &L->wq };
            const flx_emu_wpack *w[3] = { &pw[1], &pw[2], &pw[0] };
            float *y[3] = { b.k, b.v, b.q };
            const char *nm[3] = { "wk", "wv", "wq" };
            if ((rc = gemv_set(d, &b, b.h, 3, t, w, y, 0, ROWS_LAYER, pool, nm, l, err))) break;
        }
        flx_emu_dec_rope_quant_store(e, kv, l, pos, b.k, b.v, b.q, b.k8, b.v8, b.q8);
        const int8_t *kc = kv->k + (int64_t)l * kv->cap * KV, *vc = kv->v + (int64_t)l * kv->cap * KV;
        /* attention over S = pos + 1 keys, one KV group per task */
        att_job aj = { e, &b, kc, vc, qs, ks, as, S, G * S, d->vnni, b.bad };
        flx_pool_for(pool, c->n_kv_heads, 1, att_groups, &aj);
        for (int h = 0; h < c->n_heads && !rc; h++)
            if (b.bad[h])
                rc = flx_fail(err, b.bad[h] < 0 ? FLX_ENOMEM : FLX_ENUMERIC,
                              "decode layer %d head %d: attention accumulator failure", l, h);
        if (rc) break;
        flx_emu_dequant_static(b.o, b.acc_o, 1, c->n_heads, (int)hd, as, vs, c->n_kv_heads, fp);
        {
            const flx_qtensor *t[1] = { &L->wo };
            const flx_emu_wpack *w[1] = { &pw[3] };
            float *y[1] = { b.h };
            const char *nm[1] = { "wo" };
            if ((rc = gemv_set(d, &b, b.o, 1, t, w, y, 0, ROWS_LAYER, pool, nm, l, err))) break;
        }
        flx_emu_residual(b.x, b.h, b.x, D, fp);
        flx_emu_rmsnorm_dec(b.h, b.x, L->ffn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        {
            const flx_qtensor *t[2] = { &L->w_gate, &L->w_up };
            const flx_emu_wpack *w[2] = { &pw[4], &pw[5] };
            float *y[2] = { b.g, b.u };
            const char *nm[2] = { "w_gate", "w_up" };
            if ((rc = gemv_set(d, &b, b.h, 2, t, w, y, 1, ROWS_LAYER, pool, nm, l, err))) break;
        }
        flx_emu_fht(b.g, F, e->fht_scale, fp);
        {
            const flx_qtensor *t[1] = { &L->w_down };
            const flx_emu_wpack *w[1] = { &pw[6] };
            float *y[1] = { b.h };
            const char *nm[1] = { "w_down" };
            if ((rc = gemv_set(d, &b, b.g, 1, t, w, y, 0, ROWS_LAYER, pool, nm, l, err))) break;
        }
        flx_emu_residual(b.x, b.h, b.x, D, fp);
        for (int64_t i = 0; i < D && !rc; i++)
            if (!isfinite(b.x[i]))
                rc = flx_fail(err, FLX_ENUMERIC, "decode layer %d output: non-finite value at %lld",
                              l, (long long)i);
    }
    if (!rc && hidden) memcpy(hidden, b.x, (size_t)D * sizeof(float));
    if (!rc && logits) {
        flx_emu_rmsnorm_dec(b.h, b.x, qm->out_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        const flx_qtensor *t[1] = { &qm->head };
        const flx_emu_wpack *w[1] = { &d->w[(int64_t)c->n_layers * N_MAT] };
        float *y[1] = { logits };
        const char *nm[1] = { "head" };
        rc = gemv_set(d, &b, b.h, 1, t, w, y, 0, ROWS_HEAD, pool, nm, c->n_layers, err);
    }
    if (!rc && logits) {
        float pad = e->opts.reference_quirks ? 0.0f : -1e32f;   /* as the reference step */
        for (int64_t i = V; i < e->n_vocab_pad; i++) logits[i] = pad;
    }
    bufs_free(&b);
    return rc;
}
