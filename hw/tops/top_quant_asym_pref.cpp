// top_quant_asym_pref.cpp -- synthesis/cosim top: per-token asymmetric INT4 quantizer, prefill (docs/kernels.md 2.1).
#include "flx_tops.h"

namespace flx_tops {

void top_quant_asym_pref(stream<vector<float, 8> > &x, stream<vector<ap_int<4>, 8> > &q,
                         stream<vector<float, 2> > &s_b, unsigned n_blocks, unsigned k_dim)
{
#pragma HLS TOP name = top_quant_asym_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::quant_asym_pref<quant_asym_pref_cfg>(x, q, s_b, n_blocks, k_dim);
}

}  // namespace flx_tops
