// av_u8i8.h -- uint8 P x int8 V of attention, prefill (TP/2 x Vp/2 grid of 2x2
// PEs) and decode (one head lane, Vp/2 1x2 PEs) (docs/kernels.md 3.2; reference-design
// §1.12 `pref_MHA_i8xi8_axv_template<TP, Vp, ..., is_uint = true>`,
// `dec_MHA_i8xi8_axv_template`).  Exact sums in ap_int<26> (prefill, <= 1024
// keys) / ap_int<27> (decode, <= 2048 keys).
#ifndef FLX_HLS_AV_U8I8_H
#define FLX_HLS_AV_U8I8_H

#include "pe_i8.h"

namespace flx_hls {

struct av_u8i8_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL (even)
    static const unsigned vp = 16;         // Vp: dims per V-cache word (even)
    static const unsigned head_dim = 64;   // d
    static const unsigned max_seq = 1024;  // MAX_PRE_SEQ_LEN (P buffer depth)
    static const unsigned acc_bits = 26;   // ap_int<26> prefill, 27 decode
    static const bool p_uint = true;       // is_uint: uint8 probabilities
};

// p:   per token block and head, seq_len beats (key j, lanes = queries)
// v:   per token block, head and dim block db < head_dim/vp, seq_len words
//      (key j, lane c = v8[j][db*vp + c]), the transposed V cache
// acc: per token block and head, head_dim beats (dim, lanes = queries)
template <class CONFIG_T>
void av_u8i8_pref(hls::stream<hls::vector<ap_int<8>, CONFIG_T::tp> > &p,
                  hls::stream<hls::vector<ap_int<8>, CONFIG_T::vp> > &v,
                  hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::tp> > &acc,
                  unsigned n_blocks, unsigned n_heads, unsigned seq_len)
{
    const unsigned TP = CONFIG_T::tp, VP = CONFIG_T::vp, D = CONFIG_T::head_dim;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++) {
            hls::vector<ap_int<8>, TP> P[CONFIG_T::max_seq];
            for (unsigned j = 0; j < seq_len; j++) {
#pragma HLS PIPELINE II = 1
                P[j] = p.read();
            }
            for (unsigned db = 0; db < D / VP; db++) {
                pe_i8xi8_2x2<CONFIG_T::acc_bits, CONFIG_T::p_uint> pe[TP / 2][VP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
                for (unsigned m = 0; m < TP / 2; m++)
                    for (unsigned c = 0; c < VP / 2; c++) pe[m][c].reset();
                for (unsigned j = 0; j < seq_len; j++) {
#pragma HLS PIPELINE II = 1
                    hls::vector<ap_int<8>, VP> vv = v.read();
                    for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                        for (unsigned c = 0; c < VP / 2; c++) {
#pragma HLS UNROLL
                            pe[m][c].step(P[j][2 * m], P[j][2 * m + 1], vv[2 * c], vv[2 * c + 1]);
                        }
                    }
                }
                for (unsigned c = 0; c < VP / 2; c++) {
                    hls::vector<ap_int<CONFIG_T::acc_bits>, TP> e, o;   // dims 2c, 2c+1
                    for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                        e[2 * m] = pe[m][c].c00;
                        e[2 * m + 1] = pe[m][c].c10;
                        o[2 * m] = pe[m][c].c01;
                        o[2 * m + 1] = pe[m][c].c11;
                    }
                    acc.write(e);
                    acc.write(o);
                }
            }
        }
}


// ----------------------------------------------------------------- decode

struct av_u8i8_dec_config {
    static const unsigned vp = 32;         // DEC_V_PARALLEL: dims per V-cache word (even)
    static const unsigned head_dim = 64;   // d
    static const unsigned max_len = 2048;  // MAX_SUM_SEQ_LEN: P buffer depth
    static const unsigned acc_bits = 27;   // ap_int<27>: <= 2048 keys x 255 x 128
    static const bool p_uint = true;
};

// p:   n_keys probabilities (uint8 patterns), buffered
// v:   per dim block db < head_dim/vp, n_keys words (key j, lane c = v8[j][db*vp + c])
// acc: head_dim values, dim order
template <class CONFIG_T>
void av_u8i8_dec(hls::stream<ap_int<8> > &p, hls::stream<hls::vector<ap_int<8>, CONFIG_T::vp> > &v,
                 hls::stream<ap_int<CONFIG_T::acc_bits> > &acc, unsigned n_keys)
{
    const unsigned VP = CONFIG_T::vp, D = CONFIG_T::head_dim;
    ap_int<8> P[CONFIG_T::max_len];
    for (unsigned j = 0; j < n_keys; j++) {
#pragma HLS PIPELINE II = 1
        P[j] = p.read();
    }
    for (unsigned db = 0; db < D / VP; db++) {
        pe_i8xi8_1x2<CONFIG_T::acc_bits, CONFIG_T::p_uint> pe[VP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete
        for (unsigned c = 0; c < VP / 2; c++) pe[c].reset();
        for (unsigned j = 0; j < n_keys; j++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<8>, VP> vv = v.read();
            for (unsigned c = 0; c < VP / 2; c++) {
#pragma HLS UNROLL
                pe[c].step(P[j], vv[2 * c], vv[2 * c + 1]);
            }
        }
        for (unsigned c = 0; c < VP; c++) {
#pragma HLS PIPELINE II = 1
            acc.write(c % 2 ? pe[c / 2].c1 : pe[c / 2].c0);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_AV_U8I8_H
