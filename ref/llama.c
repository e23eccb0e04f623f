/* The float reference forward pass (see flx_llama.h for the math). */
#include "flx_llama.h"
#include "llama_impl.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per causal attention block: small enough that the masked
 * upper triangle wastes little work, large enough for efficient sgemm. */
#define ATT_BLOCK_ROWS 128
/* Logits chunk budget when opts.head_rows is 0. */
#define HEAD_CHUNK_BYTES ((size_t)256 << 20)

const char *flx_linear_kind_name(flx_linear_kind kind)
{
    switch (kind) {
    case FLX_LINEAR_QKV: return "qkv";
    case FLX_LINEAR_O: return "o";
    case FLX_LINEAR_GATE_UP: return "gate_up";
    case FLX_LINEAR_DOWN: return "down";
    case FLX_LINEAR_HEAD: return "head";
    }
    return "?";
}

/* ---------------------------------------------------------------- state */

static int64_t block_cols(const flx_llama_state *s, int64_t d_out);
static int64_t hooked_rows(const flx_llama_opts *o, int64_t d_in);

static float *alloc_floats(size_t a, size_t b, size_t c)
{
    size_t n, bytes;
    if (flx_size_mul(a, b, &n) || flx_size_mul(n, c, &n) || flx_size_mul(n, sizeof(float), &bytes))
        return NULL;
    return flx_alloc_large(bytes);
}

int flx_llama_init(flx_llama_state *s, const flx_model *m, const flx_llama_opts *opts,
                   flx_error *err)
{
    memset(s, 0, sizeof *s);
    const flx_llama_config *c = &m->cfg;
    if (opts->max_tokens < 1 || opts->max_ctx < opts->max_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "forward state: need 1 <= max_tokens (%lld) <= max_ctx (%lld)",
                        (long long)opts->max_tokens, (long long)opts->max_ctx);
    const int hooked = opts->hooks && opts->hooks->weight_rows;
    if (!m->w.tok_embd || (!m->w.output && !hooked) || !m->w.out_norm || !m->w.layers ||
        !m->w.rope_inv_freq)
        return flx_fail(err, FLX_EINVAL, "%s: model weights are incomplete",
                        m->path ? m->path : "model");
    int need_w_buf = !m->w.output;
    for (int l = 0; l < c->n_layers; l++) {
        const flx_llama_layer *L = &m->w.layers[l];
        if (!L->wq || !L->wk || !L->wv || !L->wo || !L->w_gate || !L->w_up || !L->w_down) need_w_buf = 1;
    }
    if (need_w_buf && !hooked)
        return flx_fail(err, FLX_EINVAL, "%s: model weights are incomplete (and no weight_rows hook)",
                        m->path ? m->path : "model");
    s->model = m;
    s->opts = *opts;
    size_t T = (size_t)opts->max_tokens, C = (size_t)opts->max_ctx;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    s->att_rows = opts->max_tokens < ATT_BLOCK_ROWS ? opts->max_tokens : ATT_BLOCK_ROWS;
    s->n_threads = opts->n_threads > 1 ? opts->n_threads : 1;
    s->x = alloc_floats(T, c->d_model, 1);
    s->xn = alloc_floats(T, c->d_model, 1);
    s->q = alloc_floats(T, q_dim, 1);
    s->attn = alloc_floats(T, q_dim, 1);
    s->proj = alloc_floats(T, c->d_model, 1);
    s->gate = alloc_floats(T, c->d_ff, 1);
    s->up = alloc_floats(T, c->d_ff, 1);
    size_t group = (size_t)(c->n_heads / c->n_kv_heads);
    s->scores = alloc_floats((size_t)s->n_threads * group, (size_t)s->att_rows, C);
    s->qo = alloc_floats((size_t)s->n_threads * group, (size_t)s->att_rows, (size_t)c->head_dim);
    s->rope_cos = alloc_floats(T, c->head_dim / 2, 1);
    s->rope_sin = alloc_floats(T, c->head_dim / 2, 1);
    s->k_cache = alloc_floats(c->n_layers, C, kv_dim);
    s->v_cache = alloc_floats(c->n_layers, C, kv_dim);
    if (need_w_buf) {   /* the largest piece of any product, per thread */
        const int64_t shapes[6][2] = {{(int64_t)q_dim, c->d_model}, {(int64_t)kv_dim, c->d_model},
                                      {c->d_model, (int64_t)q_dim}, {c->d_ff, c->d_model},
                                      {c->d_model, c->d_ff}, {c->n_vocab, c->d_model}};
        for (int i = 0; i < 6; i++) {
            int64_t rows = block_cols(s, shapes[i][0]), cap = hooked_rows(opts, shapes[i][1]);
            if (rows > cap) rows = cap;
            if (rows * shapes[i][1] > s->w_buf_floats) s->w_buf_floats = rows * shapes[i][1];
        }
        s->w_buf = alloc_floats((size_t)s->n_threads, (size_t)s->w_buf_floats, 1);
    }
    if (!s->x || !s->xn || !s->q || !s->attn || !s->proj || !s->gate || !s->up || !s->scores || !s->qo ||
        !s->rope_cos || !s->rope_sin || !s->k_cache || !s->v_cache || (need_w_buf && !s->w_buf)) {
        flx_llama_free(s);
        return flx_fail(err, FLX_ENOMEM,
                        "forward state: out of memory for %lld tokens and a %lld-position KV cache",
                        (long long)T, (long long)C);
    }
    if (opts->n_threads > 0) {
        /* our pool splits every product; each piece is a single-threaded sgemm
         * (the previous setting comes back in flx_llama_free) */
        s->openblas_threads_before = openblas_get_num_threads();
        openblas_set_num_threads(1);
        if (opts->n_threads > 1 && !(s->pool = flx_pool_create(opts->n_threads))) {
            flx_llama_free(s);
            return flx_fail(err, FLX_ENOMEM, "forward state: cannot start %d threads",
                            opts->n_threads);
        }
    }
    return FLX_OK;
}

void flx_llama_free(flx_llama_state *s)
{
    if (!s) return;
    if (s->openblas_threads_before > 0) openblas_set_num_threads(s->openblas_threads_before);
    flx_pool_free(s->pool);
    free(s->x);
    free(s->xn);
    free(s->q);
    free(s->attn);
    free(s->proj);
    free(s->gate);
    free(s->up);
    free(s->scores);
    free(s->qo);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->k_cache);
    free(s->v_cache);
    free(s->w_buf);
    memset(s, 0, sizeof *s);
}

void flx_llama_reset(flx_llama_state *s)
{
    s->n_past = 0;
    s->n_rows = 0;
}

int64_t flx_llama_head_rows(const flx_llama_state *s)
{
    int64_t rows = s->opts.head_rows;
    if (rows <= 0) {
        rows = (int64_t)(HEAD_CHUNK_BYTES / ((size_t)s->model->cfg.n_vocab * sizeof(float)));
        if (rows < 1) rows = 1;
    }
    return rows < s->opts.max_tokens ? rows : s->opts.max_tokens;
}

/* ---------------------------------------------------------------- building blocks */

static inline float round_bf16(float v) { return flx_bf16_to_f32(flx_f32_to_bf16(v)); }

static void round_bf16_block(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = round_bf16(x[i]);
}

typedef struct {
    float       *out;
    const float *x;
    const float *w;                /* NULL: rows come from hooks->weight_rows */
    int64_t      n_tokens, d_in, ld_out, cols_per_block, d_out;
    const flx_llama_state *s;
    int          layer;
    flx_weight_kind kind;
} linear_job;

/* out[:, c0 .. c0 + cols) = x W[c0 .. c0 + cols)^T, one single-threaded call */
static void linear_piece(const linear_job *j, const float *w, int64_t c0, int64_t cols)
{
    if (j->n_tokens == 1) {   /* decoding: a matrix-vector product, no packing of W */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)cols, (int)j->d_in, 1.0f, w, (int)j->d_in, j->x,
                    1, 0.0f, j->out + c0, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->n_tokens, (int)cols, (int)j->d_in, 1.0f,
                j->x, (int)j->d_in, w, (int)j->d_in, 0.0f, j->out + c0, (int)j->ld_out);
}

/* Rows of a hooked weight per request: the buffer's share, whole multiples
 * of 64 rows (so a piece splits a block where sgemm's own column blocking
 * would), at least 64. */
static int64_t hooked_rows(const flx_llama_opts *o, int64_t d_in)
{
    int64_t bytes = o->weight_block_bytes > 0 ? o->weight_block_bytes : (int64_t)64 << 20;
    int64_t rows = bytes / (d_in * (int64_t)sizeof(float)) / 64 * 64;
    return rows < 64 ? 64 : rows;
}

static void linear_blocks(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    const linear_job *j = ctx;
    for (int64_t b = begin; b < end; b++) {
        int64_t c0 = b * j->cols_per_block;
        int64_t cols = j->d_out - c0 < j->cols_per_block ? j->d_out - c0 : j->cols_per_block;
        if (j->w) {
            linear_piece(j, j->w + c0 * j->d_in, c0, cols);
            continue;
        }
        /* weights on demand: this thread's buffer, a piece at a time */
        const flx_llama_hooks *h = j->s->opts.hooks;
        float *buf = j->s->w_buf + (size_t)thread_id * (size_t)j->s->w_buf_floats;
        const int64_t step = hooked_rows(&j->s->opts, j->d_in);
        for (int64_t p0 = c0; p0 < c0 + cols; p0 += step) {
            int64_t n = c0 + cols - p0 < step ? c0 + cols - p0 : step;
            h->weight_rows(h->ctx, j->layer, j->kind, p0, n, j->d_in, buf);
            linear_piece(j, buf, p0, n);
        }
    }
}

/* Output columns per block of a product with d_out columns: a multiple of
 * 64, about two blocks per thread, at least 256. */
static int64_t block_cols(const flx_llama_state *s, int64_t d_out)
{
    int64_t blocks = s->n_threads > 1 ? 2 * (int64_t)s->n_threads : 1;   /* s->pool exists then */
    int64_t per = (d_out + blocks - 1) / blocks;
    per = (per + 63) / 64 * 64;
    return per < 256 ? 256 : per;
}

/* out (n, d_out) = x (n, d_in) W^T with W (d_out, d_in) row-major: the
 * PyTorch Linear.  The output columns are split into blocks (block_cols)
 * and each block is one single-threaded sgemm, so an output element never
 * depends on the thread count.  w NULL: weight (layer, kind) comes from the
 * weight_rows hook, block by block. */
static void linear(flx_llama_state *s, float *out, const float *x, const float *w, int layer,
                   flx_weight_kind kind, int64_t n_tokens, int64_t d_in, int64_t d_out, int64_t ld_out)
{
    int64_t per = block_cols(s, d_out);
    linear_job j = {out, x, w, n_tokens, d_in, ld_out, per, d_out, s, layer, kind};
    flx_pool_for(s->pool, (d_out + per - 1) / per, 1, linear_blocks, &j);
}

typedef struct {
    float       *out;
    const float *x;
    const float *w;
    int64_t      d;
    float        eps;
    int          bf16;
} rmsnorm_job;

/* out = w * x / sqrt(mean(x^2) + eps), one row per token. */
static void rmsnorm_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const rmsnorm_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        const float *x = j->x + t * j->d;
        float *o = j->out + t * j->d;
        double ss = 0.0;
        for (int64_t i = 0; i < j->d; i++) ss += (double)x[i] * (double)x[i];
        float inv = (float)(1.0 / sqrt(ss / (double)j->d + (double)j->eps));
        for (int64_t i = 0; i < j->d; i++) {
            float v = j->w[i] * (x[i] * inv);
            o[i] = j->bf16 ? round_bf16(v) : v;
        }
    }
}

static void rmsnorm(flx_llama_state *s, float *out, const float *x, const float *w, int64_t n)
{
    rmsnorm_job j = {out, x, w, s->model->cfg.d_model, s->model->cfg.rms_eps,
                     s->opts.bf16_activations};
    flx_pool_for(s->pool, n, 16, rmsnorm_rows, &j);
}

typedef struct {
    float       *x;       /* (n, ld) rows to rotate in place */
    int64_t      ld;
    int          n_heads;
    const float *cos;     /* (n, half) */
    const float *sin;
    int          head_dim;
    int          adjacent;
    int          bf16;
} rope_job;

/* Rotates pair (a, b) of every head by the row's angle.  Split-half pairs
 * dim i with i + head_dim/2 (HF rotate_half); adjacent pairs 2i with 2i+1. */
static void rope_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const rope_job *j = ctx;
    int half = j->head_dim / 2;
    for (int64_t t = begin; t < end; t++) {
        const float *cs = j->cos + t * half, *sn = j->sin + t * half;
        for (int h = 0; h < j->n_heads; h++) {
            float *v = j->x + t * j->ld + (int64_t)h * j->head_dim;
            for (int i = 0; i < half; i++) {
                int ia = j->adjacent ? 2 * i : i;
                int ib = j->adjacent ? 2 * i + 1 : i + half;
                float a = v[ia], b = v[ib];
                float ra = a * cs[i] - b * sn[i];
                float rb = a * sn[i] + b * cs[i];
                v[ia] = j->bf16 ? round_bf16(ra) : ra;
                v[ib] = j->bf16 ? round_bf16(rb) : rb;
            }
        }
    }
}

typedef struct {
    float  *scores;   /* (rows, ld) */
    int64_t ld;
    int64_t pos0;     /* absolute position of row 0 */
    int     bf16;
} softmax_job;

/* Causal softmax of one block: row t sees keys 0 .. pos0 + t; the rest is 0. */
static void softmax_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const softmax_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        float *r = j->scores + t * j->ld;
        int64_t n = j->pos0 + t + 1;
        double sum = flx_exp_shift_sum(r, r, n, flx_max_f32(r, n));
        float inv = (float)(1.0 / sum);
        if (j->bf16)
            for (int64_t i = 0; i < n; i++) r[i] = round_bf16(r[i] * inv);
        else
            for (int64_t i = 0; i < n; i++) r[i] *= inv;
        memset(r + n, 0, (size_t)(j->ld - n) * sizeof *r);
    }
}

typedef struct {
    float       *gate;    /* (n, d_ff), becomes silu(gate) * up */
    const float *up;
    int64_t      d_ff;
    int          bf16;
} swiglu_job;

static void swiglu_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const swiglu_job *j = ctx;
    for (int64_t t = begin; t < end; t++) {
        float *g = j->gate + t * j->d_ff;
        const float *u = j->up + t * j->d_ff;
        if (!j->bf16) {
            flx_silu_mul(g, u, j->d_ff);
            continue;
        }
        for (int64_t i = 0; i < j->d_ff; i++) {   /* BF16 mode rounds silu and the product */
            float silu = round_bf16(g[i] / (1.0f + expf(-g[i])));
            g[i] = round_bf16(silu * u[i]);
        }
    }
}

/* x += y, with the sum rounded to BF16 in bf16 mode. */
static void residual_add(float *x, const float *y, size_t n, int bf16)
{
    if (bf16)
        for (size_t i = 0; i < n; i++) x[i] = round_bf16(x[i] + round_bf16(y[i]));
    else
        for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static int call_linear_hook(flx_llama_state *s, int layer, flx_linear_kind kind, float *x,
                            int64_t n, int64_t n_in, flx_error *err)
{
    const flx_llama_hooks *h = s->opts.hooks;
    if (!h || !h->linear_input) return FLX_OK;
    int rc = h->linear_input(h->ctx, layer, kind, x, n, n_in, err);
    if (rc != FLX_OK && err && err->code == FLX_OK)
        flx_fail(err, rc, "layer %d: %s input hook failed", layer, flx_linear_kind_name(kind));
    return rc;
}

/* The residual hook at the input of layer *l; *l becomes the layer the
 * forward continues from. */
static int call_residual_hook(flx_llama_state *s, int *l, int64_t n, flx_error *err)
{
    const flx_llama_hooks *h = s->opts.hooks;
    if (!h || !h->residual) return FLX_OK;
    const int n_layers = s->model->cfg.n_layers;
    int next = *l;
    int rc = h->residual(h->ctx, *l, s->x, n, s->n_past, &next, err);
    if (rc != FLX_OK) {
        if (err && err->code == FLX_OK) flx_fail(err, rc, "layer %d: residual hook failed", *l);
        return rc;
    }
    if (next < *l || next > n_layers)
        return flx_fail(err, FLX_EINVAL, "layer %d: residual hook resumes at layer %d (expected %d..%d)", *l,
                        next, *l, n_layers);
    *l = next;
    return FLX_OK;
}

/* ---------------------------------------------------------------- attention */

/* Causal GQA attention of this call's n tokens against the cache rows
 * 0 .. n_past + n - 1, in blocks of query rows.  The query heads that share
 * a K/V head are stacked into one matrix (group x rows, head_dim), so K and
 * V are packed once per block: scores = Q K^T / sqrt(hd) (sgemm), causal
 * softmax, out = P V (sgemm), then the rows go back to their heads.  K/V
 * heads are spread over the pool; each thread has its own buffers. */
typedef struct {
    flx_llama_state *s;
    int              layer;
    int64_t          n;
} attention_job;

static void attention_groups(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    const attention_job *j = ctx;
    flx_llama_state *s = j->s;
    const flx_llama_config *c = &s->model->cfg;
    const int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    const int64_t q_dim = (int64_t)c->n_heads * hd, kv_dim = (int64_t)c->n_kv_heads * hd;
    const float *kc = s->k_cache + (size_t)j->layer * s->opts.max_ctx * kv_dim;
    const float *vc = s->v_cache + (size_t)j->layer * s->opts.max_ctx * kv_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = s->scores + (size_t)thread_id * group * s->att_rows * s->opts.max_ctx;
    float *qo = s->qo + (size_t)thread_id * group * s->att_rows * hd;   /* (group, rows, hd) */
    for (int64_t g = begin; g < end; g++) {
        for (int64_t r0 = 0; r0 < j->n; r0 += s->att_rows) {
            int64_t rows = j->n - r0 < s->att_rows ? j->n - r0 : s->att_rows;
            int64_t n_keys = s->n_past + r0 + rows;   /* keys the block's last row sees */
            int64_t m = group * rows;
            for (int64_t i = 0; i < group; i++)
                for (int64_t t = 0; t < rows; t++)
                    memcpy(qo + (i * rows + t) * hd, s->q + (r0 + t) * q_dim + (g * group + i) * hd,
                           (size_t)hd * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n_keys, (int)hd, scale,
                        qo, (int)hd, kc + g * hd, (int)kv_dim, 0.0f, scores, (int)n_keys);
            for (int64_t i = 0; i < group; i++) {
                softmax_job sj = {scores + i * rows * n_keys, n_keys, s->n_past + r0,
                                  s->opts.bf16_activations};
                softmax_rows(&sj, 0, rows, thread_id);
            }
            if (s->opts.hooks && s->opts.hooks->probs)
                s->opts.hooks->probs(s->opts.hooks->ctx, j->layer, scores, m, n_keys);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)hd, (int)n_keys, 1.0f,
                        scores, (int)n_keys, vc + g * hd, (int)kv_dim, 0.0f, qo, (int)hd);
            for (int64_t i = 0; i < group; i++)
                for (int64_t t = 0; t < rows; t++)
                    memcpy(s->attn + (r0 + t) * q_dim + (g * group + i) * hd, qo + (i * rows + t) * hd,
                           (size_t)hd * sizeof(float));
        }
    }
}

static void attention(flx_llama_state *s, int layer, int64_t n)
{
    const flx_llama_config *c = &s->model->cfg;
    attention_job j = {s, layer, n};
    flx_pool_for(s->pool, c->n_kv_heads, 1, attention_groups, &j);
    if (s->opts.bf16_activations) round_bf16_block(s->attn, (size_t)(n * c->n_heads * c->head_dim));
}

/* x += attn Wo^T for rows [0, n) of layer l (the o projection and its
 * residual); the forward's second step of a layer, callable alone. */
int flx_llama_attn_out(flx_llama_state *s, int l, int64_t n, flx_error *err)
{
    const flx_llama_config *c = &s->model->cfg;
    const flx_llama_layer *L = &s->model->w.layers[l];
    const int64_t d = c->d_model, q_dim = (int64_t)c->n_heads * c->head_dim;
    int rc;
    if (l < 0 || l >= c->n_layers || n < 1 || n > s->opts.max_tokens)
        return flx_fail(err, FLX_EINVAL, "attention output: layer %d, %lld rows out of range", l, (long long)n);
    if ((rc = call_linear_hook(s, l, FLX_LINEAR_O, s->attn, n, q_dim, err))) return rc;
    double t0 = flx_now_seconds();
    linear(s, s->proj, s->attn, L->wo, l, FLX_WEIGHT_O, n, q_dim, d, d);
    s->t_linear += flx_now_seconds() - t0;
    residual_add(s->x, s->proj, (size_t)(n * d), s->opts.bf16_activations);
    return FLX_OK;
}

/* x += (silu(xn Wg^T) * (xn Wu^T)) Wd^T with xn = rmsnorm(x), rows [0, n)
 * of layer l: the feed-forward block, callable alone. */
int flx_llama_ffn(flx_llama_state *s, int l, int64_t n, flx_error *err)
{
    const flx_llama_config *c = &s->model->cfg;
    const flx_llama_layer *L = &s->model->w.layers[l];
    const int64_t d = c->d_model;
    const int bf16 = s->opts.bf16_activations;
    int rc;
    if (l < 0 || l >= c->n_layers || n < 1 || n > s->opts.max_tokens)
        return flx_fail(err, FLX_EINVAL, "feed-forward: layer %d, %lld rows out of range", l, (long long)n);
    rmsnorm(s, s->xn, s->x, L->ffn_norm, n);
    if ((rc = call_linear_hook(s, l, FLX_LINEAR_GATE_UP, s->xn, n, d, err))) return rc;
    double t0 = flx_now_seconds();
    linear(s, s->gate, s->xn, L->w_gate, l, FLX_WEIGHT_GATE, n, d, c->d_ff, c->d_ff);
    linear(s, s->up, s->xn, L->w_up, l, FLX_WEIGHT_UP, n, d, c->d_ff, c->d_ff);
    s->t_linear += flx_now_seconds() - t0;
    if (bf16) {
        round_bf16_block(s->gate, (size_t)(n * c->d_ff));
        round_bf16_block(s->up, (size_t)(n * c->d_ff));
    }
    swiglu_job sw = {s->gate, s->up, c->d_ff, bf16};
    flx_pool_for(s->pool, n, 8, swiglu_rows, &sw);
    return flx_llama_ffn_down(s, l, n, err);
}

/* x += gate Wd^T for rows [0, n) of layer l, s->gate holding the SwiGLU
 * product: the end of the feed-forward block, callable alone. */
int flx_llama_ffn_down(flx_llama_state *s, int l, int64_t n, flx_error *err)
{
    const flx_llama_config *c = &s->model->cfg;
    const int64_t d = c->d_model;
    int rc;
    if (l < 0 || l >= c->n_layers || n < 1 || n > s->opts.max_tokens)
        return flx_fail(err, FLX_EINVAL, "down projection: layer %d, %lld rows out of range", l, (long long)n);
    const flx_llama_layer *L = &s->model->w.layers[l];
    if ((rc = call_linear_hook(s, l, FLX_LINEAR_DOWN, s->gate, n, c->d_ff, err))) return rc;
    double t0 = flx_now_seconds();
    linear(s, s->proj, s->gate, L->w_down, l, FLX_WEIGHT_DOWN, n, c->d_ff, d, d);
    s->t_linear += flx_now_seconds() - t0;
    residual_add(s->x, s->proj, (size_t)(n * d), s->opts.bf16_activations);
    return FLX_OK;
}

/* ---------------------------------------------------------------- forward */

static int forward_rows(flx_llama_state *s, const int32_t *tokens, const float *embd, int64_t n,
                        flx_error *err);

int flx_llama_forward(flx_llama_state *s, const int32_t *tokens, int64_t n, flx_error *err)
{
    return forward_rows(s, tokens, NULL, n, err);
}

int flx_llama_forward_embd(flx_llama_state *s, const float *embd, int64_t n, flx_error *err)
{
    return forward_rows(s, NULL, embd, n, err);
}

/* The forward of n rows whose layer-0 input is tok_embd[tokens[t]] or, when
 * tokens is NULL, the caller's rows embd[t] (HMT's memory embeddings). */
static int forward_rows(flx_llama_state *s, const int32_t *tokens, const float *embd, int64_t n,
                        flx_error *err)
{
    double t_start = flx_now_seconds(), t_lin = 0.0, t_att = 0.0, t0;
    const double t_lin_before = s->t_linear;
    const flx_model *m = s->model;
    const flx_llama_config *c = &m->cfg;
    const flx_llama_weights *w = &m->w;
    const int64_t d = c->d_model, hd = c->head_dim, half = hd / 2;
    const int64_t q_dim = (int64_t)c->n_heads * hd, kv_dim = (int64_t)c->n_kv_heads * hd;
    const int bf16 = s->opts.bf16_activations;
    int rc;

    if (n < 1 || n > s->opts.max_tokens)
        return flx_fail(err, FLX_EINVAL, "forward: %lld tokens in one call, the state holds 1..%lld",
                        (long long)n, (long long)s->opts.max_tokens);
    if (s->n_past + n > s->opts.max_ctx)
        return flx_fail(err, FLX_EINVAL,
                        "forward: KV cache full (%lld + %lld positions > capacity %lld)",
                        (long long)s->n_past, (long long)n, (long long)s->opts.max_ctx);
    s->n_rows = 0;

    /* x = tok_embd[token] (or the caller's rows) */
    if (!tokens) memcpy(s->x, embd, (size_t)(n * d) * sizeof(float));
    for (int64_t t = 0; tokens && t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return flx_fail(err, FLX_EINVAL, "forward: token %lld has id %d, outside the vocabulary of %d",
                            (long long)t, tokens[t], c->n_vocab);
        memcpy(s->x + t * d, w->tok_embd + (size_t)tokens[t] * d, (size_t)d * sizeof(float));
    }
    if (bf16) round_bf16_block(s->x, (size_t)(n * d));

    /* cos/sin of this call's positions, angle = pos * inv_freq[i] in double */
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)(s->n_past + t) * w->rope_inv_freq[i];
            s->rope_cos[t * half + i] = (float)cos(angle);
            s->rope_sin[t * half + i] = (float)sin(angle);
        }

    int l = 0;
    if ((rc = call_residual_hook(s, &l, n, err))) return rc;
    while (l < c->n_layers) {
        const flx_llama_layer *L = &w->layers[l];
        float *kc = s->k_cache + ((size_t)l * s->opts.max_ctx + (size_t)s->n_past) * kv_dim;
        float *vc = s->v_cache + ((size_t)l * s->opts.max_ctx + (size_t)s->n_past) * kv_dim;

        /* attention: xn = rmsnorm(x); q, k, v projections */
        rmsnorm(s, s->xn, s->x, L->attn_norm, n);
        if ((rc = call_linear_hook(s, l, FLX_LINEAR_QKV, s->xn, n, d, err))) return rc;
        t0 = flx_now_seconds();
        linear(s, s->q, s->xn, L->wq, l, FLX_WEIGHT_Q, n, d, q_dim, q_dim);
        linear(s, kc, s->xn, L->wk, l, FLX_WEIGHT_K, n, d, kv_dim, kv_dim);
        linear(s, vc, s->xn, L->wv, l, FLX_WEIGHT_V, n, d, kv_dim, kv_dim);
        t_lin += flx_now_seconds() - t0;
        if (bf16) {
            round_bf16_block(s->q, (size_t)(n * q_dim));
            round_bf16_block(kc, (size_t)(n * kv_dim));
            round_bf16_block(vc, (size_t)(n * kv_dim));
        }

        /* RoPE on q and the new k rows */
        int adjacent = c->rope_pairing == FLX_ROPE_ADJACENT;
        rope_job rq = {s->q, q_dim, c->n_heads, s->rope_cos, s->rope_sin, (int)hd, adjacent, bf16};
        rope_job rk = {kc, kv_dim, c->n_kv_heads, s->rope_cos, s->rope_sin, (int)hd, adjacent, bf16};
        flx_pool_for(s->pool, n, 32, rope_rows, &rq);
        flx_pool_for(s->pool, n, 32, rope_rows, &rk);
        if (s->opts.hooks && s->opts.hooks->qkv) {
            rc = s->opts.hooks->qkv(s->opts.hooks->ctx, l, s->q, kc, vc, n, s->n_past, c, err);
            if (rc != FLX_OK) {
                if (err && err->code == FLX_OK) flx_fail(err, rc, "layer %d: q/k/v hook failed", l);
                return rc;
            }
        }

        t0 = flx_now_seconds();
        attention(s, l, n);
        t_att += flx_now_seconds() - t0;

        if ((rc = flx_llama_attn_out(s, l, n, err))) return rc;
        if ((rc = flx_llama_ffn(s, l, n, err))) return rc;
        l++;
        if ((rc = call_residual_hook(s, &l, n, err))) return rc;
    }

    /* h = rmsnorm(x) * out_norm, kept in xn for flx_llama_logits */
    rmsnorm(s, s->xn, s->x, w->out_norm, n);
    if ((rc = call_linear_hook(s, c->n_layers, FLX_LINEAR_HEAD, s->xn, n, d, err))) return rc;
    s->n_past += n;
    s->n_rows = n;
    s->t_linear += t_lin;
    s->t_attention += t_att;
    s->t_other += flx_now_seconds() - t_start - (s->t_linear - t_lin_before) - t_att;
    return FLX_OK;
}

int flx_llama_logits(flx_llama_state *s, int64_t row0, int64_t n_rows, float *out, flx_error *err)
{
    const flx_llama_config *c = &s->model->cfg;
    if (row0 < 0 || n_rows < 1 || row0 + n_rows > s->n_rows)
        return flx_fail(err, FLX_EINVAL, "logits: rows %lld..%lld requested, the last forward has %lld",
                        (long long)row0, (long long)(row0 + n_rows - 1), (long long)s->n_rows);
    double t0 = flx_now_seconds();
    linear(s, out, s->xn + row0 * c->d_model, s->model->w.output, c->n_layers, FLX_WEIGHT_HEAD, n_rows, c->d_model, c->n_vocab,
           c->n_vocab);
    s->t_head += flx_now_seconds() - t0;
    return FLX_OK;
}
