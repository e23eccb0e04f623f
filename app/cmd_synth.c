/* flxemu synth -- write a random-weight Hugging Face checkpoint folder. */
#include "cli.h"
#include "flx_hmt.h"
#include "flx_synth.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "synth"

typedef struct synth_args {
    const char *shape, *out, *tokenizer, *hmt;
    int dtype_f32, force;
    long long seed, threads, hmt_dim, hmt_width;
    flx_hmt_settings hs;          /* --hmt-segment-length/-sensory/-cache (-1: not given) */
    int hmt_seen;                 /* any --hmt-* option given */
} synth_args;

#define A(f) offsetof(synth_args, f)
static const cli_opt synth_opts[] = {
    CLI_S("shape", 0, "NAME", A(shape), "llama-3.2-1b (2.5 GB in BF16) or tiny (required)"),
    CLI_S("out", 'o', "DIR", A(out), "output folder, as the positional DIR; created if missing"),
    CLI_SEED(A(seed), "RNG seed, 0 .. 2^63-1; same seed, same bytes"),
    CLI_C("dtype", "bf16|f32", "bf16|f32", A(dtype_f32), "weight dtype in model.safetensors (default bf16)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer),
          "copy this tokenizer.json instead of writing the built-in\n"
          "byte-level vocabulary (256 bytes + BOS/EOS)"),
    CLI_I("threads", 't', "N", A(threads), 1, 1024, "worker threads (default: one per core)"),
    CLI_F("force", 0, 1, A(force), "write into a non-empty DIR (replacing these three files)"),
    CLI_SEC("HMT parameters:"),
    CLI_S("hmt", 0, "FILE", A(hmt),
          "also (or, without DIR, only) write random HMT parameters for\n"
          "the shape (docs/hmt.md), seeded by --seed: FlexLLM's settings\n"
          "(segment_length 1024, 32 sensory, cache 64) unless given below"),
    {.kind = CLI_INT, .name = "hmt-dim", .metavar = "H", .offset = A(hmt_dim), .ilo = 1, .ihi = 65536, .mark = 1,
     .help = "cross-attention width h (default: the hidden size, as FlexLLM)"},
    {.kind = CLI_INT, .name = "hmt-d-model", .metavar = "D", .offset = A(hmt_width), .ilo = 1, .ihi = 65536,
     .mark = 1, .help = "HMT parameters for any hidden size D (no --shape, no model)"},
    {.kind = CLI_I32, .name = "hmt-segment-length", .metavar = "N", .offset = A(hs.segment_length), .ilo = 0,
     .ihi = 1 << 20, .mark = 1, .help = "segment_length stored in FILE"},
    {.kind = CLI_I32, .name = "hmt-sensory", .metavar = "N", .offset = A(hs.n_sensory), .ilo = 0, .ihi = 1 << 20,
     .mark = 1, .help = "sensory tokens stored in FILE"},
    {.kind = CLI_I32, .name = "hmt-cache", .metavar = "N", .offset = A(hs.cache_size), .ilo = 0, .ihi = 1 << 20,
     .mark = 1, .help = "memories kept, stored in FILE"},
    {0}};
#undef A

static const cli_spec synth_spec = {
    .name = CMD,
    .usage = "--shape llama-3.2-1b|tiny DIR [options]\n--shape llama-3.2-1b|tiny --hmt FILE [options]",
    .about = "Writes DIR/config.json, DIR/model.safetensors and DIR/tokenizer.json: a Llama\n"
             "checkpoint with random weights (seeded) in the exact shapes of Llama-3.2-1B\n"
             "or of a tiny test model, loadable by every flxemu command.",
    .positional = "  DIR                     output folder, as --out DIR",
    .max_positional = 1,
    .examples = "flxemu synth --shape tiny tiny/\n"
                "flxemu synth --shape llama-3.2-1b --seed 1 --tokenizer tokenizer.json synth1b/\n"
                "flxemu synth --shape llama-3.2-1b --hmt hmt.safetensors",
};

/* 1 if path is a folder with entries other than . and .. */
static int dir_non_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return found;
}

int flx_cmd_synth(int argc, char **argv)
{
    synth_args a = {.seed = CLI_DEFAULT_SEED};
    flx_hmt_settings_unset(&a.hs);
    const cli_group g[] = {{synth_opts, &a, &a.hmt_seen}};
    const char *pos[1];
    int n_pos, prc = cli_parse(&synth_spec, g, 1, argc, argv, pos, &n_pos);
    if (prc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (prc || (n_pos && (prc = cli_positional_path(CMD, "--out", &a.out, pos[0])))) return prc;
    const char *shape = a.shape, *out = a.out, *tokenizer = a.tokenizer, *hmt = a.hmt;
    const char *dtype = a.dtype_f32 ? "f32" : "bf16";
    long long seed = a.seed, threads = a.threads, hmt_dim = a.hmt_dim, hmt_width = a.hmt_width;
    flx_hmt_settings hs = a.hs;
    int force = a.force;
    if (!hmt && a.hmt_seen)
        return cli_usage_error(CMD, "the --hmt-* options need --hmt FILE");
    if (hmt_width && (out || shape))
        return cli_usage_error(CMD, "--hmt-d-model writes only HMT parameters: drop --shape and --out");
    if (hmt_width) {   /* HMT parameters for any hidden size, no model */
        flx_error herr = {0};
        flx_hmt_params hp;
        int32_t d = (int32_t)hmt_width, h = hmt_dim ? (int32_t)hmt_dim : d;
        if (flx_hmt_synth(&hp, d, h, &hs, (uint64_t)seed, &herr)) return cli_fail(CMD, &herr);
        int hrc = flx_hmt_write(&hp, hmt, &herr);
        flx_hmt_free(&hp);
        if (hrc) return cli_fail(CMD, &herr);
        fprintf(stderr, "flxemu synth: HMT parameters (d %d, h %d), seed %lld -> %s\n", d, h, seed, hmt);
        return FLX_EXIT_OK;
    }
    if (!shape) return cli_usage_error(CMD, "--shape is required (llama-3.2-1b or tiny)");
    if (out && !*out) return cli_usage_error(CMD, "--out needs a folder name");
    if (!out && !hmt) return cli_usage_error(CMD, "--out DIR is required");

    flx_error err = {0};
    flx_llama_config cfg;
    if (flx_synth_config(shape, &cfg, &err)) return cli_usage_error(CMD, "%s", err.msg);
    if (hmt) {   /* HMT parameters for the shape: a file of their own */
        flx_hmt_params hp;
        int32_t h = hmt_dim ? (int32_t)hmt_dim : cfg.d_model;
        if (flx_hmt_synth(&hp, cfg.d_model, h, &hs, (uint64_t)seed, &err)) return cli_fail(CMD, &err);
        int hrc = flx_hmt_write(&hp, hmt, &err);
        flx_hmt_free(&hp);
        if (hrc) return cli_fail(CMD, &err);
        fprintf(stderr, "flxemu synth: HMT parameters for %s (d %d, h %d), seed %lld -> %s\n", shape,
                cfg.d_model, h, seed, hmt);
        if (!out) return FLX_EXIT_OK;
    }
    if (tokenizer && !flx_file_exists(tokenizer)) {
        flx_fail(&err, FLX_EIO, "%s: --tokenizer file not found", tokenizer);
        return cli_fail(CMD, &err);
    }
    int created = 0;
    if (flx_is_dir(out)) {
        if (dir_non_empty(out) && !force) {
            flx_fail(&err, FLX_EINVAL, "%s: folder is not empty (use --force to write into it)", out);
            return cli_fail(CMD, &err);
        }
    } else if (mkdir(out, 0777) != 0) {
        flx_fail(&err, FLX_EIO, "%s: cannot create folder: %s", out, strerror(errno));
        return cli_fail(CMD, &err);
    } else {
        created = 1;
    }
    fprintf(stderr, "flxemu synth: %s, seed %lld, %s -> %s\n", shape, seed, dtype, out);
    int rc = flx_synth_write_hf_ex(out, &cfg, (uint64_t)seed, !strcmp(dtype, "bf16"), tokenizer,
                                   (int)threads, isatty(STDERR_FILENO), &err);
    if (rc) {
        if (created) rmdir(out);   /* the library already removed its files */
        return cli_fail(CMD, &err);
    }
    return FLX_EXIT_OK;
}
