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

static int rot_linear_hook(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                           int64_t n_in, flx_error *err)
{
    const flx_rotation_set *rs = ctx;
    if (kind == FLX_LINEAR_DOWN && rs && rs->r4) flx_rot_r4(rs, x, n_tokens, NULL);
    return FLX_OK;
}

static int rot_qkv_hook(void *ctx, int layer, float *q, float *k, float *v, int64_t n_tokens, int64_t pos0,
                        const flx_llama_config *cfg, flx_error *err)
{
    const flx_rotation_set *rs = ctx;
    if (rs && rs->r3) {
        flx_rot_r3(rs, q, n_tokens * cfg->n_heads, NULL);
        flx_rot_r3(rs, k, n_tokens * cfg->n_kv_heads, NULL);
    }
    return FLX_OK;
}

flx_llama_hooks flx_rot_hooks(const flx_rotation_set *rs)
{
    flx_llama_hooks h = { (void *)rs, rot_linear_hook, rot_qkv_hook, NULL };
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
    flx_llama_hooks h = { &c, scale_linear_hook, scale_qkv_hook, NULL };
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    int rc = init_state(&st, m, cd, n_threads, &h, err);
    for (int64_t w = 0; rc == FLX_OK && w < cd->n_windows; w++) {
        flx_llama_reset(&st);
        rc = flx_llama_forward(&st, cd->ids + w * cd->seqlen, cd->seqlen, err);
    }
    const float q_factor = (float)flx_attn_q_factor(m->cfg.head_dim);
    if (rc == FLX_OK)
        for (int l = 0; l < L; l++) {
            /* the divisions happen in float, as the tables are float; Q's
             * scale carries the attention factor F the hardware folds into
             * the Q quantizer (8 for head_dim 64) */
            q_s[l] = clip * (float)c.q_max[l] / (q_factor * 127.0f);
            k_s[l] = clip * (float)c.k_max[l] / 127.0f;
            v_s[l] = clip * (float)c.v_max[l] / 127.0f;
            a_s[l] = clip * 1.0f / 255.0f;
            if (q_s[l] == 0.0f) q_s[l] = 1.0f;
            if (k_s[l] == 0.0f) k_s[l] = 1.0f;
            if (v_s[l] == 0.0f) v_s[l] = 1.0f;
        }
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

/* State of the calibration forward of one layer. */
typedef struct gptq_pass_ctx {
    const flx_rotation_set *rs;
    int layer;                 /* the model layer being run (sub-model layer 0) */
    flx_hessian *h;            /* [4]: QKV, O, GATE_UP, DOWN; NULL: do not collect */
    const flx_llama_state *st;
    float *resid_out;          /* when not NULL: receives the layer's output rows */
    int stopped;
} gptq_pass_ctx;

#define STOP_STATUS FLX_EINVAL

static int gptq_linear_hook(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                            int64_t n_in, flx_error *err)
{
    gptq_pass_ctx *c = vctx;
    if (kind == FLX_LINEAR_HEAD) {
        /* after the layer: the state's residual stream is its output */
        if (c->resid_out) memcpy(c->resid_out, c->st->x, (size_t)(n_tokens * n_in) * sizeof(float));
        return FLX_OK;
    }
    rot_linear_hook((void *)c->rs, c->layer, kind, x, n_tokens, n_in, err);
    if (!c->h) return FLX_OK;
    for (int64_t i = 0; i < n_tokens * n_in; i++)
        if (!isfinite(x[i]))
            return flx_fail(err, FLX_ENUMERIC, "calibration: layer %d %s input holds NaN or Inf", c->layer,
                            flx_linear_kind_name(kind));
    int rc = flx_hessian_add(&c->h[kind], x, n_tokens, err);
    if (rc) return rc;
    if (kind == FLX_LINEAR_DOWN) {
        c->stopped = 1;   /* the Hessians are complete: skip the rest */
        return STOP_STATUS;
    }
    return FLX_OK;
}

static int gptq_qkv_hook(void *vctx, int layer, float *q, float *k, float *v, int64_t n_tokens, int64_t pos0,
                         const flx_llama_config *cfg, flx_error *err)
{
    gptq_pass_ctx *c = vctx;
    return rot_qkv_hook((void *)c->rs, c->layer, q, k, v, n_tokens, pos0, cfg, err);
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

int flx_gptq_model(flx_model *m, const flx_rotation_set *rs, const flx_calib_data *cd,
                   const flx_gptq_model_opts *opts, flx_gptq_sink sink, void *sink_ctx, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int L = c->n_layers;
    const int32_t d = c->d_model, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, f = c->d_ff;
    int rc;
    /* every check before the long work */
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

    flx_pool *pool = opts->n_threads > 1 ? flx_pool_create(opts->n_threads) : NULL;
    flx_gptq_opts go = opts->gptq;
    go.pool = pool;
    flx_hessian h[4];
    memset(h, 0, sizeof h);
    /* largest weight (q: qd x d, gate/up/down: f x d); groups never outnumber columns */
    const size_t max_elems = (size_t)(qd > f ? qd : f) * (size_t)(d > qd ? d : qd);
    flx_wq_out out = { malloc(max_elems * sizeof(int32_t)), malloc(max_elems * sizeof(float)),
                       malloc(max_elems * sizeof(float)) };
    float *w_hat = malloc(max_elems * sizeof(float));
    /* the residual stream entering the current layer, one row per calibration token */
    float *resid = malloc((size_t)n_rows * (size_t)d * sizeof(float));
    int32_t *pos_ids = malloc((size_t)cd->seqlen * sizeof(int32_t));
    flx_llama_state st;
    memset(&st, 0, sizeof st);
    int have_state = 0;
    flx_progress prog;
    flx_progress_begin(&prog, "gptq", (int64_t)L * (2 * cd->n_windows + FLX_W_COUNT), opts->progress);
    int64_t done_units = 0;
    if (!out.q || !out.scale || !out.zero || !w_hat || !resid || !pos_ids) {
        rc = flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory (%lld calibration tokens x %d floats)",
                      (long long)n_rows, (int)d);
        goto done;
    }
    for (int64_t i = 0; i < n_rows; i++)
        memcpy(resid + i * d, m->w.tok_embd + (size_t)cd->ids[i] * d, (size_t)d * sizeof(float));

    /* A one-layer view of m whose "embedding" is the saved residual stream:
     * token id i of the view is calibration row i, so each layer runs once
     * on its true input instead of re-running every earlier layer. */
    flx_model sub = *m;
    sub.owned = NULL; sub.n_owned = 0; sub.cap_owned = 0;
    sub.maps = NULL; sub.n_maps = 0;
    sub.tok = NULL;
    sub.cfg.n_layers = 1;
    sub.cfg.n_vocab = (int32_t)n_rows;
    sub.cfg.tie_embeddings = 1;
    sub.cfg.bos_id = -1;
    sub.cfg.eos_id = -1;
    sub.w.tok_embd = resid;
    sub.w.output = resid;
    sub.w.layers = m->w.layers;
    gptq_pass_ctx pc = { rs, 0, NULL, &st, NULL, 0 };
    flx_llama_hooks hooks = { &pc, gptq_linear_hook, gptq_qkv_hook, NULL };
    if ((rc = init_state(&st, &sub, cd, opts->n_threads, &hooks, err))) goto done;
    have_state = 1;

    const int32_t widths[4] = { d, qd, d, f };
    for (int l = 0; l < L; l++) {
        sub.w.layers = m->w.layers + l;
        pc.layer = l;
        for (int k = 0; k < 4; k++) {
            if ((rc = flx_hessian_init(&h[k], widths[k], err))) goto done;
            h[k].pool = pool;
        }
        /* 1. Hessians of the layer's four inputs */
        pc.h = h;
        pc.resid_out = NULL;
        for (int64_t w = 0; w < cd->n_windows; w++) {
            for (int64_t t = 0; t < cd->seqlen; t++) pos_ids[t] = (int32_t)(w * cd->seqlen + t);
            flx_llama_reset(&st);
            pc.stopped = 0;
            rc = flx_llama_forward(&st, pos_ids, cd->seqlen, err);
            if (rc != FLX_OK && pc.stopped) {
                rc = FLX_OK;
                if (err) { err->code = FLX_OK; err->msg[0] = 0; }
            }
            if (rc) goto done;
            flx_progress_update(&prog, ++done_units);
        }
        /* 2. GPTQ of the seven linears; the dequantized weights replace the float ones */
        flx_llama_layer *Ly = &m->w.layers[l];
        struct { const float **slot; int32_t n_out, n_in, kind; } lin[FLX_W_COUNT] = {
            { &Ly->wq, qd, d, 0 }, { &Ly->wk, kvd, d, 0 }, { &Ly->wv, kvd, d, 0 }, { &Ly->wo, d, qd, 1 },
            { &Ly->w_gate, f, d, 2 }, { &Ly->w_up, f, d, 2 }, { &Ly->w_down, d, f, 3 } };
        for (int k = 0; k < FLX_W_COUNT; k++) {
            size_t n = (size_t)lin[k].n_out * lin[k].n_in;
            rc = flx_gptq(*lin[k].slot, lin[k].n_out, lin[k].n_in, &h[lin[k].kind], &opts->wq, &go, &out, w_hat,
                          NULL, err);
            if (rc) {
                char msg[FLX_ERROR_MSG_BYTES];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                flx_fail(err, rc, "layer %d %s: %s", l, flx_linear_id_name((flx_linear_id)k), msg);
                goto done;
            }
            if (sink && (rc = sink(sink_ctx, l, (flx_linear_id)k, lin[k].n_out, lin[k].n_in, &out, w_hat, err)))
                goto done;
            float *dst = owned_buffer(m, *lin[k].slot);
            if (!dst) {
                if (!(dst = flx_model_alloc(m, n * sizeof(float)))) {
                    rc = flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory");
                    goto done;
                }
                *lin[k].slot = dst;
            }
            memcpy(dst, w_hat, n * sizeof(float));
            flx_progress_update(&prog, ++done_units);
        }
        for (int k = 0; k < 4; k++) flx_hessian_free(&h[k]);
        /* 3. the quantized layer's outputs are the next layer's inputs (GPTQ's
         *    sequential order); written in place, window by window */
        pc.h = NULL;
        for (int64_t w = 0; w < cd->n_windows; w++) {
            if (l + 1 < L) {
                for (int64_t t = 0; t < cd->seqlen; t++) pos_ids[t] = (int32_t)(w * cd->seqlen + t);
                pc.resid_out = resid + (size_t)w * cd->seqlen * d;
                flx_llama_reset(&st);
                if ((rc = flx_llama_forward(&st, pos_ids, cd->seqlen, err))) goto done;
            }
            flx_progress_update(&prog, ++done_units);
        }
    }
done:
    flx_progress_end(&prog);
    for (int k = 0; k < 4; k++) flx_hessian_free(&h[k]);
    if (have_state) flx_llama_free(&st);
    free(out.q); free(out.scale); free(out.zero);
    free(w_hat);
    free(resid);
    free(pos_ids);
    flx_pool_free(pool);
    return rc;
}
