/* The AVX build of the float forward's vector math (vmath_body.h), compiled
 * with -mavx (ref/meson.build) and called only when the processor has AVX.
 * Sleef_expf8_u10avx and the SSE2 family vmath.c pins use no FMA and give
 * the same bits on every input the loops pass them ([-87, 0] and NaN;
 * checked over all of them by bench/bench_vmath.c), so which build runs
 * never changes a result. */
#include "llama_impl.h"

#include <sleef.h>
#include <string.h>

void flx_vm_exp8_avx(float *y, const float *x, int64_t n_blocks)
{
    for (int64_t b = 0; b < n_blocks; b++)
        _mm256_storeu_ps(y + 8 * b, Sleef_expf8_u10avx(_mm256_loadu_ps(x + 8 * b)));
}

static void exp_blocks_avx(float *y, const float *x, int n)
{
    flx_vm_exp8_avx(y, x, n / 8);
    if (n % 8) flx_vm_exp(y + n / 8 * 8, x + n / 8 * 8, n % 8, FLX_VM_SSE2);
}

#define VM_SUFFIX avx
#define VM_EXP_BLOCKS(y, x, n) exp_blocks_avx(y, x, n)
#include "vmath_body.h"
