/* flx_ppl.h -- perplexity of a model on a token stream, under the two
 * protocols people quote (docs/ppl.md), KL divergence against
 * a saved base run, and the WikiText-2 test text.
 *
 * Protocols, for a stream of N tokens and a window of n_ctx tokens:
 *
 *  FLX_PPL_HF (Hugging Face / GPTQ / SpinQuant, the "seqlen 2048" number):
 *    windows w = 0 .. N/n_ctx - 1 are tokens [w*n_ctx, (w+1)*n_ctx), tail
 *    dropped, no per-window BOS.  Logit rows 0 .. n_ctx-2 predict tokens
 *    1 .. n_ctx-1: n_ctx - 1 scored tokens per window.
 *    PPL = exp(mean over windows of the window's mean NLL).
 *
 *  FLX_PPL_LLAMACPP (llama.cpp llama-perplexity): needs N >= 2*n_ctx;
 *    chunks as above, but the first token of every chunk is OVERWRITTEN by
 *    BOS (when the vocabulary adds BOS), and only logit rows
 *    n_ctx/2 .. n_ctx-2 are scored: n_ctx - 1 - n_ctx/2 tokens per chunk.
 *    PPL = exp(mean NLL over all scored tokens), printed after every chunk
 *    as "[i]x.xxxx," and at the end as "Final estimate: PPL = X +/- Y" with
 *    Y = PPL * sqrt((E[nll^2] - E[nll]^2) / (count - 1)).
 *
 * In both, nll = log(sum_j exp(l_j - max)) + max - l_target, with the
 * float exp(l_j - max) summed in double (llama.cpp's log_softmax; the exp is
 * a vectorized one within 2 ulp of expf, and the sum runs in 8 fixed lanes).
 *
 * KL divergence (llama.cpp --kl-divergence-base format, docs/ppl.md, KL divergence): a
 * base run saves "_logits_", int32 n_ctx, n_vocab, n_chunk, int32
 * tokens[n_chunk*n_ctx] (the stream before any BOS overwrite), then one
 * record per scored position of 2*((n_vocab+1)/2) + 4 uint16: float scale,
 * float min_log_prob, then q_j = round((l_j - min_l)/scale) with
 * min_l = max(min_j l_j, max_j l_j - 16), scale = (max - min_l)/65535.  A
 * candidate run re-reads the tokens and compares its log-probabilities.
 */
#ifndef FLX_PPL_H
#define FLX_PPL_H

#include "flx_llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flx_ppl_protocol {
    FLX_PPL_HF       = 0,
    FLX_PPL_LLAMACPP = 1,
} flx_ppl_protocol;

const char *flx_ppl_protocol_name(flx_ppl_protocol p);   /* "hf", "llamacpp" */

/* ---------------------------------------------------------------- windows */

typedef struct flx_ppl_plan {
    flx_ppl_protocol protocol;
    int64_t n_ctx;          /* tokens per window                                 */
    int64_t n_windows;      /* windows evaluated (after --chunks)                */
    int64_t n_available;    /* windows the stream holds (N / n_ctx)              */
    int64_t first;          /* first scored logit row of a window                */
    int64_t n_scored;       /* scored tokens per window (rows first .. n_ctx-2)  */
    int32_t bos_overwrite;  /* id written over token 0 of every window, -1: none */
} flx_ppl_plan;

/* Plans the windows for n_tokens tokens.  max_windows <= 0 means all.
 * bos_id is used only by FLX_PPL_LLAMACPP (pass -1 when the vocabulary does
 * not add BOS).  Returns FLX_OK or FLX_EINVAL with a message saying how
 * many tokens are needed. */
int flx_ppl_plan_make(flx_ppl_plan *p, flx_ppl_protocol protocol, int64_t n_tokens,
                      int64_t n_ctx, int64_t max_windows, int32_t bos_id, flx_error *err);

/* The n_ctx tokens window w feeds the model (BOS overwrite applied). */
void flx_ppl_window_tokens(const flx_ppl_plan *p, const int32_t *stream, int64_t w,
                           int32_t *out);

/* ---------------------------------------------------------------- statistics */

/* Negative log-likelihood of target under logits[0..n_vocab), as above. */
double flx_nll(const float *logits, int64_t n_vocab, int32_t target);

typedef struct flx_ppl_acc {
    double  sum_nll;
    double  sum_nll2;
    int64_t count;
} flx_ppl_acc;

void   flx_ppl_acc_add(flx_ppl_acc *a, double nll);
double flx_ppl_acc_ppl(const flx_ppl_acc *a);           /* exp(sum/count)        */
/* llama.cpp's +/-: ppl * sqrt((m2 - m^2)/(count - 1)); 0 if undefined.  */
double flx_ppl_acc_uncertainty(const flx_ppl_acc *a);

/* Mean and its standard error (llama.cpp: 0 when count <= 10). */
typedef struct flx_mean_unc { double mean, unc; } flx_mean_unc;
flx_mean_unc flx_mean_and_uncertainty(double sum, double sum2, int64_t count);

/* ---------------------------------------------------------------- KL divergence */

/* uint16 per record for a vocabulary (the 4 leading ones hold two floats). */
int64_t flx_kld_record_u16(int64_t n_vocab);

/* Writes the 16-bit log-probability record of one logits row into rec. */
void flx_kld_record_make(const float *logits, int64_t n_vocab, uint16_t *rec);

typedef struct flx_kld_base {
    flx_mapped_file file;
    int32_t  n_ctx, n_vocab, n_chunk;
    flx_ppl_protocol protocol;   /* inferred from the record count         */
    int64_t  n_scored;           /* records per chunk                      */
    const int32_t  *tokens;      /* [n_chunk * n_ctx], inside the mapping  */
    const uint8_t  *records;     /* start of the records                   */
} flx_kld_base;

/* Maps a base file and checks its header and size.  The protocol is read
 * from the size: n_ctx-1 records per chunk (hf) or n_ctx-1-n_ctx/2
 * (llamacpp).  FLX_EIO, FLX_EFORMAT (naming the field), FLX_ENOMEM. */
int  flx_kld_base_open(flx_kld_base *b, const char *path, flx_error *err);
void flx_kld_base_close(flx_kld_base *b);
/* Record of scored row r (0-based) of chunk c. */
const uint16_t *flx_kld_base_record(const flx_kld_base *b, int64_t chunk, int64_t r);

typedef struct flx_kld_stats {
    int64_t count;
    double  sum_nll, sum_nll2;             /* candidate                  */
    double  sum_nll_base, sum_nll_base2;   /* base (from the records)    */
    double  sum_nll_nll_base;
    double  sum_kld, sum_kld2;
    int64_t n_same_top;
    double  sum_dp, sum_dp2;               /* p(correct) - p_base(correct) */
    float  *kld_values;                    /* [capacity] every token's KLD */
    int64_t capacity;
} flx_kld_stats;

/* One scored token compared with its base record. */
typedef struct flx_kld_token {
    double nll, nll_base;   /* candidate and base NLL of the target          */
    double kld;             /* sum_i p_base(i) (log p_base(i) - log p(i)), entries
                               with log p_base <= -16 skipped (as llama.cpp)  */
    double dp;              /* p(target) - p_base(target)                    */
    int    same_top;        /* argmax(logits) == argmax(record), first wins  */
} flx_kld_token;

void flx_kld_token_eval(const float *logits, int64_t n_vocab, const uint16_t *rec,
                        int32_t target, flx_kld_token *out);
/* Accumulates one token; grows kld_values (FLX_ENOMEM on failure). */
int  flx_kld_stats_add(flx_kld_stats *st, const flx_kld_token *t);
void flx_kld_stats_free(flx_kld_stats *st);

typedef struct flx_kld_summary {
    flx_mean_unc ppl, ppl_base, log_ratio, ratio, kld, same_top, dp;
    double cor;                            /* Cor(ln PPL(Q), ln PPL(base)) */
    double kld_max, kld_median, kld_p99, kld_p90, kld_min;
} flx_kld_summary;

void flx_kld_summarize(flx_kld_stats *st, flx_kld_summary *out);   /* sorts kld_values */

/* ---------------------------------------------------------------- run */

typedef struct flx_ppl_progress_info {
    int64_t window;          /* 0-based index of the window just finished    */
    double  window_mean_nll;
    double  running_ppl;     /* exp(all scored NLL so far / count)           */
} flx_ppl_progress_info;

/* A logits source other than the float forward (flxemu ppl --engine emu).
 * window_logits computes the logits of one window's n_ctx tokens (BOS
 * overwrite applied) and hands them to rows_fn in blocks of consecutive
 * rows in increasing order ([n_rows][n_vocab], valid during the call); it
 * must cover the scored rows and return a non-zero rows_fn status as is. */
typedef int (*flx_ppl_rows_fn)(void *ctx, int64_t row0, int64_t n_rows, const float *logits);
typedef int (*flx_ppl_window_fn)(void *ctx, const int32_t *tokens, int64_t n_ctx,
                                 flx_ppl_rows_fn rows_fn, void *rows_ctx, flx_error *err);

typedef struct flx_ppl_opts {
    flx_ppl_protocol protocol;
    int64_t          n_ctx;
    int64_t          max_windows;        /* <= 0: all                           */
    int32_t          bos_id;             /* BOS overwrite id (llamacpp), -1: none */
    flx_llama_opts   llama;              /* threads, bf16, hooks (sizes are set by the run) */
    const char      *save_logits_path;   /* write a KLD base file, or NULL       */
    const flx_kld_base *kl_base;         /* compare against it, or NULL          */
    void (*on_window)(void *ctx, const flx_ppl_progress_info *info);
    void            *on_window_ctx;
    flx_ppl_window_fn window_logits;     /* NULL: the float forward of the model */
    void            *window_ctx;
    flx_pool        *pool;               /* with window_logits: scoring pool (NULL:
                                            one of llama.n_threads for the run)  */
    /* Sharding (several processes share the windows, e.g. flxemu ppl under
     * MPI): n_shards > 1 evaluates only windows w with w % n_shards == shard;
     * save_logits_path then receives only those windows' records, in window
     * order, without the header (a part of the base file: header, tokens,
     * then all windows' records in window order); the result's statistics
     * are of these windows only.  on_token (may be NULL) gets every scored
     * token in order: window, index among the window's scored rows, its NLL
     * and, with kl_base, its comparison (else NULL).  flx_ppl_merge turns
     * all windows' tokens into the result one process would have computed. */
    int64_t          shard, n_shards;
    void (*on_token)(void *ctx, int64_t window, int64_t i, double nll, const flx_kld_token *kt);
    void            *on_token_ctx;
} flx_ppl_opts;

typedef struct flx_ppl_result {
    flx_ppl_plan plan;
    int64_t  n_tokens;          /* tokens in the stream                         */
    int64_t  n_scored;          /* scored tokens in total                       */
    double   mean_nll;          /* over scored tokens                           */
    double   ppl;               /* hf: exp(mean of window means); llamacpp: exp(mean_nll) */
    double   ppl_unc;           /* llama.cpp's +/- (reported for both)          */
    double   seconds;           /* forward + scoring wall time                  */
    double   tokens_per_second; /* evaluated tokens (windows * n_ctx) / seconds */
    double   t_linear, t_attention, t_other, t_head;   /* forward breakdown (flx_llama_state) */
    double   t_score;           /* NLL / KLD / record work on the logits        */
    double  *window_mean_nll;   /* [n_windows], owned                           */
    int      has_kld;
    flx_kld_summary kld;
} flx_ppl_result;

/* Evaluates the windows of tokens[0..n_tokens).  Returns FLX_OK; FLX_EINVAL
 * (too few tokens, base file mismatch), FLX_ENUMERIC (NaN/Inf logits, naming
 * the window and position), FLX_EIO, FLX_ENOMEM, or a hook's status. */
int  flx_ppl_run(const flx_model *m, const int32_t *tokens, int64_t n_tokens,
                 const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err);
void flx_ppl_result_free(flx_ppl_result *r);

/* The statistics of a run from its scored tokens: nll[w * n_scored + i]
 * (and kt likewise, or NULL without a base) for every window of plan p, in
 * window order, added up exactly as flx_ppl_run adds them (so the same
 * bits); o->on_window (if set) is called after every window as flx_ppl_run
 * does.  Timing fields are left 0.  FLX_ENUMERIC for a non-finite NLL,
 * FLX_ENOMEM. */
int  flx_ppl_merge(const flx_ppl_plan *p, int64_t n_tokens, const double *nll, const flx_kld_token *kt,
                   const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err);

/* ---------------------------------------------------------------- inputs */

/* Reads token ids, one per line (blank lines and surrounding spaces are
 * ignored), into a malloc'ed array; every id must be in [0, n_vocab).
 * FLX_EIO, FLX_EFORMAT (naming the line), FLX_ENOMEM. */
int flx_tokens_read(const char *path, int32_t n_vocab, int32_t **ids, int64_t *n_ids,
                    flx_error *err);

/* The short English text `flxemu ppl` uses when no model is given
 * (written for this project; static storage). */
const char *flx_ppl_default_text(size_t *bytes);

/* ---------------------------------------------------------------- WikiText-2 */

#define FLX_WIKITEXT2_TEST_SHA256 "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"
#define FLX_WIKITEXT2_TEST_BYTES  1290590

/* The text the HF perplexity recipe tokenizes: "\n\n".join(rows), where the
 * wikitext loader yields one row per line of the raw file ("\n" kept) and
 * turns lines that are only whitespace (Python str.strip()) into "".
 * *out is malloc'ed and NUL-terminated. */
int flx_wikitext_hf_text(const char *raw, size_t bytes, char **out, size_t *out_bytes,
                         flx_error *err);

/* If path's file name is wiki.test.raw, checks its sha256 against the
 * canonical digest; returns FLX_EFORMAT (with how to get the right file)
 * on a mismatch, FLX_OK otherwise.  *checked says whether it applied. */
int flx_wikitext_check(const char *path, const char *sha256_hex, int *checked, flx_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FLX_PPL_H */
