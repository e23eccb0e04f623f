/* flxemu golden -- golden vectors of the bit-exact kernels for HLS
 * testbenches, and the check that re-runs the emulator against them. */
#include "cli.h"
#include "cli_mpi.h"
#include "flx_emu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu golden --kernel NAME|all --out DIR [options]\n"
            "       flxemu golden --layer prefill|decode|hmt|model --out DIR [options]\n"
            "       flxemu golden --check DIR\n"
            "\n"
            "Writes seeded inputs, parameters and the emulator's outputs of FlexLLM kernels\n"
            "at the U280 sizes as .npy files (int8/uint8/int32/float32 as the hardware holds\n"
            "them) under DIR/<kernel>/, with DIR/manifest.json (reference function, template\n"
            "parameters, shapes, layouts, seed, float mode, CRC32 of every file).  Tensors in\n"
            "a stream layout also get NAME.stream.npy: rows are beats, columns lanes.\n"
            "--check re-runs the emulator with the manifest's settings, verifies every CRC\n"
            "and prints the first mismatch.\n"
            "\n"
            "options:\n"
            "  --kernel NAME      a kernel (see the list below) or all\n"
            "  --layer STAGE      prefill or decode: one whole decoder layer of the U280\n"
            "                     model shape (random INT4 weights, ~60 MB of weights);\n"
            "                     hmt: HMT segment steps: layer_hmt (retrieval + ring update,\n"
            "                     d = h = 2048) and layer_hmt_segment (whole steps, segments 0-3, 70, 71, with\n"
            "                     both prefills and loaders on a tiny 2-layer model, docs/hmt.md 8)\n"
            "                     model: a tiny whole model (2 such layers, 1024-token\n"
            "                     vocabulary) decoding one token, with lm_head and sampling\n"
            "  --out DIR          output folder, created if missing\n"
            "  --config NAME      hardware configuration: u280 (default)\n"
            "  --seed N           RNG seed, 0 .. 2^63-1 (default 1)\n"
            "  --seeds K          K seeds from --seed on, each in DIR/seed-S/; under\n"
            "                     mpirun/srun the seeds are shared among the ranks\n"
            "  --exp glibc|flx    exponential where the reference calls expf (default glibc)\n"
            "  --ftz              flush subnormal floats to zero like the FPGA's FP cores\n"
            "  --gzip             write NAME.npy.gz (zlib)\n"
            "  --check DIR        verify an existing folder\n"
            "  --help             this text\n"
            "\n"
            "kernels:");
    for (int i = 0; flx_emu_golden_kernel_name(i); i++)
        fprintf(fp, "%s %s", i % 6 ? "" : "\n ", flx_emu_golden_kernel_name(i));
    fprintf(fp, "\n");
}

/* --seeds: one folder per seed, shared round-robin among MPI ranks (one
 * process without MPI); a folder depends only on its seed, so the tree is
 * the same whatever the number of ranks. */
static int golden_seeds(const char *out, const char *kernel, const char *config, flx_emu_golden_opts *o,
                        long long seed, long long n_seeds)
{
    flx_error err = {0};
    cli_mpi mpi;
    int rc = cli_mpi_begin(&mpi, &err);
    if (!rc && mkdir(out, 0777) && errno != EEXIST)
        rc = flx_fail(&err, FLX_EIO, "%s: cannot create: %s", out, strerror(errno));
    for (long long i = 0; !rc && i < n_seeds; i++) {
        if (!cli_mpi_mine(&mpi, i)) continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/seed-%lld", out, seed + i);
        o->seed = (uint64_t)(seed + i);
        rc = flx_emu_golden_write(dir, kernel, config, o, &err);
    }
    if (rc) cli_fail("golden", &err);
    int worst = cli_mpi_worst(&mpi, rc != FLX_OK);
    mpi.agreed = 1;   /* every rank knows: no abort needed */
    if (!worst && mpi.rank == 0)
        printf("golden: %s, %lld seeds (%lld .. %lld) -> %s/seed-*, %d rank%s\n", kernel, n_seeds, seed,
               seed + n_seeds - 1, out, mpi.size, mpi.size > 1 ? "s" : "");
    cli_mpi_end(&mpi, worst);
    return worst ? FLX_EXIT_FAIL : FLX_EXIT_OK;
}

int flx_cmd_golden(int argc, char **argv)
{
    const char *kernel = NULL, *layer = NULL, *out = NULL, *check = NULL, *config = "u280", *exp = "glibc";
    long long seed = 1, n_seeds = 0;
    flx_emu_golden_opts o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return FLX_EXIT_OK;
        } else if (!strcmp(a, "--ftz")) {
            o.fp.ftz = 1;
        } else if (!strcmp(a, "--gzip")) {
            o.gzip = 1;
        } else if (!strcmp(a, "--kernel") || !strcmp(a, "--layer") || !strcmp(a, "--out") || !strcmp(a, "--config") ||
                   !strcmp(a, "--seed") || !strcmp(a, "--exp") || !strcmp(a, "--check") || !strcmp(a, "--seeds")) {
            if (i + 1 >= argc) return cli_usage_error("golden", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--kernel")) kernel = v;
            else if (!strcmp(a, "--layer")) layer = v;
            else if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--config")) config = v;
            else if (!strcmp(a, "--exp")) exp = v;
            else if (!strcmp(a, "--check")) check = v;
            else if (!strcmp(a, "--seeds")) {
                if (cli_parse_i64("golden", "--seeds", v, 1, 1 << 20, &n_seeds)) return FLX_EXIT_USAGE;
            } else if (cli_parse_i64("golden", "--seed", v, 0, INT64_MAX, &seed)) return FLX_EXIT_USAGE;
        } else {
            return cli_usage_error("golden", "unknown option '%s'", a);
        }
    }
    flx_error err = { 0 };
    if (check) {
        if (kernel || layer || out) return cli_usage_error("golden", "--check takes no --kernel, --layer or --out");
        int64_t n = 0;
        if (flx_emu_golden_check(check, &n, &err)) return cli_fail("golden", &err);
        printf("golden: %s: %lld files match the emulator\n", check, (long long)n);
        return FLX_EXIT_OK;
    }
    if (kernel && layer) return cli_usage_error("golden", "give --kernel or --layer, not both");
    if (layer) {
        if (strcmp(layer, "prefill") && strcmp(layer, "decode") && strcmp(layer, "hmt") && strcmp(layer, "model"))
            return cli_usage_error("golden", "--layer must be prefill, decode, hmt or model, got '%s'", layer);
        kernel = !strcmp(layer, "prefill") ? "layer_prefill"
                 : !strcmp(layer, "decode") ? "layer_decode"
                 : !strcmp(layer, "hmt")    ? "layer_hmt"
                                            : "model_decode";
    }
    if (!kernel) return cli_usage_error("golden", "--kernel NAME|all or --layer STAGE is required (or --check DIR)");
    if (!out || !*out) return cli_usage_error("golden", "--out DIR is required");
    if (strcmp(config, "u280")) return cli_usage_error("golden", "unknown --config '%s' (known: u280)", config);
    if (flx_emu_exp_parse(exp, &o.fp.exp))
        return cli_usage_error("golden", "--exp must be glibc or flx, got '%s'", exp);
    int known = !strcmp(kernel, "all") || layer || flx_emu_golden_kernel_find(kernel);
    if (!known) return cli_usage_error("golden", "unknown kernel '%s' (see --help for the list)", kernel);
    if (n_seeds) {
        if (n_seeds - 1 > INT64_MAX - seed) return cli_usage_error("golden", "--seed + --seeds overflows");
        return golden_seeds(out, kernel, config, &o, seed, n_seeds);
    }
    o.seed = (uint64_t)seed;
    fprintf(stderr, "flxemu golden: %s, config %s, seed %lld, %s -> %s\n", kernel, config, seed,
            flx_emu_fp_name(&o.fp), out);
    if (flx_emu_golden_write(out, kernel, config, &o, &err)) return cli_fail("golden", &err);
    return FLX_EXIT_OK;
}
