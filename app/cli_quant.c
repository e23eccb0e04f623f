/* Quantization helpers of the CLI (cli_quant.h). */
#include "cli_quant.h"

#include <stdlib.h>

flx_wquant cli_wquant_of(const flx_recipe *r)
{
    flx_wquant wq = flx_wquant_int4_channel();
    wq.bits = r->w.bits;
    wq.symmetric = r->w.scheme == FLX_QS_SYM;
    wq.group_size = r->w.gran == FLX_QG_GROUP ? r->w.group_size : 0;
    wq.clip = r->w.clip;
    wq.half_even = r->w.round == FLX_QR_HALF_EVEN;
    wq.mse_clip = r->w.mse_clip;
    return wq;
}

int cli_rtn_dequant(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, float *w_hat,
                    flx_error *err)
{
    size_t nw = (size_t)n_out * n_in;
    int32_t ng = wq->group_size ? n_in / wq->group_size : 1;
    flx_wq_out o = {malloc(nw * sizeof(int32_t)), malloc((size_t)n_out * ng * sizeof(float)),
                    malloc((size_t)n_out * ng * sizeof(float))};
    int rc = o.q && o.scale && o.zero ? flx_rtn(w, n_out, n_in, wq, &o, w_hat, err)
                                      : flx_fail(err, FLX_ENOMEM, "out of memory");
    free(o.q);
    free(o.scale);
    free(o.zero);
    return rc;
}

flx_llama_opts cli_window_opts(int n_threads, int64_t seqlen, const flx_llama_hooks *hooks)
{
    flx_llama_opts o = {0};
    o.n_threads = n_threads;
    o.max_tokens = seqlen;
    o.max_ctx = seqlen;
    o.head_rows = 1;
    o.hooks = hooks;
    return o;
}
