/* flxemu quantize -- a model plus a recipe (and optionally rotations, GPTQ
 * and a calibration text) into one .flxq file (docs/quant.md).
 *
 * Order of work: every check that can fail fast (flags, recipe, model
 * shape, rotation file, calibration length) runs before anything long;
 * then rotations, calibration, weight quantization, and the atomic write. */
#include "cli.h"
#include "cli_quant.h"
#include "flx_calib.h"
#include "flx_gptq.h"
#include "flx_llama.h"
#include "flx_qmodel.h"
#include "quantize_search.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "quantize"

typedef struct q_args {
    const char *model, *recipe, *rotate, *calib, *out, *json, *tokenizer, *save_rotation, *recipe_file, *search_svg;
    int search_bits;
    double budget, act_budget;
    int gptq, act_order, progress, no_pad, block_start_groups;
    long long nsamples, seqlen, seed, threads;
} q_args;

static int parse_budget(const char *v, void *dst)
{
    char *end = NULL;
    double b = strtod(v, &end);
    if (!end || end == v || *end || !(b > 0)) return -1;
    *(double *)dst = b;
    return 0;
}

#define A(f) offsetof(q_args, f)
static const cli_opt q_opts[] = {
    CLI_S("model", 'm', "PATH", A(model),
          "HF checkpoint folder, config.json/model.safetensors, or .gguf;\nalso positional"),
    CLI_S("recipe", 0, "NAME", A(recipe),
          "flexllm | fp | w<B>a<B>[kv<B>][g<G>][-spinquant]\n"
          "e.g. w4a16, w4a16g128, w8a8, w4a8kv8, w4a4kv4-spinquant\n"
          "(B in 2..8 or 16 = float; G divides every linear input)"),
    CLI_S("recipe-file", 0, "FILE", A(recipe_file),
          "mixed precision: {\"recipe\": NAME, \"weights\":\n"
          "{\"layers.<l|*>.<wq|wk|wv|wo|w_gate|w_up|w_down>\"|\"head\": bits},\n"
          "\"activations\": {\"layers.<l|*>.<qkv|o|gate_up|down>\"|\"head\": bits}}"),
    CLI_F("search-bits", 0, 1, A(search_bits),
          "greedy weight bits per projection (recipe's or 8) for an\n"
          "average of at most --budget bits, and/or activation bits\n"
          "per linear input under --act-budget (needs --calib)"),
    {.kind = CLI_CUSTOM, .name = "budget", .metavar = "B", .offset = A(budget), .parse = parse_budget,
     .expect = "average bits (a number > 0)", .help = "--search-bits: average weight bits allowed"},
    {.kind = CLI_CUSTOM, .name = "act-budget", .metavar = "A", .offset = A(act_budget), .parse = parse_budget,
     .expect = "average bits (a number > 0)",
     .help = "--search-bits: greedy activation bits per linear input\n"
             "(recipe's or 8), A = average bits per multiply-accumulate"},
    CLI_S("search-svg", 0, "FILE", A(search_svg),
          "--search-bits: picture of the chosen bits per layer and\n"
          "linear and of the greedy path (average bits against\n"
          "estimated error), written atomically"),
    CLI_S("rotate", 0, "KIND", A(rotate),
          "none (default) | hadamard | random | FILE: SpinQuant R1/R2\n"
          "merged (norms folded, head untied), plus the recipe's\n"
          "online R3/R4; FILE holds R1 [d,d] and optional R2.<l>"),
    CLI_F("gptq", 0, 1, A(gptq),
          "GPTQ weights (block 128, damping 0.01, SpinQuant's\n"
          "true-sequential order) instead of RTN; needs --calib.\n"
          "Static scales then come from GPTQ's own passes"),
    CLI_F("act-order", 0, 1, A(act_order), "GPTQ: quantize columns by decreasing Hessian diagonal"),
    CLI_C("gptq-group-scales", "updated|block-start", "updated|block-start", A(block_start_groups),
          "GPTQ with groups smaller than a block: scales from the\n"
          "weights with every earlier column's update (default),\n"
          "or as the block began (SpinQuant's code)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer),
          "tokenizer.json or .gguf for --calib when the model has\nnone (or to override its own)"),
    CLI_S("calib", 0, "FILE", A(calib),
          "calibration text (never the evaluation split); needed by\n"
          "--gptq and by recipes with static scales (flexllm)"),
    CLI_I("nsamples", 0, "N", A(nsamples), 1, 1 << 20, "calibration windows (default 32)"),
    CLI_I("seqlen", 0, "L", A(seqlen), 2, 1 << 20, "tokens per window (default 2048, capped at the model's)"),
    CLI_SEED(A(seed), "rotation and calibration-window seed"),
    CLI_S("save-rotation", 0, "FILE", A(save_rotation),
          "also write R1, R2.<l> and the online R4 as a rotation\n"
          "file (safetensors F32; docs/quant.md \"Rotation files\")"),
    CLI_C("pad-dff", "auto|none", "auto|none", A(no_pad),
          "auto (default): when R4 runs online and d_ff is not a\n"
          "power of two, zero-pad d_ff to the next one (exact for\n"
          "the float model) so R4 is an FHT and the bit-exact\n"
          "engine can run it; none: keep d_ff, R4 a dense matrix"),
    CLI_S("out", 'o', "FILE", A(out), "output .flxq (written atomically)"),
    CLI_THREADS(A(threads)),
    CLI_S("json", 0, "FILE", A(json), "summary for machines"),
    CLI_F("progress", 0, 1, A(progress), "progress on stderr (default: when a terminal)"),
    CLI_F("no-progress", 0, 0, A(progress), "no progress"),
    {0}};
#undef A

static const cli_spec q_spec = {
    .name = CMD,
    .usage = "[MODEL] --recipe NAME --out FILE [options]",
    .about = "Quantizes a Llama model into a .flxq file (safetensors with packed integer\n"
             "weights, float scales and the recipe in its metadata; docs/quant.md).\n"
             "Its fake-quant float model is quant/flx_qmodel.h's flx_fakequant_open.",
    .positional = "  MODEL                   the model, as --model PATH",
    .max_positional = 1,
    .examples = "flxemu quantize llama-3.2-1b/ --recipe w4a16g128 --out w4.flxq\n"
                "flxemu quantize llama-3.2-1b/ --recipe flexllm --rotate hadamard --calib calib.txt --out q.flxq\n"
                "flxemu quantize model/ --recipe w4a4kv4-spinquant --rotate random --gptq --calib calib.txt --seed 3 --out s.flxq\n"
                "flxemu quantize model/ --recipe flexllm --search-bits --budget 5 --calib calib.txt --search-svg bits.svg --out m.flxq",
    .notes = "The same inputs give the same bytes.\n",
};

static int parse_args(int argc, char **argv, q_args *a)
{
    memset(a, 0, sizeof *a);
    a->rotate = "none";
    a->nsamples = 32;
    a->seqlen = 2048;
    a->seed = CLI_DEFAULT_SEED;
    a->progress = isatty(2);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    const cli_group g[] = {{q_opts, a, NULL}};
    const char *pos[1];
    int n_pos, rc = cli_parse(&q_spec, g, 1, argc, argv, pos, &n_pos);
    if (rc) return rc;
    if (n_pos && (rc = cli_positional_path(CMD, "--model", &a->model, pos[0]))) return rc;
    if (!a->model) return cli_usage_error(CMD, "--model is required");
    if (!a->recipe && !a->recipe_file) return cli_usage_error(CMD, "--recipe (or --recipe-file) is required");
    if (a->recipe && a->recipe_file) return cli_usage_error(CMD, "give --recipe or --recipe-file, not both");
    if (a->search_bits && ((!a->budget && !a->act_budget) || !a->calib))
        return cli_usage_error(CMD, "--search-bits needs --budget AVG_BITS and/or --act-budget AVG_BITS, and --calib FILE");
    if ((a->budget || a->act_budget) && !a->search_bits)
        return cli_usage_error(CMD, "--budget and --act-budget only apply to --search-bits");
    if (a->search_svg && !a->search_bits) return cli_usage_error(CMD, "--search-svg only applies to --search-bits");
    if (a->search_bits && a->recipe_file)
        return cli_usage_error(CMD, "give --search-bits or --recipe-file, not both");
    if (!a->out) return cli_usage_error(CMD, "--out is required");
    if (a->gptq && !a->calib) return cli_usage_error(CMD, "--gptq needs --calib FILE");
    if (a->act_order && !a->gptq) return cli_usage_error(CMD, "--act-order only applies to --gptq");
    if (a->save_rotation && !strcmp(a->rotate, "none"))
        return cli_usage_error(CMD, "--save-rotation needs --rotate hadamard, random or FILE (there is no R1 to save)");
    return 0;
}

/* ---------------------------------------------------------------- GPTQ */

/* Codes found by the sequential GPTQ pass, handed to flx_qmodel_build. */
typedef struct gptq_store {
    int32_t  n_layers;
    int8_t  *q[1024][7];          /* [layer][linear] (n_out, n_in)        */
    float   *scale[1024][7];
    float   *zero[1024][7];
    int32_t  n_groups[7];         /* (s, z) per row of each linear kind   */
} gptq_store;

static int lin_index(const char *name)
{
    static const char *const names[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
    const char *sp = strrchr(name, ' ');
    const char *n = sp ? sp + 1 : name;
    for (int i = 0; i < 7; i++)
        if (!strcmp(n, names[i])) return i;
    return -1;
}

static int gptq_weight_fn(void *ctx, int layer, const char *name, const flx_qspec *ws, const float *w,
                          int32_t n_out, int32_t n_in, int32_t *q, float *scale, float *zero,
                          flx_error *err)
{
    gptq_store *g = ctx;
    int i = lin_index(name);
    if (layer >= g->n_layers || i < 0) {
        /* the head keeps round-to-nearest (SpinQuant/GPTQ touch only the layers) */
        int32_t gs = ws->gran == FLX_QG_GROUP ? ws->group_size : n_in, ng = n_in / gs;
        flx_qparams *p = malloc((size_t)ng * sizeof *p);
        if (!p) return flx_fail(err, FLX_ENOMEM, "out of memory");
        for (int32_t o = 0; o < n_out; o++) {
            flx_quant_params(ws, w + (size_t)o * n_in, 1, n_in, p);
            flx_quant_apply(ws, w + (size_t)o * n_in, 1, n_in, p, q + (size_t)o * n_in);
            for (int32_t j = 0; j < ng; j++) {
                scale[(size_t)o * ng + j] = p[j].scale;
                zero[(size_t)o * ng + j] = p[j].zero;
            }
        }
        free(p);
        return FLX_OK;
    }
    int32_t gs = ws->gran == FLX_QG_GROUP ? ws->group_size : n_in, ng = n_in / gs;
    for (size_t k = 0; k < (size_t)n_out * n_in; k++) q[k] = g->q[layer][i][k];
    memcpy(scale, g->scale[layer][i], (size_t)n_out * ng * sizeof *scale);
    memcpy(zero, g->zero[layer][i], (size_t)n_out * ng * sizeof *zero);
    return FLX_OK;
}

static void gptq_store_free(gptq_store *g)
{
    for (int l = 0; l < g->n_layers; l++)
        for (int i = 0; i < 7; i++) {
            free(g->q[l][i]);
            free(g->scale[l][i]);
            free(g->zero[l][i]);
        }
}

/* flx_gptq_model's sink: keep each linear's codes for flx_qmodel_build */
static int gptq_sink(void *ctx, int layer, flx_linear_id id, int32_t n_out, int32_t n_in,
                     const flx_wq_out *q, const float *w_hat, flx_error *err)
{
    gptq_store *g = ctx;
    (void)w_hat;
    int32_t ng = g->n_groups[id];
    size_t n = (size_t)n_out * n_in;
    g->q[layer][id] = malloc(n);
    g->scale[layer][id] = malloc((size_t)n_out * ng * sizeof(float));
    g->zero[layer][id] = malloc((size_t)n_out * ng * sizeof(float));
    if (!g->q[layer][id] || !g->scale[layer][id] || !g->zero[layer][id])
        return flx_fail(err, FLX_ENOMEM, "out of memory keeping GPTQ codes of layer %d", layer);
    for (size_t k = 0; k < n; k++) g->q[layer][id][k] = (int8_t)q->q[k];
    memcpy(g->scale[layer][id], q->scale, (size_t)n_out * ng * sizeof(float));
    memcpy(g->zero[layer][id], q->zero, (size_t)n_out * ng * sizeof(float));
    return FLX_OK;
}

/* ---------------------------------------------------------------- provenance */

/* The weights file a model path names (folder: model.safetensors or its
 * shard index), or NULL. */
static char *weights_file(const char *model)
{
    if (!flx_is_dir(model)) return strdup(model);
    char *p = flx_path_join(model, "model.safetensors");
    if (p && !flx_file_exists(p)) {
        free(p);
        p = flx_path_join(model, "model.safetensors.index.json");
    }
    return p;
}

/* The tokenizer file to embed: --tokenizer, else the model's own
 * (tokenizer.json beside the weights, or the GGUF itself); NULL if none. */
static char *tokenizer_file(const char *model, const char *override)
{
    if (override) return strdup(override);
    size_t n = strlen(model);
    if (!flx_is_dir(model) && n > 5 && !strcmp(model + n - 5, ".gguf")) return strdup(model);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model);
    if (!flx_is_dir(model)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    char *p = flx_path_join(dir, "tokenizer.json");
    if (p && !flx_file_exists(p)) {
        free(p);
        p = NULL;
    }
    return p;
}

static void add_file(cJSON *o, const char *key, const char *path, flx_error *err, int *rc)
{
    cJSON *f = cJSON_AddObjectToObject(o, key);
    char *abs = realpath(path, NULL);
    cJSON_AddStringToObject(f, "path", abs ? abs : path);
    free(abs);
    char hex[65];
    if (*rc == 0 && flx_sha256_file_hex(path, hex, err) != FLX_OK) *rc = -1;
    cJSON_AddStringToObject(f, "sha256", *rc == 0 ? hex : "");
}

/* Everything that made the file, as one JSON object (no clock, so the same
 * inputs still give the same bytes; docs/quant.md lists the fields). */
static char *provenance_json(const q_args *a, const flx_recipe *r, flx_rot_kind kind, int r3, int r4, int rope_permuted,
                             int32_t d_ff_source, int32_t d_ff, const flx_calib_data *cd,
                             const char *tok_path, flx_error *err)
{
    int rc = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "flxemu_version", FLXEMU_VERSION);
    cJSON_AddStringToObject(o, "command", "quantize");
    char *wf = weights_file(a->model);
    add_file(o, "source_model", wf ? wf : a->model, err, &rc);
    free(wf);
    cJSON_AddStringToObject(o, "recipe", r->name);
    cJSON *rot = cJSON_AddObjectToObject(o, "rotation");
    cJSON_AddStringToObject(rot, "kind", kind == FLX_ROT_NONE ? "none" : kind == FLX_ROT_HADAMARD ? "hadamard"
                                         : kind == FLX_ROT_RANDOM ? "random" : "file");
    cJSON_AddNumberToObject(rot, "seed", (double)a->seed);
    if (kind == FLX_ROT_FILE) add_file(rot, "file", a->rotate, err, &rc);
    cJSON_AddBoolToObject(rot, "r3_online", r3);
    cJSON_AddBoolToObject(rot, "r4_online", r4);
    if (d_ff_source) {
        cJSON *pd = cJSON_AddObjectToObject(o, "d_ff_padding");
        cJSON_AddNumberToObject(pd, "from", d_ff_source);
        cJSON_AddNumberToObject(pd, "to", d_ff);
    }
    const int gptq = a->gptq && r->w_bits < 16;
    if (rope_permuted) cJSON_AddStringToObject(o, "rope_pairing", "adjacent in the source, q/k rows permuted to split-half");
    cJSON_AddStringToObject(o, "weights", r->w_bits >= 16 ? "float" : gptq ? "gptq" : "rtn");
    if (gptq) {
        flx_gptq_opts g = flx_gptq_opts_default();
        cJSON *gq = cJSON_AddObjectToObject(o, "gptq");
        cJSON_AddNumberToObject(gq, "block_size", g.block_size);
        cJSON_AddNumberToObject(gq, "damp", g.damp);
        cJSON_AddBoolToObject(gq, "act_order", a->act_order);
        cJSON_AddStringToObject(gq, "order", "true-sequential: {q,k,v}, {o}, {gate,up}, {down}");
        cJSON_AddStringToObject(gq, "group_scales", a->block_start_groups
                                                        ? "block-start: from the weights as the block began"
                                                        : "updated: from the weights with every earlier column's update");
        cJSON_AddStringToObject(gq, "calibration_activations", "unquantized");
    } else {
        cJSON_AddNullToObject(o, "gptq");
    }
    if (a->calib) {
        cJSON *c = cJSON_AddObjectToObject(o, "calibration");
        add_file(c, "text", a->calib, err, &rc);
        cJSON_AddNumberToObject(c, "windows", (double)cd->n_windows);
        cJSON_AddNumberToObject(c, "seqlen", (double)cd->seqlen);
        cJSON_AddNumberToObject(c, "seed", (double)a->seed);
        char hex[65];
        flx_sha256_hex(cd->ids, (size_t)(cd->n_windows * cd->seqlen) * sizeof *cd->ids, hex);
        cJSON_AddStringToObject(c, "tokens_sha256", hex);
        /* flx_qmeta_summary reads these two from the top of the object */
        cJSON_AddStringToObject(c, "sha256", cJSON_GetObjectItemCaseSensitive(
                                                 cJSON_GetObjectItemCaseSensitive(c, "text"), "sha256")->valuestring);
    } else {
        cJSON_AddNullToObject(o, "calibration");
    }
    if (tok_path) add_file(o, "tokenizer_from", tok_path, err, &rc);
    if (a->recipe_file) add_file(o, "recipe_file", a->recipe_file, err, &rc);
    if (a->search_bits) {
        cJSON *sb = cJSON_AddObjectToObject(o, "search_bits");
        if (a->budget) {
            cJSON_AddNumberToObject(sb, "budget", a->budget);
            cJSON_AddStringToObject(sb, "measure", "sum_i E[x_i^2] * sum_r (w^_ri - w_ri)^2 on the calibration windows");
            cJSON_AddStringToObject(sb, "choices", "recipe bits or 8 per projection, greedy by error drop per extra bit");
        }
        if (a->act_budget) {
            cJSON_AddNumberToObject(sb, "act_budget", a->act_budget);
            cJSON_AddStringToObject(sb, "act_measure",
                                    "sum_i E[(x^_i - x_i)^2] * sum_r w_ri^2 over the linears of each input");
            cJSON_AddStringToObject(sb, "act_choices", "recipe bits or 8 per linear input, greedy by error drop per "
                                                       "extra bit-multiply, budget in bits per multiply-accumulate");
        }
    }
    char *s = rc == 0 ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* ---------------------------------------------------------------- load / run / report */

/* What the phases of one quantize run share; q_free releases it. */
typedef struct q_run {
    flx_recipe recipe;
    int32_t *wbits;               /* per-tensor weight bits (mixed precision), or NULL */
    int32_t *abits;               /* per-input activation bits (mixed precision), or NULL */
    double avg_bits, avg_act_bits;
    quantize_search_trace trace;  /* what --search-bits measured, for --search-svg */
    flx_rot_kind rot_kind;
    flx_model model;
    flx_rotation_set rs;
    flx_qmodel qm;
    flx_attn_scales *scales;
    float *sq;
    double *qkv_max;
    flx_calib_data cd;
    gptq_store *gs;
    flx_pool *pool;
    char *abs_model, *prov, *tok_path;
    int rotated, r3, r4, transform, rope_permuted, use_gptq;
    int32_t d_ff_source;          /* d_ff before zero-padding, 0 when not padded */
    const flx_rotation_set *rot_online;
    double t0, t_load, t_rot, t_calib, t_quant, t_write;
} q_run;

/* The recipe (or recipe file) and the rotation kind, before anything is
 * loaded.  Returns an exit status (usage errors printed). */
static int q_prepare(const q_args *a, q_run *r)
{
    flx_error err = {0};
    if (a->recipe_file) {
        flx_llama_config big = {0};
        big.n_layers = 1024;
        r->wbits = calloc(1024 * 7 + 1, sizeof *r->wbits);
        r->abits = calloc(1024 * 4 + 1, sizeof *r->abits);
        if (!r->wbits || !r->abits) return cli_usage_error(CMD, "out of memory");
        if (flx_recipe_file_load(a->recipe_file, &big, &r->recipe, r->wbits, r->abits, &err))
            return cli_usage_error(CMD, "%s", err.msg);
    } else if (flx_recipe_parse(&r->recipe, a->recipe, &err)) {
        return cli_usage_error(CMD, "%s", err.msg);
    }
    r->rot_kind = FLX_ROT_FILE;
    if (!strcmp(a->rotate, "none")) r->rot_kind = FLX_ROT_NONE;
    else if (!strcmp(a->rotate, "hadamard")) r->rot_kind = FLX_ROT_HADAMARD;
    else if (!strcmp(a->rotate, "random")) r->rot_kind = FLX_ROT_RANDOM;
    else if (!flx_file_exists(a->rotate))
        return cli_usage_error(CMD, "--rotate expects none, hadamard, random or a rotation file; '%s' is none of these",
                               a->rotate);
    if (r->recipe.static_attn && !a->calib)
        return cli_usage_error(CMD, "recipe %s needs --calib FILE for its static attention scales",
                               r->recipe.name);
    return FLX_EXIT_OK;
}

/* An HF folder's config.json is read first, so a recipe or rotation file
 * that does not fit is refused before the weights are converted; any other
 * problem with the folder is reported by the loader. */
static int q_precheck(const q_args *a, q_run *r, flx_error *err)
{
    if (!flx_is_dir(a->model)) return FLX_OK;
    char *cfg_path = flx_path_join(a->model, "config.json");
    flx_llama_config pre;
    int prc = cfg_path && flx_file_exists(cfg_path) ? flx_hf_config_load(cfg_path, &pre, err) : 1;
    free(cfg_path);
    if (prc != FLX_OK) return FLX_OK;
    if (flx_recipe_check(&r->recipe, &pre, err)) return FLX_EINVAL;
    if (r->rot_kind == FLX_ROT_FILE) {
        flx_rotation_set probe;
        if (flx_rotset_load(&probe, &pre, a->rotate, 0, 0, 0, err)) return FLX_EINVAL;
        flx_rotset_free(&probe);
    }
    return FLX_OK;
}

/* The model (checked against the recipe), its tokenizer, the rotations to
 * apply and the calibration windows. */
static int q_load(const q_args *a, q_run *r, flx_error *err)
{
    /* fast checks first: model header and shapes, recipe vs shapes,
     * rotation file, calibration length */
    if (q_precheck(a, r, err)) return FLX_EINVAL;
    if (flx_model_load_ex(&r->model, a->model, (int)a->threads, a->progress, err)) return FLX_EIO;
    const flx_llama_config *c = &r->model.cfg;
    if (flx_recipe_check(&r->recipe, c, err)) return FLX_EINVAL;
    if (a->recipe_file) {
        free(r->wbits);
        free(r->abits);
        r->wbits = calloc((size_t)c->n_layers * 7 + 1, sizeof *r->wbits);
        r->abits = calloc((size_t)c->n_layers * 4 + 1, sizeof *r->abits);
        if (!r->wbits || !r->abits) return flx_fail(err, FLX_ENOMEM, "out of memory");
        if (flx_recipe_file_load(a->recipe_file, c, &r->recipe, r->wbits, r->abits, err)) return FLX_EINVAL;
    }
    if (a->tokenizer) {
        flx_tokenizer *t = NULL;
        if (flx_tokenizer_load(&t, a->tokenizer, err)) return FLX_EIO;
        if (flx_tokenizer_n_vocab(t) > c->n_vocab) {
            flx_fail(err, FLX_EINVAL, "%s: tokenizer has %d tokens, the model %s only %d", a->tokenizer,
                     flx_tokenizer_n_vocab(t), a->model, c->n_vocab);
            flx_tokenizer_free(t);
            return FLX_EINVAL;
        }
        flx_tokenizer_free(r->model.tok);
        r->model.tok = t;
    }
    if (c->n_layers > 1024) return flx_fail(err, FLX_EUNSUPPORTED, "more than 1024 layers");
    const flx_recipe *rc = &r->recipe;
    r->rotated = r->rot_kind != FLX_ROT_NONE;
    /* FlexLLM's hardware always runs the normalized FHT before down_proj, so
     * the flexllm recipe merges R4 even without R1/R2 */
    /* -spinquant recipes with quantized K run R3 even without rotation, as
     * SpinQuant's evaluation does (nothing to merge for it) */
    r->r3 = (r->rotated || rc->r3_always) && rc->r3_online;
    r->r4 = (r->rotated && rc->r4_online) || rc->kind == FLX_RECIPE_FLEXLLM;
    /* flexllm targets the engine, whose RoPE pairs (i, i + head_dim/2): a
     * GGUF's adjacent pairing is turned into it (exact up to rounding) */
    if (rc->kind == FLX_RECIPE_FLEXLLM && c->rope_pairing == FLX_ROPE_ADJACENT) {
        if (flx_model_rope_to_split_half(&r->model, err)) return FLX_EINVAL;
        r->rope_permuted = 1;
    }
    /* an online R4 on a non-power-of-two d_ff: zero-pad d_ff (exact for the
     * float model) so R4 is FlexLLM's FHT and the bit-exact engine runs it */
    if (r->r4 && !a->no_pad && !flx_is_pow2(c->d_ff)) {
        r->d_ff_source = c->d_ff;
        if (flx_model_pad_dff(&r->model, flx_next_pow2(c->d_ff), err)) return FLX_EINVAL;
        if (flx_recipe_check(&r->recipe, c, err)) return FLX_EINVAL;
        if (a->progress)
            fprintf(stderr, "flxemu quantize: d_ff %d zero-padded to %d for the online R4 FHT\n",
                    (int)r->d_ff_source, (int)c->d_ff);
    }
    if (r->rot_kind == FLX_ROT_FILE) {
        if (flx_rotset_load(&r->rs, c, a->rotate, r->r3, r->r4, (uint64_t)a->seed, err)) return FLX_EINVAL;
    } else {
        if (flx_rotset_generate(&r->rs, c, r->rot_kind, r->r3, r->r4, (uint64_t)a->seed, err)) return FLX_EINVAL;
    }
    r->transform = r->rotated || r->r4;   /* anything to fold or merge */
    if (a->save_rotation && flx_rotset_save(&r->rs, a->save_rotation, err)) return FLX_EIO;
    r->rot_online = r->transform || r->r3 ? &r->rs : NULL;   /* + R3 alone */
    if (a->calib) {
        int64_t seqlen = a->seqlen > c->max_seq_len ? c->max_seq_len : a->seqlen;
        if (!r->model.tok)
            return flx_fail(err, FLX_EINVAL, "%s: the model carries no tokenizer to read --calib %s", a->model,
                            a->calib);
        if (flx_calib_from_text(&r->cd, &r->model, a->calib, a->nsamples, seqlen, (uint64_t)a->seed, err))
            return FLX_EIO;
    }
    r->t_load = flx_now_seconds();
    r->pool = flx_pool_create((int)a->threads);
    return FLX_OK;
}

/* Rotations merged (norms folded, head untied, R1/R2 and R4's inverse);
 * flexllm always gets here (R4), so its norm gains are folded too, as the
 * hardware's gains of 1 assume.  Then the static attention scales, from a
 * calibration forward unless GPTQ's own passes will give them. */
static int q_transform(const q_args *a, q_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->model.cfg;
    if (r->transform && flx_spinquant_apply(&r->model, &r->rs, r->pool, err)) return FLX_EINVAL;
    r->t_rot = flx_now_seconds();
    r->use_gptq = a->gptq && r->recipe.w_bits < 16;
    int nl = c->n_layers;
    if (r->recipe.static_attn) {
        r->sq = calloc((size_t)4 * nl, sizeof *r->sq);
        r->scales = calloc((size_t)nl, sizeof *r->scales);
        if (r->use_gptq) r->qkv_max = calloc((size_t)3 * nl, sizeof *r->qkv_max);
        if (!r->sq || !r->scales || (r->use_gptq && !r->qkv_max)) return flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    if (r->recipe.static_attn && !r->use_gptq) {
        float *sq = r->sq;
        if (a->progress)
            fprintf(stderr, "flxemu quantize: calibrating static scales on %lld x %lld tokens\n",
                    (long long)r->cd.n_windows, (long long)r->cd.seqlen);
        if (flx_calib_attn_scales(&r->model, &r->rs, &r->cd, 1.0f, (int)a->threads, sq, sq + nl, sq + 2 * nl,
                                  sq + 3 * nl, err))
            return FLX_EIO;
        for (int l = 0; l < nl; l++) {
            r->scales[l].q_s = sq[l];
            r->scales[l].k_s = sq[nl + l];
            r->scales[l].v_s = sq[2 * nl + l];
            r->scales[l].a_s = sq[3 * nl + l];
        }
    }
    r->t_calib = flx_now_seconds();
    return FLX_OK;
}

/* GPTQ over the whole model, keeping the codes for flx_qmodel_build (and
 * the static scales from its passes' q/k/v maxima). */
static int q_gptq(const q_args *a, q_run *r, flx_qbuild *b, flx_error *err)
{
    const flx_llama_config *c = &r->model.cfg;
    const flx_recipe *rc = &r->recipe;
    r->gs = calloc(1, sizeof *r->gs);
    if (!r->gs) return flx_fail(err, FLX_ENOMEM, "out of memory");
    r->gs->n_layers = c->n_layers;
    flx_gptq_model_opts go = flx_gptq_model_opts_default();
    go.wq = cli_wquant_of(rc);
    go.gptq.act_order = a->act_order;
    go.gptq.block_start_groups = a->block_start_groups;
    go.n_threads = (int)a->threads;
    go.progress = a->progress;
    /* only the codes are needed afterwards: each layer's float weights go
     * once it is done, so the model shrinks while the codes grow */
    go.release_layers = 1;
    go.qkv_max = r->qkv_max;
    go.w_bits_of = r->wbits;   /* mixed precision (activations stay float in GPTQ's passes) */
    int32_t qd = c->n_heads * c->head_dim;
    const int32_t ins[7] = {c->d_model, c->d_model, c->d_model, qd, c->d_model, c->d_model, c->d_ff};
    for (int i = 0; i < 7; i++) r->gs->n_groups[i] = flx_wquant_groups(&go.wq, ins[i]);
    if (flx_gptq_model(&r->model, r->rot_online, &r->cd, &go, gptq_sink, r->gs, err)) return FLX_EIO;
    if (rc->static_attn)
        for (int l = 0; l < c->n_layers; l++) {
            const double *mx = r->qkv_max + 3 * l;
            flx_calib_scales_from_max(mx[0], mx[1], mx[2], 1.0f, c->head_dim, &r->scales[l].q_s,
                                      &r->scales[l].k_s, &r->scales[l].v_s, &r->scales[l].a_s);
        }
    b->weight_fn = gptq_weight_fn;
    b->weight_ctx = r->gs;
    return FLX_OK;
}

/* The quantized model (RTN, searched bits or GPTQ), its calibration
 * n-grams and tokenizer, written atomically. */
static int q_build(const q_args *a, q_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->model.cfg;
    flx_qbuild b = {0};
    b.recipe = &r->recipe;
    b.rot = r->rot_online;
    b.rot_seed = (uint64_t)a->seed;
    b.d_ff_source = r->d_ff_source;
    if (a->search_bits) {
        free(r->wbits);
        free(r->abits);
        r->wbits = calloc((size_t)c->n_layers * 7 + 1, sizeof *r->wbits);
        r->abits = calloc((size_t)c->n_layers * 4 + 1, sizeof *r->abits);
        if (!r->wbits || !r->abits) return flx_fail(err, FLX_ENOMEM, "out of memory");
        if (quantize_search_bits(&r->model, r->rot_online, &r->recipe, &r->cd, a->budget, a->act_budget,
                                 (int)a->threads, r->wbits, r->abits, &r->avg_bits, &r->avg_act_bits,
                                 a->search_svg ? &r->trace : NULL, err))
            return FLX_EIO;
        int n8 = 0;
        for (int i = 0; i < c->n_layers * 7; i++) n8 += r->wbits[i] == 8;
        if (a->budget)
            fprintf(stderr, "flxemu quantize: --search-bits: %d of %d projections at 8 bits, average %.3f bits "
                            "(budget %g)\n", n8, c->n_layers * 7, r->avg_bits, a->budget);
        n8 = 0;
        for (int i = 0; i < c->n_layers * 4; i++) n8 += r->abits[i] == 8;
        if (a->act_budget)
            fprintf(stderr, "flxemu quantize: --search-bits: %d of %d linear inputs at 8-bit activations, average "
                            "%.3f bits per multiply (act budget %g)\n", n8, c->n_layers * 4, r->avg_act_bits,
                    a->act_budget);
    }
    b.w_bits_of = r->wbits;
    b.a_bits_of = r->abits;
    r->tok_path = tokenizer_file(a->model, a->tokenizer);
    r->prov = provenance_json(a, &r->recipe, r->rot_kind, r->r3, r->r4, r->rope_permuted, r->d_ff_source, c->d_ff,
                              &r->cd, r->tok_path, err);
    if (!r->prov) return FLX_EIO;
    b.provenance = r->prov;
    b.scales = r->scales;
    /* absolute, so the tokenizer is found from any working directory */
    r->abs_model = realpath(a->model, NULL);
    b.source = r->abs_model ? r->abs_model : a->model;
    b.pool = r->pool;
    b.progress = a->progress;
    if (r->use_gptq && q_gptq(a, r, &b, err)) return FLX_EIO;
    if (flx_qmodel_build(&r->qm, &r->model, &b, err)) return FLX_EIO;
    /* n-grams of the calibration windows, so that ppl can warn when the
     * evaluation text overlaps them */
    if (a->calib) {
        uint64_t *ngrams = NULL;
        size_t n_ngrams = 0;
        if (flx_calib_ngrams(r->cd.ids, r->cd.n_windows, r->cd.seqlen, &ngrams, &n_ngrams, err)) return FLX_EIO;
        uint64_t *keep = flx_qmodel_alloc(&r->qm, n_ngrams * 8 + 8);
        if (!keep) {
            free(ngrams);
            return flx_fail(err, FLX_ENOMEM, "out of memory");
        }
        memcpy(keep, ngrams, n_ngrams * 8);
        free(ngrams);
        r->qm.calib_ngrams = keep;
        r->qm.n_calib_ngrams = n_ngrams;
    }
    /* the tokenizer travels inside the file, so it runs alone */
    if (r->tok_path) {
        if (flx_qmodel_embed_tokenizer(&r->qm, r->tok_path, err)) return FLX_EIO;
    } else {
        fprintf(stderr, "flxemu quantize: warning: %s has no tokenizer to embed (pass --tokenizer FILE); "
                        "the .flxq will need --tokenizer or --tokens to evaluate text\n", a->model);
    }
    r->t_quant = flx_now_seconds();
    if (flx_qmodel_save(&r->qm, a->out, err)) return FLX_EIO;
    if (a->search_svg) {
        char caption[1024];
        snprintf(caption, sizeof caption, "flxemu quantize --search-bits: %s, recipe %s, rotation %s, %lld x %lld "
                 "calibration tokens", a->model, r->recipe.name, a->rotate, (long long)r->cd.n_windows,
                 (long long)r->cd.seqlen);
        if (quantize_search_svg(a->search_svg, caption, c->n_layers, &r->recipe, r->wbits, r->abits, &r->trace, err))
            return FLX_EIO;
    }
    r->t_write = flx_now_seconds();
    return FLX_OK;
}

/* One line on stderr; --json. */
static int q_report(const q_args *a, const q_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->model.cfg;
    fprintf(stderr,
            "flxemu quantize: %s -> %s: recipe %s, rotation %s%s%s%s%s, %s weights; "
            "load %.2f s, rotate %.2f s, calibrate %.2f s, quantize %.2f s, write %.2f s\n",
            a->model, a->out, r->recipe.name, r->qm.rotation, r->r3 ? " +R3" : "", r->r4 ? " +R4" : "",
            r->d_ff_source ? " (d_ff zero-padded)" : "", r->recipe.static_attn ? ", static attention scales" : "",
            a->gptq ? "GPTQ" : "RTN", r->t_load - r->t0, r->t_rot - r->t_load, r->t_calib - r->t_rot,
            r->t_quant - r->t_calib, r->t_write - r->t_quant);
    if (!a->json) return FLX_OK;
    flx_outfile o;
    if (flx_outfile_open(&o, a->json, err)) return FLX_EIO;
    char rj[2048];
    flx_recipe_json(&r->recipe, rj, sizeof rj);
    fputs("{\"model\":", o.fp);
    cli_json_str(o.fp, a->model);
    fputs(",\"out\":", o.fp);
    cli_json_str(o.fp, a->out);
    fprintf(o.fp,
            ",\"recipe\":%s,\"rotation\":\"%s\",\"r3\":%s,\"r4\":%s,\"d_ff\":%d,\"d_ff_source\":%d,"
            "\"weights\":\"%s\",\"seed\":%lld,\"seconds\":{\"load\":%.3f,\"rotate\":%.3f,"
            "\"calibrate\":%.3f,\"quantize\":%.3f,\"write\":%.3f}}\n",
            rj, r->qm.rotation, r->r3 ? "true" : "false", r->r4 ? "true" : "false", (int)c->d_ff,
            (int)(r->d_ff_source ? r->d_ff_source : c->d_ff), a->gptq ? "gptq" : "rtn", a->seed, r->t_load - r->t0,
            r->t_rot - r->t_load, r->t_calib - r->t_rot, r->t_quant - r->t_calib, r->t_write - r->t_quant);
    return flx_outfile_commit(&o, err);
}

static void q_free(q_run *r)
{
    if (r->gs) {
        gptq_store_free(r->gs);
        free(r->gs);
    }
    flx_qmodel_free(&r->qm);
    flx_rotset_free(&r->rs);   /* safe on a zeroed set; frees a dense R4 too */
    flx_model_free(&r->model);
    flx_pool_free(r->pool);
    free(r->abs_model);
    free(r->prov);
    free(r->tok_path);
    free(r->wbits);
    free(r->abits);
    quantize_search_trace_free(&r->trace);
    free(r->scales);
    free(r->sq);
    free(r->qkv_max);
    flx_calib_free(&r->cd);
}

int flx_cmd_quantize(int argc, char **argv)
{
    q_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    if ((rc = cli_check_output(CMD, "--out", a.out)) || (rc = cli_check_output(CMD, "--json", a.json)) ||
        (rc = cli_check_output(CMD, "--search-svg", a.search_svg)))
        return rc;
    q_run r;
    memset(&r, 0, sizeof r);
    flx_error err = {0};
    rc = q_prepare(&a, &r);
    if (rc == FLX_EXIT_OK) {
        r.t0 = flx_now_seconds();
        if (q_load(&a, &r, &err) || q_transform(&a, &r, &err) || q_build(&a, &r, &err) || q_report(&a, &r, &err))
            rc = cli_fail(CMD, &err);
    }
    q_free(&r);
    return rc;
}
