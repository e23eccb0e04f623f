/* The bit-exact engine behind `flxemu ppl/generate --engine emu` (cli_emu.h). */
#include "cli_emu.h"
#include "cli.h"
#include "flx_safetensors.h"

#include <stdio.h>
#include <string.h>

static int parse_exp(const char *v, void *dst) { return flx_emu_exp_parse(v, dst); }

const cli_opt cli_emu_opts[] = {
    CLI_SEC("bit-exact engine (--engine emu):"),
    {.kind = CLI_CUSTOM, .name = "exp", .metavar = "glibc|flx", .offset = offsetof(flx_emu_opts, fp.exp),
     .parse = parse_exp, .expect = "glibc or flx", .mark = 1,
     .help = "exponential (default glibc: glibc expf; flx: flx-exp)"},
    {.kind = CLI_FLAG, .name = "ftz", .set = 1, .offset = offsetof(flx_emu_opts, fp.ftz), .mark = 1,
     .help = "flush subnormals to zero"},
    {.kind = CLI_FLAG, .name = "reference-quirks", .set = 1, .offset = offsetof(flx_emu_opts, reference_quirks),
     .mark = 1, .help = "reproduce the reference design's quirks (docs/reference-design.md §6)"},
    {0}};

int cli_emu_load(cli_emu *x, const char *path, int n_threads, flx_error *err)
{
    memset(x, 0, sizeof *x);
    if (!flx_file_exists(path) && !flx_is_dir(path))
        return flx_path_fail(path, err);
    if (!flx_qmodel_is_file(path)) {
        /* a damaged .flxq (truncated, bad header) gets the reader's reason */
        size_t n = strlen(path);
        flx_safetensors st;
        if (n > 5 && !strcmp(path + n - 5, ".flxq") && !flx_is_dir(path)) {
            if (flx_st_open(&st, path, err) != FLX_OK) return err->code;
            flx_st_close(&st);
        }
        return flx_fail(err, FLX_EINVAL,
                        "%s: not a quantized .flxq model; the emu engine runs the FlexLLM W4A4 "
                        "model: run `flxemu quantize --recipe flexllm --model %s --calib TEXT "
                        "--out MODEL.flxq` first",
                        path, path);
    }
    /* the engine packs its own layout from the file's nibbles: no int8
     * copy of the codes; the checks split over the command's threads */
    if (!(x->pool = flx_pool_create(n_threads)))
        return flx_fail(err, FLX_ENOMEM, "cannot start %d threads", n_threads);
    const flx_qload_opts lo = { x->pool, 1 };
    int rc = flx_qmodel_load_ex(&x->qm, path, &lo, err);
    if (rc) return rc;
    x->qm_open = 1;
    x->view.cfg = x->qm.cfg;
    x->view.tok = x->qm.tok;
    x->view.path = (char *)path;
    snprintf(x->view.format, sizeof x->view.format, "flxq");
    return FLX_OK;
}

int cli_emu_start(cli_emu *x, const flx_emu_opts *o, int64_t max_pos, int n_threads,
                  flx_error *err)
{
    if (!x->pool && !(x->pool = flx_pool_create(n_threads)))
        return flx_fail(err, FLX_ENOMEM, "cannot start %d threads", n_threads);
    int rc = flx_emu_engine_init_ex(&x->eng, &x->qm, o, max_pos, x->pool, err);   /* packs on the pool */
    if (rc) return rc;
    x->eng_open = 1;
    flx_error perr = {0};
    if (flx_perf_config_find(CLI_EMU_PERF_CONFIG, NULL, &x->perf, &perr) == FLX_OK)
        x->perf_ok = 1;
    else
        snprintf(x->perf_note, sizeof x->perf_note, "%s", perr.msg);
    return FLX_OK;
}

void cli_emu_close(cli_emu *x)
{
    if (x->pool) flx_pool_free(x->pool);
    if (x->eng_open) flx_emu_engine_free(&x->eng);
    if (x->qm_open) flx_qmodel_free(&x->qm);
    memset(x, 0, sizeof *x);
}

int cli_emu_window(void *ctx, const int32_t *tokens, int64_t n_ctx, flx_ppl_rows_fn rows_fn,
                   void *rows_ctx, flx_error *err)
{
    cli_emu *x = ctx;
    return flx_emu_window_logits(&x->eng, tokens, n_ctx, rows_fn, rows_ctx, x->pool, err);
}

double cli_emu_prefill_seconds(cli_emu *x, int64_t n_tokens)
{
    double cycles, s;
    flx_error e = {0};
    if (!x->perf_ok) return -1.0;
    if (flx_perf_prefill_seconds(&x->perf, n_tokens, &cycles, &s, &e)) {
        snprintf(x->perf_note, sizeof x->perf_note, "%s", e.msg);
        return -1.0;
    }
    return s;
}

double cli_emu_decode_seconds(cli_emu *x, int64_t context)
{
    double cycles, s;
    flx_error e = {0};
    if (!x->perf_ok) return -1.0;
    if (flx_perf_decode_step_seconds(&x->perf, context, &cycles, &s, &e)) {
        snprintf(x->perf_note, sizeof x->perf_note, "%s", e.msg);
        return -1.0;
    }
    return s;
}

int cli_emu_shape_matches(const cli_emu *x)
{
    const flx_perf_model *pm = &x->perf.model;
    const flx_llama_config *c = &x->qm.cfg;
    return pm->n_layers == c->n_layers && pm->dim == c->d_model && pm->head_dim == c->head_dim &&
           pm->n_q_heads == c->n_heads && pm->n_kv_heads == c->n_kv_heads &&
           pm->inter_dim == c->d_ff && pm->vocab == c->n_vocab;
}
