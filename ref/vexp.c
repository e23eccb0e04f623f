/* A vectorized exp for softmax-style reductions (llama_impl.h). */
#include "llama_impl.h"

#include <string.h>

/* exp8 passes 32-byte vectors between inlined static functions only; the
 * note about the AVX calling convention does not concern any interface. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float   v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float   v4f __attribute__((vector_size(16)));
typedef double  v4d __attribute__((vector_size(32)));

/* The loops below are compiled twice, for the x86-64 baseline and for AVX2,
 * and the loader picks one (GCC/clang function multiversioning).  Both use
 * the same IEEE operations per lane (no FMA: -ffp-contract=off), so the
 * results are identical; AVX2 only does them 8 at a time.  (GCC only: clang
 * rejects 32-byte vector arguments in the baseline clone.) */
/* Not under ThreadSanitizer: the resolver that picks a clone runs during
 * relocation, before the TSan runtime is initialized, and crashed the
 * program before main; the baseline loop gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FLX_NO_TARGET_CLONES) && \
    !defined(__SANITIZE_THREAD__)
#define VEXP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VEXP_CLONES
#endif

#define LOG2E   1.44269504088896341f
#define LN2_HI  0.693145751953125f        /* ln 2 split so n * LN2_HI is exact */
#define LN2_LO  1.42860676533018690e-06f
#define MAGIC   12582912.0f               /* 1.5 * 2^23: adding it rounds to an integer */
#define X_MIN   -87.0f                    /* below: 0 (2^-125 and smaller) */

/* The polynomial part, shared by both forms (same operations, same order). */
#define EXP_BODY(T, x, n, r, p)                                                       \
    T t_ = (x) * LOG2E + MAGIC;                                                       \
    n = t_ - MAGIC;                                                                   \
    r = (x) - n * LN2_HI;                                                             \
    r = r - n * LN2_LO;                                                               \
    p = (T){0} + 1.0f / 5040.0f;                                                      \
    p = p * r + 1.0f / 720.0f;                                                        \
    p = p * r + 1.0f / 120.0f;                                                        \
    p = p * r + 1.0f / 24.0f;                                                         \
    p = p * r + 1.0f / 6.0f;                                                          \
    p = p * r + 0.5f;                                                                 \
    p = p * r + 1.0f;                                                                 \
    p = p * r + 1.0f;

float flx_exp_nonpos(float x)
{
    if (!(x >= X_MIN)) return x < X_MIN ? 0.0f : x;   /* underflow, or NaN */
    float n, r, p;
    EXP_BODY(float, x, n, r, p)
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline __attribute__((always_inline)) v8f exp8(v8f x)
{
    v8i under = x < X_MIN;                        /* -1 where x < X_MIN */
    v8f lo = {X_MIN, X_MIN, X_MIN, X_MIN, X_MIN, X_MIN, X_MIN, X_MIN};
    x = (v8f)(((v8i)x & ~under) | ((v8i)lo & under));
    v8f n, r, p;
    EXP_BODY(v8f, x, n, r, p)
    v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
    v8f y = p * (v8f)bits;
    return (v8f)((v8i)y & ~under);
}

VEXP_CLONES float flx_max_f32(const float *x, int64_t n)
{
    float m = x[0];
    int64_t i = 0;
    if (n >= 8) {
        v8f mv;
        memcpy(&mv, x, sizeof mv);
        for (i = 8; i + 8 <= n; i += 8) {
            v8f v;
            memcpy(&v, x + i, sizeof v);
            v8i gt = v > mv;
            mv = (v8f)(((v8i)v & gt) | ((v8i)mv & ~gt));
        }
        m = mv[0];
        for (int k = 1; k < 8; k++) m = mv[k] > m ? mv[k] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

VEXP_CLONES double flx_exp_shift_sum(float *out, const float *x, int64_t n, float shift)
{
    /* eight double partial sums (two 4-lane vectors), combined in lane order */
    v4d acc_lo = {0, 0, 0, 0}, acc_hi = {0, 0, 0, 0};
    int64_t i = 0;
    v8f sh = {shift, shift, shift, shift, shift, shift, shift, shift};
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v8f e = exp8(v - sh);
        if (out) memcpy(out + i, &e, sizeof e);
        v4f lo = __builtin_shufflevector(e, e, 0, 1, 2, 3);
        v4f hi = __builtin_shufflevector(e, e, 4, 5, 6, 7);
        acc_lo += __builtin_convertvector(lo, v4d);
        acc_hi += __builtin_convertvector(hi, v4d);
    }
    double lane[8] = {acc_lo[0], acc_lo[1], acc_lo[2], acc_lo[3],
                      acc_hi[0], acc_hi[1], acc_hi[2], acc_hi[3]};
    for (int k = 0; i < n; i++, k++) {
        float e = flx_exp_nonpos(x[i] - shift);
        if (out) out[i] = e;
        lane[k] += (double)e;
    }
    double sum = 0.0;
    for (int k = 0; k < 8; k++) sum += lane[k];
    return sum;
}

/* silu(g) = g / (1 + exp(-g)) written with t = exp(-|g|) <= 1, so the exp
 * never overflows: g >= 0 gives g / (1 + t); g < 0 gives g t / (1 + t),
 * the same value multiplied through by exp(g).  Same operations per lane in
 * the vector loop and the scalar tail. */
static inline float silu1(float g)
{
    float t = flx_exp_nonpos(g >= 0.0f ? -g : g);
    float num = g >= 0.0f ? g : g * t;
    return num / (1.0f + t);
}

VEXP_CLONES void flx_silu_mul(float *g, const float *u, int64_t n)
{
    int64_t i = 0;
    const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0}, one = {1, 1, 1, 1, 1, 1, 1, 1};
    for (; i + 8 <= n; i += 8) {
        v8f gv, uv;
        memcpy(&gv, g + i, sizeof gv);
        memcpy(&uv, u + i, sizeof uv);
        v8i pos = gv >= zero;
        v8f neg_abs = (v8f)(((v8i)-gv & pos) | ((v8i)gv & ~pos));
        v8f t = exp8(neg_abs);
        v8f gt = gv * t;
        v8f num = (v8f)(((v8i)gv & pos) | ((v8i)gt & ~pos));
        v8f silu = num / (one + t);
        v8f out = silu * uv;
        memcpy(g + i, &out, sizeof out);
    }
    for (; i < n; i++) g[i] = silu1(g[i]) * u[i];
}
