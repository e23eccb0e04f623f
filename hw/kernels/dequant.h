// dequant.h -- dequantizer of the INT4 GEMM outputs with the per-token (s, b)
// and the per-channel weight scale and sum (docs/kernels.md 2.2; reference-design §1.2b
// `pref_dequant_layer_qint_fp32<Nacc, asym, TP>`, 1.2f decode
// `dec_dequant_layer_qint_fp32_bandwidth<Nacc, asym, B, W>`).
//
//   asym: t = (float)acc * s;  t = t * ws;  u = b * wsum;  y = t + u
//   sym:  y = ((float)acc * s) * ws
// ap_int * float converts the integer to int, then multiplies in float
// (reference-design §0.3): exact for every legal accumulator (|acc| < 2^24).
#ifndef FLX_HLS_DEQUANT_H
#define FLX_HLS_DEQUANT_H

#include "flx_hls.h"

namespace flx_hls {

// ---------------------------------------------------------------- prefill

struct dequant_pref_config {
    static const unsigned tp = 8;          // TOKEN_PARALLEL
    static const unsigned acc_bits = 19;   // Nacc = L + 8 (21 for down_proj)
    static const bool asym = true;         // asymmetric activations (b term)
};

// s_b:  per token block, tp pairs (s, b) in lane order (quant_asym_pref's)
// w_sb: per token block, n_out pairs (ws, wsum) in channel order
// acc:  per token block, n_out beats (channel c, lanes = tokens)
template <class CONFIG_T>
void dequant_pref(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::tp> > &acc,
                  hls::stream<hls::vector<float, 2> > &s_b,
                  hls::stream<hls::vector<float, 2> > &w_sb,
                  hls::stream<hls::vector<float, CONFIG_T::tp> > &y, unsigned n_blocks,
                  unsigned n_out)
{
    const unsigned TP = CONFIG_T::tp;
    for (unsigned blk = 0; blk < n_blocks; blk++) {
        float s[TP], b[TP];
#pragma HLS ARRAY_PARTITION variable = s complete
#pragma HLS ARRAY_PARTITION variable = b complete
        for (unsigned t = 0; t < TP; t++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, 2> sb = s_b.read();
            s[t] = sb[0];
            b[t] = sb[1];
        }
        for (unsigned c = 0; c < n_out; c++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<CONFIG_T::acc_bits>, TP> a = acc.read();
            hls::vector<float, 2> w = w_sb.read();
            hls::vector<float, TP> o;
            for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                float v = a[t] * s[t];
                v = v * w[0];
                if (CONFIG_T::asym) {
                    float u = b[t] * w[1];
                    v = v + u;
                }
                o[t] = v;
            }
            y.write(o);
        }
    }
}

// ----------------------------------------------------------------- decode

struct dequant_dec_config {
    static const unsigned b = 16;          // block_parallel B
    static const unsigned w = 64;          // W: columns per lane per output block
    static const unsigned acc_bits = 21;   // Nacc
    static const bool asym = true;
};

// `dec_dequant_layer_qint_fp32_bandwidth<Nacc, asym, B, W>`, one vector of
// n_out channels (block-partitioned, lane i beat k = channel i*(n_out/B) + k):
// s_b:  one (s, b) pair (quant_asym_dec's)
// w_sb: per output block N < n_out/(B*W), B*W pairs (ws, wsum) in the
//       loader's order: lane j, then column c, channel j*(n_out/B) + N*W + c
// acc:  per block, W beats (the GEMV's output)
template <class CONFIG_T>
void dequant_dec(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::b> > &acc,
                 hls::stream<hls::vector<float, 2> > &s_b, hls::stream<hls::vector<float, 2> > &w_sb,
                 hls::stream<hls::vector<float, CONFIG_T::b> > &y, unsigned n_out)
{
    const unsigned B = CONFIG_T::b, W = CONFIG_T::w;
    hls::vector<float, 2> sb = s_b.read();
    const float s = sb[0], b = sb[1];
    for (unsigned n = 0; n < n_out / (B * W); n++) {
        float ws[B * W], wsum[B * W];
#pragma HLS ARRAY_PARTITION variable = ws cyclic factor = W
#pragma HLS ARRAY_PARTITION variable = wsum cyclic factor = W
        for (unsigned i = 0; i < B * W; i++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, 2> p = w_sb.read();
            ws[i] = p[0];
            wsum[i] = p[1];
        }
        for (unsigned c = 0; c < W; c++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<CONFIG_T::acc_bits>, B> a = acc.read();
            hls::vector<float, B> o;
            for (unsigned m = 0; m < B; m++) {
#pragma HLS UNROLL
                float v = a[m] * s;
                v = v * ws[m * W + c];
                if (CONFIG_T::asym) {
                    float u = b * wsum[m * W + c];
                    v = v + u;
                }
                o[m] = v;
            }
            y.write(o);
        }
    }
}

// `dec_dequant_layer_qint_fp32<Nacc, asym, B>` (reference-design §1.2f: an unused
// variant, kept for completeness): the same formula as dequant_dec, but the
// weight scale and sum arrive as one B-lane vector per beat beside the
// accumulators, all block-partitioned (lane i beat k = channel i*(n/B) + k).
template <class CONFIG_T>
void dequant_dec_plain(hls::stream<hls::vector<ap_int<CONFIG_T::acc_bits>, CONFIG_T::b> > &acc,
                       hls::stream<hls::vector<float, 2> > &s_b,
                       hls::stream<hls::vector<float, CONFIG_T::b> > &ws,
                       hls::stream<hls::vector<float, CONFIG_T::b> > &wsum,
                       hls::stream<hls::vector<float, CONFIG_T::b> > &y, unsigned beats)
{
    const unsigned B = CONFIG_T::b;
    hls::vector<float, 2> sb = s_b.read();
    const float s = sb[0], b = sb[1];
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<ap_int<CONFIG_T::acc_bits>, B> a = acc.read();
        hls::vector<float, B> w = ws.read(), u = wsum.read(), o;
        for (unsigned m = 0; m < B; m++) {
#pragma HLS UNROLL
            float v = a[m] * s;
            v = v * w[m];
            if (CONFIG_T::asym) {
                float t = b * u[m];
                v = v + t;
            }
            o[m] = v;
        }
        y.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_DEQUANT_H
