/* .npy v1.0 encoding, gzip, bounded reading and atomic writing for the
 * golden vectors (npy.h). */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

const char *flx_npy_descr(flx_npy_dtype t)
{
    switch (t) {
    case DT_F4: return "<f4";
    case DT_I1: return "|i1";
    case DT_U1: return "|u1";
    case DT_I4: return "<i4";
    }
    return "?";
}

const char *flx_npy_dtype_name(flx_npy_dtype t)
{
    return t == DT_F4 ? "float32" : t == DT_I1 ? "int8" : t == DT_U1 ? "uint8" : "int32";
}

size_t flx_npy_elem_bytes(flx_npy_dtype t) { return (t == DT_F4 || t == DT_I4) ? 4 : 1; }

/* magic, version, u16 header length, the dict padded with spaces so that
 * the data starts at a multiple of 64 bytes, a newline; 0 if over cap */
static size_t npy_header(char *h, size_t cap, flx_npy_dtype t, int ndim, const int64_t *shape)
{
    char dict[256], dims[128] = "";
    size_t o = 0;
    for (int i = 0; i < ndim && o < sizeof dims; i++)
        o += (size_t)snprintf(dims + o, sizeof dims - o, "%lld%s", (long long)shape[i],
                              ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     flx_npy_descr(t), dims);
    if (n < 0 || (size_t)n >= sizeof dict) return 0;
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    if (padded > cap) return 0;
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = (uint16_t)(padded - 10);
    h[8] = (char)(hl & 0xff);
    h[9] = (char)(hl >> 8);
    memcpy(h + 10, dict, (size_t)n);
    memset(h + 10 + n, ' ', padded - 10 - (size_t)n - 1);
    h[padded - 1] = '\n';
    return padded;
}

uint8_t *flx_npy_encode(flx_npy_dtype t, int ndim, const int64_t *shape, const void *data, size_t *n)
{
    char h[256];
    size_t hn = npy_header(h, sizeof h, t, ndim, shape);
    if (!hn) return NULL;
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    size_t bytes = count * flx_npy_elem_bytes(t);
    uint8_t *b = malloc(hn + bytes + 1);
    if (!b) return NULL;
    memcpy(b, h, hn);
    memcpy(b + hn, data, bytes);
    *n = hn + bytes;
    return b;
}

int flx_npy_gzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    *out = NULL;
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    *out = malloc(cap);
    if (!*out) { deflateEnd(&z); return -1; }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    *out_n = z.total_out;
    deflateEnd(&z);
    return r == Z_STREAM_END ? 0 : -1;
}

int flx_npy_read(const char *path, size_t max_bytes, uint8_t **data, size_t *n, flx_error *err)
{
    size_t len = strlen(path);
    if (len > 3 && !strcmp(path + len - 3, ".gz")) {
        gzFile g = gzopen(path, "rb");
        if (!g) return flx_fail(err, FLX_EIO, "%s: cannot open", path);
        size_t cap = max_bytes + 1, used = 0;
        uint8_t *b = malloc(cap);
        if (!b) { gzclose(g); return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); }
        while (used < cap) {
            size_t want = cap - used < ((size_t)1 << 30) ? cap - used : ((size_t)1 << 30);
            int r = gzread(g, b + used, (unsigned)want);
            if (r < 0) { free(b); gzclose(g); return flx_fail(err, FLX_EFORMAT, "%s: corrupt gzip data", path); }
            if (r == 0) break;
            used += (size_t)r;
        }
        gzclose(g);
        *data = b;
        *n = used;
        return FLX_OK;
    }
    char *buf;
    int rc = flx_read_file(path, (size_t)1 << 30, &buf, n, err);
    *data = (uint8_t *)buf;
    return rc;
}

int flx_npy_write(const char *path, const uint8_t *bytes, size_t n, flx_error *err)
{
    flx_outfile f;
    int rc = flx_outfile_open(&f, path, err);
    if (rc) return rc;
    if (fwrite(bytes, 1, n, f.fp) != n) {
        flx_outfile_abort(&f);
        return flx_fail(err, FLX_EIO, "%s: write failed", path);
    }
    return flx_outfile_commit(&f, err);
}

void flx_npy_elem_text(char *buf, size_t cap, flx_npy_dtype t, const uint8_t *elem)
{
    if (t == DT_F4) {
        float v;
        memcpy(&v, elem, 4);
        snprintf(buf, cap, "%a", (double)v);
    } else if (t == DT_I4) {
        int32_t v;
        memcpy(&v, elem, 4);
        snprintf(buf, cap, "%d", v);
    } else {
        snprintf(buf, cap, "%d", t == DT_I1 ? (int)(int8_t)*elem : (int)*elem);
    }
}
