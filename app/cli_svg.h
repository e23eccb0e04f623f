/* cli_svg.h -- the SVG pictures of the research commands: heat maps of
 * layers x linears (flxemu analyze, quantize --search-svg) and a line chart
 * with axes (the greedy path of --search-bits).  Plain fprintf into a FILE
 * the caller opened (an flx_outfile, so a failed write leaves no file);
 * every caption and label is escaped. */
#ifndef FLX_CLI_SVG_H
#define FLX_CLI_SVG_H

#include <stdio.h>

/* One heat map: n_rows layers x n_cols linears, values[row * n_cols + col].
 * The colour runs from dark blue over yellow to red across [lo, hi] (the
 * panel's finite min..max when lo >= hi); higher_bad = 0 turns it round.
 * Each cell is <rect x=... class="cell" data-panel=ID data-layer=L
 * data-col=LABEL data-value=V> with the value printed in it (fmt, e.g.
 * "%.3g"); note, when not NULL, adds note_name=note[i] to its tooltip. */
typedef struct cli_svg_heat {
    const char *id, *title, *fmt;
    int n_cols;
    const char *const *col_labels;
    const double *values;
    int higher_bad;
    double lo, hi;
    const char *note_name;
    const double *note;
} cli_svg_heat;

enum { CLI_SVG_CELL_W = 46, CLI_SVG_CELL_H = 18 };

void cli_svg_escaped(FILE *fp, const char *s);
/* <svg ...>, a white background and the caption at the top left. */
void cli_svg_begin(FILE *fp, int width, int height, const char *caption);
/* A panel whose top-left corner is (x0, y0): title, cells, column labels
 * under them, and row labels "L<l>" left of it when row_labels. */
void cli_svg_heat_panel(FILE *fp, int x0, int y0, int n_rows, const cli_svg_heat *h, int row_labels);
int  cli_svg_heat_width(const cli_svg_heat *h);
/* Footer line and </svg>. */
void cli_svg_end(FILE *fp, int x, int y, const char *footer);

/* A line chart: series of points (x[i], y[i]) joined in order, each point a
 * marker with tooltip tips[i] (or none when tips is NULL). */
typedef struct cli_svg_series {
    const char *name, *colour;
    int n;
    const double *x, *y;
    const char *const *tips;
} cli_svg_series;

/* Axes with round ticks over the data's range, in the box (x0, y0, w, h)
 * (the plotting area; labels go outside it), a legend at the top right. */
void cli_svg_chart(FILE *fp, double x0, double y0, double w, double h, const char *title, const char *x_label,
                   const char *y_label, const cli_svg_series *s, int n_series);

#endif
