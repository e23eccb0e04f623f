// gemm_i4.h -- INT4 x INT4 packed-PE GEMM (prefill) and GEMV (decode)
// (docs/kernels.md 3.1; spec 1.3 `PE_i4xi4_pack_2x2_2D<is_uint_A, L>`,
// `PE_i4xi4_pack_1x2_1D`, 1.4 `pref_Linear_Layer_i4xi4<TP, WP, Kmax, L, ...>`,
// `dec_Linear_Layer_i4xi4<B, W, Kmax, L, ...>`).
//
// A PE holds two weight columns in one multiplier operand:
//   pack = (b1 - [b0 < 0]) || sign-extend_{L+8}(b0)  ==  b1 * 2^(L+8) + b0
// and accumulates c += a * pack in a (2L+16)-bit register, one k per cycle.
// At the end:  low  = c[L+7:0]              (signed)  = sum a*b0
//              high = c[2L+15:L+8] + [low < 0]        = sum a*b1
// Exact whenever |sum a*b| < 2^(L+7) (always, for FlexLLM's sizes); beyond
// that the even column wraps and carries into the odd one, as the hardware
// does.  Activations are uint4 patterns in ap_int<4> when A_UINT.
#ifndef FLX_HLS_GEMM_I4_H
#define FLX_HLS_GEMM_I4_H

#include "flx_hls.h"

namespace flx_hls {

// the multiplier operand holding two int4 weights
template <int L>
inline ap_int<2 * L + 16> pack_i4_pair(ap_int<4> b0, ap_int<4> b1)
{
    ap_int<2 * L + 16> pack = 0;
    ap_int<L + 8> lo = b0;                         // sign-extended
    ap_int<L + 8> hi = b1 - (b0 < 0 ? 1 : 0);      // borrow of a negative low field
    pack.range(L + 7, 0) = lo;
    pack.range(2 * L + 15, L + 8) = hi;
    return pack;
}

// one activation times the pack, uint4 or int4
template <int L, bool A_UINT>
inline ap_int<2 * L + 16> mul_i4_pack(ap_int<4> a, const ap_int<2 * L + 16> &pack)
{
    ap_int<2 * L + 16> p;
    if (A_UINT) {
        ap_uint<4> ua = a;                          // reinterpret the pattern
        p = ua * pack;
    } else {
        p = a * pack;
    }
    return p;
}

// the two fields of an accumulator register
template <int L>
inline void split_i4_acc(const ap_int<2 * L + 16> &c, ap_int<L + 8> &even, ap_int<L + 8> &odd)
{
    ap_int<2 * L + 16> cc = c;
    ap_int<L + 8> lo = cc.range(L + 7, 0);
    ap_int<L + 8> hi = cc.range(2 * L + 15, L + 8);
    even = lo;
    odd = hi + (lo < 0 ? 1 : 0);
}

// PE_i4xi4_pack_2x2_2D: tokens (a0, a1) x columns (b0, b1)
template <int L, bool A_UINT>
struct pe_i4xi4_2x2 {
    ap_int<2 * L + 16> c0, c1;
    void reset() { c0 = 0; c1 = 0; }
    void step(ap_int<4> a0, ap_int<4> a1, ap_int<4> b0, ap_int<4> b1) {
        ap_int<2 * L + 16> pack = pack_i4_pair<L>(b0, b1);
        c0 += mul_i4_pack<L, A_UINT>(a0, pack);
        c1 += mul_i4_pack<L, A_UINT>(a1, pack);
    }
};

// PE_i4xi4_pack_1x2_1D: one activation x columns (b0, b1)
template <int L, bool A_UINT>
struct pe_i4xi4_1x2 {
    ap_int<2 * L + 16> c;
    void reset() { c = 0; }
    void step(ap_int<4> a, ap_int<4> b0, ap_int<4> b1) {
        c += mul_i4_pack<L, A_UINT>(a, pack_i4_pair<L>(b0, b1));
    }
};

// ---------------------------------------------------------------- prefill

struct linear_i4_pref_config {
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
void linear_i4_pref(hls::stream<hls::vector<ap_int<4>, CONFIG_T::tp> > &a,
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
                for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                    for (unsigned j = 0; j < WP / 2; j++) {
#pragma HLS UNROLL
                        pe[m][j].step(av[2 * m], av[2 * m + 1], wv[2 * j], wv[2 * j + 1]);
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

// ----------------------------------------------------------------- decode

struct gemv_i4_dec_config {
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
void gemv_i4_dec(hls::stream<hls::vector<ap_int<4>, CONFIG_T::b> > &a,
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

#endif  // FLX_HLS_GEMM_I4_H
