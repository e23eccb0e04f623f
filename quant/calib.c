/* calib.c -- calibration windows, FlexLLM static attention scales and
 * whole-model sequential GPTQ, all through the float reference forward
 * with hooks that apply the online rotations and gather statistics. */
#include "flx_calib.h"
#include "flx_qmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- windows */

void flx_calib_free(flx_calib_data *cd)
{
    if (!cd) return;
    free(cd->ids);
    memset(cd, 0, sizeof *cd);
}

int flx_calib_from_ids(flx_calib_data *cd, const int32_t *ids, int64_t n_ids, int64_t n_windows,
                       int64_t seqlen, uint64_t seed, const char *what, flx_error *err)
{
    memset(cd, 0, sizeof *cd);
    if (n_windows < 1 || seqlen < 2 || seqlen > (1 << 20) || n_windows > (1 << 20))
        return flx_fail(err, FLX_EINVAL, "%s: calibration needs >= 1 sample of >= 2 tokens (got %lld x %lld)",
                        what, (long long)n_windows, (long long)seqlen);
    if (n_ids < seqlen)
        return flx_fail(err, FLX_EINVAL,
                        "%s: the calibration text has %lld tokens, shorter than one sample of %lld tokens",
                        what, (long long)n_ids, (long long)seqlen);
    size_t n;
    if (flx_size_mul((size_t)n_windows, (size_t)seqlen, &n))
        return flx_fail(err, FLX_EINVAL, "%s: calibration size overflows", what);
    cd->ids = malloc(n * sizeof *cd->ids);
    if (!cd->ids) return flx_fail(err, FLX_ENOMEM, "%s: out of memory for %zu calibration tokens", what, n);
    cd->n_windows = n_windows;
    cd->seqlen = seqlen;
    if (n_ids >= n_windows * seqlen) {
        memcpy(cd->ids, ids, n * sizeof *cd->ids);
    } else {
        flx_rng rng;
        flx_rng_seed(&rng, seed);
        for (int64_t w = 0; w < n_windows; w++) {
            int64_t start = (int64_t)(flx_rng_uniform(&rng) * (double)(n_ids - seqlen + 1));
            if (start > n_ids - seqlen) start = n_ids - seqlen;
            memcpy(cd->ids + w * seqlen, ids + start, (size_t)seqlen * sizeof *ids);
        }
    }
    return FLX_OK;
}

int flx_calib_from_text(flx_calib_data *cd, const flx_model *m, const char *path, int64_t n_windows,
                        int64_t seqlen, uint64_t seed, flx_error *err)
{
    memset(cd, 0, sizeof *cd);
    if (!m->tok)
        return flx_fail(err, FLX_EINVAL, "%s: the model %s carries no tokenizer to read calibration text",
                        path, m->path ? m->path : "");
    char *text = NULL;
    size_t bytes = 0;
    int rc = flx_read_file(path, (size_t)1 << 30, &text, &bytes, err);
    if (rc) return rc;
    char hex[65];
    flx_sha256_hex(text, bytes, hex);
    if (strcmp(hex, FLX_WIKITEXT2_TEST_SHA256) == 0) {
        free(text);
        return flx_fail(err, FLX_EINVAL,
                        "%s is the WikiText-2 test split, the evaluation data: calibrate on other text", path);
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = flx_tokenizer_encode(m->tok, text, bytes, 0, 0, &ids, &n_ids, err);
    free(text);
    if (rc) return rc;
    rc = flx_calib_from_ids(cd, ids, (int64_t)n_ids, n_windows, seqlen, seed, path, err);
    free(ids);
    return rc;
}

/* ---------------------------------------------------------------- online rotation hooks */

void flx_rot_online_input(const flx_rotation_set *rs, flx_linear_kind kind, float *x, int64_t n_tokens,
                          flx_pool *pool)
{
    if (kind == FLX_LINEAR_DOWN && rs && rs->r4) flx_rot_r4(rs, x, n_tokens, pool);
}

void flx_rot_online_qk(const flx_rotation_set *rs, float *q, float *k, int64_t n_tokens, const flx_llama_config *cfg,
                       flx_pool *pool)
{
    if (rs && rs->r3) {
        flx_rot_r3(rs, q, n_tokens * cfg->n_heads, pool);
        flx_rot_r3(rs, k, n_tokens * cfg->n_kv_heads, pool);
    }
}

static int rot_linear_hook(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                           int64_t n_in, flx_error *err)
{
    flx_rot_online_input(ctx, kind, x, n_tokens, NULL);
    return FLX_OK;
}

static int rot_qkv_hook(void *ctx, int layer, float *q, float *k, float *v, int64_t n_tokens, int64_t pos0,
                        const flx_llama_config *cfg, flx_error *err)
{
    flx_rot_online_qk(ctx, q, k, n_tokens, cfg, NULL);
    return FLX_OK;
}

flx_llama_hooks flx_rot_hooks(const flx_rotation_set *rs)
{
    flx_llama_hooks h = { .ctx = (void *)rs, .linear_input = rot_linear_hook, .qkv = rot_qkv_hook };
    return h;
}

/* ---------------------------------------------------------------- static attention scales */

typedef struct scale_ctx {
    const flx_rotation_set *rs;
    double *q_max, *k_max, *v_max;   /* [n_layers] */
} scale_ctx;

static float absmax(const float *x, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m || a != a) m = a;
    }
    return m;
}

static int scale_linear_hook(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                             int64_t n_in, flx_error *err)
{
    scale_ctx *c = vctx;
    return rot_linear_hook((void *)c->rs, layer, kind, x, n_tokens, n_in, err);
}

static int scale_qkv_hook(void *vctx, int layer, float *q, float *k, float *v, int64_t n_tokens, int64_t pos0,
                          const flx_llama_config *cfg, flx_error *err)
{
    scale_ctx *c = vctx;
    rot_qkv_hook((void *)c->rs, layer, q, k, v, n_tokens, pos0, cfg, err);
    const int64_t qn = n_tokens * cfg->n_heads * cfg->head_dim, kn = n_tokens * cfg->n_kv_heads * cfg->head_dim;
    float mq = absmax(q, qn), mk = absmax(k, kn), mv = absmax(v, kn);
    if (!isfinite(mq) || !isfinite(mk) || !isfinite(mv))
        return flx_fail(err, FLX_ENUMERIC, "calibration: layer %d: q/k/v hold NaN or Inf", layer);
    if (mq > c->q_max[layer]) c->q_max[layer] = mq;
    if (mk > c->k_max[layer]) c->k_max[layer] = mk;
    if (mv > c->v_max[layer]) c->v_max[layer] = mv;
    return FLX_OK;
}

static int init_state(flx_llama_state *st, const flx_model *m, const flx_calib_data *cd, int n_threads,
                      const flx_llama_hooks *hooks, flx_error *err)
{
    flx_llama_opts o;
    memset(&o, 0, sizeof o);
    o.n_threads = n_threads > 0 ? n_threads : 1;
    o.max_tokens = cd->seqlen;
    o.max_ctx = cd->seqlen;
    o.head_rows = 1;
    o.hooks = hooks;
    return flx_llama_init(st, m, &o, err);
}

void flx_calib_scales_from_max(double q_max, double k_max, double v_max, float clip, int32_t head_dim,
                               float *q_s, float *k_s, float *v_s, float *a_s)
{
    /* the divisions happen in float, as the tables are float; Q's scale
     * carries the attention factor F the hardware folds into the Q
     * quantizer (8 for head_dim 64) */
    const float q_factor = (float)flx_attn_q_factor(head_dim);
    *q_s = clip * (float)q_max / (q_factor * 127.0f);
    *k_s = clip * (float)k_max / 127.0f;
    *v_s = clip * (float)v_max / 127.0f;
    *a_s = clip * 1.0f / 255.0f;
    if (*q_s == 0.0f) *q_s = 1.0f;
    if (*k_s == 0.0f) *k_s = 1.0f;
    if (*v_s == 0.0f) *v_s = 1.0f;
}

int flx_calib_attn_scales(const flx_model *m, const flx_rotation_set *rs, const flx_calib_data *cd,
                          float clip, int n_threads, float *q_s, float *k_s, float *v_s, float *a_s,
                          flx_error *err)
{
    if (!(clip > 0.0f && clip <= 1.0f))
        return flx_fail(err, FLX_EINVAL, "calibration: clip ratio %g not in (0, 1]", (double)clip);
    if (!cd->ids || cd->n_windows < 1) return flx_fail(err, FLX_EINVAL, "calibration: no windows");
    const int L = m->cfg.n_layers;
    scale_ctx c = { rs, calloc((size_t)L, sizeof(double)), calloc((size_t)L, sizeof(double)),
                    calloc((size_t)L, sizeof(double)) };
    if (!c.q_max || !c.k_max || !c.v_max) {
        free(c.q_max); free(c.k_max); free(c.v_max);
        return flx_fail(err, FLX_ENOMEM, "calibration: out of memory");
    }
    flx_llama_hooks h = { .ctx = &c, .linear_input = scale_linear_hook, .qkv = scale_qkv_hook };
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    int rc = init_state(&st, m, cd, n_threads, &h, err);
    for (int64_t w = 0; rc == FLX_OK && w < cd->n_windows; w++) {
        flx_llama_reset(&st);
        rc = flx_llama_forward(&st, cd->ids + w * cd->seqlen, cd->seqlen, err);
    }
    if (rc == FLX_OK)
        for (int l = 0; l < L; l++)
            flx_calib_scales_from_max(c.q_max[l], c.k_max[l], c.v_max[l], clip, m->cfg.head_dim, &q_s[l],
                                      &k_s[l], &v_s[l], &a_s[l]);
    if (st.model) flx_llama_free(&st);
    free(c.q_max); free(c.k_max); free(c.v_max);
    return rc;
}

/* ---------------------------------------------------------------- sequential GPTQ */

const char *flx_linear_id_name(flx_linear_id id)
{
    static const char *names[] = { "wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down" };
    return (unsigned)id < FLX_W_COUNT ? names[id] : "?";
}

flx_gptq_model_opts flx_gptq_model_opts_default(void)
{
    flx_gptq_model_opts o;
    memset(&o, 0, sizeof o);
    o.wq = flx_wquant_int4_channel();
    o.gptq = flx_gptq_opts_default();
    return o;
}

/* State of the calibration passes over one layer. */
typedef struct gptq_pass_ctx {
    const flx_rotation_set *rs;
    int layer;                 /* the model layer being run (sub-model layer 0) */
    int collect;               /* flx_linear_kind whose input is gathered, then the
                                  pass stops; -1: run through, gather nothing */
    flx_hessian *h;            /* the Hessian of that input                      */
    float *save;               /* when not NULL: receives that input's rows too  */
    double *qkv_max;           /* when not NULL: [3] running max |q|, |k|, |v|   */
    flx_pool *pool;            /* for the online rotations                       */
    int stopped;
} gptq_pass_ctx;

#define STOP_STATUS FLX_EINVAL

static int gptq_linear_hook(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                            int64_t n_in, flx_error *err)
{
    gptq_pass_ctx *c = vctx;
    if (kind == FLX_LINEAR_HEAD) return FLX_OK;
    /* kept before the online rotation, so a later pass can replay the rest
     * of the forward from it (hook included) */
    if ((int)kind == c->collect && c->save) memcpy(c->save, x, (size_t)(n_tokens * n_in) * sizeof(float));
    flx_rot_online_input(c->rs, kind, x, n_tokens, c->pool);
    if ((int)kind != c->collect) return FLX_OK;
    for (int64_t i = 0; i < n_tokens * n_in; i++)
        if (!isfinite(x[i]))
            return flx_fail(err, FLX_ENUMERIC, "calibration: layer %d %s input holds NaN or Inf", c->layer,
                            flx_linear_kind_name(kind));
    int rc = flx_hessian_add(c->h, x, n_tokens, err);
    if (rc) return rc;
    c->stopped = 1;   /* what this pass is for is done: skip the rest */
    return STOP_STATUS;
}

static int gptq_qkv_hook(void *vctx, int layer, float *q, float *k, float *v, int64_t n_tokens, int64_t pos0,
                         const flx_llama_config *cfg, flx_error *err)
{
    gptq_pass_ctx *c = vctx;
    flx_rot_online_qk(c->rs, q, k, n_tokens, cfg, c->pool);
    if (!c->qkv_max) return FLX_OK;
    const int64_t qn = n_tokens * cfg->n_heads * cfg->head_dim, kn = n_tokens * cfg->n_kv_heads * cfg->head_dim;
    const float mx[3] = { absmax(q, qn), absmax(k, kn), absmax(v, kn) };
    for (int i = 0; i < 3; i++) {
        if (!isfinite(mx[i]))
            return flx_fail(err, FLX_ENUMERIC, "calibration: layer %d: q/k/v hold NaN or Inf", c->layer);
        if (mx[i] > c->qkv_max[i]) c->qkv_max[i] = mx[i];
    }
    return FLX_OK;
}

/* A pass stopped by the hook on purpose is a success. */
static int pass_status(gptq_pass_ctx *pc, int rc, flx_error *err)
{
    if (rc != FLX_OK && pc->stopped) {
        pc->stopped = 0;
        if (err) { err->code = FLX_OK; err->msg[0] = 0; }
        return FLX_OK;
    }
    return rc;
}

/* p itself when the model owns exactly that buffer (write in place, no
 * second copy of a 1B model), else NULL. */
static float *owned_buffer(flx_model *m, const float *p)
{
    if (p == m->w.tok_embd || p == m->w.output) return NULL;
    for (size_t i = 0; i < m->n_owned; i++)
        if (m->owned[i] == (const void *)p) return (float *)(void *)m->owned[i];
    return NULL;
}

/* GPTQ of linear k of layer l with Hessian h; the dequantized weight
 * replaces the float one (in place when the model owns the buffer). */
typedef struct gptq_job {
    flx_model *m;
    const flx_gptq_model_opts *opts;
    flx_gptq_opts go;
    flx_wq_out out;
    float *w_hat;
    flx_gptq_sink sink;
    void *sink_ctx;
} gptq_job;

/* The weight pointer of linear k of layer l and its shape (n_out, n_in). */
static const float **linear_slot(flx_model *m, int l, flx_linear_id k, int32_t *n_out, int32_t *n_in)
{
    const flx_llama_config *c = &m->cfg;
    const int32_t d = c->d_model, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, f = c->d_ff;
    flx_llama_layer *Ly = &m->w.layers[l];
    struct { const float **slot; int32_t n_out, n_in; } lin[FLX_W_COUNT] = {
        { &Ly->wq, qd, d }, { &Ly->wk, kvd, d }, { &Ly->wv, kvd, d }, { &Ly->wo, d, qd },
        { &Ly->w_gate, f, d }, { &Ly->w_up, f, d }, { &Ly->w_down, d, f } };
    *n_out = lin[k].n_out;
    *n_in = lin[k].n_in;
    return lin[k].slot;
}

static int quantize_linear(gptq_job *j, int l, flx_linear_id k, const flx_hessian *h, flx_error *err)
{
    int32_t n_out, n_in;
    const float **slot = linear_slot(j->m, l, k, &n_out, &n_in);
    const size_t n = (size_t)n_out * n_in;
    flx_wquant wq = j->opts->wq;   /* mixed precision: this linear's bits */
    if (j->opts->w_bits_of && j->opts->w_bits_of[l * FLX_W_COUNT + k] > 0)
        wq.bits = j->opts->w_bits_of[l * FLX_W_COUNT + k];
    int rc = flx_gptq(*slot, n_out, n_in, h, &wq, &j->go, &j->out, j->w_hat, NULL, err);
    if (rc) {
        char msg[FLX_ERROR_MSG_BYTES];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return flx_fail(err, rc, "layer %d %s: %s", l, flx_linear_id_name(k), msg);
    }
    if (j->sink && (rc = j->sink(j->sink_ctx, l, k, n_out, n_in, &j->out, j->w_hat, err))) return rc;
    float *dst = owned_buffer(j->m, *slot);
    if (!dst) {
        if (!(dst = flx_model_alloc(j->m, n * sizeof(float))))
            return flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory");
        *slot = dst;
    }
    memcpy(dst, j->w_hat, n * sizeof(float));
    return FLX_OK;
}

/* One calibration window w of T tokens through the one-layer view, up to
 * where the hook stops it. */
static int run_window(flx_llama_state *st, gptq_pass_ctx *pc, int32_t *pos_ids, int64_t w, int64_t T,
                      flx_error *err)
{
    for (int64_t t = 0; t < T; t++) pos_ids[t] = (int32_t)(w * T + t);
    flx_llama_reset(st);
    return pass_status(pc, flx_llama_forward(st, pos_ids, T, err), err);
}

/* Everything the per-layer steps of flx_gptq_model share. */
typedef struct gptq_run {
    flx_model *m;
    const flx_calib_data *cd;
    const flx_gptq_model_opts *opts;
    int32_t d, qd, f;          /* hidden, attention and feed-forward widths       */
    int64_t n_rows, T;         /* calibration rows; tokens per window             */
    flx_pool *pool;
    gptq_job job;
    flx_hessian h;
    gptq_pass_ctx pc;
    flx_llama_state st;        /* the one-layer view's forward state              */
    /* the residual stream entering the current layer (after its attention
     * half once that is quantized), one row per calibration token */
    float *resid;
    float *attn;               /* attention output of every token while o is done */
    float *ffn_keep;           /* SwiGLU products kept from step 4 for step 5     */
    size_t released_bytes;     /* float weights freed by release_layers so far    */
    int32_t *pos_ids;          /* [T]                                             */
    flx_progress prog;
    int64_t done_units;
} gptq_run;

static void gptq_tick(gptq_run *r) { flx_progress_update(&r->prog, ++r->done_units); }

/* A fresh Hessian of width n for the group whose input kind is `collect`. */
static int gptq_begin_group(gptq_run *r, int32_t n, int collect, flx_error *err)
{
    int rc = flx_hessian_init(&r->h, n, err);
    if (rc) return rc;
    r->h.pool = r->pool;
    r->pc.collect = collect;
    return FLX_OK;
}

/* GPTQ of linears first..last of layer l from the group's Hessian. */
static int gptq_quantize_group(gptq_run *r, int l, flx_linear_id first, flx_linear_id last, flx_error *err)
{
    for (int k = (int)first; k <= (int)last; k++) {
        int rc = quantize_linear(&r->job, l, (flx_linear_id)k, &r->h, err);
        if (rc) return rc;
        gptq_tick(r);
    }
    flx_hessian_free(&r->h);
    return FLX_OK;
}

/* 1. {q, k, v}: Hessian of the normed input, from the windows' rows. */
static int gptq_step_qkv(gptq_run *r, int l, flx_error *err)
{
    int rc = gptq_begin_group(r, r->d, FLX_LINEAR_QKV, err);
    if (rc) return rc;
    r->pc.save = NULL;
    for (int64_t w = 0; w < r->cd->n_windows; w++) {
        if ((rc = run_window(&r->st, &r->pc, r->pos_ids, w, r->T, err))) return rc;
        gptq_tick(r);
    }
    return gptq_quantize_group(r, l, FLX_W_Q, FLX_W_V, err);
}

/* 2. {o}: attention with the quantized q/k/v; its output is kept (and the
 *    static q/k/v maxima taken on the way when asked for). */
static int gptq_step_o(gptq_run *r, int l, flx_error *err)
{
    const int64_t T = r->T, qd = r->qd;
    if (!(r->attn = malloc((size_t)r->n_rows * (size_t)qd * sizeof(float))))
        return flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory for %lld attention rows", (long long)r->n_rows);
    int rc = gptq_begin_group(r, r->qd, FLX_LINEAR_O, err);
    if (rc) return rc;
    if (r->opts->qkv_max) {
        r->pc.qkv_max = r->opts->qkv_max + 3 * (size_t)l;
        r->pc.qkv_max[0] = r->pc.qkv_max[1] = r->pc.qkv_max[2] = 0.0;
    }
    for (int64_t w = 0; w < r->cd->n_windows; w++) {
        r->pc.save = r->attn + (size_t)w * T * qd;
        if ((rc = run_window(&r->st, &r->pc, r->pos_ids, w, T, err))) return rc;
        gptq_tick(r);
    }
    r->pc.save = NULL;
    r->pc.qkv_max = NULL;
    return gptq_quantize_group(r, l, FLX_W_O, FLX_W_O, err);
}

/* 3. {gate, up}: x += o(attn) with the quantized o (the residual stream
 *    moves past the attention half), then the normed input. */
static int gptq_step_gate_up(gptq_run *r, int l, flx_error *err)
{
    const int64_t T = r->T, d = r->d, qd = r->qd;
    int rc = gptq_begin_group(r, r->d, FLX_LINEAR_GATE_UP, err);
    if (rc) return rc;
    for (int64_t w = 0; w < r->cd->n_windows; w++) {
        float *rw = r->resid + (size_t)w * T * d;
        memcpy(r->st.x, rw, (size_t)(T * d) * sizeof(float));
        memcpy(r->st.attn, r->attn + (size_t)w * T * qd, (size_t)(T * qd) * sizeof(float));
        if ((rc = flx_llama_attn_out(&r->st, 0, T, err))) return rc;
        memcpy(rw, r->st.x, (size_t)(T * d) * sizeof(float));
        if ((rc = pass_status(&r->pc, flx_llama_ffn(&r->st, 0, T, err), err))) return rc;
        gptq_tick(r);
    }
    free(r->attn);
    r->attn = NULL;
    return gptq_quantize_group(r, l, FLX_W_GATE, FLX_W_UP, err);
}

/* 4. {down}: the SwiGLU product of the quantized gate/up (after R4).  The
 *    products of the first *n_keep windows are kept (before R4) for step 5,
 *    as far as the memory budget allows; the rest are recomputed there.
 *    Either way the values are the same. */
static int gptq_step_down(gptq_run *r, int l, int64_t *n_keep, flx_error *err)
{
    const int64_t T = r->T, d = r->d, f = r->f;
    const size_t win_bytes = (size_t)T * f * sizeof(float);
    size_t budget = r->opts->keep_bytes + r->released_bytes / 4 * 3;
    int64_t keep = l + 1 < r->m->cfg.n_layers ? (int64_t)(budget / win_bytes) : 0;
    if (keep > r->cd->n_windows) keep = r->cd->n_windows;
    if (keep > 0 && !(r->ffn_keep = malloc((size_t)keep * win_bytes))) keep = 0;   /* recompute all */
    *n_keep = keep;
    int rc = gptq_begin_group(r, r->f, FLX_LINEAR_DOWN, err);
    if (rc) return rc;
    for (int64_t w = 0; w < r->cd->n_windows; w++) {
        r->pc.save = w < keep ? r->ffn_keep + (size_t)w * T * f : NULL;
        memcpy(r->st.x, r->resid + (size_t)w * T * d, (size_t)(T * d) * sizeof(float));
        if ((rc = pass_status(&r->pc, flx_llama_ffn(&r->st, 0, T, err), err))) return rc;
        gptq_tick(r);
    }
    r->pc.save = NULL;
    return gptq_quantize_group(r, l, FLX_W_DOWN, FLX_W_DOWN, err);
}

/* 5. the quantized feed-forward half completes the next layer's input. */
static int gptq_step_next_input(gptq_run *r, int l, int64_t n_keep, flx_error *err)
{
    const int64_t T = r->T, d = r->d, f = r->f;
    r->pc.collect = -1;
    for (int64_t w = 0; w < r->cd->n_windows; w++) {
        if (l + 1 < r->m->cfg.n_layers) {
            float *rw = r->resid + (size_t)w * T * d;
            memcpy(r->st.x, rw, (size_t)(T * d) * sizeof(float));
            int rc;
            if (w < n_keep) {
                memcpy(r->st.gate, r->ffn_keep + (size_t)w * T * f, (size_t)T * f * sizeof(float));
                rc = flx_llama_ffn_down(&r->st, 0, T, err);
            } else {
                rc = flx_llama_ffn(&r->st, 0, T, err);
            }
            if (rc) return rc;
            memcpy(rw, r->st.x, (size_t)(T * d) * sizeof(float));
        }
        gptq_tick(r);
    }
    free(r->ffn_keep);
    r->ffn_keep = NULL;
    return FLX_OK;
}

/* The float weights of a finished layer are not needed again. */
static void gptq_release_layer(gptq_run *r, int l)
{
    for (int k = 0; k < FLX_W_COUNT; k++) {
        int32_t n_out, n_in;
        const float **slot = linear_slot(r->m, l, (flx_linear_id)k, &n_out, &n_in);
        if (flx_model_release(r->m, *slot)) r->released_bytes += (size_t)n_out * n_in * sizeof(float);
        *slot = NULL;
    }
}

/* Every check before the long work. */
static int gptq_check(const flx_model *m, const flx_calib_data *cd, const flx_gptq_model_opts *opts,
                      flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int32_t d = c->d_model, qd = c->n_heads * c->head_dim, f = c->d_ff;
    int rc;
    if (!cd->ids || cd->n_windows < 1) return flx_fail(err, FLX_EINVAL, "GPTQ: no calibration windows");
    if ((rc = flx_wquant_check(&opts->wq, d, "GPTQ: hidden_size inputs (q/k/v/gate/up)", err)) ||
        (rc = flx_wquant_check(&opts->wq, qd, "GPTQ: o_proj inputs", err)) ||
        (rc = flx_wquant_check(&opts->wq, f, "GPTQ: down_proj inputs", err)))
        return rc;
    const int64_t n_rows = cd->n_windows * cd->seqlen;
    if (n_rows > (1 << 24))
        return flx_fail(err, FLX_EINVAL, "GPTQ: %lld calibration tokens exceed the limit of 2^24",
                        (long long)n_rows);
    for (int64_t i = 0; i < n_rows; i++)
        if (cd->ids[i] < 0 || cd->ids[i] >= c->n_vocab)
            return flx_fail(err, FLX_EINVAL, "GPTQ: calibration token %lld has id %d outside the vocabulary",
                            (long long)i, cd->ids[i]);
    return FLX_OK;
}

int flx_gptq_model(flx_model *m, const flx_rotation_set *rs, const flx_calib_data *cd,
                   const flx_gptq_model_opts *opts, flx_gptq_sink sink, void *sink_ctx, flx_error *err)
{
    int rc = gptq_check(m, cd, opts, err);
    if (rc) return rc;
    const flx_llama_config *c = &m->cfg;
    const int L = c->n_layers;
    gptq_run r;
    memset(&r, 0, sizeof r);
    r.m = m; r.cd = cd; r.opts = opts;
    r.d = c->d_model; r.qd = c->n_heads * c->head_dim; r.f = c->d_ff;
    r.n_rows = cd->n_windows * cd->seqlen; r.T = cd->seqlen;
    r.pool = opts->n_threads > 1 ? flx_pool_create(opts->n_threads) : NULL;
    r.job = (gptq_job){ m, opts, opts->gptq, { NULL, NULL, NULL }, NULL, sink, sink_ctx };
    r.job.go.pool = r.pool;
    const int32_t d = r.d, qd = r.qd, f = r.f;
    /* largest weight (q: qd x d, gate/up/down: f x d); groups never outnumber columns */
    const size_t max_elems = (size_t)(qd > f ? qd : f) * (size_t)(d > qd ? d : qd);
    r.job.out.q = malloc(max_elems * sizeof(int32_t));
    r.job.out.scale = malloc(max_elems * sizeof(float));
    r.job.out.zero = malloc(max_elems * sizeof(float));
    r.job.w_hat = malloc(max_elems * sizeof(float));
    r.resid = malloc((size_t)r.n_rows * (size_t)d * sizeof(float));
    r.pos_ids = malloc((size_t)r.T * sizeof(int32_t));
    int have_state = 0;
    /* per layer: 5 passes over the windows and 7 linears */
    flx_progress_begin(&r.prog, "gptq", (int64_t)L * (5 * cd->n_windows + FLX_W_COUNT), opts->progress);
    if (!r.job.out.q || !r.job.out.scale || !r.job.out.zero || !r.job.w_hat || !r.resid || !r.pos_ids) {
        rc = flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory (%lld calibration tokens x %d floats)",
                      (long long)r.n_rows, (int)d);
        goto done;
    }
    for (int64_t i = 0; i < r.n_rows; i++)
        memcpy(r.resid + i * d, m->w.tok_embd + (size_t)cd->ids[i] * d, (size_t)d * sizeof(float));

    /* A one-layer view of m whose "embedding" is the saved residual stream:
     * token id i of the view is calibration row i, so each layer runs on its
     * true input instead of re-running every earlier layer. */
    flx_model sub = *m;
    sub.owned = NULL; sub.n_owned = 0; sub.cap_owned = 0;
    sub.maps = NULL; sub.n_maps = 0;
    sub.tok = NULL;
    sub.cfg.n_layers = 1;
    sub.cfg.n_vocab = (int32_t)r.n_rows;
    sub.cfg.tie_embeddings = 1;
    sub.cfg.bos_id = -1;
    sub.cfg.eos_id = -1;
    sub.w.tok_embd = r.resid;
    sub.w.output = r.resid;
    sub.w.layers = m->w.layers;
    r.pc = (gptq_pass_ctx){ rs, 0, -1, &r.h, NULL, NULL, r.pool, 0 };
    flx_llama_hooks hooks = { .ctx = &r.pc, .linear_input = gptq_linear_hook, .qkv = gptq_qkv_hook };
    if ((rc = init_state(&r.st, &sub, cd, opts->n_threads, &hooks, err))) goto done;
    have_state = 1;

    /* GPTQ's sequential order within a layer, as SpinQuant's and QuaRot's
     * GPTQ run it: the groups {q, k, v}, {o}, {gate, up}, {down} are
     * quantized in turn, each from the Hessian of its input computed with
     * the groups before it already quantized; then the quantized layer's
     * output is the next layer's input.  The reference re-runs the whole
     * layer for each group; here each pass starts where the previous one
     * left its rows (the attention output is kept while o_proj is done),
     * so the attention half runs once and the feed-forward half twice. */
    for (int l = 0; l < L; l++) {
        sub.w.layers = m->w.layers + l;
        r.pc.layer = l;
        int64_t n_keep = 0;
        if ((rc = gptq_step_qkv(&r, l, err)) || (rc = gptq_step_o(&r, l, err)) ||
            (rc = gptq_step_gate_up(&r, l, err)) || (rc = gptq_step_down(&r, l, &n_keep, err)) ||
            (rc = gptq_step_next_input(&r, l, n_keep, err)))
            goto done;
        if (opts->release_layers) gptq_release_layer(&r, l);
    }
done:
    flx_progress_end(&r.prog);
    flx_hessian_free(&r.h);
    if (have_state) flx_llama_free(&r.st);
    free(r.job.out.q); free(r.job.out.scale); free(r.job.out.zero);
    free(r.job.w_hat);
    free(r.resid);
    free(r.attn);
    free(r.ffn_keep);
    free(r.pos_ids);
    flx_pool_free(r.pool);
    return rc;
}
