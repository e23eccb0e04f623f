/* pad.c -- zero-padding of the feed-forward width d_ff to a larger size
 * (the next power of two, so that the online R4 can be FlexLLM's FHT).
 *
 * The padded channels have zero rows in W_gate and W_up and zero columns in
 * W_down: their gate and up outputs are exactly 0, silu(0) * 0 = 0, and
 * their down_proj terms are 0 * 0 appended after the real ones, so the
 * float model computes the same function (and, with a sum that runs over
 * the inputs in order, the same bits; tests/quant/test_pad.c checks the
 * logits bit for bit). */
#include "flx_rotate.h"

#include <string.h>

int32_t flx_next_pow2(int32_t n)
{
    int32_t p = 1;
    while (p < n && p <= INT32_MAX / 2) p *= 2;
    return p;
}

int flx_model_pad_dff(flx_model *m, int32_t d_ff_new, flx_error *err)
{
    flx_llama_config *c = &m->cfg;
    const int32_t F = c->d_ff, D = c->d_model;
    if (d_ff_new < F)
        return flx_fail(err, FLX_EINVAL, "cannot pad d_ff %d down to %d", (int)F, (int)d_ff_new);
    if (d_ff_new == F) return FLX_OK;
    if (d_ff_new > (1 << 20))
        return flx_fail(err, FLX_EINVAL, "padded d_ff %d is too large", (int)d_ff_new);
    for (int l = 0; l < c->n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        const size_t rows_bytes = (size_t)d_ff_new * D * sizeof(float);
        float *g = flx_model_alloc(m, rows_bytes), *u = flx_model_alloc(m, rows_bytes);
        float *d = flx_model_alloc(m, rows_bytes);
        if (!g || !u || !d)
            return flx_fail(err, FLX_ENOMEM, "out of memory padding d_ff of layer %d", l);
        /* gate/up: (d_ff, d_model), the new rows are zeros */
        memset(g, 0, rows_bytes);
        memset(u, 0, rows_bytes);
        memcpy(g, L->w_gate, (size_t)F * D * sizeof(float));
        memcpy(u, L->w_up, (size_t)F * D * sizeof(float));
        /* down: (d_model, d_ff), each row gets zero columns at its end */
        memset(d, 0, rows_bytes);
        for (int32_t o = 0; o < D; o++)
            memcpy(d + (size_t)o * d_ff_new, L->w_down + (size_t)o * F, (size_t)F * sizeof(float));
        /* release the old buffers when the model owns them (else: a mapping) */
        const float *old[3] = {L->w_gate, L->w_up, L->w_down};
        L->w_gate = g;
        L->w_up = u;
        L->w_down = d;
        for (int i = 0; i < 3; i++) flx_model_release(m, old[i]);
    }
    c->d_ff = d_ff_new;
    return FLX_OK;
}
