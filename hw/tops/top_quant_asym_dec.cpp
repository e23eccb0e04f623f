// top_quant_asym_dec.cpp -- synthesis/cosim top: per-token asymmetric INT4 quantizer, decode (docs/kernels.md 2.1).
#include "flx_tops.h"

namespace flx_tops {

void top_quant_asym_dec(stream<vector<float, 16> > &x, stream<vector<ap_int<4>, 16> > &q,
                        stream<vector<float, 2> > &s_b, unsigned k_dim)
{
#pragma HLS TOP name = top_quant_asym_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::quant_asym_dec<quant_asym_dec_cfg>(x, q, s_b, k_dim);
}

}  // namespace flx_tops
