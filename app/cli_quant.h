/* cli_quant.h -- small quantization helpers shared by `flxemu quantize`,
 * its --search-bits pass and `flxemu analyze`. */
#ifndef FLX_CLI_QUANT_H
#define FLX_CLI_QUANT_H

#include "flx_gptq.h"
#include "flx_qmodel.h"
#include "flx_rotate.h"

/* The weight quantizer a recipe's weights use (bits, scheme, groups, clip,
 * rounding). */
flx_wquant cli_wquant_of(const flx_recipe *r);

/* w [n_out, n_in] round-to-nearest quantized with wq and dequantized into
 * w_hat; FLX_OK or FLX_ENOMEM / flx_rtn's error. */
int cli_rtn_dequant(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, float *w_hat,
                    flx_error *err);

/* The online R3 of rs (when rs is not NULL) on n rows of q and k: the body
 * of a measuring forward's qkv hook. */
void cli_rot_r3_qk(const flx_rotation_set *rs, float *q, float *k, int64_t n, const flx_llama_config *cfg);

#endif
