/* hadamard.c -- fast Walsh-Hadamard transforms (float, bit-exact in a
 * documented stage order; double for merging) and dense rotation matrices:
 * Sylvester Hadamard, random Hadamard, random orthogonal (LAPACK QR). */
#include "flx_rotate.h"
#include "qsimd.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int flx_is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

static int log2_i(int64_t n)
{
    int m = 0;
    while (((int64_t)1 << m) < n) m++;
    return m;
}

float flx_fht_norm_divisor(int32_t n) { return (float)sqrt((double)n); }

/* One butterfly stage over index bit b: (x_i, x_j) <- (x_i + x_j, x_i - x_j). */
static void fht_stage(float *x, int32_t n, int b)
{
    const int32_t h = (int32_t)1 << b;
    for (int32_t base = 0; base < n; base += 2 * h)
        for (int32_t i = base; i < base + h; i++) {
            const float a = x[i], c = x[i + h];
            x[i]     = a + c;
            x[i + h] = a - c;
        }
}

static void fht_scalar(float *x, int32_t n, flx_fht_order order, float divisor)
{
    const int m = log2_i(n);
    if (order == FLX_FHT_FLEXLLM) {
        for (int b = 1; b < m; b++) fht_stage(x, n, b);
        if (m > 0) fht_stage(x, n, 0);
    } else {
        for (int b = 0; b < m; b++) fht_stage(x, n, b);
    }
    if (divisor != 1.0f)
        for (int32_t i = 0; i < n; i++) x[i] = x[i] / divisor;
}

/* The same stages in the same order, eight butterflies at a time (AVX2,
 * same bits: quant/qsimd.c) when the processor has it and n >= 8. */
static void fht_nocheck(float *x, int32_t n, flx_fht_order order, float divisor)
{
    if (n < 8 || !flx_qsimd_avx2()) {
        fht_scalar(x, n, order, divisor);
        return;
    }
    const int m = log2_i(n);
    if (order == FLX_FHT_FLEXLLM) {
        for (int b = 1; b < m; b++) flx_qsimd_fht_stage(x, n, b);
        flx_qsimd_fht_stage(x, n, 0);
    } else {
        for (int b = 0; b < m; b++) flx_qsimd_fht_stage(x, n, b);
    }
    if (divisor != 1.0f) flx_qsimd_div(x, n, divisor);
}

int flx_fht(float *x, int32_t n, flx_fht_order order, float divisor, flx_error *err)
{
    if (!flx_is_pow2(n))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: size %d is not a power of two", (int)n);
    if (!(divisor > 0.0f) || !isfinite(divisor))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: divisor %g must be positive", (double)divisor);
    fht_nocheck(x, n, order, divisor);
    return FLX_OK;
}

typedef struct fht_rows_ctx {
    float *x;
    int32_t n;
    flx_fht_order order;
    float divisor;
} fht_rows_ctx;

static void fht_rows_fn(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    fht_rows_ctx *c = vctx;
    for (int64_t r = begin; r < end; r++) fht_nocheck(c->x + r * c->n, c->n, c->order, c->divisor);
}

int flx_fht_scalar(float *x, int32_t n, flx_fht_order order, float divisor, flx_error *err)
{
    if (!flx_is_pow2(n))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: size %d is not a power of two", (int)n);
    if (!(divisor > 0.0f) || !isfinite(divisor))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: divisor %g must be positive", (double)divisor);
    fht_scalar(x, n, order, divisor);
    return FLX_OK;
}

int flx_fht_rows(float *x, int64_t n_rows, int32_t n, flx_fht_order order, float divisor,
                 flx_pool *pool, flx_error *err)
{
    if (!flx_is_pow2(n))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: size %d is not a power of two", (int)n);
    if (!(divisor > 0.0f) || !isfinite(divisor))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: divisor %g must be positive", (double)divisor);
    fht_rows_ctx c = { x, n, order, divisor };
    int64_t grain = 1 + (int64_t)16384 / n;
    flx_pool_for(pool, n_rows, grain, fht_rows_fn, &c);
    return FLX_OK;
}

int flx_fht_f64(double *x, int32_t n, double scale, flx_error *err)
{
    if (!flx_is_pow2(n))
        return flx_fail(err, FLX_EINVAL, "Hadamard transform: size %d is not a power of two", (int)n);
    for (int32_t h = 1; h < n; h *= 2)
        for (int32_t base = 0; base < n; base += 2 * h)
            for (int32_t i = base; i < base + h; i++) {
                const double a = x[i], c = x[i + h];
                x[i]     = a + c;
                x[i + h] = a - c;
            }
    if (scale != 1.0)
        for (int32_t i = 0; i < n; i++) x[i] *= scale;
    return FLX_OK;
}

int flx_hadamard_matrix(float *h, int32_t n, int normalized, flx_error *err)
{
    if (!flx_is_pow2(n))
        return flx_fail(err, FLX_EINVAL, "Hadamard matrix: size %d is not a power of two", (int)n);
    const float v = normalized ? (float)(1.0 / sqrt((double)n)) : 1.0f;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++)
            h[(size_t)i * n + j] = (__builtin_popcount((unsigned)(i & j)) & 1) ? -v : v;
    return FLX_OK;
}

int flx_random_hadamard(float *r, int32_t n, uint64_t seed, flx_error *err)
{
    int rc = flx_hadamard_matrix(r, n, 1, err);
    if (rc) return rc;
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    for (int32_t i = 0; i < n; i++) {
        /* one sign per row: diag(s) . H */
        if (flx_rng_u64(&rng) >> 63)
            for (int32_t j = 0; j < n; j++) r[(size_t)i * n + j] = -r[(size_t)i * n + j];
    }
    return FLX_OK;
}

int flx_random_orthogonal(float *r, int32_t n, uint64_t seed, flx_error *err)
{
    if (n < 1 || n > 65536)
        return flx_fail(err, FLX_EINVAL, "random orthogonal matrix: size %d out of range 1..65536", (int)n);
    size_t nn = (size_t)n * (size_t)n;
    double *a = malloc(nn * sizeof *a);
    double *tau = malloc((size_t)n * sizeof *tau);
    double *diag = malloc((size_t)n * sizeof *diag);
    if (!a || !tau || !diag) {
        free(a); free(tau); free(diag);
        return flx_fail(err, FLX_ENOMEM, "random orthogonal matrix: out of memory for size %d", (int)n);
    }
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    /* Column-major for LAPACK; draw in row-major order so the matrix is
     * A[i][j] = k-th draw with k = i*n + j, i.e. a[j*n + i]. */
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) a[(size_t)j * n + i] = flx_rng_normal(&rng);

    /* LAPACKE queries the optimal workspace and allocates it, as the Fortran
     * calls did with lwork = -1 first (same blocking, same bits). */
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, n, a, n, tau);
    if (info == 0) {
        for (int32_t j = 0; j < n; j++) diag[j] = a[(size_t)j * n + j];
        info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, n, n, n, a, n, tau);
    }
    if (info != 0) {
        free(a); free(tau); free(diag);
        return flx_fail(err, FLX_ENUMERIC, "random orthogonal matrix: LAPACK QR failed (info %d)", (int)info);
    }
    /* Q[i][j] = a[j*n + i]; multiply column j by sign(R_jj) (Haar measure). */
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            double q = a[(size_t)j * n + i];
            r[(size_t)i * n + j] = (float)(diag[j] < 0.0 ? -q : q);
        }
    free(a); free(tau); free(diag);
    return FLX_OK;
}

double flx_orthogonality_error(const float *r, int32_t n)
{
    /* G = R^T R accumulated row by row of R (cache friendly), in double. */
    double *g = calloc((size_t)n * (size_t)n, sizeof *g);
    if (!g) return INFINITY;
    for (int32_t k = 0; k < n; k++) {
        const float *row = r + (size_t)k * n;
        for (int32_t i = 0; i < n; i++) {
            const double ri = row[i];
            double *gi = g + (size_t)i * n;
            for (int32_t j = i; j < n; j++) gi[j] += ri * (double)row[j];
        }
    }
    double worst = 0.0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = i; j < n; j++) {
            double e = fabs(g[(size_t)i * n + j] - (i == j ? 1.0 : 0.0));
            if (isnan(e)) e = INFINITY;
            if (e > worst) worst = e;
        }
    free(g);
    return worst;
}
