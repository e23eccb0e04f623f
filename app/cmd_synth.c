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

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu synth --shape llama-3.2-1b|tiny --out DIR [options]\n"
            "\n"
            "Writes DIR/config.json, DIR/model.safetensors and DIR/tokenizer.json: a Llama\n"
            "checkpoint with random weights (fixed seed) in the exact shapes of Llama-3.2-1B\n"
            "or of a tiny test model, loadable by every flxemu command.\n"
            "\n"
            "options:\n"
            "  --shape NAME       llama-3.2-1b (2.5 GB in BF16) or tiny (required)\n"
            "  --out DIR          output folder; created if missing (required)\n"
            "  --seed N           RNG seed, 0 .. 2^63-1 (default 1); same seed, same bytes\n"
            "  --dtype bf16|f32   weight dtype in model.safetensors (default bf16)\n"
            "  --tokenizer FILE   copy this tokenizer.json instead of writing the built-in\n"
            "                     byte-level vocabulary (256 bytes + BOS/EOS)\n"
            "  --threads N        worker threads (default: one per core)\n"
            "  --force            write into a non-empty DIR (replacing these three files)\n"
            "  --hmt FILE         also (or, without --out, only) write random HMT parameters for\n"
            "                     the shape (docs/hmt.md), seeded by --seed: FlexLLM's settings\n"
            "                     (segment_length 1024, 32 sensory, cache 64) unless given below\n"
            "  --hmt-dim H        cross-attention width h (default: the hidden size, as FlexLLM)\n"
            "  --hmt-d-model D    HMT parameters for any hidden size D (no --shape, no model)\n"
            "  --hmt-segment-length N, --hmt-sensory N, --hmt-cache N   settings stored in FILE\n"
            "  --help             this text\n");
}

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
    const char *shape = NULL, *out = NULL, *tokenizer = NULL, *dtype = "bf16", *hmt = NULL;
    long long seed = 1, threads = 0, hmt_dim = 0, hmt_width = 0;
    flx_hmt_settings hs;
    flx_hmt_settings_unset(&hs);
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return FLX_EXIT_OK;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--shape") || !strcmp(a, "--out") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--dtype") || !strcmp(a, "--tokenizer") || !strcmp(a, "--threads")) {
            if (!has_value) return cli_usage_error("synth", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--shape")) shape = v;
            else if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--dtype")) dtype = v;
            else if (!strcmp(a, "--tokenizer")) tokenizer = v;
            else if (!strcmp(a, "--seed")) {
                if (cli_parse_i64("synth", "--seed", v, 0, INT64_MAX, &seed)) return FLX_EXIT_USAGE;
            } else if (cli_parse_i64("synth", "--threads", v, 1, 1024, &threads)) {
                return FLX_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--hmt") || !strncmp(a, "--hmt-", 6)) {
            if (!has_value) return cli_usage_error("synth", "%s needs a value", a);
            const char *v = argv[++i];
            long long x = 0;
            if (!strcmp(a, "--hmt")) hmt = v;
            else if (!strcmp(a, "--hmt-dim")) {
                if (cli_parse_i64("synth", a, v, 1, 65536, &hmt_dim)) return FLX_EXIT_USAGE;
            } else if (!strcmp(a, "--hmt-d-model")) {
                if (cli_parse_i64("synth", a, v, 1, 65536, &hmt_width)) return FLX_EXIT_USAGE;
            } else if (!strcmp(a, "--hmt-segment-length") || !strcmp(a, "--hmt-sensory") ||
                       !strcmp(a, "--hmt-cache")) {
                if (cli_parse_i64("synth", a, v, 0, 1 << 20, &x)) return FLX_EXIT_USAGE;
                if (a[6] == 's' && a[7] == 'e' && a[8] == 'g') hs.segment_length = (int32_t)x;
                else if (a[6] == 's') hs.n_sensory = (int32_t)x;
                else hs.cache_size = (int32_t)x;
            } else {
                return cli_usage_error("synth", "unknown option '%s'", a);
            }
        } else {
            return cli_usage_error("synth", "unknown option '%s'", a);
        }
    }
    if (!hmt && (hmt_width || hmt_dim || hs.segment_length >= 0 || hs.n_sensory >= 0 || hs.cache_size >= 0))
        return cli_usage_error("synth", "the --hmt-* options need --hmt FILE");
    if (hmt_width && (out || shape))
        return cli_usage_error("synth", "--hmt-d-model writes only HMT parameters: drop --shape and --out");
    if (hmt_width) {   /* HMT parameters for any hidden size, no model */
        flx_error herr = {0};
        flx_hmt_params hp;
        int32_t d = (int32_t)hmt_width, h = hmt_dim ? (int32_t)hmt_dim : d;
        if (flx_hmt_synth(&hp, d, h, &hs, (uint64_t)seed, &herr)) return cli_fail("synth", &herr);
        int hrc = flx_hmt_write(&hp, hmt, &herr);
        flx_hmt_free(&hp);
        if (hrc) return cli_fail("synth", &herr);
        fprintf(stderr, "flxemu synth: HMT parameters (d %d, h %d), seed %lld -> %s\n", d, h, seed, hmt);
        return FLX_EXIT_OK;
    }
    if (!shape) return cli_usage_error("synth", "--shape is required (llama-3.2-1b or tiny)");
    if (out && !*out) return cli_usage_error("synth", "--out needs a folder name");
    if (!out && !hmt) return cli_usage_error("synth", "--out DIR is required");
    if (strcmp(dtype, "bf16") && strcmp(dtype, "f32"))
        return cli_usage_error("synth", "--dtype must be bf16 or f32, got '%s'", dtype);

    flx_error err = {0};
    flx_llama_config cfg;
    if (flx_synth_config(shape, &cfg, &err)) return cli_usage_error("synth", "%s", err.msg);
    if (hmt) {   /* HMT parameters for the shape: a file of their own */
        flx_hmt_params hp;
        int32_t h = hmt_dim ? (int32_t)hmt_dim : cfg.d_model;
        if (flx_hmt_synth(&hp, cfg.d_model, h, &hs, (uint64_t)seed, &err)) return cli_fail("synth", &err);
        int hrc = flx_hmt_write(&hp, hmt, &err);
        flx_hmt_free(&hp);
        if (hrc) return cli_fail("synth", &err);
        fprintf(stderr, "flxemu synth: HMT parameters for %s (d %d, h %d), seed %lld -> %s\n", shape,
                cfg.d_model, h, seed, hmt);
        if (!out) return FLX_EXIT_OK;
    }
    if (tokenizer && !flx_file_exists(tokenizer)) {
        flx_fail(&err, FLX_EIO, "%s: --tokenizer file not found", tokenizer);
        return cli_fail("synth", &err);
    }
    int created = 0;
    if (flx_is_dir(out)) {
        if (dir_non_empty(out) && !force) {
            flx_fail(&err, FLX_EINVAL, "%s: folder is not empty (use --force to write into it)", out);
            return cli_fail("synth", &err);
        }
    } else if (mkdir(out, 0777) != 0) {
        flx_fail(&err, FLX_EIO, "%s: cannot create folder: %s", out, strerror(errno));
        return cli_fail("synth", &err);
    } else {
        created = 1;
    }
    fprintf(stderr, "flxemu synth: %s, seed %lld, %s -> %s\n", shape, seed, dtype, out);
    int rc = flx_synth_write_hf_ex(out, &cfg, (uint64_t)seed, !strcmp(dtype, "bf16"), tokenizer,
                                   (int)threads, isatty(STDERR_FILENO), &err);
    if (rc) {
        if (created) rmdir(out);   /* the library already removed its files */
        return cli_fail("synth", &err);
    }
    return FLX_EXIT_OK;
}
