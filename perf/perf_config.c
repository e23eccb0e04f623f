/* perf_config.c -- configurations as JSON data files (perf/configs/NAME.json):
 * parsing with libcjson, strict typing, unknown-key rejection, and the
 * hardware rules a configuration must satisfy.  Every message names the file
 * and the field. */
#include "flx_perf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FLX_PERF_CONFIG_DIR
#define FLX_PERF_CONFIG_DIR "perf/configs"
#endif
#ifndef FLX_PERF_CONFIG_INSTALL_DIR
#define FLX_PERF_CONFIG_INSTALL_DIR "/usr/local/share/flxperf/configs"
#endif

#define MAX_CONFIG_BYTES (1u << 20)

typedef enum { F_INT, F_INT64, F_DOUBLE } field_type;

typedef struct field_spec {
    const char *section;  /* object key, NULL for top level */
    const char *key;
    field_type  type;
    size_t      offset;   /* into flx_perf_config */
} field_spec;

#define OFF(m) offsetof(flx_perf_config, m)
static const field_spec fields[] = {
    {"prefill", "tp", F_INT, OFF(pre.tp)},
    {"prefill", "qkvo_wp", F_INT, OFF(pre.qkvo_wp)},
    {"prefill", "qkvo_wp_read", F_INT, OFF(pre.qkvo_wp_read)},
    {"prefill", "k_par", F_INT, OFF(pre.k_par)},
    {"prefill", "v_par", F_INT, OFF(pre.v_par)},
    {"prefill", "ffn_wp", F_INT, OFF(pre.ffn_wp)},
    {"prefill", "ffn_blocks", F_INT, OFF(pre.ffn_blocks)},
    {"decode", "block_t", F_INT, OFF(dec.block_t)},
    {"decode", "block", F_INT, OFF(dec.block)},
    {"decode", "unroll", F_INT, OFF(dec.unroll)},
    {"decode", "head_par", F_INT, OFF(dec.head_par)},
    {"decode", "w_par", F_INT, OFF(dec.w_par)},
    {"decode", "k_par", F_INT, OFF(dec.k_par)},
    {"decode", "v_par", F_INT, OFF(dec.v_par)},
    {"decode", "kv_dim_pad", F_INT, OFF(dec.kv_dim_pad)},
    {"decode", "block_pack", F_INT, OFF(dec.block_pack)},
    {"decode", "attend_current", F_INT, OFF(dec.attend_current)},
    {"decode", "sort_lanes_serial", F_INT, OFF(dec.sort_lanes_serial)},
    {"decode", "sort_insert_ii", F_INT, OFF(dec.sort_insert_ii)},
    {"limits", "max_prefill_tokens", F_INT, OFF(max_prefill_tokens)},
    {"limits", "max_decode_tokens", F_INT, OFF(max_decode_tokens)},
    {"limits", "max_total_tokens", F_INT, OFF(max_total_tokens)},
    {"timing", "clock_mhz", F_DOUBLE, OFF(tim.clock_mhz)},
    {"timing", "lambda_cycles", F_DOUBLE, OFF(tim.lambda_cycles)},
    {"timing", "kernel_call_s", F_DOUBLE, OFF(tim.kernel_call_s)},
    {"timing", "cmp_depth_cycles", F_DOUBLE, OFF(tim.cmp_depth_cycles)},
    {"timing", "loop_overhead_cycles", F_DOUBLE, OFF(tim.loop_overhead_cycles)},
    {"timing", "stage_fill_cycles", F_DOUBLE, OFF(tim.stage_fill_cycles)},
    {"timing", "hbm_latency_cycles", F_DOUBLE, OFF(tim.hbm_latency_cycles)},
    {"timing", "ddr_latency_cycles", F_DOUBLE, OFF(tim.ddr_latency_cycles)},
    {"memory", "hbm_ports", F_INT, OFF(dev.hbm_ports)},
    {"memory", "hbm_port_gbps", F_DOUBLE, OFF(dev.hbm_port_gbps)},
    {"memory", "hbm_efficiency", F_DOUBLE, OFF(dev.hbm_efficiency)},
    {"memory", "axi_port_bytes", F_INT, OFF(dev.axi_port_bytes)},
    {"memory", "pcie_gbps", F_DOUBLE, OFF(dev.pcie_gbps)},
    {"resources", "luts", F_INT64, OFF(dev.luts)},
    {"resources", "dsps", F_INT64, OFF(dev.dsps)},
    {"resources", "bram36", F_INT64, OFF(dev.bram36)},
    {"resources", "urams", F_INT64, OFF(dev.urams)},
    {"resources", "shell_luts", F_INT64, OFF(dev.shell_luts)},
    {"resources", "shell_dsps", F_INT64, OFF(dev.shell_dsps)},
    {"resources", "shell_bram36", F_INT64, OFF(dev.shell_bram36)},
    {"resources", "shell_urams", F_INT64, OFF(dev.shell_urams)},
    {"power", "static_w", F_DOUBLE, OFF(pow.static_w)},
    {"power", "active_w", F_DOUBLE, OFF(pow.active_w)},
    {"power", "ref_util", F_DOUBLE, OFF(pow.ref_util)},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static const char *const sections[] = {"prefill", "decode", "limits", "timing",
                                       "memory", "resources", "power"};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

static int known_key(const char *section, const char *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key)) return 1;
    return 0;
}

static int parse_field(const cJSON *root, const field_spec *f, const char *file,
                       flx_perf_config *cfg, flx_error *err)
{
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, f->section);
    if (!cJSON_IsObject(sec))
        return flx_fail(err, sec ? FLX_EFORMAT : FLX_ENOTFOUND,
                        sec ? "%s: field '%s' must be an object"
                            : "%s: missing field '%s'",
                        file, f->section);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sec, f->key);
    if (!v)
        return flx_fail(err, FLX_ENOTFOUND, "%s: missing field '%s.%s'", file, f->section,
                        f->key);
    if (!cJSON_IsNumber(v))
        return flx_fail(err, FLX_EFORMAT, "%s: field '%s.%s' must be a number", file,
                        f->section, f->key);
    double d = v->valuedouble;
    if (!isfinite(d))
        return flx_fail(err, FLX_EFORMAT, "%s: field '%s.%s' is not finite", file, f->section,
                        f->key);
    char *base = (char *)cfg;
    if (f->type != F_DOUBLE) {
        if (d != floor(d))
            return flx_fail(err, FLX_EFORMAT, "%s: field '%s.%s' must be an integer, got %g",
                            file, f->section, f->key, d);
        if (f->type == F_INT64) {
            if (fabs(d) > 1e15)
                return flx_fail(err, FLX_EFORMAT, "%s: field '%s.%s' is out of range (%g)",
                                file, f->section, f->key, d);
            *(int64_t *)(base + f->offset) = (int64_t)d;
        } else {
            if (d < -2147483647.0 || d > 2147483647.0)
                return flx_fail(err, FLX_EFORMAT, "%s: field '%s.%s' is out of range (%g)",
                                file, f->section, f->key, d);
            *(int *)(base + f->offset) = (int)d;
        }
    } else {
        *(double *)(base + f->offset) = d;
    }
    return FLX_OK;
}

int flx_perf_config_parse(const char *json, const char *file, flx_perf_config *cfg,
                          flx_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    flx_perf_model_llama32_1b(&cfg->model);
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json ? (long)(at - json) : -1;
        return flx_fail(err, FLX_EFORMAT, "%s: not valid JSON (near byte %ld)", file, off);
    }
    int rc = FLX_OK;
    if (!cJSON_IsObject(root)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: the top level must be a JSON object", file);
        goto done;
    }
    /* unknown keys are typos: reject them */
    for (const cJSON *it = root->child; it; it = it->next) {
        int ok = !strcmp(it->string, "name") || !strcmp(it->string, "device") ||
                 !strcmp(it->string, "notes") || !strcmp(it->string, "source");
        for (size_t s = 0; s < N_SECTIONS && !ok; s++) ok = !strcmp(it->string, sections[s]);
        if (!ok) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: unknown field '%s'", file, it->string);
            goto done;
        }
        for (size_t s = 0; s < N_SECTIONS; s++) {
            if (strcmp(it->string, sections[s]) || !cJSON_IsObject(it)) continue;
            for (const cJSON *k = it->child; k; k = k->next)
                if (!known_key(sections[s], k->string)) {
                    rc = flx_fail(err, FLX_EFORMAT, "%s: unknown field '%s.%s'", file,
                                  sections[s], k->string);
                    goto done;
                }
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!name) {
        rc = flx_fail(err, FLX_ENOTFOUND, "%s: missing field 'name'", file);
        goto done;
    }
    if (!cJSON_IsString(name) || !name->valuestring[0] ||
        strlen(name->valuestring) >= sizeof cfg->name) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: field 'name' must be a non-empty string (< %zu bytes)",
                      file, sizeof cfg->name);
        goto done;
    }
    snprintf(cfg->name, sizeof cfg->name, "%s", name->valuestring);
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    if (!dev) {
        rc = flx_fail(err, FLX_ENOTFOUND, "%s: missing field 'device'", file);
        goto done;
    }
    if (!cJSON_IsString(dev)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: field 'device' must be a string", file);
        goto done;
    }
    if (!strcmp(dev->valuestring, "u280")) {
        cfg->dev.kind = FLX_PERF_DEV_U280;
    } else if (!strcmp(dev->valuestring, "v80")) {
        cfg->dev.kind = FLX_PERF_DEV_V80;
    } else {
        rc = flx_fail(err, FLX_EFORMAT, "%s: field 'device': unknown device '%.40s' "
                      "(expected \"u280\" or \"v80\")", file, dev->valuestring);
        goto done;
    }
    snprintf(cfg->dev.name, sizeof cfg->dev.name, "%s", dev->valuestring);
    for (const char *k = "notes"; k; k = !strcmp(k, "notes") ? "source" : NULL) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, k);
        if (n && !cJSON_IsString(n)) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: field '%s' must be a string", file, k);
            goto done;
        }
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        rc = parse_field(root, &fields[i], file, cfg, err);
        if (rc) goto done;
    }
    rc = flx_perf_config_validate(cfg, file, err);
done:
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- rules */

#define REQ(cond, field, ...)                                                               \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            char why_[256];                                                                 \
            snprintf(why_, sizeof why_, __VA_ARGS__);                                       \
            return flx_fail(err, FLX_EINVAL, "%s: field '%s': %s", file, field, why_);     \
        }                                                                                   \
    } while (0)

int flx_perf_config_validate(const flx_perf_config *cfg, const char *file, flx_error *err)
{
    const flx_perf_model *m = &cfg->model;
    const flx_perf_prefill_par *p = &cfg->pre;
    const flx_perf_decode_par *d = &cfg->dec;
    /* prefill: 2x2-packed PEs need even TP and lane counts */
    REQ(p->tp > 0, "prefill.tp", "parallelism must be > 0, got %d", p->tp);
    REQ(p->tp % 2 == 0, "prefill.tp", "must be even (2x2-packed PEs), got %d", p->tp);
    REQ(p->qkvo_wp > 0, "prefill.qkvo_wp", "parallelism must be > 0, got %d", p->qkvo_wp);
    REQ(p->qkvo_wp % 2 == 0, "prefill.qkvo_wp", "must be even (weights packed in pairs), got %d",
        p->qkvo_wp);
    REQ(p->qkvo_wp_read >= p->qkvo_wp && p->qkvo_wp_read % 2 == 0, "prefill.qkvo_wp_read",
        "must be even and >= qkvo_wp (%d), got %d", p->qkvo_wp, p->qkvo_wp_read);
    REQ(p->k_par > 0 && p->k_par % 2 == 0, "prefill.k_par",
        "parallelism must be > 0 and even, got %d", p->k_par);
    REQ(p->v_par > 0, "prefill.v_par", "parallelism must be > 0, got %d", p->v_par);
    REQ(m->head_dim % p->v_par == 0 && p->v_par % 2 == 0, "prefill.v_par",
        "must be even and divide head_dim %d, got %d", m->head_dim, p->v_par);
    REQ(p->ffn_blocks > 0, "prefill.ffn_blocks", "parallelism must be > 0, got %d",
        p->ffn_blocks);
    REQ(p->ffn_wp > 0, "prefill.ffn_wp", "parallelism must be > 0, got %d", p->ffn_wp);
    REQ(p->ffn_wp % (2 * p->ffn_blocks) == 0, "prefill.ffn_wp",
        "must be a multiple of 2 x ffn_blocks (%d), got %d", 2 * p->ffn_blocks, p->ffn_wp);
    /* decode: block partitions must divide the vectors they split */
    REQ(d->block_t > 0, "decode.block_t", "parallelism must be > 0, got %d", d->block_t);
    REQ(m->dim % d->block_t == 0, "decode.block_t", "must divide hidden dim %d, got %d", m->dim,
        d->block_t);
    REQ(d->block > 0, "decode.block", "parallelism must be > 0, got %d", d->block);
    REQ(m->dim % d->block == 0 && m->inter_dim % d->block == 0, "decode.block",
        "must divide hidden dim %d and FFN dim %d, got %d", m->dim, m->inter_dim, d->block);
    REQ(d->unroll > 0, "decode.unroll", "must be > 0, got %d", d->unroll);
    REQ(d->block % d->unroll == 0, "decode.unroll", "must divide decode.block (%d), got %d",
        d->block, d->unroll);
    REQ(d->block_pack == 1 || d->block_pack == 2, "decode.block_pack",
        "must be 1 or 2 (blockpack_2 loaders), got %d", d->block_pack);
    REQ(d->block % d->block_pack == 0, "decode.block_pack", "must divide decode.block (%d), got %d",
        d->block, d->block_pack);
    REQ(d->head_par > 0, "decode.head_par", "parallelism must be > 0, got %d", d->head_par);
    REQ(m->n_kv_heads % d->head_par == 0, "decode.head_par",
        "must divide the %d KV heads (GQA groups must not cross lanes), got %d", m->n_kv_heads,
        d->head_par);
    REQ(d->w_par > 0 && d->w_par % 2 == 0, "decode.w_par",
        "parallelism must be > 0 and even, got %d", d->w_par);
    REQ(m->dim % (d->block * d->w_par) == 0, "decode.w_par",
        "block x w_par (%d x %d) must divide hidden dim %d", d->block, d->w_par, m->dim);
    REQ(d->k_par > 0 && d->k_par % 2 == 0, "decode.k_par",
        "parallelism must be > 0 and even, got %d", d->k_par);
    REQ(d->v_par > 0 && m->head_dim % d->v_par == 0, "decode.v_par",
        "parallelism must be > 0 and divide head_dim %d, got %d", m->head_dim, d->v_par);
    REQ(d->kv_dim_pad >= 2 * m->kv_dim && d->kv_dim_pad % (d->block * d->w_par) == 0,
        "decode.kv_dim_pad", "must be >= %d (K and V) and a multiple of block x w_par (%d), got %d",
        2 * m->kv_dim, d->block * d->w_par, d->kv_dim_pad);
    /* limits */
    REQ(cfg->max_prefill_tokens > 0, "limits.max_prefill_tokens", "must be > 0, got %d",
        cfg->max_prefill_tokens);
    REQ(cfg->max_decode_tokens > 0, "limits.max_decode_tokens", "must be > 0, got %d",
        cfg->max_decode_tokens);
    REQ(cfg->max_total_tokens >= cfg->max_prefill_tokens && cfg->max_total_tokens <= 1 << 20,
        "limits.max_total_tokens", "must be in [max_prefill_tokens, 2^20], got %d",
        cfg->max_total_tokens);
    /* timing */
    REQ(cfg->tim.clock_mhz > 0 && cfg->tim.clock_mhz <= 1000, "timing.clock_mhz",
        "must be in (0, 1000], got %g", cfg->tim.clock_mhz);
    /* lambda is added to every per-iteration overhead; the smallest structural
     * part (drain + skew) is 1.5 x the narrowest decode array */
    double min_delta = 1.5 * d->w_par;
    if (1.5 * d->k_par < min_delta) min_delta = 1.5 * d->k_par;
    if (1.5 * d->v_par < min_delta) min_delta = 1.5 * d->v_par;
    REQ(cfg->tim.lambda_cycles > -min_delta && cfg->tim.lambda_cycles <= 1000,
        "timing.lambda_cycles", "must be in (-%g, 1000] so that every overhead delta stays "
        "positive, got %g", min_delta, cfg->tim.lambda_cycles);
    REQ(d->attend_current == 0 || d->attend_current == 1, "decode.attend_current",
        "must be 0 (S = n + t, FSQ) or 1 (S = n + t + 1, FlexLLM), got %d", d->attend_current);
    REQ(d->sort_lanes_serial == 0 || d->sort_lanes_serial == 1, "decode.sort_lanes_serial",
        "must be 0 or 1, got %d", d->sort_lanes_serial);
    REQ(d->sort_insert_ii >= 0 && d->sort_insert_ii <= 16, "decode.sort_insert_ii",
        "must be in [0, 16] (0: unrolled shift), got %d", d->sort_insert_ii);
    REQ(cfg->tim.cmp_depth_cycles >= 0 && cfg->tim.cmp_depth_cycles <= 100,
        "timing.cmp_depth_cycles", "must be in [0, 100], got %g", cfg->tim.cmp_depth_cycles);
    REQ(cfg->tim.loop_overhead_cycles >= 0 && cfg->tim.loop_overhead_cycles <= 100,
        "timing.loop_overhead_cycles", "must be in [0, 100], got %g",
        cfg->tim.loop_overhead_cycles);
    REQ(cfg->tim.stage_fill_cycles >= 0 && cfg->tim.stage_fill_cycles <= 1000,
        "timing.stage_fill_cycles", "must be in [0, 1000], got %g", cfg->tim.stage_fill_cycles);
    REQ(cfg->tim.hbm_latency_cycles >= 0 && cfg->tim.hbm_latency_cycles <= 10000,
        "timing.hbm_latency_cycles", "must be in [0, 10000], got %g",
        cfg->tim.hbm_latency_cycles);
    REQ(cfg->tim.ddr_latency_cycles >= 0 && cfg->tim.ddr_latency_cycles <= 10000,
        "timing.ddr_latency_cycles", "must be in [0, 10000], got %g",
        cfg->tim.ddr_latency_cycles);
    REQ(cfg->tim.kernel_call_s >= 0 && cfg->tim.kernel_call_s < 10, "timing.kernel_call_s",
        "must be in [0, 10), got %g", cfg->tim.kernel_call_s);
    /* memory */
    REQ(cfg->dev.hbm_ports > 0 && cfg->dev.hbm_ports <= 256, "memory.hbm_ports",
        "must be in [1, 256], got %d", cfg->dev.hbm_ports);
    /* bandwidths and power are bounded on both sides: a positive but tiny
     * bandwidth (1e-300) made every time infinite or NaN (found by fuzzing) */
    REQ(cfg->dev.hbm_port_gbps >= 0.01 && cfg->dev.hbm_port_gbps <= 1000, "memory.hbm_port_gbps",
        "must be in [0.01, 1000], got %g", cfg->dev.hbm_port_gbps);
    REQ(cfg->dev.hbm_efficiency >= 0.01 && cfg->dev.hbm_efficiency <= 1, "memory.hbm_efficiency",
        "must be in [0.01, 1], got %g", cfg->dev.hbm_efficiency);
    REQ(cfg->dev.axi_port_bytes > 0 && cfg->dev.axi_port_bytes <= 512, "memory.axi_port_bytes",
        "must be in [1, 512], got %d", cfg->dev.axi_port_bytes);
    REQ(cfg->dev.pcie_gbps >= 0.01 && cfg->dev.pcie_gbps <= 1000, "memory.pcie_gbps",
        "must be in [0.01, 1000], got %g", cfg->dev.pcie_gbps);
    /* resources */
    REQ(cfg->dev.luts > 0 && cfg->dev.shell_luts >= 0 && cfg->dev.shell_luts < cfg->dev.luts,
        "resources.luts", "must be > 0 and larger than shell_luts");
    REQ(cfg->dev.dsps > 0 && cfg->dev.shell_dsps >= 0 && cfg->dev.shell_dsps < cfg->dev.dsps,
        "resources.dsps", "must be > 0 and larger than shell_dsps");
    REQ(cfg->dev.bram36 > 0 && cfg->dev.shell_bram36 >= 0 &&
            cfg->dev.shell_bram36 < cfg->dev.bram36,
        "resources.bram36", "must be > 0 and larger than shell_bram36");
    REQ(cfg->dev.urams > 0 && cfg->dev.shell_urams >= 0 && cfg->dev.shell_urams < cfg->dev.urams,
        "resources.urams", "must be > 0 and larger than shell_urams");
    /* power */
    REQ(cfg->pow.static_w >= 0 && cfg->pow.static_w <= 10000, "power.static_w",
        "must be in [0, 10000], got %g", cfg->pow.static_w);
    REQ(cfg->pow.active_w > cfg->pow.static_w && cfg->pow.active_w <= 10000, "power.active_w",
        "must be larger than static_w (%g) and at most 10000, got %g", cfg->pow.static_w,
        cfg->pow.active_w);
    REQ(cfg->pow.ref_util > 0 && cfg->pow.ref_util <= 1, "power.ref_util",
        "must be in (0, 1], got %g", cfg->pow.ref_util);
    /* ports: each kernel must find its HBM ports */
    flx_perf_resources r;
    flx_perf_resources_of(cfg, &r);
    REQ(r.hbm_ports_prefill <= cfg->dev.hbm_ports, "memory.hbm_ports",
        "the prefill kernel needs %d HBM ports, the device has %d", r.hbm_ports_prefill,
        cfg->dev.hbm_ports);
    REQ(r.hbm_ports_decode <= cfg->dev.hbm_ports, "memory.hbm_ports",
        "the decode kernel needs %d HBM ports, the device has %d", r.hbm_ports_decode,
        cfg->dev.hbm_ports);
    return FLX_OK;
}

/* ---------------------------------------------------------------- files */

int flx_perf_config_load(const char *path, flx_perf_config *cfg, flx_error *err)
{
    char *text = NULL;
    size_t bytes = 0;
    struct stat st;
    /* a model file given as --config is too big or not JSON: say what it is not */
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size > MAX_CONFIG_BYTES)
        return flx_fail(err, FLX_EFORMAT, "%s: not a configuration file (%lld bytes; a cycle-model "
                        "configuration is a JSON object of at most %u bytes)", path,
                        (long long)st.st_size, MAX_CONFIG_BYTES);
    int rc = flx_read_file(path, MAX_CONFIG_BYTES, &text, &bytes, err);
    if (rc) return rc;
    size_t k = 0;
    while (k < bytes && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r')) k++;
    if (k == bytes || text[k] != '{') {
        rc = flx_fail(err, FLX_EFORMAT, "%s: not a configuration file (a JSON object starting with "
                      "'{' expected, byte 0x%02x at offset %zu)", path,
                      k < bytes ? (unsigned)(unsigned char)text[k] : 0u, k);
        free(text);
        return rc;
    }
    rc = flx_perf_config_parse(text, path, cfg, err);
    free(text);
    if (rc == FLX_OK) snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return rc;
}

const char *const *flx_perf_config_dirs(void)
{
    static const char *const dirs[] = {FLX_PERF_CONFIG_DIR, FLX_PERF_CONFIG_INSTALL_DIR, NULL};
    return dirs;
}

int flx_perf_config_find(const char *name, const char *config_dir, flx_perf_config *cfg,
                         flx_error *err)
{
    if (!name || !*name) return flx_fail(err, FLX_EINVAL, "cycle model: empty configuration name");
    size_t len = strlen(name);
    int is_path = strchr(name, '/') || (len > 5 && !strcmp(name + len - 5, ".json"));
    if (is_path || flx_file_exists(name)) return flx_perf_config_load(name, cfg, err);
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return flx_fail(err, FLX_EINVAL, "cycle model: '%s' is neither a file nor a configuration "
                            "name ([a-z0-9_-])", name);
    char file[128];
    snprintf(file, sizeof file, "%s.json", name);
    const char *single[] = {config_dir, NULL};
    const char *const *dirs = config_dir ? single : flx_perf_config_dirs();
    for (int i = 0; dirs[i]; i++) {
        char *p = flx_path_join(dirs[i], file);
        if (!p) return flx_fail(err, FLX_ENOMEM, "cycle model: out of memory");
        if (flx_file_exists(p)) {
            int rc = flx_perf_config_load(p, cfg, err);
            free(p);
            return rc;
        }
        free(p);
    }
    return flx_fail(err, FLX_ENOTFOUND,
                    "cycle model: no configuration named '%s' (looked for %s in %s%s%s); known: u280, "
                    "u280_mem_opt (production), u280_fsq (measured), u280_mem_opt_new, v80, or a path to a .json file",
                    name, file, dirs[0], dirs[1] ? " and " : "", dirs[1] ? dirs[1] : "");
}
