// top_layer_decode.cpp -- one decode decoder layer (hw/kernels/layer_dec.h).
#include "flx_tops_layer.h"

namespace flx_tops {

void top_layer_decode(const float x[2048], float y[2048], const float attn_norm[2048],
                      const float ffn_norm[2048], const dec_ports lin[6], const float att[4][32],
                      const float sin_tab[2048][32], const float cos_tab[2048][32], ap_int<8> *kcache,
                      ap_int<8> *vcache, ap_int<8> k_reg[32][512], unsigned pos)
{
#pragma HLS TOP name = top_layer_decode
    flx_hls::decoder_layer_dec<layer_decode_cfg>(x, y, attn_norm, ffn_norm, lin[0], lin[1], lin[2], lin[3],
                                                 lin[4], lin[5], att[0], att[1], att[2], att[3], sin_tab,
                                                 cos_tab, kcache, vcache, k_reg, pos);
}

}  // namespace flx_tops
