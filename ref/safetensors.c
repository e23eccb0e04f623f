/* safetensors: validating reader (header JSON through cJSON) and a
 * streaming writer with a compact, space-padded header. */
#include "flx_safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t bytes; } dtypes[FLX_ST_N_DTYPES] = {
    [FLX_ST_BOOL] = {"BOOL", 1}, [FLX_ST_U8] = {"U8", 1},     [FLX_ST_I8] = {"I8", 1},
    [FLX_ST_I16] = {"I16", 2},   [FLX_ST_U16] = {"U16", 2},   [FLX_ST_F16] = {"F16", 2},
    [FLX_ST_BF16] = {"BF16", 2}, [FLX_ST_I32] = {"I32", 4},   [FLX_ST_U32] = {"U32", 4},
    [FLX_ST_F32] = {"F32", 4},   [FLX_ST_I64] = {"I64", 8},   [FLX_ST_U64] = {"U64", 8},
    [FLX_ST_F64] = {"F64", 8},
};

const char *flx_st_dtype_name(flx_st_dtype dt)
{
    return (unsigned)dt < FLX_ST_N_DTYPES ? dtypes[dt].name : "?";
}

size_t flx_st_dtype_bytes(flx_st_dtype dt)
{
    return (unsigned)dt < FLX_ST_N_DTYPES ? dtypes[dt].bytes : 0;
}

int flx_st_dtype_parse(const char *name)
{
    for (int i = 0; i < FLX_ST_N_DTYPES; i++)
        if (!strcmp(name, dtypes[i].name)) return i;
    return -1;
}

/* ------------------------------------------------------------ reader */

/* JSON numbers are doubles: accept integers in [0, 2^53] only. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* File offset of the key "name" in the header (json, n bytes at file offset
 * 8), or 0 when it is not there verbatim (a name JSON escapes). */
static size_t key_offset(const char *json, size_t n, const char *name)
{
    size_t k = strlen(name);
    for (size_t i = 0; i + k + 2 <= n; i++) {
        if (json[i] != '"' || memcmp(json + i + 1, name, k) != 0 || json[i + k + 1] != '"') continue;
        size_t j = i + k + 2;
        while (j < n && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' || json[j] == '\r')) j++;
        if (j < n && json[j] == ':') return i + 8;
    }
    return 0;
}

static const char *where(char buf[64], const char *json, size_t n, const char *name)
{
    size_t off = key_offset(json, n, name);
    if (off) snprintf(buf, 64, " (header entry at offset %zu)", off);
    else buf[0] = '\0';
    return buf;
}

static int parse_entry(flx_safetensors *st, const cJSON *item, flx_st_tensor *t, size_t buf_bytes,
                       const char *json, size_t json_bytes, const char *path, flx_error *err)
{
    const char *name = item->string;
    /* where the entry is, so a message names the offset as well as the field
     * (searched only when a message needs it: a scan per entry would make
     * the parse quadratic in the header size) */
    char at_buf[64];
#define at where(at_buf, json, json_bytes, name)
    if (!cJSON_IsObject(item))
        return flx_fail(err, FLX_EFORMAT, "%s: header entry %s%s is not an object", path, name, at);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field dtype is missing or not a string",
                        path, name, at);
    int d = flx_st_dtype_parse(dt->valuestring);
    if (d < 0)
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: tensor %s%s: field dtype \"%s\" is not a known "
                        "safetensors dtype", path, name, at, dt->valuestring);
    t->dtype = (flx_st_dtype)d;
    if (!cJSON_IsArray(shape))
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field shape is missing or not an array",
                        path, name, at);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > FLX_ST_MAX_DIMS)
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: tensor %s%s: field shape has %d dimensions (at "
                        "most %d)", path, name, at, n_dims, FLX_ST_MAX_DIMS);
    t->n_dims = n_dims;
    size_t n_elems = 1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, shape) {
        uint64_t v;
        if (!json_uint(e, &v) || v > INT64_MAX)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field shape[%d] is not a "
                            "non-negative integer", path, name, at, i);
        t->shape[i++] = (int64_t)v;
        if (flx_size_mul(n_elems, (size_t)v, &n_elems) || n_elems > (size_t)INT64_MAX)
            return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field shape overflows the element "
                            "count", path, name, at);
    }
    t->n_elems = (int64_t)n_elems;
    size_t bytes;
    if (flx_size_mul(n_elems, flx_st_dtype_bytes(t->dtype), &bytes))
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: byte size overflows", path, name, at);
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field data_offsets must be [begin, end] "
                        "with non-negative integers", path, name, at);
    if (end < begin || end > buf_bytes)
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field data_offsets [%llu, %llu] lies "
                        "outside the %zu-byte data buffer", path, name, at, (unsigned long long)begin,
                        (unsigned long long)end, buf_bytes);
    if (end - begin != bytes)
        return flx_fail(err, FLX_EFORMAT, "%s: tensor %s%s: field data_offsets span %llu bytes but "
                        "dtype %s and shape need %zu", path, name, at,
                        (unsigned long long)(end - begin), flx_st_dtype_name(t->dtype), bytes);
    t->bytes = bytes;
    t->offset = st->data_offset + (size_t)begin;
    t->data = st->map.data + t->offset;
    t->name = dup_str(name);
    if (!t->name) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    return FLX_OK;
#undef at
}

static int parse_metadata(flx_safetensors *st, const cJSON *meta, const char *path, flx_error *err)
{
    if (cJSON_IsNull(meta)) return FLX_OK;
    if (!cJSON_IsObject(meta))
        return flx_fail(err, FLX_EFORMAT, "%s: field __metadata__ is not an object", path);
    size_t n = (size_t)cJSON_GetArraySize(meta);
    st->meta_keys = calloc(n + 1, sizeof(char *));
    st->meta_values = calloc(n + 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, meta) {
        if (!cJSON_IsString(e))
            return flx_fail(err, FLX_EFORMAT, "%s: field __metadata__.%s is not a string", path,
                            e->string);
        st->meta_keys[st->n_meta] = dup_str(e->string);
        st->meta_values[st->n_meta] = dup_str(e->valuestring);
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
            return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    return FLX_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const flx_st_tensor *const *)a)->name, (*(const flx_st_tensor *const *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    size_t x = (*(const flx_st_tensor *const *)a)->offset, y = (*(const flx_st_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int check_unique_and_disjoint(flx_safetensors *st, const char *path, flx_error *err)
{
    if (st->n_tensors < 2) return FLX_OK;
    const flx_st_tensor **idx = malloc(st->n_tensors * sizeof *idx);
    if (!idx) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < st->n_tensors; i++) idx[i] = &st->tensors[i];
    int rc = FLX_OK;
    qsort(idx, st->n_tensors, sizeof *idx, cmp_name);
    for (size_t i = 1; i < st->n_tensors && !rc; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name))
            rc = flx_fail(err, FLX_EFORMAT, "%s: tensor name %s appears twice in the header", path,
                          idx[i]->name);
    if (!rc) {
        qsort(idx, st->n_tensors, sizeof *idx, cmp_offset);
        for (size_t i = 1; i < st->n_tensors && !rc; i++) {
            const flx_st_tensor *a = idx[i - 1], *b = idx[i];
            if (a->bytes && b->bytes && b->offset < a->offset + a->bytes)
                rc = flx_fail(err, FLX_EFORMAT, "%s: tensors %s and %s overlap (field data_offsets "
                              "[%zu, %zu] and [%zu, ...])", path, a->name, b->name,
                              a->offset - st->data_offset, a->offset - st->data_offset + a->bytes,
                              b->offset - st->data_offset);
        }
    }
    free(idx);
    return rc;
}

int flx_st_open(flx_safetensors *st, const char *path, flx_error *err)
{
    memset(st, 0, sizeof *st);
    int rc = flx_map_file(&st->map, path, err);
    if (rc) return rc;
    const uint8_t *p = st->map.data;
    size_t size = st->map.bytes;
    cJSON *root = NULL;
    if (size < 8) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: file of %zu bytes is too short for the 8-byte header "
                      "length", path, size);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > FLX_ST_MAX_HEADER_BYTES || n > size - 8) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header length %llu at offset 0 exceeds %s", path,
                      (unsigned long long)n,
                      n > FLX_ST_MAX_HEADER_BYTES ? "the 100 MB limit" : "the file size");
        goto fail;
    }
    if (n < 2 || p[8] != '{') {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header at offset 8 does not start with '{': not a "
                      "safetensors file", path);
        goto fail;
    }
    st->data_offset = 8 + (size_t)n;
    const char *json = (const char *)p + 8, *end = NULL;
    if ((rc = flx_json_budget(json, (size_t)n, FLX_ST_MAX_JSON_VALUES, path, err))) goto fail;
    root = cJSON_ParseWithLengthOpts(json, (size_t)n, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + n ? (size_t)(at - json) + 8 : 8;
        rc = flx_fail(err, FLX_EFORMAT, "%s: header JSON is malformed near offset %zu", path, off);
        goto fail;
    }
    for (const char *q = end; q && q < json + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            rc = flx_fail(err, FLX_EFORMAT, "%s: unexpected bytes after the header JSON at offset %zu",
                          path, (size_t)(q - json) + 8);
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header JSON at offset 8 is not an object", path);
        goto fail;
    }
    size_t n_items = (size_t)cJSON_GetArraySize(root);
    size_t n_meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__") != NULL;
    if (n_items - n_meta > FLX_ST_MAX_TENSORS) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header at offset 8 has %zu tensors, more than the limit "
                      "of %d", path, n_items - n_meta, FLX_ST_MAX_TENSORS);
        goto fail;
    }
    st->tensors = calloc(n_items ? n_items : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    size_t buf_bytes = size - st->data_offset;
    const cJSON *item;
    int seen_meta = 0;
    cJSON_ArrayForEach(item, root) {
        if (!strcmp(item->string, "__metadata__")) {
            if (seen_meta++) {
                rc = flx_fail(err, FLX_EFORMAT, "%s: field __metadata__ appears twice", path);
                goto fail;
            }
            if ((rc = parse_metadata(st, item, path, err))) goto fail;
            continue;
        }
        if ((rc = parse_entry(st, item, &st->tensors[st->n_tensors], buf_bytes, json, (size_t)n,
                              path, err)))
            goto fail;
        st->n_tensors++;
    }
    if ((rc = check_unique_and_disjoint(st, path, err))) goto fail;
    cJSON_Delete(root);
    return FLX_OK;
fail:
    cJSON_Delete(root);
    flx_st_close(st);
    return rc;
}

void flx_st_close(flx_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    flx_unmap_file(&st->map);
    memset(st, 0, sizeof *st);
}

const flx_st_tensor *flx_st_find(const flx_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

const char *flx_st_meta(const flx_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

/* ------------------------------------------------------------ writer */

typedef struct sbuf {
    char  *p;
    size_t n, cap;
    int    oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sb_str(b, num);
}

int flx_st_writer_begin(flx_st_writer *w, const char *path, const flx_st_desc *t, size_t n,
                        const char *const *meta_keys, const char *const *meta_values,
                        size_t n_meta, flx_error *err)
{
    memset(w, 0, sizeof *w);
    w->tensor_bytes = calloc(n ? n : 1, sizeof *w->tensor_bytes);
    if (!w->tensor_bytes) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    w->n = n;
    sbuf h = {0};
    sb_str(&h, "{");
    if (n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, meta_keys[i]);
            sb_str(&h, ":");
            sb_json_str(&h, meta_values[i]);
        }
        sb_str(&h, "}");
    }
    size_t offset = 0;
    int rc = FLX_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t bytes = flx_st_dtype_bytes(t[i].dtype);
        if (!bytes || t[i].n_dims < 0 || t[i].n_dims > FLX_ST_MAX_DIMS || !t[i].name ||
            !strcmp(t[i].name, "__metadata__")) {
            rc = flx_fail(err, FLX_EINVAL, "%s: tensor %zu (%s) has an invalid dtype, rank or name",
                          path, i, t[i].name ? t[i].name : "(null)");
            break;
        }
        for (int d = 0; d < t[i].n_dims; d++)
            if (t[i].shape[d] < 0 || flx_size_mul(bytes, (size_t)t[i].shape[d], &bytes))
                rc = flx_fail(err, FLX_EINVAL, "%s: tensor %s has an invalid shape", path, t[i].name);
        if (rc) break;
        w->tensor_bytes[i] = bytes;
        if (n_meta || i) sb_str(&h, ",");
        sb_json_str(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, flx_st_dtype_name(t[i].dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t[i].n_dims; d++) {
            if (d) sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t[i].shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_str(&h, ",");
        sb_u64(&h, offset + bytes);
        sb_str(&h, "]}");
        offset += bytes;
    }
    sb_str(&h, "}");
    while (!h.oom && (8 + h.n) % 8) sb_str(&h, " ");
    if (!rc && h.oom) rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory for the header", path);
    if (!rc && h.n > FLX_ST_MAX_HEADER_BYTES)
        rc = flx_fail(err, FLX_EINVAL, "%s: header of %zu bytes exceeds the 100 MB limit", path, h.n);
    if (!rc) rc = flx_outfile_open(&w->out, path, err);
    if (!rc) {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
        if (fwrite(len, 1, 8, w->out.fp) != 8 || fwrite(h.p, 1, h.n, w->out.fp) != h.n)
            rc = flx_fail(err, FLX_EIO, "%s: write failed", path);
    }
    free(h.p);
    if (rc) flx_st_writer_abort(w);
    return rc;
}

int flx_st_writer_write(flx_st_writer *w, const void *data, size_t bytes, flx_error *err)
{
    const uint8_t *p = data;
    while (bytes > 0) {
        while (w->cur < w->n && w->cur_written == w->tensor_bytes[w->cur]) {
            w->cur++;
            w->cur_written = 0;
        }
        if (w->cur >= w->n)
            return flx_fail(err, FLX_EINVAL, "%s: more data written than the header declares",
                            w->out.path);
        size_t room = w->tensor_bytes[w->cur] - w->cur_written;
        size_t k = bytes < room ? bytes : room;
        if (fwrite(p, 1, k, w->out.fp) != k)
            return flx_fail(err, FLX_EIO, "%s: write failed", w->out.path);
        w->cur_written += k;
        p += k;
        bytes -= k;
    }
    return FLX_OK;
}

int flx_st_writer_commit(flx_st_writer *w, flx_error *err)
{
    while (w->cur < w->n && w->cur_written == w->tensor_bytes[w->cur]) {
        w->cur++;
        w->cur_written = 0;
    }
    if (w->cur != w->n) {
        int rc = flx_fail(err, FLX_EINVAL, "%s: tensor %zu is incomplete (%zu of %zu bytes written)",
                          w->out.path, w->cur, w->cur_written, w->tensor_bytes[w->cur]);
        flx_st_writer_abort(w);
        return rc;
    }
    int rc = flx_outfile_commit(&w->out, err);
    free(w->tensor_bytes);
    memset(w, 0, sizeof *w);
    return rc;
}

void flx_st_writer_abort(flx_st_writer *w)
{
    flx_outfile_abort(&w->out);
    free(w->tensor_bytes);
    memset(w, 0, sizeof *w);
}

int flx_st_write(const char *path, const flx_st_desc *tensors, const void *const *data, size_t n,
                 const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                 flx_error *err)
{
    flx_st_writer w;
    int rc = flx_st_writer_begin(&w, path, tensors, n, meta_keys, meta_values, n_meta, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = w.tensor_bytes[i];
        if (bytes && !data[i]) {
            flx_st_writer_abort(&w);
            return flx_fail(err, FLX_EINVAL, "%s: tensor %s has no data", path, tensors[i].name);
        }
        if ((rc = flx_st_writer_write(&w, data[i], bytes, err))) {
            flx_st_writer_abort(&w);
            return rc;
        }
    }
    return flx_st_writer_commit(&w, err);
}
