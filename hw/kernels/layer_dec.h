// layer_dec.h -- one Llama decoder layer in decode (one token), the
// sequential per-token schedule of reference-design §2.4 built from the kernels of this
// folder (SpinQuant_Decoding_mem_opt; docs/kernels.md):
//   1 LN0 (B_T = 8 lanes) -> dec_io_buffer 8 -> 16
//   2 [K;V] GEMV, one block of 1024 outputs (fused as the host packs it)
//   3 Q GEMV (2 blocks)
//   4 RoPE at pos, static INT8 quantization, K/V cache update (K-group
//     register of reference-design §6.2 when quirks)
//   5 per head: QK^T over S = pos + 1 keys, score dequant, softmax, uint8 P,
//     A.V, then the attention dequant (head-parallel HP = 8)
//   6 O GEMV (2) 7 residual, LN1 8 gate (8), up (8) 9 SiLU * up, FHT
//   10 down (2 blocks, K = 8192) 11 residual
// Every GEMV is quant_asym_dec -> weight loader (nibble unpacking of the
// host's HBM packing, one port per lane) || gemm_i4_dec -> dequant_dec with
// the bandwidth scale/sum loader; the loader and the GEMV run as a DATAFLOW
// region (concurrently in csim, hw/csim/flx_csim_dataflow.h) with the
// per-lane weight FIFO depth of the config.
#ifndef FLX_HLS_LAYER_DEC_H
#define FLX_HLS_LAYER_DEC_H

#include "av_u8i8.h"
#include "data_io.h"
#include "dequant.h"
#include "dequant_static.h"
#include "fht.h"
#include "flx_probe.h"
#include "gemm_i4_dec.h"
#include "qk_i8.h"
#include "quant_asym.h"
#include "quant_static.h"
#include "residual.h"
#include "rmsnorm.h"
#include "rope.h"
#include "silu_gate.h"
#include "softmax.h"
#include "topk_sampling.h"

namespace flx_hls {

struct layer_dec_config {
    static const unsigned d = 2048, kv_dim = 512, ff = 8192;
    static const unsigned heads = 32, kv_heads = 8, head_dim = 64;
    static const unsigned b = 16, w = 64, bt = 8, hp = 8;
    static const unsigned max_len = 2048;       // K/V cache rows, RoPE rows
    static const unsigned w_fifo_depth = 4;     // weight loader -> GEMV, per lane
    static const bool quirks = true;            // the K-group register overwrite (reference-design §6.2)
    static const int exp_impl = EXP_FLX;
};

// configurations of the layer's kernels (namespace scope: local classes
// cannot have static data members)
typedef quant_asym_dec_config ld_quant_cfg;
typedef gemm_i4_dec_config ld_gemv_cfg;
typedef dequant_dec_config ld_dequant_cfg;
typedef rmsnorm_dec_config ld_norm_cfg;
typedef qk_i8_dec_config ld_qk_cfg;
typedef av_u8i8_dec_config ld_av_cfg;
typedef residual_config ld_res_cfg;
typedef fht_dec_config ld_fht_cfg;
template <unsigned MAX_POS>
struct ld_rope_cfg : rope_pref_config {
    static const unsigned tp = 1, max_pos = MAX_POS;
};
template <unsigned HEADS>
struct ld_qheads_cfg : quant_static_dec_config {
    static const unsigned heads = HEADS;
};
struct ld_score_cfg : dequant_static_dec_config {
    static const unsigned hp = 1, act_heads = 1, w_heads = 1;
};
struct ld_attn_cfg : dequant_static_dec_config {
    static const unsigned acc_bits = 27;
};
template <int E>
struct ld_softmax_cfg : softmax_dec_config {
    static const unsigned hp = 1;
    static const int exp_impl = E;
};
struct ld_pquant_cfg : quant_static_dec_config {
    static const unsigned hp = 1, heads = 1, head_dim = 1;
    static const bool is_signed = false;
};
template <int E>
struct ld_silu_cfg : silu_gate_dec_config {
    static const int exp_impl = E;
};

// One INT4 linear's HBM ports: per lane its packed words (dec_wword), the
// scale and sum tables (bandwidth loader order).
template <unsigned B, unsigned W>
struct dec_linear_ports {
    const typename dec_wword<W>::type *w[B];
    const float *ws, *wsum;
};

// y[n_out] = dequant(GEMV(quant(x[k_dim]))), natural order in and out
template <class C>
void linear_dec(const float *x, unsigned k_dim, const dec_linear_ports<C::b, C::w> &p, unsigned n_out,
                float *y)
{
    const unsigned B = C::b, W = C::w, pin = k_dim / B, pout = n_out / B;
    typedef ld_quant_cfg qc;
    typedef ld_gemv_cfg gc;
    typedef ld_dequant_cfg dc;
    hls::stream<hls::vector<float, B> > xs("lin_x"), ys("lin_y");
    hls::stream<hls::vector<ap_int<4>, B> > q("lin_q4");
    hls::stream<hls::vector<float, 2> > sb("lin_s_b"), wsb("lin_w_sb");
    hls::stream<hls::vector<ap_int<4>, W>, C::w_fifo_depth> w[B];
    hls::stream<hls::vector<ap_int<gc::l + 8>, B> > acc("lin_acc");
    for (unsigned k = 0; k < pin; k++) {
        hls::vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = x[i * pin + k];
        xs.write(v);
    }
    quant_asym_dec<qc>(xs, q, sb, k_dim);
    FLX_DATAFLOW_BEGIN(df, "linear_dec");
    FLX_TASK(df, "weight_loader",
             for (unsigned n = 0; n < n_out / (B * W); n++)
                 for (unsigned k = 0; k < k_dim; k++)
                     for (unsigned i = 0; i < B; i++)
                         dec_weight_loader_i4<W>(p.w[i], n * k_dim + k, w[i], 1, 1));
    FLX_TASK(df, "gemv", gemm_i4_dec<gc>(q, w, acc, k_dim, n_out));
    FLX_DATAFLOW_END(df);
    dec_s_loader_bw<B, W>(p.ws, p.wsum, 0, wsb, n_out);
    dequant_dec<dc>(acc, sb, wsb, ys, n_out);
    for (unsigned n = 0; n < n_out / (B * W); n++)
        for (unsigned c = 0; c < W; c++) {
            hls::vector<float, B> v = ys.read();
            for (unsigned i = 0; i < B; i++) y[i * pout + n * W + c] = v[i];
        }
}

// RMSNorm of a natural-order vector through the B_T-lane decode kernel
template <class C>
void norm_dec(const float *x, const float *gamma, float *y)
{
    const unsigned BT = C::bt, per = C::d / BT;
    typedef ld_norm_cfg nc;
    hls::stream<hls::vector<float, BT> > xs("ln_x"), gs("ln_gamma"), ys("ln_y");
    for (unsigned k = 0; k < per; k++) {
        hls::vector<float, BT> v, g;
        for (unsigned i = 0; i < BT; i++) {
            v[i] = x[i * per + k];
            g[i] = gamma[i * per + k];
        }
        xs.write(v);
        gs.write(g);
    }
    rmsnorm_dec<nc>(xs, gs, ys);
    for (unsigned k = 0; k < per; k++) {
        hls::vector<float, BT> v = ys.read();
        for (unsigned i = 0; i < BT; i++) y[i * per + k] = v[i];
    }
}

// RoPE of n_heads heads of one token at pos (rope_pref with one token lane:
// position = first_block * 1 + 0)
template <class C>
void rope_dec(float *x, unsigned n_heads, const float sin_tab[][C::head_dim / 2],
              const float cos_tab[][C::head_dim / 2], unsigned pos)
{
    typedef ld_rope_cfg<C::max_len> rc;
    hls::stream<hls::vector<float, 1> > in("rope_x"), out("rope_y");
    for (unsigned i = 0; i < n_heads * C::head_dim; i++) in.write(hls::vector<float, 1>(x[i]));
    rope_pref<rc>(in, out, sin_tab, cos_tab, pos, 1, n_heads);
    for (unsigned i = 0; i < n_heads * C::head_dim; i++) x[i] = out.read()[0];
}

// static INT8 quantization of n_heads heads (lane m = heads m*(n_heads/HP)...)
template <class C, unsigned HEADS>
void quant_heads_dec(const float *x, const float *scale, float factor, ap_int<8> *q)
{
    const unsigned HP = C::hp, N = HEADS * C::head_dim, per = N / HP;
    typedef ld_qheads_cfg<HEADS> qc;
    hls::stream<hls::vector<float, HP> > xs("qs_x");
    hls::stream<hls::vector<ap_int<8>, HP> > qs("qs_q");
    for (unsigned k = 0; k < per; k++) {
        hls::vector<float, HP> v;
        for (unsigned m = 0; m < HP; m++) v[m] = x[m * per + k];
        xs.write(v);
    }
    quant_static_dec<qc>(xs, qs, scale, factor);
    for (unsigned k = 0; k < per; k++) {
        hls::vector<ap_int<8>, HP> v = qs.read();
        for (unsigned m = 0; m < HP; m++) q[m * per + k] = v[m];
    }
}

// One decoder layer for the token at position pos (S = pos + 1 keys).
// x, y: natural order [d]; kcache/vcache [max_len][kv_dim] (this layer's);
// k_reg: the layer's 32-slot K register (state across tokens).
// att: Q_s[32], K_s[32] (first 8 used), V_s[32] (first 8), A_s[32].
template <class C>
void decoder_layer_dec(const float *x, float *y, const float *attn_norm, const float *ffn_norm,
                       const dec_linear_ports<C::b, C::w> &kv, const dec_linear_ports<C::b, C::w> &wq,
                       const dec_linear_ports<C::b, C::w> &wo, const dec_linear_ports<C::b, C::w> &gate,
                       const dec_linear_ports<C::b, C::w> &up, const dec_linear_ports<C::b, C::w> &down,
                       const float *q_s, const float *k_s, const float *v_s, const float *a_s,
                       const float sin_tab[][C::head_dim / 2], const float cos_tab[][C::head_dim / 2],
                       ap_int<8> *kcache, ap_int<8> *vcache, ap_int<8> k_reg[32][C::kv_dim], unsigned pos)
{
    const unsigned D = C::d, KV = C::kv_dim, F = C::ff, H = C::heads, HD = C::head_dim;
    const unsigned G = C::heads / C::kv_heads, S = pos + 1;
    float h[C::d], kvo[1024], q[C::d], o[C::d], r0[C::d], g[C::ff], u[C::ff], a[C::ff];
    ap_int<8> q8[C::d], k8[C::kv_dim], v8[C::kv_dim];
    ap_int<27> acc_o[C::d];
    // 1-3: LN0, [K;V] (lane b beat j: K channel 32b+j for c < 32, V after), Q
    norm_dec<C>(x, attn_norm, h);
    FLX_PROBE_F32("h_attn", h, D);
    linear_dec<C>(h, D, kv, 1024, kvo);
    float k[C::kv_dim], v[C::kv_dim];
    for (unsigned b = 0; b < 16; b++)
        for (unsigned c = 0; c < 32; c++) {
            k[b * 32 + c] = kvo[b * 64 + c];
            v[b * 32 + c] = kvo[b * 64 + 32 + c];
        }
    linear_dec<C>(h, D, wq, D, q);
    FLX_PROBE_F32("k", k, KV);
    FLX_PROBE_F32("v", v, KV);
    FLX_PROBE_F32("q", q, D);
    // 4: RoPE, quantization, caches
    rope_dec<C>(k, C::kv_heads, sin_tab, cos_tab, pos);
    rope_dec<C>(q, H, sin_tab, cos_tab, pos);
    FLX_PROBE_F32("k_rope", k, KV);
    FLX_PROBE_F32("q_rope", q, D);
    quant_heads_dec<C, C::kv_heads>(k, k_s, 1.0f, k8);
    quant_heads_dec<C, C::kv_heads>(v, v_s, 1.0f, v8);
    quant_heads_dec<C, C::heads>(q, q_s, 8.0f, q8);
    FLX_PROBE_INTS("q8", q8, D, -1);
    dec_k_cache_update<C::kv_dim>(k8, k_reg, kcache, pos, C::max_len, C::quirks);
    for (unsigned d = 0; d < KV; d++) vcache[pos * KV + d] = v8[d];
    // 5: attention, one head lane at a time
    typedef ld_qk_cfg qkc;
    typedef ld_av_cfg avc;
    typedef ld_score_cfg sdc;
    typedef ld_softmax_cfg<C::exp_impl> smc;
    typedef ld_pquant_cfg pqc;
    for (unsigned hh = 0; hh < H; hh++) {
        const unsigned kvh = hh / G, KP = qkc::kp, VP = avc::vp;
        hls::stream<ap_int<8> > qs("att_q8"), ps("att_p8");
        hls::stream<hls::vector<ap_int<8>, KP> > ks("att_k8");
        hls::stream<hls::vector<ap_int<8>, VP> > vs("att_v8");
        hls::stream<ap_int<22> > sc("att_acc");
        hls::stream<hls::vector<ap_int<22>, 1> > sc1("att_acc1");
        hls::stream<hls::vector<float, 1> > sf("att_scores"), pf("att_p");
        hls::stream<hls::vector<ap_int<8>, 1> > p8("att_p8v");
        hls::stream<ap_int<27> > ao("att_out");
        for (unsigned d = 0; d < HD; d++) qs.write(q8[hh * HD + d]);
        for (unsigned n = 0; n < (S + KP - 1) / KP; n++)
            for (unsigned d = 0; d < HD; d++) {
                hls::vector<ap_int<8>, KP> wv;
                for (unsigned j = 0; j < KP; j++)
                    wv[j] = n * KP + j < S ? kcache[(n * KP + j) * KV + kvh * HD + d] : ap_int<8>(0);
                ks.write(wv);
            }
        qk_i8_dec<qkc>(qs, ks, sc, S);
        for (unsigned j = 0; j < S; j++) sc1.write(hls::vector<ap_int<22>, 1>(sc.read()));
        dequant_static_dec<sdc>(sc1, sf, &q_s[hh], &k_s[kvh], S);
#ifndef __SYNTHESIS__
        // scores, P, uint8 P of this head: [head][1][key], appended head by head
        probe_tee_f32(sf, S, "scores");
#endif
        softmax_dec<smc>(sf, pf, 1, S);
#ifndef __SYNTHESIS__
        probe_tee_f32(pf, S, "p");
#endif
        for (unsigned j = 0; j < S; j++) {
            hls::stream<hls::vector<float, 1> > one("att_p1");
            one.write(pf.read());
            quant_static_dec<pqc>(one, p8, &a_s[hh], 1.0f);
            ps.write(p8.read()[0]);
        }
        for (unsigned db = 0; db < HD / VP; db++)
            for (unsigned j = 0; j < S; j++) {
                hls::vector<ap_int<8>, VP> wv;
                for (unsigned c = 0; c < VP; c++) wv[c] = vcache[j * KV + kvh * HD + db * VP + c];
                vs.write(wv);
            }
#ifndef __SYNTHESIS__
        probe_tee<ap_int<8> >(ps, S, [&](const std::vector<ap_int<8> > &b) {
            std::vector<long long> a(S);
            for (unsigned j = 0; j < S; j++) a[j] = b[j].to_int() & 255;
            probe()->ints("p8", a.data(), S);
        });
#endif
        av_u8i8_dec<avc>(ps, vs, ao, S);
        for (unsigned d = 0; d < HD; d++) acc_o[hh * HD + d] = ao.read();
    }
    {
        typedef ld_attn_cfg adc;
        const unsigned HP = C::hp, per = D / HP;
        hls::stream<hls::vector<ap_int<27>, C::hp> > as("att_acc_o");
        hls::stream<hls::vector<float, C::hp> > os("att_o");
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<ap_int<27>, C::hp> vv;
            for (unsigned m = 0; m < HP; m++) vv[m] = acc_o[m * per + kk];
            as.write(vv);
        }
        dequant_static_dec<adc>(as, os, a_s, v_s, HD);
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, C::hp> vv = os.read();
            for (unsigned m = 0; m < HP; m++) o[m * per + kk] = vv[m];
        }
    }
    FLX_PROBE_F32("attn", o, D);
    // 6-7: O, residual, LN1
    linear_dec<C>(o, D, wo, D, h);
    FLX_PROBE_F32("o_proj", h, D);
    {
        typedef ld_res_cfg rc;
        hls::stream<hls::vector<float, 16> > as("res_a"), rs("res_r"), ys("res_y");
        const unsigned per = D / 16;
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> va, vr;
            for (unsigned i = 0; i < 16; i++) {
                va[i] = h[i * per + kk];
                vr[i] = x[i * per + kk];
            }
            as.write(va);
            rs.write(vr);
        }
        residual<rc>(as, rs, ys, per);
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> vv = ys.read();
            for (unsigned i = 0; i < 16; i++) r0[i * per + kk] = vv[i];
        }
    }
    FLX_PROBE_F32("r0", r0, D);
    norm_dec<C>(r0, ffn_norm, h);
    FLX_PROBE_F32("h_ffn", h, D);
    // 8-9: gate, up, SiLU * up, FHT
    linear_dec<C>(h, D, gate, F, g);
    linear_dec<C>(h, D, up, F, u);
    FLX_PROBE_F32("gate", g, F);
    FLX_PROBE_F32("up", u, F);
    {
        typedef ld_silu_cfg<C::exp_impl> sc;
        typedef ld_fht_cfg fc;
        hls::stream<hls::vector<float, 16> > gs("ffn_gate"), us("ffn_up"), as("ffn_act"), fs("ffn_fht");
        const unsigned per = F / 16;
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> vg, vu;
            for (unsigned i = 0; i < 16; i++) {
                vg[i] = g[i * per + kk];
                vu[i] = u[i * per + kk];
            }
            gs.write(vg);
            us.write(vu);
        }
        silu_gate_dec<sc>(gs, us, as, per);
#ifndef __SYNTHESIS__
        probe_tee<hls::vector<float, 16> >(as, per, [&](const std::vector<hls::vector<float, 16> > &b) {
            std::vector<float> a(F);
            for (unsigned kk = 0; kk < per; kk++)
                for (unsigned i = 0; i < 16; i++) a[i * per + kk] = b[kk][i];
            probe()->f32("act", a.data(), F);
        });
#endif
        fht_dec<fc>(as, fs, 90.50967f);
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> vv = fs.read();
            for (unsigned i = 0; i < 16; i++) a[i * per + kk] = vv[i];
        }
    }
    FLX_PROBE_F32("act_fht", a, F);
    // 10-11: down, residual
    linear_dec<C>(a, F, down, D, h);
    FLX_PROBE_F32("down", h, D);
    {
        typedef ld_res_cfg rc;
        hls::stream<hls::vector<float, 16> > as("res2_a"), rs("res2_r"), ys("res2_y");
        const unsigned per = D / 16;
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> va, vr;
            for (unsigned i = 0; i < 16; i++) {
                va[i] = h[i * per + kk];
                vr[i] = r0[i * per + kk];
            }
            as.write(va);
            rs.write(vr);
        }
        residual<rc>(as, rs, ys, per);
        for (unsigned kk = 0; kk < per; kk++) {
            hls::vector<float, 16> vv = ys.read();
            for (unsigned i = 0; i < 16; i++) y[i * per + kk] = vv[i];
        }
    }
}

// ------------------------------------------------------ lm_head + sampling

// the tail of a decode step (reference-design §2.4 after the last layer, 1.13): LN2,
// lm_head GEMV over `vocab` rows, top-k sampling with threshold r, and the
// embedding fetch of the sampled token (the next step's layer-0 input)
struct head_sample_config : layer_dec_config {
    static const unsigned vocab = 131072;       // VP (padded vocabulary)
};
template <unsigned VP, int E>
struct hs_topk_cfg : topk_sampling_config {
    static const unsigned vp = VP;
    static const int exp_impl = E;
};

// out[0..k) = the merged top-k ids, out[k] = the sampled token
template <class C>
void head_sample_dec(const float *hidden, const float *gamma, const dec_linear_ports<C::b, C::w> &head,
                     const float *vocab_lib, float r, float *logits, float *probs, int *out, float *next_x)
{
    typedef hs_topk_cfg<C::vocab, C::exp_impl> tc;
    float h[C::d];
    norm_dec<C>(hidden, gamma, h);
    linear_dec<C>(h, C::d, head, C::vocab, logits);
    hls::stream<hls::vector<float, C::b> > ls("logits");
    const unsigned per = C::vocab / C::b;
    for (unsigned k = 0; k < per; k++) {
        hls::vector<float, C::b> v;
        for (unsigned i = 0; i < C::b; i++) v[i] = logits[i * per + k];
        ls.write(v);
    }
    topk_result<tc> res;
    topk_sampling<tc>(ls, r, res);
    for (unsigned i = 0; i < tc::k; i++) {
        out[i] = res.id[i];
        probs[i] = res.prob[i];
    }
    out[tc::k] = res.token;
    hls::stream<hls::vector<float, C::bt> > es("next_x");
    dec_embed_fetch<C::bt>(vocab_lib, C::d, (unsigned)res.token, es);
    const unsigned pe = C::d / C::bt;
    for (unsigned k = 0; k < pe; k++) {
        hls::vector<float, C::bt> v = es.read();
        for (unsigned i = 0; i < C::bt; i++) next_x[i * pe + k] = v[i];
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_LAYER_DEC_H
