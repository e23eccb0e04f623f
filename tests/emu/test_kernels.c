/* emu kernels: each against a scalar transcription of docs/reference-design.md
 * written separately here (different loop structure) and against
 * hand-computed cases. */
#include "flx_emu.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const flx_emu_fp FP_GLIBC = { FLX_EMU_EXP_GLIBC, 0 };
static const flx_emu_fp FP_FLX   = { FLX_EMU_EXP_FLX, 0 };
static const flx_emu_fp FP_FTZ   = { FLX_EMU_EXP_GLIBC, 1 };

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* a tiny LCG so the suite does not depend on the core RNG's stream */
static uint64_t lcg = 88172645463325252ull;
static uint32_t rnd32(void) { lcg = lcg * 6364136223846793005ull + 1442695040888963407ull; return (uint32_t)(lcg >> 33); }
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() & 0xffffff) / 16777216.0f; }

/* ------------------------------------------------------------ exp and FTZ */

/* distance in ulps between a float and an exact double */
static double ulp_err(float got, double exact)
{
    if (exact == 0.0) return got == 0.0f ? 0.0 : 1e9;
    int e;
    frexp(exact, &e);                      /* exact = m * 2^e, m in [0.5, 1) */
    int ue = e - 24;
    if (ue < -149) ue = -149;              /* subnormal spacing */
    return fabs((double)got - exact) / ldexp(1.0, ue);
}

Test(emu_exp, flx_exp_within_one_ulp_and_distance_to_glibc)
{
    double worst = 0.0, worst_glibc = 0.0;
    long n = 0, differ = 0;
    /* every 331st float bit pattern in [-104, 88.72] */
    for (uint64_t u = 0; u < 0x42b17218u; u += 331) {
        for (int sign = 0; sign < 2; sign++) {
            float x = bitsf((uint32_t)u | (sign ? 0x80000000u : 0));
            if (x < -104.0f) continue;
            float y = flx_emu_expf_flx(x);
            float g = expf(x);
            double ex = exp((double)x);
            double err = ulp_err(y, ex);
            if (err > worst) worst = err;
            double eg = ulp_err(g, ex);
            if (eg > worst_glibc) worst_glibc = eg;
            differ += fbits(y) != fbits(g);
            n++;
        }
    }
    cr_log_info("flx-exp: %ld inputs, max error %.3f ulp (glibc expf %.3f ulp), "
                "%ld (%.2f%%) differ from glibc expf", n, worst, worst_glibc, differ,
                100.0 * differ / n);
    cr_assert_lt(worst, 1.0, "flx-exp max error %.3f ulp", worst);
    cr_assert_gt(differ, 0);            /* two implementations: they do differ */
    cr_assert_lt(differ, n / 5);
}

Test(emu_exp, special_values)
{
    cr_assert_eq(flx_emu_expf_flx(0.0f), 1.0f);
    cr_assert_eq(flx_emu_expf_flx(-0.0f), 1.0f);
    cr_assert(isnan(flx_emu_expf_flx(NAN)));
    cr_assert_eq(flx_emu_expf_flx(INFINITY), INFINITY);
    cr_assert_eq(flx_emu_expf_flx(-INFINITY), 0.0f);
    cr_assert_eq(flx_emu_expf_flx(-1e32f), 0.0f);          /* masked score */
    cr_assert(isfinite(flx_emu_expf_flx(0x1.62e42ep+6f)));
    cr_assert_eq(flx_emu_expf_flx(0x1.62e430p+6f), INFINITY);
    cr_assert_eq(flx_emu_expf_flx(-0x1.9fe368p+6f), 0x1p-149f);  /* smallest subnormal */
    cr_assert_eq(flx_emu_expf_flx(-0x1.9fe36ap+6f), 0.0f);
    cr_assert_eq(flx_emu_expf_flx(1.0f), expf(1.0f));
    cr_assert_str_eq(flx_emu_fp_name(&FP_FLX), "exp=flx-exp,ftz=off");
    cr_assert_str_eq(flx_emu_fp_name(&FP_FTZ), "exp=glibc-expf,ftz=on");
    flx_emu_exp_kind k;
    cr_assert_eq(flx_emu_exp_parse("flx", &k), 0);
    cr_assert_eq(k, FLX_EMU_EXP_FLX);
    cr_assert_eq(flx_emu_exp_parse("sleef", &k), -1);
}

Test(emu_exp, dispatch_equals_the_underlying_functions_near_underflow)
{
    /* flx_emu_exp returns +0 without a call below -0x1.9fe368p+6: check it
     * against expf and flx-exp bit for bit on every float of [-110, -85] */
    for (float x = -110.0f; x < -85.0f; x = nextafterf(x, 0.0f)) {
        cr_assert_eq(fbits(flx_emu_exp(&FP_GLIBC, x)), fbits(expf(x)), "x=%a", (double)x);
        cr_assert_eq(fbits(flx_emu_exp(&FP_FLX, x)), fbits(flx_emu_expf_flx(x)), "x=%a", (double)x);
    }
    /* and the softmax fast path equals the generic one */
    float a[9] = { -200, 3, -90, -104, 0, -103.97f, 1, -1e32f, 2 }, b[9];
    memcpy(b, a, sizeof a);
    flx_emu_fp slow = { FLX_EMU_EXP_GLIBC, 0 };
    flx_emu_softmax_dec(a, 9, &slow);
    for (int i = 0; i < 9; i++) {
        float m = 3.0f;
        b[i] = expf(b[i] - m);
    }
    float S0 = (0.0f + b[0]) + b[4], S1 = (0.0f + b[1]) + b[5], S2 = (0.0f + b[2]) + b[6];
    S0 = S0 + b[8];
    float S3 = 0.0f + b[3] + b[7];
    float r = 1.0f / ((S0 + S1) + (S2 + S3));
    for (int i = 0; i < 9; i++) cr_assert_eq(fbits(a[i]), fbits(b[i] * r), "i=%d", i);
}

Test(emu_ftz, subnormal_results_flush_only_when_enabled)
{
    /* exp(-100) = 3.7e-44 is subnormal */
    cr_assert_gt(flx_emu_exp(&FP_GLIBC, -100.0f), 0.0f);
    cr_assert_eq(flx_emu_exp(&FP_FTZ, -100.0f), 0.0f);
    /* dequant: (1 * 1e-30) * 1e-10 = 1e-40 is subnormal; plus b*wsum = 0 */
    int32_t acc = 1;
    float s = 1e-30f, b = 0.0f, ws = 1e-10f, wsum = 0.0f, y;
    flx_emu_dequant(&y, &acc, &s, &b, &ws, &wsum, 1, 1, &FP_GLIBC);
    cr_assert_eq(y, (1e-30f * 1e-10f));
    cr_assert_gt(y, 0.0f);
    cr_assert_lt(y, FLT_MIN);
    flx_emu_dequant(&y, &acc, &s, &b, &ws, &wsum, 1, 1, &FP_FTZ);
    cr_assert_eq(fbits(y), 0u);
    /* a subnormal input is read as zero: residual 1e-40 + 0 */
    float a = 1e-40f, r = 0.0f;
    flx_emu_residual(&y, &a, &r, 1, &FP_FTZ);
    cr_assert_eq(y, 0.0f);
    flx_emu_residual(&y, &a, &r, 1, &FP_GLIBC);
    cr_assert_eq(y, 1e-40f);
    cr_assert_eq(fbits(flx_emu_ftz(-1e-40f)), 0x80000000u);   /* sign kept */
}

/* ------------------------------------------------------------ conversions */

Test(emu_int, apint_conversions_and_patterns)
{
    cr_assert_eq(flx_emu_float_to_apint(300.0f, 8), 44);
    cr_assert_eq(flx_emu_float_to_apint(-2.7f, 8), -2);
    cr_assert_eq(flx_emu_float_to_apint(15.0f, 4), -1);     /* uint4 15 as int4 pattern */
    cr_assert_eq(flx_emu_float_to_apint(NAN, 4), 0);
    cr_assert_eq(flx_emu_float_to_apint(-INFINITY, 8), 0);
    cr_assert_eq(flx_emu_float_to_apint(-0.75f, 8), 0);        /* no 2019.1 header quirk */
    cr_assert_eq(flx_emu_float_to_apint(0x1p40f + 0x1p20f + 3.0f, 32), 0x100000);
    cr_assert_eq(flx_emu_float_to_apint(-(0x1p31f + 0x1p9f), 32), 0x7ffffe00);  /* wraps */
    cr_assert_eq(flx_emu_float_to_apint(0x1p70f, 8), 0);
    cr_assert_eq(flx_emu_float_to_int(NAN), INT32_MIN);
    cr_assert_eq(flx_emu_float_to_int(3e9f), INT32_MIN);
    cr_assert_eq(flx_emu_float_to_int(-7.9f), -7);
    cr_assert_eq(flx_emu_pattern_value(-1, 4, 1), 15);
    cr_assert_eq(flx_emu_pattern_value(-1, 4, 0), -1);
    cr_assert_eq(flx_emu_pattern_value(-56, 8, 1), 200);
    cr_assert_eq(flx_emu_wrap(1 << 20, 21), -(1 << 20));
    cr_assert_eq(flx_emu_wrap(-983040, 19), 65536);
}

/* ---------------------------------------------------------- quantization */

Test(emu_quant, asym_hand_case)
{
    float x[4] = { 0.0f, 1.5f, 3.0f, -1.5f };
    int8_t q[4];
    float s, b;
    flx_emu_quant_asym(q, &s, &b, x, 1, 4, 4, &FP_GLIBC);
    cr_assert_eq(s, 4.5f / 15.0f);
    cr_assert_eq(b, -1.5f);
    int want[4] = { 5, 10, 15, 0 };
    int8_t want_pattern[4] = { 5, -6, -1, 0 };   /* what the ap_int<4> stream carries */
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(q[k], want_pattern[k]);
        cr_assert_eq(flx_emu_pattern_value(q[k], 4, 1), want[k]);
    }
    float c[3] = { 2.0f, 2.0f, 2.0f };             /* constant token: s = 1 */
    flx_emu_quant_asym(q, &s, &b, c, 1, 3, 4, &FP_GLIBC);
    cr_assert_eq(s, 1.0f);
    cr_assert_eq(b, 2.0f);
    cr_assert_eq(q[0], 0);
}

/* transcription: the scan runs backwards with >= / <= so that the earliest of
 * equal values wins, as with the reference's forward strict scan */
static void ref_quant_asym(int8_t *q, float *s, float *b, const float *x, int n)
{
    float mx = -1e32f, mn = 1e32f;
    for (int k = n - 1; k >= 0; k--) {
        if (x[k] >= mx) mx = x[k];
        if (x[k] <= mn) mn = x[k];
    }
    float range = mx - mn;
    *s = range / 15.0f;
    if (*s == 0.0f) *s = 1.0f;
    *b = mn;
    for (int k = 0; k < n; k++) {
        float v = roundf((x[k] - *b) / *s);
        int iv = (int)v;
        q[k] = (int8_t)(iv >= 8 ? iv - 16 : iv);
    }
}

Test(emu_quant, asym_matches_transcription_and_zero_sign)
{
    enum { N = 2048, T = 5 };
    static float x[T * N];
    static int8_t q[T * N], qr[N];
    float s[T], b[T];
    for (int i = 0; i < T * N; i++) x[i] = rndf(-3.0f, 5.0f) * (i % 7 == 0 ? 10.0f : 1.0f);
    flx_emu_quant_asym(q, s, b, x, T, N, 4, &FP_GLIBC);
    for (int t = 0; t < T; t++) {
        float sr, br;
        ref_quant_asym(qr, &sr, &br, x + t * N, N);
        cr_assert_eq(fbits(s[t]), fbits(sr));
        cr_assert_eq(fbits(b[t]), fbits(br));
        cr_assert_eq(memcmp(q + t * N, qr, N), 0);
        for (int k = 0; k < N; k++) {
            int v = flx_emu_pattern_value(q[t * N + k], 4, 1);
            cr_assert(v >= 0 && v <= 15);
        }
    }
    /* +0 seen before -0: the first stays the minimum */
    float z[3] = { 0.0f, -0.0f, 1.0f };
    flx_emu_quant_asym(q, s, b, z, 1, 3, 4, &FP_GLIBC);
    cr_assert_eq(fbits(b[0]), 0u);
    float z2[3] = { -0.0f, 0.0f, 1.0f };
    flx_emu_quant_asym(q, s, b, z2, 1, 3, 4, &FP_GLIBC);
    cr_assert_eq(fbits(b[0]), 0x80000000u);
}

Test(emu_quant, rounding_matches_roundf_everywhere_it_matters)
{
    /* ties, near-ties, large values, negative zero side, NaN */
    float v[] = { 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, 0.49999997f, -0.49999997f, 1e-30f,
                  8388607.5f, 8388608.0f, 1e9f, -1e9f, 3e9f, -3e9f, 127.5f, -128.5f, 254.5f,
                  NAN, INFINITY };
    float one = 1.0f;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int8_t q;
        flx_emu_quant_static(&q, &v[i], 1, 1, 1, &one, 1.0f, 8, 1, &FP_GLIBC);
        int32_t r = flx_emu_float_to_int(roundf(v[i]));
        int32_t want = r < -128 ? -128 : r > 127 ? 127 : r;
        cr_assert_eq(q, want, "v=%a q=%d want=%d", (double)v[i], q, want);
    }
    for (int i = 0; i < 200000; i++) {
        float x = rndf(-300.0f, 300.0f);
        int8_t q;
        flx_emu_quant_static(&q, &x, 1, 1, 1, &one, 1.0f, 8, 0, &FP_GLIBC);
        int32_t r = (int32_t)roundf(x);
        if (r > 255) r = 255;
        cr_assert_eq(q, (int8_t)(uint8_t)(r & 0xff), "x=%a", (double)x);
    }
}

Test(emu_quant, sym_branch)
{
    float x[4] = { -3.5f, 1.0f, 0.25f, 7.0f };
    int8_t q[4];
    float s;
    flx_emu_quant_sym(q, &s, x, 1, 4, 4, &FP_GLIBC);
    cr_assert_eq(s, 1.0f);                          /* 7 / 7 */
    cr_assert_eq(q[0], -4);                         /* round(-3.5) = -4 (half away) */
    cr_assert_eq(q[1], 1);
    cr_assert_eq(q[2], 0);
    cr_assert_eq(q[3], 7);
}

Test(emu_quant, dequant_operation_order)
{
    int32_t acc[2] = { 3, 1234567 };
    float s[1] = { 0.5f }, b[1] = { 1.0f }, ws[2] = { 2.0f, 0.1f }, wsum[2] = { 0.25f, 0.3f };
    float y[2];
    flx_emu_dequant(y, acc, s, b, ws, wsum, 1, 2, &FP_GLIBC);
    cr_assert_eq(y[0], 3.25f);
    float t = (float)1234567 * 0.5f;
    t = t * 0.1f;
    float u = 1.0f * 0.3f;
    cr_assert_eq(fbits(y[1]), fbits(t + u));
    /* (acc*s)*ws is not acc*(s*ws) in float: find a case that shows the order matters */
    int found = 0;
    for (int i = 0; i < 1000 && !found; i++) {
        int32_t a = (int32_t)(rnd32() % 200000) - 100000;
        float sv = rndf(0.001f, 0.1f), wv = rndf(0.001f, 0.02f), yv, zero = 0.0f;
        flx_emu_dequant(&yv, &a, &sv, &zero, &wv, &zero, 1, 1, &FP_GLIBC);
        float other = (float)a * (sv * wv);
        cr_assert_eq(fbits(yv), fbits(((float)a * sv) * wv + 0.0f * 0.0f));
        found = fbits(yv) != fbits(other);
    }
    cr_assert(found);
    /* symmetric form */
    flx_emu_dequant(y, acc, s, NULL, ws, NULL, 1, 1, &FP_GLIBC);
    cr_assert_eq(y[0], 3.0f);
    /* long rows (the vectorized loop) give every element's four operations */
    enum { N = 1003 };
    static int32_t la[2 * N];
    static float lws[N], lwsum[N], ly[2 * N], lz[2 * N];
    float ls[2] = { rndf(0.01f, 0.2f), rndf(0.01f, 0.2f) }, lb[2] = { rndf(-3.0f, 0.0f), rndf(-3.0f, 0.0f) };
    for (int i = 0; i < 2 * N; i++) la[i] = (int32_t)(rnd32() % 2000001) - 1000000;
    for (int o = 0; o < N; o++) { lws[o] = rndf(0.001f, 0.05f); lwsum[o] = rndf(-40.0f, 40.0f); }
    flx_emu_dequant(ly, la, ls, lb, lws, lwsum, 2, N, &FP_GLIBC);
    flx_emu_dequant(lz, la, ls, lb, lws, lwsum, 2, N, &FP_FTZ);       /* the scalar path */
    for (int t = 0; t < 2; t++)
        for (int o = 0; o < N; o++) {
            float v = (float)la[t * N + o] * ls[t];
            v = v * lws[o];
            float u = lb[t] * lwsum[o];
            cr_assert_eq(fbits(ly[t * N + o]), fbits(v + u), "t=%d o=%d", t, o);
            cr_assert_eq(fbits(lz[t * N + o]), fbits(v + u));
        }
}

Test(emu_quant, static_quant_clamps_and_unsigned_patterns)
{
    /* 2 heads of 4; signed INT8 with mha factor 8: divisor = 8 * 0.5 = 4 */
    float x[8] = { 4.0f, -600.0f, 600.0f, 2.0f, 1.0f, 300.0f, -1.0f, 0.6f };
    float scale[2] = { 0.5f, 1.0f };
    int8_t q[8];
    flx_emu_quant_static(q, x, 1, 2, 4, scale, 8.0f, 8, 1, &FP_GLIBC);
    int8_t want[8] = { 1, -128, 127, 1 /* round(0.5) */, 0 /* round(0.125) */, 38, 0, 0 };
    for (int i = 0; i < 8; i++) cr_assert_eq(q[i], want[i], "i=%d q=%d", i, q[i]);
    /* unsigned P: min(r, 255), no lower clamp; 200 travels as -56 */
    float p[4] = { 200.0f, 300.0f, 0.0f, 254.6f };
    float one[1] = { 1.0f };
    flx_emu_quant_static(q, p, 1, 1, 4, one, 1.0f, 8, 0, &FP_GLIBC);
    cr_assert_eq(q[0], -56);
    cr_assert_eq(flx_emu_pattern_value(q[0], 8, 1), 200);
    cr_assert_eq(flx_emu_pattern_value(q[1], 8, 1), 255);
    cr_assert_eq(q[2], 0);
    cr_assert_eq(flx_emu_pattern_value(q[3], 8, 1), 255);
    /* product first, then one division: x / (f*s), not (x / f) / s (with
     * f = 8 both agree since /8 is exact; a factor of 3 shows the order) */
    int found = 0;
    for (int i = 0; i < 200000 && !found; i++) {
        float sc = rndf(0.01f, 0.02f);
        float v = ((float)(int)rndf(-100.0f, 100.0f) + 0.5f) * (3.0f * sc);  /* near a tie */
        int8_t qq;
        flx_emu_quant_static(&qq, &v, 1, 1, 1, &sc, 3.0f, 8, 1, &FP_GLIBC);
        float r1 = roundf(v / (3.0f * sc));
        float r2 = roundf((v / 3.0f) / sc);
        cr_assert_eq(qq, (int8_t)(r1 > 127 ? 127 : r1 < -128 ? -128 : r1));
        found = r1 != r2;
    }
    cr_assert(found);
}

/* The static quantizer on whole rows (its 8-lane path) against a plain
 * transcription of the reference: q = clamp((int)roundf(x / (f * s))),
 * wrapped to ap_int<bits>, for Q/K/V-like heads (signed, with the factor)
 * and P-like rows (unsigned 8 bit), with ties, huge values and NaN mixed in. */
static int8_t ref_static(float x, float div, int bits, int is_signed)
{
    float r = roundf(x / div);
    int32_t sb = is_signed ? (1 << (bits - 1)) : (1 << bits), v;
    if (isnan(r) || fabsf(r) > 2147483520.0f) v = INT32_MIN;   /* (int) of NaN / out of range */
    else v = (int32_t)r;
    if (is_signed) v = v < -sb ? -sb : v > sb - 1 ? sb - 1 : v;
    else if (v > sb - 1) v = sb - 1;
    return (int8_t)flx_emu_wrap(v, bits);
}

Test(emu_quant, static_rows_match_the_scalar_reference)
{
    enum { T = 7, H = 4, D = 67 };   /* 67: eight 8-lane blocks and a tail per head */
    static float x[T * H * D];
    static int8_t q[T * H * D];
    float sc[H] = { 0.0123f, 0.031f, 0.0007f, 0.25f };
    const int cases[3][3] = { { 8, 1, 8 }, { 8, 0, 1 }, { 4, 1, 3 } };   /* bits, signed, factor */
    for (int c = 0; c < 3; c++) {
        const int bits = cases[c][0], sgn = cases[c][1];
        const float f = (float)cases[c][2];
        for (int i = 0; i < T * H * D; i++) {
            int h = (i / D) % H;
            float div = f * sc[h];
            switch (i % 11) {
            case 0: x[i] = ((float)(int)rndf(-300.0f, 300.0f) + 0.5f) * div; break;   /* near ties */
            case 1: x[i] = sgn ? rndf(-1e12f, 1e12f) : rndf(0.0f, 1e12f); break;   /* huge */
            default: x[i] = sgn ? rndf(-200.0f, 200.0f) * div : rndf(0.0f, 300.0f) * div; break;
            }
        }
        x[5 * D + 3] = NAN;   /* one NaN: its block takes the scalar path */
        flx_emu_quant_static(q, x, T, H, D, sc, f, bits, sgn, &FP_GLIBC);
        for (int i = 0; i < T * H * D; i++) {
            float div = f * sc[(i / D) % H];
            cr_assert_eq(q[i], ref_static(x[i], div, bits, sgn), "case %d element %d: x %g, q %d", c, i,
                         (double)x[i], q[i]);
        }
    }
}

Test(emu_quant, static_dequant_gqa_heads)
{
    /* 8 query heads over 2 weight heads: head h uses w_s[h / 4] */
    int32_t acc[8];
    float in_s[8], w_s[2] = { 2.0f, 3.0f }, y[8];
    for (int h = 0; h < 8; h++) { acc[h] = h + 1; in_s[h] = 0.5f * (float)(h + 1); }
    flx_emu_dequant_static(y, acc, 1, 8, 1, in_s, w_s, 2, &FP_GLIBC);
    for (int h = 0; h < 8; h++) {
        float want = ((float)(h + 1) * (0.5f * (float)(h + 1))) * (h < 4 ? 2.0f : 3.0f);
        cr_assert_eq(y[h], want);
    }
}

/* ------------------------------------------------------------------ GEMMs */

static void ref_gemm(int64_t *out, const int8_t *a, int a_uint, const int8_t *w, int T, int O, int K)
{
    for (int o = 0; o < O; o++)
        for (int t = 0; t < T; t++) out[t * O + o] = 0;
    for (int k = 0; k < K; k++)
        for (int o = 0; o < O; o++)
            for (int t = 0; t < T; t++) {
                int av = a_uint ? (a[t * K + k] & 15) : a[t * K + k];
                out[t * O + o] += (int64_t)av * w[o * K + k];
            }
}

Test(emu_gemm, i4_matches_transcription_and_thread_count)
{
    enum { T = 9, O = 37, K = 300 };
    static int8_t a[T * K], w[O * K];
    static int32_t acc1[T * O], acc2[T * O], acc0[T * O];
    static int64_t want[T * O];
    for (int i = 0; i < T * K; i++) a[i] = (int8_t)((int)(rnd32() % 16) - 8);  /* patterns */
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)((int)(rnd32() % 16) - 8);
    for (int is_uint = 0; is_uint < 2; is_uint++) {
        ref_gemm(want, a, is_uint, w, T, O, K);
        flx_pool *p1 = flx_pool_create(1), *p2 = flx_pool_create(2);
        cr_assert_eq(flx_emu_gemm_i4(acc0, a, is_uint, w, T, O, K, 19, NULL), 0);
        cr_assert_eq(flx_emu_gemm_i4(acc1, a, is_uint, w, T, O, K, 19, p1), 0);
        cr_assert_eq(flx_emu_gemm_i4(acc2, a, is_uint, w, T, O, K, 19, p2), 0);
        flx_pool_free(p1);
        flx_pool_free(p2);
        for (int i = 0; i < T * O; i++) cr_assert_eq(acc0[i], want[i]);
        /* the float (sgemm, T >= 8) and integer (T < 8) paths agree */
        for (int t = 0; t < T; t++) {
            int32_t row[O];
            cr_assert_eq(flx_emu_gemm_i4(row, a + t * K, is_uint, w, 1, O, K, 19, NULL), 0);
            cr_assert_eq(memcmp(row, acc0 + t * O, sizeof row), 0);
        }
        cr_assert_eq(memcmp(acc0, acc1, sizeof acc0), 0);
        cr_assert_eq(memcmp(acc0, acc2, sizeof acc0), 0);
    }
}

Test(emu_gemm, vnni_sgemm_and_integer_paths_agree)
{
    enum { T = 13, O = 37, K = 301 };
    static int8_t a[T * K], w[O * K];
    static int32_t v[T * O], f[T * O], r[O];
    static int64_t want[T * O];
    for (int i = 0; i < T * K; i++) a[i] = (int8_t)((int)(rnd32() % 16) - 8);
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)((int)(rnd32() % 16) - 8);
    ref_gemm(want, a, 1, w, T, O, K);
    if (flx_emu_vnni_available()) {
        cr_assert_eq(flx_emu_gemm_u4i4_vnni(v, a, w, T, O, K, NULL), 0);
        for (int i = 0; i < T * O; i++) cr_assert_eq(v[i], want[i], "vnni i=%d", i);
        cr_assert_eq(flx_emu_gemv_u4i4_vnni(v, a, w, T, O, K, NULL), 0);
        for (int i = 0; i < T * O; i++) cr_assert_eq(v[i], want[i], "vnni gemv i=%d", i);
        /* a weight byte outside -8..7 contributes its sign-extended low nibble */
        int8_t a1[K], w1[K];
        for (int k = 0; k < K; k++) { a1[k] = 1; w1[k] = 0; }
        w1[0] = 0x1F;    /* low nibble 15 -> -1 */
        w1[1] = 0x07;
        int32_t r1;
        cr_assert_eq(flx_emu_gemv_u4i4_vnni(&r1, a1, w1, 1, 1, K, NULL), 0);
        cr_assert_eq(r1, 6);
        cr_assert_eq(flx_emu_gemm_u4i4_vnni(v, a1, w1, 1, 1, K, NULL), 0);
        cr_assert_eq(v[0], 6);
    } else {
        cr_log_info("no AVX-512 VNNI on this CPU: VNNI path not exercised");
    }
    cr_assert_eq(flx_emu_gemm_i4(v, a, 1, w, T, O, K, 19, NULL), 0);   /* default path */
    setenv("FLXEMU_NO_VNNI", "1", 1);
    cr_assert_eq(flx_emu_gemm_i4(f, a, 1, w, T, O, K, 19, NULL), 0);   /* sgemm path */
    unsetenv("FLXEMU_NO_VNNI");
    cr_assert_eq(memcmp(v, f, sizeof v), 0);
    for (int t = 0; t < T; t++) {                         /* VNNI GEMV, then integer path */
        cr_assert_eq(flx_emu_gemm_i4(r, a + t * K, 1, w, 1, O, K, 19, NULL), 0);
        cr_assert_eq(memcmp(r, v + t * O, sizeof r), 0);
        setenv("FLXEMU_NO_VNNI", "1", 1);
        cr_assert_eq(flx_emu_gemm_i4(r, a + t * K, 1, w, 1, O, K, 19, NULL), 0);
        unsetenv("FLXEMU_NO_VNNI");
        cr_assert_eq(memcmp(r, v + t * O, sizeof r), 0);
    }
    for (int i = 0; i < T * O; i++) cr_assert_eq(v[i], want[i]);
}

Test(emu_gemm, unsigned_pattern_minus_one_is_fifteen)
{
    int8_t a[2] = { -1, -8 }, w[2] = { 1, 1 };
    int32_t acc;
    flx_emu_gemm_i4(&acc, a, 1, w, 1, 1, 2, 19, NULL);
    cr_assert_eq(acc, 15 + 8);
    flx_emu_gemm_i4(&acc, a, 0, w, 1, 1, 2, 19, NULL);
    cr_assert_eq(acc, -1 - 8);
}

/* The decode GEMV on the packed weights (flx_emu_wpack) against the
 * transcription and flx_emu_gemm_i4: odd widths and heights (partial
 * 32-row blocks, inputs padded to 64), row ranges that cut blocks, extreme
 * codes (-8 everywhere with activations 15), out-of-range counting, and a
 * weight byte outside -8..7 (its low nibble counts). */
Test(emu_gemm, packed_i4_gemv_matches_transcription)
{
    enum { O = 45 };
    static const int widths[] = { 1, 2, 3, 63, 64, 127, 128, 129, 255, 300, 2048, 2049, 8192 };
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int K = widths[wi];
        int8_t *a = malloc(K), *w = malloc((size_t)O * K);
        uint8_t *ap = malloc((size_t)flx_emu_i4p_act_bytes(K));
        int64_t want[O];
        int32_t r[O], v[O], g[O];
        for (int pass = 0; pass < 3; pass++) {
            for (int k = 0; k < K; k++) a[k] = pass == 2 ? -1 : (int8_t)((int)(rnd32() % 16) - 8);
            for (int i = 0; i < O * K; i++) w[i] = pass == 2 ? -8 : (int8_t)((int)(rnd32() % 16) - 8);
            if (pass == 1) w[O * K - 1] = 7;
            ref_gemm(want, a, 1, w, 1, O, K);
            if (pass == 1) w[O * K - 1] = 0x37;        /* only the low nibble (7) counts */
            flx_emu_wpack wp;
            cr_assert_eq(flx_emu_wpack_init(&wp, w, O, K), 0);
            flx_emu_i4p_act(ap, a, K);
            cr_assert_eq(flx_emu_gemv_i4p(r, ap, &wp, 0, O, 31), 0);
            for (int o = 0; o < O; o++) cr_assert_eq(r[o], want[o], "K=%d pass %d o=%d", K, pass, o);
            cr_assert_eq(flx_emu_gemm_i4(g, a, 1, w, 1, O, K, 31, NULL), 0);
            cr_assert_eq(memcmp(g, r, sizeof r), 0);
            if (flx_emu_vnni_available()) {
                memset(v, 0x55, sizeof v);
                cr_assert_eq(flx_emu_gemv_i4p_vnni(v, ap, &wp, 0, 5, 31), 0);
                cr_assert_eq(flx_emu_gemv_i4p_vnni(v, ap, &wp, 5, 37, 31), 0);
                cr_assert_eq(flx_emu_gemv_i4p_vnni(v, ap, &wp, 37, O, 31), 0);
                cr_assert_eq(memcmp(v, r, sizeof r), 0, "K=%d pass %d", K, pass);
            }
            /* the same sums into a buffer of the range alone (both forms) */
            for (int vn = 0; vn <= flx_emu_vnni_available(); vn++) {
                int32_t part[O];
                memset(part, 0x55, sizeof part);
                cr_assert_eq(flx_emu_gemv_i4p_rows(part, ap, &wp, 7, 40, 31, vn), 0);
                cr_assert_eq(memcmp(part, r + 7, 33 * sizeof *r), 0, "K=%d pass %d vnni %d", K, pass, vn);
                cr_assert_eq(part[33], 0x55555555);         /* nothing past the range */
            }
            /* out-of-range sums counted: with acc_bits so small every
             * non-small sum leaves the range */
            int64_t n_out = 0;
            for (int o = 0; o < O; o++) n_out += want[o] < -8 || want[o] >= 8;
            cr_assert_eq(flx_emu_gemv_i4p(r, ap, &wp, 0, O, 4), n_out);
            if (flx_emu_vnni_available()) cr_assert_eq(flx_emu_gemv_i4p_vnni(v, ap, &wp, 0, O, 4), n_out);
            flx_emu_wpack_free(&wp);
        }
        if (K == 8192) cr_assert_eq(r[0], 15 * -8 * 8192);
        free(a); free(w); free(ap);
    }
    if (!flx_emu_vnni_available()) cr_log_info("no AVX-512 VNNI on this CPU: packed VNNI GEMV not exercised");
}

/* Packing in pieces (blocks in any split, as pool tasks do) gives the bytes
 * of one whole pack, and every nibble holds its code. */
Test(emu_gemm, weight_packing_in_blocks_equals_whole)
{
    enum { O = 100, K = 200 };
    static int8_t w[O * K];
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)((int)(rnd32() % 16) - 8);
    flx_emu_wpack whole, part;
    cr_assert_eq(flx_emu_wpack_init(&whole, w, O, K), 0);
    cr_assert_eq(flx_emu_wpack_alloc(&part, O, K), 0);
    const size_t bytes = (size_t)(whole.o32 / 32 * whole.k64 * 16);
    memset(part.nib, 0xA5, bytes);
    flx_emu_wpack_fill(&part, w, 3, 4);
    flx_emu_wpack_fill(&part, w, 0, 1);
    flx_emu_wpack_fill(&part, w, 1, 3);
    cr_assert_eq(memcmp(whole.nib, part.nib, bytes), 0);
    for (int o = 0; o < whole.o32; o++)
        for (int k = 0; k < whole.k64; k++) {
            uint8_t byte = whole.nib[((o / 32) * (whole.k64 / 4) + k / 4) * 64 + 4 * (o % 16) + k % 4];
            int code = (((o % 32) < 16 ? byte : byte >> 4) & 15) ^ 8;
            int want = o < O && k < K ? w[o * K + k] : 0;
            cr_assert_eq(code - 8, want, "o=%d k=%d", o, k);
        }
    flx_emu_wpack_free(&whole);
    flx_emu_wpack_free(&part);
}

Test(emu_gemm, accumulator_limits_and_documented_wrap)
{
    enum { K = 8192 };
    static int8_t a[K], w[2 * K];
    static int32_t acc[2];
    /* worst legal sums at K = 8192: 15 * -8 * 8192 = -983040 and 15*7*8192 */
    for (int k = 0; k < K; k++) { a[k] = -1; w[k] = -8; w[K + k] = 7; }
    cr_assert_eq(flx_emu_gemm_i4(acc, a, 1, w, 1, 2, K, 21, NULL), 0);   /* L = 13 */
    cr_assert_eq(acc[0], -983040);
    cr_assert_eq(acc[1], 860160);
    /* the same input on an L = 11 engine (19 bits) wraps: the even column is
     * -983040 mod 2^19 = 65536 and its carry (-2) lands in the odd column */
    for (int k = 0; k < K; k++) w[K + k] = 0;
    w[K] = 5;                                    /* odd column exact sum = 5*15 = 75 */
    cr_assert_eq(flx_emu_gemm_i4(acc, a, 1, w, 1, 2, K, 19, NULL), 1);
    cr_assert_eq(acc[0], 65536);
    cr_assert_eq(acc[1], 75 - 2);
    /* same through the float path (8 identical tokens) */
    static int8_t a8[8 * K];
    static int32_t acc8[16];
    for (int i = 0; i < 8 * K; i++) a8[i] = -1;
    cr_assert_eq(flx_emu_gemm_i4(acc8, a8, 1, w, 8, 2, K, 19, NULL), 8);
    for (int t = 0; t < 8; t++) {
        cr_assert_eq(acc8[2 * t], 65536);
        cr_assert_eq(acc8[2 * t + 1], 73);
    }
}

Test(emu_gemm, int8_attention_products)
{
    enum { NQ = 3, NK = 21, D = 64 };
    static int8_t q[NQ * D], k[NK * D], p[NQ * NK];
    static int32_t s[NQ * NK], o[NQ * D];
    for (int i = 0; i < NQ * D; i++) q[i] = (int8_t)(rnd32() & 0xff);
    for (int i = 0; i < NK * D; i++) k[i] = (int8_t)(rnd32() & 0xff);
    for (int i = 0; i < NQ * NK; i++) p[i] = (int8_t)(rnd32() & 0xff);
    cr_assert_eq(flx_emu_qk_i8(s, NK, q, D, k, D, NQ, NK, D, 22), 0);
    cr_assert_eq(flx_emu_av_u8i8(o, D, p, NK, 1, k, D, NQ, NK, D, 26), 0);
    for (int i = 0; i < NQ; i++) {
        for (int j = 0; j < NK; j++) {
            int64_t want = 0;
            for (int d = D - 1; d >= 0; d--) want += q[i * D + d] * k[j * D + d];
            cr_assert_eq(s[i * NK + j], want);
        }
        for (int d = 0; d < D; d++) {
            int64_t want = 0;
            for (int j = 0; j < NK; j++) want += (int64_t)(uint8_t)p[i * NK + j] * k[j * D + d];
            cr_assert_eq(o[i * D + d], want);
        }
    }
    /* extreme QK: 64 * (-128 * -128) = 2^20 fits 22 bits */
    memset(q, -128, D);
    memset(k, -128, D);
    cr_assert_eq(flx_emu_qk_i8(s, 1, q, D, k, D, 1, 1, D, 22), 0);
    cr_assert_eq(s[0], 1 << 20);
    cr_assert_eq(flx_emu_qk_i8(s, 1, q, D, k, D, 1, 1, D, 21), 1);  /* wraps at 21 bits */
    cr_assert_eq(s[0], -(1 << 20));
}

/* The decode step's VNNI attention products equal the generic kernels for
 * any shape: key counts around the 16-key and 4-key blocks, contiguous
 * rows (one KV head of the head-major cache) and strided rows (the middle
 * head of rows holding 3), 1..16 query rows, head_dim 64 and 128 (vector
 * path) and 48 (fallback), extreme bytes, and wrapping at narrow
 * accumulators (results and counts). */
Test(emu_gemm, vnni_attention_products_equal_generic)
{
    static const int nks[] = { 1, 3, 4, 15, 16, 17, 33, 100, 701 };
    static const int hds[] = { 64, 128, 48 };
    for (int heads = 1; heads <= 3; heads += 2)
        for (size_t hi = 0; hi < 3; hi++)
            for (size_t ki = 0; ki < sizeof nks / sizeof *nks; ki++)
                for (int nq = 1; nq <= 16; nq = nq < 4 ? nq + 1 : nq * 4) {
                    const int D = hds[hi], NK = nks[ki], LD = heads * D;    /* KV heads per row */
                    int8_t *q = malloc((size_t)nq * D), *k = malloc((size_t)NK * LD), *p = malloc((size_t)nq * NK);
                    int32_t *s1 = malloc((size_t)nq * NK * 4), *s2 = malloc((size_t)nq * NK * 4);
                    int32_t *o1 = malloc((size_t)nq * D * 4), *o2 = malloc((size_t)nq * D * 4);
                    for (int pass = 0; pass < 2; pass++) {
                        for (int i = 0; i < nq * D; i++) q[i] = pass ? -128 : (int8_t)(rnd32() & 0xff);
                        for (int i = 0; i < NK * LD; i++) k[i] = pass ? -128 : (int8_t)(rnd32() & 0xff);
                        for (int i = 0; i < nq * NK; i++) p[i] = pass ? -1 : (int8_t)(rnd32() & 0xff);
                        for (int bits = 12; bits <= 27; bits += 5) {
                            const int8_t *kh = k + (heads - 1) / 2 * D;     /* the middle KV head */
                            int64_t w1 = flx_emu_qk_i8(s1, NK, q, D, kh, LD, nq, NK, D, bits);
                            int64_t w2 = flx_emu_qk_i8_vnni(s2, NK, q, D, kh, LD, nq, NK, D, bits);
                            cr_assert_eq(w1, w2, "qk D=%d NK=%d nq=%d bits=%d", D, NK, nq, bits);
                            cr_assert_eq(memcmp(s1, s2, (size_t)nq * NK * 4), 0, "qk D=%d NK=%d nq=%d", D, NK, nq);
                            w1 = flx_emu_av_u8i8(o1, D, p, NK, 1, kh, LD, nq, NK, D, bits);
                            w2 = flx_emu_av_u8i8_vnni(o2, D, p, NK, 1, kh, LD, nq, NK, D, bits);
                            cr_assert_eq(w1, w2, "av D=%d NK=%d nq=%d bits=%d", D, NK, nq, bits);
                            cr_assert_eq(memcmp(o1, o2, (size_t)nq * D * 4), 0, "av D=%d NK=%d nq=%d", D, NK, nq);
                            if (pass && bits == 27 && D == 64) {
                                cr_assert_eq(s2[0], 1 << 20);            /* 64 * 128 * 128 */
                                cr_assert_eq(o2[0], -255 * 128 * NK);
                            }
                        }
                    }
                    free(q); free(k); free(p); free(s1); free(s2); free(o1); free(o2);
                }
    if (!flx_emu_vnni_available()) cr_log_info("no AVX-512 VNNI on this CPU: VNNI attention not exercised");
}

Test(emu_gemm, int8_float_paths_match_integer_sums)
{
    enum { NQ = 70, NK = 90, D = 64 };
    static int8_t q[NQ * D], k[NK * D], p[NQ * NK];
    static int32_t s[NQ * NK], o[NQ * D];
    for (int i = 0; i < NQ * D; i++) q[i] = (int8_t)(rnd32() & 0xff);
    for (int i = 0; i < NK * D; i++) k[i] = (int8_t)(rnd32() & 0xff);
    for (int i = 0; i < NQ * NK; i++) p[i] = (int8_t)(rnd32() % 8 ? 0 : rnd32() & 0xff);
    cr_assert_eq(flx_emu_qk_i8(s, NK, q, D, k, D, NQ, NK, D, 22), 0);
    cr_assert_eq(flx_emu_av_u8i8(o, D, p, NK, 1, k, D, NQ, NK, D, 26), 0);
    for (int i = 0; i < NQ; i++) {
        for (int j = 0; j < NK; j++) {
            int64_t want = 0;
            for (int d = 0; d < D; d++) want += q[i * D + d] * k[j * D + d];
            cr_assert_eq(s[i * NK + j], want);
        }
        for (int d = 0; d < D; d++) {
            int64_t want = 0;
            for (int j = NK - 1; j >= 0; j--) want += (int64_t)(uint8_t)p[i * NK + j] * k[j * D + d];
            cr_assert_eq(o[i * D + d], want);
        }
    }
    /* all-255 rows: sum 22,950 * 128 < 2^24 still qualifies for the float path */
    memset(p, -1, sizeof p);                       /* all 255 */
    cr_assert_eq(flx_emu_av_u8i8(o, D, p, NK, 1, k, D, NQ, NK, D, 26), 0);
    int64_t want = 0;
    for (int j = 0; j < NK; j++) want += 255 * k[j * D + 5];
    cr_assert_eq(o[7 * D + 5], want);
}

Test(emu_gemm, fp32_pe_four_partial_sums_and_dropped_tail)
{
    float x[7] = { 1e8f, 1.0f, -1e8f, 1.0f, 3.0f, 0.5f, 100.0f };
    float w[7] = { 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f };
    float y;
    flx_emu_gemv_f32(&y, x, w, 1, 7, &FP_GLIBC);
    /* p0 = 1e8 + 3, p1 = 1 + 0.5, p2 = -1e8, p3 = 1; element 6 dropped (7/4 = 1 group... */
    /* only 1 group of 4 runs: p = {1e8, 1, -1e8, 1}; (1e8+1) + (-1e8+1) = 0 + ... */
    float want = (1e8f + 1.0f) + (-1e8f + 1.0f);
    cr_assert_eq(y, want);
    cr_assert_eq(y, 0.0f);   /* a sequential sum would give 2 */
    /* random against a transcription that walks groups explicitly */
    enum { O = 5, K = 64 };
    static float xr[K], wr[O * K], yr[O];
    for (int i = 0; i < K; i++) xr[i] = rndf(-1, 1);
    for (int i = 0; i < O * K; i++) wr[i] = rndf(-1, 1);
    flx_emu_gemv_f32(yr, xr, wr, O, K, &FP_GLIBC);
    for (int o = 0; o < O; o++) {
        float p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (int g = 0; g < K; g += 4) {
            p0 = p0 + xr[g] * wr[o * K + g];
            p1 = p1 + xr[g + 1] * wr[o * K + g + 1];
            p2 = p2 + xr[g + 2] * wr[o * K + g + 2];
            p3 = p3 + xr[g + 3] * wr[o * K + g + 3];
        }
        cr_assert_eq(fbits(yr[o]), fbits((p0 + p1) + (p2 + p3)));
    }
}

/* ---------------------------------------------------------------- softmax */

static void ref_softmax_groups(float *x, int n, const flx_emu_fp *fp)
{
    float m = -1e32f;
    for (int k = 0; k < n; k++) m = x[k] > m ? x[k] : m;
    float S0 = 0, S1 = 0, S2 = 0, S3 = 0;
    int k = 0;
    for (; k + 4 <= n; k += 4) {
        x[k] = flx_emu_exp(fp, x[k] - m);         S0 = S0 + x[k];
        x[k + 1] = flx_emu_exp(fp, x[k + 1] - m); S1 = S1 + x[k + 1];
        x[k + 2] = flx_emu_exp(fp, x[k + 2] - m); S2 = S2 + x[k + 2];
        x[k + 3] = flx_emu_exp(fp, x[k + 3] - m); S3 = S3 + x[k + 3];
    }
    /* predicated tail */
    if (k < n)     { x[k] = flx_emu_exp(fp, x[k] - m);         S0 = S0 + x[k]; }
    if (k + 1 < n) { x[k + 1] = flx_emu_exp(fp, x[k + 1] - m); S1 = S1 + x[k + 1]; }
    if (k + 2 < n) { x[k + 2] = flx_emu_exp(fp, x[k + 2] - m); S2 = S2 + x[k + 2]; }
    float r = 1.0f / ((S0 + S1) + (S2 + S3));
    for (int i = 0; i < n; i++) x[i] = x[i] * r;
}

Test(emu_softmax, hand_cases_and_mask)
{
    float x[4] = { 0, 0, 0, 0 };
    flx_emu_softmax_pref(x, 4, &FP_GLIBC);
    for (int i = 0; i < 4; i++) cr_assert_eq(x[i], 0.25f);
    /* causal mask then softmax: query 1 of 4 keys sees keys 0 and 1 */
    float s[8] = { 5, 5, 9, 9, 1, 2, 3, 4 };
    flx_emu_causal_mask(s, 4, 2, 4, 1);
    cr_assert_eq(s[2], -1e32f);
    cr_assert_eq(s[3], -1e32f);
    cr_assert_eq(s[6], 3.0f);          /* query pos 2 keeps key 2 */
    cr_assert_eq(s[7], -1e32f);
    flx_emu_softmax_pref(s, 4, &FP_GLIBC);
    cr_assert_eq(s[0], 0.5f);
    cr_assert_eq(s[1], 0.5f);
    cr_assert_eq(s[2], 0.0f);          /* expf(-1e32 - 5) = 0 exactly */
}

Test(emu_softmax, decode_tail_and_prefill_tail_quirk)
{
    for (int n = 1; n <= 13; n++) {
        float x[16], y[16], z[16];
        for (int i = 0; i < n; i++) x[i] = y[i] = z[i] = rndf(-6.0f, 6.0f);
        flx_emu_softmax_dec(x, n, &FP_FLX);
        ref_softmax_groups(y, n, &FP_FLX);
        for (int i = 0; i < n; i++) cr_assert_eq(fbits(x[i]), fbits(y[i]), "n=%d i=%d", n, i);
        /* prefill: the n % 4 tail keeps its raw scores */
        flx_emu_softmax_pref(z, n, &FP_FLX);
        int full = n - n % 4;
        float zz[16];
        for (int i = 0; i < n; i++) zz[i] = z[i];
        for (int i = full; i < n; i++) cr_assert_lt(zz[i], 7.0f);  /* raw score range */
        if (n % 4 == 0)
            for (int i = 0; i < n; i++) cr_assert_eq(fbits(z[i]), fbits(x[i]));
    }
    /* prefill with n = 7: the last 3 entries are untouched */
    float t[7] = { 1, 2, 3, 4, -5, 6, -7 };
    flx_emu_softmax_pref(t, 7, &FP_GLIBC);
    cr_assert_eq(t[4], -5.0f);
    cr_assert_eq(t[5], 6.0f);
    cr_assert_eq(t[6], -7.0f);
}

Test(emu_softmax, block_partitioned_tree)
{
    enum { N = 64, B = 4 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = y[i] = rndf(-10.0f, 10.0f);
    flx_emu_softmax_block(x, N, B, 45.254833f, &FP_GLIBC);
    /* transcription: lanes as separate 2-D rows */
    float m = -1e32f;
    for (int i = 0; i < N; i++) if (y[i] > m) m = y[i];
    float tot = 0.0f;
    for (int lane = 0; lane < B; lane++) {
        float S[4] = { 0, 0, 0, 0 };
        for (int beat = 0; beat < N / B; beat++) {
            float *v = &y[lane * (N / B) + beat];
            *v = expf((*v - m) / 45.254833f);
            S[beat % 4] = S[beat % 4] + *v;
        }
        tot = tot + ((S[0] + S[1]) + (S[2] + S[3]));
    }
    float r = 1.0f / tot;
    for (int i = 0; i < N; i++) cr_assert_eq(fbits(x[i]), fbits(y[i] * r));
}

/* ---------------------------------------------------------------- RMSNorm */

Test(emu_norm, prefill_and_decode_trees)
{
    enum { D = 2048, BT = 8 };
    static float x[D], g[D], yp[D], yd[D];
    int differ_seen = 0;
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < D; i++) { x[i] = rndf(-2.0f, 2.0f); g[i] = trial ? rndf(0.5f, 1.5f) : 1.0f; }
        flx_emu_rmsnorm_pref(yp, x, g, 1, D, 1e-5f, &FP_GLIBC);
        flx_emu_rmsnorm_dec(yd, x, g, D, BT, 1e-5f, &FP_GLIBC);
        /* transcription: strided partial sums */
        float s[4];
        for (int j = 0; j < 4; j++) {
            s[j] = 0.0f;
            for (int k = j; k < D; k += 4) s[j] = s[j] + x[k] * x[k];
        }
        float r = 1.0f / sqrtf(((s[0] + s[1]) + (s[2] + s[3])) / 2048.0f + 1e-5f);
        float tot = 0.0f;
        for (int lane = 0; lane < BT; lane++) {
            float ls[4] = { 0, 0, 0, 0 };
            for (int k = 0; k < D / BT; k++) {
                float v = x[lane * (D / BT) + k];
                ls[k % 4] = ls[k % 4] + v * v;
            }
            tot = tot + ((ls[0] + ls[1]) + (ls[2] + ls[3]));
        }
        float rd = 1.0f / sqrtf(tot / 2048.0f + 1e-5f);
        for (int i = 0; i < D; i++) {
            cr_assert_eq(fbits(yp[i]), fbits((x[i] * r) * g[i]));
            cr_assert_eq(fbits(yd[i]), fbits((x[i] * rd) * g[i]));
        }
        differ_seen |= memcmp(yp, yd, sizeof yp) != 0;
    }
    cr_assert(differ_seen, "prefill and decode trees should differ on some vector (reference-design §6.8)");
}

/* ------------------------------------------------------------------- RoPE */

Test(emu_rope, table_and_rotation)
{
    enum { NP = 64, HD = 64 };
    static float sn[NP * 32], cs[NP * 32], x[2 * HD], y[2 * HD];
    flx_emu_rope_table(sn, cs, NP, HD, NULL);
    cr_assert_eq(sn[0], 0.0f);
    cr_assert_eq(cs[0], 1.0f);
    /* pos 1, k = 1: theta = 10000^(-2/64) */
    cr_assert_eq(sn[32 + 1], (float)sin(pow(10000.0, -2.0 / 64)));
    double inv[32];
    for (int k = 0; k < 32; k++) inv[k] = pow(500000.0, -2.0 * k / 64);
    flx_emu_rope_table(sn, cs, NP, HD, inv);
    cr_assert_eq(cs[7 * 32 + 3], (float)cos(7.0 * inv[3]));
    for (int i = 0; i < 2 * HD; i++) x[i] = rndf(-3, 3);
    flx_emu_rope(y, x, 2, HD, sn, cs, 0, &FP_GLIBC);     /* pos 0 = identity */
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    flx_emu_rope(y, x, 2, HD, sn, cs, 37, &FP_GLIBC);
    for (int h = 0; h < 2; h++)
        for (int d = 0; d < HD; d++) {
            float sv = sn[37 * 32 + d % 32], cv = cs[37 * 32 + d % 32];
            float want = d < 32 ? x[h * HD + d] * cv - x[h * HD + d + 32] * sv
                                : x[h * HD + d - 32] * sv + x[h * HD + d] * cv;
            cr_assert_eq(fbits(y[h * HD + d]), fbits(want));
        }
    flx_emu_rope(x, x, 2, HD, sn, cs, 37, &FP_GLIBC);    /* in place */
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
}

/* -------------------------------------------------------------------- FHT */

/* FlexLLM's constant-geometry network, transcribed from the loop of reference-design §1.11 */
static void ref_fht_network(float *x, int n, int m, float scale)
{
    static float shuf[8192];
    for (int s = 0; s < m; s++) {
        for (int i = 0; i < n; i++) shuf[i] = x[((i << 1) & (n - 1)) | (i >> (m - 1))];
        for (int i = 0; i < n; i += 2) {
            x[i] = shuf[i] + shuf[i + 1];
            x[i + 1] = shuf[i] - shuf[i + 1];
        }
    }
    if (scale > 0) for (int i = 0; i < n; i++) x[i] = x[i] / scale;
}

/* textbook FWHT, stages over bits 0, 1, ..., m-1 */
static void textbook_fht(float *x, int n)
{
    for (int h = 1; h < n; h <<= 1)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* The FHT split for threads: local stages on every aligned chunk, then
 * the finishing stages, equal flx_emu_fht bit for bit for every chunk size
 * (with and without flush-to-zero, with tiny inputs that ftz changes). */
Test(emu_fht, chunked_local_then_finish_equals_whole)
{
    static float x[8192], y[8192];
    for (int mode = 0; mode < 2; mode++) {
        const flx_emu_fp *fp = mode ? &FP_FTZ : &FP_GLIBC;
        for (int64_t c = 2; c <= 8192; c *= 2) {
            for (int i = 0; i < 8192; i++) x[i] = y[i] = i % 97 == 0 ? 1e-39f : rndf(-4, 4);
            cr_assert_eq(flx_emu_fht(x, 8192, 90.50967f, fp), 0);
            for (int64_t a = 0; a < 8192; a += c) cr_assert_eq(flx_emu_fht_local(y + a, c, fp), 0);
            cr_assert_eq(flx_emu_fht_finish(y, 8192, c, 90.50967f, fp), 0);
            cr_assert_eq(memcmp(x, y, sizeof x), 0, "chunk %lld ftz %d", (long long)c, mode);
        }
    }
    cr_assert_eq(flx_emu_fht_local(x, 24, &FP_GLIBC), -1);
    cr_assert_eq(flx_emu_fht_finish(x, 8192, 24, 0.0f, &FP_GLIBC), -1);
    cr_assert_eq(flx_emu_fht_finish(x, 64, 128, 0.0f, &FP_GLIBC), -1);
}

Test(emu_fht, network_order_vs_textbook_order)
{
    static float x[8192], y[8192], z[8192];
    /* hand case: unit vector -> a row of H (all ones for e0) */
    float e[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
    cr_assert_eq(flx_emu_fht(e, 8, 0.0f, &FP_GLIBC), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(e[i], 1.0f);
    float e3[8] = { 0, 0, 0, 1, 0, 0, 0, 0 };            /* H[i][3] = (-1)^popcount(i&3) */
    flx_emu_fht(e3, 8, 0.0f, &FP_GLIBC);
    for (int i = 0; i < 8; i++) cr_assert_eq(e3[i], __builtin_popcount(i & 3) & 1 ? -1.0f : 1.0f);
    cr_assert_eq(flx_emu_fht(e, 6, 0.0f, &FP_GLIBC), -1);
    /* bit-identical to the network at the Llama size, with the R4 scale */
    for (int i = 0; i < 8192; i++) x[i] = y[i] = rndf(-4, 4);
    flx_emu_fht(x, 8192, 90.50967f, &FP_GLIBC);
    ref_fht_network(y, 8192, 13, 90.50967f);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    /* the textbook order 0..m-1 differs in float: find and show one vector */
    int shown = 0;
    for (int trial = 0; trial < 100 && !shown; trial++) {
        for (int i = 0; i < 8; i++) y[i] = z[i] = rndf(-1, 1);
        flx_emu_fht(y, 8, 0.0f, &FP_GLIBC);
        textbook_fht(z, 8);
        for (int i = 0; i < 8; i++)
            if (fbits(y[i]) != fbits(z[i])) {
                cr_log_info("FHT order matters: trial %d output %d: network %a, textbook %a",
                            trial, i, y[i], z[i]);
                shown = 1;
                break;
            }
    }
    cr_assert(shown);
    /* a fixed vector where they differ, checked by hand: x = (1, 2^-24, 2^-24, 0 ...)?
     * stages 1,2 then 0: (x0 + x2) + (x1 + x3) ; textbook: (x0 + x1) + (x2 + x3) */
    float h1[4] = { 1.0f, 0x1p-24f, 0x1p-24f, 0.0f }, h2[4];
    memcpy(h2, h1, sizeof h1);
    flx_emu_fht(h1, 4, 0.0f, &FP_GLIBC);
    textbook_fht(h2, 4);
    /* network: y0 = (1 + 2^-24) + (2^-24 + 0) = 1 + 2^-24 = 1 (ties to even) */
    cr_assert_eq(h1[0], 1.0f);
    /* textbook: y0 = (1 + 2^-24) + (2^-24 + 0) as well -> equal here; y1 differs: */
    /* network y1 = (x0+x2) - (x1+x3) = 1 - 2^-24 ; textbook y1 = (x0-x1) + (x2-x3) = 1 */
    cr_assert_eq(h1[1], 1.0f - 0x1p-24f);
    cr_assert_eq(h2[1], 1.0f);
}

/* --------------------------------------------------------------- sampling */

Test(emu_topk_sampling, ties_earlier_index_wins_and_collapse_gives_zero)
{
    enum { V = 64, B = 4 };
    float l[V];
    flx_emu_topk tk;
    for (int i = 0; i < V; i++) l[i] = 1.5f;               /* collapsed logits */
    cr_assert_eq(flx_emu_topk_sampling(&tk, l, V, B, 5, 0.0f, &FP_GLIBC), 0);
    int32_t want_ids[5] = { 0, 16, 32, 48, 1 };            /* rank-major merge */
    for (int p = 0; p < 5; p++) {
        cr_assert_eq(tk.id[p], want_ids[p]);
        cr_assert_eq(tk.prob[p], 0.2f);
    }
    cr_assert_eq(tk.token, 0);
    cr_assert_eq(tk.selected, 0);
    /* ties inside one lane: the earlier id stays ahead */
    for (int i = 0; i < V; i++) l[i] = -1.0f;
    l[3] = 2.0f; l[10] = 2.0f; l[20] = 1.0f; l[63] = 3.0f;
    flx_emu_topk_sampling(&tk, l, V, B, 5, 0.0f, &FP_GLIBC);
    cr_assert_eq(tk.id[0], 63);
    cr_assert_eq(tk.id[1], 3);
    cr_assert_eq(tk.id[2], 10);
    cr_assert_eq(tk.id[3], 20);
    /* rank-major merge: lane 2's rank-0 entry (id 32, -1.0) went in before
     * lane 0's rank-2 entry (id 0, also -1.0) was offered */
    cr_assert_eq(tk.id[4], 32);
    cr_assert_eq(tk.token, 63);       /* r = 0 selects the argmax */
    /* hand probabilities: e = {1, e^-1, e^-1, e^-2, e^-4}; sum = (1 + e^-1 + e^-4) + (e^-1 + e^-2) */
    float e1 = expf(-1.0f), e2 = expf(-2.0f), e4 = expf(-4.0f);
    float sum = ((1.0f + e1) + e4) + (e1 + e2);
    cr_assert_eq(tk.prob[0], 1.0f / sum);
    cr_assert_eq(tk.prob[3], e2 / sum);
    cr_assert_eq(tk.cdf[1], tk.prob[1] + tk.prob[0]);
    /* threshold: r just below c_1 picks position 1; r >= c_4 picks position 4 */
    flx_emu_topk_sampling(&tk, l, V, B, 5, nextafterf(tk.cdf[1], 0.0f), &FP_GLIBC);
    cr_assert_eq(tk.selected, 1);
    cr_assert_eq(tk.token, 3);
    flx_emu_topk_sampling(&tk, l, V, B, 5, 1.0f, &FP_GLIBC);
    cr_assert_eq(tk.selected, 4);
    cr_assert_eq(flx_emu_topk_sampling(&tk, l, 63, B, 5, 0.0f, &FP_GLIBC), -1);
}

/* transcription: each lane's list by repeated arg-max with a "taken" mask
 * (earliest id among equal values), then merge by insertion */
/* sort_top_k offered every value in id order (the reference's loop), as a
 * check of the sampler's skipping of blocks that cannot enter the list */
static void topk_every_value(float *val, int32_t *id, int k, const float *l, int64_t i0, int64_t n, int ftz)
{
    for (int p = 0; p < k; p++) { val[p] = -1e32f; id[p] = -1; }
    for (int64_t j = i0; j < i0 + n; j++) {
        float v = ftz ? flx_emu_ftz(l[j]) : l[j];
        int p = 0;
        while (p < k && !(v > val[p])) p++;
        if (p == k) continue;
        for (int q = k - 1; q > p; q--) { val[q] = val[q - 1]; id[q] = id[q - 1]; }
        val[p] = v;
        id[p] = (int32_t)j;
    }
}

Test(emu_topk_sampling, block_skipping_offers_every_value)
{
    enum { B = 16 };
    static float l[B * 203];
    const int lens[3] = { 16, 37, 203 };                  /* lane lengths: whole blocks, tails */
    for (int trial = 0; trial < 60; trial++) {
        const int per = lens[trial % 3], V = B * per, k = 1 + trial % 8, ftz = (trial / 3) % 2;
        for (int i = 0; i < V; i++) {
            int kind = (int)rndf(0, 10);
            l[i] = kind == 0 ? 0x1p-140f * rndf(-8, 8)        /* subnormals of both signs */
                 : kind == 1 ? -0.0f
                 : kind == 2 ? (float)(int)rndf(-3, 3)         /* ties */
                 : kind == 3 && trial % 5 == 0 ? NAN
                 : rndf(-1, 1) * (trial % 4 == 0 ? 1e-37f : 1.0f);
        }
        flx_emu_topk tk;
        flx_emu_fp fp = { FLX_EMU_EXP_GLIBC, ftz };
        cr_assert_eq(flx_emu_topk_sampling(&tk, l, V, B, k, 0.5f, &fp), 0);
        float lv[B][FLX_EMU_TOPK_MAX], fv[FLX_EMU_TOPK_MAX];
        int32_t li[B][FLX_EMU_TOPK_MAX], fi[FLX_EMU_TOPK_MAX];
        for (int b = 0; b < B; b++) topk_every_value(lv[b], li[b], k, l, (int64_t)b * per, per, ftz);
        for (int p = 0; p < k; p++) { fv[p] = -1e32f; fi[p] = -1; }
        for (int p = 0; p < k; p++)
            for (int b = 0; b < B; b++) {
                int q = 0;
                while (q < k && !(lv[b][p] > fv[q])) q++;
                if (q == k) continue;
                for (int t = k - 1; t > q; t--) { fv[t] = fv[t - 1]; fi[t] = fi[t - 1]; }
                fv[q] = lv[b][p];
                fi[q] = li[b][p];
            }
        for (int p = 0; p < k; p++) {
            cr_assert_eq(tk.id[p], fi[p], "trial %d pos %d", trial, p);
            cr_assert_eq(fbits(tk.value[p]), fbits(fv[p]), "trial %d pos %d", trial, p);
        }
    }
}

Test(emu_topk_sampling, matches_transcription_on_random_logits)
{
    enum { V = 1024, B = 16, KK = 5 };
    static float l[V];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++) l[i] = (float)(int)rndf(-20, 20) * 0.5f;  /* many ties */
        flx_emu_topk tk;
        float r = rndf(0, 1);
        flx_emu_topk_sampling(&tk, l, V, B, KK, r, &FP_GLIBC);
        float lv[B][KK];
        int li[B][KK];
        for (int b = 0; b < B; b++) {
            static char taken[V / B];
            memset(taken, 0, sizeof taken);
            for (int p = 0; p < KK; p++) {
                int best = -1;
                for (int j = 0; j < V / B; j++)
                    if (!taken[j] && (best < 0 || l[b * (V / B) + j] > l[b * (V / B) + best])) best = j;
                taken[best] = 1;
                lv[b][p] = l[b * (V / B) + best];
                li[b][p] = b * (V / B) + best;
            }
        }
        float fv[KK];
        int fi[KK], n = 0;
        for (int p = 0; p < KK; p++)
            for (int b = 0; b < B; b++) {
                int pos = 0;
                while (pos < n && fv[pos] >= lv[b][p]) pos++;
                if (pos >= KK) continue;
                for (int q = (n < KK ? n : KK - 1); q > pos; q--) { fv[q] = fv[q - 1]; fi[q] = fi[q - 1]; }
                fv[pos] = lv[b][p];
                fi[pos] = li[b][p];
                if (n < KK) n++;
            }
        for (int p = 0; p < KK; p++) cr_assert_eq(tk.id[p], fi[p], "trial %d pos %d", trial, p);
    }
}

/* ------------------------------------------------------------ elementwise */

Test(emu_elementwise, silu_gate_residual_embed)
{
    float g[3] = { 0.0f, 2.0f, -1.0f }, u[3] = { 5.0f, 3.0f, 2.0f }, y[3];
    flx_emu_silu_gate(y, g, u, 3, &FP_GLIBC);
    cr_assert_eq(y[0], 0.0f);
    cr_assert_eq(fbits(y[1]), fbits((2.0f / (1.0f + expf(-2.0f))) * 3.0f));
    cr_assert_eq(fbits(y[2]), fbits((-1.0f / (1.0f + expf(1.0f))) * 2.0f));
    flx_emu_silu_gate(y, g, u, 3, &FP_FLX);
    cr_assert_eq(fbits(y[1]), fbits((2.0f / (1.0f + flx_emu_expf_flx(-2.0f))) * 3.0f));
    flx_emu_residual(y, g, u, 3, &FP_GLIBC);
    cr_assert_eq(y[1], 5.0f);
    float tab[6] = { 1, 2, 3, 4, 5, 6 }, row[2];
    flx_error err = { 0 };
    cr_assert_eq(flx_emu_embed(row, tab, 3, 2, 2, &err), FLX_OK);
    cr_assert_eq(row[0], 5.0f);
    cr_assert_eq(flx_emu_embed(row, tab, 3, 2, 3, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "token id 3") != NULL);
}

/* ------------------------------------------- speed paths (docs/kernels.md §15) */

Test(emu_exp, vector_exp_equals_the_scalar_expression_sampled)
{
    /* bench_expf checks all 2^32 inputs; here: every float of [-104, -87]
     * (glibc's special branch and the underflow cut), every 64th float of
     * [-87, 1], and 2^22 random bit patterns */
    enum { B = 4096 };
    static float x[B], y[B];
    int64_t n = 0, checked = 0;
    /* negative patterns from -104 toward -0 (dense until -87), then +0 .. 1 */
    const uint64_t lo87 = fbits(-87.0f), end_pos = fbits(1.0f);
    for (uint64_t u = fbits(-104.0f), pos = 0; pos <= end_pos;) {
        x[n++] = bitsf((uint32_t)(u <= 0x80000000u ? pos : u));
        if (u > 0x80000000u) u = u > lo87 ? u - 1 : (u >= 0x80000000u + 64 ? u - 64 : 0x80000000u);
        else pos += 64;
        if (n == B || pos > end_pos) {
            flx_emu_expf_vec(y, x, n);
            for (int64_t i = 0; i < n; i++) {
                float want = x[i] < -0x1.9fe368p+6f ? 0.0f : expf(x[i]);
                cr_assert_eq(fbits(y[i]), fbits(want), "x=%a", (double)x[i]);
            }
            checked += n;
            n = 0;
        }
    }
    for (int r = 0; r < 1024; r++) {
        for (int i = 0; i < B; i++) x[i] = bitsf(rnd32() ^ (rnd32() << 16));
        flx_emu_expf_vec(y, x, B);
        for (int i = 0; i < B; i++) {
            float want = x[i] < -0x1.9fe368p+6f ? 0.0f : expf(x[i]);
            cr_assert_eq(fbits(y[i]), fbits(want), "x=%a (0x%08x)", (double)x[i], fbits(x[i]));
        }
        checked += B;
    }
    cr_assert_gt(checked, 20000000);
    if (!flx_emu_expf_vec_available()) cr_log_info("no AVX-512: scalar exp path only");
}

Test(emu_softmax, vector_rows_equal_the_transcription)
{
    static float x[700], y[700];
    for (int n = 1; n <= 700; n += (n < 40 ? 1 : 37)) {
        float spread = (n % 3 == 0) ? 150.0f : 12.0f;    /* some rows reach the cut */
        for (int i = 0; i < n; i++) x[i] = y[i] = rndf(-spread, spread / 4);
        if (n > 5) x[3] = y[3] = -1e32f;                 /* a masked score */
        flx_emu_softmax_dec(x, n, &FP_GLIBC);
        ref_softmax_groups(y, n, &FP_GLIBC);
        for (int i = 0; i < n; i++) cr_assert_eq(fbits(x[i]), fbits(y[i]), "n=%d i=%d", n, i);
    }
}

Test(emu_gemm, packed_weights_amx_vnni_and_wrap)
{
    enum { T = 45, O = 70, K = 200 };
    static int8_t a[T * K], w[O * K];
    static int32_t v[T * O], f[T * O];
    static int64_t want[T * O];
    for (int i = 0; i < T * K; i++) a[i] = (int8_t)((int)(rnd32() % 16) - 8);
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)((int)(rnd32() % 16) - 8);
    ref_gemm(want, a, 1, w, T, O, K);
    flx_emu_wpack p;
    cr_assert_eq(flx_emu_wpack_init(&p, w, O, K), 0);
    cr_assert_eq(p.o32, 96);
    cr_assert_eq(p.k64, 256);
    if (!flx_emu_vnni_available()) {
        cr_log_info("no AVX-512 VNNI: packed path not exercised");
        flx_emu_wpack_free(&p);
        return;
    }
    flx_pool *pool = flx_pool_create(2);
    for (int amx = 0; amx < 2; amx++) {
        if (!amx) setenv("FLXEMU_NO_AMX", "1", 1);
        else if (!flx_emu_amx_available()) { cr_log_info("no AMX: tile path not exercised"); break; }
        for (int th = 0; th < 2; th++) {
            int over = -1;
            memset(v, 0x55, sizeof v);
            cr_assert_eq(flx_emu_gemm_u4i4_packed(v, a, &p, T, 19, &over, th ? pool : NULL), 0);
            cr_assert_eq(over, 0);
            for (int i = 0; i < T * O; i++) cr_assert_eq(v[i], want[i], "amx %d i=%d", amx, i);
        }
        /* a 9-bit accumulator: sums leave the range, the pair wrap applies,
         * and the count equals the unpacked path's */
        int64_t w1 = flx_emu_gemm_i4_wp(v, a, w, &p, T, O, K, 9, pool);
        setenv("FLXEMU_NO_VNNI", "1", 1);
        int64_t w2 = flx_emu_gemm_i4(f, a, 1, w, T, O, K, 9, NULL);
        unsetenv("FLXEMU_NO_VNNI");
        cr_assert_gt(w1, 0);
        cr_assert_eq(w1, w2);
        cr_assert_eq(memcmp(v, f, sizeof v), 0);
        unsetenv("FLXEMU_NO_AMX");
    }
    flx_pool_free(pool);
    flx_emu_wpack_free(&p);
}

Test(emu_gemm, amx_attention_products_equal_integer_sums)
{
    if (!flx_emu_amx_available()) { cr_log_info("no AMX: tile attention not exercised"); return; }
    enum { HD = 64, NK = 80, NK64 = 128, LD = 3 * HD };
    static int8_t q[32 * LD], k[NK * LD], v[NK * LD], kp[NK * HD], vp[NK64 * HD];
    static uint8_t p[32 * NK64];
    static int32_t s[32 * NK], o[32 * 100];
    for (int i = 0; i < 32 * LD; i++) q[i] = (int8_t)rnd32();
    for (int i = 0; i < NK * LD; i++) { k[i] = (int8_t)rnd32(); v[i] = (int8_t)rnd32(); }
    for (int i = 0; i < 32 * NK64; i++) p[i] = (i % NK64) < NK ? (uint8_t)rnd32() : 0;
    flx_emu_kpack(kp, k + HD, LD, NK, HD);               /* head 1 of 3 */
    flx_emu_vpack(vp, v + HD, LD, NK, NK64, HD);
    flx_emu_amx_begin();
    flx_emu_qk32_amx(s, NK, q + HD, LD, kp, NK, HD);
    flx_emu_av32_amx(o, 100, p, NK64, vp, NK64, HD);
    flx_emu_amx_end();
    for (int i = 0; i < 32; i++) {
        for (int j = 0; j < NK; j++) {
            int32_t sum = 0;
            for (int d = 0; d < HD; d++) sum += q[i * LD + HD + d] * k[j * LD + HD + d];
            cr_assert_eq(s[i * NK + j], sum, "qk %d %d", i, j);
        }
        for (int d = 0; d < HD; d++) {
            int32_t sum = 0;
            for (int j = 0; j < NK; j++) sum += p[i * NK64 + j] * v[j * LD + HD + d];
            cr_assert_eq(o[i * 100 + d], sum, "av %d %d", i, d);
        }
    }
}
