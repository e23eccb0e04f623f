// layer_pref.h -- one Llama decoder layer in prefill over n_blocks token
// blocks of TP = 8 starting at block first_block (positions 8*first_block ..
// 8*(first_block+n_blocks)-1; seq_len = 8*(first_block+n_blocks) keys, a
// multiple of 16: the keys of earlier calls come from the K/V caches), the
// schedule of reference-design §2.3 / 3.3 built from the kernels of this
// folder (SpinQuant_Prefilling_mem_opt):
//   RMSNorm -> K, V, Q linears -> RoPE -> static INT8 K/V/Q -> K and V cache
//   managers (every key stored before QK^T: a barrier) -> QK^T over all
//   seq_len keys -> score dequant -> causal mask -> softmax -> uint8 P ->
//   A.V -> attention dequant -> O -> residual -> RMSNorm -> gate, up ->
//   SiLU * up -> FHT -> down -> residual.
// Every linear is quant_asym_pref -> (pref_weight_loader_i4 || gemm_i4_pref,
// a concurrent DATAFLOW region) -> pref_io_discard -> dequant_pref with the
// pair loader; the weights are re-streamed for every token block.
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
    static const unsigned tp = 8, wp = 24;
    static const unsigned max_seq = 16;         // tokens of one call (activation buffers)
    static const unsigned max_keys = 2048;      // keys: softmax row and P buffers (the caches' rows)
    static const unsigned max_pos = 2048;       // RoPE rows
    static const unsigned w_fifo_depth = 4;     // weight loader -> GEMM
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

// One prefill linear's HBM ports: packed words (WP/2 bytes: the nibble pair
// of channels N*WP + 2j, +1 in byte j of word N*k_dim + k) and the tables.
template <unsigned WP>
struct pref_linear_ports {
    const typename dec_wword<WP>::type *w;
    const float *ws, *wsum;
};

// [T][C] natural <-> token-parallel beats (per block, C beats of TP lanes)
template <unsigned TP, class T, class S>
void lp_push(S &s, const T *x, unsigned nb, unsigned c)
{
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned k = 0; k < c; k++) {
            hls::vector<T, TP> v;
            for (unsigned t = 0; t < TP; t++) v[t] = x[(blk * TP + t) * c + k];
            s.write(v);
        }
}
template <unsigned TP, class T, class S>
void lp_pop(S &s, T *x, unsigned nb, unsigned c)
{
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned k = 0; k < c; k++) {
            hls::vector<T, TP> v = s.read();
            for (unsigned t = 0; t < TP; t++) x[(blk * TP + t) * c + k] = v[t];
        }
}

// y[T][n_out] = dequant(GEMM(quant(x[T][k_dim])))
template <class C, unsigned KMAX, int L>
void linear_pref(const float *x, unsigned nb, unsigned k_dim, const pref_linear_ports<C::wp> &p,
                 unsigned n_out, float *y)
{
    const unsigned TP = C::tp, WP = C::wp, nw = (n_out + WP - 1) / WP;
    typedef lp_quant_cfg<KMAX> qc;
    typedef lp_gemm_cfg<KMAX, L, WP> gc;
    typedef lp_deq_cfg<L + 8> dc;
    hls::stream<hls::vector<float, TP> > xs("lp_x"), ys("lp_y");
    hls::stream<hls::vector<ap_int<4>, TP> > q("lp_q4");
    hls::stream<hls::vector<float, 2> > sb("lp_s_b"), wsb("lp_w_sb");
    hls::stream<hls::vector<ap_int<4>, WP>, C::w_fifo_depth> w("lp_w");
    hls::stream<hls::vector<ap_int<L + 8>, TP> > acc("lp_acc"), acc_d("lp_acc_kept");
    lp_push<TP>(xs, x, nb, k_dim);
    quant_asym_pref<qc>(xs, q, sb, nb, k_dim);
    FLX_DATAFLOW_BEGIN(df, "linear_pref");
    FLX_TASK(df, "weight_loader",
             for (unsigned blk = 0; blk < nb; blk++) dec_weight_loader_i4<WP>(p.w, 0, w, nw, k_dim));
    FLX_TASK(df, "gemm", gemm_i4_pref<gc>(q, w, acc, nb, k_dim, n_out));
    FLX_DATAFLOW_END(df);
    pref_io_discard<hls::vector<ap_int<L + 8>, TP> >(acc, acc_d, nb, n_out, nw * WP);
    pref_s_loader(p.ws, p.wsum, wsb, nb, n_out);
    dequant_pref<dc>(acc_d, sb, wsb, ys, nb, n_out);
    lp_pop<TP>(ys, y, nb, n_out);
}

template <class C>
void norm_pref(const float *x, const float *gamma, unsigned nb, float *y)
{
    typedef rmsnorm_pref_config nc;
    hls::stream<hls::vector<float, C::tp> > xs("ln_x"), ys("ln_y");
    hls::stream<float> gs("ln_gamma");
    for (unsigned k = 0; k < C::d; k++) gs.write(gamma[k]);
    lp_push<C::tp>(xs, x, nb, C::d);
    rmsnorm_pref<nc>(xs, gs, ys, nb);
    lp_pop<C::tp>(ys, y, nb, C::d);
}

template <class C>
void residual_pref(const float *a, const float *r, unsigned nb, float *y)
{
    hls::stream<hls::vector<float, C::tp> > as("res_a"), rs("res_r"), ys("res_y");
    lp_push<C::tp>(as, a, nb, C::d);
    lp_push<C::tp>(rs, r, nb, C::d);
    residual<lp_res_cfg>(as, rs, ys, nb * C::d);
    lp_pop<C::tp>(ys, y, nb, C::d);
}

// RoPE (positions 8(b0 + M) + lane) then static INT8 quantization of n_heads heads
template <class C, unsigned HEADS>
void rope_quant_pref(float *x, unsigned b0, unsigned nb, const float sin_tab[][C::head_dim / 2],
                     const float cos_tab[][C::head_dim / 2], bool rope, const float *scale, float factor,
                     ap_int<8> *q8)
{
    const unsigned N = HEADS * C::head_dim;
    hls::stream<hls::vector<float, C::tp> > xs("rq_x"), rs("rq_rope");
    hls::stream<hls::vector<ap_int<8>, C::tp> > qs("rq_q8");
    lp_push<C::tp>(xs, x, nb, N);
    if (rope) {
        rope_pref<lp_rope_cfg<C::max_pos> >(xs, rs, sin_tab, cos_tab, b0, nb, HEADS);
        lp_pop<C::tp>(rs, x, nb, N);
        lp_push<C::tp>(xs, x, nb, N);
    }
    quant_static_pref<lp_qs_cfg<HEADS, C::head_dim, true> >(xs, qs, scale, factor, nb);
    lp_pop<C::tp>(qs, q8, nb, N);
}

// One decoder layer over nb token blocks from block b0 (seq_len = 8*(b0+nb)
// keys).  x, y: [8*nb][d]; k8, v8: the layer's K/V caches, [8*(b0+nb)][kv_dim]
// (the caches handed to decode): rows below 8*b0 hold the earlier calls'
// keys and values and are only read, the call writes rows 8*b0 .. 8*(b0+nb)-1
// before QK^T reads any (the barrier of reference-design §2.3).  Computing a
// prompt in such calls gives the bits of one call over all of it: a query
// sees only keys at or before its position; the later ones are masked to
// -1e32, whose exp is exactly 0 and so adds nothing to a softmax sum, a P
// row or an A.V accumulator.
template <class C>
void decoder_layer_pref(const float *x, float *y, const float *attn_norm, const float *ffn_norm,
                        const pref_linear_ports<C::wp> &wk, const pref_linear_ports<C::wp> &wv,
                        const pref_linear_ports<C::wp> &wq, const pref_linear_ports<C::wp> &wo,
                        const pref_linear_ports<C::wp> &gate, const pref_linear_ports<C::wp> &up,
                        const pref_linear_ports<C::wp> &down, const float *q_s, const float *k_s,
                        const float *v_s, const float *a_s, const float sin_tab[][C::head_dim / 2],
                        const float cos_tab[][C::head_dim / 2], ap_int<8> *k8, ap_int<8> *v8, unsigned nb,
                        unsigned b0 = 0)
{
    const unsigned D = C::d, KV = C::kv_dim, F = C::ff, H = C::heads, HD = C::head_dim, TP = C::tp;
    const unsigned T = nb * TP, S = (b0 + nb) * TP, G = C::heads / C::kv_heads;
    static float h[C::max_seq * C::d], k[C::max_seq * C::kv_dim], v[C::max_seq * C::kv_dim];
    static float q[C::max_seq * C::d], o[C::max_seq * C::d], r0[C::max_seq * C::d];
    static float g[C::max_seq * C::ff], u[C::max_seq * C::ff], act[C::max_seq * C::ff];
    static ap_int<8> q8[C::max_seq * C::d];
    norm_pref<C>(x, attn_norm, nb, h);
    FLX_PROBE_F32("h_attn", h, T * D);
    linear_pref<C, 2048, 11>(h, nb, D, wk, KV, k);
    linear_pref<C, 2048, 11>(h, nb, D, wv, KV, v);
    linear_pref<C, 2048, 11>(h, nb, D, wq, D, q);
    FLX_PROBE_F32("k", k, T * KV);
    FLX_PROBE_F32("v", v, T * KV);
    FLX_PROBE_F32("q", q, T * D);
    rope_quant_pref<C, C::kv_heads>(k, b0, nb, sin_tab, cos_tab, true, k_s, 1.0f, k8 + (size_t)b0 * TP * KV);
    rope_quant_pref<C, C::kv_heads>(v, b0, nb, sin_tab, cos_tab, false, v_s, 1.0f, v8 + (size_t)b0 * TP * KV);
    rope_quant_pref<C, C::heads>(q, b0, nb, sin_tab, cos_tab, true, q_s, 8.0f, q8);
    FLX_PROBE_F32("k_rope", k, T * KV);
    FLX_PROBE_F32("q_rope", q, T * D);
    FLX_PROBE_INTS("q8", q8, T * D, -1);
    // attention: the K and V cache managers re-stream all S keys (already all
    // stored: k8/v8 are complete here) per query block and head
    {
        typedef qk_i8_pref_config qkc;
        typedef lp_av_cfg<C::max_keys> avc;
        const unsigned KP = qkc::kp, VP = avc::vp;
        hls::stream<hls::vector<ap_int<8>, C::tp> > qs("att_q8"), p8s("att_p8");
        hls::stream<hls::vector<ap_int<8>, qkc::kp> > ks("att_k8");
        hls::stream<hls::vector<ap_int<8>, avc::vp> > vs("att_v8");
        hls::stream<hls::vector<ap_int<22>, C::tp> > sc("att_acc");
        hls::stream<hls::vector<float, C::tp> > sf("att_scores"), sm("att_masked"), pf("att_p"), os("att_o");
        hls::stream<hls::vector<ap_int<26>, C::tp> > ao("att_acc_o");
        lp_push<C::tp>(qs, q8, nb, D);
        pref_k_cache_manager<KP>(k8, ks, nb, H, G, HD, KV, S);
        qk_i8_pref<qkc>(qs, ks, sc, nb, H, S);
        dequant_static_pref<lp_ds_cfg<22, C::max_keys> >(sc, sf, q_s, k_s, nb, S);
#ifndef __SYNTHESIS__
        // scores, P, uint8 P as [head][query][key] (beat (blk*H + head)*S + j, lane t)
        probe_tee<hls::vector<float, C::tp> >(sf, (size_t)nb * H * S, [&](const std::vector<hls::vector<float, C::tp> > &b) {
            std::vector<float> a((size_t)H * T * S);
            for (size_t i = 0; i < b.size(); i++)
                for (unsigned t = 0; t < TP; t++)
                    a[((i / S) % H * T + (i / S / H) * TP + t) * S + i % S] = b[i][t];
            probe()->f32("scores", a.data(), a.size());
        });
#endif
        causal_mask_pref<causal_mask_pref_config>(sf, sm, b0, nb, H, S);
        softmax_pref<lp_softmax_cfg<C::exp_impl, C::max_keys> >(sm, pf, nb, H, S);
#ifndef __SYNTHESIS__
        probe_tee<hls::vector<float, C::tp> >(pf, (size_t)nb * H * S, [&](const std::vector<hls::vector<float, C::tp> > &b) {
            std::vector<float> a((size_t)H * T * S);
            for (size_t i = 0; i < b.size(); i++)
                for (unsigned t = 0; t < TP; t++)
                    a[((i / S) % H * T + (i / S / H) * TP + t) * S + i % S] = b[i][t];
            probe()->f32("p", a.data(), a.size());
        });
#endif
        quant_static_pref<lp_qs_cfg<C::heads, C::max_keys, false> >(pf, p8s, a_s, 1.0f, nb, S);
#ifndef __SYNTHESIS__
        probe_tee<hls::vector<ap_int<8>, C::tp> >(p8s, (size_t)nb * H * S, [&](const std::vector<hls::vector<ap_int<8>, C::tp> > &b) {
            std::vector<long long> a((size_t)H * T * S);
            for (size_t i = 0; i < b.size(); i++)
                for (unsigned t = 0; t < TP; t++)
                    a[((i / S) % H * T + (i / S / H) * TP + t) * S + i % S] = b[i][t].to_int() & 255;
            probe()->ints("p8", a.data(), a.size());
        });
#endif
        pref_v_cache_manager<VP>(v8, vs, nb, H, G, HD, KV, S);
        av_u8i8_pref<avc>(p8s, vs, ao, nb, H, S);
        dequant_static_pref<lp_ds_cfg<26, C::head_dim> >(ao, os, a_s, v_s, nb);
        lp_pop<C::tp>(os, o, nb, D);
    }
    FLX_PROBE_F32("attn", o, T * D);
    linear_pref<C, 2048, 11>(o, nb, D, wo, D, h);
    FLX_PROBE_F32("o_proj", h, T * D);
    residual_pref<C>(h, x, nb, r0);
    FLX_PROBE_F32("r0", r0, T * D);
    norm_pref<C>(r0, ffn_norm, nb, h);
    FLX_PROBE_F32("h_ffn", h, T * D);
    linear_pref<C, 2048, 11>(h, nb, D, gate, F, g);
    linear_pref<C, 2048, 11>(h, nb, D, up, F, u);
    FLX_PROBE_F32("gate", g, T * F);
    FLX_PROBE_F32("up", u, T * F);
    {
        hls::stream<hls::vector<float, C::tp> > gs("ffn_gate"), us("ffn_up"), as("ffn_act"), fs("ffn_fht");
        lp_push<C::tp>(gs, g, nb, F);
        lp_push<C::tp>(us, u, nb, F);
        silu_gate_pref<lp_silu_cfg<C::exp_impl> >(gs, us, as, nb, F);
#ifndef __SYNTHESIS__
        probe_tee<hls::vector<float, C::tp> >(as, (size_t)nb * F, [&](const std::vector<hls::vector<float, C::tp> > &b) {
            std::vector<float> a((size_t)T * F);
            for (size_t i = 0; i < b.size(); i++)
                for (unsigned t = 0; t < TP; t++) a[((i / F) * TP + t) * F + i % F] = b[i][t];
            probe()->f32("act", a.data(), a.size());
        });
#endif
        fht_pref<fht_pref_config>(as, fs, 90.50967f, nb);
        lp_pop<C::tp>(fs, act, nb, F);
    }
    FLX_PROBE_F32("act_fht", act, T * F);
    linear_pref<C, 8192, 13>(act, nb, F, down, D, h);
    FLX_PROBE_F32("down", h, T * D);
    residual_pref<C>(h, r0, nb, y);
    (void)T;
}

}  // namespace flx_hls

#endif  // FLX_HLS_LAYER_PREF_H
