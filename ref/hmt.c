/* HMT's segment flow, its float memory and backbone, and long-context
 * perplexity (flx_hmt.h, docs/hmt.md 2-3); the parameter file is
 * hmt_params.c. */
#include "flx_hmt.h"
#include "flx_ppl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t flx_hmt_stage1_rows(const flx_hmt_params *p)
{
    return 1 + (int64_t)p->n_sensory + p->seg_len + 1;
}

/* ---------------------------------------------------------------- float memory */

struct flx_hmt_float_memory {
    const flx_hmt_params *p;
    float  *m;       /* [cache_size][d], oldest first */
    float  *k;       /* [cache_size][h] = Wk m        */
    int64_t n;       /* entries held                  */
    double *q, *sc;  /* [h], [cache_size]             */
};

/* y[o] = sum_i w[o][i] x[i] in double, o < rows */
static void matvec_double(double *y, const float *w, const float *x, int64_t rows, int64_t cols)
{
    for (int64_t o = 0; o < rows; o++) {
        double acc = 0.0;
        const float *r = w + o * cols;
        for (int64_t i = 0; i < cols; i++) acc += (double)r[i] * (double)x[i];
        y[o] = acc;
    }
}

static void fm_reset(void *ctx) { ((flx_hmt_float_memory *)ctx)->n = 0; }

static int fm_recall(void *ctx, const float *s, float *out, flx_error *err)
{
    (void)err;
    flx_hmt_float_memory *fm = ctx;
    const flx_hmt_params *p = fm->p;
    const int64_t d = p->d_model, h = p->h;
    if (fm->n == 0) {   /* HMT-pytorch: no memory yet -> memory_cell.memory */
        memcpy(out, p->init_mem, (size_t)d * sizeof *out);
        return FLX_OK;
    }
    matvec_double(fm->q, p->wq, s, h, d);
    double mx = -INFINITY, sum = 0.0, scale = 1.0 / sqrt((double)h);
    for (int64_t i = 0; i < fm->n; i++) {
        double a = 0.0;
        for (int64_t j = 0; j < h; j++) a += fm->q[j] * (double)fm->k[i * h + j];
        fm->sc[i] = a * scale;
        if (fm->sc[i] > mx) mx = fm->sc[i];
    }
    for (int64_t i = 0; i < fm->n; i++) sum += (fm->sc[i] = exp(fm->sc[i] - mx));
    for (int64_t j = 0; j < d; j++) {
        double acc = 0.0;
        for (int64_t i = 0; i < fm->n; i++) acc += fm->sc[i] / sum * (double)fm->m[i * d + j];
        out[j] = (float)acc;
    }
    return FLX_OK;
}

static int fm_store(void *ctx, int64_t seg, const float *m, flx_error *err)
{
    (void)seg;
    (void)err;
    flx_hmt_float_memory *fm = ctx;
    const flx_hmt_params *p = fm->p;
    const int64_t d = p->d_model, h = p->h;
    if (fm->n == p->cache_size) {   /* keep the last cache_size memories */
        memmove(fm->m, fm->m + d, (size_t)((fm->n - 1) * d) * sizeof *fm->m);
        memmove(fm->k, fm->k + h, (size_t)((fm->n - 1) * h) * sizeof *fm->k);
        fm->n--;
    }
    memcpy(fm->m + fm->n * d, m, (size_t)d * sizeof *m);
    matvec_double(fm->q, p->wk, m, h, d);
    for (int64_t j = 0; j < h; j++) fm->k[fm->n * h + j] = (float)fm->q[j];
    fm->n++;
    return FLX_OK;
}

int flx_hmt_float_memory_new(flx_hmt_float_memory **out, const flx_hmt_params *p, flx_error *err)
{
    flx_hmt_float_memory *fm = calloc(1, sizeof *fm);
    if (fm) {
        fm->p = p;
        fm->m = malloc((size_t)p->cache_size * (size_t)p->d_model * sizeof(float));
        fm->k = malloc((size_t)p->cache_size * (size_t)p->h * sizeof(float));
        fm->q = malloc((size_t)p->h * sizeof(double));
        fm->sc = malloc((size_t)p->cache_size * sizeof(double));
    }
    if (!fm || !fm->m || !fm->k || !fm->q || !fm->sc) {
        flx_hmt_float_memory_free(fm);
        return flx_fail(err, FLX_ENOMEM, "HMT: out of memory for a cache of %d memories", p->cache_size);
    }
    *out = fm;
    return FLX_OK;
}

void flx_hmt_float_memory_free(flx_hmt_float_memory *fm)
{
    if (!fm) return;
    free(fm->m);
    free(fm->k);
    free(fm->q);
    free(fm->sc);
    free(fm);
}

flx_hmt_memory flx_hmt_float_memory_ops(flx_hmt_float_memory *fm)
{
    flx_hmt_memory ops = {fm, fm_reset, fm_recall, fm_store};
    return ops;
}

/* ---------------------------------------------------------------- float backbone */

static int fb_run(void *ctx, const float *x, int64_t n, flx_error *err)
{
    flx_hmt_float_backbone *fb = ctx;
    flx_llama_reset(&fb->st);
    return flx_llama_forward_embd(&fb->st, x, n, err);
}

static int fb_hidden(void *ctx, int64_t row, int final_norm, float *out, flx_error *err)
{
    flx_hmt_float_backbone *fb = ctx;
    const int64_t d = fb->st.model->cfg.d_model;
    if (row < 0 || row >= fb->st.n_rows)
        return flx_fail(err, FLX_EINVAL, "HMT: hidden row %lld of a %lld-row run", (long long)row,
                        (long long)fb->st.n_rows);
    /* after the forward: x = last layer output, xn = after the final norm */
    memcpy(out, (final_norm ? fb->st.xn : fb->st.x) + row * d, (size_t)d * sizeof *out);
    return FLX_OK;
}

static int fb_logits(void *ctx, int64_t row0, int64_t n, float *out, flx_error *err)
{
    flx_hmt_float_backbone *fb = ctx;
    return flx_llama_logits(&fb->st, row0, n, out, err);
}

int flx_hmt_float_backbone_init(flx_hmt_float_backbone *fb, const flx_model *m, const flx_llama_opts *opts,
                                int64_t max_rows, flx_error *err)
{
    memset(fb, 0, sizeof *fb);
    flx_llama_opts lo = *opts;
    lo.max_tokens = max_rows;
    lo.max_ctx = max_rows;
    int rc = flx_llama_init(&fb->st, m, &lo, err);
    if (rc) return rc;
    fb->open = 1;
    fb->logits_buf = flx_alloc_large((size_t)flx_llama_head_rows(&fb->st) * (size_t)m->cfg.n_vocab * sizeof(float));
    if (!fb->logits_buf) {
        flx_hmt_float_backbone_free(fb);
        return flx_fail(err, FLX_ENOMEM, "HMT: out of memory for the logits of %lld rows",
                        (long long)flx_llama_head_rows(&fb->st));
    }
    return FLX_OK;
}

void flx_hmt_float_backbone_free(flx_hmt_float_backbone *fb)
{
    if (!fb) return;
    if (fb->open) flx_llama_free(&fb->st);
    free(fb->logits_buf);
    memset(fb, 0, sizeof *fb);
}

flx_hmt_backbone flx_hmt_float_backbone_ops(flx_hmt_float_backbone *fb)
{
    const flx_model *m = fb->st.model;
    flx_hmt_backbone b = {fb, m->cfg.d_model, m->cfg.n_vocab, m->w.tok_embd, fb->st.opts.max_tokens,
                          flx_llama_head_rows(&fb->st), fb->logits_buf, fb_run, fb_hidden, fb_logits};
    return b;
}

/* ---------------------------------------------------------------- the flow */

int flx_hmt_context(const flx_hmt_params *p, const flx_hmt_flow *flow, const flx_hmt_backbone *bb,
                    const flx_hmt_memory *mem, const int32_t *tokens, int64_t n_tokens,
                    flx_hmt_logits_fn logits_fn, void *logits_ctx, flx_hmt_trace *trace,
                    flx_error *err)
{
    const int64_t d = p->d_model, L = p->seg_len;
    if (bb->d_model != d)
        return flx_fail(err, FLX_EINVAL, "%s: HMT parameters are for hidden size %d, the model has %d",
                        p->path, p->d_model, bb->d_model);
    if (n_tokens < 1) return flx_fail(err, FLX_EINVAL, "HMT: no tokens");
    const int64_t rows_max = flx_hmt_stage1_rows(p);
    if (bb->max_rows < rows_max)
        return flx_fail(err, FLX_EINVAL, "HMT: the backbone takes %lld rows, a segment needs %lld",
                        (long long)bb->max_rows, (long long)rows_max);
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= bb->n_vocab)
            return flx_fail(err, FLX_EINVAL, "HMT: token %lld has id %d, outside the vocabulary of %d",
                            (long long)i, tokens[i], bb->n_vocab);
    float *x = malloc((size_t)rows_max * (size_t)d * sizeof *x);
    float *s = malloc((size_t)d * sizeof *s), *pn = malloc((size_t)d * sizeof *pn);
    float *mn = malloc((size_t)d * sizeof *mn);
    float *logits = bb->logits_buf;
    int rc = FLX_OK;
    if (!x || !s || !pn || !mn || (logits_fn && !logits)) {
        rc = flx_fail(err, FLX_ENOMEM, "HMT: out of memory for a segment of %lld rows", (long long)rows_max);
        goto done;
    }
    mem->reset(mem->ctx);
    const int64_t n_seg = (n_tokens + L - 1) / L;
#define EMB(tok) (bb->tok_embd + (size_t)(tok) * (size_t)d)
    for (int64_t n = 0; n < n_seg && !rc; n++) {
        const int32_t *seg = tokens + n * L;
        const int64_t len = n_tokens - n * L < L ? n_tokens - n * L : L;
        const int last = n == n_seg - 1;
        memset(s, 0, (size_t)d * sizeof *s);
        /* stage 0 and recall: the first segment has no memory to recall */
        if (n > 0) {
            int64_t k = len < p->sum_len ? len : p->sum_len;
            memcpy(x, p->mem, (size_t)d * sizeof *x);
            for (int64_t i = 0; i < k; i++) memcpy(x + (1 + i) * d, EMB(seg[i]), (size_t)d * sizeof *x);
            memcpy(x + (1 + k) * d, p->mem, (size_t)d * sizeof *x);
            if ((rc = bb->run(bb->ctx, x, k + 2, err))) break;
            if (trace) trace->rows += k + 2;
            if (flow->read_inputs) memcpy(s, p->mem, (size_t)d * sizeof *s);
            else if ((rc = bb->hidden(bb->ctx, k + 1, flow->final_norm, s, err))) break;
        }
        if ((rc = mem->recall(mem->ctx, s, pn, err))) break;
        /* stage 1: [P, sensory, segment, P] */
        int64_t r = 0;
        memcpy(x, pn, (size_t)d * sizeof *x);
        r = 1;
        if (n > 0) {   /* HMT-pytorch: input_ids[:, -num_sensory:] of the previous segment */
            for (int64_t i = L - (p->n_sensory < L ? p->n_sensory : L); i < L; i++, r++)
                memcpy(x + r * d, EMB(tokens[(n - 1) * L + i]), (size_t)d * sizeof *x);
        } else if (flow->zero_sensory) {
            memset(x + r * d, 0, (size_t)(p->n_sensory * d) * sizeof *x);
            r += p->n_sensory;
        }
        const int64_t seg_row0 = r;
        for (int64_t i = 0; i < len; i++, r++) memcpy(x + r * d, EMB(seg[i]), (size_t)d * sizeof *x);
        const int trailing = !last || flow->trailing_last;
        if (trailing) {
            memcpy(x + r * d, pn, (size_t)d * sizeof *x);
            r++;
        }
        if ((rc = bb->run(bb->ctx, x, r, err))) break;
        if (trace) trace->rows += r;
        for (int64_t j0 = 0; logits_fn && j0 < len && !rc; j0 += bb->head_rows) {
            int64_t nr = len - j0 < bb->head_rows ? len - j0 : bb->head_rows;
            if (!(rc = bb->logits(bb->ctx, seg_row0 + j0, nr, logits, err)))
                rc = logits_fn(logits_ctx, n, j0, nr, logits);
        }
        if (rc) break;
        memset(mn, 0, (size_t)d * sizeof *mn);
        if (!last) {
            if (flow->read_inputs) memcpy(mn, pn, (size_t)d * sizeof *mn);
            else if ((rc = bb->hidden(bb->ctx, r - 1, flow->final_norm, mn, err))) break;
            if ((rc = mem->store(mem->ctx, n, mn, err))) break;
        }
        if (trace) {
            if (trace->p) memcpy(trace->p + n * d, pn, (size_t)d * sizeof *pn);
            if (trace->s) memcpy(trace->s + n * d, s, (size_t)d * sizeof *s);
            if (trace->m) memcpy(trace->m + n * d, mn, (size_t)d * sizeof *mn);
        }
    }
#undef EMB
done:
    free(x);
    free(s);
    free(pn);
    free(mn);
    return rc;
}

/* ---------------------------------------------------------------- perplexity */

typedef struct {
    const float   *logits;
    int64_t        n_vocab;
    const int32_t *targets;
    double        *nll;
} nll_job;

static void nll_rows(void *ctx, int64_t b, int64_t e, int tid)
{
    (void)tid;
    const nll_job *j = ctx;
    for (int64_t r = b; r < e; r++) j->nll[r] = flx_nll(j->logits + r * j->n_vocab, j->n_vocab, j->targets[r]);
}

typedef struct {
    const flx_hmt_params *p;
    const flx_hmt_ppl_opts *o;
    const int32_t *win;       /* the sample's tokens */
    int64_t win_len, n_vocab;
    double *nll;              /* [head_rows] */
    double *seg_sum;          /* [n_segments] */
    int64_t *seg_cnt;
    double win_sum;           /* scored tokens of the current sample */
    int64_t win_cnt;
    double (*running)(void *agg);   /* the aggregate so far, for progress */
    void *agg;
    flx_hmt_ppl_info info;
    flx_error *err;
} hmt_scorer;

/* Segment-token row j of segment seg predicts sample token seg*L + j + 1;
 * the sample's last L tokens are the scored ones. */
static int hmt_score(void *ctx, int64_t seg, int64_t j0, int64_t n, const float *logits)
{
    hmt_scorer *sc = ctx;
    const int64_t L = sc->p->seg_len;
    int64_t first_target = seg * L + j0 + 1;
    int64_t m = sc->win_len - first_target < n ? sc->win_len - first_target : n;
    if (m > 0) {
        nll_job j = {logits, sc->n_vocab, sc->win + first_target, sc->nll};
        flx_pool_for(sc->o->pool, m, 4, nll_rows, &j);
    }
    for (int64_t i = 0; i < m; i++) {
        double v = sc->nll[i];
        if (!isfinite(v))
            return flx_fail(sc->err, FLX_ENUMERIC, "HMT perplexity: sample %lld, segment %lld, row %lld: "
                            "the log-likelihood is not finite (NaN/Inf logits)",
                            (long long)sc->info.window + 1, (long long)seg, (long long)(j0 + i));
        int64_t t = first_target + i, tseg = t / L;
        sc->seg_sum[tseg] += v;
        sc->seg_cnt[tseg]++;
        if (t >= sc->win_len - L) {
            sc->win_sum += v;
            sc->win_cnt++;
        }
    }
    int64_t seg_end = (seg + 1) * L < sc->win_len ? L : sc->win_len - seg * L;
    if (j0 + n == seg_end && sc->o->on_segment) {
        sc->info.segment = seg;
        sc->info.segments_done++;
        sc->info.running_ppl = sc->running(sc->agg);
        sc->o->on_segment(sc->o->on_segment_ctx, &sc->info);
    }
    return FLX_OK;
}

void flx_hmt_ppl_result_free(flx_hmt_ppl_result *r)
{
    if (!r) return;
    free(r->segment_mean_nll);
    free(r->segment_count);
    free(r->window_mean_nll);
    free(r->window_start);
    free(r->window_len);
    memset(r, 0, sizeof *r);
}

int flx_hmt_ppl_sample(const flx_hmt_params *p, const flx_hmt_ppl_opts *o, int64_t n_tokens, int64_t k,
                       int64_t *start, int64_t *len)
{
    const int64_t L = p->seg_len, C = o->n_segments;
    if (k < 0 || L < 1 || C < 2) return 0;
    int64_t b, e;
    if (o->eval == FLX_HMT_EVAL_CONTEXTS) {
        b = k * (C - 1) * L;
        e = b + C * L;
        if (e > n_tokens) return 0;
    } else {
        b = k > 0 ? (k - 1) * L : 0;
        e = k * L + (C - 1) * L;
        if (k * L >= n_tokens) return 0;
        if (e > n_tokens) e = n_tokens;
        if (e - b < L + 1) return 0;   /* nothing HMT-pytorch could score (it would fail) */
    }
    if (start) *start = b;
    if (len) *len = e - b;
    return 1;
}

static int64_t pytorch_batch(const flx_hmt_ppl_opts *o)
{
    return o->eval == FLX_HMT_EVAL_CONTEXTS || o->batch <= 0 ? 1 : o->batch;
}

int64_t flx_hmt_ppl_count(const flx_hmt_params *p, const flx_hmt_ppl_opts *o, int64_t n_tokens,
                          int64_t *available, int64_t *segments)
{
    const int64_t L = p->seg_len;
    int64_t n = 0, b, len, nseg = 0;
    /* sample 0 may be absent (C = 2: it is L tokens long) while later ones exist */
    int64_t k0 = flx_hmt_ppl_sample(p, o, n_tokens, 0, NULL, NULL) ? 0 : 1;
    while (flx_hmt_ppl_sample(p, o, n_tokens, k0 + n, NULL, NULL)) n++;
    if (available) *available = n;
    if (o->max_windows > 0 && o->max_windows < n) n = o->max_windows;
    n -= n % pytorch_batch(o);
    for (int64_t k = 0; k < n && segments; k++) {
        flx_hmt_ppl_sample(p, o, n_tokens, k0 + k, &b, &len);
        nseg += (len + L - 1) / L;
    }
    if (segments) *segments = nseg;
    return n;
}

/* Aggregation of the per-sample scores. */
typedef struct {
    int pooled;               /* contexts: exp(mean over all tokens)       */
    int64_t batch;
    double sum, cnt;          /* all scored tokens                         */
    double b_sum, b_cnt;      /* the open batch                            */
    int64_t b_n;              /* samples in the open batch                 */
    double ppl_sum;           /* closed batches' ppl                       */
    int64_t n_batches;
} hmt_agg;

static void agg_add(hmt_agg *a, double sum, int64_t cnt)
{
    a->sum += sum;
    a->cnt += (double)cnt;
    a->b_sum += sum;
    a->b_cnt += (double)cnt;
    if (++a->b_n == a->batch) {
        a->ppl_sum += exp(a->b_sum / a->b_cnt);
        a->n_batches++;
        a->b_sum = a->b_cnt = 0.0;
        a->b_n = 0;
    }
}

static double agg_ppl(const hmt_agg *a)
{
    if (a->pooled) return a->cnt > 0 ? exp(a->sum / a->cnt) : NAN;
    return a->n_batches ? a->ppl_sum / (double)a->n_batches : NAN;
}

static double agg_running(void *ctx) { return agg_ppl(ctx); }

int flx_hmt_ppl_run(const flx_hmt_params *p, const flx_hmt_backbone *bb, const flx_hmt_memory *mem,
                    const int32_t *tokens, int64_t n_tokens, const flx_hmt_ppl_opts *o,
                    flx_hmt_ppl_result *r, flx_error *err)
{
    memset(r, 0, sizeof *r);
    const int64_t L = p->seg_len, S = o->n_segments;
    if (S < 2 || S > 4096)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: a context needs 2 .. 4096 segments, got %lld",
                        (long long)S);
    if (o->eval != FLX_HMT_EVAL_PYTORCH && o->eval != FLX_HMT_EVAL_CONTEXTS)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: unknown evaluation protocol %d", o->eval);
    if (o->baseline_ctx && (o->baseline_ctx < L + 1 || o->baseline_ctx > bb->max_rows))
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: the baseline window %lld must lie in [%lld, %lld]",
                        (long long)o->baseline_ctx, (long long)(L + 1), (long long)bb->max_rows);
    r->window_tokens = S * L;
    if (o->baseline_ctx > r->window_tokens)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: the baseline window %lld is longer than a context "
                        "of %lld tokens", (long long)o->baseline_ctx, (long long)r->window_tokens);
    r->stride = o->eval == FLX_HMT_EVAL_CONTEXTS ? (S - 1) * L : L;
    r->batch = pytorch_batch(o);
    r->n_tokens = n_tokens;
    if (n_tokens < r->window_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "HMT perplexity: the text has %lld tokens, fewer than one context of %lld "
                        "segments x %lld = %lld", (long long)n_tokens, (long long)S, (long long)L,
                        (long long)r->window_tokens);
    r->n_windows = flx_hmt_ppl_count(p, o, n_tokens, &r->n_available, NULL);
    if (r->n_windows < 1)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: %lld samples available, fewer than one batch of %lld",
                        (long long)r->n_available, (long long)r->batch);
    const int64_t k0 = flx_hmt_ppl_sample(p, o, n_tokens, 0, NULL, NULL) ? 0 : 1;
    r->n_scored = L;
    r->segment_mean_nll = calloc((size_t)S, sizeof(double));
    r->segment_count = calloc((size_t)S, sizeof(int64_t));
    r->window_mean_nll = calloc((size_t)r->n_windows, sizeof(double));
    r->window_start = calloc((size_t)r->n_windows, sizeof(int64_t));
    r->window_len = calloc((size_t)r->n_windows, sizeof(int64_t));
    double *nll = malloc((size_t)bb->head_rows * sizeof *nll);
    float *logits = bb->logits_buf;
    float *x = o->baseline_ctx ? malloc((size_t)o->baseline_ctx * (size_t)bb->d_model * sizeof *x) : NULL;
    int rc = FLX_OK;
    if (!r->segment_mean_nll || !r->segment_count || !r->window_mean_nll || !r->window_start ||
        !r->window_len || !nll || !logits || (o->baseline_ctx && !x)) {
        rc = flx_fail(err, FLX_ENOMEM, "HMT perplexity: out of memory");
        goto done;
    }
    const int pooled = o->eval == FLX_HMT_EVAL_CONTEXTS;
    hmt_agg agg = {.pooled = pooled, .batch = r->batch}, bagg = agg;
    hmt_scorer sc = {p, o, NULL, 0, bb->n_vocab, nll, r->segment_mean_nll, r->segment_count, 0, 0,
                     agg_running, &agg, {0, r->n_windows, 0, S, 0, NAN}, err};
    double t0 = flx_now_seconds();
    for (int64_t w = 0; w < r->n_windows && !rc; w++) {
        int64_t start, len;
        flx_hmt_ppl_sample(p, o, n_tokens, k0 + w, &start, &len);
        r->window_start[w] = start;
        r->window_len[w] = len;
        const int32_t *win = tokens + start;
        sc.win = win;
        sc.win_len = len;
        sc.win_sum = 0.0;
        sc.win_cnt = 0;
        sc.info.window = w;
        sc.info.n_segments = (len + L - 1) / L;
        flx_hmt_trace tr = {NULL, NULL, NULL, 0};
        rc = flx_hmt_context(p, &o->flow, bb, mem, win, len, hmt_score, &sc, &tr, err);
        if (rc) break;
        r->window_mean_nll[w] = sc.win_sum / (double)sc.win_cnt;
        agg_add(&agg, sc.win_sum, sc.win_cnt);
        r->rows_run += tr.rows;
        if (o->baseline_ctx) {   /* the same L targets from one plain window ending at the sample's end */
            double tb = flx_now_seconds();
            const int64_t end = start + len, B = o->baseline_ctx < end ? o->baseline_ctx : end;
            const int32_t *bt = tokens + end - B;
            double b_sum = 0.0;
            int64_t b_cnt = 0;
            for (int64_t i = 0; i < B; i++)
                memcpy(x + i * bb->d_model, bb->tok_embd + (size_t)bt[i] * bb->d_model,
                       (size_t)bb->d_model * sizeof *x);
            if ((rc = bb->run(bb->ctx, x, B, err))) break;
            for (int64_t r0 = B - L - 1; r0 < B - 1 && !rc; r0 += bb->head_rows) {
                int64_t nr = B - 1 - r0 < bb->head_rows ? B - 1 - r0 : bb->head_rows;
                if ((rc = bb->logits(bb->ctx, r0, nr, logits, err))) break;
                nll_job j = {logits, bb->n_vocab, bt + r0 + 1, nll};
                flx_pool_for(o->pool, nr, 4, nll_rows, &j);
                for (int64_t i = 0; i < nr; i++) {
                    if (!isfinite(nll[i])) {
                        rc = flx_fail(err, FLX_ENUMERIC, "HMT baseline: sample %lld: non-finite logits",
                                      (long long)w + 1);
                        break;
                    }
                    b_sum += nll[i];
                    b_cnt++;
                }
            }
            agg_add(&bagg, b_sum, b_cnt);
            r->seconds_baseline += flx_now_seconds() - tb;
        }
    }
    r->seconds = flx_now_seconds() - t0 - r->seconds_baseline;
    if (rc) goto done;
    for (int64_t k = 0; k < S; k++)
        r->segment_mean_nll[k] = r->segment_count[k] ? r->segment_mean_nll[k] / (double)r->segment_count[k] : NAN;
    r->mean_nll = agg.sum / agg.cnt;
    r->pooled_ppl = exp(r->mean_nll);
    r->ppl = agg_ppl(&agg);
    r->baseline_mean_nll = bagg.cnt > 0 ? bagg.sum / bagg.cnt : NAN;
    r->baseline_ppl = bagg.cnt > 0 ? agg_ppl(&bagg) : NAN;
done:
    free(nll);
    free(x);
    if (rc) flx_hmt_ppl_result_free(r);
    return rc;
}
