/* flxemu compare -- several models (float checkpoints and .flxq files) on
 * the same windows of one text, in one table: PPL and its +/-, KLD and
 * same-top against the first model, bits per weight and file size.  The
 * first model's log-probabilities are saved once and every other model is
 * scored against them (flxemu ppl --save-logits / --kl-base, in one run). */
#include "cli.h"
#include "flx_llama.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "compare"
#define MAX_MODELS 64

typedef struct cmp_args {
    const char *file, *tokenizer, *json;
    int format;                   /* index in "text|markdown|json" */
    long long ctx, chunks, threads;
} cmp_args;

#define A(f) offsetof(cmp_args, f)
static const cli_opt cmp_opts[] = {
    CLI_S("file", 'f', "TEXT", A(file), "evaluation text (required)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer), "tokenizer.json or .gguf (default: the first model's)"),
    CLI_I("ctx", 'c', "N", A(ctx), 2, 1 << 20, "window length (default 2048, capped at the models' context)"),
    CLI_I("chunks", 0, "N", A(chunks), 1, 1 << 30, "at most N windows (default: all)"),
    CLI_C("format", "text|markdown|json", "text|markdown|json", A(format), "table format on stdout (default text)"),
    CLI_S("json", 0, "FILE", A(json), "also write the JSON table to FILE"),
    CLI_THREADS(A(threads)),
    {0}};
#undef A

static const cli_spec cmp_spec = {
    .name = CMD,
    .usage = "--file TEXT [options] MODEL [MODEL ...]",
    .about = "Evaluates every MODEL (HF folder, .gguf, or .flxq: its fake-quant model) on the\n"
             "same windows of TEXT (HF protocol, as flxemu ppl) and prints one table: PPL +/-,\n"
             "mean KLD and same-top against the first MODEL, bits per weight, file size.\n"
             "The first model's log-probabilities are computed once and reused.",
    .positional = "  MODEL ...               the models; the first is the KLD base",
    .max_positional = MAX_MODELS,
    .examples = "flxemu compare --file wiki.test.raw llama-3.2-1b/ w4.flxq q.flxq\n"
                "flxemu compare --file text.txt --ctx 512 --chunks 8 --format markdown base/ a.flxq\n"
                "flxemu compare --file text.txt --json table.json base/ a.flxq b.flxq",
    .notes = "bits/weight: for a .flxq, the bits of the projections' and head's codes plus\n"
             "their scales, zero points and sums, per weight; for a float model, the weight\n"
             "file's bits per parameter.\n",
};

typedef struct row {
    const char *path;
    char recipe[64];
    double ppl, ppl_unc, kld, kld_unc, same_top, same_top_unc, bits_per_weight;
    long long file_bytes;
    int has_kld;
} row;

static long long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) return (long long)st.st_size;
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* stored bits of a quantized tensor per weight, counted in bits */
static void qt_bits(const flx_qtensor *t, double *bits, double *weights)
{
    double n = (double)t->n_out * t->n_in;
    *weights += n;
    if (!flx_qtensor_is_int(t)) {
        *bits += 32.0 * n;
        return;
    }
    double ng = (double)t->n_out * (t->n_in / t->group_size);
    *bits += (double)t->bits * n + 32.0 * ng * (t->zero ? 2 : 1) + (t->wsum ? 32.0 * t->n_out : 0);
}

static double flxq_bits_per_weight(const flx_qmodel *qm)
{
    double bits = 0, w = 0;
    for (int l = 0; l < qm->cfg.n_layers; l++) {
        const flx_qlayer *L = &qm->layers[l];
        const flx_qtensor *t[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) qt_bits(t[i], &bits, &w);
    }
    qt_bits(&qm->head, &bits, &w);
    return w > 0 ? bits / w : 0;
}

/* What the phases of one compare run share; cmp_free releases it. */
typedef struct cmp_run {
    row rows[MAX_MODELS];
    flx_tokenizer *tok_own;
    int32_t *tokens;
    int64_t n_tokens;
    int32_t bos;
    char *text;
    long long ctx;
    char base_path[4096];         /* the first model's saved log-probs */
} cmp_run;

/* A model: float, or a .flxq's fake-quant model; its recipe and size. */
static int cmp_open(const char *path, long long threads, row *r, flx_model *m, flx_fakequant **fq,
                    flx_error *err)
{
    r->path = path;
    r->file_bytes = file_size(path);
    if (flx_qmodel_is_file(path)) {
        if (flx_fakequant_open_threads(fq, m, path, (int)threads, err)) return FLX_EIO;
        snprintf(r->recipe, sizeof r->recipe, "%s", (*fq)->qm->recipe);
        r->bits_per_weight = flxq_bits_per_weight((*fq)->qm);
    } else {
        if (flx_model_load(m, path, err)) return FLX_EIO;
        snprintf(r->recipe, sizeof r->recipe, "float");
        r->bits_per_weight = m->n_params > 0 && r->file_bytes > 0 ? 8.0 * (double)r->file_bytes / (double)m->n_params : 0;
    }
    return FLX_OK;
}

/* The token stream, once, with the first model's tokenizer (as flxemu ppl). */
static int cmp_tokens(const cmp_args *a, cmp_run *c, const flx_model *m, const char *first, flx_error *err)
{
    const flx_tokenizer *tok = m->tok;
    if (a->tokenizer) {
        if (flx_tokenizer_load(&c->tok_own, a->tokenizer, err)) return FLX_EIO;
        tok = c->tok_own;
    }
    if (!tok) return flx_fail(err, FLX_ENOTFOUND, "%s has no tokenizer; pass --tokenizer", first);
    c->bos = flx_tokenizer_adds_bos(tok) ? flx_tokenizer_bos(tok) : -1;
    size_t bytes, n;
    if (flx_read_file(a->file, (size_t)1 << 31, &c->text, &bytes, err)) return FLX_EIO;
    if (flx_tokenizer_encode(tok, c->text, bytes, c->bos >= 0, 0, &c->tokens, &n, err)) return FLX_EIO;
    c->n_tokens = (int64_t)n;
    if (!c->ctx) c->ctx = 2048 < m->cfg.max_seq_len ? 2048 : m->cfg.max_seq_len;
    snprintf(c->base_path, sizeof c->base_path, "%s/flxemu-compare-%d.kld",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    return FLX_OK;
}

/* Model mi on the windows: the first saves its log-probs, the others are
 * scored against them. */
static int cmp_score(const cmp_args *a, cmp_run *c, int mi, const char *path, flx_error *err)
{
    row *r = &c->rows[mi];
    flx_model m = {0};
    flx_fakequant *fq = NULL;
    flx_kld_base base;
    int have_base = 0;
    int rc = cmp_open(path, a->threads, r, &m, &fq, err);
    if (!rc && mi == 0) rc = cmp_tokens(a, c, &m, path, err);
    if (!rc && mi > 0 && !(rc = flx_kld_base_open(&base, c->base_path, err))) have_base = 1;
    if (!rc) {
        flx_ppl_opts o = {0};
        o.protocol = FLX_PPL_HF;
        o.n_ctx = c->ctx;
        o.max_windows = a->chunks;
        o.bos_id = c->bos;
        o.llama.n_threads = (int)a->threads;
        o.llama.hooks = fq ? &fq->hooks : NULL;
        o.save_logits_path = mi == 0 ? c->base_path : NULL;
        o.kl_base = have_base ? &base : NULL;
        flx_ppl_result res = {0};
        fprintf(stderr, "flxemu compare: %s (%s)\n", path, r->recipe);
        rc = flx_ppl_run(&m, c->tokens, c->n_tokens, &o, &res, err);
        if (rc == FLX_OK) {
            r->ppl = res.ppl;
            r->ppl_unc = res.ppl_unc;
            if (res.has_kld) {
                r->has_kld = 1;
                r->kld = res.kld.kld.mean;
                r->kld_unc = res.kld.kld.unc;
                r->same_top = 100.0 * res.kld.same_top.mean;
                r->same_top_unc = 100.0 * res.kld.same_top.unc;
            }
        }
        flx_ppl_result_free(&res);
    }
    if (have_base) flx_kld_base_close(&base);
    flx_model_free(&m);
    flx_fakequant_close(fq);
    return rc;
}

/* The table on stdout (text, markdown or JSON) and its JSON for --json. */
static char *cmp_table(const cmp_args *a, const cmp_run *c, const char *const *models, int n_models)
{
    static const char *const formats[3] = {"text", "markdown", "json"};
    const char *format = formats[a->format];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "text", a->file);
    cJSON_AddNumberToObject(root, "ctx", (double)c->ctx);
    cJSON_AddStringToObject(root, "base", models[0]);
    cJSON *arr = cJSON_AddArrayToObject(root, "models");
    int md = !strcmp(format, "markdown");
    if (!strcmp(format, "text"))
        printf("%-40s %-20s %20s %22s %16s %9s %12s\n", "model", "recipe", "PPL", "KLD vs first", "same top",
               "bits/w", "bytes");
    else if (md)
        printf("| model | recipe | PPL | KLD vs first | same top | bits/weight | file bytes |\n|---|---|---|---|---|---|---|\n");
    for (int mi = 0; mi < n_models; mi++) {
        const row *r = &c->rows[mi];
        char kld[64] = "-", top[64] = "-";
        if (r->has_kld) {
            snprintf(kld, sizeof kld, "%.6f ± %.6f", r->kld, r->kld_unc);
            snprintf(top, sizeof top, "%.3f ± %.3f %%", r->same_top, r->same_top_unc);
        }
        if (!strcmp(format, "text"))
            printf("%-40s %-20s %10.4f ± %7.5f %22s %16s %9.3f %12lld\n", r->path, r->recipe, r->ppl, r->ppl_unc, kld,
                   top, r->bits_per_weight, r->file_bytes);
        else if (md)
            printf("| %s | %s | %.4f ± %.5f | %s | %s | %.3f | %lld |\n", r->path, r->recipe, r->ppl, r->ppl_unc, kld,
                   top, r->bits_per_weight, r->file_bytes);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model", r->path);
        cJSON_AddStringToObject(e, "recipe", r->recipe);
        cJSON_AddNumberToObject(e, "ppl", r->ppl);
        cJSON_AddNumberToObject(e, "ppl_uncertainty", r->ppl_unc);
        if (r->has_kld) {
            cJSON_AddNumberToObject(e, "kld", r->kld);
            cJSON_AddNumberToObject(e, "kld_uncertainty", r->kld_unc);
            cJSON_AddNumberToObject(e, "same_top_percent", r->same_top);
            cJSON_AddNumberToObject(e, "same_top_uncertainty", r->same_top_unc);
        }
        cJSON_AddNumberToObject(e, "bits_per_weight", r->bits_per_weight);
        cJSON_AddNumberToObject(e, "file_bytes", (double)r->file_bytes);
        cJSON_AddItemToArray(arr, e);
    }
    char *js = cJSON_Print(root);
    cJSON_Delete(root);
    if (!strcmp(format, "json") && js) printf("%s\n", js);
    return js;
}

int flx_cmd_compare(int argc, char **argv)
{
    cmp_args a = {0};
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a.threads = n_cpu > 0 ? n_cpu : 1;
    const char *models[MAX_MODELS];
    int n_models = 0;
    const cli_group g[] = {{cmp_opts, &a, NULL}};
    int rc = cli_parse(&cmp_spec, g, 1, argc, argv, models, &n_models);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    if (!a.file) return cli_usage_error(CMD, "--file TEXT is required");
    if (n_models < 1) return cli_usage_error(CMD, "give at least one MODEL");

    flx_error err = {0};
    cmp_run *c = calloc(1, sizeof *c);
    if (!c) return cli_fail(CMD, &(flx_error){FLX_ENOMEM, "out of memory"});
    c->ctx = a.ctx;
    c->bos = -1;
    rc = FLX_EXIT_OK;
    for (int mi = 0; mi < n_models && rc == FLX_EXIT_OK; mi++)
        if (cmp_score(&a, c, mi, models[mi], &err)) rc = cli_fail(CMD, &err);
    if (rc == FLX_EXIT_OK) {
        char *js = cmp_table(&a, c, models, n_models);
        if (a.json) rc = cli_write_text(CMD, a.json, js, "\n");
        cJSON_free(js);
    }
    if (c->base_path[0]) unlink(c->base_path);
    flx_tokenizer_free(c->tok_own);
    free(c->tokens);
    free(c->text);
    free(c);
    return rc;
}
