// top_gemm_i4_dec.cpp -- synthesis/cosim top: INT4 x INT4 decode GEMV, PE_i4xi4_pack_1x2 (docs/kernels.md 3.1).
#include "flx_tops.h"

namespace flx_tops {

void top_gemm_i4_dec(stream<vector<ap_int<4>, 16> > &a, stream<vector<ap_int<4>, 64> > w[16],
                     stream<vector<ap_int<21>, 16> > &acc, unsigned k_dim, unsigned n_out)
{
#pragma HLS TOP name = top_gemm_i4_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::gemm_i4_dec<gemm_i4_dec_cfg>(a, w, acc, k_dim, n_out);
}

}  // namespace flx_tops
