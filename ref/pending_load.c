/* Temporary definitions so the program links while the loaders are being
 * written; each function is deleted from here when its real one lands. */
#include "flx_synth.h"

int flx_synth_config(const char *shape, flx_llama_config *cfg, flx_error *err)
{ (void)cfg; return flx_fail(err, FLX_EUNSUPPORTED, "synthetic shape %s is not built yet", shape); }
int flx_synth_build(flx_model *m, const flx_llama_config *cfg, uint64_t seed, flx_error *err)
{ (void)m; (void)cfg; (void)seed; return flx_fail(err, FLX_EUNSUPPORTED, "synthetic models are not built yet"); }
int flx_synth_write_hf(const char *dir, const flx_llama_config *cfg, uint64_t seed, int bf16,
                       const char *tokenizer_path, flx_error *err)
{ (void)cfg; (void)seed; (void)bf16; (void)tokenizer_path; return flx_fail(err, FLX_EUNSUPPORTED, "%s: synth is not built yet", dir); }
