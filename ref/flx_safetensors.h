/* flx_safetensors.h -- reader and writer of the safetensors format
 * (huggingface/safetensors README).
 *
 * Layout: u64 LE N; N bytes of UTF-8 JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [BEGIN, END]}, ...}
 * right-padded with spaces; then the byte buffer.  Offsets are relative to
 * the buffer, END exclusive; shapes are PyTorch order (row-major, last
 * dimension fastest); data is little-endian.
 *
 * The reader maps the file and checks: N <= 100 MB and inside the file, the
 * JSON is an object of well-formed entries with unique names, every dtype is
 * known, byte size == product(shape) * dtype size, offsets lie inside the
 * buffer and no two tensors overlap.
 */
#ifndef FLX_SAFETENSORS_H
#define FLX_SAFETENSORS_H

#include "flx_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flx_st_dtype {
    FLX_ST_BOOL, FLX_ST_U8, FLX_ST_I8, FLX_ST_I16, FLX_ST_U16, FLX_ST_F16, FLX_ST_BF16,
    FLX_ST_I32, FLX_ST_U32, FLX_ST_F32, FLX_ST_I64, FLX_ST_U64, FLX_ST_F64,
    FLX_ST_N_DTYPES
} flx_st_dtype;

#define FLX_ST_MAX_DIMS 8
#define FLX_ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)
#define FLX_ST_MAX_TENSORS 65536   /* entries of one header (README, "Resource caps") */
#define FLX_ST_MAX_JSON_VALUES (1u << 20)   /* values in the header JSON */

const char *flx_st_dtype_name(flx_st_dtype dt);   /* "F32", "BF16", ... */
size_t      flx_st_dtype_bytes(flx_st_dtype dt);
/* Parses a dtype string; -1 if unknown. */
int         flx_st_dtype_parse(const char *name);

typedef struct flx_st_tensor {
    char          *name;
    flx_st_dtype   dtype;
    int            n_dims;
    int64_t        shape[FLX_ST_MAX_DIMS];  /* PyTorch order */
    int64_t        n_elems;
    size_t         offset;                  /* absolute file offset */
    size_t         bytes;
    const uint8_t *data;                    /* inside the mapping */
} flx_st_tensor;

typedef struct flx_safetensors {
    flx_mapped_file map;
    flx_st_tensor  *tensors;     /* [n_tensors], in header order */
    size_t          n_tensors;
    char          **meta_keys;   /* [n_meta] */
    char          **meta_values; /* [n_meta] */
    size_t          n_meta;
    size_t          data_offset; /* 8 + N */
} flx_safetensors;

int  flx_st_open(flx_safetensors *st, const char *path, flx_error *err);
void flx_st_close(flx_safetensors *st);
const flx_st_tensor *flx_st_find(const flx_safetensors *st, const char *name);  /* NULL if absent */
const char *flx_st_meta(const flx_safetensors *st, const char *key);            /* NULL if absent */

/* ------------------------------------------------------------ writer */

typedef struct flx_st_desc {
    const char    *name;
    flx_st_dtype   dtype;
    int            n_dims;
    int64_t        shape[FLX_ST_MAX_DIMS];
} flx_st_desc;

/* Streaming writer: the header is written from the descriptors first, then
 * the data of each tensor in the given order, in as many pieces as the
 * caller likes.  The file appears at path only on commit (flx_outfile). */
typedef struct flx_st_writer {
    flx_outfile  out;
    size_t      *tensor_bytes;   /* [n] */
    size_t       n;
    size_t       cur;            /* tensor being written */
    size_t       cur_written;    /* bytes of it written so far */
} flx_st_writer;

/* meta: n_meta (key, value) string pairs for "__metadata__" (may be 0). */
int  flx_st_writer_begin(flx_st_writer *w, const char *path, const flx_st_desc *tensors, size_t n,
                         const char *const *meta_keys, const char *const *meta_values,
                         size_t n_meta, flx_error *err);
int  flx_st_writer_write(flx_st_writer *w, const void *data, size_t bytes, flx_error *err);
int  flx_st_writer_commit(flx_st_writer *w, flx_error *err);
void flx_st_writer_abort(flx_st_writer *w);

/* One call: data[i] holds tensor i (its byte size follows from the desc). */
int flx_st_write(const char *path, const flx_st_desc *tensors, const void *const *data, size_t n,
                 const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                 flx_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FLX_SAFETENSORS_H */
