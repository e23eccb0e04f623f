// tb_quant.cpp -- testbenches of the quantizers and dequantizers.
#include "tb_kernels.h"


namespace flx_tb {

using hls::stream;
using hls::vector;

// golden quant_asym_pref: x [8][2048] -> q [8][2048] (uint4 bytes), s, b [8]
static void tb_quant_asym_pref(tb_ctx &c)
{
    typedef flx_tops::quant_asym_pref_cfg C;
    const unsigned T = 8, K = 2048;
    npy_array x = c.load("x", "<f4", {T, K});
    stream<vector<float, C::tp> > in("x");
    stream<vector<ap_int<C::n_bits>, C::tp> > q("q");
    stream<vector<float, 2> > sb("s_b");
    std::vector<float> x_beats;          // rows = beats, columns = lanes
    std::vector<long long> q_beats;
    for (unsigned k = 0; k < K; k++) {
        vector<float, C::tp> v;
        for (unsigned t = 0; t < T; t++) x_beats.push_back(v[t] = x.f32(t * K + k));
        in.write(v);
    }
    flx_tops::top_quant_asym_pref(in, q, sb, 1, K);
    std::vector<long long> gq(T * K);
    std::vector<float> gs(T), gb(T);
    for (unsigned t = 0; t < T; t++) {
        vector<float, 2> p = sb.read();
        gs[t] = p[0];
        gb[t] = p[1];
    }
    for (unsigned k = 0; k < K; k++) {
        vector<ap_int<C::n_bits>, C::tp> v = q.read();
        for (unsigned t = 0; t < T; t++) q_beats.push_back(gq[t * K + k] = ap_uint<C::n_bits>(v[t]).to_uint());
    }
    expect_drained("q", q);
    c.expect_int("q", "|u1", gq);
    c.expect_f32("x.stream", x_beats);   // the golden stream files are this beat order
    c.expect_int("q.stream", "|u1", q_beats);
    c.expect_f32("s", gs);
    c.expect_f32("b", gb);
}

// golden quant_asym_dec: x [2048] block-partitioned B=16 -> q, s, b
static void tb_quant_asym_dec(tb_ctx &c)
{
    typedef flx_tops::quant_asym_dec_cfg C;
    const unsigned K = 2048, B = C::b, per = K / B;
    npy_array x = c.load("x", "<f4", {K});
    stream<vector<float, B> > in("x");
    stream<vector<ap_int<C::n_bits>, B> > q("q");
    stream<vector<float, 2> > sb("s_b");
    std::vector<float> x_beats;
    std::vector<long long> q_beats;
    for (unsigned k = 0; k < per; k++) {
        vector<float, B> v;
        for (unsigned i = 0; i < B; i++) x_beats.push_back(v[i] = x.f32(i * per + k));
        in.write(v);
    }
    flx_tops::top_quant_asym_dec(in, q, sb, K);
    vector<float, 2> p = sb.read();
    std::vector<long long> gq(K);
    for (unsigned k = 0; k < per; k++) {
        vector<ap_int<C::n_bits>, B> v = q.read();
        for (unsigned i = 0; i < B; i++) q_beats.push_back(gq[i * per + k] = ap_uint<C::n_bits>(v[i]).to_uint());
    }
    expect_drained("q", q);
    c.expect_int("q", "|u1", gq);
    c.expect_f32("x.stream", x_beats);
    c.expect_int("q.stream", "|u1", q_beats);
    c.expect_f32("s", std::vector<float>{p[0]});
    c.expect_f32("b", std::vector<float>{p[1]});
}

// golden dequant_pref: acc [8][96] ap_int<19>, s, b [8], ws, wsum [96] -> y [8][96]
static void tb_dequant_pref(tb_ctx &c)
{
    typedef flx_tops::dequant_pref_cfg C;
    const unsigned T = 8, O = 96;
    npy_array acc = c.load("acc", "<i4", {T, O}), s = c.load("s", "<f4", {T}), b = c.load("b", "<f4", {T});
    npy_array ws = c.load("ws", "<f4", {O}), wsum = c.load("wsum", "<f4", {O});
    stream<vector<ap_int<C::acc_bits>, C::tp> > a("acc");
    stream<vector<float, 2> > sb("s_b"), wsb("w_s_sum");
    stream<vector<float, C::tp> > y("y");
    for (unsigned t = 0; t < T; t++) {
        vector<float, 2> p;
        p[0] = s.f32(t);
        p[1] = b.f32(t);
        sb.write(p);
    }
    for (unsigned o = 0; o < O; o++) {
        vector<ap_int<C::acc_bits>, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = acc.i32(t * O + o);
        a.write(v);
        vector<float, 2> w;
        w[0] = ws.f32(o);
        w[1] = wsum.f32(o);
        wsb.write(w);
    }
    flx_tops::top_dequant_pref(a, sb, wsb, y, 1, O);
    std::vector<float> gy(T * O);
    for (unsigned o = 0; o < O; o++) {
        vector<float, C::tp> v = y.read();
        for (unsigned t = 0; t < T; t++) gy[t * O + o] = v[t];
    }
    expect_drained("y", y);
    c.expect_f32("y", gy);
}

// golden quant_static_q: x [8][32*64] -> q8 (signed, f = 8 = sqrt_HEAD_DIM)
// golden quant_static_p: p [8][64] -> p8 (unsigned), one "head" of 64
template <class C, class TOP>
static void run_quant_static(tb_ctx &c, TOP top, const char *xin, const char *sname, const char *qout,
                             const char *qdescr, float factor)
{
    const unsigned T = 8, W = C::heads * C::head_dim;
    npy_array x = c.load(xin, "<f4", {T, W}), sc = c.load(sname, "<f4", {C::heads});
    float scale[C::heads];
    for (unsigned h = 0; h < C::heads; h++) scale[h] = sc.f32(h);
    stream<vector<float, C::tp> > in("x");
    stream<vector<ap_int<C::n_bits>, C::tp> > q("q");
    for (unsigned ch = 0; ch < W; ch++) {
        vector<float, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = x.f32(t * W + ch);
        in.write(v);
    }
    top(in, q, scale, factor, 1);
    std::vector<long long> gq(T * W);
    for (unsigned ch = 0; ch < W; ch++) {
        vector<ap_int<C::n_bits>, C::tp> v = q.read();
        for (unsigned t = 0; t < T; t++)
            gq[t * W + ch] = C::is_signed ? (long long)v[t].to_int() : (long long)ap_uint<C::n_bits>(v[t]).to_uint();
    }
    expect_drained("q", q);
    c.expect_int(qout, qdescr, gq);
}

static void tb_quant_static_q(tb_ctx &c) { run_quant_static<flx_tops::quant_static_q_cfg>(c, flx_tops::top_quant_static_q, "x", "scale", "q8", "|i1", 8.0f); }
static void tb_quant_static_p(tb_ctx &c) { run_quant_static<flx_tops::quant_static_p_cfg>(c, flx_tops::top_quant_static_p, "p", "a_s", "p8", "|u1", 1.0f); }

// golden dequant_static_pref: acc [8][32*16], in_s [32], w_s [8] -> y

static void tb_dequant_static_pref(tb_ctx &c)
{
    typedef flx_tops::dequant_static_cfg C;
    const unsigned T = 8, W = C::act_heads * C::head_dim;
    npy_array acc = c.load("acc", "<i4", {T, W});
    npy_array is = c.load("in_s", "<f4", {C::act_heads}), wsn = c.load("w_s", "<f4", {C::w_heads});
    float in_s[C::act_heads], w_s[C::w_heads];
    for (unsigned h = 0; h < C::act_heads; h++) in_s[h] = is.f32(h);
    for (unsigned h = 0; h < C::w_heads; h++) w_s[h] = wsn.f32(h);
    stream<vector<ap_int<C::acc_bits>, C::tp> > a("acc");
    stream<vector<float, C::tp> > y("y");
    for (unsigned ch = 0; ch < W; ch++) {   // query head 4h+g is natural head order
        vector<ap_int<C::acc_bits>, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = acc.i32(t * W + ch);
        a.write(v);
    }
    flx_tops::top_dequant_static_pref(a, y, in_s, w_s, 1);
    std::vector<float> gy(T * W);
    for (unsigned ch = 0; ch < W; ch++) {
        vector<float, C::tp> v = y.read();
        for (unsigned t = 0; t < T; t++) gy[t * W + ch] = v[t];
    }
    expect_drained("y", y);
    c.expect_f32("y", gy);
}

void register_quant(std::vector<tb_entry> &v)
{
    v.push_back({"quant_asym_pref", tb_quant_asym_pref, "flx_hls::quant_asym_pref"});
    v.push_back({"quant_asym_dec", tb_quant_asym_dec, "flx_hls::quant_asym_dec"});
    v.push_back({"dequant_pref", tb_dequant_pref, "flx_hls::dequant_pref"});
    v.push_back({"quant_static_q", tb_quant_static_q, "flx_hls::quant_static_pref (signed, f = 8)"});
    v.push_back({"quant_static_p", tb_quant_static_p, "flx_hls::quant_static_pref (unsigned P)"});
    v.push_back({"dequant_static_pref", tb_dequant_static_pref, "flx_hls::dequant_static_pref"});
}

}  // namespace flx_tb
