/* SiLU gate, residual add and embedding lookup (reference-design §1.9, 1.10, 1.13). */
#include "flx_emu.h"

#include <string.h>

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

void flx_emu_silu_gate(float *y, const float *g, const float *u, int64_t n,
                       const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    if (!ftz && fp->exp == FLX_EMU_EXP_GLIBC && flx_emu_expf_vec_available()) {
        /* the same operations with sixteen exponentials at a time (the
         * vector exp equals flx_emu_exp of this mode bit for bit) */
        float ng[256], e[256];
        for (int64_t i0 = 0; i0 < n; i0 += 256) {
            int64_t m = n - i0 < 256 ? n - i0 : 256;
            for (int64_t i = 0; i < m; i++) ng[i] = -g[i0 + i];
            flx_emu_expf_vec(e, ng, m);
            for (int64_t i = 0; i < m; i++) {
                float s = g[i0 + i] / (1.0f + e[i]);
                y[i0 + i] = u ? s * u[i0 + i] : s;
            }
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float x = FZ(g[i]);
        float e = flx_emu_exp(fp, -x);
        float s = FZ(x / FZ(1.0f + e));
        y[i] = u ? FZ(s * FZ(u[i])) : s;
    }
}

void flx_emu_residual(float *y, const float *a, const float *r, int64_t n,
                      const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    for (int64_t i = 0; i < n; i++) y[i] = FZ(FZ(a[i]) + FZ(r[i]));
}

int flx_emu_embed(float *y, const float *table, int64_t n_vocab, int64_t d, int64_t token,
                  flx_error *err)
{
    if (token < 0 || token >= n_vocab)
        return flx_fail(err, FLX_EINVAL, "embedding lookup: token id %lld outside [0, %lld)",
                        (long long)token, (long long)n_vocab);
    memcpy(y, table + token * d, (size_t)d * sizeof *y);
    return FLX_OK;
}
