// top_dequant_static_dec.cpp -- synthesis/cosim top: decode static dequantizer, head-parallel (docs/kernels.md 2.4).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_dequant_static_dec(stream<vector<ap_int<22>, 8> > &acc, stream<vector<float, 8> > &y,
                            const float in_s[32], const float w_s[8], unsigned n_per_head)
{
#pragma HLS TOP name = top_dequant_static_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::dequant_static_dec<dequant_static_dec_cfg>(acc, y, in_s, w_s, n_per_head);
}

}  // namespace flx_tops
