/* qsimd.h -- AVX2 forms of quant/'s hot fake-quant loops (private to
 * quant/).  Each gives exactly the bits of the scalar loop it replaces; the
 * argument for every one is written next to it in qsimd.c and
 * tests/quant/test_qsimd.c checks them against the scalar forms on edge
 * cases.  Callers use them only when flx_qsimd_avx2() is 1. */
#ifndef FLX_QSIMD_H
#define FLX_QSIMD_H

#include "flx_quant.h"

/* 1 when the processor has AVX2 (and the build targets x86-64). */
int flx_qsimd_avx2(void);

/* out[k] = flx_dequantize1(s, p, flx_quantize1(s, p, x[k])), k < n:
 * one parameter set, s's scheme and rounding (its granularity unused). */
void flx_qsimd_fq_run(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, float *out);

/* FlexLLM's min/max (strict compares from the sentinels +-1e32, NaN
 * skipped, (0, 0) when nothing is in range).  The same values as the scalar
 * loop; only when the extreme is a zero may its sign differ, which no
 * fake-quant output depends on (qsimd.c). */
void flx_qsimd_min_max(const float *x, int64_t n, float *lo, float *hi);

/* P's unsigned 8-bit static quantizer, in place:
 * p = min(roundf(p / a_s), 255) * a_s. */
void flx_qsimd_u8(float *p, int64_t n, float a_s);

/* One FHT butterfly stage over index bit b of x[0..n), n >= 8 a power of
 * two: (x_i, x_j) <- (x_i + x_j, x_i - x_j), j = i | 2^b; and x[i] / divisor
 * over a row (IEEE division, as the scalar loop). */
void flx_qsimd_fht_stage(float *x, int32_t n, int b);
void flx_qsimd_div(float *x, int32_t n, float divisor);

#endif
