// quant_static.h -- static symmetric per-head quantizer of the attention path
// (docs/kernels.md 2.3; reference-design §1.2c
// `pref_static_sym_per_tensor_quant_layer_fp32_qint<N, TP, K, heads, is_signed>`
// and `dec_MHA_static_sym_per_tensor_quant_layer_fp32_qint`).
//
//   r = (int) round(x / (mha_scale_factor * scale[h]))  (the product first)
//   signed: clamp(r, -2^(N-1), 2^(N-1)-1); unsigned: min(r, 2^N - 1)
//   stored as ap_int<N>(q): unsigned P above 127 is a negative pattern
// Uses: K (K_s, f = 1), V (V_s), Q (Q_s, f = sqrt_HEAD_DIM = 8: the 1/sqrt(d)
// attention scale), P (A_s, unsigned).
#ifndef FLX_HLS_QUANT_STATIC_H
#define FLX_HLS_QUANT_STATIC_H

#include "flx_hls.h"

namespace flx_hls {

struct quant_static_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL
    static const unsigned n_bits = 8;      // N
    static const unsigned head_dim = 64;   // K: channels per head
    static const unsigned heads = 32;      // heads per token (32 Q, 8 K/V, 32 P rows)
    static const bool is_signed = true;    // false: unsigned P (no lower clamp)
};

// Loop order: token block -> head -> channel.  scale: [heads] of this layer.
// per_head: channels per head at run time (P of a prefill call: its seq_len
// keys; at most head_dim), head_dim by default.
template <class CONFIG_T>
void quant_static_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &in,
                       hls::stream<hls::vector<ap_int<CONFIG_T::n_bits>, CONFIG_T::tp> > &q,
                       const float scale[CONFIG_T::heads], float mha_scale_factor,
                       unsigned n_blocks, unsigned per_head = CONFIG_T::head_dim)
{
    const unsigned TP = CONFIG_T::tp;
    const int sb = CONFIG_T::is_signed ? (1 << (CONFIG_T::n_bits - 1)) : (1 << CONFIG_T::n_bits);
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        for (unsigned h = 0; h < CONFIG_T::heads; h++) {
            float div = mha_scale_factor * scale[h];
            for (unsigned k = 0; k < per_head; k++) {
#pragma HLS LOOP_TRIPCOUNT max = CONFIG_T::head_dim
#pragma HLS PIPELINE II = 1
                hls::vector<float, TP> v = in.read();
                hls::vector<ap_int<CONFIG_T::n_bits>, TP> o;
                for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                    int r = (int)std::round(v[t] / div);
                    if (CONFIG_T::is_signed) {
                        if (r < -sb) r = -sb;
                        if (r > sb - 1) r = sb - 1;
                    } else if (r > sb - 1) {
                        r = sb - 1;                      // no lower clamp
                    }
                    o[t] = ap_int<CONFIG_T::n_bits>(r);
                }
                q.write(o);
            }
        }
    }
}


// ----------------------------------------------------------------- decode
//
// Head-parallel layout (reference-design §0.4.3): HP lanes, lane m holds heads
// m*(heads/HP) ... m*(heads/HP) + heads/HP - 1; per head iteration H the
// head_dim beats of head m*(heads/HP) + H.  The scale of lane m, iteration H
// is table[m*(heads/HP) + H]: the natural head index.

struct quant_static_dec_config {
    static const unsigned hp = 8;          // DEC_HEAD_PARALLEL
    static const unsigned n_bits = 8;
    static const unsigned head_dim = 64;
    static const unsigned heads = 32;      // 32 Q, 8 K/V
    static const bool is_signed = true;
};

// `dec_MHA_static_sym_per_tensor_quant_layer_fp32_qint`: loop H -> k
template <class CONFIG_T>
void quant_static_dec(hls::stream<hls::vector<float, CONFIG_T::hp> > &in,
                      hls::stream<hls::vector<ap_int<CONFIG_T::n_bits>, CONFIG_T::hp> > &q,
                      const float scale[CONFIG_T::heads], float mha_scale_factor)
{
    const unsigned HP = CONFIG_T::hp, HPL = CONFIG_T::heads / CONFIG_T::hp;
    const int sb = CONFIG_T::is_signed ? (1 << (CONFIG_T::n_bits - 1)) : (1 << CONFIG_T::n_bits);
    for (unsigned h = 0; h < HPL; h++) {
        float div[HP];
        for (unsigned m = 0; m < HP; m++) div[m] = mha_scale_factor * scale[m * HPL + h];
        for (unsigned k = 0; k < CONFIG_T::head_dim; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, HP> v = in.read();
            hls::vector<ap_int<CONFIG_T::n_bits>, HP> o;
            for (unsigned m = 0; m < HP; m++) {
#pragma HLS UNROLL
                int r = (int)std::round(v[m] / div[m]);
                if (CONFIG_T::is_signed) {
                    if (r < -sb) r = -sb;
                    if (r > sb - 1) r = sb - 1;
                } else if (r > sb - 1) {
                    r = sb - 1;
                }
                o[m] = ap_int<CONFIG_T::n_bits>(r);
            }
            q.write(o);
        }
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_QUANT_STATIC_H
