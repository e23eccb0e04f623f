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
        blocked_ = waiting_ = 0;
        deadlocked_ = pending_ = false;
        waits_.assign(tasks_.size(), wait_info());
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
                check_deadlock_locked();
                cv_.notify_all();
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

    // Waits (lock held) until ready() is true.  `full` says which way the
    // task waits; size/depth for the report.  Throws deadlock_unwind when the
    // region deadlocks.
    template <class READY, class SIZE>
    void wait(std::unique_lock<std::mutex> &lk, READY ready, SIZE size, const char *stream, bool full,
              long depth)
    {
        if (deadlocked_) throw deadlock_unwind();
        if (ready()) return;
        wait_info &w = waits_[task_index()];
        w.blocked = true;
        w.full = full;
        w.stream = stream;
        w.depth = depth;
        waiting_++;
        for (;;) {
            // count this task as blocked in the current epoch: it has seen
            // every change so far and still cannot go on.  A change resets
            // the count, so a woken task that has not re-checked yet is never
            // taken for blocked (no false deadlock).
            if (w.epoch != epoch_) {
                w.epoch = epoch_;
                blocked_++;
            }
            w.size = size();
            check_deadlock_locked();
            if (deadlocked_) break;
            flush_locked();   // wake-ups this task deferred: it stops here
            cv_.wait(lk);
            if (deadlocked_ || ready()) break;
        }
        waiting_--;
        if (w.epoch == epoch_) blocked_--;
        w.epoch = -1;
        if (deadlocked_) {
            w.size = size();
            throw deadlock_unwind();   // w stays filled in for the report
        }
        w.blocked = false;
    }
    // after every push/pop (lock held): track occupancy, wake the waiters.
    // On a stream with a depth, the wake-up is deferred while the FIFO is
    // neither near empty after a pop nor near full after a push (the
    // producer that waits for space is woken once half the FIFO is free,
    // the consumer that waits for data once half is filled), and always
    // done before the changing task itself waits or ends (flush_locked).
    // A deferred wake-up delays a waiter, never loses it, and a task is
    // counted as blocked only after it re-checked every change, so the
    // deadlock verdict is the same; the values a region computes do not
    // depend on the schedule.  Per beat the producer and consumer of a
    // shallow FIFO no longer wake each other (a context switch each): the
    // prefill layer's weight FIFO (depth 4, 5 million beats) spent most of
    // its wall time there.
    void changed(const void *stream, const char *name, long size, long depth, bool popped)
    {
        occ_entry &e = occ_[stream];
        if (e.name.empty()) e.name = name;
        e.depth = depth;
        if (size > e.max_occ) e.max_occ = size;
        if (waiting_) {
            epoch_++;
            blocked_ = 0;
            bool defer = depth > 1 && (popped ? size > depth / 2 : size < (depth + 1) / 2);
            if (defer) {
                pending_ = true;
            } else {
                pending_ = false;
                cv_.notify_all();
            }
        }
    }
    // a task ends (lock held): nothing it deferred may stay asleep
    void flush_locked()
    {
        if (pending_) {
            pending_ = false;
            cv_.notify_all();
        }
    }

  private:
    struct task_t {
        std::string name;
        std::function<void()> fn;
    };
    struct wait_info {
        bool blocked = false, full = false;
        std::string stream;
        long size = 0, depth = 0, epoch = -1;
    };
    struct occ_entry {
        std::string name;
        long max_occ = 0, depth = 0;
    };
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
            cv_.notify_all();
        }
    }

    std::string name_;
    std::vector<task_t> tasks_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool pending_ = false;   // a wake-up deferred by changed()
    int live_ = 0, blocked_ = 0, waiting_ = 0;   // blocked_: waiting tasks counted this epoch
    long epoch_ = 0;                              // bumped by every stream change
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
