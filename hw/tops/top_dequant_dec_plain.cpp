// top_dequant_dec_plain.cpp -- synthesis/cosim top: plain decode dequantizer (docs/kernels.md 2.2).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_dequant_dec_plain(stream<vector<ap_int<21>, 16> > &acc, stream<vector<float, 2> > &s_b,
                           stream<vector<float, 16> > &ws, stream<vector<float, 16> > &wsum,
                           stream<vector<float, 16> > &y, unsigned beats)
{
#pragma HLS TOP name = top_dequant_dec_plain
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::dequant_dec_plain<dequant_dec_plain_cfg>(acc, s_b, ws, wsum, y, beats);
}

}  // namespace flx_tops
