// attention_i8.h -- int8 QK^T and uint8 x int8 A.V of prefill attention with
// the packed int8 PE (docs/kernels.md 3.2; spec 1.3
// `PE_i8xi8_pack_2x2_2xDSP_2D`, `PE_i8xi8_pack_1x2_1xDSP_1D`, 1.12
// `pref_MHA_i8xi8_qxk_template<TP, Kp>`, `pref_MHA_i8xi8_axv_template<TP, Vp,
// ..., is_uint = true>`, `dec_MHA_i8xi8_qxk/axv_template`).
//
// The PE multiplies a by pack = b1 * 2^16 + b0 (built as (b1 - [b0<0]) ||
// b0), splits the 32-bit product into 16-bit fields f0 = a*b0 (signed low)
// and f1 = high + [f0 < 0] = a*b1 (each exact: |a*b| <= 32640), and adds
// each into its own ACC_BITS register.  QK^T: ap_int<22>; A.V: ap_int<26>
// (prefill) / ap_int<27> (decode).  Probabilities are uint8 patterns in
// ap_int<8> (A_UINT).
#ifndef FLX_HLS_ATTENTION_I8_H
#define FLX_HLS_ATTENTION_I8_H

#include "flx_hls.h"

namespace flx_hls {

template <bool A_UINT>
inline void mul_i8_pack(ap_int<8> a, const ap_int<32> &pack, ap_int<16> &f0, ap_int<16> &f1)
{
    ap_int<32> p;
    if (A_UINT) {
        ap_uint<8> ua = a;
        p = ua * pack;
    } else {
        p = a * pack;
    }
    ap_int<16> lo = p.range(15, 0);
    ap_int<16> hi = p.range(31, 16);
    f0 = lo;
    f1 = hi + (lo < 0 ? 1 : 0);
}

// PE_i8xi8_pack_2x2_2xDSP_2D: rows (a0, a1) x columns (b0, b1)
template <int ACC_BITS, bool A_UINT>
struct pe_i8xi8_2x2 {
    ap_int<ACC_BITS> c00, c01, c10, c11;   // c<row><column>
    void reset() { c00 = 0; c01 = 0; c10 = 0; c11 = 0; }
    void step(ap_int<8> a0, ap_int<8> a1, ap_int<8> b0, ap_int<8> b1) {
        ap_int<32> pack = 0;
        ap_int<16> lo = b0;
        ap_int<16> hi = b1 - (b0 < 0 ? 1 : 0);
        pack.range(15, 0) = lo;
        pack.range(31, 16) = hi;
        ap_int<16> f0, f1;
        mul_i8_pack<A_UINT>(a0, pack, f0, f1);
        c00 += f0;
        c01 += f1;
        mul_i8_pack<A_UINT>(a1, pack, f0, f1);
        c10 += f0;
        c11 += f1;
    }
};

// ------------------------------------------------------------------ QK^T

struct qk_i8_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL: queries per beat (even)
    static const unsigned kp = 16;         // Kp: keys per K-cache word (even)
    static const unsigned head_dim = 64;   // d
    static const unsigned acc_bits = 22;   // ap_int<22>: |sum| <= 64 * 2^14
};

// q:   per token block and head, head_dim beats (dim d, lanes = queries)
// k:   per token block, head and key block N < seq_len/kp, head_dim beats
//      (dim d, lane j = key N*kp + j), i.e. the K-cache manager's re-stream
// acc: per token block and head, seq_len beats (key, lanes = queries); the
//      full L x L scores, no causal skipping (the mask comes later)
template <class CONFIG_T>
void qk_i8_pref(hls::stream<hls::vector<ap_int<8>, CONFIG_T::tp> > &q,
                hls::stream<hls::vector<ap_int<8>, CONFIG_T::kp> > &k,
                hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::tp> > &acc,
                unsigned n_blocks, unsigned n_heads, unsigned seq_len)
{
    const unsigned TP = CONFIG_T::tp, KP = CONFIG_T::kp, D = CONFIG_T::head_dim;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++) {
            hls::vector<ap_int<8>, TP> Q[D];
            for (unsigned d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
                Q[d] = q.read();
            }
            for (unsigned n = 0; n < seq_len / KP; n++) {
                pe_i8xi8_2x2<CONFIG_T::acc_bits, false> pe[TP / 2][KP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
                for (unsigned m = 0; m < TP / 2; m++)
                    for (unsigned j = 0; j < KP / 2; j++) pe[m][j].reset();
                for (unsigned d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
                    hls::vector<ap_int<8>, KP> kv = k.read();
                    for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                        for (unsigned j = 0; j < KP / 2; j++) {
#pragma HLS UNROLL
                            pe[m][j].step(Q[d][2 * m], Q[d][2 * m + 1], kv[2 * j], kv[2 * j + 1]);
                        }
                    }
                }
                for (unsigned j = 0; j < KP / 2; j++) {
                    hls::vector<ap_int<CONFIG_T::acc_bits>, TP> e, o;   // keys 2j, 2j+1
                    for (unsigned m = 0; m < TP / 2; m++) {
#pragma HLS UNROLL
                        e[2 * m] = pe[m][j].c00;
                        e[2 * m + 1] = pe[m][j].c10;
                        o[2 * m] = pe[m][j].c01;
                        o[2 * m + 1] = pe[m][j].c11;
                    }
                    acc.write(e);
                    acc.write(o);
                }
            }
        }
}

// ------------------------------------------------------------------- A.V

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

// ---------------------------------------------------------------- decode
//
// One head at a time (the reference runs HP of these side by side, one per
// head-parallel lane, spec 0.4.3; the lanes never interact).  The 1-D array
// of Kp/2 (Vp/2) `PE_i8xi8_pack_1x2_1xDSP_1D` multiplies one activation by a
// pair of keys (dims) per cycle, with the same packing and field split.

// PE_i8xi8_pack_1x2_1xDSP_1D: one activation x columns (b0, b1)
template <int ACC_BITS, bool A_UINT>
struct pe_i8xi8_1x2 {
    ap_int<ACC_BITS> c0, c1;
    void reset() { c0 = 0; c1 = 0; }
    void step(ap_int<8> a, ap_int<8> b0, ap_int<8> b1) {
        ap_int<32> pack = 0;
        ap_int<16> lo = b0;
        ap_int<16> hi = b1 - (b0 < 0 ? 1 : 0);
        pack.range(15, 0) = lo;
        pack.range(31, 16) = hi;
        ap_int<16> f0, f1;
        mul_i8_pack<A_UINT>(a, pack, f0, f1);
        c0 += f0;
        c1 += f1;
    }
};

struct qk_i8_dec_config {
    static const unsigned kp = 32;         // DEC_K_PARALLEL: keys per K-cache word (even)
    static const unsigned head_dim = 64;   // d
    static const unsigned acc_bits = 22;
};

// q:   head_dim values of the query (one head)
// k:   per key block N < ceil(n_keys/kp), head_dim words (dim d, lane j =
//      key N*kp + j); a partial last block carries any values in its unused
//      lanes
// acc: n_keys scores, key order: the keys >= n_keys of the last block are
//      dropped here (dec_quant_a_discard)
template <class CONFIG_T>
void qk_i8_dec(hls::stream<ap_int<8> > &q, hls::stream<hls::vector<ap_int<8>, CONFIG_T::kp> > &k,
               hls::stream<ap_int<CONFIG_T::acc_bits> > &acc, unsigned n_keys)
{
    const unsigned KP = CONFIG_T::kp, D = CONFIG_T::head_dim;
    ap_int<8> Q[D];
    for (unsigned d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
        Q[d] = q.read();
    }
    for (unsigned n = 0; n < (n_keys + KP - 1) / KP; n++) {
        pe_i8xi8_1x2<CONFIG_T::acc_bits, false> pe[KP / 2];
#pragma HLS ARRAY_PARTITION variable = pe complete
        for (unsigned j = 0; j < KP / 2; j++) pe[j].reset();
        for (unsigned d = 0; d < D; d++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<8>, KP> kv = k.read();
            for (unsigned j = 0; j < KP / 2; j++) {
#pragma HLS UNROLL
                pe[j].step(Q[d], kv[2 * j], kv[2 * j + 1]);
            }
        }
        for (unsigned j = 0; j < KP; j++) {
#pragma HLS PIPELINE II = 1
            if (n * KP + j < n_keys) acc.write(j % 2 ? pe[j / 2].c1 : pe[j / 2].c0);
        }
    }
}

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

#endif  // FLX_HLS_ATTENTION_I8_H
