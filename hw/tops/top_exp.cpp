// top_exp.cpp -- synthesis/cosim top: flx-exp on a stream (docs/kernels.md 1.2).
#include "flx_tops.h"

namespace flx_tops {

void top_exp(stream<float> &x, stream<float> &y, unsigned n)
{
#pragma HLS TOP name = top_exp
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::exp_stage<exp_cfg>(x, y, n);
}

}  // namespace flx_tops
