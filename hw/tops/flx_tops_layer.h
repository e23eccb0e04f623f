// flx_tops_layer.h -- whole-layer tops: the decode decoder layer (spec 2.4)
// assembled from the kernels in hw/kernels/layer_dec.h, at the U280
// production configuration (config_u280_mem_opt).
#ifndef FLX_TOPS_LAYER_H
#define FLX_TOPS_LAYER_H

#include "../kernels/layer_dec.h"

namespace flx_tops {

typedef flx_hls::layer_dec_config layer_decode_cfg;   // D 2048, FF 8192, B 16, W 64, B_T 8, HP 8
typedef flx_hls::dec_linear_ports<16, 64> dec_ports;

// lin[0..5] = [K;V] (fused, 1024 outputs), Q, O, gate, up, down;
// att[0..3] = Q_s, K_s, V_s, A_s of the layer (32 entries each).
void top_layer_decode(const float x[2048], float y[2048], const float attn_norm[2048],
                      const float ffn_norm[2048], const dec_ports lin[6], const float att[4][32],
                      const float sin_tab[2048][32], const float cos_tab[2048][32], ap_int<8> *kcache,
                      ap_int<8> *vcache, ap_int<8> k_reg[32][512], unsigned pos);

}  // namespace flx_tops

#endif  // FLX_TOPS_LAYER_H
