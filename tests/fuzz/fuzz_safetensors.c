/* libFuzzer target: .safetensors files.  Opens the input with flx_st_open,
 * looks every tensor and metadata key up by name, and touches every byte the
 * reader says a tensor occupies (ASan checks the ranges stay in the file). */
#include "fuzz_util.h"
#include "flx_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.safetensors", data, size);
    flx_safetensors st;
    flx_error err = {0};
    int rc = flx_st_open(&st, path, &err);
    fuzz_check_error(rc, &err);
    if (rc != FLX_OK) return 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const flx_st_tensor *t = &st.tensors[i];
        if (flx_st_find(&st, t->name) == NULL) abort();   /* every listed tensor is found */
        if (t->n_dims < 0 || t->n_dims > FLX_ST_MAX_DIMS) abort();
        size_t want = (size_t)t->n_elems * flx_st_dtype_bytes(t->dtype);
        if (t->bytes != want) abort();                     /* size agrees with shape and dtype */
        fuzz_touch(t->data, t->bytes);
        (void)flx_st_dtype_name(t->dtype);
    }
    for (size_t i = 0; i < st.n_meta; i++) {
        const char *v = flx_st_meta(&st, st.meta_keys[i]);
        if (!v) abort();
        fuzz_touch(v, strlen(v));
    }
    flx_st_close(&st);
    return 0;
}
