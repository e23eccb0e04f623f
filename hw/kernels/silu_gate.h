// silu_gate.h -- SiLU of the gate projection times the up projection
// (docs/kernels.md 7; reference-design §1.9 `dec_Swish` + `dec_Gate_Layer_fp32xfp32`):
//   silu(g) = g / (1.0f + exp(-g))   (negate, exp, add, divide)
//   h = silu(g) * u                  (one multiply; commutative, so the
//                                     decode's (up, silu) order is the same)
#ifndef FLX_HLS_SILU_GATE_H
#define FLX_HLS_SILU_GATE_H

#include "flx_hls.h"

namespace flx_hls {

struct silu_gate_dec_config {
    static const unsigned b = 16;          // lanes
    static const int exp_impl = EXP_FLX;
};

template <class CONFIG_T>
void silu_gate_dec(hls::stream<hls::vector<float, CONFIG_T::b> > &gate,
                   hls::stream<hls::vector<float, CONFIG_T::b> > &up,
                   hls::stream<hls::vector<float, CONFIG_T::b> > &y, unsigned beats)
{
    const unsigned B = CONFIG_T::b;
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> g = gate.read(), u = up.read(), o;
        for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
            float x = g[i];
            float e = exp_sel<CONFIG_T::exp_impl>(-x);
            float s = x / (1.0f + e);
            o[i] = s * u[i];
        }
        y.write(o);
    }
}

// prefill (`pref_Swish` + `pref_Gate_Layer_fp32xfp32`): token-parallel
// beats (one channel, TP token lanes), the same operators per element; the
// prefill passes (silu(gate), up), a commutative product.
struct silu_gate_pref_config {
    static const unsigned tp = 8;          // token lanes
    static const int exp_impl = EXP_FLX;
};

template <class CONFIG_T>
void silu_gate_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &gate,
                    hls::stream<hls::vector<float, CONFIG_T::tp> > &up,
                    hls::stream<hls::vector<float, CONFIG_T::tp> > &y, unsigned n_blocks,
                    unsigned n_channels)
{
    const unsigned TP = CONFIG_T::tp;
    for (unsigned k = 0; k < n_blocks * n_channels; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, TP> g = gate.read(), u = up.read(), o;
        for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
            float x = g[t];
            float e = exp_sel<CONFIG_T::exp_impl>(-x);
            float sw = x / (1.0f + e);
            o[t] = sw * u[t];
        }
        y.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_SILU_GATE_H
