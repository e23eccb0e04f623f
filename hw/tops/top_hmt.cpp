// top_hmt.cpp -- synthesis/cosim tops: HMT retrieval and memory update (docs/hmt.md 4).
#include "flx_tops_hmt.h"

namespace flx_tops {

void top_hmt_recall(hls::stream<hls::vector<float, 4> > &s, hls::stream<hls::vector<float, 8> > wq[4],
                    const hmt_mem &mem, hls::stream<hls::vector<float, 4> > &q,
                    hls::stream<hls::vector<float, 4> > &a, hls::stream<hls::vector<float, 4> > &p,
                    unsigned d, unsigned h)
{
#pragma HLS TOP name = top_hmt_recall
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::hmt_recall<hmt_cfg>(s, wq, mem, q, a, p, d, h);
}

void top_hmt_update(hls::stream<hls::vector<float, 4> > &m, hls::stream<hls::vector<float, 8> > wk[4],
                    hmt_mem &mem, hls::stream<hls::vector<float, 4> > &k, unsigned seg, unsigned d,
                    unsigned h)
{
#pragma HLS TOP name = top_hmt_update
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::hmt_update<hmt_cfg>(m, wk, mem, k, seg, d, h);
}

}  // namespace flx_tops
