// quant_static.h -- static symmetric per-head quantizer and dequantizer of the
// attention path (docs/kernels.md 2.3, 2.4; spec 1.2c
// `pref_static_sym_per_tensor_quant_layer_fp32_qint<N, TP, K, heads,
// is_signed>` and 1.2d `pref_static_sym_per_tensor_dequant_layer_qint_fp32`).
//
// quant:   r = (int) round(x / (mha_scale_factor * scale[h]))  (product first)
//          signed: clamp(r, -2^(N-1), 2^(N-1)-1); unsigned: min(r, 2^N - 1)
//          stored as ap_int<N>(q): unsigned P above 127 is a negative pattern
// dequant: y = ((float)acc * in_s[h*G + g]) * w_s[h]   (query head 4h + g)
// Uses: K (K_s, f = 1), V (V_s), Q (Q_s, f = sqrt_HEAD_DIM = 8: the 1/sqrt(d)
// attention scale), P (A_s, unsigned); scores (Q_s, K_s), outputs (A_s, V_s).
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
template <class CONFIG_T>
void quant_static_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &in,
                       hls::stream<hls::vector<ap_int<CONFIG_T::n_bits>, CONFIG_T::tp> > &q,
                       const float scale[CONFIG_T::heads], float mha_scale_factor,
                       unsigned n_blocks)
{
    const unsigned TP = CONFIG_T::tp;
    const int sb = CONFIG_T::is_signed ? (1 << (CONFIG_T::n_bits - 1)) : (1 << CONFIG_T::n_bits);
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        for (unsigned h = 0; h < CONFIG_T::heads; h++) {
            float div = mha_scale_factor * scale[h];
            for (unsigned k = 0; k < CONFIG_T::head_dim; k++) {
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

struct dequant_static_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL
    static const unsigned acc_bits = 22;   // 22 for QK^T, 26 for A.V (prefill)
    static const unsigned head_dim = 64;   // K: channels per head
    static const unsigned act_heads = 32;  // query heads
    static const unsigned w_heads = 8;     // KV heads (GQA group = act/w)
};

// Loop order: token block -> kv head h -> group g -> channel k.
// in_s: [act_heads], w_s: [w_heads] of this layer.
template <class CONFIG_T>
void dequant_static_pref(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::tp> > &acc,
                         hls::stream<hls::vector<float, CONFIG_T::tp> > &y,
                         const float in_s[CONFIG_T::act_heads],
                         const float w_s[CONFIG_T::w_heads], unsigned n_blocks)
{
    const unsigned TP = CONFIG_T::tp;
    const unsigned G = CONFIG_T::act_heads / CONFIG_T::w_heads;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < CONFIG_T::w_heads; h++)
            for (unsigned g = 0; g < G; g++) {
                float si = in_s[h * G + g], sw = w_s[h];
                for (unsigned k = 0; k < CONFIG_T::head_dim; k++) {
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

}  // namespace flx_hls

#endif  // FLX_HLS_QUANT_STATIC_H
