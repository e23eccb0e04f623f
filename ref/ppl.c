/* Perplexity under the HF and llama.cpp protocols (flx_ppl.h, docs/ppl.md). */
#include "flx_ppl.h"
#include "llama_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *flx_ppl_protocol_name(flx_ppl_protocol p)
{
    return p == FLX_PPL_LLAMACPP ? "llamacpp" : "hf";
}

/* ---------------------------------------------------------------- windows */

int flx_ppl_plan_make(flx_ppl_plan *p, flx_ppl_protocol protocol, int64_t n_tokens, int64_t n_ctx,
                      int64_t max_windows, int32_t bos_id, flx_error *err)
{
    memset(p, 0, sizeof *p);
    if (n_ctx < 2)
        return flx_fail(err, FLX_EINVAL, "perplexity: the window (--ctx) must be at least 2 tokens, got %lld",
                        (long long)n_ctx);
    p->protocol = protocol;
    p->n_ctx = n_ctx;
    p->n_available = n_tokens / n_ctx;
    if (protocol == FLX_PPL_LLAMACPP) {
        /* llama-perplexity refuses streams shorter than two chunks */
        if (n_tokens < 2 * n_ctx)
            return flx_fail(err, FLX_EINVAL,
                            "perplexity: you need at least %lld tokens to evaluate perplexity with a "
                            "context of %lld (the text has %lld)",
                            (long long)(2 * n_ctx), (long long)n_ctx, (long long)n_tokens);
        p->first = n_ctx / 2;
        p->bos_overwrite = bos_id;
    } else {
        if (n_tokens < n_ctx)
            return flx_fail(err, FLX_EINVAL,
                            "perplexity: the text has %lld tokens, fewer than one window of %lld",
                            (long long)n_tokens, (long long)n_ctx);
        p->first = 0;
        p->bos_overwrite = -1;
    }
    p->n_scored = n_ctx - 1 - p->first;
    p->n_windows = max_windows > 0 && max_windows < p->n_available ? max_windows : p->n_available;
    return FLX_OK;
}

void flx_ppl_window_tokens(const flx_ppl_plan *p, const int32_t *stream, int64_t w, int32_t *out)
{
    memcpy(out, stream + w * p->n_ctx, (size_t)p->n_ctx * sizeof *out);
    if (p->bos_overwrite >= 0) out[0] = p->bos_overwrite;
}

/* ---------------------------------------------------------------- statistics */

double flx_nll(const float *logits, int64_t n_vocab, int32_t target)
{
    float mx = flx_max_f32(logits, n_vocab);
    double sum_exp = flx_exp_shift_sum(NULL, logits, n_vocab, mx);
    return log(sum_exp) - ((double)logits[target] - (double)mx);
}

void flx_ppl_acc_add(flx_ppl_acc *a, double nll)
{
    a->sum_nll += nll;
    a->sum_nll2 += nll * nll;
    a->count++;
}

double flx_ppl_acc_ppl(const flx_ppl_acc *a)
{
    return a->count ? exp(a->sum_nll / (double)a->count) : NAN;
}

double flx_ppl_acc_uncertainty(const flx_ppl_acc *a)
{
    if (a->count < 2) return 0.0;
    double m = a->sum_nll / (double)a->count, m2 = a->sum_nll2 / (double)a->count;
    double var = m2 - m * m;
    return var > 0 ? exp(m) * sqrt(var / (double)(a->count - 1)) : 0.0;
}

/* ---------------------------------------------------------------- run */

/* Per-row work of one logits chunk, run on the forward state's pool; every
 * row writes only its own outputs, so the sums below stay in row order. */
typedef struct {
    const float   *logits;   /* (rows, n_vocab) */
    int64_t        n_vocab;
    const int32_t *targets;  /* [rows] */
    double        *nll;      /* [rows] */
    uint16_t      *records;  /* (rows, rec_u16) or NULL: save mode */
    int64_t        rec_u16;
    const flx_kld_base *base;
    int64_t        chunk, rec0;
    flx_kld_token *kld;      /* [rows] or NULL: compare mode */
} score_job;

static void score_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const score_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *l = j->logits + r * j->n_vocab;
        if (j->kld) {
            const uint16_t *rec = flx_kld_base_record(j->base, j->chunk, j->rec0 + r);
            flx_kld_token_eval(l, j->n_vocab, rec, j->targets[r], &j->kld[r]);
            j->nll[r] = j->kld[r].nll;
        } else {
            j->nll[r] = flx_nll(l, j->n_vocab, j->targets[r]);
        }
        if (j->records) flx_kld_record_make(l, j->n_vocab, j->records + r * j->rec_u16);
    }
}

static int write_all(flx_outfile *f, const void *data, size_t bytes, flx_error *err)
{
    if (bytes && fwrite(data, 1, bytes, f->fp) != bytes)
        return flx_fail(err, FLX_EIO, "%s: write failed", f->path);
    return FLX_OK;
}

/* Scoring state of one run: the rows of a window arrive in blocks (from the
 * float forward or a window_logits source) and are scored in row order. */
typedef struct ppl_scorer {
    const flx_ppl_plan *p;
    const int32_t *tokens;       /* the stream */
    int64_t        n_vocab, w, head_rows, rec_u16, rows_seen;
    double        *nll;          /* [head_rows] */
    uint16_t      *records;      /* [head_rows][rec_u16] or NULL */
    flx_kld_token *kt;           /* [head_rows] or NULL */
    const flx_kld_base *base;
    flx_kld_stats *ks;
    flx_outfile   *out;
    flx_ppl_acc   *acc;
    double         win_sum, t_score;
    flx_pool      *pool;
    flx_error     *err;
    const flx_ppl_opts *o;       /* on_token */
} ppl_scorer;

/* Scores logit rows r0 .. r0+rows-1 (rows <= head_rows, all scored rows) of
 * window s->w: logit row i predicts the stream's token w*n_ctx + i + 1. */
static int score_block(ppl_scorer *s, int64_t r0, int64_t rows, const float *logits)
{
    const flx_ppl_plan *p = s->p;
    score_job j = {logits, s->n_vocab, s->tokens + s->w * p->n_ctx + r0 + 1, s->nll, s->records,
                   s->rec_u16, s->base, s->w, r0 - p->first, s->kt};
    double ts = flx_now_seconds();
    flx_pool_for(s->pool, rows, 4, score_rows, &j);
    s->t_score += flx_now_seconds() - ts;
    for (int64_t i = 0; i < rows; i++) {
        if (!isfinite(s->nll[i]))
            return flx_fail(s->err, FLX_ENUMERIC,
                            "perplexity: window %lld, position %lld: the log-likelihood is not "
                            "finite (NaN/Inf logits)",
                            (long long)s->w + 1, (long long)(r0 + i));
        flx_ppl_acc_add(s->acc, s->nll[i]);
        s->win_sum += s->nll[i];
        if (s->kt) {
            int rc = flx_kld_stats_add(s->ks, &s->kt[i]);
            if (rc) return flx_fail(s->err, rc, "perplexity: out of memory for KL statistics");
        }
        if (s->o->on_token)
            s->o->on_token(s->o->on_token_ctx, s->w, s->rows_seen + i, s->nll[i], s->kt ? &s->kt[i] : NULL);
    }
    s->rows_seen += rows;
    if (s->records)
        return write_all(s->out, s->records, (size_t)(rows * s->rec_u16) * sizeof *s->records, s->err);
    return FLX_OK;
}

/* flx_ppl_rows_fn for a window_logits source: keeps the scored rows
 * first .. n_ctx-2 of the block and scores them head_rows at a time. */
static int score_source_rows(void *ctx, int64_t row0, int64_t n_rows, const float *logits)
{
    ppl_scorer *s = ctx;
    const flx_ppl_plan *p = s->p;
    int64_t lo = row0 > p->first ? row0 : p->first;
    int64_t hi = row0 + n_rows < p->n_ctx - 1 ? row0 + n_rows : p->n_ctx - 1;
    for (int64_t r = lo; r < hi; r += s->head_rows) {
        int64_t rows = hi - r < s->head_rows ? hi - r : s->head_rows;
        int rc = score_block(s, r, rows, logits + (r - row0) * s->n_vocab);
        if (rc) return rc;
    }
    return FLX_OK;
}

int flx_ppl_run(const flx_model *m, const int32_t *tokens, int64_t n_tokens, const flx_ppl_opts *o,
                flx_ppl_result *r, flx_error *err)
{
    memset(r, 0, sizeof *r);
    const int64_t n_vocab = m->cfg.n_vocab;
    int rc = flx_ppl_plan_make(&r->plan, o->protocol, n_tokens, o->n_ctx, o->max_windows,
                               o->protocol == FLX_PPL_LLAMACPP ? o->bos_id : -1, err);
    if (rc) return rc;
    const flx_ppl_plan *p = &r->plan;
    r->n_tokens = n_tokens;
    const flx_kld_base *base = o->kl_base;
    if (base) {
        if (base->n_ctx != p->n_ctx || base->n_vocab != n_vocab || base->protocol != p->protocol ||
            base->n_chunk < p->n_windows)
            return flx_fail(err, FLX_EINVAL,
                            "KL base was saved with n_ctx %d, n_vocab %d, %d chunks, protocol %s; this "
                            "run has n_ctx %lld, n_vocab %lld, %lld chunks, protocol %s",
                            base->n_ctx, base->n_vocab, base->n_chunk,
                            flx_ppl_protocol_name(base->protocol), (long long)p->n_ctx,
                            (long long)n_vocab, (long long)p->n_windows,
                            flx_ppl_protocol_name(p->protocol));
    }

    /* logits from the float forward, or from the caller's window source
     * (which then needs no forward state, only a pool for the scoring) */
    const int use_source = o->window_logits != NULL;
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    int st_open = 0;
    flx_pool *own_pool = NULL, *pool;
    int64_t head_rows;
    if (!use_source) {
        flx_llama_opts lo = o->llama;
        lo.max_tokens = p->n_ctx;
        lo.max_ctx = p->n_ctx;
        if ((rc = flx_llama_init(&st, m, &lo, err))) return rc;
        st_open = 1;
        pool = st.pool;
        head_rows = flx_llama_head_rows(&st);
    } else {
        pool = o->pool;
        if (!pool && !(pool = own_pool = flx_pool_create(o->llama.n_threads)))
            return flx_fail(err, FLX_ENOMEM, "perplexity: cannot start the thread pool");
        head_rows = 64;   /* scoring buffers; the source's blocks are split to fit */
    }
    if (head_rows > p->n_scored) head_rows = p->n_scored;
    int64_t rec_u16 = flx_kld_record_u16(n_vocab);
    int32_t *win = malloc((size_t)p->n_ctx * sizeof *win);
    float *logits = use_source ? NULL : flx_alloc_large((size_t)head_rows * (size_t)n_vocab * sizeof *logits);
    double *nll = malloc((size_t)head_rows * sizeof *nll);
    uint16_t *records = o->save_logits_path
                            ? malloc((size_t)head_rows * (size_t)rec_u16 * sizeof *records) : NULL;
    flx_kld_token *kt = base ? malloc((size_t)head_rows * sizeof *kt) : NULL;
    r->window_mean_nll = calloc((size_t)p->n_windows, sizeof *r->window_mean_nll);
    flx_kld_stats ks = {0};
    flx_outfile out = {0};
    int out_open = 0;
    if (!win || (!use_source && !logits) || !nll || !r->window_mean_nll ||
        (o->save_logits_path && !records) || (base && !kt)) {
        rc = flx_fail(err, FLX_ENOMEM, "perplexity: out of memory for %lld logits rows of %lld",
                      (long long)head_rows, (long long)n_vocab);
        goto done;
    }
    const int sharded = o->n_shards > 1;
    if (sharded && (o->shard < 0 || o->shard >= o->n_shards)) {
        rc = flx_fail(err, FLX_EINVAL, "perplexity: shard %lld of %lld", (long long)o->shard,
                      (long long)o->n_shards);
        goto done;
    }
    if (o->save_logits_path) {
        if ((rc = flx_outfile_open(&out, o->save_logits_path, err))) goto done;
        out_open = 1;
    }
    if (o->save_logits_path && !sharded) {   /* a shard writes its records only */
        int32_t hdr[3] = {(int32_t)p->n_ctx, (int32_t)n_vocab, (int32_t)p->n_windows};
        if ((rc = write_all(&out, "_logits_", 8, err)) || (rc = write_all(&out, hdr, sizeof hdr, err)) ||
            (rc = write_all(&out, tokens, (size_t)(p->n_windows * p->n_ctx) * sizeof *tokens, err)))
            goto done;
    }

    flx_ppl_acc acc = {0};
    ppl_scorer sc = {p, tokens, n_vocab, 0, head_rows, rec_u16, 0, nll, records, kt, base, &ks,
                     &out, &acc, 0.0, 0.0, pool, err, o};
    double sum_window_means = 0.0;
    int64_t n_done = 0;
    double t0 = flx_now_seconds();
    for (int64_t w = 0; w < p->n_windows; w++) {
        if (sharded && w % o->n_shards != o->shard) continue;
        n_done++;
        flx_ppl_window_tokens(p, tokens, w, win);
        sc.w = w;
        sc.win_sum = 0.0;
        sc.rows_seen = 0;
        if (use_source) {
            if ((rc = o->window_logits(o->window_ctx, win, p->n_ctx, score_source_rows, &sc, err)))
                goto done;
            if (sc.rows_seen != p->n_scored) {
                rc = flx_fail(err, FLX_EINVAL,
                              "perplexity: window %lld: the logits source gave %lld of the %lld "
                              "scored rows", (long long)w + 1, (long long)sc.rows_seen,
                              (long long)p->n_scored);
                goto done;
            }
        } else {
            flx_llama_reset(&st);
            if ((rc = flx_llama_forward(&st, win, p->n_ctx, err))) goto done;
            for (int64_t r0 = p->first; r0 < p->n_ctx - 1; r0 += head_rows) {
                int64_t rows = p->n_ctx - 1 - r0 < head_rows ? p->n_ctx - 1 - r0 : head_rows;
                if ((rc = flx_llama_logits(&st, r0, rows, logits, err))) goto done;
                if ((rc = score_block(&sc, r0, rows, logits))) goto done;
            }
        }
        r->window_mean_nll[w] = sc.win_sum / (double)p->n_scored;
        sum_window_means += r->window_mean_nll[w];
        if (o->on_window) {
            flx_ppl_progress_info info = {w, r->window_mean_nll[w], flx_ppl_acc_ppl(&acc)};
            o->on_window(o->on_window_ctx, &info);
        }
    }
    r->seconds = flx_now_seconds() - t0;
    r->t_score = sc.t_score;
    r->t_linear = st.t_linear;
    r->t_attention = st.t_attention;
    r->t_other = st.t_other;
    r->t_head = st.t_head;
    r->n_scored = acc.count;
    r->mean_nll = acc.sum_nll / (double)acc.count;
    r->ppl = p->protocol == FLX_PPL_HF ? exp(sum_window_means / (double)n_done) : flx_ppl_acc_ppl(&acc);
    r->ppl_unc = flx_ppl_acc_uncertainty(&acc);
    r->tokens_per_second = r->seconds > 0 ? (double)(n_done * p->n_ctx) / r->seconds : 0.0;
    if (base && n_done) {
        r->has_kld = 1;
        flx_kld_summarize(&ks, &r->kld);
    }
    if (out_open) {
        out_open = 0;
        rc = flx_outfile_commit(&out, err);
    }

done:
    if (out_open) flx_outfile_abort(&out);
    if (rc) {
        free(r->window_mean_nll);
        r->window_mean_nll = NULL;
    }
    flx_kld_stats_free(&ks);
    free(kt);
    free(records);
    free(nll);
    free(logits);
    free(win);
    if (st_open) flx_llama_free(&st);
    flx_pool_free(own_pool);
    return rc;
}

int flx_ppl_merge(const flx_ppl_plan *p, int64_t n_tokens, const double *nll, const flx_kld_token *kt,
                  const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err)
{
    memset(r, 0, sizeof *r);
    r->plan = *p;
    r->n_tokens = n_tokens;
    r->window_mean_nll = calloc((size_t)p->n_windows, sizeof *r->window_mean_nll);
    if (!r->window_mean_nll) return flx_fail(err, FLX_ENOMEM, "perplexity: out of memory");
    flx_ppl_acc acc = {0};
    flx_kld_stats ks = {0};
    double sum_window_means = 0.0;
    int rc = FLX_OK;
    /* the additions of score_block and flx_ppl_run, in the same order */
    for (int64_t w = 0; w < p->n_windows && !rc; w++) {
        double win_sum = 0.0;
        for (int64_t i = 0; i < p->n_scored; i++) {
            const double v = nll[w * p->n_scored + i];
            if (!isfinite(v)) {
                rc = flx_fail(err, FLX_ENUMERIC,
                              "perplexity: window %lld, position %lld: the log-likelihood is not "
                              "finite (NaN/Inf logits)", (long long)w + 1, (long long)(p->first + i));
                break;
            }
            flx_ppl_acc_add(&acc, v);
            win_sum += v;
            if (kt && (rc = flx_kld_stats_add(&ks, &kt[w * p->n_scored + i]))) {
                rc = flx_fail(err, rc, "perplexity: out of memory for KL statistics");
                break;
            }
        }
        if (rc) break;
        r->window_mean_nll[w] = win_sum / (double)p->n_scored;
        sum_window_means += r->window_mean_nll[w];
        if (o && o->on_window) {
            flx_ppl_progress_info info = {w, r->window_mean_nll[w], flx_ppl_acc_ppl(&acc)};
            o->on_window(o->on_window_ctx, &info);
        }
    }
    if (!rc) {
        r->n_scored = acc.count;
        r->mean_nll = acc.sum_nll / (double)acc.count;
        r->ppl = p->protocol == FLX_PPL_HF ? exp(sum_window_means / (double)p->n_windows)
                                           : flx_ppl_acc_ppl(&acc);
        r->ppl_unc = flx_ppl_acc_uncertainty(&acc);
        if (kt) {
            r->has_kld = 1;
            flx_kld_summarize(&ks, &r->kld);
        }
    } else {
        free(r->window_mean_nll);
        r->window_mean_nll = NULL;
    }
    flx_kld_stats_free(&ks);
    return rc;
}

void flx_ppl_result_free(flx_ppl_result *r)
{
    if (!r) return;
    free(r->window_mean_nll);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- inputs */

int flx_tokens_read(const char *path, int32_t n_vocab, int32_t **ids, int64_t *n_ids, flx_error *err)
{
    char *text;
    size_t bytes;
    *ids = NULL;
    *n_ids = 0;
    int rc = flx_read_file(path, (size_t)1 << 30, &text, &bytes, err);
    if (rc) return rc;
    /* at most one id per two bytes ("0\n") plus one */
    int32_t *out = malloc((bytes / 2 + 1) * sizeof *out);
    if (!out) {
        free(text);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory for token ids", path);
    }
    int64_t n = 0, line = 0;
    char *p = text, *end = text + bytes;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        line++;
        while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        char *q = eol;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r')) q--;
        if (q > p) {
            long long v = 0;
            int ok = 1;
            for (char *c = p; c < q; c++) {
                if (*c < '0' || *c > '9' || v > (long long)INT32_MAX) { ok = 0; break; }
                v = v * 10 + (*c - '0');
            }
            if (!ok || v >= n_vocab) {
                /* the message quotes the line from text: format it before freeing */
                rc = flx_fail(err, FLX_EFORMAT,
                              "%s: line %lld: '%.*s' is not a token id in [0, %d)", path,
                              (long long)line, (int)(q - p > 40 ? 40 : q - p), p, n_vocab);
                free(out);
                free(text);
                return rc;
            }
            out[n++] = (int32_t)v;
        }
        p = eol + 1;
    }
    free(text);
    *ids = out;
    *n_ids = n;
    return FLX_OK;
}
