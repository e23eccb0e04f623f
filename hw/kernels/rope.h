// rope.h -- table-driven rotate-half RoPE (docs/kernels.md 6; reference-design §1.7).
// Per head of head_dim = 2h channels, table row pos:
//   out[k]   = (x[k] * cos[pos][k]) - (x[k+h] * sin[pos][k])
//   out[k+h] = (x[k] * sin[pos][k]) + (x[k+h] * cos[pos][k])
// The first h beats are buffered; dims 0..h-1 leave during the second pass,
// dims h..2h-1 afterwards from a register, so the output is in natural order.
// Prefill position of lane t in token block M: 8M + t.
#ifndef FLX_HLS_ROPE_H
#define FLX_HLS_ROPE_H

#include "flx_hls.h"

namespace flx_hls {

struct rope_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL
    static const unsigned head_dim = 64;   // d
    static const unsigned max_pos = 2048;  // rows of PE_sin / PE_cos
};

// x, y: per token block and head, head_dim beats (channel, lanes = tokens)
// sin_tab, cos_tab: [max_pos][head_dim/2]; blocks first_block, first_block+1, ...
template <class CONFIG_T>
void rope_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &x,
               hls::stream<hls::vector<float, CONFIG_T::tp> > &y,
               const float sin_tab[CONFIG_T::max_pos][CONFIG_T::head_dim / 2],
               const float cos_tab[CONFIG_T::max_pos][CONFIG_T::head_dim / 2],
               unsigned first_block, unsigned n_blocks, unsigned n_heads)
{
    const unsigned TP = CONFIG_T::tp, H = CONFIG_T::head_dim / 2;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned hd = 0; hd < n_heads; hd++) {
            hls::vector<float, TP> lo[H], hi[H];
            for (unsigned k = 0; k < H; k++) {
#pragma HLS PIPELINE II = 1
                lo[k] = x.read();
            }
            for (unsigned k = 0; k < H; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, TP> b = x.read(), o;
                for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                    unsigned pos = (first_block + blk) * TP + t;
                    float sn = sin_tab[pos][k], cs = cos_tab[pos][k];
                    float a = lo[k][t];
                    o[t] = (a * cs) - (b[t] * sn);
                    hi[k][t] = (a * sn) + (b[t] * cs);
                }
                y.write(o);
            }
            for (unsigned k = 0; k < H; k++) {
#pragma HLS PIPELINE II = 1
                y.write(hi[k]);
            }
        }
}

}  // namespace flx_hls

#endif  // FLX_HLS_ROPE_H
