/* flxemu ppl -- perplexity of a model on a text, under the Hugging Face
 * (default) or the llama.cpp protocol (docs/ppl.md). */
#include "cli.h"
#include "cli_emu.h"
#include "cli_ppl_hmt.h"
#include "cli_mpi.h"
#include "flx_ppl.h"
#include "flx_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "ppl"
#define EMBEDDED_SEED 1234   /* seed of the embedded synthetic model */

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu ppl [--model PATH] [options]\n"
            "\n"
            "Perplexity of a Llama model on a text.  Without --model: a small synthetic\n"
            "model (flxemu synth's \"tiny\" shape, seed %d) on a short built-in text.\n"
            "\n"
            "input:\n"
            "  --model PATH          HF checkpoint folder, config.json/model.safetensors, .gguf,\n"
            "                        or a quantized .flxq (its fake-quant float model)\n"
            "  --tokenizer FILE      tokenizer.json or .gguf overriding the model's own\n"
            "  --file FILE           text file (default with --model: WikiText-2 wiki.test.raw from\n"
            "                        $FLXEMU_DATA/wikitext2 or data/wikitext2 (see data/wikitext2/README.md))\n"
            "  --tokens FILE         token ids, one per line, used exactly as given\n"
            "  --bos                 with --tokens: prepend the vocabulary's BOS\n"
            "protocol:\n"
            "  --protocol hf|llamacpp  hf (default): windows of --ctx, all positions scored,\n"
            "                        WikiText rows rebuilt as the HF loader yields them;\n"
            "                        llamacpp: BOS over each chunk's first token, second half scored\n"
            "  --ctx N, -c N         window length (default 2048 for hf, 512 for llamacpp)\n"
            "  --chunks N            evaluate at most N windows (default: all)\n"
            "compute:\n"
            "  --engine float|emu    float (default): float reference (fake-quant for a .flxq);\n"
            "                        emu: bit-exact FlexLLM U280 engine on a .flxq made with\n"
            "                        `flxemu quantize --recipe flexllm` (prefill kernels, then the\n"
            "                        decode-stage final norm and INT4 head for every position);\n"
            "                        windows over 1024 tokens run but exceed the U280's prefill;\n"
            "                        the simulated U280 time (u280_mem_opt) goes to stderr/--json\n"
            "  --exp glibc|flx       emu: exponential (default glibc-expf; flx: flx-exp)\n"
            "  --ftz                 emu: flush subnormals to zero\n"
            "  --reference-quirks    emu: reproduce the reference design's quirks (docs/reference-design.md §6)\n"
            "  --threads N           threads (default: all cores)\n"
            "  --bf16-activations    round activations to BF16 (mimics a BF16 GPU run)\n"
            "output:\n"
            "  --json FILE           machine-readable results (model_sha256 is the weight file's digest\n"
            "                        when it is under 256 MiB, else null unless --model-sha256)\n"
            "  --model-sha256        digest the weight file for --json whatever its size (2.5 GB: ~10 s)\n"
            "  --save-logits FILE    save 16-bit log-probs of the scored tokens (llama.cpp KLD format)\n"
            "  --kl-base FILE        compare with a saved run (its tokens are used): KLD, same top, PPL ratio\n"
            "  --progress / --no-progress   progress bar on stderr (default: when stderr is a\n"
            "                        terminal and stdout is not)\n"
            "  -h, --help            this help\n"
            "\n"
            "%s"
            "\n"
            "Per-window values print as [i]x.xxxx, and the result as 'Final estimate: PPL = X +/- Y'\n"
            "(llama.cpp's format; +/- is its first-order standard error).  Exit status: 0 ok,\n"
            "1 failure, 2 usage error.\n",
            EMBEDDED_SEED, cli_ppl_hmt_usage);
}

typedef struct ppl_args {
    const char *model, *tokenizer, *file, *tokens, *json, *save_logits, *kl_base;
    int bos, bf16, progress;     /* progress: -1 auto */
    int model_sha;               /* --model-sha256: digest big weight files too */
    int emu, emu_flags;          /* --engine emu; an emu-only flag was given */
    flx_emu_opts eo;
    cli_ppl_hmt hmt;             /* --hmt and its options (cli_ppl_hmt.c) */
    flx_ppl_protocol protocol;
    long long ctx, chunks, threads;
    double s_load, s_tokenize;   /* wall seconds of loading and tokenizing (for --json) */
} ppl_args;

static int parse_args(int argc, char **argv, ppl_args *a)
{
    memset(a, 0, sizeof *a);
    a->progress = -1;
    a->ctx = 0;
    a->chunks = 0;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    flx_emu_opts_default(&a->eo);
    cli_ppl_hmt_init(&a->hmt);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int has_val = i + 1 < argc;
        int ef = cli_emu_parse_flag(CMD, argc, argv, &i, &a->eo, &a->emu_flags);
        if (ef == FLX_EXIT_USAGE) return ef;
        if (ef) continue;
        int hf = cli_ppl_hmt_parse_flag(CMD, argc, argv, &i, &a->hmt);
        if (hf == FLX_EXIT_USAGE) return hf;
        if (hf) continue;
#define VALUE() (has_val ? argv[++i] : NULL)
#define NEED()                                                                    \
    do {                                                                          \
        if (!has_val) return cli_usage_error(CMD, "%s needs a value", f);         \
    } while (0)
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(f, "--model")) { NEED(); a->model = VALUE(); }
        else if (!strcmp(f, "--tokenizer")) { NEED(); a->tokenizer = VALUE(); }
        else if (!strcmp(f, "--file") || !strcmp(f, "-f")) { NEED(); a->file = VALUE(); }
        else if (!strcmp(f, "--tokens")) { NEED(); a->tokens = VALUE(); }
        else if (!strcmp(f, "--json")) { NEED(); a->json = VALUE(); }
        else if (!strcmp(f, "--save-logits")) { NEED(); a->save_logits = VALUE(); }
        else if (!strcmp(f, "--kl-base")) { NEED(); a->kl_base = VALUE(); }
        else if (!strcmp(f, "--engine")) {
            NEED();
            const char *v = VALUE();
            if (!strcmp(v, "emu")) a->emu = 1;
            else if (strcmp(v, "float")) return cli_usage_error(CMD, "--engine expects float or emu, got '%s'", v);
        }
        else if (!strcmp(f, "--bos")) a->bos = 1;
        else if (!strcmp(f, "--bf16-activations")) a->bf16 = 1;
        else if (!strcmp(f, "--model-sha256")) a->model_sha = 1;
        else if (!strcmp(f, "--progress")) a->progress = 1;
        else if (!strcmp(f, "--no-progress")) a->progress = 0;
        else if (!strcmp(f, "--protocol")) {
            NEED();
            const char *v = VALUE();
            if (!strcmp(v, "hf")) a->protocol = FLX_PPL_HF;
            else if (!strcmp(v, "llamacpp") || !strcmp(v, "llama.cpp")) a->protocol = FLX_PPL_LLAMACPP;
            else return cli_usage_error(CMD, "--protocol expects hf or llamacpp, got '%s'", v);
        } else if (!strcmp(f, "--ctx") || !strcmp(f, "-c")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 2, 1 << 20, &a->ctx)) return FLX_EXIT_USAGE;
        } else if (!strcmp(f, "--chunks")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 1, 1LL << 40, &a->chunks)) return FLX_EXIT_USAGE;
        } else if (!strcmp(f, "--threads") || !strcmp(f, "-t")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 1, 1024, &a->threads)) return FLX_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", f);
        }
#undef VALUE
#undef NEED
    }
    if (a->tokens && a->file) return cli_usage_error(CMD, "--tokens and --file exclude each other");
    if (a->kl_base && (a->tokens || a->file))
        return cli_usage_error(CMD, "--kl-base takes its tokens from the base file; drop --tokens/--file");
    if (a->kl_base && a->save_logits)
        return cli_usage_error(CMD, "--kl-base and --save-logits exclude each other");
    if (a->bos && !a->tokens) return cli_usage_error(CMD, "--bos only applies to --tokens");
    if (a->emu_flags && !a->emu)
        return cli_usage_error(CMD, "--exp, --ftz and --reference-quirks need --engine emu");
    if (a->hmt.seen && !a->hmt.path) return cli_usage_error(CMD, "the --hmt-* options need --hmt FILE");
    if (a->hmt.path && (a->ctx || a->kl_base || a->save_logits))
        return cli_usage_error(CMD, "--hmt sets its own contexts (--hmt-segments); --ctx, --kl-base and "
                                    "--save-logits do not apply");
    if (a->emu && !a->model)
        return cli_usage_error(CMD, "--engine emu needs --model FILE.flxq (made by flxemu quantize --recipe flexllm)");
    if (a->emu && a->bf16)
        return cli_usage_error(CMD, "--bf16-activations is a float-engine option; the emu engine's precision is the hardware's");
    return 0;
}

/* The WikiText-2 test file when none is named: the first that exists. */
static char *find_default_text(void)
{
    const char *rel = "wikitext2/wiki.test.raw";
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';   /* <build>/app */
    char *cands[3] = {0};
    const char *data = cli_data_dir();
    cands[0] = data ? flx_path_join(data, rel) : NULL;
    cands[1] = strdup("data/wikitext2/wiki.test.raw");
    cands[2] = n > 0 ? flx_path_join(exe, "../../data/wikitext2/wiki.test.raw") : NULL;
    char *found = NULL;
    for (int i = 0; i < 3; i++) {
        if (!found && cands[i] && flx_file_exists(cands[i])) found = cands[i];
        else free(cands[i]);
    }
    return found;
}

/* "wiki.test.raw", "wiki.valid.raw", ...: the HF rows rule applies. */
static int is_wikitext_raw(const char *path)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strlen(s);
    return !strncmp(s, "wiki.", 5) && n > 9 && !strcmp(s + n - 4, ".raw");
}

typedef struct stream_ctx {
    flx_progress *bar;
    int64_t n_windows;
    int llamacpp_stream;
} stream_ctx;

static void on_window(void *ctx, const flx_ppl_progress_info *info)
{
    stream_ctx *s = ctx;
    if (s->llamacpp_stream) {
        printf("[%lld]%.4lf,", (long long)info->window + 1, info->running_ppl);
        fflush(stdout);
    }
    flx_progress_update(s->bar, info->window + 1);
}

static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(fp, "\\%c", c);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}

/* sha256 of what was loaded: the weights file (or the folder's
 * model.safetensors / index), "" when not a file */
static void model_digest(const char *path, int any_size, char hex[65])
{
    hex[0] = '\0';
    if (!path) return;
    char *p = NULL;
    if (flx_is_dir(path)) {
        p = flx_path_join(path, "model.safetensors");
        if (!flx_file_exists(p)) {
            free(p);
            p = flx_path_join(path, "model.safetensors.index.json");
        }
    } else {
        p = strdup(path);
    }
    flx_error err = {0};
    struct stat st;
    /* hashing a 2.5 GB checkpoint costs about 10 s: only on request */
    int small = p && stat(p, &st) == 0 && st.st_size <= ((off_t)256 << 20);
    if (p && (small || any_size) && flx_file_exists(p) && flx_sha256_file_hex(p, hex, &err) != FLX_OK)
        hex[0] = '\0';
    free(p);
}

static int write_json(const char *path, const ppl_args *a, const flx_model *m, const char *model_name,
                      const char *text_name, const char *text_hex, const int32_t *tokens,
                      const flx_ppl_result *r, const char *engine_json, flx_error *err)
{
    struct rusage ru;
    long long peak_rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (long long)ru.ru_maxrss * 1024 : -1;
    char model_hex[65], tok_hex[65];
    model_digest(a->model, a->model_sha, model_hex);
    flx_sha256_hex(tokens, (size_t)r->n_tokens * sizeof *tokens, tok_hex);
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (rc) return rc;
    FILE *fp = o.fp;
    fprintf(fp, "{\n  \"protocol\": \"%s\",\n  \"model\": ", flx_ppl_protocol_name(r->plan.protocol));
    json_str(fp, model_name);
    fprintf(fp, ",\n  \"model_sha256\": ");
    if (model_hex[0]) json_str(fp, model_hex);
    else fputs("null", fp);
    fprintf(fp, ",\n  \"text\": ");
    json_str(fp, text_name);
    fprintf(fp, ",\n  \"text_sha256\": ");
    json_str(fp, text_hex);
    fprintf(fp, ",\n  \"tokens_sha256\": \"%s\",\n", tok_hex);
    fprintf(fp, "  \"tokens\": %lld,\n  \"ctx\": %lld,\n  \"windows\": %lld,\n  \"windows_available\": %lld,\n",
            (long long)r->n_tokens, (long long)r->plan.n_ctx, (long long)r->plan.n_windows,
            (long long)r->plan.n_available);
    fprintf(fp, "  \"scored_tokens\": %lld,\n  \"mean_nll\": %.17g,\n  \"ppl\": %.17g,\n"
                "  \"ppl_uncertainty\": %.17g,\n",
            (long long)r->n_scored, r->mean_nll, r->ppl, r->ppl_unc);
    fprintf(fp, "  \"bf16_activations\": %s,\n  \"threads\": %lld,\n  \"seconds\": %.6f,\n"
                "  \"tokens_per_second\": %.3f,\n",
            a->bf16 ? "true" : "false", a->threads, r->seconds, r->tokens_per_second);
    fprintf(fp, "  \"seconds_load\": %.3f,\n  \"seconds_tokenize\": %.3f,\n", a->s_load, a->s_tokenize);
    fprintf(fp, "  \"seconds_by_kind\": {\"projections\": %.3f, \"attention\": %.3f, \"elementwise\": %.3f, "
                "\"head\": %.3f, \"scoring\": %.3f},\n",
            r->t_linear, r->t_attention, r->t_other, r->t_head, r->t_score);
    fprintf(fp, "  \"weight_bytes_f32\": %zu,\n  \"peak_rss_bytes\": %lld,\n",
            m->weight_bytes_f32, peak_rss);
    /* CPU time of the whole process so far (load, tokenize, evaluate) */
    fprintf(fp, "  \"process_cpu_user_seconds\": %.3f,\n  \"process_cpu_sys_seconds\": %.3f",
            (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec,
            (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec);
    if (r->has_kld) {
        const flx_kld_summary *k = &r->kld;
        fprintf(fp, ",\n  \"kld\": {\"mean\": %.9g, \"uncertainty\": %.9g, \"median\": %.9g, "
                    "\"max\": %.9g, \"same_top\": %.9g, \"same_top_uncertainty\": %.9g, "
                    "\"ppl_ratio\": %.9g, \"ppl_ratio_uncertainty\": %.9g, \"ppl_base\": %.9g}",
                k->kld.mean, k->kld.unc, k->kld_median, k->kld_max, k->same_top.mean,
                k->same_top.unc, k->ratio.mean, k->ratio.unc, k->ppl_base.mean);
    }
    fprintf(fp, ",\n%s\n}\n", engine_json);
    return flx_outfile_commit(&o, err);
}

static void print_kld(const flx_kld_summary *k)
{
    printf("\n====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", k->ppl.mean, k->ppl.unc);
    printf("Mean PPL(base)                : %10.6f ± %10.6f\n", k->ppl_base.mean, k->ppl_base.unc);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * k->cor);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", k->log_ratio.mean, k->log_ratio.unc);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", k->ratio.mean, k->ratio.unc);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f ± %10.6f\n", k->kld.mean, k->kld.unc);
    printf("Maximum KLD: %10.6f\n", k->kld_max);
    printf("99.0%%   KLD: %10.6f\n", k->kld_p99);
    printf("90.0%%   KLD: %10.6f\n", k->kld_p90);
    printf("Median  KLD: %10.6f\n", k->kld_median);
    printf("Minimum KLD: %10.6f\n", k->kld_min);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * k->dp.mean, 100.0 * k->dp.unc);
    printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * k->same_top.mean, 100.0 * k->same_top.unc);
}

int flx_cmd_ppl(int argc, char **argv)
{
    ppl_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc == -1) return FLX_EXIT_OK;
    if (prc) return prc;
    if ((prc = cli_check_output(CMD, "--json", a.json)) ||
        (prc = cli_check_output(CMD, "--save-logits", a.save_logits)))
        return prc;

    flx_error err = {0};
    flx_model model = {0};
    flx_fakequant *fq = NULL;     /* float engine on a .flxq */
    cli_emu emu = {0};            /* --engine emu            */
    const flx_model *mp = &model; /* what the run reads: model, or emu's view */
    flx_tokenizer *tok_override = NULL;
    flx_kld_base base;
    int have_base = 0, rc = FLX_EXIT_FAIL;
    char *text = NULL, *hf_text = NULL, *default_file = NULL;
    int32_t *tokens = NULL;
    int64_t n_tokens = 0;
    char text_hex[65] = "";
    const char *text_name = "";
    flx_ppl_result res = {0};
    cli_mpi mpi = {0, 1, 0, 0};

    /* mpirun/srun: this process is one rank sharing the windows (app/cli_mpi.h) */
    if (cli_mpi_begin(&mpi, &err)) goto fail;
    /* model */
    double t_begin = flx_now_seconds();
    if (a.emu) {
        if (cli_emu_load(&emu, a.model, &err)) goto fail;
        mp = &emu.view;
    } else if (a.model && flx_qmodel_is_file(a.model)) {
        if (flx_fakequant_open_lean(&fq, &model, a.model, (int)a.threads, &err)) goto fail;
    } else if (a.model) {
        if (flx_model_load(&model, a.model, &err)) goto fail;
    } else {
        flx_llama_config cfg;
        if (flx_synth_config("tiny", &cfg, &err) || flx_synth_build(&model, &cfg, EMBEDDED_SEED, &err))
            goto fail;
        fprintf(stderr, "flxemu ppl: no --model: embedded synthetic \"tiny\" model (seed %d), %s\n",
                EMBEDDED_SEED, a.file || a.tokens ? "given text" : "built-in text");
    }
    if (a.tokenizer && flx_tokenizer_load(&tok_override, a.tokenizer, &err)) goto fail;
    const flx_tokenizer *tok = tok_override ? tok_override : mp->tok;
    const flx_llama_config *c = &mp->cfg;
    if (tok && flx_tokenizer_n_vocab(tok) > c->n_vocab) {
        flx_fail(&err, FLX_EINVAL, "%s: tokenizer has %d tokens, the model only %d",
                 a.tokenizer ? a.tokenizer : mp->path, flx_tokenizer_n_vocab(tok), c->n_vocab);
        goto fail;
    }
    /* BOS of the vocabulary, if it adds one (llama.cpp's add_bos) */
    int32_t bos = tok ? (flx_tokenizer_adds_bos(tok) ? flx_tokenizer_bos(tok) : -1) : c->bos_id;

    /* tokens */
    a.s_load = flx_now_seconds() - t_begin;
    if (a.kl_base) {
        if (flx_kld_base_open(&base, a.kl_base, &err)) goto fail;
        have_base = 1;
        tokens = malloc((size_t)base.n_chunk * base.n_ctx * sizeof *tokens);
        if (!tokens) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
        n_tokens = (int64_t)base.n_chunk * base.n_ctx;
        memcpy(tokens, base.tokens, (size_t)n_tokens * sizeof *tokens);
        if (a.ctx && a.ctx != base.n_ctx) {
            rc = cli_usage_error(CMD, "--ctx %lld differs from the base file's n_ctx %d", a.ctx, base.n_ctx);
            goto out;
        }
        a.ctx = base.n_ctx;
        if (base.protocol != a.protocol)
            fprintf(stderr, "flxemu ppl: the base file was saved with --protocol %s; using it\n",
                    flx_ppl_protocol_name(base.protocol));
        a.protocol = base.protocol;
        text_name = a.kl_base;
    } else if (a.tokens) {
        if (flx_tokens_read(a.tokens, c->n_vocab, &tokens, &n_tokens, &err)) goto fail;
        if (a.bos) {
            int32_t b = tok ? flx_tokenizer_bos(tok) : c->bos_id;
            if (b < 0) { flx_fail(&err, FLX_EINVAL, "--bos: the vocabulary has no BOS token"); goto fail; }
            int32_t *t2 = malloc((size_t)(n_tokens + 1) * sizeof *t2);
            if (!t2) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
            t2[0] = b;
            memcpy(t2 + 1, tokens, (size_t)n_tokens * sizeof *t2);
            free(tokens);
            tokens = t2;
            n_tokens++;
        }
        if (flx_sha256_file_hex(a.tokens, text_hex, &err)) goto fail;
        text_name = a.tokens;
    } else {
        size_t bytes;
        const char *path = a.file;
        if (!path && a.model) {
            default_file = find_default_text();
            if (!default_file) {
                flx_fail(&err, FLX_ENOTFOUND,
                         "no text given and WikiText-2 wiki.test.raw not found in $FLXEMU_DATA/wikitext2 "
                         "or data/wikitext2; fetch it with "
                         "data/wikitext2/fetch.sh (see data/wikitext2/README.md) or pass --file");
                goto fail;
            }
            path = default_file;
        }
        if (!tok) {
            flx_fail(&err, FLX_ENOTFOUND, "%s: the model has no tokenizer; pass --tokenizer or --tokens",
                     mp->path ? mp->path : "model");
            goto fail;
        }
        const char *t;
        if (path) {
            if (flx_read_file(path, (size_t)1 << 31, &text, &bytes, &err)) goto fail;
            flx_sha256_hex(text, bytes, text_hex);
            int checked;
            if (flx_wikitext_check(path, text_hex, &checked, &err)) goto fail;
            t = text;
            text_name = path;
            if (a.protocol == FLX_PPL_HF && is_wikitext_raw(path)) {
                if (flx_wikitext_hf_text(text, bytes, &hf_text, &bytes, &err)) goto fail;
                t = hf_text;
            }
        } else {
            t = flx_ppl_default_text(&bytes);
            flx_sha256_hex(t, bytes, text_hex);
            text_name = "built-in text";
        }
        size_t n;
        if (flx_tokenizer_encode(tok, t, bytes, bos >= 0, 0, &tokens, &n, &err)) goto fail;
        n_tokens = (int64_t)n;
    }

    a.s_tokenize = flx_now_seconds() - t_begin - a.s_load;
    if (a.hmt.path) {   /* long context through the HMT plug-in: its own run and output */
        cli_ppl_hmt_run_in hi = {
            .model = a.emu ? NULL : &model, .hooks = fq ? &fq->hooks : NULL, .bf16 = a.bf16,
            .emu = a.emu ? &emu : NULL, .eo = &a.eo, .threads = (int)a.threads,
            .progress = a.progress >= 0 ? a.progress : isatty(2) && !isatty(1),
            .max_windows = a.chunks, .tokens = tokens, .n_tokens = n_tokens, .json = a.json,
            .model_name = a.model ? a.model : "embedded:tiny", .text_name = text_name,
            .text_hex = text_hex, .protocol = flx_ppl_protocol_name(a.protocol)};
        if (cli_ppl_hmt_run(&a.hmt, &hi, &err)) goto fail;
        rc = FLX_EXIT_OK;
        goto out;
    }
    /* window length: the protocol's default, capped by the model's context if not asked for */
    long long ctx = a.ctx ? a.ctx : a.protocol == FLX_PPL_HF ? 2048 : 512;
    if (!a.ctx && ctx > c->max_seq_len) {
        fprintf(stderr, "flxemu ppl: window %lld exceeds the model's context %d; using %d (set --ctx)\n",
                ctx, c->max_seq_len, c->max_seq_len);
        ctx = c->max_seq_len;
    } else if (ctx > c->max_seq_len) {
        fprintf(stderr, "flxemu ppl: warning: --ctx %lld exceeds the model's context %d\n", ctx,
                c->max_seq_len);
    }

    flx_ppl_plan plan;
    if (flx_ppl_plan_make(&plan, a.protocol, n_tokens, ctx, a.chunks, bos, &err)) goto fail;
    if (a.emu) {
        /* a recipe or shape the hardware cannot run fails here, with the reason */
        if (cli_emu_start(&emu, &a.eo, ctx, (int)a.threads, &err)) goto fail;
        fprintf(stderr, "flxemu ppl: engine emu (bit-exact FlexLLM), %s%s\n", flx_emu_fp_name(&a.eo.fp),
                a.eo.reference_quirks ? ", reference quirks" : "");
        if (ctx > CLI_EMU_U280_PREFILL_TOKENS)
            fprintf(stderr, "flxemu ppl: note: the window of %lld tokens exceeds the U280's %d-token "
                            "prefill (emulated anyway)\n", ctx, CLI_EMU_U280_PREFILL_TOKENS);
    }
    fprintf(stderr, "perplexity: protocol %s, %lld tokens, calculating perplexity over %lld chunks, "
                    "n_ctx=%lld, %lld scored per chunk, %lld threads\n",
            flx_ppl_protocol_name(a.protocol), (long long)n_tokens, (long long)plan.n_windows, ctx,
            (long long)plan.n_scored, a.threads);

    flx_progress bar;
    int show = mpi.rank == 0 && (a.progress >= 0 ? a.progress : isatty(2) && !isatty(1));
    flx_progress_begin(&bar, "ppl", plan.n_windows, show);
    stream_ctx sc = {&bar, plan.n_windows, 1};
    flx_ppl_opts o = {
        .protocol = a.protocol, .n_ctx = ctx, .max_windows = a.chunks, .bos_id = bos,
        .llama = {.n_threads = (int)a.threads, .bf16_activations = a.bf16,
                  .hooks = fq ? &fq->hooks : NULL},
        .save_logits_path = a.save_logits, .kl_base = have_base ? &base : NULL,
        .on_window = on_window, .on_window_ctx = &sc,
        .window_logits = a.emu ? cli_emu_window : NULL, .window_ctx = &emu,
        .pool = a.emu ? emu.pool : NULL};
    int run_rc = cli_mpi_ppl_run(&mpi, mp, tokens, n_tokens, &o, &res, &err);
    if (!run_rc && mpi.rank != 0) {   /* rank 0 prints and writes the whole run's results */
        rc = FLX_EXIT_OK;
        goto out;
    }
    flx_progress_end(&bar);
    printf("\n");
    fflush(stdout);
    if (run_rc) goto fail;

    if (a.protocol == FLX_PPL_LLAMACPP)
        printf("Final estimate: PPL = %.4lf +/- %.5lf\n", res.ppl, res.ppl_unc);
    else
        printf("Final estimate: PPL = %.4lf +/- %.5lf  (hf protocol: exp of the mean of %lld window "
               "means, %lld tokens scored)\n",
               res.ppl, res.ppl_unc, (long long)plan.n_windows, (long long)res.n_scored);
    /* calibration text that overlaps the evaluation stream inflates the
     * result: the .flxq keeps a sample of its calibration n-grams */
    if (a.model && flx_qmodel_is_file(a.model)) {
        int64_t n_chk = 0;
        int64_t n_eval = plan.n_windows * plan.n_ctx < n_tokens ? plan.n_windows * plan.n_ctx : n_tokens;
        double ov = flx_qmodel_calib_overlap(a.model, tokens, n_eval, &n_chk);
        if (ov > 0.01)
            fprintf(stderr, "flxemu ppl: warning: %.1f%% of the evaluation text's sampled %d-token n-grams "
                            "(%lld checked) of the evaluated windows occur in the calibration windows of %s: "
                            "calibration and evaluation text overlap\n", 100.0 * ov, FLX_NGRAM_N, (long long)n_chk, a.model);
    }
    /* a .flxq names its recipe and provenance (issue 15); --json gets "quantized" */
    char *qdesc = NULL;
    if (a.model && flx_qmodel_is_file(a.model)) {
        flx_qmeta qmt;
        if (flx_qmeta_read(&qmt, a.model, &err) == FLX_OK) {
            char line[1024];
            flx_qmeta_summary(&qmt, line, sizeof line);
            printf("quantized model: %s\n", line);
            qdesc = flx_qmeta_json(&qmt);
            flx_qmeta_free(&qmt);
        }
    }
    char engine_json[1024];
    if (a.emu) {
        printf("engine emu: %s, reference quirks %s\n", flx_emu_fp_name(&a.eo.fp),
               a.eo.reference_quirks ? "on" : "off");
        /* device time: one prefill of n_ctx tokens per window */
        double win_s = cli_emu_prefill_seconds(&emu, ctx);
        double dev_s = win_s >= 0 ? win_s * (double)plan.n_windows : -1.0;
        if (dev_s >= 0)
            fprintf(stderr, "device: simulated U280 time (%s) %.6f s = %lld windows x %.6f s prefill of "
                            "%lld tokens%s\n", CLI_EMU_PERF_CONFIG, dev_s, (long long)plan.n_windows,
                    win_s, ctx, cli_emu_shape_matches(&emu) ? "" : " (the design's model shape, not this model's)");
        else
            fprintf(stderr, "device: simulated U280 time unavailable: %s\n", emu.perf_note);
        /* null when the cycle model refuses (a window over the U280's prefill) */
        char win_txt[32] = "null", dev_txt[32] = "null";
        if (dev_s >= 0) {
            snprintf(win_txt, sizeof win_txt, "%.9g", win_s);
            snprintf(dev_txt, sizeof dev_txt, "%.9g", dev_s);
        }
        snprintf(engine_json, sizeof engine_json,
                 "  \"engine\": \"emu\",\n  \"exp\": \"%s\",\n  \"ftz\": %s,\n  \"fp\": \"%s\",\n"
                 "  \"reference_quirks\": %s,\n  \"exceeds_u280_prefill\": %s,\n"
                 "  \"device_config\": \"%s\",\n  \"device_prefill_seconds_per_window\": %s,\n"
                 "  \"device_seconds\": %s,\n  \"device_model_shape_matches\": %s",
                 flx_emu_exp_name(a.eo.fp.exp), a.eo.fp.ftz ? "true" : "false", flx_emu_fp_name(&a.eo.fp),
                 a.eo.reference_quirks ? "true" : "false",
                 ctx > CLI_EMU_U280_PREFILL_TOKENS ? "true" : "false", CLI_EMU_PERF_CONFIG, win_txt,
                 dev_txt, cli_emu_shape_matches(&emu) ? "true" : "false");
    } else {
        snprintf(engine_json, sizeof engine_json, "  \"engine\": \"float\",\n  \"fake_quant\": %s",
                 fq ? "true" : "false");
    }
    if (res.has_kld) print_kld(&res.kld);
    fflush(stdout);
    fprintf(stderr, "perplexity: %.2f seconds, %.1f tokens/s (load %.2f s, tokenize %.2f s)\n",
            res.seconds, res.tokens_per_second, a.s_load, a.s_tokenize);
    char *eng = malloc(strlen(engine_json) + (qdesc ? strlen(qdesc) : 0) + 32);
    if (eng) sprintf(eng, "%s%s%s", engine_json, qdesc ? ",\n  \"quantized\": " : "", qdesc ? qdesc : "");
    free(qdesc);
    int jrc = a.json && eng ? write_json(a.json, &a, mp, a.model ? a.model : "embedded:tiny", text_name,
                                         text_hex, tokens, &res, eng, &err)
                            : FLX_OK;
    free(eng);
    if (jrc) goto fail;
    rc = FLX_EXIT_OK;
    goto out;

fail:
    rc = cli_fail(CMD, &err);
out:
    flx_ppl_result_free(&res);
    if (have_base) flx_kld_base_close(&base);
    free(tokens);
    free(text);
    free(hf_text);
    free(default_file);
    flx_tokenizer_free(tok_override);
    flx_model_free(&model);
    flx_fakequant_close(fq);
    cli_emu_close(&emu);
    cli_mpi_end(&mpi, rc != FLX_EXIT_OK);
    return rc;
}
