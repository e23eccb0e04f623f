// gemm_i4_dec.h -- INT4 x INT4 decode GEMV, B arrays of W/2 1x2 packed PEs fed
// the broadcast input in natural order (docs/kernels.md 3.1; reference-design §1.4
// `dec_Linear_Layer_i4xi4<B, W, Kmax, L, Omax, is_uint>` / `_unroll`).
#ifndef FLX_HLS_GEMM_I4_DEC_H
#define FLX_HLS_GEMM_I4_DEC_H

#include "pe_i4.h"

namespace flx_hls {

struct gemm_i4_dec_config {
    static const unsigned b = 16;         // block_parallel B: lanes = PE arrays
    static const unsigned w = 64;         // W: columns per array per block (even)
    static const unsigned max_k = 8192;   // Kmax
    static const int l = 13;              // L
    static const bool a_uint = true;      // uint4 activations
};

// a:     k_dim/B beats, block-partitioned (lane i beat k = element i*(k_dim/B)+k);
//        buffered, then broadcast in natural order to every array
// w[i]:  array i's weights: per block N < n_out/(B*W), k_dim beats, lane c =
//        weight of output channel i*(n_out/B) + N*W + c at input k
// acc:   per block N, W beats; beat c lane i = channel i*(n_out/B) + N*W + c
//        (block-partitioned output)
template <class CONFIG_T>
void gemm_i4_dec(hls::stream<hls::vector<ap_int<4>, CONFIG_T::b> > &a,
                 hls::stream<hls::vector<ap_int<4>, CONFIG_T::w> > w[CONFIG_T::b],
                 hls::stream<hls::vector<ap_int<CONFIG_T::l + 8>, CONFIG_T::b> > &acc,
                 unsigned k_dim, unsigned n_out)
{
    const unsigned B = CONFIG_T::b, W = CONFIG_T::w;
    const int L = CONFIG_T::l;
    const unsigned per = k_dim / B;
    ap_int<4> A[CONFIG_T::max_k];
load:
    for (unsigned k = 0; k < per; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<ap_int<4>, B> v = a.read();
        for (unsigned i = 0; i < B; i++) A[i * per + k] = v[i];   // natural order
    }
    for (unsigned n = 0; n < n_out / (B * W); n++) {
        pe_i4xi4_1x2<L, CONFIG_T::a_uint> pe[B][W / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
        for (unsigned i = 0; i < B; i++)
            for (unsigned j = 0; j < W / 2; j++) pe[i][j].reset();
    compute:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            ap_int<4> x = A[k];
            for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
                hls::vector<ap_int<4>, W> wv = w[i].read();
                for (unsigned j = 0; j < W / 2; j++) {
#pragma HLS UNROLL
                    pe[i][j].step(x, wv[2 * j], wv[2 * j + 1]);
                }
            }
        }
    drain:
        for (unsigned j = 0; j < W / 2; j++) {
            hls::vector<ap_int<L + 8>, B> even, odd;
            for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
                ap_int<L + 8> e, o;
                split_i4_acc<L>(pe[i][j].c, e, o);
                even[i] = e;
                odd[i] = o;
            }
            acc.write(even);
            acc.write(odd);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_GEMM_I4_DEC_H
