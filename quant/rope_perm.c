/* rope_perm.c -- a model whose RoPE pairs adjacent dimensions (2i, 2i+1),
 * as GGUF and llama2.c checkpoints store it, turned into the split-half
 * pairing (i, i + head_dim/2) of Hugging Face and of FlexLLM's RoPE kernel.
 *
 * Within every head the rows of Wq and Wk are reordered: new row i = old
 * row 2i, new row i + head_dim/2 = old row 2i+1.  Then q' = P q, and the
 * split-half rotation of q' applies to each pair the same two products and
 * one addition as the adjacent rotation of q, so RoPE(q') = P RoPE(q) bit
 * for bit; scores q'.k' = q.k sum the same products in another order, so
 * the logits agree up to float rounding (tests/quant/test_pad.c). */
#include "flx_rotate.h"

#include <string.h>

static int permute_heads(flx_model *m, const float **w, int32_t n_heads, flx_error *err)
{
    const int32_t hd = m->cfg.head_dim, d = m->cfg.d_model, half = hd / 2;
    float *nw = flx_model_alloc(m, (size_t)n_heads * hd * d * sizeof *nw);
    if (!nw) return flx_fail(err, FLX_ENOMEM, "out of memory permuting RoPE rows");
    for (int32_t h = 0; h < n_heads; h++)
        for (int32_t i = 0; i < half; i++) {
            const float *src = *w + ((size_t)h * hd + 2 * i) * d;
            memcpy(nw + ((size_t)h * hd + i) * d, src, (size_t)d * sizeof *nw);
            memcpy(nw + ((size_t)h * hd + i + half) * d, src + d, (size_t)d * sizeof *nw);
        }
    const float *old = *w;
    *w = nw;
    flx_model_release(m, old);
    return FLX_OK;
}

int flx_model_rope_to_split_half(flx_model *m, flx_error *err)
{
    if (m->cfg.rope_pairing == FLX_ROPE_SPLIT_HALF) return FLX_OK;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        int rc = permute_heads(m, &L->wq, m->cfg.n_heads, err);
        if (!rc) rc = permute_heads(m, &L->wk, m->cfg.n_kv_heads, err);
        if (rc) return rc;
    }
    m->cfg.rope_pairing = FLX_ROPE_SPLIT_HALF;
    return FLX_OK;
}
