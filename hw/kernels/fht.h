// fht.h -- fast Walsh-Hadamard transform, the online R4 rotation before
// down_proj (docs/kernels.md 8; reference-design §1.11 `pref_FHT<T, TP, N, log2N>`,
// `dec_FHT<T, B, N, log2N>`).
//
// FlexLLM's constant-geometry network, m = log2 N identical stages:
//   shuf[i] = buf[rotl_m(i)],  rotl_m(i) = ((i << 1) & (N-1)) | (i >> (m-1))
//   buf[2j] = shuf[2j] + shuf[2j+1];  buf[2j+1] = shuf[2j] - shuf[2j+1]
// then y[i] = buf[i] / scale_factor (a division; 90.50967f for N = 8192).
// This is the network itself, not the emulator's equivalent bit-ordered
// in-place FWHT (stages over index bits 1, 2, ..., m-1, 0), so agreeing with
// the golden vectors checks that equivalence too.
#ifndef FLX_HLS_FHT_H
#define FLX_HLS_FHT_H

#include "flx_hls.h"

namespace flx_hls {

// in place on buf[N]; scale <= 0 skips the division (enable_scale = false)
template <unsigned N, unsigned LOG2N>
void fht_network(float buf[N], float scale)
{
    static_assert((1u << LOG2N) == N, "N must be 2^LOG2N");
    float shuf[N];
stages:
    for (unsigned s = 0; s < LOG2N; s++) {
        for (unsigned i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
            unsigned src = ((i << 1) & (N - 1)) | (i >> (LOG2N - 1));
            shuf[i] = buf[src];
        }
        for (unsigned j = 0; j < N / 2; j++) {
#pragma HLS PIPELINE II = 1
            float a = shuf[2 * j], b = shuf[2 * j + 1];
            buf[2 * j] = a + b;
            buf[2 * j + 1] = a - b;
        }
    }
    if (scale > 0.0f)
        for (unsigned i = 0; i < N; i++) {
#pragma HLS PIPELINE II = 1
            buf[i] = buf[i] / scale;
        }
}

struct fht_dec_config {
    static const unsigned b = 16;       // block_parallel B
    static const unsigned n = 8192;     // N (INTER_DIM)
    static const unsigned log2n = 13;   // log2 N
};

// One vector, block-partitioned (lane i beat k = element i*(N/B) + k).
template <class CONFIG_T>
void fht_dec(hls::stream<hls::vector<float, CONFIG_T::b> > &x,
             hls::stream<hls::vector<float, CONFIG_T::b> > &y, float scale_factor)
{
    const unsigned B = CONFIG_T::b, N = CONFIG_T::n, per = N / B;
    float buf[CONFIG_T::n];
    for (unsigned k = 0; k < per; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = x.read();
        for (unsigned i = 0; i < B; i++) buf[i * per + k] = v[i];
    }
    fht_network<CONFIG_T::n, CONFIG_T::log2n>(buf, scale_factor);
    for (unsigned k = 0; k < per; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> o;
        for (unsigned i = 0; i < B; i++) o[i] = buf[i * per + k];
        y.write(o);
    }
}

struct fht_pref_config {
    static const unsigned tp = 8;       // TOKEN_PARALLEL
    static const unsigned n = 8192;
    static const unsigned log2n = 13;
};

// Per token block, N beats (channel, lanes = tokens); each token lane is
// transformed on its own.
template <class CONFIG_T>
void fht_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &x,
              hls::stream<hls::vector<float, CONFIG_T::tp> > &y, float scale_factor,
              unsigned n_blocks)
{
    const unsigned TP = CONFIG_T::tp, N = CONFIG_T::n;
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        static float buf[CONFIG_T::tp][CONFIG_T::n];   // static: 256 KiB off the csim stack
        for (unsigned k = 0; k < N; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, TP> v = x.read();
            for (unsigned t = 0; t < TP; t++) buf[t][k] = v[t];
        }
        for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
            fht_network<CONFIG_T::n, CONFIG_T::log2n>(buf[t], scale_factor);
        }
        for (unsigned k = 0; k < N; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, TP> o;
            for (unsigned t = 0; t < TP; t++) o[t] = buf[t][k];
            y.write(o);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_FHT_H
