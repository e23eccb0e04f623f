// tb_hmt_segment.cpp -- one whole HMT segment step (`flxemu golden --layer
// hmt`, kernel layer_hmt_segment, tiny shape) through the segment control
// of hw/kernels/hmt_control.h, bit for bit: the stage-0 and stage-1 loader
// rows the control writes into pref_io region 0, Sn, the retrieval (Qn, An',
// Pn), Mn, Kn and the ring after the update.  The prefill is a functor that
// records the rows it is given and answers with the golden prefill outputs
// (y0, y1: the emulator's 2-layer INT4 prefill); the layer_prefill set checks
// the prefill itself at the U280 shape.
#include "tb_hmt.h"

#include "../kernels/hmt_control.h"

#include <memory>

namespace flx_tb {

using hls::stream;
using hls::vector;

namespace {

const unsigned D = 64, H = 32, S = 64, B = 4, L = 10, ROWS = 16;

struct seg_cfg : flx_hls::hmt_control_config {
    static const unsigned max_d = D, max_h = H, slots = S;
    static const unsigned seg_len = L, sum_len = 5, n_sensory = 4, pad = 8;
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
    const npy_array *y[2];
    unsigned y_rows[2];
    std::vector<float> got[2];
    unsigned calls = 0;
    void operator()(const float *region0, unsigned rows, float *out)
    {
        if (calls >= 2) throw std::runtime_error("the control ran the prefill more than twice");
        got[calls].assign(region0, region0 + (size_t)rows * D);
        for (unsigned r = 0; r < rows; r++)
            for (unsigned i = 0; i < D; i++)
                out[(size_t)r * D + i] = r < y_rows[calls] ? y[calls]->f32((size_t)r * D + i) : 0.0f;
        calls++;
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

template <class C>
void run(tb_ctx &c)
{
    npy_array seg = c.load("seg", "<i4", {1}), len = c.load("seg_len", "<i4", {1});
    npy_array first = c.load("first_row", "<i4", {1}), last = c.load("last", "<i4", {1});
    npy_array io = c.load("hmt_io", "<f4", {1 + 2 * L, D}), init = c.load("init_mem", "<f4", {D});
    npy_array wq = c.load("wq", "<f4", {H, D}), wk = c.load("wk", "<f4", {H, D});
    npy_array mm = c.load("mmem_in", "<f4", {S, D}), km = c.load("kmem_in", "<f4", {S, H});
    npy_array filled = c.load("filled_in", "<i4", {S});
    const unsigned k0 = 5 + 2;   // stage-0 rows: T, 5 summary tokens, T
    npy_array y0 = c.load("y0", "<f4", {k0, D}), y1 = c.load("y1", "<f4", {ROWS, D});
    std::unique_ptr<flx_hls::hmt_memory<C> > mem(new flx_hls::hmt_memory<C>());
    for (unsigned s = 0; s < S; s++) {
        mem->filled[s] = filled.i32(s) != 0;
        for (unsigned i = 0; i < D; i++) mem->m[s][i] = mm.f32((size_t)s * D + i);
        for (unsigned i = 0; i < H; i++) mem->k[s][i] = km.f32((size_t)s * H + i);
    }
    golden_prefill pf;
    pf.y[0] = &y0;
    pf.y[1] = &y1;
    pf.y_rows[0] = k0;
    pf.y_rows[1] = ROWS;
    std::vector<float> hmt_io((size_t)(1 + 2 * L) * D), pn(D), region0((size_t)ROWS * D), out((size_t)ROWS * D);
    for (size_t i = 0; i < hmt_io.size(); i++) hmt_io[i] = io.f32(i);
    std::vector<float> wqv((size_t)H * D), wkv((size_t)H * D), initv(D);
    for (size_t i = 0; i < wqv.size(); i++) {
        wqv[i] = wq.f32(i);
        wkv[i] = wk.f32(i);
    }
    for (unsigned i = 0; i < D; i++) initv[i] = init.f32(i);
    stream<vector<float, B> > s("s"), q("q"), a("a"), p("p"), m("m"), k("k");
    flx_hls::hmt_segment_step<C>(hmt_io.data(), (unsigned)first.i32(0), (unsigned)seg.i32(0),
                                 (unsigned)len.i32(0), last.i32(0) != 0, wqv.data(), wkv.data(), initv.data(), *mem,
                                 pn.data(), region0.data(), out.data(), pf, s, q, a, p, m, k, D, H);
    if (pf.calls != 2) throw std::runtime_error("the control ran the prefill " + std::to_string(pf.calls) + " times");
    c.expect_f32("x0", pf.got[0]);
    c.expect_f32("s", drain(s, D));
    c.expect_f32("q", drain(q, H));
    c.expect_f32("a", drain(a, S));
    c.expect_f32("p", drain(p, D));
    c.expect_f32("x1", pf.got[1]);
    c.expect_f32("m", drain(m, D));
    c.expect_f32("k", drain(k, H));
    for (auto *st : {&s, &q, &a, &p, &m, &k}) expect_drained("hmt segment output", *st);
    std::vector<float> mo((size_t)S * D), ko((size_t)S * H);
    std::vector<long long> fo(S);
    for (unsigned sl = 0; sl < S; sl++) {
        for (unsigned i = 0; i < D; i++) mo[(size_t)sl * D + i] = mem->m[sl][i];
        for (unsigned i = 0; i < H; i++) ko[(size_t)sl * H + i] = mem->k[sl][i];
        fo[sl] = mem->filled[sl] ? 1 : 0;
    }
    c.expect_f32("mmem_out", mo);
    c.expect_f32("kmem_out", ko);
    c.expect_int("filled_out", "<i4", fo);
}

}  // namespace

void tb_layer_hmt_segment(tb_ctx &c)
{
    if (c.exp_flx()) run<seg_cfg_flx>(c);
    else run<seg_cfg_std>(c);
}

}  // namespace flx_tb
