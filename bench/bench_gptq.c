/* bench_gptq -- time and peak memory of SpinQuant rotation + sequential GPTQ
 * (W4 per channel, block 128, damping 0.01) on a synthetic model, e.g.
 * Llama-3.2-1B with 32 x 2048 calibration tokens (issue 3, item 8).
 *
 *   bench_gptq [--shape llama-3.2-1b|tiny] [--layers N] [--nsamples 32]
 *              [--seqlen 2048] [--threads 2] [--rotate none|hadamard] [--scales]
 *              [--keep-weights]
 *
 * Like `flxemu quantize`, the sink keeps each linear's int8 codes and each
 * finished layer's float weights are released (--keep-weights: not), which
 * also lets GPTQ keep SwiGLU products between passes (opts.keep_bytes).
 *
 * --layers N keeps only the first N decoder layers (same widths), to
 * measure a per-layer cost when the whole model would take too long. */
#include "flx_calib.h"
#include "flx_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double peak_rss_gib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);   /* ru_maxrss is KiB on Linux */
}

/* Keeps every linear's codes as int8, as `flxemu quantize` does, so the
 * peak memory is the command's. */
typedef struct sink_t { int n; double t0; int8_t *codes[1024]; } sink_t;

static int sink(void *ctx, int layer, flx_linear_id id, int32_t n_out, int32_t n_in, const flx_wq_out *q,
                const float *w_hat, flx_error *err)
{
    sink_t *s = ctx;
    size_t n = (size_t)n_out * n_in;
    if (s->n >= 1024 || !(s->codes[s->n] = malloc(n))) return flx_fail(err, FLX_ENOMEM, "bench: codes");
    for (size_t i = 0; i < n; i++) s->codes[s->n][i] = (int8_t)q->q[i];
    s->n++;
    if (id == FLX_W_DOWN)
        fprintf(stderr, "\nlayer %d done at %.1f s, peak RSS %.2f GiB\n", layer, flx_now_seconds() - s->t0,
                peak_rss_gib());
    return FLX_OK;
}

int main(int argc, char **argv)
{
    const char *shape = "llama-3.2-1b", *rot = "hadamard";
    int layers = 0, threads = 2, scales = 0, keep_weights = 0;
    long nsamples = 32, seqlen = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shape") && v) { shape = v; i++; }
        else if (!strcmp(a, "--layers") && v) { layers = atoi(v); i++; }
        else if (!strcmp(a, "--nsamples") && v) { nsamples = atol(v); i++; }
        else if (!strcmp(a, "--seqlen") && v) { seqlen = atol(v); i++; }
        else if (!strcmp(a, "--threads") && v) { threads = atoi(v); i++; }
        else if (!strcmp(a, "--rotate") && v) { rot = v; i++; }
        else if (!strcmp(a, "--scales")) scales = 1;
        else if (!strcmp(a, "--keep-weights")) keep_weights = 1;
        else {
            fprintf(stderr, "usage: bench_gptq [--shape S] [--layers N] [--nsamples N] [--seqlen L] [--threads T]\n"
                            "                  [--rotate none|hadamard] [--scales] [--keep-weights]\n");
            return 2;
        }
    }
    flx_error err = { 0 };
    flx_llama_config cfg;
    if (flx_synth_config(shape, &cfg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (layers > 0 && layers < cfg.n_layers) cfg.n_layers = layers;
    double t0 = flx_now_seconds();
    flx_model m;
    if (flx_synth_build(&m, &cfg, 1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double t_synth = flx_now_seconds() - t0;

    flx_rotation_set rs;
    int do_rot = strcmp(rot, "none") != 0;
    t0 = flx_now_seconds();
    if (flx_rotset_generate(&rs, &m.cfg, do_rot ? FLX_ROT_HADAMARD : FLX_ROT_NONE, 0, do_rot, 0, &err) ||
        (do_rot && flx_spinquant_apply(&m, &rs, NULL, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t_rot = flx_now_seconds() - t0;

    /* calibration ids: seeded random tokens (the synthetic model has no text) */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)nsamples * (size_t)seqlen);
    flx_rng r;
    flx_rng_seed(&r, 7);
    for (long i = 0; i < nsamples * seqlen; i++) ids[i] = (int32_t)(flx_rng_u64(&r) % (uint64_t)cfg.n_vocab);
    flx_calib_data cd;
    if (flx_calib_from_ids(&cd, ids, nsamples * seqlen, nsamples, seqlen, 0, "bench", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    free(ids);

    double t_scales = 0;
    if (scales) {
        float *buf = malloc(sizeof(float) * 4 * (size_t)cfg.n_layers);
        t0 = flx_now_seconds();
        if (flx_calib_attn_scales(&m, &rs, &cd, 1.0f, threads, buf, buf + cfg.n_layers, buf + 2 * cfg.n_layers,
                                  buf + 3 * cfg.n_layers, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        t_scales = flx_now_seconds() - t0;
        free(buf);
    }

    flx_gptq_model_opts go = flx_gptq_model_opts_default();
    go.n_threads = threads;
    go.progress = 1;
    go.release_layers = !keep_weights;   /* as flxemu quantize */
    static sink_t s;
    s.t0 = flx_now_seconds();
    t0 = flx_now_seconds();
    if (flx_gptq_model(&m, &rs, &cd, &go, sink, &s, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double t_gptq = flx_now_seconds() - t0;
    printf("shape %s layers %d, %ld x %ld calibration tokens, %d threads, rotation %s\n", shape, cfg.n_layers,
           nsamples, seqlen, threads, rot);
    printf("synth %.1f s, rotate %.1f s, one calibration forward (static scales) %.1f s, GPTQ %.1f s (%d linears), "
           "peak RSS %.2f GiB\n", t_synth, t_rot, t_scales, t_gptq, s.n, peak_rss_gib());
    for (int i = 0; i < s.n; i++) free(s.codes[i]);
    flx_calib_free(&cd);
    flx_rotset_free(&rs);
    flx_model_free(&m);
    return 0;
}
