// top_rmsnorm_dec.cpp -- synthesis/cosim top: decode RMSNorm (docs/kernels.md 5).
#include "flx_tops.h"

namespace flx_tops {

void top_rmsnorm_dec(stream<vector<float, 8> > &x, stream<vector<float, 8> > &gamma,
                     stream<vector<float, 8> > &y)
{
#pragma HLS TOP name = top_rmsnorm_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::rmsnorm_dec<rmsnorm_dec_cfg>(x, gamma, y);
}

}  // namespace flx_tops
