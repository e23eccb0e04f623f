/* flx_gguf.h -- a validating reader of GGUF v3 files (ggml-org/ggml docs/gguf.md).
 *
 * File layout (little-endian):
 *   u32 magic "GGUF", u32 version (3), u64 tensor_count, u64 kv_count,
 *   kv_count x { string key, u32 value_type, value },
 *   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   zero padding to general.alignment (default 32), then the tensor data.
 * A string is u64 length + bytes (no NUL); an array is u32 elem_type + u64
 * count + elements (arrays may nest).  ne[0] is the fastest-varying dimension
 * (PyTorch's last one), so a [rows, cols] matrix has ne = {cols, rows}.
 *
 * flx_gguf_open() maps the file and checks every count, length, offset and
 * size against the file size before it is used; after it succeeds, every
 * pointer below stays inside the mapping.  Counts are bounded by the bytes
 * that remain, so a crafted header cannot trigger a huge allocation.
 */
#ifndef FLX_GGUF_H
#define FLX_GGUF_H

#include "flx_core.h"
#include "flx_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum flx_gguf_value_type {
    FLX_GGUF_U8 = 0, FLX_GGUF_I8 = 1, FLX_GGUF_U16 = 2, FLX_GGUF_I16 = 3,
    FLX_GGUF_U32 = 4, FLX_GGUF_I32 = 5, FLX_GGUF_F32 = 6, FLX_GGUF_BOOL = 7,
    FLX_GGUF_STRING = 8, FLX_GGUF_ARRAY = 9, FLX_GGUF_U64 = 10, FLX_GGUF_I64 = 11,
    FLX_GGUF_F64 = 12,
};

/* ggml tensor types (the ones whose block layout this reader knows). */
enum flx_ggml_type {
    FLX_GGML_F32 = 0, FLX_GGML_F16 = 1, FLX_GGML_Q4_0 = 2, FLX_GGML_Q4_1 = 3,
    FLX_GGML_Q5_0 = 6, FLX_GGML_Q5_1 = 7, FLX_GGML_Q8_0 = 8, FLX_GGML_Q8_1 = 9,
    FLX_GGML_Q2_K = 10, FLX_GGML_Q3_K = 11, FLX_GGML_Q4_K = 12, FLX_GGML_Q5_K = 13,
    FLX_GGML_Q6_K = 14, FLX_GGML_Q8_K = 15, FLX_GGML_I8 = 24, FLX_GGML_I16 = 25,
    FLX_GGML_I32 = 26, FLX_GGML_I64 = 27, FLX_GGML_F64 = 28, FLX_GGML_BF16 = 30,
};

#define FLX_GGUF_MAX_DIMS 4
/* Caps on a file's counts (README, "Resource caps"): Llama-3.2-1B has 147
 * tensors and ~30 keys; the caps keep the tables allocated while reading a
 * crafted header to a few MiB. */
#define FLX_GGUF_MAX_TENSORS 65536
#define FLX_GGUF_MAX_KV      65536
#define FLX_GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapping: not NUL-terminated. */
typedef struct flx_gguf_str {
    const char *ptr;
    uint64_t    len;
} flx_gguf_str;

typedef struct flx_gguf_kv {
    flx_gguf_str   key;
    uint32_t       type;        /* enum flx_gguf_value_type               */
    const uint8_t *value;       /* first byte of the value in the mapping */
    uint64_t       value_bytes; /* encoded size of the value              */
    /* arrays only */
    uint32_t       arr_type;    /* element type                           */
    uint64_t       arr_count;   /* number of elements                     */
    const uint8_t *arr_data;    /* first element                          */
    size_t         offset;      /* file offset of the value, for messages */
} flx_gguf_kv;

typedef struct flx_gguf_tensor {
    flx_gguf_str   name;
    uint32_t       n_dims;
    int64_t        ne[FLX_GGUF_MAX_DIMS]; /* ggml order; unused dims are 1 */
    uint32_t       type;                  /* enum flx_ggml_type            */
    int64_t        n_elems;
    size_t         offset;                /* absolute file offset of the data */
    size_t         bytes;
    const uint8_t *data;
} flx_gguf_tensor;

typedef struct flx_gguf {
    flx_mapped_file  map;
    uint32_t         version;
    uint32_t         alignment;
    flx_gguf_kv     *kvs;       /* [n_kv]      */
    uint64_t         n_kv;
    flx_gguf_tensor *tensors;   /* [n_tensors] */
    uint64_t         n_tensors;
    size_t           data_offset; /* start of the tensor-data section */
} flx_gguf;

/* Maps and validates path.  On failure g is left empty (safe to close). */
int  flx_gguf_open(flx_gguf *g, const char *path, flx_error *err);
void flx_gguf_close(flx_gguf *g);

/* Lookups return NULL when absent. */
const flx_gguf_kv     *flx_gguf_find(const flx_gguf *g, const char *key);
const flx_gguf_tensor *flx_gguf_find_tensor(const flx_gguf *g, const char *name);

/* Typed getters: FLX_OK, FLX_ENOTFOUND (key absent; no message is written
 * so callers can fall back to a default) or FLX_EFORMAT (wrong type or out
 * of range; the message names the file and key).
 * get_int accepts every integer type (gguf-py writes u32 where the spec
 * says u64); get_float accepts f32, f64 and integers. */
int flx_gguf_get_int(const flx_gguf *g, const char *key, int64_t *out, flx_error *err);
int flx_gguf_get_float(const flx_gguf *g, const char *key, double *out, flx_error *err);
int flx_gguf_get_bool(const flx_gguf *g, const char *key, int *out, flx_error *err);
int flx_gguf_get_str(const flx_gguf *g, const char *key, flx_gguf_str *out, flx_error *err);
/* Arrays: the kv of an array whose elements have elem_type. */
int flx_gguf_get_array(const flx_gguf *g, const char *key, uint32_t elem_type,
                       const flx_gguf_kv **out, flx_error *err);

/* Copies a string array into one malloc'ed block: (*out)[i] is a NUL-
 * terminated copy of element i; free(*out) releases everything.  Embedded
 * NUL bytes are rejected. */
int flx_gguf_array_strings(const flx_gguf *g, const flx_gguf_kv *kv, char ***out,
                           flx_error *err);
/* Converts a numeric array (any integer or float type) to int32 / float;
 * integers outside int32 are an error.  *out is malloc'ed. */
int flx_gguf_array_i32(const flx_gguf *g, const flx_gguf_kv *kv, int32_t **out, flx_error *err);
int flx_gguf_array_f32(const flx_gguf *g, const flx_gguf_kv *kv, float **out, flx_error *err);

/* Returns 1 when s equals the NUL-terminated text. */
int flx_gguf_str_eq(flx_gguf_str s, const char *text);

/* ggml type facts: elements per block and bytes per block (0 if unknown). */
const char *flx_ggml_type_name(uint32_t type);   /* "F32", "Q8_0", "?" */
int64_t     flx_ggml_block_elems(uint32_t type);
size_t      flx_ggml_block_bytes(uint32_t type);
/* 1 for the types flx_ggml_dequantize handles: F32, F16, BF16, Q8_0, Q4_0. */
int         flx_ggml_can_dequantize(uint32_t type);

/* Converts n_elems elements (a multiple of the block size) of src to fp32.
 * src need not be aligned. */
void flx_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n_elems);

/* Builds the tokenizer stored in a GGUF's tokenizer.ggml.* keys ("gpt2" ->
 * byte-level BPE, "llama" -> SentencePiece-style).  FLX_ENOTFOUND (no
 * message) when the file has no tokenizer.ggml.model key.  (tokenizer_load.c) */
int flx_gguf_load_tokenizer(const flx_gguf *g, flx_tokenizer **out, flx_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FLX_GGUF_H */
