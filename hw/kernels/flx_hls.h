// flx_hls.h -- what every FlexLLM HLS kernel in hw/kernels includes.
//
// 1. The HLS types.  The real FPGA build uses AMD's Vitis HLS headers
//    (<ap_int.h>, <hls_stream.h>, <hls_vector.h>).  This machine has no
//    Vitis, so C simulation here uses the small shim in hw/csim/, written for
//    this project from docs/hls-types.md.  Selection:
//      -DFLX_HLS_USE_SHIM   force the shim
//      -DFLX_HLS_USE_VITIS  force the Vitis headers
//      -DFLX_HLS_USE_XILINX_AP_INT
//                           AMD's open-source <ap_int.h> (put its include/
//                           folder on the include path) with this project's
//                           hls::stream / hls::vector stand-ins: what CI
//                           builds besides the shim, since those open-source
//                           headers do not include hls_stream.h/hls_vector.h
//      otherwise            Vitis headers when all three are found
//                           (__has_include), else the shim.
//    FLX_HLS_SHIM is 1 when the shim's ap_int is in use; FLX_HLS_SHIM_STREAM
//    is 1 when the shim's hls::stream / hls::vector are (their flx_* hooks).
// 2. The exponential: flx-exp (docs/kernels.md section 1.2), built only from
//    float add, sub, mul, compares and a power of two assembled from its
//    exponent bits, so C simulation and the synthesized RTL compute the same
//    bits; or std::exp (glibc expf in C simulation, the Vitis math library
//    in hardware: not guaranteed identical, reference-design §0.2).  Each kernel config
//    selects one with `exp_impl`.
//
// Float arithmetic: every operation is written out in the reference order,
// one rounding each.  Compile C simulation with -ffp-contract=off (no FMA);
// never enable unsafe math / float expression balancing in Vitis.
#ifndef FLX_HLS_H
#define FLX_HLS_H

#if defined(FLX_HLS_USE_SHIM)
#define FLX_HLS_SHIM 1
#elif defined(FLX_HLS_USE_XILINX_AP_INT)
#define FLX_HLS_SHIM 0
#define FLX_HLS_SHIM_STREAM 1
#elif defined(FLX_HLS_USE_VITIS)
#define FLX_HLS_SHIM 0
#elif defined(__has_include)
#if __has_include(<ap_int.h>) && __has_include(<hls_stream.h>) && __has_include(<hls_vector.h>)
#define FLX_HLS_SHIM 0
#else
#define FLX_HLS_SHIM 1
#endif
#else
#define FLX_HLS_SHIM 1
#endif

#ifndef FLX_HLS_SHIM_STREAM
#define FLX_HLS_SHIM_STREAM FLX_HLS_SHIM
#endif

#if FLX_HLS_SHIM
#include "../csim/flx_csim_ap_int.h"
#include "../csim/flx_csim_hls_stream.h"
#include "../csim/flx_csim_hls_vector.h"
#elif FLX_HLS_SHIM_STREAM
#include <ap_int.h>
#include "../csim/flx_csim_hls_stream.h"
#include "../csim/flx_csim_hls_vector.h"
#else
#include <ap_int.h>
#include <hls_stream.h>
#include <hls_vector.h>
// Dataflow regions (hw/csim/flx_csim_dataflow.h): under Vitis the plain
// calls in a DATAFLOW region; the shim's stream layer runs them concurrently.
#define FLX_DATAFLOW_BEGIN(df, name) _Pragma("HLS DATAFLOW")
#define FLX_TASK(df, name, ...) __VA_ARGS__
#define FLX_DATAFLOW_END(df)
#endif

#include <cmath>
#include <cstdint>

namespace flx_hls {

// which exponential a kernel uses where the reference calls expf
enum exp_impl_t { EXP_FLX = 0, EXP_STD = 1 };

// The reference's +-"infinity" sentinels (reference-design §0.2).
static const float NEG_SENTINEL = -1e32f;
static const float POS_SENTINEL = 1e32f;

// float with the given IEEE bit pattern (union punning: supported by g++
// and by Vitis HLS; synthesizes to wires)
inline float float_from_bits(uint32_t u)
{
    union { uint32_t u; float f; } c;
    c.u = u;
    return c.f;
}

// 2^e for e in [-126, 127]: the exponent field only
inline float pow2_normal(int e) { return float_from_bits((uint32_t)(e + 127) << 23); }

// flx-exp, op by op as docs/kernels.md 1.2 lists it.  The constants are the
// exact decimal values of the binary32 numbers given there in hex.
inline float exp_flx(float x)
{
    if (x != x) return x + x;                                   // NaN
    if (x > 88.72283172607421875f) return float_from_bits(0x7f800000u);  // +inf
    if (x < -103.972076416015625f) return 0.0f;
    const float shifter = 12582912.0f;                          // 1.5 * 2^23
    float t = x * 1.44269502162933349609375f;                   // log2(e)
    float kf = (t + shifter) - shifter;                         // nearest integer, ties even
    int k = (int)kf;
    float r = x - kf * 0.693145751953125f;                      // LN2_HI (product exact)
    r = r - kf * 0.000001428606765330187045037746429443359375f; // LN2_LO
    float p = 0.000198412701138295233249664306640625f;          // 1/5040
    p = p * r + 0.001388888922519981861114501953125f;           // 1/720
    p = p * r + 0.008333333767950534820556640625f;              // 1/120
    p = p * r + 0.0416666679084300994873046875f;                // 1/24
    p = p * r + 0.16666667163372039794921875f;                  // 1/6
    p = p * r + 0.5f;
    float y = 1.0f + (r + (r * r) * p);
    if (k > 127) return (y * pow2_normal(127)) * 2.0f;
    if (k < -126) return (y * pow2_normal(k + 100)) * pow2_normal(-100);
    return y * pow2_normal(k);
}

template <int EXP_IMPL>
inline float exp_sel(float x)
{
    return EXP_IMPL == EXP_FLX ? exp_flx(x) : std::exp(x);
}

}  // namespace flx_hls

#endif  // FLX_HLS_H
