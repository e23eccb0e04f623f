/* numfmt.c -- ap_int / ap_fixed semantics (see flx_numfmt.h).
 *
 * Every conversion goes through one exact path: the source value is written
 * as (-1)^neg * M * 2^e with an integer M, scaled to the destination's LSB,
 * split into an integer magnitude and a class for the dropped fraction
 * (zero / below half / half / above half), rounded per Q, then checked
 * against the W-bit range and adjusted per O.  Magnitudes are held in
 * unsigned __int128 plus a "huge" flag for values beyond 2^128 (all of which
 * overflow a <= 64-bit destination). */
#include "flx_numfmt.h"

#include <math.h>
#include <string.h>

typedef unsigned __int128 u128;
typedef __int128          i128;

static uint64_t low_mask(int W) { return W >= 64 ? ~0ull : ((1ull << W) - 1ull); }

/* bits [lo, hi] of v set to all ones (ones != 0) or all zeros */
static uint64_t set_range(uint64_t v, int lo, int hi, int ones)
{
    if (hi < lo) return v;
    uint64_t m = low_mask(hi - lo + 1) << lo;
    return ones ? (v | m) : (v & ~m);
}

static uint64_t set_bit(uint64_t v, int b, int one)
{
    return one ? (v | (1ull << b)) : (v & ~(1ull << b));
}

/* ---------------------------------------------------------------- ap_int */

/* flx_ap_int_wrap / flx_ap_uint_wrap are inline in flx_numfmt.h: the
 * emulator's kernels call them in their inner loops. */

/* Low 64 bits of the two's-complement pattern of trunc(x), or the quirk. */
static uint64_t int_pattern_from_double(double x, unsigned flags)
{
    if (isnan(x) || isinf(x) || x == 0.0) return 0;
    double ax = fabs(x);
    /* headers: exponent <= -2 (|x| < 0.5) sets the magnitude to -1 for a
     * negative input and the final negation turns it into +1 */
    if (ax < 0.5 && x < 0 && (flags & FLX_AP_INT_HEADER_QUIRK)) return 1;
    if (ax < 1.0) return 0;
    int ex;
    double f = frexp(ax, &ex);                 /* ax = f * 2^ex, f in [0.5, 1) */
    uint64_t M = (uint64_t)ldexp(f, 53);       /* exact: 53-bit mantissa      */
    int e = ex - 53;
    uint64_t mag;
    if (e >= 0) mag = e >= 64 ? 0 : M << e;    /* bits above 64 wrap away     */
    else        mag = M >> (-e);               /* truncation toward zero      */
    return x < 0 ? (uint64_t)0 - mag : mag;
}

int64_t flx_ap_int_from_double(double x, int W, unsigned flags)
{
    return flx_ap_int_wrap((int64_t)int_pattern_from_double(x, flags), W);
}

uint64_t flx_ap_uint_from_double(double x, int W, unsigned flags)
{
    return int_pattern_from_double(x, flags) & low_mask(W);
}

int64_t flx_ap_int_shr(int64_t v, int sh, int W)
{
    v = flx_ap_int_wrap(v, W);
    if (sh >= 63) return v < 0 ? -1 : 0;
    /* floor division by 2^sh, which is what a sign-filling shift computes */
    int64_t d = (int64_t)1 << sh;
    int64_t q = v / d;
    if (v % d != 0 && v < 0) q -= 1;
    return q;
}

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

flx_ap_int_type flx_ap_int_result(char op, flx_ap_int_type a, flx_ap_int_type b)
{
    flx_ap_int_type r = {0, 0};
    int sa = a.is_signed != 0, sb = b.is_signed != 0;
    /* an unsigned operand needs one more bit to sit beside a signed one */
    int wide = imax(a.W + (sb && !sa), b.W + (sa && !sb));
    switch (op) {
    case '+': r.W = wide + 1; r.is_signed = sa || sb; break;
    case '-': r.W = wide + 1; r.is_signed = 1; break;
    case '*': r.W = a.W + b.W; r.is_signed = sa || sb; break;
    case '/': r.W = a.W + sb; r.is_signed = sa || sb; break;
    case '%': r.W = imin(a.W, b.W + (sa && !sb)); r.is_signed = sa; break;
    default: break;
    }
    return r;
}

/* ---------------------------------------------------------------- ap_fixed types */

flx_apfx_type flx_apfx(int W, int I, int is_signed)
{
    return flx_apfx_full(W, I, is_signed, FLX_AP_TRN, FLX_AP_WRAP, 0);
}

flx_apfx_type flx_apfx_full(int W, int I, int is_signed, flx_ap_qmode q, flx_ap_omode o,
                            int n_sat)
{
    flx_apfx_type t = {W, I, is_signed != 0, q, o, n_sat};
    return t;
}

int flx_apfx_check(const flx_apfx_type *t, flx_error *err)
{
    if (t->W < 1 || t->W > 64)
        return flx_fail(err, FLX_EINVAL, "ap_fixed: width W=%d is outside 1..64", t->W);
    if (t->n_sat < 0 || t->n_sat > t->W)
        return flx_fail(err, FLX_EINVAL, "ap_fixed<%d,%d>: saturation bits N=%d outside 0..W",
                        t->W, t->I, t->n_sat);
    if ((int)t->q < FLX_AP_RND || (int)t->q > FLX_AP_TRN_ZERO)
        return flx_fail(err, FLX_EINVAL, "ap_fixed: unknown quantization mode %d", (int)t->q);
    if ((int)t->o < FLX_AP_SAT || (int)t->o > FLX_AP_WRAP_SM)
        return flx_fail(err, FLX_EINVAL, "ap_fixed: unknown overflow mode %d", (int)t->o);
    if (!t->is_signed && t->o == FLX_AP_WRAP_SM)
        return flx_fail(err, FLX_EINVAL, "ap_ufixed<%d,%d>: AP_WRAP_SM needs a signed type",
                        t->W, t->I);
    return FLX_OK;
}

int64_t flx_apfx_raw(const flx_apfx_type *t, uint64_t bits)
{
    return t->is_signed ? flx_ap_int_wrap((int64_t)bits, t->W) : (int64_t)(bits & low_mask(t->W));
}

/* ---------------------------------------------------------------- the exact path */

enum { FRAC_ZERO, FRAC_BELOW, FRAC_HALF, FRAC_ABOVE };

/* Quantizes (-1)^neg * M * 2^e into t.  M < 2^127. */
static uint64_t quantize_exact(const flx_apfx_type *t, int neg, u128 M, int e)
{
    const int W = t->W;
    if (M == 0) return 0;
    int F = W - t->I;
    long k = (long)e + F;                 /* scaled value = M * 2^k */
    u128 ip;                              /* integer magnitude, mod 2^128 */
    int frac, huge = 0;
    if (k >= 0) {
        frac = FRAC_ZERO;
        if (k >= 128) { ip = 0; huge = 1; }
        else {
            ip = M << k;
            if (k > 0 && (M >> (128 - k)) != 0) huge = 1;
        }
    } else {
        long s = -k;
        if (s >= 128) { ip = 0; frac = FRAC_BELOW; }
        else {
            ip = M >> s;
            u128 rem = M & (((u128)1 << s) - 1);
            u128 half = (u128)1 << (s - 1);
            frac = rem == 0 ? FRAC_ZERO : rem < half ? FRAC_BELOW : rem == half ? FRAC_HALF
                                                                               : FRAC_ABOVE;
        }
    }

    /* Q: increment of the magnitude, decided on the signed value */
    int inc = 0, odd = (int)(ip & 1);
    switch (t->q) {
    case FLX_AP_TRN:         inc = neg && frac != FRAC_ZERO; break;            /* floor */
    case FLX_AP_TRN_ZERO:    inc = 0; break;
    case FLX_AP_RND:         inc = frac == FRAC_ABOVE || (frac == FRAC_HALF && !neg); break;
    case FLX_AP_RND_ZERO:    inc = frac == FRAC_ABOVE; break;
    case FLX_AP_RND_MIN_INF: inc = frac == FRAC_ABOVE || (frac == FRAC_HALF && neg); break;
    case FLX_AP_RND_INF:     inc = frac >= FRAC_HALF; break;
    case FLX_AP_RND_CONV:    inc = frac == FRAC_ABOVE || (frac == FRAC_HALF && odd); break;
    }
    u128 rmag = ip + (u128)inc;
    int neg_r = neg && (rmag != 0 || huge);

    /* lD: bit W of the unrounded floor value in two's complement (the first
     * bit above the destination's MSB, which AP_WRAP_SM consults) */
    u128 floor_tc = neg ? (u128)0 - (ip + (frac != FRAC_ZERO)) : ip;
    int lD = (int)((floor_tc >> W) & 1);

    u128 r_tc = neg ? (u128)0 - rmag : rmag;
    uint64_t v = (uint64_t)r_tc & low_mask(W);

    int ovf, udf;
    if (t->is_signed) {
        u128 lim = (u128)1 << (W - 1);          /* |min| */
        ovf = !neg_r && (huge || rmag > lim - 1);
        udf = neg_r && (huge || rmag > lim);
        if (t->o == FLX_AP_SAT_SYM) udf = udf || (neg_r && rmag == lim);
    } else {
        ovf = !neg_r && (huge || rmag > (u128)low_mask(W));
        udf = neg_r;
    }
    if (!ovf && !udf) return v;

    const int sign = neg_r;
    const int N = t->n_sat;
    switch (t->o) {
    case FLX_AP_WRAP:
        if (N == 0) return v;
        if (t->is_signed) {
            v = set_bit(v, W - 1, sign);
            if (N > 1) v = set_range(v, W - N, W - 2, !sign);
        } else {
            v = set_range(v, W - N, W - 1, 1);
        }
        return v;
    case FLX_AP_SAT_ZERO:
        return 0;
    case FLX_AP_WRAP_SM:
        if (t->is_signed) {
            int Ro = (int)((v >> (W - 1)) & 1);
            if (N == 0) {
                if (lD != Ro) {
                    v = ~v & low_mask(W);
                    v = set_bit(v, W - 1, lD);
                }
            } else {
                if (N == 1 && sign != Ro) {
                    v = ~v & low_mask(W);
                } else if (N > 1) {
                    int lNo = (int)((v >> (W - N)) & 1);
                    if (lNo == sign) v = ~v & low_mask(W);
                    v = set_range(v, W - N, W - 2, !sign);
                }
                v = set_bit(v, W - 1, sign);
            }
            return v;
        }
        /* unsigned WRAP_SM is rejected by flx_apfx_check */
        __attribute__((fallthrough));
    case FLX_AP_SAT:
    case FLX_AP_SAT_SYM:
    default:
        if (t->is_signed) {
            if (ovf) return low_mask(W - 1);                          /* 0111..1 */
            v = 1ull << (W - 1);                                      /* 1000..0 */
            if (t->o == FLX_AP_SAT_SYM) v |= 1;                       /* -max    */
            return v;
        }
        return ovf ? low_mask(W) : 0;
    }
}

uint64_t flx_apfx_from_double(const flx_apfx_type *t, double x)
{
    if (isnan(x) || x == 0.0) return 0;
    int neg = signbit(x) != 0;
    if (isinf(x)) return quantize_exact(t, neg, 1, 1 << 20);
    int ex;
    double f = frexp(fabs(x), &ex);
    u128 M = (u128)(uint64_t)ldexp(f, 53);
    return quantize_exact(t, neg, M, ex - 53);
}

uint64_t flx_apfx_convert(const flx_apfx_type *dst, const flx_apfx_type *src, uint64_t bits)
{
    int64_t r = flx_apfx_raw(src, bits);
    int neg = src->is_signed && r < 0;
    u128 M;
    if (!src->is_signed) M = (u128)(bits & low_mask(src->W));
    else M = neg ? (u128)0 - (u128)(i128)r : (u128)r;
    M &= (((u128)1 << 65) - 1);   /* |r| <= 2^64 */
    return quantize_exact(dst, neg, M, src->I - src->W);
}

double flx_apfx_to_double(const flx_apfx_type *t, uint64_t bits)
{
    double v = t->is_signed ? (double)flx_apfx_raw(t, bits) : (double)(bits & low_mask(t->W));
    return ldexp(v, t->I - t->W);
}

int64_t flx_apfx_to_int64(const flx_apfx_type *t, uint64_t bits)
{
    int F = t->W - t->I;
    i128 r = t->is_signed ? (i128)flx_apfx_raw(t, bits) : (i128)(bits & low_mask(t->W));
    if (F <= 0) {
        if (-F >= 64) return 0;
        return (int64_t)(uint64_t)((u128)r << -F);
    }
    if (F >= 100) return 0;
    i128 d = (i128)1 << F;
    return (int64_t)(r / d);                 /* C division truncates toward zero */
}

/* ---------------------------------------------------------------- arithmetic */

flx_apfx_type flx_apfx_result(char op, const flx_apfx_type *a, const flx_apfx_type *b)
{
    int sa = a->is_signed != 0, sb = b->is_signed != 0;
    int Fa = a->W - a->I, Fb = b->W - b->I;
    flx_apfx_type r = flx_apfx(0, 0, sa || sb);
    int wide_i = imax(a->I + (sb && !sa), b->I + (sa && !sb));
    switch (op) {
    case '*': r.W = a->W + b->W; r.I = a->I + b->I; break;
    case '+': r.I = wide_i + 1; r.W = r.I + imax(Fa, Fb); break;
    case '-': r.I = wide_i + 1; r.W = r.I + imax(Fa, Fb); r.is_signed = 1; break;
    case '/': r.W = sb + a->W + imax(Fb, 0); r.I = sb + a->I + Fb; break;
    default: r.W = 0; break;
    }
    return r;
}

int flx_apfx_op(char op, const flx_apfx_type *ta, uint64_t a, const flx_apfx_type *tb,
                uint64_t b, flx_apfx_type *rt, uint64_t *r, flx_error *err)
{
    flx_apfx_type t = flx_apfx_result(op, ta, tb);
    if (t.W == 0) return flx_fail(err, FLX_EINVAL, "ap_fixed: unknown operator '%c'", op);
    if (t.W > 64)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "ap_fixed: result of '%c' needs %d bits (more than 64)", op, t.W);
    i128 ra = ta->is_signed ? (i128)flx_apfx_raw(ta, a) : (i128)(a & low_mask(ta->W));
    i128 rb = tb->is_signed ? (i128)flx_apfx_raw(tb, b) : (i128)(b & low_mask(tb->W));
    int Fa = ta->W - ta->I, Fb = tb->W - tb->I, Fr = t.W - t.I;
    i128 res = 0;
    switch (op) {
    case '*': res = ra * rb; break;                               /* Fr = Fa + Fb */
    case '+': res = ra * ((i128)1 << (Fr - Fa)) + rb * ((i128)1 << (Fr - Fb)); break;
    case '-': res = ra * ((i128)1 << (Fr - Fa)) - rb * ((i128)1 << (Fr - Fb)); break;
    case '/':
        if (rb == 0) return flx_fail(err, FLX_ENUMERIC, "ap_fixed: division by zero");
        /* value a/b at the result LSB: ra * 2^(Fb + Fr - Fa) / rb, and
         * Fb + Fr - Fa = max(Fb, 0) */
        res = (ra * ((i128)1 << imax(Fb, 0))) / rb;
        break;
    }
    *rt = t;
    *r = (uint64_t)res & low_mask(t.W);
    return FLX_OK;
}

/* ---------------------------------------------------------------- half types */

float flx_round_bf16(float x) { return flx_bf16_to_f32(flx_f32_to_bf16(x)); }
float flx_round_f16(float x) { return flx_f16_to_f32(flx_f32_to_f16(x)); }
