// top_gemv_f32_dec.cpp -- synthesis/cosim top: fp32 GEMV of HMT (docs/kernels.md 3.3).
#include "flx_tops.h"

namespace flx_tops {

void top_gemv_f32_dec(stream<vector<float, 4> > &x, stream<vector<float, 8> > w[4],
                      stream<vector<float, 4> > &y, unsigned k_dim, unsigned n_out)
{
#pragma HLS TOP name = top_gemv_f32_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::gemv_f32_dec<gemv_f32_cfg>(x, w, y, k_dim, n_out);
}

}  // namespace flx_tops
