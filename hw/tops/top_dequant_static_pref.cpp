// top_dequant_static_pref.cpp -- synthesis/cosim top: static per-head dequantizer (docs/kernels.md 2.4).
#include "flx_tops.h"

namespace flx_tops {

void top_dequant_static_pref(stream<vector<ap_int<22>, 8> > &acc, stream<vector<float, 8> > &y,
                             const float in_s[32], const float w_s[8], unsigned n_blocks)
{
#pragma HLS TOP name = top_dequant_static_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::dequant_static_pref<dequant_static_cfg>(acc, y, in_s, w_s, n_blocks);
}

}  // namespace flx_tops
