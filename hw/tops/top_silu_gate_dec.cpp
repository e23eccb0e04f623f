// top_silu_gate_dec.cpp -- synthesis/cosim top: SiLU gate (docs/kernels.md 7).
#include "flx_tops.h"

namespace flx_tops {

void top_silu_gate_dec(stream<vector<float, 16> > &gate, stream<vector<float, 16> > &up,
                       stream<vector<float, 16> > &y, unsigned beats)
{
#pragma HLS TOP name = top_silu_gate_dec
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::silu_gate_dec<silu_gate_cfg>(gate, up, y, beats);
}

}  // namespace flx_tops
