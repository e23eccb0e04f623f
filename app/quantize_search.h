/* quantize_search.h -- greedy per-tensor weight bits under a budget
 * (flxemu quantize --search-bits; docs/quant.md "Mixed precision"). */
#ifndef FLX_QUANTIZE_SEARCH_H
#define FLX_QUANTIZE_SEARCH_H

#include "flx_calib.h"
#include "flx_qmodel.h"

/* Fills w_bits_of [n_layers*7 + 1] with the recipe's bits or 8 for each
 * projection (head entry untouched) so that the average bits per
 * projection weight is at most budget; avg_bits gets the result.  m is the
 * model as it will be quantized (rotated), rs its online rotations or NULL. */
int quantize_search_bits(const flx_model *m, const flx_rotation_set *rs, const flx_recipe *r,
                         const flx_calib_data *cd, double budget, int n_threads, int32_t *w_bits_of,
                         double *avg_bits, flx_error *err);

#endif
