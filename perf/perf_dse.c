/* perf_dse.c -- design-space exploration over prefill and decode parallelism,
 * comparing three families on the same module formulas, resource model and
 * device limits (docs/perf-model.md, "Design-space exploration"):
 *   hybrid            spatial dataflow prefill (per-linear arrays, pipelined
 *                     per token block) + temporal decode (one shared GEMV
 *                     engine of B x W), two kernels in one bitstream: FlexLLM;
 *   unified temporal  one TP x WP INT4 array and one attention unit reused for
 *                     every operation of both stages, operations in sequence;
 *                     in decode its MACs act as B blocks of W = min(WP, 64);
 *   unified spatial   the dataflow prefill kernel also runs decode, one token
 *                     lane of TP valid, operations in sequence per token. */
#include "flx_perf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *flx_dse_family_name(flx_dse_family f)
{
    switch (f) {
    case FLX_DSE_HYBRID: return "hybrid";
    case FLX_DSE_TEMPORAL: return "unified-temporal";
    case FLX_DSE_SPATIAL: return "unified-spatial";
    }
    return "?";
}

static double hz_of(const flx_perf_config *c) { return c->tim.clock_mhz * 1e6; }

static double handover_s(const flx_perf_config *c, int64_t n)
{
    return 2.0 * 2.0 * c->model.n_layers * (double)n * c->model.kv_dim / (c->dev.pcie_gbps * 1e9);
}

static double cyc(flx_perf_module m, double bpc) { return flx_perf_bw_limit(m, bpc).cycles; }

/* ---------------------------------------------------------------- unified temporal */

/* Prefill with every operation in sequence on one TP x WP array whose
 * weights arrive over the engine's weight ports (the decode view's B/pack). */
static double temporal_prefill_cycles(const flx_perf_config *c, int64_t n, int tp, int wp,
                                      int kp, int vp)
{
    const flx_perf_model *m = &c->model;
    double lam = c->tim.lambda_cycles, bpc = flx_perf_port_bytes_per_cycle(c);
    int64_t L = flx_perf_prefill_pad(c, n);
    double nb = (double)(L / tp);
    int D = m->dim, KV = m->kv_dim, I = m->inter_dim, H = m->n_q_heads;
    int ports = c->dec.block / c->dec.block_pack;
#define LIN(k, o) cyc(flx_perf_pref_linear(tp, wp, wp, ports, (k), (o), lam), bpc)
    double per_block = 3 * cyc(flx_perf_pref_rmsnorm(tp, D), bpc) +
                       3 * cyc(flx_perf_pref_act_quant(tp, D), bpc) +
                       cyc(flx_perf_pref_act_quant(tp, I), bpc) + 2 * LIN(D, KV) + 2 * LIN(D, D) +
                       2 * LIN(D, I) + LIN(I, D) + (KV + D) /* RoPE, quant8 */ +
                       cyc(flx_perf_pref_qk(tp, kp, H, m->head_dim, (int)L, lam), bpc) +
                       2.0 * H * L /* dequant+mask, P quant */ +
                       cyc(flx_perf_pref_softmax(H, (int)L), bpc) +
                       cyc(flx_perf_pref_av(tp, vp, H, m->head_dim, (int)L, lam), bpc) +
                       4.0 * D /* o dequant, residuals, drain */ + I /* SiLU x up */ +
                       cyc(flx_perf_pref_fht(I), bpc);
#undef LIN
    return m->n_layers * (nb * per_block + D);
}

/* The engine's decode view: the TP x WP array's TP x WP MACs regrouped as B
 * blocks of W = min(WP, 64) columns, so each weight port carries W/2 bytes per
 * cycle like the production GEMV; two blocks share a port (blockpack_2) when
 * the device runs out of ports. */
static int temporal_config(const flx_perf_config *base, int tp, int wp, int kp, int vp,
                           flx_perf_config *c, flx_error *err)
{
    *c = *base;
    int w = wp < 64 ? wp : 64, b = tp * wp / w;
    c->pre.tp = tp;
    c->pre.qkvo_wp = c->pre.qkvo_wp_read = wp;
    c->pre.ffn_wp = wp;
    c->pre.ffn_blocks = 1;
    c->pre.k_par = kp;
    c->pre.v_par = vp;
    c->dec.block = b;
    c->dec.block_t = tp < 8 ? tp : 8;
    c->dec.head_par = tp < 8 ? tp : 8;
    c->dec.w_par = w;
    c->dec.unroll = b >= 2 ? 2 : 1;
    c->dec.k_par = kp;
    c->dec.v_par = vp;
    c->dec.block_pack = b + 3 <= base->dev.hbm_ports ? 1 : 2;
    int bw = tp * wp;
    c->dec.kv_dim_pad = bw >= 2 * base->model.kv_dim ? bw : 2 * base->model.kv_dim;
    return flx_perf_config_validate(c, "unified-temporal design", err);
}

/* ---------------------------------------------------------------- unified spatial */

/* One decode step on the prefill kernel: one valid token lane of TP. */
static double spatial_decode_cycles(const flx_perf_config *c, int64_t S)
{
    const flx_perf_model *m = &c->model;
    const flx_perf_prefill_par *p = &c->pre;
    double lam = c->tim.lambda_cycles, bpc = flx_perf_port_bytes_per_cycle(c);
    int D = m->dim, KV = m->kv_dim, I = m->inter_dim, H = m->n_q_heads, tp = p->tp;
    int s = (int)S;
#define QL(k, o) cyc(flx_perf_pref_linear(tp, p->qkvo_wp, p->qkvo_wp_read, 1, (k), (o), lam), bpc)
#define FL(k, o) cyc(flx_perf_pref_linear(tp, p->ffn_wp, p->ffn_wp, p->ffn_blocks, (k), (o), lam), bpc)
    double norm = cyc(flx_perf_pref_rmsnorm(tp, D), bpc), q_d = cyc(flx_perf_pref_act_quant(tp, D), bpc);
    /* attention: per head a store-and-forward chain qk -> softmax -> av */
    double t[3] = {cyc(flx_perf_pref_qk(tp, p->k_par, 1, m->head_dim, s, lam), bpc),
                   3.0 * s, cyc(flx_perf_pref_av(tp, p->v_par, 1, m->head_dim, s, lam), bpc)};
    double tmax = fmax(t[0], fmax(t[1], t[2]));
    double att = t[0] + t[1] + t[2] + (H - 1) * tmax;
    double layer = 2 * norm + 3 * q_d + cyc(flx_perf_pref_act_quant(tp, I), bpc) +
                   QL(D, KV) /* K and V passes run concurrently on kq and vo */ + QL(D, D) +
                   (KV + D) + att + QL(D, D) + 2.0 * D + FL(D, I) /* gate || up */ + I +
                   cyc(flx_perf_pref_fht(I), bpc) + FL(I, D);
    double tail = norm + q_d + FL(D, m->vocab_pad) +
                  flx_perf_dec_sampling(tp, p->ffn_wp, m->vocab_pad, m->top_k,
                                        c->dec.sort_lanes_serial, c->dec.sort_insert_ii,
                                        c->tim.cmp_depth_cycles, c->tim.loop_overhead_cycles,
                                        c->tim.stage_fill_cycles).cycles +
                  (double)D / tp;
#undef QL
#undef FL
    return m->n_layers * layer + tail;
}

/* ---------------------------------------------------------------- one design */

static void finish_point(const flx_perf_config *base, flx_dse_point *pt)
{
    pt->e2e_s = pt->prefill_s + handover_s(base, 0) + pt->decode_s;
    pt->utilization = flx_perf_utilization(base, &pt->res);
    pt->power_w = flx_perf_board_power(base, pt->utilization);
    pt->energy_j = pt->power_w * pt->e2e_s;
}

static double decode_seconds(const flx_perf_config *c, int64_t n, int64_t d, flx_error *err,
                             int *rc)
{
    double total = 0, cy;
    for (int64_t t = 0; t < d && !*rc; t++) {
        *rc = flx_perf_decode_step_seconds(c, n + t + 1, &cy, NULL, err);
        total += cy;
    }
    return total / hz_of(c);
}

int flx_dse_eval(const flx_perf_config *base, flx_dse_family fam, const flx_perf_prefill_par *pre,
                 const flx_perf_decode_par *dec, int64_t prompt_tokens, int64_t decode_tokens,
                 flx_dse_point *pt, flx_error *err)
{
    memset(pt, 0, sizeof *pt);
    pt->family = fam;
    int64_t n = prompt_tokens - 1;
    if (n < 1 || n > base->max_prefill_tokens || decode_tokens < 1 ||
        decode_tokens > base->max_decode_tokens || n + decode_tokens > base->max_total_tokens)
        return flx_fail(err, FLX_EINVAL, "design-space sweep: prompt %lld / decode %lld outside the limits of %s",
                        (long long)prompt_tokens, (long long)decode_tokens, base->name);
    flx_perf_config c = *base;
    int rc = FLX_OK;
    double hz = hz_of(base);
    if (fam == FLX_DSE_TEMPORAL) {
        rc = temporal_config(base, pre->tp, pre->qkvo_wp, pre->k_par, pre->v_par, &c, err);
        if (rc) return rc;
        pt->pre = c.pre;
        pt->dec = c.dec;
        pt->prefill_s = temporal_prefill_cycles(&c, n, pre->tp, pre->qkvo_wp, pre->k_par,
                                                pre->v_par) / hz;
        pt->decode_s = decode_seconds(&c, n, decode_tokens, err, &rc);
        flx_perf_resources r2;
        flx_perf_resources_decode(&c, &pt->res);
        flx_perf_resources_prefill(&c, 0, &r2);
        flx_perf_resources_add(&pt->res, &r2);
    } else {
        c.pre = *pre;
        if (dec) c.dec = *dec;
        rc = flx_perf_config_validate(&c, flx_dse_family_name(fam), err);
        if (rc) return rc;
        pt->pre = c.pre;
        pt->dec = c.dec;
        flx_perf_report *rep = calloc(1, sizeof *rep);
        if (!rep) return flx_fail(err, FLX_ENOMEM, "design-space sweep: out of memory");
        rc = flx_perf_prefill(&c, n, rep, err);
        pt->prefill_s = rep->prefill.cycles / hz;
        free(rep);
        if (rc) return rc;
        if (fam == FLX_DSE_HYBRID) {
            pt->decode_s = decode_seconds(&c, n, decode_tokens, err, &rc);
            flx_perf_resources_of(&c, &pt->res);
        } else {
            double cycles = 0;
            for (int64_t t = 0; t < decode_tokens; t++) cycles += spatial_decode_cycles(&c, n + t + 1);
            pt->decode_s = cycles / hz;
            flx_perf_resources_prefill(&c, 1, &pt->res);
        }
    }
    if (rc) return rc;
    pt->prefill_s += handover_s(base, n);   /* prefill_s includes the KV hand-over */
    finish_point(base, pt);
    return FLX_OK;
}

/* ---------------------------------------------------------------- sweep */

static int next_pow2(int v)
{
    int p = 1;
    while (p < v) p <<= 1;
    return p;
}

typedef struct sort_ctx { const flx_dse_point *pts; } sort_ctx;

static int by_e2e(const void *a, const void *b, void *ctx)
{
    const flx_dse_point *pts = ((const sort_ctx *)ctx)->pts;
    const flx_dse_point *x = &pts[*(const int64_t *)a], *y = &pts[*(const int64_t *)b];
    if (x->e2e_s != y->e2e_s) return x->e2e_s < y->e2e_s ? -1 : 1;
    if (x->energy_j != y->energy_j) return x->energy_j < y->energy_j ? -1 : 1;
    return *(const int64_t *)a < *(const int64_t *)b ? -1 : 1;
}

static int push(flx_dse_result *res, int64_t cap, const flx_perf_config *base,
                const flx_dse_point *pt)
{
    if (!flx_perf_fits(base, &pt->res, NULL, 0)) {
        res->n_rejected++;
        return 0;
    }
    if (res->n_points >= cap) return -1;
    res->points[res->n_points++] = *pt;
    return 0;
}

/* the option grids of the sweep (docs/perf-model.md §7) */
static const int PRE_TP[] = {8, 16}, PRE_WP[] = {16, 24, 32, 48, 64}, PRE_KVP[] = {16, 32};
static const int PRE_FFN[][2] = {{32, 1}, {64, 2}, {96, 2}, {96, 3}, {128, 2}, {128, 4},
                                 {192, 3}, {192, 6}, {256, 4}, {256, 8}};
static const int DEC_B[] = {8, 16, 32}, DEC_W[] = {32, 64, 128}, DEC_HP[] = {4, 8}, DEC_KVP[] = {16, 32, 64};
static const int TMP_TP[] = {2, 4, 8}, TMP_WP[] = {32, 64, 128, 256, 512}, TMP_KVP[] = {16, 32, 64};
enum { NPRE = 2 * 5 * 2 * 10, NDEC = 3 * 3 * 2 * 3, NTMP = 3 * 5 * 3 };

/* The sweep is NPRE + NDEC + NTMP independent tasks (flx_dse_task_run),
 * then one combining step (flx_dse_finish): task i < NPRE times prefill
 * option i (with the unified-spatial decode on it), the next NDEC the
 * hybrid's decode engines, the last NTMP the unified-temporal designs. */
int64_t flx_dse_n_tasks(void) { return (int64_t)NPRE + NDEC + NTMP; }

static int check_limits(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                        flx_error *err)
{
    int64_t n = prompt_tokens - 1;
    if (n < 1 || n > base->max_prefill_tokens || decode_tokens < 1 ||
        decode_tokens > base->max_decode_tokens || n + decode_tokens > base->max_total_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "design-space sweep: a %lld-token prompt and %lld decode tokens exceed the limits of %s "
                        "(prefill <= %d, decode <= %d, total <= %d)",
                        (long long)prompt_tokens, (long long)decode_tokens, base->name,
                        base->max_prefill_tokens, base->max_decode_tokens, base->max_total_tokens);
    return FLX_OK;
}

int flx_dse_check(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens, flx_error *err)
{
    return check_limits(base, prompt_tokens, decode_tokens, err);
}

/* prefill option i (grid order TP, WP, K/V, FFN): timed once, with the
 * spatial decode on it */
static void prefill_option(const flx_perf_config *base, int64_t n, int64_t decode_tokens, int64_t i,
                           flx_dse_task *t)
{
    const size_t f = (size_t)(i % 10), k = (size_t)(i / 10 % 2), b = (size_t)(i / 20 % 5), a = (size_t)(i / 100);
    double hz = hz_of(base);
    flx_error e2;
    flx_perf_config c = *base;
    c.pre = (flx_perf_prefill_par){PRE_TP[a], PRE_WP[b], next_pow2(PRE_WP[b]), PRE_KVP[k],
                                   PRE_KVP[k], PRE_FFN[f][0], PRE_FFN[f][1]};
    if (flx_perf_config_validate(&c, "dse", &e2)) return;
    t->pre = c.pre;
    double cy;
    if (flx_perf_prefill_seconds(&c, n, &cy, NULL, &e2)) return;
    t->prefill_s = cy / hz + handover_s(base, n);
    double sc = 0;
    for (int64_t s = 0; s < decode_tokens; s++) sc += spatial_decode_cycles(&c, n + s + 1);
    t->decode_s = sc / hz;
    flx_perf_resources_prefill(&c, 1, &t->res);
    t->valid = 1;
}

/* decode option i of the hybrid's temporal engine (grid order B, W, HP, K/V) */
static void decode_option(const flx_perf_config *base, int64_t n, int64_t decode_tokens, int64_t i,
                          flx_dse_task *t)
{
    const size_t k = (size_t)(i % 3), h = (size_t)(i / 3 % 2), b = (size_t)(i / 6 % 3), a = (size_t)(i / 18);
    flx_error e2;
    flx_perf_config c = *base;
    int bw = DEC_B[a] * DEC_W[b];
    c.dec = (flx_perf_decode_par){8, DEC_B[a], 2, DEC_HP[h], DEC_W[b], DEC_KVP[k], DEC_KVP[k],
                                  bw >= 1024 ? bw : 1024, 1,
                                  base->dec.attend_current,
                                  base->dec.sort_lanes_serial,
                                  base->dec.sort_insert_ii};
    if (flx_perf_config_validate(&c, "dse", &e2)) return;
    t->dec = c.dec;
    int r = 0;
    t->decode_s = decode_seconds(&c, n, decode_tokens, &e2, &r);
    if (r) return;
    flx_perf_resources_decode(&c, &t->res);
    t->valid = 1;
}

/* unified temporal design i (grid order TP, WP, K/V): one engine for both stages */
static void temporal_option(const flx_perf_config *base, int64_t n, int64_t decode_tokens, int64_t i,
                            flx_dse_task *t)
{
    const size_t k = (size_t)(i % 3), b = (size_t)(i / 3 % 5), a = (size_t)(i / 15);
    flx_error e2;
    flx_perf_prefill_par p = {TMP_TP[a], TMP_WP[b], TMP_WP[b], TMP_KVP[k], TMP_KVP[k], TMP_WP[b], 1};
    if (flx_dse_eval(base, FLX_DSE_TEMPORAL, &p, NULL, n + 1, decode_tokens, &t->pt, &e2)) return;
    t->valid = 1;
}

int flx_dse_task_run(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens, int64_t i,
                     flx_dse_task *t, flx_error *err)
{
    memset(t, 0, sizeof *t);
    int rc = check_limits(base, prompt_tokens, decode_tokens, err);
    if (rc) return rc;
    if (i < 0 || i >= flx_dse_n_tasks())
        return flx_fail(err, FLX_EINVAL, "design-space sweep: task %lld of %lld", (long long)i,
                        (long long)flx_dse_n_tasks());
    const int64_t n = prompt_tokens - 1;
    if (i < NPRE) {
        t->kind = 0;
        prefill_option(base, n, decode_tokens, i, t);
    } else if (i < NPRE + NDEC) {
        t->kind = 1;
        decode_option(base, n, decode_tokens, i - NPRE, t);
    } else {
        t->kind = 2;
        temporal_option(base, n, decode_tokens, i - NPRE - NDEC, t);
    }
    return FLX_OK;
}

static int push_point(flx_dse_result *res, int64_t cap, const flx_perf_config *base, const flx_dse_point *pt,
                      flx_error *err)
{
    if (push(res, cap, base, pt)) return flx_fail(err, FLX_ENOMEM, "design-space sweep: too many points");
    return FLX_OK;
}

/* One design of prefill option po: with decode engine d (hybrid), or, when
 * d is NULL, decoding on the prefill kernel itself (unified spatial). */
static int add_design(const flx_perf_config *base, flx_dse_result *res, int64_t cap, const flx_dse_task *po,
                      const flx_dse_task *d, flx_error *err)
{
    flx_dse_point pt;
    memset(&pt, 0, sizeof pt);
    pt.family = d ? FLX_DSE_HYBRID : FLX_DSE_SPATIAL;
    pt.pre = po->pre;
    pt.prefill_s = po->prefill_s;
    pt.decode_s = d ? d->decode_s : po->decode_s;
    pt.res = po->res;
    if (d) {
        pt.dec = d->dec;
        flx_perf_resources_add(&pt.res, &d->res);
    }
    finish_point(base, &pt);
    return push_point(res, cap, base, &pt, err);
}

/* hybrid: every prefill option with every decode engine; then the unified
 * spatial design (the prefill kernel alone); then the unified temporal
 * designs, each list in task order */
static int add_points(const flx_perf_config *base, const flx_dse_task *tasks, flx_dse_result *res,
                      int64_t cap, flx_error *err)
{
    const flx_dse_task *po = tasks, *dopt = tasks + NPRE, *tmp = tasks + NPRE + NDEC;
    int rc = FLX_OK;
    for (int i = 0; i < NPRE && !rc; i++)
        for (int j = 0; j < NDEC && !rc; j++)
            if (po[i].valid && dopt[j].valid) rc = add_design(base, res, cap, &po[i], &dopt[j], err);
    for (int i = 0; i < NPRE && !rc; i++)
        if (po[i].valid) rc = add_design(base, res, cap, &po[i], NULL, err);
    for (int i = 0; i < NTMP && !rc; i++)
        if (tmp[i].valid) rc = push_point(res, cap, base, &tmp[i].pt, err);
    return rc;
}

static double objective(const flx_dse_point *p, flx_dse_objective obj)
{
    return obj == FLX_DSE_E2E ? p->e2e_s : p->energy_j;
}

/* best per family, then the best of those */
static void pick_best(flx_dse_result *res, flx_dse_objective obj)
{
    for (int64_t i = 0; i < res->n_points; i++) {
        const flx_dse_point *p = &res->points[i];
        int64_t *b = &res->best[p->family];
        if (*b < 0 || objective(p, obj) < objective(&res->points[*b], obj)) *b = i;
    }
    for (int f = 0; f < 3; f++) {
        int64_t b = res->best[f];
        if (b < 0) continue;
        if (res->best_all < 0 ||
            objective(&res->points[b], obj) < objective(&res->points[res->best_all], obj))
            res->best_all = b;
    }
}

/* Pareto front of (e2e, energy): sort by e2e, keep strictly falling energy */
static int pareto_front(flx_dse_result *res, flx_error *err)
{
    int64_t *idx = malloc((size_t)(res->n_points ? res->n_points : 1) * sizeof *idx);
    res->pareto = malloc((size_t)(res->n_points ? res->n_points : 1) * sizeof *res->pareto);
    if (!idx || !res->pareto) {
        free(idx);
        return flx_fail(err, FLX_ENOMEM, "design-space sweep: out of memory");
    }
    for (int64_t i = 0; i < res->n_points; i++) idx[i] = i;
    sort_ctx sc = {res->points};
    qsort_r(idx, (size_t)res->n_points, sizeof *idx, by_e2e, &sc);
    double best_e = INFINITY;
    for (int64_t k = 0; k < res->n_points; k++) {
        flx_dse_point *p = &res->points[idx[k]];
        if (p->energy_j < best_e) {
            best_e = p->energy_j;
            p->pareto = 1;
            res->pareto[res->n_pareto++] = idx[k];
        }
    }
    free(idx);
    return FLX_OK;
}

int flx_dse_finish(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                   flx_dse_objective obj, const flx_dse_task *tasks, flx_dse_result *res, flx_error *err)
{
    memset(res, 0, sizeof *res);
    res->best[0] = res->best[1] = res->best[2] = res->best_all = -1;
    int rc = check_limits(base, prompt_tokens, decode_tokens, err);
    if (rc) return rc;
    const int64_t cap = (int64_t)NPRE * NDEC + NTMP + NPRE;
    res->points = calloc((size_t)cap, sizeof *res->points);
    if (!res->points) rc = flx_fail(err, FLX_ENOMEM, "design-space sweep: out of memory");
    if (!rc) rc = add_points(base, tasks, res, cap, err);
    if (!rc) {
        pick_best(res, obj);
        rc = pareto_front(res, err);
    }
    if (rc) flx_dse_free(res);
    return rc;
}

int flx_dse_run(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                flx_dse_objective obj, flx_dse_result *res, flx_progress *progress,
                flx_error *err)
{
    memset(res, 0, sizeof *res);
    res->best[0] = res->best[1] = res->best[2] = res->best_all = -1;
    int rc = check_limits(base, prompt_tokens, decode_tokens, err);
    if (rc) return rc;
    const int64_t n_tasks = flx_dse_n_tasks();
    flx_dse_task *tasks = calloc((size_t)n_tasks, sizeof *tasks);
    if (!tasks) return flx_fail(err, FLX_ENOMEM, "design-space sweep: out of memory");
    if (progress) progress->total = n_tasks;
    for (int64_t i = 0; i < n_tasks && !rc; i++) {
        rc = flx_dse_task_run(base, prompt_tokens, decode_tokens, i, &tasks[i], err);
        if (progress) flx_progress_update(progress, i + 1);
    }
    if (!rc) rc = flx_dse_finish(base, prompt_tokens, decode_tokens, obj, tasks, res, err);
    free(tasks);
    if (!rc && progress) flx_progress_end(progress);
    return rc;
}

void flx_dse_free(flx_dse_result *res)
{
    if (!res) return;
    free(res->points);
    free(res->pareto);
    res->points = NULL;
    res->pareto = NULL;
    res->n_points = res->n_pareto = 0;
}
