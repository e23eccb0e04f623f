/* The FlexLLM engine view of a quantized model: what the hardware can run,
 * its RoPE table and attention scales, and the INT8 KV cache. */
#include "flx_emu.h"
#include "flx_qmodel.h"

#include <cblas.h>

#include <stdlib.h>
#include <string.h>

void flx_emu_opts_default(flx_emu_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fp.exp = FLX_EMU_EXP_GLIBC;
    o->fp.ftz = 0;
    o->reference_quirks = 0;
    o->top_k = 5;
    o->norm_lanes = 8;
    o->sample_lanes = 16;
}

/* INT4 symmetric per-output-channel weights with stored sums: the only
 * weight format the FlexLLM linear layers read (reference-design §1.2, 3.2). */
static int check_tensor(const flx_qtensor *t, const char *name, int layer, int64_t n_out,
                        int64_t n_in, const char *recipe, flx_error *err)
{
    char where[64];
    if (layer >= 0) snprintf(where, sizeof where, "layer %d %s", layer, name);
    else snprintf(where, sizeof where, "%s", name);
    if (t->bits != 4 || !flx_qtensor_is_int(t))
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: %d-bit weights (recipe '%s'); the FlexLLM INT4 engine runs only "
                        "4-bit integer weights", where, t->bits, recipe);
    if (!t->symmetric || t->zero)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: asymmetric weights; the FlexLLM engine needs symmetric INT4", where);
    if (t->group_size != t->n_in)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: group size %d; the FlexLLM engine has one scale per output channel "
                        "(group size %d)", where, t->group_size, t->n_in);
    if (!t->scale || !t->wsum)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: missing %s; the dequantizer needs the per-row scale and the stored "
                        "sum of dequantized weights", where, t->scale ? "wsum" : "scale");
    if (t->n_out != n_out || t->n_in != n_in)
        return flx_fail(err, FLX_EFORMAT, "%s: shape (%d, %d), expected (%lld, %lld)", where,
                        t->n_out, t->n_in, (long long)n_out, (long long)n_in);
    return FLX_OK;
}

static const flx_qtensor *layer_weight(const flx_qlayer *L, int i)
{
    const flx_qtensor *w[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    return w[i];
}

/* i-th packed matrix: wq wk wv wo w_gate w_up w_down per layer, the head */
static const flx_qtensor *engine_tensor(const flx_qmodel *qm, int64_t i)
{
    return i < (int64_t)qm->cfg.n_layers * 7 ? layer_weight(&qm->layers[i / 7], (int)(i % 7)) : &qm->head;
}

typedef struct {
    flx_emu_engine *e;
    const int64_t *first;   /* [n_w + 1]: first 32-row block of each matrix */
    int64_t base;           /* block of the pool's item 0                   */
} pack_job;

static void pack_blocks(void *ctx, int64_t b0, int64_t b1, int thread_id)
{
    (void)thread_id;
    const pack_job *j = ctx;
    b0 += j->base;
    b1 += j->base;
    int64_t i = 0;
    for (int64_t b = b0; b < b1;) {
        while (b >= j->first[i + 1]) i++;
        int64_t end = b1 < j->first[i + 1] ? b1 : j->first[i + 1];
        const flx_qtensor *t = engine_tensor(j->e->qm, i);
        if (t->q) flx_emu_wpack_fill(&j->e->wpack[i], t->q, b - j->first[i], end - j->first[i]);
        else flx_emu_wpack_fill_nib(&j->e->wpack[i], t->nib, b - j->first[i], end - j->first[i]);
        b = end;
    }
}

static int is_pow2(int64_t v) { return v > 1 && !(v & (v - 1)); }

int flx_emu_engine_init(flx_emu_engine *e, const flx_qmodel *qm, const flx_emu_opts *o,
                        int64_t max_pos, flx_error *err)
{
    return flx_emu_engine_init_ex(e, qm, o, max_pos, NULL, err);
}

int flx_emu_engine_init_ex(flx_emu_engine *e, const flx_qmodel *qm, const flx_emu_opts *o,
                           int64_t max_pos, flx_pool *pool, flx_error *err)
{
    memset(e, 0, sizeof *e);
    const flx_llama_config *c = &qm->cfg;
    if (c->n_layers < 1 || c->d_model < 1 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->head_dim < 2 || c->d_ff < 2 || c->n_vocab < 1)
        return flx_fail(err, FLX_EFORMAT, "quantized model: invalid dimensions");
    if (c->head_dim % 2 || c->n_heads % c->n_kv_heads ||
        (int64_t)c->n_heads * c->head_dim != c->d_model)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model: heads %d x %d with %d KV heads do not tile d_model %d "
                        "as the FlexLLM attention needs", c->n_heads, c->head_dim,
                        c->n_kv_heads, c->d_model);
    if (!is_pow2(c->d_ff))
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model: d_ff %d is not a power of two; the online R4 FHT needs one",
                        c->d_ff);
    if (c->rope_pairing != FLX_ROPE_SPLIT_HALF)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model: RoPE pairs adjacent dimensions (2i, 2i+1), as GGUF/llama2.c "
                        "checkpoints do; the FlexLLM RoPE kernel pairs (i, i + head_dim/2): quantize "
                        "the Hugging Face checkpoint instead");
    if (c->d_model % o->norm_lanes || c->d_model % 4)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model: d_model %d does not split into %d RMSNorm lanes",
                        c->d_model, o->norm_lanes);
    if (!qm->r4_online)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model (recipe '%s'): no online R4 rotation; the FlexLLM "
                        "engine always applies the normalized FHT before down_proj",
                        qm->recipe);
    if (qm->r3_online)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model (recipe '%s'): online R3 (Hadamard on Q/K) is not part "
                        "of the FlexLLM engine", qm->recipe);
    if (!qm->has_attn_scales)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "quantized model (recipe '%s'): no static attention scales (q_s, k_s, "
                        "v_s, a_s); the FlexLLM engine quantizes Q/K/V/P with them", qm->recipe);
    if (!qm->tok_embd || !qm->layers)
        return flx_fail(err, FLX_EFORMAT, "quantized model: missing embedding or layers");
    if (o->top_k < 1 || o->top_k > FLX_EMU_TOPK_MAX || o->sample_lanes < 1 || o->sample_lanes > 64)
        return flx_fail(err, FLX_EINVAL, "engine options: top_k %d / sampler lanes %d out of range",
                        o->top_k, o->sample_lanes);
    const int64_t D = c->d_model, KV = (int64_t)c->n_kv_heads * c->head_dim, F = c->d_ff;
    for (int l = 0; l < c->n_layers; l++) {
        const flx_qlayer *L = &qm->layers[l];
        int rc;
        if ((rc = check_tensor(&L->wq, "wq", l, D, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->wk, "wk", l, KV, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->wv, "wv", l, KV, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->wo, "wo", l, D, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->w_gate, "w_gate", l, F, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->w_up, "w_up", l, F, D, qm->recipe, err)) ||
            (rc = check_tensor(&L->w_down, "w_down", l, D, F, qm->recipe, err)))
            return rc;
        float sc[4] = { L->q_s, L->k_s, L->v_s, L->a_s };
        for (int i = 0; i < 4; i++)
            if (!(sc[i] > 0.0f) || !isfinite(sc[i]))
                return flx_fail(err, FLX_EFORMAT,
                                "layer %d: attention scale %s = %g; static INT8 attention needs a "
                                "positive finite scale", l, (const char *[]){ "q_s", "k_s", "v_s", "a_s" }[i],
                                (double)sc[i]);
        if (!L->attn_norm || !L->ffn_norm)
            return flx_fail(err, FLX_EFORMAT, "layer %d: missing RMSNorm gains", l);
    }
    int rc = check_tensor(&qm->head, "head", -1, c->n_vocab, D, qm->recipe, err);
    if (rc) return rc;
    /* mixed activation bits: every linear of the hardware reads 4-bit
     * per-token inputs (the INT4 x INT4 PE arrays) */
    static const char *const in_names[4] = {"qkv", "o", "gate_up", "down"};
    for (int i = 0; qm->a_bits_of && i <= c->n_layers * 4; i++) {
        int32_t bits = qm->a_bits_of[i];
        if (bits <= 0 || bits == 4) continue;
        char where[64], what[32];
        if (i < c->n_layers * 4) snprintf(where, sizeof where, "layer %d %s input", i / 4, in_names[i % 4]);
        else snprintf(where, sizeof where, "head input");
        if (bits >= 16) snprintf(what, sizeof what, "float activations");
        else snprintf(what, sizeof what, "%d-bit activations", (int)bits);
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: %s (recipe '%s', mixed precision); the FlexLLM engine quantizes every linear "
                        "input to 4 bits (INT4 x INT4 PE arrays)", where, what, qm->recipe);
    }
    if (!qm->out_norm) return flx_fail(err, FLX_EFORMAT, "quantized model: missing final norm");
    /* the prefill pads a sequence to a multiple of 16 rows, and the padding
     * rows take RoPE positions too: cover them */
    max_pos = max_pos < 16 ? 16 : (max_pos + 15) / 16 * 16;

    e->qm = qm;
    e->opts = *o;
    e->max_pos = max_pos;
    int64_t vp = 1024;
    while (vp < c->n_vocab) vp <<= 1;
    e->n_vocab_pad = vp;
    e->fht_scale = (F == 8192) ? 90.50967f : (float)sqrt((double)F);   /* reference-design §0.2 constant */
    e->q_factor = (float)flx_attn_q_factor(c->head_dim);            /* sqrt_HEAD_DIM = 8 */
    const int64_t half = c->head_dim / 2;
    e->rope_sin = malloc((size_t)(max_pos * half) * sizeof(float));
    e->rope_cos = malloc((size_t)(max_pos * half) * sizeof(float));
    e->att_scales = malloc((size_t)c->n_layers * 4 * c->n_heads * sizeof(float));
    if (!e->rope_sin || !e->rope_cos || !e->att_scales) {
        flx_emu_engine_free(e);
        return flx_fail(err, FLX_ENOMEM, "engine tables: out of memory");
    }
    const double *inv = o->reference_quirks ? NULL : qm->rope_inv_freq;
    if (!o->reference_quirks && !inv) {
        flx_emu_engine_free(e);
        return flx_fail(err, FLX_EFORMAT, "quantized model: missing rope_inv_freq");
    }
    flx_emu_rope_table(e->rope_sin, e->rope_cos, max_pos, c->head_dim, inv);
    for (int l = 0; l < c->n_layers; l++) {
        const flx_qlayer *L = &qm->layers[l];
        float sc[4] = { L->q_s, L->k_s, L->v_s, L->a_s };
        for (int i = 0; i < 4; i++)
            for (int h = 0; h < c->n_heads; h++)   /* per-layer value replicated over heads */
                e->att_scales[((int64_t)l * 4 + i) * c->n_heads + h] = sc[i];
    }
    /* weights packed once, shared by the prefill GEMM (the VNNI / AMX paths
     * read nothing else; packing per call cost a copy of every weight per
     * window) and the fast decode GEMV; all matrices in one block on 2 MiB
     * pages, packed straight from the file's nibbles when the model was
     * loaded without int8 codes, blocks of 32 rows over the pool */
    {
        const int n_w = c->n_layers * 7 + 1;
        e->wpack = calloc((size_t)n_w, sizeof *e->wpack);
        int64_t *first = malloc((size_t)(n_w + 1) * sizeof *first);
        int64_t total = 0;
        for (int i = 0; i < n_w; i++) {
            const flx_qtensor *t = engine_tensor(qm, i);
            total += flx_emu_wpack_bytes(t->n_out, t->n_in);
        }
        e->wpack_mem = e->wpack && first ? flx_alloc_large((size_t)total) : NULL;
        if (!e->wpack_mem) {
            free(first);
            flx_emu_engine_free(e);
            return flx_fail(err, FLX_ENOMEM, "engine: out of memory for the packed weights (%lld bytes)",
                            (long long)total);
        }
        first[0] = 0;
        for (int64_t i = 0, off = 0; i < n_w; i++) {
            const flx_qtensor *t = engine_tensor(qm, i);
            flx_emu_wpack_place(&e->wpack[i], e->wpack_mem + off, t->n_out, t->n_in);
            off += flx_emu_wpack_bytes(t->n_out, t->n_in);
            first[i + 1] = first[i] + e->wpack[i].o32 / 32;
        }
        /* a layer at a time: the file's pages of its nibbles are not read
         * again (the engine reads only its packed copy), so they leave RSS
         * before the next layer's come in */
        for (int i0 = 0; i0 < n_w; i0 += 7) {
            int i1 = i0 + 7 < n_w ? i0 + 7 : n_w;
            pack_job pj = { e, first, first[i0] };
            flx_pool_for(pool, first[i1] - first[i0], 8, pack_blocks, &pj);
            for (int i = i0; i < i1; i++) flx_qtensor_release(qm, engine_tensor(qm, i));
        }
        free(first);
    }
    /* the exact sgemm paths must not start OpenBLAS threads of their own on
     * top of the caller's pool (they would fight for the same cores) */
    e->openblas_threads_before = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return FLX_OK;
}

void flx_emu_engine_free(flx_emu_engine *e)
{
    if (e->openblas_threads_before > 0) openblas_set_num_threads(e->openblas_threads_before);
    free(e->rope_sin);
    free(e->rope_cos);
    free(e->att_scales);
    free(e->wpack);        /* the matrices live in wpack_mem */
    free(e->wpack_mem);
    memset(e, 0, sizeof *e);
}

int flx_emu_kv_init(flx_emu_kv *kv, const flx_emu_engine *e, int64_t cap, flx_error *err)
{
    memset(kv, 0, sizeof *kv);
    const flx_llama_config *c = &e->qm->cfg;
    kv->n_layers = c->n_layers;
    kv->n_kv_heads = c->n_kv_heads;
    kv->head_dim = c->head_dim;
    kv->kv_dim = c->n_kv_heads * c->head_dim;
    kv->cap = cap;
    size_t n = (size_t)c->n_layers * (size_t)cap * (size_t)kv->kv_dim;
    kv->k = calloc(n ? n : 1, 1);
    kv->v = calloc(n ? n : 1, 1);
    kv->k_reg = calloc((size_t)c->n_layers * 32 * (size_t)kv->kv_dim, 1);
    if (!kv->k || !kv->v || !kv->k_reg) {
        flx_emu_kv_free(kv);
        return flx_fail(err, FLX_ENOMEM, "KV cache of %lld positions: out of memory",
                        (long long)cap);
    }
    return FLX_OK;
}

void flx_emu_kv_free(flx_emu_kv *kv)
{
    free(kv->k);
    free(kv->v);
    free(kv->k_reg);
    memset(kv, 0, sizeof *kv);
}

/* one cache (k or v) of a layer: head-major -> rows */
static void kv_heads_to_rows(const flx_emu_kv *kv, const int8_t *cache, int layer, int64_t pos0,
                             int64_t n, int8_t *rows)
{
    const int64_t hd = kv->head_dim;
    for (int h = 0; h < kv->n_kv_heads; h++) {
        const int8_t *src = cache + flx_emu_kv_head_offset(kv, layer, h) + pos0 * hd;
        for (int64_t t = 0; t < n; t++) memcpy(rows + t * kv->kv_dim + h * hd, src + t * hd, (size_t)hd);
    }
}

/* one cache (k or v) of a layer: rows -> head-major */
static void kv_rows_to_heads(const flx_emu_kv *kv, int8_t *cache, int layer, int64_t pos0,
                             int64_t n, const int8_t *rows)
{
    const int64_t hd = kv->head_dim;
    for (int h = 0; h < kv->n_kv_heads; h++) {
        int8_t *dst = cache + flx_emu_kv_head_offset(kv, layer, h) + pos0 * hd;
        for (int64_t t = 0; t < n; t++) memcpy(dst + t * hd, rows + t * kv->kv_dim + h * hd, (size_t)hd);
    }
}

void flx_emu_kv_get_rows(const flx_emu_kv *kv, int layer, int64_t pos0, int64_t n,
                         int8_t *k_rows, int8_t *v_rows)
{
    if (k_rows) kv_heads_to_rows(kv, kv->k, layer, pos0, n, k_rows);
    if (v_rows) kv_heads_to_rows(kv, kv->v, layer, pos0, n, v_rows);
}

void flx_emu_kv_put_rows(flx_emu_kv *kv, int layer, int64_t pos0, int64_t n,
                         const int8_t *k_rows, const int8_t *v_rows)
{
    if (k_rows) kv_rows_to_heads(kv, kv->k, layer, pos0, n, k_rows);
    if (v_rows) kv_rows_to_heads(kv, kv->v, layer, pos0, n, v_rows);
}
