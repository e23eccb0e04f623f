/* Dynamic per-token and static per-head quantizers and dequantizers
 * (flexllm-kernels.md 1.2).  Each line is one reference operation. */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* (int) roundf(v) without a libm call: for |v| < 2^30, t = trunc(v) and the
 * fraction v - t are exact, and roundf moves away from zero at |fraction|
 * >= 0.5.  Other values (huge, NaN) take the library path. */
static inline int32_t round_to_int(float v)
{
    if (fabsf(v) < 1073741824.0f) {
        int32_t t = (int32_t)v;
        float d = v - (float)t;
        return t + (d >= 0.5f) - (d <= -0.5f);
    }
    return flx_emu_float_to_int(roundf(v));
}

/* ap_int<bits>(roundf(v)) */
static inline int8_t round_to_pattern(float v, int bits)
{
    if (fabsf(v) < 1073741824.0f) return (int8_t)flx_emu_wrap(round_to_int(v), bits);
    return (int8_t)flx_emu_float_to_apint(roundf(v), bits);
}

/* Largest and smallest element by the reference's scan: sentinels -1e32 /
 * +1e32, strict compares, so the first of equal values (also +-0) wins and a
 * NaN is never selected. */
static void scan_max_min(const float *x, int64_t n, int ftz, float *mx, float *mn)
{
    float hi = -1e32f, lo = 1e32f;
    for (int64_t k = 0; k < n; k++) {
        float v = FZ(x[k]);
        if (v > hi) hi = v;
        if (v < lo) lo = v;
    }
    *mx = hi;
    *mn = lo;
}

void flx_emu_quant_asym(int8_t *q, float *s, float *b, const float *x,
                        int64_t n_tokens, int64_t n_ch, int bits, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const float levels = (float)((1 << bits) - 1);    /* 15.0f for INT4 */
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *xt = x + t * n_ch;
        int8_t *qt = q + t * n_ch;
        float mx, mn;
        scan_max_min(xt, n_ch, ftz, &mx, &mn);
        float st = FZ(FZ(mx - mn) / levels);
        if (st == 0.0f) st = 1.0f;
        float bt = mn;
        s[t] = st;
        b[t] = bt;
        for (int64_t k = 0; k < n_ch; k++) {
            float d = FZ(FZ(xt[k]) - bt);
            qt[k] = round_to_pattern(FZ(d / st), bits);     /* ap_uint<bits> pattern */
        }
    }
}

void flx_emu_quant_sym(int8_t *q, float *s, const float *x, int64_t n_tokens,
                       int64_t n_ch, int bits, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const float qmax = (float)((1 << (bits - 1)) - 1);
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *xt = x + t * n_ch;
        int8_t *qt = q + t * n_ch;
        float mx, mn;
        scan_max_min(xt, n_ch, ftz, &mx, &mn);
        float amx = fabsf(mx), amn = fabsf(mn);
        float st = FZ((amx > amn ? amx : amn) / qmax);
        if (st == 0.0f) st = 1.0f;
        s[t] = st;
        for (int64_t k = 0; k < n_ch; k++) {
            qt[k] = round_to_pattern(FZ(FZ(xt[k]) / st), bits);
        }
    }
}

void flx_emu_dequant(float *y, const int32_t *acc, const float *s, const float *b,
                     const float *ws, const float *wsum, int64_t n_tokens,
                     int64_t n_out, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    for (int64_t t = 0; t < n_tokens; t++) {
        const int32_t *at = acc + t * n_out;
        float *yt = y + t * n_out;
        float st = FZ(s[t]);
        if (b) {
            float bt = FZ(b[t]);
            for (int64_t o = 0; o < n_out; o++) {
                float v = FZ((float)at[o] * st);
                v = FZ(v * FZ(ws[o]));
                float u = FZ(bt * FZ(wsum[o]));
                yt[o] = FZ(v + u);
            }
        } else {
            for (int64_t o = 0; o < n_out; o++) {
                float v = FZ((float)at[o] * st);
                yt[o] = FZ(v * FZ(ws[o]));
            }
        }
    }
}

void flx_emu_quant_static(int8_t *q, const float *x, int64_t n_tokens, int n_heads,
                          int head_dim, const float *scale, float mha_scale_factor,
                          int bits, int is_signed, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int32_t sb = is_signed ? (1 << (bits - 1)) : (1 << bits);
    const int64_t width = (int64_t)n_heads * head_dim;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_heads; h++) {
            float div = FZ(FZ(mha_scale_factor) * FZ(scale[h]));  /* product first */
            const float *xh = x + t * width + (int64_t)h * head_dim;
            int8_t *qh = q + t * width + (int64_t)h * head_dim;
            for (int d = 0; d < head_dim; d++) {
                int32_t r = round_to_int(FZ(FZ(xh[d]) / div));
                if (is_signed) {
                    if (r < -sb) r = -sb;
                    if (r > sb - 1) r = sb - 1;
                } else if (r > sb - 1) {
                    r = sb - 1;                         /* no lower clamp */
                }
                qh[d] = (int8_t)flx_emu_wrap(r, bits);  /* ap_int<bits>(q) */
            }
        }
    }
}

void flx_emu_dequant_static(float *y, const int32_t *acc, int64_t n_tokens, int n_heads,
                            int head_dim, const float *in_s, const float *w_s,
                            int n_w_heads, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int group = n_heads / n_w_heads;
    const int64_t width = (int64_t)n_heads * head_dim;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_heads; h++) {
            float si = FZ(in_s[h]), sw = FZ(w_s[h / group]);
            const int32_t *ah = acc + t * width + (int64_t)h * head_dim;
            float *yh = y + t * width + (int64_t)h * head_dim;
            for (int d = 0; d < head_dim; d++)
                yh[d] = FZ(FZ((float)ah[d] * si) * sw);
        }
    }
}
