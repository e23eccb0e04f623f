// top_silu_gate_pref.cpp -- synthesis/cosim top: prefill SiLU gate, token-parallel (docs/kernels.md 7).
#include "flx_tops_variants.h"

namespace flx_tops {

void top_silu_gate_pref(stream<vector<float, 8> > &gate, stream<vector<float, 8> > &up,
                        stream<vector<float, 8> > &y, unsigned n_blocks, unsigned n_channels)
{
#pragma HLS TOP name = top_silu_gate_pref
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::silu_gate_pref<silu_gate_pref_cfg>(gate, up, y, n_blocks, n_channels);
}

}  // namespace flx_tops
