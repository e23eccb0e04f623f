// top_layer_decode.cpp -- one decode decoder layer (hw/kernels/layer_dec.h)
// with the memory ports of the production decode link: every pointer is an
// m_axi port in its own bundle (hw/link/u280_decode.cfg maps the bundles to
// HBM/DDR banks; hw/scripts/check_link.py checks that every port is mapped).
#include "flx_tops_layer.h"

namespace flx_tops {

void top_layer_decode(float *io, const float *gamma, const float *att, const float *rope,
                      const dec_word *w0, const dec_word *w1, const dec_word *w2, const dec_word *w3,
                      const dec_word *w4, const dec_word *w5, const dec_word *w6, const dec_word *w7,
                      const dec_word *w8, const dec_word *w9, const dec_word *w10, const dec_word *w11,
                      const dec_word *w12, const dec_word *w13, const dec_word *w14, const dec_word *w15,
                      const float *s_sum, ap_int<8> *kcache, ap_int<8> *vcache, unsigned pos,
                      unsigned layer)
{
#pragma HLS TOP name = top_layer_decode
#pragma HLS INTERFACE mode = m_axi port = io bundle = io offset = slave
#pragma HLS INTERFACE mode = m_axi port = gamma bundle = gamma offset = slave
#pragma HLS INTERFACE mode = m_axi port = att bundle = att offset = slave
#pragma HLS INTERFACE mode = m_axi port = rope bundle = rope offset = slave
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
#pragma HLS INTERFACE mode = m_axi port = kcache bundle = kcache offset = slave
#pragma HLS INTERFACE mode = m_axi port = vcache bundle = vcache offset = slave
#pragma HLS INTERFACE mode = s_axilite port = pos
#pragma HLS INTERFACE mode = s_axilite port = layer
#pragma HLS INTERFACE mode = s_axilite port = return
    typedef layer_decode_map M;
    static ap_int<8> k_reg[16][32][512];   // the reference's static K group registers, per layer
    const dec_word *lanes[16] = {w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15};
    dec_ports p[M::n_lin];
    for (unsigned i = 0; i < M::n_lin; i++) {
        for (unsigned b = 0; b < 16; b++) p[i].w[b] = lanes[b] + M::word_base(i);
        p[i].ws = s_sum + M::s_base(i);
        p[i].wsum = s_sum + M::s_base(i) + M::n_out(i);
    }
    const float(*sin_tab)[32] = (const float(*)[32])rope;
    const float(*cos_tab)[32] = (const float(*)[32])(rope + 2048 * 32);
    flx_hls::decoder_layer_dec<layer_decode_cfg>(io, io + 2048, gamma, gamma + 2048, p[0], p[1], p[2], p[3],
                                                 p[4], p[5], att, att + 32, att + 64, att + 96, sin_tab,
                                                 cos_tab, kcache, vcache, k_reg[layer % 16], pos);
}

}  // namespace flx_tops
