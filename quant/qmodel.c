/* qmodel.c -- a quantized model in memory (flx_qmodel): building it from a
 * float model with a recipe, and the .flxq file (docs/quant.md "File
 * format"): safetensors holding packed integer weights, float scales and
 * sums, fp32 embedding and norms, and the recipe, rotation and config as
 * JSON strings in __metadata__. */
#include "flx_qmodel.h"
#include "flx_safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLXQ_VERSION "1"

/* ---------------------------------------------------------------- storage */

void *flx_qmodel_alloc(flx_qmodel *qm, size_t bytes)
{
    if (qm->n_owned == qm->cap_owned) {
        size_t cap = qm->cap_owned ? 2 * qm->cap_owned : 64;
        void **p = realloc(qm->owned, cap * sizeof *p);
        if (!p) return NULL;
        qm->owned = p;
        qm->cap_owned = cap;
    }
    /* big buffers (int8 codes, copied fp32 tensors) on 2 MiB pages where the
     * kernel allows: first touch of 1.2 GB of codes costs 512x fewer faults */
    void *buf = flx_alloc_large(bytes);
    if (buf) qm->owned[qm->n_owned++] = buf;
    return buf;
}

void flx_qmodel_free(flx_qmodel *qm)
{
    if (!qm) return;
    for (size_t i = 0; i < qm->n_owned; i++) free(qm->owned[i]);
    free(qm->owned);
    flx_tokenizer_free(qm->tok);
    if (qm->st_file) {
        flx_st_close(qm->st_file);
        free(qm->st_file);
    }
    memset(qm, 0, sizeof *qm);
}

static float *copy_floats(flx_qmodel *qm, const float *src, size_t n)
{
    float *p = flx_qmodel_alloc(qm, n * sizeof *p);
    if (p) memcpy(p, src, n * sizeof *p);
    return p;
}

/* The seven projections of a layer, in file and struct order. */
static const char *const LIN_NAMES[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

static flx_qtensor *layer_tensor(flx_qlayer *L, int i)
{
    flx_qtensor *t[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return t[i];
}

static void lin_shape(const flx_llama_config *c, int i, int32_t *n_out, int32_t *n_in)
{
    int32_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    const int32_t outs[7] = {q, kv, kv, c->d_model, c->d_ff, c->d_ff, c->d_model};
    const int32_t ins[7] = {c->d_model, c->d_model, c->d_model, q, c->d_model, c->d_model, c->d_ff};
    *n_out = outs[i];
    *n_in = ins[i];
}

/* ---------------------------------------------------------------- building */

typedef struct rtn_ctx {
    const flx_qspec *ws;
    const float     *w;
    int32_t          n_in, n_groups;
    int32_t          shift;     /* subtracted from every code (see below) */
    int8_t          *q;         /* (n_out, n_in) */
    flx_qparams     *params;    /* (n_out, n_groups) */
} rtn_ctx;

/* rows are independent: any thread count gives the same codes */
static void rtn_rows(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    rtn_ctx *c = vctx;
    (void)thread_id;
    int32_t stack_buf[4096], *buf = stack_buf, *heap = NULL;
    if (c->n_in > 4096) buf = heap = malloc((size_t)c->n_in * sizeof *buf);
    for (int64_t r = begin; r < end; r++) {
        const float *row = c->w + r * c->n_in;
        flx_qparams *pp = c->params + r * c->n_groups;
        flx_quant_params(c->ws, row, 1, c->n_in, pp);
        if (!buf) {   /* out of memory for a scratch row: leave an invalid scale */
            pp[0].scale = NAN;
            continue;
        }
        flx_quant_apply(c->ws, row, 1, c->n_in, pp, buf);
        int8_t *dst = c->q + r * c->n_in;
        for (int32_t k = 0; k < c->n_in; k++) dst[k] = (int8_t)(buf[k] - c->shift);
    }
    free(heap);
}

/* Fills t from float weights w (n_out, n_in). */
static int quantize_linear(flx_qmodel *qm, flx_qtensor *t, const flx_recipe *r, int quantize,
                           const float *w, int32_t n_out, int32_t n_in, int layer, int32_t bits,
                           const char *name, const flx_qbuild *b, flx_error *err)
{
    memset(t, 0, sizeof *t);
    t->n_out = n_out;
    t->n_in = n_in;
    if (!quantize) {
        t->bits = 32;
        t->group_size = n_in;
        t->symmetric = 1;
        t->w = copy_floats(qm, w, (size_t)n_out * n_in);
        return t->w ? FLX_OK : flx_fail(err, FLX_ENOMEM, "out of memory copying %s", name);
    }
    flx_qspec wsb = r->w;
    if (bits > 0) wsb.bits = bits;   /* mixed precision */
    const flx_qspec *ws = &wsb;
    int32_t gs = ws->gran == FLX_QG_GROUP ? ws->group_size : n_in;
    int32_t n_groups = n_in / gs;
    size_t n = (size_t)n_out * n_in, ng = (size_t)n_out * n_groups;
    /* asymmetric codes [0, 2^b) are stored shifted by 2^(b-1) so that
     * they fit int8; the zero point moves with them (s (q - z) holds) */
    int32_t shift = ws->scheme == FLX_QS_SYM ? 0 : (1 << (ws->bits - 1));
    float *zero = malloc(ng * sizeof *zero);
    t->scale = flx_qmodel_alloc(qm, ng * sizeof *t->scale);
    t->q = flx_qmodel_alloc(qm, n);
    if (!zero || !t->scale || !t->q) {
        free(zero);
        return flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
    }
    int rc = FLX_OK;
    if (b->weight_fn) {
        int32_t *q = malloc(n * sizeof *q);
        if (!q) rc = flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
        else rc = b->weight_fn(b->weight_ctx, layer, name, ws, w, n_out, n_in, q, t->scale, zero, err);
        for (size_t i = 0; rc == FLX_OK && i < n; i++) t->q[i] = (int8_t)(q[i] - shift);
        free(q);
    } else {
        flx_qparams *params = malloc(ng * sizeof *params);
        if (!params) rc = flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
        else {
            rtn_ctx c = {ws, w, n_in, n_groups, shift, t->q, params};
            flx_pool_for(b->pool, n_out, 16, rtn_rows, &c);
            for (size_t i = 0; i < ng; i++) {
                t->scale[i] = params[i].scale;
                zero[i] = params[i].zero;
                if (isnan(t->scale[i])) rc = flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
            }
            free(params);
        }
    }
    t->bits = ws->bits;
    t->group_size = gs;
    t->symmetric = ws->scheme == FLX_QS_SYM;
    if (rc == FLX_OK && !t->symmetric) {
        t->zero = flx_qmodel_alloc(qm, ng * sizeof *t->zero);
        if (!t->zero) rc = flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
        else
            for (size_t i = 0; i < ng; i++) t->zero[i] = zero[i] - (float)shift;
    }
    if (rc == FLX_OK && r->w_wsum) {
        /* FlexLLM's per-row sum of dequantized weights: s * sum(q), one
         * scale per row (wsum needs per-channel scales) */
        t->wsum = flx_qmodel_alloc(qm, (size_t)n_out * sizeof *t->wsum);
        if (!t->wsum) rc = flx_fail(err, FLX_ENOMEM, "out of memory quantizing %s", name);
        for (int32_t o = 0; rc == FLX_OK && o < n_out; o++) {
            int64_t sum = 0;
            for (int32_t k = 0; k < n_in; k++) sum += t->q[(size_t)o * n_in + k];
            t->wsum[o] = t->scale[(size_t)o * n_groups] * (float)sum;
        }
    }
    free(zero);
    return rc;
}

static const char *rot_name(flx_rot_kind k)
{
    switch (k) {
    case FLX_ROT_HADAMARD: return "hadamard";
    case FLX_ROT_RANDOM:   return "random";
    case FLX_ROT_FILE:     return "file";
    default:               return "none";
    }
}

int flx_qmodel_build(flx_qmodel *qm, const flx_model *m, const flx_qbuild *b, flx_error *err)
{
    flx_error local;
    if (!err) err = &local;
    memset(qm, 0, sizeof *qm);
    const flx_recipe *r = b->recipe;
    const flx_llama_config *c = &m->cfg;
    int rc = flx_recipe_check(r, c, err);
    if (rc) return rc;
    if (r->static_attn && !b->scales)
        return flx_fail(err, FLX_EINVAL,
                        "recipe %s needs static attention scales (run a calibration: --calib FILE)",
                        r->name);
    qm->cfg = *c;
    qm->cfg.tie_embeddings = 0;   /* the head is always its own tensor here */
    snprintf(qm->recipe, sizeof qm->recipe, "%s", r->name);
    const flx_rotation_set *rs = b->rot;
    snprintf(qm->rotation, sizeof qm->rotation, "%s", rot_name(rs ? rs->kind : FLX_ROT_NONE));
    qm->r3_online = rs && rs->r3;
    qm->r4_online = rs && rs->r4;
    qm->rotation_seed = b->rot_seed;
    if (b->source) snprintf(qm->source, sizeof qm->source, "%s", b->source);
    qm->d_ff_source = b->d_ff_source;
    if (b->provenance) {
        char *pv = flx_qmodel_alloc(qm, strlen(b->provenance) + 1);
        if (!pv) return flx_fail(err, FLX_ENOMEM, "out of memory");
        memcpy(pv, b->provenance, strlen(b->provenance) + 1);
        qm->provenance = pv;
    }

    size_t d = (size_t)c->d_model;
    qm->tok_embd = copy_floats(qm, m->w.tok_embd, (size_t)c->n_vocab * d);
    qm->out_norm = copy_floats(qm, m->w.out_norm, d);
    qm->layers = flx_qmodel_alloc(qm, (size_t)c->n_layers * sizeof *qm->layers);
    qm->rope_inv_freq = flx_qmodel_alloc(qm, (size_t)(c->head_dim / 2) * sizeof(double));
    if (!qm->tok_embd || !qm->out_norm || !qm->layers || !qm->rope_inv_freq) {
        flx_qmodel_free(qm);
        return flx_fail(err, FLX_ENOMEM, "out of memory building the quantized model");
    }
    memcpy(qm->rope_inv_freq, m->w.rope_inv_freq, (size_t)(c->head_dim / 2) * sizeof(double));
    memset(qm->layers, 0, (size_t)c->n_layers * sizeof *qm->layers);
    if (rs && rs->r4 && rs->r4_dense) {
        qm->r4_dense = copy_floats(qm, rs->r4_dense, (size_t)c->d_ff * c->d_ff);
        if (!qm->r4_dense) {
            flx_qmodel_free(qm);
            return flx_fail(err, FLX_ENOMEM, "out of memory copying R4");
        }
    }

    /* mixed precision: activation bits per linear input, kept only when
     * one differs from the recipe's */
    int act_mixed = 0;
    for (int i = 0; b->a_bits_of && i <= c->n_layers * 4; i++)
        act_mixed |= b->a_bits_of[i] > 0 && b->a_bits_of[i] != r->a_bits;
    if (act_mixed) {
        size_t bytes = (size_t)(c->n_layers * 4 + 1) * sizeof *qm->a_bits_of;
        if (!(qm->a_bits_of = flx_qmodel_alloc(qm, bytes))) {
            flx_qmodel_free(qm);
            return flx_fail(err, FLX_ENOMEM, "out of memory");
        }
        memcpy(qm->a_bits_of, b->a_bits_of, bytes);
    }

    flx_progress prog;
    flx_progress_begin(&prog, "quantize", (int64_t)c->n_layers * 7 + 1, b->progress);
    int quant_w = r->w_bits < 16;
    for (int l = 0; l < c->n_layers && rc == FLX_OK; l++) {
        const flx_llama_layer *src = &m->w.layers[l];
        flx_qlayer *L = &qm->layers[l];
        L->attn_norm = copy_floats(qm, src->attn_norm, d);
        L->ffn_norm = copy_floats(qm, src->ffn_norm, d);
        if (!L->attn_norm || !L->ffn_norm) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        const float *ws[7] = {src->wq, src->wk, src->wv, src->wo, src->w_gate, src->w_up,
                              src->w_down};
        for (int i = 0; i < 7 && rc == FLX_OK; i++) {
            int32_t n_out, n_in;
            lin_shape(c, i, &n_out, &n_in);
            char name[64];
            snprintf(name, sizeof name, "layer %d %s", l, LIN_NAMES[i]);
            int32_t bo = b->w_bits_of ? b->w_bits_of[l * 7 + i] : 0;
            if (bo && bo != r->w_bits) qm->mixed = 1;
            rc = quantize_linear(qm, layer_tensor(L, i), r, quant_w, ws[i], n_out, n_in, l, bo, name,
                                 b, err);
            flx_progress_update(&prog, (int64_t)l * 7 + i + 1);
        }
        if (b->scales) {
            L->q_s = b->scales[l].q_s;
            L->k_s = b->scales[l].k_s;
            L->v_s = b->scales[l].v_s;
            L->a_s = b->scales[l].a_s;
        }
    }
    qm->has_attn_scales = b->scales != NULL;
    if (rc == FLX_OK) {
        int32_t bo = b->w_bits_of ? b->w_bits_of[c->n_layers * 7] : 0;
        if (bo && bo != r->w_bits) qm->mixed = 1;
        rc = quantize_linear(qm, &qm->head, r, quant_w && r->quant_head, m->w.output, c->n_vocab,
                             c->d_model, c->n_layers, bo, "head", b, err);
    }
    flx_progress_end(&prog);
    if (rc) flx_qmodel_free(qm);
    return rc;
}

/* ---------------------------------------------------------------- metadata JSON */

static void config_json(const flx_llama_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"n_vocab\":%d,\"d_model\":%d,\"n_layers\":%d,\"n_heads\":%d,\"n_kv_heads\":%d,"
             "\"head_dim\":%d,\"d_ff\":%d,\"max_seq_len\":%d,\"rms_eps\":%.9g,\"rope_theta\":%.17g,"
             "\"rope_llama3\":%d,\"rope_factor\":%.17g,\"rope_low_freq_factor\":%.17g,"
             "\"rope_high_freq_factor\":%.17g,\"rope_orig_max_pos\":%d,\"rope_pairing\":\"%s\","
             "\"bos_id\":%d,\"eos_id\":%d}",
             c->n_vocab, c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff,
             c->max_seq_len, (double)c->rms_eps, c->rope_theta, c->rope_llama3, c->rope_factor,
             c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_max_pos,
             c->rope_pairing == FLX_ROPE_ADJACENT ? "adjacent" : "split_half", c->bos_id,
             c->eos_id);
}

static int json_num(const cJSON *o, const char *k, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 0;
}

static int parse_config(const char *path, const char *text, flx_llama_config *c, flx_error *err)
{
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return flx_fail(err, FLX_EFORMAT, "%s: metadata field 'config' is missing or not JSON", path);
    }
    memset(c, 0, sizeof *c);
    struct { const char *k; int32_t *p; } ints[] = {
        {"n_vocab", &c->n_vocab}, {"d_model", &c->d_model}, {"n_layers", &c->n_layers},
        {"n_heads", &c->n_heads}, {"n_kv_heads", &c->n_kv_heads}, {"head_dim", &c->head_dim},
        {"d_ff", &c->d_ff}, {"max_seq_len", &c->max_seq_len},
        {"rope_orig_max_pos", &c->rope_orig_max_pos}, {"bos_id", &c->bos_id},
        {"eos_id", &c->eos_id},
    };
    int rc = FLX_OK;
    double v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && rc == FLX_OK; i++) {
        if (json_num(o, ints[i].k, &v) || v != floor(v) || v < -1 || v > 2147483647.0)
            rc = flx_fail(err, FLX_EFORMAT, "%s: config field '%s' missing or not an integer", path,
                          ints[i].k);
        else *ints[i].p = (int32_t)v;
    }
    struct { const char *k; double *p; } dbl[] = {
        {"rope_theta", &c->rope_theta}, {"rope_factor", &c->rope_factor},
        {"rope_low_freq_factor", &c->rope_low_freq_factor},
        {"rope_high_freq_factor", &c->rope_high_freq_factor},
    };
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0] && rc == FLX_OK; i++)
        if (json_num(o, dbl[i].k, dbl[i].p) || !isfinite(*dbl[i].p))
            rc = flx_fail(err, FLX_EFORMAT, "%s: config field '%s' missing or not a number", path,
                          dbl[i].k);
    if (rc == FLX_OK) {
        if (json_num(o, "rms_eps", &v) || !isfinite(v) || v <= 0)
            rc = flx_fail(err, FLX_EFORMAT, "%s: config field 'rms_eps' missing or invalid", path);
        else c->rms_eps = (float)v;
    }
    if (rc == FLX_OK) {
        if (json_num(o, "rope_llama3", &v)) rc = flx_fail(err, FLX_EFORMAT, "%s: config field 'rope_llama3' missing", path);
        else c->rope_llama3 = v != 0;
    }
    if (rc == FLX_OK) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "rope_pairing");
        if (!cJSON_IsString(p)) rc = flx_fail(err, FLX_EFORMAT, "%s: config field 'rope_pairing' missing", path);
        else if (!strcmp(p->valuestring, "adjacent")) c->rope_pairing = FLX_ROPE_ADJACENT;
        else if (!strcmp(p->valuestring, "split_half")) c->rope_pairing = FLX_ROPE_SPLIT_HALF;
        else rc = flx_fail(err, FLX_EFORMAT, "%s: config field 'rope_pairing' = '%s' is unknown", path,
                           p->valuestring);
    }
    cJSON_Delete(o);
    if (rc == FLX_OK) rc = flx_llama_config_validate(c, path, err);
    return rc;
}

/* ---------------------------------------------------------------- saving */

enum { SRC_F32, SRC_F64, SRC_Q4, SRC_Q8, SRC_RAW };

typedef struct entry {
    char          name[96];
    flx_st_dtype  dtype;
    int           n_dims;
    int64_t       shape[2];
    int           src_kind;
    const void   *src;        /* floats, doubles, or the flx_qtensor of codes */
    int64_t       rows, cols; /* for codes: rows of cols values           */
} entry;

typedef struct entry_list {
    entry *e;
    size_t n, cap;
    int    oom;
} entry_list;

static entry *add_entry(entry_list *L, const char *name, flx_st_dtype dt, int n_dims, int64_t d0,
                        int64_t d1, int kind, const void *src)
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        entry *p = realloc(L->e, cap * sizeof *p);
        if (!p) { L->oom = 1; return NULL; }
        L->e = p;
        L->cap = cap;
    }
    entry *e = &L->e[L->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dt;
    e->n_dims = n_dims;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->src_kind = kind;
    e->src = src;
    return e;
}

/* pass 0: float tensors (all 4-byte sized, so they stay aligned after the
 * 8-aligned header); pass 1: integer codes */
static void add_qtensor(entry_list *L, const char *prefix, const flx_qtensor *t, int pass)
{
    char name[96];   /* prefix is at most "layers.NNNNN.w_gate" */
    if (!flx_qtensor_is_int(t)) {
        snprintf(name, sizeof name, "%s.w", prefix);
        if (pass == 0) add_entry(L, name, FLX_ST_F32, 2, t->n_out, t->n_in, SRC_F32, t->w);
        return;
    }
    int64_t n_groups = t->n_in / t->group_size;
    if (pass == 0) {
        snprintf(name, sizeof name, "%s.scale", prefix);
        add_entry(L, name, FLX_ST_F32, 2, t->n_out, n_groups, SRC_F32, t->scale);
        if (t->zero) {
            snprintf(name, sizeof name, "%s.zero", prefix);
            add_entry(L, name, FLX_ST_F32, 2, t->n_out, n_groups, SRC_F32, t->zero);
        }
        if (t->wsum) {
            snprintf(name, sizeof name, "%s.wsum", prefix);
            add_entry(L, name, FLX_ST_F32, 1, t->n_out, 0, SRC_F32, t->wsum);
        }
        return;
    }
    snprintf(name, sizeof name, "%s.q", prefix);
    entry *e;
    if (t->bits <= 4)
        e = add_entry(L, name, FLX_ST_U8, 2, t->n_out, (t->n_in + 1) / 2, SRC_Q4, t);
    else
        e = add_entry(L, name, FLX_ST_I8, 2, t->n_out, t->n_in, SRC_Q8, t);
    if (e) {
        e->rows = t->n_out;
        e->cols = t->n_in;
    }
}

static void list_tensors(const flx_qmodel *qm, entry_list *L)
{
    const flx_llama_config *c = &qm->cfg;
    char name[48];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            add_entry(L, "rope_inv_freq", FLX_ST_F64, 1, c->head_dim / 2, 0, SRC_F64, qm->rope_inv_freq);
            add_entry(L, "tok_embd", FLX_ST_F32, 2, c->n_vocab, c->d_model, SRC_F32, qm->tok_embd);
        }
        for (int l = 0; l < c->n_layers; l++) {
            const flx_qlayer *Ly = &qm->layers[l];
            if (pass == 0) {
                snprintf(name, sizeof name, "layers.%d.attn_norm", l);
                add_entry(L, name, FLX_ST_F32, 1, c->d_model, 0, SRC_F32, Ly->attn_norm);
                snprintf(name, sizeof name, "layers.%d.ffn_norm", l);
                add_entry(L, name, FLX_ST_F32, 1, c->d_model, 0, SRC_F32, Ly->ffn_norm);
                if (qm->has_attn_scales) {
                    snprintf(name, sizeof name, "layers.%d.attn_scales", l);
                    add_entry(L, name, FLX_ST_F32, 1, 4, 0, SRC_F32, &Ly->q_s);
                }
            }
            for (int i = 0; i < 7; i++) {
                snprintf(name, sizeof name, "layers.%d.%s", l, LIN_NAMES[i]);
                add_qtensor(L, name, layer_tensor((flx_qlayer *)Ly, i), pass);
            }
        }
        if (pass == 0) {
            add_entry(L, "out_norm", FLX_ST_F32, 1, c->d_model, 0, SRC_F32, qm->out_norm);
            if (qm->r4_dense)
                add_entry(L, "rot.r4", FLX_ST_F32, 2, c->d_ff, c->d_ff, SRC_F32, qm->r4_dense);
        }
        add_qtensor(L, "head", &qm->head, pass);
    }
    if (qm->calib_ngrams)
        add_entry(L, "calib_ngrams", FLX_ST_U8, 1, (int64_t)qm->n_calib_ngrams * 8, 0, SRC_RAW, qm->calib_ngrams);
    if (qm->tok_blob) add_entry(L, "tokenizer", FLX_ST_U8, 1, (int64_t)qm->tok_blob_bytes, 0, SRC_RAW, qm->tok_blob);
}

static size_t entry_bytes(const entry *e)
{
    size_t n = (size_t)e->shape[0] * (size_t)(e->n_dims == 2 ? e->shape[1] : 1);
    return n * flx_st_dtype_bytes(e->dtype);
}

int flx_qmodel_save(const flx_qmodel *qm, const char *path, flx_error *err)
{
    /* the attention scales are read as 4 consecutive floats from q_s */
    _Static_assert(offsetof(flx_qlayer, k_s) == offsetof(flx_qlayer, q_s) + sizeof(float) &&
                   offsetof(flx_qlayer, a_s) == offsetof(flx_qlayer, q_s) + 3 * sizeof(float),
                   "q_s, k_s, v_s, a_s must be consecutive");
    flx_recipe r;
    int rc = flx_recipe_parse(&r, qm->recipe, err);
    if (rc) return rc;
    char recipe_json[2048], config[1024], rotation[256];
    flx_recipe_json(&r, recipe_json, sizeof recipe_json);
    config_json(&qm->cfg, config, sizeof config);
    snprintf(rotation, sizeof rotation,
             "{\"kind\":\"%s\",\"seed\":%llu,\"r3_online\":%s,\"r4_online\":%s,\"r4\":\"%s\"}",
             qm->rotation, (unsigned long long)qm->rotation_seed, qm->r3_online ? "true" : "false",
             qm->r4_online ? "true" : "false", qm->r4_dense ? "dense" : "fht");
    /* "padding" only when d_ff was padded, so other files keep their bytes */
    char padding[128];
    snprintf(padding, sizeof padding, "{\"d_ff_source\":%d,\"d_ff\":%d,\"kind\":\"zero\"}",
             (int)qm->d_ff_source, (int)qm->cfg.d_ff);
    char tokmeta[256];
    snprintf(tokmeta, sizeof tokmeta, "{\"format\":\"%s\",\"bytes\":%zu,\"sha256\":\"%s\"}", qm->tok_format,
             qm->tok_blob_bytes, qm->tok_sha256);
    const char *keys[16] = {"format", "flxq_version", "recipe", "recipe_json", "rotation", "config", "source"};
    const char *vals[16] = {"flxq", FLXQ_VERSION, qm->recipe, recipe_json, rotation, config, qm->source};
    int n_keys = 7;
    /* the later keys only when there is something to say, so a file
     * without them keeps the bytes it had before they existed */
    if (qm->d_ff_source > 0) { keys[n_keys] = "padding"; vals[n_keys++] = padding; }
    if (qm->provenance) { keys[n_keys] = "provenance"; vals[n_keys++] = qm->provenance; }
    if (qm->tok_blob) { keys[n_keys] = "tokenizer"; vals[n_keys++] = tokmeta; }
    /* mixed precision: the tensors whose weight bits differ from the recipe's */
    char *mixed = NULL;
    if (qm->mixed) {
        size_t cap = 64 + (size_t)(qm->cfg.n_layers * 7 + 1) * 40, pos = 0;
        mixed = malloc(cap);
        if (!mixed) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
        pos += (size_t)snprintf(mixed + pos, cap - pos, "{");
        for (int l = 0; l <= qm->cfg.n_layers; l++)
            for (int i = 0; i < (l < qm->cfg.n_layers ? 7 : 1); i++) {
                const flx_qtensor *t = l < qm->cfg.n_layers ? layer_tensor((flx_qlayer *)&qm->layers[l], i) : &qm->head;
                if (!flx_qtensor_is_int(t) || t->bits == r.w_bits) continue;
                if (l < qm->cfg.n_layers)
                    pos += (size_t)snprintf(mixed + pos, cap - pos, "%s\"layers.%d.%s\":%d", pos > 1 ? "," : "", l,
                                            LIN_NAMES[i], (int)t->bits);
                else
                    pos += (size_t)snprintf(mixed + pos, cap - pos, "%s\"head\":%d", pos > 1 ? "," : "", (int)t->bits);
            }
        snprintf(mixed + pos, cap - pos, "}");
        keys[n_keys] = "mixed_bits";
        vals[n_keys++] = mixed;
    }

    /* and the linear inputs whose activation bits differ */
    char *mixed_act = NULL;
    if (qm->a_bits_of) {
        static const char *const in_names[4] = {"qkv", "o", "gate_up", "down"};
        size_t cap = 64 + (size_t)(qm->cfg.n_layers * 4 + 1) * 40, pos = 0;
        mixed_act = malloc(cap);
        if (!mixed_act) {
            free(mixed);
            return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
        }
        pos += (size_t)snprintf(mixed_act + pos, cap - pos, "{");
        for (int i = 0; i <= qm->cfg.n_layers * 4; i++) {
            int32_t bits = qm->a_bits_of[i];
            if (bits <= 0 || bits == r.a_bits) continue;
            if (i < qm->cfg.n_layers * 4)
                pos += (size_t)snprintf(mixed_act + pos, cap - pos, "%s\"layers.%d.%s\":%d", pos > 1 ? "," : "", i / 4,
                                        in_names[i % 4], (int)bits);
            else
                pos += (size_t)snprintf(mixed_act + pos, cap - pos, "%s\"head\":%d", pos > 1 ? "," : "", (int)bits);
        }
        snprintf(mixed_act + pos, cap - pos, "}");
        keys[n_keys] = "mixed_act_bits";
        vals[n_keys++] = mixed_act;
    }

    entry_list L = {0};
    list_tensors(qm, &L);
    flx_st_desc *desc = calloc(L.n ? L.n : 1, sizeof *desc);
    if (L.oom || !desc) {
        free(L.e);
        free(desc);
        free(mixed);
        free(mixed_act);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory listing tensors", path);
    }
    for (size_t i = 0; i < L.n; i++) {
        desc[i].name = L.e[i].name;
        desc[i].dtype = L.e[i].dtype;
        desc[i].n_dims = L.e[i].n_dims;
        desc[i].shape[0] = L.e[i].shape[0];
        desc[i].shape[1] = L.e[i].shape[1];
    }
    flx_st_writer w;
    rc = flx_st_writer_begin(&w, path, desc, L.n, keys, vals, n_keys, err);
    uint8_t *row = NULL;
    int8_t *codes = NULL;
    for (size_t i = 0; i < L.n && rc == FLX_OK; i++) {
        const entry *e = &L.e[i];
        if (e->src_kind == SRC_F32 || e->src_kind == SRC_F64 || e->src_kind == SRC_RAW) {
            rc = flx_st_writer_write(&w, e->src, entry_bytes(e), err);
            continue;
        }
        /* codes: one packed row at a time (a row of int4 ends on a byte),
         * from int8 codes or the nibbles of a lazy load alike */
        size_t row_bytes = e->src_kind == SRC_Q4 ? (size_t)(e->cols + 1) / 2 : (size_t)e->cols;
        free(row);
        free(codes);
        row = malloc(row_bytes ? row_bytes : 1);
        codes = malloc(e->cols ? (size_t)e->cols : 1);
        if (!row || !codes) { rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); break; }
        const flx_qtensor *t = e->src;
        for (int64_t r0 = 0; r0 < e->rows && rc == FLX_OK; r0++) {
            flx_qtensor_rows(t, r0, 1, codes);
            if (e->src_kind == SRC_Q4) flx_pack_int4(codes, (size_t)e->cols, row);
            else memcpy(row, codes, row_bytes);
            rc = flx_st_writer_write(&w, row, row_bytes, err);
        }
    }
    free(row);
    free(codes);
    if (rc == FLX_OK) rc = flx_st_writer_commit(&w, err);
    else flx_st_writer_abort(&w);
    free(L.e);
    free(desc);
    free(mixed);
    free(mixed_act);
    return rc;
}

/* ---------------------------------------------------------------- loading */

static const flx_st_tensor *need(const flx_safetensors *st, const char *path, const char *name,
                                 flx_st_dtype dt, int n_dims, int64_t d0, int64_t d1,
                                 flx_error *err)
{
    const flx_st_tensor *t = flx_st_find(st, name);
    if (!t) {
        flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' is missing", path, name);
        return NULL;
    }
    if (t->dtype != dt || t->n_dims != n_dims || t->shape[0] != d0 ||
        (n_dims == 2 && t->shape[1] != d1)) {
        flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' is %s with %d dims [%lld, %lld]; expected %s [%lld, %lld]",
                 path, name, flx_st_dtype_name(t->dtype), t->n_dims, (long long)t->shape[0],
                 (long long)(t->n_dims > 1 ? t->shape[1] : 0), flx_st_dtype_name(dt), (long long)d0,
                 (long long)(n_dims > 1 ? d1 : 0));
        return NULL;
    }
    return t;
}

/* Work split over the loader's pool in chunks: each chunk only raises its
 * own flag, so the pool changes no result; the caller then locates the
 * first hit serially (the message names the same element for any thread
 * count). */
#define CHECK_CHUNK ((int64_t)1 << 16)

typedef struct finite_job {
    const uint32_t *u;       /* the floats' bits */
    int64_t         n;
    uint8_t        *bad;     /* [chunks] */
} finite_job;

/* branch-free scan of the exponent bits (vectorizes; a float is not finite
 * iff its exponent is all ones) */
static void finite_chunks(void *ctx, int64_t c0, int64_t c1, int thread_id)
{
    (void)thread_id;
    const finite_job *j = ctx;
    for (int64_t c = c0; c < c1; c++) {
        int64_t b0 = c * CHECK_CHUNK, b1 = j->n - b0 < CHECK_CHUNK ? j->n : b0 + CHECK_CHUNK;
        uint32_t bad = 0;
        for (int64_t i = b0; i < b1; i++) bad |= (uint32_t)((j->u[i] & 0x7f800000u) == 0x7f800000u);
        j->bad[c] = (uint8_t)bad;
    }
}

/* F32 data in place when aligned, else copied; checked finite. */
static const float *f32_data(flx_qmodel *qm, const flx_st_tensor *t, const char *path,
                             const flx_qload_opts *o, flx_error *err)
{
    const float *p = (const float *)t->data;
    if ((uintptr_t)t->data % sizeof(float) != 0) {
        float *c = flx_qmodel_alloc(qm, t->bytes);
        if (!c) { flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); return NULL; }
        memcpy(c, t->data, t->bytes);
        p = c;
    }
    int64_t n_chunks = (t->n_elems + CHECK_CHUNK - 1) / CHECK_CHUNK;
    uint8_t one, *bad = n_chunks > 1 ? malloc((size_t)n_chunks) : &one;
    if (!bad) { flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); return NULL; }
    finite_job j = { (const uint32_t *)p, t->n_elems, bad };
    /* the 1 GB embedding of a 1B model is worth the pool; a norm is not */
    flx_pool_for(n_chunks > 1 ? o->pool : NULL, n_chunks, 16, finite_chunks, &j);
    int64_t hit = -1;
    for (int64_t c = 0; c < n_chunks && hit < 0; c++)
        for (int64_t i = c * CHECK_CHUNK; bad[c] && i < t->n_elems && hit < 0; i++)
            if (!isfinite(p[i])) hit = i;
    if (bad != &one) free(bad);
    if (hit >= 0) {
        flx_fail(err, FLX_ENUMERIC, "%s: tensor '%s' element %lld is not finite", path, t->name,
                 (long long)hit);
        return NULL;
    }
    return p;
}

/* Codes of rows into t->q: unpacked nibbles or copied int8, each block of
 * rows flagged when a code lies outside the tensor's bit range (4-bit
 * nibbles cannot). */
#define ROW_BLOCK 64

typedef struct unpack_job {
    flx_qtensor   *t;
    const uint8_t *src;      /* file bytes of the codes */
    int            nib;      /* 1: two codes per byte */
    uint8_t       *bad;      /* [row blocks] or NULL: no range check */
} unpack_job;

static void unpack_blocks(void *ctx, int64_t b0, int64_t b1, int thread_id)
{
    (void)thread_id;
    const unpack_job *j = ctx;
    const flx_qtensor *t = j->t;
    const int64_t n_in = t->n_in, rb = j->nib ? (n_in + 1) / 2 : n_in;
    const int32_t lo = -(1 << (t->bits - 1)), hi = (1 << (t->bits - 1)) - 1;
    for (int64_t b = b0; b < b1; b++) {
        int64_t o1 = (b + 1) * ROW_BLOCK < t->n_out ? (b + 1) * ROW_BLOCK : t->n_out;
        int bad = 0;
        for (int64_t o = b * ROW_BLOCK; o < o1; o++) {
            int8_t *dst = t->q + o * n_in;
            if (j->nib) flx_unpack_int4(j->src + o * rb, (size_t)n_in, 1, dst);
            else memcpy(dst, j->src + o * rb, (size_t)n_in);
            if (j->bad)
                for (int64_t k = 0; k < n_in; k++) bad |= (dst[k] < lo) | (dst[k] > hi);
        }
        if (j->bad) j->bad[b] = (uint8_t)bad;
    }
}

/* t->q (allocated here) from the file's codes src, over pool */
static int unpack_codes(flx_qmodel *qm, flx_qtensor *t, const uint8_t *src, int nib, int check,
                        flx_pool *pool, const char *path, const char *name, flx_error *err)
{
    const int64_t n_blocks = (t->n_out + ROW_BLOCK - 1) / ROW_BLOCK;
    t->q = flx_qmodel_alloc(qm, (size_t)t->n_out * (size_t)t->n_in);
    uint8_t *bad = check ? calloc((size_t)n_blocks + 1, 1) : NULL;
    if (!t->q || (check && !bad)) {
        free(bad);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory for '%s'", path, name);
    }
    unpack_job j = { t, src, nib, bad };
    flx_pool_for(pool, n_blocks, 4, unpack_blocks, &j);
    const int32_t lo = -(1 << (t->bits - 1)), hi = (1 << (t->bits - 1)) - 1;
    for (int64_t b = 0; check && b < n_blocks; b++)
        for (int64_t i = b * ROW_BLOCK * (int64_t)t->n_in; bad[b] && i < (int64_t)t->n_out * t->n_in; i++)
            if (t->q[i] < lo || t->q[i] > hi) {
                int rc = flx_fail(err, FLX_EFORMAT,
                                  "%s: tensor '%s' row %lld column %lld holds %d, outside the %d-bit range", path,
                                  name, (long long)(i / t->n_in), (long long)(i % t->n_in), t->q[i], (int)t->bits);
                free(bad);
                return rc;
            }
    free(bad);
    return FLX_OK;
}

static int load_qtensor(flx_qmodel *qm, const flx_safetensors *st, const char *path,
                        const char *prefix, flx_qtensor *t, int quantized, const flx_recipe *r,
                        int32_t bits, int32_t n_out, int32_t n_in, const flx_qload_opts *o,
                        flx_error *err)
{
    char name[96];
    memset(t, 0, sizeof *t);
    t->n_out = n_out;
    t->n_in = n_in;
    t->symmetric = 1;
    if (!quantized) {
        t->bits = 32;
        t->group_size = n_in;
        snprintf(name, sizeof name, "%s.w", prefix);
        const flx_st_tensor *x = need(st, path, name, FLX_ST_F32, 2, n_out, n_in, err);
        if (!x) return err ? err->code : FLX_EFORMAT;
        t->w = (float *)f32_data(qm, x, path, o, err);
        return t->w ? FLX_OK : err->code;
    }
    t->bits = bits > 0 ? bits : r->w_bits;   /* mixed precision */
    t->group_size = r->w.gran == FLX_QG_GROUP ? r->w.group_size : n_in;
    t->symmetric = r->w.scheme == FLX_QS_SYM;
    int32_t n_groups = n_in / t->group_size;
    snprintf(name, sizeof name, "%s.scale", prefix);
    const flx_st_tensor *s = need(st, path, name, FLX_ST_F32, 2, n_out, n_groups, err);
    if (!s || !(t->scale = (float *)f32_data(qm, s, path, o, err))) return err->code;
    if (!t->symmetric) {
        snprintf(name, sizeof name, "%s.zero", prefix);
        const flx_st_tensor *z = need(st, path, name, FLX_ST_F32, 2, n_out, n_groups, err);
        if (!z || !(t->zero = (float *)f32_data(qm, z, path, o, err))) return err->code;
    }
    if (r->w_wsum) {
        snprintf(name, sizeof name, "%s.wsum", prefix);
        const flx_st_tensor *ws = need(st, path, name, FLX_ST_F32, 1, n_out, 0, err);
        if (!ws || !(t->wsum = (float *)f32_data(qm, ws, path, o, err))) return err->code;
    }
    snprintf(name, sizeof name, "%s.q", prefix);
    int nib = t->bits <= 4;
    const flx_st_tensor *qt = need(st, path, name, nib ? FLX_ST_U8 : FLX_ST_I8, 2, n_out,
                                   nib ? (n_in + 1) / 2 : n_in, err);
    if (!qt) return err->code;
    if (nib && t->bits == 4 && o->lazy_codes) {
        t->nib = qt->data;   /* every nibble is a 4-bit code: nothing to check */
        return FLX_OK;
    }
    int rc = unpack_codes(qm, t, qt->data, nib, !(nib && t->bits == 4), o->pool, path, name, err);
    /* the codes now live unpacked in t->q: drop the file's copy from memory */
    if (!rc) flx_mapped_release(&st->map, qt->offset, qt->bytes);
    return rc;
}

static int json_bool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void attach_tokenizer(flx_qmodel *qm)
{
    if (!qm->source[0]) return;
    flx_error e;
    char *cand = NULL;
    if (flx_is_dir(qm->source)) cand = flx_path_join(qm->source, "tokenizer.json");
    else {
        size_t n = strlen(qm->source);
        if (n > 5 && !strcmp(qm->source + n - 5, ".gguf")) cand = strdup(qm->source);
        else {
            /* a file inside an HF folder: tokenizer.json beside it */
            char dir[512];
            snprintf(dir, sizeof dir, "%s", qm->source);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
            cand = flx_path_join(dir, "tokenizer.json");
        }
    }
    if (cand && flx_file_exists(cand)) {
        flx_tokenizer *tok = NULL;
        if (flx_tokenizer_load(&tok, cand, &e) == FLX_OK) qm->tok = tok;
    }
    free(cand);
}

/* metadata 'rotation': kind, seed (an integer in [0, 2^64)), online R3/R4 */
static int read_rotation(flx_qmodel *qm, const char *rot, const char *path, flx_error *err)
{
    int rc = FLX_OK;
    cJSON *ro = rot ? cJSON_Parse(rot) : NULL;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ro, "kind");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(ro, "seed");
    /* anything but an integer in range (negative, fractional, 1e300) would
     * make the cast undefined */
    double sd = cJSON_IsNumber(seed) ? seed->valuedouble : -1.0;
    if (!cJSON_IsString(kind) || !cJSON_IsNumber(seed))
        rc = flx_fail(err, FLX_EFORMAT, "%s: metadata field 'rotation' is missing or malformed", path);
    else if (!(sd >= 0.0 && sd < 18446744073709551616.0) || sd != floor(sd))
        rc = flx_fail(err, FLX_EFORMAT, "%s: metadata field 'rotation': seed %g is not an integer "
                      "in [0, 2^64)", path, sd);
    else {
        snprintf(qm->rotation, sizeof qm->rotation, "%s", kind->valuestring);
        qm->rotation_seed = (uint64_t)seed->valuedouble;
        qm->r3_online = json_bool(ro, "r3_online");
        qm->r4_online = json_bool(ro, "r4_online");
    }
    cJSON_Delete(ro);
    return rc;
}

/* metadata 'padding': the d_ff the model had before zero padding */
static int read_padding(flx_qmodel *qm, const char *pad, const char *path, flx_error *err)
{
    cJSON *po = cJSON_Parse(pad);
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(po, "d_ff_source");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(po, "d_ff");
    int ok = cJSON_IsNumber(from) && cJSON_IsNumber(to) && to->valuedouble == qm->cfg.d_ff &&
             from->valuedouble >= 1 && from->valuedouble <= qm->cfg.d_ff;
    if (ok) qm->d_ff_source = (int32_t)from->valuedouble;
    cJSON_Delete(po);
    return ok ? FLX_OK
              : flx_fail(err, FLX_EFORMAT, "%s: metadata field 'padding' is malformed or does not "
                         "match d_ff %d", path, (int)qm->cfg.d_ff);
}

/* The metadata: format, version, recipe, config, rotation, source, padding. */
static int read_header(flx_qmodel *qm, const flx_safetensors *st, const char *path, flx_recipe *r,
                       flx_error *err)
{
    const char *fmt = flx_st_meta(st, "format"), *ver = flx_st_meta(st, "flxq_version");
    const char *rname = flx_st_meta(st, "recipe");
    if (!fmt || strcmp(fmt, "flxq"))
        return flx_fail(err, FLX_EFORMAT, "%s: not a .flxq file (metadata 'format' is not \"flxq\")", path);
    if (!ver || strcmp(ver, FLXQ_VERSION))
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: .flxq version '%s' is not supported (expected %s)",
                        path, ver ? ver : "(none)", FLXQ_VERSION);
    if (!rname) return flx_fail(err, FLX_EFORMAT, "%s: metadata field 'recipe' is missing", path);
    if (flx_recipe_parse(r, rname, err) != FLX_OK) {
        char why[FLX_ERROR_MSG_BYTES];
        snprintf(why, sizeof why, "%s", err->msg);
        return flx_fail(err, FLX_EFORMAT, "%s: metadata field 'recipe': %s", path, why);
    }
    int rc = parse_config(path, flx_st_meta(st, "config"), &qm->cfg, err);
    if (!rc) rc = flx_recipe_check(r, &qm->cfg, err);
    if (!rc) rc = read_rotation(qm, flx_st_meta(st, "rotation"), path, err);
    if (rc) return rc;
    snprintf(qm->recipe, sizeof qm->recipe, "%s", r->name);
    const char *src = flx_st_meta(st, "source");
    if (src) snprintf(qm->source, sizeof qm->source, "%s", src);
    const char *pad = flx_st_meta(st, "padding");
    return pad ? read_padding(qm, pad, path, err) : FLX_OK;
}

/* an F32 tensor of the given shape, in *out */
static int need_f32(flx_qmodel *qm, const flx_safetensors *st, const char *path, const char *name,
                    int n_dims, int64_t d0, int64_t d1, const float **out, const flx_qload_opts *o,
                    flx_error *err)
{
    const flx_st_tensor *t = need(st, path, name, FLX_ST_F32, n_dims, d0, d1, err);
    if (!t || !(*out = f32_data(qm, t, path, o, err))) return err->code;
    return FLX_OK;
}

/* the model-wide tensors before the layers: RoPE frequencies, embedding,
 * final norm */
static int load_globals(flx_qmodel *qm, const flx_safetensors *st, const char *path,
                        const flx_recipe *r, const flx_qload_opts *o, flx_error *err)
{
    const flx_llama_config *c = &qm->cfg;
    const flx_st_tensor *t = need(st, path, "rope_inv_freq", FLX_ST_F64, 1, c->head_dim / 2, 0, err);
    if (!t) return err->code;
    qm->rope_inv_freq = flx_qmodel_alloc(qm, t->bytes);
    if (!qm->rope_inv_freq) return flx_fail(err, FLX_ENOMEM, "out of memory");
    memcpy(qm->rope_inv_freq, t->data, t->bytes);
    int rc = need_f32(qm, st, path, "tok_embd", 2, c->n_vocab, c->d_model, &qm->tok_embd, o, err);
    if (!rc) rc = need_f32(qm, st, path, "out_norm", 1, c->d_model, 0, &qm->out_norm, o, err);
    if (rc) return rc;
    /* the embedding is read a row per token: after its finite check its
     * file pages (1 GB for a 1B model) need not stay in RSS; a row comes
     * back from the file when a token needs it */
    const flx_st_tensor *te = flx_st_find(st, "tok_embd");
    if ((const uint8_t *)qm->tok_embd == te->data) flx_mapped_release(&st->map, te->offset, te->bytes);
    qm->has_attn_scales = flx_st_find(st, "layers.0.attn_scales") != NULL;
    if (r->static_attn && !qm->has_attn_scales)
        return flx_fail(err, FLX_EFORMAT, "%s: recipe %s needs tensor 'layers.0.attn_scales'", path, r->name);
    qm->layers = flx_qmodel_alloc(qm, (size_t)c->n_layers * sizeof *qm->layers);
    if (!qm->layers) return flx_fail(err, FLX_ENOMEM, "out of memory");
    memset(qm->layers, 0, (size_t)c->n_layers * sizeof *qm->layers);
    return FLX_OK;
}

/* metadata 'mixed_bits': per-tensor weight bits, 0 = the recipe's */
static int read_mixed_bits(flx_qmodel *qm, const flx_safetensors *st, const char *path,
                           const flx_recipe *r, int32_t **out, flx_error *err)
{
    const flx_llama_config *c = &qm->cfg;
    size_t n = (size_t)(c->n_layers * 7 + 1);
    int32_t *bits = *out = flx_qmodel_alloc(qm, n * sizeof *bits);
    if (!bits) return flx_fail(err, FLX_ENOMEM, "out of memory");
    memset(bits, 0, n * sizeof *bits);
    const char *mb = flx_st_meta(st, "mixed_bits");
    if (!mb) return FLX_OK;
    cJSON *mo = cJSON_Parse(mb);
    const cJSON *e;
    int bad = !cJSON_IsObject(mo) || !(r->w_bits < 16);
    cJSON_ArrayForEach(e, mo) {
        int idx = flx_qtensor_index(e->string, c->n_layers);
        if (bad || idx < 0 || !cJSON_IsNumber(e) || e->valuedouble < 2 || e->valuedouble > 8 ||
            (idx == c->n_layers * 7 && !r->quant_head)) {
            bad = 1;
            break;
        }
        bits[idx] = (int32_t)e->valuedouble;
    }
    cJSON_Delete(mo);
    if (bad)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata field 'mixed_bits' is malformed (tensor names to bits 2..8)", path);
    qm->mixed = 1;
    return FLX_OK;
}

/* metadata 'mixed_act_bits': per-input activation bits, 0 = the recipe's */
static int read_mixed_act_bits(flx_qmodel *qm, const flx_safetensors *st, const char *path, const flx_recipe *r,
                               flx_error *err)
{
    const char *ma = flx_st_meta(st, "mixed_act_bits");
    if (!ma) return FLX_OK;
    const flx_llama_config *c = &qm->cfg;
    size_t bytes = (size_t)(c->n_layers * 4 + 1) * sizeof *qm->a_bits_of;
    if (!(qm->a_bits_of = flx_qmodel_alloc(qm, bytes))) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    memset(qm->a_bits_of, 0, bytes);
    cJSON *mo = cJSON_Parse(ma);
    const cJSON *e;
    int bad = !cJSON_IsObject(mo);
    cJSON_ArrayForEach(e, mo) {
        int idx = flx_qinput_index(e->string, c->n_layers);
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (bad || idx < 0 || v != (int)v || !((v >= 2 && v <= 8) || v == 16) ||
            (idx == c->n_layers * 4 && !r->quant_head)) {
            bad = 1;
            break;
        }
        qm->a_bits_of[idx] = (int32_t)v;
    }
    cJSON_Delete(mo);
    if (bad)
        return flx_fail(err, FLX_EFORMAT,
                        "%s: metadata field 'mixed_act_bits' is malformed (linear inputs to bits 2..8 or 16)", path);
    return FLX_OK;
}

/* layer l: norms, static attention scales, the seven linears */
static int load_layer(flx_qmodel *qm, const flx_safetensors *st, const char *path, const flx_recipe *r,
                      const int32_t *mixed_bits, int l, const flx_qload_opts *o, flx_error *err)
{
    const flx_llama_config *c = &qm->cfg;
    flx_qlayer *L = &qm->layers[l];
    char name[96];
    snprintf(name, sizeof name, "layers.%d.attn_norm", l);
    int rc = need_f32(qm, st, path, name, 1, c->d_model, 0, &L->attn_norm, o, err);
    snprintf(name, sizeof name, "layers.%d.ffn_norm", l);
    if (!rc) rc = need_f32(qm, st, path, name, 1, c->d_model, 0, &L->ffn_norm, o, err);
    if (!rc && qm->has_attn_scales) {
        snprintf(name, sizeof name, "layers.%d.attn_scales", l);
        const float *s4;
        if ((rc = need_f32(qm, st, path, name, 1, 4, 0, &s4, o, err))) return rc;
        L->q_s = s4[0];
        L->k_s = s4[1];
        L->v_s = s4[2];
        L->a_s = s4[3];
        if (!(L->q_s > 0 && L->k_s > 0 && L->v_s > 0 && L->a_s > 0))
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' holds a scale that is not positive", path, name);
    }
    for (int i = 0; i < 7 && !rc; i++) {
        int32_t n_out, n_in;
        lin_shape(c, i, &n_out, &n_in);
        snprintf(name, sizeof name, "layers.%d.%s", l, LIN_NAMES[i]);
        rc = load_qtensor(qm, st, path, name, layer_tensor(L, i), r->w_bits < 16, r, mixed_bits[l * 7 + i],
                          n_out, n_in, o, err);
    }
    return rc;
}

/* after the layers: the head, the dense R4 of a non-power-of-two d_ff, the
 * provenance text */
static int load_tail(flx_qmodel *qm, const flx_safetensors *st, const char *path, const flx_recipe *r,
                     const int32_t *mixed_bits, const flx_qload_opts *o, flx_error *err)
{
    const flx_llama_config *c = &qm->cfg;
    int rc = load_qtensor(qm, st, path, "head", &qm->head, r->w_bits < 16 && r->quant_head, r,
                          mixed_bits[c->n_layers * 7], c->n_vocab, c->d_model, o, err);
    if (!rc && qm->r4_online && !flx_is_pow2(c->d_ff)) {
        const float *r4;
        rc = need_f32(qm, st, path, "rot.r4", 2, c->d_ff, c->d_ff, &r4, o, err);
        qm->r4_dense = (float *)r4;
    }
    const char *prov = flx_st_meta(st, "provenance");
    if (!rc && prov) {
        char *pv = flx_qmodel_alloc(qm, strlen(prov) + 1);
        if (!pv) return flx_fail(err, FLX_ENOMEM, "out of memory");
        memcpy(pv, prov, strlen(prov) + 1);
        qm->provenance = pv;
    }
    return rc;
}

/* the embedded tokenizer first; files from before it existed look for the
 * source model's */
static int load_tokenizer(flx_qmodel *qm, const flx_safetensors *st, const char *path, flx_error *err)
{
    const flx_st_tensor *t = flx_st_find(st, "tokenizer");
    if (!t) {
        attach_tokenizer(qm);
        return FLX_OK;
    }
    cJSON *tm = cJSON_Parse(flx_st_meta(st, "tokenizer") ? flx_st_meta(st, "tokenizer") : "");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(tm, "sha256");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(tm, "format");
    char hex[65];
    flx_sha256_hex(t->data, t->bytes, hex);
    if (t->dtype != FLX_ST_U8 || t->n_dims != 1 || !cJSON_IsString(sha) || strcmp(sha->valuestring, hex)) {
        cJSON_Delete(tm);
        return flx_fail(err, FLX_EFORMAT, "%s: tensor 'tokenizer' does not match the sha256 of metadata "
                        "'tokenizer'", path);
    }
    snprintf(qm->tok_format, sizeof qm->tok_format, "%s", cJSON_IsString(fmt) ? fmt->valuestring : "?");
    cJSON_Delete(tm);
    memcpy(qm->tok_sha256, hex, sizeof hex);
    qm->tok_blob = t->data;
    qm->tok_blob_bytes = t->bytes;
    flx_tokenizer *tok = NULL;
    if (flx_tokenizer_from_bytes(&tok, t->data, t->bytes, err)) {
        char why[FLX_ERROR_MSG_BYTES];
        snprintf(why, sizeof why, "%s", err->msg);
        return flx_fail(err, FLX_EFORMAT, "%s: embedded tokenizer: %s", path, why);
    }
    qm->tok = tok;
    return FLX_OK;
}

int flx_qmodel_load(flx_qmodel *qm, const char *path, flx_error *err)
{
    const flx_qload_opts o = { NULL, 0 };
    return flx_qmodel_load_ex(qm, path, &o, err);
}

int flx_qmodel_load_ex(flx_qmodel *qm, const char *path, const flx_qload_opts *o, flx_error *err)
{
    flx_error local;
    if (!err) err = &local;
    const flx_qload_opts o0 = { NULL, 0 };
    if (!o) o = &o0;
    memset(qm, 0, sizeof *qm);
    qm->st_file = calloc(1, sizeof *qm->st_file);
    if (!qm->st_file) return flx_fail(err, FLX_ENOMEM, "out of memory");
    int rc = flx_st_open(qm->st_file, path, err);
    if (rc) {
        free(qm->st_file);
        qm->st_file = NULL;
        return rc;
    }
    const flx_safetensors *st = qm->st_file;
    flx_recipe r;
    int32_t *mixed_bits = NULL;
    rc = read_header(qm, st, path, &r, err);
    if (!rc) rc = load_globals(qm, st, path, &r, o, err);
    if (!rc) rc = read_mixed_bits(qm, st, path, &r, &mixed_bits, err);
    if (!rc) rc = read_mixed_act_bits(qm, st, path, &r, err);
    for (int l = 0; !rc && l < qm->cfg.n_layers; l++) rc = load_layer(qm, st, path, &r, mixed_bits, l, o, err);
    if (!rc) rc = load_tail(qm, st, path, &r, mixed_bits, o, err);
    if (!rc) rc = load_tokenizer(qm, st, path, err);
    if (rc) {
        flx_qmodel_free(qm);
        return rc;
    }
    return FLX_OK;
}

/* ---------------------------------------------------------------- int8 codes */

int flx_qtensor_is_int(const flx_qtensor *t)
{
    return t->q != NULL || t->nib != NULL;
}

void flx_qtensor_rows(const flx_qtensor *t, int64_t row0, int64_t n_rows, int8_t *dst)
{
    const int64_t n_in = t->n_in;
    if (t->q) {
        memcpy(dst, t->q + row0 * n_in, (size_t)(n_rows * n_in));
        return;
    }
    const int64_t rb = (n_in + 1) / 2;
    for (int64_t r = 0; r < n_rows; r++)
        flx_unpack_int4(t->nib + (row0 + r) * rb, (size_t)n_in, 1, dst + r * n_in);
}

static flx_qtensor *model_tensor(flx_qmodel *qm, int i)
{
    return i < qm->cfg.n_layers * 7 ? layer_tensor(&qm->layers[i / 7], i % 7) : &qm->head;
}

int flx_qmodel_unpack(flx_qmodel *qm, flx_pool *pool, flx_error *err)
{
    for (int i = 0; qm->layers && i <= qm->cfg.n_layers * 7; i++) {
        flx_qtensor *t = model_tensor(qm, i);
        if (t->q || !t->nib) continue;
        int rc = unpack_codes(qm, t, t->nib, 1, 0, pool, "quantized model", "codes", err);
        if (rc) {
            t->q = NULL;
            return rc;
        }
    }
    return FLX_OK;
}

void flx_qtensor_release(const flx_qmodel *qm, const flx_qtensor *t)
{
    const flx_mapped_file *map = qm->st_file ? &qm->st_file->map : NULL;
    if (!t->nib || !map || t->nib < map->data || t->nib >= map->data + map->bytes) return;
    flx_mapped_release(map, (size_t)(t->nib - map->data), (size_t)t->n_out * (size_t)((t->n_in + 1) / 2));
}

int flx_qmodel_is_file(const char *path)
{
    if (!path || flx_is_dir(path) || !flx_file_exists(path)) return 0;
    flx_safetensors st;
    flx_error e;
    if (flx_st_open(&st, path, &e) != FLX_OK) return 0;
    const char *f = flx_st_meta(&st, "format");
    int yes = f && !strcmp(f, "flxq");
    flx_st_close(&st);
    return yes;
}
