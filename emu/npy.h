/* npy.h -- .npy v1.0 files (optionally gzip) as the golden vectors use them:
 * encoding in memory, reading back with a size limit, writing atomically.
 * Private to emu/ (golden.c). */
#ifndef FLX_EMU_NPY_H
#define FLX_EMU_NPY_H

#include "flx_core.h"

#include <stddef.h>
#include <stdint.h>

/* the element types a golden set holds */
typedef enum { DT_F4, DT_I1, DT_U1, DT_I4 } flx_npy_dtype;

const char *flx_npy_descr(flx_npy_dtype t);      /* "<f4", "|i1", "|u1", "<i4"        */
const char *flx_npy_dtype_name(flx_npy_dtype t); /* "float32", "int8", "uint8", "int32" */
size_t flx_npy_elem_bytes(flx_npy_dtype t);

/* The whole .npy file (header padded to 64 bytes, then the C-order data of
 * shape[0..ndim-1]) in a malloc'd buffer of *n bytes; NULL when out of
 * memory or the header does not fit. */
uint8_t *flx_npy_encode(flx_npy_dtype t, int ndim, const int64_t *shape, const void *data, size_t *n);

/* gzip of a buffer at a fixed level (same bytes for the same input); 0 or -1 */
int flx_npy_gzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_n);

/* Reads a file, gunzipping a .gz name, into a malloc'd buffer.  A .gz file
 * is inflated to at most max_bytes + 1 bytes (enough to see that it is
 * longer than expected), so a small gzip bomb cannot make it allocate
 * gigabytes. */
int flx_npy_read(const char *path, size_t max_bytes, uint8_t **data, size_t *n, flx_error *err);

/* writes bytes to path through a temporary file renamed over it */
int flx_npy_write(const char *path, const uint8_t *bytes, size_t n, flx_error *err);

/* one element as text for messages: %a for float32, decimal for integers */
void flx_npy_elem_text(char *buf, size_t cap, flx_npy_dtype t, const uint8_t *elem);

#endif
