/* libFuzzer target: .flxq quantized models (safetensors with the recipe,
 * config and rotation in the metadata).  A file that loads is also turned
 * into its fake-quant float model, which reads every packed weight, and
 * loaded again lazily (nibbles kept) and unpacked. */
#include "fuzz_util.h"
#include "flx_qmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.flxq", data, size);
    flx_qmodel qm;
    flx_error err = {0};
    int rc = flx_qmodel_load(&qm, path, &err);
    fuzz_check_error(rc, &err);
    if (rc != FLX_OK) return 0;
    flx_fakequant fq;
    rc = flx_fakequant_build(&fq, &qm, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) flx_fakequant_free(&fq);
    flx_qmodel_free(&qm);
    /* the lazy load (the engine's: 4-bit codes left as nibbles) on a pool,
     * then every code read through the explicit unpack */
    flx_pool *pool = flx_pool_create(2);
    const flx_qload_opts o = { pool, 1 };
    rc = flx_qmodel_load_ex(&qm, path, &o, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) {
        rc = flx_qmodel_unpack(&qm, pool, &err);
        fuzz_check_error(rc, &err);
        flx_qmodel_free(&qm);
    }
    flx_pool_free(pool);
    return 0;
}
