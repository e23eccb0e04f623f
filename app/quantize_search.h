/* quantize_search.h -- greedy per-tensor weight bits under a budget
 * (flxemu quantize --search-bits; docs/quant.md "Mixed precision"). */
#ifndef FLX_QUANTIZE_SEARCH_H
#define FLX_QUANTIZE_SEARCH_H

#include "flx_calib.h"
#include "flx_qmodel.h"

/* Weights (budget > 0): fills w_bits_of [n_layers*7 + 1] with the
 * recipe's bits or 8 for each projection (head entry untouched) so that
 * the average bits per projection weight is at most budget; avg_bits gets
 * the result (the recipe's bits when budget is 0).  Activations
 * (act_budget > 0): fills a_bits_of [n_layers*4 + 1] (flx_qmodel.a_bits_of
 * layout, head entry untouched) with the recipe's activation bits or 8 per
 * linear input so that the average activation bits per multiply-accumulate
 * is at most act_budget; avg_act_bits gets it.  m is the model as it will
 * be quantized (rotated), rs its online rotations or NULL. */
int quantize_search_bits(const flx_model *m, const flx_rotation_set *rs, const flx_recipe *r,
                         const flx_calib_data *cd, double budget, double act_budget, int n_threads,
                         int32_t *w_bits_of, int32_t *a_bits_of, double *avg_bits, double *avg_act_bits,
                         flx_error *err);

#endif
