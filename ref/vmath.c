/* Vector math of the float forward (llama_impl.h): the exponential of
 * softmax-style reductions and SwiGLU's silu, on SLEEF.
 *
 * The SLEEF family is pinned: Sleef_expf4_u10sse2 (4 lanes, 1.0-ulp bound;
 * every x86-64 has SSE2), or Sleef_expf8_u10avx (vmath_avx.c) where the
 * processor has AVX, which gives the same bits.  Neither uses FMA, so the
 * float path gives the same bits on every x86-64 machine (SLEEF's own
 * dispatcher could pick its AVX2 variant, which fuses and can round
 * differently).  Inputs below -87 never reach SLEEF: exp is taken as 0
 * there (< 2^-125; callers sum these values or add them to 1).  Every
 * element, tails included, goes through the same function, so a value never
 * depends on its position in an array or on the path. */
#include "llama_impl.h"

#include <sleef.h>
#include <string.h>

#define X_MIN -87.0f

#if defined(__x86_64__)
static void exp4_sse2(float *y, const float *x)
{
    _mm_storeu_ps(y, Sleef_expf4_u10sse2(_mm_loadu_ps(x)));
}
static int have_avx(void) { return __builtin_cpu_supports("avx"); }
#else
static void exp4_sse2(float *y, const float *x)
{
    for (int i = 0; i < 4; i++) y[i] = Sleef_expf_u10(x[i]);
}
static int have_avx(void) { return 0; }
void flx_vm_exp8_avx(float *y, const float *x, int64_t n_blocks) { (void)y; (void)x; (void)n_blocks; }
double flx_vm_exp_shift_sum_avx(float *out, const float *x, int64_t n, float shift)
{
    (void)out; (void)x; (void)n; (void)shift;
    return 0.0;
}
void flx_vm_silu_mul_avx(float *g, const float *u, int64_t n) { (void)g; (void)u; (void)n; }
#endif

void flx_vm_exp(float *y, const float *x, int64_t n, int path)
{
    int avx = path == FLX_VM_AVX || (path == FLX_VM_AUTO && have_avx());
    int64_t i = 0;
    if (avx) {
        flx_vm_exp8_avx(y, x, n / 8);
        i = n / 8 * 8;
    }
    for (; i + 4 <= n; i += 4) exp4_sse2(y + i, x + i);
    if (i < n) {   /* a short tail, padded: the same function as a full block */
        float in[4] = {0.0f, 0.0f, 0.0f, 0.0f}, out[4];
        memcpy(in, x + i, (size_t)(n - i) * sizeof(float));
        exp4_sse2(out, in);
        memcpy(y + i, out, (size_t)(n - i) * sizeof(float));
    }
}

float flx_exp_nonpos(float x)
{
    if (x < X_MIN) return 0.0f;
    float y;
    flx_vm_exp(&y, &x, 1, FLX_VM_SSE2);
    return y;
}

float flx_max_f32(const float *x, int64_t n)
{
    /* four running maxima (vectorizable), combined in lane order */
    float m[4] = {x[0], x[0], x[0], x[0]};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    float r = m[0];
    for (int k = 1; k < 4; k++) r = m[k] > r ? m[k] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

#define VM_SUFFIX sse2
#define VM_EXP_BLOCKS(y, x, n) flx_vm_exp(y, x, n, FLX_VM_SSE2)
#include "vmath_body.h"

double flx_exp_shift_sum(float *out, const float *x, int64_t n, float shift)
{
    return have_avx() ? flx_vm_exp_shift_sum_avx(out, x, n, shift) : flx_vm_exp_shift_sum_sse2(out, x, n, shift);
}

void flx_silu_mul(float *g, const float *u, int64_t n)
{
    if (have_avx()) flx_vm_silu_mul_avx(g, u, n);
    else flx_vm_silu_mul_sse2(g, u, n);
}
