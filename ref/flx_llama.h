/* flx_llama.h -- the float reference forward pass of a Llama decoder, and
 * token sampling.
 *
 * What it computes (fp32 throughout, llama2.c order of operations):
 *
 *   x = tok_embd[token]
 *   for each layer:
 *     xn = rmsnorm(x) * attn_norm
 *     q, k, v = xn Wq^T, xn Wk^T, xn Wv^T          (hook: QKV input)
 *     q, k = rope(q, k)   pairing cfg.rope_pairing, angles pos * w.rope_inv_freq[i]
 *                                                   (hook: q, k after RoPE, v)
 *     a = softmax(q k^T / sqrt(head_dim), causal) v  (query head h uses kv head
 *                                                     h / (n_heads / n_kv_heads))
 *     x = x + a Wo^T                                (hook: O input)
 *     xn = rmsnorm(x) * ffn_norm                    (hook: GATE_UP input)
 *     x = x + (silu(xn Wg^T) * (xn Wu^T)) Wd^T      (hook: DOWN input)
 *   h = rmsnorm(x) * out_norm                       (hook: HEAD input)
 *   logits = h W_out^T                              (W_out = tok_embd when tied)
 *
 * Batching: one call to flx_llama_forward() runs a block of n_tokens tokens
 * at positions n_past .. n_past + n_tokens - 1 and appends their K/V to the
 * cache, so a whole perplexity window is one call (every linear is one
 * OpenBLAS sgemm with the window as the M dimension), and generation is one
 * call per new token on the same code path (with one token the projections
 * are sgemv, which reads the weights once without packing them).  Attention runs as
 * sgemm on causal blocks of query rows, so no key beyond the block's last
 * position is ever multiplied.
 *
 * Logits are not computed by the forward call: the final hidden states stay
 * in the state, and flx_llama_logits() turns any range of rows into logits,
 * so a caller can walk a 2048-token window in chunks of a few hundred rows
 * and never hold 2048 x 128256 floats.
 *
 * Numerics: every matrix product is OpenBLAS sgemm, whose summation order
 * depends on the OpenBLAS kernel (OPENBLAS_CORETYPE, i.e. the machine), so
 * results match other machines to float rounding, not bit for bit
 * (docs/platform.md §3).  Everything else (norms, RoPE, softmax, SwiGLU) is plain C
 * in a fixed order.  RMSNorm sums squares in double; softmax uses
 * exp(x - max) (a vectorized exp within 2 ulp of expf) summed in double in
 * 8 fixed lanes; SwiGLU's silu uses the same exp of -|g| (glibc expf in the
 * BF16-activation mode); RoPE angles are computed in double
 * (pos * inv_freq) and rounded to float cos/sin.
 *
 * Threads: with opts.n_threads > 0, flx_llama_init() sets OpenBLAS to one
 * thread (openblas_set_num_threads(1), a process-wide OpenBLAS setting that
 * flx_llama_free() puts back, so other sgemm callers in the process run
 * single-threaded while a state is alive) and
 * runs n_threads pool threads itself: every projection is split into blocks
 * of output columns, attention into K/V heads, each piece one
 * single-threaded sgemm.  An output element is therefore computed by the
 * same kernel call whatever the thread count (observed bit-identical across
 * 1 and 2 threads with both OpenBLAS Haswell and Cooperlake kernels; the
 * tests only require agreement to 1e-5).  This also keeps OpenBLAS's own
 * worker threads from spinning against ours on small machines.
 */
#ifndef FLX_LLAMA_H
#define FLX_LLAMA_H

#include "flx_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- hooks */

/* Which linear layer an activation block is about to enter.  The three
 * projections that share an input (q, k, v; gate, up) are one hook call. */
typedef enum flx_linear_kind {
    FLX_LINEAR_QKV     = 0,   /* input of Wq, Wk, Wv:  (n_tokens, d_model)          */
    FLX_LINEAR_O       = 1,   /* input of Wo:          (n_tokens, n_heads*head_dim) */
    FLX_LINEAR_GATE_UP = 2,   /* input of Wg, Wu:      (n_tokens, d_model)          */
    FLX_LINEAR_DOWN    = 3,   /* input of Wd:          (n_tokens, d_ff)             */
    FLX_LINEAR_HEAD    = 4,   /* input of the output head (n_tokens, d_model);
                                 layer index = n_layers                          */
} flx_linear_kind;

const char *flx_linear_kind_name(flx_linear_kind kind);   /* "qkv", "o", ... */

/* One weight matrix of a layer (for the weight_rows hook). */
typedef enum flx_weight_kind {
    FLX_WEIGHT_Q = 0, FLX_WEIGHT_K, FLX_WEIGHT_V, FLX_WEIGHT_O,
    FLX_WEIGHT_GATE, FLX_WEIGHT_UP, FLX_WEIGHT_DOWN,
    FLX_WEIGHT_HEAD,          /* the output head; layer index = n_layers */
} flx_weight_kind;

/* Callbacks that let another module (fake quantization, activation
 * statistics, rotations) change activations inside the forward pass.  Every
 * callback may be NULL.  Blocks are row-major, one row per token, and may be
 * modified in place.  A callback returns FLX_OK, or a negative status that
 * stops the forward pass (flx_llama_forward then returns that status; the
 * callback should have filled err).  Rows are the tokens of this call only,
 * at positions pos0 .. pos0 + n_tokens - 1. */
typedef struct flx_llama_hooks {
    void *ctx;

    /* (a) before every matmul: x is (n_tokens, n_in). */
    int (*linear_input)(void *ctx, int layer, flx_linear_kind kind, float *x,
                        int64_t n_tokens, int64_t n_in, flx_error *err);

    /* (b) per layer, after RoPE: q is (n_tokens, n_heads*head_dim), k and v
     * are (n_tokens, n_kv_heads*head_dim) and are the rows of the KV cache,
     * so changes persist for later tokens.  Head-major within a row:
     * element [t][h*head_dim + i]. */
    int (*qkv)(void *ctx, int layer, float *q, float *k, float *v, int64_t n_tokens,
               int64_t pos0, const flx_llama_config *cfg, flx_error *err);

    /* (c) per layer, after the causal softmax, before P V: p is (n_rows,
     * n_keys), the probabilities of some query rows of one or more heads
     * (masked keys hold 0).  Called from pool threads, several at once on
     * disjoint blocks, so it must only transform p element by element and
     * cannot fail.  May be NULL. */
    void (*probs)(void *ctx, int layer, float *p, int64_t n_rows, int64_t n_keys);

    /* (d) weights supplied on demand: a model may leave a linear's float
     * pointer NULL (the output head: w.output) when this hook is set; the
     * forward then asks for rows [row0, row0 + n_rows) of that (n_out, n_in)
     * matrix, row-major, into w, a buffer of the state (per thread), right
     * before the product that uses them.  Rows are requested in the column
     * blocks the product is split into anyway, so the sgemm calls are those
     * of a model holding the same floats.  Called from pool threads, several
     * at once on disjoint rows, so it must only write w and cannot fail. */
    void (*weight_rows)(void *ctx, int layer, flx_weight_kind kind, int64_t row0, int64_t n_rows,
                        int64_t n_in, float *w);

    /* (e) the residual stream x (n_tokens, d_model) at the input of layer
     * `layer`, before it runs (layer = n_layers: before the final norm).
     * The hook may read x (activation capture) or resume the forward at a
     * later layer: overwrite x with the residual stream at that layer's
     * input and set *next to it (layer < *next <= n_layers; *next starts as
     * layer).  The layers skipped write no K/V cache rows, so a skip is
     * only for a forward that no later call on the same cache extends (a
     * perplexity window).  The hook is not called again for *next.  Used
     * to run a model from saved activations (flxemu analyze). */
    int (*residual)(void *ctx, int layer, float *x, int64_t n_tokens, int64_t pos0, int *next,
                    flx_error *err);
} flx_llama_hooks;

/* ---------------------------------------------------------------- state */

typedef struct flx_llama_opts {
    int      n_threads;        /* OpenBLAS and pool threads; <= 0: leave OpenBLAS
                                  as configured and run element-wise work serially */
    int      bf16_activations; /* round activations to BF16 (see below)           */
    int64_t  max_tokens;       /* largest n_tokens of one forward call            */
    int64_t  max_ctx;          /* KV cache capacity in positions (>= max_tokens)  */
    int64_t  head_rows;        /* rows per logits chunk the caller will request;
                                  0 = as many as fit in 256 MiB                   */
    const flx_llama_hooks *hooks;   /* NULL: no hooks                             */
    int64_t  weight_block_bytes; /* per-thread buffer for hooked weights (d):
                                  rows of one product are asked for in pieces
                                  of at most this many bytes (whole multiples
                                  of 64 rows); 0 = 64 MiB                       */
} flx_llama_opts;

/* bf16_activations mimics a BF16 GPU run: the embedding rows, every linear's
 * input (norm outputs, attention output, SwiGLU product) and output (q, k, v
 * before and after RoPE, o, gate, up, down) and the residual stream after
 * every addition are rounded to the nearest BF16 (ties to even).  Norms,
 * softmax and the logits themselves are still computed in fp32. */

typedef struct flx_llama_state {
    const flx_model *model;
    flx_llama_opts   opts;
    flx_pool        *pool;       /* element-wise work; NULL = serial           */
    int64_t  n_past;             /* positions held in the KV cache             */
    int64_t  n_rows;             /* rows of the last forward call in h         */
    int64_t  att_rows;           /* query rows per attention block             */
    int      n_threads;          /* pool size (1: serial)                      */
    int      openblas_threads_before; /* restored by flx_llama_free; 0: untouched */
    /* wall seconds spent so far, by kind of work (for benchmarks) */
    double   t_linear;           /* the layers' projections (sgemm)            */
    double   t_attention;        /* scores, softmax, P V                       */
    double   t_other;            /* embedding, norms, RoPE, SwiGLU, residuals  */
    double   t_head;             /* flx_llama_logits                           */
    /* activations of one forward call */
    float *x;          /* (max_tokens, d_model) residual stream                */
    float *xn;         /* (max_tokens, d_model) normed input of a linear; after
                          the forward: the final hidden states h              */
    float *q;          /* (max_tokens, n_heads*head_dim)                       */
    float *attn;       /* (max_tokens, n_heads*head_dim) attention output      */
    float *proj;       /* (max_tokens, d_model) o / down projection output     */
    float *gate;       /* (max_tokens, d_ff)                                   */
    float *up;         /* (max_tokens, d_ff)                                   */
    float *scores;     /* (n_threads, group, att_rows, max_ctx) attention scores,
                          group = n_heads / n_kv_heads                          */
    float *qo;         /* (n_threads, group, att_rows, head_dim) stacked q / out */
    float *rope_cos;   /* (max_tokens, head_dim/2) for this call's positions   */
    float *rope_sin;   /* (max_tokens, head_dim/2)                             */
    float *k_cache;    /* (n_layers, max_ctx, n_kv_heads*head_dim)             */
    float *v_cache;    /* (n_layers, max_ctx, n_kv_heads*head_dim)             */
    float *w_buf;      /* (n_threads, w_buf_floats) rows from hooks.weight_rows,
                          NULL when every weight is in the model              */
    int64_t w_buf_floats;
} flx_llama_state;

/* Allocates the state for model m (which must outlive it).
 * Returns FLX_OK, FLX_EINVAL (bad sizes), FLX_ENOMEM. */
int  flx_llama_init(flx_llama_state *s, const flx_model *m, const flx_llama_opts *opts,
                    flx_error *err);
void flx_llama_free(flx_llama_state *s);   /* NULL-safe; zeroes the struct */

/* Empties the KV cache: the next forward starts at position 0. */
void flx_llama_reset(flx_llama_state *s);

/* Runs tokens[0..n_tokens) at positions n_past.. (then n_past += n_tokens).
 * Returns FLX_OK; FLX_EINVAL for a token id outside the vocabulary or a
 * block that does not fit (n_tokens > max_tokens, cache full); a hook's
 * status when a hook fails. */
int flx_llama_forward(flx_llama_state *s, const int32_t *tokens, int64_t n_tokens,
                      flx_error *err);

/* The same forward with the layer-0 input given as rows embd[0..n_tokens)
 * of d_model floats instead of token ids (inputs that are not vocabulary
 * embeddings, such as HMT's memory tokens; rounded to BF16 in bf16 mode). */
int flx_llama_forward_embd(flx_llama_state *s, const float *embd, int64_t n_tokens,
                           flx_error *err);

/* The two halves of a decoder layer after attention, as the forward runs
 * them, on rows the caller may have filled itself (layer-by-layer
 * calibration): flx_llama_attn_out does x += attn Wo^T for rows [0, n) of
 * s->x and s->attn; flx_llama_ffn does x += down(silu(gate(xn)) * up(xn))
 * with xn = rmsnorm(x).  l is the model's layer index; the linear hooks are
 * called as in the forward (a hook's status is returned).  The KV cache and
 * n_past are not touched.  FLX_EINVAL for l or n out of range. */
int flx_llama_attn_out(flx_llama_state *s, int l, int64_t n_tokens, flx_error *err);
int flx_llama_ffn(flx_llama_state *s, int l, int64_t n_tokens, flx_error *err);
/* The end of flx_llama_ffn alone: x += gate Wd^T with s->gate holding the
 * SwiGLU product (the down_proj hook is called on it first). */
int flx_llama_ffn_down(flx_llama_state *s, int l, int64_t n_tokens, flx_error *err);

/* Logits of rows [row0, row0 + n_rows) of the last forward call into
 * out (n_rows, n_vocab).  Returns FLX_OK or FLX_EINVAL (range). */
int flx_llama_logits(flx_llama_state *s, int64_t row0, int64_t n_rows, float *out,
                     flx_error *err);

/* Rows per logits chunk chosen by the state (opts.head_rows or the 256 MiB rule). */
int64_t flx_llama_head_rows(const flx_llama_state *s);

/* ---------------------------------------------------------------- sampling */

/* temperature 0: argmax (lowest id on ties).  Otherwise softmax of
 * logits/temperature over the top_k largest logits (top_k <= 0 or >= n_vocab:
 * all), sampled with the seeded flx_rng: the same seed gives the same text. */
typedef struct flx_sampler {
    float    temperature;
    int32_t  top_k;
    flx_rng  rng;
    int32_t *top_ids;     /* [top_k] scratch */
    double  *probs;       /* [top_k or n_vocab] scratch */
    int32_t  n_vocab;
} flx_sampler;

int     flx_sampler_init(flx_sampler *sm, int32_t n_vocab, float temperature, int32_t top_k,
                         uint64_t seed, flx_error *err);
void    flx_sampler_free(flx_sampler *sm);
int32_t flx_sample(flx_sampler *sm, const float *logits);
int32_t flx_argmax(const float *x, int64_t n);   /* first index of the maximum */

#ifdef __cplusplus
}
#endif
#endif /* FLX_LLAMA_H */
