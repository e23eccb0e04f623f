// quant_asym.h -- dynamic per-token asymmetric quantizer (docs/kernels.md 2.1,
// reference-design §1.2a prefill `pref_quant_layer_fp32_qint<N, asym=true, TP, Kmax>` and
// 1.2e decode `dec_quant_layer_fp32_qint<N, asym=true, B, Kmax>`).
//
// Per token:  max/min by strict compares from -1e32 / +1e32,
//             s = (max - min) / (2^N - 1) (15.0f for N = 4), s = 1 if s == 0,
//             b = min (a float offset), q = round((x - b) / s) in [0, 2^N-1]
// q travels as the N-bit pattern of ap_uint<N> in an ap_int<N> stream (reference-design
// §6.5); consumers reinterpret it as unsigned.
#ifndef FLX_HLS_QUANT_ASYM_H
#define FLX_HLS_QUANT_ASYM_H

#include "flx_hls.h"

namespace flx_hls {

// ---------------------------------------------------------------- prefill

struct quant_asym_pref_config {
    static const unsigned tp = 8;        // TOKEN_PARALLEL: tokens per beat
    static const unsigned n_bits = 4;    // N
    static const unsigned max_k = 2048;  // Kmax: channels per token (buffer depth)
};

// in:  per token block, k_dim beats; beat k lane t = channel k of token 8M+t
// q:   the same beat order, N-bit patterns
// s_b: per token block, tp pairs (s, b) in lane order, before the q beats'
//      consumers need them
template <class CONFIG_T>
void quant_asym_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &in,
                     hls::stream<hls::vector<ap_int<CONFIG_T::n_bits>, CONFIG_T::tp> > &q,
                     hls::stream<hls::vector<float, 2> > &s_b, unsigned n_blocks, unsigned k_dim)
{
    const unsigned TP = CONFIG_T::tp;
    const float levels = (float)((1u << CONFIG_T::n_bits) - 1);
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        float buf[CONFIG_T::max_k][TP];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
        float mx[TP], mn[TP], s[TP], b[TP];
#pragma HLS ARRAY_PARTITION variable = mx complete
#pragma HLS ARRAY_PARTITION variable = mn complete
        for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
            mx[t] = NEG_SENTINEL;
            mn[t] = POS_SENTINEL;
        }
    load:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, TP> v = in.read();
            for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                buf[k][t] = v[t];
                if (v[t] > mx[t]) mx[t] = v[t];
                if (v[t] < mn[t]) mn[t] = v[t];
            }
        }
    scale:
        for (unsigned t = 0; t < TP; t++) {
#pragma HLS PIPELINE II = 1
            float st = (mx[t] - mn[t]) / levels;
            if (st == 0.0f) st = 1.0f;
            s[t] = st;
            b[t] = mn[t];
            hls::vector<float, 2> sb;
            sb[0] = st;
            sb[1] = mn[t];
            s_b.write(sb);
        }
    emit:
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<CONFIG_T::n_bits>, TP> o;
            for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                float d = buf[k][t] - b[t];
                float r = std::round(d / s[t]);
                o[t] = (ap_uint<CONFIG_T::n_bits>)r;   // keep the unsigned pattern
            }
            q.write(o);
        }
    }
}

// ----------------------------------------------------------------- decode

struct quant_asym_dec_config {
    static const unsigned b = 16;        // block_parallel B: lanes
    static const unsigned n_bits = 4;    // N
    static const unsigned max_k = 8192;  // Kmax
};

// One vector of k_dim elements, block-partitioned: beat k lane i holds
// element i*(k_dim/B) + k.  Per-lane max/min, lanes merged 0..B-1 (strict
// compares: the same element as a natural-order scan), one (s, b) pair.
template <class CONFIG_T>
void quant_asym_dec(hls::stream<hls::vector<float, CONFIG_T::b> > &in,
                    hls::stream<hls::vector<ap_int<CONFIG_T::n_bits>, CONFIG_T::b> > &q,
                    hls::stream<hls::vector<float, 2> > &s_b, unsigned k_dim)
{
    const unsigned B = CONFIG_T::b;
    const unsigned beats = k_dim / B;
    const float levels = (float)((1u << CONFIG_T::n_bits) - 1);
    float buf[CONFIG_T::max_k / B][B];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
    float mx[B], mn[B];
#pragma HLS ARRAY_PARTITION variable = mx complete
#pragma HLS ARRAY_PARTITION variable = mn complete
    for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
        mx[i] = NEG_SENTINEL;
        mn[i] = POS_SENTINEL;
    }
load:
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = in.read();
        for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
            buf[k][i] = v[i];
            if (v[i] > mx[i]) mx[i] = v[i];
            if (v[i] < mn[i]) mn[i] = v[i];
        }
    }
    float fmx = mx[0], fmn = mn[0];
merge:
    for (unsigned i = 1; i < B; i++) {
#pragma HLS PIPELINE II = 1
        if (mx[i] > fmx) fmx = mx[i];
        if (mn[i] < fmn) fmn = mn[i];
    }
    float s = (fmx - fmn) / levels;
    if (s == 0.0f) s = 1.0f;
    hls::vector<float, 2> sb;
    sb[0] = s;
    sb[1] = fmn;
    s_b.write(sb);
emit:
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<ap_int<CONFIG_T::n_bits>, B> o;
        for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
            float d = buf[k][i] - fmn;
            o[i] = (ap_uint<CONFIG_T::n_bits>)std::round(d / s);
        }
        q.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_QUANT_ASYM_H
