/* flxemu analyze -- where a recipe loses accuracy: for every linear of every
 * layer, the weight quantization error (MSE, SQNR), the range and kurtosis
 * of its input activations and the relative error of its fake-quant output,
 * without and with rotation; optionally each layer's perplexity sensitivity.
 * Text, JSON and an SVG heat map (docs/quant.md "flxemu analyze").
 *
 * Layer-local measures (one float forward per model, a layer at a time over
 * all windows; hooks read the float activations): weight MSE/SQNR, input
 * absmax/kurtosis, output error.  The whole-model measure (--sensitivity):
 * perplexity with one layer quantized.  The layers before it are float and
 * the same in every run, so each run starts at its layer from the float
 * activations the rotated pass saved (--sensitivity-rerun runs them again,
 * for checking: same bits). */
#include "cli.h"
#include "cli_quant.h"
#include "cli_svg.h"
#include "flx_calib.h"
#include "flx_gptq.h"
#include "flx_llama.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "analyze"
#define N_LIN 7

static const char *const LIN[N_LIN] = {"q", "k", "v", "o", "gate", "up", "down"};

typedef struct an_args {
    const char *model, *recipe, *file, *tokenizer, *json, *svg;
    int rotate_kind;              /* index in "none|hadamard|random|fold" */
    const char *rotate;           /* its name */
    long long seed, windows, ctx, threads;
    int sensitivity, sensitivity_rerun;
} an_args;

#define A(f) offsetof(an_args, f)
static const cli_opt an_opts[] = {
    CLI_S("model", 'm', "PATH", A(model), "float model (HF folder, config.json/safetensors, .gguf); also positional"),
    CLI_S("recipe", 0, "NAME", A(recipe), "as flxemu quantize (weights RTN)"),
    CLI_C("rotate", "none|hadamard|random|fold", "none|hadamard|random|fold", A(rotate_kind),
          "none (default) | hadamard | random | fold (norm gains\n"
          "folded and head untied only: separates folding from rotating)"),
    CLI_SEED(A(seed), "rotation seed"),
    CLI_S("file", 'f', "TEXT", A(file), "text for activations (and perplexity)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer), "tokenizer.json or .gguf when the model has none"),
    CLI_I("windows", 0, "N", A(windows), 1, 1 << 20, "windows of the text (default 8)"),
    CLI_I("ctx", 'c', "L", A(ctx), 2, 1 << 20, "tokens per window (default 512, capped at the model's)"),
    CLI_F("sensitivity", 0, 1, A(sensitivity),
          "also perplexity with each layer quantized alone (each run\n"
          "starts at that layer from the saved float activations)"),
    CLI_F("sensitivity-rerun", 0, 1, A(sensitivity_rerun),
          "the same numbers, every run from the tokens (slow; a check);\n"
          "implies --sensitivity"),
    CLI_S("json", 0, "FILE", A(json), "results as JSON"),
    CLI_S("svg", 0, "FILE", A(svg), "heat map (layers x linears) of the measures"),
    CLI_THREADS(A(threads)),
    {0}};
#undef A

static const cli_spec an_spec = {
    .name = CMD,
    .usage = "[MODEL] --recipe NAME --file TEXT [options]",
    .about = "Per-layer analysis of a recipe on a float model: for every linear of every\n"
             "layer, weight quantization error (MSE, SQNR), input activation absmax and\n"
             "kurtosis, and the relative error of the linear's fake-quant output (its\n"
             "quantized input times its quantized weight) against float, each without\n"
             "rotation and with --rotate; with --sensitivity, the perplexity with one\n"
             "layer quantized (the rotated model when --rotate is given).",
    .positional = "  MODEL                   the model, as --model PATH",
    .max_positional = 1,
    .examples = "flxemu analyze llama-3.2-1b/ --recipe w4a16 --file calib.txt\n"
                "flxemu analyze model/ --recipe flexllm --rotate hadamard --file calib.txt --svg heat.svg\n"
                "flxemu analyze model/ --recipe w4a4kv4-spinquant --rotate random --sensitivity --json a.json",
    .notes = "Layer-local measures reuse the float forward's activations; only\n"
             "--sensitivity runs the model again, once per layer from that layer on.\n",
};

/* per linear, per pass (0: without rotation, 1: with) */
typedef struct lin_meas {
    double w_mse, w_sqnr_db;
    double s1, s2, s3, s4, absmax;   /* input moments */
    int64_t n;
    double err_num, err_den;         /* sum (Y^ - Y)^2, sum Y^2 */
} lin_meas;

/* A pass runs the float model one layer at a time over all windows (the
 * order of GPTQ's calibration): only that layer's RTN copy exists at once,
 * and the residual stream of every window is kept between layers. */
typedef struct pass_ctx {
    const flx_model *m;
    const flx_recipe *r;
    const flx_rotation_set *rs;      /* online R3/R4, or NULL */
    float *w_hat[N_LIN];             /* the current layer's RTN-dequantized weights */
    lin_meas *meas;                  /* [n_layers][N_LIN] */
    float *xq, *y, *yq;              /* scratch */
    int64_t cap_rows;
    flx_pool *pool;                  /* the hook's products, by blocks of output columns */
    int layer;                       /* the one layer the forward runs */
    int64_t w;                       /* its window */
    float *x_all;                    /* (n_windows, seqlen, d_model): the residual stream at
                                        `layer`'s input, then at its output */
    float *save;                     /* NULL, or (n_layers + 1, n_windows, seqlen, d_model):
                                        every layer's float input and the final residual */
    int64_t n_windows, win_floats;   /* win_floats = seqlen * d_model */
    const char *name;                /* "unrotated" / "rotated", for progress */
    double *qkv_max;                 /* NULL, or [n_layers][3]: max |q|, |k| (after RoPE and
                                        R3), |v|: the static attention scales' maxima */
} pass_ctx;

/* y = x w^T for output columns [begin, end): one single-threaded sgemm per
 * block (the forward keeps OpenBLAS at one thread while its state lives) */
typedef struct mm_job {
    const float *x, *w;
    float *y;
    int64_t n;
    int32_t n_out, n_in;
} mm_job;

static void mm_cols(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const mm_job *j = vctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->n, (int)(end - begin), j->n_in, 1.0f, j->x, j->n_in,
                j->w + begin * j->n_in, j->n_in, 0.0f, j->y + begin, j->n_out);
}

static void matmul_t(flx_pool *pool, const float *x, int64_t n, const float *w, int32_t n_out, int32_t n_in, float *y)
{
    mm_job j = { x, w, y, n, n_out, n_in };
    flx_pool_for(pool, n_out, 64, mm_cols, &j);
}

static const float *lin_weight(const flx_llama_layer *L, int j)
{
    const float *w[N_LIN] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return w[j];
}

static void lin_shape(const flx_llama_config *c, int j, int32_t *n_out, int32_t *n_in)
{
    const int32_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    const int32_t outs[N_LIN] = {qd, kvd, kvd, c->d_model, c->d_ff, c->d_ff, c->d_model};
    const int32_t ins[N_LIN] = {c->d_model, c->d_model, c->d_model, qd, c->d_model, c->d_model, c->d_ff};
    *n_out = outs[j];
    *n_in = ins[j];
}

static int an_linear(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in, flx_error *err)
{
    pass_ctx *c = vctx;
    flx_rot_online_input(c->rs, kind, x, n, NULL);
    if (layer != c->layer) return FLX_OK;   /* the head (the pass runs no other layer) */
    int first, count;
    switch (kind) {
    case FLX_LINEAR_QKV: first = 0; count = 3; break;
    case FLX_LINEAR_O: first = 3; count = 1; break;
    case FLX_LINEAR_GATE_UP: first = 4; count = 2; break;
    default: first = 6; count = 1; break;
    }
    /* input moments (the same input for q/k/v and for gate/up) */
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, mx = 0;
    for (int64_t i = 0; i < n * n_in; i++) {
        double v = x[i];
        s1 += v;
        s2 += v * v;
        s3 += v * v * v;
        s4 += v * v * v * v;
        if (fabs(v) > mx) mx = fabs(v);
    }
    if (n > c->cap_rows) return flx_fail(err, FLX_EINVAL, "analyze: block of %lld rows", (long long)n);
    /* the linear's quantized input (dynamic, per token, as the recipe) */
    memcpy(c->xq, x, (size_t)(n * n_in) * sizeof *x);
    if (c->r->a_bits < 16) {
        flx_qspec s = kind == FLX_LINEAR_O ? c->r->a_o : c->r->a;
        if (s.gran == FLX_QG_GROUP && s.group_size == 0) s.group_size = c->m->cfg.head_dim;
        flx_fake_quant(&s, c->xq, n, n_in, NULL, c->xq);
    }
    const flx_llama_layer *L = &c->m->w.layers[layer];
    for (int j = first; j < first + count; j++) {
        lin_meas *mm = &c->meas[(size_t)layer * N_LIN + j];
        mm->s1 += s1; mm->s2 += s2; mm->s3 += s3; mm->s4 += s4;
        mm->n += n * n_in;
        if (mx > mm->absmax) mm->absmax = mx;
        int32_t n_out, ni;
        lin_shape(&c->m->cfg, j, &n_out, &ni);
        matmul_t(c->pool, x, n, lin_weight(L, j), n_out, ni, c->y);
        matmul_t(c->pool, c->xq, n, c->w_hat[j], n_out, ni, c->yq);
        for (int64_t i = 0; i < n * n_out; i++) {
            double d = (double)c->yq[i] - c->y[i];
            mm->err_num += d * d;
            mm->err_den += (double)c->y[i] * c->y[i];
        }
    }
    return FLX_OK;
}

static int an_qkv(void *vctx, int layer, float *q, float *k, float *v, int64_t n, int64_t pos0,
                  const flx_llama_config *cfg, flx_error *err)
{
    pass_ctx *c = vctx;
    (void)pos0;
    flx_rot_online_qk(c->rs, q, k, n, cfg, NULL);
    if (!c->qkv_max) return FLX_OK;
    /* as flx_calib_attn_scales takes them (float |x|, NaN kept) */
    const int64_t kn = n * cfg->n_kv_heads * cfg->head_dim, len[3] = {n * cfg->n_heads * cfg->head_dim, kn, kn};
    const float *blk[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        float mx = 0.0f;
        for (int64_t t = 0; t < len[i]; t++) {
            float a = fabsf(blk[i][t]);
            if (a > mx || a != a) mx = a;
        }
        if (!isfinite(mx)) return flx_fail(err, FLX_ENUMERIC, "analyze: layer %d: q/k/v hold NaN or Inf", layer);
        if (mx > c->qkv_max[3 * layer + i]) c->qkv_max[3 * layer + i] = mx;
    }
    return FLX_OK;
}

/* Layer-at-a-time: the forward of window w starts at layer c->layer from
 * the kept residual stream and stops after it (the final norm still runs). */
static int an_residual(void *vctx, int layer, float *x, int64_t n, int64_t pos0, int *next, flx_error *err)
{
    pass_ctx *c = vctx;
    (void)pos0; (void)err;
    const int L = c->m->cfg.n_layers;
    const size_t bytes = (size_t)(n * c->m->cfg.d_model) * sizeof *x;
    float *xw = c->x_all + c->w * c->win_floats;
    if (layer == 0) {
        if (c->layer > 0) {
            memcpy(x, xw, bytes);
            *next = c->layer;
        }
        if (c->save) memcpy(c->save + ((size_t)c->layer * c->n_windows + c->w) * c->win_floats, x, bytes);
    } else if (layer == c->layer + 1) {
        memcpy(xw, x, bytes);
        if (c->save && layer == L) memcpy(c->save + ((size_t)L * c->n_windows + c->w) * c->win_floats, x, bytes);
        *next = L;
    }
    return FLX_OK;
}

/* CPU seconds of the process so far (progress lines: the machine may be shared) */
static double cpu_seconds(void)
{
    struct timespec ts;
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec : 0.0;
}

/* Layer l's weights RTN-quantized (w_hat) and their error. */
static int rtn_layer(pass_ctx *c, int l, flx_error *err)
{
    const flx_llama_config *cfg = &c->m->cfg;
    flx_wquant wq = cli_wquant_of(c->r);
    for (int j = 0; j < N_LIN; j++) {
        int32_t n_out, n_in;
        lin_shape(cfg, j, &n_out, &n_in);
        const float *w = lin_weight(&c->m->w.layers[l], j);
        size_t nw = (size_t)n_out * n_in;
        float *wh = malloc(nw * sizeof *wh);
        if (!wh) return flx_fail(err, FLX_ENOMEM, "out of memory");
        c->w_hat[j] = wh;
        if (c->r->w_bits >= 16) {
            memcpy(wh, w, nw * sizeof *wh);
        } else {
            int rc = cli_rtn_dequant(w, n_out, n_in, &wq, wh, err);
            if (rc) return rc;
        }
        double se = 0, sw = 0;
        for (size_t i = 0; i < nw; i++) {
            double d = (double)wh[i] - w[i];
            se += d * d;
            sw += (double)w[i] * w[i];
        }
        lin_meas *mm = &c->meas[(size_t)l * N_LIN + j];
        mm->w_mse = se / (double)nw;
        mm->w_sqnr_db = se > 0 ? 10.0 * log10(sw / se) : INFINITY;
    }
    return FLX_OK;
}

static void free_w_hat(pass_ctx *c)
{
    for (int j = 0; j < N_LIN; j++) {
        free(c->w_hat[j]);
        c->w_hat[j] = NULL;
    }
}

/* One float forward of every window with the measuring hooks, a layer at
 * a time; with save, every layer's input is kept there (the float
 * activations the sensitivity runs start from). */
static int run_pass(pass_ctx *c, const flx_calib_data *cd, int threads, float *save, flx_error *err)
{
    const flx_llama_config *cfg = &c->m->cfg;
    size_t widest = (size_t)(cfg->d_ff > cfg->d_model ? cfg->d_ff : cfg->d_model);
    size_t qd = (size_t)cfg->n_heads * cfg->head_dim;
    if (qd > widest) widest = qd;
    c->cap_rows = cd->seqlen;
    c->n_windows = cd->n_windows;
    c->win_floats = cd->seqlen * cfg->d_model;
    c->save = save;
    c->xq = malloc((size_t)cd->seqlen * widest * sizeof(float));
    c->y = malloc((size_t)cd->seqlen * widest * sizeof(float));
    c->yq = malloc((size_t)cd->seqlen * widest * sizeof(float));
    c->x_all = malloc((size_t)(cd->n_windows * c->win_floats) * sizeof(float));
    if (!c->xq || !c->y || !c->yq || !c->x_all) return flx_fail(err, FLX_ENOMEM, "out of memory");
    flx_llama_hooks hk = { .ctx = c, .linear_input = an_linear, .qkv = an_qkv, .residual = an_residual };
    flx_llama_opts o = cli_window_opts(threads, cd->seqlen, &hk);
    flx_llama_state st;
    int rc = flx_llama_init(&st, c->m, &o, err);
    for (int l = 0; rc == FLX_OK && l < cfg->n_layers; l++) {
        c->layer = l;
        rc = rtn_layer(c, l, err);
        for (int64_t w = 0; rc == FLX_OK && w < cd->n_windows; w++) {
            c->w = w;
            flx_llama_reset(&st);
            rc = flx_llama_forward(&st, cd->ids + w * cd->seqlen, cd->seqlen, err);
        }
        free_w_hat(c);
        if (rc == FLX_OK)
            fprintf(stderr, "flxemu analyze: %s pass: layer %d of %d done, %.1f s CPU so far\n",
                    c->name, l + 1, cfg->n_layers, cpu_seconds());
    }
    flx_llama_free(&st);
    return rc;
}

static void pass_free(pass_ctx *c)
{
    free_w_hat(c);
    free(c->xq); free(c->y); free(c->yq); free(c->x_all);
}

static double kurtosis(const lin_meas *m)
{
    if (m->n < 2) return 0;
    double n = (double)m->n, mu = m->s1 / n;
    double m2 = m->s2 / n - mu * mu;
    double m4 = m->s4 / n - 4 * mu * m->s3 / n + 6 * mu * mu * m->s2 / n - 3 * mu * mu * mu * mu;
    return m2 > 0 ? m4 / (m2 * m2) : 0;
}

static double out_err_db(const lin_meas *m)
{
    return m->err_den > 0 && m->err_num > 0 ? 10.0 * log10(m->err_num / m->err_den) : -INFINITY;
}

/* ---------------------------------------------------------------- sensitivity */

/* One perplexity run of the sensitivity: layer `layer` quantized (-1:
 * none), every other layer float with the online rotations.  With start >
 * 0 every window resumes at layer `start` from the float activations saved
 * there by the rotated pass (the layers before it are float and the same
 * in every run, so their output is the saved one, bit for bit); the
 * perplexity run calls the forward once per window, in window order. */
typedef struct sens_ctx {
    int layer;
    const flx_llama_hooks *fq;        /* the fake-quant model's hooks */
    const flx_rotation_set *rs;
    int start;
    const float *save;                /* pass_ctx.save */
    int64_t n_windows, win_floats, w, d_model;
} sens_ctx;

static int sens_linear(void *vctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in, flx_error *err)
{
    sens_ctx *c = vctx;
    if (layer == c->layer) return c->fq->linear_input(c->fq->ctx, layer, kind, x, n, n_in, err);
    flx_rot_online_input(c->rs, kind, x, n, NULL);
    return FLX_OK;
}

static int sens_qkv(void *vctx, int layer, float *q, float *k, float *v, int64_t n, int64_t pos0,
                    const flx_llama_config *cfg, flx_error *err)
{
    sens_ctx *c = vctx;
    if (layer == c->layer) return c->fq->qkv(c->fq->ctx, layer, q, k, v, n, pos0, cfg, err);
    flx_rot_online_qk(c->rs, q, k, n, cfg, NULL);
    return FLX_OK;
}

static void sens_probs(void *vctx, int layer, float *p, int64_t n_rows, int64_t n_keys)
{
    const sens_ctx *c = vctx;
    if (layer == c->layer && c->fq->probs) c->fq->probs(c->fq->ctx, layer, p, n_rows, n_keys);
}

/* the quantized layer's linears come from the lean fake-quant model */
static void sens_weight_rows(void *vctx, int layer, flx_weight_kind kind, int64_t row0, int64_t n_rows, int64_t n_in,
                             float *w)
{
    const sens_ctx *c = vctx;
    c->fq->weight_rows(c->fq->ctx, layer, kind, row0, n_rows, n_in, w);
}

static int sens_residual(void *vctx, int layer, float *x, int64_t n, int64_t pos0, int *next, flx_error *err)
{
    sens_ctx *c = vctx;
    (void)pos0;
    if (layer != 0 || c->start == 0) return FLX_OK;
    if (c->w >= c->n_windows || n * c->d_model != c->win_floats)
        return flx_fail(err, FLX_EINVAL, "analyze: window %lld has no saved activations", (long long)c->w);
    memcpy(x, c->save + ((size_t)c->start * c->n_windows + c->w) * c->win_floats,
           (size_t)c->win_floats * sizeof *x);
    c->w++;
    *next = c->start;
    return FLX_OK;
}

static int ppl_of(const flx_model *m, const flx_llama_hooks *hk, const flx_calib_data *cd, int threads,
                  double *ppl, flx_error *err)
{
    flx_ppl_opts o = {0};
    o.protocol = FLX_PPL_HF;
    o.n_ctx = cd->seqlen;
    o.max_windows = cd->n_windows;
    o.bos_id = -1;
    o.llama.n_threads = threads;
    o.llama.hooks = hk;
    flx_ppl_result r = {0};
    int rc = flx_ppl_run(m, cd->ids, cd->n_windows * cd->seqlen, &o, &r, err);
    *ppl = r.ppl;
    flx_ppl_result_free(&r);
    return rc;
}

/* ---------------------------------------------------------------- SVG */

/* panels: values[p][l*N_LIN + j]; higher_bad[p] tells the color direction */
static int write_svg(const char *path, int n_layers, int n_panels, const char *const *titles,
                     double *const *values, const int *higher_bad, const char *caption, flx_error *err)
{
    const int left = 40, top = 44, gap = 30, pw = N_LIN * CLI_SVG_CELL_W;
    const int width = left + n_panels * (pw + gap) + 10, height = top + n_layers * CLI_SVG_CELL_H + 50;
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (rc) return rc;
    cli_svg_begin(o.fp, width, height, caption);
    for (int p = 0; p < n_panels; p++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", p);
        cli_svg_heat h = {.id = id, .title = titles[p], .fmt = "%.3g", .n_cols = N_LIN, .col_labels = LIN,
                          .values = values[p], .higher_bad = higher_bad[p]};
        cli_svg_heat_panel(o.fp, left + p * (pw + gap), top, n_layers, &h, p == 0);
    }
    cli_svg_end(o.fp, left, height - 8, "colour: blue = better, red = worse, per panel");
    return flx_outfile_commit(&o, err);
}

/* ---------------------------------------------------------------- main */

static int parse(int argc, char **argv, an_args *a)
{
    static const char *const kinds[4] = {"none", "hadamard", "random", "fold"};
    memset(a, 0, sizeof *a);
    a->windows = 8;
    a->ctx = 512;
    a->seed = CLI_DEFAULT_SEED;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    const cli_group g[] = {{an_opts, a, NULL}};
    const char *pos[1];
    int n_pos, rc = cli_parse(&an_spec, g, 1, argc, argv, pos, &n_pos);
    if (rc) return rc;
    if (n_pos && (rc = cli_positional_path(CMD, "--model", &a->model, pos[0]))) return rc;
    a->rotate = kinds[a->rotate_kind];
    if (a->sensitivity_rerun) a->sensitivity = 1;
    if (!a->model || !a->recipe || !a->file) return cli_usage_error(CMD, "--model, --recipe and --file are required");
    return 0;
}

/* What the phases of one analyze run share; an_free releases it. */
typedef struct an_run {
    flx_recipe recipe;
    flx_rot_kind kind;
    int fold_only, rotated, r3, r4;
    flx_model m0, m1;             /* as loaded (freed after its pass), transformed */
    flx_rotation_set rs0, rs1;
    flx_calib_data cd;
    pass_ctx pc[2];
    lin_meas *meas;               /* [2][L][N_LIN]: unrotated, rotated */
    double *sens;                 /* [L] PPL change with layer l quantized alone */
    int fast;                     /* --sensitivity without -rerun: runs start from save */
    float *save;                  /* NULL, or the rotated pass's float activations (pass_ctx.save) */
    double *qkv_max;              /* NULL, or [L][3] q/k/v maxima of the rotated pass (fast) */
    double ppl_float, ppl_all;
    flx_qmodel qm;
    flx_fakequant fq;
    int have_fq, n_layers;
    flx_pool *pool;
    double t0, t_local, t_all;
} an_run;

/* The float model, its tokenizer, the calibration windows and the
 * rotations of the two passes. */
static int an_load(const an_args *a, an_run *r, flx_error *err)
{
    flx_model *m0 = &r->m0;
    if (flx_model_load(m0, a->model, err)) return FLX_EIO;
    if (flx_recipe_check(&r->recipe, &m0->cfg, err)) return FLX_EINVAL;
    if (a->tokenizer) {
        flx_tokenizer *t = NULL;
        if (flx_tokenizer_load(&t, a->tokenizer, err)) return FLX_EIO;
        flx_tokenizer_free(m0->tok);
        m0->tok = t;
    }
    if (!m0->tok) return flx_fail(err, FLX_EINVAL, "%s has no tokenizer: pass --tokenizer FILE", a->model);
    int64_t ctx = a->ctx < m0->cfg.max_seq_len ? a->ctx : m0->cfg.max_seq_len;
    if (flx_calib_from_text(&r->cd, m0, a->file, a->windows, ctx, 0, err)) return FLX_EIO;
    const flx_recipe *rc = &r->recipe;
    r->fold_only = !strcmp(a->rotate, "fold");
    r->rotated = r->kind != FLX_ROT_NONE;
    r->r3 = (r->rotated || rc->r3_always) && rc->r3_online;
    r->r4 = (r->rotated && rc->r4_online) || rc->kind == FLX_RECIPE_FLEXLLM;
    /* the unrotated pass still runs R3 where the recipe always does */
    if (flx_rotset_generate(&r->rs0, &m0->cfg, FLX_ROT_NONE, rc->r3_always && rc->r3_online, 0, 0, err))
        return FLX_EINVAL;
    r->n_layers = m0->cfg.n_layers;
    r->meas = calloc((size_t)2 * r->n_layers * N_LIN, sizeof *r->meas);
    r->sens = calloc((size_t)r->n_layers, sizeof *r->sens);
    if (!r->meas || !r->sens) return flx_fail(err, FLX_ENOMEM, "out of memory");
    /* the rotated pass keeps every layer's float input for the sensitivity
     * runs (L + 1 x windows x seqlen x d_model floats: 544 MB for a 1B
     * model at 8 x 512) and the q/k/v maxima of the static scales */
    r->fast = a->sensitivity && !a->sensitivity_rerun;
    if (r->fast) {
        r->save = malloc((size_t)(r->n_layers + 1) * (size_t)(r->cd.n_windows * r->cd.seqlen) *
                         (size_t)m0->cfg.d_model * sizeof *r->save);
        r->qkv_max = calloc((size_t)3 * r->n_layers, sizeof *r->qkv_max);
        if (!r->save || !r->qkv_max) return flx_fail(err, FLX_ENOMEM, "out of memory for the saved activations");
    }
    return FLX_OK;
}

/* Two models, one after the other (a 1B model's fp32 weights and their
 * RTN copy fit twice, not four times): as loaded, then transformed as
 * flxemu quantize would (d_ff padded when R4 is online, norms folded,
 * R1/R2/R4 merged); the layer-local measures of each. */
static int an_passes(const an_args *a, an_run *r, flx_error *err)
{
    const int L = r->n_layers;
    const flx_model *pm[2] = {&r->m0, &r->m1};
    const flx_rotation_set *prs[2] = {&r->rs0, &r->rs1};
    for (int p = 0; p < 2; p++) {
        if (p == 1) {
            flx_model *m1 = &r->m1;
            if (flx_model_load(m1, a->model, err)) return FLX_EIO;
            if (r->r4 && !flx_is_pow2(m1->cfg.d_ff) && flx_model_pad_dff(m1, flx_next_pow2(m1->cfg.d_ff), err))
                return FLX_EINVAL;
            if (flx_rotset_generate(&r->rs1, &m1->cfg, r->kind, r->r3, r->r4, (uint64_t)a->seed, err))
                return FLX_EINVAL;
            if ((r->rotated || r->r4 || r->fold_only) && flx_spinquant_apply(m1, &r->rs1, NULL, err))
                return FLX_EINVAL;
        }
        pass_ctx *pc = &r->pc[p];
        pc->m = pm[p];
        pc->r = &r->recipe;
        pc->rs = prs[p];
        pc->meas = r->meas + (size_t)p * L * N_LIN;
        pc->pool = r->pool;
        pc->qkv_max = p == 1 ? r->qkv_max : NULL;
        pc->name = p ? "rotated" : "unrotated";
        fprintf(stderr, "flxemu analyze: %s pass, %lld x %lld tokens\n", p ? "rotated" : "unrotated",
                (long long)r->cd.n_windows, (long long)r->cd.seqlen);
        if (run_pass(pc, &r->cd, (int)a->threads, p == 1 ? r->save : NULL, err)) return FLX_EIO;
        pass_free(pc);
        memset(pc, 0, sizeof *pc);
        if (p == 0) {
            flx_llama_config keep = r->m0.cfg;
            flx_model_free(&r->m0);
            r->m0.cfg = keep;
        }
    }
    return FLX_OK;
}

/* The static attention scales of the rotated model (flexllm), or NULL:
 * fast, from the q/k/v maxima the rotated pass took; else a calibration
 * forward. */
static int an_scales(const an_run *r, int threads, flx_attn_scales **out, flx_error *err)
{
    const int L = r->n_layers;
    *out = NULL;
    if (!r->recipe.static_attn) return FLX_OK;
    float *s4 = calloc((size_t)4 * L, sizeof *s4);
    flx_attn_scales *sc = calloc((size_t)L, sizeof *sc);
    if (!s4 || !sc || (!r->fast && flx_calib_attn_scales(&r->m1, &r->rs1, &r->cd, 1.0f, threads, s4, s4 + L,
                                                         s4 + 2 * L, s4 + 3 * L, err))) {
        free(s4);
        free(sc);
        return err->msg[0] ? FLX_EIO : flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    /* fast: the same maxima, taken in the rotated pass */
    for (int l = 0; r->fast && l < L; l++)
        flx_calib_scales_from_max(r->qkv_max[3 * l], r->qkv_max[3 * l + 1], r->qkv_max[3 * l + 2], 1.0f,
                                  r->m1.cfg.head_dim, &s4[l], &s4[L + l], &s4[2 * L + l], &s4[3 * L + l]);
    for (int l = 0; l < L; l++) sc[l] = (flx_attn_scales){s4[l], s4[L + l], s4[2 * L + l], s4[3 * L + l]};
    free(s4);
    *out = sc;
    return FLX_OK;
}

/* Whole-model measure: each layer quantized alone (the rotated model). */
static int an_sensitivity(const an_args *a, an_run *r, flx_error *err)
{
    const int L = r->n_layers;
    flx_attn_scales *sc;
    if (an_scales(r, (int)a->threads, &sc, err)) return FLX_EIO;
    flx_qbuild b = {0};
    b.recipe = &r->recipe;
    b.rot = &r->rs1;
    b.scales = sc;
    b.source = a->model;
    int brc = flx_qmodel_build(&r->qm, &r->m1, &b, err);
    free(sc);
    /* lean: the quantized linears are dequantized per product, so no
     * second float copy of the model exists */
    if (brc || flx_fakequant_build_lean(&r->fq, &r->qm, err)) return FLX_EIO;
    r->have_fq = 1;
    /* the float model: from the saved final residual (final norm and head
     * only), or the whole forward */
    sens_ctx sx = { -1, &r->fq.hooks, &r->rs1, r->fast ? L : 0, r->save, r->cd.n_windows,
                    r->cd.seqlen * r->m1.cfg.d_model, 0, r->m1.cfg.d_model };
    /* P quantization (flexllm) only inside the quantized layer */
    flx_llama_hooks sh = { .ctx = &sx, .linear_input = sens_linear, .qkv = sens_qkv, .probs = sens_probs,
                           .weight_rows = sens_weight_rows, .residual = sens_residual };
    if (ppl_of(&r->m1, &sh, &r->cd, (int)a->threads, &r->ppl_float, err)) return FLX_EIO;
    if (ppl_of(&r->fq.model, &r->fq.hooks, &r->cd, (int)a->threads, &r->ppl_all, err)) return FLX_EIO;
    flx_llama_layer *layers = malloc((size_t)L * sizeof *layers);
    if (!layers) return flx_fail(err, FLX_ENOMEM, "out of memory");
    for (int l = 0; l < L; l++) {
        flx_model ml = r->m1;   /* shallow: layer l's weights from the fake-quant model */
        memcpy(layers, r->m1.w.layers, (size_t)L * sizeof *layers);
        layers[l] = r->fq.model.w.layers[l];
        ml.w.layers = layers;
        sx.layer = l;
        sx.start = r->fast ? l : 0;
        sx.w = 0;
        double p;
        if (ppl_of(&ml, &sh, &r->cd, (int)a->threads, &p, err)) {
            free(layers);
            return FLX_EIO;
        }
        r->sens[l] = p - r->ppl_float;
        fprintf(stderr, "flxemu analyze: layer %d alone: PPL %.4f (%+.4f), %.1f s wall, %.1f s CPU so far\n", l, p,
                r->sens[l], flx_now_seconds() - r->t0, cpu_seconds());
    }
    free(layers);
    return FLX_OK;
}

static void an_print(const an_args *a, const an_run *r)
{
    const int L = r->n_layers;
    const lin_meas *meas = r->meas;
    printf("analyze: %s, recipe %s, rotation %s (seed %lld), %lld windows x %lld tokens of %s\n", a->model,
           r->recipe.name, a->rotate, a->seed, (long long)r->cd.n_windows, (long long)r->cd.seqlen, a->file);
    printf("layer-local (float activations): w_sqnr dB = weight SQNR under the recipe's RTN; absmax, kurt =\n"
           "input activation |x| max and kurtosis; out_err dB = 10 log10(|Y^ - Y|^2 / |Y|^2), Y^ from the\n"
           "quantized input and weight.  Each as unrotated -> %s.\n",
           r->rotated ? "rotated" : r->fold_only ? "folded (gains in the weights, no rotation)" : "unrotated (no --rotate)");
    printf("%-5s %-5s %16s %20s %16s %16s\n", "layer", "lin", "w_sqnr dB", "absmax", "kurtosis", "out_err dB");
    for (int l = 0; l < L; l++)
        for (int j = 0; j < N_LIN; j++) {
            const lin_meas *u = &meas[(size_t)l * N_LIN + j], *v = &meas[(size_t)(L + l) * N_LIN + j];
            printf("%-5d %-5s %7.2f -> %6.2f %9.3g -> %8.3g %6.2f -> %7.2f %6.2f -> %7.2f\n", l, LIN[j],
                   u->w_sqnr_db, v->w_sqnr_db, u->absmax, v->absmax, kurtosis(u), kurtosis(v), out_err_db(u),
                   out_err_db(v));
        }
    if (a->sensitivity) {
        printf("whole-model: PPL float %.4f, all layers quantized %.4f; one layer quantized (delta PPL):\n",
               r->ppl_float, r->ppl_all);
        for (int l = 0; l < L; l++) printf("  layer %d: %+.4f\n", l, r->sens[l]);
    }
    fprintf(stderr, "flxemu analyze: layer-local measures %.1f s, total %.1f s wall, %.1f s CPU\n", r->t_local,
            r->t_all, cpu_seconds());
}

static int an_json(const an_args *a, const an_run *r)
{
    const int L = r->n_layers;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", a->model);
    cJSON_AddStringToObject(root, "recipe", r->recipe.name);
    cJSON_AddStringToObject(root, "rotation", a->rotate);
    cJSON_AddNumberToObject(root, "seed", (double)a->seed);
    cJSON_AddNumberToObject(root, "windows", (double)r->cd.n_windows);
    cJSON_AddNumberToObject(root, "ctx", (double)r->cd.seqlen);
    cJSON *ls = cJSON_AddArrayToObject(root, "layers");
    for (int l = 0; l < L; l++) {
        cJSON *lo = cJSON_CreateObject();
        cJSON_AddNumberToObject(lo, "layer", l);
        if (a->sensitivity) cJSON_AddNumberToObject(lo, "ppl_delta", r->sens[l]);
        cJSON *lin = cJSON_AddArrayToObject(lo, "linears");
        for (int j = 0; j < N_LIN; j++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", LIN[j]);
            for (int p = 0; p < 2; p++) {
                const lin_meas *mm = &r->meas[(size_t)(p * L + l) * N_LIN + j];
                cJSON *v = cJSON_AddObjectToObject(e, p ? "rotated" : "unrotated");
                cJSON_AddNumberToObject(v, "w_mse", mm->w_mse);
                cJSON_AddNumberToObject(v, "w_sqnr_db", isfinite(mm->w_sqnr_db) ? mm->w_sqnr_db : 999);
                cJSON_AddNumberToObject(v, "act_absmax", mm->absmax);
                cJSON_AddNumberToObject(v, "act_kurtosis", kurtosis(mm));
                cJSON_AddNumberToObject(v, "out_rel_err", mm->err_den > 0 ? mm->err_num / mm->err_den : 0);
            }
            cJSON_AddItemToArray(lin, e);
        }
        cJSON_AddItemToArray(ls, lo);
    }
    if (a->sensitivity) {
        cJSON_AddNumberToObject(root, "ppl_float", r->ppl_float);
        cJSON_AddNumberToObject(root, "ppl_all_quantized", r->ppl_all);
    }
    cJSON_AddNumberToObject(root, "seconds_layer_local", r->t_local);
    cJSON_AddNumberToObject(root, "seconds_total", r->t_all);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = cli_write_text(CMD, a->json, text, "\n");
    cJSON_free(text);
    return rc;
}

static int an_svg(const an_args *a, const an_run *r, flx_error *err)
{
    const int L = r->n_layers;
    double *v[6];
    for (int p = 0; p < 6; p++) {
        v[p] = malloc((size_t)L * N_LIN * sizeof(double));
        if (!v[p]) {
            for (int q = 0; q < p; q++) free(v[q]);
            return flx_fail(err, FLX_ENOMEM, "out of memory");
        }
    }
    for (int l = 0; l < L; l++)
        for (int j = 0; j < N_LIN; j++) {
            const lin_meas *u = &r->meas[(size_t)l * N_LIN + j], *w = &r->meas[(size_t)(L + l) * N_LIN + j];
            v[0][l * N_LIN + j] = out_err_db(u);
            v[1][l * N_LIN + j] = out_err_db(w);
            v[2][l * N_LIN + j] = u->w_sqnr_db;
            v[3][l * N_LIN + j] = w->w_sqnr_db;
            v[4][l * N_LIN + j] = kurtosis(u);
            v[5][l * N_LIN + j] = kurtosis(w);
        }
    const char *titles[6] = {"out_err dB, unrotated", "out_err dB, rotated", "weight SQNR dB, unrotated",
                             "weight SQNR dB, rotated", "input kurtosis, unrotated", "input kurtosis, rotated"};
    const int higher_bad[6] = {1, 1, 0, 0, 1, 1};
    char caption[512];
    snprintf(caption, sizeof caption, "flxemu analyze: %s, recipe %s, rotation %s, %lld x %lld tokens", a->model,
             r->recipe.name, a->rotate, (long long)r->cd.n_windows, (long long)r->cd.seqlen);
    int src = write_svg(a->svg, L, 6, titles, v, higher_bad, caption, err);
    for (int p = 0; p < 6; p++) free(v[p]);
    return src;
}

static void an_free(an_run *r)
{
    pass_free(&r->pc[0]);
    pass_free(&r->pc[1]);
    free(r->save);
    free(r->qkv_max);
    if (r->have_fq) flx_fakequant_free(&r->fq);
    flx_qmodel_free(&r->qm);
    flx_rotset_free(&r->rs0);
    flx_rotset_free(&r->rs1);
    flx_calib_free(&r->cd);
    flx_model_free(&r->m0);
    flx_model_free(&r->m1);
    free(r->meas);
    free(r->sens);
    flx_pool_free(r->pool);
}

int flx_cmd_analyze(int argc, char **argv)
{
    an_args a;
    int rc = parse(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    an_run *r = calloc(1, sizeof *r);
    if (!r) return cli_fail(CMD, &(flx_error){FLX_ENOMEM, "out of memory"});
    flx_error err = {0};
    if (flx_recipe_parse(&r->recipe, a.recipe, &err)) {
        free(r);
        return cli_usage_error(CMD, "%s", err.msg);
    }
    r->kind = !strcmp(a.rotate, "hadamard") ? FLX_ROT_HADAMARD : !strcmp(a.rotate, "random") ? FLX_ROT_RANDOM
                                                                                           : FLX_ROT_NONE;
    r->ppl_float = r->ppl_all = NAN;
    r->pool = flx_pool_create((int)a.threads);
    double t0 = r->t0 = flx_now_seconds();
    rc = FLX_EXIT_OK;
    if (an_load(&a, r, &err) || an_passes(&a, r, &err)) {
        rc = cli_fail(CMD, &err);
    } else {
        r->t_local = flx_now_seconds() - t0;
        if (a.sensitivity && an_sensitivity(&a, r, &err)) rc = cli_fail(CMD, &err);
    }
    if (rc == FLX_EXIT_OK) {
        r->t_all = flx_now_seconds() - t0;
        an_print(&a, r);
        if (a.json) rc = an_json(&a, r);
        if (rc == FLX_EXIT_OK && a.svg && an_svg(&a, r, &err)) rc = cli_fail(CMD, &err);
    }
    an_free(r);
    free(r);
    return rc;
}
