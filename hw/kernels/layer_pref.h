// layer_pref.h -- one Llama decoder layer in prefill over a chunk of the
// prompt: n_blocks token blocks of TP = 8 from block first_block (positions
// 8*first_block .. 8*(first_block+n_blocks)-1; seq_len = 8*(first_block +
// n_blocks) keys, a multiple of 16: the keys of earlier chunks come from the
// K/V caches), the prefill schedule of reference-design §2.3 / §3.3 built
// from the kernels of this folder (SpinQuant_Prefilling_mem_opt).
//
// One DATAFLOW region: every module is a concurrent task streaming token
// blocks through hls::stream FIFOs whose depths are the config's.  The
// barriers of §2.3 are where the schedule waits:
//   1. K pass: x -> RMSNorm -> INT4 quant -> [K | Q] linear, K weights, for
//      every token block -> RoPE -> static INT8 -> K cache manager, which
//      stores every key of the chunk before it streams any;
//   2. V pass: the same quantized rows -> V linear -> static INT8 -> V cache
//      manager, which likewise stores all values first;
//   3. then, per token block: x again -> RMSNorm -> INT4 quant -> [K | Q]
//      linear, Q weights -> RoPE -> INT8 (8 Q_s) -> QK^T over all seq_len keys
//      -> score dequant -> causal mask -> softmax -> uint8 P -> A.V ->
//      attention dequant -> INT4 quant -> O -> residual (+ x) -> RMSNorm ->
//      INT4 quant -> gate, up (three HBM ports each) -> SiLU * up -> FHT ->
//      INT4 quant -> down (three ports) -> residual (+ r0) -> io.
// The layer input is read twice (once per pass), as the reference computes
// RMSNorm twice: holding the Q pass's rows across the K barrier would take a
// FIFO of the whole chunk.  K and Q share one linear (one PE array, the
// K pass then the Q pass, one weight port), V and O one weight port; V and
// O have their own arrays (a shared one would close the cycle V -> attention
// -> O, which a DATAFLOW region cannot hold; the reference's TAPA graph can).
// Every HBM port has one reading task (and the caches and io one writing
// task), as a Vitis DATAFLOW region requires; the attention scales, gains
// and RoPE rows go to their consumers through small streams.
#ifndef FLX_HLS_LAYER_PREF_H
#define FLX_HLS_LAYER_PREF_H

#include "av_u8i8.h"
#include "causal_mask.h"
#include "data_io.h"
#include "dequant.h"
#include "dequant_static.h"
#include "fht.h"
#include "flx_probe.h"
#include "gemm_i4_pref.h"
#include "qk_i8.h"
#include "quant_asym.h"
#include "quant_static.h"
#include "residual.h"
#include "rmsnorm.h"
#include "rope.h"
#include "silu_gate.h"
#include "softmax.h"

namespace flx_hls {

struct layer_pref_config {
    static const unsigned d = 2048, kv_dim = 512, ff = 8192;
    static const unsigned heads = 32, kv_heads = 8, head_dim = 64;
    static const unsigned tp = 8;
    static const unsigned wp = 24;              // K, Q, V, O: PRE_QKVO_WP, one port each pair
    static const unsigned ffn_wp = 96;          // gate, up, down: PRE_FFN_WP ...
    static const unsigned ffn_ports = 3;        // ... over 3 HBM ports of 32 lanes (blocked linear)
    static const unsigned max_keys = 2048;      // pos0 + n_tokens: softmax row and P buffers, cache rows
    static const unsigned max_pos = 2048;       // RoPE rows
    // FIFO depths of the region (beats).  The csim (hw/csim/flx_csim_dataflow.h)
    // reports a deadlock naming the stream when one is too shallow.
    static const unsigned w_depth = 4;          // weight words, loader -> GEMM (each port)
    static const unsigned act_depth = 32;       // activation beats between tasks
    static const unsigned pair_depth = 16;      // (s, b) and (ws, wsum) pairs
    static const unsigned kv_depth = 32;        // INT8 K/V rows into the cache managers and
                                                // keys/values out of them (the barrier is the
                                                // manager's HBM store, not a FIFO)
    static const unsigned x_res_depth = 2 * 2048;   // x -> residual 1: >= d - 1 (RMSNorm reads a
                                                    // whole block first); 2 blocks to overlap
    static const unsigned r0_res_depth = 2 * 2048;  // r0 -> residual 2: >= d - 1, likewise
    static const unsigned table_depth = 64;     // gains, attention scales, RoPE rows
    static const int exp_impl = EXP_FLX;
};

// namespace-scope kernel configurations
template <unsigned KMAX>
struct lp_quant_cfg : quant_asym_pref_config {
    static const unsigned max_k = KMAX;
};
template <unsigned KMAX, int L, unsigned WP>
struct lp_gemm_cfg : gemm_i4_pref_config {
    static const unsigned max_k = KMAX, wp = WP;
    static const int l = L;
};
template <unsigned ACC>
struct lp_deq_cfg : dequant_pref_config {
    static const unsigned acc_bits = ACC;
};
template <unsigned MAX_POS>
struct lp_rope_cfg : rope_pref_config {
    static const unsigned max_pos = MAX_POS;
};
template <unsigned HEADS, unsigned HD, bool SIGNED>
struct lp_qs_cfg : quant_static_pref_config {
    static const unsigned heads = HEADS, head_dim = HD;
    static const bool is_signed = SIGNED;
};
template <unsigned ACC, unsigned HD>
struct lp_ds_cfg : dequant_static_pref_config {
    static const unsigned acc_bits = ACC, head_dim = HD;
};
template <int E, unsigned MAXLEN>
struct lp_softmax_cfg : softmax_pref_config {
    static const int exp_impl = E;
    static const unsigned max_len = MAXLEN;
};
template <unsigned MAXSEQ>
struct lp_av_cfg : av_u8i8_pref_config {
    static const unsigned max_seq = MAXSEQ;
};
template <int E>
struct lp_silu_cfg : silu_gate_pref_config {
    static const int exp_impl = E;
};
struct lp_res_cfg : residual_config {
    static const unsigned b = 8;
};

// ------------------------------------------------------------------ tasks
// Each task is one function call in the region (the processes Vitis sees).

// the layer input io[8*blk + t][d] as token-parallel beats: the K/V pass
// (every block), then the Q pass (every block again, also into the
// residual's bypass)
template <class C>
void lp_x_loader(const float *io, hls::stream<hls::vector<float, C::tp> > &x,
                 hls::stream<hls::vector<float, C::tp> > &x_res, unsigned nb)
{
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned blk = 0; blk < nb; blk++)
            for (unsigned k = 0; k < C::d; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, C::tp> v;
                for (unsigned t = 0; t < C::tp; t++) v[t] = io[(size_t)(blk * C::tp + t) * C::d + k];
                x.write(v);
                if (pass) x_res.write(v);
            }
}

// the layer output beats into io rows [8*blk + t][d] (y of the chunk)
template <class C>
void lp_y_drainer(hls::stream<hls::vector<float, C::tp> > &y, float *io_y, unsigned nb)
{
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned k = 0; k < C::d; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, C::tp> v = y.read();
            for (unsigned t = 0; t < C::tp; t++) io_y[(size_t)(blk * C::tp + t) * C::d + k] = v[t];
        }
}

// gamma port: attn_norm to the first RMSNorm, ffn_norm to the second
template <class C>
void lp_gamma_loader(const float *gamma, hls::stream<float> &g0, hls::stream<float> &g1)
{
    for (unsigned k = 0; k < C::d; k++) g0.write(gamma[k]);
    for (unsigned k = 0; k < C::d; k++) g1.write(gamma[C::d + k]);
}

// att port (Q_s, K_s, V_s, A_s; 32 floats each) to the six tasks that use
// a table, each its own stream: K quant (K_s), V quant (V_s), Q quant
// (Q_s), score dequant (Q_s, K_s), P quant (A_s), attention dequant (A_s, V_s)
template <class C>
void lp_att_loader(const float *att, hls::stream<float> &k_q, hls::stream<float> &v_q, hls::stream<float> &q_q,
                   hls::stream<float> &s_dq, hls::stream<float> &p_q, hls::stream<float> &a_dq)
{
    const float *q_s = att, *k_s = att + 32, *v_s = att + 64, *a_s = att + 96;
    for (unsigned h = 0; h < C::kv_heads; h++) k_q.write(k_s[h]);
    for (unsigned h = 0; h < C::kv_heads; h++) v_q.write(v_s[h]);
    for (unsigned h = 0; h < C::heads; h++) q_q.write(q_s[h]);
    for (unsigned h = 0; h < C::heads; h++) s_dq.write(q_s[h]);
    for (unsigned h = 0; h < C::kv_heads; h++) s_dq.write(k_s[h]);
    for (unsigned h = 0; h < C::heads; h++) p_q.write(a_s[h]);
    for (unsigned h = 0; h < C::heads; h++) a_dq.write(a_s[h]);
    for (unsigned h = 0; h < C::kv_heads; h++) a_dq.write(v_s[h]);
}

// rope port (PE_sin [max_pos][32] then PE_cos): per token block the rows
// of its 8 positions as (sin, cos) pairs, for K (every block), then for Q
template <class C>
void lp_rope_loader(const float *rope, hls::stream<hls::vector<float, 2> > &k_tab,
                    hls::stream<hls::vector<float, 2> > &q_tab, unsigned b0, unsigned nb)
{
    const unsigned H = C::head_dim / 2;
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned blk = 0; blk < nb; blk++)
            for (unsigned t = 0; t < C::tp; t++)
                for (unsigned k = 0; k < H; k++) {
#pragma HLS PIPELINE II = 1
                    const size_t row = (size_t)((b0 + blk) * C::tp + t) * H + k;
                    hls::vector<float, 2> p;
                    p[0] = rope[row];
                    p[1] = rope[(size_t)C::max_pos * H + row];
                    if (pass)
                        q_tab.write(p);
                    else
                        k_tab.write(p);
                }
}

// RoPE of n_heads heads per token block, the block's table rows from tab
template <class C, unsigned HEADS>
void lp_rope(hls::stream<hls::vector<float, C::tp> > &x, hls::stream<hls::vector<float, C::tp> > &y,
             hls::stream<hls::vector<float, 2> > &tab, unsigned nb)
{
    const unsigned TP = C::tp, H = C::head_dim / 2;
    for (unsigned blk = 0; blk < nb; blk++) {
        float sn[TP][H], cs[TP][H];
        for (unsigned t = 0; t < TP; t++)
            for (unsigned k = 0; k < H; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, 2> p = tab.read();
                sn[t][k] = p[0];
                cs[t][k] = p[1];
            }
        rope_pref<lp_rope_cfg<TP> >(x, y, sn, cs, 0, 1, HEADS);
    }
}

template <unsigned N>
void lp_read_table(hls::stream<float> &s, float *t)
{
    for (unsigned i = 0; i < N; i++) t[i] = s.read();
}

// static INT8 quantization of HEADS heads (scale table from tab)
template <class C, unsigned HEADS>
void lp_quant8(hls::stream<hls::vector<float, C::tp> > &x, hls::stream<hls::vector<ap_int<8>, C::tp> > &q,
               hls::stream<float> &tab, float factor, unsigned nb)
{
    float s[HEADS];
    lp_read_table<HEADS>(tab, s);
    quant_static_pref<lp_qs_cfg<HEADS, C::head_dim, true> >(x, q, s, factor, nb);
}

// (s, b) pairs and quantized rows of the K/V pass to the K and V linears,
// those of the Q pass to the [K | Q] linear only
template <class C>
void lp_dist_kvq(hls::stream<hls::vector<ap_int<4>, C::tp> > &a, hls::stream<hls::vector<float, 2> > &sb,
                 hls::stream<hls::vector<ap_int<4>, C::tp> > &kq_a, hls::stream<hls::vector<float, 2> > &kq_sb,
                 hls::stream<hls::vector<ap_int<4>, C::tp> > &v_a, hls::stream<hls::vector<float, 2> > &v_sb,
                 unsigned nb)
{
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned blk = 0; blk < nb; blk++) {
            for (unsigned t = 0; t < C::tp; t++) {
                hls::vector<float, 2> p = sb.read();
                kq_sb.write(p);
                if (!pass) v_sb.write(p);
            }
            for (unsigned k = 0; k < C::d; k++) {
#pragma HLS PIPELINE II = 1
                hls::vector<ap_int<4>, C::tp> v = a.read();
                kq_a.write(v);
                if (!pass) v_a.write(v);
            }
        }
}

// one quantized block stream to two linears (gate and up)
template <class C>
void lp_dist2(hls::stream<hls::vector<ap_int<4>, C::tp> > &a, hls::stream<hls::vector<float, 2> > &sb,
              hls::stream<hls::vector<ap_int<4>, C::tp> > &a0, hls::stream<hls::vector<float, 2> > &sb0,
              hls::stream<hls::vector<ap_int<4>, C::tp> > &a1, hls::stream<hls::vector<float, 2> > &sb1,
              unsigned nb, unsigned k_dim)
{
    for (unsigned blk = 0; blk < nb; blk++) {
        for (unsigned t = 0; t < C::tp; t++) {
            hls::vector<float, 2> p = sb.read();
            sb0.write(p);
            sb1.write(p);
        }
        for (unsigned k = 0; k < k_dim; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<4>, C::tp> v = a.read();
            a0.write(v);
            a1.write(v);
        }
    }
}

// a stream copied into two (r0 to the second RMSNorm and to its bypass)
template <class T>
void lp_fork(hls::stream<T> &in, hls::stream<T> &o0, hls::stream<T> &o1, unsigned beats)
{
    for (unsigned i = 0; i < beats; i++) {
#pragma HLS PIPELINE II = 1
        T v = in.read();
        o0.write(v);
        o1.write(v);
    }
}

// one weight port: per pass, n_wblocks*k_dim words from word `base`,
// re-read for every token block (the [K | Q] port: K pass then Q pass
// into one stream, lp_w_loader_seq; the [V | O] port: V into w0, then O
// into w1, lp_w_loader2)
template <unsigned W>
void lp_w_loader_seq(const typename dec_wword<W>::type *mem, hls::stream<hls::vector<ap_int<4>, W> > &w,
                     unsigned base0, unsigned nw0, unsigned base1, unsigned nw1, unsigned nb, unsigned k_dim)
{
    for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<W>(mem, base0, w, nw0, k_dim);
    for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<W>(mem, base1, w, nw1, k_dim);
}

template <unsigned W>
void lp_w_loader2(const typename dec_wword<W>::type *mem, hls::stream<hls::vector<ap_int<4>, W> > &w0,
                  unsigned base0, unsigned nw0, hls::stream<hls::vector<ap_int<4>, W> > &w1, unsigned base1,
                  unsigned nw1, unsigned nb, unsigned k_dim)
{
    for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<W>(mem, base0, w0, nw0, k_dim);
    for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<W>(mem, base1, w1, nw1, k_dim);
}

template <unsigned W>
void lp_w_loader(const typename dec_wword<W>::type *mem, hls::stream<hls::vector<ap_int<4>, W> > &w,
                 unsigned nw, unsigned nb, unsigned k_dim)
{
    for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<W>(mem, 0, w, nw, k_dim);
}

// one s/sum port (ws [n0], wsum [n0], then ws [n1], wsum [n1] of the second
// linear): into one stream (lp_s_loader_seq) or two (lp_s_loader2)
inline void lp_s_loader_seq(const float *s, hls::stream<hls::vector<float, 2> > &w, unsigned n0, unsigned n1,
                            unsigned nb)
{
    pref_s_loader(s, s + n0, w, nb, n0);
    pref_s_loader(s + 2 * n0, s + 2 * n0 + n1, w, nb, n1);
}

inline void lp_s_loader2(const float *s, hls::stream<hls::vector<float, 2> > &w0, unsigned n0,
                         hls::stream<hls::vector<float, 2> > &w1, unsigned n1, unsigned nb)
{
    pref_s_loader(s, s + n0, w0, nb, n0);
    pref_s_loader(s + 2 * n0, s + 2 * n0 + n1, w1, nb, n1);
}

// the [K | Q] PE array: the K pass over every block, then the Q pass
template <class C>
void lp_gemm_kq(hls::stream<hls::vector<ap_int<4>, C::tp> > &a, hls::stream<hls::vector<ap_int<4>, C::wp> > &w,
                hls::stream<hls::vector<ap_int<19>, C::tp> > &acc, unsigned nb)
{
    typedef lp_gemm_cfg<2048, 11, C::wp> gc;
    gemm_i4_pref<gc>(a, w, acc, nb, C::d, C::kv_dim);
    gemm_i4_pref<gc>(a, w, acc, nb, C::d, C::d);
}

template <class T>
void lp_discard2(hls::stream<T> &in, hls::stream<T> &out, unsigned nb, unsigned keep0, unsigned total0,
                 unsigned keep1, unsigned total1)
{
    pref_io_discard<T>(in, out, nb, keep0, total0);
    pref_io_discard<T>(in, out, nb, keep1, total1);
}

// the [K | Q] dequantizer: K pass rows to k, Q pass rows to q
template <class C>
void lp_dequant_kq(hls::stream<hls::vector<ap_int<19>, C::tp> > &acc, hls::stream<hls::vector<float, 2> > &sb,
                   hls::stream<hls::vector<float, 2> > &wsb, hls::stream<hls::vector<float, C::tp> > &k,
                   hls::stream<hls::vector<float, C::tp> > &q, unsigned nb)
{
    dequant_pref<lp_deq_cfg<19> >(acc, sb, wsb, k, nb, C::kv_dim);
    dequant_pref<lp_deq_cfg<19> >(acc, sb, wsb, q, nb, C::d);
}

// a K or V cache manager: stores the chunk's rows, then streams all
// seq_len keys per query block and head (K) or values per query block,
// head and dim block (V)
template <class C, bool IS_K, unsigned P>
void lp_cache_manager(hls::stream<hls::vector<ap_int<8>, C::tp> > &in, ap_int<8> *cache,
                      hls::stream<hls::vector<ap_int<8>, P> > &out, unsigned b0, unsigned nb)
{
    const unsigned G = C::heads / C::kv_heads, S = (b0 + nb) * C::tp;
    pref_kv_cache_store<C::tp>(in, cache, b0, nb, C::kv_dim);
    if (IS_K)
        pref_k_cache_manager<P>(cache, out, nb, C::heads, G, C::head_dim, C::kv_dim, S);
    else
        pref_v_cache_manager<P>(cache, out, nb, C::heads, G, C::head_dim, C::kv_dim, S);
}

// score dequant (Q_s, K_s from tab)
template <class C>
void lp_score_dequant(hls::stream<hls::vector<ap_int<22>, C::tp> > &acc,
                      hls::stream<hls::vector<float, C::tp> > &y, hls::stream<float> &tab, unsigned nb, unsigned S)
{
    float qs[C::heads], ks[C::kv_heads];
    lp_read_table<C::heads>(tab, qs);
    lp_read_table<C::kv_heads>(tab, ks);
    dequant_static_pref<lp_ds_cfg<22, C::max_keys> >(acc, y, qs, ks, nb, S);
}

// uint8 P (A_s from tab)
template <class C>
void lp_p_quant(hls::stream<hls::vector<float, C::tp> > &p, hls::stream<hls::vector<ap_int<8>, C::tp> > &p8,
                hls::stream<float> &tab, unsigned nb, unsigned S)
{
    float as[C::heads];
    lp_read_table<C::heads>(tab, as);
    quant_static_pref<lp_qs_cfg<C::heads, C::max_keys, false> >(p, p8, as, 1.0f, nb, S);
}

// attention output dequant (A_s, V_s from tab), natural channel order
template <class C>
void lp_attn_dequant(hls::stream<hls::vector<ap_int<26>, C::tp> > &acc,
                     hls::stream<hls::vector<float, C::tp> > &y, hls::stream<float> &tab, unsigned nb)
{
    float as[C::heads], vs[C::kv_heads];
    lp_read_table<C::heads>(tab, as);
    lp_read_table<C::kv_heads>(tab, vs);
    dequant_static_pref<lp_ds_cfg<26, C::head_dim> >(acc, y, as, vs, nb);
}

// the names of a port's weight streams in csim reports ("gate_w0", ...)
template <class S>
void lp_name_streams(S *s, unsigned n, const char *base)
{
#if FLX_HLS_SHIM_STREAM
    static const char *digits[] = {"0", "1", "2", "3"};
    for (unsigned i = 0; i < n && i < 4; i++) s[i].flx_set_name((std::string(base) + digits[i]).c_str());
#else
    (void)s, (void)n, (void)base;
#endif
}

// The weight words of one prefill layer: [K | Q] and [V | O] (wp lanes,
// WP/2 bytes: the nibble pair of channels N*wp + 2j, +1 in byte j of word
// N*k_dim + k), gate, up and down over ffn_ports ports each (ffn_wp/ports
// lanes; pair n of port i in a block is output pair n*ports + i of the
// block: channels N*ffn_wp + 2(n*ports + i), +1).
template <class C>
struct layer_pref_words {
    typedef typename dec_wword<C::wp>::type qkvo;
    typedef typename dec_wword<C::ffn_wp / C::ffn_ports>::type ffn;
};

// One decoder layer over n_blocks token blocks from block first_block.
// io: x [8*nb][d] at 0, y [8*nb][d] written at 8*nb*d; gamma: attn_norm,
// ffn_norm; att: Q_s, K_s, V_s, A_s (32 each); rope: PE_sin [max_pos][32]
// then PE_cos; s_*: ws then wsum per linear ([K | Q]: K ws, K wsum, Q ws,
// Q wsum); kcache, vcache [max_keys][kv_dim]: rows below 8*first_block
// hold the earlier chunks' keys and values and are only read, the chunk's
// rows are written before QK^T (A.V) reads any.  Computing a prompt in such
// chunks gives the bits of one chunk over all of it: a query sees only keys
// at or before its position; the later ones are masked to -1e32, whose exp
// is exactly 0 and so adds nothing to a softmax sum, a P row or an A.V
// accumulator.
template <class C>
void decoder_layer_pref(float *io, const float *gamma, const float *att, const float *rope,
                        const typename layer_pref_words<C>::qkvo *w_kq, const float *s_kq,
                        const typename layer_pref_words<C>::qkvo *w_vo, const float *s_vo,
                        const typename layer_pref_words<C>::ffn *w_gate0,
                        const typename layer_pref_words<C>::ffn *w_gate1,
                        const typename layer_pref_words<C>::ffn *w_gate2, const float *s_gate,
                        const typename layer_pref_words<C>::ffn *w_up0, const typename layer_pref_words<C>::ffn *w_up1,
                        const typename layer_pref_words<C>::ffn *w_up2, const float *s_up,
                        const typename layer_pref_words<C>::ffn *w_down0,
                        const typename layer_pref_words<C>::ffn *w_down1,
                        const typename layer_pref_words<C>::ffn *w_down2, const float *s_down, ap_int<8> *kcache,
                        ap_int<8> *vcache, unsigned nb, unsigned b0)
{
    static_assert(C::ffn_ports == 3, "decoder_layer_pref: the FFN linears have three weight ports each");
    const unsigned D = C::d, KV = C::kv_dim, F = C::ff, H = C::heads, TP = C::tp, WP = C::wp;
    const unsigned FW = C::ffn_wp, NP = C::ffn_ports, FL = FW / NP;
    const unsigned S = (b0 + nb) * TP;
    typedef hls::vector<float, TP> fv;
    typedef hls::vector<ap_int<4>, TP> a4;
    typedef hls::vector<float, 2> pr;
    typedef hls::vector<ap_int<8>, TP> i8v;
    typedef qk_i8_pref_config qkc;
    typedef lp_av_cfg<C::max_keys> avc;
    typedef lp_gemm_cfg<2048, 11, WP> g_qkvo;
    typedef lp_gemm_cfg<2048, 11, FW> g_gu;
    typedef lp_gemm_cfg<8192, 13, FW> g_dn;
    const unsigned nw_kv = (KV + WP - 1) / WP, nw_d = (D + WP - 1) / WP;   // 22, 86 weight blocks
    const unsigned nf_f = (F + FW - 1) / FW, nf_d = (D + FW - 1) / FW;     // 86, 22
    const unsigned q_base = nw_kv * D;                                     // Q (O) after K (V)

    // ---- streams (depths: the config's)
    hls::stream<float, C::table_depth> g0("gamma0"), g1("gamma1");
    hls::stream<float, C::table_depth> tk("att_k"), tv("att_v"), tq("att_q"), ts("att_scores"), tpq("att_p"),
        ta("att_o");
    hls::stream<pr, C::table_depth> rk("rope_k"), rq("rope_q");
    hls::stream<fv, C::act_depth> x("x"), h0("h_attn");
    hls::stream<fv, C::x_res_depth> x_res("x_res");
    hls::stream<a4, C::act_depth> a0("a_attn"), kq_a("kq_a"), v_a("v_a");
    hls::stream<pr, C::pair_depth> sb0("sb_attn"), kq_sb("kq_sb"), v_sb("v_sb");
    hls::stream<hls::vector<ap_int<4>, WP>, C::w_depth> kq_w("kq_w"), v_w("v_w"), o_w("o_w");
    hls::stream<pr, C::pair_depth> kq_wsb("kq_wsb"), v_wsb("v_wsb"), o_wsb("o_wsb");
    hls::stream<hls::vector<ap_int<19>, TP>, C::act_depth> kq_acc("kq_acc"), kq_kept("kq_kept");
    hls::stream<hls::vector<ap_int<19>, TP>, C::act_depth> v_acc("v_acc"), v_kept("v_kept");
    hls::stream<fv, C::act_depth> k_f("k"), q_f("q"), v_f("v"), k_r("k_rope"), q_r("q_rope");
    hls::stream<i8v, C::kv_depth> k8("k8"), v8("v8");
    hls::stream<hls::vector<ap_int<8>, qkc::kp>, C::kv_depth> keys("keys");
    hls::stream<hls::vector<ap_int<8>, avc::vp>, C::kv_depth> vals("values");
    hls::stream<i8v, C::act_depth> q8("q8"), p8("p8");
    hls::stream<hls::vector<ap_int<22>, TP>, C::act_depth> sc("score_acc");
    hls::stream<fv, C::act_depth> sf("scores"), sm("masked"), pf("p");
    hls::stream<hls::vector<ap_int<26>, TP>, C::act_depth> ao("attn_acc");
    hls::stream<fv, C::act_depth> att_o("attn");
    hls::stream<a4, C::act_depth> o_a("o_a");
    hls::stream<pr, C::pair_depth> o_sb("o_sb");
    hls::stream<hls::vector<ap_int<19>, TP>, C::act_depth> o_acc("o_acc"), o_kept("o_kept");
    hls::stream<fv, C::act_depth> o_f("o_proj"), r0("r0"), r0_ln("r0_ln"), h1("h_ffn");
    hls::stream<fv, C::r0_res_depth> r0_res("r0_res");
    hls::stream<a4, C::act_depth> f_a("a_ffn"), g_a("gate_a"), u_a("up_a");
    hls::stream<pr, C::pair_depth> f_sb("sb_ffn"), g_sb("gate_sb"), u_sb("up_sb");
    hls::stream<hls::vector<ap_int<4>, FL>, C::w_depth> g_w[C::ffn_ports], u_w[C::ffn_ports], d_w[C::ffn_ports];
    lp_name_streams(g_w, NP, "gate_w");
    lp_name_streams(u_w, NP, "up_w");
    lp_name_streams(d_w, NP, "down_w");
    hls::stream<pr, C::pair_depth> g_wsb("gate_wsb"), u_wsb("up_wsb"), d_wsb("down_wsb");
    hls::stream<hls::vector<ap_int<19>, TP>, C::act_depth> g_acc("gate_acc"), g_kept("gate_kept"),
        u_acc("up_acc"), u_kept("up_kept");
    hls::stream<fv, C::act_depth> gate_f("gate"), up_f("up"), act("act"), act_f("act_fht");
    hls::stream<a4, C::act_depth> d_a("down_a");
    hls::stream<pr, C::pair_depth> d_sb("down_sb");
    hls::stream<hls::vector<ap_int<21>, TP>, C::act_depth> d_acc("down_acc"), d_kept("down_kept");
    hls::stream<fv, C::act_depth> down_f("down"), y("y");
#ifndef __SYNTHESIS__
    probe_rec<fv> p_h, p_k, p_v, p_q, p_kr, p_qr, p_sc, p_p, p_att, p_o, p_r0, p_h1, p_g, p_u, p_act, p_fht, p_dn;
    probe_rec<i8v> p_q8, p_p8;
#define LP_PROBE(s, r) probe_stream(s, r)
#else
#define LP_PROBE(s, r) do { } while (0)
#endif

    // ---- the region; in declaration order the tasks also run one after
    // another over unbounded FIFOs (Vitis C simulation)
    FLX_DATAFLOW_BEGIN(df, "decoder_layer_pref");
    FLX_TASK(df, "gamma_loader", lp_gamma_loader<C>(gamma, g0, g1));
    FLX_TASK(df, "att_loader", lp_att_loader<C>(att, tk, tv, tq, ts, tpq, ta));
    FLX_TASK(df, "rope_loader", lp_rope_loader<C>(rope, rk, rq, b0, nb));
    FLX_TASK(df, "x_loader", lp_x_loader<C>(io, x, x_res, nb));
    FLX_TASK(df, "rmsnorm_attn", rmsnorm_pref<rmsnorm_pref_config>(x, g0, h0, 2 * nb));
    LP_PROBE(h0, p_h);
    FLX_TASK(df, "quant_attn", quant_asym_pref<lp_quant_cfg<2048> >(h0, a0, sb0, 2 * nb, D));
    FLX_TASK(df, "dist_kvq", lp_dist_kvq<C>(a0, sb0, kq_a, kq_sb, v_a, v_sb, nb));
    // [K | Q]: the K pass, then the Q pass
    FLX_TASK(df, "kq_w_loader",
             lp_w_loader_seq<WP>(w_kq, kq_w, 0, nw_kv, q_base, nw_d, nb, D));
    FLX_TASK(df, "kq_s_loader", lp_s_loader_seq(s_kq, kq_wsb, KV, D, nb));
    FLX_TASK(df, "kq_gemm", lp_gemm_kq<C>(kq_a, kq_w, kq_acc, nb));
    FLX_TASK(df, "kq_discard", lp_discard2(kq_acc, kq_kept, nb, KV, nw_kv * WP, D, nw_d * WP));
    FLX_TASK(df, "kq_dequant", lp_dequant_kq<C>(kq_kept, kq_sb, kq_wsb, k_f, q_f, nb));
    LP_PROBE(k_f, p_k);
    LP_PROBE(q_f, p_q);
    // K: RoPE, INT8, the K cache manager (barrier 1)
    FLX_TASK(df, "k_rope", (lp_rope<C, C::kv_heads>(k_f, k_r, rk, nb)));
    LP_PROBE(k_r, p_kr);
    FLX_TASK(df, "k_quant8", (lp_quant8<C, C::kv_heads>(k_r, k8, tk, 1.0f, nb)));
    FLX_TASK(df, "k_cache", (lp_cache_manager<C, true, qkc::kp>(k8, kcache, keys, b0, nb)));
    // V: its own array on the [V | O] port's V words, INT8, the V cache manager (barrier 2)
    FLX_TASK(df, "vo_w_loader", lp_w_loader2<WP>(w_vo, v_w, 0, nw_kv, o_w, q_base, nw_d, nb, D));
    FLX_TASK(df, "vo_s_loader", lp_s_loader2(s_vo, v_wsb, KV, o_wsb, D, nb));
    FLX_TASK(df, "v_gemm", gemm_i4_pref<g_qkvo>(v_a, v_w, v_acc, nb, D, KV));
    FLX_TASK(df, "v_discard", pref_io_discard(v_acc, v_kept, nb, KV, nw_kv * WP));
    FLX_TASK(df, "v_dequant", dequant_pref<lp_deq_cfg<19> >(v_kept, v_sb, v_wsb, v_f, nb, KV));
    LP_PROBE(v_f, p_v);
    FLX_TASK(df, "v_quant8", (lp_quant8<C, C::kv_heads>(v_f, v8, tv, 1.0f, nb)));
    FLX_TASK(df, "v_cache", (lp_cache_manager<C, false, avc::vp>(v8, vcache, vals, b0, nb)));
    // Q, attention
    FLX_TASK(df, "q_rope", (lp_rope<C, C::heads>(q_f, q_r, rq, nb)));
    LP_PROBE(q_r, p_qr);
    FLX_TASK(df, "q_quant8", (lp_quant8<C, C::heads>(q_r, q8, tq, 8.0f, nb)));
    LP_PROBE(q8, p_q8);
    FLX_TASK(df, "qk", qk_i8_pref<qkc>(q8, keys, sc, nb, H, S));
    FLX_TASK(df, "score_dequant", lp_score_dequant<C>(sc, sf, ts, nb, S));
    LP_PROBE(sf, p_sc);
    FLX_TASK(df, "causal_mask", causal_mask_pref<causal_mask_pref_config>(sf, sm, b0, nb, H, S));
    FLX_TASK(df, "softmax", (softmax_pref<lp_softmax_cfg<C::exp_impl, C::max_keys> >(sm, pf, nb, H, S)));
    LP_PROBE(pf, p_p);
    FLX_TASK(df, "p_quant8", lp_p_quant<C>(pf, p8, tpq, nb, S));
    LP_PROBE(p8, p_p8);
    FLX_TASK(df, "av", av_u8i8_pref<avc>(p8, vals, ao, nb, H, S));
    FLX_TASK(df, "attn_dequant", lp_attn_dequant<C>(ao, att_o, ta, nb));
    LP_PROBE(att_o, p_att);
    // O, residual, RMSNorm
    FLX_TASK(df, "quant_o", quant_asym_pref<lp_quant_cfg<2048> >(att_o, o_a, o_sb, nb, D));
    FLX_TASK(df, "o_gemm", gemm_i4_pref<g_qkvo>(o_a, o_w, o_acc, nb, D, D));
    FLX_TASK(df, "o_discard", pref_io_discard(o_acc, o_kept, nb, D, nw_d * WP));
    FLX_TASK(df, "o_dequant", dequant_pref<lp_deq_cfg<19> >(o_kept, o_sb, o_wsb, o_f, nb, D));
    LP_PROBE(o_f, p_o);
    FLX_TASK(df, "residual_attn", residual<lp_res_cfg>(o_f, x_res, r0, nb * D));
    LP_PROBE(r0, p_r0);
    FLX_TASK(df, "r0_fork", lp_fork(r0, r0_ln, r0_res, nb * D));
    FLX_TASK(df, "rmsnorm_ffn", rmsnorm_pref<rmsnorm_pref_config>(r0_ln, g1, h1, nb));
    LP_PROBE(h1, p_h1);
    // gate, up: three ports each (blocked linears)
    FLX_TASK(df, "quant_ffn", quant_asym_pref<lp_quant_cfg<2048> >(h1, f_a, f_sb, nb, D));
    FLX_TASK(df, "dist_gate_up", lp_dist2<C>(f_a, f_sb, g_a, g_sb, u_a, u_sb, nb, D));
    FLX_TASK(df, "gate_w_loader0", lp_w_loader<FL>(w_gate0, g_w[0], nf_f, nb, D));
    FLX_TASK(df, "gate_w_loader1", lp_w_loader<FL>(w_gate1, g_w[1], nf_f, nb, D));
    FLX_TASK(df, "gate_w_loader2", lp_w_loader<FL>(w_gate2, g_w[2], nf_f, nb, D));
    FLX_TASK(df, "up_w_loader0", lp_w_loader<FL>(w_up0, u_w[0], nf_f, nb, D));
    FLX_TASK(df, "up_w_loader1", lp_w_loader<FL>(w_up1, u_w[1], nf_f, nb, D));
    FLX_TASK(df, "up_w_loader2", lp_w_loader<FL>(w_up2, u_w[2], nf_f, nb, D));
    FLX_TASK(df, "gate_s_loader", pref_s_loader(s_gate, s_gate + F, g_wsb, nb, F));
    FLX_TASK(df, "up_s_loader", pref_s_loader(s_up, s_up + F, u_wsb, nb, F));
    FLX_TASK(df, "gate_gemm", (gemm_i4_pref_blocked<g_gu, C::ffn_ports>(g_a, g_w, g_acc, nb, D, F)));
    FLX_TASK(df, "up_gemm", (gemm_i4_pref_blocked<g_gu, C::ffn_ports>(u_a, u_w, u_acc, nb, D, F)));
    FLX_TASK(df, "gate_discard", pref_io_discard(g_acc, g_kept, nb, F, nf_f * FW));
    FLX_TASK(df, "up_discard", pref_io_discard(u_acc, u_kept, nb, F, nf_f * FW));
    FLX_TASK(df, "gate_dequant", dequant_pref<lp_deq_cfg<19> >(g_kept, g_sb, g_wsb, gate_f, nb, F));
    FLX_TASK(df, "up_dequant", dequant_pref<lp_deq_cfg<19> >(u_kept, u_sb, u_wsb, up_f, nb, F));
    LP_PROBE(gate_f, p_g);
    LP_PROBE(up_f, p_u);
    // SiLU * up, FHT, down, residual
    FLX_TASK(df, "silu_gate", silu_gate_pref<lp_silu_cfg<C::exp_impl> >(gate_f, up_f, act, nb, F));
    LP_PROBE(act, p_act);
    FLX_TASK(df, "fht", fht_pref<fht_pref_config>(act, act_f, 90.50967f, nb));
    LP_PROBE(act_f, p_fht);
    FLX_TASK(df, "quant_down", quant_asym_pref<lp_quant_cfg<8192> >(act_f, d_a, d_sb, nb, F));
    FLX_TASK(df, "down_w_loader0", lp_w_loader<FL>(w_down0, d_w[0], nf_d, nb, F));
    FLX_TASK(df, "down_w_loader1", lp_w_loader<FL>(w_down1, d_w[1], nf_d, nb, F));
    FLX_TASK(df, "down_w_loader2", lp_w_loader<FL>(w_down2, d_w[2], nf_d, nb, F));
    FLX_TASK(df, "down_s_loader", pref_s_loader(s_down, s_down + D, d_wsb, nb, D));
    FLX_TASK(df, "down_gemm", (gemm_i4_pref_blocked<g_dn, C::ffn_ports>(d_a, d_w, d_acc, nb, F, D)));
    FLX_TASK(df, "down_discard", pref_io_discard(d_acc, d_kept, nb, D, nf_d * FW));
    FLX_TASK(df, "down_dequant", dequant_pref<lp_deq_cfg<21> >(d_kept, d_sb, d_wsb, down_f, nb, D));
    LP_PROBE(down_f, p_dn);
    FLX_TASK(df, "residual_ffn", residual<lp_res_cfg>(down_f, r0_res, y, nb * D));
    FLX_TASK(df, "y_drainer", lp_y_drainer<C>(y, io + (size_t)nb * TP * D, nb));
    FLX_DATAFLOW_END(df);
#undef LP_PROBE

#ifndef __SYNTHESIS__
    // the intermediates in the golden layer sets' layouts: [token][channel],
    // scores / P / uint8 P as [head][query][key]
    if (probe_sink *ps = probe()) {
        auto f = [](float v) { return v; };
        auto i = [](const ap_int<8> &v) { return (long long)v.to_int(); };
        auto u = [](const ap_int<8> &v) { return (long long)(v.to_int() & 255); };
        auto tok = [&](const char *name, const probe_rec<fv> &r, unsigned c) {
            std::vector<float> a = probe_tokens<TP, fv, float>(r, 0, nb, c, f);
            ps->f32(name, a.data(), a.size());
        };
        auto head = [&](const char *name, const probe_rec<fv> &r) {
            std::vector<float> a = probe_heads<TP, fv, float>(r, nb, H, S, f);
            ps->f32(name, a.data(), a.size());
        };
        tok("h_attn", p_h, D);   // the K/V pass's rows (the Q pass recomputes the same bits)
        tok("k", p_k, KV);
        tok("v", p_v, KV);
        tok("q", p_q, D);
        tok("k_rope", p_kr, KV);
        tok("q_rope", p_qr, D);
        std::vector<long long> q8v = probe_tokens<TP, i8v, long long>(p_q8, 0, nb, D, i);
        ps->ints("q8", q8v.data(), q8v.size());
        head("scores", p_sc);
        head("p", p_p);
        std::vector<long long> p8v = probe_heads<TP, i8v, long long>(p_p8, nb, H, S, u);
        ps->ints("p8", p8v.data(), p8v.size());
        tok("attn", p_att, D);
        tok("o_proj", p_o, D);
        tok("r0", p_r0, D);
        tok("h_ffn", p_h1, D);
        tok("gate", p_g, F);
        tok("up", p_u, F);
        tok("act", p_act, F);
        tok("act_fht", p_fht, F);
        tok("down", p_dn, D);
    }
#endif
}

}  // namespace flx_hls

#endif  // FLX_HLS_LAYER_PREF_H
