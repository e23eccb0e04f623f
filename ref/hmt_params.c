/* HMT parameters: settings, the safetensors file with HMT-pytorch's names,
 * seeded random parameters (flx_hmt.h, docs/hmt.md 1). */
#include "flx_hmt.h"
#include "flx_safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- settings */

void flx_hmt_settings_unset(flx_hmt_settings *s)
{
    s->segment_length = -1;
    s->n_sensory = -1;
    s->cache_size = -1;
    s->sum_fraction = -1.0;
}

void flx_hmt_settings_default(flx_hmt_settings *s)
{
    s->segment_length = 1024;
    s->n_sensory = 32;
    s->cache_size = 64;
    s->sum_fraction = 0.5;
}

/* Fills p's settings from s (all given) and checks them. */
static int apply_settings(flx_hmt_params *p, const flx_hmt_settings *s, const char *src, flx_error *err)
{
    if (s->n_sensory < 0 || s->n_sensory > 1 << 20)
        return flx_fail(err, FLX_EINVAL, "%s: num_sensory %d is outside [0, 2^20]", src, s->n_sensory);
    if (s->segment_length - 2 - s->n_sensory < 2 || s->segment_length > 1 << 20)
        return flx_fail(err, FLX_EINVAL,
                        "%s: segment_length %d leaves %d tokens per segment after the two memory "
                        "tokens and %d sensory tokens (need >= 2)",
                        src, s->segment_length, s->segment_length - 2 - s->n_sensory, s->n_sensory);
    if (s->cache_size < 1 || s->cache_size > 1 << 16)
        return flx_fail(err, FLX_EINVAL, "%s: mem_recall_context %d is outside [1, 65536]", src,
                        s->cache_size);
    if (!(s->sum_fraction > 0.0 && s->sum_fraction <= 1.0))
        return flx_fail(err, FLX_EINVAL, "%s: sum_fraction %g is outside (0, 1]", src, s->sum_fraction);
    p->seg_len = s->segment_length - 2 - s->n_sensory;
    p->n_sensory = s->n_sensory;
    p->cache_size = s->cache_size;
    p->sum_fraction = s->sum_fraction;
    p->sum_len = (int32_t)floor((double)p->seg_len * s->sum_fraction);
    if (p->sum_len < 1) p->sum_len = 1;
    return FLX_OK;
}

static void merge_settings(flx_hmt_settings *dst, const flx_hmt_settings *over)
{
    if (!over) return;
    if (over->segment_length >= 0) dst->segment_length = over->segment_length;
    if (over->n_sensory >= 0) dst->n_sensory = over->n_sensory;
    if (over->cache_size >= 0) dst->cache_size = over->cache_size;
    if (over->sum_fraction >= 0) dst->sum_fraction = over->sum_fraction;
}

static int alloc_params(flx_hmt_params *p, int32_t d, int32_t h, const char *src, flx_error *err)
{
    size_t mat = (size_t)h * (size_t)d;
    p->d_model = d;
    p->h = h;
    p->mem = malloc((size_t)d * sizeof(float));
    p->init_mem = malloc((size_t)d * sizeof(float));
    p->wq = malloc(mat * sizeof(float));
    p->wk = malloc(mat * sizeof(float));
    if (!p->mem || !p->init_mem || !p->wq || !p->wk) {
        flx_hmt_free(p);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory for HMT parameters (h %d, d %d)", src, h, d);
    }
    return FLX_OK;
}

void flx_hmt_free(flx_hmt_params *p)
{
    if (!p) return;
    free(p->mem);
    free(p->init_mem);
    free(p->wq);
    free(p->wk);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- file */

static const char *const NAME_MEM = "mem";
static const char *const NAME_INIT = "memory_cell.memory";
static const char *const NAME_WQ = "cross_attn.wq.weight";
static const char *const NAME_WK = "cross_attn.wk.weight";

/* Converts tensor t (F32/BF16/F16) into out[n]. */
static int read_floats(const flx_st_tensor *t, float *out, const char *path, flx_error *err)
{
    const uint8_t *d = t->data;
    for (int64_t i = 0; i < t->n_elems; i++) {
        switch (t->dtype) {
        case FLX_ST_F32: memcpy(&out[i], d + 4 * i, 4); break;
        case FLX_ST_BF16: {
            uint16_t v;
            memcpy(&v, d + 2 * i, 2);
            out[i] = flx_bf16_to_f32(v);
            break;
        }
        case FLX_ST_F16: {
            uint16_t v;
            memcpy(&v, d + 2 * i, 2);
            out[i] = flx_f16_to_f32(v);
            break;
        }
        default:
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has dtype %s; HMT parameters must be "
                            "F32, BF16 or F16", path, t->name, flx_st_dtype_name(t->dtype));
        }
        if (!isfinite(out[i]))
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' element %lld is not finite", path,
                            t->name, (long long)i);
    }
    return FLX_OK;
}

/* The tensor `name`: a vector of d ([1, d] or [d]) when rows == 1, else a
 * matrix [rows, d] (rows < 0: any rows, returned in *rows_out). */
static int find_tensor(const flx_safetensors *st, const char *name, int32_t d, int64_t rows,
                       int64_t *rows_out, const flx_st_tensor **out, const char *path, flx_error *err)
{
    const flx_st_tensor *t = flx_st_find(st, name);
    if (!t)
        return flx_fail(err, FLX_EFORMAT,
                        "%s: tensor '%s' is missing (an HMT file holds 'mem', 'memory_cell.memory', "
                        "'cross_attn.wq.weight' and 'cross_attn.wk.weight')", path, name);
    int ok;
    if (rows == 1)
        ok = (t->n_dims == 1 && t->shape[0] == d) ||
             (t->n_dims == 2 && t->shape[0] == 1 && t->shape[1] == d);
    else
        ok = t->n_dims == 2 && t->shape[1] == d && t->shape[0] >= 1 && t->shape[0] <= (1 << 20) &&
             (rows < 0 || t->shape[0] == rows);
    if (!ok) {
        char shape[96] = "";
        size_t n = 0;
        for (int i = 0; i < t->n_dims && n < sizeof shape - 24; i++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        if (rows == 1)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [1, %d] (the "
                            "model's hidden size)", path, name, shape, d);
        if (rows > 0)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [%lld, %d] "
                            "(the shape of %s)", path, name, shape, (long long)rows, d, NAME_WQ);
        return flx_fail(err, FLX_EFORMAT, "%s: tensor '%s' has shape [%s], expected [h, %d] (d = the "
                        "model's hidden size)", path, name, shape, d);
    }
    if (rows_out) *rows_out = t->n_dims == 2 ? t->shape[0] : 1;
    *out = t;
    return FLX_OK;
}

/* Metadata integer / float: absent keeps *v. */
static int meta_int(const flx_safetensors *st, const char *key, int32_t *v, const char *path, flx_error *err)
{
    const char *s = flx_st_meta(st, key);
    if (!s) return FLX_OK;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || x < 0 || x > (1 << 20))
        return flx_fail(err, FLX_EFORMAT, "%s: metadata '%s' is '%.40s', expected an integer in [0, 2^20]",
                        path, key, s);
    *v = (int32_t)x;
    return FLX_OK;
}

static int meta_double(const flx_safetensors *st, const char *key, double *v, const char *path,
                       flx_error *err)
{
    const char *s = flx_st_meta(st, key);
    if (!s) return FLX_OK;
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x))
        return flx_fail(err, FLX_EFORMAT, "%s: metadata '%s' is '%.40s', expected a number", path, key, s);
    *v = x;
    return FLX_OK;
}

int flx_hmt_load(flx_hmt_params *p, const char *path, int32_t d_model, const flx_hmt_settings *over,
                 flx_error *err)
{
    memset(p, 0, sizeof *p);
    flx_safetensors st;
    int rc = flx_st_open(&st, path, err);
    if (rc) return rc;
    const flx_st_tensor *tm, *ti, *tq, *tk;
    int64_t h = 0;
    flx_hmt_settings s;
    flx_hmt_settings_default(&s);
    if ((rc = find_tensor(&st, NAME_MEM, d_model, 1, NULL, &tm, path, err)) ||
        (rc = find_tensor(&st, NAME_INIT, d_model, 1, NULL, &ti, path, err)) ||
        (rc = find_tensor(&st, NAME_WQ, d_model, -1, &h, &tq, path, err)) ||
        (rc = find_tensor(&st, NAME_WK, d_model, h, NULL, &tk, path, err)) ||
        (rc = meta_int(&st, "segment_length", &s.segment_length, path, err)) ||
        (rc = meta_int(&st, "num_sensory", &s.n_sensory, path, err)) ||
        (rc = meta_int(&st, "mem_recall_context", &s.cache_size, path, err)) ||
        (rc = meta_double(&st, "sum_fraction", &s.sum_fraction, path, err)))
        goto out;
    merge_settings(&s, over);
    if ((rc = apply_settings(p, &s, path, err))) goto out;
    if ((rc = alloc_params(p, d_model, (int32_t)h, path, err))) goto out;
    if ((rc = read_floats(tm, p->mem, path, err)) || (rc = read_floats(ti, p->init_mem, path, err)) ||
        (rc = read_floats(tq, p->wq, path, err)) || (rc = read_floats(tk, p->wk, path, err)))
        goto out;
    snprintf(p->path, sizeof p->path, "%s", path);
out:
    if (rc) flx_hmt_free(p);
    flx_st_close(&st);
    return rc;
}

int flx_hmt_synth(flx_hmt_params *p, int32_t d_model, int32_t h, const flx_hmt_settings *s,
                  uint64_t seed, flx_error *err)
{
    memset(p, 0, sizeof *p);
    if (d_model < 1 || h < 1 || d_model > (1 << 16) || h > (1 << 16))
        return flx_fail(err, FLX_EINVAL, "HMT synth: d %d and h %d must lie in [1, 65536]", d_model, h);
    flx_hmt_settings all;
    flx_hmt_settings_default(&all);
    merge_settings(&all, s);
    int rc = apply_settings(p, &all, "HMT synth", err);
    if (rc) return rc;
    if ((rc = alloc_params(p, d_model, h, "HMT synth", err))) return rc;
    flx_rng rng;
    flx_rng_seed(&rng, seed ^ 0x484d54ull);   /* "HMT" */
    /* N(0,1) as an Irwin-Hall sum of four 16-bit uniforms, in integers */
    for (int v = 0; v < 2; v++) {
        float *x = v ? p->init_mem : p->mem;
        for (int32_t i = 0; i < d_model; i++) {
            uint64_t u = flx_rng_u64(&rng);
            int64_t sum = (int64_t)(u & 0xffff) + (int64_t)((u >> 16) & 0xffff) +
                          (int64_t)((u >> 32) & 0xffff) + (int64_t)(u >> 48);
            double z = ((double)sum - 4.0 * 32767.5) / 37837.22;   /* sqrt(4 (2^32 - 1) / 12) */
            x[i] = (float)(0.02 * z);
        }
    }
    double bound = 1.0 / sqrt((double)d_model);
    for (int v = 0; v < 2; v++) {
        float *w = v ? p->wk : p->wq;
        for (size_t i = 0; i < (size_t)h * (size_t)d_model; i++) {
            double u = (double)(flx_rng_u64(&rng) >> 40) / 16777216.0;   /* 24 bits, [0, 1) */
            w[i] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    snprintf(p->path, sizeof p->path, "synthetic (seed %llu)", (unsigned long long)seed);
    return FLX_OK;
}

int flx_hmt_write(const flx_hmt_params *p, const char *path, flx_error *err)
{
    flx_st_desc d[4] = {
        {NAME_MEM, FLX_ST_F32, 2, {1, p->d_model}},
        {NAME_INIT, FLX_ST_F32, 2, {1, p->d_model}},
        {NAME_WQ, FLX_ST_F32, 2, {p->h, p->d_model}},
        {NAME_WK, FLX_ST_F32, 2, {p->h, p->d_model}},
    };
    const void *data[4] = {p->mem, p->init_mem, p->wq, p->wk};
    char seg[32], sens[32], cache[32], frac[32];
    snprintf(seg, sizeof seg, "%d", p->seg_len + 2 + p->n_sensory);
    snprintf(sens, sizeof sens, "%d", p->n_sensory);
    snprintf(cache, sizeof cache, "%d", p->cache_size);
    snprintf(frac, sizeof frac, "%.17g", p->sum_fraction);
    const char *keys[5] = {"segment_length", "num_sensory", "mem_recall_context", "sum_fraction",
                           "format"};
    const char *vals[5] = {seg, sens, cache, frac, "hmt"};
    return flx_st_write(path, d, data, 4, keys, vals, 5, err);
}
