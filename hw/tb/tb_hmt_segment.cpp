// tb_hmt_segment.cpp -- whole HMT segment steps (`flxemu golden --layer
// hmt`, kernel layer_hmt_segment, tiny shape) through the segment control
// of hw/kernels/hmt_control.h, bit for bit: segments 0 .. 3 of the context
// from reset, in order, with the ring and the Pn buffer carried from step to
// step as on chip; then segments 70 and 71 (the last) from the recorded ring
// before 70.  Per step: the stage-0 and stage-1 rows the control writes into
// pref_io region 0, Sn, the retrieval (Qn, An', Pn), Mn, Kn and the ring
// after the step.  The prefill is a functor that records the rows it is given
// and answers with the golden prefill outputs (the emulator's 2-layer INT4
// prefill); the layer_prefill set checks the prefill itself at the U280 shape.
#include "tb_hmt.h"

#include "../kernels/hmt_control.h"

#include <memory>

namespace flx_tb {

using hls::stream;
using hls::vector;

namespace {

const unsigned D = 64, H = 32, S = 64, B = 4, L = 10, SUM = 5, SENS = 4, ROWS = 16;

struct seg_cfg : flx_hls::hmt_control_config {
    static const unsigned max_d = D, max_h = H, slots = S;
    static const unsigned seg_len = L, sum_len = SUM, n_sensory = SENS, pad = 8;
};
struct seg_cfg_flx : seg_cfg {
    static const int exp_impl = flx_hls::EXP_FLX;
};
struct seg_cfg_std : seg_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// the stand-in for the 16-layer prefill: keeps its input rows, returns the
// golden output rows (rows past the golden ones are padding: zeros)
struct golden_prefill {
    std::vector<const npy_array *> y;
    std::vector<unsigned> y_rows;
    std::vector<std::vector<float> > got;
    void operator()(const float *region0, unsigned rows, float *out)
    {
        const size_t call = got.size();
        if (call >= y.size())
            throw std::runtime_error("the control ran the prefill " + std::to_string(call + 1) + " times, expected " +
                                     std::to_string(y.size()));
        got.emplace_back(region0, region0 + (size_t)rows * D);
        for (unsigned r = 0; r < rows; r++)
            for (unsigned i = 0; i < D; i++)
                out[(size_t)r * D + i] = r < y_rows[call] ? y[call]->f32((size_t)r * D + i) : 0.0f;
    }
};

std::vector<float> drain(stream<vector<float, B> > &s, unsigned n)
{
    std::vector<float> out(n);
    for (unsigned t = 0; t < n / B; t++) {
        vector<float, B> v = s.read();
        for (unsigned i = 0; i < B; i++) out[i * (n / B) + t] = v[i];
    }
    return out;
}

struct context {
    std::vector<float> io, wq, wk, init;
    unsigned last = 0;
};

template <class C>
void load_ring(tb_ctx &c, const std::string &pre, flx_hls::hmt_memory<C> &mem)
{
    npy_array mm = c.load((pre + "mmem_in").c_str(), "<f4", {S, D});
    npy_array km = c.load((pre + "kmem_in").c_str(), "<f4", {S, H});
    npy_array filled = c.load((pre + "filled_in").c_str(), "<i4", {S});
    for (unsigned s = 0; s < S; s++) {
        mem.filled[s] = filled.i32(s) != 0;
        for (unsigned i = 0; i < D; i++) mem.m[s][i] = mm.f32((size_t)s * D + i);
        for (unsigned i = 0; i < H; i++) mem.k[s][i] = km.f32((size_t)s * H + i);
    }
}

// one segment step on the carried state, every output compared
template <class C>
void step(tb_ctx &c, const context &x, unsigned n, flx_hls::hmt_memory<C> &mem, std::vector<float> &pn)
{
    const std::string pre = "s" + std::to_string(n) + "_";
    auto nm = [&](const char *t) { return pre + t; };
    const bool last = n == x.last, recall = n > 0;
    const unsigned n0 = n ? SUM + 2 : 0, n1 = 1 + (n ? SENS : 0) + L + (last ? 0 : 1);
    npy_array y0, y1 = c.load(nm("y1").c_str(), "<f4", {n1, D});
    golden_prefill pf;
    if (n0) {
        y0 = c.load(nm("y0").c_str(), "<f4", {n0, D});
        pf.y.push_back(&y0);
        pf.y_rows.push_back(n0);
    }
    pf.y.push_back(&y1);
    pf.y_rows.push_back(n1);
    std::vector<float> region0((size_t)ROWS * D), out((size_t)ROWS * D);
    stream<vector<float, B> > s("s"), q("q"), a("a"), p("p"), m("m"), k("k");
    flx_hls::hmt_segment_step<C>(x.io.data(), 1 + n * L, n, L, last, x.wq.data(), x.wk.data(), x.init.data(), mem,
                                 pn.data(), region0.data(), out.data(), pf, s, q, a, p, m, k, D, H);
    if (pf.got.size() != pf.y.size())
        throw std::runtime_error(pre + ": the control ran the prefill " + std::to_string(pf.got.size()) + " times");
    if (n0) {
        c.expect_f32(nm("x0").c_str(), pf.got[0]);
        c.expect_f32(nm("s").c_str(), drain(s, D));
    }
    if (recall) {
        c.expect_f32(nm("q").c_str(), drain(q, H));
        c.expect_f32(nm("a").c_str(), drain(a, S));
    }
    c.expect_f32(nm("p").c_str(), drain(p, D));
    c.expect_f32(nm("x1").c_str(), pf.got.back());
    if (!last) {
        c.expect_f32(nm("m").c_str(), drain(m, D));
        c.expect_f32(nm("k").c_str(), drain(k, H));
    }
    for (auto *st : {&s, &q, &a, &p, &m, &k}) expect_drained((pre + "output").c_str(), *st);
    std::vector<float> mo((size_t)S * D), ko((size_t)S * H);
    std::vector<long long> fo(S);
    for (unsigned sl = 0; sl < S; sl++) {
        for (unsigned i = 0; i < D; i++) mo[(size_t)sl * D + i] = mem.m[sl][i];
        for (unsigned i = 0; i < H; i++) ko[(size_t)sl * H + i] = mem.k[sl][i];
        fo[sl] = mem.filled[sl] ? 1 : 0;
    }
    c.expect_f32(nm("mmem_out").c_str(), mo);
    c.expect_f32(nm("kmem_out").c_str(), ko);
    c.expect_int(nm("filled_out").c_str(), "<i4", fo);
}

template <class C>
void run(tb_ctx &c)
{
    npy_array meta = c.load("context", "<i4", {4});
    const unsigned n_seg = (unsigned)meta.i32(0), second = (unsigned)meta.i32(2);
    if ((unsigned)meta.i32(1) != L || second + 2 != n_seg || (unsigned)meta.i32(3) != n_seg - 1)
        throw std::runtime_error("layer_hmt_segment: context " + std::to_string(n_seg) +
                                 " segments does not have the layout this testbench was written for");
    context x;
    x.last = n_seg - 1;
    npy_array io = c.load("hmt_io", "<f4", {1 + n_seg * L, D}), init = c.load("init_mem", "<f4", {D});
    npy_array wq = c.load("wq", "<f4", {H, D}), wk = c.load("wk", "<f4", {H, D});
    x.io.resize((size_t)(1 + n_seg * L) * D);
    for (size_t i = 0; i < x.io.size(); i++) x.io[i] = io.f32(i);
    x.wq.resize((size_t)H * D);
    x.wk.resize((size_t)H * D);
    for (size_t i = 0; i < x.wq.size(); i++) {
        x.wq[i] = wq.f32(i);
        x.wk[i] = wk.f32(i);
    }
    x.init.resize(D);
    for (unsigned i = 0; i < D; i++) x.init[i] = init.f32(i);
    std::unique_ptr<flx_hls::hmt_memory<C> > mem(new flx_hls::hmt_memory<C>());
    std::vector<float> pn(D, 0.0f);
    // the start of the context: reset, then segments 0 .. 3 in order
    flx_hls::hmt_memory_reset<C>(*mem);
    for (unsigned n = 0; n < 4; n++) step<C>(c, x, n, *mem, pn);
    // a full ring that wraps: segments 70 and 71 (the last) from the recorded ring
    load_ring<C>(c, "s" + std::to_string(second) + "_", *mem);
    for (unsigned n = second; n < n_seg; n++) step<C>(c, x, n, *mem, pn);
}

}  // namespace

void tb_layer_hmt_segment(tb_ctx &c)
{
    if (c.exp_flx()) run<seg_cfg_flx>(c);
    else run<seg_cfg_std>(c);
}

}  // namespace flx_tb
