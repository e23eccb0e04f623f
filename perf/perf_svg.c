/* perf_svg.c -- self-contained SVG pictures of the cycle model: the per-stage
 * time breakdown of one run and the DSE scatter with its Pareto front.  Plain
 * fprintf, no plotting dependency; every string from a file is escaped. */
#include "flx_perf.h"

#include <math.h>
#include <string.h>

static void put_escaped(FILE *fp, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default:
            if ((unsigned char)*s >= 0x20) fputc(*s, fp);
        }
    }
}

static void text(FILE *fp, double x, double y, int size, const char *anchor, const char *s)
{
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\">", x, y, size,
            anchor);
    put_escaped(fp, s);
    fputs("</text>\n", fp);
}

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

static void header(FILE *fp, int w, int h)
{
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
                "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            w, h, w, h, w, h);
}

/* Horizontal bars of share (0..1) per stage, sorted by share. */
static double bars(FILE *fp, double y, const char *title, const flx_perf_phase *ph, double wall)
{
    int order[FLX_PERF_MAX_STAGES];
    for (int i = 0; i < ph->n_stages; i++) order[i] = i;
    for (int i = 1; i < ph->n_stages; i++)
        for (int j = i; j > 0 && ph->stage[order[j]].cycles > ph->stage[order[j - 1]].cycles; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    text(fp, 20, y, 15, "start", title);
    y += 10;
    const double x0 = 190, width = 560;
    for (int k = 0; k < ph->n_stages; k++) {
        const flx_perf_stage *s = &ph->stage[order[k]];
        double share = wall > 0 ? s->cycles / wall : 0;
        if (share > 1) share = 1;
        char label[64];
        text(fp, x0 - 8, y + 12, 12, "end", s->name);
        fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%s\"/>\n",
                x0, y + 1, width * share,
                s->memory_bound ? "#e15759" : s->hbm_bytes > 0 ? "#4e79a7" : "#bab0ac");
        snprintf(label, sizeof label, "%.1f%%  %.1f Mcyc", 100.0 * s->cycles / wall,
                 s->cycles / 1e6);
        text(fp, x0 + width * share + 6, y + 12, 11, "start", label);
        y += 18;
    }
    return y + 16;
}

int flx_perf_svg_breakdown(FILE *fp, const flx_perf_config *cfg, const flx_perf_report *rep)
{
    int n = rep->prefill.n_stages + rep->decode.n_stages;
    int h = 230 + 18 * n + 150;
    header(fp, 900, h);
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s (%s, %.2f MHz%s), prompt %lld, decode %lld",
             rep->hmt ? "HMT long-context prefill + decode: " : "FlexLLM cycle model: ", cfg->name,
             cfg->dev.name, cfg->tim.clock_mhz,
             cfg->dev.kind == FLX_PERF_DEV_V80 ? ", PROJECTION" : "",
             (long long)rep->prompt_tokens, (long long)rep->decode_tokens);
    text(fp, 20, 28, 17, "start", buf);
    /* end-to-end timeline */
    double y = 60, x0 = 20, width = 860;
    text(fp, x0, y, 15, "start", "End-to-end timeline");
    y += 10;
    struct { const char *name; double s; } seg[] = {
        {"prefill", rep->prefill_s}, {"KV hand-over", rep->handover_s}, {"decode", rep->decode_s}};
    double x = x0;
    for (int i = 0; i < 3; i++) {
        double w = rep->e2e_s > 0 ? width * seg[i].s / rep->e2e_s : 0;
        fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"26\" fill=\"%s\"/>\n", x,
                y, w, palette[i * 2]);
        if (w > 70) {
            snprintf(buf, sizeof buf, "%s %.3f s", seg[i].name, seg[i].s);
            fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"white\">", x + 5,
                    y + 17);
            put_escaped(fp, buf);
            fputs("</text>\n", fp);
        }
        x += w;
    }
    y += 44;
    snprintf(buf, sizeof buf,
             "TTFT %.3f s, decode %.1f tokens/s, end-to-end %.3f s, %.1f W, %.0f J", rep->ttft_s,
             rep->decode_tokens_per_s, rep->e2e_s, rep->power_w, rep->energy_j);
    text(fp, x0, y, 13, "start", buf);
    y += 32;
    if (rep->prefill.n_stages > 0) {
        snprintf(buf, sizeof buf,
                 "%s: busy cycles per stage as %% of prefill wall time (stages overlap; "
                 "bottleneck %s)", rep->hmt ? "HMT prefill (all segments)" : "Prefill",
                 rep->prefill_bottleneck);
        y = bars(fp, y, buf, &rep->prefill, rep->prefill.cycles);
    }
    y = bars(fp, y, "Decode: share of decode time per stage (sequential)", &rep->decode,
             rep->decode.cycles);
    fprintf(fp, "<rect x=\"20\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"#4e79a7\"/>\n", y - 8);
    text(fp, 40, y + 4, 12, "start", "compute-bound");
    fprintf(fp, "<rect x=\"160\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"#e15759\"/>\n",
            y - 8);
    text(fp, 180, y + 4, 12, "start", "memory-bound");
    fprintf(fp, "<rect x=\"300\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"#bab0ac\"/>\n",
            y - 8);
    text(fp, 320, y + 4, 12, "start", "on-chip only (no HBM traffic)");
    y += 20;
    text(fp, 20, y + 4, 11, "start",
         "bound: HBM bytes on the busiest port / sustained bytes per cycle of one port vs the "
         "loop-structure cycles (bandwidth model, docs/perf-model.md 2.5)");
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* ---------------------------------------------------------------- Pareto */

static double nice_step(double span)
{
    double raw = span / 5, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* One scatter panel of the points inside [x_lo, x_hi] x [y_lo, y_hi]. */
typedef struct panel { double L, R, T, B, x_lo, x_hi, y_lo, y_hi; } panel;

static void draw_panel(FILE *fp, const flx_dse_result *res, panel pn, const char *title,
                       int legend, const flx_dse_mark *marks, int n_marks)
{
    char buf[256];
    double xs = nice_step(pn.x_hi - pn.x_lo), ys = nice_step(pn.y_hi - pn.y_lo);
    pn.x_lo = floor(pn.x_lo / xs) * xs;
    pn.x_hi = ceil(pn.x_hi / xs) * xs;
    pn.y_lo = floor(pn.y_lo / ys) * ys;
    pn.y_hi = ceil(pn.y_hi / ys) * ys;
#define PX(v) (pn.L + ((v) - pn.x_lo) / (pn.x_hi - pn.x_lo) * (pn.R - pn.L))
#define PY(v) (pn.B - ((v) - pn.y_lo) / (pn.y_hi - pn.y_lo) * (pn.B - pn.T))
#define INSIDE(p) ((p)->e2e_s >= pn.x_lo && (p)->e2e_s <= pn.x_hi && \
                   (p)->energy_j >= pn.y_lo && (p)->energy_j <= pn.y_hi)
    text(fp, pn.L, pn.T - 12, 14, "start", title);
    fprintf(fp, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#444\"/>\n", pn.L, pn.T, pn.R - pn.L, pn.B - pn.T);
    for (double v = pn.x_lo; v <= pn.x_hi + xs / 2; v += xs) {
        snprintf(buf, sizeof buf, "%g", v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n",
                PX(v), pn.T, PX(v), pn.B);
        text(fp, PX(v), pn.B + 18, 11, "middle", buf);
    }
    for (double v = pn.y_lo; v <= pn.y_hi + ys / 2; v += ys) {
        snprintf(buf, sizeof buf, "%g", v);
        fprintf(fp, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                pn.L, PY(v), pn.R, PY(v));
        text(fp, pn.L - 6, PY(v) + 4, 11, "end", buf);
    }
    text(fp, (pn.L + pn.R) / 2, pn.B + 40, 13, "middle", "end-to-end latency (s)");
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"13\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 %.0f %.0f)\">energy (J)</text>\n",
            pn.L - 60, (pn.T + pn.B) / 2, pn.L - 60, (pn.T + pn.B) / 2);
    /* at most ~600 sampled points per family keep the file small */
    int64_t count[3] = {0, 0, 0}, seen[3] = {0, 0, 0};
    for (int64_t i = 0; i < res->n_points; i++)
        if (INSIDE(&res->points[i])) count[res->points[i].family]++;
    for (int64_t i = 0; i < res->n_points; i++) {
        const flx_dse_point *p = &res->points[i];
        if (!INSIDE(p)) continue;
        int64_t stride = count[p->family] / 600 + 1;
        if (seen[p->family]++ % stride) continue;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\" fill-opacity=\"0.35\"/>\n",
                PX(p->e2e_s), PY(p->energy_j), palette[p->family]);
    }
    int started = 0;
    for (int64_t k = 0; k < res->n_pareto; k++) {
        const flx_dse_point *p = &res->points[res->pareto[k]];
        if (!INSIDE(p)) continue;
        if (!started) fputs("<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"", fp);
        started = 1;
        fprintf(fp, "%.1f,%.1f ", PX(p->e2e_s), PY(p->energy_j));
    }
    if (started) fputs("\"/>\n", fp);
    for (int64_t k = 0; k < res->n_pareto; k++) {
        const flx_dse_point *p = &res->points[res->pareto[k]];
        if (!INSIDE(p)) continue;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"black\"/>\n",
                PX(p->e2e_s), PY(p->energy_j), palette[p->family]);
    }
    for (int f = 0; f < 3; f++) {
        if (res->best[f] >= 0 && INSIDE(&res->points[res->best[f]])) {
            const flx_dse_point *p = &res->points[res->best[f]];
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"none\" "
                        "stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                    PX(p->e2e_s) - 5, PY(p->energy_j) - 5, palette[f]);
        }
        if (!legend) continue;
        /* legend in the right margin, off the data */
        double lx = pn.R + 24, ly = pn.T + 18 + 36 * f;
        fprintf(fp, "<circle cx=\"%.0f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", lx, ly - 4,
                palette[f]);
        text(fp, lx + 12, ly, 12, "start", flx_dse_family_name(f));
        if (res->best[f] >= 0) {
            const flx_dse_point *p = &res->points[res->best[f]];
            snprintf(buf, sizeof buf, "best: %.2f s, %.0f J", p->e2e_s, p->energy_j);
        } else {
            snprintf(buf, sizeof buf, "none feasible");
        }
        text(fp, lx + 12, ly + 15, 11, "start", buf);
    }
    for (int k = 0; k < n_marks; k++) {
        const flx_dse_point *p = &marks[k].pt;
        if (INSIDE(p)) {
            double x = PX(p->e2e_s), y = PY(p->energy_j);
            fprintf(fp, "<path d=\"M %.1f %.1f l 3 7 l 7 0 l -6 4 l 2 7 l -6 -4 l -6 4 l 2 -7 "
                        "l -6 -4 l 7 0 z\" fill=\"%s\" stroke=\"black\"/>\n",
                    x, y - 9, k ? "#b07aa1" : "#edc948");
            if (!legend) text(fp, x + 10, y - 8, 11, "start", marks[k].label);
        }
        if (!legend) continue;
        double lx = pn.R + 24, ly = pn.T + 18 + 36 * 3 + 36 * k;
        fprintf(fp, "<path d=\"M %.1f %.1f l 3 7 l 7 0 l -6 4 l 2 7 l -6 -4 l -6 4 l 2 -7 l -6 -4 "
                    "l 7 0 z\" fill=\"%s\" stroke=\"black\"/>\n",
                lx, ly - 13, k ? "#b07aa1" : "#edc948");
        text(fp, lx + 12, ly, 12, "start", marks[k].label);
        snprintf(buf, sizeof buf, "%.2f s, %.0f J", p->e2e_s, p->energy_j);
        text(fp, lx + 12, ly + 15, 11, "start", buf);
    }
    if (legend) {
        double ly = pn.T + 18 + 36 * (3 + n_marks);
        text(fp, pn.R + 14, ly, 11, "start", "squares: best of each family");
        text(fp, pn.R + 14, ly + 15, 11, "start", "line: Pareto front");
    }
#undef PX
#undef PY
#undef INSIDE
}

int flx_perf_svg_pareto(FILE *fp, const flx_perf_config *base, const flx_dse_result *res,
                        flx_dse_objective obj, const flx_dse_mark *marks, int n_marks)
{
    header(fp, 1100, 1130);
    char buf[256];
    snprintf(buf, sizeof buf, "Design space on %s: %lld feasible designs, Pareto front (objective %s)",
             base->dev.name, (long long)res->n_points, obj == FLX_DSE_E2E ? "e2e" : "energy");
    text(fp, 20, 30, 16, "start", buf);
    if (res->n_points == 0) {
        text(fp, 20, 60, 13, "start", "no feasible design");
        fputs("</svg>\n", fp);
        return ferror(fp) ? -1 : 0;
    }
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int64_t i = 0; i < res->n_points; i++) {
        const flx_dse_point *p = &res->points[i];
        x_lo = fmin(x_lo, p->e2e_s);
        x_hi = fmax(x_hi, p->e2e_s);
        y_lo = fmin(y_lo, p->energy_j);
        y_hi = fmax(y_hi, p->energy_j);
    }
    if (x_hi <= x_lo) x_hi = x_lo + 1;
    if (y_hi <= y_lo) y_hi = y_lo + 1;
    for (int k = 0; k < n_marks; k++) {
        x_lo = fmin(x_lo, marks[k].pt.e2e_s);
        x_hi = fmax(x_hi, marks[k].pt.e2e_s);
        y_lo = fmin(y_lo, marks[k].pt.energy_j);
        y_hi = fmax(y_hi, marks[k].pt.energy_j);
    }
    draw_panel(fp, res, (panel){100, 830, 80, 520, x_lo, x_hi, y_lo, y_hi}, "All designs", 1,
               marks, n_marks);
    /* zoom on the front: up to twice the best latency and energy */
    double zx = x_lo * 2 > x_lo + 1e-9 ? x_lo * 2 : x_lo + 1, zy = y_lo * 2 > y_lo ? y_lo * 2 : y_lo + 1;
    draw_panel(fp, res, (panel){100, 830, 620, 1060, x_lo, zx, y_lo, zy},
               "Zoom: latency and energy up to 2x the best", 0, marks, n_marks);
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* ---------------------------------------------------------------- claims */

/* One row per claim: the paper's ratio (black bar) and the model's ratio
 * under each GPU baseline (coloured dots) on a log axis 0.01x .. 1000x; the
 * legend sits above the plot, off the data. */
int flx_perf_svg_claims(FILE *fp, const flx_perf_claim *c, int n)
{
    int row_h = 26, top = 110, h = top + row_h * n + 60;
    header(fp, 1100, h);
    text(fp, 20, 28, 17, "start",
         "FlexLLM headline claims: paper vs this cycle model under each A100 baseline");
    text(fp, 20, 48, 12, "start",
         "ratio > 1 favours the FPGA; V80 rows are projections; alt = an alternative reading "
         "of the 23.23x claim, not the assumed one");
    const double x0 = 560, x1 = 1080, lo = -2, hi = 4;   /* log10 range */
#define LX(v) (x0 + (log10(v) - lo) / (hi - lo) * (x1 - x0))
    double ly = 72;
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"4\" height=\"14\" fill=\"black\"/>\n", x0,
            ly - 11);
    text(fp, x0 + 10, ly, 12, "start", "paper");
    int nb = n > 0 ? c[0].n_base : 0;
    for (int b = 0; b < nb; b++) {
        double lx = x0 + 70 + 150 * b;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", lx, ly - 4,
                palette[b % 10]);
        text(fp, lx + 9, ly, 12, "start", c[0].base[b]);
    }
    for (int e = (int)lo; e <= (int)hi; e++) {
        char buf[32];
        double v = pow(10, e);
        snprintf(buf, sizeof buf, "%gx", v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", LX(v),
                top - 8, LX(v), top + row_h * n, e == 0 ? "#444" : "#ddd");
        text(fp, LX(v), top + row_h * n + 18, 11, "middle", buf);
    }
    for (int i = 0; i < n; i++) {
        double y = top + row_h * i + 14;
        char label[160];
        snprintf(label, sizeof label, "%s%s [%s]%s", c[i].claim, c[i].alternative ? " (alt)" : "",
                 c[i].design, c[i].projection ? " PROJECTION" : "");
        text(fp, 20, y + 4, 11, "start", label);
        if (c[i].paper > 0) {
            double px = LX(c[i].paper);
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"4\" height=\"16\" fill=\"black\"/>\n",
                    px - 2, y - 8);
        }
        for (int b = 0; b < c[i].n_base; b++) {
            double v = c[i].model[b];
            if (!(v > 0)) continue;
            if (v < 1e-2) v = 1e-2;
            if (v > 1e3) v = 1e3;
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" fill-opacity=\"0.85\"/>\n",
                    LX(v), y, palette[b % 10]);
        }
    }
#undef LX
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}
