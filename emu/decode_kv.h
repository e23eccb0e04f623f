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
    const int64_t c0 = (int64_t)g0 * hd, qc0 = (int64_t)g0 * G * hd;
    const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
    const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
    const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
    if (ng <= 0) return;
    flx_emu_rope(k + c0, k + c0, ng, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_rope(q + qc0, q + qc0, ng * G, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_quant_static(k8 + c0, k + c0, 1, ng, hd, ks + g0, 1.0f, 8, 1, fp);
    flx_emu_quant_static(v8 + c0, v + c0, 1, ng, hd, vs + g0, 1.0f, 8, 1, fp);
    flx_emu_quant_static(q8 + qc0, q + qc0, 1, ng * G, hd, qs + (int64_t)g0 * G, e->q_factor, 8, 1, fp);
    /* the cache and the register are head-major (flx_emu_kv): per head, a
     * position is hd bytes and the register's 32 slots one block */
    const int64_t base = pos / 32 * 32, slots = kv->cap - base < 32 ? kv->cap - base : 32;
    for (int g = g0; g < g1; g++) {
        const int64_t head = flx_emu_kv_head_offset(kv, l, g);
        if (e->opts.reference_quirks) {
            int8_t *reg = kv->k_reg + ((int64_t)l * c->n_kv_heads + g) * 32 * hd;
            if (pos % 32 == 0) memset(reg, 0, (size_t)(32 * hd));
            memcpy(reg + (pos % 32) * hd, k8 + (int64_t)g * hd, (size_t)hd);
            memcpy(kv->k + head + base * hd, reg, (size_t)(slots * hd));
        } else {
            memcpy(kv->k + head + pos * hd, k8 + (int64_t)g * hd, (size_t)hd);
        }
        memcpy(kv->v + head + pos * hd, v8 + (int64_t)g * hd, (size_t)hd);
    }
}

/* All groups: what the reference step does. */
static inline void flx_emu_dec_rope_quant_store(const flx_emu_engine *e, flx_emu_kv *kv, int l,
                                                int64_t pos, float *k, float *v, float *q,
                                                int8_t *k8, int8_t *v8, int8_t *q8)
{
    flx_emu_dec_rope_quant_store_groups(e, kv, l, pos, k, v, q, k8, v8, q8, 0, e->qm->cfg.n_kv_heads);
}

#endif
