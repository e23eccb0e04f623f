/* Dynamic per-token and static per-head quantizers and dequantizers
 * (reference-design §1.2).  Each line is one reference operation. */
#include "flx_emu.h"

#include <string.h>

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* (int) roundf(v) without a libm call: for |v| < 2^30, t = trunc(v) and the
 * fraction v - t are exact, and roundf moves away from zero at |fraction|
 * >= 0.5.  Other values (huge, NaN) take the library path. */
static inline int32_t round_to_int(float v)
{
    if (fabsf(v) < 1073741824.0f) {
        int32_t t = (int32_t)v;
        float d = v - (float)t;
        return t + (d >= 0.5f) - (d <= -0.5f);
    }
    return flx_emu_float_to_int(roundf(v));
}

/* ap_int<bits>(roundf(v)) */
static inline int8_t round_to_pattern(float v, int bits)
{
    if (fabsf(v) < 1073741824.0f) return (int8_t)flx_emu_wrap(round_to_int(v), bits);
    return (int8_t)flx_emu_float_to_apint(roundf(v), bits);
}

/* Largest and smallest element by the reference's scan: sentinels -1e32 /
 * +1e32, strict compares, so the first of equal values (also +-0) wins and a
 * NaN is never selected. */
static void scan_max_min_plain(const float *x, int64_t n, int ftz, float *mx, float *mn);

/* Without FTZ, 16 lanes each keeping its own strict-compare max and min
 * (vmaxps/vminps return the running value unless the new one is strictly
 * greater / smaller, so NaN is never taken), merged by the same rule: the
 * same values as the scan, except that among equal zeros the scan keeps the
 * first one's sign; a zero result is therefore recomputed by the scan. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static int max_min_avx512(const float *x, int64_t n,
                                                              float *mx, float *mn)
{
    __m512 hv = _mm512_set1_ps(-1e32f), lv = _mm512_set1_ps(1e32f);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 v = _mm512_loadu_ps(x + k);
        hv = _mm512_max_ps(v, hv);
        lv = _mm512_min_ps(v, lv);
    }
    float h[16], l[16], hi = -1e32f, lo = 1e32f;
    _mm512_storeu_ps(h, hv);
    _mm512_storeu_ps(l, lv);
    for (int i = 0; i < 16; i++) {
        if (h[i] > hi) hi = h[i];
        if (l[i] < lo) lo = l[i];
    }
    for (; k < n; k++) {
        if (x[k] > hi) hi = x[k];
        if (x[k] < lo) lo = x[k];
    }
    *mx = hi;
    *mn = lo;
    return hi != 0.0f && lo != 0.0f;
}
#endif

static void scan_max_min(const float *x, int64_t n, int ftz, float *mx, float *mn)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!ftz && n >= 64 && __builtin_cpu_supports("avx512f") && max_min_avx512(x, n, mx, mn))
        return;
#endif
    scan_max_min_plain(x, n, ftz, mx, mn);
}

static void scan_max_min_plain(const float *x, int64_t n, int ftz, float *mx, float *mn)
{
    float hi = -1e32f, lo = 1e32f;
    for (int64_t k = 0; k < n; k++) {
        float v = FZ(x[k]);
        if (v > hi) hi = v;
        if (v < lo) lo = v;
    }
    *mx = hi;
    *mn = lo;
}

/* 32-byte vectors pass only into helpers that are always inlined: a real
 * call between the AVX2 clone and a baseline-ABI static (what -O0 made of a
 * plain "static inline") passes them in different registers and crashed. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float   q8f __attribute__((vector_size(32)));
typedef int32_t q8i __attribute__((vector_size(32)));

/* Not under ThreadSanitizer: the ifunc resolver of a clone runs during
 * relocation, before the TSan runtime is up, and its instrumentation
 * crashed the program before main (the default path gives the same bits). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FLX_NO_TARGET_CLONES) && \
    !defined(__SANITIZE_THREAD__)
#define QUANT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QUANT_CLONES
#endif

/* round(v) per lane exactly as round_to_int (truncate, exact fraction, one
 * step away from zero at |fraction| >= 0.5); *ok gets -1 in the lanes where
 * that path applies (|v| < 2^30, not NaN). */
static inline __attribute__((always_inline)) q8i round8(q8f v, q8i *ok)
{
    const q8f lim = (q8f){0} + 1073741824.0f;
    *ok = (v < lim) & (v > -lim);
    /* lanes off the path become 0 first: converting a huge or NaN lane, and
     * the +-1 step on INT32_MIN, would be undefined even though discarded */
    v = (q8f)((q8i)v & *ok);
    q8i t = __builtin_convertvector(v, q8i);        /* toward zero, as (int32_t) */
    q8f f = v - __builtin_convertvector(t, q8f);
    return t - (q8i)(f >= 0.5f) + (q8i)(f <= -0.5f);   /* compares give -1 for true */
}

static inline __attribute__((always_inline)) int all8(q8i ok) { return ok[0] & ok[1] & ok[2] & ok[3] & ok[4] & ok[5] & ok[6] & ok[7]; }

/* The dynamic asymmetric quantizer's inner loop without FTZ:
 * q = ap_int<bits>(round((x - b) / s)), eight lanes at a time; blocks with
 * a lane off the fast path, and the tail, go through round_to_pattern. */
QUANT_CLONES static void asym_row(int8_t *q, const float *x, int64_t n, float bt, float st, int bits)
{
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        q8f v;
        memcpy(&v, x + k, sizeof v);
        q8i ok, r = round8((v - bt) / st, &ok);
        r = (r << (32 - bits)) >> (32 - bits);      /* ap_int<bits>: sign-extend the low bits */
        int all = all8(ok);
        for (int i = 0; i < 8; i++) q[k + i] = all ? (int8_t)r[i] : round_to_pattern((x[k + i] - bt) / st, bits);
    }
    for (; k < n; k++) q[k] = round_to_pattern((x[k] - bt) / st, bits);
}

void flx_emu_quant_asym(int8_t *q, float *s, float *b, const float *x,
                        int64_t n_tokens, int64_t n_ch, int bits, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const float levels = (float)((1 << bits) - 1);    /* 15.0f for INT4 */
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *xt = x + t * n_ch;
        int8_t *qt = q + t * n_ch;
        float mx, mn;
        scan_max_min(xt, n_ch, ftz, &mx, &mn);
        float st = FZ(FZ(mx - mn) / levels);
        if (st == 0.0f) st = 1.0f;
        float bt = mn;
        s[t] = st;
        b[t] = bt;
        if (!ftz) {
            asym_row(qt, xt, n_ch, bt, st, bits);
            continue;
        }
        for (int64_t k = 0; k < n_ch; k++) {
            float d = FZ(FZ(xt[k]) - bt);
            qt[k] = round_to_pattern(FZ(d / st), bits);     /* ap_uint<bits> pattern */
        }
    }
}

void flx_emu_quant_sym(int8_t *q, float *s, const float *x, int64_t n_tokens,
                       int64_t n_ch, int bits, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const float qmax = (float)((1 << (bits - 1)) - 1);
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *xt = x + t * n_ch;
        int8_t *qt = q + t * n_ch;
        float mx, mn;
        scan_max_min(xt, n_ch, ftz, &mx, &mn);
        float amx = fabsf(mx), amn = fabsf(mn);
        float st = FZ((amx > amn ? amx : amn) / qmax);
        if (st == 0.0f) st = 1.0f;
        s[t] = st;
        for (int64_t k = 0; k < n_ch; k++) {
            qt[k] = round_to_pattern(FZ(FZ(xt[k]) / st), bits);
        }
    }
}

/* Without FTZ: the same four operations per element in plain loops the
 * compiler vectorizes (no per-element mode test). */
QUANT_CLONES static void dequant_plain(float *y, const int32_t *acc, float st, float bt,
                                       const float *ws, const float *wsum, int64_t n_out)
{
    for (int64_t o = 0; o < n_out; o++) {
        float v = (float)acc[o] * st;
        v = v * ws[o];
        float u = bt * wsum[o];
        y[o] = v + u;
    }
}

void flx_emu_dequant(float *y, const int32_t *acc, const float *s, const float *b,
                     const float *ws, const float *wsum, int64_t n_tokens,
                     int64_t n_out, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    if (!ftz && b) {
        for (int64_t t = 0; t < n_tokens; t++)
            dequant_plain(y + t * n_out, acc + t * n_out, s[t], b[t], ws, wsum, n_out);
        return;
    }
    for (int64_t t = 0; t < n_tokens; t++) {
        const int32_t *at = acc + t * n_out;
        float *yt = y + t * n_out;
        float st = FZ(s[t]);
        if (b) {
            float bt = FZ(b[t]);
            for (int64_t o = 0; o < n_out; o++) {
                float v = FZ((float)at[o] * st);
                v = FZ(v * FZ(ws[o]));
                float u = FZ(bt * FZ(wsum[o]));
                yt[o] = FZ(v + u);
            }
        } else {
            for (int64_t o = 0; o < n_out; o++) {
                float v = FZ((float)at[o] * st);
                yt[o] = FZ(v * FZ(ws[o]));
            }
        }
    }
}

/* The static quantizer's element, as the reference computes it. */
static inline int8_t static1(float x, float div, int32_t sb, int bits, int is_signed, int ftz)
{
    int32_t r = round_to_int(FZ(FZ(x) / div));
    if (is_signed) {
        if (r < -sb) r = -sb;
        if (r > sb - 1) r = sb - 1;
    } else if (r > sb - 1) {
        r = sb - 1;                                 /* no lower clamp */
    }
    return (int8_t)flx_emu_wrap(r, bits);           /* ap_int<bits>(q) */
}

/* One head row without FTZ: eight elements at a time with the same IEEE
 * division and the same round_to_int steps per lane (truncate, exact
 * fraction, step away from 0 at |fraction| >= 0.5), then clamp and wrap.  A
 * block with a lane outside |v| < 2^30 (or NaN) is redone by the scalar
 * path, as is the tail. */
QUANT_CLONES static void static_row(int8_t *q, const float *x, int n, float div, int32_t sb, int bits,
                                    int is_signed)
{
    const q8i hi = (q8i){0} + (sb - 1), lo = (q8i){0} - sb;
    int d = 0;
    for (; d + 8 <= n; d += 8) {
        q8f v;
        memcpy(&v, x + d, sizeof v);
        q8i ok, r = round8(v / div, &ok);
        q8i above = r > hi;
        r = (hi & above) | (r & ~above);
        if (is_signed) {
            q8i below = r < lo;
            r = (lo & below) | (r & ~below);
        }
        r = (r << (32 - bits)) >> (32 - bits);      /* ap_int<bits>: sign-extend the low bits */
        int all = all8(ok);
        for (int i = 0; i < 8; i++)
            q[d + i] = all ? (int8_t)r[i] : static1(x[d + i], div, sb, bits, is_signed, 0);
    }
    for (; d < n; d++) q[d] = static1(x[d], div, sb, bits, is_signed, 0);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* static_row sixteen lanes wide (AVX-512): the same division, truncation,
 * exact fraction, step at |fraction| >= 0.5, clamp and wrap per lane; a
 * block with a lane off the |v| < 2^30 path goes through static1, as in
 * static_row. */
__attribute__((target("avx512f,avx512bw"))) static void static_row16(int8_t *q, const float *x,
                                                                      int n, float div, int32_t sb,
                                                                      int bits, int is_signed)
{
    const __m512 dv = _mm512_set1_ps(div), lim = _mm512_set1_ps(1073741824.0f);
    const __m512 mlim = _mm512_set1_ps(-1073741824.0f);
    const __m512 ph = _mm512_set1_ps(0.5f), mh = _mm512_set1_ps(-0.5f);
    const __m512i hi = _mm512_set1_epi32(sb - 1), lo = _mm512_set1_epi32(-sb);
    const __m512i one = _mm512_set1_epi32(1);
    const __m128i sh = _mm_cvtsi32_si128(32 - bits);
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + d), dv);
        __mmask16 ok = _mm512_cmp_ps_mask(v, lim, _CMP_LT_OQ) & _mm512_cmp_ps_mask(v, mlim, _CMP_GT_OQ);
        if (ok != 0xffff) {
            for (int i = 0; i < 16; i++) q[d + i] = static1(x[d + i], div, sb, bits, is_signed, 0);
            continue;
        }
        __m512i t = _mm512_cvttps_epi32(v);
        __m512 f = _mm512_sub_ps(v, _mm512_cvtepi32_ps(t));
        t = _mm512_mask_add_epi32(t, _mm512_cmp_ps_mask(f, ph, _CMP_GE_OQ), t, one);
        t = _mm512_mask_sub_epi32(t, _mm512_cmp_ps_mask(f, mh, _CMP_LE_OQ), t, one);
        t = _mm512_min_epi32(t, hi);
        if (is_signed) t = _mm512_max_epi32(t, lo);
        t = _mm512_sra_epi32(_mm512_sll_epi32(t, sh), sh);    /* ap_int<bits> */
        _mm_storeu_si128((__m128i *)(void *)(q + d), _mm512_cvtepi32_epi8(t));
    }
    for (; d < n; d++) q[d] = static1(x[d], div, sb, bits, is_signed, 0);
}
#endif

void flx_emu_quant_static(int8_t *q, const float *x, int64_t n_tokens, int n_heads,
                          int head_dim, const float *scale, float mha_scale_factor,
                          int bits, int is_signed, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int32_t sb = is_signed ? (1 << (bits - 1)) : (1 << bits);
    const int64_t width = (int64_t)n_heads * head_dim;
#if defined(__x86_64__) && defined(__GNUC__)
    const int wide = !ftz && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_heads; h++) {
            float div = FZ(FZ(mha_scale_factor) * FZ(scale[h]));  /* product first */
            const float *xh = x + t * width + (int64_t)h * head_dim;
            int8_t *qh = q + t * width + (int64_t)h * head_dim;
            if (!ftz) {
#if defined(__x86_64__) && defined(__GNUC__)
                if (head_dim >= 16 && wide) {
                    static_row16(qh, xh, head_dim, div, sb, bits, is_signed);
                    continue;
                }
#endif
                static_row(qh, xh, head_dim, div, sb, bits, is_signed);
                continue;
            }
            for (int d = 0; d < head_dim; d++) qh[d] = static1(xh[d], div, sb, bits, is_signed, 1);
        }
    }
}

void flx_emu_dequant_static(float *y, const int32_t *acc, int64_t n_tokens, int n_heads,
                            int head_dim, const float *in_s, const float *w_s,
                            int n_w_heads, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int group = n_heads / n_w_heads;
    const int64_t width = (int64_t)n_heads * head_dim;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_heads; h++) {
            float si = FZ(in_s[h]), sw = FZ(w_s[h / group]);
            const int32_t *ah = acc + t * width + (int64_t)h * head_dim;
            float *yh = y + t * width + (int64_t)h * head_dim;
            for (int d = 0; d < head_dim; d++)
                yh[d] = FZ(FZ((float)ah[d] * si) * sw);
        }
    }
}
