/* numfmt: every ap_int/ap_fixed example of docs/hls-types.md §1, hand-derived
 * overflow cases, and property tests against an independent long-double
 * reference. */
#include "flx_numfmt.h"
#include "test_util.h"

#include <math.h>

static double fx(flx_apfx_type t, double x) { return flx_apfx_to_double(&t, flx_apfx_from_double(&t, x)); }

static flx_apfx_type T(int W, int I, flx_ap_qmode q, flx_ap_omode o)
{
    return flx_apfx_full(W, I, 1, q, o, 0);
}

/* ---------------------------------------------------------------- docs/hls-types.md §1 examples */

Test(numfmt, ug1399_quantization_modes)
{
    /* ap_fixed<3,2,Q,AP_SAT>: LSB 0.5, range [-2, 1.5].  1.25 sits between
     * 1.0 and 1.5 (a tie), -1.25 between -1.5 and -1.0. */
    struct { flx_ap_qmode q; double pos, neg; } c[] = {
        {FLX_AP_RND, 1.5, -1.0},         /* ties to +inf                   */
        {FLX_AP_RND_ZERO, 1.0, -1.0},    /* ties to zero                   */
        {FLX_AP_RND_MIN_INF, 1.0, -1.5}, /* ties to -inf                   */
        {FLX_AP_RND_INF, 1.5, -1.5},     /* ties away from zero            */
        {FLX_AP_TRN, 1.0, -1.5},         /* floor                          */
        {FLX_AP_TRN_ZERO, 1.0, -1.0},    /* toward zero                    */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        flx_apfx_type t = T(3, 2, c[i].q, FLX_AP_SAT);
        cr_assert_eq(fx(t, 1.25), c[i].pos, "mode %d: %g", (int)c[i].q, fx(t, 1.25));
        cr_assert_eq(fx(t, -1.25), c[i].neg, "mode %d: %g", (int)c[i].q, fx(t, -1.25));
    }
    /* AP_RND_CONV: 0.75 -> tie between 0.5 (raw 1) and 1.0 (raw 2): even raw 2 = 1.0;
     * 1.25 -> tie between 1.0 (raw 2) and 1.5 (raw 3): even raw 2 = 1.0 */
    flx_apfx_type conv = T(3, 2, FLX_AP_RND_CONV, FLX_AP_SAT);
    cr_assert_eq(fx(conv, 0.75), 1.0);
    cr_assert_eq(fx(conv, 1.25), 1.0);
}

Test(numfmt, ug1399_overflow_modes)
{
    /* ap_fixed<4,4>: integers in [-8, 7] */
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT), -19.0), -8.0);
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT_SYM), -19.0), -7.0);
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT_ZERO), 19.0), 0.0);
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT), 19.0), 7.0);
    /* SAT_SYM also maps an in-range -8 to -7 (the headers flag it as underflow) */
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT_SYM), -8.0), -7.0);
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_SAT_SYM), 19.0), 7.0);
}

Test(numfmt, defaults_wrap_and_floor)
{
    flx_apfx_type t = flx_apfx(8, 4, 1);   /* AP_TRN, AP_WRAP; LSB 1/16, range [-8, 8) */
    /* 9.0 = raw 144 = 0b10010000 -> as signed 8 bits: 144 - 256 = -112 -> -7.0 */
    cr_assert_eq(fx(t, 9.0), -7.0);
    /* -1/3 * 16 = -5.33 -> floor -6 -> -6/16 = -0.375 */
    cr_assert_eq(fx(t, -1.0 / 3.0), -0.375);
    /* ap_fixed<16,6>(3.999) = floor(3.999*1024)/1024 = 4094/1024 = 3.998046875;
     * narrowed to <8,4>: floor(3.998046875*16)/16 = 63/16 = 3.9375 */
    flx_apfx_type wide = flx_apfx(16, 6, 1);
    uint64_t b = flx_apfx_from_double(&wide, 3.999);
    cr_assert_eq(flx_apfx_to_double(&wide, b), 4094.0 / 1024.0);
    cr_assert_eq(flx_apfx_to_double(&t, flx_apfx_convert(&t, &wide, b)), 3.9375);
}

Test(numfmt, float_to_ap_int)
{
    cr_assert_eq(flx_ap_int_from_double(300.0f, 8, 0), 44);   /* 300 - 256 */
    cr_assert_eq(flx_ap_int_from_double(-2.7f, 8, 0), -2);    /* toward zero */
    cr_assert_eq(flx_ap_int_from_double(-0.75f, 8, 0), 0);
    /* the standard behaviour, and the documented header quirk on request */
    cr_assert_eq(flx_ap_int_from_double(-0.25f, 8, 0), 0);
    cr_assert_eq(flx_ap_int_from_double(-0.25f, 8, FLX_AP_INT_HEADER_QUIRK), 1);
    cr_assert_eq(flx_ap_int_from_double(-0.49, 8, FLX_AP_INT_HEADER_QUIRK), 1);
    cr_assert_eq(flx_ap_int_from_double(-0.5, 8, FLX_AP_INT_HEADER_QUIRK), 0);  /* exponent -1 */
    cr_assert_eq(flx_ap_int_from_double(-0.75, 8, FLX_AP_INT_HEADER_QUIRK), 0);
    cr_assert_eq(flx_ap_int_from_double(0.25, 8, FLX_AP_INT_HEADER_QUIRK), 0);
    cr_assert_eq(flx_ap_uint_from_double(-0.25, 8, FLX_AP_INT_HEADER_QUIRK), 1u);
    /* -300 -> -300 + 512 = 212 -> as int8: 212 - 256 = -44 */
    cr_assert_eq(flx_ap_int_from_double(-300.0, 8, 0), -44);
    cr_assert_eq(flx_ap_uint_from_double(-1.0, 8, 0), 255u);
    cr_assert_eq(flx_ap_int_from_double(NAN, 8, 0), 0);
    cr_assert_eq(flx_ap_int_from_double(INFINITY, 8, 0), 0);
    /* 2^70 + 2^20: the bits above 2^64 vanish; low 8 bits are 0, low 32 keep 2^20 */
    cr_assert_eq(flx_ap_int_from_double(ldexp(1, 70) + ldexp(1, 20), 8, 0), 0);
    cr_assert_eq(flx_ap_int_from_double(ldexp(1, 70) + ldexp(1, 20), 32, 0), 1 << 20);
    cr_assert_eq(flx_ap_int_from_double(ldexp(1, 40) + 5.0, 40, 0), 5);
    cr_assert_eq(flx_ap_int_from_double(-(ldexp(1, 62)), 64, 0), -(INT64_C(1) << 62));
}

Test(numfmt, fixed_to_int_and_shift)
{
    flx_apfx_type t = flx_apfx(8, 4, 1);
    cr_assert_eq(flx_apfx_to_int64(&t, flx_apfx_from_double(&t, -1.5)), -1);
    cr_assert_eq(flx_apfx_to_int64(&t, flx_apfx_from_double(&t, 1.5)), 1);
    cr_assert_eq(flx_apfx_to_int64(&t, flx_apfx_from_double(&t, -7.5)), -7);
    cr_assert_eq(flx_ap_int_shr(-7, 1, 8), -4);
    cr_assert_eq(flx_ap_int_shr(7, 1, 8), 3);
    /* ap_fixed<4,8>: LSB 16; 100 -> floor(100/16) = 6 -> 96 -> to_int 96 */
    flx_apfx_type big = flx_apfx(4, 8, 1);
    cr_assert_eq(flx_apfx_to_int64(&big, flx_apfx_from_double(&big, 100.0)), 96);
}

Test(numfmt, result_widths)
{
    flx_ap_int_type i8 = {8, 1}, u8 = {8, 0};
    cr_assert_eq(flx_ap_int_result('+', i8, i8).W, 9);
    cr_assert_eq(flx_ap_int_result('*', i8, i8).W, 16);
    cr_assert_eq(flx_ap_int_result('+', i8, u8).W, 10);
    cr_assert_eq(flx_ap_int_result('/', i8, i8).W, 9);
    cr_assert_eq(flx_ap_int_result('+', u8, u8).W, 9);
    cr_assert_eq(flx_ap_int_result('+', u8, u8).is_signed, 0);
    cr_assert_eq(flx_ap_int_result('-', u8, u8).is_signed, 1);
    /* ap_int<8> w = 127 + 100: the 9-bit sum 227 wraps to 227 - 256 = -29 */
    cr_assert_eq(flx_ap_int_wrap(127 + 100, 8), -29);

    flx_apfx_type a = flx_apfx(8, 4, 1), b = flx_apfx(6, 2, 1);
    flx_apfx_type m = flx_apfx_result('*', &a, &b);
    cr_assert_eq(m.W, 14);
    cr_assert_eq(m.I, 6);
    flx_apfx_type p = flx_apfx_result('+', &a, &a);
    cr_assert_eq(p.W, 9);
    cr_assert_eq(p.I, 5);
    /* <8,4> + <6,2>: I = max(4, 2) + 1 = 5, F = max(4, 4) = 4 -> <9,5> */
    p = flx_apfx_result('+', &a, &b);
    cr_assert_eq(p.W, 9);
    cr_assert_eq(p.I, 5);
    /* / : <Sb + Wa + max(Fb,0), Sb + Ia + Fb> = <1+8+4, 1+4+4> = <13, 9> */
    flx_apfx_type d = flx_apfx_result('/', &a, &b);
    cr_assert_eq(d.W, 13);
    cr_assert_eq(d.I, 9);
}

Test(numfmt, exact_arithmetic)
{
    flx_apfx_type a = flx_apfx(8, 4, 1), b = flx_apfx(6, 2, 1), rt;
    uint64_t x = flx_apfx_from_double(&a, 7.9375), y = flx_apfx_from_double(&b, -1.25), r;
    flx_error err;
    cr_assert_eq(flx_apfx_op('*', &a, x, &b, y, &rt, &r, &err), FLX_OK);
    cr_assert_eq(flx_apfx_to_double(&rt, r), 7.9375 * -1.25);
    cr_assert_eq(flx_apfx_op('+', &a, x, &b, y, &rt, &r, &err), FLX_OK);
    cr_assert_eq(flx_apfx_to_double(&rt, r), 6.6875);
    cr_assert_eq(flx_apfx_op('-', &a, x, &b, y, &rt, &r, &err), FLX_OK);
    cr_assert_eq(flx_apfx_to_double(&rt, r), 9.1875);
    /* 7.9375 / -1.25 = -6.35; result LSB 2^-4 (F = 13 - 9): trunc(-101.6) = -101 -> -6.3125 */
    cr_assert_eq(flx_apfx_op('/', &a, x, &b, y, &rt, &r, &err), FLX_OK);
    cr_assert_eq(flx_apfx_to_double(&rt, r), -6.3125);
    uint64_t z = flx_apfx_from_double(&b, 0.0);
    cr_assert_eq(flx_apfx_op('/', &a, x, &b, z, &rt, &r, &err), FLX_ENUMERIC);
    flx_apfx_type w = flx_apfx(40, 20, 1);
    cr_assert_eq(flx_apfx_op('*', &w, 1, &w, 1, &rt, &r, &err), FLX_EUNSUPPORTED);
}

Test(numfmt, wrap_with_saturation_bits_and_sign_magnitude)
{
    /* ap_fixed<4,4,AP_RND,AP_WRAP_SM>(19): 19 = 0b1_0011, wrapped 0011 (MSB 0),
     * bit 4 (lD) = 1 differs from the MSB -> invert: 1100, MSB := lD = 1 -> -4 */
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_WRAP_SM), 19.0), -4.0);
    /* 9 = 0b0_1001: wrapped 1001 (MSB 1), lD = 0 -> invert: 0110, MSB 0 -> 6 */
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_WRAP_SM), 9.0), 6.0);
    /* -9 = ...1_0111: wrapped 0111 (MSB 0), lD = 1 -> invert 1000, MSB 1 -> -8 */
    cr_assert_eq(fx(T(4, 4, FLX_AP_RND, FLX_AP_WRAP_SM), -9.0), -8.0);
    /* AP_WRAP, N = 1: wrapped bits with the MSB forced to the sign:
     * 19 -> 0011 with MSB 0 -> 3;  -19 = ...01101 -> 1101, MSB 1 -> -3 */
    flx_apfx_type w1 = flx_apfx_full(4, 4, 1, FLX_AP_RND, FLX_AP_WRAP, 1);
    cr_assert_eq(fx(w1, 19.0), 3.0);
    cr_assert_eq(fx(w1, -19.0), -3.0);
    /* N = 2: bits [W-2, W-2] = !sign, MSB = sign: 19 -> 0111 = 7; -19 -> 1001 = -7 */
    flx_apfx_type w2 = flx_apfx_full(4, 4, 1, FLX_AP_RND, FLX_AP_WRAP, 2);
    cr_assert_eq(fx(w2, 19.0), 7.0);
    cr_assert_eq(fx(w2, -19.0), -7.0);
    /* in range: untouched */
    cr_assert_eq(fx(w2, 5.0), 5.0);
    /* ap_ufixed<4,4,AP_RND,AP_WRAP,2>(19): 0011 with the top 2 bits set -> 1111 = 15 */
    flx_apfx_type u2 = flx_apfx_full(4, 4, 0, FLX_AP_RND, FLX_AP_WRAP, 2);
    cr_assert_eq(fx(u2, 19.0), 15.0);
    /* WRAP_SM, N = 2, 19: wrapped 0011, lNo = bit 2 = 0 == sign 0 -> invert 1100,
     * bits[2..2] := 1, MSB := 0 -> 0100 = 4 */
    flx_apfx_type sm2 = flx_apfx_full(4, 4, 1, FLX_AP_RND, FLX_AP_WRAP_SM, 2);
    cr_assert_eq(fx(sm2, 19.0), 4.0);
    flx_error err;
    flx_apfx_type bad = flx_apfx_full(4, 4, 0, FLX_AP_RND, FLX_AP_WRAP_SM, 0);
    cr_assert_eq(flx_apfx_check(&bad, &err), FLX_EINVAL);
    bad = flx_apfx(65, 4, 1);
    cr_assert_eq(flx_apfx_check(&bad, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "65") != NULL);
}

Test(numfmt, unsigned_and_special_inputs)
{
    flx_apfx_type u = flx_apfx_full(8, 4, 0, FLX_AP_RND, FLX_AP_SAT, 0);
    cr_assert_eq(fx(u, -3.0), 0.0);          /* underflow clamps to 0    */
    cr_assert_eq(fx(u, 100.0), 15.9375);     /* overflow to all ones     */
    cr_assert_eq(fx(u, INFINITY), 15.9375);
    cr_assert_eq(fx(T(8, 4, FLX_AP_RND, FLX_AP_SAT), -INFINITY), -8.0);
    cr_assert_eq(fx(T(8, 4, FLX_AP_RND, FLX_AP_WRAP), INFINITY), 0.0);
    cr_assert_eq(fx(T(8, 4, FLX_AP_RND, FLX_AP_SAT), NAN), 0.0);
    /* a tiny negative under RND rounds to 0, not to -LSB, and is no underflow */
    cr_assert_eq(fx(T(8, 4, FLX_AP_RND, FLX_AP_SAT_SYM), -1e-300), 0.0);
    /* and under TRN (floor) it becomes -LSB */
    cr_assert_eq(fx(T(8, 4, FLX_AP_TRN, FLX_AP_SAT), -1e-300), -0.0625);
    /* negative I: ap_fixed<4,-2>, LSB 2^-6, range [-2^-3, 2^-3) */
    flx_apfx_type n = T(4, -2, FLX_AP_RND, FLX_AP_SAT);
    cr_assert_eq(fx(n, 0.05), 3.0 / 64);      /* 3.2 -> 3 */
    cr_assert_eq(fx(n, 1.0), 7.0 / 64);
    /* W = 64 */
    flx_apfx_type w64 = flx_apfx(64, 64, 1);
    cr_assert_eq(flx_apfx_raw(&w64, flx_apfx_from_double(&w64, -ldexp(1, 63))), INT64_MIN);
    flx_apfx_type u64 = flx_apfx_full(64, 64, 0, FLX_AP_TRN, FLX_AP_SAT, 0);
    cr_assert_eq(flx_apfx_from_double(&u64, ldexp(1, 70)), UINT64_MAX);
}

/* ---------------------------------------------------------------- property tests */

/* Independent reference: long double holds any double times 2^F exactly
 * (64-bit significand), so floor / fraction comparisons are exact; the
 * overflow modes are applied on int64 values. */
static int64_t ref_round(long double v, flx_ap_qmode q)
{
    long double f = floorl(v), fr = v - f;
    int64_t fl = (int64_t)f;
    switch (q) {
    case FLX_AP_TRN: return fl;
    case FLX_AP_TRN_ZERO: return v < 0 && fr != 0 ? fl + 1 : fl;
    case FLX_AP_RND: return fr >= 0.5L ? fl + 1 : fl;
    case FLX_AP_RND_ZERO: return fr > 0.5L || (fr == 0.5L && v < 0) ? fl + 1 : fl;
    case FLX_AP_RND_MIN_INF: return fr > 0.5L ? fl + 1 : fl;
    case FLX_AP_RND_INF: return fr > 0.5L || (fr == 0.5L && v > 0) ? fl + 1 : fl;
    case FLX_AP_RND_CONV: return fr > 0.5L || (fr == 0.5L && (fl & 1)) ? fl + 1 : fl;
    }
    return 0;
}

static int64_t ref_fixed(int W, int F, flx_ap_qmode q, flx_ap_omode o, double x)
{
    long double v = ldexpl((long double)x, F);
    int64_t r = ref_round(v, q);
    int64_t hi = (INT64_C(1) << (W - 1)) - 1, lo = -(INT64_C(1) << (W - 1));
    uint64_t m = (uint64_t)r & ((UINT64_C(1) << W) - 1);
    int64_t wrapped = (m >> (W - 1)) ? (int64_t)m - (INT64_C(1) << W) : (int64_t)m;
    int in_range = r >= lo && r <= hi;
    switch (o) {
    case FLX_AP_SAT: return r > hi ? hi : r < lo ? lo : r;
    /* W = 1 has max 0; the headers then write min | 1 = raw -1 on underflow */
    case FLX_AP_SAT_SYM: return r > hi ? hi : r <= lo ? (W == 1 ? -1 : -hi) : r;
    case FLX_AP_SAT_ZERO: return in_range ? r : 0;
    case FLX_AP_WRAP: return wrapped;
    case FLX_AP_WRAP_SM: {
        if (in_range) return r;
        /* sign-magnitude: if bit W of floor(v) differs from the wrapped MSB,
         * reflect: -1 - wrapped (bitwise not), then force MSB := that bit */
        int lD = (int)(((int64_t)floorl(v) >> W) & 1);
        int Ro = wrapped < 0;
        if (lD == Ro) return wrapped;
        int64_t inv = -1 - wrapped;               /* ~wrapped, still W-bit signed */
        uint64_t u = (uint64_t)inv & ((UINT64_C(1) << W) - 1);
        if (lD) u |= UINT64_C(1) << (W - 1); else u &= ~(UINT64_C(1) << (W - 1));
        return (u >> (W - 1)) ? (int64_t)u - (INT64_C(1) << W) : (int64_t)u;
    }
    }
    return 0;
}

Test(numfmt, property_against_long_double_reference)
{
    flx_rng rng;
    flx_rng_seed(&rng, 12345);
    long n_checked = 0;
    for (int it = 0; it < 200000; it++) {
        int W = 1 + (int)(flx_rng_u64(&rng) % 24);
        int I = -4 + (int)(flx_rng_u64(&rng) % 32);
        flx_ap_qmode q = (flx_ap_qmode)(flx_rng_u64(&rng) % 7);
        flx_ap_omode o = (flx_ap_omode)(flx_rng_u64(&rng) % 5);
        int F = W - I;
        /* values up to ~2^(I+3) so that overflow happens often, plus
         * exact ties and grid points a quarter of the time */
        double x;
        uint64_t kind = flx_rng_u64(&rng) % 4;
        if (kind == 0) {
            int64_t k = (int64_t)(flx_rng_u64(&rng) % (UINT64_C(1) << (W + 2))) - (INT64_C(1) << (W + 1));
            x = ldexp((double)k + 0.5, -F);
        } else {
            x = (flx_rng_uniform(&rng) * 2 - 1) * ldexp(1.0, I + 3) * flx_rng_uniform(&rng);
        }
        flx_apfx_type t = flx_apfx_full(W, I, 1, q, o, 0);
        int64_t got = flx_apfx_raw(&t, flx_apfx_from_double(&t, x));
        int64_t want = ref_fixed(W, F, q, o, x);
        cr_assert_eq(got, want, "W=%d I=%d q=%d o=%d x=%.17g: got %lld want %lld", W, I, (int)q,
                     (int)o, x, (long long)got, (long long)want);
        n_checked++;
    }
    cr_assert_eq(n_checked, 200000);
}

Test(numfmt, property_conv_ties_are_even_and_sat_sym_bounds)
{
    flx_rng rng;
    flx_rng_seed(&rng, 7);
    for (int it = 0; it < 50000; it++) {
        int W = 2 + (int)(flx_rng_u64(&rng) % 30);
        int I = (int)(flx_rng_u64(&rng) % 12);
        flx_apfx_type conv = flx_apfx_full(W, I, 1, FLX_AP_RND_CONV, FLX_AP_WRAP, 0);
        /* a tie: (k + 1/2) LSBs -> the raw result must be even */
        int64_t k = (int64_t)(flx_rng_u64(&rng) % (UINT64_C(1) << (W - 1))) - (INT64_C(1) << (W - 2));
        double x = ldexp((double)k + 0.5, I - W);
        int64_t r = flx_apfx_raw(&conv, flx_apfx_from_double(&conv, x));
        cr_assert_eq(r & 1, 0, "W=%d I=%d x=%.17g raw %lld", W, I, x, (long long)r);
        cr_assert(r == k || r == k + 1 || (r == flx_ap_int_wrap(k + 1, W)));
        /* SAT_SYM never produces -2^(W-1) and stays within +-max */
        flx_apfx_type sym = flx_apfx_full(W, I, 1, FLX_AP_RND, FLX_AP_SAT_SYM, 0);
        double y = (flx_rng_uniform(&rng) * 2 - 1) * ldexp(1.0, I + 2);
        int64_t s = flx_apfx_raw(&sym, flx_apfx_from_double(&sym, y));
        int64_t mx = (INT64_C(1) << (W - 1)) - 1;
        cr_assert(s >= -mx && s <= mx, "W=%d y=%g s=%lld", W, y, (long long)s);
    }
}

Test(numfmt, property_fixed_to_fixed_equals_direct_from_exact_value)
{
    /* converting a fixed value must equal converting its exact double */
    flx_rng rng;
    flx_rng_seed(&rng, 99);
    for (int it = 0; it < 50000; it++) {
        int W1 = 1 + (int)(flx_rng_u64(&rng) % 40), I1 = -3 + (int)(flx_rng_u64(&rng) % 20);
        int W2 = 1 + (int)(flx_rng_u64(&rng) % 40), I2 = -3 + (int)(flx_rng_u64(&rng) % 20);
        flx_apfx_type src = flx_apfx(W1, I1, 1);
        flx_apfx_type dst = flx_apfx_full(W2, I2, flx_rng_u64(&rng) & 1,
                                          (flx_ap_qmode)(flx_rng_u64(&rng) % 7),
                                          (flx_ap_omode)(flx_rng_u64(&rng) % 4), 0);
        uint64_t b = flx_rng_u64(&rng) & ((UINT64_C(1) << W1) - 1);
        double exact = flx_apfx_to_double(&src, b);   /* W1 <= 40: exact */
        cr_assert_eq(flx_apfx_convert(&dst, &src, b), flx_apfx_from_double(&dst, exact));
    }
}

Test(numfmt, property_ap_int_truncates_and_wraps)
{
    flx_rng rng;
    flx_rng_seed(&rng, 3);
    for (int it = 0; it < 50000; it++) {
        int W = 1 + (int)(flx_rng_u64(&rng) % 63);
        double x = (flx_rng_uniform(&rng) * 2 - 1) * ldexp(1.0, (int)(flx_rng_u64(&rng) % 60));
        long double t = truncl((long double)x);
        /* |t| < 2^60: exact in int64; then wrap to W bits by hand */
        int64_t v = (int64_t)t;
        uint64_t m = (uint64_t)v & ((UINT64_C(1) << W) - 1);
        int64_t want = (m >> (W - 1)) ? (int64_t)(m | ~((UINT64_C(1) << W) - 1)) : (int64_t)m;
        cr_assert_eq(flx_ap_int_from_double(x, W, 0), want, "W=%d x=%.17g", W, x);
        cr_assert_eq(flx_ap_uint_from_double(x, W, 0), m);
    }
}

Test(numfmt, half_rounding)
{
    /* 1 + 2^-8 is exactly half a bf16 ULP above 1.0: ties to even -> 1.0;
     * 1 + 3*2^-8 ties between 1+2^-7 (odd) and 1+2^-6 (even) -> 1+2^-6 */
    cr_assert_eq(flx_round_bf16(1.0f + 0x1p-8f), 1.0f);
    cr_assert_eq(flx_round_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
    cr_assert_eq(flx_round_f16(1.0f + 0x1p-11f), 1.0f);
    cr_assert_eq(flx_round_f16(65520.0f), INFINITY);
}
