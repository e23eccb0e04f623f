/* quantize_search.c -- `flxemu quantize --search-bits --budget B
 * [--act-budget A]`: a greedy choice of weight bits per tensor under an
 * average-bits budget, and of activation bits per linear input under an
 * average bits-per-multiply budget.
 *
 * Measure (layer-local, one float forward of the calibration windows):
 * for a linear with input X and weight W, the expected output error of a
 * weight quantization Ŵ with independent input channels is
 *     e(b) = sum_i E[x_i^2] * sum_r (ŵ_ri - w_ri)^2
 * (the diagonal of GPTQ's Hessian times the squared weight error).  Every
 * tensor starts at the recipe's bits; upgrades to 8 bits are taken in
 * decreasing order of (e(base) - e(8)) / (extra bits), while the average
 * bits per weight over the projections stays within the budget.
 *
 * Activations (--act-budget): the input x of a layer's q/k/v (one input),
 * o, gate/up (one input) or down is fake-quantized in the same forward at
 * the recipe's bits and at 8; with independent channels the expected error
 * of the linears it feeds is
 *     e_a(b) = sum_i E[(x^_i - x_i)^2] * sum_{linears, r} w_ri^2.
 * Inputs start at the recipe's activation bits and are raised to 8 in
 * decreasing order of (e_a(base) - e_a(8)) / (extra bits x weights they
 * multiply), while the average activation bits per multiply-accumulate
 * (each input's bits weighted by the weights it meets) stays within A. */
#include "quantize_search.h"
#include "cli_quant.h"
#include "cli_svg.h"
#include "flx_gptq.h"
#include "flx_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct search_ctx {
    const flx_rotation_set *rs;
    const flx_recipe *r;
    int32_t head_dim;
    double *ea[2];      /* NULL, or [n_layers][4] per-channel sums of (x^ - x)^2 at the
                           recipe's bits (0) and at 8 (1), d_ff wide */
    float *xq;          /* (seqlen, width) scratch */
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
    if (!c->ea[0]) return FLX_OK;
    for (int b = 0; b < 2; b++) {
        flx_qspec s = kind == FLX_LINEAR_O ? c->r->a_o : c->r->a;   /* as the fake-quant model */
        if (s.gran == FLX_QG_GROUP && s.group_size == 0) s.group_size = c->head_dim;
        s.bits = b ? 8 : c->r->a_bits;
        flx_fake_quant(&s, x, n, n_in, NULL, c->xq);
        double *e = c->ea[b] + ((size_t)layer * 4 + kind_slot(kind)) * c->width;
        for (int64_t t = 0; t < n; t++)
            for (int64_t i = 0; i < n_in; i++) {
                double d = (double)c->xq[t * n_in + i] - x[t * n_in + i];
                e[i] += d * d;
            }
    }
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

typedef struct cand { double gain_per_bit; int idx; double size, e[2]; } cand;

static int by_gain(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->gain_per_bit != y->gain_per_bit) return x->gain_per_bit > y->gain_per_bit ? -1 : 1;
    return x->idx - y->idx;
}

/* The greedy choice of weights and of activation inputs alike: the n items
 * (cs[i].idx == i, size = the weights or multiplies they count for, e[] the
 * estimated error at base bits and at 8) start at base bits; upgrades to 8
 * are taken in decreasing order of error saved per extra bit while the
 * size-weighted average stays within budget (after a refusal a smaller one
 * may still fit).  Sorts cs; path (or NULL) gets the steps. */
static void greedy(cand *cs, int n, int base, double budget, int32_t *bits_of, double *avg, quantize_search_path *path)
{
    double total = 0, bits = 0, e = 0;
    for (int i = 0; i < n; i++) {
        cs[i].gain_per_bit = (cs[i].e[0] - cs[i].e[1]) / (cs[i].size * (8 - base));
        total += cs[i].size;
        bits += cs[i].size * base;
        e += cs[i].e[0];
        bits_of[i] = base;
        if (path) {
            path->err[0][i] = cs[i].e[0];
            path->err[1][i] = cs[i].e[1];
        }
    }
    const double e_start = e;
    if (path) {
        path->n = 0;
        path->item[0] = -1;
        path->avg[0] = bits / total;
        path->est[0] = 1;
    }
    qsort(cs, (size_t)n, sizeof *cs, by_gain);
    for (int k = 0; k < n; k++) {
        double extra = cs[k].size * (8 - base);
        if ((bits + extra) / total > budget + 1e-12) continue;
        bits += extra;
        bits_of[cs[k].idx] = 8;
        if (path) {
            e -= cs[k].e[0] - cs[k].e[1];
            int s = ++path->n;
            path->item[s] = cs[k].idx;
            path->avg[s] = bits / total;
            path->est[s] = e_start > 0 ? e / e_start : 1;
        }
    }
    *avg = bits / total;
}

static double weight_err(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, const double *ex2,
                         flx_error *err, int *rc)
{
    size_t nw = (size_t)n_out * n_in;
    float *wh = malloc(nw * sizeof *wh);
    double e = 0;
    *rc = wh ? cli_rtn_dequant(w, n_out, n_in, wq, wh, err) : flx_fail(err, FLX_ENOMEM, "out of memory");
    for (size_t k = 0; *rc == FLX_OK && k < nw; k++) {
        double d = (double)wh[k] - w[k];
        e += d * d * ex2[k % (size_t)n_in];
    }
    free(wh);
    return e;
}

/* Raises activation inputs to 8 bits under the act budget (see the top). */
static int choose_act_bits(const flx_model *m, const flx_recipe *r, const search_ctx *sc, double act_budget,
                           int32_t *a_bits_of, double *avg_act_bits, quantize_search_path *path, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int L = c->n_layers;
    cand *cs = calloc((size_t)L * 4, sizeof *cs);
    if (!cs) return flx_fail(err, FLX_ENOMEM, "out of memory");
    const int32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    /* per input kind: the linears it feeds, (n_out, n_in) and weight index */
    const int32_t first[4] = {0, 3, 4, 6}, count[4] = {3, 1, 2, 1};
    const int32_t outs[7] = {qd, kvd, kvd, c->d_model, c->d_ff, c->d_ff, c->d_model};
    const int32_t ins[4] = {c->d_model, qd, c->d_model, c->d_ff};
    for (int l = 0; l < L; l++) {
        const flx_llama_layer *Ly = &m->w.layers[l];
        const float *ws[7] = {Ly->wq, Ly->wk, Ly->wv, Ly->wo, Ly->w_gate, Ly->w_up, Ly->w_down};
        for (int k = 0; k < 4; k++) {
            double macs = 0, e[2] = {0, 0};
            int64_t rows = sc->rows[l * 4 + k];
            for (int j = first[k]; j < first[k] + count[k]; j++) {
                macs += (double)outs[j] * ins[k];
                for (int32_t i = 0; i < ins[k]; i++) {
                    double w2 = 0;   /* sum_r w_ri^2 */
                    for (int32_t o = 0; o < outs[j]; o++) w2 += (double)ws[j][(size_t)o * ins[k] + i] * ws[j][(size_t)o * ins[k] + i];
                    for (int b = 0; b < 2; b++)
                        e[b] += rows ? sc->ea[b][((size_t)l * 4 + k) * sc->width + i] / (double)rows * w2 : 0;
                }
            }
            cs[l * 4 + k] = (cand){.idx = l * 4 + k, .size = macs, .e = {e[0], e[1]}};
        }
    }
    greedy(cs, L * 4, r->a_bits, act_budget, a_bits_of, avg_act_bits, path);
    free(cs);
    return FLX_OK;
}

static int path_alloc(quantize_search_path *p, int n, flx_error *err)
{
    p->item = calloc((size_t)n + 1, sizeof *p->item);
    p->avg = calloc((size_t)n + 1, sizeof *p->avg);
    p->est = calloc((size_t)n + 1, sizeof *p->est);
    p->err[0] = calloc((size_t)n, sizeof(double));
    p->err[1] = calloc((size_t)n, sizeof(double));
    if (!p->item || !p->avg || !p->est || !p->err[0] || !p->err[1]) return flx_fail(err, FLX_ENOMEM, "out of memory");
    return FLX_OK;
}

static void path_free(quantize_search_path *p)
{
    free(p->item);
    free(p->avg);
    free(p->est);
    free(p->err[0]);
    free(p->err[1]);
    memset(p, 0, sizeof *p);
    p->n = -1;
}

void quantize_search_trace_free(quantize_search_trace *t)
{
    path_free(&t->w);
    path_free(&t->a);
}

int quantize_search_bits(const flx_model *m, const flx_rotation_set *rs, const flx_recipe *r,
                         const flx_calib_data *cd, double budget, double act_budget, int n_threads,
                         int32_t *w_bits_of, int32_t *a_bits_of, double *avg_bits, double *avg_act_bits,
                         quantize_search_trace *trace, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int L = c->n_layers;
    if (budget > 0 && r->w_bits >= 8)
        return flx_fail(err, FLX_EINVAL, "--search-bits: recipe %s already has %d-bit weights; upgrades go to 8",
                        r->name, (int)r->w_bits);
    if (budget > 0 && !(budget >= r->w_bits && budget <= 8))
        return flx_fail(err, FLX_EINVAL, "--budget %g: must lie between the recipe's %d bits and 8", budget,
                        (int)r->w_bits);
    if (act_budget > 0 && r->a_bits >= 8)
        return flx_fail(err, FLX_EINVAL, "--act-budget: recipe %s has %s activations; upgrades go from fewer bits to 8",
                        r->name, r->a_bits >= 16 ? "float" : "8-bit");
    if (act_budget > 0 && !(act_budget >= r->a_bits && act_budget <= 8))
        return flx_fail(err, FLX_EINVAL, "--act-budget %g: must lie between the recipe's %d bits and 8", act_budget,
                        (int)r->a_bits);
    int32_t width = c->d_ff > c->d_model ? c->d_ff : c->d_model;
    if (c->n_heads * c->head_dim > width) width = c->n_heads * c->head_dim;
    search_ctx sc = { rs, r, c->head_dim, {NULL, NULL}, NULL, calloc((size_t)L * 4 * width, sizeof(double)),
                      calloc((size_t)L * 4, sizeof(int64_t)), width, L };
    cand *cs = calloc((size_t)L * 7, sizeof *cs);
    int rc = sc.ex2 && sc.rows && cs ? FLX_OK : flx_fail(err, FLX_ENOMEM, "out of memory");
    if (trace) {
        memset(trace, 0, sizeof *trace);
        trace->w.n = trace->a.n = -1;
        if (rc == FLX_OK && budget > 0) rc = path_alloc(&trace->w, L * 7, err);
        if (rc == FLX_OK && act_budget > 0) rc = path_alloc(&trace->a, L * 4, err);
    }
    if (rc == FLX_OK && act_budget > 0) {
        sc.ea[0] = calloc((size_t)L * 4 * width, sizeof(double));
        sc.ea[1] = calloc((size_t)L * 4 * width, sizeof(double));
        sc.xq = malloc((size_t)cd->seqlen * width * sizeof(float));
        if (!sc.ea[0] || !sc.ea[1] || !sc.xq) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    flx_llama_hooks hk = { .ctx = &sc, .linear_input = s_linear, .qkv = s_qkv };
    flx_llama_opts o = cli_window_opts(n_threads, cd->seqlen, &hk);
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    if (rc == FLX_OK) rc = flx_llama_init(&st, m, &o, err);
    for (int64_t w = 0; rc == FLX_OK && w < cd->n_windows; w++) {
        flx_llama_reset(&st);
        rc = flx_llama_forward(&st, cd->ids + w * cd->seqlen, cd->seqlen, err);
    }
    flx_llama_free(&st);
    /* e(base) and e(8) per projection */
    flx_wquant wq = cli_wquant_of(r), w8 = wq;
    w8.bits = 8;
    const int32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int32_t outs[7] = {qd, kvd, kvd, c->d_model, c->d_ff, c->d_ff, c->d_model};
    const int32_t ins[7] = {c->d_model, c->d_model, c->d_model, qd, c->d_model, c->d_model, c->d_ff};
    const int slot[7] = {0, 0, 0, 1, 2, 2, 3};
    double *ex2 = malloc((size_t)width * sizeof *ex2);
    if (!ex2 && rc == FLX_OK) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
    for (int l = 0; rc == FLX_OK && budget > 0 && l < L; l++) {
        const flx_llama_layer *Ly = &m->w.layers[l];
        const float *ws[7] = {Ly->wq, Ly->wk, Ly->wv, Ly->wo, Ly->w_gate, Ly->w_up, Ly->w_down};
        for (int i = 0; rc == FLX_OK && i < 7; i++) {
            const double *acc = sc.ex2 + ((size_t)l * 4 + slot[i]) * width;
            int64_t rows = sc.rows[l * 4 + slot[i]];
            for (int32_t k = 0; k < ins[i]; k++) ex2[k] = rows ? acc[k] / (double)rows : 0;
            double e0 = weight_err(ws[i], outs[i], ins[i], &wq, ex2, err, &rc);
            double e8 = rc == FLX_OK ? weight_err(ws[i], outs[i], ins[i], &w8, ex2, err, &rc) : 0;
            cs[l * 7 + i] = (cand){.idx = l * 7 + i, .size = (double)outs[i] * ins[i], .e = {e0, e8}};
        }
    }
    if (rc == FLX_OK && act_budget > 0)
        rc = choose_act_bits(m, r, &sc, act_budget, a_bits_of, avg_act_bits, trace ? &trace->a : NULL, err);
    if (rc == FLX_OK && budget > 0)
        greedy(cs, L * 7, r->w_bits, budget, w_bits_of, avg_bits, trace ? &trace->w : NULL);
    else if (rc == FLX_OK)
        *avg_bits = r->w_bits;   /* weights stay at the recipe's bits */
    free(ex2);
    free(sc.ea[0]);
    free(sc.ea[1]);
    free(sc.xq);
    free(sc.ex2);
    free(sc.rows);
    free(cs);
    return rc;
}

/* ---------------------------------------------------------------- SVG */

static const char *const W_NAMES[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
static const char *const A_NAMES[4] = {"qkv", "o", "gate_up", "down"};

/* One tooltip per point of a path: which item went to 8 bits. */
static char **path_tips(const quantize_search_path *p, int per_layer, const char *const *names)
{
    char **tips = calloc((size_t)p->n + 1, sizeof *tips);
    for (int s = 0; tips && s <= p->n; s++) {
        tips[s] = malloc(160);
        if (!tips[s]) break;
        if (s == 0)
            snprintf(tips[s], 160, "start: every %s at the recipe's bits, average %.3f", per_layer == 7 ? "weight"
                     : "input", p->avg[0]);
        else
            snprintf(tips[s], 160, "step %d: layer %d %s to 8 bits, average %.3f, estimated error %.4f", s,
                     p->item[s] / per_layer, names[p->item[s] % per_layer], p->avg[s], p->est[s]);
    }
    return tips;
}

static void tips_free(char **tips, int n)
{
    for (int s = 0; tips && s <= n; s++) free(tips[s]);
    free(tips);
}

int quantize_search_svg(const char *path, const char *caption, int n_layers, const flx_recipe *r,
                        const int32_t *w_bits_of, const int32_t *a_bits_of, const quantize_search_trace *t,
                        flx_error *err)
{
    const int L = n_layers, left = 50, top = 50, gap = 40, chart_h = 240;
    const quantize_search_path *paths[2] = {&t->w, &t->a};
    const int per[2] = {7, 4};
    const int32_t *bits_of[2] = {w_bits_of, a_bits_of};
    const int32_t base[2] = {r->w_bits, r->a_bits};
    const char *const *names[2] = {W_NAMES, A_NAMES};
    double *vals[2] = {NULL, NULL};
    char **tips[2] = {NULL, NULL};
    int rc = FLX_OK;
    for (int h = 0; h < 2 && rc == FLX_OK; h++) {
        if (paths[h]->n < 0) continue;
        vals[h] = malloc((size_t)L * per[h] * sizeof(double));
        tips[h] = path_tips(paths[h], per[h], names[h]);
        if (!vals[h] || !tips[h] || !tips[h][paths[h]->n]) {
            rc = flx_fail(err, FLX_ENOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < L * per[h]; i++) vals[h][i] = bits_of[h][i];
    }
    cli_svg_heat heat[2];
    int n_heat = 0, width = left;
    static const char *const titles[2] = {"weight bits per projection", "activation bits per linear input"};
    static const char *const ids[2] = {"weights", "activations"};
    static const char *const note[2] = {"est. error saved by 8 bits", "est. error saved by 8 bits"};
    double *saved[2] = {NULL, NULL};
    for (int h = 0; h < 2 && rc == FLX_OK; h++) {
        if (!vals[h]) continue;
        saved[h] = malloc((size_t)L * per[h] * sizeof(double));
        if (!saved[h]) {
            rc = flx_fail(err, FLX_ENOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < L * per[h]; i++) saved[h][i] = paths[h]->err[0][i] - paths[h]->err[1][i];
        heat[n_heat] = (cli_svg_heat){.id = ids[h], .title = titles[h], .fmt = "%.0f", .n_cols = per[h],
                                      .col_labels = names[h], .values = vals[h], .higher_bad = 1,
                                      .lo = base[h], .hi = 8, .note_name = note[h], .note = saved[h]};
        width += cli_svg_heat_width(&heat[n_heat]) + gap;
        n_heat++;
    }
    const int chart_w = 560, chart_top = top + L * CLI_SVG_CELL_H + 70;
    if (width < left + 30 + chart_w + 20) width = left + 30 + chart_w + 20;
    if (width < left + 7 * (int)strlen(caption)) width = left + 7 * (int)strlen(caption);   /* 12 px text */
    const int height = chart_top + chart_h + 70;
    flx_outfile o = {0};
    if (rc == FLX_OK) rc = flx_outfile_open(&o, path, err);
    if (rc == FLX_OK) {
        cli_svg_begin(o.fp, width, height, caption);
        int x = left;
        for (int k = 0; k < n_heat; k++) {
            cli_svg_heat_panel(o.fp, x, top, L, &heat[k], k == 0);
            x += cli_svg_heat_width(&heat[k]) + gap;
        }
        cli_svg_series s[2];
        int n_s = 0;
        static const char *const series_names[2] = {"weights: bits per weight", "activations: bits per multiply"};
        static const char *const colours[2] = {"#4e79a7", "#e15759"};
        for (int h = 0; h < 2; h++)
            if (vals[h])
                s[n_s++] = (cli_svg_series){series_names[h], colours[h], paths[h]->n + 1, paths[h]->avg,
                                            paths[h]->est, (const char *const *)tips[h]};
        cli_svg_chart(o.fp, left + 30, chart_top, chart_w, chart_h, "greedy path: one point per upgrade to 8 bits",
                      "average bits", "estimated output error (1 = recipe's bits)", s, n_s);
        cli_svg_end(o.fp, left, height - 8,
                    "colour: blue = the recipe's bits, red = 8 bits; error: layer-local estimate, not perplexity");
        rc = flx_outfile_commit(&o, err);
    }
    for (int h = 0; h < 2; h++) {
        free(vals[h]);
        free(saved[h]);
        tips_free(tips[h], paths[h]->n);
    }
    return rc;
}
