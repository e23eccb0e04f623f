/* glibc's expf, sixteen lanes at a time, for the softmax (docs/kernels.md
 * §15).  The exponential of the reference is glibc's expf; on x86-64 with
 * FMA, glibc runs its FMA build (__expf_fma, glibc >= 2.27), whose steps
 * this file repeats per lane in the same IEEE double operations:
 *   xd = (double)x
 *   kd = fma(N/ln2, xd, 1.5*2^52)        (rounds N*x/ln2 to an integer k)
 *   r  = fma(N/ln2, xd, -(kd - 1.5*2^52))
 *   s  = 2^(k/N) from a 32-entry table T[k mod 32] + (k << 47), N = 32
 *   z  = fma(r, C0, C1); r2 = r*r; y = fma(r, C2, 1); y = fma(z, r2, y)
 *   result = (float)(y * s)
 * Lanes with |x| >= 88 or NaN (glibc's special-case branch: overflow,
 * underflow with errno, NaN) take the scalar call.  The whole float range
 * is compared bit for bit with the scalar expression by bench_expf
 * (exhaustive) and by a sampled test. */
#include "flx_emu.h"

#include <string.h>

/* the scalar expression it replaces (as softmax_4sums and flx_emu_exp) */
static inline float exp_scalar(float x)
{
    return x < -0x1.9fe368p+6f ? 0.0f : expf(x);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VEC_TARGET __attribute__((target("avx512f,avx512dq,fma")))

/* 2^(i/32) rounded to double, minus i << 47 (the table's index bits are
 * added back from k) */
static const uint64_t T32[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

static inline __attribute__((always_inline)) VEC_TARGET __m256 exp8(__m256 x, const __m512i t[4])
{
    const __m512d invln2n = _mm512_set1_pd(0x1.71547652b82fep+5);
    const __m512d shift = _mm512_set1_pd(0x1.8p+52);
    const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-20);
    const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-13);
    const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-6);
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d xd = _mm512_cvtps_pd(x);
    __m512d kd = _mm512_fmadd_pd(invln2n, xd, shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_fmsub_pd(invln2n, xd, kd);
    __m512i lo = _mm512_permutex2var_epi64(t[0], ki, t[1]);      /* index bits 0..3 */
    __m512i hi = _mm512_permutex2var_epi64(t[2], ki, t[3]);
    __mmask8 upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    __m512i tb = _mm512_mask_blend_epi64(upper, lo, hi);
    tb = _mm512_add_epi64(tb, _mm512_slli_epi64(ki, 47));
    __m512d s = _mm512_castsi512_pd(tb);
    __m512d z = _mm512_fmadd_pd(r, c0, c1);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, c2, one);
    y = _mm512_fmadd_pd(z, r2, y);
    return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

/* y[0..16) = exp_scalar(x[..]); lanes of glibc's special branch (top 12
 * bits of |x| above 0x42a: |x| >= 88, inf, NaN) are recomputed by the call */
static inline __attribute__((always_inline)) VEC_TARGET __m512 exp16(__m512 x, const __m512i t[4])
{
    __m256 a = exp8(_mm512_castps512_ps256(x), t);
    __m256 b = exp8(_mm512_extractf32x8_ps(x, 1), t);
    __m512 y = _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
    __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20),
                                   _mm512_set1_epi32(0x7ff));
    __mmask16 special = _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(0x42a));
    if (special) {
        float xs[16], ys[16];
        _mm512_storeu_ps(xs, x);
        _mm512_storeu_ps(ys, y);
        for (int i = 0; i < 16; i++)
            if (special >> i & 1) ys[i] = exp_scalar(xs[i]);
        y = _mm512_loadu_ps(ys);
    }
    return y;
}

static inline VEC_TARGET void load_table(__m512i t[4])
{
    for (int i = 0; i < 4; i++) t[i] = _mm512_loadu_si512((const void *)(T32 + 8 * i));
}

VEC_TARGET static void expf_avx512(float *y, const float *x, int64_t n)
{
    __m512i t[4];
    load_table(t);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(y + k, exp16(_mm512_loadu_ps(x + k), t));
    for (; k < n; k++) y[k] = exp_scalar(x[k]);
}

/* The softmax fast path (glibc expf, no ftz) from flx_emu_softmax_*:
 * e_k = exp(x_k - m) in place and the four partial sums S_(k mod 4) in k
 * order: a 4-lane accumulator adds x[k..k+3] per step, which is the same
 * sequence of additions per lane as the scalar loop. */
VEC_TARGET static void exp_sums_avx512(float *x, int64_t n, float m, float s[4])
{
    __m512i t[4];
    load_table(t);
    const __m512 mv = _mm512_set1_ps(m);
    __m128 acc = _mm_loadu_ps(s);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + k), mv), t);
        _mm512_storeu_ps(x + k, e);
        acc = _mm_add_ps(acc, _mm512_castps512_ps128(e));
        acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(e, 1));
        acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(e, 2));
        acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(e, 3));
    }
    _mm_storeu_ps(s, acc);
    for (; k < n; k++) {
        float e = exp_scalar(x[k] - m);
        x[k] = e;
        s[k & 3] = s[k & 3] + e;
    }
}

/* The whole softmax_4sums of the fast mode: the row maximum by the strict
 * rule per lane (vmaxps keeps the running value unless the new one is
 * greater, so a NaN is never taken), lanes merged by the same rule (only
 * the value matters: x - (+0) and x - (-0) give the same exponentials),
 * the exponentials and sums above, then p_k = e_k * (1 / ((S0 + S1) + (S2 + S3))). */
VEC_TARGET static void softmax4_avx512(float *x, int64_t n)
{
    __m512 mv = _mm512_set1_ps(-1e32f);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) mv = _mm512_max_ps(_mm512_loadu_ps(x + k), mv);
    float lanes[16], m = -1e32f;
    _mm512_storeu_ps(lanes, mv);
    for (int i = 0; i < 16; i++) if (lanes[i] > m) m = lanes[i];
    for (; k < n; k++) if (x[k] > m) m = x[k];
    float s[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    exp_sums_avx512(x, n, m, s);
    float r = 1.0f / ((s[0] + s[1]) + (s[2] + s[3]));
    const __m512 rv = _mm512_set1_ps(r);
    for (k = 0; k + 16 <= n; k += 16) _mm512_storeu_ps(x + k, _mm512_mul_ps(_mm512_loadu_ps(x + k), rv));
    for (; k < n; k++) x[k] = x[k] * r;
}

int flx_emu_softmax4_vec(float *x, int64_t n)
{
    if (!flx_emu_expf_vec_available()) return -1;
    softmax4_avx512(x, n);
    return 0;
}

int flx_emu_expf_vec_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
}

void flx_emu_expf_vec(float *y, const float *x, int64_t n)
{
    if (flx_emu_expf_vec_available()) { expf_avx512(y, x, n); return; }
    for (int64_t k = 0; k < n; k++) y[k] = exp_scalar(x[k]);
}

int flx_emu_exp_sums_vec(float *x, int64_t n, float m, float s[4])
{
    if (!flx_emu_expf_vec_available()) return -1;
    exp_sums_avx512(x, n, m, s);
    return 0;
}
#else
int flx_emu_expf_vec_available(void) { return 0; }
void flx_emu_expf_vec(float *y, const float *x, int64_t n)
{
    for (int64_t k = 0; k < n; k++) y[k] = exp_scalar(x[k]);
}
int flx_emu_exp_sums_vec(float *x, int64_t n, float m, float s[4]) { return -1; }
int flx_emu_softmax4_vec(float *x, int64_t n) { return -1; }
#endif
