/* HMT parameters, the segment flow and long-context perplexity (flx_hmt.h,
 * docs/hmt.md). */
#include "flx_hmt.h"
#include "flx_ppl.h"
#include "flx_safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- settings */

void flx_hmt_settings_unset(flx_hmt_settings *s)
{
    s->segment_length = -1;
    s->n_sensory = -1;
    s->cache_size = -1;
    s->sum_fraction = -1.0;
}

void flx_hmt_settings_default(flx_hmt_settings *s)
{
    s->segment_length = 1024;
    s->n_sensory = 32;
    s->cache_size = 64;
    s->sum_fraction = 0.5;
}

/* Fills p's settings from s (all given) and checks them. */
static int apply_settings(flx_hmt_params *p, const flx_hmt_settings *s, const char *src, flx_error *err)
{
    if (s->n_sensory < 0 || s->n_sensory > 1 << 20)
        return flx_fail(err, FLX_EINVAL, "%s: num_sensory %d is outside [0, 2^20]", src, s->n_sensory);
    if (s->segment_length - 2 - s->n_sensory < 2 || s->segment_length > 1 << 20)
        return flx_fail(err, FLX_EINVAL,
                        "%s: segment_length %d leaves %d tokens per segment after the two memory "
                        "tokens and %d sensory tokens (need >= 2)",
                        src, s->segment_length, s->segment_length - 2 - s->n_sensory, s->n_sensory);
    if (s->cache_size < 1 || s->cache_size > 1 << 16)
        return flx_fail(err, FLX_EINVAL, "%s: mem_recall_context %d is outside [1, 65536]", src,
                        s->cache_size);
    if (!(s->sum_fraction > 0.0 && s->sum_fraction <= 1.0))
        return flx_fail(err, FLX_EINVAL, "%s: sum_fraction %g is outside (0, 1]", src, s->sum_fraction);
    p->seg_len = s->segment_length - 2 - s->n_sensory;
    p->n_sensory = s->n_sensory;
    p->cache_size = s->cache_size;
    p->sum_fraction = s->sum_fraction;
    p->sum_len = (int32_t)floor((double)p->seg_len * s->sum_fraction);
    if (p->sum_len < 1) p->sum_len = 1;
    return FLX_OK;
}

static void merge_settings(flx_hmt_settings *dst, const flx_hmt_settings *over)
{
    if (!over) return;
    if (over->segment_length >= 0) dst->segment_length = over->segment_length;
    if (over->n_sensory >= 0) dst->n_sensory = over->n_sensory;
    if (over->cache_size >= 0) dst->cache_size = over->cache_size;
    if (over->sum_fraction >= 0) dst->sum_fraction = over->sum_fraction;
}

static int alloc_params(flx_hmt_params *p, int32_t d, int32_t h, const char *src, flx_error *err)
{
    size_t mat = (size_t)h * (size_t)d;
    p->d_model = d;
    p->h = h;
    p->mem = malloc((size_t)d * sizeof(float));
    p->init_mem = malloc((size_t)d * sizeof(float));
    p->wq = malloc(mat * sizeof(float));
    p->wk = malloc(mat * sizeof(float));
    if (!p->mem || !p->init_mem || !p->wq || !p->wk) {
        flx_hmt_free(p);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory for HMT parameters (h %d, d %d)", src, h, d);
    }
    return FLX_OK;
}

void flx_hmt_free(flx_hmt_params *p)
{
    if (!p) return;
    free(p->mem);
    free(p->init_mem);
    free(p->wq);
    free(p->wk);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- file */

static const char *const NAME_MEM = "mem";
static const char *const NAME_INIT = "memory_cell.memory";
static const char *const NAME_WQ = "cross_attn.wq.weight";
static const char *const NAME_WK = "cross_attn.wk.weight";

/* Converts tensor t (F32/BF16/F16) into out[n]. */
static int read_floats(const flx_st_tensor *t, float *out, const char *path, flx_error *err)
{
    const uint8_t *d = t->data;
    for (int64_t i = 0; i < t->n_elems; i++) {
        switch (t->dtype) {
        case FLX_ST_F32: memcpy(&out[i], d + 4 * i, 4); break;
        case FLX_ST_BF16: {
            uint16_t v;
            memcpy(&v, d + 2 * i, 2);
            out[i] = flx_bf16_to_f32(v);
            break;
        }
        case FLX_ST_F16: {
            uint16_t v;
            memcpy(&v, d + 2 * i, 2);
            out[i] = flx_f16_to_f32(v);
            break;
        }
        default:
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has dtype %s; HMT parameters must be "
                            "F32, BF16 or F16", path, t->name, flx_st_dtype_name(t->dtype));
        }
        if (!isfinite(out[i]))
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' element %lld is not finite", path,
                            t->name, (long long)i);
    }
    return FLX_OK;
}

/* The tensor `name`: a vector of d ([1, d] or [d]) when rows == 1, else a
 * matrix [rows, d] (rows < 0: any rows, returned in *rows_out). */
static int find_tensor(const flx_safetensors *st, const char *name, int32_t d, int64_t rows,
                       int64_t *rows_out, const flx_st_tensor **out, const char *path, flx_error *err)
{
    const flx_st_tensor *t = flx_st_find(st, name);
    if (!t)
        return flx_fail(err, FLX_EFORMAT,
                        "%s: tensor '%s' is missing (an HMT file holds 'mem', 'memory_cell.memory', "
                        "'cross_attn.wq.weight' and 'cross_attn.wk.weight')", path, name);
    int ok;
    if (rows == 1)
        ok = (t->n_dims == 1 && t->shape[0] == d) ||
             (t->n_dims == 2 && t->shape[0] == 1 && t->shape[1] == d);
    else
        ok = t->n_dims == 2 && t->shape[1] == d && t->shape[0] >= 1 && t->shape[0] <= (1 << 20) &&
             (rows < 0 || t->shape[0] == rows);
    if (!ok) {
        char shape[96] = "";
        size_t n = 0;
        for (int i = 0; i < t->n_dims && n < sizeof shape - 24; i++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        if (rows == 1)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [1, %d] (the "
                            "model's hidden size)", path, name, shape, d);
        if (rows > 0)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [%lld, %d] "
                            "(the shape of %s)", path, name, shape, (long long)rows, d, NAME_WQ);
        return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [h, %d] (d = the "
                        "model's hidden size)", path, name, shape, d);
    }
    if (rows_out) *rows_out = t->n_dims == 2 ? t->shape[0] : 1;
    *out = t;
    return FLX_OK;
}

/* Metadata integer / float: absent keeps *v. */
static int meta_int(const flx_safetensors *st, const char *key, int32_t *v, const char *path, flx_error *err)
{
    const char *s = flx_st_meta(st, key);
    if (!s) return FLX_OK;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || x < 0 || x > (1 << 20))
        return flx_fail(err, FLX_EFORMAT, "%s: metadata '%s' is '%.40s', expected an integer in [0, 2^20]",
                        path, key, s);
    *v = (int32_t)x;
    return FLX_OK;
}

static int meta_double(const flx_safetensors *st, const char *key, double *v, const char *path,
                       flx_error *err)
{
    const char *s = flx_st_meta(st, key);
    if (!s) return FLX_OK;
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x))
        return flx_fail(err, FLX_EFORMAT, "%s: metadata '%s' is '%.40s', expected a number", path, key, s);
    *v = x;
    return FLX_OK;
}

int flx_hmt_load(flx_hmt_params *p, const char *path, int32_t d_model, const flx_hmt_settings *over,
                 flx_error *err)
{
    memset(p, 0, sizeof *p);
    flx_safetensors st;
    int rc = flx_st_open(&st, path, err);
    if (rc) return rc;
    const flx_st_tensor *tm, *ti, *tq, *tk;
    int64_t h = 0;
    flx_hmt_settings s;
    flx_hmt_settings_default(&s);
    if ((rc = find_tensor(&st, NAME_MEM, d_model, 1, NULL, &tm, path, err)) ||
        (rc = find_tensor(&st, NAME_INIT, d_model, 1, NULL, &ti, path, err)) ||
        (rc = find_tensor(&st, NAME_WQ, d_model, -1, &h, &tq, path, err)) ||
        (rc = find_tensor(&st, NAME_WK, d_model, h, NULL, &tk, path, err)) ||
        (rc = meta_int(&st, "segment_length", &s.segment_length, path, err)) ||
        (rc = meta_int(&st, "num_sensory", &s.n_sensory, path, err)) ||
        (rc = meta_int(&st, "mem_recall_context", &s.cache_size, path, err)) ||
        (rc = meta_double(&st, "sum_fraction", &s.sum_fraction, path, err)))
        goto out;
    merge_settings(&s, over);
    if ((rc = apply_settings(p, &s, path, err))) goto out;
    if ((rc = alloc_params(p, d_model, (int32_t)h, path, err))) goto out;
    if ((rc = read_floats(tm, p->mem, path, err)) || (rc = read_floats(ti, p->init_mem, path, err)) ||
        (rc = read_floats(tq, p->wq, path, err)) || (rc = read_floats(tk, p->wk, path, err)))
        goto out;
    snprintf(p->path, sizeof p->path, "%s", path);
out:
    if (rc) flx_hmt_free(p);
    flx_st_close(&st);
    return rc;
}

int flx_hmt_synth(flx_hmt_params *p, int32_t d_model, int32_t h, const flx_hmt_settings *s,
                  uint64_t seed, flx_error *err)
{
    memset(p, 0, sizeof *p);
    if (d_model < 1 || h < 1 || d_model > (1 << 16) || h > (1 << 16))
        return flx_fail(err, FLX_EINVAL, "HMT synth: d %d and h %d must lie in [1, 65536]", d_model, h);
    flx_hmt_settings all;
    flx_hmt_settings_default(&all);
    merge_settings(&all, s);
    int rc = apply_settings(p, &all, "HMT synth", err);
    if (rc) return rc;
    if ((rc = alloc_params(p, d_model, h, "HMT synth", err))) return rc;
    flx_rng rng;
    flx_rng_seed(&rng, seed ^ 0x484d54ull);   /* "HMT" */
    /* N(0,1) as an Irwin-Hall sum of four 16-bit uniforms, in integers */
    for (int v = 0; v < 2; v++) {
        float *x = v ? p->init_mem : p->mem;
        for (int32_t i = 0; i < d_model; i++) {
            uint64_t u = flx_rng_u64(&rng);
            int64_t sum = (int64_t)(u & 0xffff) + (int64_t)((u >> 16) & 0xffff) +
                          (int64_t)((u >> 32) & 0xffff) + (int64_t)(u >> 48);
            double z = ((double)sum - 4.0 * 32767.5) / 37837.22;   /* sqrt(4 (2^32 - 1) / 12) */
            x[i] = (float)(0.02 * z);
        }
    }
    double bound = 1.0 / sqrt((double)d_model);
    for (int v = 0; v < 2; v++) {
        float *w = v ? p->wk : p->wq;
        for (size_t i = 0; i < (size_t)h * (size_t)d_model; i++) {
            double u = (double)(flx_rng_u64(&rng) >> 40) / 16777216.0;   /* 24 bits, [0, 1) */
            w[i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    snprintf(p->path, sizeof p->path, "synthetic (seed %llu)", (unsigned long long)seed);
    return FLX_OK;
}

int flx_hmt_write(const flx_hmt_params *p, const char *path, flx_error *err)
{
    flx_st_desc d[4] = {
        {NAME_MEM, FLX_ST_F32, 2, {1, p->d_model}},
        {NAME_INIT, FLX_ST_F32, 2, {1, p->d_model}},
        {NAME_WQ, FLX_ST_F32, 2, {p->h, p->d_model}},
        {NAME_WK, FLX_ST_F32, 2, {p->h, p->d_model}},
    };
    const void *data[4] = {p->mem, p->init_mem, p->wq, p->wk};
    char seg[32], sens[32], cache[32], frac[32];
    snprintf(seg, sizeof seg, "%d", p->seg_len + 2 + p->n_sensory);
    snprintf(sens, sizeof sens, "%d", p->n_sensory);
    snprintf(cache, sizeof cache, "%d", p->cache_size);
    snprintf(frac, sizeof frac, "%.17g", p->sum_fraction);
    const char *keys[5] = {"segment_length", "num_sensory", "mem_recall_context", "sum_fraction",
                           "format"};
    const char *vals[5] = {seg, sens, cache, frac, "hmt"};
    return flx_st_write(path, d, data, 4, keys, vals, 5, err);
}

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
    const int32_t *win;       /* the window's tokens */
    int64_t win_len, n_vocab;
    double *nll;              /* [head_rows] */
    double *seg_sum;          /* [n_segments] */
    int64_t *seg_cnt;
    double scored_sum;
    int64_t scored_cnt;
    flx_hmt_ppl_info info;
    flx_error *err;
} hmt_scorer;

/* Segment-token row j of segment seg predicts window token seg*L + j + 1. */
static int hmt_score(void *ctx, int64_t seg, int64_t j0, int64_t n, const float *logits)
{
    hmt_scorer *sc = ctx;
    const int64_t L = sc->p->seg_len, last_seg = sc->o->n_segments - 1;
    int64_t first_target = seg * L + j0 + 1;
    int64_t m = sc->win_len - first_target < n ? sc->win_len - first_target : n;
    if (m <= 0) return FLX_OK;
    nll_job j = {logits, sc->n_vocab, sc->win + first_target, sc->nll};
    flx_pool_for(sc->o->pool, m, 4, nll_rows, &j);
    for (int64_t i = 0; i < m; i++) {
        double v = sc->nll[i];
        if (!isfinite(v))
            return flx_fail(sc->err, FLX_ENUMERIC, "HMT perplexity: window %lld, segment %lld, row %lld: "
                            "the log-likelihood is not finite (NaN/Inf logits)",
                            (long long)sc->info.window + 1, (long long)seg, (long long)(j0 + i));
        int64_t tseg = (first_target + i) / L;
        sc->seg_sum[tseg] += v;
        sc->seg_cnt[tseg]++;
        if (tseg == last_seg) {
            sc->scored_sum += v;
            sc->scored_cnt++;
        }
    }
    if (j0 + n == L && sc->o->on_segment) {
        sc->info.segment = seg;
        sc->info.running_ppl = sc->scored_cnt ? exp(sc->scored_sum / (double)sc->scored_cnt) : NAN;
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
    memset(r, 0, sizeof *r);
}

int flx_hmt_ppl_run(const flx_hmt_params *p, const flx_hmt_backbone *bb, const flx_hmt_memory *mem,
                    const int32_t *tokens, int64_t n_tokens, const flx_hmt_ppl_opts *o,
                    flx_hmt_ppl_result *r, flx_error *err)
{
    memset(r, 0, sizeof *r);
    const int64_t L = p->seg_len, S = o->n_segments;
    if (S < 2 || S > 4096)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: a context needs 2 .. 4096 segments, got %lld",
                        (long long)S);
    if (o->baseline_ctx && (o->baseline_ctx < L + 1 || o->baseline_ctx > bb->max_rows))
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: the baseline window %lld must lie in [%lld, %lld]",
                        (long long)o->baseline_ctx, (long long)(L + 1), (long long)bb->max_rows);
    r->window_tokens = S * L;
    if (o->baseline_ctx > r->window_tokens)
        return flx_fail(err, FLX_EINVAL, "HMT perplexity: the baseline window %lld is longer than a context "
                        "of %lld tokens", (long long)o->baseline_ctx, (long long)r->window_tokens);
    r->stride = (S - 1) * L;
    r->n_tokens = n_tokens;
    if (n_tokens < r->window_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "HMT perplexity: the text has %lld tokens, fewer than one context of %lld "
                        "segments x %lld = %lld", (long long)n_tokens, (long long)S, (long long)L,
                        (long long)r->window_tokens);
    r->n_available = (n_tokens - r->window_tokens) / r->stride + 1;
    r->n_windows = o->max_windows > 0 && o->max_windows < r->n_available ? o->max_windows : r->n_available;
    r->n_scored = L;
    r->segment_mean_nll = calloc((size_t)S, sizeof(double));
    r->segment_count = calloc((size_t)S, sizeof(int64_t));
    r->window_mean_nll = calloc((size_t)r->n_windows, sizeof(double));
    double *nll = malloc((size_t)bb->head_rows * sizeof *nll);
    float *logits = bb->logits_buf;
    float *x = o->baseline_ctx ? malloc((size_t)o->baseline_ctx * (size_t)bb->d_model * sizeof *x) : NULL;
    int rc = FLX_OK;
    if (!r->segment_mean_nll || !r->segment_count || !r->window_mean_nll || !nll || !logits ||
        (o->baseline_ctx && !x)) {
        rc = flx_fail(err, FLX_ENOMEM, "HMT perplexity: out of memory");
        goto done;
    }
    hmt_scorer sc = {p, o, NULL, r->window_tokens, bb->n_vocab, nll, r->segment_mean_nll,
                     r->segment_count, 0, 0, {0, r->n_windows, 0, S, NAN}, err};
    double base_sum = 0.0;
    int64_t base_cnt = 0;
    double t0 = flx_now_seconds();
    for (int64_t w = 0; w < r->n_windows && !rc; w++) {
        const int32_t *win = tokens + w * r->stride;
        sc.win = win;
        sc.info.window = w;
        double before = sc.scored_sum;
        int64_t before_cnt = sc.scored_cnt;
        flx_hmt_trace tr = {NULL, NULL, NULL, 0};
        rc = flx_hmt_context(p, &o->flow, bb, mem, win, r->window_tokens, hmt_score, &sc, &tr, err);
        if (rc) break;
        r->window_mean_nll[w] = (sc.scored_sum - before) / (double)(sc.scored_cnt - before_cnt);
        r->rows_run += tr.rows;
        if (o->baseline_ctx) {   /* the same L targets from one plain window */
            double tb = flx_now_seconds();
            const int64_t B = o->baseline_ctx, end = r->window_tokens;
            const int32_t *bt = win + end - B;
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
                        rc = flx_fail(err, FLX_ENUMERIC, "HMT baseline: window %lld: non-finite logits",
                                      (long long)w + 1);
                        break;
                    }
                    base_sum += nll[i];
                    base_cnt++;
                }
            }
            r->seconds_baseline += flx_now_seconds() - tb;
        }
    }
    r->seconds = flx_now_seconds() - t0 - r->seconds_baseline;
    if (rc) goto done;
    for (int64_t k = 0; k < S; k++)
        r->segment_mean_nll[k] = r->segment_count[k] ? r->segment_mean_nll[k] / (double)r->segment_count[k] : NAN;
    r->mean_nll = sc.scored_sum / (double)sc.scored_cnt;
    r->ppl = exp(r->mean_nll);
    r->baseline_mean_nll = base_cnt ? base_sum / (double)base_cnt : NAN;
    r->baseline_ppl = base_cnt ? exp(r->baseline_mean_nll) : NAN;
done:
    free(nll);
    free(x);
    if (rc) flx_hmt_ppl_result_free(r);
    return rc;
}
