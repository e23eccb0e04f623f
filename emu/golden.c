/* Golden vectors for HLS testbenches: every kernel run on seeded random
 * inputs of the U280 sizes, written as .npy (optionally gzip) with a
 * manifest.json of shapes, layouts, template parameters and CRC32s; and the
 * check that re-runs the emulator against such a folder.
 *
 * One generator per kernel emits its tensors through a sink; the sink either
 * writes them or compares them with the files, so writing and checking can
 * never disagree about what a kernel produces. */
#include "flx_emu.h"
#include "flx_emu_hmt.h"
#include "flx_qmodel.h"
#include "npy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ sink */

typedef flx_npy_dtype dtype;
#define dt_size flx_npy_elem_bytes

typedef struct {
    int         check;       /* 0: write files, 1: compare with files */
    const char *dir;
    int         gzip;
    const char *kernel;      /* current kernel                         */
    cJSON      *files;       /* write: the current kernel's file list  */
    flx_error  *err;
    int         rc;
    int64_t     n_files;
    int64_t     pos0, n_tokens;   /* layer_prefill's call (flx_emu_golden_opts) */
} sink;

static char *file_path(const sink *s, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s.npy%s", s->kernel, name, s->gzip ? ".gz" : "");
    return flx_path_join(s->dir, rel);
}

/* the manifest's entry of one written file */
static int manifest_entry(sink *s, const char *path, const char *name, const char *role, dtype t,
                          int ndim, const int64_t *shape, const char *layout, const char *note,
                          const uint8_t *bytes, size_t n)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddItemToArray(s->files, e)) {
        cJSON_Delete(e);
        return flx_fail(s->err, FLX_ENOMEM, "%s: out of memory", path);
    }
    const char *slash = strrchr(path, '/');
    cJSON_AddStringToObject(e, "file", slash ? slash + 1 : path);
    cJSON_AddStringToObject(e, "tensor", name);
    cJSON_AddStringToObject(e, "role", role);
    cJSON_AddStringToObject(e, "dtype", flx_npy_dtype_name(t));
    cJSON *sh = cJSON_AddArrayToObject(e, "shape");
    for (int i = 0; sh && i < ndim; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
    cJSON_AddStringToObject(e, "layout", layout);
    if (note) cJSON_AddStringToObject(e, "note", note);
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", (unsigned)flx_crc32(0, bytes, n));
    if (!cJSON_AddStringToObject(e, "crc32", crc))
        return flx_fail(s->err, FLX_ENOMEM, "%s: out of memory", path);
    return FLX_OK;
}

/* write mode: the file and its manifest entry */
static int emit_write(sink *s, const char *path, const char *name, const char *role, dtype t, int ndim,
                      const int64_t *shape, const void *data, const char *layout, const char *note)
{
    size_t n, zn = 0;
    uint8_t *b = flx_npy_encode(t, ndim, shape, data, &n), *z = NULL;
    int rc;
    if (!b || (s->gzip && flx_npy_gzip(b, n, &z, &zn))) {
        rc = flx_fail(s->err, FLX_ENOMEM, "%s: out of memory while encoding", path);
    } else {
        const uint8_t *w = s->gzip ? z : b;
        size_t wn = s->gzip ? zn : n;
        rc = flx_npy_write(path, w, wn, s->err);
        if (!rc) rc = manifest_entry(s, path, name, role, t, ndim, shape, layout, note, w, wn);
    }
    free(b);
    free(z);
    return rc;
}

/* check mode: the file against what the emulator produces, naming the
 * first differing element */
static int emit_compare(sink *s, const char *path, dtype t, int ndim, const int64_t *shape, const void *data)
{
    uint8_t *b = NULL;
    size_t n = 0, n_want = 0, es = dt_size(t);
    uint8_t *want = flx_npy_encode(t, ndim, shape, data, &n_want);
    int rc = want ? flx_npy_read(path, n_want, &b, &n, s->err)
                  : flx_fail(s->err, FLX_ENOMEM, "%s: out of memory", path);
    if (!rc) {
        size_t count = 1;
        for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
        size_t off = n_want - count * es;
        if (n != n_want || memcmp(b, want, off) != 0) {
            rc = flx_fail(s->err, FLX_EFORMAT, "%s: header or size differs from what the emulator "
                          "produces (%s%zu bytes, expected %zu)", path, n > n_want ? "more than " : "",
                          n > n_want ? n_want : n, n_want);
        } else {
            for (size_t i = 0; i < count && !rc; i++) {
                if (memcmp(b + off + i * es, want + off + i * es, es) == 0) continue;
                char got_s[48], exp_s[48];
                flx_npy_elem_text(got_s, sizeof got_s, t, b + off + i * es);
                flx_npy_elem_text(exp_s, sizeof exp_s, t, want + off + i * es);
                rc = flx_fail(s->err, FLX_EFORMAT, "%s: first mismatch at flat index %zu: file has %s, "
                              "emulator gives %s", path, i, got_s, exp_s);
            }
        }
    }
    free(want);
    free(b);
    return rc;
}

/* The beat order of the HLS stream, in a new buffer of the same size:
 * token-parallel [T][C] -> per block of `lanes` tokens C beats of `lanes`
 * tokens; block-partitioned [C] -> [C/lanes][lanes]. */
static uint8_t *stream_order(const void *data, dtype t, int64_t count, int64_t T, const char *layout,
                             int lanes, int64_t sshape[2])
{
    size_t es = dt_size(t);
    uint8_t *st = malloc((size_t)count * es + 1);
    if (!st) return NULL;
    const uint8_t *src = data;
    if (!strncmp(layout, "token-parallel", 14)) {
        int64_t C = count / T, NB = T / lanes;
        for (int64_t blk = 0; blk < NB; blk++)
            for (int64_t k = 0; k < C; k++)
                for (int64_t l = 0; l < lanes; l++)
                    memcpy(st + ((blk * C + k) * lanes + l) * es, src + ((blk * lanes + l) * C + k) * es, es);
        sshape[0] = NB * C;
    } else {
        int64_t per = count / lanes;
        for (int64_t k = 0; k < per; k++)
            for (int64_t i = 0; i < lanes; i++) memcpy(st + (k * lanes + i) * es, src + (i * per + k) * es, es);
        sshape[0] = per;
    }
    sshape[1] = lanes;
    return st;
}

/* One tensor.  role: "input", "param" or "output".  lanes > 0 also emits
 * its stream order as NAME.stream (stream_order). */
static void emit(sink *s, const char *name, const char *role, dtype t, int ndim,
                 const int64_t *shape, const void *data, const char *layout, int lanes,
                 const char *note)
{
    if (s->rc) return;
    char *path = file_path(s, name);
    if (!path) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "%s/%s: out of memory", s->kernel, name);
        return;
    }
    s->rc = s->check ? emit_compare(s, path, t, ndim, shape, data)
                     : emit_write(s, path, name, role, t, ndim, shape, data, layout, note);
    s->n_files++;
    free(path);
    if (s->rc || lanes <= 0) return;
    int64_t count = 1, sshape[2];
    for (int i = 0; i < ndim; i++) count *= shape[i];
    uint8_t *st = stream_order(data, t, count, shape[0], layout, lanes, sshape);
    if (!st) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "stream order: out of memory");
        return;
    }
    char sname[96], slayout[96];
    snprintf(sname, sizeof sname, "%s.stream", name);
    snprintf(slayout, sizeof slayout, "stream: row = beat, column = lane (%s)", layout);
    emit(s, sname, role, t, 2, sshape, st, slayout, 0, NULL);
    free(st);
}

/* ------------------------------------------------------------- generators */

/* A generator's random stream and its buffers: galloc'd memory is zeroed
 * and freed when the generator returns; a failed allocation is remembered
 * and the generator stops at its next gen_oom() check with FLX_ENOMEM. */
enum { GEN_MAX_BUFFERS = 16 };
typedef struct {
    flx_rng rng;
    void   *mem[GEN_MAX_BUFFERS];
    int     n_mem, oom;
} gen;

static float rf(gen *g, float lo, float hi) { return lo + (hi - lo) * (float)flx_rng_uniform(&g->rng); }
static int32_t ri(gen *g, int32_t lo, int32_t hi) { return lo + (int32_t)(flx_rng_u64(&g->rng) % (uint64_t)(hi - lo + 1)); }

static void *galloc(gen *g, size_t n)
{
    void *p = g->n_mem < GEN_MAX_BUFFERS ? calloc(n ? n : 1, 1) : NULL;
    if (p) g->mem[g->n_mem++] = p;
    else g->oom = 1;
    return p;
}

static int gen_oom(sink *s, gen *g)
{
    if (!g->oom) return 0;
    if (!s->rc) s->rc = flx_fail(s->err, FLX_ENOMEM, "%s: out of memory", s->kernel);
    return 1;
}

static void gen_free(gen *g)
{
    for (int i = 0; i < g->n_mem; i++) free(g->mem[i]);
    g->n_mem = 0;
}

#define SH(...) ((const int64_t[]){ __VA_ARGS__ })

/* u4 pattern (int8 in the emulator) -> 0..15 bytes as the stream holds them */
static uint8_t *u4_bytes(gen *g, const int8_t *q, size_t n)
{
    uint8_t *b = galloc(g, n);
    for (size_t i = 0; b && i < n; i++) b[i] = (uint8_t)(q[i] & 15);
    return b;
}

/* How the reference function must be called to produce the recorded block:
 * its seq_len, how many token blocks that call streams, which one is
 * recorded, and what the testbench streams for the others. */
static void ref_call(cJSON *tp, int seq_len, int n_blocks, int recorded, const char *others)
{
    cJSON *c = cJSON_AddObjectToObject(tp, "reference_call");
    cJSON_AddNumberToObject(c, "seq_len", seq_len);
    cJSON_AddNumberToObject(c, "token_blocks", n_blocks);
    cJSON_AddNumberToObject(c, "recorded_block", recorded);
    cJSON_AddStringToObject(c, "other_blocks", others);
}

static void k_quant_asym_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, C = 2048 };
    cJSON_AddStringToObject(tp, "function", "pref_quant_layer_fp32_qint");
    cJSON_AddStringToObject(tp, "template", "N=4, asym=true, TP=8, Kmax=2048");
    float *x = galloc(g, T * C * 4), *sc = galloc(g, T * 4), *b = galloc(g, T * 4);
    int8_t *q = galloc(g, T * C);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * C; i++) x[i] = rf(g, -3, 3) * (i % 97 == 0 ? 8.0f : 1.0f);
    flx_emu_quant_asym(q, sc, b, x, T, C, 4, fp);
    uint8_t *qb = u4_bytes(g, q, T * C);
    if (gen_oom(s, g)) return;
    emit(s, "x", "input", DT_F4, 2, SH(T, C), x, "token-parallel TP=8", 8, NULL);
    emit(s, "q", "output", DT_U1, 2, SH(T, C), qb, "token-parallel TP=8", 8,
         "uint4 values 0..15: the low 4 bits are the ap_int<4> stream pattern");
    emit(s, "s", "output", DT_F4, 1, SH(T), sc, "one per token, lane order", 0, NULL);
    emit(s, "b", "output", DT_F4, 1, SH(T), b, "one per token, lane order", 0, NULL);
}

static void k_quant_asym_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { C = 2048, B = 16 };
    cJSON_AddStringToObject(tp, "function", "dec_quant_layer_fp32_qint");
    cJSON_AddStringToObject(tp, "template", "N=4, asym=true, B=16, Kmax=2048");
    float *x = galloc(g, C * 4), sc, b;
    int8_t *q = galloc(g, C);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < C; i++) x[i] = rf(g, -2, 5);
    flx_emu_quant_asym(q, &sc, &b, x, 1, C, 4, fp);
    uint8_t *qb = u4_bytes(g, q, C);
    if (gen_oom(s, g)) return;
    emit(s, "x", "input", DT_F4, 1, SH(C), x, "block-partitioned B=16", B, NULL);
    emit(s, "q", "output", DT_U1, 1, SH(C), qb, "block-partitioned B=16", B, "uint4 values 0..15");
    emit(s, "s", "output", DT_F4, 1, SH(1), &sc, "scalar", 0, NULL);
    emit(s, "b", "output", DT_F4, 1, SH(1), &b, "scalar", 0, NULL);
}

static void k_dequant_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, O = 96 };
    cJSON_AddStringToObject(tp, "function", "pref_dequant_layer_qint_fp32");
    cJSON_AddStringToObject(tp, "template", "Nacc=19, asym=true, TP=8");
    int32_t *acc = galloc(g, T * O * 4);
    float *sc = galloc(g, T * 4), *b = galloc(g, T * 4), *ws = galloc(g, O * 4), *wsum = galloc(g, O * 4), *y = galloc(g, T * O * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * O; i++) acc[i] = ri(g, -200000, 200000);
    for (int t = 0; t < T; t++) { sc[t] = rf(g, 0.05f, 0.5f); b[t] = rf(g, -3, 0); }
    for (int o = 0; o < O; o++) { ws[o] = rf(g, 0.005f, 0.02f); wsum[o] = rf(g, -1, 1); }
    flx_emu_dequant(y, acc, sc, b, ws, wsum, T, O, fp);
    emit(s, "acc", "input", DT_I4, 2, SH(T, O), acc, "token-parallel TP=8", 8, NULL);
    emit(s, "s", "input", DT_F4, 1, SH(T), sc, "per token", 0, NULL);
    emit(s, "b", "input", DT_F4, 1, SH(T), b, "per token", 0, NULL);
    emit(s, "ws", "param", DT_F4, 1, SH(O), ws, "per output channel", 0, NULL);
    emit(s, "wsum", "param", DT_F4, 1, SH(O), wsum, "per output channel", 0, NULL);
    emit(s, "y", "output", DT_F4, 2, SH(T, O), y, "token-parallel TP=8", 8, NULL);
}

static void k_gemm_i4_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, O = 48, K = 2048 };
    cJSON_AddStringToObject(tp, "function", "pref_Linear_Layer_i4xi4 (PE_i4xi4_pack_2x2_2D)");
    cJSON_AddStringToObject(tp, "template", "TP=8, WP=24, Kmax=2048, L=11, is_uint=true");
    int8_t *a = galloc(g, T * K), *w = galloc(g, O * K);
    int32_t *acc = galloc(g, T * O * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * K; i++) a[i] = (int8_t)ri(g, -8, 7);      /* uint4 patterns */
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)ri(g, -8, 7);
    flx_emu_gemm_i4(acc, a, 1, w, T, O, K, 19, NULL);
    uint8_t *ab = u4_bytes(g, a, T * K);
    if (gen_oom(s, g)) return;
    emit(s, "a", "input", DT_U1, 2, SH(T, K), ab, "token-parallel TP=8", 8, "uint4 activations 0..15");
    emit(s, "w", "param", DT_I1, 2, SH(O, K), w, "row-major [out][in], int4 -8..7", 0, NULL);
    emit(s, "acc", "output", DT_I4, 2, SH(T, O), acc, "token-parallel TP=8", 8, "ap_int<19>");
}

static void k_gemm_i4_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { O = 1024, K = 2048 };   /* one output block of B*W: the least the reference runs */
    cJSON_AddStringToObject(tp, "function", "dec_Linear_Layer_i4xi4_unroll (PE_i4xi4_pack_1x2_1D)");
    cJSON_AddStringToObject(tp, "template", "B=16, U=2, W=64, Kmax=8192, L=13, is_uint=true");
    int8_t *a = galloc(g, K), *w = galloc(g, O * K);
    int32_t *acc = galloc(g, O * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < K; i++) a[i] = (int8_t)ri(g, -8, 7);
    for (int i = 0; i < O * K; i++) w[i] = (int8_t)ri(g, -8, 7);
    flx_emu_gemm_i4(acc, a, 1, w, 1, O, K, 21, NULL);
    uint8_t *ab = u4_bytes(g, a, K);
    if (gen_oom(s, g)) return;
    emit(s, "a", "input", DT_U1, 1, SH(K), ab, "block-partitioned B=16", 16, "uint4 activations 0..15");
    emit(s, "w", "param", DT_I1, 2, SH(O, K), w, "row-major [out][in], int4 -8..7", 0, NULL);
    emit(s, "acc", "output", DT_I4, 1, SH(O), acc, "block-partitioned B=16", 16, "ap_int<21>");
}

static void k_quant_static_q(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, H = 32, d = 64 };
    cJSON_AddStringToObject(tp, "function", "pref_static_sym_per_tensor_quant_layer_fp32_qint (Q)");
    cJSON_AddStringToObject(tp, "template", "N=8, TP=8, K=64, heads=32, is_signed=true; arguments block_id=0, seq_len=8, K=64, "
                            "mha_scale_factor=8.0f");
    float *x = galloc(g, T * H * d * 4), *sc = galloc(g, H * 4);
    int8_t *q = galloc(g, T * H * d);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * H * d; i++) x[i] = rf(g, -3, 3);
    float qs = 0.0175285172f;
    for (int h = 0; h < H; h++) sc[h] = qs;
    flx_emu_quant_static(q, x, T, H, d, sc, 8.0f, 8, 1, fp);
    emit(s, "x", "input", DT_F4, 2, SH(T, H * d), x, "token-parallel TP=8", 8, NULL);
    emit(s, "scale", "param", DT_F4, 1, SH(H), sc, "per head (Q_s row of layer 0)", 0, NULL);
    emit(s, "q8", "output", DT_I1, 2, SH(T, H * d), q, "token-parallel TP=8", 8, NULL);
}

static void k_quant_static_p(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, n = 64 };
    cJSON_AddStringToObject(tp, "function", "pref_static_sym_per_tensor_quant_layer_fp32_qint "
                            "(P; the production top calls it through pref_quant_layer_sfm_a_fp32_int8)");
    cJSON_AddStringToObject(tp, "template", "N=8, TP=8, K=64, heads=1, is_signed=false; arguments "
                            "block_id=0, seq_len=8, K=64, mha_scale_factor=1.0f");
    float *x = galloc(g, T * n * 4), as = 0.00318154902f;
    int8_t *q = galloc(g, T * n);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * n; i++) x[i] = rf(g, 0, 1) * rf(g, 0, 1);
    flx_emu_quant_static(q, x, T, 1, n, &as, 1.0f, 8, 0, fp);
    emit(s, "p", "input", DT_F4, 2, SH(T, n), x, "token-parallel TP=8", 8, NULL);
    emit(s, "a_s", "param", DT_F4, 1, SH(1), &as, "scalar", 0, NULL);
    emit(s, "p8", "output", DT_U1, 2, SH(T, n), q, "token-parallel TP=8", 8,
         "uint8 0..255 carried as the ap_int<8> pattern (same bytes)");
}

static void k_dequant_static_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, H = 32, d = 16 };
    cJSON_AddStringToObject(tp, "function", "pref_static_sym_per_tensor_dequant_layer_qint_fp32");
    cJSON_AddStringToObject(tp, "template", "Nacc=22, TP=8, K=16, act_heads=32, w_heads=8");
    int32_t *acc = galloc(g, T * H * d * 4);
    float in_s[H], w_s[8], *y = galloc(g, T * H * d * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * H * d; i++) acc[i] = ri(g, -1000000, 1000000);
    for (int h = 0; h < H; h++) in_s[h] = rf(g, 0.01f, 0.02f);
    for (int h = 0; h < 8; h++) w_s[h] = rf(g, 0.1f, 0.2f);
    flx_emu_dequant_static(y, acc, T, H, d, in_s, w_s, 8, fp);
    emit(s, "acc", "input", DT_I4, 2, SH(T, H * d), acc, "token-parallel TP=8", 8, NULL);
    emit(s, "in_s", "param", DT_F4, 1, SH(H), in_s, "per query head", 0, NULL);
    emit(s, "w_s", "param", DT_F4, 1, SH(8), w_s, "per KV head (query head h uses h/4)", 0, NULL);
    emit(s, "y", "output", DT_F4, 2, SH(T, H * d), y, "token-parallel TP=8", 8, NULL);
}

static void k_qk_i8_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, NK = 16, d = 64 };
    cJSON_AddStringToObject(tp, "function", "pref_MHA_i8xi8_qxk_template (PE_i8xi8_pack_2x2_2xDSP_2D)");
    cJSON_AddStringToObject(tp, "template", "TP=8, Kp=16, head_dim=64, acc=ap_int<22>; one head");
    ref_call(tp, NK, NK / T, 0, "block 1 (queries 8..15): any int8 data; its scores are not recorded");
    int8_t *q = galloc(g, T * d), *k = galloc(g, NK * d);
    int32_t *acc = galloc(g, T * NK * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * d; i++) q[i] = (int8_t)ri(g, -128, 127);
    for (int i = 0; i < NK * d; i++) k[i] = (int8_t)ri(g, -128, 127);
    flx_emu_qk_i8(acc, NK, q, d, k, d, T, NK, d, 22);
    emit(s, "q8", "input", DT_I1, 2, SH(T, d), q, "token-parallel TP=8", 8, NULL);
    emit(s, "k8", "input", DT_I1, 2, SH(NK, d), k, "token-parallel Kp=16", 16, NULL);
    emit(s, "acc", "output", DT_I4, 2, SH(T, NK), acc, "token-parallel TP=8", 8, NULL);
}

static void k_av_u8i8_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, NK = 16, d = 64 };
    cJSON_AddStringToObject(tp, "function", "pref_MHA_i8xi8_axv_template");
    cJSON_AddStringToObject(tp, "template", "TP=8, Vp=16, head_dim=64, is_uint=true, acc=ap_int<26>; one head");
    ref_call(tp, NK, NK / T, 0, "block 1 (queries 8..15): any uint8 P; its outputs are not recorded");
    int8_t *p = galloc(g, T * NK), *v = galloc(g, NK * d);
    int32_t *acc = galloc(g, T * d * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * NK; i++) p[i] = (int8_t)ri(g, -128, 127);
    for (int i = 0; i < NK * d; i++) v[i] = (int8_t)ri(g, -128, 127);
    flx_emu_av_u8i8(acc, d, p, NK, 1, v, d, T, NK, d, 26);
    emit(s, "p8", "input", DT_U1, 2, SH(T, NK), p, "token-parallel TP=8", 8, "uint8 probabilities");
    emit(s, "v8", "input", DT_I1, 2, SH(NK, d), v, "[key][dim]", 0, NULL);
    emit(s, "acc", "output", DT_I4, 2, SH(T, d), acc, "token-parallel TP=8", 8, NULL);
}

static void k_softmax_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, n = 32 };
    cJSON_AddStringToObject(tp, "function", "pref_causal_mask + pref_Softmax");
    cJSON_AddStringToObject(tp, "template", "pref_causal_mask<TP=8>, pref_Softmax<float, TP=8, Lmax=1024, "
                            "heads=1, enable_scale=false, sub_max=true>");
    ref_call(tp, n, n / T, 1, "block 0 (queries 0..7) before the recorded one, blocks 2 and 3 "
             "after: any scores; the mask and row length of block M follow from M and seq_len");
    float *x = galloc(g, T * n * 4), *y = galloc(g, T * n * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * n; i++) x[i] = y[i] = rf(g, -8, 8);
    flx_emu_causal_mask(y, n, T, n, 8);
    for (int t = 0; t < T; t++) flx_emu_softmax_pref(y + t * n, n, fp);
    emit(s, "scores", "input", DT_F4, 2, SH(T, n), x, "token-parallel TP=8", 8, NULL);
    emit(s, "p", "output", DT_F4, 2, SH(T, n), y, "token-parallel TP=8", 8, NULL);
}

static void k_softmax_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { n = 37 };
    cJSON_AddStringToObject(tp, "function", "dec_MHA_Softmax");
    cJSON_AddStringToObject(tp, "template", "S=37 (predicated tail)");
    float x[n], y[n];
    for (int i = 0; i < n; i++) x[i] = y[i] = rf(g, -8, 8);
    flx_emu_softmax_dec(y, n, fp);
    emit(s, "scores", "input", DT_F4, 1, SH(n), x, "one head", 0, NULL);
    emit(s, "p", "output", DT_F4, 1, SH(n), y, "one head", 0, NULL);
}

static void k_softmax_block(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { n = 64, B = 4 };
    cJSON_AddStringToObject(tp, "function", "dec_Softmax (HMT)");
    cJSON_AddStringToObject(tp, "template", "B=4, enable_scale=true, scale=45.254833f");
    float x[n], y[n];
    for (int i = 0; i < n; i++) x[i] = y[i] = rf(g, -200, 200);
    flx_emu_softmax_block(y, n, B, 45.254833f, fp);
    emit(s, "x", "input", DT_F4, 1, SH(n), x, "block-partitioned B=4", B, NULL);
    emit(s, "p", "output", DT_F4, 1, SH(n), y, "block-partitioned B=4", B, NULL);
}

static void k_rmsnorm_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, D = 2048 };
    cJSON_AddStringToObject(tp, "function", "pref_Layer_Norm (RMS)");
    cJSON_AddStringToObject(tp, "template", "TP=8, D=2048, eps=1e-5f");
    float *x = galloc(g, T * D * 4), *gm = galloc(g, D * 4), *y = galloc(g, T * D * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < T * D; i++) x[i] = rf(g, -2, 2);
    for (int i = 0; i < D; i++) gm[i] = rf(g, 0.5f, 1.5f);
    flx_emu_rmsnorm_pref(y, x, gm, T, D, 1e-5f, fp);
    emit(s, "x", "input", DT_F4, 2, SH(T, D), x, "token-parallel TP=8", 8, NULL);
    emit(s, "gamma", "param", DT_F4, 1, SH(D), gm, "scalar stream", 0, NULL);
    emit(s, "y", "output", DT_F4, 2, SH(T, D), y, "token-parallel TP=8", 8, NULL);
}

static void k_rmsnorm_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { D = 2048, B = 8 };
    cJSON_AddStringToObject(tp, "function", "dec_Layer_Norm (RMS)");
    cJSON_AddStringToObject(tp, "template", "B_T=8, D=2048, eps=1e-5f");
    float *x = galloc(g, D * 4), *gm = galloc(g, D * 4), *y = galloc(g, D * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < D; i++) { x[i] = rf(g, -2, 2); gm[i] = rf(g, 0.5f, 1.5f); }
    flx_emu_rmsnorm_dec(y, x, gm, D, B, 1e-5f, fp);
    emit(s, "x", "input", DT_F4, 1, SH(D), x, "block-partitioned B_T=8", B, NULL);
    emit(s, "gamma", "param", DT_F4, 1, SH(D), gm, "block-partitioned B_T=8", B, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(D), y, "block-partitioned B_T=8", B, NULL);
}

static void k_rope_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { T = 8, H = 32, d = 64, P = 16 };
    cJSON_AddStringToObject(tp, "function", "pref RoPE (rotate-half, table-driven)");
    cJSON_AddStringToObject(tp, "template", "TP=8, head_num=32, head_dim=64, table rows PE_sin/PE_cos[16][32]");
    ref_call(tp, 16, 2, 1, "block 0 (positions 0..7) before the recorded one: pos = 8M + lane counts "
             "blocks from the start of the call");
    float *x = galloc(g, T * H * d * 4), *y = galloc(g, T * H * d * 4);
    float *sn = galloc(g, P * 32 * 4), *cs = galloc(g, P * 32 * 4);
    if (gen_oom(s, g)) return;
    flx_emu_rope_table(sn, cs, P, d, NULL);   /* the reference's base-10000 rows */
    for (int i = 0; i < T * H * d; i++) x[i] = rf(g, -3, 3);
    for (int t = 0; t < T; t++) flx_emu_rope(y + t * H * d, x + t * H * d, H, d, sn, cs, 8 + t, fp);
    emit(s, "x", "input", DT_F4, 2, SH(T, H * d), x, "token-parallel TP=8", 8, NULL);
    emit(s, "sin", "param", DT_F4, 2, SH(P, 32), sn, "PE_sin[pos][k], base 10000", 0, NULL);
    emit(s, "cos", "param", DT_F4, 2, SH(P, 32), cs, "PE_cos[pos][k], base 10000", 0, NULL);
    emit(s, "y", "output", DT_F4, 2, SH(T, H * d), y, "token-parallel TP=8", 8, NULL);
}

/* The elementwise kernels in either stage: T = 1 is the decode vector
 * (block-partitioned B=16), T = 8 one prefill token block (token-parallel
 * TP=8); both draw their inputs in the same order. */
static void ew_emit(sink *s, const char *name, const char *role, int T, int64_t n, const float *v)
{
    if (T == 1) emit(s, name, role, DT_F4, 1, SH(n), v, "block-partitioned B=16", 16, NULL);
    else emit(s, name, role, DT_F4, 2, SH(T, n), v, "token-parallel TP=8", 8, NULL);
}

static void silu_gate_set(sink *s, gen *g, const flx_emu_fp *fp, int T, int64_t n)
{
    float *gt = galloc(g, (size_t)(T * n) * 4), *u = galloc(g, (size_t)(T * n) * 4);
    float *y = galloc(g, (size_t)(T * n) * 4);
    if (gen_oom(s, g)) return;
    for (int64_t i = 0; i < T * n; i++) { gt[i] = rf(g, -12, 12); u[i] = rf(g, -3, 3); }
    flx_emu_silu_gate(y, gt, u, T * n, fp);
    ew_emit(s, "gate", "input", T, n, gt);
    ew_emit(s, "up", "input", T, n, u);
    ew_emit(s, "y", "output", T, n, y);
}

static void residual_set(sink *s, gen *g, const flx_emu_fp *fp, int T, int64_t n)
{
    float *a = galloc(g, (size_t)(T * n) * 4), *r = galloc(g, (size_t)(T * n) * 4);
    float *y = galloc(g, (size_t)(T * n) * 4);
    if (gen_oom(s, g)) return;
    for (int64_t i = 0; i < T * n; i++) { a[i] = rf(g, -5, 5); r[i] = rf(g, -5, 5); }
    flx_emu_residual(y, a, r, T * n, fp);
    ew_emit(s, "in", "input", T, n, a);
    ew_emit(s, "residual", "input", T, n, r);
    ew_emit(s, "y", "output", T, n, y);
}

static void k_silu_gate_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    cJSON_AddStringToObject(tp, "function", "dec_Swish + dec_Gate_Layer_fp32xfp32");
    cJSON_AddStringToObject(tp, "template", "B=16, I=8192");
    silu_gate_set(s, g, fp, 1, 8192);
}

static void k_residual_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    cJSON_AddStringToObject(tp, "function", "Residual_Layer");
    cJSON_AddStringToObject(tp, "template", "B=16, D=2048");
    residual_set(s, g, fp, 1, 2048);
}

static void k_fht_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { n = 8192 };
    cJSON_AddStringToObject(tp, "function", "dec_FHT / pref_FHT");
    cJSON_AddStringToObject(tp, "template", "N=8192, log2N=13, scale_factor=90.50967f");
    float *x = galloc(g, n * 4), *y = galloc(g, n * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < n; i++) x[i] = y[i] = rf(g, -4, 4);
    flx_emu_fht(y, n, 90.50967f, fp);
    emit(s, "x", "input", DT_F4, 1, SH(n), x, "block-partitioned B=16", 16, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(n), y, "block-partitioned B=16", 16, NULL);
}

static void k_topk_sampling(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { V = 131072 };
    cJSON_AddStringToObject(tp, "function", "dec_Sampling_Embedding_Layer (sort_top_k)");
    cJSON_AddStringToObject(tp, "template", "B=16, VP=131072, K=5");
    float *l = galloc(g, V * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < V; i++) l[i] = (float)ri(g, -400, 400) * 0.05f;   /* many ties */
    float r = rf(g, 0, 1);
    flx_emu_topk tk;
    flx_emu_topk_sampling(&tk, l, V, 16, 5, r, fp);
    int32_t ids[5], tok = tk.token;
    for (int i = 0; i < 5; i++) ids[i] = tk.id[i];
    emit(s, "logits", "input", DT_F4, 1, SH(V), l, "block-partitioned B=16", 16, NULL);
    emit(s, "r", "input", DT_F4, 1, SH(1), &r, "threshold", 0, NULL);
    emit(s, "ids", "output", DT_I4, 1, SH(5), ids, "merged top-5, rank order", 0, NULL);
    emit(s, "values", "output", DT_F4, 1, SH(5), tk.value, "merged top-5, rank order", 0, NULL);
    emit(s, "probs", "output", DT_F4, 1, SH(5), tk.prob, "rank order", 0, NULL);
    emit(s, "token", "output", DT_I4, 1, SH(1), &tok, "sampled id", 0, NULL);
}

static void k_gemv_f32_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { O = 64, K = 2048 };
    cJSON_AddStringToObject(tp, "function", "dec_Linear_Layer_fp32xfp32 (PE_fp32xfp32_pack_1x2_1D, HMT)");
    cJSON_AddStringToObject(tp, "template", "B=4, W=8");
    float *x = galloc(g, K * 4), *w = galloc(g, O * K * 4), *y = galloc(g, O * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < K; i++) x[i] = rf(g, -1, 1);
    for (int i = 0; i < O * K; i++) w[i] = rf(g, -1.0f / 2048, 1.0f / 2048);
    flx_emu_gemv_f32(y, x, w, O, K, fp);
    emit(s, "x", "input", DT_F4, 1, SH(K), x, "natural order", 0, NULL);
    emit(s, "w", "param", DT_F4, 2, SH(O, K), w, "row-major [out][in]", 0, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(O), y, "natural order", 0, NULL);
}

static void k_exp(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { n = 4096 };
    cJSON_AddStringToObject(tp, "function", "exp (the selected exponential)");
    cJSON_AddStringToObject(tp, "template", flx_emu_exp_name(fp->exp));
    float *x = galloc(g, n * 4), *y = galloc(g, n * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < n; i++) x[i] = i < 8 ? (float[]){ 0.0f, -0.0f, 88.7f, 89.0f, -87.5f, -103.9f, -104.0f, 1.0f }[i]
                                             : rf(g, -110, 90);
    for (int i = 0; i < n; i++) y[i] = flx_emu_exp(fp, x[i]);
    emit(s, "x", "input", DT_F4, 1, SH(n), x, "natural order", 0, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(n), y, "natural order", 0, NULL);
}

/* ---------------------------------------- decode and prefill variants */

/* the decode dequantizers' data: accumulators, weight scales and sums, one
 * (s, b) pair, the output */
typedef struct {
    int32_t *acc;
    float   *ws, *wsum, *y, sb[2];
} dequant_dec_data;

static int dequant_dec_run(sink *s, gen *g, const flx_emu_fp *fp, int64_t O, dequant_dec_data *d)
{
    d->acc = galloc(g, (size_t)O * 4);
    d->ws = galloc(g, (size_t)O * 4);
    d->wsum = galloc(g, (size_t)O * 4);
    d->y = galloc(g, (size_t)O * 4);
    if (gen_oom(s, g)) return -1;
    for (int64_t i = 0; i < O; i++) d->acc[i] = ri(g, -1000000, 1000000);
    for (int64_t i = 0; i < O; i++) { d->ws[i] = rf(g, 0.004f, 0.012f); d->wsum[i] = rf(g, -1, 1); }
    d->sb[0] = rf(g, 0.05f, 0.5f);
    d->sb[1] = rf(g, -3, 0);
    flx_emu_dequant(d->y, d->acc, &d->sb[0], &d->sb[1], d->ws, d->wsum, 1, O, fp);
    return 0;
}

/* the decode dequantizer the production top uses: one output block of B*W */
static void k_dequant_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { O = 1024, B = 16, W = 64 };
    cJSON_AddStringToObject(tp, "function", "dec_dequant_layer_qint_fp32_bandwidth");
    cJSON_AddStringToObject(tp, "template", "Nacc=21, asym=true, B=16, W=64; one output block of B*W");
    dequant_dec_data d;
    if (dequant_dec_run(s, g, fp, O, &d)) return;
    int32_t *acc = d.acc;
    float *ws = d.ws, *wsum = d.wsum, *y = d.y, *sc = d.sb;
    emit(s, "acc", "input", DT_I4, 1, SH(O), acc, "block-partitioned B=16", B, "ap_int<21>, the GEMV's beats");
    emit(s, "s_b", "input", DT_F4, 1, SH(2), sc, "(s, b) of quant_asym_dec", 0, NULL);
    emit(s, "ws", "param", DT_F4, 1, SH(O), ws, "per output channel", 0,
         "streamed with wsum as B*W (ws, wsum) pairs per output block, lane j major then column c: "
         "channel j*(O/B) + N*W + c");
    emit(s, "wsum", "param", DT_F4, 1, SH(O), wsum, "per output channel", 0, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(O), y, "block-partitioned B=16", B, NULL);
}

/* the plain decode dequantizer (unused in production, reference-design §1.2f): the
 * weight scales arrive as one vector per beat, with the accumulators */
static void k_dequant_dec_plain(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { O = 2048, B = 16 };
    cJSON_AddStringToObject(tp, "function", "dec_dequant_layer_qint_fp32");
    cJSON_AddStringToObject(tp, "template", "Nacc=21, asym=true, B=16");
    dequant_dec_data d;
    if (dequant_dec_run(s, g, fp, O, &d)) return;
    int32_t *acc = d.acc;
    float *ws = d.ws, *wsum = d.wsum, *y = d.y, *sc = d.sb;
    emit(s, "acc", "input", DT_I4, 1, SH(O), acc, "block-partitioned B=16", B, NULL);
    emit(s, "s_b", "input", DT_F4, 1, SH(2), sc, "(s, b) of quant_asym_dec", 0, NULL);
    emit(s, "ws", "param", DT_F4, 1, SH(O), ws, "block-partitioned B=16", B, "one vector per beat");
    emit(s, "wsum", "param", DT_F4, 1, SH(O), wsum, "block-partitioned B=16", B, "one vector per beat");
    emit(s, "y", "output", DT_F4, 1, SH(O), y, "block-partitioned B=16", B, NULL);
}

/* decode Q quantizer, head-parallel: lane m holds heads 4m..4m+3, i.e. the
 * block partition of the 2048 channels into 8 lanes */
static void k_quant_static_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { H = 32, d = 64, HP = 8 };
    cJSON_AddStringToObject(tp, "function", "dec_MHA_static_sym_per_tensor_quant_layer_fp32_qint (Q)");
    cJSON_AddStringToObject(tp, "template", "N=8, HP=8, K=64, heads=32, is_signed=true; arguments "
                            "block_id=0, mha_scale_factor=8.0f");
    float *x = galloc(g, H * d * 4), sc[H];
    int8_t *q = galloc(g, H * d);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < H * d; i++) x[i] = rf(g, -3, 3);
    for (int h = 0; h < H; h++) sc[h] = rf(g, 0.01f, 0.02f);   /* all different: checks the lane map */
    flx_emu_quant_static(q, x, 1, H, d, sc, 8.0f, 8, 1, fp);
    emit(s, "x", "input", DT_F4, 1, SH(H * d), x, "head-parallel HP=8 (block-partitioned)", HP, NULL);
    emit(s, "scale", "param", DT_F4, 1, SH(H), sc, "per head (table[block_id][head])", 0, NULL);
    emit(s, "q8", "output", DT_I1, 1, SH(H * d), q, "head-parallel HP=8 (block-partitioned)", HP, NULL);
}

static void k_dequant_static_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { H = 32, d = 64, HP = 8 };
    cJSON_AddStringToObject(tp, "function", "dec_MHA_static_sym_per_tensor_dequant_layer_qint_fp32");
    cJSON_AddStringToObject(tp, "template", "Nacc=22, HP=8, K=64, act_heads=32, w_heads=8");
    int32_t *acc = galloc(g, H * d * 4);
    float in_s[H], w_s[8], *y = galloc(g, H * d * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < H * d; i++) acc[i] = ri(g, -1000000, 1000000);
    for (int h = 0; h < H; h++) in_s[h] = rf(g, 0.01f, 0.02f);
    for (int h = 0; h < 8; h++) w_s[h] = rf(g, 0.1f, 0.2f);
    flx_emu_dequant_static(y, acc, 1, H, d, in_s, w_s, 8, fp);
    emit(s, "acc", "input", DT_I4, 1, SH(H * d), acc, "head-parallel HP=8 (block-partitioned)", HP, NULL);
    emit(s, "in_s", "param", DT_F4, 1, SH(H), in_s, "per query head", 0, NULL);
    emit(s, "w_s", "param", DT_F4, 1, SH(8), w_s, "per KV head (query head h uses h/4)", 0, NULL);
    emit(s, "y", "output", DT_F4, 1, SH(H * d), y, "head-parallel HP=8 (block-partitioned)", HP, NULL);
}

/* decode QK^T of one head lane over S = 37 keys: 2 blocks of Kp = 32, the
 * last one partial (dec_quant_a_discard drops keys >= S) */
static void k_qk_i8_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { S = 37, d = 64 };
    (void)fp;
    cJSON_AddStringToObject(tp, "function", "dec_MHA_i8xi8_qxk_template + dec_quant_a_discard_template "
                            "(PE_i8xi8_pack_1x2_1xDSP_1D), one head lane");
    cJSON_AddStringToObject(tp, "template", "Kp=32, head_dim=64, acc=ap_int<22>; S=37 keys");
    int8_t *q = galloc(g, d), *k = galloc(g, S * d);
    int32_t *acc = galloc(g, S * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < d; i++) q[i] = (int8_t)ri(g, -128, 127);
    for (int i = 0; i < S * d; i++) k[i] = (int8_t)ri(g, -128, 127);
    q[0] = k[0] = -128;
    flx_emu_qk_i8(acc, S, q, d, k, d, 1, S, d, 22);
    emit(s, "q8", "input", DT_I1, 1, SH(d), q, "one beat per dim", 0, NULL);
    emit(s, "k8", "input", DT_I1, 2, SH(S, d), k, "[key][dim]; streamed per block of 32 keys, one beat "
         "per dim, lane j = key 32n+j (zero past S)", 0, NULL);
    emit(s, "acc", "output", DT_I4, 1, SH(S), acc, "one beat per key, keys >= S discarded", 0, NULL);
}

static void k_av_u8i8_dec(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { S = 37, d = 64 };
    (void)fp;
    cJSON_AddStringToObject(tp, "function", "dec_MHA_i8xi8_axv_template, one head lane");
    cJSON_AddStringToObject(tp, "template", "Vp=32, head_dim=64, is_uint=true, acc=ap_int<27>; S=37 keys");
    int8_t *p = galloc(g, S), *v = galloc(g, S * d);
    int32_t *acc = galloc(g, d * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < S; i++) p[i] = (int8_t)ri(g, -128, 127);
    for (int i = 0; i < S * d; i++) v[i] = (int8_t)ri(g, -128, 127);
    p[0] = (int8_t)-1;    /* 255 */
    v[0] = -128;
    flx_emu_av_u8i8(acc, d, p, S, 1, v, d, 1, S, d, 27);
    emit(s, "p8", "input", DT_U1, 1, SH(S), p, "one beat per key", 0, "uint8 probabilities");
    emit(s, "v8", "input", DT_I1, 2, SH(S, d), v, "[key][dim]; streamed per block of 32 dims, one beat "
         "per key", 0, NULL);
    emit(s, "acc", "output", DT_I4, 1, SH(d), acc, "one beat per dim", 0, NULL);
}

static void k_silu_gate_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    cJSON_AddStringToObject(tp, "function", "pref_Swish + pref_Gate_Layer_fp32xfp32");
    cJSON_AddStringToObject(tp, "template", "TP=8, I=8192");
    silu_gate_set(s, g, fp, 8, 8192);
}

static void k_residual_pref(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    cJSON_AddStringToObject(tp, "function", "Residual_Layer (prefill, token-parallel)");
    cJSON_AddStringToObject(tp, "template", "TP=8, D=2048");
    residual_set(s, g, fp, 8, 2048);
}

/* ------------------------------------------------- whole layers (U280 shape) */

/* One decoder layer of Llama-3.2-1B shape with random INT4 weights; the
 * embedding table holds the layer inputs, so "prefill of tokens 0..n-1" is
 * exactly the layer applied to those rows. */
typedef struct {
    flx_qmodel qm;
    flx_qlayer L[2];             /* qm.layers */
    void      *mem[64];
    int        n_mem;
} layer_model;

static void *lm_alloc(layer_model *m, size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (p) m->mem[m->n_mem++] = p;
    return p;
}

static int lm_tensor(layer_model *m, gen *g, flx_qtensor *t, int n_out, int n_in)
{
    t->n_out = n_out; t->n_in = n_in; t->bits = 4; t->group_size = n_in; t->symmetric = 1;
    t->q = lm_alloc(m, (size_t)n_out * n_in);
    t->scale = lm_alloc(m, (size_t)n_out * sizeof(float));
    t->wsum = lm_alloc(m, (size_t)n_out * sizeof(float));
    if (!t->q || !t->scale || !t->wsum) return -1;
    for (int o = 0; o < n_out; o++) {
        int sum = 0;
        for (int k = 0; k < n_in; k += 16) {
            uint64_t r = flx_rng_u64(&g->rng);
            for (int j = 0; j < 16 && k + j < n_in; j++) {
                int v = (int)((r >> (4 * j)) & 15) - 8;
                t->q[(size_t)o * n_in + k + j] = (int8_t)v;
                sum += v;
            }
        }
        t->scale[o] = rf(g, 0.004f, 0.012f);
        t->wsum[o] = t->scale[o] * (float)sum;     /* stored sum of dequantized weights */
    }
    return 0;
}

static void lm_free(layer_model *m)
{
    for (int i = 0; i < m->n_mem; i++) free(m->mem[i]);
}

static int lm_build_n(layer_model *m, gen *g, int n_rows, int n_layers);
static int lm_build(layer_model *m, gen *g, int n_rows) { return lm_build_n(m, g, n_rows, 1); }

/* the layer shape of a generated model */
typedef struct { int d, heads, kv_heads, head_dim, ff; } lm_shape;
static const lm_shape LM_U280 = { 2048, 32, 8, 64, 8192 };

static int lm_build_shape(layer_model *m, gen *g, int n_rows, int n_layers, const lm_shape *sh);
static int lm_build_n(layer_model *m, gen *g, int n_rows, int n_layers)
{
    return lm_build_shape(m, g, n_rows, n_layers, &LM_U280);
}

/* n_layers (1 or 2) decoder layers; layer 1 takes the FSQ layer-1 scales */
static int lm_build_shape(layer_model *m, gen *g, int n_rows, int n_layers, const lm_shape *sh)
{
    const int D = sh->d, H = sh->heads, KVH = sh->kv_heads, HD = sh->head_dim, F = sh->ff;
    memset(m, 0, sizeof *m);
    flx_llama_config *c = &m->qm.cfg;
    c->n_vocab = n_rows; c->d_model = D; c->n_layers = n_layers; c->n_heads = H; c->n_kv_heads = KVH;
    c->head_dim = HD; c->d_ff = F; c->max_seq_len = 2048; c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0;
    strcpy(m->qm.recipe, "flexllm");
    m->qm.r4_online = 1;
    m->qm.has_attn_scales = 1;
    float *emb = lm_alloc(m, (size_t)n_rows * D * sizeof(float));
    float *ones = lm_alloc(m, D * sizeof(float));
    if (!emb || !ones) return -1;
    for (int i = 0; i < n_rows * D; i++) emb[i] = rf(g, -1.0f, 1.0f);
    for (int i = 0; i < D; i++) ones[i] = 1.0f;     /* gamma folded: all ones (reference-design §1.6) */
    m->qm.tok_embd = emb;
    m->qm.out_norm = ones;
    m->qm.layers = m->L;
    /* FSQ layer-0 and layer-1 static scales (reference-design §1.12) */
    static const float fsq[2][4] = { { 0.0175285172f, 0.106267393f, 0.00409434037f, 0.00318154902f },
                                     { 0.0130162379f, 0.119919524f, 0.00953821093f, 0.00374620454f } };
    for (int l = 0; l < n_layers; l++) {
        flx_qlayer *L = &m->L[l];
        L->attn_norm = L->ffn_norm = ones;
        L->q_s = fsq[l][0]; L->k_s = fsq[l][1]; L->v_s = fsq[l][2]; L->a_s = fsq[l][3];
        if (lm_tensor(m, g, &L->wq, D, D) || lm_tensor(m, g, &L->wk, KVH * HD, D) ||
            lm_tensor(m, g, &L->wv, KVH * HD, D) || lm_tensor(m, g, &L->wo, D, D) ||
            lm_tensor(m, g, &L->w_gate, F, D) || lm_tensor(m, g, &L->w_up, F, D) ||
            lm_tensor(m, g, &L->w_down, D, F))
            return -1;
    }
    return lm_tensor(m, g, &m->qm.head, n_rows, D);
}

static void emit_weights_p(sink *s, const flx_qlayer *L, const char *prefix);
static void emit_weights(sink *s, const flx_qlayer *L) { emit_weights_p(s, L, ""); }

static void emit_weights_p(sink *s, const flx_qlayer *L, const char *prefix)
{
    const struct { const char *name; const flx_qtensor *t; } ws[] = {
        { "wq", &L->wq }, { "wk", &L->wk }, { "wv", &L->wv }, { "wo", &L->wo },
        { "w_gate", &L->w_gate }, { "w_up", &L->w_up }, { "w_down", &L->w_down },
    };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        char n1[32], n2[32], n3[32];
        snprintf(n1, sizeof n1, "%s%s", prefix, ws[i].name);
        snprintf(n2, sizeof n2, "%s%s_s", prefix, ws[i].name);
        snprintf(n3, sizeof n3, "%s%s_sum", prefix, ws[i].name);
        const flx_qtensor *t = ws[i].t;
        emit(s, n1, "param", DT_I1, 2, SH(t->n_out, t->n_in), t->q, "row-major [out][in], int4 -8..7", 0, NULL);
        emit(s, n2, "param", DT_F4, 1, SH(t->n_out), t->scale, "per output channel", 0, NULL);
        emit(s, n3, "param", DT_F4, 1, SH(t->n_out), t->wsum, "per output channel: s * sum(q)", 0, NULL);
    }
    float att[4] = { L->q_s, L->k_s, L->v_s, L->a_s };
    char an[40];
    snprintf(an, sizeof an, "%sattn_scales", prefix);
    emit(s, an, "param", DT_F4, 1, SH(4), att, "Q_s, K_s, V_s, A_s (one per layer, all heads)", 0, NULL);
}

static void layer_common(cJSON *tp, const char *fn)
{
    cJSON_AddStringToObject(tp, "function", fn);
    cJSON_AddStringToObject(tp, "template", "config_u280_mem_opt: D=2048, heads 32 x 64, KV heads 8, "
                            "I=8192, TP=8, B=16, B_T=8, HP=8; RoPE table base 10000 (as shipped); "
                            "gamma all ones");
}

/* The layer replayed from the emulator's kernel functions in the hardware's
 * literal order (full L x L prefill scores, causal mask, per-head softmax,
 * uint8 P), keeping every intermediate a testbench needs to localise a
 * mismatch.  The set is written only when the replay's output equals the
 * pipeline's (flx_emu_prefill / flx_emu_decode_step_ex) bit for bit. */
typedef struct {
    int64_t T, S;          /* rows (tokens; 1 in decode), keys per row      */
    float  *h1, *q, *k, *v, *q_rope, *k_rope;      /* norm out, projections */
    int8_t *q8, *k8, *v8;
    float  *scores, *p;    /* [H][T][S]: dequantized scores, softmax        */
    int8_t *p8;            /* [H][T][S] uint8 patterns                      */
    int32_t *acc_o;        /* [T][D] A.V accumulators                       */
    float  *attn, *o_proj, *r0, *h2, *gate, *up, *act, *fht, *down, *y;
    void   *mem[32];
    int     n_mem;
} layer_trace;

static void *lt_alloc(layer_trace *t, size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (p) t->mem[t->n_mem++] = p;
    return p;
}

static void lt_free(layer_trace *t)
{
    for (int i = 0; i < t->n_mem; i++) free(t->mem[i]);
}

static int lt_init(layer_trace *t, const flx_llama_config *c, int64_t T, int64_t S)
{
    const size_t D = (size_t)c->d_model, KV = (size_t)c->n_kv_heads * c->head_dim;
    const size_t F = (size_t)c->d_ff, H = (size_t)c->n_heads, n = (size_t)T;
    memset(t, 0, sizeof *t);
    t->T = T; t->S = S;
    float **fl[] = { &t->h1, &t->q, &t->q_rope, &t->attn, &t->o_proj, &t->r0, &t->h2, &t->down, &t->y };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) *fl[i] = lt_alloc(t, n * D * 4);
    float **fk[] = { &t->k, &t->v, &t->k_rope };
    for (size_t i = 0; i < sizeof fk / sizeof fk[0]; i++) *fk[i] = lt_alloc(t, n * KV * 4);
    float **ff[] = { &t->gate, &t->up, &t->act, &t->fht };
    for (size_t i = 0; i < sizeof ff / sizeof ff[0]; i++) *ff[i] = lt_alloc(t, n * F * 4);
    t->q8 = lt_alloc(t, n * D); t->k8 = lt_alloc(t, n * KV); t->v8 = lt_alloc(t, n * KV);
    t->scores = lt_alloc(t, H * n * (size_t)S * 4); t->p = lt_alloc(t, H * n * (size_t)S * 4);
    t->p8 = lt_alloc(t, H * n * (size_t)S); t->acc_o = lt_alloc(t, n * D * 4);
    for (int i = 0; i < t->n_mem; i++) if (!t->mem[i]) return -1;
    return t->n_mem == 23 ? 0 : -1;
}

/* a linear layer as the hardware runs it: per-token asymmetric INT4
 * quantization, INT4 GEMM with acc_bits accumulators, dequantization */
static int lt_linear(float *y, const float *x, const flx_qtensor *w, int64_t T, int acc_bits,
                     const flx_emu_fp *fp)
{
    int8_t *q = malloc((size_t)(T * w->n_in));
    float *sc = malloc((size_t)T * 4), *b = malloc((size_t)T * 4);
    int32_t *acc = malloc((size_t)(T * w->n_out) * 4);
    int rc = -1;
    if (q && sc && b && acc) {
        flx_emu_quant_asym(q, sc, b, x, T, w->n_in, 4, fp);
        if (flx_emu_gemm_i4(acc, q, 1, w->q, T, w->n_out, w->n_in, acc_bits, NULL) == 0) {
            flx_emu_dequant(y, acc, sc, b, w->scale, w->wsum, T, w->n_out, fp);
            rc = 0;
        }
    }
    free(q); free(sc); free(b); free(acc);
    return rc;
}

/* One decoder layer over t->T rows at positions pos0.. with keys 0..S-1 from
 * kc/vc ([S][KV], rows pos0.. are written here).  Prefill: S = pos0 + T
 * (causal mask from position pos0); decode: T = 1, pos0 = S-1 (no mask). */
static int lt_run(layer_trace *t, const flx_emu_engine *e, const flx_qlayer *L, const float *x,
                  int8_t *kc, int8_t *vc, int64_t pos0)
{
    const flx_llama_config *c = &e->qm->cfg;
    const flx_emu_fp *fp = &e->opts.fp;
    const int64_t T = t->T, S = t->S, D = c->d_model, hd = c->head_dim, F = c->d_ff;
    const int64_t KV = (int64_t)c->n_kv_heads * hd, H = c->n_heads;
    const int G = c->n_heads / c->n_kv_heads, dec = T == 1 && pos0 > 0;
    const int bits_d = dec ? 21 : 19, bits_f = 21;   /* L + 8: 13 decode, 11 / 13 prefill */
    const float *qs = e->att_scales, *ks = qs + H, *vs = ks + H, *as = vs + H;  /* layer 0 */
    if (dec) flx_emu_rmsnorm_dec(t->h1, x, L->attn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
    else flx_emu_rmsnorm_pref(t->h1, x, L->attn_norm, T, D, c->rms_eps, fp);
    if (lt_linear(t->k, t->h1, &L->wk, T, bits_d, fp) || lt_linear(t->v, t->h1, &L->wv, T, bits_d, fp) ||
        lt_linear(t->q, t->h1, &L->wq, T, bits_d, fp))
        return -1;
    for (int64_t r = 0; r < T; r++) {
        flx_emu_rope(t->k_rope + r * KV, t->k + r * KV, c->n_kv_heads, (int)hd, e->rope_sin, e->rope_cos, pos0 + r, fp);
        flx_emu_rope(t->q_rope + r * D, t->q + r * D, (int)H, (int)hd, e->rope_sin, e->rope_cos, pos0 + r, fp);
    }
    flx_emu_quant_static(t->k8, t->k_rope, T, c->n_kv_heads, (int)hd, ks, 1.0f, 8, 1, fp);
    flx_emu_quant_static(t->v8, t->v, T, c->n_kv_heads, (int)hd, vs, 1.0f, 8, 1, fp);
    flx_emu_quant_static(t->q8, t->q_rope, T, (int)H, (int)hd, qs, e->q_factor, 8, 1, fp);
    memcpy(kc + pos0 * KV, t->k8, (size_t)(T * KV));
    memcpy(vc + pos0 * KV, t->v8, (size_t)(T * KV));
    int32_t *acc = malloc((size_t)(T * S) * 4);
    if (!acc) return -1;
    for (int64_t h = 0; h < H; h++) {
        int64_t kvh = h / G;
        float *sc = t->scores + h * T * S, *p = t->p + h * T * S;
        int8_t *p8 = t->p8 + h * T * S;
        if (flx_emu_qk_i8(acc, S, t->q8 + h * hd, D, kc + kvh * hd, KV, T, S, (int)hd, 22)) break;
        flx_emu_dequant_static(sc, acc, T, 1, (int)S, &qs[h], &ks[kvh], 1, fp);
        memcpy(p, sc, (size_t)(T * S) * 4);
        if (dec) {
            flx_emu_softmax_dec(p, S, fp);
        } else {
            flx_emu_causal_mask(p, S, T, S, pos0);
            for (int64_t r = 0; r < T; r++) flx_emu_softmax_pref(p + r * S, S, fp);
        }
        flx_emu_quant_static(p8, p, T, 1, (int)S, &as[h], 1.0f, 8, 0, fp);
        if (flx_emu_av_u8i8(t->acc_o + h * hd, D, p8, S, 1, vc + kvh * hd, KV, T, S, (int)hd, dec ? 27 : 26))
            break;
    }
    free(acc);
    flx_emu_dequant_static(t->attn, t->acc_o, T, (int)H, (int)hd, as, vs, c->n_kv_heads, fp);
    if (lt_linear(t->o_proj, t->attn, &L->wo, T, bits_d, fp)) return -1;
    flx_emu_residual(t->r0, t->o_proj, x, T * D, fp);
    if (dec) flx_emu_rmsnorm_dec(t->h2, t->r0, L->ffn_norm, D, e->opts.norm_lanes, c->rms_eps, fp);
    else flx_emu_rmsnorm_pref(t->h2, t->r0, L->ffn_norm, T, D, c->rms_eps, fp);
    if (lt_linear(t->gate, t->h2, &L->w_gate, T, bits_d, fp) || lt_linear(t->up, t->h2, &L->w_up, T, bits_d, fp))
        return -1;
    flx_emu_silu_gate(t->act, t->gate, t->up, T * F, fp);
    memcpy(t->fht, t->act, (size_t)(T * F) * 4);
    for (int64_t r = 0; r < T; r++) flx_emu_fht(t->fht + r * F, F, e->fht_scale, fp);
    if (lt_linear(t->down, t->fht, &L->w_down, T, bits_f, fp)) return -1;
    flx_emu_residual(t->y, t->down, t->r0, T * D, fp);
    return 0;
}

/* the intermediates, the per-head scales, the gains and the RoPE rows used */
static void emit_trace(sink *s, const layer_trace *t, const flx_emu_engine *e, const flx_qlayer *L,
                       int64_t pos0, const char *tok_layout, int tok_lanes, const char *norm_layout,
                       int norm_lanes)
{
    const flx_llama_config *c = &e->qm->cfg;
    const int64_t T = t->T, S = t->S, D = c->d_model, KV = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t F = c->d_ff, H = c->n_heads, half = c->head_dim / 2;
    const int dec = T == 1 && pos0 > 0;
    const char *hp = "head-parallel HP=8 (block-partitioned)";
    emit(s, "attn_norm", "param", DT_F4, 1, SH(D), L->attn_norm, "per channel (RMSNorm gain)", 0, NULL);
    emit(s, "ffn_norm", "param", DT_F4, 1, SH(D), L->ffn_norm, "per channel (RMSNorm gain)", 0, NULL);
    emit(s, "q_s", "param", DT_F4, 1, SH(H), e->att_scales, "per query head (Q_s row)", 0,
         "the Q quantizer divides by mha_scale_factor 8.0f * Q_s");
    emit(s, "k_s", "param", DT_F4, 1, SH(c->n_kv_heads), e->att_scales + H, "per KV head (K_s row)", 0, NULL);
    emit(s, "v_s", "param", DT_F4, 1, SH(c->n_kv_heads), e->att_scales + 2 * H, "per KV head (V_s row)", 0, NULL);
    emit(s, "a_s", "param", DT_F4, 1, SH(H), e->att_scales + 3 * H, "per query head (A_s row)", 0, NULL);
    emit(s, "rope_sin", "param", DT_F4, 2, SH(T, half), e->rope_sin + pos0 * half,
         "PE_sin[pos][k] rows of the positions used (base 10000, as shipped)", 0, NULL);
    emit(s, "rope_cos", "param", DT_F4, 2, SH(T, half), e->rope_cos + pos0 * half,
         "PE_cos[pos][k] rows of the positions used", 0, NULL);
    if (dec) {
        emit(s, "h_attn", "output", DT_F4, 1, SH(D), t->h1, norm_layout, norm_lanes, "attention RMSNorm output");
        emit(s, "q", "output", DT_F4, 1, SH(D), t->q, "block-partitioned B=16", 16, "q_proj output, before RoPE");
        emit(s, "k", "output", DT_F4, 1, SH(KV), t->k, "block-partitioned B=16", 16, "k_proj output, before RoPE");
        emit(s, "v", "output", DT_F4, 1, SH(KV), t->v, "block-partitioned B=16", 16, "v_proj output");
        emit(s, "q_rope", "output", DT_F4, 1, SH(D), t->q_rope, hp, 8, NULL);
        emit(s, "k_rope", "output", DT_F4, 1, SH(KV), t->k_rope, hp, 8, NULL);
        emit(s, "q8", "output", DT_I1, 1, SH(D), t->q8, hp, 8, NULL);
    } else {
        emit(s, "h_attn", "output", DT_F4, 2, SH(T, D), t->h1, tok_layout, tok_lanes, "attention RMSNorm output");
        emit(s, "q", "output", DT_F4, 2, SH(T, D), t->q, tok_layout, tok_lanes, "q_proj output, before RoPE");
        emit(s, "k", "output", DT_F4, 2, SH(T, KV), t->k, tok_layout, tok_lanes, "k_proj output, before RoPE");
        emit(s, "v", "output", DT_F4, 2, SH(T, KV), t->v, tok_layout, tok_lanes, "v_proj output");
        emit(s, "q_rope", "output", DT_F4, 2, SH(T, D), t->q_rope, tok_layout, tok_lanes, NULL);
        emit(s, "k_rope", "output", DT_F4, 2, SH(T, KV), t->k_rope, tok_layout, tok_lanes, NULL);
        emit(s, "q8", "output", DT_I1, 2, SH(T, D), t->q8, tok_layout, tok_lanes, NULL);
    }
    emit(s, "scores", "output", DT_F4, 3, SH(H, T, S), t->scores, "[head][query][key]", 0,
         "((float)acc * Q_s) * K_s, before the causal mask");
    emit(s, "p", "output", DT_F4, 3, SH(H, T, S), t->p, "[head][query][key]", 0,
         dec ? "dec_MHA_Softmax output" : "causal mask + pref_Softmax output");
    emit(s, "p8", "output", DT_U1, 3, SH(H, T, S), t->p8, "[head][query][key]", 0, "uint8 P (A_s)");
    if (dec) {
        emit(s, "attn", "output", DT_F4, 1, SH(D), t->attn, hp, 8, "attention output (dequantized A.V)");
        emit(s, "o_proj", "output", DT_F4, 1, SH(D), t->o_proj, "block-partitioned B=16", 16, NULL);
        emit(s, "r0", "output", DT_F4, 1, SH(D), t->r0, "block-partitioned B=16", 16, "first residual");
        emit(s, "h_ffn", "output", DT_F4, 1, SH(D), t->h2, norm_layout, norm_lanes, "FFN RMSNorm output");
        emit(s, "gate", "output", DT_F4, 1, SH(F), t->gate, "block-partitioned B=16", 16, NULL);
        emit(s, "up", "output", DT_F4, 1, SH(F), t->up, "block-partitioned B=16", 16, NULL);
        emit(s, "act", "output", DT_F4, 1, SH(F), t->act, "block-partitioned B=16", 16, "silu(gate) * up");
        emit(s, "act_fht", "output", DT_F4, 1, SH(F), t->fht, "block-partitioned B=16", 16, "after the R4 FHT");
        emit(s, "down", "output", DT_F4, 1, SH(D), t->down, "block-partitioned B=16", 16, NULL);
    } else {
        emit(s, "attn", "output", DT_F4, 2, SH(T, D), t->attn, tok_layout, tok_lanes, "attention output (dequantized A.V)");
        emit(s, "o_proj", "output", DT_F4, 2, SH(T, D), t->o_proj, tok_layout, tok_lanes, NULL);
        emit(s, "r0", "output", DT_F4, 2, SH(T, D), t->r0, tok_layout, tok_lanes, "first residual");
        emit(s, "h_ffn", "output", DT_F4, 2, SH(T, D), t->h2, tok_layout, tok_lanes, "FFN RMSNorm output");
        emit(s, "gate", "output", DT_F4, 2, SH(T, F), t->gate, tok_layout, tok_lanes, NULL);
        emit(s, "up", "output", DT_F4, 2, SH(T, F), t->up, tok_layout, tok_lanes, NULL);
        emit(s, "act", "output", DT_F4, 2, SH(T, F), t->act, tok_layout, tok_lanes, "silu(gate) * up");
        emit(s, "act_fht", "output", DT_F4, 2, SH(T, F), t->fht, tok_layout, tok_lanes, "after the R4 FHT");
        emit(s, "down", "output", DT_F4, 2, SH(T, D), t->down, tok_layout, tok_lanes, NULL);
    }
}

/* the engine options of the layer sets: reference quirks on (the
 * base-10000 RoPE table as shipped) */
static flx_emu_opts layer_opts(const flx_emu_fp *fp)
{
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    o.fp = *fp;
    o.reference_quirks = 1;
    return o;
}

/* the manifest's statement of a prefill call: where its rows sit, which
 * cache rows a testbench preloads and which the call writes */
static void prefill_call(cJSON *tp, int64_t P, int64_t T, int64_t Lp)
{
    cJSON *c = cJSON_AddObjectToObject(tp, "call");
    cJSON_AddNumberToObject(c, "pos0", (double)P);
    cJSON_AddNumberToObject(c, "tokens", (double)T);
    cJSON_AddNumberToObject(c, "rows", (double)Lp);
    cJSON_AddNumberToObject(c, "token_blocks", (double)(Lp / 8));
    cJSON_AddNumberToObject(c, "seq_len", (double)(P + Lp));
    const double r[4][2] = { { (double)P, (double)(P + T) }, { (double)(P + T), (double)(P + Lp) },
                             { 0, (double)P }, { (double)P, (double)(P + Lp) } };
    const char *nm[4] = { "token_positions", "padding_positions", "cache_rows_preloaded", "cache_rows_written" };
    for (int i = 0; i < 4; i++) {
        cJSON *a = cJSON_AddArrayToObject(c, nm[i]);
        if (!a) continue;
        cJSON_AddItemToArray(a, cJSON_CreateNumber(r[i][0]));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(r[i][1]));
    }
    cJSON_AddStringToObject(c, "ranges", "half-open [first, end) positions");
    cJSON_AddStringToObject(c, "preload", P ? "k8_cache and v8_cache: rows 0..pos0-1 of the layer's K/V caches "
                            "(the earlier calls' INT8 keys after RoPE and values), in place before the call"
                                            : "nothing (the first call)");
    cJSON_AddStringToObject(c, "earlier_calls", "the emulator ran the earlier rows as 16-row calls at "
                            "0, 16, .., pos0-16 (flx_emu_prefill_at); the call equals rows pos0.. of one "
                            "prefill over all pos0 + tokens rows (checked while writing)");
}

/* One prefill call of one layer: T tokens (padded to Lp = 16k rows) at
 * positions P..P+Lp-1 after earlier 16-row calls over positions 0..P-1
 * (flx_emu_prefill_at, the host's multi-call prefill).  The set is written
 * only when the kernel-by-kernel replay equals the pipeline's call and the
 * call equals those rows of one long prefill. */
static void k_layer_prefill(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { D = 2048, KV = 512 };
    const int64_t P = s->pos0, T = s->n_tokens ? s->n_tokens : 16, Lp = (T + 15) / 16 * 16, S = P + Lp;
    if (P < 0 || P % 16 || T < 1 || T > 256 || S > 2048) {
        s->rc = flx_fail(s->err, FLX_EINVAL, "layer_prefill: a call of %lld tokens at position %lld: pos0 must "
                         "be a multiple of 16, tokens 1..256 and pos0 + tokens (padded to 16) <= 2048",
                         (long long)T, (long long)P);
        return;
    }
    char fn[320];
    snprintf(fn, sizeof fn, "SpinQuant_Prefilling_mem_opt, one decoder layer, %lld tokens at positions "
             "%lld..%lld (%lld token blocks of TP=8%s) attending %lld keys", (long long)T, (long long)P,
             (long long)(P + T - 1), (long long)(Lp / 8), Lp > T ? ", zero padding rows after them" : "",
             (long long)S);
    layer_common(tp, fn);
    prefill_call(tp, P, T, Lp);
    layer_model m;
    flx_emu_engine e;
    flx_emu_kv kv, kl;
    layer_trace t;
    memset(&kv, 0, sizeof kv);
    memset(&kl, 0, sizeof kl);
    memset(&t, 0, sizeof t);
    float *y = galloc(g, (size_t)T * D * 4), *yl = galloc(g, (size_t)(P + T) * D * 4);
    float *x = galloc(g, (size_t)Lp * D * 4);
    int8_t *kc = galloc(g, (size_t)S * KV), *vc = galloc(g, (size_t)S * KV);
    int8_t *kr = galloc(g, (size_t)(P + T) * KV), *vr = galloc(g, (size_t)(P + T) * KV);   /* kv's rows */
    int8_t *klr = galloc(g, (size_t)(P + T) * KV), *vlr = galloc(g, (size_t)(P + T) * KV); /* kl's rows */
    int32_t *toks = galloc(g, (size_t)(P + T) * 4);
    if (gen_oom(s, g)) return;
    for (int64_t i = 0; i < P + T; i++) toks[i] = (int32_t)i;
    flx_emu_opts o = layer_opts(fp);
    const char *tl = "token-parallel TP=8";
    if (lm_build(&m, g, (int)(P + T))) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_prefill: out of memory");
    } else if (!(s->rc = flx_emu_engine_init(&e, &m.qm, &o, S > 64 ? S : 64, s->err))) {
        memcpy(x, m.qm.tok_embd + (size_t)P * D, (size_t)T * D * 4);      /* padding rows stay zero */
        int rc = flx_emu_kv_init(&kv, &e, S, s->err);
        if (!rc) rc = flx_emu_kv_init(&kl, &e, S, s->err);
        for (int64_t c = 0; c < P && !rc; c += 16)                       /* the earlier calls */
            rc = flx_emu_prefill_at(&e, NULL, &kv, toks + c, NULL, 16, c, NULL, s->err);
        if (!rc) rc = flx_emu_prefill_at(&e, y, &kv, toks + P, NULL, T, P, NULL, s->err);
        if (!rc) rc = flx_emu_prefill(&e, yl, &kl, toks, P + T, NULL, s->err);
        if (!(s->rc = rc)) {
            flx_emu_kv_get_rows(&kv, 0, 0, P + T, kr, vr);
            flx_emu_kv_get_rows(&kl, 0, 0, P + T, klr, vlr);
            memcpy(kc, kr, (size_t)P * KV);
            memcpy(vc, vr, (size_t)P * KV);
            if (lt_init(&t, &m.qm.cfg, Lp, S) || lt_run(&t, &e, &m.L[0], x, kc, vc, P))
                s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_prefill: replay failed (out of memory)");
            else if (memcmp(t.y, y, (size_t)T * D * 4) || memcmp(kc + P * KV, kr + P * KV, (size_t)T * KV) ||
                     memcmp(vc + P * KV, vr + P * KV, (size_t)T * KV))
                s->rc = flx_fail(s->err, FLX_EFORMAT, "layer_prefill: the kernel-by-kernel replay "
                                 "differs from flx_emu_prefill_at (an emulator bug)");
            else if (memcmp(yl + P * D, y, (size_t)T * D * 4) || memcmp(klr, kr, (size_t)(P + T) * KV) ||
                     memcmp(vlr, vr, (size_t)(P + T) * KV))
                s->rc = flx_fail(s->err, FLX_EFORMAT, "layer_prefill: the call at position %lld differs from "
                                 "one prefill over all rows (an emulator bug)", (long long)P);
        }
        if (!s->rc) {
            emit(s, "x", "input", DT_F4, 2, SH(Lp, D), x, tl, 8,
                 Lp > T ? "the call's rows: the tokens' layer inputs, then zero padding rows" : NULL);
            if (P > 0) {
                emit(s, "k8_cache", "input", DT_I1, 2, SH(P, KV), kc, "[position][kv_head*64 + dim]", 0,
                     "K cache rows 0..pos0-1 to preload (earlier calls, INT8 after RoPE)");
                emit(s, "v8_cache", "input", DT_I1, 2, SH(P, KV), vc, "[position][kv_head*64 + dim]", 0,
                     "V cache rows 0..pos0-1 to preload (earlier calls, INT8)");
            }
            emit_weights(s, &m.L[0]);
            emit_trace(s, &t, &e, &m.L[0], P, tl, 8, NULL, 0);
            emit(s, "k8", "output", DT_I1, 2, SH(Lp, KV), kc + P * KV, "[token][kv_head*64 + dim]", 0,
                 P ? "K cache rows pos0..pos0+rows-1 written by the call, INT8 after RoPE" : "K cache, INT8 after RoPE");
            emit(s, "v8", "output", DT_I1, 2, SH(Lp, KV), vc + P * KV, "[token][kv_head*64 + dim]", 0,
                 P ? "V cache rows pos0..pos0+rows-1 written by the call, INT8" : "V cache, INT8");
            emit(s, "y", "output", DT_F4, 2, SH(Lp, D), t.y, tl, 8, "layer output (io_mmap region 1)");
        }
        flx_emu_kv_free(&kv);
        flx_emu_kv_free(&kl);
        flx_emu_engine_free(&e);
    }
    lt_free(&t);
    lm_free(&m);
}

/* One decode step of one layer: the token at position P (a multiple of 32,
 * default 32: the K-group register starts empty there, docs/kernels.md
 * §14) after a P-token prefill whose K/V rows are handed over. */
static void k_layer_decode(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { D = 2048, KV = 512 };
    const int64_t P = s->pos0 ? s->pos0 : 32;
    if (P < 32 || P % 32 || P >= 2048) {
        s->rc = flx_fail(s->err, FLX_EINVAL, "layer_decode: position %lld: a multiple of 32, 32..2016 (the "
                         "decode top's K-group register starts empty there)", (long long)P);
        return;
    }
    char fn[200];
    snprintf(fn, sizeof fn, "SpinQuant_Decoding_mem_opt, one decoder layer, token at position %lld after a "
             "%lld-token prefill (K/V hand-over)", (long long)P, (long long)P);
    layer_common(tp, fn);
    cJSON *call = cJSON_AddObjectToObject(tp, "call");
    cJSON_AddNumberToObject(call, "pos0", (double)P);
    cJSON_AddNumberToObject(call, "tokens", 1);
    cJSON_AddNumberToObject(call, "seq_len", (double)(P + 1));
    cJSON *pre = cJSON_AddArrayToObject(call, "cache_rows_preloaded");
    if (pre) {
        cJSON_AddItemToArray(pre, cJSON_CreateNumber(0));
        cJSON_AddItemToArray(pre, cJSON_CreateNumber((double)P));
    }
    cJSON_AddStringToObject(call, "preload", "k8_cache and v8_cache: the prefill's rows 0..pos0-1");
    layer_model m;
    flx_emu_engine e;
    flx_emu_kv kv;
    layer_trace t;
    memset(&kv, 0, sizeof kv);
    memset(&t, 0, sizeof t);
    float *y = galloc(g, D * 4);
    int8_t *kc = galloc(g, (size_t)(P + 1) * KV), *vc = galloc(g, (size_t)(P + 1) * KV);
    int8_t *kn = galloc(g, KV), *vn = galloc(g, KV);       /* the step's cache row */
    if (gen_oom(s, g)) return;
    int32_t *toks = galloc(g, (size_t)P * 4);
    if (gen_oom(s, g)) return;
    for (int i = 0; i < P; i++) toks[i] = i;
    flx_emu_opts o = layer_opts(fp);
    const char *bt = "block-partitioned B_T=8";
    if (lm_build(&m, g, P + 1)) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_decode: out of memory");
    } else if (!(s->rc = flx_emu_engine_init(&e, &m.qm, &o, P + 32, s->err))) {
        if (!(s->rc = flx_emu_kv_init(&kv, &e, P + 32, s->err)) &&
            !(s->rc = flx_emu_prefill(&e, NULL, &kv, toks, P, NULL, s->err))) {
            flx_emu_kv_get_rows(&kv, 0, 0, P, kc, vc);
            emit(s, "x", "input", DT_F4, 1, SH(D), m.qm.tok_embd + (size_t)P * D, bt, 8, NULL);
            emit(s, "k8_cache", "input", DT_I1, 2, SH(P, KV), kc, "[position][kv_head*64 + dim]", 0, "prefill hand-over");
            emit(s, "v8_cache", "input", DT_I1, 2, SH(P, KV), vc, "[position][kv_head*64 + dim]", 0, "prefill hand-over");
            emit_weights(s, &m.L[0]);
            if (!s->rc && !(s->rc = flx_emu_decode_step_ex(&e, NULL, y, &kv, P, P, NULL, s->err))) {
                flx_emu_kv_get_rows(&kv, 0, P, 1, kn, vn);
                if (lt_init(&t, &m.qm.cfg, 1, P + 1) ||
                    lt_run(&t, &e, &m.L[0], m.qm.tok_embd + (size_t)P * D, kc, vc, P))
                    s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_decode: replay failed (out of memory)");
                else if (memcmp(t.y, y, D * 4) || memcmp(kc + (size_t)P * KV, kn, KV) ||
                         memcmp(vc + (size_t)P * KV, vn, KV))
                    s->rc = flx_fail(s->err, FLX_EFORMAT, "layer_decode: the kernel-by-kernel replay "
                                     "differs from flx_emu_decode_step_ex (an emulator bug)");
            }
            if (!s->rc) {
                emit_trace(s, &t, &e, &m.L[0], P, NULL, 0, bt, 8);
                emit(s, "k8_new", "output", DT_I1, 1, SH(KV), kn, "head-parallel HP=8", 8, "K cache row pos0");
                emit(s, "v8_new", "output", DT_I1, 1, SH(KV), vn, "head-parallel HP=8", 8, "V cache row pos0");
                emit(s, "y", "output", DT_F4, 1, SH(D), y, bt, 8,
                     "layer output, B_T=8 lanes as the production top stores it");
            }
        }
        flx_emu_kv_free(&kv);
        flx_emu_engine_free(&e);
    }
    lt_free(&t);
    lm_free(&m);
}

/* A tiny whole model: two decoder layers of the U280 shape, a 1024-row
 * vocabulary (one lm_head block of B*W), a 32-token prefill, then one decode
 * step of token 32 at position 32 through both layers, the final norm, the
 * lm_head, top-5 sampling and the next token's embedding row. */
static void k_model_decode(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    enum { P = 32, D = 2048, KV = 512, V = 1024, NL = 2, H = 32 };
    cJSON_AddStringToObject(tp, "function", "SpinQuant_Decoding_mem_opt, whole model: 2 decoder layers, "
                            "LN2, lm_head (1024 rows), dec_Sampling_Embedding_Layer; token 32 at position 32 "
                            "after a 32-token prefill");
    cJSON_AddStringToObject(tp, "template", "config_u280_mem_opt layer shapes; VP=1024, K=5, B=16; RoPE "
                            "base 10000; gamma all ones; FSQ layer-0/1 scales");
    layer_model m;
    flx_emu_engine e;
    flx_emu_kv kv;
    memset(&kv, 0, sizeof kv);
    float *logits = galloc(g, V * 4), *hidden = galloc(g, D * 4);
    int8_t *kc = galloc(g, (size_t)P * KV), *vc = galloc(g, (size_t)P * KV);   /* one layer's rows */
    if (gen_oom(s, g)) return;
    int32_t toks[P];
    for (int i = 0; i < P; i++) toks[i] = i;
    flx_emu_opts o = layer_opts(fp);
    const char *bt = "block-partitioned B_T=8";
    if (lm_build_n(&m, g, V, NL)) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "model_decode: out of memory");
    } else if (!(s->rc = flx_emu_engine_init(&e, &m.qm, &o, 64, s->err))) {
        if (!(s->rc = flx_emu_kv_init(&kv, &e, 2 * P, s->err)) &&
            !(s->rc = flx_emu_prefill(&e, NULL, &kv, toks, P, NULL, s->err))) {
            emit(s, "x", "input", DT_F4, 1, SH(D), m.qm.tok_embd + (size_t)P * D, bt, 8, "embedding row of token 32");
            emit(s, "vocab", "param", DT_F4, 2, SH(V, D), m.qm.tok_embd, "[token][d] (vocab_lib)", 0, NULL);
            for (int l = 0; l < NL && !s->rc; l++) {
                char pre[8], n1[40];
                snprintf(pre, sizeof pre, "L%d_", l);
                flx_emu_kv_get_rows(&kv, l, 0, P, kc, vc);
                snprintf(n1, sizeof n1, "L%d_k8_cache", l);
                emit(s, n1, "input", DT_I1, 2, SH(P, KV), kc, "[position][kv_head*64 + dim]", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_v8_cache", l);
                emit(s, n1, "input", DT_I1, 2, SH(P, KV), vc, "[position][kv_head*64 + dim]", 0, NULL);
                emit_weights_p(s, &m.L[l], pre);
                const float *sc = e.att_scales + (size_t)l * 4 * H;
                snprintf(n1, sizeof n1, "L%d_q_s", l);
                emit(s, n1, "param", DT_F4, 1, SH(H), sc, "per query head", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_k_s", l);
                emit(s, n1, "param", DT_F4, 1, SH(8), sc + H, "per KV head", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_v_s", l);
                emit(s, n1, "param", DT_F4, 1, SH(8), sc + 2 * H, "per KV head", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_a_s", l);
                emit(s, n1, "param", DT_F4, 1, SH(H), sc + 3 * H, "per query head", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_attn_norm", l);
                emit(s, n1, "param", DT_F4, 1, SH(D), m.L[l].attn_norm, "RMSNorm gain", 0, NULL);
                snprintf(n1, sizeof n1, "L%d_ffn_norm", l);
                emit(s, n1, "param", DT_F4, 1, SH(D), m.L[l].ffn_norm, "RMSNorm gain", 0, NULL);
            }
            emit(s, "rope_sin", "param", DT_F4, 2, SH(1, 32), e.rope_sin + (size_t)P * 32, "PE_sin row 32", 0, NULL);
            emit(s, "rope_cos", "param", DT_F4, 2, SH(1, 32), e.rope_cos + (size_t)P * 32, "PE_cos row 32", 0, NULL);
            emit(s, "out_norm", "param", DT_F4, 1, SH(D), m.qm.out_norm, "final RMSNorm gain", 0, NULL);
            emit(s, "head", "param", DT_I1, 2, SH(V, D), m.qm.head.q, "row-major [vocab][d], int4 -8..7", 0, NULL);
            emit(s, "head_s", "param", DT_F4, 1, SH(V), m.qm.head.scale, "per row", 0, NULL);
            emit(s, "head_sum", "param", DT_F4, 1, SH(V), m.qm.head.wsum, "per row: s * sum(q)", 0, NULL);
            float r = rf(g, 0, 1);
            flx_emu_topk tk;
            if (!s->rc && !(s->rc = flx_emu_decode_step_ex(&e, logits, hidden, &kv, P, P, NULL, s->err)) &&
                !(s->rc = flx_emu_topk_sampling(&tk, logits, V, 16, 5, r, fp) ? flx_fail(s->err, FLX_ENUMERIC,
                                                "model_decode: sampling failed") : FLX_OK)) {
                int32_t ids[5], tok = tk.token;
                for (int i = 0; i < 5; i++) ids[i] = tk.id[i];
                emit(s, "r", "input", DT_F4, 1, SH(1), &r, "sampling threshold", 0, NULL);
                emit(s, "hidden", "output", DT_F4, 1, SH(D), hidden, bt, 8, "last layer output");
                emit(s, "logits", "output", DT_F4, 1, SH(V), logits, "block-partitioned B=16", 16, NULL);
                emit(s, "ids", "output", DT_I4, 1, SH(5), ids, "merged top-5, rank order", 0, NULL);
                emit(s, "probs", "output", DT_F4, 1, SH(5), tk.prob, "rank order", 0, NULL);
                emit(s, "token", "output", DT_I4, 1, SH(1), &tok, "sampled id", 0, NULL);
                emit(s, "next_x", "output", DT_F4, 1, SH(D), m.qm.tok_embd + (size_t)tok * D, bt, 8,
                     "embedding row of the sampled token: the next step's layer-0 input");
            }
        }
        flx_emu_kv_free(&kv);
        flx_emu_engine_free(&e);
    }
    lm_free(&m);
}

/* ------------------------------------------------------------- HMT (docs/hmt.md 4) */

enum { HMT_D = 2048, HMT_H = 2048, HMT_S = FLX_EMU_HMT_SLOTS };

/* The memory state of a segment: slots < n_filled hold M (|x| < 1, like
 * hidden rows) and K = Wk M; the rest is zero, as after reset. */
static void hmt_state(gen *g, float *wk, float *mmem, float *kmem, uint8_t *mask, int n_filled,
                      const flx_emu_fp *fp)
{
    for (size_t i = 0; i < (size_t)HMT_H * HMT_D; i++) wk[i] = rf(g, -1.0f / 2048, 1.0f / 2048);
    memset(mmem, 0, (size_t)HMT_S * HMT_D * 4);
    memset(kmem, 0, (size_t)HMT_S * HMT_H * 4);
    for (int k = 0; k < HMT_S; k++) {
        mask[k] = k < n_filled;
        if (!mask[k]) continue;
        for (int i = 0; i < HMT_D; i++) mmem[(size_t)k * HMT_D + i] = rf(g, -4, 4);
        flx_emu_hmt_key(kmem + (size_t)k * HMT_H, mmem + (size_t)k * HMT_D, wk, HMT_D, HMT_H, fp);
    }
}

/* recall of segment n: returns the mask as int32 and the outputs */
static void hmt_recall_emit(sink *s, gen *g, const flx_emu_fp *fp, const float *mmem, const float *kmem,
                            const uint8_t *mask, int masked)
{
    float *wq = galloc(g, (size_t)HMT_H * HMT_D * 4), *x = galloc(g, HMT_D * 4), *q = galloc(g, HMT_H * 4);
    float *p = galloc(g, HMT_D * 4), *mt = galloc(g, (size_t)HMT_S * HMT_D * 4), sc[HMT_S];
    if (gen_oom(s, g)) return;
    int32_t m32[HMT_S];
    for (size_t i = 0; i < (size_t)HMT_H * HMT_D; i++) wq[i] = rf(g, -1.0f / 2048, 1.0f / 2048);
    for (int i = 0; i < HMT_D; i++) x[i] = rf(g, -4, 4);
    for (int o = 0; o < HMT_D; o++)
        for (int k = 0; k < HMT_S; k++) mt[(size_t)o * HMT_S + k] = mmem[(size_t)k * HMT_D + o];
    for (int k = 0; k < HMT_S; k++) m32[k] = mask[k];
    flx_emu_hmt_recall(p, q, sc, x, wq, kmem, mt, masked ? mask : NULL, HMT_D, HMT_H, HMT_S, fp);
    emit(s, "s", "input", DT_F4, 1, SH(HMT_D), x, "block-partitioned B=4 (Sn, the stage-0 summary row)", 4, NULL);
    emit(s, "wq", "param", DT_F4, 2, SH(HMT_H, HMT_D), wq, "row-major [h][d]", 0, NULL);
    emit(s, "mmem", "input", DT_F4, 2, SH(HMT_S, HMT_D), mmem, "slot-major [64][d]", 0, NULL);
    emit(s, "kmem", "input", DT_F4, 2, SH(HMT_S, HMT_H), kmem, "slot-major [64][h]", 0, NULL);
    emit(s, "filled", "input", DT_I4, 1, SH(HMT_S), m32, "1 = slot written (masked when 0)", 0, NULL);
    emit(s, "q", "output", DT_F4, 1, SH(HMT_H), q, "natural order (Qn = Wq Sn)", 0, NULL);
    emit(s, "a", "output", DT_F4, 1, SH(HMT_S), sc, "block-partitioned B=4 (An' softmax)", 4, NULL);
    emit(s, "p", "output", DT_F4, 1, SH(HMT_D), p, "block-partitioned B=4 (Pn)", 4, NULL);
}

static void hmt_common(cJSON *tp, const char *fn)
{
    cJSON_AddStringToObject(tp, "function", fn);
    cJSON_AddStringToObject(tp, "template", "d=2048, h=2048, MEM_NUM=64 slots, dec_Linear_Layer_fp32xfp32<B=4,W=8>, "
                            "dec_Softmax<B=4> scale=sqrt(h)=45.254833f");
}

/* retrieval at segment 37: 37 slots filled, empty slots masked (intended) */
static void k_hmt_recall(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    hmt_common(tp, "HMT retrieval: Qn = Wq Sn, An = Kmem Qn, masked dec_Softmax, Pn = Mmem^T An' (docs/hmt.md 4)");
    float *wk = galloc(g, (size_t)HMT_H * HMT_D * 4), *mmem = galloc(g, (size_t)HMT_S * HMT_D * 4);
    float *kmem = galloc(g, (size_t)HMT_S * HMT_H * 4);
    if (gen_oom(s, g)) return;
    uint8_t mask[HMT_S];
    hmt_state(g, wk, mmem, kmem, mask, 37, fp);
    hmt_recall_emit(s, g, fp, mmem, kmem, mask, 1);
}

/* memory update of segment 100: Kn = Wk Mn into ring slot 100 mod 64 = 36 */
static void k_hmt_update(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    hmt_common(tp, "HMT memory update: Kn = Wk Mn; Mmem[n mod 64] = Mn, Kmem[n mod 64] = Kn (docs/hmt.md 4)");
    float *wk = galloc(g, (size_t)HMT_H * HMT_D * 4), *mmem = galloc(g, (size_t)HMT_S * HMT_D * 4);
    float *kmem = galloc(g, (size_t)HMT_S * HMT_H * 4), *m = galloc(g, HMT_D * 4), *k = galloc(g, HMT_H * 4);
    float *mo = galloc(g, (size_t)HMT_S * HMT_D * 4), *ko = galloc(g, (size_t)HMT_S * HMT_H * 4);
    if (gen_oom(s, g)) return;
    uint8_t mask[HMT_S];
    hmt_state(g, wk, mmem, kmem, mask, HMT_S, fp);
    const int32_t seg = 100, slot = seg % HMT_S;
    for (int i = 0; i < HMT_D; i++) m[i] = rf(g, -4, 4);
    flx_emu_hmt_key(k, m, wk, HMT_D, HMT_H, fp);
    memcpy(mo, mmem, (size_t)HMT_S * HMT_D * 4);
    memcpy(ko, kmem, (size_t)HMT_S * HMT_H * 4);
    memcpy(mo + (size_t)slot * HMT_D, m, HMT_D * 4);
    memcpy(ko + (size_t)slot * HMT_H, k, HMT_H * 4);
    emit(s, "seg", "input", DT_I4, 1, SH(1), &seg, "segment index n", 0, NULL);
    emit(s, "m", "input", DT_F4, 1, SH(HMT_D), m, "block-partitioned B=4 (Mn, the stage-1 memory row)", 4, NULL);
    emit(s, "wk", "param", DT_F4, 2, SH(HMT_H, HMT_D), wk, "row-major [h][d]", 0, NULL);
    emit(s, "mmem_in", "input", DT_F4, 2, SH(HMT_S, HMT_D), mmem, "slot-major [64][d]", 0, NULL);
    emit(s, "kmem_in", "input", DT_F4, 2, SH(HMT_S, HMT_H), kmem, "slot-major [64][h]", 0, NULL);
    emit(s, "k", "output", DT_F4, 1, SH(HMT_H), k, "natural order (Kn)", 0, NULL);
    emit(s, "mmem_out", "output", DT_F4, 2, SH(HMT_S, HMT_D), mo, "slot-major [64][d]", 0, NULL);
    emit(s, "kmem_out", "output", DT_F4, 2, SH(HMT_S, HMT_H), ko, "slot-major [64][h]", 0, NULL);
}

/* one segment step of the HMT unit (--layer hmt): segment 70 with a full
 * ring (slot 6 overwritten by the update): recall from the stage-0 row Sn,
 * then the update from the stage-1 row Mn.  The two prefills are the
 * pipeline's (layer_prefill vectors); here their output rows are inputs. */
static void k_layer_hmt(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    hmt_common(tp, "hmt_segment_loader_sync_template: retrieval + memory update of one segment (docs/hmt.md 4)");
    float *wk = galloc(g, (size_t)HMT_H * HMT_D * 4), *mmem = galloc(g, (size_t)HMT_S * HMT_D * 4);
    float *kmem = galloc(g, (size_t)HMT_S * HMT_H * 4), *m = galloc(g, HMT_D * 4), *k = galloc(g, HMT_H * 4);
    uint8_t mask[HMT_S];
    hmt_state(g, wk, mmem, kmem, mask, HMT_S, fp);
    emit(s, "wk", "param", DT_F4, 2, SH(HMT_H, HMT_D), wk, "row-major [h][d]", 0, NULL);
    hmt_recall_emit(s, g, fp, mmem, kmem, mask, 1);
    const int32_t seg = 70, slot = seg % HMT_S;
    for (int i = 0; i < HMT_D; i++) m[i] = rf(g, -4, 4);
    flx_emu_hmt_key(k, m, wk, HMT_D, HMT_H, fp);
    memcpy(mmem + (size_t)slot * HMT_D, m, HMT_D * 4);
    memcpy(kmem + (size_t)slot * HMT_H, k, HMT_H * 4);
    emit(s, "seg", "input", DT_I4, 1, SH(1), &seg, "segment index n", 0, NULL);
    emit(s, "m", "input", DT_F4, 1, SH(HMT_D), m, "block-partitioned B=4 (Mn)", 4, NULL);
    emit(s, "k", "output", DT_F4, 1, SH(HMT_H), k, "natural order (Kn)", 0, NULL);
    emit(s, "mmem_out", "output", DT_F4, 2, SH(HMT_S, HMT_D), mmem, "slot-major [64][d]", 0, NULL);
    emit(s, "kmem_out", "output", DT_F4, 2, SH(HMT_S, HMT_H), kmem, "slot-major [64][h]", 0, NULL);
}

/* ---------------------------------------------- HMT segment steps, tiny shape */

/* Whole segment steps through the real flow (flx_hmt_context on the
 * emulator's backbone and ring), at a tiny shape so that a testbench can
 * hold every stage: the backbone and the ring are wrapped by a spy that
 * keeps the recorded segments' loader rows, prefill outputs, recall, update
 * and ring.  The context has 72 segments; recorded are 0 .. 3 (the start:
 * initial memory, first recalls) and 70, 71 (a full, wrapping ring: slot 6
 * overwritten; 71 is the last segment: no trailing P, no update). */
enum { HS_D = 64, HS_H = 32, HS_V = 64, HS_LAYERS = 2, HS_SEGLEN = 16, HS_SENS = 4, HS_NSEG = 72,
       HS_ROWS = 16, HS_PAD = 8, HS_S = FLX_EMU_HMT_SLOTS, HS_NREC = 6 };
static const int HS_REC[HS_NREC] = { 0, 1, 2, 3, 70, 71 };

typedef struct {
    float mm[HS_S * HS_D], km[HS_S * HS_H];
    int32_t filled[HS_S];
} hs_ring;

typedef struct {
    int64_t n0, n1;              /* rows of stage 0 (0: none) and stage 1 */
    float x0[HS_ROWS * HS_D], y0[HS_ROWS * HS_D], x1[HS_ROWS * HS_D], y1[HS_ROWS * HS_D];
    float s[HS_D], q[HS_H], a[HS_S], p[HS_D], m[HS_D], k[HS_H];
    int recalled, stored;        /* the retrieval kernels ran; an update happened */
    hs_ring before, after;
} hs_step;

typedef struct {
    flx_hmt_backbone in;
    flx_hmt_memory mem;
    flx_emu_hmt_mem *hm;
    flx_emu_hmt_backbone *eb;
    int64_t cur, runs;           /* segment in progress, backbone runs in it */
    hs_step rec[HS_NREC];
} hmt_spy;

static hs_step *spy_step(hmt_spy *sp, int64_t seg)
{
    for (int i = 0; i < HS_NREC; i++)
        if (HS_REC[i] == seg) return &sp->rec[i];
    return NULL;
}
static void spy_ring(const hmt_spy *sp, hs_ring *r)
{
    memcpy(r->mm, sp->hm->m, sizeof r->mm);
    memcpy(r->km, sp->hm->k, sizeof r->km);
    for (int i = 0; i < HS_S; i++) r->filled[i] = sp->hm->filled[i];
}
static int spy_run(void *ctx, const float *x, int64_t n, flx_error *err)
{
    hmt_spy *sp = ctx;
    int rc = sp->in.run(sp->in.ctx, x, n, err);
    hs_step *st = spy_step(sp, sp->cur);
    if (!rc && st) {
        if (n > HS_ROWS) return flx_fail(err, FLX_EINVAL, "layer_hmt_segment: a run of %lld rows", (long long)n);
        int stage1 = sp->cur == 0 || sp->runs == 1;   /* segment 0 has no stage 0 */
        memcpy(stage1 ? st->x1 : st->x0, x, (size_t)n * HS_D * 4);
        memcpy(stage1 ? st->y1 : st->y0, sp->eb->hidden, (size_t)n * HS_D * 4);   /* last layer's rows */
        *(stage1 ? &st->n1 : &st->n0) = n;
    }
    sp->runs++;
    return rc;
}
static int spy_hidden(void *ctx, int64_t row, int final_norm, float *out, flx_error *err)
{
    hmt_spy *sp = ctx;
    return sp->in.hidden(sp->in.ctx, row, final_norm, out, err);
}
static int spy_logits(void *ctx, int64_t row0, int64_t n, float *out, flx_error *err)
{
    hmt_spy *sp = ctx;
    return sp->in.logits(sp->in.ctx, row0, n, out, err);
}
static void spy_reset(void *ctx)
{
    hmt_spy *sp = ctx;
    sp->mem.reset(sp->mem.ctx);
    sp->cur = sp->runs = 0;
}
static int spy_recall(void *ctx, const float *s, float *out, flx_error *err)
{
    hmt_spy *sp = ctx;
    hs_step *st = spy_step(sp, sp->cur);
    if (st) spy_ring(sp, &st->before);
    int rc = sp->mem.recall(sp->mem.ctx, s, out, err);
    if (!rc && st) {
        for (int i = 0; i < HS_S; i++) st->recalled |= st->before.filled[i];
        memcpy(st->s, s, sizeof st->s);
        memcpy(st->q, sp->hm->q, sizeof st->q);
        memcpy(st->a, sp->hm->scores, sizeof st->a);
        memcpy(st->p, out, sizeof st->p);
        st->after = st->before;   /* unless an update follows */
    }
    return rc;
}
static int spy_store(void *ctx, int64_t seg, const float *m, flx_error *err)
{
    hmt_spy *sp = ctx;
    int rc = sp->mem.store(sp->mem.ctx, seg, m, err);
    hs_step *st = spy_step(sp, seg);
    if (!rc && st) {
        memcpy(st->m, m, sizeof st->m);
        memcpy(st->k, sp->hm->k + (seg % HS_S) * HS_H, sizeof st->k);
        spy_ring(sp, &st->after);
        st->stored = 1;
    }
    sp->cur = seg + 1;
    sp->runs = 0;
    return rc;
}

/* one recorded step's tensors, named s<n>_* */
static void emit_step(sink *s, const hs_step *st, int n, int emit_ring_before)
{
    char nm[32];
    const int64_t r0 = (st->n0 + HS_PAD - 1) / HS_PAD * HS_PAD, r1 = (st->n1 + HS_PAD - 1) / HS_PAD * HS_PAD;
    float x[HS_ROWS * HS_D];
    const char *nat = "row-major [rows][d]", *bp = "block-partitioned B=4";
#define NM(x) (snprintf(nm, sizeof nm, "s%d_%s", n, x), nm)
    if (emit_ring_before) {
        emit(s, NM("mmem_in"), "input", DT_F4, 2, SH(HS_S, HS_D), st->before.mm, "slot-major [64][d]", 0,
             "the ring before this segment: slot j holds M of the newest segment = j mod 64");
        emit(s, NM("kmem_in"), "input", DT_F4, 2, SH(HS_S, HS_H), st->before.km, "slot-major [64][h]", 0, NULL);
        emit(s, NM("filled_in"), "input", DT_I4, 1, SH(HS_S), st->before.filled, "1 = slot written", 0, NULL);
    }
    if (st->n0) {
        memset(x, 0, sizeof x);
        memcpy(x, st->x0, (size_t)st->n0 * HS_D * 4);
        emit(s, NM("x0"), "output", DT_F4, 2, SH(r0, HS_D), x, nat, 0,
             "stage-0 loader: pref_io region 0 = [T, first min(len, 5) tokens, T], zero rows to a multiple of 8");
        emit(s, NM("y0"), "output", DT_F4, 2, SH(st->n0, HS_D), st->y0, nat, 0,
             "stage-0 prefill: last layer's output of the real rows (padding rows do not change them)");
        emit(s, NM("s"), "output", DT_F4, 1, SH(HS_D), st->s, bp, 4, "Sn = the row of the second T in y0");
    }
    if (st->recalled) {
        emit(s, NM("q"), "output", DT_F4, 1, SH(HS_H), st->q, bp, 4, "Qn = Wq Sn");
        emit(s, NM("a"), "output", DT_F4, 1, SH(HS_S), st->a, bp, 4, "An' (softmax over the slots)");
    }
    emit(s, NM("p"), "output", DT_F4, 1, SH(HS_D), st->p, bp, 4,
         st->recalled ? "Pn = Mmem^T An'" : "Pn = memory_cell.memory (nothing cached yet)");
    memset(x, 0, sizeof x);
    memcpy(x, st->x1, (size_t)st->n1 * HS_D * 4);
    emit(s, NM("x1"), "output", DT_F4, 2, SH(r1, HS_D), x, nat, 0,
         "stage-1 loader: [Pn, last 4 tokens of segment n-1 (none for n = 0), the tokens, Pn (not for the "
         "last segment)], zero rows to a multiple of 8");
    emit(s, NM("y1"), "output", DT_F4, 2, SH(st->n1, HS_D), st->y1, nat, 0, "stage-1 prefill: last layer's output");
    if (st->stored) {
        emit(s, NM("m"), "output", DT_F4, 1, SH(HS_D), st->m, bp, 4, "Mn = the trailing Pn's row of y1");
        emit(s, NM("k"), "output", DT_F4, 1, SH(HS_H), st->k, bp, 4, "Kn = Wk Mn");
    }
    emit(s, NM("mmem_out"), "output", DT_F4, 2, SH(HS_S, HS_D), st->after.mm, "slot-major [64][d]", 0,
         st->stored ? "the ring after the update (slot n mod 64 = Mn)" : "unchanged (the last segment stores nothing)");
    emit(s, NM("kmem_out"), "output", DT_F4, 2, SH(HS_S, HS_H), st->after.km, "slot-major [64][h]", 0, NULL);
    emit(s, NM("filled_out"), "output", DT_I4, 1, SH(HS_S), st->after.filled, "1 = slot written", 0, NULL);
#undef NM
}

static void k_hmt_segment(sink *s, gen *g, const flx_emu_fp *fp, cJSON *tp)
{
    static const lm_shape tiny = { HS_D, 4, 2, 16, 128 };
    cJSON_AddStringToObject(tp, "function", "hmt_segment_loader_sync_template: whole segment steps of a 72-segment "
                            "context: segments 0..3 from reset (run in order, state carried) and 70, 71 from the "
                            "recorded ring before 70 (full, slot 6 overwritten; 71 the last segment); stage-0 "
                            "loader, stage-0 prefill, retrieval, stage-1 loader, stage-1 prefill, memory update "
                            "(docs/hmt.md 4, 8)");
    cJSON_AddStringToObject(tp, "template", "tiny shape: d=64, h=32, 2 layers (4 heads x 16, 2 KV heads, "
                            "I=128, random INT4, gamma all ones, RoPE base 10000), vocabulary 64; segment_length "
                            "16 = 1 + 4 sensory + L=10 + 1, summary 5, MEM_NUM=64, stages padded to 8 rows; "
                            "dec_Linear_Layer_fp32xfp32<B=4,W=8>, dec_Softmax<B=4> scale=sqrt(h)=5.656854f; "
                            "FlexLLM as intended: empty slots masked, P0 = memory_cell.memory, Sn/Mn from the "
                            "last layer without the final norm");
    cJSON_AddStringToObject(tp, "reference_call", "hmt_io row 0 = T, row 1 + i = embedding of token i; segment n "
                            "starts at row 1 + 10 n; tensors of segment n are named s<n>_*");
    layer_model lm;
    flx_emu_engine e;
    flx_emu_hmt_backbone eb;
    flx_emu_hmt_mem hm;
    flx_hmt_params hp;
    memset(&lm, 0, sizeof lm);
    memset(&eb, 0, sizeof eb);
    memset(&hm, 0, sizeof hm);
    memset(&hp, 0, sizeof hp);
    int e_open = 0;
    hmt_spy *sp = calloc(1, sizeof *sp);
    int32_t *tok = NULL;
    float *io = NULL;
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    o.fp = *fp;
    o.reference_quirks = 1;   /* the shipped base-10000 RoPE table, this model's own base; the
                                 engine's other quirks are decode-only; HMT quirks stay off */
    flx_hmt_settings st;
    flx_hmt_settings_unset(&st);
    st.segment_length = HS_SEGLEN;
    st.n_sensory = HS_SENS;
    st.cache_size = HS_S;
    if (!sp || lm_build_shape(&lm, g, HS_V, HS_LAYERS, &tiny)) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_hmt_segment: out of memory");
        goto done;
    }
    if ((s->rc = flx_hmt_synth(&hp, HS_D, HS_H, &st, flx_rng_u64(&g->rng), s->err))) goto done;
    const int64_t L = hp.seg_len, n_tok = HS_NSEG * L;   /* L = 16 - 2 - 4 = 10 */
    if (!(tok = calloc(1, (size_t)n_tok * sizeof *tok)) || !(io = calloc(1, (size_t)(1 + n_tok) * HS_D * 4))) {
        s->rc = flx_fail(s->err, FLX_ENOMEM, "layer_hmt_segment: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_tok; i++) tok[i] = ri(g, 0, HS_V - 1);
    if ((s->rc = flx_emu_engine_init(&e, &lm.qm, &o, HS_ROWS, s->err))) goto done;
    e_open = 1;
    if ((s->rc = flx_emu_hmt_backbone_init(&eb, &e, HS_ROWS, NULL, s->err)) ||
        (s->rc = flx_emu_hmt_mem_init(&hm, &hp, fp, 0, s->err)))
        goto done;
    sp->in = flx_emu_hmt_backbone_ops(&eb);
    sp->mem = flx_emu_hmt_mem_ops(&hm);
    sp->hm = &hm;
    sp->eb = &eb;
    flx_hmt_backbone bb = sp->in;
    bb.ctx = sp; bb.run = spy_run; bb.hidden = spy_hidden; bb.logits = spy_logits;
    flx_hmt_memory mem = { sp, spy_reset, spy_recall, spy_store };
    flx_hmt_flow flow = flx_emu_hmt_flow(0, 0);
    if ((s->rc = flx_hmt_context(&hp, &flow, &bb, &mem, tok, n_tok, NULL, NULL, NULL, s->err))) goto done;
    for (int r = 0; r < HS_NREC; r++) {
        const hs_step *x = &sp->rec[r];
        int n = HS_REC[r], last = n == HS_NSEG - 1;
        if (x->n1 != (n ? HS_ROWS - last : 2 + L) || x->n0 != (n ? hp.sum_len + 2 : 0) || x->stored == last ||
            x->recalled != (n > 0)) {
            s->rc = flx_fail(s->err, FLX_EFORMAT, "layer_hmt_segment: the flow did not run segment %d as expected", n);
            goto done;
        }
    }
    {
        int32_t meta[4] = { HS_NSEG, (int32_t)L, HS_REC[4], HS_NSEG - 1 };
        memcpy(io, hp.mem, HS_D * 4);
        for (int64_t i = 0; i < n_tok; i++)
            memcpy(io + (1 + i) * HS_D, lm.qm.tok_embd + (size_t)tok[i] * HS_D, HS_D * 4);
        emit(s, "context", "input", DT_I4, 1, SH(4), meta, "segments, L, the second run's first segment, the last segment", 0, NULL);
        emit(s, "tokens", "input", DT_I4, 1, SH(n_tok), tok, "token ids of the context", 0, NULL);
        emit(s, "hmt_io", "input", DT_F4, 2, SH(1 + n_tok, HS_D), io, "row-major [rows][d]", 0,
             "hmt_io_mmap: row 0 = T (mem), row 1 + i = embedding of tokens[i]");
        emit(s, "init_mem", "param", DT_F4, 1, SH(HS_D), hp.init_mem, "natural order", 0, "memory_cell.memory: P of segment 0");
        emit(s, "wq", "param", DT_F4, 2, SH(HS_H, HS_D), hp.wq, "row-major [h][d]", 0, NULL);
        emit(s, "wk", "param", DT_F4, 2, SH(HS_H, HS_D), hp.wk, "row-major [h][d]", 0, NULL);
        for (int r = 0; r < HS_NREC; r++) emit_step(s, &sp->rec[r], HS_REC[r], HS_REC[r] == HS_REC[4]);
        /* the backbone, for a testbench that runs the two prefills itself */
        for (int l = 0; l < HS_LAYERS; l++) {
            char pre[8];
            snprintf(pre, sizeof pre, "L%d_", l);
            emit_weights_p(s, &lm.L[l], pre);
        }
        const int64_t half = tiny.head_dim / 2;
        emit(s, "rope_sin", "param", DT_F4, 2, SH(HS_ROWS, half), e.rope_sin, "[position][head_dim/2]", 0,
             "positions 0..15 of the emulator's table");
        emit(s, "rope_cos", "param", DT_F4, 2, SH(HS_ROWS, half), e.rope_cos, "[position][head_dim/2]", 0, NULL);
    }
done:
    flx_emu_hmt_mem_free(&hm);
    flx_emu_hmt_backbone_free(&eb);
    if (e_open) flx_emu_engine_free(&e);
    flx_hmt_free(&hp);
    lm_free(&lm);
    free(sp);
    free(tok);
    free(io);
}

typedef void (*gen_fn)(sink *, gen *, const flx_emu_fp *, cJSON *);
/* name: the kernel's one name (docs/kernels.md §17); old: the name it had
 * before, still accepted by --kernel and in manifests, and the name whose
 * hash seeds its random stream, so that renaming changed no vector. */
static const struct { const char *name; gen_fn fn; const char *old; } KERNELS[] = {
    { "quant_asym_pref", k_quant_asym_pref, NULL },
    { "quant_asym_dec", k_quant_asym_dec, NULL },
    { "dequant_pref", k_dequant_pref, NULL },
    { "gemm_i4_pref", k_gemm_i4_pref, NULL },
    { "gemm_i4_dec", k_gemm_i4_dec, "gemv_i4_dec" },
    { "quant_static_q", k_quant_static_q, NULL },
    { "quant_static_p", k_quant_static_p, NULL },
    { "dequant_static_pref", k_dequant_static_pref, "dequant_static" },
    { "qk_i8_pref", k_qk_i8_pref, "qk_i8" },
    { "av_u8i8_pref", k_av_u8i8_pref, "av_u8i8" },
    { "softmax_pref", k_softmax_pref, NULL },
    { "softmax_dec", k_softmax_dec, NULL },
    { "softmax_block", k_softmax_block, NULL },
    { "rmsnorm_pref", k_rmsnorm_pref, NULL },
    { "rmsnorm_dec", k_rmsnorm_dec, NULL },
    { "rope_pref", k_rope_pref, "rope" },
    { "silu_gate_dec", k_silu_gate_dec, "silu_gate" },
    { "residual_dec", k_residual_dec, "residual" },
    { "fht_dec", k_fht_dec, "fht" },
    { "topk_sampling", k_topk_sampling, NULL },
    { "gemv_f32_dec", k_gemv_f32_dec, "gemv_f32" },
    { "exp", k_exp, NULL },
    { "hmt_recall", k_hmt_recall, NULL },
    { "hmt_update", k_hmt_update, NULL },
    { "dequant_dec", k_dequant_dec, NULL },
    { "dequant_dec_plain", k_dequant_dec_plain, NULL },
    { "quant_static_dec", k_quant_static_dec, NULL },
    { "dequant_static_dec", k_dequant_static_dec, NULL },
    { "qk_i8_dec", k_qk_i8_dec, NULL },
    { "av_u8i8_dec", k_av_u8i8_dec, NULL },
    { "silu_gate_pref", k_silu_gate_pref, NULL },
    { "residual_pref", k_residual_pref, NULL },
    /* whole layers: requested with --layer, never part of "all" */
    { "layer_prefill", k_layer_prefill, NULL },
    { "layer_decode", k_layer_decode, NULL },
    { "layer_hmt", k_layer_hmt, NULL },
    { "model_decode", k_model_decode, NULL },
    { "layer_hmt_segment", k_hmt_segment, NULL },
};
enum { N_LAYER_ENTRIES = 5 };

/* layer entries written together with another (`--layer hmt` writes
 * layer_hmt and layer_hmt_segment) */
static int written_with(const char *name, const char *what)
{
    return !strcmp(name, "layer_hmt_segment") && !strcmp(what, "layer_hmt");
}
enum { N_KERNELS = sizeof KERNELS / sizeof KERNELS[0] };

const char *flx_emu_golden_kernel_name(int i)
{
    return (i >= 0 && i < N_KERNELS - N_LAYER_ENTRIES) ? KERNELS[i].name : NULL;
}

static int find_kernel(const char *name)
{
    for (int i = 0; i < N_KERNELS; i++)
        if (!strcmp(KERNELS[i].name, name) || (KERNELS[i].old && !strcmp(KERNELS[i].old, name)))
            return i;
    return -1;
}

const char *flx_emu_golden_kernel_find(const char *name)
{
    int i = find_kernel(name);
    return i >= 0 && i < N_KERNELS - N_LAYER_ENTRIES ? KERNELS[i].name : NULL;
}

/* the name whose hash seeds kernel i's stream */
static const char *seed_name(int i) { return KERNELS[i].old ? KERNELS[i].old : KERNELS[i].name; }

/* a kernel's own stream: seed mixed with its name, so a kernel's vectors do
 * not depend on which other kernels were requested */
static void gen_seed(gen *g, uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    flx_rng_seed(&g->rng, seed ^ h);
}

/* kernel i on its own stream; its buffers are freed when it returns */
static void run_generator(sink *s, int i, uint64_t seed, const flx_emu_fp *fp, cJSON *tp)
{
    gen g;
    memset(&g, 0, sizeof g);
    gen_seed(&g, seed, seed_name(i));
    KERNELS[i].fn(s, &g, fp, tp);
    gen_free(&g);
}

static int make_dir(const char *path, flx_error *err)
{
    if (flx_is_dir(path)) return FLX_OK;
    if (mkdir(path, 0777) != 0)
        return flx_fail(err, FLX_EIO, "%s: cannot create folder: %s", path, strerror(errno));
    return FLX_OK;
}

/* the manifest's fields before the kernel list; NULL when out of memory */
static cJSON *manifest_header(const char *config, const flx_emu_golden_opts *o)
{
    cJSON *man = cJSON_CreateObject();
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)o->seed);
    int ok = man && cJSON_AddStringToObject(man, "tool", "flxemu golden") &&
             cJSON_AddStringToObject(man, "config", config) &&
             cJSON_AddNumberToObject(man, "seed", (double)o->seed) &&
             cJSON_AddStringToObject(man, "seed_exact", seed_s) &&
             cJSON_AddStringToObject(man, "exp", flx_emu_exp_name(o->fp.exp)) &&
             cJSON_AddBoolToObject(man, "ftz", o->fp.ftz != 0) &&
             cJSON_AddBoolToObject(man, "gzip", o->gzip != 0) &&
             cJSON_AddStringToObject(man, "npy", "v1.0; uint4 activations as bytes 0..15, uint8 P as "
                                     "bytes (same bits as the ap_int<8> stream); NAME.stream files list "
                                     "the beats (rows) and lanes (columns) an HLS testbench reads");
    if (!ok) {
        cJSON_Delete(man);
        return NULL;
    }
    return man;
}

int flx_emu_golden_write(const char *dir, const char *what, const char *config,
                         const flx_emu_golden_opts *o, flx_error *err)
{
    if (strcmp(config, "u280"))
        return flx_fail(err, FLX_EINVAL, "golden: unknown config '%s' (known: u280)", config);
    int all = !strcmp(what, "all");
    int idx = all ? -1 : find_kernel(what);
    if (!all && idx < 0)
        return flx_fail(err, FLX_EINVAL, "golden: unknown kernel '%s'", what);
    int rc = make_dir(dir, err);
    if (rc) return rc;
    cJSON *man = manifest_header(config, o);
    cJSON *ks = man ? cJSON_AddArrayToObject(man, "kernels") : NULL;
    sink s = { 0, dir, o->gzip, NULL, NULL, err, FLX_OK, 0, o->pos0, o->n_tokens };
    if (!ks) s.rc = flx_fail(err, FLX_ENOMEM, "golden: out of memory");
    for (int i = 0; i < N_KERNELS && !s.rc; i++) {
        if (all ? i >= N_KERNELS - N_LAYER_ENTRIES : (i != idx && !written_with(KERNELS[i].name, what)))
            continue;
        char *kdir = flx_path_join(dir, KERNELS[i].name);
        s.rc = kdir ? make_dir(kdir, err) : flx_fail(err, FLX_ENOMEM, "golden: out of memory");
        free(kdir);
        if (s.rc) break;
        cJSON *k = cJSON_CreateObject();
        cJSON *tp = cJSON_AddObjectToObject(k, "reference");
        s.kernel = KERNELS[i].name;
        s.files = cJSON_AddArrayToObject(k, "files");
        if (!tp || !s.files || !cJSON_AddStringToObject(k, "kernel", KERNELS[i].name) ||
            !cJSON_AddItemToArray(ks, k)) {
            cJSON_Delete(k);
            s.rc = flx_fail(err, FLX_ENOMEM, "golden %s: out of memory", KERNELS[i].name);
            break;
        }
        run_generator(&s, i, o->seed, &o->fp, tp);
    }
    if (!s.rc) {
        char *text = cJSON_Print(man);
        char *mpath = flx_path_join(dir, "manifest.json");
        flx_outfile f;
        s.rc = text && mpath ? flx_outfile_open(&f, mpath, err) : flx_fail(err, FLX_ENOMEM, "manifest: out of memory");
        if (!s.rc) {
            size_t n = strlen(text);
            if (fwrite(text, 1, n, f.fp) != n || fputc('\n', f.fp) == EOF) {
                flx_outfile_abort(&f);
                s.rc = flx_fail(err, FLX_EIO, "%s: write failed", mpath);
            } else {
                s.rc = flx_outfile_commit(&f, err);
            }
        }
        free(text);
        free(mpath);
    }
    cJSON_Delete(man);
    return s.rc;
}

/* the manifest's run settings; 0, or -1 when a field is missing or wrong */
static int manifest_opts(const cJSON *man, flx_emu_golden_opts *o)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(man, "config");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(man, "seed_exact");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(man, "exp");
    const cJSON *ftz = cJSON_GetObjectItemCaseSensitive(man, "ftz");
    const cJSON *gz = cJSON_GetObjectItemCaseSensitive(man, "gzip");
    memset(o, 0, sizeof *o);
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(man, "kernels")) || !cJSON_IsString(cfg) ||
        !cJSON_IsString(seed) || !cJSON_IsString(ex) || !cJSON_IsBool(ftz) || !cJSON_IsBool(gz) ||
        flx_emu_exp_parse(ex->valuestring, &o->fp.exp) || strcmp(cfg->valuestring, "u280"))
        return -1;
    o->seed = strtoull(seed->valuestring, NULL, 10);
    o->fp.ftz = cJSON_IsTrue(ftz);
    o->gzip = cJSON_IsTrue(gz);
    return 0;
}

/* one file entry of kernel `kernel` against its CRC32 */
static int check_crc(const char *dir, const char *mpath, const char *kernel, const cJSON *f, flx_error *err)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "file");
    const cJSON *crc = cJSON_GetObjectItemCaseSensitive(f, "crc32");
    if (!cJSON_IsString(fn) || !cJSON_IsString(crc))
        return flx_fail(err, FLX_EFORMAT, "%s: kernel %s: malformed file entry", mpath, kernel);
    const char *name = fn->valuestring;
    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return flx_fail(err, FLX_EFORMAT, "%s: kernel %s: file entry '%s' is not a file name in the "
                        "kernel's folder", mpath, kernel, name);
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", kernel, name);
    char *p = flx_path_join(dir, rel);
    char *data = NULL;
    size_t len = 0;
    int rc = p ? flx_read_file(p, (size_t)1 << 30, &data, &len, err)
               : flx_fail(err, FLX_ENOMEM, "golden check: out of memory");
    if (!rc) {
        char have[16];
        snprintf(have, sizeof have, "%08x", (unsigned)flx_crc32(0, data, len));
        if (strcmp(have, crc->valuestring))
            rc = flx_fail(err, FLX_EFORMAT, "%s: CRC32 %s does not match the manifest's %s (file "
                          "corrupted or edited)", p, have, crc->valuestring);
    }
    free(data);
    free(p);
    return rc;
}

/* step 1: every listed file against its CRC32; *count = files listed */
static int check_crcs(const char *dir, const char *mpath, const cJSON *ks, int64_t *count, flx_error *err)
{
    const cJSON *k;
    *count = 0;
    cJSON_ArrayForEach(k, ks) {
        const cJSON *kn = cJSON_GetObjectItemCaseSensitive(k, "kernel");
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(k, "files");
        if (!cJSON_IsString(kn) || !cJSON_IsArray(fs) || find_kernel(kn->valuestring) < 0)
            return flx_fail(err, FLX_EFORMAT, "%s: kernel entry %lld is malformed or unknown", mpath,
                            (long long)*count);
        const cJSON *f;
        cJSON_ArrayForEach(f, fs) {
            int rc = check_crc(dir, mpath, kn->valuestring, f, err);
            ++*count;
            if (rc) return rc;
        }
    }
    return FLX_OK;
}

/* a whole number of a manifest's call: 0 when absent, -1 when not a whole
 * number in 0 .. 2^20 (the generator then refuses the call by name) */
static int64_t call_number(const cJSON *v)
{
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1048576.0)) return -1;
    int64_t n = (int64_t)v->valuedouble;
    return (double)n == v->valuedouble ? n : -1;
}

/* a layer entry's call (reference.call: pos0, tokens); 0, 0 when absent */
static void manifest_call(const cJSON *k, int64_t *pos0, int64_t *n_tokens)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(k, "reference");
    const cJSON *call = ref ? cJSON_GetObjectItemCaseSensitive(ref, "call") : NULL;
    const cJSON *p = call ? cJSON_GetObjectItemCaseSensitive(call, "pos0") : NULL;
    const cJSON *t = call ? cJSON_GetObjectItemCaseSensitive(call, "tokens") : NULL;
    *pos0 = call_number(p);
    *n_tokens = call_number(t);
}

/* step 2: every listed kernel re-run and its files compared */
static int check_contents(const char *dir, const char *mpath, const cJSON *ks, const flx_emu_golden_opts *o,
                          int64_t count, flx_error *err)
{
    sink s = { 1, dir, o->gzip, NULL, NULL, err, FLX_OK, 0, 0, 0 };
    const cJSON *k;
    cJSON_ArrayForEach(k, ks) {
        const char *name = cJSON_GetObjectItemCaseSensitive(k, "kernel")->valuestring;
        cJSON *tp = cJSON_CreateObject();
        s.kernel = name;          /* the folder as the manifest names it (a former name too) */
        manifest_call(k, &s.pos0, &s.n_tokens);
        run_generator(&s, find_kernel(name), o->seed, &o->fp, tp);
        cJSON_Delete(tp);
        if (s.rc) return s.rc;
    }
    if (s.n_files != count)
        return flx_fail(err, FLX_EFORMAT, "%s: lists %lld files, the emulator produces %lld", mpath,
                        (long long)count, (long long)s.n_files);
    return FLX_OK;
}

int flx_emu_golden_check(const char *dir, int64_t *n_files, flx_error *err)
{
    char *mpath = flx_path_join(dir, "manifest.json");
    char *text = NULL;
    size_t n = 0;
    if (!mpath) return flx_fail(err, FLX_ENOMEM, "golden check: out of memory");
    int rc = flx_read_file(mpath, (size_t)64 << 20, &text, &n, err);
    if (!rc) rc = flx_json_budget(text, n, (size_t)1 << 20, mpath, err);
    cJSON *man = rc ? NULL : cJSON_Parse(text);
    free(text);
    flx_emu_golden_opts o;
    int64_t count = 0;
    if (!rc && (!man || manifest_opts(man, &o)))
        rc = flx_fail(err, FLX_EFORMAT, "%s: not a golden-vector manifest (needs kernels, config "
                      "u280, seed_exact, exp, ftz, gzip)", mpath);
    const cJSON *ks = man ? cJSON_GetObjectItemCaseSensitive(man, "kernels") : NULL;
    if (!rc) rc = check_crcs(dir, mpath, ks, &count, err);
    if (!rc) rc = check_contents(dir, mpath, ks, &o, count, err);
    if (n_files) *n_files = count;
    cJSON_Delete(man);
    free(mpath);
    return rc;
}
