/* GGUF v3 reader: parse and validate the header, typed metadata getters,
 * dequantization of the tensor types the reference model loads. */
#include "flx_gguf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_KEY_BYTES    65535
#define GGUF_MAX_NAME_BYTES   64
#define GGUF_MAX_ARRAY_DEPTH  8
#define GGUF_MAX_ALIGNMENT    (1u << 24)

/* ------------------------------------------------------------ byte reader */

typedef struct reader {
    const uint8_t *base;
    size_t         size;
    size_t         pos;
    const char    *path;
    flx_error     *err;
} reader;

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

static size_t remaining(const reader *r) { return r->size - r->pos; }

/* Fails unless n more bytes exist; what names the field being read. */
static int need(reader *r, uint64_t n, const char *what, const char *ctx)
{
    if (n > remaining(r))
        return flx_fail(r->err, FLX_EFORMAT,
                        "%s: %s%s%s at offset %zu needs %llu bytes but only %zu remain "
                        "(truncated or corrupt file)",
                        r->path, what, ctx && *ctx ? " of " : "", ctx ? ctx : "", r->pos,
                        (unsigned long long)n, remaining(r));
    return FLX_OK;
}

static int rd_u32(reader *r, uint32_t *v, const char *what, const char *ctx)
{
    int rc = need(r, 4, what, ctx);
    if (rc) return rc;
    *v = le32(r->base + r->pos);
    r->pos += 4;
    return FLX_OK;
}

static int rd_u64(reader *r, uint64_t *v, const char *what, const char *ctx)
{
    int rc = need(r, 8, what, ctx);
    if (rc) return rc;
    *v = le64(r->base + r->pos);
    r->pos += 8;
    return FLX_OK;
}

static int rd_str(reader *r, flx_gguf_str *s, uint64_t max_len, const char *what, const char *ctx)
{
    uint64_t len;
    size_t at = r->pos;
    int rc = rd_u64(r, &len, what, ctx);
    if (rc) return rc;
    if (len > max_len)
        return flx_fail(r->err, FLX_EFORMAT, "%s: %s%s%s at offset %zu has length %llu (limit %llu)",
                        r->path, what, ctx && *ctx ? " of " : "", ctx ? ctx : "", at,
                        (unsigned long long)len, (unsigned long long)max_len);
    rc = need(r, len, what, ctx);
    if (rc) return rc;
    s->ptr = (const char *)(r->base + r->pos);
    s->len = len;
    r->pos += (size_t)len;
    return FLX_OK;
}

/* Printable copy of a file string for messages (truncated, NUL-terminated). */
static const char *show(flx_gguf_str s, char *buf, size_t cap)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = (c >= 32 && c < 127) ? (char)c : '?';
    }
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------ value types */

static size_t scalar_bytes(uint32_t type)
{
    switch (type) {
    case FLX_GGUF_U8: case FLX_GGUF_I8: case FLX_GGUF_BOOL: return 1;
    case FLX_GGUF_U16: case FLX_GGUF_I16: return 2;
    case FLX_GGUF_U32: case FLX_GGUF_I32: case FLX_GGUF_F32: return 4;
    case FLX_GGUF_U64: case FLX_GGUF_I64: case FLX_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Smallest possible encoding of one value of a type: bounds array counts. */
static size_t min_value_bytes(uint32_t type)
{
    if (type == FLX_GGUF_STRING) return 8;
    if (type == FLX_GGUF_ARRAY) return 12;
    return scalar_bytes(type);
}

/* Skips one value of the given type, validating it. */
static int skip_value(reader *r, uint32_t type, int depth, const char *key)
{
    size_t sb = scalar_bytes(type);
    if (sb) {
        int rc = need(r, sb, "value", key);
        if (rc) return rc;
        if (type == FLX_GGUF_BOOL && r->base[r->pos] > 1)
            return flx_fail(r->err, FLX_EFORMAT, "%s: bool value of key %s at offset %zu is %u "
                            "(must be 0 or 1)", r->path, key, r->pos, r->base[r->pos]);
        r->pos += sb;
        return FLX_OK;
    }
    if (type == FLX_GGUF_STRING) {
        flx_gguf_str s;
        return rd_str(r, &s, UINT64_MAX, "string value", key);
    }
    if (type != FLX_GGUF_ARRAY)
        return flx_fail(r->err, FLX_EFORMAT, "%s: key %s at offset %zu has unknown value type %u",
                        r->path, key, r->pos, type);
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return flx_fail(r->err, FLX_EFORMAT, "%s: key %s at offset %zu nests arrays deeper than %d",
                        r->path, key, r->pos, GGUF_MAX_ARRAY_DEPTH);
    uint32_t elem;
    uint64_t count;
    int rc = rd_u32(r, &elem, "array element type", key);
    if (rc) return rc;
    size_t count_at = r->pos;
    if ((rc = rd_u64(r, &count, "array count", key))) return rc;
    size_t mb = min_value_bytes(elem);
    if (mb == 0)
        return flx_fail(r->err, FLX_EFORMAT, "%s: array %s at offset %zu has unknown element type %u",
                        r->path, key, count_at - 4, elem);
    if (count > remaining(r) / mb)
        return flx_fail(r->err, FLX_EFORMAT,
                        "%s: array %s at offset %zu claims %llu elements but only %zu bytes remain",
                        r->path, key, count_at, (unsigned long long)count, remaining(r));
    if (scalar_bytes(elem)) {
        if (elem == FLX_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (r->base[r->pos + i] > 1)
                    return flx_fail(r->err, FLX_EFORMAT, "%s: bool element %llu of array %s at "
                                    "offset %zu is not 0 or 1", r->path, (unsigned long long)i,
                                    key, r->pos + (size_t)i);
        r->pos += (size_t)count * mb;
        return FLX_OK;
    }
    for (uint64_t i = 0; i < count; i++)
        if ((rc = skip_value(r, elem, depth + 1, key))) return rc;
    return FLX_OK;
}

/* ------------------------------------------------------------ ggml types */

const char *flx_ggml_type_name(uint32_t type)
{
    switch (type) {
    case FLX_GGML_F32: return "F32";   case FLX_GGML_F16: return "F16";
    case FLX_GGML_Q4_0: return "Q4_0"; case FLX_GGML_Q4_1: return "Q4_1";
    case FLX_GGML_Q5_0: return "Q5_0"; case FLX_GGML_Q5_1: return "Q5_1";
    case FLX_GGML_Q8_0: return "Q8_0"; case FLX_GGML_Q8_1: return "Q8_1";
    case FLX_GGML_Q2_K: return "Q2_K"; case FLX_GGML_Q3_K: return "Q3_K";
    case FLX_GGML_Q4_K: return "Q4_K"; case FLX_GGML_Q5_K: return "Q5_K";
    case FLX_GGML_Q6_K: return "Q6_K"; case FLX_GGML_Q8_K: return "Q8_K";
    case FLX_GGML_I8: return "I8";     case FLX_GGML_I16: return "I16";
    case FLX_GGML_I32: return "I32";   case FLX_GGML_I64: return "I64";
    case FLX_GGML_F64: return "F64";   case FLX_GGML_BF16: return "BF16";
    default: return "?";
    }
}

int64_t flx_ggml_block_elems(uint32_t type)
{
    switch (type) {
    case FLX_GGML_Q4_0: case FLX_GGML_Q4_1: case FLX_GGML_Q5_0: case FLX_GGML_Q5_1:
    case FLX_GGML_Q8_0: case FLX_GGML_Q8_1: return 32;
    case FLX_GGML_Q2_K: case FLX_GGML_Q3_K: case FLX_GGML_Q4_K: case FLX_GGML_Q5_K:
    case FLX_GGML_Q6_K: case FLX_GGML_Q8_K: return 256;
    default: return flx_ggml_block_bytes(type) ? 1 : 0;
    }
}

size_t flx_ggml_block_bytes(uint32_t type)
{
    switch (type) {
    case FLX_GGML_F32: return 4;   case FLX_GGML_F16: return 2;   case FLX_GGML_BF16: return 2;
    case FLX_GGML_Q4_0: return 18; case FLX_GGML_Q4_1: return 20;
    case FLX_GGML_Q5_0: return 22; case FLX_GGML_Q5_1: return 24;
    case FLX_GGML_Q8_0: return 34; case FLX_GGML_Q8_1: return 36;
    case FLX_GGML_Q2_K: return 84; case FLX_GGML_Q3_K: return 110;
    case FLX_GGML_Q4_K: return 144; case FLX_GGML_Q5_K: return 176;
    case FLX_GGML_Q6_K: return 210; case FLX_GGML_Q8_K: return 292;
    case FLX_GGML_I8: return 1;    case FLX_GGML_I16: return 2;
    case FLX_GGML_I32: return 4;   case FLX_GGML_I64: return 8;   case FLX_GGML_F64: return 8;
    default: return 0;
    }
}

int flx_ggml_can_dequantize(uint32_t type)
{
    return type == FLX_GGML_F32 || type == FLX_GGML_F16 || type == FLX_GGML_BF16 ||
           type == FLX_GGML_Q8_0 || type == FLX_GGML_Q4_0;
}

void flx_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n_elems)
{
    const uint8_t *p = src;
    switch (type) {
    case FLX_GGML_F32:
        memcpy(dst, p, (size_t)n_elems * 4);
        break;
    case FLX_GGML_F16:
        for (int64_t i = 0; i < n_elems; i++) dst[i] = flx_f16_to_f32(le16(p + 2 * i));
        break;
    case FLX_GGML_BF16:
        /* the bits shifted into the high half, written in a loop the
         * compiler vectorizes (a call per element cost a 1B model ~1 s) */
        for (int64_t i = 0; i < n_elems; i++) {
            uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            memcpy(dst + i, &u, sizeof u);
        }
        break;
    case FLX_GGML_Q8_0:
        /* block of 32: fp16 scale d, int8 qs[32]; x = qs * d */
        for (int64_t b = 0; b < n_elems / 32; b++, p += 34, dst += 32) {
            float d = flx_f16_to_f32(le16(p));
            for (int j = 0; j < 32; j++) dst[j] = (float)(int8_t)p[2 + j] * d;
        }
        break;
    case FLX_GGML_Q4_0:
        /* block of 32: fp16 scale d, 16 bytes; byte j holds element j in its low
         * nibble and element j+16 in its high nibble; x = (nibble - 8) * d */
        for (int64_t b = 0; b < n_elems / 32; b++, p += 18, dst += 32) {
            float d = flx_f16_to_f32(le16(p));
            for (int j = 0; j < 16; j++) {
                dst[j] = (float)((int)(p[2 + j] & 0x0F) - 8) * d;
                dst[j + 16] = (float)((int)(p[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    default:
        break;   /* callers check flx_ggml_can_dequantize first */
    }
}

/* ------------------------------------------------------------ open */

static int cmp_str(flx_gguf_str a, flx_gguf_str b)
{
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int c = memcmp(a.ptr, b.ptr, n);
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return cmp_str((*(const flx_gguf_tensor *const *)a)->name,
                   (*(const flx_gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    size_t x = (*(const flx_gguf_tensor *const *)a)->offset;
    size_t y = (*(const flx_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int cmp_kv_key(const void *a, const void *b)
{
    return cmp_str((*(const flx_gguf_kv *const *)a)->key, (*(const flx_gguf_kv *const *)b)->key);
}

static int parse_kvs(flx_gguf *g, reader *r)
{
    char kbuf[96];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        flx_gguf_kv *kv = &g->kvs[i];
        char what[48];
        snprintf(what, sizeof what, "key of metadata entry %llu", (unsigned long long)i);
        int rc = rd_str(r, &kv->key, GGUF_MAX_KEY_BYTES, what, NULL);
        if (rc) return rc;
        const char *key = show(kv->key, kbuf, sizeof kbuf);
        if ((rc = rd_u32(r, &kv->type, "value type", key))) return rc;
        kv->offset = r->pos;
        kv->value = r->base + r->pos;
        if (kv->type == FLX_GGUF_ARRAY && remaining(r) >= 12) {
            kv->arr_type = le32(r->base + r->pos);
            kv->arr_count = le64(r->base + r->pos + 4);
            kv->arr_data = r->base + r->pos + 12;
        }
        if ((rc = skip_value(r, kv->type, 0, key))) return rc;
        kv->value_bytes = r->pos - kv->offset;
    }
    return FLX_OK;
}

static int check_kv_keys(flx_gguf *g, reader *r)
{
    if (g->n_kv < 2) return FLX_OK;
    const flx_gguf_kv **idx = malloc(g->n_kv * sizeof *idx);
    if (!idx) return flx_fail(r->err, FLX_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < g->n_kv; i++) idx[i] = &g->kvs[i];
    qsort(idx, g->n_kv, sizeof *idx, cmp_kv_key);
    int rc = FLX_OK;
    for (uint64_t i = 1; i < g->n_kv && !rc; i++)
        if (cmp_str(idx[i - 1]->key, idx[i]->key) == 0) {
            char kbuf[96];
            rc = flx_fail(r->err, FLX_EFORMAT, "%s: metadata key %s appears twice (offset %zu)",
                          r->path, show(idx[i]->key, kbuf, sizeof kbuf), idx[i]->offset);
        }
    free(idx);
    return rc;
}

static int read_alignment(flx_gguf *g, const char *path, flx_error *err)
{
    g->alignment = FLX_GGUF_DEFAULT_ALIGNMENT;
    int64_t a;
    int rc = flx_gguf_get_int(g, "general.alignment", &a, err);
    if (rc == FLX_ENOTFOUND) return FLX_OK;
    if (rc) return rc;
    if (a <= 0 || a % 8 != 0 || a > GGUF_MAX_ALIGNMENT)
        return flx_fail(err, FLX_EFORMAT, "%s: general.alignment = %lld must be a positive "
                        "multiple of 8 up to %u", path, (long long)a, GGUF_MAX_ALIGNMENT);
    g->alignment = (uint32_t)a;
    return FLX_OK;
}

static int parse_tensor_infos(flx_gguf *g, reader *r)
{
    char nbuf[96];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        flx_gguf_tensor *t = &g->tensors[i];
        char what[48];
        snprintf(what, sizeof what, "name of tensor %llu", (unsigned long long)i);
        size_t info_at = r->pos;
        int rc = rd_str(r, &t->name, GGUF_MAX_NAME_BYTES, what, NULL);
        if (rc) return rc;
        const char *name = show(t->name, nbuf, sizeof nbuf);
        if ((rc = rd_u32(r, &t->n_dims, "n_dims", name))) return rc;
        if (t->n_dims > FLX_GGUF_MAX_DIMS)
            return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s (info at offset %zu) has n_dims %u "
                            "(at most %d)", r->path, name, info_at, t->n_dims, FLX_GGUF_MAX_DIMS);
        int64_t n = 1;
        for (int d = 0; d < FLX_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v;
            size_t at = r->pos;
            if ((rc = rd_u64(r, &v, "dimension", name))) return rc;
            if (v > (uint64_t)INT64_MAX || (v != 0 && n > INT64_MAX / (int64_t)v))
                return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s dimension %u = %llu at offset "
                                "%zu overflows the element count", r->path, name, d,
                                (unsigned long long)v, at);
            t->ne[d] = (int64_t)v;
            n *= (int64_t)v;
        }
        t->n_elems = n;
        size_t type_at = r->pos;
        if ((rc = rd_u32(r, &t->type, "ggml type", name))) return rc;
        int64_t be = flx_ggml_block_elems(t->type);
        size_t bb = flx_ggml_block_bytes(t->type);
        if (be == 0)
            return flx_fail(r->err, FLX_EUNSUPPORTED, "%s: tensor %s has ggml type %u (offset %zu), "
                            "which this reader does not know", r->path, name, t->type, type_at);
        if (t->ne[0] % be != 0)
            return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s: ne[0] = %lld is not a multiple of "
                            "the %s block size %lld", r->path, name, (long long)t->ne[0],
                            flx_ggml_type_name(t->type), (long long)be);
        size_t bytes;
        if (flx_size_mul((size_t)(n / be), bb, &bytes))
            return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s: byte size overflows", r->path, name);
        t->bytes = bytes;
        uint64_t off;
        size_t off_at = r->pos;
        if ((rc = rd_u64(r, &off, "data offset", name))) return rc;
        if (off % g->alignment != 0)
            return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s data offset %llu (field at offset "
                            "%zu) is not a multiple of the alignment %u", r->path, name,
                            (unsigned long long)off, off_at, g->alignment);
        if (off > SIZE_MAX) return flx_fail(r->err, FLX_EFORMAT, "%s: tensor %s offset too large", r->path, name);
        t->offset = (size_t)off;   /* relative until the data section is known */
    }
    return FLX_OK;
}

static int place_tensors(flx_gguf *g, reader *r)
{
    size_t data_bytes = r->size - g->data_offset;
    char nbuf[96];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        flx_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_bytes || t->bytes > data_bytes - t->offset)
            return flx_fail(r->err, FLX_EFORMAT,
                            "%s: tensor %s data [%zu, +%zu bytes) relative to the data section at "
                            "offset %zu runs past the end of the file (%zu bytes)",
                            r->path, show(t->name, nbuf, sizeof nbuf), t->offset, t->bytes,
                            g->data_offset, r->size);
        t->offset += g->data_offset;
        t->data = r->base + t->offset;
    }
    if (g->n_tensors < 2) return FLX_OK;
    const flx_gguf_tensor **idx = malloc(g->n_tensors * sizeof *idx);
    if (!idx) return flx_fail(r->err, FLX_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < g->n_tensors; i++) idx[i] = &g->tensors[i];
    int rc = FLX_OK;
    qsort(idx, g->n_tensors, sizeof *idx, cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++)
        if (cmp_str(idx[i - 1]->name, idx[i]->name) == 0)
            rc = flx_fail(r->err, FLX_EFORMAT, "%s: tensor name %s appears twice", r->path,
                          show(idx[i]->name, nbuf, sizeof nbuf));
    if (!rc) {
        qsort(idx, g->n_tensors, sizeof *idx, cmp_tensor_offset);
        for (uint64_t i = 1; i < g->n_tensors && !rc; i++) {
            const flx_gguf_tensor *a = idx[i - 1], *b = idx[i];
            if (a->bytes > 0 && b->bytes > 0 && b->offset < a->offset + a->bytes) {
                char nb2[96];
                rc = flx_fail(r->err, FLX_EFORMAT, "%s: tensors %s (offset %zu, %zu bytes) and %s "
                              "(offset %zu) overlap", r->path, show(a->name, nbuf, sizeof nbuf),
                              a->offset, a->bytes, show(b->name, nb2, sizeof nb2), b->offset);
            }
        }
    }
    free(idx);
    return rc;
}

int flx_gguf_open(flx_gguf *g, const char *path, flx_error *err)
{
    memset(g, 0, sizeof *g);
    int rc = flx_map_file(&g->map, path, err);
    if (rc) return rc;
    reader r = {g->map.data, g->map.bytes, 0, path, err};
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    if ((rc = rd_u32(&r, &magic, "magic", NULL))) goto fail;
    if (memcmp(r.base, "GGUF", 4) != 0) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: bad magic at offset 0 (expected \"GGUF\"): not a GGUF "
                      "file", path);
        goto fail;
    }
    if ((rc = rd_u32(&r, &g->version, "version", NULL))) goto fail;
    if (g->version != 3) {
        rc = flx_fail(err, FLX_EUNSUPPORTED, "%s: GGUF version %u at offset 4 (only version 3 is "
                      "supported)", path, g->version);
        goto fail;
    }
    if ((rc = rd_u64(&r, &n_tensors, "tensor_count", NULL))) goto fail;
    if ((rc = rd_u64(&r, &n_kv, "metadata_kv_count", NULL))) goto fail;
    if (n_kv > FLX_GGUF_MAX_KV || n_tensors > FLX_GGUF_MAX_TENSORS) {
        rc = n_kv > FLX_GGUF_MAX_KV
             ? flx_fail(err, FLX_EFORMAT, "%s: metadata_kv_count %llu at offset 16 exceeds the limit "
                        "of %d", path, (unsigned long long)n_kv, FLX_GGUF_MAX_KV)
             : flx_fail(err, FLX_EFORMAT, "%s: tensor_count %llu at offset 8 exceeds the limit of %d",
                        path, (unsigned long long)n_tensors, FLX_GGUF_MAX_TENSORS);
        goto fail;
    }
    /* Each kv takes at least 13 bytes and each tensor info at least 24. */
    if (n_kv > remaining(&r) / 13) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: metadata_kv_count %llu at offset 16 is more than the "
                      "%zu remaining bytes can hold", path, (unsigned long long)n_kv, remaining(&r));
        goto fail;
    }
    if (n_tensors > remaining(&r) / 24) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: tensor_count %llu at offset 8 is more than the %zu "
                      "remaining bytes can hold", path, (unsigned long long)n_tensors, remaining(&r));
        goto fail;
    }
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) {
        rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    if ((rc = parse_kvs(g, &r))) goto fail;
    if ((rc = check_kv_keys(g, &r))) goto fail;
    if ((rc = read_alignment(g, path, err))) goto fail;
    if ((rc = parse_tensor_infos(g, &r))) goto fail;
    size_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    if (g->n_tensors > 0 && pad > remaining(&r)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: file ends at offset %zu inside the padding before "
                      "the tensor data", path, r.size);
        goto fail;
    }
    g->data_offset = pad > remaining(&r) ? r.size : r.pos + pad;
    if ((rc = place_tensors(g, &r))) goto fail;
    return FLX_OK;
fail:
    flx_gguf_close(g);
    return rc;
}

void flx_gguf_close(flx_gguf *g)
{
    if (!g) return;
    free(g->kvs);
    free(g->tensors);
    flx_unmap_file(&g->map);
    memset(g, 0, sizeof *g);
}

/* ------------------------------------------------------------ lookups */

int flx_gguf_str_eq(flx_gguf_str s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && memcmp(s.ptr, text, n) == 0;
}

const flx_gguf_kv *flx_gguf_find(const flx_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (flx_gguf_str_eq(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

const flx_gguf_tensor *flx_gguf_find_tensor(const flx_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (flx_gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static const char *value_type_name(uint32_t t)
{
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Reads a scalar integer of any width; 0 if type is not an integer. */
static int scalar_int(uint32_t type, const uint8_t *p, int64_t *out, int *overflow)
{
    *overflow = 0;
    switch (type) {
    case FLX_GGUF_U8:  *out = p[0]; return 1;
    case FLX_GGUF_I8:  *out = (int8_t)p[0]; return 1;
    case FLX_GGUF_U16: *out = le16(p); return 1;
    case FLX_GGUF_I16: *out = (int16_t)le16(p); return 1;
    case FLX_GGUF_U32: *out = le32(p); return 1;
    case FLX_GGUF_I32: *out = (int32_t)le32(p); return 1;
    case FLX_GGUF_I64: *out = (int64_t)le64(p); return 1;
    case FLX_GGUF_U64: {
        uint64_t v = le64(p);
        if (v > (uint64_t)INT64_MAX) *overflow = 1;
        *out = (int64_t)v;
        return 1;
    }
    default: return 0;
    }
}

static int scalar_float(uint32_t type, const uint8_t *p, double *out)
{
    if (type == FLX_GGUF_F32) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return 1;
    }
    if (type == FLX_GGUF_F64) {
        uint64_t u = le64(p);
        memcpy(out, &u, 8);
        return 1;
    }
    int64_t v;
    int ovf;
    if (scalar_int(type, p, &v, &ovf) && !ovf) {
        *out = (double)v;
        return 1;
    }
    return 0;
}

static int wrong_type(const flx_gguf *g, const flx_gguf_kv *kv, const char *key, const char *want,
                      flx_error *err)
{
    return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s (value at offset %zu) has type %s, "
                    "expected %s", g->map.path, key, kv->offset, value_type_name(kv->type), want);
}

int flx_gguf_get_int(const flx_gguf *g, const char *key, int64_t *out, flx_error *err)
{
    const flx_gguf_kv *kv = flx_gguf_find(g, key);
    if (!kv) return FLX_ENOTFOUND;
    int ovf;
    if (!scalar_int(kv->type, kv->value, out, &ovf)) return wrong_type(g, kv, key, "an integer", err);
    if (ovf)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s (offset %zu) is too large", g->map.path,
                        key, kv->offset);
    return FLX_OK;
}

int flx_gguf_get_float(const flx_gguf *g, const char *key, double *out, flx_error *err)
{
    const flx_gguf_kv *kv = flx_gguf_find(g, key);
    if (!kv) return FLX_ENOTFOUND;
    if (!scalar_float(kv->type, kv->value, out)) return wrong_type(g, kv, key, "a number", err);
    return FLX_OK;
}

int flx_gguf_get_bool(const flx_gguf *g, const char *key, int *out, flx_error *err)
{
    const flx_gguf_kv *kv = flx_gguf_find(g, key);
    if (!kv) return FLX_ENOTFOUND;
    int64_t v;
    int ovf;
    if (kv->type == FLX_GGUF_BOOL) *out = kv->value[0] != 0;
    else if (scalar_int(kv->type, kv->value, &v, &ovf)) *out = v != 0;
    else return wrong_type(g, kv, key, "bool", err);
    return FLX_OK;
}

int flx_gguf_get_str(const flx_gguf *g, const char *key, flx_gguf_str *out, flx_error *err)
{
    const flx_gguf_kv *kv = flx_gguf_find(g, key);
    if (!kv) return FLX_ENOTFOUND;
    if (kv->type != FLX_GGUF_STRING) return wrong_type(g, kv, key, "string", err);
    out->len = le64(kv->value);
    out->ptr = (const char *)kv->value + 8;
    return FLX_OK;
}

int flx_gguf_get_array(const flx_gguf *g, const char *key, uint32_t elem_type,
                       const flx_gguf_kv **out, flx_error *err)
{
    const flx_gguf_kv *kv = flx_gguf_find(g, key);
    if (!kv) return FLX_ENOTFOUND;
    if (kv->type != FLX_GGUF_ARRAY) return wrong_type(g, kv, key, "array", err);
    if (kv->arr_type != elem_type)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata array %s (offset %zu) has %s elements, "
                        "expected %s", g->map.path, key, kv->offset, value_type_name(kv->arr_type),
                        value_type_name(elem_type));
    *out = kv;
    return FLX_OK;
}

int flx_gguf_array_strings(const flx_gguf *g, const flx_gguf_kv *kv, char ***out, flx_error *err)
{
    *out = NULL;
    char kbuf[96];
    const char *key = show(kv->key, kbuf, sizeof kbuf);
    if (kv->type != FLX_GGUF_ARRAY || kv->arr_type != FLX_GGUF_STRING)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s is not a string array", g->map.path, key);
    /* The header walk already proved every element lies inside the value. */
    size_t n = (size_t)kv->arr_count, text = 0;
    const uint8_t *p = kv->arr_data;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = le64(p);
        if (memchr(p + 8, 0, (size_t)len))
            return flx_fail(err, FLX_EFORMAT, "%s: element %zu of %s contains a NUL byte",
                            g->map.path, i, key);
        text += (size_t)len + 1;
        p += 8 + len;
    }
    size_t ptr_bytes = (n + 1) * sizeof(char *);
    char **arr = malloc(ptr_bytes + text);
    if (!arr) return flx_fail(err, FLX_ENOMEM, "%s: out of memory copying %s", g->map.path, key);
    char *dst = (char *)arr + ptr_bytes;
    p = kv->arr_data;
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)le64(p);
        memcpy(dst, p + 8, len);
        dst[len] = '\0';
        arr[i] = dst;
        dst += len + 1;
        p += 8 + len;
    }
    arr[n] = NULL;
    *out = arr;
    return FLX_OK;
}

int flx_gguf_array_i32(const flx_gguf *g, const flx_gguf_kv *kv, int32_t **out, flx_error *err)
{
    *out = NULL;
    char kbuf[96];
    const char *key = show(kv->key, kbuf, sizeof kbuf);
    size_t eb = scalar_bytes(kv->arr_type);
    if (kv->type != FLX_GGUF_ARRAY || eb == 0 || kv->arr_type == FLX_GGUF_F32 ||
        kv->arr_type == FLX_GGUF_F64 || kv->arr_type == FLX_GGUF_BOOL)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s is not an integer array",
                        g->map.path, key);
    int32_t *a = malloc((kv->arr_count ? kv->arr_count : 1) * sizeof *a);
    if (!a) return flx_fail(err, FLX_ENOMEM, "%s: out of memory copying %s", g->map.path, key);
    for (uint64_t i = 0; i < kv->arr_count; i++) {
        int64_t v = 0;
        int ovf = 0;
        scalar_int(kv->arr_type, kv->arr_data + i * eb, &v, &ovf);
        if (ovf || v < INT32_MIN || v > INT32_MAX) {
            free(a);
            return flx_fail(err, FLX_EFORMAT, "%s: element %llu of %s is outside int32", g->map.path,
                            (unsigned long long)i, key);
        }
        a[i] = (int32_t)v;
    }
    *out = a;
    return FLX_OK;
}

int flx_gguf_array_f32(const flx_gguf *g, const flx_gguf_kv *kv, float **out, flx_error *err)
{
    *out = NULL;
    char kbuf[96];
    const char *key = show(kv->key, kbuf, sizeof kbuf);
    size_t eb = scalar_bytes(kv->arr_type);
    if (kv->type != FLX_GGUF_ARRAY || eb == 0 || kv->arr_type == FLX_GGUF_BOOL)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s is not a numeric array",
                        g->map.path, key);
    float *a = malloc((kv->arr_count ? kv->arr_count : 1) * sizeof *a);
    if (!a) return flx_fail(err, FLX_ENOMEM, "%s: out of memory copying %s", g->map.path, key);
    for (uint64_t i = 0; i < kv->arr_count; i++) {
        double v = 0;
        if (!scalar_float(kv->arr_type, kv->arr_data + i * eb, &v)) {
            free(a);
            return flx_fail(err, FLX_EFORMAT, "%s: element %llu of %s is out of range", g->map.path,
                            (unsigned long long)i, key);
        }
        a[i] = (float)v;
    }
    *out = a;
    return FLX_OK;
}
