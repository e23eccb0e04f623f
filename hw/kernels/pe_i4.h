// pe_i4.h -- the packed INT4 x INT4 processing elements (docs/kernels.md 3.1;
// reference-design §1.3 `PE_i4xi4_pack_2x2_2D<is_uint_A, L>`, `PE_i4xi4_pack_1x2_1D`).
//
// A PE holds two weight columns in one multiplier operand:
//   pack = (b1 - [b0 < 0]) || sign-extend_{L+8}(b0)  ==  b1 * 2^(L+8) + b0
// and accumulates c += a * pack in a (2L+16)-bit register, one k per cycle.
// At the end:  low  = c[L+7:0]              (signed)  = sum a*b0
//              high = c[2L+15:L+8] + [low < 0]        = sum a*b1
// Exact whenever |sum a*b| < 2^(L+7) (always, for FlexLLM's sizes); beyond
// that the even column wraps and carries into the odd one, as the hardware
// does.  Activations are uint4 patterns in ap_int<4> when A_UINT.
#ifndef FLX_HLS_PE_I4_H
#define FLX_HLS_PE_I4_H

#include "flx_hls.h"

namespace flx_hls {

// the multiplier operand holding two int4 weights
template <int L>
inline ap_int<2 * L + 16> pack_i4_pair(ap_int<4> b0, ap_int<4> b1)
{
    ap_int<2 * L + 16> pack = 0;
    ap_int<L + 8> lo = b0;                         // sign-extended
    ap_int<L + 8> hi = b1 - (b0 < 0 ? 1 : 0);      // borrow of a negative low field
    pack.range(L + 7, 0) = lo;
    pack.range(2 * L + 15, L + 8) = hi;
    return pack;
}

// one activation times the pack, uint4 or int4
template <int L, bool A_UINT>
inline ap_int<2 * L + 16> mul_i4_pack(ap_int<4> a, const ap_int<2 * L + 16> &pack)
{
    ap_int<2 * L + 16> p;
    if (A_UINT) {
        ap_uint<4> ua = a;                          // reinterpret the pattern
        p = ua * pack;
    } else {
        p = a * pack;
    }
    return p;
}

// the two fields of an accumulator register
template <int L>
inline void split_i4_acc(const ap_int<2 * L + 16> &c, ap_int<L + 8> &even, ap_int<L + 8> &odd)
{
    ap_int<2 * L + 16> cc = c;
    ap_int<L + 8> lo = cc.range(L + 7, 0);
    ap_int<L + 8> hi = cc.range(2 * L + 15, L + 8);
    even = lo;
    odd = hi + (lo < 0 ? 1 : 0);
}

// PE_i4xi4_pack_2x2_2D: tokens (a0, a1) x columns (b0, b1)
template <int L, bool A_UINT>
struct pe_i4xi4_2x2 {
    ap_int<2 * L + 16> c0, c1;
    void reset() { c0 = 0; c1 = 0; }
    void step(ap_int<4> a0, ap_int<4> a1, ap_int<4> b0, ap_int<4> b1) {
        step_packed(a0, a1, pack_i4_pair<L>(b0, b1));
    }
    // the same with the column pair already packed (pack_i4_pair): a PE row
    // of an array shares one pack per column pair
    void step_packed(ap_int<4> a0, ap_int<4> a1, const ap_int<2 * L + 16> &pack) {
        c0 += mul_i4_pack<L, A_UINT>(a0, pack);
        c1 += mul_i4_pack<L, A_UINT>(a1, pack);
    }
};

// PE_i4xi4_pack_1x2_1D: one activation x columns (b0, b1)
template <int L, bool A_UINT>
struct pe_i4xi4_1x2 {
    ap_int<2 * L + 16> c;
    void reset() { c = 0; }
    void step(ap_int<4> a, ap_int<4> b0, ap_int<4> b1) {
        c += mul_i4_pack<L, A_UINT>(a, pack_i4_pair<L>(b0, b1));
    }
};

}  // namespace flx_hls

#endif  // FLX_HLS_PE_I4_H
