/* The two exponentials, the float-mode names and the float -> integer
 * conversions of the reference (reference-design §0.2, 0.3). */
#include "flx_emu.h"

#include <string.h>

const char *flx_emu_exp_name(flx_emu_exp_kind kind)
{
    switch (kind) {
    case FLX_EMU_EXP_GLIBC: return "glibc-expf";
    case FLX_EMU_EXP_FLX:   return "flx-exp";
    }
    return NULL;
}

int flx_emu_exp_parse(const char *name, flx_emu_exp_kind *out)
{
    if (!name) return -1;
    if (!strcmp(name, "glibc") || !strcmp(name, "glibc-expf")) { *out = FLX_EMU_EXP_GLIBC; return 0; }
    if (!strcmp(name, "flx") || !strcmp(name, "flx-exp"))      { *out = FLX_EMU_EXP_FLX;   return 0; }
    return -1;
}

const char *flx_emu_fp_name(const flx_emu_fp *fp)
{
    /* four fixed strings: no formatting, no static buffer */
    if (fp->exp == FLX_EMU_EXP_FLX) return fp->ftz ? "exp=flx-exp,ftz=on" : "exp=flx-exp,ftz=off";
    return fp->ftz ? "exp=glibc-expf,ftz=on" : "exp=glibc-expf,ftz=off";
}

/* 2^e as a float for e in [-126, 127], assembled from its exponent field. */
static float pow2_normal(int e)
{
    uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* flx-exp, op by op (docs/kernels.md "flx-exp"):
 *   k  = round_to_int(x * log2e)       via (x*log2e + 1.5*2^23) - 1.5*2^23
 *   r  = (x - k*LN2_HI) - k*LN2_LO     (k*LN2_HI is exact: LN2_HI has 15 bits)
 *   p  = Horner c7..c2 in r            (Taylor 1/7! .. 1/2!, rounded to float)
 *   y  = 1 + (r + (r*r)*p)
 *   result = y * 2^k                   (two exact-then-one-rounding steps
 *                                       outside the normal exponent range) */
float flx_emu_expf_flx(float x)
{
    if (x != x) return x + x;                       /* NaN stays NaN */
    if (x > 0x1.62e42ep+6f) return INFINITY;        /* exp(x) > FLT_MAX */
    if (x < -0x1.9fe368p+6f) return 0.0f;           /* exp(x) < 2^-150 */
    const float shifter = 0x1.8p+23f;
    float t  = x * 0x1.715476p+0f;                  /* log2(e) */
    float kf = (t + shifter) - shifter;
    int   k  = (int)kf;
    float r  = x - kf * 0x1.62e400p-1f;             /* LN2_HI */
    r = r - kf * 0x1.7f7d1cp-20f;                   /* LN2_LO */
    float p = 0x1.a01a02p-13f;                      /* 1/5040 */
    p = p * r + 0x1.6c16c2p-10f;                    /* 1/720  */
    p = p * r + 0x1.111112p-7f;                     /* 1/120  */
    p = p * r + 0x1.555556p-5f;                     /* 1/24   */
    p = p * r + 0x1.555556p-3f;                     /* 1/6    */
    p = p * r + 0.5f;                               /* 1/2    */
    float y = 1.0f + (r + (r * r) * p);
    if (k > 127) return (y * pow2_normal(127)) * 2.0f;
    if (k < -126) return (y * pow2_normal(k + 100)) * 0x1p-100f;
    return y * pow2_normal(k);
}

float flx_emu_exp(const flx_emu_fp *fp, float x)
{
    /* below this bound both exponentials return +0 (exp(x) < 2^-150 rounds
     * to zero); skipping the call avoids glibc's slow underflow path */
    if (x < -0x1.9fe368p+6f) return 0.0f;
    if (fp->ftz) x = flx_emu_ftz(x);
    float y = (fp->exp == FLX_EMU_EXP_FLX) ? flx_emu_expf_flx(x) : expf(x);
    return fp->ftz ? flx_emu_ftz(y) : y;
}

int32_t flx_emu_float_to_apint(float v, int bits)
{
    /* a float is exact as a double; ap_int's conversion (truncate, wrap,
     * NaN/inf -> 0) is quant/numfmt's, without the 2019.1 header quirk */
    return (int32_t)flx_ap_int_from_double((double)v, bits, 0);
}

int32_t flx_emu_float_to_int(float v)
{
    if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
    return (int32_t)v;
}
