/* qsimd.c -- AVX2 forms of the fake-quant loops (see qsimd.h), compiled
 * for AVX2 function by function (target attributes) and called only when
 * the processor has it.  Same bits as the scalar C, because every output
 * is the same sequence of IEEE operations on the same operands in the same
 * operand order:
 *  - add, sub, mul and div are correctly rounded in the vector unit as in
 *    the scalar one, under the same MXCSR (rounding mode, FTZ/DAZ), and the
 *    project compiles with -ffp-contract=off, so nothing is fused;
 *  - roundf (half away from zero) has no vector instruction; it is built
 *    exactly from truncation (round_half_away below); rintf is the vector
 *    round in the current direction, which is rintf's definition;
 *  - the integer clamp and the int -> float conversion of the code are
 *    float selects on values that are already integers (clamp_code below);
 *  - the FHT's butterflies are elementwise, so a stage done eight lanes at a
 *    time computes each output from the same two inputs as the scalar loop;
 *    the stage order is untouched. */
#include "qsimd.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define QSIMD 1
#define AVX2 __attribute__((target("avx2")))

int flx_qsimd_avx2(void) { return __builtin_cpu_supports("avx2"); }

/* roundf(y), half away from zero.  t = trunc(y) (exact).  f = y - t is
 * exact: for |y| < 2^23, y and t are multiples of ulp(y) <= 1/2 with the
 * same sign, so their difference is a multiple of ulp(y) smaller than 1 in
 * magnitude; for |y| >= 2^23, y is an integer and f = 0.  roundf(y) is then
 * t when |f| < 1/2 (t keeps y's sign, so roundf(-0.3) = -0 as in libm) and
 * t + copysign(1, y) otherwise, exact as |t| < 2^23 there.  NaN and +-inf:
 * the compare is false (f is NaN), so t = y comes back, as from roundf. */
AVX2 static inline __m256 round_half_away(__m256 y)
{
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(y, t));
    const __m256 up = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign, y));
    return _mm256_blendv_ps(t, _mm256_add_ps(t, one), up);
}

AVX2 static inline __m256 round_mode(flx_qround rd, __m256 y)
{
    return rd == FLX_QR_HALF_EVEN ? _mm256_round_ps(y, _MM_FROUND_CUR_DIRECTION) : round_half_away(y);
}

/* (float)clamp_code(r, qmin, qmax) of quantizer.c: r >= qmin ? r : (NaN ?
 * 0 : qmin), then qmax if above.  r is integer-valued here (a rounding
 * result, plus an integer zero point), so (float)(int32_t)r == r except
 * that the int drops the sign of -0: adding +0 does the same. */
AVX2 static inline __m256 clamp_code(__m256 r, __m256 qmin, __m256 qmax)
{
    const __m256 ge = _mm256_cmp_ps(r, qmin, _CMP_GE_OQ);
    const __m256 nan = _mm256_cmp_ps(r, r, _CMP_UNORD_Q);
    __m256 c = _mm256_blendv_ps(_mm256_andnot_ps(nan, qmin), r, ge);
    c = _mm256_blendv_ps(c, qmax, _mm256_cmp_ps(c, qmax, _CMP_GT_OQ));
    return _mm256_add_ps(c, _mm256_setzero_ps());
}

/* flx_quantize1 then flx_dequantize1, operation by operation */
AVX2 void flx_qsimd_fq_run(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, float *out)
{
    int32_t qmin, qmax;
    flx_qspec_range(s, &qmin, &qmax);
    const __m256 vmin = _mm256_set1_ps((float)qmin), vmax = _mm256_set1_ps((float)qmax);
    const __m256 sc = _mm256_set1_ps(p.scale), z = _mm256_set1_ps(p.zero);
    const flx_qround rd = s->round;
    int64_t k = 0;
    switch (s->scheme) {
    case FLX_QS_SYM:
        for (; k + 8 <= n; k += 8) {
            __m256 r = round_mode(rd, _mm256_div_ps(_mm256_loadu_ps(x + k), sc));
            _mm256_storeu_ps(out + k, _mm256_mul_ps(sc, clamp_code(r, vmin, vmax)));
        }
        break;
    case FLX_QS_ASYM_ZP:
        for (; k + 8 <= n; k += 8) {
            __m256 r = _mm256_add_ps(round_mode(rd, _mm256_div_ps(_mm256_loadu_ps(x + k), sc)), z);
            _mm256_storeu_ps(out + k, _mm256_mul_ps(sc, _mm256_sub_ps(clamp_code(r, vmin, vmax), z)));
        }
        break;
    case FLX_QS_ASYM_FLOAT:
        for (; k + 8 <= n; k += 8) {
            __m256 r = round_mode(rd, _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), z), sc));
            _mm256_storeu_ps(out + k, _mm256_add_ps(_mm256_mul_ps(sc, clamp_code(r, vmin, vmax)), z));
        }
        break;
    }
    for (; k < n; k++) out[k] = flx_dequantize1(s, p, flx_quantize1(s, p, x[k]));
}

/* max_ps(v, m) is "v > m ? v : m" per lane (m when v is NaN), the scalar
 * update itself; each lane keeps the extreme of its elements, and the lanes
 * are combined the same way.  The extreme's value is order-independent;
 * among equal values only +0 and -0 differ in bits, and the sign of a zero
 * extreme changes no fake-quant output: SYM takes |lo|, |hi|; ASYM_FLOAT
 * uses lo as its zero point, where x - (+-0) and 0 * s + (+-0) round the
 * same after the integer code; ASYM_ZP's zero point round(-lo / s) is an
 * integer added to and subtracted from an integer code. */
AVX2 void flx_qsimd_min_max(const float *x, int64_t n, float *lo, float *hi)
{
    __m256 mx = _mm256_set1_ps(-1e32f), mn = _mm256_set1_ps(1e32f);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        mx = _mm256_max_ps(v, mx);
        mn = _mm256_min_ps(v, mn);
    }
    float a[8], b[8];
    _mm256_storeu_ps(a, mx);
    _mm256_storeu_ps(b, mn);
    float hmax = -1e32f, hmin = 1e32f;
    for (int i = 0; i < 8; i++) {
        if (a[i] > hmax) hmax = a[i];
        if (b[i] < hmin) hmin = b[i];
    }
    for (; k < n; k++) {
        if (x[k] > hmax) hmax = x[k];
        if (x[k] < hmin) hmin = x[k];
    }
    if (hmax < hmin) { hmin = 0.0f; hmax = 0.0f; }
    *lo = hmin;
    *hi = hmax;
}

/* min_ps(r, 255) is "r < 255 ? r : 255" (255 for NaN), the scalar select */
AVX2 void flx_qsimd_u8(float *p, int64_t n, float a_s)
{
    const __m256 a = _mm256_set1_ps(a_s), top = _mm256_set1_ps(255.0f);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 r = round_half_away(_mm256_div_ps(_mm256_loadu_ps(p + k), a));
        _mm256_storeu_ps(p + k, _mm256_mul_ps(_mm256_min_ps(r, top), a));
    }
    for (; k < n; k++) {
        const float r = roundf(p[k] / a_s);
        p[k] = (r < 255.0f ? r : 255.0f) * a_s;
    }
}

/* Partner j = i ^ h inside one 8-lane vector (h = 1, 2, 4): lanes with bit
 * b clear take x_i + x_j, the others x_j - x_i (their pair's a - c, a the
 * lower element): the scalar operands in the scalar order. */
AVX2 static inline __m256 butterfly_in_vector(__m256 v, int b)
{
    __m256 w;
    if (b == 0) w = _mm256_permute_ps(v, 0xB1);           /* lanes 1 0 3 2 ... */
    else if (b == 1) w = _mm256_permute_ps(v, 0x4E);      /* lanes 2 3 0 1 ... */
    else w = _mm256_permute2f128_ps(v, v, 0x01);          /* halves swapped    */
    const __m256 lo = _mm256_add_ps(v, w), hi = _mm256_sub_ps(w, v);
    if (b == 0) return _mm256_blend_ps(lo, hi, 0xAA);
    if (b == 1) return _mm256_blend_ps(lo, hi, 0xCC);
    return _mm256_blend_ps(lo, hi, 0xF0);
}

AVX2 void flx_qsimd_fht_stage(float *x, int32_t n, int b)
{
    const int32_t h = (int32_t)1 << b;
    if (h < 8) {
        for (int32_t i = 0; i < n; i += 8)
            _mm256_storeu_ps(x + i, butterfly_in_vector(_mm256_loadu_ps(x + i), b));
        return;
    }
    for (int32_t base = 0; base < n; base += 2 * h)
        for (int32_t i = base; i < base + h; i += 8) {
            const __m256 a = _mm256_loadu_ps(x + i), c = _mm256_loadu_ps(x + i + h);
            _mm256_storeu_ps(x + i, _mm256_add_ps(a, c));
            _mm256_storeu_ps(x + i + h, _mm256_sub_ps(a, c));
        }
}

AVX2 void flx_qsimd_div(float *x, int32_t n, float divisor)
{
    const __m256 d = _mm256_set1_ps(divisor);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), d));
    for (; i < n; i++) x[i] = x[i] / divisor;
}

#else   /* no x86-64 vector forms: the callers keep their scalar loops */

int flx_qsimd_avx2(void) { return 0; }
void flx_qsimd_fq_run(const flx_qspec *s, flx_qparams p, const float *x, int64_t n, float *out)
{
    for (int64_t k = 0; k < n; k++) out[k] = flx_dequantize1(s, p, flx_quantize1(s, p, x[k]));
}
void flx_qsimd_min_max(const float *x, int64_t n, float *lo, float *hi)
{
    (void)x; (void)n;
    *lo = *hi = 0.0f;
}
void flx_qsimd_u8(float *p, int64_t n, float a_s) { (void)p; (void)n; (void)a_s; }
void flx_qsimd_fht_stage(float *x, int32_t n, int b) { (void)x; (void)n; (void)b; }
void flx_qsimd_div(float *x, int32_t n, float divisor) { (void)x; (void)n; (void)divisor; }

#endif
