// causal_mask.h -- the prefill causal mask (docs/kernels.md 4.1; reference-design §1.12.7
// `pref_causal_mask`): key j of the query at position p is kept when j <= p,
// else replaced by -1e32f (exp(-1e32 - m) is exactly 0 in the softmax).
#ifndef FLX_HLS_CAUSAL_MASK_H
#define FLX_HLS_CAUSAL_MASK_H

#include "flx_hls.h"

namespace flx_hls {

struct causal_mask_pref_config {
    static const unsigned tp = 8;   // TOKEN_PARALLEL
};

// Per token block M (first_block, first_block+1, ...) and head, seq_len
// beats (key j, lanes = queries 8M+t): key j is kept when j <= 8M+t, else
// replaced by -1e32f.
template <class CONFIG_T>
void causal_mask_pref(hls::stream<hls::vector<float, CONFIG_T::tp> > &in,
                      hls::stream<hls::vector<float, CONFIG_T::tp> > &out, unsigned first_block,
                      unsigned n_blocks, unsigned n_heads, unsigned seq_len)
{
    const unsigned TP = CONFIG_T::tp;
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++)
            for (unsigned j = 0; j < seq_len; j++) {
#pragma HLS PIPELINE II = 1
                hls::vector<float, TP> v = in.read();
                for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                    unsigned pos = (first_block + blk) * TP + t;
                    if (j > pos) v[t] = NEG_SENTINEL;
                }
                out.write(v);
            }
}

}  // namespace flx_hls

#endif  // FLX_HLS_CAUSAL_MASK_H
