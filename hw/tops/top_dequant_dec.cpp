// top_dequant_dec.cpp -- synthesis/cosim top: decode bandwidth dequantizer (docs/kernels.md 2.2).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_dequant_dec(stream<vector<ap_int<21>, 16> > &acc, stream<vector<float, 2> > &s_b,
                     stream<vector<float, 2> > &w_sb, stream<vector<float, 16> > &y, unsigned n_out)
{
#pragma HLS TOP name = top_dequant_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::dequant_dec<dequant_dec_cfg>(acc, s_b, w_sb, y, n_out);
}

}  // namespace flx_tops
