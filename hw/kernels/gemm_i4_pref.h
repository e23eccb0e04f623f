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
// The TP/2 x WP/2 array of 2x2 packed PEs of one weight block: one input k
// (TP activations against the WP weights of the block), and the drain of
// WP beats (channel N*WP + c, c ascending, lanes = tokens).
template <class CONFIG_T>
void gemm_i4_pref_step(pe_i4xi4_2x2<CONFIG_T::l, CONFIG_T::a_uint> pe[CONFIG_T::tp / 2][CONFIG_T::wp / 2],
                       const hls::vector<ap_int<4>, CONFIG_T::tp> &av,
                       const hls::vector<ap_int<4>, CONFIG_T::wp> &wv)
{
#pragma HLS INLINE
    const unsigned TP = CONFIG_T::tp, WP = CONFIG_T::wp;
    const int L = CONFIG_T::l;
    // one pack per column pair, broadcast to the TP/2 PEs of its column
    // (wiring in hardware; in csim 4x fewer packs)
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

template <class CONFIG_T>
void gemm_i4_pref_drain(pe_i4xi4_2x2<CONFIG_T::l, CONFIG_T::a_uint> pe[CONFIG_T::tp / 2][CONFIG_T::wp / 2],
                        hls::stream<hls::vector<ap_int<CONFIG_T::l + 8>, CONFIG_T::tp> > &acc)
{
    const unsigned TP = CONFIG_T::tp, WP = CONFIG_T::wp;
    const int L = CONFIG_T::l;
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
    const unsigned n_wblocks = (n_out + WP - 1) / WP;
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        hls::vector<ap_int<4>, TP> A[CONFIG_T::max_k];
    load:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            A[k] = a.read();
        }
        for (unsigned n = 0; n < n_wblocks; n++) {
            pe_i4xi4_2x2<CONFIG_T::l, CONFIG_T::a_uint> pe[TP / 2][WP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
            for (unsigned m = 0; m < TP / 2; m++)
                for (unsigned j = 0; j < WP / 2; j++) pe[m][j].reset();
        compute:
            for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
                gemm_i4_pref_step<CONFIG_T>(pe, A[k], w.read());
            }
            gemm_i4_pref_drain<CONFIG_T>(pe, acc);
        }
    }
}

// `pref_Linear_Layer_i4xi4_blocked<TP, WP, BN>` (reference-design §1.4, the
// FFN linears): the WP columns of a weight block come from BN weight streams
// (one HBM port each) of WP/BN lanes; column pair n*BN + i of the block is
// stream i's pair n, so the output is in natural channel order (the host
// packs output pair p of the block into port p mod BN, byte lane p / BN).
// The BN arrays of TP/2 x WP/(2 BN) PEs that receive the same activations
// are the columns of one TP/2 x WP/2 array here: the same exact sums.
template <class CONFIG_T, unsigned BN>
void gemm_i4_pref_blocked(hls::stream<hls::vector<ap_int<4>, CONFIG_T::tp> > &a,
                          hls::stream<hls::vector<ap_int<4>, CONFIG_T::wp / BN> > w[BN],
                          hls::stream<hls::vector<ap_int<CONFIG_T::l + 8>, CONFIG_T::tp> > &acc,
                          unsigned n_blocks, unsigned k_dim, unsigned n_out)
{
    const unsigned TP = CONFIG_T::tp, WP = CONFIG_T::wp, WB = WP / BN;
    static_assert(WP % (2 * BN) == 0, "gemm_i4_pref_blocked: WP a multiple of 2 * BN");
    const unsigned n_wblocks = (n_out + WP - 1) / WP;
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        hls::vector<ap_int<4>, TP> A[CONFIG_T::max_k];
    load:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            A[k] = a.read();
        }
        for (unsigned n = 0; n < n_wblocks; n++) {
            pe_i4xi4_2x2<CONFIG_T::l, CONFIG_T::a_uint> pe[TP / 2][WP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
            for (unsigned m = 0; m < TP / 2; m++)
                for (unsigned j = 0; j < WP / 2; j++) pe[m][j].reset();
        compute:
            for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<ap_int<4>, WP> wv;
                for (unsigned i = 0; i < BN; i++) {
#pragma HLS UNROLL
                    hls::vector<ap_int<4>, WB> part = w[i].read();
                    for (unsigned p = 0; p < WB / 2; p++) {
#pragma HLS UNROLL
                        wv[2 * (p * BN + i)] = part[2 * p];
                        wv[2 * (p * BN + i) + 1] = part[2 * p + 1];
                    }
                }
                gemm_i4_pref_step<CONFIG_T>(pe, A[k], wv);
            }
            gemm_i4_pref_drain<CONFIG_T>(pe, acc);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_GEMM_I4_PREF_H
