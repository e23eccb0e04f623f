/* gptq.c -- RTN and GPTQ weight quantization, and the Hessians
 * (sum of x^T x over calibration rows) GPTQ consumes. */
#include "flx_gptq.h"
#include "flx_quant.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- quantizer */

flx_wquant flx_wquant_int4_channel(void)
{
    flx_wquant w = { 4, 1, 0, 1.0f, 0, 0 };
    return w;
}

int flx_wquant_check(const flx_wquant *wq, int32_t n_in, const char *what, flx_error *err)
{
    if (n_in < 1) return flx_fail(err, FLX_EINVAL, "%s: %d input columns", what, (int)n_in);
    if (wq->bits < 2 || wq->bits > 8)
        return flx_fail(err, FLX_EINVAL, "%s: weight bits %d not in 2..8", what, (int)wq->bits);
    if (!(wq->clip > 0.0f && wq->clip <= 1.0f))
        return flx_fail(err, FLX_EINVAL, "%s: clip ratio %g not in (0, 1]", what, (double)wq->clip);
    if (wq->group_size < 0 || (wq->group_size > 0 && n_in % wq->group_size != 0))
        return flx_fail(err, FLX_EINVAL, "%s: group size %d does not divide the %d input columns",
                        what, (int)wq->group_size, (int)n_in);
    return FLX_OK;
}

int32_t flx_wquant_groups(const flx_wquant *wq, int32_t n_in)
{
    return wq->group_size > 0 ? n_in / wq->group_size : 1;
}

/* The weight format as a quantizer spec of quant/flx_quant.h: one group
 * of n values, per row, so the formulas (and SpinQuant's MSE clip search)
 * are the shared quantizer's. */
static flx_qspec spec_of(const flx_wquant *wq, int32_t n)
{
    flx_qspec s = flx_qspec_make(wq->bits, wq->symmetric ? FLX_QS_SYM : FLX_QS_ASYM_ZP, FLX_QG_ROW, n);
    s.round = wq->half_even ? FLX_QR_HALF_EVEN : FLX_QR_HALF_AWAY;
    s.clip = wq->clip;
    s.mse_clip = wq->mse_clip;
    return s;
}

/* (s, z) of n values */
static void group_params(const flx_wquant *wq, const float *x, int32_t n, float *s, float *z)
{
    flx_qspec sp = spec_of(wq, n);
    flx_qparams p;
    flx_quant_params(&sp, x, 1, n, &p);
    *s = p.scale;
    *z = p.zero;
}

int flx_rtn(const float *w, int32_t n_out, int32_t n_in, const flx_wquant *wq, flx_wq_out *out,
            float *w_hat, flx_error *err)
{
    int rc = flx_wquant_check(wq, n_in, "RTN", err);
    if (rc) return rc;
    if (n_out < 0) return flx_fail(err, FLX_EINVAL, "RTN: %d output rows", (int)n_out);
    const int32_t g = wq->group_size > 0 ? wq->group_size : n_in, ng = n_in / g;
    const flx_qspec sp1 = spec_of(wq, 1);   /* quantize one value, made once */
    for (int64_t r = 0; r < n_out; r++)
        for (int32_t k = 0; k < ng; k++) {
            const float *x = w + r * n_in + (int64_t)k * g;
            float s, z;
            group_params(wq, x, g, &s, &z);
            out->scale[r * ng + k] = s;
            out->zero[r * ng + k] = z;
            const flx_qparams qp = { s, z };
            for (int32_t i = 0; i < g; i++) {
                int32_t q = flx_quantize1(&sp1, qp, x[i]);
                out->q[r * n_in + (int64_t)k * g + i] = q;
                if (w_hat) w_hat[r * n_in + (int64_t)k * g + i] = flx_dequantize1(&sp1, qp, q);
            }
        }
    return FLX_OK;
}

/* ---------------------------------------------------------------- Hessians */

int flx_hessian_init(flx_hessian *h, int32_t n_in, flx_error *err)
{
    memset(h, 0, sizeof *h);
    if (n_in < 1 || n_in > 65536) return flx_fail(err, FLX_EINVAL, "Hessian: width %d out of range", (int)n_in);
    h->h = calloc((size_t)n_in * n_in, sizeof *h->h);
    if (!h->h) return flx_fail(err, FLX_ENOMEM, "Hessian: out of memory for %d x %d floats", (int)n_in, (int)n_in);
    h->n_in = n_in;
    return FLX_OK;
}

void flx_hessian_free(flx_hessian *h)
{
    if (!h) return;
    free(h->h);
    memset(h, 0, sizeof *h);
}

typedef struct hessian_job {
    float       *h;
    const float *x;      /* (n_rows, n) */
    int64_t      n_rows;
    int32_t      n;
} hessian_job;

/* Band b: H[i0:i1, i0:n] += X[:, i0:i1]^T X[:, i0:n].  The band's square
 * diagonal block is computed whole (its lower half is never read). */
static void hessian_bands(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    (void)thread_id;
    const hessian_job *j = vctx;
    for (int64_t b = begin; b < end; b++) {
        const int32_t i0 = (int32_t)(b * FLX_HESSIAN_BAND);
        const int32_t rows = j->n - i0 < FLX_HESSIAN_BAND ? j->n - i0 : FLX_HESSIAN_BAND;
        for (int64_t r0 = 0; r0 < j->n_rows; r0 += 4096) {
            const int64_t nr = j->n_rows - r0 < 4096 ? j->n_rows - r0 : 4096;
            const float *xr = j->x + r0 * j->n + i0;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, j->n - i0, (int)nr, 1.0f, xr, j->n,
                        xr, j->n, 1.0f, j->h + (size_t)i0 * j->n + i0, j->n);
        }
    }
}

int flx_hessian_add(flx_hessian *h, const float *x, int64_t n_rows, flx_error *err)
{
    (void)err;
    hessian_job j = { h->h, x, n_rows, h->n_in };
    /* the widest (first) bands go out first; one band per range */
    flx_pool_for(h->pool, (h->n_in + FLX_HESSIAN_BAND - 1) / FLX_HESSIAN_BAND, 1, hessian_bands, &j);
    h->n_samples += n_rows;
    return FLX_OK;
}

/* H as a full symmetric matrix (only the upper triangle is accumulated). */
static double hsym(const flx_hessian *h, int32_t i, int32_t j)
{
    return i <= j ? (double)h->h[(size_t)i * h->n_in + j] : (double)h->h[(size_t)j * h->n_in + i];
}

double flx_hessian_error(const flx_hessian *h, const float *w, const float *w_hat, int32_t n_out)
{
    const int32_t n = h->n_in;
    if (h->n_samples == 0) return 0.0;
    double *d = malloc((size_t)n * sizeof *d), total = 0.0;
    if (!d) return INFINITY;
    for (int64_t r = 0; r < n_out; r++) {
        for (int32_t i = 0; i < n; i++) d[i] = (double)w[r * n + i] - (double)w_hat[r * n + i];
        for (int32_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int32_t j = 0; j < n; j++) s += hsym(h, i, j) * d[j];
            total += d[i] * s;
        }
    }
    free(d);
    return total / (double)h->n_samples;   /* = mean_t ||x_t D^T||^2 */
}

/* ---------------------------------------------------------------- GPTQ */

flx_gptq_opts flx_gptq_opts_default(void)
{
    flx_gptq_opts o = { 128, 0.01, 0, NULL, 0 };
    return o;
}

/* The upper Cholesky factor U of H^-1 (H^-1 = U^T U), which GPTQ reads row
 * by row, from one Cholesky factorization and one triangular inverse
 * instead of factor, invert, factor again (half the O(n^3) work; for the
 * 8192-wide down_proj Hessian that is most of GPTQ's own time).  With J the
 * order-reversing permutation and J H J = C C^T (C lower):
 *   H^-1 = J C^-T C^-1 J = (J C^-1 J)^T (J C^-1 J),
 * and J C^-1 J is upper triangular with a positive diagonal, so it is U.
 * On entry a (n, n) holds J (H + damp I) J, i.e. a[i][j] = H[n-1-i][n-1-j];
 * on success the row-major upper U with zeros below.  Returns the LAPACK
 * info (0 = ok). */
static int inverse_cholesky(float *a, int32_t n)
{
    /* symmetric: row-major memory is the same matrix in column-major */
    lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n);
    if (info == 0) info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'L', 'N', n, a, n);
    if (info != 0) return (int)info;
    /* column-major C^-1(r, c), r >= c, sits at a[r + c n]; U[i][j] =
     * C^-1(n-1-i, n-1-j) for i <= j.  Position p = i n + j takes the value at
     * q = (n-1-j) n + (n-1-i): both lie in the upper triangle of the row-major
     * memory, and p -> q is its own inverse, so swapping each pair once
     * rearranges in place. */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            size_t p = (size_t)(i * n + j), q = (size_t)((n - 1 - j) * n + (n - 1 - i));
            if (p < q) {
                float t = a[p];
                a[p] = a[q];
                a[q] = t;
            }
        }
    for (int64_t i = 1; i < n; i++) memset(a + (size_t)i * n, 0, (size_t)i * sizeof *a);
    return 0;
}

typedef struct gptq_ctx {
    const flx_wquant *wq;
    float  *W;            /* (n_out, n) permuted, being updated           */
    const float *U;       /* (n, n) upper factor of H^-1 (permuted)        */
    float  *err1;         /* (n_out, blk) scaled errors of this block      */
    float  *scale, *zero; /* (n_out, ng)                                   */
    const int32_t *perm;  /* permuted column -> original column            */
    int32_t *q;           /* (n_out, n) codes, original column order       */
    float  *w_hat;        /* optional                                      */
    double *loss_row;     /* (n_out)                                       */
    int32_t n, ng, g, i1, i2;
    int     static_groups;
    flx_qspec sp1;        /* spec_of(wq, 1), made once: quantize one value */
    int     block_start_groups;
} gptq_ctx;

static void gptq_block_rows(void *vctx, int64_t begin, int64_t end, int thread_id)
{
    gptq_ctx *c = vctx;
    const int32_t n = c->n, blk = c->i2 - c->i1;
    float *tmp = malloc((size_t)c->g * sizeof *tmp);
    float *w0 = c->block_start_groups ? malloc((size_t)blk * sizeof *w0) : NULL;
    for (int64_t r = begin; r < end; r++) {
        float *w = c->W + r * n;
        if (w0) memcpy(w0, w + c->i1, (size_t)blk * sizeof *w0);
        for (int32_t i = c->i1; i < c->i2; i++) {
            const int32_t col = c->perm[i], gi = col / c->g;
            float *s = &c->scale[r * c->ng + gi], *z = &c->zero[r * c->ng + gi];
            if (!c->static_groups && c->ng > 1 && i % c->g == 0) {
                /* group starts here: parameters from the current (updated)
                 * weights, or (block_start_groups) from the block's columns
                 * as they were when the block began; columns past the block
                 * only ever see the lazy updates, the same in both */
                for (int32_t k = 0; k < c->g; k++)
                    tmp[k] = w0 && i + k < c->i2 ? w0[i + k - c->i1] : w[i + k];
                group_params(c->wq, tmp, c->g, s, z);
            }
            const float wi = w[i];
            const flx_qparams qp = { *s, *z };
            const int32_t q = flx_quantize1(&c->sp1, qp, wi);
            const float wh = flx_dequantize1(&c->sp1, qp, q);
            c->q[r * n + col] = q;
            if (c->w_hat) c->w_hat[r * n + col] = wh;
            const float d = c->U[(size_t)i * n + i];
            const float e = (wi - wh) / d;
            c->loss_row[r] += (double)e * (double)e / 2.0;
            const float *ui = c->U + (size_t)i * n;
            for (int32_t j = i + 1; j < c->i2; j++) w[j] -= e * ui[j];
            c->err1[r * blk + (i - c->i1)] = e;
        }
    }
    free(tmp);
    free(w0);
}

typedef struct diag_sort { double d; int32_t i; } diag_sort;

static int by_diag_desc(const void *a, const void *b)
{
    const diag_sort *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1;
    return x->i - y->i;   /* stable: lower index first */
}

int flx_gptq(const float *w, int32_t n_out, int32_t n_in, const flx_hessian *h, const flx_wquant *wq,
             const flx_gptq_opts *opts, flx_wq_out *out, float *w_hat, double *loss, flx_error *err)
{
    int rc = flx_wquant_check(wq, n_in, "GPTQ", err);
    if (rc) return rc;
    if (n_out < 0) return flx_fail(err, FLX_EINVAL, "GPTQ: %d output rows", (int)n_out);
    if (h->n_in != n_in)
        return flx_fail(err, FLX_EINVAL, "GPTQ: Hessian width %d does not match the %d weight columns",
                        (int)h->n_in, (int)n_in);
    if (h->n_samples < 1) return flx_fail(err, FLX_EINVAL, "GPTQ: the Hessian holds no calibration rows");
    if (opts->block_size < 1 || !(opts->damp > 0.0))
        return flx_fail(err, FLX_EINVAL, "GPTQ: block size %d and damping %g must be positive",
                        (int)opts->block_size, opts->damp);
    const int32_t n = n_in, g = wq->group_size > 0 ? wq->group_size : n_in, ng = n / g;
    const size_t nn = (size_t)n * n;
    int blas_threads_before = 0;
    float *U = malloc(nn * sizeof *U);
    float *W = malloc((size_t)n_out * n * sizeof *W);
    float *err1 = malloc((size_t)n_out * opts->block_size * sizeof *err1);
    double *loss_row = calloc((size_t)n_out, sizeof *loss_row);
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    diag_sort *ds = malloc((size_t)n * sizeof *ds);
    float *tmp = malloc((size_t)g * sizeof *tmp);
    if (!U || !W || !err1 || !loss_row || !perm || !ds || !tmp) {
        rc = flx_fail(err, FLX_ENOMEM, "GPTQ: out of memory for a %d x %d weight", (int)n_out, (int)n_in);
        goto done;
    }
    /* Per-channel parameters (and static groups) from the original weights. */
    const int static_groups = opts->act_order && ng > 1;
    if (ng == 1 || static_groups)
        for (int64_t r = 0; r < n_out; r++)
            for (int32_t k = 0; k < ng; k++)
                group_params(wq, w + r * n + (int64_t)k * g, g, &out->scale[r * ng + k], &out->zero[r * ng + k]);

    /* Column order. */
    for (int32_t i = 0; i < n; i++) {
        ds[i].d = hsym(h, i, i);
        ds[i].i = i;
    }
    if (opts->act_order) qsort(ds, (size_t)n, sizeof *ds, by_diag_desc);
    for (int32_t i = 0; i < n; i++) perm[i] = ds[i].i;

    /* Permuted W; dead columns (diag H = 0) get w = 0 and H_ii = 1. */
    double mean_diag = 0.0;
    for (int64_t r = 0; r < n_out; r++)
        for (int32_t i = 0; i < n; i++) W[r * n + i] = w[r * n + perm[i]];
    for (int32_t i = 0; i < n; i++) {
        double dii = hsym(h, perm[i], perm[i]);
        if (!isfinite(dii)) {
            rc = flx_fail(err, FLX_ENUMERIC, "GPTQ: the Hessian holds a non-finite value (NaN/Inf activations?)");
            goto done;
        }
        if (dii == 0.0) {
            dii = 1.0;
            for (int64_t r = 0; r < n_out; r++) W[r * n + i] = 0.0f;
        }
        mean_diag += dii;
    }
    mean_diag /= n;
    double damp = opts->damp * mean_diag;
    /* the lazy-update sgemm runs on the caller's thread while the pool
     * waits: let OpenBLAS use as many threads as the pool has (its level-3
     * routines split rows and columns, not sums, so the bits do not change;
     * a test checks it); LAPACK runs on one (below).  The previous setting
     * comes back at the end. */
    blas_threads_before = openblas_get_num_threads();
    openblas_set_num_threads(opts->pool ? flx_pool_threads(opts->pool) : 1);
    int info = -1;
    for (int attempt = 0; attempt < 4 && info != 0; attempt++, damp *= 10.0) {
        /* U <- J (permuted H + damp I) J (see inverse_cholesky), then factor in place */
        for (int32_t i = 0; i < n; i++) {
            for (int32_t j = 0; j < n; j++) U[(size_t)i * n + j] = (float)hsym(h, perm[n - 1 - i], perm[n - 1 - j]);
            if (U[(size_t)i * n + i] == 0.0f) U[(size_t)i * n + i] = 1.0f;
            U[(size_t)i * n + i] += (float)damp;
        }
        for (size_t i = 0; i < nn; i++)
            if (!isfinite(U[i])) {
                rc = flx_fail(err, FLX_ENUMERIC, "GPTQ: the Hessian holds a non-finite value (NaN/Inf activations?)");
                goto done;
            }
        /* LAPACK single-threaded: OpenBLAS's threaded spotrf/strtri block
         * the factorisation by thread count (measured: a 256 x 256 H gives
         * other bits on 2 threads than on 1), the sgemm below does not */
        openblas_set_num_threads(1);
        info = inverse_cholesky(U, n);
        openblas_set_num_threads(opts->pool ? flx_pool_threads(opts->pool) : 1);
    }
    if (info != 0) {
        rc = flx_fail(err, FLX_ENUMERIC, "GPTQ: H + damping is not positive definite (LAPACK info %d)", info);
        goto done;
    }

    gptq_ctx c = { wq, W, U, err1, out->scale, out->zero, perm, out->q, w_hat, loss_row, n, ng, g, 0, 0,
                   static_groups, spec_of(wq, 1), opts->block_start_groups };
    for (int32_t i1 = 0; i1 < n; i1 += opts->block_size) {
        const int32_t i2 = i1 + opts->block_size < n ? i1 + opts->block_size : n, blk = i2 - i1;
        c.i1 = i1;
        c.i2 = i2;
        flx_pool_for(opts->pool, n_out, 16, gptq_block_rows, &c);
        /* lazy update of the columns after the block: W[:, i2:] -= E U[i1:i2, i2:] */
        if (i2 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_out, n - i2, blk, -1.0f, err1, blk,
                        U + (size_t)i1 * n + i2, n, 1.0f, W + i2, n);
    }
    if (loss) {
        double s = 0.0;
        for (int64_t r = 0; r < n_out; r++) s += loss_row[r];
        *loss = s;
    }
done:
    if (blas_threads_before > 0) openblas_set_num_threads(blas_threads_before);
    free(U); free(W); free(err1); free(loss_row); free(perm); free(ds); free(tmp);
    return rc;
}
