// tb_attention.cpp -- testbenches of the int8 attention products, the causal
// mask and the three softmax kernels.
#include "tb_kernels.h"


namespace flx_tb {

using hls::stream;
using hls::vector;

// golden qk_i8_pref: q8 [8][64], k8 [16][64] -> acc [8][16] ap_int<22>
static void tb_qk_i8_pref(tb_ctx &c)
{
    typedef flx_tops::qk_i8_cfg C;
    const unsigned T = 8, NK = 16, D = C::head_dim;
    npy_array q = c.load("q8", "|i1", {T, D}), k = c.load("k8", "|i1", {NK, D});
    stream<vector<ap_int<8>, C::tp> > qs("q");
    stream<vector<ap_int<8>, C::kp> > ks("k");
    stream<vector<ap_int<C::acc_bits>, C::tp> > acc("acc");
    for (unsigned d = 0; d < D; d++) {
        vector<ap_int<8>, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = (int)q.i8(t * D + d);
        qs.write(v);
    }
    std::vector<long long> k_beats, acc_beats;   // rows = beats, columns = lanes
    for (unsigned d = 0; d < D; d++) {   // one key block of Kp = 16 keys
        vector<ap_int<8>, C::kp> v;
        for (unsigned j = 0; j < NK; j++) k_beats.push_back((v[j] = (int)k.i8(j * D + d)).to_int());
        ks.write(v);
    }
    flx_tops::top_qk_i8_pref(qs, ks, acc, 1, 1, NK);
    std::vector<long long> got(T * NK);
    for (unsigned j = 0; j < NK; j++) {
        vector<ap_int<C::acc_bits>, C::tp> v = acc.read();
        for (unsigned t = 0; t < T; t++) acc_beats.push_back(got[t * NK + j] = v[t].to_int64());
    }
    expect_drained("acc", acc);
    c.expect_int("acc", "<i4", got);
    c.expect_int("k8.stream", "|i1", k_beats);
    c.expect_int("acc.stream", "<i4", acc_beats);
}

// golden av_u8i8_pref: p8 [8][16] uint8, v8 [16][64] -> acc [8][64] ap_int<26>
static void tb_av_u8i8_pref(tb_ctx &c)
{
    typedef flx_tops::av_u8i8_cfg C;
    const unsigned T = 8, NK = 16, D = C::head_dim;
    npy_array p = c.load("p8", "|u1", {T, NK}), v = c.load("v8", "|i1", {NK, D});
    stream<vector<ap_int<8>, C::tp> > ps("p");
    stream<vector<ap_int<8>, C::vp> > vs("v");
    stream<vector<ap_int<C::acc_bits>, C::tp> > acc("acc");
    for (unsigned j = 0; j < NK; j++) {
        vector<ap_int<8>, C::tp> w;
        for (unsigned t = 0; t < T; t++) w[t] = ap_uint<8>(p.u8(t * NK + j));   // uint8 pattern
        ps.write(w);
    }
    for (unsigned db = 0; db < D / C::vp; db++)
        for (unsigned j = 0; j < NK; j++) {
            vector<ap_int<8>, C::vp> w;
            for (unsigned e = 0; e < C::vp; e++) w[e] = (int)v.i8(j * D + db * C::vp + e);
            vs.write(w);
        }
    flx_tops::top_av_u8i8_pref(ps, vs, acc, 1, 1, NK);
    std::vector<long long> got(T * D);
    for (unsigned d = 0; d < D; d++) {
        vector<ap_int<C::acc_bits>, C::tp> w = acc.read();
        for (unsigned t = 0; t < T; t++) got[t * D + d] = w[t].to_int64();
    }
    expect_drained("acc", acc);
    c.expect_int("acc", "<i4", got);
}

// glibc-expf golden vectors: the same kernels with std::exp (C simulation only;
// the synthesized tops use flx-exp)
struct softmax_pref_std : flx_tops::softmax_pref_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};
struct softmax_dec_std : flx_tops::softmax_dec_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};
struct softmax_block_std : flx_tops::softmax_block_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// golden softmax_pref: scores [8][32] of queries 8..15 -> mask -> softmax
template <class C>
static void run_softmax_pref(tb_ctx &c)
{
    const unsigned T = 8, N = 32;
    npy_array x = c.load("scores", "<f4", {T, N});
    stream<vector<float, C::tp> > in("scores"), masked("masked"), out("p");
    for (unsigned j = 0; j < N; j++) {
        vector<float, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = x.f32(t * N + j);
        in.write(v);
    }
    if (C::exp_impl == flx_hls::EXP_FLX) {
        flx_tops::top_softmax_pref(in, out, 1, 1, 1, N);
    } else {
        flx_hls::causal_mask_pref<flx_tops::causal_mask_cfg>(in, masked, 1, 1, 1, N);
        flx_hls::softmax_pref<C>(masked, out, 1, 1, N);
    }
    std::vector<float> got(T * N);
    for (unsigned j = 0; j < N; j++) {
        vector<float, C::tp> v = out.read();
        for (unsigned t = 0; t < T; t++) got[t * N + j] = v[t];
    }
    expect_drained("p", out);
    c.expect_f32("p", got);
}

// golden softmax_dec: one head of 37 scores (predicated tail)
template <class C>
static void run_softmax_dec(tb_ctx &c)
{
    const unsigned N = 37;
    npy_array x = c.load("scores", "<f4", {N});
    stream<vector<float, C::hp> > in("scores"), out("p");
    for (unsigned k = 0; k < N; k++) in.write(vector<float, C::hp>(x.f32(k)));
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_softmax_dec(in, out, 1, N);
    else flx_hls::softmax_dec<C>(in, out, 1, N);
    std::vector<float> got(N);
    for (unsigned k = 0; k < N; k++) got[k] = out.read()[0];
    expect_drained("p", out);
    c.expect_f32("p", got);
}

// golden softmax_block: 64 slots, B = 4, scale 45.254833f (HMT)
template <class C>
static void run_softmax_block(tb_ctx &c)
{
    const unsigned N = 64, B = C::b, per = N / B;
    npy_array x = c.load("x", "<f4", {N});
    stream<vector<float, B> > in("x"), out("p");
    for (unsigned k = 0; k < per; k++) {
        vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = x.f32(i * per + k);
        in.write(v);
    }
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_softmax_block(in, out, N, 45.254833f);
    else flx_hls::softmax_block<C>(in, out, N, 45.254833f);
    std::vector<float> got(N);
    for (unsigned k = 0; k < per; k++) {
        vector<float, B> v = out.read();
        for (unsigned i = 0; i < B; i++) got[i * per + k] = v[i];
    }
    expect_drained("p", out);
    c.expect_f32("p", got);
}

static void tb_softmax_pref(tb_ctx &c)
{
    if (c.exp_flx()) run_softmax_pref<flx_tops::softmax_pref_cfg>(c);
    else run_softmax_pref<softmax_pref_std>(c);
}
static void tb_softmax_dec(tb_ctx &c)
{
    if (c.exp_flx()) run_softmax_dec<flx_tops::softmax_dec_cfg>(c);
    else run_softmax_dec<softmax_dec_std>(c);
}
static void tb_softmax_block(tb_ctx &c)
{
    if (c.exp_flx()) run_softmax_block<flx_tops::softmax_block_cfg>(c);
    else run_softmax_block<softmax_block_std>(c);
}

void register_attention(std::vector<tb_entry> &v)
{
    v.push_back({"qk_i8_pref", tb_qk_i8_pref, "flx_hls::qk_i8_pref (pe_i8xi8_2x2)"});
    v.push_back({"av_u8i8_pref", tb_av_u8i8_pref, "flx_hls::av_u8i8_pref (pe_i8xi8_2x2, uint8 P)"});
    v.push_back({"softmax_pref", tb_softmax_pref, "flx_hls::causal_mask_pref + softmax_pref"});
    v.push_back({"softmax_dec", tb_softmax_dec, "flx_hls::softmax_dec"});
    v.push_back({"softmax_block", tb_softmax_block, "flx_hls::softmax_block"});
}

}  // namespace flx_tb
