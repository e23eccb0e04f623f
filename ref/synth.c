/* Synthetic Llama models: named shapes, deterministic random weights, a
 * byte-level vocabulary of our own, and an HF checkpoint-folder writer.
 *
 * Weights: tensor t (model order: embedding, then per layer attn_norm, q, k,
 * v, o, ffn_norm, gate, up, down, then the final norm, then the untied head)
 * is cut into blocks of SYNTH_BLOCK_ROWS rows; every block draws from its own
 * RNG stream seeded from (seed, t, block).  Blocks can therefore be made in
 * any order, by any thread, in memory or streamed to a file, and always give
 * the same numbers.  The "normal" draw is the Irwin-Hall sum of four 16-bit
 * uniforms (mean 0, variance 1, within +-3.47): integer arithmetic plus one
 * rounding to float, so the bytes are identical on every platform. */
#include "flx_safetensors.h"
#include "flx_synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNTH_BLOCK_ROWS   64
#define SYNTH_STD          0.02      /* matrices and embedding */
#define SYNTH_NORM_STD     0.02      /* norm gains: 1 + this * z */
#define SYNTH_CHUNK_FLOATS (8u << 20) /* streaming buffer when writing */

/* ------------------------------------------------------------ shapes */

int flx_synth_config(const char *shape, flx_llama_config *c, flx_error *err)
{
    memset(c, 0, sizeof *c);
    /* Both shapes use Llama-3.2's RoPE: theta 500000 with llama3 scaling. */
    c->rms_eps = 1e-5f;
    c->rope_theta = 500000.0;
    c->rope_llama3 = 1;
    c->rope_factor = 32.0;
    c->rope_low_freq_factor = 1.0;
    c->rope_high_freq_factor = 4.0;
    c->rope_orig_max_pos = 8192;
    c->rope_pairing = FLX_ROPE_SPLIT_HALF;
    c->tie_embeddings = 1;
    if (!strcmp(shape, "llama-3.2-1b")) {
        c->n_vocab = 128256;
        c->d_model = 2048;
        c->n_layers = 16;
        c->n_heads = 32;
        c->n_kv_heads = 8;
        c->head_dim = 64;
        c->d_ff = 8192;
        c->max_seq_len = 131072;
        c->bos_id = 128000;
        c->eos_id = 128001;
    } else if (!strcmp(shape, "tiny")) {
        c->n_vocab = 258;      /* 256 bytes + BOS + EOS */
        c->d_model = 64;
        c->n_layers = 2;
        c->n_heads = 4;
        c->n_kv_heads = 2;
        c->head_dim = 16;      /* 8 frequencies: kept, blended and divided ones */
        c->d_ff = 172;
        c->max_seq_len = 2048;
        c->bos_id = 256;
        c->eos_id = 257;
    } else {
        return flx_fail(err, FLX_EINVAL, "unknown synthetic shape \"%s\" (known: llama-3.2-1b, tiny)",
                        shape);
    }
    return FLX_OK;
}

/* ------------------------------------------------------------ tensors */

typedef struct synth_tensor {
    char    name[96];      /* HF name */
    int64_t rows, cols;    /* cols == 0: a vector of rows elements */
    int     norm;          /* gains around 1 instead of weights around 0 */
} synth_tensor;

/* The tensors of cfg in model order; returns the count (*out malloc'ed). */
static size_t synth_tensors(const flx_llama_config *c, synth_tensor **out)
{
    size_t n = 2 + 9 * (size_t)c->n_layers + (c->tie_embeddings ? 0 : 1);
    synth_tensor *t = calloc(n, sizeof *t);
    *out = t;
    if (!t) return 0;
    int64_t d = c->d_model, q = (int64_t)c->n_heads * c->head_dim;
    int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, f = c->d_ff;
    size_t k = 0;
    snprintf(t[k].name, sizeof t[k].name, "model.embed_tokens.weight");
    t[k].rows = c->n_vocab, t[k++].cols = d;
    static const char *names[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                   "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    for (int l = 0; l < c->n_layers; l++) {
        int64_t shape[9][2] = {{d, 0}, {q, d}, {kv, d}, {kv, d}, {d, q}, {d, 0}, {f, d}, {f, d}, {d, f}};
        for (int i = 0; i < 9; i++, k++) {
            snprintf(t[k].name, sizeof t[k].name, "model.layers.%d.%s.weight", l, names[i]);
            t[k].rows = shape[i][0];
            t[k].cols = shape[i][1];
            t[k].norm = shape[i][1] == 0;
        }
    }
    snprintf(t[k].name, sizeof t[k].name, "model.norm.weight");
    t[k].rows = d, t[k].norm = 1, k++;
    if (!c->tie_embeddings) {
        snprintf(t[k].name, sizeof t[k].name, "lm_head.weight");
        t[k].rows = c->n_vocab, t[k++].cols = d;
    }
    return k;
}

static int64_t tensor_elems(const synth_tensor *t) { return t->rows * (t->cols ? t->cols : 1); }
/* As a matrix of rows x cols (vectors are one row). */
static int64_t mat_rows(const synth_tensor *t) { return t->cols ? t->rows : 1; }
static int64_t mat_cols(const synth_tensor *t) { return t->cols ? t->cols : t->rows; }

typedef struct fill_job {
    uint64_t seed;
    uint64_t tensor;
    int64_t  rows, cols;  /* the tensor as a matrix */
    int64_t  block0;      /* block of pool index 0 */
    int64_t  row0;        /* first row held in dst */
    int      norm;
    float   *dst;
} fill_job;

static void fill_blocks(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const fill_job *j = ctx;
    /* (sum of four U{0..65535}) has mean 131070 and variance 4 (65536^2 - 1) / 12 */
    const double unit = 1.0 / sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
    const double scale = (j->norm ? SYNTH_NORM_STD : SYNTH_STD) * unit;
    for (int64_t b = j->block0 + begin; b < j->block0 + end; b++) {
        flx_rng rng;
        flx_rng_seed(&rng, j->seed ^ (0x9E3779B97F4A7C15ull * (j->tensor + 1)) ^
                               (0xD1B54A32D192ED03ull * (uint64_t)(b + 1)));
        int64_t r0 = b * SYNTH_BLOCK_ROWS;
        int64_t r1 = r0 + SYNTH_BLOCK_ROWS < j->rows ? r0 + SYNTH_BLOCK_ROWS : j->rows;
        float *dst = j->dst + (r0 - j->row0) * j->cols;
        int64_t n = (r1 - r0) * j->cols;
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = flx_rng_u64(&rng);
            int64_t s = (int64_t)(u & 0xFFFF) + (int64_t)((u >> 16) & 0xFFFF) +
                        (int64_t)((u >> 32) & 0xFFFF) + (int64_t)(u >> 48) - 131070;
            double z = (double)s * scale;
            dst[i] = j->norm ? (float)(1.0 + z) : (float)z;
        }
    }
}

/* Fills rows [row0, row0 + n_rows) of tensor t into dst; row0 is a multiple
 * of SYNTH_BLOCK_ROWS and n_rows is too unless the range ends the tensor. */
static void fill_rows(flx_pool *pool, uint64_t seed, size_t t_index, const synth_tensor *t,
                      int64_t row0, int64_t n_rows, float *dst)
{
    fill_job j = {seed, t_index, mat_rows(t), mat_cols(t), row0 / SYNTH_BLOCK_ROWS, row0, t->norm,
                  dst};
    int64_t n_blocks = (n_rows + SYNTH_BLOCK_ROWS - 1) / SYNTH_BLOCK_ROWS;
    int64_t block_elems = SYNTH_BLOCK_ROWS * j.cols;
    int64_t grain = block_elems >= (1 << 18) ? 1 : (1 << 18) / block_elems;
    flx_pool_for(pool, n_blocks, grain, fill_blocks, &j);
}

/* ------------------------------------------------------------ byte vocabulary */

/* GPT-2's byte -> unicode map: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take code points 256, 257, ... in byte order. */
static int byte_is_printable(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static uint32_t byte_code_point(int b)
{
    if (byte_is_printable(b)) return (uint32_t)b;
    uint32_t n = 0;
    for (int x = 0; x < b; x++) n += !byte_is_printable(x);
    return 256 + n;
}

static int utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;   /* every code point here is below 0x800 */
}

#define SYNTH_BOS_TEXT "<|begin_of_text|>"
#define SYNTH_EOS_TEXT "<|end_of_text|>"

typedef struct byte_vocab {
    char       text[256][4];   /* UTF-8 of each byte's code point */
    const char **tokens;       /* [n_vocab]; NULL = unused id */
    int32_t    *types;         /* [n_vocab] */
} byte_vocab;

static int byte_vocab_init(byte_vocab *v, const flx_llama_config *c, flx_vocab_desc *d,
                           flx_error *err)
{
    memset(v, 0, sizeof *v);
    if (c->n_vocab < 258 || c->bos_id < 256 || c->eos_id < 256 || c->bos_id == c->eos_id ||
        c->bos_id >= c->n_vocab || c->eos_id >= c->n_vocab)
        return flx_fail(err, FLX_EINVAL, "synthetic byte vocabulary needs vocab_size >= 258 and "
                        "distinct bos/eos ids in [256, vocab_size) (got %d, %d, %d)", c->n_vocab,
                        c->bos_id, c->eos_id);
    v->tokens = calloc((size_t)c->n_vocab, sizeof *v->tokens);
    v->types = malloc((size_t)c->n_vocab * sizeof *v->types);
    if (!v->tokens || !v->types) {
        free(v->tokens);
        free(v->types);
        return flx_fail(err, FLX_ENOMEM, "out of memory for the byte vocabulary");
    }
    for (int32_t i = 0; i < c->n_vocab; i++) v->types[i] = FLX_TOKEN_UNUSED;
    for (int b = 0; b < 256; b++) {
        v->text[b][utf8_put(byte_code_point(b), v->text[b])] = '\0';
        v->tokens[b] = v->text[b];
        v->types[b] = FLX_TOKEN_NORMAL;
    }
    v->tokens[c->bos_id] = SYNTH_BOS_TEXT;
    v->tokens[c->eos_id] = SYNTH_EOS_TEXT;
    v->types[c->bos_id] = v->types[c->eos_id] = FLX_TOKEN_CONTROL;
    memset(d, 0, sizeof *d);
    d->kind = FLX_TOK_BPE;
    d->n_tokens = c->n_vocab;
    d->tokens = v->tokens;
    d->token_types = v->types;
    d->bos_id = c->bos_id;
    d->eos_id = c->eos_id;
    d->unk_id = -1;
    d->add_bos = 1;
    d->pre = "llama-bpe";
    return FLX_OK;
}

static void byte_vocab_free(byte_vocab *v)
{
    free(v->tokens);
    free(v->types);
}

/* ------------------------------------------------------------ in memory */

int flx_synth_build_threads(flx_model *m, const flx_llama_config *cfg, uint64_t seed, int n_threads,
                            flx_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = flx_llama_config_validate(cfg, "synthetic config", err);
    if (rc) return rc;
    m->cfg = *cfg;
    synth_tensor *t = NULL;
    size_t n = synth_tensors(cfg, &t);
    flx_pool *pool = flx_pool_create(n_threads);
    m->w.layers = calloc((size_t)cfg->n_layers, sizeof *m->w.layers);
    m->w.rope_inv_freq = malloc((size_t)(cfg->head_dim / 2) * sizeof(double));
    m->path = malloc(64);
    if (!n || !pool || !m->w.layers || !m->w.rope_inv_freq || !m->path) {
        rc = flx_fail(err, FLX_ENOMEM, "out of memory building a synthetic model");
        goto done;
    }
    snprintf(m->path, 64, "synthetic (seed %llu)", (unsigned long long)seed);
    snprintf(m->format, sizeof m->format, "synthetic");
    for (size_t i = 0; i < n; i++) {
        int64_t elems = tensor_elems(&t[i]);
        float *w = flx_model_alloc(m, (size_t)elems * sizeof(float));
        if (!w) {
            rc = flx_fail(err, FLX_ENOMEM, "out of memory for synthetic tensor %s (%lld floats)",
                          t[i].name, (long long)elems);
            goto done;
        }
        fill_rows(pool, seed, i, &t[i], 0, mat_rows(&t[i]), w);
        m->weight_bytes_f32 += (size_t)elems * sizeof(float);
        m->n_params += elems;
        /* model order -> struct fields */
        if (i == 0) m->w.tok_embd = w;
        else if (i <= 9 * (size_t)cfg->n_layers) {
            flx_llama_layer *L = &m->w.layers[(i - 1) / 9];
            const float **slot[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm,
                                     &L->w_gate, &L->w_up, &L->w_down};
            *slot[(i - 1) % 9] = w;
        } else if (i == 9 * (size_t)cfg->n_layers + 1) m->w.out_norm = w;
        else m->w.output = w;
    }
    if (cfg->tie_embeddings) m->w.output = m->w.tok_embd;
    m->n_tensors = (int32_t)n;
    snprintf(m->dtypes, sizeof m->dtypes, "F32 x%zu", n);
    flx_llama_rope_inv_freq(cfg, m->w.rope_inv_freq);

    byte_vocab v;
    flx_vocab_desc d;
    if ((rc = byte_vocab_init(&v, cfg, &d, err))) goto done;
    rc = flx_tokenizer_create(&m->tok, &d, err);
    byte_vocab_free(&v);
    if (rc == FLX_EUNSUPPORTED) {   /* tokenizer engine not available: run without one */
        size_t k = strnlen(err->msg, sizeof m->tok_note - 1);
        memcpy(m->tok_note, err->msg, k);
        m->tok_note[k] = '\0';
        m->tok = NULL;
        err->code = FLX_OK;
        err->msg[0] = '\0';
        rc = FLX_OK;
    }
done:
    free(t);
    flx_pool_free(pool);
    if (rc) flx_model_free(m);
    return rc;
}

int flx_synth_build(flx_model *m, const flx_llama_config *cfg, uint64_t seed, flx_error *err)
{
    return flx_synth_build_threads(m, cfg, seed, 0, err);
}

/* ------------------------------------------------------------ HF folder */

static const char *llama3_split_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static cJSON *special_token(int32_t id, const char *text)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", text);
    cJSON_AddBoolToObject(t, "single_word", 0);
    cJSON_AddBoolToObject(t, "lstrip", 0);
    cJSON_AddBoolToObject(t, "rstrip", 0);
    cJSON_AddBoolToObject(t, "normalized", 0);
    cJSON_AddBoolToObject(t, "special", 1);
    return t;
}

/* tokenizer.json in the Hugging Face format, shaped like Llama-3.2's: the
 * Llama-3 split regex + ByteLevel, a BPE model with the 256 byte tokens and
 * no merges, BOS/EOS as added tokens, BOS prepended by the post-processor. */
static char *byte_tokenizer_json(const flx_llama_config *c)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddItemToArray(added, special_token(c->bos_id, SYNTH_BOS_TEXT));
    cJSON_AddItemToArray(added, special_token(c->eos_id, SYNTH_EOS_TEXT));
    cJSON_AddNullToObject(root, "normalizer");

    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", llama3_split_regex);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddItemToArray(pres, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(pres, bl);

    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single");
    cJSON *st = cJSON_CreateObject();
    cJSON *sti = cJSON_AddObjectToObject(st, "SpecialToken");
    cJSON_AddStringToObject(sti, "id", SYNTH_BOS_TEXT);
    cJSON_AddNumberToObject(sti, "type_id", 0);
    cJSON_AddItemToArray(single, st);
    cJSON *seq = cJSON_CreateObject();
    cJSON *seqi = cJSON_AddObjectToObject(seq, "Sequence");
    cJSON_AddStringToObject(seqi, "id", "A");
    cJSON_AddNumberToObject(seqi, "type_id", 0);
    cJSON_AddItemToArray(single, seq);
    cJSON *sp = cJSON_AddObjectToObject(cJSON_AddObjectToObject(post, "special_tokens"), SYNTH_BOS_TEXT);
    cJSON_AddStringToObject(sp, "id", SYNTH_BOS_TEXT);
    cJSON *ids = cJSON_AddArrayToObject(sp, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(c->bos_id));
    cJSON *toks = cJSON_AddArrayToObject(sp, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(SYNTH_BOS_TEXT));

    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 1);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char text[4];
        text[utf8_put(byte_code_point(b), text)] = '\0';
        cJSON_AddNumberToObject(vocab, text, b);
    }
    cJSON_AddArrayToObject(model, "merges");
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

static int write_text_file(const char *path, const char *text, size_t bytes, flx_error *err)
{
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (rc) return rc;
    if (fwrite(text, 1, bytes, o.fp) != bytes) {
        flx_outfile_abort(&o);
        return flx_fail(err, FLX_EIO, "%s: write failed", path);
    }
    return flx_outfile_commit(&o, err);
}

/* The shortest %g text that reads back as the same float (1e-05, not 9.99999975e-06). */
static void short_float(float v, char *buf, size_t cap)
{
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

/* A double as JSON the way Python writes floats: 500000.0, 0.5, 1e-05. */
static void json_double(double v, char *buf, size_t cap)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, "%.1f", v);
    else snprintf(buf, cap, "%.17g", v);
}

static int write_config_json(const char *path, const flx_llama_config *c, int bf16, flx_error *err)
{
    char theta[40], factor[40], low[40], high[40];
    json_double(c->rope_theta, theta, sizeof theta);
    json_double(c->rope_factor, factor, sizeof factor);
    json_double(c->rope_low_freq_factor, low, sizeof low);
    json_double(c->rope_high_freq_factor, high, sizeof high);
    char eps[32];
    short_float(c->rms_eps, eps, sizeof eps);
    char rope[320] = "null";
    if (c->rope_llama3)
        snprintf(rope, sizeof rope,
                 "{\n    \"factor\": %s,\n    \"high_freq_factor\": %s,\n    \"low_freq_factor\": "
                 "%s,\n    \"original_max_position_embeddings\": %d,\n    \"rope_type\": \"llama3\"\n  }",
                 factor, high, low, c->rope_orig_max_pos);
    char text[2048];
    int n = snprintf(text, sizeof text,
        "{\n"
        "  \"architectures\": [\"LlamaForCausalLM\"],\n"
        "  \"attention_bias\": false,\n"
        "  \"attention_dropout\": 0.0,\n"
        "  \"bos_token_id\": %d,\n"
        "  \"eos_token_id\": %d,\n"
        "  \"head_dim\": %d,\n"
        "  \"hidden_act\": \"silu\",\n"
        "  \"hidden_size\": %d,\n"
        "  \"initializer_range\": 0.02,\n"
        "  \"intermediate_size\": %d,\n"
        "  \"max_position_embeddings\": %d,\n"
        "  \"mlp_bias\": false,\n"
        "  \"model_type\": \"llama\",\n"
        "  \"num_attention_heads\": %d,\n"
        "  \"num_hidden_layers\": %d,\n"
        "  \"num_key_value_heads\": %d,\n"
        "  \"pretraining_tp\": 1,\n"
        "  \"rms_norm_eps\": %s,\n"
        "  \"rope_scaling\": %s,\n"
        "  \"rope_theta\": %s,\n"
        "  \"tie_word_embeddings\": %s,\n"
        "  \"torch_dtype\": \"%s\",\n"
        "  \"use_cache\": true,\n"
        "  \"vocab_size\": %d\n"
        "}\n",
        c->bos_id, c->eos_id, c->head_dim, c->d_model, c->d_ff, c->max_seq_len, c->n_heads,
        c->n_layers, c->n_kv_heads, eps, rope, theta,
        c->tie_embeddings ? "true" : "false", bf16 ? "bfloat16" : "float32", c->n_vocab);
    if (n < 0 || (size_t)n >= sizeof text) return flx_fail(err, FLX_EINVAL, "%s: config too long", path);
    return write_text_file(path, text, (size_t)n, err);
}

typedef struct bf16_job {
    const float *src;
    uint16_t    *dst;
} bf16_job;

static void to_bf16(void *ctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const bf16_job *j = ctx;
    for (int64_t i = begin; i < end; i++) j->dst[i] = flx_f32_to_bf16(j->src[i]);
}

static int write_weights(const char *path, const flx_llama_config *cfg, uint64_t seed, int bf16,
                         flx_pool *pool, int progress, flx_error *err)
{
    synth_tensor *t = NULL;
    size_t n = synth_tensors(cfg, &t);
    flx_st_desc *d = calloc(n ? n : 1, sizeof *d);
    float *fbuf = NULL;
    uint16_t *hbuf = NULL;
    int rc = FLX_OK;
    if (!n || !d) {
        rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        goto done;
    }
    int64_t total = 0, max_cols = 1;
    for (size_t i = 0; i < n; i++) {
        d[i].name = t[i].name;
        d[i].dtype = bf16 ? FLX_ST_BF16 : FLX_ST_F32;
        d[i].n_dims = t[i].cols ? 2 : 1;
        d[i].shape[0] = t[i].rows;
        d[i].shape[1] = t[i].cols;
        total += tensor_elems(&t[i]);
        if (mat_cols(&t[i]) > max_cols) max_cols = mat_cols(&t[i]);
    }
    /* a chunk is a whole number of row blocks, about SYNTH_CHUNK_FLOATS */
    int64_t chunk_blocks = (int64_t)SYNTH_CHUNK_FLOATS / (SYNTH_BLOCK_ROWS * max_cols);
    if (chunk_blocks < 1) chunk_blocks = 1;
    size_t buf_elems = (size_t)(chunk_blocks * SYNTH_BLOCK_ROWS * max_cols);
    fbuf = malloc(buf_elems * sizeof *fbuf);
    hbuf = bf16 ? malloc(buf_elems * sizeof *hbuf) : NULL;
    if (!fbuf || (bf16 && !hbuf)) {
        rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        goto done;
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    flx_st_writer w;
    if ((rc = flx_st_writer_begin(&w, path, d, n, mk, mv, 1, err))) goto done;
    flx_progress pr;
    flx_progress_begin(&pr, "synth", total, progress);
    int64_t done_elems = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int64_t rows = mat_rows(&t[i]), cols = mat_cols(&t[i]);
        for (int64_t r0 = 0; r0 < rows && !rc; r0 += chunk_blocks * SYNTH_BLOCK_ROWS) {
            int64_t nr = rows - r0 < chunk_blocks * SYNTH_BLOCK_ROWS ? rows - r0
                                                                    : chunk_blocks * SYNTH_BLOCK_ROWS;
            int64_t elems = nr * cols;
            fill_rows(pool, seed, i, &t[i], r0, nr, fbuf);
            if (bf16) {
                bf16_job j = {fbuf, hbuf};
                flx_pool_for(pool, elems, 1 << 16, to_bf16, &j);
                rc = flx_st_writer_write(&w, hbuf, (size_t)elems * 2, err);
            } else {
                rc = flx_st_writer_write(&w, fbuf, (size_t)elems * 4, err);
            }
            done_elems += elems;
            flx_progress_update(&pr, done_elems);
        }
    }
    flx_progress_end(&pr);
    if (rc) flx_st_writer_abort(&w);
    else rc = flx_st_writer_commit(&w, err);
done:
    free(fbuf);
    free(hbuf);
    free(d);
    free(t);
    return rc;
}

int flx_synth_write_hf_ex(const char *dir, const flx_llama_config *cfg, uint64_t seed, int bf16,
                          const char *tokenizer_path, int n_threads, int progress, flx_error *err)
{
    int rc = flx_llama_config_validate(cfg, "synthetic config", err);
    if (rc) return rc;
    if (!flx_is_dir(dir)) return flx_fail(err, FLX_EIO, "%s: not a folder", dir);
    char *paths[3] = {flx_path_join(dir, "model.safetensors"), flx_path_join(dir, "tokenizer.json"),
                      flx_path_join(dir, "config.json")};
    int written[3] = {0, 0, 0};
    char *text = NULL;
    size_t bytes = 0;
    flx_pool *pool = flx_pool_create(n_threads);
    if (!paths[0] || !paths[1] || !paths[2] || !pool) {
        rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        goto done;
    }
    /* the tokenizer is checked first so that a bad --tokenizer costs nothing */
    if (tokenizer_path) {
        if ((rc = flx_read_file(tokenizer_path, 512u << 20, &text, &bytes, err))) goto done;
        if (bytes >= 4 && !memcmp(text, "GGUF", 4)) {
            rc = flx_fail(err, FLX_EINVAL, "%s: is a GGUF file; --tokenizer expects a Hugging Face "
                          "tokenizer.json", tokenizer_path);
            goto done;
        }
        cJSON *probe = cJSON_ParseWithLength(text, bytes);
        int ok = probe && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(probe, "model"));
        cJSON_Delete(probe);
        if (!ok) {
            rc = flx_fail(err, FLX_EFORMAT, "%s: not a Hugging Face tokenizer.json (no \"model\" "
                          "object)", tokenizer_path);
            goto done;
        }
        /* a tokenizer with ids past the embedding would make an unloadable folder */
        flx_tokenizer *tok = NULL;
        rc = flx_tokenizer_load_json(&tok, tokenizer_path, err);
        if (rc == FLX_EUNSUPPORTED) rc = FLX_OK;   /* engine not available: copy unchecked */
        if (rc) goto done;
        int32_t tok_vocab = tok ? flx_tokenizer_n_vocab(tok) : 0;
        flx_tokenizer_free(tok);
        if (tok_vocab > cfg->n_vocab) {
            rc = flx_fail(err, FLX_EINVAL, "%s: the tokenizer has %d tokens but the model's "
                          "vocabulary is %d", tokenizer_path, tok_vocab, cfg->n_vocab);
            goto done;
        }
    } else {
        byte_vocab v;
        flx_vocab_desc d;
        if ((rc = byte_vocab_init(&v, cfg, &d, err))) goto done;   /* checks bos/eos ids */
        byte_vocab_free(&v);
        text = byte_tokenizer_json(cfg);
        if (!text) {
            rc = flx_fail(err, FLX_ENOMEM, "out of memory");
            goto done;
        }
        bytes = strlen(text);
    }
    /* config.json last: a folder that has it is complete */
    if ((rc = write_weights(paths[0], cfg, seed, bf16, pool, progress, err))) goto done;
    written[0] = 1;
    if ((rc = write_text_file(paths[1], text, bytes, err))) goto done;
    written[1] = 1;
    if ((rc = write_config_json(paths[2], cfg, bf16, err))) goto done;
    written[2] = 1;
done:
    if (rc)
        for (int i = 0; i < 3; i++)
            if (written[i]) unlink(paths[i]);
    for (int i = 0; i < 3; i++) free(paths[i]);
    free(text);
    flx_pool_free(pool);
    return rc;
}

int flx_synth_write_hf(const char *dir, const flx_llama_config *cfg, uint64_t seed, int bf16,
                       const char *tokenizer_path, flx_error *err)
{
    return flx_synth_write_hf_ex(dir, cfg, seed, bf16, tokenizer_path, 0, 0, err);
}
