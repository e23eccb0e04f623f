// flx_tops_hmt.h -- synthesizable tops of HMT's retrieval and ring-buffer
// update (hw/kernels/hmt.h; docs/hmt.md 4), U280 sizes d = h = 2048, 64
// slots, B 4, W 8, flx-exp, empty slots masked (FlexLLM as intended).
#ifndef FLX_TOPS_HMT_H
#define FLX_TOPS_HMT_H

#include "../kernels/hmt.h"

namespace flx_tops {

typedef flx_hls::hmt_config hmt_cfg;
typedef flx_hls::hmt_memory<hmt_cfg> hmt_mem;

void top_hmt_recall(hls::stream<hls::vector<float, 4> > &s, hls::stream<hls::vector<float, 8> > wq[4],
                    const hmt_mem &mem, hls::stream<hls::vector<float, 4> > &q,
                    hls::stream<hls::vector<float, 4> > &a, hls::stream<hls::vector<float, 4> > &p,
                    unsigned d, unsigned h);
void top_hmt_update(hls::stream<hls::vector<float, 4> > &m, hls::stream<hls::vector<float, 8> > wk[4],
                    hmt_mem &mem, hls::stream<hls::vector<float, 4> > &k, unsigned seg, unsigned d,
                    unsigned h);

}  // namespace flx_tops

#endif
