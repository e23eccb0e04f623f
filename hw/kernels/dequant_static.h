// dequant_static.h -- static per-head dequantizer of attention scores and
// outputs (docs/kernels.md 2.4; reference-design §1.2d
// `pref_static_sym_per_tensor_dequant_layer_qint_fp32` and
// `dec_MHA_static_sym_per_tensor_dequant_layer_qint_fp32`).
//   y = ((float)acc * in_s[query head]) * w_s[query head / (act/w heads)]
// Scores use (Q_s, K_s), attention outputs (A_s, V_s).
#ifndef FLX_HLS_DEQUANT_STATIC_H
#define FLX_HLS_DEQUANT_STATIC_H

#include "flx_hls.h"

namespace flx_hls {

struct dequant_static_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL
    static const unsigned acc_bits = 22;   // 22 for QK^T, 26 for A.V (prefill)
    static const unsigned head_dim = 64;   // K: channels per head
    static const unsigned act_heads = 32;  // query heads
    static const unsigned w_heads = 8;     // KV heads (GQA group = act/w)
};

// Loop order: token block -> kv head h -> group g -> channel k.
// in_s: [act_heads], w_s: [w_heads] of this layer.  per_head: channels per
// head at run time (the scores of a prefill call: its seq_len keys; at most
// head_dim), head_dim by default.
template <class CONFIG_T>
void dequant_static_pref(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::tp> > &acc,
                         hls::stream<hls::vector<float, CONFIG_T::tp> > &y,
                         const float in_s[CONFIG_T::act_heads],
                         const float w_s[CONFIG_T::w_heads], unsigned n_blocks,
                         unsigned per_head = CONFIG_T::head_dim)
{
    const unsigned TP = CONFIG_T::tp;
    const unsigned G = CONFIG_T::act_heads / CONFIG_T::w_heads;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < CONFIG_T::w_heads; h++)
            for (unsigned g = 0; g < G; g++) {
                float si = in_s[h * G + g], sw = w_s[h];
                for (unsigned k = 0; k < per_head; k++) {
#pragma HLS LOOP_TRIPCOUNT max = CONFIG_T::head_dim
#pragma HLS PIPELINE II = 1
                    hls::vector<ap_int<CONFIG_T::acc_bits>, TP> a = acc.read();
                    hls::vector<float, TP> o;
                    for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                        float v = a[t] * si;
                        o[t] = v * sw;
                    }
                    y.write(o);
                }
            }
}


// ----------------------------------------------------------------- decode
//
// Head-parallel layout (reference-design §0.4.3): HP lanes, lane m holds query heads
// m*(act_heads/HP) ...; per iteration h, n_per_head beats of head
// m*(act_heads/HP) + h.

struct dequant_static_dec_config {
    static const unsigned hp = 8;
    static const unsigned acc_bits = 22;   // 22 scores, 27 attention outputs
    static const unsigned head_dim = 64;   // 64 dims (A.V) or the keys per iteration (QK^T)
    static const unsigned act_heads = 32;
    static const unsigned w_heads = 8;
};

// `dec_MHA_static_sym_per_tensor_dequant_layer_qint_fp32`: lane m, iteration
// h: aH = m*(act_heads/HP) + h, wH = aH / (act_heads/w_heads),
// y = ((float)acc * in_s[aH]) * w_s[wH]; n_per_head beats per iteration.
template <class CONFIG_T>
void dequant_static_dec(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::hp> > &acc,
                        hls::stream<hls::vector<float, CONFIG_T::hp> > &y,
                        const float in_s[CONFIG_T::act_heads], const float w_s[CONFIG_T::w_heads],
                        unsigned n_per_head)
{
    const unsigned HP = CONFIG_T::hp, HPL = CONFIG_T::act_heads / CONFIG_T::hp;
    const unsigned G = CONFIG_T::act_heads / CONFIG_T::w_heads;
    for (unsigned h = 0; h < HPL; h++)
        for (unsigned k = 0; k < n_per_head; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<CONFIG_T::acc_bits>, HP> a = acc.read();
            hls::vector<float, HP> o;
            for (unsigned m = 0; m < HP; m++) {
#pragma HLS UNROLL
                unsigned ah = m * HPL + h;
                float v = a[m] * in_s[ah];
                o[m] = v * w_s[ah / G];
            }
            y.write(o);
        }
}

}  // namespace flx_hls

#endif  // FLX_HLS_DEQUANT_STATIC_H
