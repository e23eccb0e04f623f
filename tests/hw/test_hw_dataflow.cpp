// Concurrent dataflow C simulation (hw/csim/flx_csim_dataflow.h): tasks on
// threads with blocking bounded-depth streams find a FIFO that is too
// shallow (deadlock, naming the full and empty streams), report the maximum
// occupancy per stream, and give the same bits as sequential csim.
#include "test_util.h"

#include "../../hw/tb/tb_kernels.h"
#include "../../hw/kernels/data_io.h"
#include "../../hw/tops/flx_tops_layer.h"

#include "flx_emu.h"

#include <sys/wait.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using hls::stream;
using hls::vector;

TestSuite(hw_dataflow);

// producer writes n values to a, then n to b; the consumer reads b first:
// a must hold all n, or both block (a full, b empty)
static void crossed(flx_csim::region &df, stream<int> &a, stream<int> &b, int n, long *sum)
{
    df.task("producer", [&a, &b, n] {
        for (int i = 0; i < n; i++) a.write(i);
        for (int i = 0; i < n; i++) b.write(100 + i);
    });
    df.task("consumer", [&a, &b, n, sum] {
        long s = 0;
        for (int i = 0; i < n; i++) s += b.read();
        for (int i = 0; i < n; i++) s += a.read();
        *sum = s;
    });
}

Test(hw_dataflow, shallow_fifo_deadlocks_and_names_the_streams)
{
    stream<int, 4> a("a"), b("b");
    long sum = 0;
    flx_csim::region df("crossed");
    crossed(df, a, b, 16, &sum);
    cr_assert(!df.run());
    cr_expect(df.deadlocked());
    bool full = false;
    cr_expect_eq(df.blocked_on("producer", &full), "a");
    cr_expect(full, "the producer waits on a full FIFO");
    cr_expect_eq(df.blocked_on("consumer", &full), "b");
    cr_expect(!full, "the consumer waits on an empty FIFO");
    std::string r = df.report();
    cr_expect(r.find("DEADLOCK") != std::string::npos, "%s", r.c_str());
    cr_expect(r.find("task 'producer' blocked writing stream 'a' (full: 4 of depth 4)") != std::string::npos,
              "%s", r.c_str());
    cr_expect(r.find("task 'consumer' blocked reading stream 'b' (empty: 0 of depth 4)") != std::string::npos,
              "%s", r.c_str());
    cr_expect_eq(df.max_occupancy("a"), 4);
    while (!a.empty()) a.read();
}

Test(hw_dataflow, deep_enough_fifo_completes_with_its_occupancy)
{
    stream<int, 16> a("a"), b("b");
    long sum = 0;
    flx_csim::region df("crossed");
    crossed(df, a, b, 16, &sum);
    cr_assert(df.run(), "%s", df.report().c_str());
    cr_expect_eq(sum, 120 + 16 * 100 + 120);
    cr_expect_eq(df.max_occupancy("a"), 16, "a holds all 16 values before the consumer reads it");
    cr_expect(df.report().find("stream 'a': max occupancy 16, depth 16") != std::string::npos, "%s",
              df.report().c_str());
    cr_expect(a.empty() && b.empty());
}

// Wake-ups are deferred while a FIFO is half full/empty (flx_csim_dataflow.h
// changed()): one item at a time in a request/reply ping-pong never reaches
// the half mark, so only the wake-up before a task waits can move it on.
// It must complete (no lost wake-up, no false deadlock).  A server that
// writes two extra replies is left blocked on the full depth-1 reply stream
// once the client is done: a deadlock, named.
Test(hw_dataflow, deferred_wakeups_are_never_lost)
{
    for (int ahead = 0; ahead <= 1; ahead++) {
        stream<int, 4> req("req");
        stream<int, 1> rep("rep");
        long sum = 0;
        const int n = 2000;
        flx_csim::region df("ping_pong");
        df.task("client", [&] {
            for (int i = 0; i < n; i++) {
                req.write(i);
                sum += rep.read();
            }
        });
        df.task("server", [&] {
            if (ahead) {   // two replies nobody asked for
                rep.write(-1);
                rep.write(-2);
            }
            for (int i = 0; i < n; i++) rep.write(2 * req.read());
        });
        if (!ahead) {
            cr_expect(df.run(), "%s", df.report().c_str());
            cr_expect_eq(sum, (long)n * (n - 1));
        } else {
            cr_expect(!df.run());
            cr_expect(df.deadlocked());
            cr_expect_eq(df.blocked_on("server"), "rep");
            while (!rep.empty()) rep.read();
            while (!req.empty()) req.read();
        }
    }
}

Test(hw_dataflow, underfilled_input_is_a_deadlock_not_a_hang)
{
    stream<int> in("in");
    stream<int, 2> mid("mid");
    stream<int> out("out");
    for (int i = 0; i < 5; i++) in.write(i);   // the task wants 8
    flx_csim::region df("underfilled");
    df.task("copy", [&] { for (int i = 0; i < 8; i++) mid.write(in.read()); });
    df.task("sink", [&] { for (int i = 0; i < 8; i++) out.write(mid.read()); });
    cr_assert(!df.run());
    bool full = true;
    cr_expect_eq(df.blocked_on("copy", &full), "in");
    cr_expect(!full);
    cr_expect_eq(df.blocked_on("sink", &full), "mid");
    cr_expect_eq(out.size(), 5u);
    while (!out.empty()) out.read();
}

// A real fork-join of the layer: x forks into RMSNorm (which must read all
// D beats before it emits one) and a bypass FIFO into the residual add.  The
// bypass needs D - 1 = 2047 entries; 64 deadlocks.
struct res8_cfg : flx_hls::residual_config {
    static const unsigned b = 8;
};

template <int BYPASS>
static void norm_residual(stream<vector<float, 8> > &x, stream<float> &gamma, stream<vector<float, 8> > &y)
{
    typedef flx_hls::rmsnorm_pref_config NC;
    stream<vector<float, 8>, 4> xa("xa");
    stream<vector<float, 8>, BYPASS> bypass("bypass");
    stream<vector<float, 8>, 4> h("norm_out");
    FLX_DATAFLOW_BEGIN(df, "norm_residual");
    FLX_TASK(df, "fork", for (unsigned k = 0; k < NC::d; k++) {
        vector<float, 8> v = x.read();
        xa.write(v);
        bypass.write(v);
    });
    FLX_TASK(df, "rmsnorm", flx_hls::rmsnorm_pref<NC>(xa, gamma, h, 1));
    FLX_TASK(df, "residual", flx_hls::residual<res8_cfg>(h, bypass, y, NC::d));
    FLX_DATAFLOW_END(df);
}

static void fill(stream<vector<float, 8> > &xs, stream<float> &gs, std::vector<float> &x, std::vector<float> &g)
{
    const unsigned D = 2048;
    flx_rng rng;
    flx_rng_seed(&rng, 5);
    x.resize(8 * D);
    g.resize(D);
    for (auto &v : x) v = (float)(flx_rng_uniform(&rng) * 4.0 - 2.0);
    for (auto &v : g) v = (float)(0.5 + flx_rng_uniform(&rng));
    for (unsigned k = 0; k < D; k++) {
        vector<float, 8> v;
        for (unsigned t = 0; t < 8; t++) v[t] = x[t * D + k];
        xs.write(v);
        gs.write(g[k]);
    }
}

Test(hw_dataflow, fork_join_bypass_depth_is_found_in_csim)
{
    const unsigned D = 2048;
    std::vector<float> x, g;
    stream<vector<float, 8> > xs("x"), y("y");
    stream<float> gs("gamma");
    fill(xs, gs, x, g);
    try {
        norm_residual<64>(xs, gs, y);
        cr_assert_fail("a 64-deep bypass must deadlock");
    } catch (const std::runtime_error &e) {
        std::string r = e.what();
        cr_expect(r.find("DEADLOCK") != std::string::npos, "%s", r.c_str());
        cr_expect(r.find("task 'fork' blocked writing stream 'bypass' (full: 64 of depth 64)") != std::string::npos,
                  "%s", r.c_str());
        cr_expect(r.find("task 'rmsnorm' blocked reading stream 'xa' (empty") != std::string::npos, "%s", r.c_str());
        cr_expect(r.find("task 'residual' blocked reading stream 'norm_out' (empty") != std::string::npos,
                  "%s", r.c_str());
    }
    while (!xs.empty()) xs.read();
    while (!gs.empty()) gs.read();
    while (!y.empty()) y.read();

    // D - 1 entries suffice: the fork writes xa before bypass
    fill(xs, gs, x, g);
    norm_residual<D - 1>(xs, gs, y);
    std::vector<float> want(8 * D), norm(8 * D);
    flx_emu_fp fp = {FLX_EMU_EXP_FLX, 0};
    flx_emu_rmsnorm_pref(norm.data(), x.data(), g.data(), 8, D, 1e-5f, &fp);
    flx_emu_residual(want.data(), norm.data(), x.data(), 8 * D, &fp);
    unsigned bad = 0;
    for (unsigned k = 0; k < D; k++) {
        vector<float, 8> v = y.read();
        for (unsigned t = 0; t < 8; t++) bad += std::memcmp(&v[t], &want[t * D + k], 4) != 0;
    }
    cr_expect_eq(bad, 0u, "concurrent csim gives the emulator's bits");
    cr_expect(y.empty() && xs.empty() && gs.empty());
}

// ------------------------------------------------ whole decode layer

static int run_cmd(const std::string &cmd)
{
    int st = std::system(cmd.c_str());
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

// top_layer_decode on `flxemu golden --layer decode` (U280 sizes, token at
// position 32 after a 32-token prefill): every intermediate of the set (norm
// outputs, Q/K/V before and after RoPE, Q8, scores, P, uint8 P, attention
// output, O, residual, gate, up, SiLU*up, FHT, down), the layer output and
// the new K/V cache rows bit for bit, the weights packed into the decode HBM
// layout and unpacked by the loaders, the loader || GEMV regions run
// concurrently
Test(hw_dataflow, decode_layer_top_matches_the_golden_layer, .timeout = 240)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/layer";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer decode --exp flx --out '" + dir +
                      "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_decode");
    cr_expect(r.ok, "%s", r.message.c_str());
    const unsigned D = 2048, KV = 512, F = 8192, H = 32, S = 33;
    const unsigned front = 4 * D + 3 * KV, back = 3 * H * S + 5 * D + 4 * F;
    cr_expect_eq(r.compared, front + back + D + 2 * KV, "%zu", r.compared);
    // one flipped bit of the expected output is found at its index
    std::string y = dir + "/layer_decode/y.npy";
    FILE *f = std::fopen(y.c_str(), "r+b");
    cr_assert(f);
    unsigned char h[10];
    cr_assert_eq(std::fread(h, 1, 10, f), 10u);
    long off = 10 + (h[8] | (long)h[9] << 8) + 4 * 1000;
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    int ch = std::fgetc(f);
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    std::fputc(ch ^ 1, f);
    std::fclose(f);
    r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_decode");
    cr_expect(!r.ok);
    cr_expect(r.message.find("y.npy: first mismatch at flat index 1000 of 2048") != std::string::npos, "%s",
              r.message.c_str());
    // negative control: a flipped bit in an intermediate (the scores) is the
    // first mismatch reported, by name, ahead of the output's
    std::string sc = dir + "/layer_decode/scores.npy";
    f = std::fopen(sc.c_str(), "r+b");
    cr_assert(f);
    cr_assert_eq(std::fread(h, 1, 10, f), 10u);
    off = 10 + (h[8] | (long)h[9] << 8) + 4 * 40 + 1;
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    ch = std::fgetc(f);
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    std::fputc(ch ^ 4, f);
    std::fclose(f);
    r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_decode");
    cr_expect(!r.ok);
    cr_expect(r.message.find("intermediate 'scores': ") == 0 &&
                  r.message.find("scores.npy: first mismatch at flat index 40 of 1056") != std::string::npos,
              "%s", r.message.c_str());
    run_cmd("rm -rf '" + dir + "'");
}

// a decode step at a later position (`--layer decode --pos0 96`): 96 prompt
// rows handed over, 97 keys (three whole 32-key words and one partial), the
// new cache rows at 96; every intermediate and the output
Test(hw_dataflow, decode_layer_top_at_position_96, .timeout = 240)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/dec96";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer decode --pos0 96 --exp flx --out '" +
                      dir + "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_decode");
    cr_expect(r.ok, "%s", r.message.c_str());
    const unsigned D = 2048, KV = 512, F = 8192, H = 32, S = 97;
    cr_expect_eq(r.compared, 4 * D + 3 * KV + 3 * H * S + 5 * D + 4 * F + D + 2 * KV, "%zu", r.compared);
    run_cmd("rm -rf '" + dir + "'");
}

// top_layer_prefill on `flxemu golden --layer prefill` (16 tokens, two token
// blocks, U280 sizes): every intermediate of the set (as for the decode
// layer, scores/P as [head][query][key]), the layer output and the K/V
// caches bit for bit, weights in the prefill HBM packing (each FFN matrix
// over three ports), the whole layer one concurrent dataflow region
Test(hw_dataflow, prefill_layer_top_matches_the_golden_layer, .timeout = 300)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/layer";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer prefill --exp flx --out '" + dir +
                      "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_prefill");
    cr_expect(r.ok, "%s", r.message.c_str());
    const unsigned T = 16, D = 2048, KV = 512, F = 8192, H = 32, S = 16;
    const unsigned front = T * (4 * D + 3 * KV), back = 3 * H * T * S + T * (5 * D + 4 * F);
    cr_expect_eq(r.compared, front + back + T * D + 2 * T * KV, "%zu", r.compared);
    run_cmd("rm -rf '" + dir + "'");
}

// The prefill layer's region with one FIFO too shallow: a deadlock named in
// the report, found in seconds (the values do not matter: all-zero weights
// and inputs of the U280 shapes, one 16-token chunk).
template <class C>
static std::string run_prefill_layer_zero()
{
    typedef flx_tops::pref_word pw;
    typedef flx_tops::pref_ffn_word fw;
    typedef flx_tops::layer_prefill_map M;
    const unsigned T = 16, D = 2048, KV = 512, F = 8192;
    std::vector<float> io(2 * (size_t)T * D, 0.0f), gamma(2 * D, 1.0f), att(128, 0.01f),
        rope(2 * 2048 * 32, 0.0f);
    std::vector<pw> kq(M::words(KV, D) + M::words(D, D)), vo(kq.size());
    std::vector<fw> g[3], u[3], dn[3];
    for (int i = 0; i < 3; i++) {
        g[i].resize(M::ffn_words(F, D));
        u[i].resize(M::ffn_words(F, D));
        dn[i].resize(M::ffn_words(D, F));
    }
    std::vector<float> s_qkvo(2 * (KV + D), 0.0f), s_f(2 * F, 0.0f), s_d(2 * D, 0.0f);
    std::vector<ap_int<8> > kc((size_t)T * KV), vc((size_t)T * KV);
    try {
        flx_hls::decoder_layer_pref<C>(io.data(), gamma.data(), att.data(), rope.data(), kq.data(), s_qkvo.data(),
                                       vo.data(), s_qkvo.data(), g[0].data(), g[1].data(), g[2].data(), s_f.data(),
                                       u[0].data(), u[1].data(), u[2].data(), s_f.data(), dn[0].data(),
                                       dn[1].data(), dn[2].data(), s_d.data(), kc.data(), vc.data(), T / 8, 0);
    } catch (const std::runtime_error &e) {
        return e.what();
    }
    return "";
}

// the residual bypass of the layer input: RMSNorm reads a whole token block
// (2048 beats) before it emits one, so the x loader must be able to put the
// block's 2047 first beats into x_res; at 1024 the region deadlocks right
// after the K/V pass.  By then both cache managers have stored every row of
// the chunk (the barrier) and wait, full, on their outputs to QK^T and A.V.
struct pref_short_x_res : flx_tops::layer_prefill_cfg {
    static const unsigned x_res_depth = 1024;
};
// the residual bypass of r0 into the FFN's residual: likewise >= 2047; at
// 1024 the region deadlocks once the first block's attention output (the
// Q pass after both barriers) reaches the second RMSNorm
struct pref_short_r0_res : flx_tops::layer_prefill_cfg {
    static const unsigned r0_res_depth = 1024;
};

Test(hw_dataflow, prefill_layer_shallow_fifo_deadlock_is_named, .timeout = 120)
{
    std::string r = run_prefill_layer_zero<pref_short_x_res>();
    cr_expect(r.find("dataflow 'decoder_layer_pref': DEADLOCK") == 0, "%s", r.c_str());
    cr_expect(r.find("task 'x_loader' blocked writing stream 'x_res' (full: 1024 of depth 1024)") !=
                  std::string::npos, "%s", r.c_str());
    cr_expect(r.find("task 'rmsnorm_attn' blocked reading stream 'x' (empty: 0 of depth 32)") != std::string::npos,
              "%s", r.c_str());
    cr_expect(r.find("task 'k_cache' blocked writing stream 'keys' (full: 32 of depth 32)") != std::string::npos,
              "%s", r.c_str());
    cr_expect(r.find("task 'v_cache' blocked writing stream 'values' (full: 32 of depth 32)") != std::string::npos,
              "%s", r.c_str());
    cr_expect(r.find("task 'y_drainer' blocked reading stream 'y' (empty") != std::string::npos, "%s", r.c_str());
    cr_expect(r.find("stream 'x_res': max occupancy 1024, depth 1024") != std::string::npos, "%s", r.c_str());

    r = run_prefill_layer_zero<pref_short_r0_res>();
    cr_expect(r.find("dataflow 'decoder_layer_pref': DEADLOCK") == 0, "%s", r.c_str());
    cr_expect(r.find("task 'r0_fork' blocked writing stream 'r0_res' (full: 1024 of depth 1024)") !=
                  std::string::npos, "%s", r.c_str());
    cr_expect(r.find("task 'rmsnorm_ffn' blocked reading stream 'r0_ln' (empty") != std::string::npos, "%s",
              r.c_str());
    cr_expect(r.find("task 'k_cache' finished") != std::string::npos, "%s", r.c_str());
    cr_expect(r.find("stream 'r0_res': max occupancy 1024, depth 1024") != std::string::npos, "%s", r.c_str());
}

// the values a prefill call's check compares: T rows at pos0 attending
// S = pos0 + T keys, plus the preloaded cache rows (kept unchanged)
static size_t prefill_compared(unsigned T, unsigned S, unsigned pos0)
{
    const unsigned D = 2048, KV = 512, F = 8192, H = 32;
    const size_t front = T * (4 * D + 3 * KV), back = 3 * (size_t)H * T * S + T * (5 * D + 4 * F);
    return front + back + T * D + 2 * T * KV + 2 * (size_t)pos0 * KV;
}

// the second 16-row call (`--pos0 16`): the caches preloaded with the first
// call's rows 0..15 from the set, the top at pos0 = 16 over 32 keys; every
// intermediate, the new cache rows, the untouched earlier rows and the output
Test(hw_dataflow, prefill_layer_top_at_pos0_16_matches_the_golden_call, .timeout = 300)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/call2";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer prefill --pos0 16 --exp flx --out '" +
                      dir + "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_prefill");
    cr_expect(r.ok, "%s", r.message.c_str());
    cr_expect_eq(r.compared, prefill_compared(16, 32, 16), "%zu", r.compared);
    run_cmd("rm -rf '" + dir + "'");
}

#if FLX_HLS_SHIM
// (shim build only: the same top under both headers; the one-call golden
// sets above run under both)
// one chunk of several token blocks after an earlier call: 20 tokens + 12
// zero rows (32 rows, 4 blocks) at pos0 = 16 over 48 keys, one call of the
// top's dataflow region
Test(hw_dataflow, prefill_layer_top_multi_block_chunk_at_pos0_16, .timeout = 300)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/chunk";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer prefill --pos0 16 --n-tokens 20 " +
                      "--exp flx --out '" + dir + "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_prefill");
    cr_expect(r.ok, "%s", r.message.c_str());
    cr_expect_eq(r.compared, prefill_compared(32, 48, 16), "%zu", r.compared);
    run_cmd("rm -rf '" + dir + "'");
}

// (shim build only: the testbench logic is the same under both headers)
// a padded last call (13 tokens + 3 zero rows at pos0 = 32, after two
// earlier calls); then the negative control: one flipped bit in a preloaded
// K cache row changes what the top computes, and the first mismatch is
// reported by name (the scores), with the file's CRC note
Test(hw_dataflow, prefill_layer_top_padded_call_and_a_corrupted_cache_row, .timeout = 300)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/call3";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer prefill --pos0 32 --n-tokens 13 " +
                      "--exp flx --out '" + dir + "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_prefill");
    cr_expect(r.ok, "%s", r.message.c_str());
    cr_expect_eq(r.compared, prefill_compared(16, 48, 32), "%zu", r.compared);
    std::string kc = dir + "/layer_prefill/k8_cache.npy";
    FILE *f = std::fopen(kc.c_str(), "r+b");
    cr_assert(f);
    unsigned char h[10];
    cr_assert_eq(std::fread(h, 1, 10, f), 10u);
    long off = 10 + (h[8] | (long)h[9] << 8) + 7 * 512 + 100;   // row 7, KV head 1, dim 36
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    int ch = std::fgetc(f);
    cr_assert_eq(std::fseek(f, off, SEEK_SET), 0);
    std::fputc(ch ^ 16, f);
    std::fclose(f);
    r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_prefill");
    cr_expect(!r.ok);
    cr_expect(r.message.find("intermediate 'scores': ") == 0 &&
                  r.message.find("scores.npy: first mismatch at flat index") != std::string::npos,
              "%s", r.message.c_str());
    bool noted = false;
    for (const std::string &n : r.notes) noted = noted || n.find("k8_cache.npy: CRC32") != std::string::npos;
    cr_expect(noted, "no CRC note for the edited cache file");
    run_cmd("rm -rf '" + dir + "'");
}
#endif

// the tiny whole model (`flxemu golden --layer model`): two decode layers
// through top_layer_decode (per-layer K registers), then top_head_sample:
// last hidden state, logits, top-5 ids and probabilities, the sampled token
// and its embedding row, bit for bit (5,131 values)
Test(hw_dataflow, tiny_model_decode_step_matches_the_golden_model, .timeout = 300)
{
    std::string dir = std::string(flx_test_tmpdir()) + "/model";
    std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer model --exp flx --out '" + dir +
                      "' 2>/dev/null";
    cr_assert_eq(run_cmd(cmd), 0, "%s", cmd.c_str());
    flx_tb::kernel_result r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "model_decode");
    cr_expect(r.ok, "%s", r.message.c_str());
    cr_expect_eq(r.compared, 2048u + 1024u + 5u + 5u + 1u + 2048u);
    run_cmd("rm -rf '" + dir + "'");
}

// ------------------------------------------------------- data movers

// dec_io_buffer: 8 -> 16 lanes, emitted twice: lane j beat k = element j*(n/16) + k
Test(hw_dataflow, dec_io_buffer_repartitions_and_repeats)
{
    const unsigned N = 2048;
    stream<vector<float, 8> > in("in");
    stream<vector<float, 16> > out("out");
    for (unsigned k = 0; k < N / 8; k++) {
        vector<float, 8> v;
        for (unsigned i = 0; i < 8; i++) v[i] = (float)(i * (N / 8) + k);
        in.write(v);
    }
    flx_hls::dec_io_buffer<float, 8, 16, 8192>(in, out, N, 2);
    unsigned bad = 0;
    for (unsigned r = 0; r < 2; r++)
        for (unsigned k = 0; k < N / 16; k++) {
            vector<float, 16> v = out.read();
            for (unsigned j = 0; j < 16; j++) bad += v[j] != (float)(j * (N / 16) + k);
        }
    cr_expect_eq(bad, 0u);
    cr_expect(out.empty() && in.empty());
}

// the decode K-cache update: with quirks, the first step after a 35-token
// prompt (pos 35) writes the whole 32-slot group back, so prompt keys 32..34
// become the register's zeros (reference-design §6.2, as the emulator's --reference-quirks);
// without, only row 35 changes
Test(hw_dataflow, k_cache_update_group_overwrite_behind_quirks)
{
    const unsigned KV = 512, CAP = 64;
    for (int quirks = 0; quirks < 2; quirks++) {
        std::vector<ap_int<8> > cache((size_t)CAP * KV);
        for (size_t i = 0; i < cache.size(); i++) cache[i] = (int)(i % 50) + 1;   // prompt keys, never 0
        std::unique_ptr<ap_int<8>[][512]> reg(new ap_int<8>[32][512]);
        for (unsigned s = 0; s < 32; s++)
            for (unsigned d = 0; d < KV; d++) reg[s][d] = 0;   // the static register at power-up
        ap_int<8> k_new[512];
        for (unsigned d = 0; d < KV; d++) k_new[d] = (int)(d % 13) + 1;
        std::vector<ap_int<8> > before = cache;
        flx_hls::dec_k_cache_update<512>(k_new, reg.get(), cache.data(), 35, CAP, quirks != 0);
        unsigned changed_prompt = 0, bad_new = 0, changed_other = 0;
        for (unsigned row = 0; row < CAP; row++)
            for (unsigned d = 0; d < KV; d++) {
                size_t i = (size_t)row * KV + d;
                if (row == 35) bad_new += cache[i] != k_new[d];
                else if (row >= 32 && row < 35) changed_prompt += cache[i] != before[i];
                else if (row < 32 || !quirks) changed_other += cache[i] != before[i];
            }
        cr_expect_eq(bad_new, 0u);
        cr_expect_eq(changed_prompt, quirks ? 3u * KV : 0u, "quirks %d", quirks);
        cr_expect_eq(changed_other, 0u, "quirks %d", quirks);
    }
}
