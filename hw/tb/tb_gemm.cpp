// tb_gemm.cpp -- testbenches of the INT4 GEMM / GEMV and the fp32 GEMV.
#include "tb_kernels.h"


namespace flx_tb {

using hls::stream;
using hls::vector;

// golden gemm_i4_pref: a [8][2048] uint4, w [48][2048] int4 -> acc [8][48] ap_int<19>
static void tb_gemm_i4_pref(tb_ctx &c)
{
    typedef flx_tops::gemm_i4_pref_cfg C;   // TP 8, WP 24, L 11
    const unsigned T = 8, O = 48, K = 2048, WP = C::wp;
    npy_array a = c.load("a", "|u1", {T, K}), w = c.load("w", "|i1", {O, K});
    stream<vector<ap_int<4>, C::tp> > as("a");
    stream<vector<ap_int<4>, WP> > ws("w");
    stream<vector<ap_int<C::l + 8>, C::tp> > acc("acc");
    std::vector<long long> a_beats, acc_beats;   // rows = beats, columns = lanes
    for (unsigned k = 0; k < K; k++) {
        vector<ap_int<4>, C::tp> v;
        for (unsigned t = 0; t < T; t++) {
            v[t] = ap_uint<4>(a.u8(t * K + k));   // uint4 pattern
            a_beats.push_back(ap_uint<4>(v[t]).to_uint());
        }
        as.write(v);
    }
    const unsigned nb = (O + WP - 1) / WP;
    for (unsigned n = 0; n < nb; n++)
        for (unsigned k = 0; k < K; k++) {
            vector<ap_int<4>, WP> v;
            for (unsigned j = 0; j < WP; j++) v[j] = n * WP + j < O ? (int)w.i8((n * WP + j) * K + k) : 0;
            ws.write(v);
        }
    flx_tops::top_gemm_i4_pref(as, ws, acc, 1, K, O);
    std::vector<long long> got(T * O);
    for (unsigned o = 0; o < nb * WP; o++) {
        vector<ap_int<C::l + 8>, C::tp> v = acc.read();
        if (o < O)
            for (unsigned t = 0; t < T; t++) acc_beats.push_back(got[t * O + o] = v[t].to_int64());
    }
    expect_drained("acc", acc);
    c.expect_int("acc", "<i4", got);
    c.expect_int("a.stream", "|u1", a_beats);
    c.expect_int("acc.stream", "<i4", acc_beats);
}

// golden gemm_i4_dec: a [2048] uint4 (block-partitioned B=16), w [1024][2048] -> acc [1024]
static void tb_gemm_i4_dec(tb_ctx &c)
{
    typedef flx_tops::gemm_i4_dec_cfg C;   // production W = 64: 1024 outputs = one block of B*W
    const unsigned O = C::b * C::w, K = 2048, B = C::b, W = C::w, per = K / B, opl = O / B;
    npy_array a = c.load("a", "|u1", {K}), w = c.load("w", "|i1", {O, K});
    stream<vector<ap_int<4>, B> > as("a");
    stream<vector<ap_int<4>, W> > ws[B];
    stream<vector<ap_int<C::l + 8>, B> > acc("acc");
    for (unsigned k = 0; k < per; k++) {
        vector<ap_int<4>, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = ap_uint<4>(a.u8(i * per + k));
        as.write(v);
    }
    for (unsigned n = 0; n < O / (B * W); n++)
        for (unsigned k = 0; k < K; k++)
            for (unsigned i = 0; i < B; i++) {
                vector<ap_int<4>, W> v;
                for (unsigned j = 0; j < W; j++) v[j] = (int)w.i8((i * opl + n * W + j) * K + k);
                ws[i].write(v);
            }
    flx_tops::top_gemm_i4_dec(as, ws, acc, K, O);
    std::vector<long long> got(O);
    for (unsigned n = 0; n < O / (B * W); n++)
        for (unsigned j = 0; j < W; j++) {
            vector<ap_int<C::l + 8>, B> v = acc.read();
            for (unsigned i = 0; i < B; i++) got[i * opl + n * W + j] = v[i].to_int64();
        }
    expect_drained("acc", acc);
    for (unsigned i = 0; i < B; i++) expect_drained("w", ws[i]);
    c.expect_int("acc", "<i4", got);
}

// golden gemv_f32_dec: x [2048], w [64][2048] -> y [64] (HMT, B=4, W=8)
static void tb_gemv_f32_dec(tb_ctx &c)
{
    typedef flx_tops::gemv_f32_cfg C;
    const unsigned O = 64, K = 2048, B = C::b, W = C::w, per = K / B, opl = O / B;
    npy_array x = c.load("x", "<f4", {K}), w = c.load("w", "<f4", {O, K});
    stream<vector<float, B> > xs("x"), y("y");
    stream<vector<float, W> > ws[B];
    for (unsigned k = 0; k < per; k++) {
        vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = x.f32(i * per + k);
        xs.write(v);
    }
    for (unsigned n = 0; n < O / (B * W); n++)
        for (unsigned k = 0; k < K; k++)
            for (unsigned i = 0; i < B; i++) {
                vector<float, W> v;
                for (unsigned j = 0; j < W; j++) v[j] = w.f32((i * opl + n * W + j) * K + k);
                ws[i].write(v);
            }
    flx_tops::top_gemv_f32_dec(xs, ws, y, K, O);
    std::vector<float> got(O);
    for (unsigned n = 0; n < O / (B * W); n++)
        for (unsigned j = 0; j < W; j++) {
            vector<float, B> v = y.read();
            for (unsigned i = 0; i < B; i++) got[i * opl + n * W + j] = v[i];
        }
    expect_drained("y", y);
    c.expect_f32("y", got);
}

void register_gemm(std::vector<tb_entry> &v)
{
    v.push_back({"gemm_i4_pref", tb_gemm_i4_pref, "flx_hls::gemm_i4_pref (pe_i4xi4_2x2)"});
    v.push_back({"gemm_i4_dec", tb_gemm_i4_dec, "flx_hls::gemm_i4_dec (pe_i4xi4_1x2)"});
    v.push_back({"gemv_f32_dec", tb_gemv_f32_dec, "flx_hls::gemv_f32_dec"});
}

}  // namespace flx_tb
