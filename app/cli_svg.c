/* cli_svg.c -- heat maps and a line chart in plain SVG (cli_svg.h). */
#include "cli_svg.h"

#include <math.h>

void cli_svg_escaped(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", fp);
        else if (*s == '>') fputs("&gt;", fp);
        else if (*s == '&') fputs("&amp;", fp);
        else if (*s == '"') fputs("&quot;", fp);
        else if ((unsigned char)*s >= 0x20) fputc(*s, fp);
    }
}

static void text(FILE *fp, double x, double y, const char *anchor, const char *extra, const char *s)
{
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\"%s%s%s%s>", x, y, anchor ? " text-anchor=\"" : "", anchor ? anchor : "",
            anchor ? "\"" : "", extra ? extra : "");
    cli_svg_escaped(fp, s);
    fputs("</text>\n", fp);
}

void cli_svg_begin(FILE *fp, int width, int height, const char *caption)
{
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                "font-size=\"10\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", width, height);
    text(fp, 40, 14, NULL, " font-size=\"12\"", caption);
}

void cli_svg_end(FILE *fp, int x, int y, const char *footer)
{
    if (footer) text(fp, x, y, NULL, NULL, footer);
    fputs("</svg>\n", fp);
}

/* dark blue (t = 0) -> yellow -> red (t = 1) */
static void colour_of(double t, char *buf, size_t cap)
{
    static const double stops[3][3] = {{40, 60, 140}, {240, 220, 80}, {200, 40, 40}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    int s = t < 0.5 ? 0 : 1;
    double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    snprintf(buf, cap, "rgb(%d,%d,%d)", (int)(stops[s][0] + u * (stops[s + 1][0] - stops[s][0])),
             (int)(stops[s][1] + u * (stops[s + 1][1] - stops[s][1])),
             (int)(stops[s][2] + u * (stops[s + 1][2] - stops[s][2])));
}

int cli_svg_heat_width(const cli_svg_heat *h)
{
    return h->n_cols * CLI_SVG_CELL_W;
}

void cli_svg_heat_panel(FILE *fp, int x0, int y0, int n_rows, const cli_svg_heat *h, int row_labels)
{
    const int cw = CLI_SVG_CELL_W, chh = CLI_SVG_CELL_H;
    double lo = h->lo, hi = h->hi;
    if (!(lo < hi)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (int i = 0; i < n_rows * h->n_cols; i++)
            if (isfinite(h->values[i])) {
                lo = fmin(lo, h->values[i]);
                hi = fmax(hi, h->values[i]);
            }
    }
    text(fp, x0, y0 - 14, NULL, NULL, h->title);
    for (int j = 0; j < h->n_cols; j++)
        text(fp, x0 + j * cw + cw / 2, y0 + n_rows * chh + 12, "middle", NULL, h->col_labels[j]);
    char label[64];
    for (int l = 0; l < n_rows; l++) {
        if (row_labels) {
            snprintf(label, sizeof label, "L%d", l);
            text(fp, x0 - 36, y0 + l * chh + 13, NULL, NULL, label);
        }
        for (int j = 0; j < h->n_cols; j++) {
            int i = l * h->n_cols + j;
            double v = h->values[i];
            double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
            if (!h->higher_bad) t = 1 - t;
            char col[32], num[64];
            colour_of(isfinite(v) ? t : 0, col, sizeof col);
            fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" class=\"cell\" "
                        "data-panel=\"%s\" data-layer=\"%d\" data-col=\"", x0 + j * cw, y0 + l * chh, cw - 1,
                    chh - 1, col, h->id, l);
            cli_svg_escaped(fp, h->col_labels[j]);
            fprintf(fp, "\" data-value=\"%.17g\"><title>L%d ", v, l);
            cli_svg_escaped(fp, h->col_labels[j]);
            fprintf(fp, ": %.4g", v);
            if (h->note) {
                fputs(", ", fp);
                cli_svg_escaped(fp, h->note_name);
                fprintf(fp, " %.4g", h->note[i]);
            }
            fputs("</title></rect>\n", fp);
            snprintf(num, sizeof num, h->fmt, v);
            text(fp, x0 + j * cw + cw / 2, y0 + l * chh + 13, "middle",
                 t > 0.25 && t < 0.75 ? " fill=\"black\"" : " fill=\"white\"", num);
        }
    }
}

/* 1, 2 or 5 times a power of ten, about a fifth of span */
static double nice_step(double span)
{
    double raw = span / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void cli_svg_chart(FILE *fp, double x0, double y0, double w, double h, const char *title, const char *x_label,
                   const char *y_label, const cli_svg_series *s, int n_series)
{
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].x[i]) && isfinite(s[k].y[i])) {
                xl = fmin(xl, s[k].x[i]);
                xh = fmax(xh, s[k].x[i]);
                yl = fmin(yl, s[k].y[i]);
                yh = fmax(yh, s[k].y[i]);
            }
    if (!(xl <= xh)) xl = 0, xh = 1;
    if (!(yl <= yh)) yl = 0, yh = 1;
    if (xh - xl < 1e-9 * (fabs(xl) + 1)) xl -= 0.5, xh += 0.5;
    if (yh - yl < 1e-9 * (fabs(yl) + 1)) yl -= 0.5, yh += 0.5;
    double xs = nice_step(xh - xl), ys = nice_step(yh - yl);
    xl = floor(xl / xs) * xs;
    xh = ceil(xh / xs) * xs;
    yl = floor(yl / ys) * ys;
    yh = ceil(yh / ys) * ys;
#define PX(v) (x0 + ((v) - xl) / (xh - xl) * w)
#define PY(v) (y0 + h - ((v) - yl) / (yh - yl) * h)
    char buf[64];
    text(fp, x0, y0 - 12, NULL, " font-size=\"12\"", title);
    fprintf(fp, "<rect class=\"frame\" x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#444\"/>\n", x0, y0, w, h);
    for (double v = xl; v <= xh + xs / 2; v += xs) {
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n", PX(v), y0, PX(v),
                y0 + h);
        snprintf(buf, sizeof buf, "%g", fabs(v) < xs * 1e-6 ? 0 : v);
        text(fp, PX(v), y0 + h + 14, "middle", NULL, buf);
    }
    for (double v = yl; v <= yh + ys / 2; v += ys) {
        fprintf(fp, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, PY(v), x0 + w,
                PY(v));
        snprintf(buf, sizeof buf, "%g", fabs(v) < ys * 1e-6 ? 0 : v);
        text(fp, x0 - 6, PY(v) + 4, "end", NULL, buf);
    }
    text(fp, x0 + w / 2, y0 + h + 32, "middle", NULL, x_label);
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 %.0f %.0f)\">",
            x0 - 44, y0 + h / 2, x0 - 44, y0 + h / 2);
    cli_svg_escaped(fp, y_label);
    fputs("</text>\n", fp);
    for (int k = 0; k < n_series; k++) {
        fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", s[k].colour);
        for (int i = 0; i < s[k].n; i++) fprintf(fp, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fputs("\"/>\n", fp);
        for (int i = 0; i < s[k].n; i++) {
            fprintf(fp, "<circle class=\"step\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\">", PX(s[k].x[i]),
                    PY(s[k].y[i]), s[k].colour);
            if (s[k].tips) {
                fputs("<title>", fp);
                cli_svg_escaped(fp, s[k].tips[i]);
                fputs("</title>", fp);
            }
            fputs("</circle>\n", fp);
        }
        double ly = y0 + 14 + 16 * k;
        fprintf(fp, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                x0 + w - 190, ly - 4, x0 + w - 170, ly - 4, s[k].colour);
        text(fp, x0 + w - 164, ly, NULL, NULL, s[k].name);
    }
#undef PX
#undef PY
}
