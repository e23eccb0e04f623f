// top_rope_pref.cpp -- synthesis/cosim top: rotate-half RoPE (docs/kernels.md 6).
#include "flx_tops.h"

namespace flx_tops {

void top_rope_pref(stream<vector<float, 8> > &x, stream<vector<float, 8> > &y,
                   const float sin_tab[16][32], const float cos_tab[16][32], unsigned first_block,
                   unsigned n_blocks, unsigned n_heads)
{
#pragma HLS TOP name = top_rope_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::rope_pref<rope_cfg>(x, y, sin_tab, cos_tab, first_block, n_blocks, n_heads);
}

}  // namespace flx_tops
