/* flx_model.h -- a Llama-family model in memory, and its loaders.
 *
 * Loaders: Hugging Face checkpoint folders (config.json + model.safetensors or
 * a sharded model.safetensors.index.json; F32/BF16/F16) and GGUF v3 files
 * (general.architecture = llama; F32/F16/BF16, Q8_0 and Q4_0 dequantized on
 * load).  Every weight is held as fp32, row-major [out][in] like PyTorch's
 * Linear.  F32 tensors are used in place from the memory map when aligned;
 * other dtypes are converted into owned buffers.  Every offset, size and
 * dimension is checked against the file size before use.
 *
 * RoPE pairing follows the file: HF q/k rows are in split-half (rotate_half)
 * order, GGUF rows in adjacent-pair order (docs/model-files.md §1); the pairing is
 * recorded in the config and the forward pass obeys it.
 */
#ifndef FLX_MODEL_H
#define FLX_MODEL_H

#include "flx_core.h"
#include "flx_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flx_rope_pairing {
    FLX_ROPE_SPLIT_HALF = 0,   /* dim i with i + head_dim/2 (HF rotate_half) */
    FLX_ROPE_ADJACENT   = 1,   /* dims 2i, 2i+1 (Meta, llama2.c, GGUF)       */
} flx_rope_pairing;

typedef struct flx_llama_config {
    int32_t n_vocab;
    int32_t d_model;          /* hidden_size */
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t d_ff;             /* intermediate_size */
    int32_t max_seq_len;      /* max_position_embeddings / context_length */
    float   rms_eps;
    double  rope_theta;
    int     rope_llama3;      /* llama3 frequency scaling present */
    double  rope_factor;
    double  rope_low_freq_factor;
    double  rope_high_freq_factor;
    int32_t rope_orig_max_pos;
    flx_rope_pairing rope_pairing;
    int     tie_embeddings;   /* output head shares tok_embd */
    int32_t bos_id;           /* -1 if unknown */
    int32_t eos_id;           /* -1 if unknown */
} flx_llama_config;

typedef struct flx_llama_layer {
    const float *attn_norm;   /* (d_model)                        */
    const float *wq;          /* (n_heads*head_dim, d_model)      */
    const float *wk;          /* (n_kv_heads*head_dim, d_model)   */
    const float *wv;          /* (n_kv_heads*head_dim, d_model)   */
    const float *wo;          /* (d_model, n_heads*head_dim)      */
    const float *ffn_norm;    /* (d_model)                        */
    const float *w_gate;      /* (d_ff, d_model)                  */
    const float *w_up;        /* (d_ff, d_model)                  */
    const float *w_down;      /* (d_model, d_ff)                  */
} flx_llama_layer;

typedef struct flx_llama_weights {
    const float     *tok_embd;      /* (n_vocab, d_model)                  */
    flx_llama_layer *layers;        /* [n_layers]                          */
    const float     *out_norm;      /* (d_model)                           */
    const float     *output;        /* (n_vocab, d_model); == tok_embd if tied */
    double          *rope_inv_freq; /* [head_dim/2], owned: theta^(-2i/d) with
                                       llama3 scaling (or rope_freqs divisors) */
} flx_llama_weights;

typedef struct flx_model {
    flx_llama_config  cfg;
    flx_llama_weights w;
    flx_tokenizer    *tok;          /* NULL if the source carries none     */
    char             *path;         /* what was loaded, for messages       */
    char              format[16];   /* "hf", "gguf", "synthetic", ...      */
    /* storage owned by the model */
    void            **owned;        /* malloc'ed buffers                   */
    size_t            n_owned;
    size_t            cap_owned;
    flx_mapped_file  *maps;         /* mapped files                        */
    size_t            n_maps;
    size_t            weight_bytes_f32; /* fp32 bytes of all distinct weights */
    /* what the loader saw, for `flxemu info` and messages */
    int64_t           n_params;     /* elements of all distinct weights    */
    int32_t           n_tensors;    /* tensors read from the source        */
    char              dtypes[96];   /* source dtypes, e.g. "BF16 x18, F32 x5" */
    int               rope_freqs_tensor; /* rope_inv_freq came from rope_freqs.weight */
    char              tok_note[256]; /* why tok is NULL when a tokenizer was present
                                        but not usable yet ("" otherwise)  */
} flx_model;

/* Loads an HF folder, a config.json/model.safetensors path, or a .gguf file.
 * The tokenizer is attached when the source has one (tokenizer.json beside
 * the safetensors, tokenizer.ggml.* in GGUF). */
int  flx_model_load(flx_model *m, const char *path, flx_error *err);
/* Same, converting non-F32 weights with n_threads workers (<= 0: one per
 * core).  The result does not depend on n_threads. */
int  flx_model_load_threads(flx_model *m, const char *path, int n_threads, flx_error *err);
/* Same with a progress bar (tensors done) on stderr when progress != 0. */
int  flx_model_load_ex(flx_model *m, const char *path, int n_threads, int progress, flx_error *err);
void flx_model_free(flx_model *m);

/* Hugging Face config.json (LlamaForCausalLM; Llama-2 and Llama-3.x fields,
 * rope_scaling of type llama3; eos_token_id may be a list: the first is
 * taken).  source names the file in messages.  Pairing is set to
 * FLX_ROPE_SPLIT_HALF.  The result is validated. */
int  flx_hf_config_parse(const char *json, size_t bytes, const char *source,
                         flx_llama_config *cfg, flx_error *err);
int  flx_hf_config_load(const char *path, flx_llama_config *cfg, flx_error *err);

/* Storage helpers for code that builds a model in memory (synthetic models,
 * converters): allocate a buffer the model owns and frees. */
void *flx_model_alloc(flx_model *m, size_t bytes);
/* Frees p now when the model owns it (a buffer from flx_model_alloc) and
 * returns 1; otherwise does nothing and returns 0.  The caller clears its
 * pointers to p. */
int   flx_model_release(flx_model *m, const void *p);

/* Checks that cfg is internally consistent (positive sizes, heads divide,
 * head_dim even, ...); the message names the offending field. */
int flx_llama_config_validate(const flx_llama_config *cfg, const char *source, flx_error *err);

/* inv_freq[i] for i < head_dim/2, in double, exactly as HF computes it
 * (theta^(-2i/d), then the llama3 wavelength rule when enabled). */
void flx_llama_rope_inv_freq(const flx_llama_config *cfg, double *inv_freq);

#ifdef __cplusplus
}
#endif
#endif /* FLX_MODEL_H */
