/* Issue 10, defect 5: every build gives the same bits.  scripts/test.sh runs
 * this suite in the release build and in the -O0 ASan+UBSan build, each time
 * with FLXEMU_REF_BIN set to the *other* build's flxemu: golden vectors
 * written by one are checked by the other (every kernel, CRC32 of every
 * file), and quantized models, emu-engine and float log-probs are compared
 * byte for byte.  (A -O0 build crashed in the AVX2 quantizer clone, a TSan
 * build before main.)  Without FLXEMU_REF_BIN the program is compared with
 * itself, which still checks run-to-run determinism. */
#include "hard_util.h"
#include "flx_synth.h"

#include <sys/stat.h>

static const char *ref_bin(void)
{
    const char *r = getenv("FLXEMU_REF_BIN");
    return r && *r ? r : flx_test_bin();
}

static void same_bytes(const char *a, const char *b)
{
    flx_error e = {0};
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    cr_assert_eq(flx_read_file(a, (size_t)1 << 30, &x, &nx, &e), FLX_OK, "%s", e.msg);
    cr_assert_eq(flx_read_file(b, (size_t)1 << 30, &y, &ny, &e), FLX_OK, "%s", e.msg);
    cr_assert_gt(nx, 0);
    cr_assert(nx == ny && !memcmp(x, y, nx), "%s and %s differ (%zu and %zu bytes)", a, b, nx, ny);
    free(x), free(y);
}

Test(hard_builds, golden_written_by_one_build_checked_by_the_other)
{
    const char *dir = flx_test_tmpdir();
    const char *variants[] = {"", "--ftz --exp flx"};
    for (int v = 0; v < 2; v++) {
        char out[512];
        snprintf(out, sizeof out, "%s/g%d", dir, v);
        hard_run r = hard_sh("%s golden --kernel all %s --out %s", ref_bin(), variants[v], out);
        cr_assert_eq(r.status, 0, "%s", r.err);
        char res[600];
        snprintf(res, sizeof res, "%s/check.txt", dir);
        r = hard_sh("%s golden --check %s > %s", flx_test_bin(), out, res);
        cr_assert_eq(r.status, 0, "variant '%s': %d %s", variants[v], r.status, r.err);
        char *text = hard_slurp(res);
        cr_assert(text && strstr(text, "files match the emulator"), "%s", text ? text : "");
        free(text);
    }
}

Test(hard_builds, quantized_model_and_logits_same_bytes, .timeout = 600)
{
    const char *dir = flx_test_tmpdir();
    const char *bins[2] = {ref_bin(), flx_test_bin()};
    char model[512], calib[512], toks[512];
    snprintf(model, sizeof model, "%s/model", dir);
    snprintf(calib, sizeof calib, "%s/calib.txt", dir);
    snprintf(toks, sizeof toks, "%s/tokens.txt", dir);
    FILE *f = fopen(calib, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 40; i++) fprintf(f, "Line %d: a quick brown fox jumps over the lazy dog.\n", i);
    cr_assert_eq(fclose(f), 0);
    f = fopen(toks, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 160; i++) fprintf(f, "%d\n", (i * 37 + 11) % 256);
    cr_assert_eq(fclose(f), 0);
    /* the tiny shape with a power-of-two FFN, as the online R4 FHT needs */
    cr_assert_eq(mkdir(model, 0755), 0);
    flx_llama_config cfg;
    flx_error err = {0};
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    cfg.d_ff = 128;
    cr_assert_eq(flx_synth_write_hf(model, &cfg, 5, 0, NULL, &err), FLX_OK, "%s", err.msg);
    hard_run r;
    char q[2][600], emu[2][600], flt[2][600];
    for (int b = 0; b < 2; b++) {
        snprintf(q[b], sizeof q[b], "%s/m%d.flxq", dir, b);
        snprintf(emu[b], sizeof emu[b], "%s/emu%d.kld", dir, b);
        snprintf(flt[b], sizeof flt[b], "%s/float%d.kld", dir, b);
        r = hard_sh("%s quantize --model %s --recipe flexllm --calib %s --nsamples 2 --seqlen 32 "
                    "--threads 2 --out %s >/dev/null", bins[b], model, calib, q[b]);
        cr_assert_eq(r.status, 0, "build %d: %s", b, r.err);
        r = hard_sh("%s ppl --engine emu --model %s --tokens %s --ctx 32 --threads 2 --save-logits %s "
                    ">/dev/null", bins[b], q[0], toks, emu[b]);
        cr_assert_eq(r.status, 0, "build %d: %d %s", b, r.status, r.err);
        r = hard_sh("%s ppl --model %s --tokens %s --ctx 32 --threads 2 --save-logits %s >/dev/null",
                    bins[b], q[0], toks, flt[b]);
        cr_assert_eq(r.status, 0, "build %d: %d %s", b, r.status, r.err);
    }
    same_bytes(q[0], q[1]);
    same_bytes(emu[0], emu[1]);
    same_bytes(flt[0], flt[1]);
}
