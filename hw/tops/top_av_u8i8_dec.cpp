// top_av_u8i8_dec.cpp -- synthesis/cosim top: decode uint8 x int8 A.V of one head lane (docs/kernels.md 3.2).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_av_u8i8_dec(stream<ap_int<8> > &p, stream<vector<ap_int<8>, 32> > &v,
                     stream<ap_int<27> > &acc, unsigned n_keys)
{
#pragma HLS TOP name = top_av_u8i8_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::av_u8i8_dec<av_u8i8_dec_cfg>(p, v, acc, n_keys);
}

}  // namespace flx_tops
