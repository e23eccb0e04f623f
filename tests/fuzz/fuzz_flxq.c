/* libFuzzer target: .flxq quantized models (safetensors with the recipe,
 * config and rotation in the metadata).  A file that loads is also turned
 * into its fake-quant float model, which reads every packed weight. */
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
    return 0;
}
