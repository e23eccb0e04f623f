// tb_misc.cpp -- testbenches of RMSNorm, RoPE, SiLU gate, residual, FHT,
// top-k sampling and the exponential.
#include "tb_kernels.h"


namespace flx_tb {

using hls::stream;
using hls::vector;

// block-partitioned stream of a natural-order vector (lane i beat k = i*per + k)
template <unsigned B>
static void push_blocked(stream<vector<float, B> > &s, const npy_array &x)
{
    const size_t per = x.count / B;
    for (size_t k = 0; k < per; k++) {
        vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = x.f32(i * per + k);
        s.write(v);
    }
}
template <unsigned B>
static std::vector<float> pop_blocked(stream<vector<float, B> > &s, size_t n)
{
    std::vector<float> out(n);
    const size_t per = n / B;
    for (size_t k = 0; k < per; k++) {
        vector<float, B> v = s.read();
        for (unsigned i = 0; i < B; i++) out[i * per + k] = v[i];
    }
    return out;
}

// golden rmsnorm_pref: x [8][2048], gamma [2048] -> y
static void tb_rmsnorm_pref(tb_ctx &c)
{
    typedef flx_tops::rmsnorm_pref_cfg C;
    const unsigned T = 8, D = C::d;
    npy_array x = c.load("x", "<f4", {T, D}), g = c.load("gamma", "<f4", {D});
    stream<vector<float, C::tp> > in("x"), y("y");
    stream<float> gs("gamma");
    for (unsigned k = 0; k < D; k++) {
        gs.write(g.f32(k));
        vector<float, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = x.f32(t * D + k);
        in.write(v);
    }
    flx_tops::top_rmsnorm_pref(in, gs, y, 1);
    std::vector<float> got(T * D);
    for (unsigned k = 0; k < D; k++) {
        vector<float, C::tp> v = y.read();
        for (unsigned t = 0; t < T; t++) got[t * D + k] = v[t];
    }
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// golden rmsnorm_dec: x, gamma [2048] block-partitioned B_T = 8 -> y
static void tb_rmsnorm_dec(tb_ctx &c)
{
    typedef flx_tops::rmsnorm_dec_cfg C;
    npy_array x = c.load("x", "<f4", {C::d}), g = c.load("gamma", "<f4", {C::d});
    stream<vector<float, C::bt> > in("x"), gs("gamma"), y("y");
    push_blocked<C::bt>(in, x);
    push_blocked<C::bt>(gs, g);
    flx_tops::top_rmsnorm_dec(in, gs, y);
    std::vector<float> got = pop_blocked<C::bt>(y, C::d);
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// golden rope_pref: x [8][32*64] of token block M = 1 (positions 8..15), tables [16][32]
static void tb_rope_pref(tb_ctx &c)
{
    typedef flx_tops::rope_cfg C;   // max_pos 16: the golden table rows
    const unsigned T = 8, H = 32, D = C::head_dim, W = H * D, P = C::max_pos, HALF = D / 2;
    npy_array x = c.load("x", "<f4", {T, W});
    npy_array sn = c.load("sin", "<f4", {P, HALF}), cs = c.load("cos", "<f4", {P, HALF});
    static float sin_tab[P][HALF], cos_tab[P][HALF];
    for (unsigned p = 0; p < P; p++)
        for (unsigned k = 0; k < HALF; k++) {
            sin_tab[p][k] = sn.f32(p * HALF + k);
            cos_tab[p][k] = cs.f32(p * HALF + k);
        }
    stream<vector<float, C::tp> > in("x"), y("y");
    for (unsigned ch = 0; ch < W; ch++) {
        vector<float, C::tp> v;
        for (unsigned t = 0; t < T; t++) v[t] = x.f32(t * W + ch);
        in.write(v);
    }
    flx_tops::top_rope_pref(in, y, sin_tab, cos_tab, 1, 1, H);
    std::vector<float> got(T * W);
    for (unsigned ch = 0; ch < W; ch++) {
        vector<float, C::tp> v = y.read();
        for (unsigned t = 0; t < T; t++) got[t * W + ch] = v[t];
    }
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// glibc-expf golden vectors: std::exp variants (C simulation only)
struct silu_std : flx_tops::silu_gate_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};
struct topk_std : flx_tops::topk_sampling_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};
struct exp_std : flx_tops::exp_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

template <class C>
static void run_silu_gate(tb_ctx &c)
{
    const unsigned N = 8192;
    npy_array g = c.load("gate", "<f4", {N}), u = c.load("up", "<f4", {N});
    stream<vector<float, C::b> > gs("gate"), us("up"), y("y");
    push_blocked<C::b>(gs, g);
    push_blocked<C::b>(us, u);
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_silu_gate_dec(gs, us, y, N / C::b);
    else flx_hls::silu_gate_dec<C>(gs, us, y, N / C::b);
    std::vector<float> got = pop_blocked<C::b>(y, N);
    expect_drained("y", y);
    c.expect_f32("y", got);
}

static void tb_silu_gate_dec(tb_ctx &c)
{
    if (c.exp_flx()) run_silu_gate<flx_tops::silu_gate_cfg>(c);
    else run_silu_gate<silu_std>(c);
}

static void tb_residual_dec(tb_ctx &c)
{
    typedef flx_tops::residual_cfg C;
    const unsigned N = 2048;
    npy_array a = c.load("in", "<f4", {N}), r = c.load("residual", "<f4", {N});
    stream<vector<float, C::b> > as("in"), rs("residual"), y("y");
    push_blocked<C::b>(as, a);
    push_blocked<C::b>(rs, r);
    flx_tops::top_residual_dec(as, rs, y, N / C::b);
    std::vector<float> got = pop_blocked<C::b>(y, N);
    expect_drained("y", y);
    c.expect_f32("y", got);
}

// golden fht_dec: x [8192] block-partitioned B = 16 -> y, / 90.50967f
static void tb_fht_dec(tb_ctx &c)
{
    typedef flx_tops::fht_cfg C;
    npy_array x = c.load("x", "<f4", {C::n});
    stream<vector<float, C::b> > in("x"), y("y");
    push_blocked<C::b>(in, x);
    flx_tops::top_fht_dec(in, y, 90.50967f);
    std::vector<float> beats;            // rows = beats, columns = lanes
    for (unsigned k = 0; k < C::n / C::b; k++) {
        vector<float, C::b> v = y.read();
        for (unsigned i = 0; i < C::b; i++) beats.push_back(v[i]);
    }
    std::vector<float> got(C::n);
    for (unsigned k = 0; k < C::n / C::b; k++)
        for (unsigned i = 0; i < C::b; i++) got[i * (C::n / C::b) + k] = beats[k * C::b + i];
    expect_drained("y", y);
    c.expect_f32("y", got);
    c.expect_f32("y.stream", beats);
}

template <class C>
static void run_topk(tb_ctx &c)
{
    npy_array l = c.load("logits", "<f4", {C::vp}), r = c.load("r", "<f4", {1});
    stream<vector<float, C::b> > ls("logits");
    push_blocked<C::b>(ls, l);
    static flx_hls::topk_result<C> res;
    if (C::exp_impl == flx_hls::EXP_FLX)
        flx_tops::top_topk_sampling(ls, r.f32(0), res.id, res.value, res.prob, &res.token);
    else
        flx_hls::topk_sampling<C>(ls, r.f32(0), res);
    expect_drained("logits", ls);
    std::vector<long long> ids(res.id, res.id + C::k);
    c.expect_int("ids", "<i4", ids);
    c.expect_f32("values", std::vector<float>(res.value, res.value + C::k));
    c.expect_f32("probs", std::vector<float>(res.prob, res.prob + C::k));
    c.expect_int("token", "<i4", std::vector<long long>{res.token});
}

static void tb_topk_sampling(tb_ctx &c)
{
    if (c.exp_flx()) run_topk<flx_tops::topk_sampling_cfg>(c);
    else run_topk<topk_std>(c);
}

template <class C>
static void run_exp(tb_ctx &c)
{
    const unsigned N = 4096;
    npy_array x = c.load("x", "<f4", {N});
    stream<float> in("x"), y("y");
    for (unsigned i = 0; i < N; i++) in.write(x.f32(i));
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_exp(in, y, N);
    else flx_hls::exp_stage<C>(in, y, N);
    std::vector<float> got(N);
    for (unsigned i = 0; i < N; i++) got[i] = y.read();
    expect_drained("y", y);
    c.expect_f32("y", got);
}

static void tb_exp(tb_ctx &c)
{
    if (c.exp_flx()) run_exp<flx_tops::exp_cfg>(c);
    else run_exp<exp_std>(c);
}

void register_misc(std::vector<tb_entry> &v)
{
    v.push_back({"rmsnorm_pref", tb_rmsnorm_pref, "flx_hls::rmsnorm_pref"});
    v.push_back({"rmsnorm_dec", tb_rmsnorm_dec, "flx_hls::rmsnorm_dec"});
    v.push_back({"rope_pref", tb_rope_pref, "flx_hls::rope_pref"});
    v.push_back({"silu_gate_dec", tb_silu_gate_dec, "flx_hls::silu_gate_dec"});
    v.push_back({"residual_dec", tb_residual_dec, "flx_hls::residual"});
    v.push_back({"fht_dec", tb_fht_dec, "flx_hls::fht_dec (constant-geometry network)"});
    v.push_back({"topk_sampling", tb_topk_sampling, "flx_hls::topk_sampling"});
    v.push_back({"exp", tb_exp, "flx_hls::exp_stage (exp_flx / std::exp)"});
}

}  // namespace flx_tb
