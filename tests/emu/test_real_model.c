/* The emulator on a quantized file made by `flxemu quantize` from the shared
 * tiny-llama3-random model (exact Llama-3.2 structure, 128256-token vocab):
 * the engine accepts what the producer writes, and its W4A4 logits track the
 * fake-quant float model of the same file. */
#include "flx_emu.h"
#include "flx_llama.h"
#include "flx_qmodel.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 64 };

Test(emu_real, tiny_llama3_flexllm_file_runs_and_tracks_fake_quant, .timeout = 120)
{
    const char *model = flx_test_data("tiny-llama3-random/config.json");
    char mdir[4096];
    snprintf(mdir, sizeof mdir, "%s", model);
    *strrchr(mdir, '/') = 0;
    const char *calib = flx_test_data("tinystories/tinystories_val_first_stories.txt");
    const char *tmp = flx_test_tmpdir();
    char cmd[16384], path[512];
    snprintf(path, sizeof path, "%s/t.flxq", tmp);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe flexllm --rotate hadamard --calib %s "
             "--nsamples 4 --seqlen 128 --out %s --threads 1 --no-progress >/dev/null 2>&1",
             flx_test_bin(), mdir, calib, path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);

    flx_error err = { 0 };
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_load(&qm, path, &err), FLX_OK, "%s", err.msg);
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_emu_engine e;
    cr_assert_eq(flx_emu_engine_init(&e, &qm, &o, 256, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(e.n_vocab_pad, 131072);
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 7919 + 13) % 128000);
    float *hid = malloc((size_t)N * qm.cfg.d_model * sizeof(float));
    float *le = malloc((size_t)N * 128256 * sizeof(float));
    float *lf = malloc((size_t)N * 128256 * sizeof(float));
    cr_assert_eq(flx_emu_prefill(&e, hid, NULL, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_head(&e, le, hid, N, NULL, &err), FLX_OK, "%s", err.msg);

    /* the fake-quant float model of the same file */
    flx_model fm;
    flx_fakequant *fq = NULL;
    cr_assert_eq(flx_fakequant_open(&fq, &fm, path, &err), FLX_OK, "%s", err.msg);
    flx_llama_opts lo = { 1, 0, N, N, 0, &fq->hooks, 0 };
    flx_llama_state st;
    cr_assert_eq(flx_llama_init(&st, &fm, &lo, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&st, toks, N, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_logits(&st, 0, N, lf, &err), FLX_OK, "%s", err.msg);

    double num = 0, den = 0;
    int same_top = 0;
    for (int t = 0; t < N; t++) {
        const float *a = le + (size_t)t * 128256, *b = lf + (size_t)t * 128256;
        double ma = 0, mb = 0;
        for (int v = 0; v < 128256; v++) { ma += a[v]; mb += b[v]; }
        ma /= 128256; mb /= 128256;
        for (int v = 0; v < 128256; v++) {
            cr_assert(isfinite(a[v]));
            num += (a[v] - ma - (b[v] - mb)) * (a[v] - ma - (b[v] - mb));
            den += (b[v] - mb) * (b[v] - mb);
        }
        same_top += flx_argmax(a, 128256) == flx_argmax(b, 128256);
    }
    double rel = sqrt(num / den);
    cr_log_info("tiny-llama3-random flexllm: emulator vs fake-quant logits, relative RMS "
                "difference %.4f, same argmax %d/%d", rel, same_top, N);
    cr_assert_lt(rel, 0.5, "relative RMS difference %.4f", rel);
    cr_assert_gt(rel, 0.0);          /* P quantization and rounding differ: not identical */

    flx_llama_free(&st);
    flx_model_free(&fm);
    flx_fakequant_close(fq);
    free(hid); free(le); free(lf);
    flx_emu_engine_free(&e);
    flx_qmodel_free(&qm);
}
