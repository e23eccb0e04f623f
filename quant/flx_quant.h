/* flx_quant.h -- integer quantizers for weights, activations and the KV
 * cache: the formats of SpinQuant/QuaRot and of FlexLLM (docs/quant.md).
 *
 * A tensor is (rows, cols) row-major: weights are [out][in] (a row is an
 * output channel), activations are [tokens][channels] (a row is a token).
 * Scale granularity:
 *   FLX_QG_TENSOR   one (scale, zero) for the whole tensor
 *   FLX_QG_ROW      one per row: "per output channel" for weights,
 *                   "per token" for activations
 *   FLX_QG_GROUP    one per run of group_size consecutive columns of a row
 *                   ("per head" is a group of head_dim)
 * Parameters are stored row-major: [rows][cols / group_size] (GROUP),
 * [rows] (ROW), [1] (TENSOR).
 *
 * Schemes (b = bits, x^ = dequantized value):
 *   FLX_QS_SYM        s = clip * max|x| / (2^(b-1) - 1)   (s = 1 if 0)
 *                     q = clamp(rnd(x / s), -2^(b-1), 2^(b-1) - 1); x^ = s q
 *   FLX_QS_ASYM_ZP    SpinQuant/QuaRot: lo = clip * min(min x, 0),
 *                     hi = clip * max(max x, 0) (both 0 -> -1, +1);
 *                     s = (hi - lo) / (2^b - 1); z = rnd(-lo / s);
 *                     q = clamp(rnd(x / s) + z, 0, 2^b - 1); x^ = s (q - z)
 *   FLX_QS_ASYM_FLOAT FlexLLM (reference-design §1.2(a)): lo = min x,
 *                     hi = max x (times clip); s = (hi - lo) / (2^b - 1)
 *                     (s = 1 if 0); offset = lo; q = rnd((x - lo) / s)
 *                     clamped to [0, 2^b - 1]; x^ = s q + lo
 * rnd is C round() (half away from zero, FlexLLM) or half to even
 * (PyTorch's torch.round, SpinQuant).  All arithmetic is float32 in the
 * order written, divisions are divisions (never reciprocal multiplies).
 *
 * Static quantization uses parameters the caller computed once (from a
 * calibration run) for every call; dynamic computes them from each input.
 */
#ifndef FLX_QUANT_H
#define FLX_QUANT_H

#include "flx_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flx_qscheme {
    FLX_QS_SYM = 0,
    FLX_QS_ASYM_ZP,
    FLX_QS_ASYM_FLOAT,
} flx_qscheme;

typedef enum flx_qgran {
    FLX_QG_TENSOR = 0,
    FLX_QG_ROW,
    FLX_QG_GROUP,
} flx_qgran;

typedef enum flx_qround {
    FLX_QR_HALF_AWAY = 0,   /* C round(): FlexLLM                    */
    FLX_QR_HALF_EVEN,       /* torch.round: SpinQuant / QuaRot       */
} flx_qround;

typedef struct flx_qspec {
    int32_t     bits;        /* 2..8 or 16                               */
    flx_qscheme scheme;
    flx_qgran   gran;
    int32_t     group_size;  /* columns per group for FLX_QG_GROUP       */
    flx_qround  round;
    float       clip;        /* range multiplier in (0, 1]; 1 = no clip  */
    int         mse_clip;    /* weights: search the clip per group that
                                minimises sum |x^ - x|^2.4 over p = 1,
                                0.99, ..., 0.21 (SpinQuant: norm 2.4,
                                grid 100, maxshrink 0.8)                 */
    int         minmax_range; /* ASYM_ZP only: the range is the group's
                                [min, max] as found, not widened to include
                                0 (SpinQuant's per-token group quantizer,
                                find_params_per_token_groupwise: V and the
                                o_proj input); a constant nonzero group
                                (min == max) is widened as usual           */
} flx_qspec;

/* Quantization parameters of one group. */
typedef struct flx_qparams {
    float scale;
    float zero;   /* ASYM_ZP: integer zero point (held as float);
                     ASYM_FLOAT: the float offset (min); SYM: 0 */
} flx_qparams;

/* A spec with the given bits and scheme, per row, half-away rounding, no
 * clip. */
flx_qspec flx_qspec_make(int32_t bits, flx_qscheme scheme, flx_qgran gran, int32_t group_size);

/* Checks the spec for a tensor with n_cols columns: bits in 2..8 or 16,
 * clip in (0, 1], group_size >= 1 dividing n_cols.  `what` names the
 * tensor in the message ("layer 3 wq"). */
int flx_qspec_check(const flx_qspec *s, int64_t n_cols, const char *what, flx_error *err);

/* Integer range of the codes: [qmin, qmax]. */
void flx_qspec_range(const flx_qspec *s, int32_t *qmin, int32_t *qmax);

/* Number of flx_qparams of a (rows, cols) tensor. */
int64_t flx_qspec_n_params(const flx_qspec *s, int64_t rows, int64_t cols);

/* The rounding function of the spec. */
float flx_qround_apply(flx_qround r, float x);

/* Parameters of one group of n values (dynamic quantization, or weights). */
flx_qparams flx_qparams_of(const flx_qspec *s, const float *x, int64_t n);

/* One value. */
int32_t flx_quantize1(const flx_qspec *s, flx_qparams p, float x);
float   flx_dequantize1(const flx_qspec *s, flx_qparams p, int32_t q);

/* Computes the parameters of a (rows, cols) tensor into params (length
 * flx_qspec_n_params), honouring mse_clip. */
void flx_quant_params(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                      flx_qparams *params);

/* Quantizes with given parameters: q[rows*cols] integer codes. */
void flx_quant_apply(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                     const flx_qparams *params, int32_t *q);

/* Fake quantization out = dequant(quant(x)); out may alias x.  Dynamic
 * when params is NULL (computed here, per the granularity), static
 * otherwise.  bits == 16 is INT16 like the other widths (recipes that keep
 * a tensor in float never call this). */
void flx_fake_quant(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                    const flx_qparams *params, float *out);
/* The plain C loops of flx_fake_quant: flx_fake_quant runs AVX2 forms of
 * them when the processor has AVX2, with the same bits (quant/qsimd.c;
 * tests/quant/test_qsimd.c compares the two). */
void flx_fake_quant_scalar(const flx_qspec *s, const float *x, int64_t rows, int64_t cols,
                           const flx_qparams *params, float *out);

/* FlexLLM's static unsigned 8-bit quantizer of the softmax output, in
 * place: p = min(roundf(p / a_s), 255) * a_s (p >= 0; roundf is half away
 * from zero), and its plain C loop. */
void flx_fake_quant_u8(float *p, int64_t n, float a_s);
void flx_fake_quant_u8_scalar(float *p, int64_t n, float a_s);

/* ---------------------------------------------------------------- packing */

/* Bytes of n codes packed at `bits` per code: two codes per byte for
 * bits <= 4 (code 2i in the low nibble, 2i+1 in the high nibble, as
 * FlexLLM packs INT4), one per byte for 5..8, two bytes (little-endian)
 * for 16. */
size_t flx_pack_bytes(int32_t bits, size_t n);
void   flx_pack_codes(int32_t bits, const int32_t *q, size_t n, uint8_t *out);
/* Inverse; is_signed sign-extends each field (codes from SYM), otherwise
 * fields are read as unsigned (ASYM codes). */
void   flx_unpack_codes(int32_t bits, int is_signed, const uint8_t *in, size_t n, int32_t *q);

/* INT4 nibble pairs from int8 values (the qmodel's storage). */
void flx_pack_int4(const int8_t *q, size_t n, uint8_t *out);
void flx_unpack_int4(const uint8_t *in, size_t n, int is_signed, int8_t *q);

/* ---------------------------------------------------------------- FlexLLM weights */

/* FlexLLM's weight export (reference-design §1.2): per output channel
 * symmetric INT4, s = max|w| / 7 (1 if 0), q = clamp(round(w / s), -8, 7),
 * wsum = s * (float)sum_k q[k] (the sum of dequantized weights). */
void flx_quant_flexllm_weight(const float *w, int64_t n_out, int64_t n_in, int8_t *q,
                              float *scale, float *wsum);

#ifdef __cplusplus
}
#endif
#endif /* FLX_QUANT_H */
