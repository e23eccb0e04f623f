// qk_i8.h -- int8 QK^T of attention, prefill (TP/2 x Kp/2 grid of 2x2 PEs) and
// decode (one head lane, Kp/2 1x2 PEs) (docs/kernels.md 3.2; reference-design §1.12
// `pref_MHA_i8xi8_qxk_template<TP, Kp>`, `dec_MHA_i8xi8_qxk_template`).
// Exact sums in ap_int<22> (|sum| <= 64 * 2^14).  The reference runs HP decode
// lanes side by side, one per head-parallel lane; lanes never interact.
#ifndef FLX_HLS_QK_I8_H
#define FLX_HLS_QK_I8_H

#include "pe_i8.h"

namespace flx_hls {

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


// ----------------------------------------------------------------- decode

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

}  // namespace flx_hls

#endif  // FLX_HLS_QK_I8_H
