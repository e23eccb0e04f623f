/* flx_qmodel.h -- a quantized Llama model in memory: what `flxemu quantize`
 * produces, what .flxq files hold, and what the bit-exact emulator consumes.
 *
 * Contract between quant/ (producer) and emu/ (consumer).  Fields may be
 * added; existing fields keep their meaning.
 *
 * Weights of the FlexLLM recipe: INT4 symmetric per output channel, values
 * in [-8, 7] stored one per int8 (unpacked, for speed; .flxq files pack two
 * per byte, even channel in the low nibble), a float scale per row and the
 * float sum of the row's dequantized weights (wsum = s * sum_k q[k], stored,
 * never recomputed: reference-design §1.2).
 *
 * A model loaded with flx_qmodel_load_ex(.lazy_codes = 1) keeps its 4-bit
 * codes as the file's nibbles (flx_qtensor.nib, no int8 copy: the bit-exact
 * engine packs its own layout straight from them); code that wants int8
 * codes reads rows with flx_qtensor_rows or calls flx_qmodel_unpack once.
 */
#ifndef FLX_QMODEL_H
#define FLX_QMODEL_H

#include "flx_model.h"
#include "flx_quant.h"
#include "flx_rotate.h"
#include "flx_llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flx_qtensor {
    int32_t n_out;         /* rows (output channels)                        */
    int32_t n_in;          /* columns (input channels)                      */
    int32_t bits;          /* 2..8, or 16/32 for an unquantized float tensor */
    int32_t group_size;    /* columns per scale; n_in = per output channel  */
    int     symmetric;     /* 1: q in [-2^(b-1), 2^(b-1)-1]; 0: uses zero   */
    int8_t *q;             /* (n_out, n_in) integer values, or NULL if float
                              or not unpacked (nib set: see above)          */
    float  *scale;         /* (n_out, n_in / group_size)                    */
    float  *zero;          /* (n_out, n_in / group_size) zero points, or NULL */
    float  *wsum;          /* (n_out) s * sum(q) per row, or NULL           */
    float  *w;             /* (n_out, n_in) float weights when bits >= 16   */
    /* added later */
    const uint8_t *nib;    /* 4-bit codes as the .flxq file stores them:
                              (n_out) rows of (n_in + 1) / 2 bytes, even
                              column in the low nibble, two's complement;
                              inside the open file (lazy loads), else NULL */
} flx_qtensor;

/* 1 when t holds integer codes (int8 q, or the file's nibbles), 0 for a
 * float tensor. */
int  flx_qtensor_is_int(const flx_qtensor *t);
/* The int8 codes of rows [row0, row0 + n_rows) of an integer tensor into
 * dst (n_rows * n_in bytes), from q or else from the nibbles. */
void flx_qtensor_rows(const flx_qtensor *t, int64_t row0, int64_t n_rows, int8_t *dst);

typedef struct flx_qlayer {
    const float *attn_norm;   /* (d_model) gains; all ones after folding   */
    flx_qtensor  wq, wk, wv, wo;
    const float *ffn_norm;    /* (d_model)                                 */
    flx_qtensor  w_gate, w_up, w_down;
    /* FlexLLM static attention scales (reference-design §1.12), one value
     * per layer replicated over heads: Q8 = round(q / (8 * q_s)) etc. */
    float        q_s, k_s, v_s, a_s;
} flx_qlayer;

typedef struct flx_qmodel {
    flx_llama_config cfg;
    char             recipe[64];   /* "flexllm", "fp", "w4a8kv8", ...     */
    char             rotation[32]; /* "none", "hadamard", "random", "file" */
    int              r3_online;    /* Hadamard on Q and K after RoPE       */
    int              r4_online;    /* normalized Hadamard before down_proj */
    const float     *tok_embd;     /* (n_vocab, d_model) fp32, rotated     */
    flx_qlayer      *layers;       /* [n_layers]                           */
    const float     *out_norm;     /* (d_model)                            */
    flx_qtensor      head;         /* (n_vocab, d_model)                   */
    double          *rope_inv_freq;/* [head_dim/2]                         */
    flx_tokenizer   *tok;          /* NULL if none                         */
    /* storage owned by the model */
    void           **owned;
    size_t           n_owned;
    size_t           cap_owned;
    flx_mapped_file  file;         /* unused: loads keep st_file below     */
    /* added after the first version */
    int              has_attn_scales; /* q_s..a_s of the layers are set     */
    uint64_t         rotation_seed;
    float           *r4_dense;     /* (d_ff, d_ff) when d_ff is not a power
                                      of two, else NULL (FHT)              */
    char             source[512];  /* model the file was made from (its
                                      tokenizer is loaded from there)      */
    struct flx_safetensors *st_file; /* open .flxq mapping, or NULL        */
    int32_t          d_ff_source;  /* the source model's d_ff when cfg.d_ff
                                      was zero-padded (metadata "padding"),
                                      else 0                               */
    /* the self-contained description (docs/quant.md "The .flxq file") */
    const char      *provenance;   /* JSON (metadata "provenance") or NULL */
    const uint8_t   *tok_blob;     /* embedded tokenizer bytes, or NULL    */
    size_t           tok_blob_bytes;
    char             tok_format[16];  /* "tokenizer.json" or "gguf"      */
    char             tok_sha256[65];
    const uint64_t  *calib_ngrams;  /* flx_calib_ngrams, or NULL (saved only) */
    size_t           n_calib_ngrams;
    int              mixed;         /* some tensor's bits differ from the recipe's
                                       (metadata "mixed_bits") */
    int32_t         *a_bits_of;     /* NULL, or [n_layers * 4 + 1]: activation
                                       bits of layer l's linear input k (the
                                       flx_linear_kind qkv, o, gate_up, down) at
                                       l * 4 + k, the head input last; 0 = the
                                       recipe's, 16 = float (metadata
                                       "mixed_act_bits") */
} flx_qmodel;

/* ---------------------------------------------------------------- recipes */

/* What a recipe string means (docs/quant.md "Recipes").
 *   "fp"        no quantization: only the chosen rotations and foldings.
 *   "flexllm"   the production precision map of reference-design §3.2:
 *               W4 per-channel symmetric (+ wsum), A4 per-token asymmetric
 *               with float offset on every linear input (lm_head too),
 *               Q/K/V INT8 and P UINT8 with static per-layer scales, INT4
 *               head, fp32 embedding, R4 online when rotated, no R3.
 *   "w<B>[g<G>]a<B>[kv<B>][-spinquant]"   research recipes, e.g. w4a16,
 *               w4a16g128, w8a8, w4a8kv8, w4a4kv4-spinquant.  B in 2..8 or
 *               16 (16 = left in float), G divides every linear's input.
 *               Without suffix: FlexLLM's quantizers (weights symmetric per
 *               channel or group, C round; activations per token with float
 *               offset; K and V per head with float offset).  -spinquant:
 *               SpinQuant's (weights symmetric with MSE clip search,
 *               half-to-even; activations per-token asymmetric with integer
 *               zero point, o_proj input per head; K after RoPE and V per
 *               head with zero point; R3 online when kv < 16 and R4 online
 *               when rotated).  Embedding and lm_head stay float. */
typedef enum flx_recipe_kind {
    FLX_RECIPE_FP = 0,
    FLX_RECIPE_FLEXLLM,
    FLX_RECIPE_RESEARCH,
    FLX_RECIPE_SPINQUANT,
} flx_recipe_kind;

typedef struct flx_recipe {
    char            name[64];    /* canonical string                       */
    flx_recipe_kind kind;
    int32_t         w_bits;      /* 16: weights stay float                 */
    flx_qspec       w;           /* weight quantizer (ROW or GROUP)        */
    int             w_wsum;      /* store s * sum(q) per row (FlexLLM)     */
    int32_t         a_bits;      /* 16: activations stay float             */
    flx_qspec       a;           /* q/k/v, gate/up, down inputs            */
    flx_qspec       a_o;         /* o_proj input                           */
    int             quant_head;  /* head weights and input quantized       */
    int32_t         kv_bits;     /* 16: K/V stay float                     */
    flx_qspec       k, v;        /* per head (GROUP of head_dim)           */
    int             static_attn; /* FlexLLM static INT8 Q/K/V, UINT8 P     */
    int             r3_online;   /* when rotated                           */
    int             r4_online;   /* when rotated                           */
    int             r3_always;   /* R3 also without rotation (-spinquant
                                    with kv < 16, as SpinQuant's eval)     */
} flx_recipe;

/* Parses a recipe string; FLX_EINVAL with a message naming the string and
 * the offending part for anything else. */
int flx_recipe_parse(flx_recipe *r, const char *text, flx_error *err);

/* Checks the recipe against a model config (group sizes divide d_model,
 * n_heads*head_dim and d_ff; head_dim for per-head groups). */
int flx_recipe_check(const flx_recipe *r, const flx_llama_config *cfg, flx_error *err);

/* One-line JSON description of every quantizer of the recipe (stored in
 * .flxq metadata for people and tools; loading re-parses the name). */
int flx_recipe_json(const flx_recipe *r, char *buf, size_t cap);

/* ---------------------------------------------------------------- building */

/* F in FlexLLM's static Q quantizer Q8 = round(q / (F * Q_s)): the
 * reference's integer macro sqrt_HEAD_DIM, i.e. floor(sqrt(head_dim))
 * (8 for Llama-3.2-1B's head_dim 64).  Calibration, the fake-quant model
 * and the emulator must all use this one value. */
int32_t flx_attn_q_factor(int32_t head_dim);

/* Per-layer static attention scales (flexllm): q_s, k_s, v_s, a_s. */
typedef struct flx_attn_scales {
    float q_s, k_s, v_s, a_s;
} flx_attn_scales;

/* A weight quantizer other than round-to-nearest (GPTQ): fills q
 * (n_out, n_in) codes and scale/zero (n_out, n_groups) for the spec ws;
 * layer = n_layers for the head. */
typedef int (*flx_weight_quant_fn)(void *ctx, int layer, const char *name, const flx_qspec *ws,
                                   const float *w, int32_t n_out, int32_t n_in, int32_t *q,
                                   float *scale, float *zero, flx_error *err);

/* Builds qm from a float model m (already folded / rotated by the caller)
 * with round-to-nearest weights, unless weight_fn supplies quantized ones.
 * rot describes the rotations applied (NULL: none); scales (n_layers) is
 * required when the recipe has static attention.  Tensors of m are copied:
 * qm does not reference m afterwards. */
typedef struct flx_qbuild {
    const flx_recipe       *recipe;
    const flx_rotation_set *rot;          /* NULL: no rotation              */
    uint64_t                rot_seed;
    const flx_attn_scales  *scales;       /* [n_layers] or NULL             */
    const char             *source;       /* source model path, for the tokenizer */
    flx_pool               *pool;         /* NULL: serial                   */
    int                     progress;     /* progress bar on stderr         */
    flx_weight_quant_fn     weight_fn;    /* NULL: round to nearest         */
    void                   *weight_ctx;
    int32_t                 d_ff_source;  /* d_ff before flx_model_pad_dff, 0: not padded */
    const char             *provenance;   /* JSON object to store, or NULL  */
    const int32_t          *w_bits_of;    /* mixed precision: weight bits per tensor,
                                             [n_layers * 7 + 1] (layer l linear i at
                                             l*7 + i in wq..w_down order, the head
                                             last); 0 = the recipe's; NULL = none */
    const int32_t          *a_bits_of;    /* mixed precision: activation bits per linear
                                             input, flx_qmodel.a_bits_of's layout; NULL = none */
} flx_qbuild;

int  flx_qmodel_build(flx_qmodel *qm, const flx_model *m, const flx_qbuild *b, flx_error *err);
void flx_qmodel_free(flx_qmodel *qm);
void *flx_qmodel_alloc(flx_qmodel *qm, size_t bytes);

/* ---------------------------------------------------------------- .flxq files */

/* Writes / reads the .flxq file (safetensors; docs/quant.md "File format").
 * The same model gives the same bytes.  Loading checks every tensor's
 * dtype and shape against the stored config and recipe, and attaches the
 * source model's tokenizer when it can be found (else tok = NULL). */
int flx_qmodel_save(const flx_qmodel *qm, const char *path, flx_error *err);
int flx_qmodel_load(flx_qmodel *qm, const char *path, flx_error *err);

/* flx_qmodel_load with options: the same checks and messages, the work
 * (finite checks, unpacking) split over pool (NULL: this thread; the model
 * is the same for any thread count).  lazy_codes = 1: 4-bit tensors keep
 * their codes as the file's nibbles (t->nib set, t->q NULL), which saves an
 * int8 copy of every weight (1.2 GB for a 1B model) when the consumer packs
 * its own layout (the bit-exact engine); other widths are unpacked as
 * always. */
typedef struct flx_qload_opts {
    flx_pool *pool;
    int       lazy_codes;
} flx_qload_opts;
int flx_qmodel_load_ex(flx_qmodel *qm, const char *path, const flx_qload_opts *o, flx_error *err);
/* Gives every tensor that only has nibbles its int8 codes t->q (rows over
 * pool; a no-op for a model that has them all).  FLX_ENOMEM when out of
 * memory (the tensors unpacked so far keep their codes). */
int flx_qmodel_unpack(flx_qmodel *qm, flx_pool *pool, flx_error *err);
/* Drops the file pages of t's nibbles from memory (RSS) once a consumer has
 * copied them (the engine after packing); t->nib stays readable (the pages
 * come back from the file on access).  No-op without nibbles. */
void flx_qtensor_release(const flx_qmodel *qm, const flx_qtensor *t);

/* Embeds the tokenizer file at path into qm (saved as tensor "tokenizer"
 * and metadata "tokenizer"): a tokenizer.json as its bytes, a GGUF as a
 * tokenizer-only GGUF (its tokenizer.* keys and general.architecture, no
 * tensors).  It is checked to load first. */
int flx_qmodel_embed_tokenizer(flx_qmodel *qm, const char *path, flx_error *err);
/* A tokenizer from the bytes of a tokenizer.json or GGUF file. */
int flx_tokenizer_from_bytes(flx_tokenizer **out, const uint8_t *bytes, size_t n, flx_error *err);

/* A .flxq file's description, read from its header only (metadata strings
 * as stored, NULL when absent: files from before a key existed). */
typedef struct flx_qmeta {
    char   *recipe, *recipe_json, *rotation, *config, *source, *padding, *provenance, *tokenizer, *mixed_bits,
           *mixed_act_bits;
    int64_t tokenizer_bytes;   /* embedded tokenizer tensor, 0: none */
    size_t  n_tensors;
} flx_qmeta;
int  flx_qmeta_read(flx_qmeta *m, const char *path, flx_error *err);
void flx_qmeta_free(flx_qmeta *m);
/* "recipe R, rotation K (seed S) +R3 +R4, ..., GPTQ weights, calibration
 * N x L tokens (sha256 ...), source sha256 ..., flxemu V" */
void flx_qmeta_summary(const flx_qmeta *m, char *buf, size_t cap);
/* {"summary", "recipe", "rotation", "padding", "tokenizer", "provenance"}
 * as one JSON object (malloc'd; free with free), NULL when out of memory. */
char *flx_qmeta_json(const flx_qmeta *m);

/* Calibration n-grams: the 64-bit FNV-1a hashes of every FLX_NGRAM_N-token
 * n-gram inside the calibration windows whose top FLX_NGRAM_SAMPLE_BITS
 * bits are 0 (a 1-in-16 sample, chosen by content so that the same n-gram
 * is sampled in any text), sorted and unique; saved as tensor
 * "calib_ngrams" (U8, the uint64 values little-endian). */
#define FLX_NGRAM_N 8
#define FLX_NGRAM_SAMPLE_BITS 4
int flx_calib_ngrams(const int32_t *ids, int64_t n_windows, int64_t seqlen, uint64_t **out, size_t *n_out,
                     flx_error *err);
/* Fraction of the sampled n-grams of tokens that occur in the file's
 * calibration n-grams (n_checked: how many were sampled); -1 when the file
 * has none (no calibration, or written before they were stored). */
double flx_qmodel_calib_overlap(const char *path, const int32_t *tokens, int64_t n_tokens, int64_t *n_checked);

/* Mixed precision: "layers.<l>.<wq|wk|wv|wo|w_gate|w_up|w_down>" or "head"
 * to its index in a w_bits_of array (l*7 + i, head n_layers*7); -1 when
 * the name is not a tensor of this model. */
int flx_qtensor_index(const char *name, int32_t n_layers);
/* Parses a recipe file (docs/quant.md "Mixed precision"): the base recipe
 * into r, the per-tensor weight bits into w_bits_of (n_layers*7 + 1) and
 * the per-input activation bits into a_bits_of (n_layers*4 + 1, the
 * flx_qmodel.a_bits_of layout), both zeroed first; messages name the file
 * and the entry. */
int flx_recipe_file_load(const char *path, const flx_llama_config *cfg, flx_recipe *r, int32_t *w_bits_of,
                         int32_t *a_bits_of, flx_error *err);
/* "layers.<l>.<qkv|o|gate_up|down>" or "head" to its index in an
 * a_bits_of array (l*4 + k, head n_layers*4); -1 otherwise. */
int flx_qinput_index(const char *name, int32_t n_layers);
/* The activation bits of layer l's input kind (head: l = n_layers) in qm. */
int32_t flx_qmodel_act_bits(const flx_qmodel *qm, const flx_recipe *r, int layer, flx_linear_kind kind);

/* 1 when path is a readable .flxq file (safetensors with format = flxq). */
int flx_qmodel_is_file(const char *path);

/* ---------------------------------------------------------------- fake quantization */

/* The fake-quant float model of a qmodel: a flx_model whose weights are
 * the dequantized ones, plus the hooks that fake-quantize activations (and
 * apply the online R3/R4 rotations) inside flx_llama_forward.  Pass
 * &fq->hooks in flx_llama_opts.hooks.  Recipes with static attention
 * scales (flexllm) also get their softmax output P quantized (UINT8 with
 * A_s) through the probs hook. */
typedef struct flx_fakequant {
    flx_model        model;
    flx_llama_hooks  hooks;
    const flx_qmodel *qm;
    flx_recipe       recipe;
    flx_rotation_set rot;       /* r3/r4 online part only            */
    int              rotated;
    flx_qmodel      *own_qm;    /* set by flx_fakequant_open          */
    flx_pool        *pool;      /* row-parallel hook work (online
                                   rotations, per-token fake quant);
                                   NULL: serial.  Set by
                                   flx_fakequant_open_threads, which
                                   owns it; never changes a result    */
    int              lean;      /* 1: quantized linears are NULL in the
                                   model and hooks.weight_rows
                                   dequantizes them per product       */
} flx_fakequant;

/* fq must not move after the call (hooks.ctx points at it). */
int  flx_fakequant_build(flx_fakequant *fq, const flx_qmodel *qm, flx_error *err);
void flx_fakequant_free(flx_fakequant *fq);

/* One call for a command that evaluates a .flxq file with code written for
 * a flx_model (flxemu ppl, generate):
 *     flx_fakequant *fq = NULL;
 *     if (flx_qmodel_is_file(path)) rc = flx_fakequant_open(&fq, &model, path, &err);
 *     ...  opts.hooks = fq ? &fq->hooks : NULL;  flx_llama_init(&st, &model, &opts, ...)
 *     flx_model_free(&model);  flx_fakequant_close(fq);      (in that order)
 * The fake-quant float model is moved into *m (with the tokenizer of the
 * source model, when found); the returned object owns the quantized model
 * that *m's embedding and norms point into, and the hooks. */
int  flx_fakequant_open(flx_fakequant **fq, flx_model *m, const char *path, flx_error *err);
/* Same, with n_threads threads for dequantizing the weights and for the
 * hooks' row-parallel work (same bits).  The hooks must then be called
 * from one thread at a time, as flx_llama_forward does. */
int  flx_fakequant_open_threads(flx_fakequant **fq, flx_model *m, const char *path, int n_threads,
                                flx_error *err);
/* The lean fake-quant model (what flxemu ppl and generate use): the float
 * model holds no dequantized copy of a quantized linear (its pointer is
 * NULL, float tensors point into the quantized model); hooks.weight_rows
 * dequantizes the rows each product needs, with the same formula, into a
 * buffer of the forward state.  Memory is the quantized model plus
 * activations and that buffer; the logits have the bits of the eager model
 * of flx_fakequant_open_threads / flx_fakequant_build (the sgemm calls are
 * the same; pieces of at most flx_llama_opts.weight_block_bytes split a
 * block into several calls on whole multiples of 64 rows). */
int  flx_fakequant_open_lean(flx_fakequant **fq, flx_model *m, const char *path, int n_threads,
                             flx_error *err);
int  flx_fakequant_build_lean(flx_fakequant *fq, const flx_qmodel *qm, flx_error *err);
void flx_fakequant_close(flx_fakequant *fq);   /* NULL-safe */

#ifdef __cplusplus
}
#endif
#endif
