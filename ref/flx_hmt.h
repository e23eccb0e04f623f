/* flx_hmt.h -- the Hierarchical Memory Transformer (HMT) plug-in: its
 * parameter file, the segment flow of HMT-pytorch on any backbone, and
 * long-context perplexity (docs/hmt.md has the math, the file format and
 * every difference between HMT-pytorch and FlexLLM's hardware).
 *
 * Segment flow (HMT-pytorch semantics), segment n of length len <= L:
 *   stage 0 (n > 0):  run [T, tokens[0 .. min(len, sum_len)), T];
 *                     S_n = last-layer output at the second T (after the
 *                     final RMSNorm when final_norm, HF's hidden_states[-1])
 *   recall:           P_n = sum_i softmax_i(q.k_i / sqrt(h)) M_i over the
 *                     cached memories, q = Wq S_n, k_i = Wk M_i;
 *                     n = 0 (empty cache): P_0 = the learned initial memory
 *   stage 1:          run [P_n, last n_sensory tokens of segment n-1 (none
 *                     for n = 0), the len tokens, P_n]; logits of the
 *                     segment rows; M_n = output at the trailing P_n
 *   cache:            append M_n, keep the last cache_size memories.
 * Every run starts at position 0 with an empty KV cache, so the memory of
 * the flow is one segment's, whatever the context length.
 *
 * The backbone (float forward, or the bit-exact emulator) and the memory
 * (float cross-attention, or FlexLLM's fp32 ring buffer) are callbacks, so
 * the same driver and scoring serve both engines.
 */
#ifndef FLX_HMT_H
#define FLX_HMT_H

#include "flx_llama.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- parameters */

/* Segment settings; a field < 0 (or sum_fraction < 0) means "not given". */
typedef struct flx_hmt_settings {
    int32_t segment_length;   /* HMT-pytorch's --segment_length (1024): the stage-1
                                 sequence; L = segment_length - 2 - n_sensory   */
    int32_t n_sensory;        /* --num_sensory (32)                             */
    int32_t cache_size;       /* --mem_recall_context (HMT-pytorch 100, FlexLLM 64) */
    double  sum_fraction;     /* summary prefix = floor(L * sum_fraction) (0.5) */
} flx_hmt_settings;

void flx_hmt_settings_unset(flx_hmt_settings *s);   /* every field "not given" */

typedef struct flx_hmt_params {
    int32_t d_model;          /* d                                              */
    int32_t h;                /* cross-attention width (rows of wq / wk)        */
    int32_t seg_len;          /* L: tokens per segment (990)                    */
    int32_t sum_len;          /* summary prefix (495)                           */
    int32_t n_sensory;        /* 32                                             */
    int32_t cache_size;       /* memories kept                                  */
    double  sum_fraction;
    float  *mem;              /* [d]    "mem": the summary token T              */
    float  *init_mem;         /* [d]    "memory_cell.memory": P_0               */
    float  *wq;               /* [h][d] "cross_attn.wq.weight"                  */
    float  *wk;               /* [h][d] "cross_attn.wk.weight"                  */
    char    path[512];        /* for messages                                   */
} flx_hmt_params;

/* Defaults: FlexLLM's configuration (segment_length 1024, 32 sensory, cache
 * 64, fraction 0.5). */
void flx_hmt_settings_default(flx_hmt_settings *s);

/* Loads a safetensors file holding HMT-pytorch's state-dict names (other
 * tensors, such as the backbone's, are ignored) for a model of width d_model;
 * F32, BF16 and F16 accepted; shapes [1, d] or [d] for the vectors and
 * [h, d] for the matrices.  Settings come from the metadata keys
 * segment_length, num_sensory, mem_recall_context and sum_fraction, then
 * `over` (fields given there win), then the defaults.  Errors name the file
 * and the tensor or key: FLX_EIO, FLX_EFORMAT, FLX_EINVAL, FLX_ENOMEM. */
int  flx_hmt_load(flx_hmt_params *p, const char *path, int32_t d_model,
                  const flx_hmt_settings *over, flx_error *err);
void flx_hmt_free(flx_hmt_params *p);

/* Seeded random parameters for width d_model and cross-attention width h:
 * mem and init_mem ~ N(0, 0.02^2) (the synthetic models' embedding scale),
 * wq and wk ~ U(-1/sqrt(d), 1/sqrt(d)) (PyTorch's Linear init), from the
 * project's integer generator (same seed, same values everywhere). */
int  flx_hmt_synth(flx_hmt_params *p, int32_t d_model, int32_t h, const flx_hmt_settings *s,
                   uint64_t seed, flx_error *err);
/* Writes p as an F32 safetensors file with the names and metadata above. */
int  flx_hmt_write(const flx_hmt_params *p, const char *path, flx_error *err);

/* ---------------------------------------------------------------- backbone and memory */

typedef struct flx_hmt_backbone {
    void   *ctx;
    int32_t d_model, n_vocab;
    const float *tok_embd;    /* [n_vocab][d_model]                             */
    int64_t max_rows;         /* longest run the backbone accepts               */
    int64_t head_rows;        /* rows per logits call                           */
    float  *logits_buf;       /* [head_rows][n_vocab] scratch owned by the backbone,
                                 shared by the flow and the baseline            */
    /* runs x[0..n) (layer-0 input rows) at positions 0..n-1 */
    int (*run)(void *ctx, const float *x, int64_t n, flx_error *err);
    /* row r of the last run: the last layer's output, after the final RMSNorm
     * when final_norm */
    int (*hidden)(void *ctx, int64_t row, int final_norm, float *out, flx_error *err);
    /* logits of rows [row0, row0 + n) of the last run, n <= head_rows */
    int (*logits)(void *ctx, int64_t row0, int64_t n, float *out, flx_error *err);
} flx_hmt_backbone;

typedef struct flx_hmt_memory {
    void *ctx;
    /* empties the cache (a new context) */
    void (*reset)(void *ctx);
    /* P (d) from the summary s (d); with an empty cache the memory chooses P
     * itself (the initial memory, or zeros for FlexLLM as written) */
    int (*recall)(void *ctx, const float *s, float *p, flx_error *err);
    /* caches memory m (d) of segment seg */
    int (*store)(void *ctx, int64_t seg, const float *m, flx_error *err);
} flx_hmt_memory;

/* How the flow reads the backbone (the hardware departs from HMT-pytorch). */
typedef struct flx_hmt_flow {
    int final_norm;           /* S_n, M_n after the final RMSNorm (HMT-pytorch)  */
    int read_inputs;          /* quirk: S_n = T and M_n = P_n (FlexLLM reads its
                                 prefill region 0, the input rows)              */
    int zero_sensory;         /* quirk: segment 0 gets n_sensory zero rows (the
                                 hardware's fixed layout) instead of none       */
    int trailing_last;        /* 1: the last segment also gets the trailing P_n
                                 (HMT-pytorch); 0: omitted (FlexLLM); no effect
                                 on any score                                   */
} flx_hmt_flow;

/* The float cross-attention of HMT-pytorch over a list of up to cache_size
 * memories (oldest dropped): dot products and softmax in double over the
 * real entries, P rounded to float; empty cache: P = init_mem. */
typedef struct flx_hmt_float_memory flx_hmt_float_memory;
int  flx_hmt_float_memory_new(flx_hmt_float_memory **fm, const flx_hmt_params *p, flx_error *err);
void flx_hmt_float_memory_free(flx_hmt_float_memory *fm);
flx_hmt_memory flx_hmt_float_memory_ops(flx_hmt_float_memory *fm);

/* The float forward as a backbone (state sized for max_rows rows). */
typedef struct flx_hmt_float_backbone {
    flx_llama_state st;
    int             open;
    float          *logits_buf;
} flx_hmt_float_backbone;
int  flx_hmt_float_backbone_init(flx_hmt_float_backbone *fb, const flx_model *m,
                                 const flx_llama_opts *opts, int64_t max_rows, flx_error *err);
void flx_hmt_float_backbone_free(flx_hmt_float_backbone *fb);
flx_hmt_backbone flx_hmt_float_backbone_ops(flx_hmt_float_backbone *fb);

/* Rows of the longest stage-1 sequence: 1 + n_sensory + L + 1. */
int64_t flx_hmt_stage1_rows(const flx_hmt_params *p);

/* ---------------------------------------------------------------- one context */

/* Called for every segment's stage-1 logits: rows of the segment tokens
 * j = 0 .. len-1 ([n][n_vocab] for rows j0 .. j0+n-1), in order. */
typedef int (*flx_hmt_logits_fn)(void *ctx, int64_t seg, int64_t j0, int64_t n,
                                 const float *logits);

/* What the flow saw (for tests and the docs' examples). */
typedef struct flx_hmt_trace {
    float *p;                 /* [n_segments][d] P_n used by stage 1, or NULL  */
    float *s;                 /* [n_segments][d] S_n (zeros for n = 0), or NULL */
    float *m;                 /* [n_segments][d] M_n (zeros if not computed)   */
    int64_t rows;             /* rows run through the backbone (added to)      */
} flx_hmt_trace;

/* Runs the flow over tokens[0..n_tokens) (segments of L, the last may be
 * shorter); memory is reset first.  logits_fn may be NULL. */
int flx_hmt_context(const flx_hmt_params *p, const flx_hmt_flow *flow, const flx_hmt_backbone *bb,
                    const flx_hmt_memory *mem, const int32_t *tokens, int64_t n_tokens,
                    flx_hmt_logits_fn logits_fn, void *logits_ctx, flx_hmt_trace *trace,
                    flx_error *err);

/* ---------------------------------------------------------------- perplexity */

/* Long-context perplexity (docs/hmt.md 3).  Two ways to cut the token
 * stream into samples, each run as a fresh flow (memory reset) whose last L
 * tokens are scored (the first of them predicted by the previous segment's
 * last row), C = n_segments:
 *
 *  FLX_HMT_EVAL_PYTORCH (default): HMT-pytorch's test set (hmt_src/main.py,
 *    test_length = (C-1) L): sample k covers [max(0, (k-1) L),
 *    min(k L + (C-1) L, n)) for k = 0, 1, ... (a new sample every L tokens;
 *    sample 0 has C-1 segments, the tail samples are cut at the end of the
 *    stream and score its last L tokens again); samples shorter than L + 1
 *    are not run.  PPL = mean over batches of `batch` consecutive samples of
 *    exp(mean NLL of the batch's scored tokens) (an incomplete last batch is
 *    dropped).
 *  FLX_HMT_EVAL_CONTEXTS: disjoint scoring, C segments per sample with a
 *    stride of (C-1) L: sample k covers [k (C-1) L, k (C-1) L + C L), only
 *    full samples; PPL = exp(mean NLL over all scored tokens).
 *
 * Every segment's tokens are scored too, for the per-segment NLL (segment
 * index within the sample).  The baseline scores the same tokens with one
 * plain prefill of min(baseline_ctx, sample end) tokens ending at the
 * sample's end, aggregated the same way. */
enum { FLX_HMT_EVAL_PYTORCH = 0, FLX_HMT_EVAL_CONTEXTS = 1 };

typedef struct flx_hmt_ppl_info {
    int64_t window, n_windows, segment, n_segments;   /* n_segments: of this sample */
    int64_t segments_done;    /* segments run so far, over all samples          */
    double  running_ppl;      /* HMT ppl over the scored tokens so far (NaN before) */
} flx_hmt_ppl_info;

typedef struct flx_hmt_ppl_opts {
    int64_t n_segments;       /* segments per context (>= 2)                    */
    int64_t max_windows;      /* samples to run, <= 0: all                      */
    int64_t baseline_ctx;     /* plain window (>= L + 1); 0: no baseline        */
    flx_hmt_flow flow;
    void (*on_segment)(void *ctx, const flx_hmt_ppl_info *info);
    void  *on_segment_ctx;
    flx_pool *pool;           /* scoring threads (NULL: serial)                 */
    int     eval;             /* FLX_HMT_EVAL_PYTORCH or FLX_HMT_EVAL_CONTEXTS  */
    int64_t batch;            /* pytorch: samples per PPL batch (<= 0: 1)       */
} flx_hmt_ppl_opts;

/* The samples a run evaluates: their number (after max_windows and the
 * batch rounding) and, if segments is not NULL, the segments they run.
 * Sample k's stream slice: flx_hmt_ppl_sample (0 if there is no sample k). */
int64_t flx_hmt_ppl_count(const flx_hmt_params *p, const flx_hmt_ppl_opts *o, int64_t n_tokens,
                          int64_t *available, int64_t *segments);
int     flx_hmt_ppl_sample(const flx_hmt_params *p, const flx_hmt_ppl_opts *o, int64_t n_tokens, int64_t k,
                           int64_t *start, int64_t *len);

typedef struct flx_hmt_ppl_result {
    int64_t n_tokens, n_windows, n_available, window_tokens, stride;
    int64_t n_scored;         /* L per sample                                   */
    int64_t batch;            /* samples per PPL batch (pytorch), 1 otherwise   */
    double  mean_nll;         /* over all scored tokens                         */
    double  ppl;              /* the protocol's aggregate (see above)           */
    double  pooled_ppl;       /* exp(mean_nll)                                  */
    double  baseline_mean_nll, baseline_ppl;   /* NaN without a baseline       */
    double *segment_mean_nll; /* [n_segments] mean NLL of the targets in segment
                                 k of each sample (segment 0: L - 1 targets)   */
    int64_t *segment_count;   /* [n_segments]                                  */
    double *window_mean_nll;  /* [n_windows] of the scored tokens              */
    int64_t *window_start;    /* [n_windows] first stream token of each sample  */
    int64_t *window_len;      /* [n_windows] its tokens                         */
    double  seconds, seconds_baseline;
    int64_t rows_run;         /* rows through the backbone (stage 0 + stage 1) */
} flx_hmt_ppl_result;

int  flx_hmt_ppl_run(const flx_hmt_params *p, const flx_hmt_backbone *bb, const flx_hmt_memory *mem,
                     const int32_t *tokens, int64_t n_tokens, const flx_hmt_ppl_opts *o,
                     flx_hmt_ppl_result *r, flx_error *err);
void flx_hmt_ppl_result_free(flx_hmt_ppl_result *r);

#ifdef __cplusplus
}
#endif
#endif /* FLX_HMT_H */
