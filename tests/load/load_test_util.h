/* Helpers for the loader suites: a byte buffer, a tiny GGUF writer used to
 * craft good and malformed files, and file helpers.  Test code only. */
#ifndef LOAD_TEST_UTIL_H
#define LOAD_TEST_UTIL_H

#include "test_util.h"

#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tbuf {
    uint8_t *p;
    size_t   n, cap;
} tbuf;

static inline void tb_bytes(tbuf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static inline void tb_u8(tbuf *b, uint8_t v) { tb_bytes(b, &v, 1); }
static inline void tb_u16(tbuf *b, uint16_t v) { tb_bytes(b, &v, 2); }
static inline void tb_u32(tbuf *b, uint32_t v) { tb_bytes(b, &v, 4); }
static inline void tb_u64(tbuf *b, uint64_t v) { tb_bytes(b, &v, 8); }
static inline void tb_f32(tbuf *b, float v) { tb_bytes(b, &v, 4); }
static inline void tb_str(tbuf *b, const char *s)
{
    tb_u64(b, strlen(s));
    tb_bytes(b, s, strlen(s));
}
static inline void tb_pad(tbuf *b, size_t align)
{
    while (b->n % align) tb_u8(b, 0);
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "cannot write %s", path);
    if (n) cr_assert_eq(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static inline void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static inline uint8_t *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot read %s", path);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    rewind(fp);
    uint8_t *p = malloc((size_t)sz + 1);
    cr_assert_eq(fread(p, 1, (size_t)sz, fp), (size_t)sz);
    fclose(fp);
    p[sz] = 0;   /* text files can be used as strings */
    *n = (size_t)sz;
    return p;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a scratch folder and everything in it (tests that write MBs). */
static inline void rm_tree(const char *dir)
{
    if (strncmp(dir, "/tmp/flxemu-test-", 17) == 0) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a GGUF writer: metadata kv pairs, then tensors, aligned to 32 ---- */

#define TG_MAX_TENSORS 64
typedef struct tgguf {
    tbuf     kv;          /* encoded kv pairs                */
    uint64_t n_kv;
    tbuf     info;        /* encoded tensor infos            */
    tbuf     data;        /* tensor data, each 32-aligned    */
    uint64_t n_tensors;
} tgguf;

static inline void tg_key(tgguf *g, const char *key, uint32_t type)
{
    tb_str(&g->kv, key);
    tb_u32(&g->kv, type);
    g->n_kv++;
}
static inline void tg_u32(tgguf *g, const char *key, uint32_t v) { tg_key(g, key, 4); tb_u32(&g->kv, v); }
static inline void tg_f32(tgguf *g, const char *key, float v) { tg_key(g, key, 6); tb_f32(&g->kv, v); }
static inline void tg_bool(tgguf *g, const char *key, int v) { tg_key(g, key, 7); tb_u8(&g->kv, (uint8_t)v); }
static inline void tg_str(tgguf *g, const char *key, const char *v) { tg_key(g, key, 8); tb_str(&g->kv, v); }
static inline void tg_arr_str(tgguf *g, const char *key, const char *const *v, size_t n)
{
    tg_key(g, key, 9);
    tb_u32(&g->kv, 8);
    tb_u64(&g->kv, n);
    for (size_t i = 0; i < n; i++) tb_str(&g->kv, v[i]);
}
static inline void tg_arr_f32(tgguf *g, const char *key, const float *v, size_t n)
{
    tg_key(g, key, 9);
    tb_u32(&g->kv, 6);
    tb_u64(&g->kv, n);
    tb_bytes(&g->kv, v, n * 4);
}
static inline void tg_arr_i32(tgguf *g, const char *key, const int32_t *v, size_t n)
{
    tg_key(g, key, 9);
    tb_u32(&g->kv, 5);
    tb_u64(&g->kv, n);
    tb_bytes(&g->kv, v, n * 4);
}
/* ne in ggml order (fastest first). */
static inline void tg_tensor(tgguf *g, const char *name, uint32_t n_dims, const uint64_t *ne,
                             uint32_t type, const void *data, size_t bytes)
{
    tb_pad(&g->data, 32);
    tb_str(&g->info, name);
    tb_u32(&g->info, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) tb_u64(&g->info, ne[d]);
    tb_u32(&g->info, type);
    tb_u64(&g->info, g->data.n);
    tb_bytes(&g->data, data, bytes);
    g->n_tensors++;
}
/* The whole file; free(out->p) after use. */
static inline tbuf tg_finish(tgguf *g)
{
    tbuf f = {0};
    tb_bytes(&f, "GGUF", 4);
    tb_u32(&f, 3);
    tb_u64(&f, g->n_tensors);
    tb_u64(&f, g->n_kv);
    tb_bytes(&f, g->kv.p, g->kv.n);
    tb_bytes(&f, g->info.p, g->info.n);
    if (g->n_tensors) {
        tb_pad(&f, 32);
        tb_bytes(&f, g->data.p, g->data.n);
    }
    free(g->kv.p);
    free(g->info.p);
    free(g->data.p);
    memset(g, 0, sizeof *g);
    return f;
}

#endif
