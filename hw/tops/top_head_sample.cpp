// top_head_sample.cpp -- the tail of a decode step: LN2, lm_head, top-5
// sampling, embedding fetch (hw/kernels/layer_dec.h head_sample_dec), over
// FLX_HEAD_VOCAB rows (hw/tops/flx_tops_layer.h: 131072 by default, 1024 in
// the meson build's tests); every pointer an m_axi port.
#include "flx_tops_layer.h"

namespace flx_tops {

void top_head_sample(const float *hidden, const float *gamma, const dec_word *w0, const dec_word *w1,
                     const dec_word *w2, const dec_word *w3, const dec_word *w4, const dec_word *w5,
                     const dec_word *w6, const dec_word *w7, const dec_word *w8, const dec_word *w9,
                     const dec_word *w10, const dec_word *w11, const dec_word *w12, const dec_word *w13,
                     const dec_word *w14, const dec_word *w15, const float *s_sum, const float *vocab_lib,
                     float r, float *logits, float *probs, int *out, float *next_x)
{
#pragma HLS TOP name = top_head_sample
#pragma HLS INTERFACE mode = m_axi port = hidden bundle = hidden offset = slave
#pragma HLS INTERFACE mode = m_axi port = gamma bundle = gamma offset = slave
#pragma HLS INTERFACE mode = m_axi port = w0 bundle = w0 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w1 bundle = w1 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w2 bundle = w2 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w3 bundle = w3 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w4 bundle = w4 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w5 bundle = w5 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w6 bundle = w6 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w7 bundle = w7 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w8 bundle = w8 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w9 bundle = w9 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w10 bundle = w10 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w11 bundle = w11 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w12 bundle = w12 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w13 bundle = w13 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w14 bundle = w14 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w15 bundle = w15 offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_sum bundle = s_sum offset = slave
#pragma HLS INTERFACE mode = m_axi port = vocab_lib bundle = vocab_lib offset = slave
#pragma HLS INTERFACE mode = m_axi port = logits bundle = logits offset = slave
#pragma HLS INTERFACE mode = m_axi port = probs bundle = probs offset = slave
#pragma HLS INTERFACE mode = m_axi port = out bundle = out offset = slave
#pragma HLS INTERFACE mode = m_axi port = next_x bundle = next_x offset = slave
#pragma HLS INTERFACE mode = s_axilite port = r
#pragma HLS INTERFACE mode = s_axilite port = return
    dec_ports p;
    const dec_word *lanes[16] = {w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15};
    for (unsigned b = 0; b < 16; b++) p.w[b] = lanes[b];
    p.ws = s_sum;
    p.wsum = s_sum + head_sample_cfg::vocab;
    flx_hls::head_sample_dec<head_sample_cfg>(hidden, gamma, p, vocab_lib, r, logits, probs, out, next_x);
}

}  // namespace flx_tops
