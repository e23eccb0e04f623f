/* Private to the two decode steps (pipeline_decode.c, the reference, and
 * pipeline_decode_fast.c): the part of a decode layer between the K/V/Q
 * GEMVs and attention, written once so both steps run the same operations
 * in the same order. */
#ifndef FLX_EMU_DECODE_KV_H
#define FLX_EMU_DECODE_KV_H

#include "flx_emu.h"
#include "flx_qmodel.h"

#include <string.h>

/* Layer l at position pos: RoPE of k [n_kv_heads][hd] and q [n_heads][hd]
 * in place, the static quantizers (K_s, V_s; Q_s with sqrt_HEAD_DIM) into
 * k8, v8, q8, and the write of k8/v8 into the INT8 cache.  Under reference
 * quirks the K row goes through the 32-slot group register, which is zeroed
 * only at pos % 32 == 0 and written back whole (reference-design §6.2): the
 * first step after a prompt of n % 32 != 0 overwrites prompt keys
 * 32 * floor(n / 32) .. n - 1 with the register's zeros. */
static inline void flx_emu_dec_rope_quant_store(const flx_emu_engine *e, flx_emu_kv *kv, int l,
                                                int64_t pos, float *k, float *v, float *q,
                                                int8_t *k8, int8_t *v8, int8_t *q8)
{
    const flx_llama_config *c = &e->qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int hd = c->head_dim;
    const int64_t KV = (int64_t)c->n_kv_heads * hd;
    const float *qs = e->att_scales + ((int64_t)l * 4 + 0) * c->n_heads;
    const float *ks = e->att_scales + ((int64_t)l * 4 + 1) * c->n_heads;
    const float *vs = e->att_scales + ((int64_t)l * 4 + 2) * c->n_heads;
    flx_emu_rope(k, k, c->n_kv_heads, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_rope(q, q, c->n_heads, hd, e->rope_sin, e->rope_cos, pos, fp);
    flx_emu_quant_static(k8, k, 1, c->n_kv_heads, hd, ks, 1.0f, 8, 1, fp);
    flx_emu_quant_static(v8, v, 1, c->n_kv_heads, hd, vs, 1.0f, 8, 1, fp);
    flx_emu_quant_static(q8, q, 1, c->n_heads, hd, qs, e->q_factor, 8, 1, fp);
    int8_t *kc = kv->k + (int64_t)l * kv->cap * KV, *vc = kv->v + (int64_t)l * kv->cap * KV;
    if (e->opts.reference_quirks) {
        int8_t *reg = kv->k_reg + (int64_t)l * 32 * KV;
        if (pos % 32 == 0) memset(reg, 0, (size_t)(32 * KV));
        memcpy(reg + (pos % 32) * KV, k8, (size_t)KV);
        int64_t base = pos / 32 * 32;
        for (int64_t slot = 0; slot < 32 && base + slot < kv->cap; slot++)
            memcpy(kc + (base + slot) * KV, reg + slot * KV, (size_t)KV);
    } else {
        memcpy(kc + pos * KV, k8, (size_t)KV);
    }
    memcpy(vc + pos * KV, v8, (size_t)KV);
}

#endif
