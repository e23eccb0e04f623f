/* flx_gptq.h -- weight quantization with round-to-nearest (RTN) and GPTQ
 * (Frantar et al., arXiv 2210.17323; SpinQuant's settings in
 * docs/quant.md, SpinQuant: block 128, damping 0.01 * mean(diag H),
 * act-order off by default), and the Hessians GPTQ needs.
 *
 * A weight is (n_out, n_in) row-major ([out][in]); a group is a run of
 * group_size consecutive input columns of one row (group_size 0 = the whole
 * row: per output channel).  Per group (scale s, zero z):
 *   symmetric:   s = clip * max|w| / (2^(b-1) - 1) (s = 1 if 0), z = 0,
 *                q = clamp(rnd(w / s), -2^(b-1), 2^(b-1) - 1)
 *                (4 bits: FlexLLM's s = max|w| / 7, q in [-8, 7])
 *   asymmetric:  lo = clip * min(min w, 0), hi = clip * max(max w, 0)
 *                (both 0: -1, +1); s = (hi - lo) / (2^b - 1); z = rnd(-lo / s),
 *                q = clamp(rnd(w / s) + z, 0, 2^b - 1)
 *   w^ = s * (q - z).   rnd = C round() (half away from zero) or half to even.
 * Scales are computed in float from the group's float weights; GPTQ's
 * algebra (Cholesky, error propagation) runs in float32, as the reference.
 */
#ifndef FLX_GPTQ_H
#define FLX_GPTQ_H

#include "flx_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flx_wquant {
    int32_t bits;         /* 2..8                                         */
    int     symmetric;    /* 1: symmetric (z = 0); 0: integer zero point  */
    int32_t group_size;   /* input columns per (s, z); 0 = whole row      */
    float   clip;         /* range multiplier in (0, 1]; 1 = none         */
    int     half_even;    /* 0: round half away from zero; 1: half even   */
    int     mse_clip;     /* per group, the clip in 1, 0.99, ..., 0.21 that
                             minimises sum |w^ - w|^2.4 (SpinQuant --w_clip) */
} flx_wquant;

/* FlexLLM's weights: 4 bits, symmetric, per output channel, C round. */
flx_wquant flx_wquant_int4_channel(void);

/* Checks bits, clip and that group_size divides n_in; `what` names the
 * tensor in the message. */
int flx_wquant_check(const flx_wquant *wq, int32_t n_in, const char *what, flx_error *err);

int32_t flx_wquant_groups(const flx_wquant *wq, int32_t n_in);   /* (s, z) per row */

/* Quantized weight: codes and parameters (caller-owned arrays).
 *   q     (n_out, n_in)      integer codes
 *   scale (n_out, n_groups)  s
 *   zero  (n_out, n_groups)  z (0 when symmetric)                       */
typedef struct flx_wq_out {
    int32_t *q;
    float   *scale;
    float   *zero;
} flx_wq_out;

/* Round to nearest: w^ = quant(w).  w_hat (n_out, n_in) may be NULL. */
int flx_rtn(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, flx_wq_out *out,
            float *w_hat, flx_error *err);

/* ---------------------------------------------------------------- Hessians */

/* GPTQ's H = (2 / n_samples) sum_t x_t^T x_t over the rows x_t fed to a
 * linear, held unscaled: h = sum_t x_t^T x_t (GPTQ is invariant to the
 * scale; the damping is relative).  Float, to halve the memory of
 * whole-model runs (8192^2 floats = 256 MiB).  The upper triangle is cut
 * into row bands of FLX_HESSIAN_BAND rows, each accumulated by its own
 * single-threaded sgemm, so the bands can run on a pool and every element
 * has the same value for any thread count. */
#define FLX_HESSIAN_BAND 256
typedef struct flx_hessian {
    int32_t   n_in;
    int64_t   n_samples;
    float    *h;          /* (n_in, n_in); only the upper triangle (j >= i) */
    flx_pool *pool;       /* bands in parallel; NULL: serial (set by the caller) */
} flx_hessian;

int  flx_hessian_init(flx_hessian *h, int32_t n_in, flx_error *err);
void flx_hessian_free(flx_hessian *h);
/* Adds the n_rows rows of x (n_rows, n_in). */
int  flx_hessian_add(flx_hessian *h, const float *x, int64_t n_rows, flx_error *err);

/* ---------------------------------------------------------------- GPTQ */

typedef struct flx_gptq_opts {
    int32_t block_size;   /* columns per lazy-update block (128)          */
    double  damp;         /* damping fraction of mean(diag H) (0.01)       */
    int     act_order;    /* quantize columns by decreasing diag(H); with
                             groups, the group parameters come from the
                             unquantized weights ("static groups") so the
                             stored layout stays in natural column order */
    flx_pool *pool;       /* rows in parallel (NULL: serial); the result
                             does not depend on the thread count          */
    int     block_start_groups; /* groups smaller than a block: parameters from
                             the weights as they were when the block began
                             (SpinQuant/GPTQ's code: find_params on W, not on
                             the in-block copy W1), instead of the default:
                             the weights with every earlier column's update
                             applied.  No effect with act-order (static
                             groups) or per-channel scales */
} flx_gptq_opts;

flx_gptq_opts flx_gptq_opts_default(void);

/* Quantizes w with GPTQ against hessian h (not modified).  Columns whose
 * diag(H) is 0 (never activated) are quantized from zero weights, as GPTQ
 * does.  When the damped H is not positive definite the damping is raised
 * tenfold, up to 3 times, before FLX_ENUMERIC.  w_hat may be NULL.  The
 * error sum ||(w - w^) diag..||, i.e. GPTQ's loss sum_k (w_k - w^_k)^2 /
 * [H^-1]_kk / 2, goes to *loss when loss is not NULL. */
int flx_gptq(const float *w, int32_t n_out, int32_t n_in, const flx_hessian *h, const flx_wquant *wq,
             const flx_gptq_opts *opts, flx_wq_out *out, float *w_hat, double *loss, flx_error *err);

/* Output error of a quantized linear on the Hessian's data:
 * trace((W - W^) H (W - W^)^T) / 2 = mean_t ||x_t (W - W^)^T||^2. */
double flx_hessian_error(const flx_hessian *h, const float *w, const float *w_hat, int32_t n_out);

#ifdef __cplusplus
}
#endif
#endif /* FLX_GPTQ_H */
