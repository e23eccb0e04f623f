/* Internal helpers of the forward pass and the perplexity code (not API). */
#ifndef FLX_LLAMA_IMPL_H
#define FLX_LLAMA_IMPL_H

#include <stdint.h>

/* exp(x) for x <= 0 by Cody-Waite reduction and a degree-7 polynomial
 * (within 2 ulp of expf; 0 below -87; NaN stays NaN), written with GCC
 * vector extensions so it runs 8 lanes at a time on any x86-64.  The scalar
 * and vector forms round identically, so a value never depends on its
 * position in the array. */
float flx_exp_nonpos(float x);

/* max of x[0..n), n >= 1 (NaNs are skipped unless all are NaN). */
float flx_max_f32(const float *x, int64_t n);

/* out[i] = exp(x[i] - shift) (out may be x) and returns the sum of the
 * out[i] accumulated in double in a fixed order; out may be NULL to only
 * sum.  Requires x[i] - shift <= 0 (shift = max). */
double flx_exp_shift_sum(float *out, const float *x, int64_t n, float shift);

/* g[i] = silu(g[i]) * u[i] with silu(g) = g / (1 + exp(-g)), the exp being
 * flx_exp_nonpos of -|g| (no overflow for any g). */
void flx_silu_mul(float *g, const float *u, int64_t n);

#endif
