/* flx_calib.h -- calibration: token windows from a user's text, FlexLLM's
 * static attention scales, and whole-model GPTQ driven by the float
 * reference forward (ref/flx_llama.h) with the online rotations applied.
 *
 * Calibration data is a text file the user names; it is never the
 * evaluation split (the WikiText-2 test file is recognised by its SHA-256
 * and refused).  A text shorter than one window is an error, found before
 * any long computation starts.
 */
#ifndef FLX_CALIB_H
#define FLX_CALIB_H

#include "flx_core.h"
#include "flx_model.h"
#include "flx_llama.h"
#include "flx_rotate.h"
#include "flx_gptq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SHA-256 of wiki.test.raw (data/wikitext2/), refused as calibration text. */
#define FLX_WIKITEXT2_TEST_SHA256 "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"

/* n_windows windows of seqlen tokens, row-major (n_windows, seqlen). */
typedef struct flx_calib_data {
    int32_t *ids;
    int64_t  n_windows;
    int64_t  seqlen;
} flx_calib_data;

/* Windows from a token stream: when n_ids >= n_windows * seqlen,
 * consecutive non-overlapping windows from the start; otherwise n_windows
 * windows at random starts in [0, n_ids - seqlen] drawn from seed (GPTQ's
 * sampling).  FLX_EINVAL when n_ids < seqlen (shorter than one window). */
int flx_calib_from_ids(flx_calib_data *cd, const int32_t *ids, int64_t n_ids, int64_t n_windows,
                       int64_t seqlen, uint64_t seed, const char *what, flx_error *err);

/* Reads and tokenizes the text file at path with the model's tokenizer
 * (no BOS: SpinQuant's protocol), then flx_calib_from_ids. */
int flx_calib_from_text(flx_calib_data *cd, const flx_model *m, const char *path, int64_t n_windows,
                        int64_t seqlen, uint64_t seed, flx_error *err);
void flx_calib_free(flx_calib_data *cd);

/* FlexLLM static attention scales (reference-design §1.12), one per
 * layer, from the calibration windows run through the float model m with
 * the online rotations of rs (may be NULL):
 *   Q_s = clip * max|q| / (F * 127)   (Q8 = round(q / (F Q_s)), F = flx_attn_q_factor(head_dim):
 *                                      1/sqrt(d) folded; F = 8 for head_dim 64)
 *   K_s = clip * max|k| / 127,  V_s = clip * max|v| / 127
 *   A_s = clip * max(p) / 255 = clip / 255: the first query of every causal
 *         window attends only to itself, so max p = 1 exactly.
 * q and k are taken after RoPE (and R3).  Arrays are [n_layers]. */
int flx_calib_attn_scales(const flx_model *m, const flx_rotation_set *rs, const flx_calib_data *cd,
                          float clip, int n_threads, float *q_s, float *k_s, float *v_s, float *a_s,
                          flx_error *err);

/* The scales above from one layer's maxima max|q| (after RoPE and R3), max|k|, max|v|. */
void flx_calib_scales_from_max(double q_max, double k_max, double v_max, float clip, int32_t head_dim,
                               float *q_s, float *k_s, float *v_s, float *a_s);

/* The seven linears of a layer. */
typedef enum flx_linear_id {
    FLX_W_Q = 0, FLX_W_K, FLX_W_V, FLX_W_O, FLX_W_GATE, FLX_W_UP, FLX_W_DOWN, FLX_W_COUNT
} flx_linear_id;

const char *flx_linear_id_name(flx_linear_id id);   /* "wq", ... */

/* Receives each quantized linear: the codes and parameters (flx_gptq.h
 * layout) and the dequantized weight.  Return FLX_OK or a status that
 * stops the run. */
typedef int (*flx_gptq_sink)(void *ctx, int layer, flx_linear_id id, int32_t n_out, int32_t n_in,
                             const flx_wq_out *q, const float *w_hat, flx_error *err);

typedef struct flx_gptq_model_opts {
    flx_wquant    wq;               /* the weight format of every linear      */
    flx_gptq_opts gptq;             /* block, damping, act-order              */
    int           n_threads;        /* forward and GPTQ threads (<= 0: 1)     */
    int           progress;         /* progress bar on stderr                 */
    int           release_layers;   /* free each layer's float weights once its
                                       last pass is done and set them to NULL,
                                       for callers that keep only the sink's
                                       codes (bounds peak memory)             */
    size_t        keep_bytes;       /* memory GPTQ may hold to keep a layer's
                                       SwiGLU products (seqlen * d_ff floats per
                                       window) from its down_proj pass to its
                                       output pass instead of recomputing them;
                                       with release_layers, 3/4 of the bytes
                                       released so far are added (the caller
                                       keeps up to 1 byte per released weight).
                                       Never changes a result.  Default 0.    */
    double       *qkv_max;          /* when not NULL, [n_layers][3]: max |q|,
                                       |k|, |v| (q, k after RoPE and R3) in the
                                       calibration passes, with the layer's
                                       q/k/v and all earlier layers quantized:
                                       static scales without another forward */
    const int32_t *w_bits_of;       /* mixed precision, or NULL: weight bits of
                                       layer l's linear k at [l * 7 + k] (the
                                       flx_qbuild layout; 0 = wq.bits)        */
} flx_gptq_model_opts;

flx_gptq_model_opts flx_gptq_model_opts_default(void);

/* GPTQ of every linear in the decoder layers of m (the embedding and head
 * are left to the caller, as SpinQuant does), in the true-sequential order
 * of SpinQuant's and QuaRot's GPTQ.  The residual stream of every
 * calibration token is kept (n_windows * seqlen * d_model floats); for
 * each layer the groups {q,k,v}, {o}, {gate,up}, {down} are quantized in
 * turn from the Hessian of their input with the earlier groups already
 * quantized (down's input after the online R4); each linear is handed to
 * sink and its dequantized weight replaces the float one (in place when
 * the model owns the buffer); the quantized layer's output is the next
 * layer's input.  Passes resume where the previous one stopped (the
 * attention output, n_windows * seqlen * q_dim floats, is kept while o is
 * done), so the attention half of a layer runs once and the feed-forward
 * half twice, never the layers before it.  rs (may be NULL) supplies
 * online R3/R4: the model must already carry the merged rotations.
 * Calibration ids are checked against the vocabulary first. */
int flx_gptq_model(flx_model *m, const flx_rotation_set *rs, const flx_calib_data *cd,
                   const flx_gptq_model_opts *opts, flx_gptq_sink sink, void *sink_ctx, flx_error *err);

/* The online rotations of rs inside a forward pass, the one definition
 * every hook uses (calibration, GPTQ, fake quantization, flxemu analyze,
 * quantize --search-bits): R4 on a down_proj input (kind
 * FLX_LINEAR_DOWN, rs->r4 set; other kinds are left alone) and R3 on the
 * q and k rows of n_tokens tokens after RoPE (rs->r3 set).  rs may be
 * NULL (nothing happens).  Rows are spread over pool when not NULL; the
 * rows are independent, so the bits do not depend on it. */
void flx_rot_online_input(const flx_rotation_set *rs, flx_linear_kind kind, float *x, int64_t n_tokens,
                          flx_pool *pool);
void flx_rot_online_qk(const flx_rotation_set *rs, float *q, float *k, int64_t n_tokens,
                       const flx_llama_config *cfg, flx_pool *pool);

/* Hooks that apply rs's online rotations (R3 on q/k after RoPE, R4 on the
 * down_proj input) inside flx_llama_forward; ctx = rs. */
flx_llama_hooks flx_rot_hooks(const flx_rotation_set *rs);

#ifdef __cplusplus
}
#endif
#endif /* FLX_CALIB_H */
