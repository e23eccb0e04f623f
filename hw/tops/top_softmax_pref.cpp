// top_softmax_pref.cpp -- synthesis/cosim top: causal mask + prefill softmax (docs/kernels.md 4.1, 4.2).
#include "flx_tops.h"

namespace flx_tops {

void top_softmax_pref(stream<vector<float, 8> > &scores, stream<vector<float, 8> > &p,
                      unsigned first_block, unsigned n_blocks, unsigned n_heads, unsigned seq_len)
{
#pragma HLS TOP name = top_softmax_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    stream<vector<float, 8> > masked("masked");
#pragma HLS STREAM variable = masked depth = 2
#pragma HLS DATAFLOW
    flx_hls::causal_mask_pref<causal_mask_cfg>(scores, masked, first_block, n_blocks, n_heads, seq_len);
    flx_hls::softmax_pref<softmax_pref_cfg>(masked, p, n_blocks, n_heads, seq_len);
}

}  // namespace flx_tops
