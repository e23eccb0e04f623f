// residual.h -- residual add y = a + r, one float add (docs/kernels.md 7;
// reference-design §1.10 `Residual_Layer`).
#ifndef FLX_HLS_RESIDUAL_H
#define FLX_HLS_RESIDUAL_H

#include "flx_hls.h"

namespace flx_hls {

struct residual_config {
    static const unsigned b = 16;          // lanes (TP in prefill)
};

template <class CONFIG_T>
void residual(hls::stream<hls::vector<float, CONFIG_T::b> > &in,
              hls::stream<hls::vector<float, CONFIG_T::b> > &res,
              hls::stream<hls::vector<float, CONFIG_T::b> > &y, unsigned beats)
{
    for (unsigned k = 0; k < beats; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, CONFIG_T::b> a = in.read(), r = res.read(), o;
        for (unsigned i = 0; i < CONFIG_T::b; i++) {
#pragma HLS UNROLL
            o[i] = a[i] + r[i];
        }
        y.write(o);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_RESIDUAL_H
