// top_qk_i8_dec.cpp -- synthesis/cosim top: decode int8 QK^T of one head lane (docs/kernels.md 3.2).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_qk_i8_dec(stream<ap_int<8> > &q, stream<vector<ap_int<8>, 32> > &k,
                   stream<ap_int<22> > &acc, unsigned n_keys)
{
#pragma HLS TOP name = top_qk_i8_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::qk_i8_dec<qk_i8_dec_cfg>(q, k, acc, n_keys);
}

}  // namespace flx_tops
