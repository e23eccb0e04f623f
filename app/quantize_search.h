/* quantize_search.h -- greedy per-tensor weight bits under a budget
 * (flxemu quantize --search-bits; docs/quant.md "Mixed precision"). */
#ifndef FLX_QUANTIZE_SEARCH_H
#define FLX_QUANTIZE_SEARCH_H

#include "flx_calib.h"
#include "flx_qmodel.h"

/* What the search measured and chose, for --search-svg.  err[0][i] and
 * err[1][i]: the estimated output error of item i (projection l*7 + j, or
 * linear input l*4 + k) at the recipe's bits and at 8 bits (the measures at
 * the top of quantize_search.c).  The greedy path has n + 1 points: point
 * 0 is every item at the recipe's bits, point s > 0 follows the s-th
 * upgrade, of item[s]; avg[s] is then the average bits, est[s] the summed
 * estimated error over every item divided by point 0's (1 = no upgrade).
 * n = -1: that half was not searched. */
typedef struct quantize_search_path {
    int n;
    int *item;
    double *avg, *est;
    double *err[2];
} quantize_search_path;

typedef struct quantize_search_trace {
    quantize_search_path w, a;   /* weights (n_layers*7 items), activation inputs (n_layers*4) */
} quantize_search_trace;

/* Weights (budget > 0): fills w_bits_of [n_layers*7 + 1] with the
 * recipe's bits or 8 for each projection (head entry untouched) so that
 * the average bits per projection weight is at most budget; avg_bits gets
 * the result (the recipe's bits when budget is 0).  Activations
 * (act_budget > 0): fills a_bits_of [n_layers*4 + 1] (flx_qmodel.a_bits_of
 * layout, head entry untouched) with the recipe's activation bits or 8 per
 * linear input so that the average activation bits per multiply-accumulate
 * is at most act_budget; avg_act_bits gets it.  m is the model as it will
 * be quantized (rotated), rs its online rotations or NULL.  trace, when not
 * NULL, gets the measures and the path (free with
 * quantize_search_trace_free, also after an error). */
int quantize_search_bits(const flx_model *m, const flx_rotation_set *rs, const flx_recipe *r,
                         const flx_calib_data *cd, double budget, double act_budget, int n_threads,
                         int32_t *w_bits_of, int32_t *a_bits_of, double *avg_bits, double *avg_act_bits,
                         quantize_search_trace *trace, flx_error *err);

void quantize_search_trace_free(quantize_search_trace *t);

/* The picture of a search: chosen weight bits (layers x 7 projections) and
 * activation bits (layers x 4 inputs) as heat maps, and the greedy path
 * (average bits against relative estimated error), written atomically. */
int quantize_search_svg(const char *path, const char *caption, int n_layers, const flx_recipe *r,
                        const int32_t *w_bits_of, const int32_t *a_bits_of, const quantize_search_trace *t,
                        flx_error *err);

#endif
