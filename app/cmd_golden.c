/* flxemu golden -- golden vectors of the bit-exact kernels for HLS
 * testbenches, and the check that re-runs the emulator against them. */
#include "cli.h"
#include "cli_mpi.h"
#include "flx_emu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "golden"

typedef struct golden_args {
    const char *kernel, *out, *check, *config;
    int layer;                    /* index in "prefill|decode|hmt|model", -1: none */
    long long seed, n_seeds;
    long long pos0, n_tokens;     /* --layer prefill: the call (-1: not given) */
    flx_emu_golden_opts o;
} golden_args;

static int parse_exp(const char *v, void *dst) { return flx_emu_exp_parse(v, dst); }

#define A(f) offsetof(golden_args, f)
static const cli_opt golden_opts[] = {
    CLI_S("kernel", 0, "NAME", A(kernel), "a kernel (see the list below) or all"),
    CLI_C("layer", "prefill|decode|hmt|model", "prefill|decode|hmt|model", A(layer),
          "prefill or decode: one whole decoder layer of the U280\n"
          "model shape (random INT4 weights, ~60 MB of weights);\n"
          "hmt: HMT segment steps: layer_hmt (retrieval + ring update,\n"
          "d = h = 2048) and layer_hmt_segment (whole steps, segments 0-3,\n"
          "70, 71, with both prefills and loaders on a tiny 2-layer model,\n"
          "docs/hmt.md 8)\n"
          "model: a tiny whole model (2 such layers, 1024-token\n"
          "vocabulary) decoding one token, with lm_head and sampling"),
    CLI_I("pos0", 0, "P", A(pos0), 0, 2032,
          "--layer prefill: the call's first position, a multiple\n"
          "of 16 (default 0); the set holds the K/V cache rows\n"
          "0..P-1 the earlier calls left, to preload;\n"
          "--layer decode: the token's position, a multiple of 32\n"
          "(default 32), after a P-token prefill"),
    CLI_I("n-tokens", 0, "T", A(n_tokens), 1, 256,
          "--layer prefill: tokens of the call (default 16), padded\n"
          "with zero rows to a multiple of 16"),
    CLI_S("out", 'o', "DIR", A(out), "output folder, created if missing"),
    CLI_S("config", 0, "NAME", A(config), "hardware configuration: u280 (default)"),
    CLI_SEED(A(seed), "RNG seed, 0 .. 2^63-1"),
    CLI_I("seeds", 0, "K", A(n_seeds), 1, 1 << 20,
          "K seeds from --seed on, each in DIR/seed-S/; under\n"
          "mpirun/srun the seeds are shared among the ranks"),
    {.kind = CLI_CUSTOM, .name = "exp", .metavar = "glibc|flx", .offset = A(o.fp.exp), .parse = parse_exp,
     .expect = "glibc or flx", .help = "exponential where the reference calls expf (default glibc)"},
    CLI_F("ftz", 0, 1, A(o.fp.ftz), "flush subnormal floats to zero like the FPGA's FP cores"),
    CLI_F("gzip", 0, 1, A(o.gzip), "write NAME.npy.gz (zlib)"),
    CLI_S("check", 0, "DIR", A(check), "verify an existing folder"),
    {0}};
#undef A

static void kernel_list(FILE *fp)
{
    fprintf(fp, "\nkernels:");
    for (int i = 0; flx_emu_golden_kernel_name(i); i++)
        fprintf(fp, "%s %s", i % 6 ? "" : "\n ", flx_emu_golden_kernel_name(i));
    fprintf(fp, "\n");
}

static const cli_spec golden_spec = {
    .name = CMD,
    .usage = "--kernel NAME|all --out DIR [options]\n--layer prefill|decode|hmt|model --out DIR [options]\n"
             "--layer prefill --pos0 P [--n-tokens T] --out DIR [options]\n--check DIR",
    .about = "Writes seeded inputs, parameters and the emulator's outputs of FlexLLM kernels\n"
             "at the U280 sizes as .npy files (int8/uint8/int32/float32 as the hardware holds\n"
             "them) under DIR/<kernel>/, with DIR/manifest.json (reference function, template\n"
             "parameters, shapes, layouts, seed, float mode, CRC32 of every file).  Tensors in\n"
             "a stream layout also get NAME.stream.npy: rows are beats, columns lanes.\n"
             "--check re-runs the emulator with the manifest's settings, verifies every CRC\n"
             "and prints the first mismatch.",
    .examples = "flxemu golden --kernel all --exp flx --out gv/     # the HLS testbenches' set\n"
                "flxemu golden --layer decode --seed 7 --gzip --out layer/\n"
                "flxemu golden --layer prefill --pos0 32 --exp flx --out call3/  # third 16-row call\n"
                "flxemu golden --layer decode --pos0 96 --exp flx --out step96/\n"
                "flxemu golden --check gv/",
    .more_help = kernel_list,
};

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
    golden_args a;
    memset(&a, 0, sizeof a);
    a.config = "u280";
    a.layer = -1;
    a.seed = CLI_DEFAULT_SEED;
    a.pos0 = a.n_tokens = -1;
    const cli_group g[] = {{golden_opts, &a, NULL}};
    int n_pos, prc = cli_parse(&golden_spec, g, 1, argc, argv, NULL, &n_pos);
    if (prc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (prc) return prc;
    static const char *const layers[4] = {"prefill", "decode", "hmt", "model"};
    const char *kernel = a.kernel, *out = a.out, *check = a.check, *config = a.config;
    const char *layer = a.layer >= 0 ? layers[a.layer] : NULL;
    long long seed = a.seed, n_seeds = a.n_seeds;
    flx_emu_golden_opts o = a.o;
    flx_error err = { 0 };
    if (check) {
        if (kernel || layer || out || a.pos0 >= 0 || a.n_tokens >= 0)
            return cli_usage_error("golden", "--check takes no --kernel, --layer, --out, --pos0 or --n-tokens");
        int64_t n = 0;
        if (flx_emu_golden_check(check, &n, &err)) return cli_fail("golden", &err);
        printf("golden: %s: %lld files match the emulator\n", check, (long long)n);
        return FLX_EXIT_OK;
    }
    if (kernel && layer) return cli_usage_error("golden", "give --kernel or --layer, not both");
    if (layer) {
        kernel = !strcmp(layer, "prefill") ? "layer_prefill"
                 : !strcmp(layer, "decode") ? "layer_decode"
                 : !strcmp(layer, "hmt")    ? "layer_hmt"
                                            : "model_decode";
    }
    if (!kernel) return cli_usage_error("golden", "--kernel NAME|all or --layer STAGE is required (or --check DIR)");
    int decode = layer && !strcmp(layer, "decode");
    if (a.pos0 >= 0 && (!layer || (strcmp(layer, "prefill") && !decode)))
        return cli_usage_error("golden", "--pos0 goes with --layer prefill or --layer decode");
    if (a.n_tokens >= 0 && (!layer || strcmp(layer, "prefill")))
        return cli_usage_error("golden", "--n-tokens describes a prefill call: give it with --layer prefill");
    if (decode && a.pos0 >= 0 && (a.pos0 < 32 || a.pos0 % 32))
        return cli_usage_error("golden", "--layer decode --pos0 %lld: a multiple of 32 from 32 (the decode top's "
                               "32-slot K-group register starts empty there; elsewhere it would write back "
                               "the slots of earlier runs)", a.pos0);
    if (!decode && a.pos0 > 0 && a.pos0 % 16)
        return cli_usage_error("golden", "--pos0 %lld: prefill calls start at multiples of 16 (the host pads every "
                               "call to 16 rows; top_layer_prefill needs seq_len = pos0 + 16 a multiple of its "
                               "16-key K-cache words)", a.pos0);
    o.pos0 = a.pos0 > 0 ? a.pos0 : 0;
    o.n_tokens = a.n_tokens > 0 ? a.n_tokens : 0;
    if (!decode && o.pos0 + (o.n_tokens ? (o.n_tokens + 15) / 16 * 16 : 16) > 2048)
        return cli_usage_error("golden", "--pos0 %lld + --n-tokens %lld: past the 2048 positions of the caches and "
                               "the RoPE table", (long long)o.pos0, (long long)(o.n_tokens ? o.n_tokens : 16));
    if (!out || !*out) return cli_usage_error("golden", "--out DIR is required");
    if (strcmp(config, "u280")) return cli_usage_error("golden", "unknown --config '%s' (known: u280)", config);
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
