/* The FlexLLM W4A4 decode (reference-design §3.4; production top level
 * SpinQuant_Decoding_mem_opt) one token at a time, and the host flow that
 * joins prefill and decode (reference-design §3.3 "Host flow"). */
#include "flx_emu.h"
#include "flx_qmodel.h"
#include "decode_kv.h"

#include <stdlib.h>
#include <string.h>

static int log2_ceil(int64_t n)
{
    int l = 0;
    while (((int64_t)1 << l) < n) l++;
    return l;
}

typedef struct {
    float   *x, *h, *k, *v, *q, *o, *g, *u, *sc;
    int8_t  *k8, *v8, *q8, *p8, *qa;
    int32_t *acc, *acc_o;
    float    s, b;
} dec_bufs;

static void dec_free(dec_bufs *b)
{
    free(b->x); free(b->h); free(b->k); free(b->v); free(b->q); free(b->o); free(b->g);
    free(b->u); free(b->sc); free(b->k8); free(b->v8); free(b->q8); free(b->p8); free(b->qa);
    free(b->acc); free(b->acc_o);
}

/* decode GEMV: quantize one vector, INT4 GEMV on the L = 13 engine, dequant;
 * on the int8 codes, or rows read back from the engine's packed copy wp
 * when the model has none (a lazy load) */
static int gemv(float *y, const float *x, const flx_qtensor *w, const flx_emu_wpack *wp, int bits,
                dec_bufs *b, const flx_emu_fp *fp, flx_pool *pool, const char *name, int layer,
                flx_error *err)
{
    flx_emu_quant_asym(b->qa, &b->s, &b->b, x, 1, w->n_in, 4, fp);
    int64_t wr = flx_emu_gemm_i4_wp(b->acc, b->qa, w->q, wp, 1, w->n_out, w->n_in, bits, pool);
    if (wr < 0) return flx_fail(err, FLX_ENOMEM, "decode layer %d %s: out of memory", layer, name);
    if (wr > 0)
        return flx_fail(err, FLX_ENUMERIC, "decode layer %d %s: accumulator overflow", layer, name);
    flx_emu_dequant(y, b->acc, &b->s, &b->b, w->scale, w->wsum, 1, w->n_out, fp);
    return FLX_OK;
}

int flx_emu_decode_step(const flx_emu_engine *e, float *logits, flx_emu_kv *kv,
                        int32_t token, int64_t pos, flx_pool *pool, flx_error *err)
{
    return flx_emu_decode_step_ex(e, logits, NULL, kv, token, pos, pool, err);
}

int flx_emu_decode_step_ex(const flx_emu_engine *e, float *logits, float *hidden,
                           flx_emu_kv *kv, int32_t token, int64_t pos, flx_pool *pool,
                           flx_error *err)
{
    const flx_qmodel *qm = e->qm;
    const flx_llama_config *c = &qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t D = c->d_model, hd = c->head_dim, KV = (int64_t)c->n_kv_heads * hd;
    const int64_t F = c->d_ff, V = c->n_vocab, S = pos + 1;
    const int G = c->n_heads / c->n_kv_heads;
    const int bits = log2_ceil(D > F ? D : F) + 8;       /* every decode GEMV: L = 13 */
    if (pos < 0 || pos >= e->max_pos || pos >= kv->cap)
        return flx_fail(err, FLX_EINVAL, "decode: position %lld outside the table (%lld) or KV "
                        "cache (%lld)", (long long)pos, (long long)e->max_pos, (long long)kv->cap);
    const int64_t W = (F > V ? F : V) > D ? (F > V ? F : V) : D;
    dec_bufs b;
    memset(&b, 0, sizeof b);
    b.x = malloc((size_t)D * 4); b.h = malloc((size_t)D * 4); b.k = malloc((size_t)KV * 4);
    b.v = malloc((size_t)KV * 4); b.q = malloc((size_t)D * 4); b.o = malloc((size_t)D * 4);
    b.g = malloc((size_t)F * 4); b.u = malloc((size_t)F * 4); b.sc = malloc((size_t)S * 4);
    b.k8 = malloc((size_t)KV); b.v8 = malloc((size_t)KV); b.q8 = malloc((size_t)D);
    b.p8 = malloc((size_t)S); b.qa = malloc((size_t)(F > D ? F : D));
    b.acc = malloc((size_t)(W > S ? W : S) * 4); b.acc_o = malloc((size_t)D * 4);
    int rc = FLX_OK;
    if (!b.x || !b.h || !b.k || !b.v || !b.q || !b.o || !b.g || !b.u || !b.sc || !b.k8 ||
        !b.v8 || !b.q8 || !b.p8 || !b.qa || !b.acc || !b.acc_o)
        rc = flx_fail(err, FLX_ENOMEM, "decode: out of memory");
    if (!rc) rc = flx_emu_embed(b.x, qm->tok_embd, V, D, token, err);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        const flx_qlayer *L = &qm->layers[l];
        const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
        const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
        const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
        const float *as = e->att_scales + ((int64_t)l * 4 + 3) * c->n_heads;
        flx_emu_rmsnorm_dec(b.h, b.x, L->attn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        /* the fused [K;V] GEMV computes each channel exactly as two GEMVs */
        if ((rc = gemv(b.k, b.h, &L->wk, &e->wpack[l * 7 + 1], bits, &b, fp, pool, "wk", l, err)) ||
            (rc = gemv(b.v, b.h, &L->wv, &e->wpack[l * 7 + 2], bits, &b, fp, pool, "wv", l, err)) ||
            (rc = gemv(b.q, b.h, &L->wq, &e->wpack[l * 7 + 0], bits, &b, fp, pool, "wq", l, err)))
            break;
        flx_emu_dec_rope_quant_store(e, kv, l, pos, b.k, b.v, b.q, b.k8, b.v8, b.q8);
        /* attention over S = pos + 1 keys, the current one included; head
         * kvh's keys (values) are S rows of hd bytes (head-major cache) */
        for (int h = 0; h < c->n_heads && !rc; h++) {
            int kvh = h / G;
            const int8_t *kc = kv->k + flx_emu_kv_head_offset(kv, l, kvh);
            const int8_t *vc = kv->v + flx_emu_kv_head_offset(kv, l, kvh);
            int64_t w = flx_emu_qk_i8(b.acc, S, b.q8 + h * hd, D, kc, hd, 1, S, (int)hd, 22);
            flx_emu_dequant_static(b.sc, b.acc, 1, 1, (int)S, &qs[h], &ks[kvh], 1, fp);
            flx_emu_softmax_dec(b.sc, S, fp);
            flx_emu_quant_static(b.p8, b.sc, 1, 1, (int)S, &as[h], 1.0f, 8, 0, fp);
            int64_t w2 = flx_emu_av_u8i8(b.acc_o + h * hd, D, b.p8, S, 1, vc, hd, 1, S, (int)hd, 27);
            if (w || w2)
                rc = flx_fail(err, w < 0 || w2 < 0 ? FLX_ENOMEM : FLX_ENUMERIC,
                              "decode layer %d head %d: attention accumulator failure", l, h);
        }
        if (rc) break;
        flx_emu_dequant_static(b.o, b.acc_o, 1, c->n_heads, (int)hd, as, vs, c->n_kv_heads, fp);
        if ((rc = gemv(b.h, b.o, &L->wo, &e->wpack[l * 7 + 3], bits, &b, fp, pool, "wo", l, err))) break;
        flx_emu_residual(b.x, b.h, b.x, D, fp);
        flx_emu_rmsnorm_dec(b.h, b.x, L->ffn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        if ((rc = gemv(b.g, b.h, &L->w_gate, &e->wpack[l * 7 + 4], bits, &b, fp, pool, "w_gate", l, err)) ||
            (rc = gemv(b.u, b.h, &L->w_up, &e->wpack[l * 7 + 5], bits, &b, fp, pool, "w_up", l, err)))
            break;
        flx_emu_silu_gate(b.g, b.g, b.u, F, fp);
        flx_emu_fht(b.g, F, e->fht_scale, fp);
        if ((rc = gemv(b.h, b.g, &L->w_down, &e->wpack[l * 7 + 6], bits, &b, fp, pool, "w_down", l, err))) break;
        flx_emu_residual(b.x, b.h, b.x, D, fp);
        for (int64_t i = 0; i < D && !rc; i++)
            if (!isfinite(b.x[i]))
                rc = flx_fail(err, FLX_ENUMERIC, "decode layer %d output: non-finite value at %lld",
                              l, (long long)i);
    }
    if (!rc && hidden) memcpy(hidden, b.x, (size_t)D * sizeof(float));
    if (!rc && logits) {
        flx_emu_rmsnorm_dec(b.h, b.x, qm->out_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
        rc = gemv(logits, b.h, &qm->head, &e->wpack[c->n_layers * 7], bits, &b, fp, pool, "head", c->n_layers, err);
    }
    if (!rc && logits) {
        /* padded vocabulary rows: zero weights give logit +0 on hardware
         * (reference-design §6.6); masked unless reproducing the reference */
        float pad = e->opts.reference_quirks ? 0.0f : -1e32f;
        for (int64_t i = V; i < e->n_vocab_pad; i++) logits[i] = pad;
    }
    dec_free(&b);
    return rc;
}

int flx_emu_generate(const flx_emu_engine *e, const int32_t *prompt, int64_t n_prompt,
                     int64_t n_new, uint64_t seed, int32_t stop_id, flx_emu_token_fn cb,
                     void *ctx, flx_pool *pool, flx_error *err)
{
    if (n_prompt < 1) return flx_fail(err, FLX_EINVAL, "generate: empty prompt");
    if (n_prompt + n_new > e->max_pos)
        return flx_fail(err, FLX_EINVAL, "generate: %lld prompt + %lld new tokens exceed %lld "
                        "positions", (long long)n_prompt, (long long)n_new, (long long)e->max_pos);
    flx_emu_kv kv;
    int rc = flx_emu_kv_init(&kv, e, n_prompt + n_new, err);
    if (rc) return rc;
    /* the fast decode step: weights packed once for the whole generation */
    flx_emu_decoder dec;
    if ((rc = flx_emu_decoder_init(&dec, e, pool, err))) {
        flx_emu_kv_free(&kv);
        return rc;
    }
    float *logits = malloc((size_t)e->n_vocab_pad * sizeof(float));
    if (!logits) {
        flx_emu_decoder_free(&dec);
        flx_emu_kv_free(&kv);
        return flx_fail(err, FLX_ENOMEM, "generate: out of memory");
    }
    /* prefill all prompt tokens but the last; its K/V (positions < n) are
     * handed to decode, which starts from the last prompt token */
    const int64_t n = n_prompt - 1;
    if (n > 0) rc = flx_emu_prefill(e, NULL, &kv, prompt, n, pool, err);
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    int32_t token = prompt[n];
    for (int64_t step = 0; step < n_new && !rc; step++) {
        rc = flx_emu_decoder_step(&dec, logits, NULL, &kv, token, n + step, pool, err);
        if (rc) break;
        float r = (float)flx_rng_uniform(&rng);
        flx_emu_topk tk;
        if (flx_emu_topk_sampling(&tk, logits, e->n_vocab_pad, e->opts.sample_lanes, e->opts.top_k,
                                  r, &e->opts.fp) || tk.token < 0) {
            rc = flx_fail(err, FLX_ENUMERIC, "generate: sampling found no token at step %lld",
                          (long long)step);
            break;
        }
        if (cb && cb(ctx, step, &tk, r)) break;
        token = tk.token;
        if (stop_id >= 0 && token == stop_id) break;
    }
    free(logits);
    flx_emu_decoder_free(&dec);
    flx_emu_kv_free(&kv);
    return rc;
}
