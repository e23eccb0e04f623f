/* rotate.c -- SpinQuant rotations of an flx_model: RMSNorm folding, head
 * untying, offline merges of R1, R2 and R4^-1 (double-precision products,
 * rounded once to float), the online R3/R4 ops, and rotation files. */
#include "flx_rotate.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- rotation sets */

void flx_rotset_free(flx_rotation_set *rs)
{
    if (!rs) return;
    free(rs->r1);
    free(rs->r1_signs);
    free(rs->r2);
    free(rs->r4_dense);
    memset(rs, 0, sizeof *rs);
}

/* Shapes, online flags, and the dense R4 (non-power-of-two d_ff), common
 * to generated and loaded sets.  The dense R4 comes from seed ^ a constant
 * so that it does not depend on how R1/R2 were obtained. */
static int rotset_init(flx_rotation_set *rs, const flx_llama_config *cfg, flx_rot_kind kind,
                       int r3, int r4, uint64_t seed, flx_error *err)
{
    memset(rs, 0, sizeof *rs);
    rs->d_model = cfg->d_model;
    rs->head_dim = cfg->head_dim;
    rs->n_layers = cfg->n_layers;
    rs->d_ff = cfg->d_ff;
    rs->kind = kind;
    rs->r3 = r3 != 0;
    rs->r4 = r4 != 0;
    rs->r3_divisor = flx_fht_norm_divisor(cfg->head_dim);
    rs->r4_divisor = flx_fht_norm_divisor(cfg->d_ff);
    if (rs->r3 && !flx_is_pow2(cfg->head_dim))
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "R3 (online Hadamard on Q/K) needs a power-of-two head_dim; this model has %d",
                        (int)cfg->head_dim);
    if (rs->r4 && !flx_is_pow2(cfg->d_ff)) {
        if (cfg->d_ff > 16384)
            return flx_fail(err, FLX_EUNSUPPORTED,
                            "R4: intermediate_size %d is not a power of two and too large for a dense rotation",
                            (int)cfg->d_ff);
        size_t n = (size_t)cfg->d_ff * (size_t)cfg->d_ff;
        rs->r4_dense = malloc(n * sizeof(float));
        if (!rs->r4_dense) return flx_fail(err, FLX_ENOMEM, "R4: out of memory");
        int rc = flx_random_orthogonal(rs->r4_dense, cfg->d_ff, seed ^ 0x5234a4d3c0ffee11ULL, err);
        if (rc) return rc;
    }
    return FLX_OK;
}

int flx_rotset_generate(flx_rotation_set *rs, const flx_llama_config *cfg, flx_rot_kind kind,
                        int r3, int r4, uint64_t seed, flx_error *err)
{
    int rc = rotset_init(rs, cfg, kind, r3, r4, seed, err);
    if (rc) goto fail;
    if (kind == FLX_ROT_NONE) return FLX_OK;
    if (kind != FLX_ROT_HADAMARD && kind != FLX_ROT_RANDOM) {
        rc = flx_fail(err, FLX_EINVAL, "rotation kind %d cannot be generated (use hadamard or random)", (int)kind);
        goto fail;
    }
    if (kind == FLX_ROT_HADAMARD && (!flx_is_pow2(cfg->d_model) || !flx_is_pow2(cfg->head_dim))) {
        rc = flx_fail(err, FLX_EUNSUPPORTED,
                      "hadamard rotation needs power-of-two hidden_size and head_dim (model: %d, %d); use random",
                      (int)cfg->d_model, (int)cfg->head_dim);
        goto fail;
    }
    const size_t d = (size_t)cfg->d_model, hd = (size_t)cfg->head_dim;
    rs->r1 = malloc(d * d * sizeof(float));
    rs->r2 = malloc((size_t)cfg->n_layers * hd * hd * sizeof(float));
    if (!rs->r1 || !rs->r2) {
        rc = flx_fail(err, FLX_ENOMEM, "rotations: out of memory");
        goto fail;
    }
    /* One seed stream: R1, then R2 of each layer. */
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    for (int32_t l = -1; l < cfg->n_layers; l++) {
        float *dst = l < 0 ? rs->r1 : rs->r2 + (size_t)l * hd * hd;
        int32_t n = l < 0 ? cfg->d_model : cfg->head_dim;
        uint64_t sub = flx_rng_u64(&rng);
        rc = kind == FLX_ROT_HADAMARD ? flx_random_hadamard(dst, n, sub, err)
                                      : flx_random_orthogonal(dst, n, sub, err);
        if (rc) goto fail;
    }
    if (kind == FLX_ROT_HADAMARD) {
        /* H's first column is all +1, so row i of diag(s) H starts with s_i */
        rs->r1_signs = malloc(d * sizeof(float));
        if (!rs->r1_signs) {
            rc = flx_fail(err, FLX_ENOMEM, "rotations: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < d; i++) rs->r1_signs[i] = rs->r1[i * d] > 0.0f ? 1.0f : -1.0f;
    }
    return FLX_OK;
fail:
    flx_rotset_free(rs);
    return rc;
}

/* ---------------------------------------------------------------- rotation files */

/* Little-endian F32 only; the host is little-endian (x86-64/aarch64). */
static int check_matrix(const char *path, const char *name, const float *r, int32_t n, flx_error *err)
{
    for (size_t i = 0; i < (size_t)n * n; i++)
        if (!isfinite(r[i]))
            return flx_fail(err, FLX_ENUMERIC, "%s: tensor %s: element %zu is not finite", path, name, i);
    double e = flx_orthogonality_error(r, n);
    if (!(e <= FLX_ROT_ORTHO_TOL))
        return flx_fail(err, FLX_ENUMERIC,
                        "%s: tensor %s is not orthogonal: max|R^T R - I| = %.3g > %.0e",
                        path, name, e, FLX_ROT_ORTHO_TOL);
    return FLX_OK;
}

int flx_rotset_load(flx_rotation_set *rs, const flx_llama_config *cfg, const char *path,
                    int r3, int r4, uint64_t seed, flx_error *err)
{
    char *buf = NULL;
    size_t bytes = 0;
    cJSON *hdr = NULL;
    char *hjson = NULL;
    int rc = rotset_init(rs, cfg, FLX_ROT_FILE, r3, r4, seed, err);
    if (rc) goto done;
    const size_t d = (size_t)cfg->d_model, hd = (size_t)cfg->head_dim, L = (size_t)cfg->n_layers;
    /* Nothing larger than the expected tensors plus a generous header. */
    size_t max_bytes = (d * d + L * hd * hd) * 4 + ((size_t)1 << 20);
    rc = flx_read_file(path, max_bytes, &buf, &bytes, err);
    if (rc) goto done;
    if (bytes < 8) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: %zu bytes, too short for a safetensors header", path, bytes);
        goto done;
    }
    uint64_t n_hdr = 0;
    memcpy(&n_hdr, buf, 8);
    if (n_hdr > bytes - 8) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header length %llu at offset 0 exceeds the file size %zu",
                      path, (unsigned long long)n_hdr, bytes);
        goto done;
    }
    hjson = malloc((size_t)n_hdr + 1);
    if (!hjson) { rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); goto done; }
    memcpy(hjson, buf + 8, (size_t)n_hdr);
    hjson[n_hdr] = 0;
    hdr = cJSON_Parse(hjson);
    if (!cJSON_IsObject(hdr)) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: the header at offset 8 is not a JSON object", path);
        goto done;
    }
    const char *data = buf + 8 + n_hdr;
    const size_t data_bytes = bytes - 8 - (size_t)n_hdr;
    rs->r1 = malloc(d * d * sizeof(float));
    rs->r2 = malloc(L * hd * hd * sizeof(float));
    unsigned char *seen = calloc(L + 1, 1);
    if (!rs->r1 || !rs->r2 || !seen) {
        free(seen);
        rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t n_r2 = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, hdr) {
        const char *name = t->string;
        if (strcmp(name, "__metadata__") == 0) continue;
        /* R4 as written by flx_rotset_save: informational, never loaded
         * (R4 is FlexLLM's FHT, or the seeded dense matrix) */
        if (strcmp(name, "R4") == 0) continue;
        float *dst;
        int32_t n;
        size_t slot;
        if (strcmp(name, "R1") == 0) {
            dst = rs->r1; n = cfg->d_model; slot = L;
        } else if (strncmp(name, "R2.", 3) == 0) {
            char *end = NULL;
            long l = strtol(name + 3, &end, 10);
            if (!end || *end || end == name + 3 || l < 0 || (size_t)l >= L) {
                rc = flx_fail(err, FLX_EFORMAT, "%s: tensor %s: layer index is not in 0..%zu", path, name, L - 1);
                break;
            }
            dst = rs->r2 + (size_t)l * hd * hd; n = cfg->head_dim; slot = (size_t)l;
        } else {
            rc = flx_fail(err, FLX_EFORMAT, "%s: unexpected tensor %s (a rotation file holds R1 and R2.<layer>)",
                          path, name);
            break;
        }
        if (seen[slot]) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: tensor %s appears twice", path, name);
            break;
        }
        seen[slot] = 1;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0) {
            rc = flx_fail(err, FLX_EUNSUPPORTED, "%s: tensor %s: dtype must be F32", path, name);
            break;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(sh, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(sh, 1)) ||
            cJSON_GetArrayItem(sh, 0)->valuedouble != n || cJSON_GetArrayItem(sh, 1)->valuedouble != n) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: tensor %s: shape must be [%d, %d] for this model",
                          path, name, (int)n, (int)n);
            break;
        }
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1))) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: tensor %s: data_offsets missing", path, name);
            break;
        }
        double b = cJSON_GetArrayItem(off, 0)->valuedouble, e = cJSON_GetArrayItem(off, 1)->valuedouble;
        size_t want = (size_t)n * (size_t)n * 4;
        if (!(b >= 0) || !(e >= b) || e > (double)data_bytes || b != floor(b) || (size_t)(e - b) != want) {
            rc = flx_fail(err, FLX_EFORMAT,
                          "%s: tensor %s: data_offsets [%.0f, %.0f] do not hold %zu bytes inside the %zu-byte data section",
                          path, name, b, e, want, data_bytes);
            break;
        }
        memcpy(dst, data + (size_t)b, want);
        rc = check_matrix(path, name, dst, n, err);
        if (rc) break;
        if (slot < L) n_r2++;
    }
    if (rc == FLX_OK && !seen[L])
        rc = flx_fail(err, FLX_ENOTFOUND, "%s: tensor R1 is missing", path);
    if (rc == FLX_OK && n_r2 != 0 && n_r2 != L)
        rc = flx_fail(err, FLX_ENOTFOUND, "%s: %zu of %zu R2.<layer> tensors present: give all or none",
                      path, n_r2, L);
    if (rc == FLX_OK && n_r2 == 0) {
        free(rs->r2);
        rs->r2 = NULL;
    }
    free(seen);
done:
    cJSON_Delete(hdr);
    free(hjson);
    free(buf);
    if (rc) flx_rotset_free(rs);
    return rc;
}

int flx_rotset_save(const flx_rotation_set *rs, const char *path, flx_error *err)
{
    if (!rs->r1) return flx_fail(err, FLX_EINVAL, "%s: the rotation set has no R1 to save", path);
    const size_t d = (size_t)rs->d_model, hd = (size_t)rs->head_dim;
    const int n_r2 = rs->r2 ? rs->n_layers : 0;
    /* R4 (online, informational: loading ignores it) as the dense matrix
     * the forward applies: the seeded one, or the normalized Hadamard
     * H / sqrt(d_ff) that the FHT computes */
    const size_t f = (size_t)rs->d_ff;
    float *r4 = NULL;
    if (rs->r4) {
        r4 = malloc(f * f * sizeof *r4);
        if (!r4) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
        if (rs->r4_dense) memcpy(r4, rs->r4_dense, f * f * sizeof *r4);
        else {
            int hrc = flx_hadamard_matrix(r4, (int32_t)f, 1, err);
            if (hrc) { free(r4); return hrc; }
        }
    }
    /* header JSON: tensors in order R1, R2.0, R2.1, ..., R4 */
    size_t cap = 384 + (size_t)n_r2 * 128;
    char *h = malloc(cap);
    if (!h) { free(r4); return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path); }
    size_t off = 0, pos = 0;
    pos += (size_t)snprintf(h + pos, cap - pos,
                            "{\"__metadata__\":{\"format\":\"flxemu-rotations\"},"
                            "\"R1\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[0,%zu]}",
                            d, d, d * d * 4);
    off = d * d * 4;
    for (int l = 0; l < n_r2; l++) {
        pos += (size_t)snprintf(h + pos, cap - pos,
                                ",\"R2.%d\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}",
                                l, hd, hd, off, off + hd * hd * 4);
        off += hd * hd * 4;
    }
    if (r4) {
        pos += (size_t)snprintf(h + pos, cap - pos,
                                ",\"R4\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}",
                                f, f, off, off + f * f * 4);
        off += f * f * 4;
    }
    pos += (size_t)snprintf(h + pos, cap - pos, "}");
    while ((8 + pos) % 8) h[pos++] = ' ';   /* pad so the data starts 8-aligned */
    uint64_t n_hdr = pos;
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (rc) { free(h); free(r4); return rc; }
    int ok = fwrite(&n_hdr, 8, 1, o.fp) == 1 && fwrite(h, 1, pos, o.fp) == pos &&
             fwrite(rs->r1, 4, d * d, o.fp) == d * d;
    for (int l = 0; ok && l < n_r2; l++)
        ok = fwrite(rs->r2 + (size_t)l * hd * hd, 4, hd * hd, o.fp) == hd * hd;
    if (ok && r4) ok = fwrite(r4, 4, f * f, o.fp) == f * f;
    free(h);
    free(r4);
    if (!ok) {
        flx_outfile_abort(&o);
        return flx_fail(err, FLX_EIO, "%s: write failed", path);
    }
    return flx_outfile_commit(&o, err);
}

/* ---------------------------------------------------------------- weight storage */

/* A writable buffer of n floats to replace *slot: *slot itself when the
 * model owns it exactly and nothing else points at it, else a new owned
 * buffer initialised with the old values. */
static float *writable(flx_model *m, const float **slot, size_t n, flx_error *err)
{
    const float *p = *slot;
    int aliased = (m->w.output == p && slot != &m->w.output) || (m->w.tok_embd == p && slot != &m->w.tok_embd);
    if (!aliased)
        for (size_t i = 0; i < m->n_owned; i++)
            if (m->owned[i] == (const void *)p) return (float *)(void *)m->owned[i];
    float *q = flx_model_alloc(m, n * sizeof(float));
    if (!q) {
        flx_fail(err, FLX_ENOMEM, "rotation: out of memory for a %zu-float weight", n);
        return NULL;
    }
    memcpy(q, p, n * sizeof(float));
    *slot = q;
    return q;
}

/* ---------------------------------------------------------------- folding */

static int scale_columns(flx_model *m, const float **slot, int64_t rows, int32_t cols, const float *g,
                         flx_error *err)
{
    float *w = writable(m, slot, (size_t)rows * cols, err);
    if (!w) return FLX_ENOMEM;
    for (int64_t r = 0; r < rows; r++)
        for (int32_t c = 0; c < cols; c++) w[r * cols + c] = w[r * cols + c] * g[c];
    return FLX_OK;
}

int flx_fold_norms(flx_model *m, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    const int32_t d = c->d_model, q_rows = c->n_heads * c->head_dim, kv_rows = c->n_kv_heads * c->head_dim;
    float *ones = flx_model_alloc(m, (size_t)d * sizeof(float));
    if (!ones) return flx_fail(err, FLX_ENOMEM, "fold norms: out of memory");
    for (int32_t i = 0; i < d; i++) ones[i] = 1.0f;
    int rc;
    if (c->tie_embeddings || m->w.output == m->w.tok_embd) {
        /* untie: the head gets its own copy (SpinQuant ptq.py, issue #13) */
        float *h = flx_model_alloc(m, (size_t)c->n_vocab * d * sizeof(float));
        if (!h) return flx_fail(err, FLX_ENOMEM, "untie embeddings: out of memory");
        memcpy(h, m->w.tok_embd, (size_t)c->n_vocab * d * sizeof(float));
        m->w.output = h;
        m->cfg.tie_embeddings = 0;
    }
    for (int32_t l = 0; l < c->n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        if ((rc = scale_columns(m, &L->wq, q_rows, d, L->attn_norm, err)) ||
            (rc = scale_columns(m, &L->wk, kv_rows, d, L->attn_norm, err)) ||
            (rc = scale_columns(m, &L->wv, kv_rows, d, L->attn_norm, err)) ||
            (rc = scale_columns(m, &L->w_gate, c->d_ff, d, L->ffn_norm, err)) ||
            (rc = scale_columns(m, &L->w_up, c->d_ff, d, L->ffn_norm, err)))
            return rc;
        L->attn_norm = ones;
        L->ffn_norm = ones;
    }
    if ((rc = scale_columns(m, &m->w.output, c->n_vocab, d, m->w.out_norm, err))) return rc;
    m->w.out_norm = ones;
    return FLX_OK;
}

/* ---------------------------------------------------------------- merges (double) */

static double *to_f64(const float *r, size_t n)
{
    double *d = malloc(n * sizeof *d);
    if (d)
        for (size_t i = 0; i < n; i++) d[i] = r[i];
    return d;
}

/* w[r][c] (rows x cols, leading dimension ld) <- (w . R)[r][c], R (cols x cols)
 * in double; blocks of rows are converted to double, multiplied, rounded. */
static int right_mul(float *w, int64_t rows, int32_t cols, int64_t ld, const double *r, flx_error *err)
{
    const int64_t blk = rows < 256 ? rows : 256;
    double *a = malloc((size_t)blk * cols * sizeof *a), *o = malloc((size_t)blk * cols * sizeof *o);
    if (!a || !o) {
        free(a); free(o);
        return flx_fail(err, FLX_ENOMEM, "rotation merge: out of memory");
    }
    for (int64_t r0 = 0; r0 < rows; r0 += blk) {
        int64_t nb = rows - r0 < blk ? rows - r0 : blk;
        for (int64_t i = 0; i < nb; i++)
            for (int32_t j = 0; j < cols; j++) a[i * cols + j] = w[(r0 + i) * ld + j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, cols, cols, 1.0, a, cols, r, cols,
                    0.0, o, cols);
        for (int64_t i = 0; i < nb; i++)
            for (int32_t j = 0; j < cols; j++) w[(r0 + i) * ld + j] = (float)o[i * cols + j];
    }
    free(a); free(o);
    return FLX_OK;
}

/* w (rows x cols, row-major) <- R^T . w, R (rows x rows) in double; by
 * blocks of columns. */
static int left_mul_t(float *w, int32_t rows, int64_t cols, const double *r, flx_error *err)
{
    const int64_t blk = cols < 512 ? cols : 512;
    double *a = malloc((size_t)rows * blk * sizeof *a), *o = malloc((size_t)rows * blk * sizeof *o);
    if (!a || !o) {
        free(a); free(o);
        return flx_fail(err, FLX_ENOMEM, "rotation merge: out of memory");
    }
    for (int64_t c0 = 0; c0 < cols; c0 += blk) {
        int64_t nb = cols - c0 < blk ? cols - c0 : blk;
        for (int32_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < nb; j++) a[(size_t)i * nb + j] = w[(size_t)i * cols + c0 + j];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, (int)nb, rows, 1.0, r, rows, a, (int)nb,
                    0.0, o, (int)nb);
        for (int32_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < nb; j++) w[(size_t)i * cols + c0 + j] = (float)o[(size_t)i * nb + j];
    }
    free(a); free(o);
    return FLX_OK;
}

typedef struct fht_merge_ctx {
    float *w;
    int32_t n;
    int rc;
} fht_merge_ctx;

/* Rows of W_down times H / sqrt(n) in double (H symmetric: row . H = H . row). */
static void fht_merge_fn(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    fht_merge_ctx *c = vctx;
    double *row = malloc((size_t)c->n * sizeof *row);
    if (!row) { c->rc = FLX_ENOMEM; return; }
    const double s = 1.0 / sqrt((double)c->n);
    for (int64_t r = begin; r < end; r++) {
        float *w = c->w + r * c->n;
        for (int32_t j = 0; j < c->n; j++) row[j] = w[j];
        flx_fht_f64(row, c->n, s, NULL);
        for (int32_t j = 0; j < c->n; j++) w[j] = (float)row[j];
    }
    free(row);
}

/* w (rows x n) <- w . diag(s) H / sqrt(n): each row times the signs, then
 * the double FHT (H is symmetric, so row . H = H . row). */
typedef struct had_rows_ctx {
    float *w;
    int64_t rows;
    int32_t n;
    const float *s;
    int rc;
} had_rows_ctx;

static void had_right_fn(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    had_rows_ctx *c = vctx;
    double *row = malloc((size_t)c->n * sizeof *row);
    if (!row) { c->rc = FLX_ENOMEM; return; }
    const double sc = 1.0 / sqrt((double)c->n);
    for (int64_t r = begin; r < end; r++) {
        float *w = c->w + r * c->n;
        for (int32_t j = 0; j < c->n; j++) row[j] = (double)w[j] * (double)c->s[j];
        flx_fht_f64(row, c->n, sc, NULL);
        for (int32_t j = 0; j < c->n; j++) w[j] = (float)row[j];
    }
    free(row);
}

static int had_right(float *w, int64_t rows, int32_t n, const float *s, flx_pool *pool, flx_error *err)
{
    had_rows_ctx c = { w, rows, n, s, FLX_OK };
    flx_pool_for(pool, rows, 16, had_right_fn, &c);
    return c.rc ? flx_fail(err, c.rc, "rotation merge: out of memory") : FLX_OK;
}

/* w (n x cols) <- (diag(s) H / sqrt(n))^T . w = H diag(s) w / sqrt(n):
 * column by column (ranges of columns per task). */
typedef struct had_cols_ctx {
    float *w;
    int32_t n;
    int64_t cols;
    const float *s;
    int rc;
} had_cols_ctx;

static void had_left_fn(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    had_cols_ctx *c = vctx;
    double *col = malloc((size_t)c->n * sizeof *col);
    if (!col) { c->rc = FLX_ENOMEM; return; }
    const double sc = 1.0 / sqrt((double)c->n);
    for (int64_t j = begin; j < end; j++) {
        for (int32_t i = 0; i < c->n; i++) col[i] = (double)c->w[(size_t)i * c->cols + j] * (double)c->s[i];
        flx_fht_f64(col, c->n, sc, NULL);
        for (int32_t i = 0; i < c->n; i++) c->w[(size_t)i * c->cols + j] = (float)col[i];
    }
    free(col);
}

static int had_left_t(float *w, int32_t n, int64_t cols, const float *s, flx_pool *pool, flx_error *err)
{
    had_cols_ctx c = { w, n, cols, s, FLX_OK };
    flx_pool_for(pool, cols, 16, had_left_fn, &c);
    return c.rc ? flx_fail(err, c.rc, "rotation merge: out of memory") : FLX_OK;
}

int flx_spinquant_apply(flx_model *m, const flx_rotation_set *rs, flx_pool *pool, flx_error *err)
{
    const flx_llama_config *c = &m->cfg;
    if (rs->d_model != c->d_model || rs->head_dim != c->head_dim || rs->n_layers != c->n_layers ||
        rs->d_ff != c->d_ff)
        return flx_fail(err, FLX_EINVAL,
                        "rotations were made for d_model %d, head_dim %d, %d layers, d_ff %d; the model has %d, %d, %d, %d",
                        rs->d_model, rs->head_dim, rs->n_layers, rs->d_ff, c->d_model, c->head_dim, c->n_layers,
                        c->d_ff);
    int rc = flx_fold_norms(m, err);
    if (rc) return rc;
    const int32_t d = c->d_model, hd = c->head_dim, dff = c->d_ff;
    const int32_t q_rows = c->n_heads * hd, kv_rows = c->n_kv_heads * hd;
    double *r1 = rs->r1 ? to_f64(rs->r1, (size_t)d * d) : NULL;
    double *r2 = NULL, *r4 = NULL;
    if (rs->r1 && !r1) return flx_fail(err, FLX_ENOMEM, "R1: out of memory");
    float *w;
#define WR(slot, n) do { if (!(w = writable(m, (slot), (n), err))) { rc = FLX_ENOMEM; goto done; } } while (0)
#define TRY(x) do { if ((rc = (x))) goto done; } while (0)
    const float *sg = rs->r1_signs;
#define R1_RIGHT(rows) (sg ? had_right(w, (rows), d, sg, pool, err) : right_mul(w, (rows), d, d, r1, err))
#define R1_LEFT_T(cols) (sg ? had_left_t(w, d, (cols), sg, pool, err) : left_mul_t(w, d, (cols), r1, err))
    if (r1) {
        WR(&m->w.tok_embd, (size_t)c->n_vocab * d);
        TRY(R1_RIGHT(c->n_vocab));
        WR(&m->w.output, (size_t)c->n_vocab * d);
        TRY(R1_RIGHT(c->n_vocab));
    }
    if (rs->r4 && rs->r4_dense) {
        r4 = to_f64(rs->r4_dense, (size_t)dff * dff);
        if (!r4) { rc = flx_fail(err, FLX_ENOMEM, "R4: out of memory"); goto done; }
    }
    for (int32_t l = 0; l < c->n_layers; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        if (r1) {
            WR(&L->wq, (size_t)q_rows * d);      TRY(R1_RIGHT(q_rows));
            WR(&L->wk, (size_t)kv_rows * d);     TRY(R1_RIGHT(kv_rows));
            WR(&L->wv, (size_t)kv_rows * d);     TRY(R1_RIGHT(kv_rows));
            WR(&L->w_gate, (size_t)dff * d);     TRY(R1_RIGHT(dff));
            WR(&L->w_up, (size_t)dff * d);       TRY(R1_RIGHT(dff));
            WR(&L->wo, (size_t)d * q_rows);      TRY(R1_LEFT_T(q_rows));
            WR(&L->w_down, (size_t)d * dff);     TRY(R1_LEFT_T(dff));
        }
        if (rs->r2) {
            free(r2);
            r2 = to_f64(rs->r2 + (size_t)l * hd * hd, (size_t)hd * hd);
            if (!r2) { rc = flx_fail(err, FLX_ENOMEM, "R2: out of memory"); goto done; }
            WR(&L->wv, (size_t)kv_rows * d);
            for (int32_t h = 0; h < c->n_kv_heads; h++) TRY(left_mul_t(w + (size_t)h * hd * d, hd, d, r2, err));
            WR(&L->wo, (size_t)d * q_rows);
            for (int32_t h = 0; h < c->n_heads; h++) TRY(right_mul(w + (size_t)h * hd, d, hd, q_rows, r2, err));
        }
        if (rs->r4) {
            WR(&L->w_down, (size_t)d * dff);
            if (r4) {
                TRY(right_mul(w, d, dff, dff, r4, err));
            } else {
                fht_merge_ctx fc = { w, dff, FLX_OK };
                flx_pool_for(pool, d, 16, fht_merge_fn, &fc);
                if (fc.rc) { rc = flx_fail(err, fc.rc, "R4 merge: out of memory"); goto done; }
            }
        }
    }
#undef WR
#undef TRY
#undef R1_RIGHT
#undef R1_LEFT_T
done:
    free(r1);
    free(r2);
    free(r4);
    return rc;
}

/* ---------------------------------------------------------------- online ops */

void flx_rot_r3(const flx_rotation_set *rs, float *x, int64_t n_vecs, flx_pool *pool)
{
    if (!rs->r3) return;
    flx_fht_rows(x, n_vecs, rs->head_dim, FLX_FHT_FLEXLLM, rs->r3_divisor, pool, NULL);
}

typedef struct dense_rot_ctx {
    float *x;
    const float *r;
    int32_t n;
} dense_rot_ctx;

/* x_row <- x_row . R, each output summed in double over k ascending. */
static void dense_rot_fn(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    dense_rot_ctx *c = vctx;
    const int32_t n = c->n;
    double *acc = malloc((size_t)n * sizeof *acc);
    if (!acc) return;   /* n <= 16384 doubles: only fails when the process is already out of memory */
    for (int64_t t = begin; t < end; t++) {
        float *x = c->x + t * n;
        for (int32_t j = 0; j < n; j++) acc[j] = 0.0;
        for (int32_t k = 0; k < n; k++) {
            const double xk = x[k];
            const float *rk = c->r + (size_t)k * n;
            for (int32_t j = 0; j < n; j++) acc[j] += xk * (double)rk[j];
        }
        for (int32_t j = 0; j < n; j++) x[j] = (float)acc[j];
    }
    free(acc);
}

void flx_rot_r4(const flx_rotation_set *rs, float *x, int64_t n_tokens, flx_pool *pool)
{
    if (!rs->r4) return;
    if (rs->r4_dense) {
        dense_rot_ctx c = { x, rs->r4_dense, rs->d_ff };
        flx_pool_for(pool, n_tokens, 1, dense_rot_fn, &c);
    } else {
        flx_fht_rows(x, n_tokens, rs->d_ff, FLX_FHT_FLEXLLM, rs->r4_divisor, pool, NULL);
    }
}
