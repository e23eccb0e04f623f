// flx_probe.h -- C-simulation probes of the whole-layer kernels: a testbench
// installs a probe_sink (probe_scope) and the layer hands it its named
// intermediates (norm outputs, Q/K/V, scores, P, attention output, FFN
// activations) in the golden layer sets' natural layouts, so a mismatch is
// localised to the first intermediate that differs (hw/tb/tb_layer.cpp).
// Compiled out under synthesis (__SYNTHESIS__); without an installed sink
// every probe is one pointer test and a stream tee is skipped, so a top
// computes the same bits with and without probes.  Stream tees are written
// in the kernels inside #ifndef __SYNTHESIS__.  The sink is one slot for
// the process (C simulation calls a top from one thread at a time).
#ifndef FLX_HLS_PROBE_H
#define FLX_HLS_PROBE_H

#include <stddef.h>

#include "flx_hls.h"

#ifndef __SYNTHESIS__
#include <vector>
#endif

namespace flx_hls {

#ifndef __SYNTHESIS__
// Receives a named tensor's values; a name sent again appends (the decode
// layer sends the scores head by head).
struct probe_sink {
    virtual ~probe_sink() {}
    virtual void f32(const char *name, const float *x, size_t n) = 0;
    virtual void ints(const char *name, const long long *x, size_t n) = 0;
};

inline probe_sink *&probe_slot()
{
    static probe_sink *sink = nullptr;
    return sink;
}
inline probe_sink *probe() { return probe_slot(); }

// installs a sink for the lifetime of the scope
struct probe_scope {
    probe_sink *old;
    explicit probe_scope(probe_sink *s) : old(probe_slot()) { probe_slot() = s; }
    ~probe_scope() { probe_slot() = old; }
};

template <class T>
void probe_ints(const char *name, const T *x, size_t n, long long mask = -1)
{
    if (probe_sink *p = probe()) {
        std::vector<long long> v(n);
        for (size_t i = 0; i < n; i++) v[i] = (long long)x[i].to_int() & mask;
        p->ints(name, v.data(), n);
    }
}

// Reads the `beats` beats (type V) of a stream, hands them to record(beats vector)
// and writes them back unchanged: only while a sink is installed (the
// stream is an unbounded csim FIFO between two sequential kernels).
template <class V, class S, class F>
void probe_tee(S &s, size_t beats, F record)
{
    if (!probe()) return;
    std::vector<V> buf(beats);
    for (size_t i = 0; i < beats; i++) buf[i] = s.read();
    record(buf);
    for (size_t i = 0; i < beats; i++) s.write(buf[i]);
}

// probe_tee of a one-lane float stream, recorded as `beats` floats under `name`.
template <class S>
void probe_tee_f32(S &s, size_t beats, const char *name)
{
    probe_tee<hls::vector<float, 1> >(s, beats, [&](const std::vector<hls::vector<float, 1> > &b) {
        std::vector<float> a(beats);
        for (size_t j = 0; j < beats; j++) a[j] = b[j][0];
        probe()->f32(name, a.data(), beats);
    });
}

// The beats written to one stream of a concurrent DATAFLOW region, recorded
// while a sink is installed (the whole-layer prefill top's intermediates).
// With this project's stream layer (FLX_HLS_SHIM_STREAM) an observer on the
// stream sees every write: the graph and its FIFO depths are unchanged, so
// probing cannot hide a deadlock.  Under Vitis C simulation (tasks run one
// after another over unbounded FIFOs) the probe, placed right after the
// producer's task, copies the stream's contents and puts them back.
template <class V>
struct probe_rec {
    std::vector<V> beats;
};

template <class V, class S>
void probe_stream(S &s, probe_rec<V> &r)
{
    if (!probe()) return;
#if FLX_HLS_SHIM_STREAM
    s.flx_observe([&r](const V &v) { r.beats.push_back(v); });
#else
    std::vector<V> b;
    while (!s.empty()) b.push_back(s.read());
    for (size_t i = 0; i < b.size(); i++) s.write(b[i]);
    r.beats = b;
#endif
}

// token-parallel beats (per token block, c channels; lane t = token
// 8*blk + t), from block `first` on, as [token][c]; value(v) -> float or long long
template <unsigned TP, class V, class T, class F>
std::vector<T> probe_tokens(const probe_rec<V> &r, unsigned first, unsigned nb, unsigned c, F value)
{
    std::vector<T> a((size_t)nb * TP * c);
    if (r.beats.size() < ((size_t)first + nb) * c) return std::vector<T>();   // a region that failed
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned k = 0; k < c; k++)
            for (unsigned t = 0; t < TP; t++)
                a[((size_t)blk * TP + t) * c + k] = value(r.beats[((size_t)first + blk) * c + k][t]);
    return a;
}

// attention beats (per token block and head, s keys; lane t = query
// 8*blk + t) as [head][query][key]
template <unsigned TP, class V, class T, class F>
std::vector<T> probe_heads(const probe_rec<V> &r, unsigned nb, unsigned heads, unsigned s, F value)
{
    const size_t nq = (size_t)nb * TP;
    std::vector<T> a((size_t)heads * nq * s);
    for (size_t i = 0; i < r.beats.size() && i < a.size() / TP; i++) {
        size_t j = i % s, h = i / s % heads, blk = i / s / heads;
        for (unsigned t = 0; t < TP; t++) a[(h * nq + blk * TP + t) * s + j] = value(r.beats[i][t]);
    }
    return a;
}
#endif

}  // namespace flx_hls

#ifndef __SYNTHESIS__
#define FLX_PROBE_F32(name, ptr, n)                                       \
    do {                                                                  \
        if (flx_hls::probe_sink *p_ = flx_hls::probe()) p_->f32(name, ptr, n); \
    } while (0)
#define FLX_PROBE_INTS(name, ptr, n, mask) flx_hls::probe_ints(name, ptr, n, mask)
#else
#define FLX_PROBE_F32(name, ptr, n) do { } while (0)
#define FLX_PROBE_INTS(name, ptr, n, mask) do { } while (0)
#endif

#endif  // FLX_HLS_PROBE_H
