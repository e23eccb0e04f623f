/* bench_vmath -- the float forward's SLEEF exponential (ref/vmath.c):
 *   1. every float in [-87, 0] (and NaN) through the SSE2 and AVX paths,
 *      which must give the same bits (the test suite samples this);
 *   2. ns per element of the log-sum-exp over a Llama-3 vocabulary row and
 *      of SwiGLU's silu * u.
 *   bench_vmath [--no-exhaustive] */
#include "../ref/internal/llama_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int exhaustive(void)
{
    if (!__builtin_cpu_supports("avx")) {
        printf("exhaustive: no AVX on this processor, one path only\n");
        return 0;
    }
    enum { N = 1 << 16 };
    static float x[N], a[N], b[N];
    uint64_t n_diff = 0, n_all = 0;
    double t0 = now();
    for (uint64_t u = 0x80000000u; u <= 0xc2ae0000u; u += N) {
        int n = 0;
        for (; n < N && u + (uint64_t)n <= 0xc2ae0000u; n++) {
            uint32_t w = (uint32_t)(u + (uint64_t)n);
            memcpy(&x[n], &w, 4);
        }
        flx_vm_exp(a, x, n, FLX_VM_SSE2);
        flx_vm_exp(b, x, n, FLX_VM_AVX);
        for (int i = 0; i < n; i++) n_diff += memcmp(&a[i], &b[i], 4) != 0;
        n_all += (uint64_t)n;
    }
    printf("exhaustive: %llu inputs in [-87, 0], %llu differ between SSE2 and AVX (%.1f s)\n",
           (unsigned long long)n_all, (unsigned long long)n_diff, now() - t0);
    return n_diff != 0;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (!(argc > 1 && !strcmp(argv[1], "--no-exhaustive"))) rc = exhaustive();
    const int64_t n = 128256;
    float *x = malloc((size_t)n * sizeof *x), *u = malloc((size_t)n * sizeof *u), *g = malloc((size_t)n * sizeof *g);
    if (!x || !u || !g) return 1;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)((i * 7919) % 1000) / 50.0f - 10.0f;
        u[i] = 1.0f;
    }
    double best_lse = 1e9, best_silu = 1e9, sink = 0;
    for (int r = 0; r < 7; r++) {
        double t = now();
        for (int k = 0; k < 100; k++) sink += flx_exp_shift_sum(NULL, x, n, flx_max_f32(x, n));
        t = now() - t;
        if (t < best_lse) best_lse = t;
        t = now();
        for (int k = 0; k < 100; k++) {
            memcpy(g, x, (size_t)n * sizeof *g);
            flx_silu_mul(g, u, n);
        }
        t = now() - t;
        if (t < best_silu) best_silu = t;
    }
    printf("log-sum-exp %.2f ns/element, silu*u %.2f ns/element (best of 7, %lld elements x 100; %g)\n",
           best_lse / 100 / (double)n * 1e9, best_silu / 100 / (double)n * 1e9, (long long)n, sink);
    free(x); free(u); free(g);
    return rc;
}
