/* bench_quant -- quantization benchmarks (results in bench/README.md):
 *
 *   bench_quant rtn [--threads N]
 *       RTN quantization (recipe flexllm's weight path: W4 per channel
 *       + wsum, INT4 head) of a synthetic Llama-3.2-1B built in memory.
 *       Target: under 60 s.
 *   bench_quant ppl DATA_DIR FLXEMU_BIN [--threads N]
 *       Perplexity of stories260K (GGUF) on TinyStories text under the
 *       recipes fp, flexllm, w4a16, w8a8 and w4a4kv4-spinquant, each
 *       without rotation and with SpinQuant rotations (R1/R2 random
 *       Hadamard, R4 dense random since d_ff = 172, R3 when kv < 16),
 *       through the real command (`flxemu quantize`) and the fake-quant
 *       float model.  The text is split: the first 60% of its bytes is the
 *       evaluation text (its first 100 windows of 256 tokens are scored),
 *       the rest the calibration text (never evaluated).
 */
#include "flx_llama.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"
#include "flx_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int die(const flx_error *e)
{
    fprintf(stderr, "bench_quant: %s\n", e->msg);
    return 1;
}

static int bench_rtn(int threads)
{
    flx_error err = {0};
    flx_llama_config cfg;
    flx_model m = {0};
    double t0 = flx_now_seconds();
    if (flx_synth_config("llama-3.2-1b", &cfg, &err) || flx_synth_build(&m, &cfg, 1, &err)) return die(&err);
    double t1 = flx_now_seconds();
    flx_recipe r;
    if (flx_recipe_parse(&r, "flexllm", &err)) return die(&err);
    flx_attn_scales *sc = calloc((size_t)cfg.n_layers, sizeof *sc);
    for (int l = 0; l < cfg.n_layers; l++) sc[l] = (flx_attn_scales){0.015f, 0.15f, 0.01f, 1.0f / 255};
    flx_pool *pool = flx_pool_create(threads);
    flx_qbuild b = {0};
    b.recipe = &r;
    b.scales = sc;
    b.pool = pool;
    b.source = "synthetic";
    flx_qmodel qm;
    if (flx_qmodel_build(&qm, &m, &b, &err)) return die(&err);
    double t2 = flx_now_seconds();
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_quant_%d.flxq", (int)getpid());
    if (flx_qmodel_save(&qm, path, &err)) return die(&err);
    double t3 = flx_now_seconds();
    printf("rtn: synthetic llama-3.2-1b, recipe flexllm (W4 per channel + wsum, INT4 head), %d threads\n",
           flx_pool_threads(pool));
    printf("  build model %.2f s, RTN quantize %.2f s, write .flxq %.2f s\n", t1 - t0, t2 - t1, t3 - t2);
    remove(path);
    flx_qmodel_free(&qm);
    flx_pool_free(pool);
    free(sc);
    flx_model_free(&m);
    return 0;
}

static int write_part(const char *path, const char *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(data, 1, bytes, f);
    fclose(f);
    return n == bytes ? 0 : -1;
}

static int ppl_of(flx_model *m, const flx_llama_hooks *hooks, const int32_t *ids, int64_t n_ids,
                  int threads, double *ppl, flx_error *err)
{
    flx_ppl_opts o = {0};
    o.protocol = FLX_PPL_HF;
    o.n_ctx = 256;
    o.max_windows = 100;   /* 25,600 tokens: enough to rank recipes, minutes not hours */
    o.bos_id = -1;
    o.llama.n_threads = threads;
    o.llama.hooks = hooks;
    flx_ppl_result res = {0};
    int rc = flx_ppl_run(m, ids, n_ids, &o, &res, err);
    if (rc == FLX_OK) *ppl = res.ppl;
    flx_ppl_result_free(&res);
    return rc;
}

static int bench_ppl(const char *data_dir, const char *bin, int threads)
{
    flx_error err = {0};
    char model[1024], textp[1024], evalp[256], calibp[256], outp[256];
    snprintf(model, sizeof model, "%s/stories260K/stories260K.gguf", data_dir);
    snprintf(textp, sizeof textp, "%s/tinystories/tinystories_val_first_stories.txt", data_dir);
    snprintf(evalp, sizeof evalp, "/tmp/bench_quant_eval_%d.txt", (int)getpid());
    snprintf(calibp, sizeof calibp, "/tmp/bench_quant_calib_%d.txt", (int)getpid());
    snprintf(outp, sizeof outp, "/tmp/bench_quant_%d.flxq", (int)getpid());
    char *text = NULL;
    size_t bytes = 0;
    if (flx_read_file(textp, (size_t)1 << 28, &text, &bytes, &err)) return die(&err);
    size_t cut = bytes * 6 / 10;
    while (cut < bytes && text[cut] != '\n') cut++;
    if (write_part(evalp, text, cut) || write_part(calibp, text + cut, bytes - cut)) {
        fprintf(stderr, "bench_quant: cannot write /tmp files\n");
        return 1;
    }
    flx_model base = {0};
    if (flx_model_load(&base, model, &err)) return die(&err);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (flx_tokenizer_encode(base.tok, text, cut, 0, 0, &ids, &n_ids, &err)) return die(&err);
    double p_float;
    if (ppl_of(&base, NULL, ids, (int64_t)n_ids, threads, &p_float, &err)) return die(&err);
    printf("ppl: stories260K (GGUF), TinyStories first 60%% (%zu tokens), first 100 windows of 256, hf protocol\n",
           n_ids);
    printf("  %-28s %-8s %10s\n", "recipe", "rotate", "PPL");
    printf("  %-28s %-8s %10.4f\n", "float model (no quantize)", "-", p_float);
    const char *recipes[] = {"fp", "flexllm", "w4a16", "w8a8", "w4a4kv4-spinquant"};
    const char *rots[] = {"none", "hadamard"};
    for (int gptq = 0; gptq < 2; gptq++)
        for (size_t ri = 0; ri < sizeof recipes / sizeof recipes[0]; ri++)
            for (int k = 0; k < 2; k++) {
                if (gptq && (ri == 0 || ri == 3)) continue;   /* fp has no weights to GPTQ; w8 needs none */
                char cmd[4096];
                snprintf(cmd, sizeof cmd,
                         "%s quantize --model %s --recipe %s --rotate %s --seed 0 --calib %s "
                         "--nsamples 32 --seqlen 256 --threads %d %s--no-progress --out %s 2>/dev/null",
                         bin, model, recipes[ri], rots[k], calibp, threads, gptq ? "--gptq " : "", outp);
                double t0 = flx_now_seconds();
                int st = system(cmd);
                double t1 = flx_now_seconds();
                if (st != 0) {
                    printf("  %-28s %-8s failed (%s)\n", recipes[ri], rots[k], cmd);
                    continue;
                }
                flx_model fm = {0};
                flx_fakequant *fq = NULL;
                double p;
                if (flx_fakequant_open(&fq, &fm, outp, &err) ||
                    ppl_of(&fm, &fq->hooks, ids, (int64_t)n_ids, threads, &p, &err))
                    return die(&err);
                char label[64];
                snprintf(label, sizeof label, "%s%s", recipes[ri], gptq ? " +gptq" : "");
                printf("  %-28s %-8s %10.4f   (quantize %.1f s)\n", label, rots[k], p, t1 - t0);
                fflush(stdout);
                flx_model_free(&fm);
                flx_fakequant_close(fq);
            }
    remove(evalp);
    remove(calibp);
    remove(outp);
    free(ids);
    free(text);
    flx_model_free(&base);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    if (argc >= 2 && !strcmp(argv[1], "rtn")) return bench_rtn(threads);
    if (argc >= 4 && !strcmp(argv[1], "ppl")) return bench_ppl(argv[2], argv[3], threads > 0 ? threads : 2);
    fprintf(stderr, "usage: bench_quant rtn [--threads N]\n"
                    "       bench_quant ppl DATA_DIR FLXEMU_BIN [--threads N]\n");
    return 2;
}
