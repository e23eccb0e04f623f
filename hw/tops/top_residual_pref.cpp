// top_residual_pref.cpp -- synthesis/cosim top: prefill residual add, token-parallel (docs/kernels.md 7).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_residual_pref(stream<vector<float, 8> > &in, stream<vector<float, 8> > &res,
                       stream<vector<float, 8> > &y, unsigned beats)
{
#pragma HLS TOP name = top_residual_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::residual<residual_pref_cfg>(in, res, y, beats);
}

}  // namespace flx_tops
