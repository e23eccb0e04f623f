// top_residual_dec.cpp -- synthesis/cosim top: residual add (docs/kernels.md 7).
#include "flx_tops.h"

namespace flx_tops {

void top_residual_dec(stream<vector<float, 16> > &in, stream<vector<float, 16> > &res,
                      stream<vector<float, 16> > &y, unsigned beats)
{
#pragma HLS TOP name = top_residual_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::residual<residual_cfg>(in, res, y, beats);
}

}  // namespace flx_tops
