/* qsimd: the AVX2 forms of the fake-quant loops (quant/qsimd.c) give the
 * bits of the scalar C loops they replace: the activation quantizer (every
 * scheme, rounding, granularity; dynamic and static), P's UINT8 quantizer
 * and the FHT, on edge cases (exact ties, signed zeros, all-equal rows,
 * values near the float range's ends, subnormals, lengths that leave a
 * scalar tail) and random rows.  On a processor without AVX2 both forms
 * are the scalar loop and the comparisons hold trivially (logged). */
#include "flx_quant.h"
#include "flx_rotate.h"
#include "qsimd.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345u;
static uint32_t next_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) / 16777216.0f; }

static int same_bits(const float *a, const float *b, int64_t n, int64_t *at)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0) {
            *at = i;
            return 0;
        }
    return 1;
}

/* rows x cols test matrix: row r is one kind of edge case */
#define ROWS 12
static void fill_edges(float *x, int64_t cols)
{
    for (int64_t r = 0; r < ROWS; r++)
        for (int64_t k = 0; k < cols; k++) {
            float *v = &x[r * cols + k];
            switch (r) {
            case 0: *v = uniform(-3.0f, 3.0f); break;
            case 1: *v = 0.75f; break;                                          /* all equal */
            case 2: *v = (k & 1) ? -0.0f : 0.0f; break;                           /* zeros only */
            case 3: *v = (k % 3 == 0) ? -0.0f : uniform(0.0f, 2.0f); break;       /* zero minimum */
            case 4: *v = (k % 3 == 0) ? 0.0f : uniform(-2.0f, -0.0f); break;      /* zero maximum */
            case 5: *v = 0.25f * (float)((int)(k % 17) - 8) + 0.125f; break;     /* halves of a grid */
            case 6: *v = (k & 1) ? FLT_MAX / 4 : -FLT_MAX / 4; break;             /* near the range's end */
            case 7: *v = uniform(-1.0f, 1.0f) * 1e-40f; break;                    /* subnormals */
            case 8: *v = (k == cols / 2) ? 1e30f : uniform(-1.0f, 1.0f); break;    /* one outlier */
            case 9: *v = -1.5f; break;                                           /* all equal, negative */
            case 10: *v = (float)(k % 16) / 15.0f * 7.0f - 3.0f; break;          /* codes' own grid */
            default: *v = uniform(-1e4f, 1e4f); break;
            }
        }
}

Test(qsimd, fake_quant_matches_scalar_every_scheme)
{
    cr_log_info("AVX2 forms %s", flx_qsimd_avx2() ? "in use" : "unavailable: scalar on both sides");
    const int64_t widths[] = {8, 13, 64, 67, 512};
    const flx_qscheme schemes[] = {FLX_QS_SYM, FLX_QS_ASYM_ZP, FLX_QS_ASYM_FLOAT};
    const flx_qgran grans[] = {FLX_QG_TENSOR, FLX_QG_ROW, FLX_QG_GROUP};
    int checked = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const int64_t cols = widths[wi];
        float *x = malloc((size_t)(ROWS * cols) * sizeof *x), *a = malloc((size_t)(ROWS * cols) * sizeof *a),
              *b = malloc((size_t)(ROWS * cols) * sizeof *b);
        cr_assert(x && a && b);
        fill_edges(x, cols);
        for (int bits = 4; bits <= 8; bits += 4)
            for (size_t si = 0; si < 3; si++)
                for (size_t gi = 0; gi < 3; gi++)
                    for (int rd = 0; rd < 2; rd++)
                        for (int mm = 0; mm < 2; mm++)
                            for (int stat = 0; stat < 2; stat++) {
                                const int64_t gs = grans[gi] == FLX_QG_GROUP ? (cols % 8 == 0 ? 8 : cols) : 0;
                                flx_qspec s = flx_qspec_make(bits, schemes[si], grans[gi], (int32_t)gs);
                                s.round = rd ? FLX_QR_HALF_EVEN : FLX_QR_HALF_AWAY;
                                s.minmax_range = mm;
                                s.clip = mm ? 0.9f : 1.0f;
                                flx_qparams params[ROWS * 512];
                                const flx_qparams *pp = NULL;
                                if (stat) {
                                    flx_quant_params(&s, x, ROWS, cols, params);
                                    pp = params;
                                }
                                flx_fake_quant_scalar(&s, x, ROWS, cols, pp, a);
                                flx_fake_quant(&s, x, ROWS, cols, pp, b);
                                int64_t at = -1;
                                cr_assert(same_bits(a, b, ROWS * cols, &at),
                                          "cols %lld bits %d scheme %d gran %d round %d minmax %d static %d: "
                                          "element %lld (row %lld) x=%a scalar %a vector %a",
                                          (long long)cols, bits, (int)schemes[si], (int)grans[gi], rd, mm, stat,
                                          (long long)at, (long long)(at / cols), (double)x[at], (double)a[at],
                                          (double)b[at]);
                                /* in place (the forward's use) gives the same */
                                memcpy(b, x, (size_t)(ROWS * cols) * sizeof *b);
                                flx_fake_quant(&s, b, ROWS, cols, pp, b);
                                cr_assert(same_bits(a, b, ROWS * cols, &at), "in place: element %lld", (long long)at);
                                checked++;
                            }
        free(x);
        free(a);
        free(b);
    }
    cr_assert_eq(checked, 5 * 2 * 3 * 3 * 2 * 2 * 2);
}

/* A hand-checked row: FlexLLM's per-token ASYM_FLOAT INT4 with an exact
 * tie.  x = {0, 1.5, 3, 0.75, ...}: lo = 0, hi = 3, scale = 3/15 = 0.2f;
 * 0.75 / 0.2f = 3.7499998 -> 4 and the ties are built on the float grid. */
Test(qsimd, flexllm_token_row_by_hand)
{
    float x[16], a[16], b[16];
    for (int k = 0; k < 16; k++) x[k] = 0.0f;
    x[1] = 3.0f;
    x[2] = 0.75f;
    const float sc = 3.0f / 15.0f;
    x[3] = 2.5f * sc;          /* (x - 0) / sc: 2.5 if exact, else next to it */
    flx_qspec s = flx_qspec_make(4, FLX_QS_ASYM_FLOAT, FLX_QG_ROW, 0);
    flx_fake_quant_scalar(&s, x, 1, 16, NULL, a);
    flx_fake_quant(&s, x, 1, 16, NULL, b);
    for (int k = 0; k < 16; k++) cr_assert_eq(memcmp(&a[k], &b[k], 4), 0, "k=%d", k);
    cr_assert_eq(a[1], sc * 15.0f);
    cr_assert_eq(a[2], sc * 4.0f);
    const float q3 = roundf(x[3] / sc);
    cr_assert_eq(a[3], sc * q3);
    cr_assert_eq(a[0], 0.0f);
}

/* P's quantizer with a_s = 1 is roundf itself, then min(., 255): every
 * half-integer and its float neighbours in [-300, 300], the largest float
 * below 1/2 (where floor(x + 1/2) would give 1), signed zeros, extremes,
 * and random values; then real scales with ties p / a_s = k + 1/2. */
Test(qsimd, p_quantizer_matches_roundf)
{
    enum { N = 4096 * 4 + 64 };
    static float p[N], a[N], b[N];
    int n = 0;
    for (int k = -600; k <= 600 && n + 3 <= N; k++) {
        const float h = 0.5f * (float)k;
        p[n++] = h;
        p[n++] = nextafterf(h, -INFINITY);
        p[n++] = nextafterf(h, INFINITY);
    }
    const float special[] = {0.0f, -0.0f, 0.49999997f, -0.49999997f, 8388607.5f, 8388608.0f, 1e30f, -1e30f,
                             FLT_MAX, -FLT_MAX, 1e-45f, -1e-45f, 254.5f, 255.5f, 256.0f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) p[n++] = special[i];
    while (n < N) p[n++] = uniform(-400.0f, 400.0f);
    memcpy(a, p, sizeof p);
    memcpy(b, p, sizeof p);
    flx_fake_quant_u8_scalar(a, N, 1.0f);
    flx_fake_quant_u8(b, N, 1.0f);
    int64_t at = -1;
    cr_assert(same_bits(a, b, N, &at), "p=%a: scalar %a vector %a", (double)p[at], (double)a[at], (double)b[at]);
    /* by hand: roundf(0.49999997) = 0, roundf(2.5) = 3, roundf(-2.5) = -3, 300 -> 255 */
    float h[8] = {0.49999997f, 2.5f, -2.5f, 300.0f, 0.5f, -0.0f, 254.5f, 1.0f};
    flx_fake_quant_u8(h, 8, 1.0f);
    const float want[8] = {0.0f, 3.0f, -3.0f, 255.0f, 1.0f, -0.0f, 255.0f, 1.0f};
    for (int i = 0; i < 8; i++) cr_assert_eq(memcmp(&h[i], &want[i], 4), 0, "i=%d: %a", i, (double)h[i]);

    const float scales[] = {1.0f / 255.0f, 0.0031f, 0.5f / 255.0f, 3.9e-3f};
    for (size_t si = 0; si < 4; si++) {
        const float as = scales[si];
        for (int i = 0; i < N; i++) {
            const int k = i % 300;
            switch (i % 4) {
            case 0: p[i] = ((float)k + 0.5f) * as; break;          /* near ties */
            case 1: p[i] = nextafterf(((float)k + 0.5f) * as, 0.0f); break;
            case 2: p[i] = uniform(0.0f, 1.0f); break;            /* probabilities */
            default: p[i] = (float)k * as; break;                  /* on the grid */
            }
        }
        memcpy(a, p, sizeof p);
        memcpy(b, p, sizeof p);
        flx_fake_quant_u8_scalar(a, N, as);
        flx_fake_quant_u8(b, N, as);
        cr_assert(same_bits(a, b, N, &at), "a_s=%a p=%a: scalar %a vector %a", (double)as, (double)p[at],
                  (double)a[at], (double)b[at]);
    }
    /* tails shorter than a vector */
    for (int len = 1; len < 20; len++) {
        memcpy(a, p, (size_t)len * 4);
        memcpy(b, p, (size_t)len * 4);
        flx_fake_quant_u8_scalar(a, len, 0.01f);
        flx_fake_quant_u8(b, len, 0.01f);
        cr_assert(same_bits(a, b, len, &at), "len %d", len);
    }
}

Test(qsimd, fht_matches_scalar_both_orders)
{
    for (int32_t n = 1; n <= 8192; n *= 2) {
        float *x = malloc((size_t)n * sizeof *x), *a = malloc((size_t)n * sizeof *a),
              *b = malloc((size_t)n * sizeof *b);
        cr_assert(x && a && b);
        for (int32_t i = 0; i < n; i++)
            x[i] = (i % 97 == 5) ? 3e37f : (i % 89 == 1) ? -0.0f : uniform(-10.0f, 10.0f);
        for (int order = 0; order < 2; order++)
            for (int div = 0; div < 2; div++) {
                const float d = div ? flx_fht_norm_divisor(n) : 1.0f;
                memcpy(a, x, (size_t)n * sizeof *a);
                memcpy(b, x, (size_t)n * sizeof *b);
                cr_assert_eq(flx_fht_scalar(a, n, (flx_fht_order)order, d, NULL), FLX_OK);
                cr_assert_eq(flx_fht(b, n, (flx_fht_order)order, d, NULL), FLX_OK);
                int64_t at = -1;
                cr_assert(same_bits(a, b, n, &at), "n %d order %d divisor %g: element %lld", (int)n, order,
                          (double)d, (long long)at);
            }
        /* the orders differ in float, so the comparison can tell them apart */
        if (n >= 4096) {
            for (int32_t i = 0; i < n; i++) a[i] = b[i] = uniform(-10.0f, 10.0f);
            flx_fht_scalar(a, n, FLX_FHT_TEXTBOOK, 1.0f, NULL);
            flx_fht(b, n, FLX_FHT_FLEXLLM, 1.0f, NULL);
            int64_t at = -1;
            cr_assert(!same_bits(a, b, n, &at), "n %d: textbook and FlexLLM orders gave the same bits", (int)n);
        }
        free(x);
        free(a);
        free(b);
    }
}
