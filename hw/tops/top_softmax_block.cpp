// top_softmax_block.cpp -- synthesis/cosim top: block-partitioned softmax of HMT (docs/kernels.md 4.3).
#include "flx_tops.h"

namespace flx_tops {

void top_softmax_block(stream<vector<float, 4> > &x, stream<vector<float, 4> > &p, unsigned n,
                       float scale)
{
#pragma HLS TOP name = top_softmax_block
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::softmax_block<softmax_block_cfg>(x, p, n, scale);
}

}  // namespace flx_tops
