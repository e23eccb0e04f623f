/* flx_emu.h -- the bit-exact FlexLLM kernels (reference-design §1).
 *
 * Every kernel is a plain C function on arrays with explicit shapes; the
 * output argument comes first.  "Bit-exact" means: each float operation of
 * the reference is one IEEE binary32 operation here, evaluated in the
 * reference's order (the build uses -ffp-contract=off), and every float
 * reduction follows the reduction tree of the hardware stage it models.
 * docs/kernels.md states every formula and tree; this header states shapes.
 *
 * Layouts.  Arrays are row-major and contiguous unless a stride is given.
 * Token-major activations are [n_tokens][n_channels].  The hardware's
 * token-parallel stream order (prefill), block partition (decode) and
 * head-parallel lanes (decode attention) only change the arithmetic where
 * they change a reduction tree; those kernels take the lane count (n_lanes)
 * explicitly.  Everywhere else the stream order is a permutation of
 * independent element computations and the kernel works in natural order.
 *
 * Unsigned values in signed streams.  Asymmetric INT4 activations (0..15)
 * and unsigned INT8 probabilities (0..255) travel in ap_int streams as raw
 * bit patterns.  The kernels store them exactly like that: an int8_t holding
 * the two's-complement pattern of ap_int<bits> (uint4 15 is stored as -1,
 * uint8 200 as -56).  Consumers take an explicit is_uint flag and
 * reinterpret (flx_emu_pattern_value).
 *
 * Float mode.  Kernels that use float arithmetic take a `const flx_emu_fp *`:
 *  - which exponential replaces the reference's expf (glibc expf, what the
 *    FlexLLM C simulation computes, or the project's own flx-exp built from
 *    basic float operations, which HLS twins reproduce bit for bit);
 *  - whether subnormal floats are flushed to zero like the Xilinx FP cores:
 *    with ftz on, every float operand read by a kernel and every rounded
 *    intermediate it produces is replaced by a zero of the same sign when it
 *    is subnormal.
 * There is no global state; the choice is named in every output that
 * depends on it (flx_emu_fp_name).
 *
 * Threads.  Functions taking a flx_pool split independent outputs over it;
 * results are identical for any thread count.  Float BLAS is called from
 * pool workers on exact integer data, so set OpenBLAS to one thread
 * (openblas_set_num_threads(1)) when running the emulator: its own
 * threads would only oversubscribe the cores.
 */
#ifndef FLX_EMU_H
#define FLX_EMU_H

#include "flx_core.h"
#include "flx_numfmt.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ float mode */

typedef enum flx_emu_exp_kind {
    FLX_EMU_EXP_GLIBC = 0,   /* glibc expf: matches FlexLLM C simulation      */
    FLX_EMU_EXP_FLX   = 1,   /* flx-exp: range reduction + degree-7 polynomial */
} flx_emu_exp_kind;

typedef struct flx_emu_fp {
    flx_emu_exp_kind exp;    /* exponential used wherever the reference calls expf */
    int              ftz;    /* 1: flush subnormal operands and results to +-0 */
} flx_emu_fp;

/* "glibc-expf" / "flx-exp"; NULL for an unknown kind. */
const char *flx_emu_exp_name(flx_emu_exp_kind kind);
/* Parses "glibc" / "glibc-expf" / "flx" / "flx-exp"; returns 0 or -1. */
int flx_emu_exp_parse(const char *name, flx_emu_exp_kind *out);
/* A label such as "exp=flx-exp,ftz=on" for output headers and manifests. */
const char *flx_emu_fp_name(const flx_emu_fp *fp);

/* The project exponential (docs/kernels.md "flx-exp"): only float add, sub,
 * mul and integer exponent assembly; <= 1 ulp from the exact exp over the
 * finite range (measured by tests/emu). */
float flx_emu_expf_flx(float x);
/* exp through the chosen implementation, with the ftz rule applied to the
 * operand and the result. */
float flx_emu_exp(const flx_emu_fp *fp, float x);

/* Subnormal -> zero of the same sign. */
static inline float flx_emu_ftz(float x)
{
    return (x != 0.0f && fabsf(x) < FLT_MIN) ? copysignf(0.0f, x) : x;
}

/* y[k] = (x[k] < -0x1.9fe368p+6f ? 0 : glibc expf(x[k])), bit for bit, 16
 * lanes at a time with AVX-512 (glibc's FMA algorithm per lane, checked
 * over all 2^32 inputs by bench_expf), else the scalar expression. */
int  flx_emu_expf_vec_available(void);
void flx_emu_expf_vec(float *y, const float *x, int64_t n);
/* Softmax step: x[k] = that exp of (x[k] - m) in place, s[k mod 4] += x[k]
 * in k order (s holds the running sums); -1 (nothing done) without AVX-512. */
int  flx_emu_exp_sums_vec(float *x, int64_t n, float m, float s[4]);
/* softmax_dec's tree in the fast mode (glibc expf, no ftz) with the above,
 * the maximum and the final scaling 16 lanes wide; -1 without AVX-512. */
int  flx_emu_softmax4_vec(float *x, int64_t n);

/* ============================================================ integer helpers */

/* v modulo 2^bits as a signed two's-complement value (bits 1..32): what
 * assigning an integer to ap_int<bits> does.  The one definition of these
 * semantics is quant/flx_numfmt.h (tested there against the HLS rules). */
static inline int32_t flx_emu_wrap(int64_t v, int bits)
{
    return (int32_t)flx_ap_int_wrap(v, bits);
}

/* Value of a stored bit pattern of ap_(u)int<bits>: is_uint reinterprets the
 * low `bits` bits as unsigned, otherwise as two's complement. */
static inline int32_t flx_emu_pattern_value(int32_t pattern, int bits, int is_uint)
{
    uint32_t u = (uint32_t)pattern & ((bits >= 32) ? 0xffffffffu : ((1u << bits) - 1));
    return is_uint ? (int32_t)u : flx_emu_wrap((int64_t)u, bits);
}

/* float -> ap_(u)int<bits> for an integral float: truncate toward zero, wrap
 * modulo 2^bits; returns the signed pattern.  NaN and +-inf give 0 (the
 * reference never converts them; documented choice). */
int32_t flx_emu_float_to_apint(float v, int bits);

/* C `(int)f` as compiled for x86 (cvttss2si): truncation toward zero; NaN or
 * a value outside int range gives INT32_MIN. */
int32_t flx_emu_float_to_int(float v);

/* ============================================================ quantization */

/* Dynamic per-token asymmetric quantization (1.2a/e), one (s, b) per token:
 *   max, min over the token (strict compares, sentinels -1e32 / +1e32),
 *   s = (max - min) / (2^bits - 1)   (15.0f for bits = 4); s = 1 if s == 0
 *   b = min                          (a float offset, not a zero point)
 *   q = round((x - b) / s)           (in [0, 2^bits - 1]; stored as pattern)
 * The decode kernel's per-lane max/min followed by a sequential lane merge
 * selects the same element as this natural-order scan (ties: first wins).
 * q: [n_tokens][n_ch] patterns of ap_int<bits>; s, b: [n_tokens];
 * x: [n_tokens][n_ch].  bits in 2..8. */
void flx_emu_quant_asym(int8_t *q, float *s, float *b, const float *x,
                        int64_t n_tokens, int64_t n_ch, int bits, const flx_emu_fp *fp);

/* Symmetric branch (unused by Llama): s = max(|max|, |min|) / (2^(bits-1) - 1),
 * s = 1 if 0; q = ap_int<bits>(round(x / s)). */
void flx_emu_quant_sym(int8_t *q, float *s, const float *x, int64_t n_tokens,
                       int64_t n_ch, int bits, const flx_emu_fp *fp);

/* Dequantizer with weight scale and sum (1.2b/f), per element:
 *   t = (float)acc * s[tok]; t = t * ws[o]; u = b[tok] * wsum[o]; y = t + u
 * b == NULL selects the symmetric form y = ((float)acc * s) * ws.
 * y, acc: [n_tokens][n_out]; s, b: [n_tokens]; ws, wsum: [n_out]. */
void flx_emu_dequant(float *y, const int32_t *acc, const float *s, const float *b,
                     const float *ws, const float *wsum, int64_t n_tokens,
                     int64_t n_out, const flx_emu_fp *fp);

/* Static symmetric per-head quantizer (1.2c), prefill and decode:
 *   r = (int) round(x / (mha_scale_factor * scale[h]))
 *   signed:   q = clamp(r, -2^(bits-1), 2^(bits-1) - 1)
 *   unsigned: q = min(r, 2^bits - 1)          (no lower clamp)
 *   stored as the ap_int<bits> pattern of q.
 * Head h of channel c is c / head_dim.  Decode lane m, iteration H uses
 * head m*(n_heads/HP) + H, which is the same natural head index.
 * q, x: [n_tokens][n_heads*head_dim]; scale: [n_heads]. */
void flx_emu_quant_static(int8_t *q, const float *x, int64_t n_tokens, int n_heads,
                          int head_dim, const float *scale, float mha_scale_factor,
                          int bits, int is_signed, const flx_emu_fp *fp);

/* Static per-head dequantizer (1.2d):
 *   y = ((float)acc * in_s[h]) * w_s[h / (n_heads / n_w_heads)]
 * y, acc: [n_tokens][n_heads*head_dim]; in_s: [n_heads]; w_s: [n_w_heads]. */
void flx_emu_dequant_static(float *y, const int32_t *acc, int64_t n_tokens, int n_heads,
                            int head_dim, const float *in_s, const float *w_s,
                            int n_w_heads, const flx_emu_fp *fp);

/* =================================================================== GEMMs */

/* INT4 x INT4 GEMM / GEMV of the packed 2x2 (prefill) and 1x2 (decode) PEs
 * (1.3, 1.4):  acc[t][o] = sum_k a[t][k] * w[o][k].
 * a: [n_tokens][n_in] int4 patterns (a_is_uint: uint4 0..15 carried as
 *    int4), w: [n_out][n_in] int4 weights (low nibble, sign-extended).
 * acc_bits = L + 8.  The PE keeps output pair (2n, 2n+1) in one register:
 *    acc[2n]   = wrap(S_even, acc_bits)
 *    acc[2n+1] = wrap(S_odd + (S_even - acc[2n]) / 2^acc_bits, acc_bits)
 * so an over-range even column also carries into its odd neighbour.
 * Returns the number of outputs whose exact sum left [-2^(acc_bits-1),
 * 2^(acc_bits-1)): 0 for every legal FlexLLM input (callers treat > 0 as an
 * error).  The result is the same for any thread count. */
int64_t flx_emu_gemm_i4(int32_t *acc, const int8_t *a, int a_is_uint, const int8_t *w,
                        int64_t n_tokens, int64_t n_out, int64_t n_in, int acc_bits,
                        flx_pool *pool);

/* 1 when the CPU runs AVX-512 VNNI (checked at run time). */
int flx_emu_vnni_available(void);
/* Exact sums only (no wrap): acc[t][o] = sum_k uint4(a[t][k]) * int4(w[o][k])
 * through vpdpbusd; -1 when unavailable or out of memory.  flx_emu_gemm_i4
 * uses it for uint4 activations when flx_emu_vnni_available() and
 * FLXEMU_NO_VNNI is unset; the results are identical to the other paths. */
int flx_emu_gemm_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool);
/* The same sums for a few tokens (decode GEMV): weights read in place. */
int flx_emu_gemv_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool);

/* INT4 weights packed once for the prefill GEMM (docs/kernels.md §15):
 * blocks of 32 output rows, inputs in groups of 4 padded with zeros to k64;
 * line (b, g) of 64 bytes holds in byte 4l + j the nibble of w[32b + l][4g + j]
 * (low) and of w[32b + 16 + l][4g + j] (high). */
typedef struct flx_emu_wpack {
    uint8_t *nib;          /* [o32 / 32][k64 / 4][64]                       */
    int64_t  n_out, n_in;
    int64_t  o32, k64;     /* n_out, n_in rounded up to 32, 64              */
} flx_emu_wpack;

/* Packs w [n_out][n_in] (int4 in the low nibble); -1 when out of memory.
 * The same in two steps: flx_emu_wpack_alloc sizes p, flx_emu_wpack_fill
 * writes blocks [b0, b1) of 32 rows (each block depends only on its own
 * rows, so blocks packed by different threads give the same bytes). */
int  flx_emu_wpack_init(flx_emu_wpack *p, const int8_t *w, int64_t n_out, int64_t n_in);
int  flx_emu_wpack_alloc(flx_emu_wpack *p, int64_t n_out, int64_t n_in);
void flx_emu_wpack_fill(flx_emu_wpack *p, const int8_t *w, int64_t b0, int64_t b1);
/* The same bytes packed straight from 4-bit codes as .flxq files store them
 * (flx_qtensor.nib: rows of (n_in + 1) / 2 bytes, even input in the low
 * nibble), with no int8 copy. */
void flx_emu_wpack_fill_nib(flx_emu_wpack *p, const uint8_t *nib, int64_t b0, int64_t b1);
/* Bytes of a packed [n_out][n_in] matrix; flx_emu_wpack_place sizes p over
 * caller-owned memory of that many bytes (64-byte aligned; the engine puts
 * all its matrices in one block): never flx_emu_wpack_free such a p. */
int64_t flx_emu_wpack_bytes(int64_t n_out, int64_t n_in);
void flx_emu_wpack_place(flx_emu_wpack *p, uint8_t *mem, int64_t n_out, int64_t n_in);
/* Codes of rows [o0, o0 + n_rows) back as int8 [n_rows][n_in] (the
 * portable paths of a model whose int8 codes were never unpacked). */
void flx_emu_wpack_rows(const flx_emu_wpack *p, int64_t o0, int64_t n_rows, int8_t *dst);
void flx_emu_wpack_free(flx_emu_wpack *p);
/* 1 when AMX-INT8 tiles can be used (CPU and OS) and FLXEMU_NO_AMX is unset. */
int  flx_emu_amx_available(void);
/* Exact sums acc[t][o] = sum_k uint4(a[t][k]) * int4(w[o][k]) from packed
 * weights, on AMX or else AVX-512 VNNI; *out_of_range = 1 when a sum left
 * [-2^(acc_bits-1), 2^(acc_bits-1)) (no wrap applied).  -1 without VNNI or
 * when out of memory. */
int  flx_emu_gemm_u4i4_packed(int32_t *acc, const int8_t *a, const flx_emu_wpack *w,
                              int64_t n_tokens, int acc_bits, int *out_of_range, flx_pool *pool);
/* flx_emu_gemm_i4 for uint4 activations with the packed copy of w when the
 * CPU allows it (wp may be NULL); same result and return value.  w may be
 * NULL when wp is given: the portable paths then read rows of codes back
 * from wp. */
int64_t flx_emu_gemm_i4_wp(int32_t *acc, const int8_t *a, const int8_t *w,
                           const flx_emu_wpack *wp, int64_t n_tokens, int64_t n_out,
                           int64_t n_in, int acc_bits, flx_pool *pool);

/* Decode GEMV on the packed weights (docs/kernels.md "Decode GEMV on packed
 * weights"), reading the flx_emu_wpack layout above in place.
 * flx_emu_i4p_act prepares the uint4 activation patterns a[n_in] once per
 * GEMV into ap (flx_emu_i4p_act_bytes(n_in) bytes).  flx_emu_gemv_i4p[_vnni]
 * then give the exact sums
 *   acc[o] = sum_k uint4(a[k]) * int4(w[o][k])   for o in [o0, o1)
 * (no wrap), equal to flx_emu_gemm_i4's whenever it does not wrap, and
 * return how many lie outside [-2^(acc_bits-1), 2^(acc_bits-1)).  The VNNI
 * form needs flx_emu_vnni_available(); n_in <= 2^19 (exact int32 lanes). */
int64_t flx_emu_i4p_act_bytes(int64_t n_in);
void    flx_emu_i4p_act(uint8_t *ap, const int8_t *a, int64_t n_in);
int64_t flx_emu_gemv_i4p(int32_t *acc, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                         int64_t o1, int acc_bits);
int64_t flx_emu_gemv_i4p_vnni(int32_t *acc, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits);
/* The same sums into out[o - o0] (a buffer of o1 - o0), VNNI when vnni. */
int64_t flx_emu_gemv_i4p_rows(int32_t *out, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits, int vnni);

/* INT8 products of attention (1.3 i8xi8 PEs, 1.12): each output is an exact
 * sum in its own register, wrapped to acc_bits (22 for QK^T, 26 prefill /
 * 27 decode for A.V).  Returns the number of wrapped outputs.
 *
 * QK^T of one head:  acc[i][j] = sum_d q[i][d] * k[j][d]
 *   acc: [n_q][n_k] (row stride ld_acc); q: [n_q] rows of stride ld_q;
 *   k: [n_k] rows of stride ld_k; d < head_dim.  Both signed int8. */
int64_t flx_emu_qk_i8(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                      const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                      int head_dim, int acc_bits);

/* A.V of one head:  acc[i][d] = sum_j p[i][j] * v[j][d]
 *   p: [n_q][n_k] uint8 patterns in int8 (p_is_uint) ; v: [n_k] rows of
 *   stride ld_v, signed int8; acc: [n_q] rows of stride ld_acc. */
int64_t flx_emu_av_u8i8(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                        int p_is_uint, const int8_t *v, int64_t ld_v, int64_t n_q,
                        int64_t n_k, int head_dim, int acc_bits);

/* The same two products with AVX-512 VNNI for a few query rows (the decode
 * step's query heads of one KV group): identical results and return values
 * for any arguments; they fall back to the kernels above when VNNI is
 * missing, head_dim is not a multiple of 64, or (A.V) p is signed, n_q > 16
 * or n_k > 65536. */
int64_t flx_emu_qk_i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                           const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                           int head_dim, int acc_bits);
int64_t flx_emu_av_u8i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                           int p_is_uint, const int8_t *v, int64_t ld_v, int64_t n_q,
                           int64_t n_k, int head_dim, int acc_bits);

/* The same products on AMX tiles for the prefill (head_dim % 64 == 0;
 * flx_emu_amx_available() must be 1, and the calling thread brackets its
 * calls with flx_emu_amx_begin / flx_emu_amx_end).  Exact int32 sums, no
 * wrap.  kp: K of one head in B-tile layout (flx_emu_kpack, n_k % 16 == 0);
 * vp: V of one head (flx_emu_vpack, keys zero padded to n_k64 % 64 == 0).
 * qk32: s[i][j] for 32 query rows (rows of stride ld_q) and j < n_k;
 * av32: o[i][d] for 32 rows of uint8 P (stride ld_p, n_k % 64 == 0). */
void flx_emu_kpack(int8_t *kp, const int8_t *k, int64_t ld_k, int64_t n_k, int head_dim);
void flx_emu_vpack(int8_t *vp, const int8_t *v, int64_t ld_v, int64_t n_k, int64_t n_k64,
                   int head_dim);
void flx_emu_amx_begin(void);
void flx_emu_amx_end(void);
void flx_emu_qk32_amx(int32_t *s, int64_t ld_s, const int8_t *q, int64_t ld_q,
                      const int8_t *kp, int64_t n_k, int head_dim);
void flx_emu_av32_amx(int32_t *o, int64_t ld_o, const uint8_t *p, int64_t ld_p,
                      const int8_t *vp, int64_t n_k, int head_dim);

/* FP32 PE (1.3 PE_fp32xfp32_*; HMT's GEMV): four partial sums from +0.0f,
 *   p_j += x[k] * w[o][k] for k = j mod 4 (multiply, then add),
 *   y[o] = (p0 + p1) + (p2 + p3).
 * Only n_in/4 groups run: a tail of n_in mod 4 is dropped as in hardware.
 * y: [n_out]; x: [n_in]; w: [n_out][n_in]. */
void flx_emu_gemv_f32(float *y, const float *x, const float *w, int64_t n_out,
                      int64_t n_in, const flx_emu_fp *fp);

/* ============================================================ attention misc */

/* Causal mask (1.12.7): row i is query position q_pos0 + i; key j is kept
 * when j <= q_pos0 + i, else set to -1e32f.  scores: [n_q][n_k] stride ld. */
void flx_emu_causal_mask(float *scores, int64_t ld, int64_t n_q, int64_t n_k,
                         int64_t q_pos0);

/* ================================================================= softmax */

/* Prefill attention softmax (1.8 pref_Softmax), in place on one row x[n]:
 *   m = max (sequential, strict >, init -1e32f); e_k = exp(x_k - m)
 *   S_j = sum_{k = j mod 4} e_k (k ascending), tot = (S0 + S1) + (S2 + S3)
 *   r = 1.0f / tot; p_k = e_k * r
 * Only n/4 groups are processed; the n mod 4 tail keeps its raw scores
 * (a latent reference defect; the pipelines always pass n = 0 mod 16). */
void flx_emu_softmax_pref(float *x, int64_t n, const flx_emu_fp *fp);

/* Decode attention softmax (1.8 dec_MHA_Softmax): the same tree over any n,
 * tail elements predicated into S_{k mod 4}. */
void flx_emu_softmax_dec(float *x, int64_t n, const flx_emu_fp *fp);

/* Block-partitioned softmax (1.8 dec_Softmax, HMT): lane i holds elements
 * i*(n/n_lanes) + k.  m = max of lane maxima (lane 0 first); e = exp((x - m)
 * / scale) if scale > 0, else exp(x - m); lane sums (S0+S1)+(S2+S3) over
 * beats k mod 4; tot = ((0 + lane0) + lane1) + ...; p = e * (1.0f / tot).
 * n must be a multiple of n_lanes. */
void flx_emu_softmax_block(float *x, int64_t n, int n_lanes, float scale,
                           const flx_emu_fp *fp);

/* ================================================================= RMSNorm */

/* Prefill RMSNorm (1.6), per token:
 *   s_j = sum_{k = j mod 4} x_k*x_k;  ss = (s0 + s1) + (s2 + s3)
 *   r = 1.0f / sqrtf(ss / (float)D + eps);  y_k = (x_k * r) * gamma_k
 * y, x: [n_tokens][D]; gamma: [D]. */
void flx_emu_rmsnorm_pref(float *y, const float *x, const float *gamma, int64_t n_tokens,
                          int64_t d, float eps, const flx_emu_fp *fp);

/* Decode RMSNorm (1.6) over one block-partitioned vector of n_lanes (B_T)
 * lanes: blk_i = (s_i0 + s_i1) + (s_i2 + s_i3) over lane i's beats,
 * tot = ((0 + blk_0) + blk_1) + ...; then as prefill.  d % n_lanes == 0. */
void flx_emu_rmsnorm_dec(float *y, const float *x, const float *gamma, int64_t d,
                         int n_lanes, float eps, const flx_emu_fp *fp);

/* ==================================================================== RoPE */

/* Rotate-half RoPE (1.7) of n_heads heads of one token at table row pos:
 *   out[k]      = (x[k] * cos) - (x[k + h] * sin)
 *   out[k + h]  = (x[k] * sin) + (x[k + h] * cos),  h = head_dim / 2,
 *   sin = sin_tab[pos][k], cos = cos_tab[pos][k].  y may alias x.
 * y, x: [n_heads*head_dim]; tables: [n_pos][head_dim/2]. */
void flx_emu_rope(float *y, const float *x, int n_heads, int head_dim,
                  const float *sin_tab, const float *cos_tab, int64_t pos,
                  const flx_emu_fp *fp);

/* Fills sin/cos tables [n_pos][head_dim/2] with sin(pos * inv_freq[k]) and
 * cos(...) computed in double and rounded once to float.  inv_freq: the
 * model's (rope_theta with llama3 scaling), or NULL for the reference's
 * shipped table base: 10000^(-2k/head_dim), no scaling (reference quirk). */
void flx_emu_rope_table(float *sin_tab, float *cos_tab, int64_t n_pos, int head_dim,
                        const double *inv_freq);

/* ============================================================= elementwise */

/* SiLU gate (1.9): y = (g / (1.0f + exp(-g))) * u  (negate, exp, add, divide,
 * multiply).  u == NULL gives the bare SiLU.  y may alias g or u. */
void flx_emu_silu_gate(float *y, const float *g, const float *u, int64_t n,
                       const flx_emu_fp *fp);

/* Residual add (1.10): y = a + r.  y may alias a or r. */
void flx_emu_residual(float *y, const float *a, const float *r, int64_t n,
                      const flx_emu_fp *fp);

/* Embedding lookup (1.13.6): copies row `token` of table [n_vocab][d].
 * Returns FLX_EINVAL (message in err) when token is outside [0, n_vocab). */
int flx_emu_embed(float *y, const float *table, int64_t n_vocab, int64_t d, int64_t token,
                  flx_error *err);

/* ===================================================================== FHT */

/* Fast Walsh-Hadamard transform (1.11), in place on x[n], n = 2^m:
 * butterflies (x_i, x_j) <- (x_i + x_j, x_i - x_j) over index bits in the
 * order 1, 2, ..., m-1, then 0 (bit-identical to FlexLLM's constant-geometry
 * network), then x_i = x_i / scale (a division) when scale > 0.
 * Llama R4: n = 8192, scale = 90.50967f.  Returns -1 if n is not a power of
 * two (>= 2). */
int flx_emu_fht(float *x, int64_t n, float scale, const flx_emu_fp *fp);
/* The same in two parts, for a vector split over threads in aligned chunks
 * of c = 2^j elements: flx_emu_fht_local(x + i*c, c) on every chunk (the
 * stages over bits 1 .. j-1, which stay inside a chunk), then
 * flx_emu_fht_finish(x, n, c, scale) (bits j .. m-1, then 0, then the
 * scale).  Every butterfly is the one of flx_emu_fht: the same bits.
 * flx_emu_fht = local(x, n) + finish(x, n, n).  -1 on sizes that are not
 * powers of two (>= 2) or c > n. */
int flx_emu_fht_local(float *x, int64_t c, const flx_emu_fp *fp);
int flx_emu_fht_finish(float *x, int64_t n, int64_t c, float scale, const flx_emu_fp *fp);

/* ================================================================ sampling */

enum { FLX_EMU_TOPK_MAX = 16 };

typedef struct flx_emu_topk {
    int   k;                         /* list length (5 on the U280)      */
    float value[FLX_EMU_TOPK_MAX];   /* sorted, descending               */
    int32_t id[FLX_EMU_TOPK_MAX];    /* -1 where nothing was inserted    */
    float prob[FLX_EMU_TOPK_MAX];    /* p_k = e_k / sum                  */
    float cdf[FLX_EMU_TOPK_MAX];
    int   selected;                  /* position chosen by the threshold */
    int32_t token;                   /* id[selected]                     */
} flx_emu_topk;

/* Top-k sampling (1.13).  logits: [n_vocab_pad] in natural id order, lane i
 * of n_lanes owning ids i*(n_vocab_pad/n_lanes) + j.  Per lane, ids are
 * inserted in ascending order into a descending list (first position p with
 * v > list[p], strict, so ties keep the earlier id; init -1e32f / -1); the
 * lane lists are merged rank-major (rank 0 of lanes 0..n_lanes-1, then rank
 * 1, ...) with the same rule; e_k = exp(l_k - l_0); sum = sp0 + sp1 with
 * sp[k mod 2] accumulated in k order from 0; p_k = e_k / sum; c_0 = p_0,
 * c_k = p_k + c_{k-1}; selected = smallest k with r < c_k, else k-1.
 * Returns -1 on bad arguments (k out of 1..FLX_EMU_TOPK_MAX, n_vocab_pad not
 * a multiple of n_lanes), else 0. */
int flx_emu_topk_sampling(flx_emu_topk *out, const float *logits, int64_t n_vocab_pad,
                          int n_lanes, int k, float r, const flx_emu_fp *fp);

/* =============================================================== pipelines
 *
 * The Llama W4A4 prefill and decode of FlexLLM's production top levels
 * (reference-design §3.3, 3.4) on a quantized model (quant/flx_qmodel.h).  Every
 * activation follows the precision map of reference-design §3.2; all kernels above. */

typedef struct flx_qmodel flx_qmodel;

typedef struct flx_emu_opts {
    flx_emu_fp fp;
    int reference_quirks;  /* reference-design §6: base-10000 RoPE table, decode K-cache
                              group overwrite (zeros, as C simulation), padded
                              vocabulary logits left at 0 instead of masked */
    int top_k;             /* LOGITS_MAX_K: 5                                */
    int norm_lanes;        /* decode RMSNorm lanes B_T: 8                    */
    int sample_lanes;      /* sampler lanes: 16                              */
    int full_attention;    /* 1: prefill computes and masks all L x L scores
                              as the hardware does; 0 (default): only the
                              causal prefix, which gives identical bits     */
} flx_emu_opts;

void flx_emu_opts_default(flx_emu_opts *o);

/* A quantized model checked for the FlexLLM engine, plus its tables. */
typedef struct flx_emu_engine {
    const flx_qmodel *qm;
    flx_emu_opts opts;
    int64_t max_pos;        /* positions the RoPE table covers              */
    int64_t n_vocab_pad;    /* next power of two >= n_vocab (131072)        */
    float  *rope_sin;       /* [max_pos][head_dim/2]                        */
    float  *rope_cos;       /* [max_pos][head_dim/2]                        */
    float   fht_scale;      /* sqrt_INTER_DIM: 90.50967f for d_ff = 8192    */
    float   q_factor;       /* sqrt_HEAD_DIM, an integer in the reference: 8 */
    float  *att_scales;     /* [n_layers][4][n_heads]: Q_s, K_s, V_s, A_s per
                               head (K_s/V_s use the first n_kv_heads)      */
    flx_emu_wpack *wpack;   /* [n_layers * 7 + 1]: wq wk wv wo w_gate w_up
                               w_down per layer, then the head, packed at
                               init for the prefill GEMM and the decode GEMV */
    int     openblas_threads_before; /* OpenBLAS runs single-threaded while
                               an engine lives (the caller's flx_pool splits
                               the work); restored by flx_emu_engine_free   */
    uint8_t *wpack_mem;     /* one block holding every wpack[i].nib         */
} flx_emu_engine;

/* Checks that the hardware can run the model (INT4 symmetric per-channel
 * weights with stored sums everywhere, online R4, no online R3, power-of-two
 * d_ff, positive attention scales, ...) and builds the RoPE table for
 * max_pos positions (rounded up to a multiple of 16: the prefill pads its
 * rows and the padding takes positions too).  A model it cannot run gets FLX_EUNSUPPORTED naming the
 * tensor and the reason. */
int  flx_emu_engine_init(flx_emu_engine *e, const flx_qmodel *qm, const flx_emu_opts *o,
                         int64_t max_pos, flx_error *err);
/* The same with the weight packing split over pool (NULL: this thread);
 * the packed bytes do not depend on the thread count. */
int  flx_emu_engine_init_ex(flx_emu_engine *e, const flx_qmodel *qm, const flx_emu_opts *o,
                            int64_t max_pos, flx_pool *pool, flx_error *err);
void flx_emu_engine_free(flx_emu_engine *e);

/* INT8 KV cache, stored head-major: k and v are [n_layers][n_kv_heads][cap]
 * [head_dim], so one KV head's keys (values) of a layer are one sequential
 * run and decode attention streams them instead of reading head_dim bytes
 * out of every kv_dim-byte position row.  The prefill, the golden files and
 * the hardware use the row layout [position][kv_dim] (column kv_head *
 * head_dim + dim); flx_emu_kv_get_rows / flx_emu_kv_put_rows convert. */
typedef struct flx_emu_kv {
    int     n_layers;
    int     n_kv_heads;
    int     head_dim;
    int     kv_dim;         /* n_kv_heads * head_dim                        */
    int64_t cap;            /* positions                                    */
    int8_t *k;              /* [n_layers][n_kv_heads][cap][head_dim] k8     */
    int8_t *v;              /* [n_layers][n_kv_heads][cap][head_dim] v8     */
    int8_t *k_reg;          /* [n_layers][n_kv_heads][32][head_dim] decode K
                               group register (--reference-quirks)          */
} flx_emu_kv;

int  flx_emu_kv_init(flx_emu_kv *kv, const flx_emu_engine *e, int64_t cap, flx_error *err);
void flx_emu_kv_free(flx_emu_kv *kv);

/* Offset in kv->k and kv->v of position 0 of KV head kv_head of a layer:
 * that head's position p starts head_dim * p bytes further. */
static inline int64_t flx_emu_kv_head_offset(const flx_emu_kv *kv, int layer, int kv_head)
{
    return ((int64_t)layer * kv->n_kv_heads + kv_head) * kv->cap * kv->head_dim;
}

/* Positions pos0 .. pos0+n-1 of a layer as rows [n][kv_dim] (row t holds
 * position pos0 + t, column kv_head * head_dim + dim): get copies them out
 * of the cache, put into it.  k_rows or v_rows may be NULL (that cache is
 * skipped).  The caller keeps 0 <= layer < n_layers, pos0 >= 0 and
 * pos0 + n <= cap. */
void flx_emu_kv_get_rows(const flx_emu_kv *kv, int layer, int64_t pos0, int64_t n,
                         int8_t *k_rows, int8_t *v_rows);
void flx_emu_kv_put_rows(flx_emu_kv *kv, int layer, int64_t pos0, int64_t n,
                         const int8_t *k_rows, const int8_t *v_rows);

/* Prefill of tokens[0..n) at positions 0..n-1, padded with zero embeddings
 * to a multiple of 16.  hidden: [n][d_model] last layer output (before the
 * final norm) or NULL; kv: receives k8/v8 of positions 0..n-1 (the host's
 * hand-over to decode) or NULL. */
int flx_emu_prefill(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv,
                    const int32_t *tokens, int64_t n, flx_pool *pool, flx_error *err);

/* The same prefill (no KV hand-over) with the layer-0 input given as rows
 * embd[0..n) of d_model floats instead of token embeddings (HMT stages). */
int flx_emu_prefill_embd(const flx_emu_engine *e, float *hidden, const float *embd, int64_t n,
                         flx_pool *pool, flx_error *err);

/* Final RMSNorm (decode tree), INT4 quantization and INT4 head for n rows:
 * logits [n][n_vocab] (hardware perplexity). */
int flx_emu_head(const flx_emu_engine *e, float *logits, const float *hidden, int64_t n,
                 flx_pool *pool, flx_error *err);

/* One call of a multi-call prefill (flx_host's; FlexLLM's host makes one
 * call over the whole prompt): n rows at positions pos0 .. pos0+n-1 (pos0 a
 * multiple of 16; rows padded to a multiple of 16 with zero rows), layer-0
 * input tokens[0..n) or, when tokens is NULL, rows embd[0..n).  kv (needed
 * when pos0 > 0, cap >= pos0 + n) holds the earlier calls' k8/v8 at
 * positions 0 .. pos0-1 of every layer and receives pos0 .. pos0+n-1.
 * Calls at 0, 16, 32, ... give the hidden rows and K/V of one
 * flx_emu_prefill over all rows bit for bit (tested). */
int flx_emu_prefill_at(const flx_emu_engine *e, float *hidden, flx_emu_kv *kv, const int32_t *tokens,
                       const float *embd, int64_t n, int64_t pos0, flx_pool *pool, flx_error *err);

/* Hardware perplexity of one window: prefill of tokens[0..n) (any n; sizes
 * over the U280's 1024 are allowed, the caller reports them), then the
 * decode-stage final RMSNorm and INT4 head for every position.  Logits are
 * handed to rows_fn in blocks of rows ([n_rows][n_vocab], valid during the
 * call) so that a 2048 x 128256 window never sits in memory at once; a
 * non-zero return from rows_fn stops with that status. */
typedef int (*flx_emu_rows_fn)(void *ctx, int64_t row0, int64_t n_rows, const float *logits);

int flx_emu_window_logits(const flx_emu_engine *e, const int32_t *tokens, int64_t n,
                          flx_emu_rows_fn rows_fn, void *ctx, flx_pool *pool, flx_error *err);

/* One decode step of `token` at position pos (keys 0..pos attended, k8/v8
 * written at pos).  logits: [n_vocab_pad]; ids >= n_vocab hold 0 under
 * reference quirks (unmasked) and -1e32f otherwise. */
int flx_emu_decode_step(const flx_emu_engine *e, float *logits, flx_emu_kv *kv,
                        int32_t token, int64_t pos, flx_pool *pool, flx_error *err);

/* The same step that can also return the last layer's output hidden
 * [d_model] (before the final norm; NULL: not wanted) and skip the head
 * (logits NULL). */
int flx_emu_decode_step_ex(const flx_emu_engine *e, float *logits, float *hidden,
                           flx_emu_kv *kv, int32_t token, int64_t pos, flx_pool *pool,
                           flx_error *err);

/* Where a decode step's wall time goes, per thread of the step (the first
 * FLX_EMU_PROF_RANKS), summed over steps; for benchmarks (bench_decode
 * --profile).  Stages: norms, residuals and activation quantizers; the
 * GEMVs (K/V/Q, O, gate/up with SiLU, down, head), attention with RoPE and
 * the K/V/Q quantizers; the FHT; waiting at the step's barriers. */
enum { FLX_EMU_PROF_PREP, FLX_EMU_PROF_QKV, FLX_EMU_PROF_ATT, FLX_EMU_PROF_O,
       FLX_EMU_PROF_GATEUP, FLX_EMU_PROF_FHT, FLX_EMU_PROF_DOWN, FLX_EMU_PROF_HEAD,
       FLX_EMU_PROF_WAIT, FLX_EMU_PROF_N, FLX_EMU_PROF_RANKS = 8 };
typedef struct flx_emu_decode_prof {
    int64_t steps;
    double  seconds[FLX_EMU_PROF_RANKS][FLX_EMU_PROF_N];
} flx_emu_decode_prof;

/* The same decode step at interactive speed (docs/kernels.md "Fast
 * decode"): bit for bit flx_emu_decode_step_ex's results (tested), with
 * every INT4 matrix of the layers and the head read in place from the
 * engine's packed weights (e->wpack, the prefill's copy: no second copy) by
 * the packed GEMV.  One pool call per step: each thread of the pool runs
 * the whole step on its own static share of every matrix's rows and of
 * the KV groups, meeting the others at four spinning barriers per layer.
 * flx_emu_generate uses it; the decoder borrows the engine.
 * FLXEMU_NO_VNNI=1 selects the portable GEMV (same bits). */
typedef struct flx_emu_decoder {
    const flx_emu_engine *e;
    const flx_emu_wpack  *w;       /* e->wpack [n_layers*7 + 1]: wq wk wv wo
                                      w_gate w_up w_down per layer, the head */
    int64_t         packed_bytes;  /* bytes of e->wpack read per token     */
    int             bits;          /* accumulator width L + 8 (21)          */
    int             vnni;          /* 1: AVX-512 VNNI GEMV                  */
    flx_emu_decode_prof *prof;     /* NULL, or where steps add their times  */
} flx_emu_decoder;

int  flx_emu_decoder_init(flx_emu_decoder *d, const flx_emu_engine *e, flx_pool *pool,
                          flx_error *err);
void flx_emu_decoder_free(flx_emu_decoder *d);
int  flx_emu_decoder_step(const flx_emu_decoder *d, float *logits, float *hidden,
                          flx_emu_kv *kv, int32_t token, int64_t pos, flx_pool *pool,
                          flx_error *err);

/* Host flow (reference-design §3.3): prefill of the first n_prompt-1 tokens, K/V
 * hand-over, decode from the last prompt token through flx_emu_decoder
 * (its packed weights live for the call); each step samples with
 * threshold r drawn from flx_rng(seed) and calls cb (a non-zero return
 * stops).  Stops after n_new tokens or at stop_id (>= 0). */
typedef int (*flx_emu_token_fn)(void *ctx, int64_t step, const flx_emu_topk *tk, float r);

int flx_emu_generate(const flx_emu_engine *e, const int32_t *prompt, int64_t n_prompt,
                     int64_t n_new, uint64_t seed, int32_t stop_id, flx_emu_token_fn cb,
                     void *ctx, flx_pool *pool, flx_error *err);

/* =========================================================== golden vectors
 *
 * Seeded inputs of the U280 sizes for every kernel, the emulator's outputs,
 * as .npy v1.0 files (optionally gzip) under DIR/<kernel>/ plus
 * DIR/manifest.json (kernel, reference function and template parameters,
 * shapes, dtypes, layouts, seed, float mode, CRC32 of every file).  Tensors
 * in a stream layout also get NAME.stream.npy: rows = beats, columns = lanes,
 * the order an HLS testbench reads. */
typedef struct flx_emu_golden_opts {
    uint64_t   seed;
    flx_emu_fp fp;
    int        gzip;        /* write NAME.npy.gz through zlib */
    int64_t    pos0;        /* layer_prefill: position of the call's first
                               row, a multiple of 16 (0: the first call)    */
    int64_t    n_tokens;    /* layer_prefill: the call's tokens, 1..256, the
                               call padded to a multiple of 16 rows (0: 16) */
} flx_emu_golden_opts;

/* i-th kernel name (0-based), NULL past the end. */
const char *flx_emu_golden_kernel_name(int i);
/* The kernel's current name for `name`, which may be its name or the name
 * it had before the renaming of docs/kernels.md §17; NULL if unknown
 * (the whole-layer sets are not kernels here). */
const char *flx_emu_golden_kernel_find(const char *name);

/* what: a kernel name, "all" (every kernel), "layer_hmt" (one HMT segment
 * step: retrieval and ring update at the U280 size, plus layer_hmt_segment,
 * the whole step with both prefills at a tiny shape; docs/hmt.md 8), or "layer_prefill" /
 * "layer_decode" (one decoder layer of the U280 model shape with random INT4
 * weights, reference quirks on: inputs, all weights and scales, K/V caches
 * and the layer output); config: "u280".  FLX_EINVAL for an unknown
 * kernel or config (callers report it as a usage error). */
int flx_emu_golden_write(const char *dir, const char *what, const char *config,
                         const flx_emu_golden_opts *o, flx_error *err);

/* Checks every file of DIR against its CRC32 (a failure names the file),
 * then re-runs the kernels with the manifest's seed and float mode and
 * compares contents (a failure names the file, the first differing flat
 * index and both values).  n_files: files checked. */
int flx_emu_golden_check(const char *dir, int64_t *n_files, flx_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FLX_EMU_H */
