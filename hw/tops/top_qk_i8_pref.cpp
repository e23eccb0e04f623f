// top_qk_i8_pref.cpp -- synthesis/cosim top: int8 QK^T, PE_i8xi8_pack_2x2 (docs/kernels.md 3.2).
#include "flx_tops.h"

namespace flx_tops {

void top_qk_i8_pref(stream<vector<ap_int<8>, 8> > &q, stream<vector<ap_int<8>, 16> > &k,
                    stream<vector<ap_int<22>, 8> > &acc, unsigned n_blocks, unsigned n_heads,
                    unsigned seq_len)
{
#pragma HLS TOP name = top_qk_i8_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::qk_i8_pref<qk_i8_cfg>(q, k, acc, n_blocks, n_heads, seq_len);
}

}  // namespace flx_tops
