/* The three softmax kernels, each with its hardware reduction tree
 * (reference-design §1.8). */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* max by strict > from the -1e32 sentinel, in index order */
static float row_max(const float *x, int64_t n, int ftz)
{
    float m = -1e32f;
    for (int64_t k = 0; k < n; k++) {
        float v = FZ(x[k]);
        if (v > m) m = v;
    }
    return m;
}

/* e_k = exp(x_k - m) in place over x[0..n), partial sums by k mod 4, then
 * p_k = e_k * (1 / ((S0 + S1) + (S2 + S3))). */
static void softmax_4sums(float *x, int64_t n, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    /* the same steps sixteen lanes at a time (emu/expf_vec.c) */
    if (!ftz && fp->exp == FLX_EMU_EXP_GLIBC && !flx_emu_softmax4_vec(x, n)) return;
    float m = row_max(x, n, ftz);
    float s[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    if (!ftz && fp->exp == FLX_EMU_EXP_GLIBC) {
        /* the common C-simulation mode without per-element mode checks */
        for (int64_t k = 0; k < n; k++) {
            float d = x[k] - m;
            float e = d < -0x1.9fe368p+6f ? 0.0f : expf(d);   /* as flx_emu_exp */
            x[k] = e;
            s[k & 3] = s[k & 3] + e;
        }
    } else {
        for (int64_t k = 0; k < n; k++) {
            float e = flx_emu_exp(fp, FZ(FZ(x[k]) - m));
            x[k] = e;
            s[k & 3] = FZ(s[k & 3] + e);
        }
    }
    float tot = FZ(FZ(s[0] + s[1]) + FZ(s[2] + s[3]));
    float r = FZ(1.0f / tot);
    for (int64_t k = 0; k < n; k++) x[k] = FZ(x[k] * r);
}

void flx_emu_softmax_pref(float *x, int64_t n, const flx_emu_fp *fp)
{
    /* n/4 groups only: a tail of n % 4 raw scores passes through untouched
     * (and, inferred, takes no part in the max) */
    softmax_4sums(x, n - n % 4, fp);
}

void flx_emu_softmax_dec(float *x, int64_t n, const flx_emu_fp *fp)
{
    softmax_4sums(x, n, fp);   /* predicated tail: element k joins S_{k mod 4} */
}

void flx_emu_softmax_block(float *x, int64_t n, int n_lanes, float scale,
                           const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int64_t per = n / n_lanes;
    float m = -1e32f;
    for (int i = 0; i < n_lanes; i++) {          /* lane maxima, merged lane 0 first */
        float mi = row_max(x + i * per, per, ftz);
        if (mi > m) m = mi;
    }
    float tot = 0.0f;
    for (int i = 0; i < n_lanes; i++) {
        float *xi = x + i * per;
        float s[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        for (int64_t k = 0; k < per; k++) {
            float d = FZ(FZ(xi[k]) - m);
            if (scale > 0.0f) d = FZ(d / scale);
            float e = flx_emu_exp(fp, d);
            xi[k] = e;
            s[k & 3] = FZ(s[k & 3] + e);
        }
        tot = FZ(tot + FZ(FZ(s[0] + s[1]) + FZ(s[2] + s[3])));
    }
    float r = FZ(1.0f / tot);
    for (int64_t k = 0; k < n_lanes * per; k++) x[k] = FZ(x[k] * r);
}
