// tb_hmt.cpp -- HMT retrieval and ring-buffer update in C simulation against
// the golden vectors, bit for bit (hw/kernels/hmt.h, docs/hmt.md 4).
#include "tb_hmt.h"

#include "../tops/flx_tops_hmt.h"

#include <memory>

namespace flx_tb {

using hls::stream;
using hls::vector;

namespace {

const unsigned D = 2048, H = 2048, S = 64, B = 4, W = 8;

struct hmt_std : flx_hls::hmt_config {
    static const int exp_impl = flx_hls::EXP_STD;
};

// block-partitioned stream of a natural vector (lane i beat k = i*(n/B) + k)
void to_stream(const npy_array &x, unsigned n, stream<vector<float, B> > &s)
{
    for (unsigned k = 0; k < n / B; k++) {
        vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = x.f32(i * (n / B) + k);
        s.write(v);
    }
}

std::vector<float> from_stream(stream<vector<float, B> > &s, unsigned n)
{
    std::vector<float> out(n);
    for (unsigned k = 0; k < n / B; k++) {
        vector<float, B> v = s.read();
        for (unsigned i = 0; i < B; i++) out[i * (n / B) + k] = v[i];
    }
    return out;
}

// gemv_f32_dec weight streams of a row-major [n_out][k_dim] golden matrix
void weight_streams(const npy_array &w, unsigned n_out, unsigned k_dim, stream<vector<float, W> > ws[B])
{
    const unsigned per = n_out / B;
    for (unsigned n = 0; n < n_out / (B * W); n++)
        for (unsigned k = 0; k < k_dim; k++)
            for (unsigned i = 0; i < B; i++) {
                vector<float, W> v;
                for (unsigned j = 0; j < W; j++) v[j] = w.f32((size_t)(i * per + n * W + j) * k_dim + k);
                ws[i].write(v);
            }
}

template <class C>
void load_memory(flx_hls::hmt_memory<C> &mem, const npy_array &mm, const npy_array &km, const npy_array *filled)
{
    for (unsigned s = 0; s < S; s++) {
        mem.filled[s] = filled ? filled->i32(s) != 0 : true;
        for (unsigned i = 0; i < D; i++) mem.m[s][i] = mm.f32((size_t)s * D + i);
        for (unsigned i = 0; i < H; i++) mem.k[s][i] = km.f32((size_t)s * H + i);
    }
}

template <class C>
void run_recall(tb_ctx &c, flx_hls::hmt_memory<C> &mem)
{
    npy_array s = c.load("s", "<f4", {D}), wq = c.load("wq", "<f4", {H, D});
    npy_array mm = c.load("mmem", "<f4", {S, D}), km = c.load("kmem", "<f4", {S, H});
    npy_array filled = c.load("filled", "<i4", {S});
    load_memory<C>(mem, mm, km, &filled);
    stream<vector<float, B> > ss("s"), q("q"), a("a"), p("p");
    stream<vector<float, W> > ws[B];
    to_stream(s, D, ss);
    weight_streams(wq, H, D, ws);
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_hmt_recall(ss, ws, mem, q, a, p, D, H);
    else flx_hls::hmt_recall<C>(ss, ws, mem, q, a, p, D, H);
    c.expect_f32("q", from_stream(q, H));
    c.expect_f32("a", from_stream(a, S));
    c.expect_f32("p", from_stream(p, D));
    expect_drained("q", q);
    expect_drained("a", a);
    expect_drained("p", p);
}

template <class C>
void run_update(tb_ctx &c, flx_hls::hmt_memory<C> &mem, bool load_state)
{
    npy_array seg = c.load("seg", "<i4", {1}), m = c.load("m", "<f4", {D}), wk = c.load("wk", "<f4", {H, D});
    if (load_state) load_memory<C>(mem, c.load("mmem_in", "<f4", {S, D}), c.load("kmem_in", "<f4", {S, H}), nullptr);
    stream<vector<float, B> > ms("m"), k("k");
    stream<vector<float, W> > ws[B];
    to_stream(m, D, ms);
    weight_streams(wk, H, D, ws);
    if (C::exp_impl == flx_hls::EXP_FLX) flx_tops::top_hmt_update(ms, ws, mem, k, (unsigned)seg.i32(0), D, H);
    else flx_hls::hmt_update<C>(ms, ws, mem, k, (unsigned)seg.i32(0), D, H);
    c.expect_f32("k", from_stream(k, H));
    expect_drained("k", k);
    std::vector<float> mo((size_t)S * D), ko((size_t)S * H);
    for (unsigned s = 0; s < S; s++) {
        for (unsigned i = 0; i < D; i++) mo[(size_t)s * D + i] = mem.m[s][i];
        for (unsigned i = 0; i < H; i++) ko[(size_t)s * H + i] = mem.k[s][i];
    }
    c.expect_f32("mmem_out", mo);
    c.expect_f32("kmem_out", ko);
}

template <class C>
void dispatch(tb_ctx &c, int what)
{
    std::unique_ptr<flx_hls::hmt_memory<C> > mem(new flx_hls::hmt_memory<C>());
    flx_hls::hmt_memory_reset<C>(*mem);
    if (what != 1) run_recall<C>(c, *mem);
    if (what != 0) run_update<C>(c, *mem, what == 1);
}

void tb_hmt(tb_ctx &c, int what)
{
    if (c.exp_flx()) dispatch<flx_tops::hmt_cfg>(c, what);
    else dispatch<hmt_std>(c, what);
}

void tb_hmt_recall(tb_ctx &c) { tb_hmt(c, 0); }
void tb_hmt_update(tb_ctx &c) { tb_hmt(c, 1); }

}  // namespace

// recall on the golden memory, then the update of that same memory
void tb_layer_hmt(tb_ctx &c) { tb_hmt(c, 2); }

void register_hmt(std::vector<tb_entry> &v)
{
    v.push_back({"hmt_recall", tb_hmt_recall, "flx_hls::hmt_recall (gemv_f32_dec, softmax_block)"});
    v.push_back({"hmt_update", tb_hmt_update, "flx_hls::hmt_update (gemv_f32_dec, ring buffer)"});
    v.push_back({"layer_hmt", tb_layer_hmt, "flx_hls::hmt_recall + hmt_update (U280 size)"});
    v.push_back({"layer_hmt_segment", tb_layer_hmt_segment,
                 "flx_hls::hmt_segment_step (loaders, recall, ring update; golden prefill outputs)"});
}

}  // namespace flx_tb
