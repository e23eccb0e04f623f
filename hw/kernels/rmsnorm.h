// rmsnorm.h -- RMSNorm with the prefill and the decode reduction trees
// (docs/kernels.md 5; reference-design §1.6 `pref_Layer_Norm<float, TP, D>`,
// `dec_Layer_Norm<float, B_T, D>`).  No mean subtraction, no beta.
//
// prefill, per token: s_j = sum of x_k*x_k over k = j mod 4 (k ascending,
//   from 0.0f), ss = (s0 + s1) + (s2 + s3)
// decode: lane i's beats give blk_i by the same tree; tot = ((0 + blk_0) +
//   blk_1) + ... + blk_(B_T-1)
// then  r = 1.0f / sqrtf(ss / (float)D + eps)   (divide, add, sqrt, reciprocal)
//       y_k = (x_k * r) * gamma_k
// The two trees give different low bits for the same vector (reference-design §6.8).
#ifndef FLX_HLS_RMSNORM_H
#define FLX_HLS_RMSNORM_H

#include "flx_hls.h"

namespace flx_hls {

// ---------------------------------------------------------------- prefill

struct rmsnorm_pref_config {
    static const unsigned tp = 8;       // TOKEN_PARALLEL
    static const unsigned d = 2048;     // D (HIDDEN_DIM)
    static constexpr float eps = 1e-5f;
};

// gamma: d scalars once per call (gamma_beta_mmap row of this norm);
// x, y: per token block, d beats (channel, lanes = tokens)
template <class CONFIG_T>
void rmsnorm_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &x, hls::stream<float> &gamma,
                  hls::stream<hls::vector<float, CONFIG_T::tp> > &y, unsigned n_blocks)
{
    const unsigned TP = CONFIG_T::tp, D = CONFIG_T::d;
    float g[CONFIG_T::d];
    for (unsigned k = 0; k < D; k++) {
#pragma HLS PIPELINE II = 1
        g[k] = gamma.read();
    }
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        float buf[CONFIG_T::d][TP];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
        float s[4][TP], r[TP];
        for (unsigned t = 0; t < TP; t++)
            for (unsigned j = 0; j < 4; j++) s[j][t] = 0.0f;
        for (unsigned k = 0; k < D; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, TP> v = x.read();
            for (unsigned t = 0; t < TP; t++) {
                buf[k][t] = v[t];
                float sq = v[t] * v[t];
                s[k % 4][t] = s[k % 4][t] + sq;
            }
        }
        for (unsigned t = 0; t < TP; t++) {
            float ss = (s[0][t] + s[1][t]) + (s[2][t] + s[3][t]);
            float mean = ss / (float)D;
            r[t] = 1.0f / std::sqrt(mean + CONFIG_T::eps);
        }
        for (unsigned k = 0; k < D; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, TP> o;
            for (unsigned t = 0; t < TP; t++) o[t] = (buf[k][t] * r[t]) * g[k];
            y.write(o);
        }
    }
}

// ----------------------------------------------------------------- decode

struct rmsnorm_dec_config {
    static const unsigned bt = 8;       // T_BLOCK_PARALLEL B_T: lanes
    static const unsigned d = 2048;     // D
    static constexpr float eps = 1e-5f;
};

// x, gamma, y: one vector, block-partitioned, d/B_T beats each
template <class CONFIG_T>
void rmsnorm_dec(hls::stream<hls::vector<float, CONFIG_T::bt> > &x,
                 hls::stream<hls::vector<float, CONFIG_T::bt> > &gamma,
                 hls::stream<hls::vector<float, CONFIG_T::bt> > &y)
{
    const unsigned BT = CONFIG_T::bt, beats = CONFIG_T::d / CONFIG_T::bt;
    float buf[CONFIG_T::d / CONFIG_T::bt][BT];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
    float s[4][BT];
    for (unsigned i = 0; i < BT; i++)
        for (unsigned j = 0; j < 4; j++) s[j][i] = 0.0f;
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, BT> v = x.read();
        for (unsigned i = 0; i < BT; i++) {
            buf[k][i] = v[i];
            float sq = v[i] * v[i];
            s[k % 4][i] = s[k % 4][i] + sq;
        }
    }
    float tot = 0.0f;
    for (unsigned i = 0; i < BT; i++) tot = tot + ((s[0][i] + s[1][i]) + (s[2][i] + s[3][i]));
    float mean = tot / (float)CONFIG_T::d;
    float r = 1.0f / std::sqrt(mean + CONFIG_T::eps);
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, BT> g = gamma.read(), o;
        for (unsigned i = 0; i < BT; i++) o[i] = (buf[k][i] * r) * g[i];
        y.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_RMSNORM_H
