// top_av_u8i8_pref.cpp -- synthesis/cosim top: uint8 x int8 A.V (docs/kernels.md 3.2).
#include "flx_tops.h"

namespace flx_tops {

void top_av_u8i8_pref(stream<vector<ap_int<8>, 8> > &p, stream<vector<ap_int<8>, 16> > &v,
                      stream<vector<ap_int<26>, 8> > &acc, unsigned n_blocks, unsigned n_heads,
                      unsigned seq_len)
{
#pragma HLS TOP name = top_av_u8i8_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::av_u8i8_pref<av_u8i8_cfg>(p, v, acc, n_blocks, n_heads, seq_len);
}

}  // namespace flx_tops
