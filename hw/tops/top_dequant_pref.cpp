// top_dequant_pref.cpp -- synthesis/cosim top: INT4 GEMM dequantizer (docs/kernels.md 2.2).
#include "flx_tops.h"

namespace flx_tops {

void top_dequant_pref(stream<vector<ap_int<19>, 8> > &acc, stream<vector<float, 2> > &s_b,
                      stream<vector<float, 2> > &w_sb, stream<vector<float, 8> > &y,
                      unsigned n_blocks, unsigned n_out)
{
#pragma HLS TOP name = top_dequant_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::dequant_pref<dequant_pref_cfg>(acc, s_b, w_sb, y, n_blocks, n_out);
}

}  // namespace flx_tops
