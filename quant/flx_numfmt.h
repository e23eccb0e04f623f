/* flx_numfmt.h -- HLS arbitrary-precision number formats in C: ap_int<W>,
 * ap_uint<W> (1..64 bits) and ap_fixed<W,I,Q,O,N> / ap_ufixed, with the
 * semantics of the AMD/Xilinx headers (docs/hls-types.md §1, UG1399).
 *
 * Representation.  A value is its W-bit pattern held in the low bits of a
 * uint64_t ("bits"); the upper bits are zero.  For ap_fixed the real value
 * is  raw * 2^(I-W)  where raw is the pattern read as a two's-complement
 * (signed) or plain (unsigned) W-bit integer.  I counts integer bits
 * including the sign bit and may be negative or larger than W.
 *
 * Conversion from float/double (flx_apfx_from_double) follows the headers'
 * model: take the exact value, apply the quantization mode Q to the bits
 * below the LSB, then apply the overflow mode O to the bits above the MSB.
 * The same function handles ap_fixed -> ap_fixed assignment
 * (flx_apfx_convert).  Arithmetic results have the widths of the headers'
 * RType traits and are exact (no rounding); assigning them to a narrower
 * type applies that type's Q and O.
 *
 * BF16/FP16 round-to-nearest-even conversions are the core's
 * flx_f32_to_bf16 / flx_f32_to_f16; flx_round_bf16 / flx_round_f16 here are
 * the "round a float through the format" shorthands.
 */
#ifndef FLX_NUMFMT_H
#define FLX_NUMFMT_H

#include "flx_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- modes */

typedef enum flx_ap_qmode {
    FLX_AP_RND = 0,      /* round to nearest, ties toward +inf            */
    FLX_AP_RND_ZERO,     /* round to nearest, ties toward zero            */
    FLX_AP_RND_MIN_INF,  /* round to nearest, ties toward -inf            */
    FLX_AP_RND_INF,      /* round to nearest, ties away from zero         */
    FLX_AP_RND_CONV,     /* round to nearest, ties to even (convergent)   */
    FLX_AP_TRN,          /* truncate = floor (the HLS default)            */
    FLX_AP_TRN_ZERO,     /* truncate toward zero                          */
} flx_ap_qmode;

typedef enum flx_ap_omode {
    FLX_AP_SAT = 0,      /* clamp to max / min                            */
    FLX_AP_SAT_ZERO,     /* any overflow gives 0                          */
    FLX_AP_SAT_SYM,      /* clamp to +-max (signed min is -max)           */
    FLX_AP_WRAP,         /* two's-complement wrap (the HLS default)       */
    FLX_AP_WRAP_SM,      /* sign-magnitude wrap (signed types only)       */
} flx_ap_omode;

/* ---------------------------------------------------------------- ap_int / ap_uint */

/* A W-bit integer type: ap_int<W> when is_signed, else ap_uint<W>. */
typedef struct flx_ap_int_type {
    int W;          /* 1..64 */
    int is_signed;
} flx_ap_int_type;

/* Keeps the low W bits of v: ap_int<W> sign-extends them, ap_uint<W> not.
 * This is what assigning any integer to an ap_[u]int<W> does (wrap). */
static inline int64_t flx_ap_int_wrap(int64_t v, int W)
{
    if (W >= 64) return v;
    uint64_t m = (1ull << W) - 1ull;
    uint64_t u = (uint64_t)v & m;
    if (u >> (W - 1)) u |= ~m;
    return (int64_t)u;
}
static inline uint64_t flx_ap_uint_wrap(uint64_t v, int W)
{
    return W >= 64 ? v : (v & ((1ull << W) - 1ull));
}

/* float/double -> ap_[u]int<W> as HLS does it: truncate toward zero, then
 * wrap modulo 2^W (ap_int<8>(300.0) = 44, (-2.7) = -2, (-0.75) = 0).  NaN
 * and +-Inf give 0 (the headers' shifts push every bit out).
 *
 * FLX_AP_INT_HEADER_QUIRK reproduces a defect of the open-source 2019.1
 * headers (docs/hls-types.md §1.1, header quirk): a negative input with
 * |x| < 0.5 gives +1 instead of 0 (ap_int<8>(-0.25) == 1), because the code
 * sets the magnitude to -1 and then negates it.  Without the flag the
 * documented standard behaviour (0) is returned. */
#define FLX_AP_INT_HEADER_QUIRK 1u
int64_t  flx_ap_int_from_double(double x, int W, unsigned flags);
uint64_t flx_ap_uint_from_double(double x, int W, unsigned flags);

/* Result type of a op b for ap_[u]int operands (op one of + - * / %):
 *   + -  : max(Wa + (Sb && !Sa), Wb + (Sa && !Sb)) + 1 bits, signed if
 *          either is (- is always signed);
 *   *    : Wa + Wb bits;   / : Wa + Sb bits;   % : min(Wa, Wb + (Sa && !Sb)).
 * Returns W = 0 for an unknown op.  Widths above 64 are reported as such;
 * the value functions below refuse them. */
flx_ap_int_type flx_ap_int_result(char op, flx_ap_int_type a, flx_ap_int_type b);

/* v >> sh on an ap_int<W>: arithmetic (sign-filling), -7 >> 1 == -4. */
int64_t flx_ap_int_shr(int64_t v, int sh, int W);

/* ---------------------------------------------------------------- ap_fixed / ap_ufixed */

typedef struct flx_apfx_type {
    int          W;          /* total bits, 1..64                          */
    int          I;          /* integer bits incl. sign; any int           */
    int          is_signed;  /* ap_fixed (1) or ap_ufixed (0)              */
    flx_ap_qmode q;          /* quantization mode                          */
    flx_ap_omode o;          /* overflow mode                              */
    int          n_sat;      /* N: saturation bits of the wrap modes, 0..W */
} flx_apfx_type;

/* An ap_fixed<W,I> / ap_ufixed<W,I> with the HLS defaults (AP_TRN, AP_WRAP, 0). */
flx_apfx_type flx_apfx(int W, int I, int is_signed);
flx_apfx_type flx_apfx_full(int W, int I, int is_signed, flx_ap_qmode q, flx_ap_omode o,
                            int n_sat);

/* Checks W in 1..64, N in 0..W, the modes, and that WRAP_SM is signed (the
 * headers reject ap_ufixed with AP_WRAP_SM). */
int flx_apfx_check(const flx_apfx_type *t, flx_error *err);

/* double (and float, through double exactly) -> bits: exact value, Q on the
 * dropped bits, O on the overflowing bits.  NaN gives 0; +-Inf behaves as a
 * value too large for any W (saturates, or wraps to 0). */
uint64_t flx_apfx_from_double(const flx_apfx_type *t, double x);

/* ap_fixed -> ap_fixed assignment with the destination's Q and O. */
uint64_t flx_apfx_convert(const flx_apfx_type *dst, const flx_apfx_type *src, uint64_t bits);

/* raw integer of the pattern (sign-extended when signed; unsigned W = 64
 * patterns above INT64_MAX are not representable here: use the bits). */
int64_t flx_apfx_raw(const flx_apfx_type *t, uint64_t bits);

/* to_double(): exact when the raw value fits 53 bits, else round to nearest
 * even (the headers support only that mode). */
double flx_apfx_to_double(const flx_apfx_type *t, uint64_t bits);

/* to_int64(): the integer part truncated toward zero, like C's (int)double
 * (ap_fixed<8,4>(-1.5).to_int() == -1). */
int64_t flx_apfx_to_int64(const flx_apfx_type *t, uint64_t bits);

/* Result type of a op b for + - * / (docs/hls-types.md §1, RType):
 *   *   : <Wa+Wb, Ia+Ib>
 *   + - : I = max(Ia + (Sb && !Sa), Ib + (Sa && !Sb)) + 1, F = max(Fa, Fb)
 *   /   : <Sb + Wa + max(Fb, 0), Sb + Ia + Fb>
 * signed if either operand is (- always).  Q/O are the defaults. */
flx_apfx_type flx_apfx_result(char op, const flx_apfx_type *a, const flx_apfx_type *b);

/* r = a op b, computed exactly in the result type (also returned in *rt).
 * Division truncates the quotient toward zero at the result's LSB, as the
 * headers' integer division does.  FLX_EUNSUPPORTED when the result is
 * wider than 64 bits, FLX_ENUMERIC on division by zero. */
int flx_apfx_op(char op, const flx_apfx_type *ta, uint64_t a, const flx_apfx_type *tb,
                uint64_t b, flx_apfx_type *rt, uint64_t *r, flx_error *err);

/* ---------------------------------------------------------------- half types */

/* x rounded to bfloat16 / binary16 (nearest even) and back to float. */
float flx_round_bf16(float x);
float flx_round_f16(float x);

#ifdef __cplusplus
}
#endif
#endif /* FLX_NUMFMT_H */
