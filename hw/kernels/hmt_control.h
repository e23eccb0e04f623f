// hmt_control.h -- HMT's segment control: one segment step of
// `hmt_segment_loader_sync_template` (reference-design §4; docs/hmt.md 4),
// FlexLLM as intended (the emulator's default flow):
//
//   1. stage-0 loader (segment n > 0): pref_io region 0 = [T, first
//      min(len, sum_len) tokens of segment n, T], zero rows up to a multiple
//      of `pad`; the prefill runs; Sn = its last-layer output row 1 + k
//   2. retrieval (hmt_recall: fp32 GEMVs and the block softmax) when a slot
//      is filled; otherwise Pn = the initial memory (`memory_cell.memory`)
//   3. stage-1 loader: [Pn, the last n_sensory tokens of segment n-1 (none
//      for n = 0), the len tokens, Pn (not for the last segment)], zero rows
//      up to a multiple of `pad`; the prefill runs
//   4. unless last: Mn = the output row of the trailing Pn; hmt_update
//      (Kn = Wk Mn; Mmem[n mod slots] = Mn, Kmem[n mod slots] = Kn)
//
// hmt_io (DDR) holds row 0 = T and row 1 + i = the embedding of token i;
// segments are contiguous, so the sensory rows are the `n_sensory` rows in
// front of segment n's first row.  Wq and Wk are row-major [h][d] in HBM;
// they are streamed into the GEMV's lane layout here (hmt_weights).
//
// The 16-layer prefill is the caller's: `prefill(region0, rows, out)` runs
// it on rows [0, rows) of region 0 and leaves the last layer's output rows in
// `out` (the drainer's region).  In the accelerator that is the prefill
// pipeline this control synchronises with; in C simulation a testbench
// functor.  FlexLLM as written (Sn/Mn read from region 0, zero P0, zero
// sensory rows) is the emulator's --hmt-quirks and not modelled here;
// CONFIG_T::mask_empty = false gives the unmasked softmax.
#ifndef FLX_HLS_HMT_CONTROL_H
#define FLX_HLS_HMT_CONTROL_H

#include "hmt.h"

namespace flx_hls {

struct hmt_control_config : hmt_config {
    static const unsigned seg_len = 990;      // L: tokens of a full segment
    static const unsigned sum_len = 495;      // summary prefix of stage 0
    static const unsigned n_sensory = 32;     // tokens of segment n-1 in stage 1
    static const unsigned pad = 8;            // stage rows padded to a multiple of this
};

// W[o][k] = w[o * k_dim + k] (a row-major matrix in HBM)
struct hmt_row_major {
    const float *w;
    unsigned k_dim;
    float operator()(unsigned o, unsigned k) const { return w[(size_t)o * k_dim + k]; }
};

// a natural-order row as block-partitioned beats (lane i beat t = i*(n/B) + t)
template <unsigned B>
void hmt_row_to_stream(const float *row, hls::stream<hls::vector<float, B> > &s, unsigned n)
{
    for (unsigned t = 0; t < n / B; t++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, B> v;
        for (unsigned i = 0; i < B; i++) v[i] = row[i * (n / B) + t];
        s.write(v);
    }
}

// copies row `src` of an [.][d] image to row `dst` of region 0
inline void hmt_copy_row(float *region0, unsigned dst, const float *src, unsigned d)
{
    for (unsigned i = 0; i < d; i++) {
#pragma HLS PIPELINE II = 1
        region0[(size_t)dst * d + i] = src[i];
    }
}

// zero rows [from, padded) of region 0; returns padded
template <class CONFIG_T>
unsigned hmt_pad_rows(float *region0, unsigned from, unsigned d)
{
    const unsigned to = (from + CONFIG_T::pad - 1) / CONFIG_T::pad * CONFIG_T::pad;
    for (unsigned r = from; r < to; r++)
        for (unsigned i = 0; i < d; i++) region0[(size_t)r * d + i] = 0.0f;
    return to;
}

// One segment step.  first_row: hmt_io row of segment seg's first token;
// len <= seg_len its tokens; last: the context's last segment (no trailing
// Pn, no update).  pn: [d] the Pn buffer (kept between segments, as on chip).
// Streams for observation, block-partitioned: s (Sn), q, a (recall only),
// p (Pn), m (Mn), k (Kn) (update only).
template <class CONFIG_T, class PREFILL>
void hmt_segment_step(const float *hmt_io, unsigned first_row, unsigned seg, unsigned len, bool last,
                      const float *wq, const float *wk, const float *init_mem, hmt_memory<CONFIG_T> &mem,
                      float *pn, float *region0, float *out, PREFILL &prefill,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &s,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &q,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &a,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &p,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &m,
                      hls::stream<hls::vector<float, CONFIG_T::b> > &k, unsigned d, unsigned h)
{
    const unsigned B = CONFIG_T::b;
    const float *T = hmt_io;   // row 0
    bool any = false;
    for (unsigned i = 0; i < CONFIG_T::slots; i++) any = any || mem.filled[i];
    // 1: stage 0 (n > 0)
    hls::stream<hls::vector<float, B> > s_in("hmt_s_in");
    if (seg > 0) {
        const unsigned kk = len < CONFIG_T::sum_len ? len : CONFIG_T::sum_len;
        hmt_copy_row(region0, 0, T, d);
        for (unsigned i = 0; i < kk; i++) hmt_copy_row(region0, 1 + i, hmt_io + (size_t)(first_row + i) * d, d);
        hmt_copy_row(region0, kk + 1, T, d);
        unsigned rows = hmt_pad_rows<CONFIG_T>(region0, kk + 2, d);
        prefill(region0, rows, out);
        const float *sn = out + (size_t)(kk + 1) * d;
        hmt_row_to_stream<B>(sn, s, d);
        if (any) hmt_row_to_stream<B>(sn, s_in, d);
    } else if (any) {   // a filled ring at segment 0 (not after a reset): Sn = 0
        for (unsigned t = 0; t < d / B; t++) s_in.write(hls::vector<float, B>(0.0f));
    }
    // 2: the retrieval, or the initial memory while no slot is filled
    if (any) {
        hls::stream<hls::vector<float, B> > pv("hmt_p");
        hls::stream<hls::vector<float, CONFIG_T::w> > wq_s[B];
        hmt_row_major wqm = {wq, d};
        hmt_weights<CONFIG_T>(wqm, wq_s, h, d);
        hmt_recall<CONFIG_T>(s_in, wq_s, mem, q, a, pv, d, h);
        for (unsigned t = 0; t < d / B; t++) {
            hls::vector<float, B> v = pv.read();
            for (unsigned i = 0; i < B; i++) pn[i * (d / B) + t] = v[i];
            p.write(v);
        }
    } else {
        for (unsigned i = 0; i < d; i++) pn[i] = init_mem[i];
        hmt_row_to_stream<B>(pn, p, d);
    }
    // 3: stage 1
    unsigned r = 0;
    hmt_copy_row(region0, r++, pn, d);
    if (seg > 0) {
        const unsigned ns = CONFIG_T::n_sensory < CONFIG_T::seg_len ? CONFIG_T::n_sensory : CONFIG_T::seg_len;
        for (unsigned i = 0; i < ns; i++) hmt_copy_row(region0, r++, hmt_io + (size_t)(first_row - ns + i) * d, d);
    }
    for (unsigned i = 0; i < len; i++) hmt_copy_row(region0, r++, hmt_io + (size_t)(first_row + i) * d, d);
    if (!last) hmt_copy_row(region0, r++, pn, d);
    unsigned rows = hmt_pad_rows<CONFIG_T>(region0, r, d);
    prefill(region0, rows, out);
    // 4: the memory update from the trailing Pn's output row
    if (!last) {
        const float *mn = out + (size_t)(r - 1) * d;
        hls::stream<hls::vector<float, B> > m_in("hmt_m_in");
        hls::stream<hls::vector<float, CONFIG_T::w> > wk_s[B];
        hmt_row_to_stream<B>(mn, m_in, d);
        hmt_row_to_stream<B>(mn, m, d);
        hmt_row_major wkm = {wk, d};
        hmt_weights<CONFIG_T>(wkm, wk_s, h, d);
        hmt_update<CONFIG_T>(m_in, wk_s, mem, k, seg, d, h);
    }
}

}  // namespace flx_hls

#endif  // FLX_HLS_HMT_CONTROL_H
