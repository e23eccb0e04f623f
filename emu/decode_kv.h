/* Private to the two decode steps (pipeline_decode.c, the reference, and
 * pipeline_decode_fast.c): the part of a decode layer between the K/V/Q
 * GEMVs and attention, written once so both steps run the same operations
 * in the same order. */
#ifndef FLX_EMU_DECODE_KV_H
#define FLX_EMU_DECODE_KV_H

#include "flx_emu.h"
#include "flx_qmodel.h"

#include <string.h>

/* Layer l at position pos, KV groups g0 .. g1-1 (their K/V heads and their
 * n_heads / n_kv_heads query heads): RoPE of k [n_kv_heads][hd] and q
 * [n_heads][hd] in place, the static quantizers (K_s, V_s; Q_s with
 * sqrt_HEAD_DIM) into k8, v8, q8, and the write of k8/v8 into the INT8
 * cache.  Every operation is per head, so groups done apart give the bits
 * of all groups at once.  Under reference quirks the K row goes through the
 * 32-slot group register, which is zeroed only at pos % 32 == 0 and written
 * back whole (reference-design §6.2): the first step after a prompt of
 * n % 32 != 0 overwrites prompt keys 32 * floor(n / 32) .. n - 1 with the
 * register's zeros. */
static inline void flx_emu_dec_rope_quant_store_groups(const flx_emu_engine *e, flx_emu_kv *kv,
                                                       int l, int64_t pos, float *k, float *v,
                                                       float *q, int8_t *k8, int8_t *v8,
                                                       int8_t *q8, int g0, int g1)
{
    const flx_llama_config *c = &e->qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int hd = c->head_dim, G = c->n_heads / c->n_kv_heads, ng = g1 - g0;
    const int64_t KV = (int64_t)c->n_kv_heads * hd, c0 = (int64_t)g0 * hd, w = (int64_t)ng * hd;
    const int64_t qc0 = (int64_t)g0 * G * hd;
    const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
    const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
    const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
    if (ng <= 0) return;
    flx_emu_rope(k + c0, k + c0, ng, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_rope(q + qc0, q + qc0, ng * G, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_quant_static(k8 + c0, k + c0, 1, ng, hd, ks + g0, 1.0f, 8, 1, fp);
    flx_emu_quant_static(v8 + c0, v + c0, 1, ng, hd, vs + g0, 1.0f, 8, 1, fp);
    flx_emu_quant_static(q8 + qc0, q + qc0, 1, ng * G, hd, qs + (int64_t)g0 * G, e->q_factor, 8, 1, fp);
    int8_t *kc = kv->k + (int64_t)l * kv->cap * KV, *vc = kv->v + (int64_t)l * kv->cap * KV;
    if (e->opts.reference_quirks) {
        int8_t *reg = kv->k_reg + (int64_t)l * 32 * KV;
        if (pos % 32 == 0)
            for (int64_t slot = 0; slot < 32; slot++) memset(reg + slot * KV + c0, 0, (size_t)w);
        memcpy(reg + (pos % 32) * KV + c0, k8 + c0, (size_t)w);
        int64_t base = pos / 32 * 32;
        for (int64_t slot = 0; slot < 32 && base + slot < kv->cap; slot++)
            memcpy(kc + (base + slot) * KV + c0, reg + slot * KV + c0, (size_t)w);
    } else {
        memcpy(kc + pos * KV + c0, k8 + c0, (size_t)w);
    }
    memcpy(vc + pos * KV + c0, v8 + c0, (size_t)w);
}

/* All groups: what the reference step does. */
static inline void flx_emu_dec_rope_quant_store(const flx_emu_engine *e, flx_emu_kv *kv, int l,
                                                int64_t pos, float *k, float *v, float *q,
                                                int8_t *k8, int8_t *v8, int8_t *q8)
{
    flx_emu_dec_rope_quant_store_groups(e, kv, l, pos, k, v, q, k8, v8, q8, 0, e->qm->cfg.n_kv_heads);
}

#endif
