// flx_csim_hls_stream.h -- C-simulation stand-in for Vitis HLS hls::stream,
// used ONLY when the real Vitis headers are absent (hw/kernels/flx_hls.h).
// Written from docs/hls-types.md §2:
//
//  * csim semantics (default): an unbounded FIFO.  write() always succeeds,
//    full() is always false.  read() on an empty stream prints
//      WARNING: Hls::stream '<name>' is read while empty, which may result in
//      RTL simulation hanging.
//    and returns T() (the csim behaviour), and counts the event.
//    The destructor warns when data is left over.
//  * bounded-depth mode (optional): a stream with a depth (the template
//    argument DEPTH, or flx_set_depth(n) from a testbench) reports a
//    would-be deadlock when a write finds it holding `depth` elements: in
//    hardware that write stalls until the consumer reads, which is a
//    deadlock unless the consumer runs concurrently (a DATAFLOW region).
//    The write still completes, so csim runs on; flx_full_events() and
//    flx_max_occupancy() let a testbench assert on it.  Enabled per stream
//    with flx_set_bounded(true), or for every stream with a depth by
//    compiling with -DFLX_CSIM_BOUNDED_STREAMS.
//  * Inside a concurrent DATAFLOW region (hw/csim/flx_csim_dataflow.h) the
//    stream is shared between task threads under the region's mutex: read()
//    blocks while empty, write() blocks while `depth` elements are held
//    (streams with a depth only), and a region where every task is blocked
//    reports a deadlock.  Outside a region: not thread-safe (csim calls the
//    kernels sequentially).
// Methods named flx_* exist only in this shim; guard their use with
// FLX_HLS_SHIM in code that must also build against the real headers.
#ifndef FLX_CSIM_HLS_STREAM_H
#define FLX_CSIM_HLS_STREAM_H

#include <cstddef>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "flx_csim_dataflow.h"

namespace flx_csim {

// The FIFO storage of a stream: a ring that doubles when full and never
// shrinks.  std::deque allocates and frees a block every few dozen elements
// of a FIFO that stays short; under the prefill layer's 5 million weight
// beats that was a tenth of the csim time.
template <class T>
class fifo {
  public:
    bool empty() const { return n_ == 0; }
    std::size_t size() const { return n_; }
    const T &front() const { return b_[head_]; }
    void pop_front() { head_ = (head_ + 1) & (b_.size() - 1); n_--; }
    void push_back(const T &v)
    {
        if (n_ == b_.size()) grow();
        b_[(head_ + n_) & (b_.size() - 1)] = v;
        n_++;
    }

  private:
    void grow()
    {
        std::vector<T> nb(b_.empty() ? 16 : 2 * b_.size());
        for (std::size_t i = 0; i < n_; i++) nb[i] = b_[(head_ + i) & (b_.size() - 1)];
        b_.swap(nb);
        head_ = 0;
    }
    std::vector<T> b_;   // size: 0 or a power of two
    std::size_t head_ = 0, n_ = 0;
};

}  // namespace flx_csim

namespace hls {

// As in Vitis, hls::stream<T, DEPTH> derives from hls::stream<T> (DEPTH 0),
// so a channel declared with its depth binds to a kernel's `hls::stream<T> &`.
template <class T, int DEPTH = 0>
class stream;

template <class T>
class stream<T, 0> {
  public:
    stream() : name_("hls::stream") {}
    explicit stream(const char *name) : name_(name ? name : "hls::stream") {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;
    ~stream() {
        if (!q_.empty())
            std::fprintf(stderr, "WARNING: Hls::stream '%s' contains leftover data (%zu elements), "
                         "which may result in RTL simulation hanging.\n", name_.c_str(), q_.size());
    }

    void write(const T &v) {
        if (flx_csim::region *r = flx_csim::region::current()) {
            std::unique_lock<std::mutex> lk(r->mutex());
            if (depth_ > 0)
                r->wait(lk, [&] { return (long)q_.size() < depth_; }, [&] { return (long)q_.size(); }, this,
                        name_.c_str(), true, depth_);
            q_.push_back(v);
            if ((long)q_.size() > max_occ_) max_occ_ = (long)q_.size();
            if (observe_) observe_(v);
            r->changed(this, name_.c_str(), (long)q_.size(), depth_, false);
            return;
        }
        if (bounded_ && depth_ > 0 && (long)q_.size() >= depth_) {
            if (full_events_ == 0)
                std::fprintf(stderr, "WARNING: Hls::stream '%s' (depth %ld) is written while full: "
                             "the producer would stall here; a deadlock unless the consumer runs "
                             "concurrently (DATAFLOW).\n", name_.c_str(), depth_);
            full_events_++;
        }
        q_.push_back(v);
        if ((long)q_.size() > max_occ_) max_occ_ = (long)q_.size();
        if (observe_) observe_(v);
    }
    void operator<<(const T &v) { write(v); }
    T read() {
        if (flx_csim::region *r = flx_csim::region::current()) {
            std::unique_lock<std::mutex> lk(r->mutex());
            r->wait(lk, [&] { return !q_.empty(); }, [&] { return (long)q_.size(); }, this, name_.c_str(),
                    false, depth_);
            T v = q_.front();
            q_.pop_front();
            r->changed(this, name_.c_str(), (long)q_.size(), depth_, true);
            return v;
        }
        if (q_.empty()) {
            std::fprintf(stderr, "WARNING: Hls::stream '%s' is read while empty, which may result "
                         "in RTL simulation hanging.\n", name_.c_str());
            empty_reads_++;
            return T();
        }
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    void read(T &v) { v = read(); }
    void operator>>(T &v) { v = read(); }
    bool read_nb(T &v) {
        if (in_region()) {
            {
                std::lock_guard<std::mutex> g(flx_csim::region::current()->mutex());
                if (q_.empty()) return false;
            }
            v = read();   // this task is the only reader
            return true;
        }
        if (q_.empty()) return false;
        v = read();
        return true;
    }
    bool write_nb(const T &v) {
        if (in_region()) {
            {
                std::lock_guard<std::mutex> g(flx_csim::region::current()->mutex());
                if (depth_ > 0 && (long)q_.size() >= depth_) return false;
            }
            write(v);     // this task is the only writer
            return true;
        }
        if (bounded_ && depth_ > 0 && (long)q_.size() >= depth_) return false;
        write(v);
        return true;
    }
    bool empty() const {
        if (in_region()) {
            std::lock_guard<std::mutex> g(flx_csim::region::current()->mutex());
            return q_.empty();
        }
        return q_.empty();
    }
    bool full() const {
        if (in_region()) {
            std::lock_guard<std::mutex> g(flx_csim::region::current()->mutex());
            return depth_ > 0 && (long)q_.size() >= depth_;
        }
        return bounded_ && depth_ > 0 && (long)q_.size() >= depth_;
    }
    std::size_t size() const {
        if (in_region()) {
            std::lock_guard<std::mutex> g(flx_csim::region::current()->mutex());
            return q_.size();
        }
        return q_.size();
    }

    // ---- shim-only testbench hooks
    void flx_set_depth(long depth) { depth_ = depth; }
    void flx_set_name(const char *name) { name_ = name; }
    // f(v) after every write (under the region's mutex inside a region): a
    // testbench probe that sees a FIFO's traffic without changing the graph
    void flx_observe(std::function<void(const T &)> f) { observe_ = std::move(f); }
    void flx_set_bounded(bool on) { bounded_ = on; }
    long flx_full_events() const { return full_events_; }
    long flx_empty_reads() const { return empty_reads_; }
    long flx_max_occupancy() const { return max_occ_; }
    const char *flx_name() const { return name_.c_str(); }

  private:
    static bool in_region() { return flx_csim::region::current() != nullptr; }
    flx_csim::fifo<T> q_;
    std::string name_;
    long depth_ = 0;
#ifdef FLX_CSIM_BOUNDED_STREAMS
    bool bounded_ = true;
#else
    bool bounded_ = false;
#endif
    long full_events_ = 0, empty_reads_ = 0, max_occ_ = 0;
    std::function<void(const T &)> observe_;
};

template <class T, int DEPTH>
class stream : public stream<T, 0> {
  public:
    stream() { this->flx_set_depth(DEPTH); }
    explicit stream(const char *name) : stream<T, 0>(name) { this->flx_set_depth(DEPTH); }
};

}  // namespace hls

#endif  // FLX_CSIM_HLS_STREAM_H
