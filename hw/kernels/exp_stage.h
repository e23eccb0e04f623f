// exp_stage.h -- the configured exponential on a stream (docs/kernels.md 1), so
// that testbenches and cosim can check flx-exp on its own.
#ifndef FLX_HLS_EXP_STAGE_H
#define FLX_HLS_EXP_STAGE_H

#include "flx_hls.h"

namespace flx_hls {

struct exp_stage_config {
    static const int exp_impl = EXP_FLX;
};

template <class CONFIG_T>
void exp_stage(hls::stream<float> &x, hls::stream<float> &y, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
#pragma HLS PIPELINE II = 1
        y.write(exp_sel<CONFIG_T::exp_impl>(x.read()));
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_EXP_STAGE_H
