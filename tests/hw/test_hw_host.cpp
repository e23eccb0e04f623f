// The host program (hw/host, flx_host) in C simulation: a model with
// Llama-3.2-1B's layer shape (2 layers, byte vocabulary padded to the head
// top's 1024 rows) quantized with the flexllm recipe, a 35-token prompt
// (prefill of 34 rows + 14 padding rows: one top_layer_prefill call per
// layer over all 48 rows, and again in chunks of 32 rows (calls at pos0 = 0
// and 32, the K/V caches carried between them); then decode steps through
// top_layer_decode and top_head_sample, the first at position 34, whose K
// group 32..63 the decode K register overwrites): the ids flx_host prints
// equal `flxemu generate --engine emu --reference-quirks --exp flx`'s.
#include "test_util.h"

#include "flx_core.h"
#include "flx_llama.h"
#include "flx_synth.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

TestSuite(hw_host, .timeout = 900);

static char dir[256], flxq[512], toks[512];
enum { N_PROMPT = 35 };   // 48 prefill rows: > 32, two chunks of 32

static std::string sh(const std::string &cmd, int *rc)
{
    static char out[1 << 16];
    *rc = flx_test_sh((cmd + " 2>&1").c_str(), out, sizeof out);
    return out;
}

static std::string slurp(const std::string &path)
{
    std::string s;
    FILE *f = fopen(path.c_str(), "rb");
    cr_assert(f, "cannot open %s", path.c_str());
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    fclose(f);
    return s;
}

// a synthetic checkpoint of cfg in DIR/model, quantized (flexllm) into
// DIR/m.flxq; returns the .flxq path
static std::string quantize_synth(const std::string &d, const flx_llama_config &cfg)
{
    std::string model_dir = d + "/model", calib = d + "/calib.txt", q = d + "/m.flxq";
    cr_assert_eq(mkdir(model_dir.c_str(), 0755), 0);
    flx_error err = {};
    cr_assert_eq(flx_synth_write_hf(model_dir.c_str(), &cfg, 5, 0, NULL, &err), FLX_OK, "%s", err.msg);
    FILE *f = fopen(calib.c_str(), "w");
    for (int i = 0; i < 20; i++) fprintf(f, "Line %d: the quick brown fox jumps over the lazy dog.\n", i);
    fclose(f);
    int rc;
    std::string o = sh(std::string(flx_test_bin()) + " quantize --model " + model_dir + " --recipe flexllm --calib " +
                           calib + " --nsamples 2 --seqlen 32 --threads 2 --out " + q,
                       &rc);
    cr_assert_eq(rc, 0, "quantize: %s", o.c_str());
    return q;
}

static void make_model(void)
{
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    flx_llama_config cfg;
    flx_error err = {};
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    cfg.d_model = 2048;   // the tops' layer shape; 2 layers, vocabulary 258
    cfg.n_heads = 32;
    cfg.n_kv_heads = 8;
    cfg.head_dim = 64;
    cfg.d_ff = 8192;
    snprintf(flxq, sizeof flxq, "%s", quantize_synth(dir, cfg).c_str());
    snprintf(toks, sizeof toks, "%s/prompt.txt", dir);
    FILE *f = fopen(toks, "w");
    for (int i = 0; i < N_PROMPT; i++) fprintf(f, "%d\n", "Once upon a time, in a quiet wood, a fox"[i]);
    fclose(f);
}

static const char *host_bin(void)
{
    const char *b = getenv("FLXEMU_HOST");
    if (!b || !*b) cr_assert_fail("FLXEMU_HOST is not set");
    return b;
}

Test(hw_host, csim_host_generates_the_emulators_tokens)
{
    make_model();
    const std::string d = dir;
    int rc;
    std::string o = sh(std::string(flx_test_bin()) + " generate --engine emu --reference-quirks --exp flx --model " +
                           flxq + " --tokens " + toks + " -n 3 --seed 7 --threads 2 --ids " + d + "/emu.txt",
                       &rc);
    cr_assert_eq(rc, 0, "generate: %s", o.c_str());
    std::string host = sh(std::string(host_bin()) + " --model " + flxq + " --tokens " + toks +
                              " -n 3 --seed 7 --ids " + d + "/host.txt",
                          &rc);
    cr_assert_eq(rc, 0, "flx_host: %s", host.c_str());
    std::string emu = slurp(d + "/emu.txt"), hw = slurp(d + "/host.txt");
    cr_expect_eq(std::count(emu.begin(), emu.end(), '\n'), N_PROMPT + 3, "35 prompt + 3 new ids: %s", emu.c_str());
    cr_expect(emu == hw, "flxemu generate:\n%s\nflx_host:\n%s", emu.c_str(), hw.c_str());
    // stdout holds the generated ids: the lines of --ids after the prompt's
    size_t p = 0;
    for (int i = 0; i < N_PROMPT; i++) p = emu.find('\n', p) + 1;
    cr_expect(host.find(emu.substr(p)) != std::string::npos, "stdout:\n%s\nexpected ids:\n%s", host.c_str(),
              emu.substr(p).c_str());
    // the prompt in two chunks (32 rows at pos0 = 0, 16 at 32): the same ids
    // (in the shim build's run only: FLXEMU_HOST_CHUNKED, tests/hw/meson.build)
    const char *chunked = getenv("FLXEMU_HOST_CHUNKED");
    cr_assert(chunked && (!strcmp(chunked, "0") || !strcmp(chunked, "1")), "FLXEMU_HOST_CHUNKED is not set");
    if (!strcmp(chunked, "1")) {
        host = sh(std::string(host_bin()) + " --model " + flxq + " --tokens " + toks +
                      " -n 3 --seed 7 --prefill-chunk 32 --ids " + d + "/chunks.txt",
                  &rc);
        cr_assert_eq(rc, 0, "flx_host --prefill-chunk 32: %s", host.c_str());
        hw = slurp(d + "/chunks.txt");
        cr_expect(emu == hw, "flxemu generate:\n%s\nflx_host --prefill-chunk 32:\n%s", emu.c_str(), hw.c_str());
    }
    // 2040 prompt tokens + 9 new exceed the caches' 2048 positions
    std::string long_toks = d + "/long.txt";
    FILE *f = fopen(long_toks.c_str(), "w");
    for (int i = 0; i < 2040; i++) fprintf(f, "%d\n", 65 + i % 26);
    fclose(f);
    o = sh(std::string(host_bin()) + " --model " + flxq + " --tokens " + long_toks + " -n 9", &rc);
    cr_expect_eq(rc, 1, "%s", o.c_str());
    cr_expect(o.find("2040 prompt + 9 new tokens exceed the decode caches' 2048 positions") != std::string::npos,
              "%s", o.c_str());
    o = sh("rm -rf " + d, &rc);   // the checkpoint and .flxq: half a gigabyte
}

Test(hw_host, refuses_what_the_tops_cannot_run)
{
    char d[256];
    snprintf(d, sizeof d, "%s", flx_test_tmpdir());
    flx_llama_config cfg;
    flx_error err = {};
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    cfg.d_ff = 128;   // a power of two: the engine's checks pass, the tops' shape does not
    std::string q = quantize_synth(d, cfg), t = std::string(d) + "/t.txt";
    int rc;
    FILE *f = fopen(t.c_str(), "w");
    fprintf(f, "1\n2\n3\n");
    fclose(f);
    std::string o = sh(std::string(host_bin()) + " --model " + q + " --tokens " + t + " -n 2", &rc);
    cr_expect_eq(rc, 1, "%s", o.c_str());
    cr_expect(o.find("d_model 64") != std::string::npos && o.find("Llama-3.2-1B's layer") != std::string::npos,
              "%s", o.c_str());
    o = sh(std::string(host_bin()) + " --model " + q + " --tokens " + t + " --backend gpu", &rc);
    cr_expect_eq(rc, 2, "%s", o.c_str());
    o = sh(std::string(host_bin()) + " --model " + q + " -n 2", &rc);
    cr_expect_eq(rc, 2, "%s", o.c_str());
    o = sh(std::string(host_bin()) + " --model " + q + " --tokens " + t + " --backend xrt", &rc);
    cr_expect_eq(rc, 2, "%s", o.c_str());
    cr_expect(o.find("--xclbin-prefill and --xclbin-decode") != std::string::npos, "%s", o.c_str());
    o = sh(std::string(host_bin()) + " --model " + q + " --tokens " + t + " --prefill-chunk 24", &rc);
    cr_expect_eq(rc, 2, "%s", o.c_str());
    cr_expect(o.find("--prefill-chunk expects a multiple of 16 in 16..2048, got 24") != std::string::npos, "%s",
              o.c_str());
    o = sh(std::string("rm -rf ") + d, &rc);
}
