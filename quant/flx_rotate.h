/* flx_rotate.h -- Walsh-Hadamard transforms, rotation matrices and the
 * SpinQuant rotations R1..R4 of a Llama model (docs/quant.md, SpinQuant).
 *
 * Convention used everywhere in this module: an activation is a ROW vector x
 * and a rotation R acts as x' = x . R; the linear that consumes x' absorbs
 * the inverse as W' = W . R (W is [out][in], so W' = W R keeps W' x' = W x
 * because R R^T = I).  A linear whose OUTPUT is rotated gets W' = R^T W.
 *
 *   R1 (d_model)  residual stream: embedding E' = E R1; q/k/v/gate/up/head
 *                 W' = W R1; o/down W' = R1^T W.  RMSNorm gains are folded
 *                 into the following linears first (and set to 1) and a
 *                 tied head is untied, so the norm commutes with R1.
 *   R2 (head_dim) per layer: v rows of every KV head block h: W'_h = R2^T W_h;
 *                 o columns of every head block: W'_o[:,h] = W_o[:,h] R2.
 *   R3 (head_dim) online: q . H and k . H per head after RoPE (normalized
 *                 Hadamard); it cancels in q.k, nothing is merged.
 *   R4 (d_ff)     online: f . H before down_proj (FlexLLM's FHT divided by
 *                 sqrt(d_ff)), W_down' = W_down H merged.  For a d_ff that
 *                 is not a power of two (stories260K: 172) R4 is a seeded
 *                 random orthogonal matrix applied as a dense product.
 *
 * Hadamard transforms are bit-exact float with a documented butterfly
 * order; every multi-row routine gives identical bytes for any thread count.
 */
#ifndef FLX_ROTATE_H
#define FLX_ROTATE_H

#include "flx_core.h"
#include "flx_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- Hadamard */

/* Butterfly stage order of the in-place fast Walsh-Hadamard transform.
 * Stage b pairs (i, i | 2^b) for every i with bit b clear and writes
 * (x_i + x_j, x_i - x_j).  Both orders compute the Sylvester (natural order)
 * H_N x; in float they round differently, so the order is part of the
 * result.  FLEXLLM reproduces FHT.h's constant-geometry network bit for bit
 * (reference-design §1.11): bits 1, 2, ..., m-1, then bit 0. */
typedef enum flx_fht_order {
    FLX_FHT_TEXTBOOK = 0,   /* bits 0, 1, ..., m-1 (strides 1, 2, 4, ...) */
    FLX_FHT_FLEXLLM  = 1,   /* bits 1, ..., m-1, then 0                   */
} flx_fht_order;

int flx_is_pow2(int64_t n);

/* (float)sqrt(n): the divisor that normalizes an n-point transform.  For
 * n = 8192 it equals FlexLLM's sqrt_INTER_DIM constant 90.50967f. */
float flx_fht_norm_divisor(int32_t n);

/* In place: x[0..n) <- (H_n x) / divisor, each output DIVIDED by divisor as
 * FHT.h does (divisor 1 = unnormalized, no division performed).  n must be
 * a power of two (1 allowed).  Returns FLX_EINVAL otherwise. */
int flx_fht(float *x, int32_t n, flx_fht_order order, float divisor, flx_error *err);
/* flx_fht's plain C loops; flx_fht runs the same stages eight lanes at a
 * time (AVX2) when it can, with the same bits (tests/quant/test_qsimd.c). */
int flx_fht_scalar(float *x, int32_t n, flx_fht_order order, float divisor, flx_error *err);

/* The same on n_rows consecutive rows of n floats, rows spread over pool
 * (NULL: serial); each row is transformed on its own, so the result does
 * not depend on the thread count. */
int flx_fht_rows(float *x, int64_t n_rows, int32_t n, flx_fht_order order, float divisor,
                 flx_pool *pool, flx_error *err);

/* Double-precision textbook transform scaled by scale (1/sqrt(n) for the
 * orthonormal one); used to merge Hadamards into weights accurately. */
int flx_fht_f64(double *x, int32_t n, double scale, flx_error *err);

/* ---------------------------------------------------------------- rotation matrices */

/* Dense (n, n) row-major matrices, n a power of two for the Hadamard ones:
 *   flx_hadamard_matrix:  H[i][j] = (-1)^popcount(i & j), times 1/sqrt(n) if
 *                         normalized.
 *   flx_random_hadamard:  diag(s) H / sqrt(n), signs s from seed (SpinQuant's
 *                         random_hadamard_matrix, its R1 initialisation).
 *   flx_random_orthogonal: Q of the QR factorisation (LAPACK dgeqrf/dorgqr,
 *                         double) of an n x n N(0,1) matrix drawn from seed,
 *                         columns sign-fixed by sign(R_jj) so Q is Haar
 *                         distributed; any n >= 1. */
int flx_hadamard_matrix(float *h, int32_t n, int normalized, flx_error *err);
int flx_random_hadamard(float *r, int32_t n, uint64_t seed, flx_error *err);
int flx_random_orthogonal(float *r, int32_t n, uint64_t seed, flx_error *err);

/* max |(R^T R - I)_ij|, accumulated in double. */
double flx_orthogonality_error(const float *r, int32_t n);

/* ---------------------------------------------------------------- SpinQuant */

/* Rotation kinds a user can ask for. */
typedef enum flx_rot_kind {
    FLX_ROT_NONE     = 0,
    FLX_ROT_HADAMARD = 1,   /* random Hadamard R1/R2 (power-of-two sizes)  */
    FLX_ROT_RANDOM   = 2,   /* random orthogonal R1/R2 (any size)          */
    FLX_ROT_FILE     = 3,   /* R1/R2 loaded from a rotation file           */
} flx_rot_kind;

/* The rotations applied to one model.  Shapes follow the model config. */
typedef struct flx_rotation_set {
    int32_t d_model, head_dim, n_layers, d_ff;
    flx_rot_kind kind;
    float  *r1;            /* (d_model, d_model), or NULL: no R1            */
    float  *r1_signs;      /* (d_model) when r1 = diag(s) H / sqrt(d_model)
                              (kind HADAMARD): merges then use the FHT,
                              O(d log d) per row instead of O(d^2)         */
    float  *r2;            /* (n_layers, head_dim, head_dim), or NULL       */
    int     r3;            /* online normalized Hadamard on Q, K after RoPE */
    int     r4;            /* online rotation of the down_proj input        */
    float  *r4_dense;      /* (d_ff, d_ff) when d_ff is not a power of two  */
    float   r4_divisor;    /* FHT divisor (float)sqrt(d_ff)                 */
    float   r3_divisor;    /* (float)sqrt(head_dim)                         */
} flx_rotation_set;

/* Maximum tolerated max|R^T R - I| for loaded rotations. */
#define FLX_ROT_ORTHO_TOL 1e-4

/* Generates R1 and R2 of the given kind (HADAMARD or RANDOM; NONE gives an
 * empty set) from seed; r3/r4 select the online rotations.  The rng stream
 * is consumed in order R1, R2 of layer 0..n_layers-1, dense R4. */
int flx_rotset_generate(flx_rotation_set *rs, const flx_llama_config *cfg, flx_rot_kind kind,
                        int r3, int r4, uint64_t seed, flx_error *err);

/* Rotation file (safetensors, little-endian F32, documented in docs/quant.md):
 *   "R1"         [d_model, d_model]             required
 *   "R2.<l>"     [head_dim, head_dim]  l = 0..n_layers-1, all or none
 * Each matrix is checked for shape, finiteness and orthogonality
 * (max|R^T R - I| <= FLX_ROT_ORTHO_TOL); the message names file and tensor. */
int flx_rotset_load(flx_rotation_set *rs, const flx_llama_config *cfg, const char *path,
                    int r3, int r4, uint64_t seed, flx_error *err);
/* Writes R1, R2.<l> and, when R4 is online, "R4" [d_ff, d_ff]: the dense
 * matrix the forward applies (the seeded one, or H / sqrt(d_ff) for the
 * FHT).  flx_rotset_load ignores "R4". */
int flx_rotset_save(const flx_rotation_set *rs, const char *path, flx_error *err);
void flx_rotset_free(flx_rotation_set *rs);

/* Zero-pads the feed-forward width to d_ff_new >= d_ff: zero rows appended
 * to W_gate and W_up, zero columns to W_down (new buffers the model owns;
 * cfg.d_ff is updated).  The float model's function is unchanged, bit for
 * bit (pad.c).  Done before rotating so that a non-power-of-two d_ff (e.g.
 * stories260K's 172) gets FlexLLM's FHT as R4 instead of a dense matrix. */
int flx_model_pad_dff(flx_model *m, int32_t d_ff_new, flx_error *err);
int32_t flx_next_pow2(int32_t n);   /* smallest power of two >= n (n >= 1) */

/* Turns adjacent RoPE pairing (2i, 2i+1; GGUF, llama2.c) into split-half
 * pairing (i, i + head_dim/2), the layout of FlexLLM's RoPE kernel, by
 * reordering the rows of Wq and Wk within each head (rope_perm.c); the
 * logits agree up to float rounding.  No-op for split-half models. */
int flx_model_rope_to_split_half(flx_model *m, flx_error *err);

/* Folds the RMSNorm gains into the following linears (gains become 1) and
 * unties a tied head, leaving the model's function unchanged.  Done by
 * flx_spinquant_apply; exposed for the "fp" recipe without rotations. */
int flx_fold_norms(flx_model *m, flx_error *err);

/* Folds norms, unties, then merges R1, R2 and the inverse of R4 into the
 * weights of m.  New weights go into buffers the model owns (the originals
 * may be a read-only mmap).  After it, the model's forward must apply
 * flx_rot_r3 / flx_rot_r4 online when rs->r3 / rs->r4 are set. */
int flx_spinquant_apply(flx_model *m, const flx_rotation_set *rs, flx_pool *pool, flx_error *err);

/* Online R3: x holds n_vecs vectors of head_dim floats (Q or K after RoPE,
 * any number of heads and tokens); each becomes x . H / sqrt(head_dim),
 * FlexLLM stage order and division. */
void flx_rot_r3(const flx_rotation_set *rs, float *x, int64_t n_vecs, flx_pool *pool);

/* Online R4: x holds n_tokens rows of d_ff floats (the down_proj input). */
void flx_rot_r4(const flx_rotation_set *rs, float *x, int64_t n_tokens, flx_pool *pool);

#ifdef __cplusplus
}
#endif
#endif /* FLX_ROTATE_H */
