// softmax.h -- the softmax kernel in its three hardware reduction trees
// (docs/kernels.md 4.2, 4.3; reference-design §1.8 `pref_Softmax`, `dec_MHA_Softmax`,
// `dec_Softmax`).  The prefill mask is causal_mask.h.
//
// One row x[n]:  m = max (strict >, from -1e32), e_k = exp(x_k - m),
//   S_j = sum over k = j mod 4 (k ascending, from 0.0f), tot = (S0+S1)+(S2+S3),
//   r = 1.0f / tot, p_k = e_k * r.
// Prefill runs n/4 groups only: the n mod 4 tail passes through raw (reference-design
// §6.11; never triggered, FlexLLM pads to 16).  Decode predicates the tail.
// Block softmax (HMT): lane maxima merged lane 0 first, optional (x-m)/scale,
// lane sums (S0+S1)+(S2+S3), tot = ((0 + lane0) + lane1) + ...
#ifndef FLX_HLS_SOFTMAX_H
#define FLX_HLS_SOFTMAX_H

#include "flx_hls.h"

namespace flx_hls {

// ---------------------------------------------------------------- prefill

struct softmax_pref_config {
    static const unsigned tp = 8;             // TOKEN_PARALLEL
    static const unsigned max_len = 1024;     // Lmax: row buffer
    static const int exp_impl = EXP_FLX;      // EXP_FLX or EXP_STD
};

// Per token block and head: seq_len beats in, seq_len beats out.
template <class CONFIG_T>
void softmax_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &in,
                  hls::stream<hls::vector<float, CONFIG_T::tp> > &out, unsigned n_blocks,
                  unsigned n_heads, unsigned seq_len)
{
    const unsigned TP = CONFIG_T::tp;
    const unsigned n4 = seq_len / 4 * 4;           // n/4 groups
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++) {
            float buf[CONFIG_T::max_len][TP];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
            float m[TP], s[4][TP], r[TP];
            for (unsigned t = 0; t < TP; t++) {
                m[t] = NEG_SENTINEL;
                for (unsigned j = 0; j < 4; j++) s[j][t] = 0.0f;
            }
            for (unsigned k = 0; k < seq_len; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, TP> v = in.read();
                for (unsigned t = 0; t < TP; t++) {
                    buf[k][t] = v[t];
                    if (k < n4 && v[t] > m[t]) m[t] = v[t];
                }
            }
            for (unsigned k = 0; k < n4; k++) {
#pragma HLS PIPELINE II = 4
                for (unsigned t = 0; t < TP; t++) {
                    float e = exp_sel<CONFIG_T::exp_impl>(buf[k][t] - m[t]);
                    buf[k][t] = e;
                    s[k % 4][t] = s[k % 4][t] + e;
                }
            }
            for (unsigned t = 0; t < TP; t++) {
                float tot = (s[0][t] + s[1][t]) + (s[2][t] + s[3][t]);
                r[t] = 1.0f / tot;
            }
            for (unsigned k = 0; k < seq_len; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, TP> o;
                for (unsigned t = 0; t < TP; t++) o[t] = k < n4 ? buf[k][t] * r[t] : buf[k][t];
                out.write(o);
            }
        }
}

// ----------------------------------------------------------------- decode

struct softmax_dec_config {
    static const unsigned hp = 8;             // DEC_HEAD_PARALLEL: lanes = heads
    static const unsigned max_len = 2048;     // MAX_SUM_SEQ_LEN
    static const int exp_impl = EXP_FLX;
};

// Per head iteration (n_iters = heads/HP), n beats; lane = head.  Any n: a
// tail element k joins S_(k mod 4).
template <class CONFIG_T>
void softmax_dec(hls::stream<hls::vector<float, CONFIG_T::hp> > &in,
                 hls::stream<hls::vector<float, CONFIG_T::hp> > &out, unsigned n_iters,
                 unsigned n)
{
    const unsigned HP = CONFIG_T::hp;
    for (unsigned it = 0; it < n_iters; it++) {
        float buf[CONFIG_T::max_len][HP];
#pragma HLS ARRAY_PARTITION variable = buf dim = 2 complete
        float m[HP], s[4][HP], r[HP];
        for (unsigned i = 0; i < HP; i++) {
            m[i] = NEG_SENTINEL;
            for (unsigned j = 0; j < 4; j++) s[j][i] = 0.0f;
        }
        for (unsigned k = 0; k < n; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, HP> v = in.read();
            for (unsigned i = 0; i < HP; i++) {
                buf[k][i] = v[i];
                if (v[i] > m[i]) m[i] = v[i];
            }
        }
        for (unsigned k = 0; k < n; k++) {
#pragma HLS PIPELINE II = 4
            for (unsigned i = 0; i < HP; i++) {
                float e = exp_sel<CONFIG_T::exp_impl>(buf[k][i] - m[i]);
                buf[k][i] = e;
                s[k % 4][i] = s[k % 4][i] + e;
            }
        }
        for (unsigned i = 0; i < HP; i++) r[i] = 1.0f / ((s[0][i] + s[1][i]) + (s[2][i] + s[3][i]));
        for (unsigned k = 0; k < n; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, HP> o;
            for (unsigned i = 0; i < HP; i++) o[i] = buf[k][i] * r[i];
            out.write(o);
        }
    }
}

// ------------------------------------------------------ block-partitioned

struct softmax_block_config {
    static const unsigned b = 4;              // lanes (HMT_T_BLOCK_PARALLEL)
    static const unsigned max_len = 64;       // elements (MEM_NUM slots)
    static const bool enable_scale = true;    // e = exp((x - m) / scale)
    static const int exp_impl = EXP_FLX;
};

// One vector of n elements, block-partitioned (lane i beat k = element
// i*(n/B) + k), n/B beats in and out.
template <class CONFIG_T>
void softmax_block(hls::stream<hls::vector<float, CONFIG_T::b> > &in,
                   hls::stream<hls::vector<float, CONFIG_T::b> > &out, unsigned n, float scale)
{
    const unsigned B = CONFIG_T::b;
    const unsigned beats = n / B;
    float buf[CONFIG_T::max_len / B][B];
    float lm[B], s[4][B];
    for (unsigned i = 0; i < B; i++) {
        lm[i] = NEG_SENTINEL;
        for (unsigned j = 0; j < 4; j++) s[j][i] = 0.0f;
    }
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = in.read();
        for (unsigned i = 0; i < B; i++) {
            buf[k][i] = v[i];
            if (v[i] > lm[i]) lm[i] = v[i];
        }
    }
    float m = NEG_SENTINEL;
    for (unsigned i = 0; i < B; i++)
        if (lm[i] > m) m = lm[i];
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 4
        for (unsigned i = 0; i < B; i++) {
            float d = buf[k][i] - m;
            if (CONFIG_T::enable_scale) d = d / scale;
            float e = exp_sel<CONFIG_T::exp_impl>(d);
            buf[k][i] = e;
            s[k % 4][i] = s[k % 4][i] + e;
        }
    }
    float tot = 0.0f;
    for (unsigned i = 0; i < B; i++) tot = tot + ((s[0][i] + s[1][i]) + (s[2][i] + s[3][i]));
    float r = 1.0f / tot;
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> o;
        for (unsigned i = 0; i < B; i++) o[i] = buf[k][i] * r;
        out.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_SOFTMAX_H
