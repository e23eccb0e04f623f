/* Internal helpers of the forward pass and the perplexity code (not API). */
#ifndef FLX_LLAMA_IMPL_H
#define FLX_LLAMA_IMPL_H

#include <stdint.h>

/* exp(x) for x <= 0: SLEEF's Sleef_expf4_u10sse2 (within 1 ulp; pinned, so
 * the same bits on every x86-64), 0 below -87, NaN stays NaN.  Arrays go
 * through the same 4-lane function (tails padded), so a value never
 * depends on its position in the array (vmath.c). */
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

/* exp of n floats x[i] in [-87, 0] (or NaN) into y (y may be x) through
 * the pinned SLEEF functions: path FLX_VM_AUTO takes AVX when the processor
 * has it, FLX_VM_SSE2 / FLX_VM_AVX force one (tests compare them; AVX only
 * on a processor that has it).  All paths give the same bits. */
enum { FLX_VM_AUTO = 0, FLX_VM_SSE2 = 1, FLX_VM_AVX = 2 };
void flx_vm_exp(float *y, const float *x, int64_t n, int path);
/* n_blocks blocks of 8 through Sleef_expf8_u10avx (vmath_avx.c, -mavx) */
void flx_vm_exp8_avx(float *y, const float *x, int64_t n_blocks);
/* the two builds of vmath_body.h behind flx_exp_shift_sum / flx_silu_mul */
double flx_vm_exp_shift_sum_sse2(float *out, const float *x, int64_t n, float shift);
double flx_vm_exp_shift_sum_avx(float *out, const float *x, int64_t n, float shift);
void flx_vm_silu_mul_sse2(float *g, const float *u, int64_t n);
void flx_vm_silu_mul_avx(float *g, const float *u, int64_t n);

#endif
