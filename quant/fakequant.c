/* fakequant.c -- the fake-quant float model of a flx_qmodel: dequantized
 * weights in a flx_model, and flx_llama_hooks that quantize-dequantize the
 * activations where the recipe quantizes them (linear inputs, Q/K/V after
 * RoPE) and apply the online R3/R4 rotations, so the float forward
 * (flx_llama_forward) evaluates a recipe's quality before the bit-exact
 * emulator exists. */
#include "flx_calib.h"
#include "flx_qmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t flx_attn_q_factor(int32_t head_dim)
{
    int32_t f = 1;
    while ((int64_t)(f + 1) * (f + 1) <= head_dim) f++;
    return f;
}

/* per-head groups resolved to head_dim */
static flx_qspec per_head(flx_qspec s, int32_t head_dim)
{
    if (s.gran == FLX_QG_GROUP && s.group_size == 0) s.group_size = head_dim;
    return s;
}

/* dynamic per-token (or per-group-of-a-row) fake quantization of rows
 * [begin, end): rows are independent, so the pool changes no bit */
typedef struct fq_rows_job {
    const flx_qspec *s;
    float *x;
    int64_t n_in;
} fq_rows_job;

static void fq_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const fq_rows_job *j = ctx;
    float *x = j->x + begin * j->n_in;
    flx_fake_quant(j->s, x, end - begin, j->n_in, NULL, x);
}

static int fq_linear_input(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n_tokens,
                           int64_t n_in, flx_error *err)
{
    flx_fakequant *fq = ctx;
    const flx_recipe *r = &fq->recipe;
    (void)err;
    flx_rot_online_input(&fq->rot, kind, x, n_tokens, fq->pool);
    if (kind == FLX_LINEAR_HEAD && !r->quant_head) return FLX_OK;
    /* the recipe's bits, or this input's (mixed precision; 16 = float) */
    const int32_t bits = flx_qmodel_act_bits(fq->qm, r, layer, kind);
    if (bits >= 16) return FLX_OK;
    flx_qspec s = kind == FLX_LINEAR_O ? per_head(r->a_o, fq->qm->cfg.head_dim) : r->a;
    s.bits = bits;
    if (s.gran == FLX_QG_TENSOR) {
        flx_fake_quant(&s, x, n_tokens, n_in, NULL, x);
    } else {
        fq_rows_job j = { &s, x, n_in };   /* dynamic, per token */
        flx_pool_for(fq->pool, n_tokens, 16, fq_rows, &j);
    }
    return FLX_OK;
}

/* FlexLLM's static symmetric INT8 quantizer: clamp(round(x / scale)) */
static void static_int8(float *x, int64_t n, float scale)
{
    flx_qspec s = flx_qspec_make(8, FLX_QS_SYM, FLX_QG_TENSOR, 0);
    flx_qparams p = {scale, 0.0f};
    flx_fake_quant(&s, x, 1, n, &p, x);
}

/* the static INT8 Q/K/V quantizers of tokens [begin, end): elementwise
 * with fixed scales, so the pool changes no bit */
typedef struct static_qkv_job {
    float *q, *k, *v;
    int64_t q_dim, kv_dim;
    float sq, f, k_s, v_s;
    int scale_q;            /* multiply q by f (head_dim not a square) */
} static_qkv_job;

static void static_qkv_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const static_qkv_job *j = ctx;
    const int64_t n = end - begin;
    float *q = j->q + begin * j->q_dim;
    static_int8(q, n * j->q_dim, j->sq);
    if (j->scale_q)
        for (int64_t i = 0; i < n * j->q_dim; i++) q[i] *= j->f;
    static_int8(j->k + begin * j->kv_dim, n * j->kv_dim, j->k_s);
    static_int8(j->v + begin * j->kv_dim, n * j->kv_dim, j->v_s);
}

static int fq_qkv(void *ctx, int layer, float *q, float *k, float *v, int64_t n_tokens,
                  int64_t pos0, const flx_llama_config *cfg, flx_error *err)
{
    flx_fakequant *fq = ctx;
    const flx_recipe *r = &fq->recipe;
    (void)pos0;
    (void)err;
    int64_t q_dim = (int64_t)cfg->n_heads * cfg->head_dim, kv_dim = (int64_t)cfg->n_kv_heads * cfg->head_dim;
    flx_rot_online_qk(&fq->rot, q, k, n_tokens, cfg, fq->pool);
    if (r->static_attn) {
        const flx_qlayer *L = &fq->qm->layers[layer];
        /* FlexLLM folds 1/sqrt_HEAD_DIM into the Q quantizer and computes
         * scores as q8 k8 Q_s K_s, i.e. q.k / F with the integer
         * F = floor(sqrt(head_dim)).  The float forward divides by
         * sqrt(head_dim) itself, so the grid is q^ = q8 * (F * Q_s), times
         * sqrt(head_dim) / F when head_dim is not a perfect square (head_dim
         * 8: F = 2, the hardware's scores are sqrt(2) larger than the float
         * model's; docs/quant.md).  For head_dim 64 the factor is exactly 1
         * and is skipped. */
        const int32_t F = flx_attn_q_factor(cfg->head_dim);
        static_qkv_job j = {q, k, v, q_dim, kv_dim, (float)F * L->q_s,
                            (float)(sqrt((double)cfg->head_dim) / F), L->k_s, L->v_s,
                            F * F != cfg->head_dim};
        flx_pool_for(fq->pool, n_tokens, 16, static_qkv_rows, &j);
    } else if (r->kv_bits < 16) {
        flx_qspec ks = per_head(r->k, cfg->head_dim), vs = per_head(r->v, cfg->head_dim);
        flx_fake_quant(&ks, k, n_tokens, kv_dim, NULL, k);
        flx_fake_quant(&vs, v, n_tokens, kv_dim, NULL, v);
    }
    return FLX_OK;
}

/* FlexLLM's softmax-output quantizer: P is unsigned 8-bit, static per layer,
 * p8 = min(round(p / A_s), 255) (p >= 0, round half away from zero), and
 * P V runs on p8 * A_s. */
static void fq_probs(void *ctx, int layer, float *p, int64_t n_rows, int64_t n_keys)
{
    const flx_fakequant *fq = ctx;
    flx_fake_quant_u8(p, n_rows * n_keys, fq->qm->layers[layer].a_s);
}

/* w^ = s (q - z) per group (s q when symmetric), row by row: rows are
 * independent, so spreading them over a pool changes no bit (and the first
 * touch of the fresh pages, which dominates on a VM, is shared too). */
typedef struct dequant_job {
    const flx_qtensor *t;
    float *w;
} dequant_job;

/* code k of a row of nibbles (a lazy load's 4-bit codes): the low 4 bits
 * of an even k's byte, the high 4 of an odd k's, sign-extended */
static inline float nib_code(const uint8_t *row, int64_t k)
{
    const int v = (row[k >> 1] >> (4 * (k & 1))) & 15;
    return (float)((v ^ 8) - 8);
}

/* rows [o0, o1) of t into w (w[0] = row o0): the one dequantization
 * formula of both the eager and the lean model, on int8 codes or on the
 * file's nibbles (the same codes, so the same floats) */
static void dequant_range(const flx_qtensor *t, int64_t o0, int64_t o1, float *w)
{
    const int32_t gs = t->group_size, n_groups = t->n_in / gs;
    const int64_t rb = ((int64_t)t->n_in + 1) / 2;
    for (int64_t o = o0; o < o1; o++)
        for (int32_t g = 0; g < n_groups; g++) {
            const size_t gi = (size_t)o * n_groups + g, base = (size_t)o * t->n_in + (size_t)g * gs;
            float *wr = w + (base - (size_t)o0 * t->n_in);
            const float sc = t->scale[gi];
            const float z = t->zero ? t->zero[gi] : 0.0f;
            if (!t->q) {
                const uint8_t *row = t->nib + o * rb;
                const int64_t k0 = (int64_t)g * gs;
                if (t->zero)
                    for (int32_t k = 0; k < gs; k++) wr[k] = sc * (nib_code(row, k0 + k) - z);
                else
                    for (int32_t k = 0; k < gs; k++) wr[k] = sc * nib_code(row, k0 + k);
                continue;
            }
            const int8_t *q = t->q + base;
            if (t->zero) {
                for (int32_t k = 0; k < gs; k++) wr[k] = sc * ((float)q[k] - z);
            } else {
                for (int32_t k = 0; k < gs; k++) wr[k] = sc * (float)q[k];
            }
        }
}

static void dequant_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const dequant_job *j = ctx;
    dequant_range(j->t, begin, end, j->w + (size_t)begin * j->t->n_in);
}

/* The lean model's weight_rows hook: the codes of (layer, kind) dequantized
 * on demand into the forward state's buffer. */
static void fq_weight_rows(void *ctx, int layer, flx_weight_kind kind, int64_t row0, int64_t n_rows,
                           int64_t n_in, float *w)
{
    const flx_fakequant *fq = ctx;
    const flx_qmodel *qm = fq->qm;
    const flx_qtensor *t = &qm->head;
    if (kind != FLX_WEIGHT_HEAD) {
        const flx_qlayer *Q = &qm->layers[layer];
        const flx_qtensor *ts[7] = {&Q->wq, &Q->wk, &Q->wv, &Q->wo, &Q->w_gate, &Q->w_up, &Q->w_down};
        t = ts[kind];
    }
    if (flx_qtensor_is_int(t))
        dequant_range(t, row0, row0 + n_rows, w);
    else   /* not reached: float tensors are in the model */
        memcpy(w, t->w + (size_t)row0 * n_in, (size_t)(n_rows * n_in) * sizeof *w);
}

/* the dequantized weights, or a copy of the float ones; lean: NULL for
 * quantized tensors (fq_weight_rows supplies them), the float ones in place */
static const float *dequant(flx_model *m, const flx_qtensor *t, flx_pool *pool, int lean, int *oom)
{
    if (lean) return flx_qtensor_is_int(t) ? NULL : t->w;
    size_t n = (size_t)t->n_out * t->n_in;
    float *w = flx_model_alloc(m, n * sizeof *w);
    if (!w) {
        *oom = 1;
        return NULL;
    }
    if (!flx_qtensor_is_int(t)) {
        memcpy(w, t->w, n * sizeof *w);
        return w;
    }
    dequant_job j = { t, w };
    flx_pool_for(pool, t->n_out, 16, dequant_rows, &j);
    return w;
}

static int build(flx_fakequant *fq, const flx_qmodel *qm, flx_pool *pool, int lean, flx_error *err)
{
    memset(fq, 0, sizeof *fq);
    int rc = flx_recipe_parse(&fq->recipe, qm->recipe, err);
    if (rc) return rc;
    const flx_llama_config *c = &qm->cfg;
    fq->qm = qm;
    flx_model *m = &fq->model;
    m->cfg = *c;
    m->cfg.tie_embeddings = 0;
    m->path = strdup("flxq");
    snprintf(m->format, sizeof m->format, "flxq");
    m->w.tok_embd = qm->tok_embd;
    m->w.out_norm = qm->out_norm;
    m->w.layers = calloc((size_t)c->n_layers, sizeof *m->w.layers);
    m->w.rope_inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(double));
    if (!m->path || !m->w.layers || !m->w.rope_inv_freq) goto oom;
    memcpy(m->w.rope_inv_freq, qm->rope_inv_freq, (size_t)(c->head_dim / 2) * sizeof(double));
    for (int l = 0; l < c->n_layers; l++) {
        const flx_qlayer *Q = &qm->layers[l];
        flx_llama_layer *L = &m->w.layers[l];
        L->attn_norm = Q->attn_norm;
        L->ffn_norm = Q->ffn_norm;
        int oom = 0;
        L->wq = dequant(m, &Q->wq, pool, lean, &oom);
        L->wk = dequant(m, &Q->wk, pool, lean, &oom);
        L->wv = dequant(m, &Q->wv, pool, lean, &oom);
        L->wo = dequant(m, &Q->wo, pool, lean, &oom);
        L->w_gate = dequant(m, &Q->w_gate, pool, lean, &oom);
        L->w_up = dequant(m, &Q->w_up, pool, lean, &oom);
        L->w_down = dequant(m, &Q->w_down, pool, lean, &oom);
        if (oom) goto oom;
    }
    int oom = 0;
    m->w.output = dequant(m, &qm->head, pool, lean, &oom);
    if (oom) goto oom;
    m->tok = qm->tok;   /* borrowed: flx_fakequant_free detaches it */

    flx_rotation_set *rs = &fq->rot;
    rs->d_model = c->d_model;
    rs->head_dim = c->head_dim;
    rs->n_layers = c->n_layers;
    rs->d_ff = c->d_ff;
    rs->r3 = qm->r3_online;
    rs->r4 = qm->r4_online;
    rs->r4_dense = qm->r4_dense;
    rs->r4_divisor = flx_fht_norm_divisor(c->d_ff);
    rs->r3_divisor = flx_fht_norm_divisor(c->head_dim);
    if (rs->r4 && !rs->r4_dense && !flx_is_pow2(c->d_ff)) {
        flx_fakequant_free(fq);
        return flx_fail(err, FLX_EFORMAT, "online R4 needs a dense matrix for d_ff = %d", (int)c->d_ff);
    }
    fq->rotated = strcmp(qm->rotation, "none") != 0;
    fq->hooks.ctx = fq;
    fq->hooks.linear_input = fq_linear_input;
    fq->hooks.qkv = fq_qkv;
    if (fq->recipe.static_attn) fq->hooks.probs = fq_probs;
    fq->lean = lean;
    if (lean) fq->hooks.weight_rows = fq_weight_rows;
    return FLX_OK;
oom:
    flx_fakequant_free(fq);
    return flx_fail(err, FLX_ENOMEM, "out of memory building the fake-quant model");
}

int flx_fakequant_build(flx_fakequant *fq, const flx_qmodel *qm, flx_error *err)
{
    return build(fq, qm, NULL, 0, err);
}

int flx_fakequant_build_lean(flx_fakequant *fq, const flx_qmodel *qm, flx_error *err)
{
    return build(fq, qm, NULL, 1, err);
}

void flx_fakequant_free(flx_fakequant *fq)
{
    if (!fq) return;
    fq->model.tok = NULL;
    flx_model_free(&fq->model);
    memset(fq, 0, sizeof *fq);
}

int flx_fakequant_open(flx_fakequant **out, flx_model *m, const char *path, flx_error *err)
{
    return flx_fakequant_open_threads(out, m, path, 1, err);
}

static int open_model(flx_fakequant **out, flx_model *m, const char *path, int n_threads, int lean,
                      flx_error *err);

int flx_fakequant_open_threads(flx_fakequant **out, flx_model *m, const char *path, int n_threads,
                               flx_error *err)
{
    return open_model(out, m, path, n_threads, 0, err);
}

int flx_fakequant_open_lean(flx_fakequant **out, flx_model *m, const char *path, int n_threads,
                            flx_error *err)
{
    return open_model(out, m, path, n_threads, 1, err);
}

static int open_model(flx_fakequant **out, flx_model *m, const char *path, int n_threads, int lean,
                      flx_error *err)
{
    *out = NULL;
    flx_fakequant *fq = calloc(1, sizeof *fq);
    flx_qmodel *qm = calloc(1, sizeof *qm);
    if (!fq || !qm) {
        free(fq);
        free(qm);
        return flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    /* 4-bit codes stay the file's nibbles (the dequantizer reads them
     * directly): no int8 copy of the weights (1.2 GB for a 1B model) */
    flx_pool *pool = n_threads > 1 ? flx_pool_create(n_threads) : NULL;
    const flx_qload_opts lo = { pool, 1 };
    int rc = n_threads > 1 && !pool ? flx_fail(err, FLX_ENOMEM, "cannot start %d threads", n_threads)
                                    : flx_qmodel_load_ex(qm, path, &lo, err);
    if (rc == FLX_OK) rc = build(fq, qm, pool, lean, err);
    if (rc) {
        flx_pool_free(pool);
        flx_qmodel_free(qm);
        free(qm);
        free(fq);
        return rc;
    }
    fq->own_qm = qm;
    fq->pool = pool;   /* the hooks' row-parallel work; freed by flx_fakequant_close */
    /* move the float model out; the tokenizer changes owner too */
    *m = fq->model;
    free(m->path);
    m->path = strdup(path);
    m->tok = qm->tok;
    qm->tok = NULL;
    memset(&fq->model, 0, sizeof fq->model);
    *out = fq;
    return FLX_OK;
}

void flx_fakequant_close(flx_fakequant *fq)
{
    if (!fq) return;
    flx_qmodel *qm = fq->own_qm;
    flx_pool *pool = fq->pool;
    flx_fakequant_free(fq);
    flx_pool_free(pool);
    if (qm) {
        flx_qmodel_free(qm);
        free(qm);
    }
    free(fq);
}
