// topk_sampling.h -- top-k sampling of dec_Sampling_Embedding_Layer (docs/kernels.md 9;
// reference-design §1.13 `dec_Sampling_Embedding_Layer<float, B=16, VP=131072, K=5, ...>`,
// `sort_top_k`).
//
// 1. Logits arrive block-partitioned, lane i holds ids i*(VP/B) + j.  Per
//    chunk of blk = B*W logits (blk/B beats buffered), every lane inserts
//    (v, id) into its own descending top-K list: first position p with
//    v > list[p] (strict: equal values keep the earlier id), shift, insert;
//    lists start at (-1e32, -1).
// 2. Merge rank-major: for rank 0..K-1, for lane 0..B-1, insert the lane's
//    entry into the final list by the same rule.
// 3. e_p = exp(l_p - l_0); sp[p mod 2] += e_p (p order, from 0.0f);
//    sum = sp0 + sp1; prob_p = e_p / sum; c_0 = prob_0, c_p = prob_p + c_(p-1).
// 4. selected = smallest p with r < c_p, else K-1; token = id[selected].
// The embedding fetch that follows in FlexLLM is plain data movement and is
// not part of this kernel.
#ifndef FLX_HLS_TOPK_SAMPLING_H
#define FLX_HLS_TOPK_SAMPLING_H

#include "flx_hls.h"

namespace flx_hls {

struct topk_sampling_config {
    static const unsigned b = 16;          // lanes
    static const unsigned vp = 131072;     // VOCAB_SIZE_PAD
    static const unsigned k = 5;           // LOGITS_MAX_K
    static const unsigned blk = 1024;      // logits per chunk (B * W)
    static const int exp_impl = EXP_FLX;
};

// first position p with v > val[p] (strict), shift the tail down, insert;
// fixed trip counts so that it unrolls into K comparators and muxes
template <unsigned K>
inline void sort_top_k(float val[K], int id[K], float v, int idx)
{
    unsigned p = K;
    for (unsigned i = 0; i < K; i++) {
#pragma HLS UNROLL
        if (p == K && v > val[i]) p = i;
    }
    for (unsigned i = K - 1; i > 0; i--) {
#pragma HLS UNROLL
        if (i > p) {
            val[i] = val[i - 1];
            id[i] = id[i - 1];
        }
    }
    if (p < K) {
        val[p] = v;
        id[p] = idx;
    }
}

template <class CONFIG_T>
struct topk_result {
    float value[CONFIG_T::k];   // merged list, descending
    int id[CONFIG_T::k];
    float prob[CONFIG_T::k];
    float cdf[CONFIG_T::k];
    int selected;
    int token;
};

// logits: VP/B beats; r: the threshold for this step (rand_seeds_mmap)
template <class CONFIG_T>
void topk_sampling(hls::stream<hls::vector<float, CONFIG_T::b> > &logits, float r,
              topk_result<CONFIG_T> &res)
{
    const unsigned B = CONFIG_T::b, K = CONFIG_T::k, PER = CONFIG_T::vp / CONFIG_T::b;
    const unsigned BEATS = CONFIG_T::blk / CONFIG_T::b;
    float lv[B][K];
    int li[B][K];
#pragma HLS ARRAY_PARTITION variable = lv complete dim = 0
#pragma HLS ARRAY_PARTITION variable = li complete dim = 0
    for (unsigned i = 0; i < B; i++)
        for (unsigned p = 0; p < K; p++) {
            lv[i][p] = NEG_SENTINEL;
            li[i][p] = -1;
        }
chunks:
    for (unsigned c = 0; c < CONFIG_T::vp / CONFIG_T::blk; c++) {
        hls::vector<float, B> buf[BEATS];
        for (unsigned m = 0; m < BEATS; m++) {
#pragma HLS PIPELINE II = 1
            buf[m] = logits.read();
        }
        for (unsigned m = 0; m < BEATS; m++)
            for (unsigned i = 0; i < B; i++) {
#pragma HLS UNROLL
                sort_top_k<K>(lv[i], li[i], buf[m][i], (int)(i * PER + c * BEATS + m));
            }
    }
    for (unsigned p = 0; p < K; p++) {
        res.value[p] = NEG_SENTINEL;
        res.id[p] = -1;
    }
merge:
    for (unsigned p = 0; p < K; p++)
        for (unsigned i = 0; i < B; i++) sort_top_k<K>(res.value, res.id, lv[i][p], li[i][p]);
    float e[K], sp[2] = {0.0f, 0.0f};
    for (unsigned p = 0; p < K; p++) {
        e[p] = exp_sel<CONFIG_T::exp_impl>(res.value[p] - res.value[0]);
        sp[p % 2] = sp[p % 2] + e[p];
    }
    float sum = sp[0] + sp[1];
    for (unsigned p = 0; p < K; p++) res.prob[p] = e[p] / sum;
    res.cdf[0] = res.prob[0];
    for (unsigned p = 1; p < K; p++) res.cdf[p] = res.prob[p] + res.cdf[p - 1];
    res.selected = K - 1;
    for (int p = (int)K - 1; p >= 0; p--)
        if (r < res.cdf[p]) res.selected = p;   // smallest p wins
    res.token = res.id[res.selected];
}

}  // namespace flx_hls

#endif  // FLX_HLS_TOPK_SAMPLING_H
