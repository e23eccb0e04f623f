// pe_i8.h -- the packed int8 processing elements of attention (docs/kernels.md
// 3.2; reference-design §1.3 `PE_i8xi8_pack_2x2_2xDSP_2D`, `PE_i8xi8_pack_1x2_1xDSP_1D`).
//
// The PE multiplies a by pack = b1 * 2^16 + b0 (built as (b1 - [b0<0]) ||
// b0), splits the 32-bit product into 16-bit fields f0 = a*b0 (signed low)
// and f1 = high + [f0 < 0] = a*b1 (each exact: |a*b| <= 32640), and adds
// each into its own ACC_BITS register.  Probabilities are uint8 patterns in
// ap_int<8> (A_UINT).
#ifndef FLX_HLS_PE_I8_H
#define FLX_HLS_PE_I8_H

#include "flx_hls.h"

namespace flx_hls {

template <bool A_UINT>
inline void mul_i8_pack(ap_int<8> a, const ap_int<32> &pack, ap_int<16> &f0, ap_int<16> &f1)
{
    ap_int<32> p;
    if (A_UINT) {
        ap_uint<8> ua = a;
        p = ua * pack;
    } else {
        p = a * pack;
    }
    ap_int<16> lo = p.range(15, 0);
    ap_int<16> hi = p.range(31, 16);
    f0 = lo;
    f1 = hi + (lo < 0 ? 1 : 0);
}

// PE_i8xi8_pack_2x2_2xDSP_2D: rows (a0, a1) x columns (b0, b1)
template <int ACC_BITS, bool A_UINT>
struct pe_i8xi8_2x2 {
    ap_int<ACC_BITS> c00, c01, c10, c11;   // c<row><column>
    void reset() { c00 = 0; c01 = 0; c10 = 0; c11 = 0; }
    void step(ap_int<8> a0, ap_int<8> a1, ap_int<8> b0, ap_int<8> b1) {
        ap_int<32> pack = 0;
        ap_int<16> lo = b0;
        ap_int<16> hi = b1 - (b0 < 0 ? 1 : 0);
        pack.range(15, 0) = lo;
        pack.range(31, 16) = hi;
        ap_int<16> f0, f1;
        mul_i8_pack<A_UINT>(a0, pack, f0, f1);
        c00 += f0;
        c01 += f1;
        mul_i8_pack<A_UINT>(a1, pack, f0, f1);
        c10 += f0;
        c11 += f1;
    }
};


// PE_i8xi8_pack_1x2_1xDSP_1D: one activation x columns (b0, b1)
template <int ACC_BITS, bool A_UINT>
struct pe_i8xi8_1x2 {
    ap_int<ACC_BITS> c0, c1;
    void reset() { c0 = 0; c1 = 0; }
    void step(ap_int<8> a, ap_int<8> b0, ap_int<8> b1) {
        ap_int<32> pack = 0;
        ap_int<16> lo = b0;
        ap_int<16> hi = b1 - (b0 < 0 ? 1 : 0);
        pack.range(15, 0) = lo;
        pack.range(31, 16) = hi;
        ap_int<16> f0, f1;
        mul_i8_pack<A_UINT>(a, pack, f0, f1);
        c0 += f0;
        c1 += f1;
    }
};

}  // namespace flx_hls

#endif  // FLX_HLS_PE_I8_H
