// gemv_f32.h -- fp32 GEMV of HMT's memory retrieval (docs/kernels.md 3.3;
// reference-design §1.3 `PE_fp32xfp32_pack_1x2_1D`, 1.4 `dec_Linear_Layer_fp32xfp32<B, W>`).
// Per output column four partial sums from +0.0f: p_j = p_j + (x_k * w_k)
// for k = j mod 4 over the natural input order, k/4 groups only (a tail of
// K mod 4 is dropped, as in the reference); y = (p0 + p1) + (p2 + p3).
#ifndef FLX_HLS_GEMV_F32_H
#define FLX_HLS_GEMV_F32_H

#include "flx_hls.h"

namespace flx_hls {

struct gemv_f32_dec_config {
    static const unsigned b = 4;           // lanes = PE arrays (HMT_T_BLOCK_PARALLEL)
    static const unsigned w = 8;           // columns per array per block (even)
    static const unsigned max_k = 2048;    // Kmax
};

// x:    k_dim/B beats, block-partitioned; buffered and broadcast in natural order
// w[i]: per block N < n_out/(B*W), k_dim beats; lane c = weight of channel
//       i*(n_out/B) + N*W + c at input k
// y:    per block, W beats; beat c lane i = channel i*(n_out/B) + N*W + c
template <class CONFIG_T>
void gemv_f32_dec(hls::stream<hls::vector<float, CONFIG_T::b> > &x,
                  hls::stream<hls::vector<float, CONFIG_T::w> > w[CONFIG_T::b],
                  hls::stream<hls::vector<float, CONFIG_T::b> > &y, unsigned k_dim,
                  unsigned n_out)
{
    const unsigned B = CONFIG_T::b, W = CONFIG_T::w, per = k_dim / B;
    float X[CONFIG_T::max_k];
    for (unsigned k = 0; k < per; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = x.read();
        for (unsigned i = 0; i < B; i++) X[i * per + k] = v[i];
    }
    for (unsigned n = 0; n < n_out / (B * W); n++) {
        float p[B][W][4];
#pragma HLS ARRAY_PARTITION variable = p complete dim = 0
        for (unsigned i = 0; i < B; i++)
            for (unsigned c = 0; c < W; c++)
                for (unsigned j = 0; j < 4; j++) p[i][c][j] = 0.0f;
        for (unsigned g = 0; g < k_dim / 4; g++)
            for (unsigned j = 0; j < 4; j++) {
#pragma HLS PIPELINE II = 1
                unsigned k = 4 * g + j;
                for (unsigned i = 0; i < B; i++) {
                    hls::vector<float, W> wv = w[i].read();
                    for (unsigned c = 0; c < W; c++) p[i][c][j] = p[i][c][j] + (X[k] * wv[c]);
                }
            }
        // a tail of k_dim % 4 weight beats is read and dropped
        for (unsigned k = k_dim / 4 * 4; k < k_dim; k++)
            for (unsigned i = 0; i < B; i++) (void)w[i].read();
        for (unsigned c = 0; c < W; c++) {
            hls::vector<float, B> o;
            for (unsigned i = 0; i < B; i++) o[i] = (p[i][c][0] + p[i][c][1]) + (p[i][c][2] + p[i][c][3]);
            y.write(o);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_GEMV_F32_H
