/* Fast Walsh-Hadamard transform, the online R4 rotation (reference-design §1.11). */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* every pair (i, i + bit) with that bit clear; pairs are independent, so
 * walking them block by block (contiguous, vectorizable) changes nothing */
static void butterfly_stage(float *x, int64_t n, int64_t bit, int ftz)
{
    for (int64_t i0 = 0; i0 < n; i0 += 2 * bit) {
        float *lo = x + i0, *hi = x + i0 + bit;
        if (ftz) {
            for (int64_t i = 0; i < bit; i++) {
                float a = lo[i], b = hi[i];
                lo[i] = flx_emu_ftz(a + b);
                hi[i] = flx_emu_ftz(a - b);
            }
        } else {
            for (int64_t i = 0; i < bit; i++) {
                float a = lo[i], b = hi[i];
                lo[i] = a + b;
                hi[i] = a - b;
            }
        }
    }
}

static int pow2(int64_t n) { return n >= 2 && !(n & (n - 1)); }

/* Stages whose pairs stay inside an aligned chunk of n (bits 1 .. log2(n)-1,
 * the ones that come first), on that chunk alone. */
int flx_emu_fht_local(float *x, int64_t n, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    if (!pow2(n)) return -1;
    if (ftz) for (int64_t i = 0; i < n; i++) x[i] = flx_emu_ftz(x[i]);
    for (int64_t bit = 2; bit < n; bit <<= 1) butterfly_stage(x, n, bit, ftz);
    return 0;
}

/* The rest once every chunk of `chunk` went through flx_emu_fht_local: the
 * stages of bits log2(chunk) .. m-1, then bit 0, then the scale. */
int flx_emu_fht_finish(float *x, int64_t n, int64_t chunk, float scale, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    if (!pow2(n) || !pow2(chunk) || chunk > n) return -1;
    /* stage order of the constant-geometry network: bits 1, 2, ..., m-1, 0 */
    for (int64_t bit = chunk; bit < n; bit <<= 1) butterfly_stage(x, n, bit, ftz);
    butterfly_stage(x, n, 1, ftz);
    if (scale > 0.0f)
        for (int64_t i = 0; i < n; i++) x[i] = FZ(x[i] / scale);
    return 0;
}

int flx_emu_fht(float *x, int64_t n, float scale, const flx_emu_fp *fp)
{
    if (flx_emu_fht_local(x, n, fp)) return -1;
    return flx_emu_fht_finish(x, n, n, scale, fp);
}
