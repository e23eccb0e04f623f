/* RMSNorm with the prefill and decode reduction trees (reference-design §1.6). */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* s_j = sum of x_k*x_k over k = j mod 4, k ascending, each from 0.0f;
 * returns (s0 + s1) + (s2 + s3). */
static float sumsq_4(const float *x, int64_t n, int ftz)
{
    float s[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int64_t k = 0; k < n; k++) {
        float v = FZ(x[k]);
        s[k & 3] = FZ(s[k & 3] + FZ(v * v));
    }
    return FZ(FZ(s[0] + s[1]) + FZ(s[2] + s[3]));
}

/* r = 1 / sqrtf(ss / D + eps); y = (x * r) * gamma */
static void scale_out(float *y, const float *x, const float *gamma, int64_t d, float ss,
                      float eps, int ftz)
{
    float mean = FZ(ss / (float)d);
    float r = FZ(1.0f / FZ(sqrtf(FZ(mean + eps))));
    for (int64_t k = 0; k < d; k++) y[k] = FZ(FZ(FZ(x[k]) * r) * FZ(gamma[k]));
}

void flx_emu_rmsnorm_pref(float *y, const float *x, const float *gamma, int64_t n_tokens,
                          int64_t d, float eps, const flx_emu_fp *fp)
{
    for (int64_t t = 0; t < n_tokens; t++)
        scale_out(y + t * d, x + t * d, gamma, d, sumsq_4(x + t * d, d, fp->ftz), eps, fp->ftz);
}

void flx_emu_rmsnorm_dec(float *y, const float *x, const float *gamma, int64_t d,
                         int n_lanes, float eps, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int64_t per = d / n_lanes;   /* lane i holds x[i*per .. i*per+per) */
    float tot = 0.0f;
    for (int i = 0; i < n_lanes; i++) tot = FZ(tot + sumsq_4(x + i * per, per, ftz));
    scale_out(y, x, gamma, d, tot, eps, ftz);
}
