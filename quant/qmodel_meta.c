/* qmodel_meta.c -- what makes a .flxq self-contained and described: the
 * embedded tokenizer (the bytes of a tokenizer.json, or a tokenizer-only
 * GGUF cut from a model's GGUF: its tokenizer.* keys and no tensors) and
 * the reading of a file's description (recipe, rotation, padding,
 * provenance, tokenizer) without loading its weights. */
#include "flx_qmodel.h"
#include "flx_gguf.h"
#include "flx_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- embedding */

static int append(uint8_t **buf, size_t *n, size_t *cap, const void *p, size_t bytes)
{
    if (*n + bytes > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *n + bytes) c *= 2;
        uint8_t *nb = realloc(*buf, c);
        if (!nb) return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *n, p, bytes);
    *n += bytes;
    return 0;
}

/* GGUF v3, little-endian: "GGUF", u32 version, u64 n_tensors = 0, u64 n_kv,
 * then each kept key/value as stored (u64 key length, key, u32 type, the
 * value's encoded bytes).  Only tokenizer.* keys and general.architecture. */
static int gguf_tokenizer_only(const char *path, uint8_t **out, size_t *out_bytes, flx_error *err)
{
    flx_gguf g;
    int rc = flx_gguf_open(&g, path, err);
    if (rc) return rc;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    uint64_t n_keep = 0;
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const flx_gguf_kv *kv = &g.kvs[i];
        if ((kv->key.len > 10 && !memcmp(kv->key.ptr, "tokenizer.", 10)) ||
            flx_gguf_str_eq(kv->key, "general.architecture"))
            n_keep++;
    }
    if (n_keep == 0 || !flx_gguf_find(&g, "tokenizer.ggml.model")) {
        flx_gguf_close(&g);
        return flx_fail(err, FLX_ENOTFOUND, "%s: GGUF file has no tokenizer (key tokenizer.ggml.model is missing)",
                        path);
    }
    const uint32_t version = 3;
    const uint64_t zero = 0;
    int bad = append(&buf, &n, &cap, "GGUF", 4) || append(&buf, &n, &cap, &version, 4) ||
              append(&buf, &n, &cap, &zero, 8) || append(&buf, &n, &cap, &n_keep, 8);
    for (uint64_t i = 0; i < g.n_kv && !bad; i++) {
        const flx_gguf_kv *kv = &g.kvs[i];
        if (!((kv->key.len > 10 && !memcmp(kv->key.ptr, "tokenizer.", 10)) ||
              flx_gguf_str_eq(kv->key, "general.architecture")))
            continue;
        bad = append(&buf, &n, &cap, &kv->key.len, 8) || append(&buf, &n, &cap, kv->key.ptr, kv->key.len) ||
              append(&buf, &n, &cap, &kv->type, 4) || append(&buf, &n, &cap, kv->value, kv->value_bytes);
    }
    flx_gguf_close(&g);
    if (bad) {
        free(buf);
        return flx_fail(err, FLX_ENOMEM, "out of memory copying the tokenizer of %s", path);
    }
    *out = buf;
    *out_bytes = n;
    return FLX_OK;
}

int flx_qmodel_embed_tokenizer(flx_qmodel *qm, const char *path, flx_error *err)
{
    unsigned char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return flx_fail(err, FLX_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    uint8_t *bytes = NULL;
    size_t n = 0;
    int rc;
    const char *format;
    if (got == 4 && !memcmp(magic, "GGUF", 4)) {
        format = "gguf";
        rc = gguf_tokenizer_only(path, &bytes, &n, err);
    } else {
        format = "tokenizer.json";
        char *b = NULL;
        rc = flx_read_file(path, (size_t)64 << 20, &b, &n, err);
        bytes = (uint8_t *)b;
    }
    if (rc) return rc;
    /* it must load as it will on the other side */
    flx_tokenizer *t = NULL;
    rc = flx_tokenizer_from_bytes(&t, bytes, n, err);
    flx_tokenizer_free(t);
    if (rc) {
        free(bytes);
        return rc;
    }
    uint8_t *keep = flx_qmodel_alloc(qm, n ? n : 1);
    if (!keep) {
        free(bytes);
        return flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    memcpy(keep, bytes, n);
    free(bytes);
    qm->tok_blob = keep;
    qm->tok_blob_bytes = n;
    snprintf(qm->tok_format, sizeof qm->tok_format, "%s", format);
    flx_sha256_hex(keep, n, qm->tok_sha256);
    return FLX_OK;
}

int flx_tokenizer_from_bytes(flx_tokenizer **out, const uint8_t *bytes, size_t n, flx_error *err)
{
    /* the loaders read files: a private temporary file, removed at once */
    *out = NULL;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/flxq-tokenizer-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return flx_fail(err, FLX_EIO, "cannot create a temporary file for the embedded tokenizer: %s",
                                strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, bytes + done, n - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);
    int rc = done == n ? flx_tokenizer_load(out, path, err)
                       : flx_fail(err, FLX_EIO, "cannot write the embedded tokenizer to %s", path);
    unlink(path);
    return rc;
}

/* ---------------------------------------------------------------- description */

void flx_qmeta_free(flx_qmeta *m)
{
    if (!m) return;
    free(m->recipe);
    free(m->recipe_json);
    free(m->rotation);
    free(m->config);
    free(m->source);
    free(m->padding);
    free(m->provenance);
    free(m->tokenizer);
    free(m->mixed_bits);
    free(m->mixed_act_bits);
    memset(m, 0, sizeof *m);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int flx_qmeta_read(flx_qmeta *m, const char *path, flx_error *err)
{
    memset(m, 0, sizeof *m);
    flx_safetensors st;
    int rc = flx_st_open(&st, path, err);
    if (rc) return rc;
    const char *f = flx_st_meta(&st, "format");
    if (!f || strcmp(f, "flxq")) {
        flx_st_close(&st);
        return flx_fail(err, FLX_EFORMAT, "%s: not a .flxq file (metadata 'format' is not \"flxq\")", path);
    }
    m->recipe = dup_or_null(flx_st_meta(&st, "recipe"));
    m->recipe_json = dup_or_null(flx_st_meta(&st, "recipe_json"));
    m->rotation = dup_or_null(flx_st_meta(&st, "rotation"));
    m->config = dup_or_null(flx_st_meta(&st, "config"));
    m->source = dup_or_null(flx_st_meta(&st, "source"));
    m->padding = dup_or_null(flx_st_meta(&st, "padding"));
    m->provenance = dup_or_null(flx_st_meta(&st, "provenance"));
    m->tokenizer = dup_or_null(flx_st_meta(&st, "tokenizer"));
    m->mixed_bits = dup_or_null(flx_st_meta(&st, "mixed_bits"));
    m->mixed_act_bits = dup_or_null(flx_st_meta(&st, "mixed_act_bits"));
    const flx_st_tensor *t = flx_st_find(&st, "tokenizer");
    m->tokenizer_bytes = t ? (int64_t)t->bytes : 0;
    m->n_tensors = st.n_tensors;
    flx_st_close(&st);
    return FLX_OK;
}

/* one line for people: recipe, rotation, weights, calibration, source */
void flx_qmeta_summary(const flx_qmeta *m, char *buf, size_t cap)
{
    cJSON *rot = m->rotation ? cJSON_Parse(m->rotation) : NULL;
    cJSON *prov = m->provenance ? cJSON_Parse(m->provenance) : NULL;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rot, "kind");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(rot, "seed");
    int n = snprintf(buf, cap, "recipe %s, rotation %s (seed %.0f)%s%s", m->recipe ? m->recipe : "?",
                     cJSON_IsString(kind) ? kind->valuestring : "?", cJSON_IsNumber(seed) ? seed->valuedouble : 0.0,
                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rot, "r3_online")) ? " +R3" : "",
                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rot, "r4_online")) ? " +R4" : "");
    if (m->padding && n > 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, ", d_ff zero-padded");
    if (m->mixed_bits && n > 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, ", mixed weight bits");
    if (m->mixed_act_bits && n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ", mixed activation bits");
    if (!prov) {
        if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "; no provenance (file from before it was recorded)");
    } else {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(prov, "weights");
        const cJSON *gq = cJSON_GetObjectItemCaseSensitive(prov, "gptq");
        const cJSON *cal = cJSON_GetObjectItemCaseSensitive(prov, "calibration");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(prov, "source_model");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(prov, "flxemu_version");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(src, "sha256");
        const cJSON *cf = cJSON_GetObjectItemCaseSensitive(cal, "sha256");
        const cJSON *cw = cJSON_GetObjectItemCaseSensitive(cal, "windows");
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(cal, "seqlen");
        if (n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, ", %s weights%s", cJSON_IsString(w) ? w->valuestring : "?",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(gq, "act_order")) ? " (act-order)" : "");
        if (cJSON_IsObject(cal) && n > 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n, ", calibration %.0f x %.0f tokens (sha256 %.12s)",
                          cJSON_IsNumber(cw) ? cw->valuedouble : 0.0, cJSON_IsNumber(cl) ? cl->valuedouble : 0.0,
                          cJSON_IsString(cf) ? cf->valuestring : "?");
        if (n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, ", source sha256 %.12s, flxemu %s",
                     cJSON_IsString(sha) ? sha->valuestring : "?", cJSON_IsString(ver) ? ver->valuestring : "?");
    }
    cJSON_Delete(rot);
    cJSON_Delete(prov);
}

char *flx_qmeta_json(const flx_qmeta *m)
{
    char summary[1024];
    flx_qmeta_summary(m, summary, sizeof summary);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "summary", summary);
    cJSON_AddStringToObject(o, "recipe", m->recipe ? m->recipe : "");
    const char *keys[6] = {"rotation", "padding", "tokenizer", "provenance", "mixed_bits", "mixed_act_bits"};
    const char *vals[6] = {m->rotation, m->padding, m->tokenizer, m->provenance, m->mixed_bits, m->mixed_act_bits};
    for (int i = 0; i < 6; i++) {
        cJSON *v = vals[i] ? cJSON_Parse(vals[i]) : NULL;
        cJSON_AddItemToObject(o, keys[i], v ? v : cJSON_CreateNull());
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---------------------------------------------------------------- calibration n-grams */

/* FNV-1a over the little-endian bytes of FLX_NGRAM_N token ids */
static uint64_t ngram_hash(const int32_t *ids)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < FLX_NGRAM_N; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xff;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int flx_calib_ngrams(const int32_t *ids, int64_t n_windows, int64_t seqlen, uint64_t **out, size_t *n_out,
                     flx_error *err)
{
    *out = NULL;
    *n_out = 0;
    size_t cap = 0, n = 0;
    uint64_t *h = NULL;
    for (int64_t w = 0; w < n_windows; w++)
        for (int64_t t = 0; t + FLX_NGRAM_N <= seqlen; t++) {
            uint64_t v = ngram_hash(ids + w * seqlen + t);
            if (v >> (64 - FLX_NGRAM_SAMPLE_BITS)) continue;   /* keep 1 in 2^bits */
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                uint64_t *nh = realloc(h, cap * sizeof *h);
                if (!nh) { free(h); return flx_fail(err, FLX_ENOMEM, "out of memory hashing calibration n-grams"); }
                h = nh;
            }
            h[n++] = v;
        }
    if (n) qsort(h, n, sizeof *h, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || h[i] != h[u - 1]) h[u++] = h[i];
    *out = h;
    *n_out = u;
    return FLX_OK;
}

double flx_qmodel_calib_overlap(const char *path, const int32_t *tokens, int64_t n_tokens, int64_t *n_checked)
{
    *n_checked = 0;
    flx_safetensors st;
    flx_error e;
    if (flx_st_open(&st, path, &e) != FLX_OK) return -1.0;
    const flx_st_tensor *t = flx_st_find(&st, "calib_ngrams");
    if (!t || t->dtype != FLX_ST_U8 || t->bytes % 8) {
        flx_st_close(&st);
        return -1.0;
    }
    const size_t n = t->bytes / 8;
    uint64_t *set = malloc(n ? n * 8 : 8);
    if (!set) {
        flx_st_close(&st);
        return -1.0;
    }
    memcpy(set, t->data, n * 8);   /* little-endian host */
    flx_st_close(&st);
    int64_t hits = 0, checked = 0;
    for (int64_t i = 0; i + FLX_NGRAM_N <= n_tokens; i++) {
        uint64_t v = ngram_hash(tokens + i);
        if (v >> (64 - FLX_NGRAM_SAMPLE_BITS)) continue;
        checked++;
        hits += bsearch(&v, set, n, 8, cmp_u64) != NULL;
    }
    free(set);
    *n_checked = checked;
    return checked ? (double)hits / (double)checked : 0.0;
}

/* ---------------------------------------------------------------- mixed precision */

static const char *const QT_NAMES[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

int flx_qtensor_index(const char *name, int32_t n_layers)
{
    if (!name) return -1;
    if (!strcmp(name, "head")) return n_layers * 7;
    if (strncmp(name, "layers.", 7)) return -1;
    char *end = NULL;
    long l = strtol(name + 7, &end, 10);
    if (end == name + 7 || *end != '.' || l < 0 || l >= n_layers) return -1;
    for (int i = 0; i < 7; i++)
        if (!strcmp(end + 1, QT_NAMES[i])) return (int)l * 7 + i;
    return -1;
}

static const char *const INPUT_NAMES[4] = {"qkv", "o", "gate_up", "down"};

int flx_qinput_index(const char *name, int32_t n_layers)
{
    if (!strcmp(name, "head")) return n_layers * 4;
    if (strncmp(name, "layers.", 7)) return -1;
    char *end = NULL;
    long l = strtol(name + 7, &end, 10);
    if (end == name + 7 || *end != '.' || l < 0 || l >= n_layers) return -1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(end + 1, INPUT_NAMES[k])) return (int)l * 4 + k;
    return -1;
}

int32_t flx_qmodel_act_bits(const flx_qmodel *qm, const flx_recipe *r, int layer, flx_linear_kind kind)
{
    int idx = kind == FLX_LINEAR_HEAD ? qm->cfg.n_layers * 4 : layer * 4 + (int)kind;
    return qm->a_bits_of && qm->a_bits_of[idx] > 0 ? qm->a_bits_of[idx] : r->a_bits;
}

/* "activations": {"layers.<l|*>.<qkv|o|gate_up|down>" or "head": bits 2..8 or 16} */
static int act_entries(const char *path, const cJSON *a, const flx_llama_config *cfg, const flx_recipe *r,
                       int32_t *a_bits_of, flx_error *err)
{
    if (!cJSON_IsObject(a))
        return flx_fail(err, FLX_EFORMAT, "%s: \"activations\" must be an object of linear inputs to bits", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const char *k = e->string;
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v != (int)v || !((v >= 2 && v <= 8) || v == 16))
            return flx_fail(err, FLX_EINVAL, "%s: activations entry \"%s\": bits must be an integer 2..8 or 16 (float)",
                            path, k);
        if (!strncmp(k, "layers.*.", 9)) {
            char one[64];
            snprintf(one, sizeof one, "layers.0.%s", k + 9);
            int idx = flx_qinput_index(one, cfg->n_layers > 0 ? cfg->n_layers : 1);
            if (idx < 0)
                return flx_fail(err, FLX_EINVAL, "%s: activations entry \"%s\": unknown input '%s' (qkv, o, gate_up, "
                                "down)", path, k, k + 9);
            for (int l = 0; l < cfg->n_layers; l++) a_bits_of[l * 4 + idx] = (int32_t)v;
            continue;
        }
        int idx = flx_qinput_index(k, cfg->n_layers);
        if (idx < 0)
            return flx_fail(err, FLX_EINVAL,
                            "%s: activations entry \"%s\" names no linear input of this model (layers.0..%d.<qkv|o|"
                            "gate_up|down>, layers.*.<...> or head)", path, k, (int)cfg->n_layers - 1);
        if (idx == cfg->n_layers * 4 && !r->quant_head)
            return flx_fail(err, FLX_EINVAL, "%s: activations entry \"head\": recipe %s keeps the head in float", path,
                            r->name);
        a_bits_of[idx] = (int32_t)v;
    }
    return FLX_OK;
}

int flx_recipe_file_load(const char *path, const flx_llama_config *cfg, flx_recipe *r, int32_t *w_bits_of,
                         int32_t *a_bits_of, flx_error *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc = flx_read_file(path, (size_t)1 << 20, &text, &n, err);
    if (rc) return rc;
    cJSON *o = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "recipe");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weights");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activations");
    memset(w_bits_of, 0, (size_t)(cfg->n_layers * 7 + 1) * sizeof *w_bits_of);
    memset(a_bits_of, 0, (size_t)(cfg->n_layers * 4 + 1) * sizeof *a_bits_of);
    if (!cJSON_IsObject(o) || !cJSON_IsString(name)) {
        cJSON_Delete(o);
        return flx_fail(err, FLX_EFORMAT, "%s: a recipe file is a JSON object with \"recipe\" (a recipe name) and "
                                          "\"weights\" ({\"layers.<l|*>.<wq|...|w_down>\" or \"head\": bits})", path);
    }
    rc = flx_recipe_parse(r, name->valuestring, err);
    if (rc == FLX_OK && w && !cJSON_IsObject(w))
        rc = flx_fail(err, FLX_EFORMAT, "%s: \"weights\" must be an object of tensor names to bits", path);
    if (rc == FLX_OK && w && r->w_bits >= 16)
        rc = flx_fail(err, FLX_EINVAL, "%s: recipe %s keeps weights in float: no bits to set", path, r->name);
    const cJSON *e;
    if (rc == FLX_OK && w)
        cJSON_ArrayForEach(e, w) {
            const char *k = e->string;
            if (!cJSON_IsNumber(e) || e->valuedouble != (int)e->valuedouble || e->valuedouble < 2 || e->valuedouble > 8) {
                rc = flx_fail(err, FLX_EINVAL, "%s: weights entry \"%s\": bits must be an integer 2..8", path, k);
                break;
            }
            const int bits = (int)e->valuedouble;
            if (!strncmp(k, "layers.*.", 9)) {
                char one[64];
                snprintf(one, sizeof one, "layers.0.%s", k + 9);
                int idx = flx_qtensor_index(one, cfg->n_layers);
                if (idx < 0) {
                    rc = flx_fail(err, FLX_EINVAL, "%s: weights entry \"%s\": unknown linear '%s'", path, k, k + 9);
                    break;
                }
                for (int l = 0; l < cfg->n_layers; l++) w_bits_of[l * 7 + idx] = bits;
                continue;
            }
            int idx = flx_qtensor_index(k, cfg->n_layers);
            if (idx < 0) {
                rc = flx_fail(err, FLX_EINVAL,
                              "%s: weights entry \"%s\" names no tensor of this model (layers.0..%d.<wq|wk|wv|wo|"
                              "w_gate|w_up|w_down>, layers.*.<...> or head)", path, k, (int)cfg->n_layers - 1);
                break;
            }
            if (idx == cfg->n_layers * 7 && !r->quant_head) {
                rc = flx_fail(err, FLX_EINVAL, "%s: weights entry \"head\": recipe %s keeps the head in float", path,
                              r->name);
                break;
            }
            w_bits_of[idx] = bits;
        }
    if (rc == FLX_OK && act) rc = act_entries(path, act, cfg, r, a_bits_of, err);
    cJSON_Delete(o);
    return rc;
}
