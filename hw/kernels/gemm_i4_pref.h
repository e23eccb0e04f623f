// gemm_i4_pref.h -- INT4 x INT4 prefill GEMM, a TP/2 x WP/2 array of 2x2
// packed PEs per weight block (docs/kernels.md 3.1; reference-design §1.4
// `pref_Linear_Layer_i4xi4<TP, WP, Kmax, L, Omax, S, is_uint>`).
#ifndef FLX_HLS_GEMM_I4_PREF_H
#define FLX_HLS_GEMM_I4_PREF_H

#include "pe_i4.h"

namespace flx_hls {

struct gemm_i4_pref_config {
    static const unsigned tp = 8;         // TOKEN_PARALLEL: tokens per beat (even)
    static const unsigned wp = 24;        // WP: output channels per weight beat (even)
    static const unsigned max_k = 2048;   // Kmax: input channels (buffer depth)
    static const int l = 11;              // max_log2_k_size L (13 for down_proj)
    static const bool a_uint = true;      // is_uint: uint4 activations
};

// a:   per token block, k_dim beats (channel k, lanes = tokens)
// w:   per token block and weight block N < ceil(n_out/wp), k_dim beats;
//      lane c = int4 weight of output channel N*wp + c at input k (the whole
//      matrix is re-streamed for every token block, as in FlexLLM)
// acc: per token block, ceil(n_out/wp)*wp beats (channel, lanes = tokens);
//      a padded tail is dropped downstream (pref_io_discard)
template <class CONFIG_T>
void gemm_i4_pref(hls::stream<hls::vector<ap_int<4>, CONFIG_T::tp> > &a,
                    hls::stream<hls::vector<ap_int<4>, CONFIG_T::wp> > &w,
                    hls::stream<hls::vector<ap_int<CONFIG_T::l + 8>, CONFIG_T::tp> > &acc,
                    unsigned n_blocks, unsigned k_dim, unsigned n_out)
{
    const unsigned TP = CONFIG_T::tp, WP = CONFIG_T::wp;
    const int L = CONFIG_T::l;
    const unsigned n_wblocks = (n_out + WP - 1) / WP;
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        hls::vector<ap_int<4>, TP> A[CONFIG_T::max_k];
    load:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            A[k] = a.read();
        }
        for (unsigned n = 0; n < n_wblocks; n++) {
            pe_i4xi4_2x2<L, CONFIG_T::a_uint> pe[TP / 2][WP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
            for (unsigned m = 0; m < TP / 2; m++)
                for (unsigned j = 0; j < WP / 2; j++) pe[m][j].reset();
        compute:
            for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<ap_int<4>, TP> av = A[k];
                hls::vector<ap_int<4>, WP> wv = w.read();
                // one pack per column pair, broadcast to the TP/2 PEs of its
                // column (wiring in hardware; in csim 4x fewer packs)
                ap_int<2 * L + 16> pack[WP / 2];
#pragma HLS ARRAY_PARTITION variable = pack complete
                for (unsigned j = 0; j < WP / 2; j++) {
#pragma HLS UNROLL
                    pack[j] = pack_i4_pair<L>(wv[2 * j], wv[2 * j + 1]);
                }
                for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                    for (unsigned j = 0; j < WP / 2; j++) {
#pragma HLS UNROLL
                        pe[m][j].step_packed(av[2 * m], av[2 * m + 1], pack[j]);
                    }
                }
            }
        drain:
            for (unsigned j = 0; j < WP / 2; j++) {
                hls::vector<ap_int<L + 8>, TP> even, odd;   // columns 2j, 2j+1
                for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                    ap_int<L + 8> e0, o0, e1, o1;
                    split_i4_acc<L>(pe[m][j].c0, e0, o0);   // token 2m
                    split_i4_acc<L>(pe[m][j].c1, e1, o1);   // token 2m+1
                    even[2 * m] = e0;
                    even[2 * m + 1] = e1;
                    odd[2 * m] = o0;
                    odd[2 * m + 1] = o1;
                }
                acc.write(even);
                acc.write(odd);
            }
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_GEMM_I4_PREF_H
