// top_layer_prefill.cpp -- one prefill decoder layer over a chunk of
// n_tokens prompt rows at positions pos0 .. pos0+n_tokens-1: one DATAFLOW
// region over the chunk's token blocks with the barriers of reference-design
// §2.3 (hw/kernels/layer_pref.h), attending the keys of earlier chunks in
// the K/V caches; every pointer an m_axi port of its own bundle
// (hw/link/u280_prefill.cfg maps them as reference-design §5.2's prefill
// link: each FFN matrix on three weight ports plus its s/sum port).
#include "flx_tops_layer.h"

namespace flx_tops {

void top_layer_prefill(float *io, const float *gamma, const float *att, const float *rope,
                       const pref_word *w_kq, const float *s_kq, const pref_word *w_vo, const float *s_vo,
                       const pref_ffn_word *w_gate0, const pref_ffn_word *w_gate1, const pref_ffn_word *w_gate2,
                       const float *s_gate, const pref_ffn_word *w_up0, const pref_ffn_word *w_up1,
                       const pref_ffn_word *w_up2, const float *s_up, const pref_ffn_word *w_down0,
                       const pref_ffn_word *w_down1, const pref_ffn_word *w_down2, const float *s_down,
                       ap_int<8> *kcache, ap_int<8> *vcache, unsigned n_tokens, unsigned pos0)
{
#pragma HLS TOP name = top_layer_prefill
#pragma HLS INTERFACE mode = m_axi port = io bundle = io offset = slave
#pragma HLS INTERFACE mode = m_axi port = gamma bundle = gamma offset = slave
#pragma HLS INTERFACE mode = m_axi port = att bundle = att offset = slave
#pragma HLS INTERFACE mode = m_axi port = rope bundle = rope offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_kq bundle = w_kq offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_kq bundle = s_kq offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_vo bundle = w_vo offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_vo bundle = s_vo offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_gate0 bundle = w_gate0 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_gate1 bundle = w_gate1 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_gate2 bundle = w_gate2 offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_gate bundle = s_gate offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_up0 bundle = w_up0 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_up1 bundle = w_up1 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_up2 bundle = w_up2 offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_up bundle = s_up offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_down0 bundle = w_down0 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_down1 bundle = w_down1 offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_down2 bundle = w_down2 offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_down bundle = s_down offset = slave
#pragma HLS INTERFACE mode = m_axi port = kcache bundle = kcache offset = slave
#pragma HLS INTERFACE mode = m_axi port = vcache bundle = vcache offset = slave
#pragma HLS INTERFACE mode = s_axilite port = n_tokens
#pragma HLS INTERFACE mode = s_axilite port = pos0
#pragma HLS INTERFACE mode = s_axilite port = return
    if (n_tokens == 0 || n_tokens % 16 != 0 || pos0 % 16 != 0 || pos0 + n_tokens > layer_prefill_map::max_tokens)
        return;
    flx_hls::decoder_layer_pref<layer_prefill_cfg>(io, gamma, att, rope, w_kq, s_kq, w_vo, s_vo, w_gate0, w_gate1,
                                                   w_gate2, s_gate, w_up0, w_up1, w_up2, s_up, w_down0, w_down1,
                                                   w_down2, s_down, kcache, vcache, n_tokens / 8, pos0 / 8);
}

}  // namespace flx_tops
