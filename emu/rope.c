/* Table-driven rotate-half RoPE (reference-design §1.7). */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

void flx_emu_rope(float *y, const float *x, int n_heads, int head_dim,
                  const float *sin_tab, const float *cos_tab, int64_t pos,
                  const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    const int half = head_dim / 2;
    const float *sn = sin_tab + pos * half, *cs = cos_tab + pos * half;
    for (int h = 0; h < n_heads; h++) {
        const float *xh = x + (int64_t)h * head_dim;
        float *yh = y + (int64_t)h * head_dim;
        for (int k = 0; k < half; k++) {
            float a = FZ(xh[k]), b = FZ(xh[k + half]);
            float s = FZ(sn[k]), c = FZ(cs[k]);
            float lo = FZ(FZ(a * c) - FZ(b * s));
            float hi = FZ(FZ(a * s) + FZ(b * c));
            yh[k] = lo;
            yh[k + half] = hi;
        }
    }
}

void flx_emu_rope_table(float *sin_tab, float *cos_tab, int64_t n_pos, int head_dim,
                        const double *inv_freq)
{
    const int half = head_dim / 2;
    for (int k = 0; k < half; k++) {
        double f = inv_freq ? inv_freq[k] : pow(10000.0, -2.0 * k / head_dim);
        for (int64_t p = 0; p < n_pos; p++) {
            double ang = (double)p * f;
            sin_tab[p * half + k] = (float)sin(ang);
            cos_tab[p * half + k] = (float)cos(ang);
        }
    }
}
