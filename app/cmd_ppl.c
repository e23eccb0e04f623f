/* flxemu ppl -- perplexity of a model on a text, under the Hugging Face
 * (default) or the llama.cpp protocol (docs/ppl.md). */
#include "cli.h"
#include "cli_emu.h"
#include "cli_model.h"
#include "cli_ppl_hmt.h"
#include "cli_mpi.h"
#include "flx_ppl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "ppl"

typedef struct ppl_args {
    const char *model, *tokenizer, *file, *tokens, *json, *save_logits, *kl_base;
    int bos, bf16, progress;     /* progress: -1 auto */
    int model_sha;               /* --model-sha256: digest big weight files too */
    int emu, emu_flags;          /* --engine emu; an emu-only flag was given */
    int protocol_choice;         /* --protocol: index in "hf|llamacpp|llama.cpp" */
    flx_emu_opts eo;
    cli_ppl_hmt hmt;             /* --hmt and its options (cli_ppl_hmt.c) */
    flx_ppl_protocol protocol;
    long long ctx, chunks, threads;
    double s_load, s_tokenize;   /* wall seconds of loading and tokenizing (for --json) */
} ppl_args;

#define A(f) offsetof(ppl_args, f)
static const cli_opt ppl_opts[] = {
    CLI_SEC("input:"),
    CLI_S("model", 'm', "PATH", A(model),
          "HF checkpoint folder, config.json/model.safetensors, .gguf,\n"
          "or a quantized .flxq (its fake-quant float model); also positional"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer), "tokenizer.json or .gguf overriding the model's own"),
    CLI_S("file", 'f', "FILE", A(file),
          "text file (default with --model: WikiText-2 wiki.test.raw from\n"
          "$FLXEMU_DATA/wikitext2 or data/wikitext2 (see data/wikitext2/README.md))"),
    CLI_S("tokens", 0, "FILE", A(tokens), "token ids, one per line, used exactly as given"),
    CLI_F("bos", 0, 1, A(bos), "with --tokens: prepend the vocabulary's BOS"),
    CLI_SEC("protocol:"),
    CLI_C("protocol", "hf|llamacpp", "hf|llamacpp|llama.cpp", A(protocol_choice),
          "hf (default): windows of --ctx, all positions scored,\n"
          "WikiText rows rebuilt as the HF loader yields them;\n"
          "llamacpp: BOS over each chunk's first token, second half scored"),
    CLI_I("ctx", 'c', "N", A(ctx), 2, 1 << 20, "window length (default 2048 for hf, 512 for llamacpp)"),
    CLI_I("chunks", 0, "N", A(chunks), 1, 1LL << 40, "evaluate at most N windows (default: all)"),
    CLI_SEC("compute:"),
    CLI_C("engine", "float|emu", "float|emu", A(emu),
          "float (default): float reference (fake-quant for a .flxq);\n"
          "emu: bit-exact FlexLLM U280 engine on a .flxq made with\n"
          "`flxemu quantize --recipe flexllm` (prefill kernels, then the\n"
          "decode-stage final norm and INT4 head for every position);\n"
          "windows over 1024 tokens run but exceed the U280's prefill;\n"
          "the simulated U280 time (u280_mem_opt) goes to stderr/--json"),
    CLI_THREADS(A(threads)),
    CLI_F("bf16-activations", 0, 1, A(bf16), "round activations to BF16 (mimics a BF16 GPU run)"),
    CLI_SEC("output:"),
    CLI_S("json", 0, "FILE", A(json),
          "machine-readable results (model_sha256 is the weight file's digest\n"
          "when it is under 256 MiB, else null unless --model-sha256)"),
    CLI_F("model-sha256", 0, 1, A(model_sha), "digest the weight file for --json whatever its size (2.5 GB: ~10 s)"),
    CLI_S("save-logits", 0, "FILE", A(save_logits), "save 16-bit log-probs of the scored tokens (llama.cpp KLD format)"),
    CLI_S("kl-base", 0, "FILE", A(kl_base), "compare with a saved run (its tokens are used): KLD, same top, PPL ratio"),
    CLI_F("progress", 0, 1, A(progress), "progress bar on stderr (default: when stderr is a\nterminal and stdout is not)"),
    CLI_F("no-progress", 0, 0, A(progress), "no progress bar"),
    {0}};
#undef A

static const cli_spec ppl_spec = {
    .name = CMD,
    .usage = "[MODEL] [options]",
    .about = "Perplexity of a Llama model on a text.  Without a model: a small synthetic\n"
             "model (flxemu synth's \"tiny\" shape, seed " CLI_STR(CLI_EMBEDDED_SEED) ") on a short built-in text.",
    .positional = "  MODEL                   the model, as --model PATH",
    .max_positional = 1,
    .examples = "flxemu ppl                                   # embedded tiny model, built-in text\n"
                "flxemu ppl llama-3.2-1b/ --ctx 2048          # WikiText-2 test, HF protocol\n"
                "flxemu ppl q.flxq --engine emu --chunks 4 --json r.json   # bit-exact engine\n"
                "flxemu ppl llama-3.2-1b/ --protocol llamacpp --save-logits base.kld",
    .notes = "Per-window values print as [i]x.xxxx, and the result as 'Final estimate: PPL = X +/- Y'\n"
             "(llama.cpp's format; +/- is its first-order standard error).\n",
};

static int parse_args(int argc, char **argv, ppl_args *a)
{
    memset(a, 0, sizeof *a);
    a->progress = -1;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    flx_emu_opts_default(&a->eo);
    cli_ppl_hmt_init(&a->hmt);
    const cli_group g[] = {{ppl_opts, a, NULL}, {cli_emu_opts, &a->eo, &a->emu_flags},
                           {cli_ppl_hmt_opts, &a->hmt, &a->hmt.seen}};
    const char *pos[1];
    int n_pos, rc = cli_parse(&ppl_spec, g, 3, argc, argv, pos, &n_pos);
    if (rc) return rc;
    if (n_pos && (rc = cli_positional_path(CMD, "--model", &a->model, pos[0]))) return rc;
    a->protocol = a->protocol_choice == 0 ? FLX_PPL_HF : FLX_PPL_LLAMACPP;
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
    cli_json_str(fp, model_name);
    fprintf(fp, ",\n  \"model_sha256\": ");
    if (model_hex[0]) cli_json_str(fp, model_hex);
    else fputs("null", fp);
    fprintf(fp, ",\n  \"text\": ");
    cli_json_str(fp, text_name);
    fprintf(fp, ",\n  \"text_sha256\": ");
    cli_json_str(fp, text_hex);
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

/* ---------------------------------------------------------------- load / run / report */

/* What the phases of one ppl run share; ppl_free releases it. */
typedef struct ppl_run {
    cli_model m;                  /* model, engine and tokenizer (cli_model.h) */
    int32_t bos;                  /* BOS of the vocabulary if it adds one, else -1 */
    flx_kld_base base;
    int have_base;
    char *text, *hf_text, *default_file;
    int32_t *tokens;
    int64_t n_tokens;
    char text_hex[65];
    const char *text_name;
    long long ctx;                /* window length used */
    flx_ppl_plan plan;
    flx_ppl_result res;
    cli_mpi mpi;
} ppl_run;

/* The model (float, fake-quant .flxq, bit-exact engine, or the embedded
 * one) and its tokenizer. */
static int ppl_load(ppl_args *a, ppl_run *r, double t_begin, flx_error *err)
{
    if (cli_model_open(&r->m, a->model, a->emu, a->tokenizer, (int)a->threads, err)) return FLX_EIO;
    if (!a->model)
        fprintf(stderr, "flxemu ppl: no --model: embedded synthetic \"tiny\" model (seed %d), %s\n",
                CLI_EMBEDDED_SEED, a->file || a->tokens ? "given text" : "built-in text");
    const flx_llama_config *c = &r->m.mp->cfg;
    const flx_tokenizer *tok = r->m.tok;
    if (tok && flx_tokenizer_n_vocab(tok) > c->n_vocab)
        return flx_fail(err, FLX_EINVAL, "%s: tokenizer has %d tokens, the model only %d",
                        a->tokenizer ? a->tokenizer : r->m.mp->path, flx_tokenizer_n_vocab(tok), c->n_vocab);
    /* BOS of the vocabulary, if it adds one (llama.cpp's add_bos) */
    r->bos = tok ? (flx_tokenizer_adds_bos(tok) ? flx_tokenizer_bos(tok) : -1) : c->bos_id;
    a->s_load = flx_now_seconds() - t_begin;
    return FLX_OK;
}

/* --kl-base: its tokens, n_ctx and protocol. */
static int tokens_from_base(const ppl_args *a, ppl_run *r, flx_error *err)
{
    if (flx_kld_base_open(&r->base, a->kl_base, err)) return FLX_EIO;
    r->have_base = 1;
    r->n_tokens = (int64_t)r->base.n_chunk * r->base.n_ctx;
    r->tokens = malloc((size_t)r->n_tokens * sizeof *r->tokens);
    if (!r->tokens) return flx_fail(err, FLX_ENOMEM, "out of memory");
    memcpy(r->tokens, r->base.tokens, (size_t)r->n_tokens * sizeof *r->tokens);
    r->text_name = a->kl_base;
    return FLX_OK;
}

/* --tokens FILE (with --bos: BOS prepended) */
static int tokens_from_file(const ppl_args *a, ppl_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->m.mp->cfg;
    if (flx_tokens_read(a->tokens, c->n_vocab, &r->tokens, &r->n_tokens, err)) return FLX_EIO;
    if (a->bos) {
        int32_t b = r->m.tok ? flx_tokenizer_bos(r->m.tok) : c->bos_id;
        if (b < 0) return flx_fail(err, FLX_EINVAL, "--bos: the vocabulary has no BOS token");
        int32_t *t2 = malloc((size_t)(r->n_tokens + 1) * sizeof *t2);
        if (!t2) return flx_fail(err, FLX_ENOMEM, "out of memory");
        t2[0] = b;
        memcpy(t2 + 1, r->tokens, (size_t)r->n_tokens * sizeof *t2);
        free(r->tokens);
        r->tokens = t2;
        r->n_tokens++;
    }
    if (flx_sha256_file_hex(a->tokens, r->text_hex, err)) return FLX_EIO;
    r->text_name = a->tokens;
    return FLX_OK;
}

/* --file, the default WikiText-2 test file, or the built-in text, encoded */
static int tokens_from_text(const ppl_args *a, ppl_run *r, flx_error *err)
{
    size_t bytes;
    const char *path = a->file;
    if (!path && a->model) {
        r->default_file = find_default_text();
        if (!r->default_file)
            return flx_fail(err, FLX_ENOTFOUND,
                            "no text given and WikiText-2 wiki.test.raw not found in $FLXEMU_DATA/wikitext2 "
                            "or data/wikitext2; fetch it with "
                            "data/wikitext2/fetch.sh (see data/wikitext2/README.md) or pass --file");
        path = r->default_file;
    }
    if (!r->m.tok)
        return flx_fail(err, FLX_ENOTFOUND, "%s: the model has no tokenizer; pass --tokenizer or --tokens",
                        r->m.mp->path ? r->m.mp->path : "model");
    const char *t;
    if (path) {
        if (flx_read_file(path, (size_t)1 << 31, &r->text, &bytes, err)) return FLX_EIO;
        flx_sha256_hex(r->text, bytes, r->text_hex);
        int checked;
        if (flx_wikitext_check(path, r->text_hex, &checked, err)) return FLX_EIO;
        t = r->text;
        r->text_name = path;
        if (a->protocol == FLX_PPL_HF && is_wikitext_raw(path)) {
            if (flx_wikitext_hf_text(r->text, bytes, &r->hf_text, &bytes, err)) return FLX_EIO;
            t = r->hf_text;
        }
    } else {
        t = flx_ppl_default_text(&bytes);
        flx_sha256_hex(t, bytes, r->text_hex);
        r->text_name = "built-in text";
    }
    size_t n;
    if (flx_tokenizer_encode(r->m.tok, t, bytes, r->bos >= 0, 0, &r->tokens, &n, err)) return FLX_EIO;
    r->n_tokens = (int64_t)n;
    return FLX_OK;
}

/* The window length: --ctx, else the protocol's default capped by the
 * model's context. */
static long long window_length(const ppl_args *a, const flx_llama_config *c)
{
    long long ctx = a->ctx ? a->ctx : a->protocol == FLX_PPL_HF ? 2048 : 512;
    if (!a->ctx && ctx > c->max_seq_len) {
        fprintf(stderr, "flxemu ppl: window %lld exceeds the model's context %d; using %d (set --ctx)\n",
                ctx, c->max_seq_len, c->max_seq_len);
        ctx = c->max_seq_len;
    } else if (ctx > c->max_seq_len) {
        fprintf(stderr, "flxemu ppl: warning: --ctx %lld exceeds the model's context %d\n", ctx,
                c->max_seq_len);
    }
    return ctx;
}

/* --hmt: long context through the HMT plug-in, its own run and output */
static int ppl_run_hmt(const ppl_args *a, ppl_run *r, flx_error *err)
{
    cli_ppl_hmt_run_in hi = {
        .model = a->emu ? NULL : &r->m.model, .hooks = r->m.fq ? &r->m.fq->hooks : NULL, .bf16 = a->bf16,
        .emu = a->emu ? &r->m.emu : NULL, .eo = &a->eo, .threads = (int)a->threads,
        .progress = a->progress >= 0 ? a->progress : isatty(2) && !isatty(1),
        .max_windows = a->chunks, .tokens = r->tokens, .n_tokens = r->n_tokens, .json = a->json,
        .model_name = a->model ? a->model : "embedded:tiny", .text_name = r->text_name,
        .text_hex = r->text_hex, .protocol = flx_ppl_protocol_name(a->protocol)};
    return cli_ppl_hmt_run(&a->hmt, &hi, err);
}

/* Plans the windows and evaluates them (shared among MPI ranks). */
static int ppl_eval(const ppl_args *a, ppl_run *r, flx_error *err)
{
    if (flx_ppl_plan_make(&r->plan, a->protocol, r->n_tokens, r->ctx, a->chunks, r->bos, err)) return FLX_EIO;
    if (a->emu) {
        /* a recipe or shape the hardware cannot run fails here, with the reason */
        if (cli_emu_start(&r->m.emu, &a->eo, r->ctx, (int)a->threads, err)) return FLX_EIO;
        fprintf(stderr, "flxemu ppl: engine emu (bit-exact FlexLLM), %s%s\n", flx_emu_fp_name(&a->eo.fp),
                a->eo.reference_quirks ? ", reference quirks" : "");
        if (r->ctx > CLI_EMU_U280_PREFILL_TOKENS)
            fprintf(stderr, "flxemu ppl: note: the window of %lld tokens exceeds the U280's %d-token "
                            "prefill (emulated anyway)\n", r->ctx, CLI_EMU_U280_PREFILL_TOKENS);
    }
    fprintf(stderr, "perplexity: protocol %s, %lld tokens, calculating perplexity over %lld chunks, "
                    "n_ctx=%lld, %lld scored per chunk, %lld threads\n",
            flx_ppl_protocol_name(a->protocol), (long long)r->n_tokens, (long long)r->plan.n_windows, r->ctx,
            (long long)r->plan.n_scored, a->threads);

    flx_progress bar;
    int show = r->mpi.rank == 0 && (a->progress >= 0 ? a->progress : isatty(2) && !isatty(1));
    flx_progress_begin(&bar, "ppl", r->plan.n_windows, show);
    stream_ctx sc = {&bar, r->plan.n_windows, 1};
    flx_ppl_opts o = {
        .protocol = a->protocol, .n_ctx = r->ctx, .max_windows = a->chunks, .bos_id = r->bos,
        .llama = {.n_threads = (int)a->threads, .bf16_activations = a->bf16,
                  .hooks = r->m.fq ? &r->m.fq->hooks : NULL},
        .save_logits_path = a->save_logits, .kl_base = r->have_base ? &r->base : NULL,
        .on_window = on_window, .on_window_ctx = &sc,
        .window_logits = a->emu ? cli_emu_window : NULL, .window_ctx = &r->m.emu,
        .pool = a->emu ? r->m.emu.pool : NULL};
    int run_rc = cli_mpi_ppl_run(&r->mpi, r->m.mp, r->tokens, r->n_tokens, &o, &r->res, err);
    if (!run_rc && r->mpi.rank != 0) return FLX_OK;   /* rank 0 prints the whole run's results */
    flx_progress_end(&bar);
    printf("\n");
    fflush(stdout);
    return run_rc;
}

/* --engine emu: the simulated device time (stderr) and the engine's --json fields */
static void report_emu(const ppl_args *a, ppl_run *r, char *json, size_t cap)
{
    printf("engine emu: %s, reference quirks %s\n", flx_emu_fp_name(&a->eo.fp),
           a->eo.reference_quirks ? "on" : "off");
    /* device time: one prefill of n_ctx tokens per window */
    double win_s = cli_emu_prefill_seconds(&r->m.emu, r->ctx);
    double dev_s = win_s >= 0 ? win_s * (double)r->plan.n_windows : -1.0;
    if (dev_s >= 0)
        fprintf(stderr, "device: simulated U280 time (%s) %.6f s = %lld windows x %.6f s prefill of "
                        "%lld tokens%s\n", CLI_EMU_PERF_CONFIG, dev_s, (long long)r->plan.n_windows,
                win_s, r->ctx, cli_emu_shape_matches(&r->m.emu) ? "" : " (the design's model shape, not this model's)");
    else
        fprintf(stderr, "device: simulated U280 time unavailable: %s\n", r->m.emu.perf_note);
    /* null when the cycle model refuses (a window over the U280's prefill) */
    char win_txt[32] = "null", dev_txt[32] = "null";
    if (dev_s >= 0) {
        snprintf(win_txt, sizeof win_txt, "%.9g", win_s);
        snprintf(dev_txt, sizeof dev_txt, "%.9g", dev_s);
    }
    snprintf(json, cap,
             "  \"engine\": \"emu\",\n  \"exp\": \"%s\",\n  \"ftz\": %s,\n  \"fp\": \"%s\",\n"
             "  \"reference_quirks\": %s,\n  \"exceeds_u280_prefill\": %s,\n"
             "  \"device_config\": \"%s\",\n  \"device_prefill_seconds_per_window\": %s,\n"
             "  \"device_seconds\": %s,\n  \"device_model_shape_matches\": %s",
             flx_emu_exp_name(a->eo.fp.exp), a->eo.fp.ftz ? "true" : "false", flx_emu_fp_name(&a->eo.fp),
             a->eo.reference_quirks ? "true" : "false",
             r->ctx > CLI_EMU_U280_PREFILL_TOKENS ? "true" : "false", CLI_EMU_PERF_CONFIG, win_txt,
             dev_txt, cli_emu_shape_matches(&r->m.emu) ? "true" : "false");
}

/* The result on stdout (and --json): PPL, the .flxq's overlap warning and
 * provenance, the engine, KLD. */
static int ppl_report(const ppl_args *a, ppl_run *r, flx_error *err)
{
    const flx_ppl_result *res = &r->res;
    if (a->protocol == FLX_PPL_LLAMACPP)
        printf("Final estimate: PPL = %.4lf +/- %.5lf\n", res->ppl, res->ppl_unc);
    else
        printf("Final estimate: PPL = %.4lf +/- %.5lf  (hf protocol: exp of the mean of %lld window "
               "means, %lld tokens scored)\n",
               res->ppl, res->ppl_unc, (long long)r->plan.n_windows, (long long)res->n_scored);
    /* calibration text that overlaps the evaluation stream inflates the
     * result: the .flxq keeps a sample of its calibration n-grams */
    int is_flxq = a->model && flx_qmodel_is_file(a->model);
    if (is_flxq) {
        int64_t n_chk = 0;
        int64_t n_win = r->plan.n_windows * r->plan.n_ctx;
        int64_t n_eval = n_win < r->n_tokens ? n_win : r->n_tokens;
        double ov = flx_qmodel_calib_overlap(a->model, r->tokens, n_eval, &n_chk);
        if (ov > 0.01)
            fprintf(stderr, "flxemu ppl: warning: %.1f%% of the evaluation text's sampled %d-token n-grams "
                            "(%lld checked) of the evaluated windows occur in the calibration windows of %s: "
                            "calibration and evaluation text overlap\n", 100.0 * ov, FLX_NGRAM_N, (long long)n_chk, a->model);
    }
    /* a .flxq names its recipe and provenance (issue 15); --json gets "quantized" */
    char *qdesc = NULL;
    if (is_flxq) {
        flx_qmeta qmt;
        if (flx_qmeta_read(&qmt, a->model, err) == FLX_OK) {
            char line[1024];
            flx_qmeta_summary(&qmt, line, sizeof line);
            printf("quantized model: %s\n", line);
            qdesc = flx_qmeta_json(&qmt);
            flx_qmeta_free(&qmt);
        }
    }
    char engine_json[1024];
    if (a->emu)
        report_emu(a, r, engine_json, sizeof engine_json);
    else
        snprintf(engine_json, sizeof engine_json, "  \"engine\": \"float\",\n  \"fake_quant\": %s",
                 r->m.fq ? "true" : "false");
    if (res->has_kld) print_kld(&res->kld);
    fflush(stdout);
    fprintf(stderr, "perplexity: %.2f seconds, %.1f tokens/s (load %.2f s, tokenize %.2f s)\n",
            res->seconds, res->tokens_per_second, a->s_load, a->s_tokenize);
    char *eng = malloc(strlen(engine_json) + (qdesc ? strlen(qdesc) : 0) + 32);
    if (eng) sprintf(eng, "%s%s%s", engine_json, qdesc ? ",\n  \"quantized\": " : "", qdesc ? qdesc : "");
    free(qdesc);
    int jrc = a->json && eng ? write_json(a->json, a, r->m.mp, a->model ? a->model : "embedded:tiny", r->text_name,
                                          r->text_hex, r->tokens, res, eng, err)
                             : FLX_OK;
    free(eng);
    return jrc;
}

static void ppl_free(ppl_run *r, int failed)
{
    flx_ppl_result_free(&r->res);
    if (r->have_base) flx_kld_base_close(&r->base);
    free(r->tokens);
    free(r->text);
    free(r->hf_text);
    free(r->default_file);
    cli_model_close(&r->m);
    cli_mpi_end(&r->mpi, failed);
}

int flx_cmd_ppl(int argc, char **argv)
{
    ppl_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    if ((rc = cli_check_output(CMD, "--json", a.json)) ||
        (rc = cli_check_output(CMD, "--save-logits", a.save_logits)))
        return rc;

    flx_error err = {0};
    ppl_run r;
    memset(&r, 0, sizeof r);
    r.mpi = (cli_mpi){0, 1, 0, 0};
    r.text_name = "";
    rc = FLX_EXIT_FAIL;
    /* mpirun/srun: this process is one rank sharing the windows (app/cli_mpi.h) */
    if (cli_mpi_begin(&r.mpi, &err)) goto fail;
    double t_begin = flx_now_seconds();
    if (ppl_load(&a, &r, t_begin, &err)) goto fail;
    if (a.kl_base) {
        if (tokens_from_base(&a, &r, &err)) goto fail;
        if (a.ctx && a.ctx != r.base.n_ctx) {
            rc = cli_usage_error(CMD, "--ctx %lld differs from the base file's n_ctx %d", a.ctx, r.base.n_ctx);
            goto out;
        }
        a.ctx = r.base.n_ctx;
        if (r.base.protocol != a.protocol)
            fprintf(stderr, "flxemu ppl: the base file was saved with --protocol %s; using it\n",
                    flx_ppl_protocol_name(r.base.protocol));
        a.protocol = r.base.protocol;
    } else if (a.tokens ? tokens_from_file(&a, &r, &err) : tokens_from_text(&a, &r, &err)) {
        goto fail;
    }
    a.s_tokenize = flx_now_seconds() - t_begin - a.s_load;
    if (a.hmt.path) {
        if (ppl_run_hmt(&a, &r, &err)) goto fail;
        rc = FLX_EXIT_OK;
        goto out;
    }
    r.ctx = window_length(&a, &r.m.mp->cfg);
    if (ppl_eval(&a, &r, &err)) goto fail;
    if (r.mpi.rank == 0 && ppl_report(&a, &r, &err)) goto fail;
    rc = FLX_EXIT_OK;
    goto out;
fail:
    rc = cli_fail(CMD, &err);
out:
    ppl_free(&r, rc != FLX_EXIT_OK);
    return rc;
}
