// top_fht_dec.cpp -- synthesis/cosim top: FHT, the online R4 rotation (docs/kernels.md 8).
#include "flx_tops.h"

namespace flx_tops {

void top_fht_dec(stream<vector<float, 16> > &x, stream<vector<float, 16> > &y, float scale_factor)
{
#pragma HLS TOP name = top_fht_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::fht_dec<fht_cfg>(x, y, scale_factor);
}

}  // namespace flx_tops
