// flx_csim_dataflow.h -- concurrent C simulation of an HLS DATAFLOW region,
// for the project's hls::stream stand-in (hw/csim/flx_csim_hls_stream.h).
//
// Sequential csim (what Vitis does by default) runs the tasks of a dataflow
// region one after another with unbounded FIFOs, so a FIFO that is too
// shallow for the schedule -- a deadlock in hardware -- passes csim.  Here
// every task of a region runs on its own thread, as the hardware runs its
// processes, and inside a region:
//   * read() of an empty stream blocks until a producer writes;
//   * write() to a stream with a depth (hls::stream<T, DEPTH>, DEPTH > 0, or
//     flx_set_depth) blocks while it holds `depth` elements.  Streams
//     without a depth (the top's own ports, which the testbench fills before
//     and drains after the region) never block a write.
// When every live task of the region is blocked, the region is deadlocked:
// the tasks are unwound, run() returns false and report() names, per task,
// the stream it waits on and whether it was full or empty (with its
// occupancy and depth).  report() also lists the maximum occupancy every
// stream reached, so a depth can be sized from csim.
//
// Usage (the macros keep the top synthesizable: under Vitis they expand to
// the plain sequential calls and the DATAFLOW pragma):
//
//   FLX_DATAFLOW_BEGIN(df, "decoder_layer");
//   FLX_TASK(df, rmsnorm_pref<cfg>(x, g, h, nb));
//   FLX_TASK(df, residual<cfg>(h, bypass, y, n));
//   FLX_DATAFLOW_END(df);
//   // shim only: df.ok(), df.report()
//
// One region at a time per thread; a task must not open a region itself.
// All stream operations of a region take the region's one mutex (csim
// speed, not hardware timing, is the point).
#ifndef FLX_CSIM_DATAFLOW_H
#define FLX_CSIM_DATAFLOW_H

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace flx_csim {

// thrown inside a blocked task when its region deadlocked (unwinds the task)
struct deadlock_unwind {};

class region {
  public:
    explicit region(const char *name) : name_(name ? name : "dataflow") {}
    region(const region &) = delete;
    region &operator=(const region &) = delete;

    void task(const char *name, std::function<void()> fn) { tasks_.push_back({name, std::move(fn)}); }

    // Runs every task on its own thread and waits for all.  false on a
    // deadlock or when a task threw (see report()).
    bool run()
    {
        live_ = (int)tasks_.size();
        blocked_ = 0;
        deadlocked_ = false;
        waits_.assign(tasks_.size(), wait_info());
        cvs_.clear();
        for (size_t i = 0; i < tasks_.size(); i++) cvs_.emplace_back(new std::condition_variable());
        pending_.clear();
        errors_.clear();
        std::vector<std::thread> th;
        for (size_t i = 0; i < tasks_.size(); i++)
            th.emplace_back([this, i] {
                current() = this;
                task_index() = (int)i;
                try {
                    tasks_[i].fn();
                } catch (const deadlock_unwind &) {
                } catch (const std::exception &e) {
                    std::lock_guard<std::mutex> g(mu_);
                    errors_.push_back("task '" + tasks_[i].name + "' threw: " + e.what());
                }
                std::lock_guard<std::mutex> g(mu_);
                live_--;
                flush_locked();
                check_deadlock_locked();
                current() = nullptr;
            });
        pin_to_caller_cpu(th);
        for (std::thread &t : th) t.join();
        ran_ = true;
        return !deadlocked_ && errors_.empty();
    }

    bool ok() const { return ran_ && !deadlocked_ && errors_.empty(); }
    bool deadlocked() const { return deadlocked_; }
    const std::string &name() const { return name_; }

    // What happened: the deadlock (each blocked task, its stream, full or
    // empty), task errors, and the maximum occupancy of every stream used.
    std::string report() const
    {
        std::string r = "dataflow '" + name_ + "': ";
        if (!ran_) return r + "not run";
        r += deadlocked_ ? "DEADLOCK" : errors_.empty() ? "completed" : "task error";
        r += "\n";
        for (size_t i = 0; deadlocked_ && i < waits_.size(); i++) {
            const wait_info &w = waits_[i];
            if (!w.blocked) {
                r += "  task '" + tasks_[i].name + "' finished\n";
                continue;
            }
            char buf[256];
            std::snprintf(buf, sizeof buf, "  task '%s' blocked %s stream '%s' (%s: %ld of depth %ld)\n",
                          tasks_[i].name.c_str(), w.full ? "writing" : "reading", w.stream.c_str(),
                          w.full ? "full" : "empty", w.size, w.depth);
            r += buf;
        }
        for (const std::string &e : errors_) r += "  " + e + "\n";
        std::vector<std::string> lines;   // by stream name: a stable report
        for (const auto &kv : occ_) {
            char buf[256];
            std::snprintf(buf, sizeof buf, "  stream '%s': max occupancy %ld, depth %ld\n",
                          kv.second.name.c_str(), kv.second.max_occ, kv.second.depth);
            lines.push_back(buf);
        }
        std::sort(lines.begin(), lines.end());
        for (const std::string &l : lines) r += l;
        return r;
    }

    // the streams this region saw: name -> (max occupancy, depth)
    long max_occupancy(const std::string &stream) const
    {
        for (const auto &kv : occ_)
            if (kv.second.name == stream) return kv.second.max_occ;
        return -1;
    }
    // the blocked task's stream and direction after a deadlock ("" if none)
    std::string blocked_on(const std::string &task, bool *full = nullptr) const
    {
        for (size_t i = 0; i < tasks_.size(); i++)
            if (tasks_[i].name == task && waits_[i].blocked) {
                if (full) *full = waits_[i].full;
                return waits_[i].stream;
            }
        return "";
    }

    // ---- used by hls::stream (shim) while a task of this region runs
    static region *&current()
    {
        static thread_local region *r = nullptr;
        return r;
    }
    std::mutex &mutex() { return mu_; }

    // Waits (lock held) until ready() is true: the task waits for data on
    // (full = false) or for space in (full = true) the stream `id`.
    // size/depth for the report.  Throws deadlock_unwind when the region
    // deadlocks.
    template <class READY, class SIZE>
    void wait(std::unique_lock<std::mutex> &lk, READY ready, SIZE size, const void *id, const char *stream,
              bool full, long depth)
    {
        if (deadlocked_) throw deadlock_unwind();
        if (ready()) return;
        const int me = task_index();
        wait_info &w = waits_[me];
        occ_entry &e = entry(id, stream);
        (full ? e.writer : e.reader) = me;
        w.blocked = true;
        w.satisfied = false;
        w.full = full;
        w.stream = stream;
        w.depth = depth;
        w.size = size();
        blocked_++;
        flush_locked();   // wake-ups this task deferred: it stops here
        check_deadlock_locked();
        while (!deadlocked_ && !ready()) cvs_[me]->wait(lk);
        (full ? e.writer : e.reader) = -1;
        if (!w.satisfied) blocked_--;   // (deadlocked, or ready without a change: never counted twice)
        if (deadlocked_) {
            w.size = size();
            throw deadlock_unwind();   // w stays filled in for the report
        }
        w.blocked = false;
    }
    // after every push/pop (lock held): track occupancy, wake the task that
    // waits on this stream (its one reader or one writer) once its wait is
    // over.  On a stream with a depth, the wake-up is deferred while the
    // FIFO is neither near empty after a pop nor near full after a push (the
    // producer that waits for space is woken once half the FIFO is free,
    // the consumer that waits for data once half is filled), and always
    // done before the changing task itself waits or ends (flush_locked).
    // A task whose wait is over counts as not blocked from that moment, woken
    // or not yet, so a deferred wake-up delays a waiter, never loses it, and
    // the deadlock verdict (every live task waits on a stream that cannot
    // serve it) does not depend on it; the values a region computes do not
    // depend on the schedule.  Per beat the producer and consumer of a
    // shallow FIFO no longer wake each other (a context switch each): the
    // prefill layer's weight FIFOs (depth 4, millions of beats) spent most
    // of its wall time there.  Only the waiter of the changed stream is
    // woken: a layer region has ~70 tasks, most of them waiting at any time.
    void changed(const void *stream, const char *name, long size, long depth, bool popped)
    {
        occ_entry &e = entry(stream, name);
        e.depth = depth;
        if (size > e.max_occ) e.max_occ = size;
        int t = popped ? e.writer : e.reader;
        if (t < 0 || waits_[t].satisfied) return;
        if (popped ? depth > 0 && size >= depth : size == 0) return;
        waits_[t].satisfied = true;
        blocked_--;
        bool defer = depth > 1 && (popped ? size > depth / 2 : size < (depth + 1) / 2);
        if (defer)
            pending_.push_back(t);
        else
            cvs_[t]->notify_one();
    }
    // a task waits or ends (lock held): nothing it deferred may stay asleep
    void flush_locked()
    {
        for (int t : pending_) cvs_[t]->notify_one();
        pending_.clear();
    }

  private:
    struct task_t {
        std::string name;
        std::function<void()> fn;
    };
    struct wait_info {
        bool blocked = false, full = false;
        bool satisfied = false;   // the awaited change came (woken, or the wake-up deferred)
        std::string stream;
        long size = 0, depth = 0;
    };
    struct occ_entry {
        std::string name;
        long max_occ = 0, depth = 0;
        int reader = -1, writer = -1;   // the task waiting on the stream, if any
    };
    occ_entry &entry(const void *id, const char *name)
    {
        occ_entry &e = occ_[id];
        if (e.name.empty()) e.name = name;
        return e;
    }
    // The task threads of a region run on the caller's CPU (Linux): on two
    // idle cores a producer and a consumer on different cores hand the
    // region's mutex across cores for every few beats (the prefill layer:
    // 42-45 s of sys time for 5 million weight beats, bench/README.md); on
    // one core the same hand-off is a cheap switch.  Only where threads run
    // changes; the blocking, the deadlock verdict and the values do not.
    // FLX_CSIM_NO_PIN set: threads go wherever the OS puts them.
    static void pin_to_caller_cpu(std::vector<std::thread> &th)
    {
#ifdef __linux__
        static const bool off = std::getenv("FLX_CSIM_NO_PIN") != nullptr;
        int cpu = sched_getcpu();
        if (off || cpu < 0) return;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        for (std::thread &t : th) pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
#else
        (void)th;
#endif
    }
    static int &task_index()
    {
        static thread_local int i = -1;
        return i;
    }
    void check_deadlock_locked()
    {
        if (!deadlocked_ && live_ > 0 && blocked_ == live_) {
            deadlocked_ = true;
            for (auto &cv : cvs_) cv->notify_all();
        }
    }

    std::string name_;
    std::vector<task_t> tasks_;
    std::mutex mu_;
    std::vector<std::unique_ptr<std::condition_variable> > cvs_;   // one per task
    std::vector<int> pending_;   // tasks whose wake-up changed() deferred
    int live_ = 0, blocked_ = 0;   // blocked_: tasks waiting on a stream that cannot serve them yet
    bool deadlocked_ = false, ran_ = false;
    std::vector<wait_info> waits_;
    std::vector<std::string> errors_;
    std::map<const void *, occ_entry> occ_;
};

// FLX_DATAFLOW_END: a deadlock or a task error becomes an exception naming
// the streams (a testbench reports it as the kernel's failure); with
// FLX_CSIM_DATAFLOW_REPORT set in the environment every region prints its
// report (max occupancy per stream) to stderr.
inline void finish(region &r)
{
    bool ok = r.run();
    if (ok && std::getenv("FLX_CSIM_DATAFLOW_REPORT")) std::fprintf(stderr, "%s", r.report().c_str());
    if (!ok) throw std::runtime_error(r.report());
}

}  // namespace flx_csim

#define FLX_DATAFLOW_BEGIN(df, name) flx_csim::region df(name)
#define FLX_TASK(df, name, ...) df.task(name, [&]() { __VA_ARGS__; })
#define FLX_DATAFLOW_END(df) flx_csim::finish(df)

#endif  // FLX_CSIM_DATAFLOW_H
