/* bench_expf -- the softmax's vector exponential (emu/expf_vec.c) against
 * the scalar expression it replaces, (x < -0x1.9fe368p+6f ? 0 : expf(x)),
 * over every one of the 2^32 float bit patterns, compared bit for bit
 * (NaN results by pattern too), split over two threads.
 *
 *   bench_expf [--threads N]
 *
 * Prints the number of differing inputs (0 expected) and the first few. */
#include "flx_emu.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t begin, end, bad; uint32_t first[8]; double t_vec, t_scalar; } part;

static void *run(void *arg)
{
    part *p = arg;
    enum { B = 4096 };
    float x[B], yv[B], ys[B];
    for (uint64_t u0 = p->begin; u0 < p->end; u0 += B) {
        for (int i = 0; i < B; i++) {
            uint32_t u = (uint32_t)(u0 + i);
            memcpy(&x[i], &u, 4);
        }
        double t0 = flx_now_seconds();
        flx_emu_expf_vec(yv, x, B);
        double t1 = flx_now_seconds();
        for (int i = 0; i < B; i++) ys[i] = x[i] < -0x1.9fe368p+6f ? 0.0f : expf(x[i]);
        p->t_vec += t1 - t0;
        p->t_scalar += flx_now_seconds() - t1;
        if (memcmp(yv, ys, sizeof yv))
            for (int i = 0; i < B; i++)
                if (memcmp(&yv[i], &ys[i], 4)) {
                    if (p->bad < 8) p->first[p->bad] = (uint32_t)(u0 + i);
                    p->bad++;
                }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = 2;
    if (argc == 3 && !strcmp(argv[1], "--threads")) n = atoi(argv[2]);
    else if (argc != 1) { fprintf(stderr, "usage: bench_expf [--threads N]\n"); return 2; }
    if (n < 1 || n > 64) n = 2;
    printf("vector path: %s\n", flx_emu_expf_vec_available() ? "AVX-512 (glibc FMA steps)" : "scalar (no AVX-512)");
    part ps[64];
    pthread_t th[64];
    const uint64_t total = (uint64_t)1 << 32, per = total / (uint64_t)n / 4096 * 4096;
    double t0 = flx_now_seconds();
    for (int i = 0; i < n; i++) {
        memset(&ps[i], 0, sizeof ps[i]);
        ps[i].begin = per * (uint64_t)i;
        ps[i].end = i == n - 1 ? total : per * (uint64_t)(i + 1);
        pthread_create(&th[i], NULL, run, &ps[i]);
    }
    uint64_t bad = 0;
    double tv = 0, ts = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        for (uint64_t k = 0; k < ps[i].bad && k < 8; k++) {
            float xv;
            memcpy(&xv, &ps[i].first[k], 4);
            printf("differs at 0x%08x (%a)\n", ps[i].first[k], (double)xv);
        }
        bad += ps[i].bad;
        tv += ps[i].t_vec;
        ts += ps[i].t_scalar;
    }
    printf("%llu inputs, %llu differ; %.1f s wall; vector %.2f ns/element, scalar %.2f ns/element "
           "(wall time per thread; half of all patterns take the scalar special-case path)\n", (unsigned long long)total, (unsigned long long)bad,
           flx_now_seconds() - t0, tv * 1e9 / (double)total, ts * 1e9 / (double)total);
    return bad ? 1 : 0;
}
