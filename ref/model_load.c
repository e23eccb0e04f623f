/* flx_model_load: a Hugging Face folder (config.json + safetensors, single
 * or sharded) or a GGUF file -> flx_model with fp32 weights.
 *
 * Memory: F32 tensors are used in place from the mapping when 4-byte
 * aligned.  Other dtypes are converted tensor by tensor into owned fp32
 * buffers, and the source pages are dropped right after each tensor, so the
 * peak resident set stays close to the fp32 weight bytes.  Conversion runs
 * on a thread pool, one row block per task; each output element depends only
 * on its own source bytes, so the result is the same for any thread count. */
#include "flx_gguf.h"
#include "flx_model.h"
#include "flx_safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define INDEX_MAX_BYTES (64u << 20)
#define N_GGML_TYPES    40

/* ------------------------------------------------------------ tensor sources */

/* One tensor as the assembler sees it, whatever the file format. */
typedef struct src_tensor {
    uint32_t               type;       /* ggml type id; UINT32_MAX if not loadable */
    const char            *type_name;
    int                    n_dims;
    int64_t                shape[FLX_ST_MAX_DIMS]; /* PyTorch order: rows first */
    int64_t                n_elems;
    const uint8_t         *data;
    size_t                 bytes;
    const flx_mapped_file *map;        /* to release pages after conversion */
    size_t                 offset;
    int                   *in_place;   /* set when the model keeps pointing into map */
} src_tensor;

typedef struct shard {
    char            *file;     /* file name from the index */
    flx_safetensors  st;
    int              in_place; /* some weight points into this mapping */
} shard;

typedef struct loader {
    flx_model  *m;
    flx_pool   *pool;
    const char *source;                  /* file named in messages */
    flx_error  *err;
    int         type_count[N_GGML_TYPES];
    flx_progress *progress;              /* counts tensors; NULL = silent */
    /* HF */
    shard      *shards;
    size_t      n_shards;
    cJSON      *weight_map;              /* name -> shard file, or NULL */
    /* GGUF */
    flx_gguf   *gguf;
    int         gguf_in_place;
} loader;

static uint32_t st_to_ggml(flx_st_dtype dt)
{
    switch (dt) {
    case FLX_ST_F32: return FLX_GGML_F32;
    case FLX_ST_F16: return FLX_GGML_F16;
    case FLX_ST_BF16: return FLX_GGML_BF16;
    default: return UINT32_MAX;
    }
}

static int find_hf(loader *ld, const char *name, src_tensor *t)
{
    const flx_st_tensor *st = NULL;
    shard *sh = NULL;
    if (ld->weight_map) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(ld->weight_map, name);
        if (!f) return 0;
        for (size_t i = 0; i < ld->n_shards && !sh; i++)
            if (!strcmp(ld->shards[i].file, f->valuestring)) sh = &ld->shards[i];
        if (!sh) return 0;
        st = flx_st_find(&sh->st, name);
        if (!st) {
            flx_fail(ld->err, FLX_EFORMAT, "%s: tensor %s is listed in the index for %s but that "
                     "file does not contain it", ld->source, name, sh->file);
            return -1;
        }
    } else {
        sh = &ld->shards[0];
        st = flx_st_find(&sh->st, name);
        if (!st) return 0;
    }
    memset(t, 0, sizeof *t);
    t->type = st_to_ggml(st->dtype);
    t->type_name = flx_st_dtype_name(st->dtype);
    t->n_dims = st->n_dims;
    memcpy(t->shape, st->shape, sizeof t->shape);
    t->n_elems = st->n_elems;
    t->data = st->data;
    t->bytes = st->bytes;
    t->map = &sh->st.map;
    t->offset = st->offset;
    t->in_place = &sh->in_place;
    return 1;
}

static int find_gguf(loader *ld, const char *name, src_tensor *t)
{
    const flx_gguf_tensor *g = flx_gguf_find_tensor(ld->gguf, name);
    if (!g) return 0;
    memset(t, 0, sizeof *t);
    t->type = flx_ggml_can_dequantize(g->type) ? g->type : UINT32_MAX;
    t->type_name = flx_ggml_type_name(g->type);
    t->n_dims = (int)g->n_dims;
    for (uint32_t d = 0; d < g->n_dims; d++) t->shape[d] = g->ne[g->n_dims - 1 - d];
    t->n_elems = g->n_elems;
    t->data = g->data;
    t->bytes = g->bytes;
    t->map = &ld->gguf->map;
    t->offset = g->offset;
    t->in_place = &ld->gguf_in_place;
    return 1;
}

/* 1 found, 0 absent, <0 error already recorded. */
static int find_tensor(loader *ld, const char *name, src_tensor *t)
{
    return ld->gguf ? find_gguf(ld, name, t) : find_hf(ld, name, t);
}

/* ------------------------------------------------------------ conversion */

typedef struct convert_job {
    uint32_t       type;
    const uint8_t *src;
    float         *dst;
    int64_t        cols;
    size_t         row_bytes;
    int64_t        grain;
    int            in_place;     /* dst already holds the values: only check */
    int64_t       *first_bad;    /* [n_chunks]: first non-finite flat index, or -1 */
} convert_job;

/* Any NaN or Inf (exponent bits all ones) in x[0..n)?  A branch-free loop
 * over the bits, which the compiler vectorizes; the caller finds which. */
static int row_has_nonfinite(const float *x, int64_t n)
{
    uint32_t any = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return any != 0;
}

static void convert_rows(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    convert_job *j = ctx;
    int64_t bad = -1;
    for (int64_t r = begin; r < end; r++) {
        float *dst = j->dst + r * j->cols;
        if (!j->in_place) flx_ggml_dequantize(j->type, j->src + (size_t)r * j->row_bytes, dst, j->cols);
        if (bad < 0 && row_has_nonfinite(dst, j->cols))
            for (int64_t c = 0; c < j->cols; c++)
                if (!isfinite(dst[c])) {
                    bad = r * j->cols + c;
                    break;
                }
    }
    j->first_bad[begin / j->grain] = bad;
}

static void shape_str(const int64_t *shape, int n_dims, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Asks the kernel to start reading a source range before the threads fault
 * on it (a cold 2.5 GB file otherwise arrives one small readahead at a time). */
static void prefetch(const flx_mapped_file *map, size_t offset, size_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!map->data || page <= 0 || offset >= map->bytes) return;
    if (bytes > map->bytes - offset) bytes = map->bytes - offset;
    uintptr_t lo = (uintptr_t)(map->data + offset) & ~((uintptr_t)page - 1);
    uintptr_t hi = (uintptr_t)(map->data + offset + bytes);
    madvise((void *)lo, hi - lo, MADV_WILLNEED);   /* advisory */
}

/* Loads tensor name of shape [rows, cols] (cols == 0: a vector of rows)
 * as fp32 into *out.  optional: absence returns FLX_ENOTFOUND silently. */
static int take(loader *ld, const char *name, int64_t rows, int64_t cols, int optional,
                const float **out)
{
    src_tensor t;
    int found = find_tensor(ld, name, &t);
    if (found < 0) return ld->err->code;
    if (!found) {
        if (optional) return FLX_ENOTFOUND;
        return flx_fail(ld->err, FLX_ENOTFOUND, "%s: tensor %s is missing", ld->source, name);
    }
    int64_t want[2] = {rows, cols};
    int want_dims = cols ? 2 : 1;
    if (t.n_dims != want_dims || t.shape[0] != rows || (cols && t.shape[1] != cols)) {
        char have[128], need[64];
        shape_str(t.shape, t.n_dims, have, sizeof have);
        shape_str(want, want_dims, need, sizeof need);
        return flx_fail(ld->err, FLX_EFORMAT, "%s: tensor %s has shape %s but the config needs %s",
                        ld->source, name, have, need);
    }
    if (t.type == UINT32_MAX)
        return flx_fail(ld->err, FLX_EUNSUPPORTED, "%s: tensor %s has dtype %s; only F32, F16, BF16 "
                        "(and Q8_0, Q4_0 in GGUF) can be loaded", ld->source, name, t.type_name);
    if (!cols) {   /* a vector is one row */
        cols = rows;
        rows = 1;
    }
    convert_job j = {t.type, t.data, NULL, cols, t.bytes / (size_t)rows, 1, 0, NULL};
    j.grain = cols >= 65536 ? 1 : 65536 / cols;
    int64_t n_chunks = (rows + j.grain - 1) / j.grain;
    j.first_bad = malloc((size_t)n_chunks * sizeof *j.first_bad);
    if (!j.first_bad) return flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", ld->source);
    if (t.type == FLX_GGML_F32 && ((uintptr_t)t.data & 3u) == 0) {
        j.dst = (float *)(uintptr_t)t.data;
        j.in_place = 1;
        *t.in_place = 1;
    } else {
        prefetch(t.map, t.offset, t.bytes);
        j.dst = flx_model_alloc(ld->m, (size_t)t.n_elems * sizeof(float));
        if (!j.dst) {
            free(j.first_bad);
            return flx_fail(ld->err, FLX_ENOMEM, "%s: cannot allocate %lld floats for tensor %s",
                            ld->source, (long long)t.n_elems, name);
        }
    }
    flx_pool_for(ld->pool, rows, j.grain, convert_rows, &j);
    if (!j.in_place) flx_mapped_release(t.map, t.offset, t.bytes);
    int64_t bad = -1;
    for (int64_t c = 0; c < n_chunks && bad < 0; c++) bad = j.first_bad[c];
    free(j.first_bad);
    if (bad >= 0)
        return flx_fail(ld->err, FLX_ENUMERIC, "%s: tensor %s holds a non-finite value (NaN or Inf) "
                        "at element %lld (row %lld, column %lld)", ld->source, name, (long long)bad,
                        (long long)(bad / cols), (long long)(bad % cols));
    *out = j.dst;
    ld->m->weight_bytes_f32 += (size_t)t.n_elems * sizeof(float);
    ld->m->n_params += t.n_elems;
    ld->m->n_tensors++;
    if (t.type < N_GGML_TYPES) ld->type_count[t.type]++;
    if (ld->progress) flx_progress_update(ld->progress, ld->m->n_tensors);
    return FLX_OK;
}

/* ------------------------------------------------------------ assembly */

typedef struct tensor_names {
    const char *embd, *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *gate, *up, *down, *out_norm, *output;
} tensor_names;

static const tensor_names hf_names = {
    "model.embed_tokens.weight",
    "model.layers.%d.input_layernorm.weight",
    "model.layers.%d.self_attn.q_proj.weight",
    "model.layers.%d.self_attn.k_proj.weight",
    "model.layers.%d.self_attn.v_proj.weight",
    "model.layers.%d.self_attn.o_proj.weight",
    "model.layers.%d.post_attention_layernorm.weight",
    "model.layers.%d.mlp.gate_proj.weight",
    "model.layers.%d.mlp.up_proj.weight",
    "model.layers.%d.mlp.down_proj.weight",
    "model.norm.weight",
    "lm_head.weight",
};

static const tensor_names gguf_names = {
    "token_embd.weight",
    "blk.%d.attn_norm.weight",
    "blk.%d.attn_q.weight",
    "blk.%d.attn_k.weight",
    "blk.%d.attn_v.weight",
    "blk.%d.attn_output.weight",
    "blk.%d.ffn_norm.weight",
    "blk.%d.ffn_gate.weight",
    "blk.%d.ffn_up.weight",
    "blk.%d.ffn_down.weight",
    "output_norm.weight",
    "output.weight",
};

static int take_layer(loader *ld, const char *fmt, int layer, int64_t rows, int64_t cols,
                      const float **out)
{
    char name[160];
    snprintf(name, sizeof name, fmt, layer);
    return take(ld, name, rows, cols, 0, out);
}

/* gguf: the output head is optional (absent = tied); hf: tie_embeddings decides. */
static int assemble(loader *ld, const tensor_names *nm, int gguf)
{
    flx_model *m = ld->m;
    const flx_llama_config *c = &m->cfg;
    int64_t d = c->d_model, q_rows = (int64_t)c->n_heads * c->head_dim;
    int64_t kv_rows = (int64_t)c->n_kv_heads * c->head_dim;
    m->w.layers = calloc((size_t)c->n_layers, sizeof *m->w.layers);
    if (!m->w.layers) return flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", ld->source);
    int rc = take(ld, nm->embd, c->n_vocab, d, 0, &m->w.tok_embd);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        flx_llama_layer *L = &m->w.layers[l];
        if ((rc = take_layer(ld, nm->attn_norm, l, d, 0, &L->attn_norm))) break;
        if ((rc = take_layer(ld, nm->wq, l, q_rows, d, &L->wq))) break;
        if ((rc = take_layer(ld, nm->wk, l, kv_rows, d, &L->wk))) break;
        if ((rc = take_layer(ld, nm->wv, l, kv_rows, d, &L->wv))) break;
        if ((rc = take_layer(ld, nm->wo, l, d, q_rows, &L->wo))) break;
        if ((rc = take_layer(ld, nm->ffn_norm, l, d, 0, &L->ffn_norm))) break;
        if ((rc = take_layer(ld, nm->gate, l, c->d_ff, d, &L->w_gate))) break;
        if ((rc = take_layer(ld, nm->up, l, c->d_ff, d, &L->w_up))) break;
        if ((rc = take_layer(ld, nm->down, l, d, c->d_ff, &L->w_down))) break;
    }
    if (!rc) rc = take(ld, nm->out_norm, d, 0, 0, &m->w.out_norm);
    if (rc) return rc;
    if (gguf) {
        rc = take(ld, nm->output, c->n_vocab, d, 1, &m->w.output);
        m->cfg.tie_embeddings = rc == FLX_ENOTFOUND;
        if (rc == FLX_ENOTFOUND) rc = FLX_OK;
    } else if (!c->tie_embeddings) {
        rc = take(ld, nm->output, c->n_vocab, d, 1, &m->w.output);
        if (rc == FLX_ENOTFOUND)
            rc = flx_fail(ld->err, FLX_ENOTFOUND, "%s: tensor %s is missing and config.json says "
                          "tie_word_embeddings = false", ld->source, nm->output);
    }
    if (rc) return rc;
    if (m->cfg.tie_embeddings) m->w.output = m->w.tok_embd;

    size_t k = 0;
    for (uint32_t ty = 0; ty < N_GGML_TYPES; ty++)
        if (ld->type_count[ty] && k < sizeof m->dtypes)
            k += (size_t)snprintf(m->dtypes + k, sizeof m->dtypes - k, "%s%s x%d", k ? ", " : "",
                                  flx_ggml_type_name(ty), ld->type_count[ty]);
    return FLX_OK;
}

/* A tokenizer that fails with FLX_EUNSUPPORTED (engine not built, or a
 * vocabulary kind it does not handle) leaves tok NULL with a note; any other
 * failure means the file is corrupt and the load fails. */
static int attach_tokenizer(flx_model *m, int rc, flx_error *err)
{
    if (rc == FLX_EUNSUPPORTED) {
        size_t n = strnlen(err->msg, sizeof m->tok_note - 1);
        memcpy(m->tok_note, err->msg, n);
        m->tok_note[n] = '\0';
        flx_tokenizer_free(m->tok);
        m->tok = NULL;
        err->code = FLX_OK;
        err->msg[0] = '\0';
        return FLX_OK;
    }
    if (rc) return rc;
    if (m->tok && flx_tokenizer_n_vocab(m->tok) > m->cfg.n_vocab)
        return flx_fail(err, FLX_EFORMAT, "%s: the tokenizer has %d tokens but the model's "
                        "vocabulary is %d", m->path, flx_tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
    return FLX_OK;
}

/* ------------------------------------------------------------ Hugging Face */

static int safe_shard_name(const char *f)
{
    return f[0] && f[0] != '/' && !strstr(f, "..");
}

static int open_shards(loader *ld, const char *dir, const char *st_path)
{
    char *index_path = flx_path_join(dir, "model.safetensors.index.json");
    char *single = st_path ? NULL : flx_path_join(dir, "model.safetensors");
    char *text = NULL;
    cJSON *root = NULL;
    int rc = FLX_OK;
    if (!index_path || (!st_path && !single)) {
        rc = flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (st_path || !flx_file_exists(index_path)) {
        const char *path = st_path ? st_path : single;
        if (!flx_file_exists(path)) {
            rc = flx_fail(ld->err, FLX_ENOTFOUND, "%s: no model.safetensors or "
                          "model.safetensors.index.json in this folder", dir);
            goto done;
        }
        ld->shards = calloc(1, sizeof *ld->shards);
        if (!ld->shards) { rc = flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", dir); goto done; }
        ld->n_shards = 1;
        ld->shards[0].file = strdup("");
        rc = flx_st_open(&ld->shards[0].st, path, ld->err);
        goto done;
    }
    size_t bytes;
    if ((rc = flx_read_file(index_path, INDEX_MAX_BYTES, &text, &bytes, ld->err))) goto done;
    if ((rc = flx_json_budget(text, bytes, (size_t)1 << 20, index_path, ld->err))) goto done;
    root = cJSON_ParseWithLength(text, bytes);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        rc = flx_fail(ld->err, FLX_EFORMAT, "%s: %s", index_path,
                      root ? "field weight_map is missing or not an object" : "not valid JSON");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(wm);
    ld->shards = calloc(n ? n : 1, sizeof *ld->shards);
    if (!ld->shards) { rc = flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", dir); goto done; }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            rc = flx_fail(ld->err, FLX_EFORMAT, "%s: field weight_map.%s must name a file inside "
                          "the folder", index_path, e->string);
            goto done;
        }
        size_t i = 0;
        while (i < ld->n_shards && strcmp(ld->shards[i].file, e->valuestring)) i++;
        if (i < ld->n_shards) continue;
        shard *sh = &ld->shards[ld->n_shards++];
        sh->file = flx_path_join("", e->valuestring);
        char *p = flx_path_join(dir, e->valuestring);
        if (!sh->file || !p) {
            free(p);
            rc = flx_fail(ld->err, FLX_ENOMEM, "%s: out of memory", dir);
            goto done;
        }
        rc = flx_st_open(&sh->st, p, ld->err);
        free(p);
        if (rc) goto done;
    }
    ld->weight_map = cJSON_DetachItemViaPointer(root, (cJSON *)wm);
done:
    cJSON_Delete(root);
    free(text);
    free(index_path);
    free(single);
    return rc;
}

/* Moves the mappings that weights point into to the model; closes the rest. */
static int keep_maps(flx_model *m, flx_mapped_file *maps, const int *used, size_t n, flx_error *err)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += used[i] != 0;
    if (k) {
        flx_mapped_file *p = realloc(m->maps, (m->n_maps + k) * sizeof *p);
        if (!p) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", m->path);
        m->maps = p;
    }
    for (size_t i = 0; i < n; i++)
        if (used[i]) {
            m->maps[m->n_maps++] = maps[i];
            memset(&maps[i], 0, sizeof maps[i]);
        }
    return FLX_OK;
}

static int load_hf(flx_model *m, const char *dir, const char *st_path, flx_pool *pool,
                   flx_progress *progress, flx_error *err)
{
    char *cfg_path = flx_path_join(dir, "config.json");
    char *tok_path = flx_path_join(dir, "tokenizer.json");
    loader ld = {0};
    ld.m = m;
    ld.pool = pool;
    ld.err = err;
    int rc = FLX_OK;
    if (!cfg_path || !tok_path) { rc = flx_fail(err, FLX_ENOMEM, "out of memory"); goto done; }
    if (!flx_file_exists(cfg_path)) {
        rc = flx_fail(err, FLX_ENOTFOUND, "%s: no config.json in this folder", dir);
        goto done;
    }
    if ((rc = flx_hf_config_load(cfg_path, &m->cfg, err))) goto done;
    if ((rc = open_shards(&ld, dir, st_path))) goto done;
    ld.source = ld.n_shards == 1 ? ld.shards[0].st.map.path : dir;
    ld.progress = progress;
    flx_progress_begin(progress, "load", 2 + 9 * (int64_t)m->cfg.n_layers + !m->cfg.tie_embeddings,
                       progress->enabled);
    if ((rc = assemble(&ld, &hf_names, 0))) goto done;
    m->w.rope_inv_freq = malloc((size_t)(m->cfg.head_dim / 2) * sizeof(double));
    if (!m->w.rope_inv_freq) { rc = flx_fail(err, FLX_ENOMEM, "out of memory"); goto done; }
    flx_llama_rope_inv_freq(&m->cfg, m->w.rope_inv_freq);
    snprintf(m->format, sizeof m->format, "hf");
    if (flx_file_exists(tok_path))
        rc = attach_tokenizer(m, flx_tokenizer_load_json(&m->tok, tok_path, err), err);
    if (rc) goto done;
    {
        flx_mapped_file *maps = calloc(ld.n_shards, sizeof *maps);
        int *used = calloc(ld.n_shards, sizeof *used);
        if (!maps || !used) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < ld.n_shards; i++) {
            maps[i] = ld.shards[i].st.map;
            used[i] = ld.shards[i].in_place;
        }
        if (!rc) rc = keep_maps(m, maps, used, ld.n_shards, err);
        for (size_t i = 0; !rc && i < ld.n_shards; i++) ld.shards[i].st.map = maps[i];
        free(maps);
        free(used);
    }
done:
    for (size_t i = 0; i < ld.n_shards; i++) {
        free(ld.shards[i].file);
        flx_st_close(&ld.shards[i].st);
    }
    free(ld.shards);
    cJSON_Delete(ld.weight_map);
    free(cfg_path);
    free(tok_path);
    return rc;
}

/* ------------------------------------------------------------ GGUF */

static int gguf_i32(const flx_gguf *g, const char *key, int required, int64_t def, int32_t *out,
                    flx_error *err)
{
    int64_t v;
    int rc = flx_gguf_get_int(g, key, &v, err);
    if (rc == FLX_ENOTFOUND) {
        if (required)
            return flx_fail(err, FLX_EFORMAT, "%s: required metadata key %s is missing", g->map.path,
                            key);
        v = def;
    } else if (rc) {
        return rc;
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key %s = %lld is out of range", g->map.path,
                        key, (long long)v);
    *out = (int32_t)v;
    return FLX_OK;
}

static int gguf_config(const flx_gguf *g, flx_llama_config *c, flx_error *err)
{
    const char *path = g->map.path;
    memset(c, 0, sizeof *c);
    flx_gguf_str arch;
    int rc = flx_gguf_get_str(g, "general.architecture", &arch, err);
    if (rc == FLX_ENOTFOUND)
        return flx_fail(err, FLX_EFORMAT, "%s: metadata key general.architecture is missing", path);
    if (rc) return rc;
    if (!flx_gguf_str_eq(arch, "llama"))
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: general.architecture is \"%.*s\"; only \"llama\" "
                        "is supported", path, (int)(arch.len < 64 ? arch.len : 64), arch.ptr);
    int64_t experts = 0;
    rc = flx_gguf_get_int(g, "llama.expert_count", &experts, err);
    if (rc && rc != FLX_ENOTFOUND) return rc;
    if (experts > 0)
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: llama.expert_count = %lld: mixture-of-experts "
                        "models are not supported", path, (long long)experts);
    flx_gguf_str st;
    rc = flx_gguf_get_str(g, "llama.rope.scaling.type", &st, err);
    if (rc && rc != FLX_ENOTFOUND) return rc;
    if (rc == FLX_OK && !flx_gguf_str_eq(st, "none"))
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: llama.rope.scaling.type \"%.*s\" is not "
                        "supported", path, (int)(st.len < 64 ? st.len : 64), st.ptr);

    if ((rc = gguf_i32(g, "llama.embedding_length", 1, 0, &c->d_model, err))) return rc;
    if ((rc = gguf_i32(g, "llama.block_count", 1, 0, &c->n_layers, err))) return rc;
    if ((rc = gguf_i32(g, "llama.feed_forward_length", 1, 0, &c->d_ff, err))) return rc;
    if ((rc = gguf_i32(g, "llama.attention.head_count", 1, 0, &c->n_heads, err))) return rc;
    if (c->n_heads <= 0)
        return flx_fail(err, FLX_EFORMAT, "%s: llama.attention.head_count = %d must be positive",
                        path, c->n_heads);
    if ((rc = gguf_i32(g, "llama.attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads, err)))
        return rc;
    if ((rc = gguf_i32(g, "llama.attention.key_length", 0, c->d_model / c->n_heads, &c->head_dim,
                       err)))
        return rc;
    int32_t v_len, rope_dim;
    if ((rc = gguf_i32(g, "llama.attention.value_length", 0, c->head_dim, &v_len, err))) return rc;
    if ((rc = gguf_i32(g, "llama.rope.dimension_count", 0, c->head_dim, &rope_dim, err))) return rc;
    if (v_len != c->head_dim || rope_dim != c->head_dim)
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: llama.attention.value_length (%d) and "
                        "llama.rope.dimension_count (%d) must equal the key length %d", path, v_len,
                        rope_dim, c->head_dim);
    if ((rc = gguf_i32(g, "llama.context_length", 0, 2048, &c->max_seq_len, err))) return rc;
    const flx_gguf_tensor *embd = flx_gguf_find_tensor(g, "token_embd.weight");
    int64_t def_vocab = embd && embd->n_dims == 2 ? embd->ne[1] : 0;
    if (def_vocab > INT32_MAX) def_vocab = 0;
    if ((rc = gguf_i32(g, "llama.vocab_size", 0, def_vocab, &c->n_vocab, err))) return rc;
    double eps, theta;
    rc = flx_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps, err);
    if (rc == FLX_ENOTFOUND)
        return flx_fail(err, FLX_EFORMAT, "%s: required metadata key "
                        "llama.attention.layer_norm_rms_epsilon is missing", path);
    if (rc) return rc;
    c->rms_eps = (float)eps;
    rc = flx_gguf_get_float(g, "llama.rope.freq_base", &theta, err);
    if (rc == FLX_ENOTFOUND) theta = 10000.0;
    else if (rc) return rc;
    c->rope_theta = theta;
    c->rope_pairing = FLX_ROPE_ADJACENT;
    if ((rc = gguf_i32(g, "tokenizer.ggml.bos_token_id", 0, -1, &c->bos_id, err))) return rc;
    if ((rc = gguf_i32(g, "tokenizer.ggml.eos_token_id", 0, -1, &c->eos_id, err))) return rc;
    return flx_llama_config_validate(c, path, err);
}

/* inv_freq from theta, divided by the rope_freqs.weight divisors when present. */
static int gguf_rope(loader *ld, flx_model *m)
{
    int half = m->cfg.head_dim / 2;
    m->w.rope_inv_freq = malloc((size_t)half * sizeof(double));
    if (!m->w.rope_inv_freq) return flx_fail(ld->err, FLX_ENOMEM, "out of memory");
    flx_llama_rope_inv_freq(&m->cfg, m->w.rope_inv_freq);
    const flx_gguf_tensor *t = flx_gguf_find_tensor(ld->gguf, "rope_freqs.weight");
    if (!t) return FLX_OK;
    if (t->n_elems != half || !flx_ggml_can_dequantize(t->type))
        return flx_fail(ld->err, FLX_EFORMAT, "%s: tensor rope_freqs.weight has %lld %s values; "
                        "expected %d (head_dim/2) float values", ld->source, (long long)t->n_elems,
                        flx_ggml_type_name(t->type), half);
    float *div = malloc((size_t)half * sizeof *div);
    if (!div) return flx_fail(ld->err, FLX_ENOMEM, "out of memory");
    flx_ggml_dequantize(t->type, t->data, div, half);
    int rc = FLX_OK;
    for (int i = 0; i < half && !rc; i++) {
        if (!(div[i] > 0.0f) || !isfinite(div[i]))
            rc = flx_fail(ld->err, FLX_ENUMERIC, "%s: tensor rope_freqs.weight element %d = %g must "
                          "be a positive finite divisor", ld->source, i, (double)div[i]);
        else
            m->w.rope_inv_freq[i] /= (double)div[i];
    }
    free(div);
    m->rope_freqs_tensor = 1;
    return rc;
}

static int load_gguf(flx_model *m, const char *path, flx_pool *pool, flx_progress *progress,
                     flx_error *err)
{
    flx_gguf g;
    int rc = flx_gguf_open(&g, path, err);
    if (rc) return rc;
    loader ld = {0};
    ld.m = m;
    ld.pool = pool;
    ld.err = err;
    ld.source = path;
    ld.gguf = &g;
    if ((rc = gguf_config(&g, &m->cfg, err))) goto done;
    ld.progress = progress;
    flx_progress_begin(progress, "load", 2 + 9 * (int64_t)m->cfg.n_layers +
                       (flx_gguf_find_tensor(&g, "output.weight") != NULL), progress->enabled);
    if ((rc = assemble(&ld, &gguf_names, 1))) goto done;
    if ((rc = gguf_rope(&ld, m))) goto done;
    snprintf(m->format, sizeof m->format, "gguf");
    rc = flx_gguf_load_tokenizer(&g, &m->tok, err);
    rc = attach_tokenizer(m, rc == FLX_ENOTFOUND ? FLX_OK : rc, err);
    if (rc) goto done;
    rc = keep_maps(m, &g.map, &ld.gguf_in_place, 1, err);
done:
    flx_gguf_close(&g);
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int flx_model_load_ex(flx_model *m, const char *path, int n_threads, int progress, flx_error *err)
{
    memset(m, 0, sizeof *m);
    flx_progress pr;   /* begun by the format loader once the tensor count is known */
    memset(&pr, 0, sizeof pr);
    pr.enabled = progress;
    m->path = flx_path_join("", path);
    if (!m->path) return flx_fail(err, FLX_ENOMEM, "out of memory");
    flx_pool *pool = flx_pool_create(n_threads);
    int rc;
    if (flx_is_dir(path)) {
        rc = load_hf(m, path, NULL, pool, &pr, err);
    } else if (!flx_file_exists(path)) {
        rc = flx_path_fail(path, err);
    } else {
        unsigned char magic[4] = {0};
        FILE *fp = fopen(path, "rb");
        size_t got = fp ? fread(magic, 1, 4, fp) : 0;
        if (fp) fclose(fp);
        if (got == 4 && !memcmp(magic, "GGUF", 4)) {
            rc = load_gguf(m, path, pool, &pr, err);
        } else if (ends_with(path, "config.json") || ends_with(path, ".safetensors") ||
                   ends_with(path, ".index.json")) {
            char *dir = flx_path_join("", path);
            char *slash = dir ? strrchr(dir, '/') : NULL;
            if (!dir) rc = flx_fail(err, FLX_ENOMEM, "out of memory");
            else {
                if (slash) *slash = '\0';
                else strcpy(dir, ".");
                if (!*dir) strcpy(dir, "/");
                rc = load_hf(m, dir, ends_with(path, ".safetensors") ? path : NULL, pool, &pr, err);
            }
            free(dir);
        } else {
            rc = flx_fail(err, FLX_EFORMAT, "%s: not a GGUF file (bad magic), a Hugging Face "
                          "folder, a config.json or a .safetensors file", path);
        }
    }
    flx_pool_free(pool);
    if (pr.label) flx_progress_end(&pr);
    if (rc) flx_model_free(m);
    return rc;
}

int flx_model_load_threads(flx_model *m, const char *path, int n_threads, flx_error *err)
{
    return flx_model_load_ex(m, path, n_threads, 0, err);
}

int flx_model_load(flx_model *m, const char *path, flx_error *err)
{
    return flx_model_load_threads(m, path, 0, err);
}
