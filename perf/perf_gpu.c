/* perf_gpu.c -- the GPU baseline: an NVIDIA A100 running Llama-3.2-1B in BF16
 * at batch 1, as a roofline with documented efficiencies (docs/perf-model.md,
 * "GPU baseline").  Prefill processes all P prompt tokens and yields the
 * first token; each of the remaining D - 1 tokens is one decode step. */
#include "flx_perf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A100 SXM4 80 GB: 2039 GB/s HBM2e, 312 TFLOP/s dense BF16, 400 W
 * (NVIDIA A100 datasheet, as tabulated at
 * https://glennklockwood.com/garden/processors/A100).  The efficiencies and
 * the idle power are assumptions, not measurements. */
void flx_gpu_a100_bf16(flx_gpu_model *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "A100-SXM4-80GB BF16 roofline");
    g->hbm_gbps = 2039.0;
    g->peak_tflops = 312.0;
    g->mem_efficiency = 0.80;
    g->flop_efficiency = 0.50;
    g->idle_w = 55.0;
    g->max_w = 400.0;
    g->step_overhead_s = 0.0;
    g->layer_overhead_s = 0.0;
    g->bytes_per_param = 2;
    snprintf(g->source, sizeof g->source, "built-in roofline, no framework overhead");
}

static double dmax(double a, double b) { return a > b ? a : b; }

/* Parameters read per forward pass: the 16 layers and the (tied) lm_head. */
static double layer_params(const flx_perf_model *m)
{
    double per = 2.0 * m->dim * m->dim + 2.0 * m->dim * m->kv_dim + 3.0 * m->dim * m->inter_dim;
    return per * m->n_layers;
}

typedef struct gpu_pass { double s, util; int mem_bound; } gpu_pass;

static gpu_pass roofline(const flx_gpu_model *g, double flops, double bytes, int n_layers)
{
    gpu_pass r;
    double t_c = flops / (g->peak_tflops * 1e12 * g->flop_efficiency);
    double t_m = bytes / (g->hbm_gbps * 1e9 * g->mem_efficiency);
    double t = dmax(t_c, t_m);
    r.mem_bound = t_m >= t_c;
    r.s = t + g->step_overhead_s + g->layer_overhead_s * n_layers;
    /* utilization of the binding resource relative to its peak */
    double u_c = flops / (r.s * g->peak_tflops * 1e12), u_m = bytes / (r.s * g->hbm_gbps * 1e9);
    r.util = dmax(u_c, u_m);
    return r;
}

void flx_gpu_run(const flx_gpu_model *g, const flx_perf_model *m, int64_t prompt_tokens,
                 int64_t decode_tokens, flx_gpu_report *rep)
{
    memset(rep, 0, sizeof *rep);
    double P = (double)prompt_tokens, wp = layer_params(m);
    double head = (double)m->dim * m->vocab;
    double bpp = g->bytes_per_param;
    double kv_token_bytes = 2.0 * m->n_layers * m->kv_dim * bpp;   /* K and V */
    /* prefill: GEMMs over P tokens, causal attention (QK^T and A.V each
     * P^2/2 x D MACs per layer), lm_head on the last token only */
    double flops = 2.0 * P * wp + 2.0 * P * P * m->dim * m->n_layers + 2.0 * head;
    double bytes = bpp * (wp + head) + P * kv_token_bytes + 2.0 * P * m->dim * bpp * m->n_layers;
    gpu_pass pf = roofline(g, flops, bytes, m->n_layers);
    rep->prefill_s = pf.s;
    rep->prefill_memory_bound = pf.mem_bound;
    rep->prefill_w = g->idle_w + (g->max_w - g->idle_w) * pf.util;
    double e = rep->prefill_w * pf.s, dec_s = 0;
    for (int64_t t = 1; t < decode_tokens; t++) {
        double S = P + (double)t;   /* keys incl. the new token */
        double f = 2.0 * (wp + head) + 4.0 * S * m->dim * m->n_layers;
        double b = bpp * (wp + head) + S * kv_token_bytes;
        gpu_pass st = roofline(g, f, b, m->n_layers);
        double w = g->idle_w + (g->max_w - g->idle_w) * st.util;
        dec_s += st.s;
        e += w * st.s;
    }
    rep->decode_s = dec_s;
    rep->ttft_s = rep->prefill_s;
    rep->e2e_s = rep->prefill_s + dec_s;
    rep->decode_tokens_per_s = decode_tokens > 1 ? (double)(decode_tokens - 1) / dec_s : 0;
    rep->decode_w = dec_s > 0 ? (e - rep->prefill_w * pf.s) / dec_s : 0;
    rep->energy_j = e;
}

/* ---------------------------------------------------------------- baselines file */

static int num_field(const cJSON *o, const char *key, const char *file, const char *where,
                     double lo, double hi, double *out, flx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return flx_fail(err, FLX_ENOTFOUND, "%s: missing field '%s%s'", file, where, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return flx_fail(err, FLX_EFORMAT, "%s: field '%s%s' must be a number", file, where, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return flx_fail(err, FLX_EINVAL, "%s: field '%s%s' must be in [%g, %g], got %g", file,
                        where, key, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return FLX_OK;
}

static int str_field(const cJSON *o, const char *key, const char *file, const char *where,
                     char *out, size_t n, flx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return flx_fail(err, FLX_ENOTFOUND, "%s: missing field '%s%s'", file, where, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return flx_fail(err, FLX_EFORMAT, "%s: field '%s%s' must be a non-empty string", file,
                        where, key);
    snprintf(out, n, "%s", v->valuestring);
    return FLX_OK;
}

static int parse_gpu(const char *text, const char *file, flx_gpu_model *models, int max_models,
                     flx_error *err)
{
    cJSON *root = cJSON_Parse(text);
    if (!root) return flx_fail(err, FLX_EFORMAT, "%s: not valid JSON", file);
    int rc = FLX_OK, n = 0;
    flx_gpu_model dev;
    memset(&dev, 0, sizeof dev);
    char name[48];
    double bpp = 0;
    if (!cJSON_IsObject(root)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: the top level must be a JSON object", file);
        goto done;
    }
    if ((rc = str_field(root, "name", file, "", name, sizeof name, err)) ||
        (rc = num_field(root, "hbm_gbps", file, "", 1, 1e5, &dev.hbm_gbps, err)) ||
        (rc = num_field(root, "peak_tflops", file, "", 0.1, 1e5, &dev.peak_tflops, err)) ||
        (rc = num_field(root, "mem_efficiency", file, "", 0.01, 1, &dev.mem_efficiency, err)) ||
        (rc = num_field(root, "flop_efficiency", file, "", 0.01, 1, &dev.flop_efficiency, err)) ||
        (rc = num_field(root, "idle_w", file, "", 0, 5000, &dev.idle_w, err)) ||
        (rc = num_field(root, "max_w", file, "", dev.idle_w, 5000, &dev.max_w, err)) ||
        (rc = num_field(root, "bytes_per_param", file, "", 1, 8, &bpp, err)))
        goto done;
    dev.bytes_per_param = (int)bpp;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "baselines");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: field 'baselines' must be a non-empty array", file);
        goto done;
    }
    for (const cJSON *b = arr->child; b; b = b->next) {
        char where[48];
        snprintf(where, sizeof where, "baselines[%d].", n);
        if (n >= max_models) {
            rc = flx_fail(err, FLX_EINVAL, "%s: more than %d baselines", file, max_models);
            goto done;
        }
        flx_gpu_model *g = &models[n];
        *g = dev;
        char bname[32];
        double pl, ps;
        if ((rc = str_field(b, "name", file, where, bname, sizeof bname, err)) ||
            (rc = num_field(b, "per_layer_overhead_ms", file, where, 0, 1000, &pl, err)) ||
            (rc = num_field(b, "per_step_overhead_ms", file, where, 0, 1000, &ps, err)) ||
            (rc = str_field(b, "source", file, where, g->source, sizeof g->source, err)))
            goto done;
        snprintf(g->name, sizeof g->name, "%.15s %.31s", name, bname);
        g->layer_overhead_s = pl / 1e3;
        g->step_overhead_s = ps / 1e3;
        n++;
    }
done:
    cJSON_Delete(root);
    return rc ? rc : n;
}

int flx_gpu_load(const char *name, flx_gpu_model *models, int max_models, flx_error *err)
{
    if (!name || !*name) return flx_fail(err, FLX_EINVAL, "GPU baselines: empty name");
    size_t len = strlen(name);
    char *path = NULL;
    if (strchr(name, '/') || (len > 5 && !strcmp(name + len - 5, ".json"))) {
        path = strdup(name);
    } else {
        char file[128];
        snprintf(file, sizeof file, "%.100s.json", name);
        const char *const *dirs = flx_perf_config_dirs();
        for (int i = 0; dirs[i] && !path; i++) {
            char *p = flx_path_join(dirs[i], file);
            if (p && flx_file_exists(p)) path = p;
            else free(p);
        }
        if (!path)
            return flx_fail(err, FLX_ENOTFOUND, "GPU baselines: no file %s in %s", file,
                            flx_perf_config_dirs()[0]);
    }
    if (!path) return flx_fail(err, FLX_ENOMEM, "GPU baselines: out of memory");
    char *text = NULL;
    size_t bytes = 0;
    int rc = flx_read_file(path, 1u << 20, &text, &bytes, err);
    if (rc == FLX_OK) rc = parse_gpu(text, path, models, max_models, err);
    free(text);
    free(path);
    return rc;
}
