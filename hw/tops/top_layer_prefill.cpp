// top_layer_prefill.cpp -- one prefill decoder layer over one 16-token call
// at positions pos0 .. pos0+15 (two token blocks of TP = 8;
// hw/kernels/layer_pref.h), attending the keys of the earlier calls in the
// K/V caches; every pointer an m_axi port (hw/link/u280_prefill.cfg maps
// them as reference-design §5.2's prefill link).
#include "flx_tops_layer.h"

namespace flx_tops {

void top_layer_prefill(float *io, const float *gamma, const float *att, const float *rope,
                       const pref_word *w_kq, const float *s_kq, const pref_word *w_vo, const float *s_vo,
                       const pref_word *w_gate, const float *s_gate, const pref_word *w_up, const float *s_up,
                       const pref_word *w_down, const float *s_down, ap_int<8> *kcache, ap_int<8> *vcache,
                       unsigned pos0)
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
#pragma HLS INTERFACE mode = m_axi port = w_gate bundle = w_gate offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_gate bundle = s_gate offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_up bundle = w_up offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_up bundle = s_up offset = slave
#pragma HLS INTERFACE mode = m_axi port = w_down bundle = w_down offset = slave
#pragma HLS INTERFACE mode = m_axi port = s_down bundle = s_down offset = slave
#pragma HLS INTERFACE mode = m_axi port = kcache bundle = kcache offset = slave
#pragma HLS INTERFACE mode = m_axi port = vcache bundle = vcache offset = slave
#pragma HLS INTERFACE mode = s_axilite port = pos0
#pragma HLS INTERFACE mode = s_axilite port = return
    typedef layer_prefill_map M;
    typedef flx_hls::pref_linear_ports<24> P;
    // [K | Q] share w_kq / s_kq, [V | O] share w_vo / s_vo (reference-design §1.4)
    P wk = {w_kq, s_kq, s_kq + 512}, wq = {w_kq + M::words(512, 2048), s_kq + 1024, s_kq + 1024 + 2048};
    P wv = {w_vo, s_vo, s_vo + 512}, wo = {w_vo + M::words(512, 2048), s_vo + 1024, s_vo + 1024 + 2048};
    P gate = {w_gate, s_gate, s_gate + 8192}, up = {w_up, s_up, s_up + 8192};
    P down = {w_down, s_down, s_down + 2048};
    const float(*sin_tab)[32] = (const float(*)[32])rope;
    const float(*cos_tab)[32] = (const float(*)[32])(rope + 2048 * 32);
    flx_hls::decoder_layer_pref<layer_prefill_cfg>(io, io + 16 * 2048, gamma, gamma + 2048, wk, wv, wq, wo, gate,
                                                   up, down, att, att + 32, att + 64, att + 96, sin_tab, cos_tab,
                                                   kcache, vcache, 2, pos0 / 8);
}

}  // namespace flx_tops
