// top_topk_sampling.cpp -- synthesis/cosim top: top-k sampling (docs/kernels.md 9).
#include "flx_tops.h"

namespace flx_tops {

void top_topk_sampling(stream<vector<float, 16> > &logits, float r, int ids[5], float values[5],
                       float probs[5], int *token)
{
#pragma HLS TOP name = top_topk_sampling
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return
    flx_hls::topk_result<topk_sampling_cfg> res;
    flx_hls::topk_sampling<topk_sampling_cfg>(logits, r, res);
    for (unsigned p = 0; p < topk_sampling_cfg::k; p++) {
        ids[p] = res.id[p];
        values[p] = res.value[p];
        probs[p] = res.prob[p];
    }
    *token = res.token;
}

}  // namespace flx_tops
