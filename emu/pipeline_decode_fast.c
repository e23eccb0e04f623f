/* The decode step at interactive speed (docs/kernels.md "Fast decode").
 *
 * The same operations as flx_emu_decode_step_ex (pipeline_decode.c, kept as
 * the simple reference), in the same order and through the same kernels
 * wherever float arithmetic is involved, so the bits are the same.  What
 * differs is only how the work is laid out:
 *  - every INT4 matrix is read in place from the engine's packed copy (two
 *    codes per byte) by flx_emu_gemv_i4p_vnni: half the bytes per token;
 *  - one pool call per step: each of the n threads ("ranks") runs the whole
 *    step on a static share of the work, so it streams its own contiguous
 *    rows of every matrix (two threads reading two sequential streams use
 *    the memory bus far better than threads taking turns on blocks);
 *  - rank r owns KV groups [n_kv r/n, n_kv (r+1)/n): their K, V and Q rows,
 *    RoPE, quantizers, cache write and attention need nothing from other
 *    ranks, so QKV and attention form one stage;
 *  - small whole-vector steps (residual, RMSNorm, activation quantizer, the
 *    last FHT stages) are computed by every rank on its own copy: identical
 *    inputs and operations give identical bits, and no barrier is needed
 *    before the GEMV that reads them;
 *  - four barriers per layer (after attention, O, gate/up, down), spinning
 *    a short while, prefetching the rank's next weight rows meanwhile, then
 *    sleeping on a futex.
 * Every output element is computed by exactly one rank from its own inputs
 * in a fixed order, so the results do not depend on the thread count. */
#include "flx_emu.h"
#include "flx_qmodel.h"
#include "decode_kv.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <sched.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

/* ------------------------------------------------------------------ barrier */

/* Centralized barrier on a generation counter.  Waiters spin (issuing the
 * prefetches of their next rows, then pausing) and after SPIN_ROUNDS sleep
 * on the counter's futex, so more threads than cores still progress. */
typedef struct {
    _Alignas(64) atomic_uint gen;
    _Alignas(64) atomic_int  count;
    atomic_int sleepers;
    int n;
} team_barrier;

enum { SPIN_ROUNDS = 4000, PF_CAP_BYTES = 512 << 10, PF_SEGS = 3 };

/* the next weight rows a rank will stream, prefetched into L2 while it waits */
typedef struct {
    const uint8_t *p[PF_SEGS];
    int64_t n[PF_SEGS];
    int seg;
    int64_t off, left;
} prefetch_plan;

static void pf_reset(prefetch_plan *pf)
{
    memset(pf, 0, sizeof *pf);
    pf->left = PF_CAP_BYTES;
}

static void pf_add(prefetch_plan *pf, const flx_emu_wpack *w, int64_t o0, int64_t o1)
{
    for (int i = 0; i < PF_SEGS; i++)
        if (!pf->p[i]) {
            if (o1 <= o0) return;
            const int64_t line_bytes = w->k64 / 4 * 64;     /* one block of 32 rows */
            pf->p[i] = w->nib + o0 / 32 * line_bytes;
            pf->n[i] = ((o1 + 31) / 32 - o0 / 32) * line_bytes;
            return;
        }
}

/* issue up to `lines` prefetches of the plan; 0 when it is used up */
static int pf_step(prefetch_plan *pf, int lines)
{
    while (lines > 0 && pf->left > 0 && pf->seg < PF_SEGS && pf->p[pf->seg]) {
        if (pf->off >= pf->n[pf->seg]) {
            pf->seg++;
            pf->off = 0;
            continue;
        }
        __builtin_prefetch(pf->p[pf->seg] + pf->off, 0, 2);
        pf->off += 64;
        pf->left -= 64;
        lines--;
    }
    return pf->left > 0 && pf->seg < PF_SEGS && pf->p[pf->seg];
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    _mm_pause();
#endif
}

static void futex_wait(atomic_uint *addr, unsigned val)
{
#if defined(__linux__)
    syscall(SYS_futex, (void *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)addr; (void)val;
    sched_yield();
#endif
}

static void futex_wake_all(atomic_uint *addr)
{
#if defined(__linux__)
    syscall(SYS_futex, (void *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static void barrier_wait(team_barrier *b, prefetch_plan *pf)
{
    if (b->n <= 1) return;
    const unsigned g = atomic_load_explicit(&b->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store(&b->gen, g + 1);                           /* seq_cst: see below */
        if (atomic_load(&b->sleepers)) futex_wake_all(&b->gen);
        return;
    }
    int more = pf != NULL;
    for (int i = 0; i < SPIN_ROUNDS; ) {
        if (atomic_load_explicit(&b->gen, memory_order_acquire) != g) return;
        if (more) more = pf_step(pf, 4);
        else { cpu_relax(); i++; }
    }
    /* sleepers and gen are both seq_cst: either the releaser sees the
     * sleeper, or the sleeper sees the new generation */
    atomic_fetch_add(&b->sleepers, 1);
    while (atomic_load(&b->gen) == g) futex_wait(&b->gen, g);
    atomic_fetch_sub(&b->sleepers, 1);
}

/* ------------------------------------------------------------------ the team */

/* error slots per layer, written by their rank, read by all after a barrier */
enum { SLOT_WK, SLOT_WV, SLOT_WQ, SLOT_WO, SLOT_GATE, SLOT_UP, SLOT_DOWN, SLOT_HEAD, N_SLOTS };
static const char *const slot_name[N_SLOTS] = { "wk", "wv", "wq", "wo", "w_gate", "w_up", "w_down",
                                                "head" };

/* Rows per GEMV call before their dequantization (acc: 4 KiB, stays in L1).
 * Each dequantization reads scales and weight sums and writes outputs away
 * from the weight stream; done every 64 rows those misses cost the stream
 * ~12 % (27 vs 31 GB/s on 2 threads, bench/README.md), every 1024 rows ~3 %. */
enum { CHUNK_ROWS = 1024 };

typedef struct {
    float *x, *h, *gp;      /* own copies: residual stream, norm out, FHT  */
    int8_t *qa;             /* activation codes                            */
    uint8_t *ap;            /* packed activations of the next GEMV         */
    float s, b;             /* their scale and offset                      */
    float *sc;              /* attention: scores [S]                       */
    int32_t *acc_att;       /* [G][S]                                      */
    int8_t *p8;             /* [G][S]                                      */
    int32_t *acc;           /* GEMV sums of a chunk of rows                */
    int32_t *acc_o;         /* [n_heads * hd] (own heads)                  */
    prefetch_plan pf;
    double t_mark;          /* profiling                                   */
    char pad[64];
} rank_state;

typedef struct {
    const flx_emu_decoder *d;
    flx_emu_kv *kv;
    int64_t pos;
    float *logits, *hidden;
    int n;                          /* ranks */
    team_barrier bar;
    int64_t fht_chunk;              /* gate/up rows are split in these      */
    /* shared: every element written by one rank */
    const float *x0;                /* the embedding */
    float *k, *v, *q, *o, *y, *g, *u;
    int8_t *k8, *v8, *q8;
    int64_t *bad;                   /* [N_SLOTS][n] */
    int64_t *att_bad;               /* [n_heads]: -1 no memory, 1 wrapped   */
    rank_state *rk;
    /* the first failure (rank 0 writes it after a barrier all ranks passed) */
    int rc;
    flx_error *err;
} team;

/* rows [lo, hi) of n_rows for rank r of n, in whole blocks of 32 */
static void split_rows(int64_t n_rows, int r, int n, int64_t *lo, int64_t *hi)
{
    const int64_t nb = (n_rows + 31) / 32;
    int64_t a = nb * r / n * 32, b = nb * (r + 1) / n * 32;
    *lo = a < n_rows ? a : n_rows;
    *hi = b < n_rows ? b : n_rows;
}

static void prof_mark(const team *T, rank_state *R, int r, int stage)
{
    flx_emu_decode_prof *p = T->d->prof;
    if (!p) return;
    double t = flx_now_seconds();
    if (r < FLX_EMU_PROF_RANKS && stage >= 0) p->seconds[r][stage] += t - R->t_mark;
    R->t_mark = t;
}

/* the rank's own quantized activation of x[n_in] */
static void act_prep(const team *T, rank_state *R, const float *x, int64_t n_in)
{
    const flx_emu_fp *fp = &T->d->e->opts.fp;
    flx_emu_quant_asym(R->qa, &R->s, &R->b, x, 1, n_in, 4, fp);
    flx_emu_i4p_act(R->ap, R->qa, n_in);
}

/* y[o0..o1) = dequant(W x) of matrix (t, wp) on the rank's activation */
static int64_t gemv_rows(const team *T, rank_state *R, const flx_qtensor *t, const flx_emu_wpack *wp,
                         float *y, int64_t o0, int64_t o1)
{
    const flx_emu_decoder *d = T->d;
    const flx_emu_fp *fp = &d->e->opts.fp;
    int64_t bad = 0;
    for (int64_t a = o0; a < o1; a += CHUNK_ROWS) {
        const int64_t b = a + CHUNK_ROWS < o1 ? a + CHUNK_ROWS : o1;
        bad += flx_emu_gemv_i4p_rows(R->acc, R->ap, wp, a, b, d->bits, d->vnni);
        flx_emu_dequant(y + a, R->acc, &R->s, &R->b, t->scale + a, t->wsum + a, 1, b - a, fp);
    }
    return bad;
}

/* KV group kvh at S keys: QK^T of its G query heads, per head the
 * reference's dequantizer, softmax and P quantizer, then A.V, into the
 * rank's acc_o; every value as flx_emu_decode_step_ex computes it. */
static void att_group(const team *T, rank_state *R, int l, int kvh, int64_t S)
{
    const flx_emu_engine *e = T->d->e;
    const flx_llama_config *c = &e->qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t hd = c->head_dim;
    const int G = c->n_heads / c->n_kv_heads;
    const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
    const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
    const float *as = e->att_scales + ((int64_t)l * 4 + 3) * c->n_heads;
    /* the group's keys (values): S rows of hd bytes, one sequential run */
    const int8_t *kc = T->kv->k + flx_emu_kv_head_offset(T->kv, l, kvh);
    const int8_t *vc = T->kv->v + flx_emu_kv_head_offset(T->kv, l, kvh);
    const int8_t *q = T->q8 + (int64_t)kvh * G * hd;
    int64_t w = T->d->vnni ? flx_emu_qk_i8_vnni(R->acc_att, S, q, hd, kc, hd, G, S, (int)hd, 22)
                           : flx_emu_qk_i8(R->acc_att, S, q, hd, kc, hd, G, S, (int)hd, 22);
    for (int i = 0; i < G; i++) {
        const int64_t h = (int64_t)kvh * G + i;
        flx_emu_dequant_static(R->sc, R->acc_att + i * S, 1, 1, (int)S, &qs[h], &ks[kvh], 1, fp);
        flx_emu_softmax_dec(R->sc, S, fp);
        flx_emu_quant_static(R->p8 + i * S, R->sc, 1, 1, (int)S, &as[h], 1.0f, 8, 0, fp);
    }
    int32_t *o = R->acc_o + (int64_t)kvh * G * hd;
    int64_t w2 = T->d->vnni ? flx_emu_av_u8i8_vnni(o, hd, R->p8, S, 1, vc, hd, G, S, (int)hd, 27)
                            : flx_emu_av_u8i8(o, hd, R->p8, S, 1, vc, hd, G, S, (int)hd, 27);
    for (int i = 0; i < G; i++) T->att_bad[(int64_t)kvh * G + i] = (w < 0 || w2 < 0) ? -1 : (w || w2);
}

/* after a barrier: did any rank report a failure in these slots (and, with
 * heads, in attention)?  Every rank reads the same values, so all agree;
 * rank 0 records the message the reference step would give. */
static int stage_failed(team *T, int r, int layer, int s0, int s1, int heads)
{
    const flx_llama_config *c = &T->d->e->qm->cfg;
    for (int s = s0; s < s1; s++)
        for (int i = 0; i < T->n; i++)
            if (T->bad[(int64_t)s * T->n + i]) {
                if (r == 0)
                    T->rc = flx_fail(T->err, FLX_ENUMERIC, "decode layer %d %s: accumulator overflow",
                                     layer, slot_name[s]);
                return 1;
            }
    for (int h = 0; heads && h < c->n_heads; h++)
        if (T->att_bad[h]) {
            if (r == 0)
                T->rc = flx_fail(T->err, T->att_bad[h] < 0 ? FLX_ENOMEM : FLX_ENUMERIC,
                                 "decode layer %d head %d: attention accumulator failure", layer, h);
            return 1;
        }
    return 0;
}

/* the end of a stage: wait for every rank (prefetching the plan's rows),
 * then 1 when a rank reported a failure in slots [s0, s1) (and attention) */
static int stage_sync(team *T, rank_state *R, int r, int layer, int s0, int s1, int heads)
{
    barrier_wait(&T->bar, &R->pf);
    prof_mark(T, R, r, FLX_EMU_PROF_WAIT);
    return stage_failed(T, r, layer, s0, s1, heads);
}

static void team_run(void *ctx, int64_t r0, int64_t r1, int thread_id)
{
    (void)r1;
    (void)thread_id;
    team *T = ctx;
    const int r = (int)r0, n = T->n;
    rank_state *R = &T->rk[r];
    const flx_emu_decoder *d = T->d;
    const flx_emu_engine *e = d->e;
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t D = c->d_model, hd = c->head_dim, F = c->d_ff, V = c->n_vocab, S = T->pos + 1;
    const int G = c->n_heads / c->n_kv_heads;
    int64_t *bad = T->bad + r;                       /* bad[slot * n] is this rank's */
    /* this rank's shares */
    const int g0 = (int)((int64_t)c->n_kv_heads * r / n), g1 = (int)((int64_t)c->n_kv_heads * (r + 1) / n);
    int64_t o_lo, o_hi, v_lo, v_hi;
    split_rows(D, r, n, &o_lo, &o_hi);
    split_rows(V, r, n, &v_lo, &v_hi);
    const int64_t n_chunks = F / T->fht_chunk;
    const int64_t f_lo = n_chunks * r / n * T->fht_chunk, f_hi = n_chunks * (r + 1) / n * T->fht_chunk;
    const int64_t k_lo = (int64_t)g0 * hd, k_hi = (int64_t)g1 * hd;
    const int64_t q_lo = (int64_t)g0 * G * hd, q_hi = (int64_t)g1 * G * hd;

    prof_mark(T, R, r, -1);
    memcpy(R->x, T->x0, (size_t)D * sizeof *R->x);
    for (int l = 0; l < c->n_layers; l++) {
        const flx_qlayer *L = &qm->layers[l];
        const flx_emu_wpack *pw = d->w + (int64_t)l * N_MAT;
        /* K, V, Q rows of the own KV groups, then their attention */
        flx_emu_rmsnorm_dec(R->h, R->x, L->attn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        act_prep(T, R, R->h, D);
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);
        bad[SLOT_WK * n] = gemv_rows(T, R, &L->wk, &pw[1], T->k, k_lo, k_hi);
        bad[SLOT_WV * n] = gemv_rows(T, R, &L->wv, &pw[2], T->v, k_lo, k_hi);
        bad[SLOT_WQ * n] = gemv_rows(T, R, &L->wq, &pw[0], T->q, q_lo, q_hi);
        prof_mark(T, R, r, FLX_EMU_PROF_QKV);
        flx_emu_dec_rope_quant_store_groups(e, T->kv, l, T->pos, T->k, T->v, T->q, T->k8, T->v8, T->q8,
                                            g0, g1);
        for (int kvh = g0; kvh < g1; kvh++) att_group(T, R, l, kvh, S);
        if (g1 > g0) {
            const float *as = e->att_scales + ((int64_t)l * 4 + 3) * c->n_heads;
            const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
            flx_emu_dequant_static(T->o + q_lo, R->acc_o + q_lo, 1, (g1 - g0) * G, (int)hd,
                                   as + (int64_t)g0 * G, vs + g0, g1 - g0, fp);
        }
        prof_mark(T, R, r, FLX_EMU_PROF_ATT);
        pf_reset(&R->pf);
        pf_add(&R->pf, &pw[3], o_lo, o_hi);
        if (stage_sync(T, R, r, l, SLOT_WK, SLOT_WQ + 1, 1)) return;

        /* O */
        act_prep(T, R, T->o, D);
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);
        bad[SLOT_WO * n] = gemv_rows(T, R, &L->wo, &pw[3], T->y, o_lo, o_hi);
        prof_mark(T, R, r, FLX_EMU_PROF_O);
        pf_reset(&R->pf);
        pf_add(&R->pf, &pw[4], f_lo, f_hi);
        pf_add(&R->pf, &pw[5], f_lo, f_hi);
        if (stage_sync(T, R, r, l, SLOT_WO, SLOT_WO + 1, 0)) return;
        flx_emu_residual(R->x, T->y, R->x, D, fp);
        flx_emu_rmsnorm_dec(R->h, R->x, L->ffn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        act_prep(T, R, R->h, D);
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);

        /* gate and up, SiLU gate, the FHT stages inside the own chunks */
        bad[SLOT_GATE * n] = gemv_rows(T, R, &L->w_gate, &pw[4], T->g, f_lo, f_hi);
        bad[SLOT_UP * n] = gemv_rows(T, R, &L->w_up, &pw[5], T->u, f_lo, f_hi);
        flx_emu_silu_gate(T->g + f_lo, T->g + f_lo, T->u + f_lo, f_hi - f_lo, fp);
        prof_mark(T, R, r, FLX_EMU_PROF_GATEUP);
        for (int64_t a = f_lo; a < f_hi; a += T->fht_chunk) flx_emu_fht_local(T->g + a, T->fht_chunk, fp);
        prof_mark(T, R, r, FLX_EMU_PROF_FHT);
        pf_reset(&R->pf);
        pf_add(&R->pf, &pw[6], o_lo, o_hi);
        if (stage_sync(T, R, r, l, SLOT_GATE, SLOT_UP + 1, 0)) return;
        memcpy(R->gp, T->g, (size_t)F * sizeof *R->gp);
        flx_emu_fht_finish(R->gp, F, T->fht_chunk, e->fht_scale, fp);
        prof_mark(T, R, r, FLX_EMU_PROF_FHT);
        act_prep(T, R, R->gp, F);
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);

        /* down */
        bad[SLOT_DOWN * n] = gemv_rows(T, R, &L->w_down, &pw[6], T->y, o_lo, o_hi);
        prof_mark(T, R, r, FLX_EMU_PROF_DOWN);
        pf_reset(&R->pf);
        if (l + 1 < c->n_layers) {
            const flx_emu_wpack *nw = pw + N_MAT;
            pf_add(&R->pf, &nw[1], k_lo, k_hi);
            pf_add(&R->pf, &nw[2], k_lo, k_hi);
            pf_add(&R->pf, &nw[0], q_lo, q_hi);
        } else if (T->logits) {
            pf_add(&R->pf, &d->w[(int64_t)c->n_layers * N_MAT], v_lo, v_hi);
        }
        if (stage_sync(T, R, r, l, SLOT_DOWN, SLOT_DOWN + 1, 0)) return;
        flx_emu_residual(R->x, T->y, R->x, D, fp);
        for (int64_t i = 0; i < D; i++)
            if (!isfinite(R->x[i])) {       /* every rank sees the same x */
                if (r == 0)
                    T->rc = flx_fail(T->err, FLX_ENUMERIC, "decode layer %d output: non-finite value "
                                     "at %lld", l, (long long)i);
                return;
            }
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);
    }
    if (r == 0 && T->hidden) memcpy(T->hidden, R->x, (size_t)D * sizeof(float));
    if (T->logits) {
        flx_emu_rmsnorm_dec(R->h, R->x, qm->out_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        act_prep(T, R, R->h, D);
        prof_mark(T, R, r, FLX_EMU_PROF_PREP);
        bad[SLOT_HEAD * n] = gemv_rows(T, R, &qm->head, &d->w[(int64_t)c->n_layers * N_MAT], T->logits,
                                       v_lo, v_hi);
        prof_mark(T, R, r, FLX_EMU_PROF_HEAD);
    }
}

/* ------------------------------------------------------------------ the step */

static void *zalloc64(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

/* chunks of the FHT split: one per rank when the rank count is a power of
 * two, else enough (>= 4 per rank) to balance whole chunks; >= 32 rows */
static int64_t fht_chunk_rows(int64_t F, int n)
{
    int64_t nc = 1;
    while (nc < n) nc <<= 1;
    if (nc != n) nc *= 4;
    while (nc > 1 && F / nc < 32) nc >>= 1;
    return F / nc;
}

int flx_emu_decoder_step(const flx_emu_decoder *d, float *logits, float *hidden, flx_emu_kv *kv,
                         int32_t token, int64_t pos, flx_pool *pool, flx_error *err)
{
    const flx_emu_engine *e = d->e;
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const int64_t D = c->d_model, hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd;
    const int64_t F = c->d_ff, V = c->n_vocab, S = pos + 1;
    const int64_t G = c->n_heads / c->n_kv_heads;
    if (pos < 0 || pos >= e->max_pos || pos >= kv->cap)
        return flx_fail(err, FLX_EINVAL, "decode: position %lld outside the table (%lld) or KV "
                        "cache (%lld)", (long long)pos, (long long)e->max_pos, (long long)kv->cap);
    const int n = pool ? flx_pool_threads(pool) : 1;
    const int64_t WI = F > D ? F : D;                       /* widest GEMV input */
    team T;
    memset(&T, 0, sizeof T);
    T.d = d;
    T.kv = kv;
    T.pos = pos;
    T.logits = logits;
    T.hidden = hidden;
    T.n = n;
    T.bar.n = n;
    T.fht_chunk = fht_chunk_rows(F, n);
    T.err = err;
    float *x0 = zalloc64((size_t)D * 4);
    T.k = zalloc64((size_t)KV * 4); T.v = zalloc64((size_t)KV * 4); T.q = zalloc64((size_t)D * 4);
    T.o = zalloc64((size_t)D * 4); T.y = zalloc64((size_t)D * 4);
    T.g = zalloc64((size_t)F * 4); T.u = zalloc64((size_t)F * 4);
    T.k8 = zalloc64((size_t)KV); T.v8 = zalloc64((size_t)KV); T.q8 = zalloc64((size_t)D);
    T.bad = zalloc64((size_t)N_SLOTS * (size_t)n * sizeof *T.bad);
    T.att_bad = zalloc64((size_t)c->n_heads * sizeof *T.att_bad);
    T.rk = zalloc64((size_t)n * sizeof *T.rk);
    int rc = FLX_OK;
    int ok = x0 && T.k && T.v && T.q && T.o && T.y && T.g && T.u && T.k8 && T.v8 && T.q8 && T.bad &&
             T.att_bad && T.rk;
    for (int r = 0; ok && r < n; r++) {
        rank_state *R = &T.rk[r];
        R->x = zalloc64((size_t)D * 4); R->h = zalloc64((size_t)D * 4); R->gp = zalloc64((size_t)F * 4);
        R->qa = zalloc64((size_t)WI); R->ap = zalloc64((size_t)flx_emu_i4p_act_bytes(WI));
        R->sc = zalloc64((size_t)S * 4); R->acc_att = zalloc64((size_t)(G * S) * 4);
        R->p8 = zalloc64((size_t)(G * S)); R->acc = zalloc64((size_t)CHUNK_ROWS * 4);
        R->acc_o = zalloc64((size_t)D * 4);
        ok = R->x && R->h && R->gp && R->qa && R->ap && R->sc && R->acc_att && R->p8 && R->acc && R->acc_o;
    }
    if (!ok) rc = flx_fail(err, FLX_ENOMEM, "decode: out of memory");
    if (!rc) rc = flx_emu_embed(x0, qm->tok_embd, V, D, token, err);
    if (!rc) {
        T.x0 = x0;
        flx_pool_for(n > 1 ? pool : NULL, n, 1, team_run, &T);
        rc = T.rc;
    }
    if (!rc && logits) {
        for (int r = 0; r < n; r++)
            if (T.bad[(int64_t)SLOT_HEAD * n + r]) {
                rc = flx_fail(err, FLX_ENUMERIC, "decode layer %d head: accumulator overflow", c->n_layers);
                break;
            }
    }
    if (!rc && logits) {
        float pad = e->opts.reference_quirks ? 0.0f : -1e32f;   /* as the reference step */
        for (int64_t i = V; i < e->n_vocab_pad; i++) logits[i] = pad;
    }
    if (d->prof) d->prof->steps++;
    for (int r = 0; T.rk && r < n; r++) {
        rank_state *R = &T.rk[r];
        free(R->x); free(R->h); free(R->gp); free(R->qa); free(R->ap); free(R->sc); free(R->acc_att);
        free(R->p8); free(R->acc); free(R->acc_o);
    }
    free(x0); free(T.k); free(T.v); free(T.q); free(T.o); free(T.y); free(T.g); free(T.u);
    free(T.k8); free(T.v8); free(T.q8); free(T.bad); free(T.att_bad); free(T.rk);
    return rc;
}
