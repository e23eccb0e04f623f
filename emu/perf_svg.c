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
                x0, y + 1, width * share, s->memory_bound ? "#e15759" : "#4e79a7");
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
    int h = 230 + 18 * n + 120;
    header(fp, 900, h);
    char buf[256];
    snprintf(buf, sizeof buf, "FlexLLM cycle model: %s (%s, %.2f MHz), prompt %lld, decode %lld",
             cfg->name, cfg->dev.name, cfg->tim.clock_mhz, (long long)rep->prompt_tokens,
             (long long)rep->decode_tokens);
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
                 "Prefill: busy cycles per stage as %% of prefill wall time (stages overlap; "
                 "bottleneck %s)", rep->prefill_bottleneck);
        y = bars(fp, y, buf, &rep->prefill, rep->prefill.cycles);
    }
    y = bars(fp, y, "Decode: share of decode time per stage (sequential)", &rep->decode,
             rep->decode.cycles);
    fprintf(fp, "<rect x=\"20\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"#4e79a7\"/>\n", y - 8);
    text(fp, 40, y + 4, 12, "start", "compute-bound");
    fprintf(fp, "<rect x=\"160\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"#e15759\"/>\n",
            y - 8);
    text(fp, 180, y + 4, 12, "start", "memory-bound");
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

int flx_perf_svg_pareto(FILE *fp, const flx_perf_config *base, const flx_dse_result *res,
                        flx_dse_objective obj)
{
    const int W = 900, H = 620;
    const double L = 90, R = 860, T = 70, B = 540;
    header(fp, W, H);
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
        if (p->e2e_s < x_lo) x_lo = p->e2e_s;
        if (p->e2e_s > x_hi) x_hi = p->e2e_s;
        if (p->energy_j < y_lo) y_lo = p->energy_j;
        if (p->energy_j > y_hi) y_hi = p->energy_j;
    }
    if (x_hi <= x_lo) x_hi = x_lo + 1;
    if (y_hi <= y_lo) y_hi = y_lo + 1;
    double xs = nice_step(x_hi - x_lo), ys = nice_step(y_hi - y_lo);
    x_lo = floor(x_lo / xs) * xs;
    x_hi = ceil(x_hi / xs) * xs;
    y_lo = floor(y_lo / ys) * ys;
    y_hi = ceil(y_hi / ys) * ys;
#define PX(v) (L + ((v) - x_lo) / (x_hi - x_lo) * (R - L))
#define PY(v) (B - ((v) - y_lo) / (y_hi - y_lo) * (B - T))
    fprintf(fp, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#444\"/>\n", L, T, R - L, B - T);
    for (double v = x_lo; v <= x_hi + xs / 2; v += xs) {
        snprintf(buf, sizeof buf, "%g", v);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n",
                PX(v), T, PX(v), B);
        text(fp, PX(v), B + 18, 11, "middle", buf);
    }
    for (double v = y_lo; v <= y_hi + ys / 2; v += ys) {
        snprintf(buf, sizeof buf, "%g", v);
        fprintf(fp, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                L, PY(v), R, PY(v));
        text(fp, L - 6, PY(v) + 4, 11, "end", buf);
    }
    text(fp, (L + R) / 2, B + 42, 13, "middle", "end-to-end latency (s)");
    fprintf(fp, "<text x=\"24\" y=\"%.0f\" font-size=\"13\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 24 %.0f)\">energy (J)</text>\n", (T + B) / 2, (T + B) / 2);
    /* at most ~600 sampled points per family keep the file small */
    int64_t count[3] = {0, 0, 0};
    for (int64_t i = 0; i < res->n_points; i++) count[res->points[i].family]++;
    int64_t seen[3] = {0, 0, 0};
    for (int64_t i = 0; i < res->n_points; i++) {
        const flx_dse_point *p = &res->points[i];
        int64_t stride = count[p->family] / 600 + 1;
        if (seen[p->family]++ % stride) continue;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\" fill-opacity=\"0.35\"/>\n",
                PX(p->e2e_s), PY(p->energy_j), palette[p->family]);
    }
    if (res->n_pareto > 0) {
        fputs("<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"", fp);
        for (int64_t k = 0; k < res->n_pareto; k++) {
            const flx_dse_point *p = &res->points[res->pareto[k]];
            fprintf(fp, "%.1f,%.1f ", PX(p->e2e_s), PY(p->energy_j));
        }
        fputs("\"/>\n", fp);
        for (int64_t k = 0; k < res->n_pareto; k++) {
            const flx_dse_point *p = &res->points[res->pareto[k]];
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"black\"/>\n",
                    PX(p->e2e_s), PY(p->energy_j), palette[p->family]);
        }
    }
    for (int f = 0; f < 3; f++) {
        double ly = T + 18 + 20 * f;
        fprintf(fp, "<circle cx=\"%.0f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", R - 250, ly - 4,
                palette[f]);
        if (res->best[f] >= 0) {
            const flx_dse_point *p = &res->points[res->best[f]];
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"none\" "
                        "stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                    PX(p->e2e_s) - 5, PY(p->energy_j) - 5, palette[f]);
            snprintf(buf, sizeof buf, "%s (best: %.2f s, %.0f J)", flx_dse_family_name(f),
                     p->e2e_s, p->energy_j);
        } else {
            snprintf(buf, sizeof buf, "%s (none feasible)", flx_dse_family_name(f));
        }
        text(fp, R - 238, ly, 12, "start", buf);
    }
    text(fp, R - 250, T + 80, 11, "start", "squares: best of each family; line: Pareto front");
#undef PX
#undef PY
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}
