// top_quant_static_q.cpp -- synthesis/cosim top: static INT8 quantizer of Q (docs/kernels.md 2.3).
#include "flx_tops.h"

namespace flx_tops {

void top_quant_static_q(stream<vector<float, 8> > &x, stream<vector<ap_int<8>, 8> > &q,
                        const float scale[32], float mha_scale_factor, unsigned n_blocks)
{
#pragma HLS TOP name = top_quant_static_q
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::quant_static_pref<quant_static_q_cfg>(x, q, scale, mha_scale_factor, n_blocks);
}

}  // namespace flx_tops
