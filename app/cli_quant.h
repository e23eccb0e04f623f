/* cli_quant.h -- small quantization helpers shared by `flxemu quantize`,
 * its --search-bits pass and `flxemu analyze`. */
#ifndef FLX_CLI_QUANT_H
#define FLX_CLI_QUANT_H

#include "flx_gptq.h"
#include "flx_qmodel.h"

/* The weight quantizer a recipe's weights use (bits, scheme, groups, clip,
 * rounding). */
flx_wquant cli_wquant_of(const flx_recipe *r);

/* w [n_out, n_in] round-to-nearest quantized with wq and dequantized into
 * w_hat; FLX_OK or FLX_ENOMEM / flx_rtn's error. */
int cli_rtn_dequant(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, float *w_hat,
                    flx_error *err);

/* Options of a float forward over windows of seqlen tokens whose output is
 * what its hooks see (calibration measures): one logits row, a cache of one
 * window. */
flx_llama_opts cli_window_opts(int n_threads, int64_t seqlen, const flx_llama_hooks *hooks);

#endif
