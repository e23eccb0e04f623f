// hmt.h -- HMT's memory retrieval and ring-buffer update (docs/hmt.md 4;
// reference-design §4 `hmt_segment_loader_sync_template`, `hmt_Linear_Layer_fp32xfp32_qk_attn`).
//
// The memory is on chip: 64 slots of Mn (d floats) and Kn = Wk Mn (h floats),
// zero after reset.  Every fp32 product is dec_Linear_Layer_fp32xfp32<B, W>
// (gemv_f32_dec: four partial sums per output, natural k order), chained on
// block-partitioned streams (lane i beat k = element i*(n/B) + k), which is
// also the order in which the GEMV emits its outputs:
//   recall:  Qn = Wq Sn;  An = Kmem Qn (64 outputs);  empty slots -> -1e32
//            (intended; CONFIG_T::mask_empty);  An' = softmax_block(An, scale);
//            Pn = Mmem^T An' (K = 64 slots in order)
//   update:  Kn = Wk Mn;  Mmem[n mod 64] = Mn;  Kmem[n mod 64] = Kn
#ifndef FLX_HLS_HMT_H
#define FLX_HLS_HMT_H

#include "flx_hls.h"
#include "gemv_f32.h"
#include "softmax.h"

namespace flx_hls {

struct hmt_config {
    static const unsigned b = 4;            // GEMV lanes / softmax lanes (HMT_T_BLOCK_PARALLEL)
    static const unsigned w = 8;            // GEMV columns per lane (HMT_W_QK_ATTN_PARALLEL)
    static const unsigned max_d = 2048;     // hidden size d
    static const unsigned max_h = 2048;     // cross-attention width h
    static const unsigned slots = 64;       // MEM_NUM
    static const bool mask_empty = true;    // false: FlexLLM as written (empty slots unmasked)
    static const int exp_impl = EXP_FLX;
};

// The on-chip memory (BRAM in FlexLLM); one type per size, whatever the
// other knobs of the config.
template <unsigned SLOTS, unsigned MAX_D, unsigned MAX_H>
struct hmt_memory_t {
    float m[SLOTS][MAX_D];
    float k[SLOTS][MAX_H];
    bool filled[SLOTS];
};
template <class CONFIG_T>
using hmt_memory = hmt_memory_t<CONFIG_T::slots, CONFIG_T::max_d, CONFIG_T::max_h>;

template <class CONFIG_T>
void hmt_memory_reset(hmt_memory<CONFIG_T> &mem)
{
    for (unsigned s = 0; s < CONFIG_T::slots; s++) {
        mem.filled[s] = false;
        for (unsigned i = 0; i < CONFIG_T::max_d; i++) mem.m[s][i] = 0.0f;
        for (unsigned i = 0; i < CONFIG_T::max_h; i++) mem.k[s][i] = 0.0f;
    }
}

template <class CONFIG_T>
struct hmt_gemv_config {
    static const unsigned b = CONFIG_T::b;
    static const unsigned w = CONFIG_T::w;
    static const unsigned max_k = CONFIG_T::max_d > CONFIG_T::max_h ? CONFIG_T::max_d : CONFIG_T::max_h;
};

template <class CONFIG_T>
struct hmt_softmax_config {
    static const unsigned b = CONFIG_T::b;
    static const unsigned max_len = CONFIG_T::slots;
    static const bool enable_scale = true;
    static const int exp_impl = CONFIG_T::exp_impl;
};

// copies a block-partitioned stream of `beats` beats into two streams
template <unsigned B>
void hmt_tee(hls::stream<hls::vector<float, B> > &in, hls::stream<hls::vector<float, B> > &a,
             hls::stream<hls::vector<float, B> > &b, unsigned beats)
{
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = in.read();
        a.write(v);
        b.write(v);
    }
}

// weight streams of gemv_f32_dec for the matrix W[o][k] = src(o, k) held on
// chip: per block N, k beats; lane i column c = output i*(n_out/B) + N*W + c
template <class CONFIG_T, class SRC>
void hmt_weights(const SRC &src, hls::stream<hls::vector<float, CONFIG_T::w> > w[CONFIG_T::b],
                 unsigned n_out, unsigned k_dim)
{
    const unsigned B = CONFIG_T::b, W = CONFIG_T::w, per = n_out / B;
    for (unsigned n = 0; n < n_out / (B * W); n++)
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            for (unsigned i = 0; i < B; i++) {
                hls::vector<float, W> v;
                for (unsigned c = 0; c < W; c++) v[c] = src(i * per + n * W + c, k);
                w[i].write(v);
            }
        }
}

template <class CONFIG_T>
struct hmt_kmem_rows {   // W[slot][j] = Kmem[slot][j]
    const hmt_memory<CONFIG_T> &mem;
    float operator()(unsigned o, unsigned k) const { return mem.k[o][k]; }
};
template <class CONFIG_T>
struct hmt_mmem_cols {   // W[o][slot] = Mmem[slot][o]
    const hmt_memory<CONFIG_T> &mem;
    float operator()(unsigned o, unsigned k) const { return mem.m[k][o]; }
};

// Retrieval of one segment.
// s:  d/B beats (Sn, block-partitioned); wq: gemv_f32_dec weight streams of
//     Wq [h][d]; q: h/B beats (Qn); a: 64/B beats (An'); p: d/B beats (Pn).
// With no slot filled the caller supplies P itself (initial memory or zeros).
template <class CONFIG_T>
void hmt_recall(hls::stream<hls::vector<float, CONFIG_T::b> > &s,
                hls::stream<hls::vector<float, CONFIG_T::w> > wq[CONFIG_T::b],
                const hmt_memory<CONFIG_T> &mem, hls::stream<hls::vector<float, CONFIG_T::b> > &q,
                hls::stream<hls::vector<float, CONFIG_T::b> > &a,
                hls::stream<hls::vector<float, CONFIG_T::b> > &p, unsigned d, unsigned h)
{
    const unsigned B = CONFIG_T::b, S = CONFIG_T::slots, per_s = S / B;
    typedef hmt_gemv_config<CONFIG_T> G;
    hls::stream<hls::vector<float, B> > q_all("hmt_q"), q_mem("hmt_q_mem"), scores("hmt_scores"),
        masked("hmt_masked"), a_all("hmt_a"), a_mem("hmt_a_mem");
    hls::stream<hls::vector<float, CONFIG_T::w> > wk_s[B], wm_s[B];
    // Qn = Wq Sn
    gemv_f32_dec<G>(s, wq, q_all, d, h);
    hmt_tee<B>(q_all, q, q_mem, h / B);
    // An = Kmem Qn: one output per slot
    hmt_kmem_rows<CONFIG_T> kr = {mem};
    hmt_weights<CONFIG_T>(kr, wk_s, S, h);
    gemv_f32_dec<G>(q_mem, wk_s, scores, h, S);
    // empty slots out of the softmax (lane i beat k = slot i*per_s + k)
    for (unsigned k = 0; k < per_s; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = scores.read();
        for (unsigned i = 0; i < B; i++)
            if (CONFIG_T::mask_empty && !mem.filled[i * per_s + k]) v[i] = NEG_SENTINEL;
        masked.write(v);
    }
    // dec_Softmax with scale sqrt_HIDDEN_DIM = sqrt(h)
    softmax_block<hmt_softmax_config<CONFIG_T> >(masked, a_all, S, (float)std::sqrt((double)h));
    hmt_tee<B>(a_all, a, a_mem, per_s);
    // Pn = sum over slots of An'[slot] Mmem[slot]
    hmt_mmem_cols<CONFIG_T> mc = {mem};
    hmt_weights<CONFIG_T>(mc, wm_s, d, S);
    gemv_f32_dec<G>(a_mem, wm_s, p, S, d);
}

// Ring-buffer update after segment `seg`'s stage 1.
// m: d/B beats (Mn); wk: weight streams of Wk [h][d]; k: h/B beats (Kn).
template <class CONFIG_T>
void hmt_update(hls::stream<hls::vector<float, CONFIG_T::b> > &m,
                hls::stream<hls::vector<float, CONFIG_T::w> > wk[CONFIG_T::b], hmt_memory<CONFIG_T> &mem,
                hls::stream<hls::vector<float, CONFIG_T::b> > &k, unsigned seg, unsigned d, unsigned h)
{
    const unsigned B = CONFIG_T::b, slot = seg % CONFIG_T::slots;
    hls::stream<hls::vector<float, B> > m_g("hmt_m"), k_all("hmt_k");
    for (unsigned t = 0; t < d / B; t++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = m.read();
        for (unsigned i = 0; i < B; i++) mem.m[slot][i * (d / B) + t] = v[i];
        m_g.write(v);
    }
    gemv_f32_dec<hmt_gemv_config<CONFIG_T> >(m_g, wk, k_all, d, h);
    for (unsigned t = 0; t < h / B; t++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v = k_all.read();
        for (unsigned i = 0; i < B; i++) mem.k[slot][i * (h / B) + t] = v[i];
        k.write(v);
    }
    mem.filled[slot] = true;
}

}  // namespace flx_hls

#endif  // FLX_HLS_HMT_H
