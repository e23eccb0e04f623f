/* Fast Walsh-Hadamard transforms and rotation matrices (quant/hadamard.c). */
#include "test_util.h"
#include "flx_rotate.h"

#include <math.h>

static void fill_random(float *x, int n, uint64_t seed)
{
    flx_rng r;
    flx_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (float)flx_rng_normal(&r);
}

/* FlexLLM FHT.h's constant-geometry network, transcribed from
 * reference-design §1.11: m stages of "rotate-left shuffle, then
 * butterflies on adjacent pairs", then a division of every output. */
static void cg_network(float *x, int n, float scale_factor)
{
    int m = 0;
    while ((1 << m) < n) m++;
    float *shuf = malloc((size_t)n * sizeof *shuf);
    for (int s = 0; s < m; s++) {
        for (int i = 0; i < n; i++) {
            int rotl = ((i << 1) & (n - 1)) | (i >> (m - 1));
            shuf[i] = x[rotl];
        }
        for (int i = 0; i < n; i += 2) {
            x[i]     = shuf[i] + shuf[i + 1];
            x[i + 1] = shuf[i] - shuf[i + 1];
        }
    }
    for (int i = 0; i < n; i++) x[i] = x[i] / scale_factor;
    free(shuf);
}

Test(hadamard, matches_dense_sylvester_product_in_double)
{
    for (int n = 1; n <= 1024; n *= 2) {
        float *x = malloc(n * sizeof *x), *y0 = malloc(n * sizeof *y0), *y1 = malloc(n * sizeof *y1);
        fill_random(x, n, 100 + n);
        memcpy(y0, x, n * sizeof *x);
        memcpy(y1, x, n * sizeof *x);
        cr_assert_eq(flx_fht(y0, n, FLX_FHT_TEXTBOOK, 1.0f, NULL), FLX_OK);
        cr_assert_eq(flx_fht(y1, n, FLX_FHT_FLEXLLM, 1.0f, NULL), FLX_OK);
        double norm = 0;
        for (int i = 0; i < n; i++) norm += (double)x[i] * x[i];
        norm = sqrt(norm);
        int m = 0;
        while ((1 << m) < n) m++;
        /* each output is a sum of n terms formed in m rounded additions */
        double tol = (m + 1) * 6e-8 * sqrt((double)n) * norm + 1e-30;
        for (int i = 0; i < n; i++) {
            double ref = 0.0;
            for (int j = 0; j < n; j++)
                ref += (__builtin_popcount((unsigned)(i & j)) & 1) ? -(double)x[j] : (double)x[j];
            cr_assert(fabs(y0[i] - ref) <= tol, "n=%d i=%d textbook %g ref %g", n, i, y0[i], ref);
            cr_assert(fabs(y1[i] - ref) <= tol, "n=%d i=%d flexllm %g ref %g", n, i, y1[i], ref);
        }
        free(x); free(y0); free(y1);
    }
}

Test(hadamard, small_case_by_hand)
{
    /* H4 (Sylvester) times (1,2,3,4) = (10, -2, -4, 0) */
    float x[4] = { 1, 2, 3, 4 };
    cr_assert_eq(flx_fht(x, 4, FLX_FHT_FLEXLLM, 1.0f, NULL), FLX_OK);
    cr_assert(x[0] == 10 && x[1] == -2 && x[2] == -4 && x[3] == 0);
    float y[4] = { 1, 2, 3, 4 };
    cr_assert_eq(flx_fht(y, 4, FLX_FHT_TEXTBOOK, 2.0f, NULL), FLX_OK);
    cr_assert(y[0] == 5 && y[1] == -1 && y[2] == -2 && y[3] == 0);
}

Test(hadamard, flexllm_order_is_bit_identical_to_constant_geometry_network)
{
    int n_differ_textbook = 0;
    for (int n = 2; n <= 8192; n *= 2) {
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
        for (int trial = 0; trial < 3; trial++) {
            fill_random(a, n, 7 * n + trial);
            for (int i = 0; i < n; i++) a[i] *= (float)(1 + (i % 5)) * 0.37f;  /* mixed magnitudes */
            memcpy(b, a, n * sizeof *a);
            memcpy(c, a, n * sizeof *a);
            float div = n == 8192 ? 90.50967f : flx_fht_norm_divisor(n);
            cg_network(a, n, div);
            cr_assert_eq(flx_fht(b, n, FLX_FHT_FLEXLLM, div, NULL), FLX_OK);
            cr_assert(memcmp(a, b, n * sizeof *a) == 0, "n=%d trial %d: FlexLLM order differs from FHT.h network", n, trial);
            cr_assert_eq(flx_fht(c, n, FLX_FHT_TEXTBOOK, div, NULL), FLX_OK);
            if (memcmp(a, c, n * sizeof *a) != 0) n_differ_textbook++;
        }
        free(a); free(b); free(c);
    }
    /* the stage order matters in float: the textbook order rounds differently */
    cr_assert(n_differ_textbook > 0);
}

Test(hadamard, rows_are_independent_of_thread_count)
{
    const int n = 256, rows = 37;
    float *a = malloc(n * rows * sizeof *a), *b = malloc(n * rows * sizeof *b);
    fill_random(a, n * rows, 5);
    memcpy(b, a, n * rows * sizeof *a);
    flx_pool *pool = flx_pool_create(3);
    cr_assert_eq(flx_fht_rows(a, rows, n, FLX_FHT_FLEXLLM, 16.0f, NULL, NULL), FLX_OK);
    cr_assert_eq(flx_fht_rows(b, rows, n, FLX_FHT_FLEXLLM, 16.0f, pool, NULL), FLX_OK);
    cr_assert(memcmp(a, b, n * rows * sizeof *a) == 0);
    float row0[256];
    fill_random(b, n * rows, 5);
    memcpy(row0, b + 5 * n, sizeof row0);
    flx_fht(row0, n, FLX_FHT_FLEXLLM, 16.0f, NULL);
    cr_assert(memcmp(row0, a + 5 * n, sizeof row0) == 0);
    flx_pool_free(pool);
    free(a); free(b);
}

Test(hadamard, normalized_transform_is_orthogonal)
{
    cr_assert(flx_fht_norm_divisor(8192) == 90.50967f);
    cr_assert(flx_fht_norm_divisor(64) == 8.0f);
    const int n = 512;
    float x[512], y[512];
    fill_random(x, n, 11);
    memcpy(y, x, sizeof x);
    float d = flx_fht_norm_divisor(n);
    flx_fht(y, n, FLX_FHT_FLEXLLM, d, NULL);
    double nx = 0, ny = 0;
    for (int i = 0; i < n; i++) { nx += (double)x[i] * x[i]; ny += (double)y[i] * y[i]; }
    cr_assert(fabs(nx - ny) <= 1e-5 * nx, "norm not preserved: %g vs %g", nx, ny);
    flx_fht(y, n, FLX_FHT_FLEXLLM, d, NULL);   /* H/sqrt(n) is its own inverse */
    for (int i = 0; i < n; i++) cr_assert(fabs(y[i] - x[i]) <= 1e-5 * (1 + fabs(x[i])));
    float *h = malloc(sizeof(float) * 128 * 128);
    cr_assert_eq(flx_hadamard_matrix(h, 128, 1, NULL), FLX_OK);
    cr_assert(flx_orthogonality_error(h, 128) < 1e-6);
    cr_assert_eq(flx_hadamard_matrix(h, 4, 0, NULL), FLX_OK);
    const float h4[16] = { 1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1 };
    cr_assert(memcmp(h, h4, sizeof h4) == 0);
    free(h);
    /* double transform with 1/sqrt(n) scale */
    double xd[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
    cr_assert_eq(flx_fht_f64(xd, 8, 1.0 / sqrt(8.0), NULL), FLX_OK);
    for (int i = 0; i < 8; i++) cr_assert(fabs(xd[i] - 1.0 / sqrt(8.0)) < 1e-15);
}

Test(hadamard, rejects_non_power_of_two)
{
    float x[12] = { 0 };
    flx_error err = { 0 };
    cr_assert_eq(flx_fht(x, 12, FLX_FHT_TEXTBOOK, 1.0f, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "12") != NULL);
    cr_assert_eq(flx_fht(x, 0, FLX_FHT_TEXTBOOK, 1.0f, &err), FLX_EINVAL);
    cr_assert_eq(flx_fht(x, 4, FLX_FHT_TEXTBOOK, 0.0f, &err), FLX_EINVAL);
    cr_assert_eq(flx_hadamard_matrix(x, 3, 0, &err), FLX_EINVAL);
    cr_assert_eq(flx_random_hadamard(x, 6, 1, &err), FLX_EINVAL);
}

Test(hadamard, random_orthogonal_is_orthogonal_and_seeded)
{
    const int sizes[] = { 1, 8, 64, 172 };
    for (int k = 0; k < 4; k++) {
        int n = sizes[k];
        float *q = malloc(sizeof(float) * n * n), *q2 = malloc(sizeof(float) * n * n);
        cr_assert_eq(flx_random_orthogonal(q, n, 42, NULL), FLX_OK);
        double e = flx_orthogonality_error(q, n);
        cr_assert(e < 2e-6, "n=%d: max|Q^T Q - I| = %g", n, e);
        cr_assert_eq(flx_random_orthogonal(q2, n, 42, NULL), FLX_OK);
        cr_assert(memcmp(q, q2, sizeof(float) * n * n) == 0, "same seed, same matrix");
        cr_assert_eq(flx_random_orthogonal(q2, n, 43, NULL), FLX_OK);
        if (n > 1) cr_assert(memcmp(q, q2, sizeof(float) * n * n) != 0);
        else cr_assert(fabsf(q[0]) == 1.0f);
        free(q); free(q2);
    }
    /* a non-orthogonal matrix is detected */
    float bad[4] = { 1, 0, 0.01f, 1 };
    cr_assert(fabs(flx_orthogonality_error(bad, 2) - 0.01) < 1e-6);
    float nan_m[1] = { NAN };
    cr_assert(isinf(flx_orthogonality_error(nan_m, 1)));
}

Test(hadamard, random_hadamard_has_signed_rows)
{
    const int n = 64;
    float r[64 * 64], h[64 * 64];
    cr_assert_eq(flx_random_hadamard(r, n, 9, NULL), FLX_OK);
    flx_hadamard_matrix(h, n, 1, NULL);
    int n_flipped = 0;
    for (int i = 0; i < n; i++) {
        float s = r[i * n] / h[i * n];
        cr_assert(s == 1.0f || s == -1.0f);
        for (int j = 0; j < n; j++) cr_assert(r[i * n + j] == s * h[i * n + j]);
        n_flipped += s < 0;
    }
    cr_assert(n_flipped > 10 && n_flipped < 54, "signs look random: %d of 64 flipped", n_flipped);
    cr_assert(flx_orthogonality_error(r, n) < 1e-6);
}
