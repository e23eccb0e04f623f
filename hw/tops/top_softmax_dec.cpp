// top_softmax_dec.cpp -- synthesis/cosim top: decode attention softmax (docs/kernels.md 4.2).
#include "flx_tops.h"

namespace flx_tops {

void top_softmax_dec(stream<vector<float, 1> > &scores, stream<vector<float, 1> > &p,
                     unsigned n_iters, unsigned n)
{
#pragma HLS TOP name = top_softmax_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::softmax_dec<softmax_dec_cfg>(scores, p, n_iters, n);
}

}  // namespace flx_tops
