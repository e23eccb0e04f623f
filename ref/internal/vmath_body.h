/* The loops of vmath.c, included twice: by vmath.c (x86-64 baseline, SSE2
 * exp) and by vmath_avx.c (compiled with -mavx, AVX exp).  The caller
 * defines VM_SUFFIX and VM_EXP_BLOCKS(y, x, n) (exp of n floats in
 * [-87, 0]).  Every element sees the same IEEE operations in the same
 * order in both builds (no FMA: -ffp-contract=off, and AVX has none), and
 * the exps give the same bits, so the two builds agree bit for bit. */
#define VM_CAT2(a, b) a##b
#define VM_CAT(a, b) VM_CAT2(a, b)
#define VM_X_MIN -87.0f
#define VM_CHUNK 256   /* floats per stack buffer, a multiple of 8 */
#ifndef VM_TYPES
#define VM_TYPES
typedef float   vm_v8f __attribute__((vector_size(32)));
typedef int32_t vm_v8i __attribute__((vector_size(32)));
#endif

double VM_CAT(flx_vm_exp_shift_sum_, VM_SUFFIX)(float *out, const float *x, int64_t n, float shift)
{
    /* four double partial sums, element i into lane i % 4, combined in lane order */
    double lane[4] = {0.0, 0.0, 0.0, 0.0};
    float d[VM_CHUNK], e[VM_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += VM_CHUNK) {
        int len = n - i0 < VM_CHUNK ? (int)(n - i0) : VM_CHUNK;
        for (int k = 0; k < len; k++) {
            float v = x[i0 + k] - shift;
            d[k] = v < VM_X_MIN ? 0.0f : v;
        }
        VM_EXP_BLOCKS(e, d, len);
        for (int k = 0; k < len; k++) {
            float ek = e[k];
            e[k] = x[i0 + k] - shift < VM_X_MIN ? 0.0f : ek;
        }
        for (int k = 0; k + 4 <= len; k += 4)
            for (int j = 0; j < 4; j++) lane[j] += (double)e[k + j];
        for (int k = len / 4 * 4; k < len; k++) lane[k & 3] += (double)e[k];
        if (out) memcpy(out + i0, e, (size_t)len * sizeof(float));
    }
    return ((lane[0] + lane[1]) + lane[2]) + lane[3];
}

/* silu(g) = g / (1 + exp(-g)) written with t = exp(-|g|) <= 1, so the exp
 * never overflows: g >= 0 gives g / (1 + t); g < 0 gives g t / (1 + t),
 * the same value multiplied through by exp(g). */
void VM_CAT(flx_vm_silu_mul_, VM_SUFFIX)(float *g, const float *u, int64_t n)
{
    float a[VM_CHUNK], t[VM_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += VM_CHUNK) {
        int len = n - i0 < VM_CHUNK ? (int)(n - i0) : VM_CHUNK;
        float *gc = g + i0;
        const float *uc = u + i0;
        for (int k = 0; k < len; k++) {
            float v = gc[k] >= 0.0f ? -gc[k] : gc[k];
            a[k] = v < VM_X_MIN ? 0.0f : v;
        }
        VM_EXP_BLOCKS(t, a, len);
        /* blocks of 8 as GCC vectors with bit-mask selects (the plain
         * loop does not vectorize), then the same operations per element */
        int k = 0;
        for (; k + 8 <= len; k += 8) {
            vm_v8f gv, tv, uv;
            memcpy(&gv, gc + k, sizeof gv);
            memcpy(&tv, t + k, sizeof tv);
            memcpy(&uv, uc + k, sizeof uv);
            const vm_v8f zero = {0, 0, 0, 0, 0, 0, 0, 0}, one = {1, 1, 1, 1, 1, 1, 1, 1};
            const vm_v8f lo = {VM_X_MIN, VM_X_MIN, VM_X_MIN, VM_X_MIN, VM_X_MIN, VM_X_MIN, VM_X_MIN, VM_X_MIN};
            vm_v8i pos = gv >= zero;
            vm_v8f av = (vm_v8f)(((vm_v8i)-gv & pos) | ((vm_v8i)gv & ~pos));
            tv = (vm_v8f)((vm_v8i)tv & ~(av < lo));
            vm_v8f mul = (vm_v8f)(((vm_v8i)one & pos) | ((vm_v8i)tv & ~pos));
            vm_v8f out = ((gv * mul) / (one + tv)) * uv;
            memcpy(gc + k, &out, sizeof out);
        }
        for (; k < len; k++) {
            float gk = gc[k], tk = t[k];
            float ak = gk >= 0.0f ? -gk : gk;
            tk = ak < VM_X_MIN ? 0.0f : tk;
            float mul = gk >= 0.0f ? 1.0f : tk;
            gc[k] = ((gk * mul) / (1.0f + tk)) * uc[k];
        }
    }
}
