// top_gemm_i4_pref.cpp -- synthesis/cosim top: INT4 x INT4 prefill GEMM, PE_i4xi4_pack_2x2 (docs/kernels.md 3.1).
#include "flx_tops.h"

namespace flx_tops {

void top_gemm_i4_pref(stream<vector<ap_int<4>, 8> > &a, stream<vector<ap_int<4>, 24> > &w,
                      stream<vector<ap_int<19>, 8> > &acc, unsigned n_blocks, unsigned k_dim,
                      unsigned n_out)
{
#pragma HLS TOP name = top_gemm_i4_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::gemm_i4_pref<gemm_i4_pref_cfg>(a, w, acc, n_blocks, k_dim, n_out);
}

}  // namespace flx_tops
