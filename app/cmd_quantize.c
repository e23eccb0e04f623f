/* flxemu quantize -- a model plus a recipe (and optionally rotations, GPTQ
 * and a calibration text) into one .flxq file (docs/quant.md).
 *
 * Order of work: every check that can fail fast (flags, recipe, model
 * shape, rotation file, calibration length) runs before anything long;
 * then rotations, calibration, weight quantization, and the atomic write. */
#include "cli.h"
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

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu quantize --model PATH --recipe NAME --out FILE [options]\n"
            "\n"
            "Quantizes a Llama model into a .flxq file (safetensors with packed integer\n"
            "weights, float scales and the recipe in its metadata; docs/quant.md).\n"
            "Its fake-quant float model is quant/flx_qmodel.h's flx_fakequant_open.\n"
            "\n"
            "  --model PATH          HF checkpoint folder, config.json/model.safetensors, or .gguf\n"
            "  --recipe NAME         flexllm | fp | w<B>a<B>[kv<B>][g<G>][-spinquant]\n"
            "                        e.g. w4a16, w4a16g128, w8a8, w4a8kv8, w4a4kv4-spinquant\n"
            "                        (B in 2..8 or 16 = float; G divides every linear input)\n"
            "  --recipe-file FILE    mixed precision: {\"recipe\": NAME, \"weights\":\n"
            "                        {\"layers.<l|*>.<wq|wk|wv|wo|w_gate|w_up|w_down>\"|\"head\": bits},\n"
            "                        \"activations\": {\"layers.<l|*>.<qkv|o|gate_up|down>\"|\"head\": bits}}\n"
            "  --search-bits --budget B   greedy weight bits per projection (recipe's or 8)\n"
            "                        for an average of at most B bits (needs --calib)\n"
            "  --act-budget A        with --search-bits: greedy activation bits per linear input\n"
            "                        (recipe's or 8), A = average bits per multiply-accumulate\n"
            "  --rotate KIND         none (default) | hadamard | random | FILE: SpinQuant R1/R2\n"
            "                        merged (norms folded, head untied), plus the recipe's\n"
            "                        online R3/R4; FILE holds R1 [d,d] and optional R2.<l>\n"
            "  --gptq                GPTQ weights (block 128, damping 0.01, SpinQuant's\n"
            "                        true-sequential order) instead of RTN; needs --calib.\n"
            "                        Static scales then come from GPTQ's own passes\n"
            "  --act-order           GPTQ: quantize columns by decreasing Hessian diagonal\n"
            "  --gptq-group-scales updated|block-start   GPTQ with groups smaller than a block:\n"
            "                        scales from the weights with every earlier column's update\n"
            "                        (default), or as the block began (SpinQuant's code)\n"
            "  --tokenizer FILE      tokenizer.json or .gguf for --calib when the model has\n"
            "                        none (or to override its own)\n"
            "  --calib FILE          calibration text (never the evaluation split); needed by\n"
            "                        --gptq and by recipes with static scales (flexllm)\n"
            "  --nsamples N          calibration windows (default 32)\n"
            "  --seqlen L            tokens per window (default 2048, capped at the model's)\n"
            "  --seed S              rotation and calibration-window seed (default 0)\n"
            "  --save-rotation FILE  also write R1, R2.<l> and the online R4 as a rotation\n"
            "                        file (safetensors F32; docs/quant.md \"Rotation files\")\n"
            "  --pad-dff auto|none   auto (default): when R4 runs online and d_ff is not a\n"
            "                        power of two, zero-pad d_ff to the next one (exact for\n"
            "                        the float model) so R4 is an FHT and the bit-exact\n"
            "                        engine can run it; none: keep d_ff, R4 a dense matrix\n"
            "  --out FILE            output .flxq (written atomically)\n"
            "  --threads N           threads (default: all cores)\n"
            "  --json FILE           summary for machines\n"
            "  --progress / --no-progress   progress on stderr (default: when a terminal)\n"
            "  -h, --help            this help\n"
            "\n"
            "The same inputs give the same bytes.  Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct q_args {
    const char *model, *recipe, *rotate, *calib, *out, *json, *tokenizer, *save_rotation, *recipe_file;
    int search_bits;
    double budget, act_budget;
    int gptq, act_order, progress, no_pad, block_start_groups;
    long long nsamples, seqlen, seed, threads;
} q_args;

static int parse_args(int argc, char **argv, q_args *a)
{
    memset(a, 0, sizeof *a);
    a->rotate = "none";
    a->nsamples = 32;
    a->seqlen = 2048;
    a->progress = isatty(2);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int has_val = i + 1 < argc;
#define VALUE() (has_val ? argv[++i] : NULL)
#define NEED()                                                                    \
    do {                                                                          \
        if (!has_val) return cli_usage_error(CMD, "%s needs a value", f);         \
    } while (0)
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(f, "--model")) { NEED(); a->model = VALUE(); }
        else if (!strcmp(f, "--recipe")) { NEED(); a->recipe = VALUE(); }
        else if (!strcmp(f, "--recipe-file")) { NEED(); a->recipe_file = VALUE(); }
        else if (!strcmp(f, "--search-bits")) a->search_bits = 1;
        else if (!strcmp(f, "--budget")) {
            NEED();
            char *end = NULL;
            const char *v = VALUE();
            a->budget = strtod(v, &end);
            if (!end || *end || !(a->budget > 0)) return cli_usage_error(CMD, "--budget expects average bits, not '%s'", v);
        }
        else if (!strcmp(f, "--act-budget")) {
            NEED();
            char *end = NULL;
            const char *v = VALUE();
            a->act_budget = strtod(v, &end);
            if (!end || *end || !(a->act_budget > 0))
                return cli_usage_error(CMD, "--act-budget expects average bits, not '%s'", v);
        }
        else if (!strcmp(f, "--rotate")) { NEED(); a->rotate = VALUE(); }
        else if (!strcmp(f, "--calib")) { NEED(); a->calib = VALUE(); }
        else if (!strcmp(f, "--tokenizer")) { NEED(); a->tokenizer = VALUE(); }
        else if (!strcmp(f, "--save-rotation")) { NEED(); a->save_rotation = VALUE(); }
        else if (!strcmp(f, "--out") || !strcmp(f, "-o")) { NEED(); a->out = VALUE(); }
        else if (!strcmp(f, "--json")) { NEED(); a->json = VALUE(); }
        else if (!strcmp(f, "--gptq")) a->gptq = 1;
        else if (!strcmp(f, "--act-order")) a->act_order = 1;
        else if (!strcmp(f, "--gptq-group-scales")) {
            NEED();
            const char *v = VALUE();
            if (!strcmp(v, "updated")) a->block_start_groups = 0;
            else if (!strcmp(v, "block-start")) a->block_start_groups = 1;
            else return cli_usage_error(CMD, "--gptq-group-scales expects updated or block-start, not '%s'", v);
        }
        else if (!strcmp(f, "--pad-dff")) {
            NEED();
            const char *v = VALUE();
            if (!strcmp(v, "auto")) a->no_pad = 0;
            else if (!strcmp(v, "none")) a->no_pad = 1;
            else return cli_usage_error(CMD, "--pad-dff expects auto or none, not '%s'", v);
        }
        else if (!strcmp(f, "--progress")) a->progress = 1;
        else if (!strcmp(f, "--no-progress")) a->progress = 0;
        else if (!strcmp(f, "--nsamples")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 1, 1 << 20, &a->nsamples)) return FLX_EXIT_USAGE;
        } else if (!strcmp(f, "--seqlen")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 2, 1 << 20, &a->seqlen)) return FLX_EXIT_USAGE;
        } else if (!strcmp(f, "--seed")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 0, INT64_MAX, &a->seed)) return FLX_EXIT_USAGE;
        } else if (!strcmp(f, "--threads") || !strcmp(f, "-t")) {
            NEED();
            if (cli_parse_i64(CMD, f, VALUE(), 1, 1024, &a->threads)) return FLX_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", f);
        }
#undef VALUE
#undef NEED
    }
    if (!a->model) return cli_usage_error(CMD, "--model is required");
    if (!a->recipe && !a->recipe_file) return cli_usage_error(CMD, "--recipe (or --recipe-file) is required");
    if (a->recipe && a->recipe_file) return cli_usage_error(CMD, "give --recipe or --recipe-file, not both");
    if (a->search_bits && ((!a->budget && !a->act_budget) || !a->calib))
        return cli_usage_error(CMD, "--search-bits needs --budget AVG_BITS and/or --act-budget AVG_BITS, and --calib FILE");
    if ((a->budget || a->act_budget) && !a->search_bits)
        return cli_usage_error(CMD, "--budget and --act-budget only apply to --search-bits");
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

/* A JSON string literal of s (quotes, backslashes and control bytes escaped). */
static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(fp, "\\%c", *p);
        else if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
        else fputc(*p, fp);
    }
    fputc('"', fp);
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

/* ---------------------------------------------------------------- main */

int flx_cmd_quantize(int argc, char **argv)
{
    q_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc == -1) return FLX_EXIT_OK;
    if (prc) return prc;
    if ((prc = cli_check_output(CMD, "--out", a.out)) || (prc = cli_check_output(CMD, "--json", a.json)))
        return prc;

    flx_error err = {0};
    flx_recipe recipe;
    /* mixed precision: per-tensor weight bits, checked against the model once loaded */
    int32_t *wbits = NULL, *abits = NULL;
    double avg_bits = 0;
    if (a.recipe_file) {
        flx_llama_config big = {0};
        big.n_layers = 1024;
        wbits = calloc(1024 * 7 + 1, sizeof *wbits);
        abits = calloc(1024 * 4 + 1, sizeof *abits);
        if (!wbits || !abits) {
            free(wbits);
            free(abits);
            return cli_usage_error(CMD, "out of memory");
        }
        if (flx_recipe_file_load(a.recipe_file, &big, &recipe, wbits, abits, &err)) {
            free(wbits);
            free(abits);
            return cli_usage_error(CMD, "%s", err.msg);
        }
    } else if (flx_recipe_parse(&recipe, a.recipe, &err)) {
        return cli_usage_error(CMD, "%s", err.msg);
    }
    flx_rot_kind rot_kind = FLX_ROT_FILE;
    if (!strcmp(a.rotate, "none")) rot_kind = FLX_ROT_NONE;
    else if (!strcmp(a.rotate, "hadamard")) rot_kind = FLX_ROT_HADAMARD;
    else if (!strcmp(a.rotate, "random")) rot_kind = FLX_ROT_RANDOM;
    else if (!flx_file_exists(a.rotate))
        return cli_usage_error(CMD, "--rotate expects none, hadamard, random or a rotation file; '%s' is none of these",
                               a.rotate);
    if (recipe.static_attn && !a.calib)
        return cli_usage_error(CMD, "recipe %s needs --calib FILE for its static attention scales",
                               recipe.name);

    flx_model model = {0};
    flx_rotation_set rs;
    memset(&rs, 0, sizeof rs);
    flx_qmodel qm;
    memset(&qm, 0, sizeof qm);
    flx_attn_scales *scales = NULL;
    float *sq = NULL;
    double *qkv_max = NULL;
    flx_calib_data cd;
    memset(&cd, 0, sizeof cd);
    gptq_store *gs = NULL;
    flx_pool *pool = NULL;
    char *abs_model = NULL, *prov = NULL, *tok_path = NULL;
    int rc = FLX_EXIT_FAIL;
    double t0 = flx_now_seconds(), t_load, t_rot, t_calib, t_quant, t_write;

    /* fast checks first: model header and shapes, recipe vs shapes,
     * rotation file, calibration length */
    /* an HF folder's config.json is read first, so a recipe or rotation file
     * that does not fit is refused before the weights are converted */
    if (flx_is_dir(a.model)) {
        char *cfg_path = flx_path_join(a.model, "config.json");
        flx_llama_config pre;
        int prc2 = cfg_path && flx_file_exists(cfg_path) ? flx_hf_config_load(cfg_path, &pre, &err) : 1;
        free(cfg_path);
        if (prc2 == FLX_OK) {
            if (flx_recipe_check(&recipe, &pre, &err)) goto fail;
            if (rot_kind == FLX_ROT_FILE) {
                flx_rotation_set probe;
                if (flx_rotset_load(&probe, &pre, a.rotate, 0, 0, 0, &err)) goto fail;
                flx_rotset_free(&probe);
            }
        }
        /* any other problem with the folder is reported by the loader below */
    }
    if (flx_model_load_ex(&model, a.model, (int)a.threads, a.progress, &err)) goto fail;
    const flx_llama_config *c = &model.cfg;
    if (flx_recipe_check(&recipe, c, &err)) goto fail;
    if (a.recipe_file) {
        free(wbits);
        free(abits);
        wbits = calloc((size_t)c->n_layers * 7 + 1, sizeof *wbits);
        abits = calloc((size_t)c->n_layers * 4 + 1, sizeof *abits);
        if (!wbits || !abits) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
        if (flx_recipe_file_load(a.recipe_file, c, &recipe, wbits, abits, &err)) goto fail;
    }
    if (a.tokenizer) {
        flx_tokenizer *t = NULL;
        if (flx_tokenizer_load(&t, a.tokenizer, &err)) goto fail;
        if (flx_tokenizer_n_vocab(t) > c->n_vocab) {
            flx_fail(&err, FLX_EINVAL, "%s: tokenizer has %d tokens, the model %s only %d", a.tokenizer,
                     flx_tokenizer_n_vocab(t), a.model, c->n_vocab);
            flx_tokenizer_free(t);
            goto fail;
        }
        flx_tokenizer_free(model.tok);
        model.tok = t;
    }
    if (c->n_layers > 1024) { flx_fail(&err, FLX_EUNSUPPORTED, "more than 1024 layers"); goto fail; }
    int rotated = rot_kind != FLX_ROT_NONE;
    /* FlexLLM's hardware always runs the normalized FHT before down_proj, so
     * the flexllm recipe merges R4 even without R1/R2 */
    /* -spinquant recipes with quantized K run R3 even without rotation, as
     * SpinQuant's evaluation does (nothing to merge for it) */
    int r3 = (rotated || recipe.r3_always) && recipe.r3_online;
    int r4 = (rotated && recipe.r4_online) || recipe.kind == FLX_RECIPE_FLEXLLM;
    /* an online R4 on a non-power-of-two d_ff: zero-pad d_ff (exact for the
     * float model) so R4 is FlexLLM's FHT and the bit-exact engine runs it */
    int32_t d_ff_source = 0;
    /* flexllm targets the engine, whose RoPE pairs (i, i + head_dim/2): a
     * GGUF's adjacent pairing is turned into it (exact up to rounding) */
    int rope_permuted = 0;
    if (recipe.kind == FLX_RECIPE_FLEXLLM && c->rope_pairing == FLX_ROPE_ADJACENT) {
        if (flx_model_rope_to_split_half(&model, &err)) goto fail;
        rope_permuted = 1;
    }
    if (r4 && !a.no_pad && !flx_is_pow2(c->d_ff)) {
        d_ff_source = c->d_ff;
        if (flx_model_pad_dff(&model, flx_next_pow2(c->d_ff), &err)) goto fail;
        if (flx_recipe_check(&recipe, c, &err)) goto fail;
        if (a.progress)
            fprintf(stderr, "flxemu quantize: d_ff %d zero-padded to %d for the online R4 FHT\n",
                    (int)d_ff_source, (int)c->d_ff);
    }
    if (rot_kind == FLX_ROT_FILE) {
        if (flx_rotset_load(&rs, c, a.rotate, r3, r4, (uint64_t)a.seed, &err)) goto fail;
    } else {
        if (flx_rotset_generate(&rs, c, rot_kind, r3, r4, (uint64_t)a.seed, &err)) goto fail;
    }
    int transform = rotated || r4;         /* anything to fold or merge          */
    if (a.save_rotation && flx_rotset_save(&rs, a.save_rotation, &err)) goto fail;
    const flx_rotation_set *rot_online = transform || r3 ? &rs : NULL;   /* + R3 alone */
    int64_t seqlen = a.seqlen;
    if (a.calib) {
        if (seqlen > c->max_seq_len) seqlen = c->max_seq_len;
        if (!model.tok) {
            flx_fail(&err, FLX_EINVAL, "%s: the model carries no tokenizer to read --calib %s", a.model, a.calib);
            goto fail;
        }
        if (flx_calib_from_text(&cd, &model, a.calib, a.nsamples, seqlen, (uint64_t)a.seed, &err))
            goto fail;
    }
    t_load = flx_now_seconds();
    pool = flx_pool_create((int)a.threads);

    /* rotations (fold norms, untie, merge R1/R2 and R4's inverse); flexllm
     * always gets here (R4), so its norm gains are folded too, as the
     * hardware's gains of 1 assume */
    if (transform) {
        if (flx_spinquant_apply(&model, &rs, pool, &err)) goto fail;
    }
    t_rot = flx_now_seconds();
    const int use_gptq = a.gptq && recipe.w_bits < 16;
    if (recipe.static_attn) {
        int nl = c->n_layers;
        sq = calloc((size_t)4 * nl, sizeof *sq);
        scales = calloc((size_t)nl, sizeof *scales);
        if (use_gptq) qkv_max = calloc((size_t)3 * nl, sizeof *qkv_max);
        if (!sq || !scales || (use_gptq && !qkv_max)) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
    }
    /* with GPTQ the static scales come from its own calibration passes (the
     * maxima of q/k/v with the quantized weights, see below): no extra forward */
    if (recipe.static_attn && !use_gptq) {
        int nl = c->n_layers;
        if (a.progress)
            fprintf(stderr, "flxemu quantize: calibrating static scales on %lld x %lld tokens\n",
                    (long long)cd.n_windows, (long long)cd.seqlen);
        if (flx_calib_attn_scales(&model, &rs, &cd, 1.0f, (int)a.threads, sq, sq + nl, sq + 2 * nl,
                                  sq + 3 * nl, &err))
            goto fail;
        for (int l = 0; l < nl; l++) {
            scales[l].q_s = sq[l];
            scales[l].k_s = sq[nl + l];
            scales[l].v_s = sq[2 * nl + l];
            scales[l].a_s = sq[3 * nl + l];
        }
    }
    t_calib = flx_now_seconds();

    flx_qbuild b = {0};
    b.recipe = &recipe;
    b.rot = rot_online;
    b.rot_seed = (uint64_t)a.seed;
    b.d_ff_source = d_ff_source;
    if (a.search_bits) {
        wbits = calloc((size_t)c->n_layers * 7 + 1, sizeof *wbits);
        abits = calloc((size_t)c->n_layers * 4 + 1, sizeof *abits);
        if (!wbits || !abits) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
        double avg_act = 0;
        if (quantize_search_bits(&model, rot_online, &recipe, &cd, a.budget, a.act_budget, (int)a.threads, wbits,
                                 abits, &avg_bits, &avg_act, &err))
            goto fail;
        int n8 = 0;
        for (int i = 0; i < c->n_layers * 7; i++) n8 += wbits[i] == 8;
        if (a.budget)
            fprintf(stderr, "flxemu quantize: --search-bits: %d of %d projections at 8 bits, average %.3f bits "
                            "(budget %g)\n", n8, c->n_layers * 7, avg_bits, a.budget);
        n8 = 0;
        for (int i = 0; i < c->n_layers * 4; i++) n8 += abits[i] == 8;
        if (a.act_budget)
            fprintf(stderr, "flxemu quantize: --search-bits: %d of %d linear inputs at 8-bit activations, average "
                            "%.3f bits per multiply (act budget %g)\n", n8, c->n_layers * 4, avg_act, a.act_budget);
    }
    b.w_bits_of = wbits;
    b.a_bits_of = abits;
    tok_path = tokenizer_file(a.model, a.tokenizer);
    prov = provenance_json(&a, &recipe, rot_kind, r3, r4, rope_permuted, d_ff_source, c->d_ff, &cd, tok_path, &err);
    if (!prov) goto fail;
    b.provenance = prov;
    b.scales = scales;
    /* absolute, so the tokenizer is found from any working directory */
    abs_model = realpath(a.model, NULL);
    b.source = abs_model ? abs_model : a.model;
    b.pool = pool;
    b.progress = a.progress;
    if (use_gptq) {
        gs = calloc(1, sizeof *gs);
        if (!gs) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
        gs->n_layers = c->n_layers;
        flx_gptq_model_opts go = flx_gptq_model_opts_default();
        go.wq.bits = recipe.w.bits;
        go.wq.symmetric = recipe.w.scheme == FLX_QS_SYM;
        go.wq.group_size = recipe.w.gran == FLX_QG_GROUP ? recipe.w.group_size : 0;
        go.wq.clip = recipe.w.clip;
        go.wq.half_even = recipe.w.round == FLX_QR_HALF_EVEN;
        go.wq.mse_clip = recipe.w.mse_clip;
        go.gptq.act_order = a.act_order;
        go.gptq.block_start_groups = a.block_start_groups;
        go.n_threads = (int)a.threads;
        go.progress = a.progress;
        /* only the codes are needed afterwards: each layer's float weights go
         * once it is done, so the model shrinks while the codes grow */
        go.release_layers = 1;
        go.qkv_max = qkv_max;
        go.w_bits_of = wbits;   /* mixed precision (activations stay float in GPTQ's passes) */
        int32_t qd = c->n_heads * c->head_dim;
        const int32_t ins[7] = {c->d_model, c->d_model, c->d_model, qd, c->d_model, c->d_model, c->d_ff};
        for (int i = 0; i < 7; i++) gs->n_groups[i] = flx_wquant_groups(&go.wq, ins[i]);
        if (flx_gptq_model(&model, rot_online, &cd, &go, gptq_sink, gs, &err)) goto fail;
        if (recipe.static_attn)
            for (int l = 0; l < c->n_layers; l++)
                flx_calib_scales_from_max(qkv_max[3 * l], qkv_max[3 * l + 1], qkv_max[3 * l + 2], 1.0f,
                                          c->head_dim, &scales[l].q_s, &scales[l].k_s, &scales[l].v_s,
                                          &scales[l].a_s);
        b.weight_fn = gptq_weight_fn;
        b.weight_ctx = gs;
    }
    if (flx_qmodel_build(&qm, &model, &b, &err)) goto fail;
    /* n-grams of the calibration windows, so that ppl can warn when the
     * evaluation text overlaps them */
    uint64_t *ngrams = NULL;
    size_t n_ngrams = 0;
    if (a.calib) {
        if (flx_calib_ngrams(cd.ids, cd.n_windows, cd.seqlen, &ngrams, &n_ngrams, &err)) goto fail;
        uint64_t *keep = flx_qmodel_alloc(&qm, n_ngrams * 8 + 8);
        if (!keep) { free(ngrams); flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
        memcpy(keep, ngrams, n_ngrams * 8);
        free(ngrams);
        qm.calib_ngrams = keep;
        qm.n_calib_ngrams = n_ngrams;
    }
    /* the tokenizer travels inside the file, so it runs alone */
    if (tok_path) {
        if (flx_qmodel_embed_tokenizer(&qm, tok_path, &err)) goto fail;
    } else {
        fprintf(stderr, "flxemu quantize: warning: %s has no tokenizer to embed (pass --tokenizer FILE); "
                        "the .flxq will need --tokenizer or --tokens to evaluate text\n", a.model);
    }
    t_quant = flx_now_seconds();
    if (flx_qmodel_save(&qm, a.out, &err)) goto fail;
    t_write = flx_now_seconds();

    fprintf(stderr,
            "flxemu quantize: %s -> %s: recipe %s, rotation %s%s%s%s%s, %s weights; "
            "load %.2f s, rotate %.2f s, calibrate %.2f s, quantize %.2f s, write %.2f s\n",
            a.model, a.out, recipe.name, qm.rotation, r3 ? " +R3" : "", r4 ? " +R4" : "",
            d_ff_source ? " (d_ff zero-padded)" : "", recipe.static_attn ? ", static attention scales" : "", a.gptq ? "GPTQ" : "RTN",
            t_load - t0, t_rot - t_load, t_calib - t_rot, t_quant - t_calib, t_write - t_quant);
    if (a.json) {
        flx_outfile o;
        if (flx_outfile_open(&o, a.json, &err)) goto fail;
        char rj[2048];
        flx_recipe_json(&recipe, rj, sizeof rj);
        fputs("{\"model\":", o.fp);
        json_str(o.fp, a.model);
        fputs(",\"out\":", o.fp);
        json_str(o.fp, a.out);
        fprintf(o.fp,
                ",\"recipe\":%s,\"rotation\":\"%s\",\"r3\":%s,\"r4\":%s,\"d_ff\":%d,\"d_ff_source\":%d,"
                "\"weights\":\"%s\",\"seed\":%lld,\"seconds\":{\"load\":%.3f,\"rotate\":%.3f,"
                "\"calibrate\":%.3f,\"quantize\":%.3f,\"write\":%.3f}}\n",
                rj, qm.rotation, r3 ? "true" : "false", r4 ? "true" : "false", (int)c->d_ff,
                (int)(d_ff_source ? d_ff_source : c->d_ff), a.gptq ? "gptq" : "rtn", a.seed, t_load - t0, t_rot - t_load, t_calib - t_rot,
                t_quant - t_calib, t_write - t_quant);
        if (flx_outfile_commit(&o, &err)) goto fail;
    }
    rc = FLX_EXIT_OK;
    goto out;
fail:
    rc = cli_fail(CMD, &err);
out:
    if (gs) {
        gptq_store_free(gs);
        free(gs);
    }
    flx_qmodel_free(&qm);
    flx_rotset_free(&rs);   /* safe on a zeroed set; frees a dense R4 too */
    flx_model_free(&model);
    flx_pool_free(pool);
    free(abs_model);
    free(prov);
    free(tok_path);
    free(wbits);
    free(abits);
    free(scales);
    free(sq);
    free(qkv_max);
    flx_calib_free(&cd);
    return rc;
}
