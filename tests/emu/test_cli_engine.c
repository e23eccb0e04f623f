/* flxemu ppl / generate with --engine emu (and the float engine on a .flxq):
 * the CLI wiring of the bit-exact engine, its scoring and the device time. */
#include "flx_emu.h"
#include "flx_perf.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"
#include "flx_synth.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

/* Runs a shell command; stdout into out (cap bytes), stderr into err_out;
 * returns the exit status. */
static int run(const char *cmd, char *out, size_t cap, char *err_out, size_t err_cap)
{
    char full[4 * 4096], errf[256];
    snprintf(errf, sizeof errf, "/tmp/flxemu-cli-engine-err-%d", (int)getpid());
    snprintf(full, sizeof full, "%s 2>%s", cmd, errf);
    FILE *p = popen(full, "r");
    cr_assert(p, "popen failed");
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    FILE *e = fopen(errf, "r");
    size_t m = e ? fread(err_out, 1, err_cap - 1, e) : 0;
    err_out[m] = '\0';
    if (e) fclose(e);
    remove(errf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out_buf[1 << 16], err_buf[1 << 16];

#define RUN(...)                                                                          \
    do {                                                                                  \
        char cmd_[3 * 4096 + 1024];                                                                  \
        snprintf(cmd_, sizeof cmd_, __VA_ARGS__);                                         \
        rc_ = run(cmd_, out_buf, sizeof out_buf, err_buf, sizeof err_buf);                \
    } while (0)

static double json_num(const char *path, const char *key)
{
    char *text;
    size_t bytes;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 20, &text, &bytes, &err), FLX_OK, "%s", err.msg);
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    char *at = strstr(text, pat);
    cr_assert(at, "%s: no %s in %s", path, key, text);
    double v = strtod(at + strlen(pat), NULL);
    free(text);
    return v;
}

/* A synthetic "tiny" model with d_ff = 128 (a power of two, as the online
 * R4 FHT needs), quantized with the flexllm recipe; plus a token file of
 * n_tokens pseudo-random byte ids. */
static char dir[256], flxq[512], toks[512];
static const int n_tokens = 200;

static void make_model(void)
{
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    char model_dir[512], calib[512];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    cr_assert_eq(mkdir(model_dir, 0755), 0);
    flx_llama_config cfg;
    flx_error err = {0};
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    cfg.d_ff = 128;
    cr_assert_eq(flx_synth_write_hf(model_dir, &cfg, 11, 0, NULL, &err), FLX_OK, "%s", err.msg);
    snprintf(calib, sizeof calib, "%s/calib.txt", dir);
    FILE *f = fopen(calib, "w");
    for (int i = 0; i < 60; i++)
        fprintf(f, "Line %d: the quick brown fox jumps over the lazy dog while bits flip.\n", i);
    fclose(f);
    snprintf(toks, sizeof toks, "%s/tokens.txt", dir);
    f = fopen(toks, "w");
    uint32_t s = 12345;
    for (int i = 0; i < n_tokens; i++) {
        s = s * 1103515245u + 12345u;
        fprintf(f, "%u\n", (s >> 16) % 256u);
    }
    fclose(f);
    snprintf(flxq, sizeof flxq, "%s/m.flxq", dir);
    int rc_;
    RUN("%s quantize --model %s --recipe flexllm --calib %s --nsamples 4 --seqlen 64 --out %s "
        "--threads 1",
        flx_test_bin(), model_dir, calib, flxq);
    cr_assert_eq(rc_, 0, "quantize failed: %s", err_buf);
}

/* Emu-engine ppl under hf: --threads 1 and 2 give the same bits, both
 * protocols print llama.cpp's lines, and the device time is positive. */
Test(cli_engine, emu_ppl_threads_protocols_device_time)
{
    make_model();
    int rc_;
    char j1[600], j2[600];
    snprintf(j1, sizeof j1, "%s/t1.json", dir);
    snprintf(j2, sizeof j2, "%s/t2.json", dir);
    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 32 --threads 1 --json %s", flx_test_bin(),
        flxq, toks, j1);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strstr(out_buf, "[1]") && strstr(out_buf, "[6]") && strstr(out_buf, "Final estimate: PPL = "),
              "%s", out_buf);
    cr_assert(strstr(out_buf, "engine emu: exp=glibc-expf"), "%s", out_buf);
    cr_assert(strstr(err_buf, "device: simulated U280 time (u280_mem_opt)"), "%s", err_buf);
    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 32 --threads 2 --json %s", flx_test_bin(),
        flxq, toks, j2);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    double p1 = json_num(j1, "ppl"), p2 = json_num(j2, "ppl");
    cr_assert(p1 > 1.0 && p1 < 1e4, "ppl %g", p1);
    cr_assert_eq(p1, p2, "threads 1: %.17g, threads 2: %.17g", p1, p2);
    cr_assert_eq(json_num(j1, "windows"), 6.0);
    double dev = json_num(j1, "device_seconds"), per = json_num(j1, "device_prefill_seconds_per_window");
    cr_assert(per > 0 && per < 1.0, "per window %g s", per);
    cr_assert(fabs(dev - 6.0 * per) <= 1e-8 * dev, "device %g vs 6 x %g", dev, per);

    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 32 --protocol llamacpp --exp flx --threads 2",
        flx_test_bin(), flxq, toks);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strstr(out_buf, "[1]") && strstr(out_buf, "Final estimate: PPL = "), "%s", out_buf);
    cr_assert(strstr(out_buf, "engine emu: exp=flx-exp"), "%s", out_buf);
}

/* A window over the U280's 1024-token prefill is emulated and reported;
 * the cycle model has no time for it (JSON null, reason on stderr). */
Test(cli_engine, emu_window_over_1024)
{
    make_model();
    char long_toks[600], j[600];
    snprintf(long_toks, sizeof long_toks, "%s/long.txt", dir);
    snprintf(j, sizeof j, "%s/l.json", dir);
    FILE *f = fopen(long_toks, "w");
    for (int i = 0; i < 1040; i++) fprintf(f, "%d\n", (i * 37 + 11) % 256);
    fclose(f);
    int rc_;
    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 1040 --threads 2 --json %s", flx_test_bin(),
        flxq, long_toks, j);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strstr(err_buf, "exceeds the U280's 1024-token prefill"), "%s", err_buf);
    cr_assert(strstr(err_buf, "device: simulated U280 time unavailable"), "%s", err_buf);
    double p = json_num(j, "ppl");
    cr_assert(p > 1.0 && p < 1e4, "%g", p);
    char *text;
    size_t bytes;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(j, 1 << 20, &text, &bytes, &err), FLX_OK);
    cr_assert(strstr(text, "\"device_seconds\": null") && strstr(text, "\"exceeds_u280_prefill\": true"),
              "%s", text);
    free(text);
}

typedef struct direct_ctx {
    int64_t n_vocab, n_ctx, w;
    const int32_t *stream;
    double sum_nll;
    int64_t rows;
} direct_ctx;

/* Independent scoring: log-softmax in double from the logits. */
static int direct_rows(void *ctx, int64_t row0, int64_t n_rows, const float *logits)
{
    direct_ctx *d = ctx;
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t r = row0 + i;
        if (r >= d->n_ctx - 1) continue;
        const float *l = logits + i * d->n_vocab;
        double mx = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < d->n_vocab; j++) mx = l[j] > mx ? l[j] : mx;
        for (int64_t j = 0; j < d->n_vocab; j++) s += exp((double)l[j] - mx);
        int32_t target = d->stream[d->w * d->n_ctx + r + 1];
        d->sum_nll += log(s) + mx - (double)l[target];
        d->rows++;
    }
    return 0;
}

/* The CLI's hf perplexity equals exp(mean of window means) computed here
 * from flx_emu_window_logits. */
Test(cli_engine, emu_ppl_equals_direct)
{
    make_model();
    int rc_;
    char j[600];
    snprintf(j, sizeof j, "%s/d.json", dir);
    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 32 --chunks 3 --threads 2 --json %s",
        flx_test_bin(), flxq, toks, j);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    double cli_ppl = json_num(j, "ppl");

    flx_error err = {0};
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_load(&qm, flxq, &err), FLX_OK, "%s", err.msg);
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_emu_engine e;
    cr_assert_eq(flx_emu_engine_init(&e, &qm, &o, 32, &err), FLX_OK, "%s", err.msg);
    int32_t *stream;
    int64_t n;
    cr_assert_eq(flx_tokens_read(toks, qm.cfg.n_vocab, &stream, &n, &err), FLX_OK);
    cr_assert_eq(n, n_tokens);
    flx_pool *pool = flx_pool_create(1);
    double sum_means = 0.0;
    for (int64_t w = 0; w < 3; w++) {
        direct_ctx d = {qm.cfg.n_vocab, 32, w, stream, 0.0, 0};
        cr_assert_eq(flx_emu_window_logits(&e, stream + w * 32, 32, direct_rows, &d, pool, &err),
                     FLX_OK, "%s", err.msg);
        cr_assert_eq(d.rows, 31);
        sum_means += d.sum_nll / 31.0;
    }
    double want = exp(sum_means / 3.0);
    cr_assert(fabs(cli_ppl - want) <= 1e-6 * want, "cli %.12g, direct %.12g", cli_ppl, want);
    flx_pool_free(pool);
    free(stream);
    flx_emu_engine_free(&e);
    flx_qmodel_free(&qm);
}

/* The float engine on the .flxq evaluates its fake-quant model: close to
 * the hardware number (same weights and activation formats), not equal. */
Test(cli_engine, float_ppl_on_flxq)
{
    make_model();
    int rc_;
    char jf[600], je[600];
    snprintf(jf, sizeof jf, "%s/f.json", dir);
    snprintf(je, sizeof je, "%s/e.json", dir);
    RUN("%s ppl --model %s --tokens %s --ctx 32 --json %s", flx_test_bin(), flxq, toks, jf);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strstr(out_buf, "Final estimate: PPL = "), "%s", out_buf);
    RUN("%s ppl --engine emu --model %s --tokens %s --ctx 32 --json %s", flx_test_bin(), flxq, toks, je);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    double pf = json_num(jf, "ppl"), pe = json_num(je, "ppl");
    cr_assert(pf > 1.0 && pf != pe && pe / pf > 0.5 && pe / pf < 2.0, "float %g, emu %g", pf, pe);
    /* a base saved by the float run scores the emu run (KL divergence) */
    char base[600];
    snprintf(base, sizeof base, "%s/base.kld", dir);
    RUN("%s ppl --model %s --tokens %s --ctx 32 --save-logits %s", flx_test_bin(), flxq, toks, base);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    RUN("%s ppl --engine emu --model %s --kl-base %s", flx_test_bin(), flxq, base);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strstr(out_buf, "Mean    KLD:"), "%s", out_buf);
}

/* Seeded generation on the engine is reproducible and reports device time. */
Test(cli_engine, emu_generate_seeded)
{
    make_model();
    int rc_;
    static char first[sizeof out_buf];
    RUN("%s generate --engine emu --model %s --prompt 'the fox' -n 12 --seed 5 --threads 2",
        flx_test_bin(), flxq);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert(strncmp(out_buf, "the fox", 7) == 0, "%s", out_buf);
    memcpy(first, out_buf, sizeof first);
    const char *d = strstr(err_buf, "device: simulated U280 time (u280_mem_opt) ");
    cr_assert(d, "%s", err_buf);
    double secs = strtod(d + strlen("device: simulated U280 time (u280_mem_opt) "), NULL);
    cr_assert(secs > 0 && secs < 10, "%g", secs);
    /* the same work priced directly by the cycle model: prefill of all
     * prompt tokens but the last, one decode step per new token */
    long long n_prompt = 0, n_new = 0;
    const char *g = strstr(err_buf, "generate: ");
    while (g && sscanf(g, "generate: %lld prompt + %lld new tokens", &n_prompt, &n_new) != 2)
        g = strstr(g + 1, "generate: ");
    cr_assert(n_prompt == 8 && n_new >= 1 && n_new <= 12, "%s", err_buf);   /* BOS + 7 bytes */
    flx_perf_config cfg;
    flx_error err = {0};
    cr_assert_eq(flx_perf_config_find("u280_mem_opt", NULL, &cfg, &err), FLX_OK, "%s", err.msg);
    double want, cyc, st;
    cr_assert_eq(flx_perf_prefill_seconds(&cfg, n_prompt - 1, &cyc, &want, &err), FLX_OK);
    for (long long t = 0; t < n_new; t++) {
        cr_assert_eq(flx_perf_decode_step_seconds(&cfg, n_prompt + t, &cyc, &st, &err), FLX_OK);
        want += st;
    }
    cr_assert(fabs(secs - want) <= 1e-6, "printed %.6f, cycle model %.6f", secs, want);
    RUN("%s generate --engine emu --model %s --prompt 'the fox' -n 12 --seed 5 --threads 1",
        flx_test_bin(), flxq);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    cr_assert_str_eq(out_buf, first);
    /* the float engine on the .flxq generates too */
    RUN("%s generate --model %s --prompt 'the fox' -n 4", flx_test_bin(), flxq);
    cr_assert_eq(rc_, 0, "%s", err_buf);
}

/* stories260K's d_ff 172 cannot go through the online R4 FHT: kept
 * unpadded (--pad-dff none), the engine refuses the .flxq (exit 1 with the
 * reason); bad combinations exit 2. */
Test(cli_engine, refusals_and_usage)
{
    /* flx_test_data returns a static buffer: copy each path at once */
    char gguf_c[4096], hf_c[4096];
    snprintf(gguf_c, sizeof gguf_c, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(hf_c, sizeof hf_c, "%s", flx_test_data("stories260K/hf"));
    const char *tmp = flx_test_tmpdir();
    char calib[512], sq[512];
    snprintf(calib, sizeof calib, "%s/calib.txt", tmp);
    snprintf(sq, sizeof sq, "%s/s.flxq", tmp);
    FILE *f = fopen(calib, "w");
    for (int i = 0; i < 40; i++) fprintf(f, "Once upon a time there was a little dog named Tim.\n");
    fclose(f);
    int rc_;
    RUN("%s quantize --model %s --recipe flexllm --calib %s --nsamples 2 --seqlen 64 --pad-dff none --out %s",
        flx_test_bin(), gguf_c, calib, sq);
    cr_assert_eq(rc_, 0, "%s", err_buf);
    RUN("%s ppl --engine emu --model %s --file %s --ctx 64", flx_test_bin(), sq, calib);
    cr_assert_eq(rc_, 1);
    cr_assert(strstr(err_buf, "d_ff 172 is not a power of two"), "%s", err_buf);
    RUN("%s generate --engine emu --model %s --prompt Once -n 3", flx_test_bin(), sq);
    cr_assert_eq(rc_, 1);
    cr_assert(strstr(err_buf, "d_ff 172 is not a power of two"), "%s", err_buf);
    /* not a .flxq */
    RUN("%s ppl --engine emu --model %s --file %s --ctx 64", flx_test_bin(), hf_c, calib);
    cr_assert_eq(rc_, 1);
    cr_assert(strstr(err_buf, "flxemu quantize --recipe flexllm"), "%s", err_buf);
    RUN("%s generate --engine emu --model %s -n 3", flx_test_bin(), hf_c);
    cr_assert_eq(rc_, 1);
    cr_assert(strstr(err_buf, "flxemu quantize --recipe flexllm"), "%s", err_buf);
    /* a damaged .flxq (cut in half): the reader's reason naming the file */
    char tq[600], *bytes;
    size_t n_bytes;
    flx_error terr = {0};
    snprintf(tq, sizeof tq, "%s/t.flxq", tmp);
    cr_assert_eq(flx_read_file(sq, (size_t)1 << 30, &bytes, &n_bytes, &terr), FLX_OK, "%s", terr.msg);
    FILE *tf = fopen(tq, "wb");
    cr_assert_not_null(tf);
    cr_assert_eq(fwrite(bytes, 1, n_bytes / 2, tf), n_bytes / 2);
    fclose(tf);
    free(bytes);
    RUN("%s ppl --engine emu --model %s --file %s --ctx 64", flx_test_bin(), tq, calib);
    cr_assert_eq(rc_, 1);
    cr_assert(strstr(err_buf, tq) && strstr(err_buf, "outside"), "%s", err_buf);
    cr_assert(!strstr(err_buf, "flxemu quantize"), "%s", err_buf);
    /* usage errors */
    RUN("%s ppl --engine gpu --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s ppl --ftz --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s ppl --engine emu --exp fast --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s ppl --engine emu", flx_test_bin());
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s ppl --engine emu --bf16-activations --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s generate --engine emu --temp 0.5 --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
    RUN("%s generate --exp flx --model %s", flx_test_bin(), sq);
    cr_assert_eq(rc_, 2, "%s", err_buf);
}
