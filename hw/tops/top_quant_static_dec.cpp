// top_quant_static_dec.cpp -- synthesis/cosim top: decode static Q quantizer, head-parallel (docs/kernels.md 2.3).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_quant_static_dec(stream<vector<float, 8> > &x, stream<vector<ap_int<8>, 8> > &q,
                          const float scale[32], float mha_scale_factor)
{
#pragma HLS TOP name = top_quant_static_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::quant_static_dec<quant_static_dec_cfg>(x, q, scale, mha_scale_factor);
}

}  // namespace flx_tops
