// tb_variants.cpp -- testbenches of the decode and prefill kernel variants:
// the decode dequantizers (bandwidth and plain), the decode static Q
// quantizer and dequantizer (head-parallel lanes), decode QK^T and A.V of
// one head lane, and the prefill SiLU gate and residual (token lanes).
#include "tb_kernels.h"

#include "../tops/flx_tops_variants.h"

namespace flx_tb {

using hls::stream;
using hls::vector;

// block-partitioned beats of a natural-order tensor: lane i beat k = i*per + k
template <unsigned B, class T, class F>
static void push_lanes(stream<vector<T, B> > &s, size_t n, F at)
{
    const size_t per = n / B;
    for (size_t k = 0; k < per; k++) {
        vector<T, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = at(i * per + k);
        s.write(v);
    }
}
template <unsigned B, class T, class F>
static void pop_lanes(stream<vector<T, B> > &s, size_t n, F put)
{
    const size_t per = n / B;
    for (size_t k = 0; k < per; k++) {
        vector<T, B> v = s.read();
        for (unsigned i = 0; i < B; i++) put(i * per + k, v[i]);
    }
}
// token-parallel beats of a [T][C] tensor: beat = channel, lane = token
template <unsigned TP>
static void push_tokens(stream<vector<float, TP> > &s, const npy_array &x, size_t C)
{
    for (size_t k = 0; k < C; k++) {
        vector<float, TP> v;
        for (unsigned t = 0; t < TP; t++) v[t] = x.f32(t * C + k);
        s.write(v);
    }
}
template <unsigned TP>
static std::vector<float> pop_tokens(stream<vector<float, TP> > &s, size_t C)
{
    std::vector<float> out(TP * C);
    for (size_t k = 0; k < C; k++) {
        vector<float, TP> v = s.read();
        for (unsigned t = 0; t < TP; t++) out[t * C + k] = v[t];
    }
    return out;
}

static vector<float, 2> pair(float a, float b)
{
    vector<float, 2> p;
    p[0] = a;
    p[1] = b;
    return p;
}

// golden dequant_dec: one output block of B*W = 1024 channels
static void tb_dequant_dec(tb_ctx &c)
{
    typedef flx_tops::dequant_dec_cfg C;
    const unsigned B = C::b, W = C::w, O = B * W, per = O / B;
    npy_array a = c.load("acc", "<i4", {O}), sb = c.load("s_b", "<f4", {2});
    npy_array ws = c.load("ws", "<f4", {O}), wsum = c.load("wsum", "<f4", {O});
    stream<vector<ap_int<C::acc_bits>, B> > as("acc");
    stream<vector<float, 2> > sbs("s_b"), wsb("w_sb");
    stream<vector<float, B> > y("y");
    sbs.write(pair(sb.f32(0), sb.f32(1)));
    for (unsigned n = 0; n < O / (B * W); n++)
        for (unsigned j = 0; j < B; j++)            // the loader's order: lane, then column
            for (unsigned col = 0; col < W; col++) {
                unsigned ch = j * per + n * W + col;
                wsb.write(pair(ws.f32(ch), wsum.f32(ch)));
            }
    push_lanes<B, ap_int<C::acc_bits> >(as, O, [&](size_t i) { return ap_int<C::acc_bits>(a.i32(i)); });
    flx_tops::top_dequant_dec(as, sbs, wsb, y, O);
    std::vector<float> got(O);
    pop_lanes<B, float>(y, O, [&](size_t i, float v) { got[i] = v; });
    expect_drained("y", y);
    expect_drained("w_sb", wsb);
    c.expect_f32("y", got);
}

// golden dequant_dec_plain: 2048 channels, weights one vector per beat
static void tb_dequant_dec_plain(tb_ctx &c)
{
    typedef flx_tops::dequant_dec_plain_cfg C;
    const unsigned B = C::b, O = 2048;
    npy_array a = c.load("acc", "<i4", {O}), sb = c.load("s_b", "<f4", {2});
    npy_array ws = c.load("ws", "<f4", {O}), wsum = c.load("wsum", "<f4", {O});
    stream<vector<ap_int<C::acc_bits>, B> > as("acc");
    stream<vector<float, 2> > sbs("s_b");
    stream<vector<float, B> > wss("ws"), wsums("wsum"), y("y");
    sbs.write(pair(sb.f32(0), sb.f32(1)));
    push_lanes<B, ap_int<C::acc_bits> >(as, O, [&](size_t i) { return ap_int<C::acc_bits>(a.i32(i)); });
    push_lanes<B, float>(wss, O, [&](size_t i) { return ws.f32(i); });
    push_lanes<B, float>(wsums, O, [&](size_t i) { return wsum.f32(i); });
    flx_tops::top_dequant_dec_plain(as, sbs, wss, wsums, y, O / B);
    std::vector<float> got(O);
    pop_lanes<B, float>(y, O, [&](size_t i, float v) { got[i] = v; });
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// golden quant_static_dec: Q [32*64], lane m = heads 4m..4m+3
static void tb_quant_static_dec(tb_ctx &c)
{
    typedef flx_tops::quant_static_dec_cfg C;
    const unsigned HP = C::hp, N = C::heads * C::head_dim;
    npy_array x = c.load("x", "<f4", {N}), sc = c.load("scale", "<f4", {C::heads});
    float scale[C::heads];
    for (unsigned h = 0; h < C::heads; h++) scale[h] = sc.f32(h);
    stream<vector<float, HP> > xs("x");
    stream<vector<ap_int<8>, HP> > q("q8");
    push_lanes<HP, float>(xs, N, [&](size_t i) { return x.f32(i); });
    flx_tops::top_quant_static_dec(xs, q, scale, 8.0f);
    std::vector<long long> got(N);
    pop_lanes<HP, ap_int<8> >(q, N, [&](size_t i, ap_int<8> v) { got[i] = v.to_int(); });
    expect_drained("q8", q);
    c.expect_int("q8", "|i1", got);
}

// golden dequant_static_dec: acc [32*64] head-parallel -> y
static void tb_dequant_static_dec(tb_ctx &c)
{
    typedef flx_tops::dequant_static_dec_cfg C;
    const unsigned HP = C::hp, N = C::act_heads * C::head_dim;
    npy_array a = c.load("acc", "<i4", {N}), is = c.load("in_s", "<f4", {C::act_heads});
    npy_array wsn = c.load("w_s", "<f4", {C::w_heads});
    float in_s[C::act_heads], w_s[C::w_heads];
    for (unsigned h = 0; h < C::act_heads; h++) in_s[h] = is.f32(h);
    for (unsigned h = 0; h < C::w_heads; h++) w_s[h] = wsn.f32(h);
    stream<vector<ap_int<C::acc_bits>, HP> > as("acc");
    stream<vector<float, HP> > y("y");
    push_lanes<HP, ap_int<C::acc_bits> >(as, N, [&](size_t i) { return ap_int<C::acc_bits>(a.i32(i)); });
    flx_tops::top_dequant_static_dec(as, y, in_s, w_s, C::head_dim);
    std::vector<float> got(N);
    pop_lanes<HP, float>(y, N, [&](size_t i, float v) { got[i] = v; });
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// golden qk_i8_dec: q [64], k [37][64] -> 37 scores (2 key blocks of 32)
static void tb_qk_i8_dec(tb_ctx &c)
{
    typedef flx_tops::qk_i8_dec_cfg C;
    const unsigned S = 37, D = C::head_dim, KP = C::kp;
    npy_array q = c.load("q8", "|i1", {D}), k = c.load("k8", "|i1", {S, D});
    stream<ap_int<8> > qs("q8");
    stream<vector<ap_int<8>, KP> > ks("k8");
    stream<ap_int<C::acc_bits> > acc("acc");
    for (unsigned d = 0; d < D; d++) qs.write((int)q.i8(d));
    for (unsigned n = 0; n < (S + KP - 1) / KP; n++)
        for (unsigned d = 0; d < D; d++) {
            vector<ap_int<8>, KP> w;
            for (unsigned j = 0; j < KP; j++) w[j] = n * KP + j < S ? (int)k.i8((n * KP + j) * D + d) : 0;
            ks.write(w);
        }
    flx_tops::top_qk_i8_dec(qs, ks, acc, S);
    std::vector<long long> got(S);
    for (unsigned j = 0; j < S; j++) got[j] = acc.read().to_int();
    expect_drained("acc", acc);
    expect_drained("k8", ks);
    c.expect_int("acc", "<i4", got);
}

// golden av_u8i8_dec: p [37] uint8, v [37][64] -> 64 outputs (2 dim blocks of 32)
static void tb_av_u8i8_dec(tb_ctx &c)
{
    typedef flx_tops::av_u8i8_dec_cfg C;
    const unsigned S = 37, D = C::head_dim, VP = C::vp;
    npy_array p = c.load("p8", "|u1", {S}), v = c.load("v8", "|i1", {S, D});
    stream<ap_int<8> > ps("p8");
    stream<vector<ap_int<8>, VP> > vs("v8");
    stream<ap_int<C::acc_bits> > acc("acc");
    for (unsigned j = 0; j < S; j++) ps.write(ap_uint<8>(p.u8(j)));
    for (unsigned db = 0; db < D / VP; db++)
        for (unsigned j = 0; j < S; j++) {
            vector<ap_int<8>, VP> w;
            for (unsigned col = 0; col < VP; col++) w[col] = (int)v.i8(j * D + db * VP + col);
            vs.write(w);
        }
    flx_tops::top_av_u8i8_dec(ps, vs, acc, S);
    std::vector<long long> got(D);
    for (unsigned d = 0; d < D; d++) got[d] = acc.read().to_int();
    expect_drained("acc", acc);
    c.expect_int("acc", "<i4", got);
}

struct silu_pref_std : flx_tops::silu_gate_pref_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// golden silu_gate_pref: gate, up [8][8192] token-parallel -> y
template <class C>
static void run_silu_gate_pref(tb_ctx &c)
{
    const unsigned T = C::tp, I = 8192;
    npy_array g = c.load("gate", "<f4", {T, I}), u = c.load("up", "<f4", {T, I});
    stream<vector<float, T> > gs("gate"), us("up"), y("y");
    push_tokens<T>(gs, g, I);
    push_tokens<T>(us, u, I);
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_silu_gate_pref(gs, us, y, 1, I);
    else flx_hls::silu_gate_pref<C>(gs, us, y, 1, I);
    std::vector<float> got = pop_tokens<T>(y, I);
    expect_drained("y", y);
    c.expect_f32("y", got);
}
static void tb_silu_gate_pref(tb_ctx &c)
{
    if (c.exp_flx()) run_silu_gate_pref<flx_tops::silu_gate_pref_cfg>(c);
    else run_silu_gate_pref<silu_pref_std>(c);
}

// golden residual_pref: in, residual [8][2048] token-parallel -> y
static void tb_residual_pref(tb_ctx &c)
{
    const unsigned T = flx_tops::residual_pref_cfg::b, D = 2048;
    npy_array a = c.load("in", "<f4", {T, D}), r = c.load("residual", "<f4", {T, D});
    stream<vector<float, T> > as("in"), rs("residual"), y("y");
    push_tokens<T>(as, a, D);
    push_tokens<T>(rs, r, D);
    flx_tops::top_residual_pref(as, rs, y, D);
    std::vector<float> got = pop_tokens<T>(y, D);
    expect_drained("y", y);
    c.expect_f32("y", got);
}

void register_variants(std::vector<tb_entry> &v)
{
    v.push_back({"dequant_dec", tb_dequant_dec, "flx_hls::dequant_dec (bandwidth)"});
    v.push_back({"dequant_dec_plain", tb_dequant_dec_plain, "flx_hls::dequant_dec_plain"});
    v.push_back({"quant_static_dec", tb_quant_static_dec, "flx_hls::quant_static_dec"});
    v.push_back({"dequant_static_dec", tb_dequant_static_dec, "flx_hls::dequant_static_dec"});
    v.push_back({"qk_i8_dec", tb_qk_i8_dec, "flx_hls::qk_i8_dec (pe_i8xi8_1x2)"});
    v.push_back({"av_u8i8_dec", tb_av_u8i8_dec, "flx_hls::av_u8i8_dec (uint8 P)"});
    v.push_back({"silu_gate_pref", tb_silu_gate_pref, "flx_hls::silu_gate_pref"});
    v.push_back({"residual_pref", tb_residual_pref, "flx_hls::residual (TP lanes)"});
}

}  // namespace flx_tb
