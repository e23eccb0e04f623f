// top_rmsnorm_pref.cpp -- synthesis/cosim top: prefill RMSNorm (docs/kernels.md 5).
#include "flx_tops.h"

namespace flx_tops {

void top_rmsnorm_pref(stream<vector<float, 8> > &x, stream<float> &gamma,
                      stream<vector<float, 8> > &y, unsigned n_blocks)
{
#pragma HLS TOP name = top_rmsnorm_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::rmsnorm_pref<rmsnorm_pref_cfg>(x, gamma, y, n_blocks);
}

}  // namespace flx_tops
