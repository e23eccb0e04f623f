/* Integer GEMMs of the INT4 and INT8 PEs and the fp32 PE (docs/reference-design.md
 * 1.3, 1.4, 1.12).  Integer sums are exact and order-free, so any loop order
 * and any thread split give the same bits; the PE's finite register width is
 * applied afterwards (pair_wrap / flx_emu_wrap). */
#include "flx_emu.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* The packed INT4 PE keeps columns 2n and 2n+1 in one (2*acc_bits)-bit
 * register: the even field wraps on its own, the odd field receives the even
 * field's carry.  Returns how many of the two exact sums were out of range. */
static int pair_wrap(int64_t s_even, int64_t s_odd, int bits, int32_t *even, int32_t *odd)
{
    int32_t e = flx_emu_wrap(s_even, bits);
    int64_t carry = (s_even - e) / ((int64_t)1 << bits);
    *even = e;
    if (odd) *odd = flx_emu_wrap(s_odd + carry, bits);
    int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    return (s_even < lo || s_even > hi) + (odd && (s_odd < lo || s_odd > hi));
}

typedef struct {
    int32_t *acc;
    const int16_t *a;      /* [n_tokens][n_in] values                */
    const int8_t *w;       /* [n_out][n_in] int4 in the low nibble    */
    int64_t n_tokens, n_out, n_in;
    int bits;
    int64_t *wrapped;      /* [n_pairs] per-pair counts (no shared counter) */
} gemm_i4_job;

/* sum_k x[k] * nibble(y[k]); the low nibble is sign-extended by the shift
 * pair, as the PE's ap_int<4> weight lanes do */
static int32_t dot_i16_i4(const int16_t *x, const int8_t *y, int64_t n)
{
    int32_t s = 0;
    for (int64_t k = 0; k < n; k++) {
        int32_t wv = (int32_t)(int8_t)(uint8_t)((uint8_t)y[k] << 4) >> 4;
        s += (int32_t)x[k] * wv;
    }
    return s;
}

static void gemm_i4_pairs(void *ctx, int64_t p0, int64_t p1, int thread_id)
{
    gemm_i4_job *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        int64_t o = 2 * p;
        int has_odd = o + 1 < j->n_out;
        const int8_t *we = j->w + o * j->n_in, *wo = has_odd ? we + j->n_in : NULL;
        for (int64_t t = 0; t < j->n_tokens; t++) {
            const int16_t *at = j->a + t * j->n_in;
            int32_t *yt = j->acc + t * j->n_out;
            int64_t se = dot_i16_i4(at, we, j->n_in);
            int64_t so = has_odd ? dot_i16_i4(at, wo, j->n_in) : 0;
            j->wrapped[p] += pair_wrap(se, so, j->bits, &yt[o], has_odd ? &yt[o + 1] : NULL);
        }
    }
}

/* Float path: when max|a| * max|w| * n_in < 2^24 every partial sum of any
 * summation order is an integer of magnitude below 2^24, hence exact in
 * binary32; sgemm then returns the exact integer sums whatever its blocking
 * and thread count.  Weights are converted in row blocks of <= 32 MiB. */
typedef struct {
    const float *af, *wf;
    float *cf;
    int64_t n_tokens, nr, n_in;
} sgemm_job;

/* token slices of one weight block: single-threaded sgemm per pool task
 * (the emulator parallelizes itself; see flx_emu.h "Threads") */
static void sgemm_tokens(void *ctx, int64_t t0, int64_t t1, int thread_id)
{
    const sgemm_job *j = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(t1 - t0), (int)j->nr, (int)j->n_in,
                1.0f, j->af + t0 * j->n_in, (int)j->n_in, j->wf, (int)j->n_in, 0.0f,
                j->cf + t0 * j->nr, (int)j->nr);
}

static int64_t gemm_i4_sgemm(int32_t *acc, const int8_t *a, int a_is_uint, const int8_t *w,
                             int64_t n_tokens, int64_t n_out, int64_t n_in, int acc_bits,
                             flx_pool *pool)
{
    int64_t rows = ((int64_t)8 << 20) / n_in;
    rows = rows < 2 ? 2 : rows & ~(int64_t)1;           /* keep column pairs together */
    if (rows > n_out) rows = n_out + (n_out & 1);
    float *af = malloc((size_t)(n_tokens * n_in) * sizeof *af);
    float *wf = malloc((size_t)(rows * n_in) * sizeof *wf);
    float *cf = malloc((size_t)(n_tokens * rows) * sizeof *cf);
    if (!af || !wf || !cf) {
        free(af); free(wf); free(cf);
        return -1;
    }
    for (int64_t i = 0; i < n_tokens * n_in; i++)
        af[i] = (float)flx_emu_pattern_value(a[i], 4, a_is_uint);
    int64_t wrapped = 0;
    for (int64_t o0 = 0; o0 < n_out; o0 += rows) {
        int64_t nr = n_out - o0 < rows ? n_out - o0 : rows;
        for (int64_t i = 0; i < nr * n_in; i++)
            wf[i] = (float)flx_emu_pattern_value(w[o0 * n_in + i], 4, 0);
        sgemm_job job = { af, wf, cf, n_tokens, nr, n_in };
        flx_pool_for(pool, n_tokens, 64, sgemm_tokens, &job);
        for (int64_t t = 0; t < n_tokens; t++) {
            const float *ct = cf + t * nr;
            int32_t *yt = acc + t * n_out + o0;
            for (int64_t c = 0; c < nr; c += 2) {
                int has_odd = c + 1 < nr;
                wrapped += pair_wrap((int64_t)ct[c], has_odd ? (int64_t)ct[c + 1] : 0, acc_bits,
                                     &yt[c], has_odd ? &yt[c + 1] : NULL);
            }
        }
    }
    free(af); free(wf); free(cf);
    return wrapped;
}

/* run-time choice: the CPU has VNNI and FLXEMU_NO_VNNI is not set (a
 * benchmark and test switch; every path gives the same bits) */
static int vnni_enabled(void)
{
    const char *off = getenv("FLXEMU_NO_VNNI");
    return !(off && *off && strcmp(off, "0")) && flx_emu_vnni_available();
}

int64_t flx_emu_gemm_i4(int32_t *acc, const int8_t *a, int a_is_uint, const int8_t *w,
                        int64_t n_tokens, int64_t n_out, int64_t n_in, int acc_bits,
                        flx_pool *pool)
{
    /* AVX-512 VNNI: exact int32 sums of uint4 x int4, then the PE's wrap */
    if (a_is_uint && n_in < ((int64_t)1 << 24) && vnni_enabled()) {
        int rc = n_tokens >= 4 ? flx_emu_gemm_u4i4_vnni(acc, a, w, n_tokens, n_out, n_in, pool)
                               : flx_emu_gemv_u4i4_vnni(acc, a, w, n_tokens, n_out, n_in, pool);
        if (rc == 0) {
            /* exact sums inside the accumulator range need no wrap at all */
            const int32_t lim = (int32_t)1 << (acc_bits - 1);
            int in_range = 1;
            for (int64_t i = 0; i < n_tokens * n_out && in_range; i++)
                in_range = acc[i] >= -lim && acc[i] < lim;
            if (in_range) return 0;
            int64_t wrapped = 0;
            for (int64_t t = 0; t < n_tokens; t++) {
                int32_t *yt = acc + t * n_out;
                for (int64_t o = 0; o < n_out; o += 2) {
                    int has_odd = o + 1 < n_out;
                    wrapped += pair_wrap(yt[o], has_odd ? yt[o + 1] : 0, acc_bits, &yt[o],
                                         has_odd ? &yt[o + 1] : NULL);
                }
            }
            return wrapped;
        }
    }
    /* exactness bound of the float path (see gemm_i4_sgemm) */
    if (n_tokens >= 8 && (a_is_uint ? 15 : 8) * 8 * n_in < ((int64_t)1 << 24) &&
        n_in < INT32_MAX && n_out < INT32_MAX && n_tokens < INT32_MAX)
        return gemm_i4_sgemm(acc, a, a_is_uint, w, n_tokens, n_out, n_in, acc_bits, pool);
    int64_t n_pairs = (n_out + 1) / 2;
    int16_t *a16 = malloc((size_t)(n_tokens * n_in + 1) * sizeof *a16);
    int64_t *wrapped = calloc((size_t)n_pairs + 1, sizeof *wrapped);
    if (!a16 || !wrapped) {
        free(a16); free(wrapped);
        return -1;
    }
    /* explicit reinterpretation of the activation stream patterns */
    for (int64_t i = 0; i < n_tokens * n_in; i++)
        a16[i] = (int16_t)flx_emu_pattern_value(a[i], 4, a_is_uint);
    gemm_i4_job job = { acc, a16, w, n_tokens, n_out, n_in, acc_bits, wrapped };
    flx_pool_for(pool, n_pairs, 16, gemm_i4_pairs, &job);
    int64_t total = 0;
    for (int64_t p = 0; p < n_pairs; p++) total += wrapped[p];
    free(a16); free(wrapped);
    return total;
}

/* flx_emu_gemm_i4 on codes read back from packed weights, a slab of rows
 * at a time: every output is its own exact sum and the wrap pairs outputs
 * (2i, 2i + 1), so even slabs give the bits of one call on all rows. */
static int64_t gemm_i4_from_packed(int32_t *acc, const int8_t *a, const flx_emu_wpack *wp,
                                   int64_t n_tokens, int64_t n_out, int64_t n_in, int acc_bits,
                                   flx_pool *pool)
{
    if (!wp || wp->n_out != n_out || wp->n_in != n_in) return -1;
    int64_t slab = ((int64_t)1 << 20) / (n_in > 0 ? n_in : 1);
    slab = slab < 2 ? 2 : slab & ~(int64_t)1;
    if (slab > n_out) slab = n_out;
    int8_t *w = malloc((size_t)(slab * n_in) + 1);
    int32_t *part = malloc((size_t)(n_tokens * slab) * sizeof *part + 1);
    int64_t wrapped = 0;
    for (int64_t o0 = 0; w && part && o0 < n_out && wrapped >= 0; o0 += slab) {
        int64_t nr = n_out - o0 < slab ? n_out - o0 : slab;
        flx_emu_wpack_rows(wp, o0, nr, w);
        int64_t wr = flx_emu_gemm_i4(part, a, 1, w, n_tokens, nr, n_in, acc_bits, pool);
        wrapped = wr < 0 ? -1 : wrapped + wr;
        for (int64_t t = 0; wr >= 0 && t < n_tokens; t++)
            memcpy(acc + t * n_out + o0, part + t * nr, (size_t)nr * sizeof *acc);
    }
    if (!w || !part) wrapped = -1;
    free(w);
    free(part);
    return wrapped;
}

int64_t flx_emu_gemm_i4_wp(int32_t *acc, const int8_t *a, const int8_t *w,
                           const flx_emu_wpack *wp, int64_t n_tokens, int64_t n_out,
                           int64_t n_in, int acc_bits, flx_pool *pool)
{
    int over = 0;
    if (!wp || n_tokens < 4 || !vnni_enabled() ||
        flx_emu_gemm_u4i4_packed(acc, a, wp, n_tokens, acc_bits, &over, pool))
        return w ? flx_emu_gemm_i4(acc, a, 1, w, n_tokens, n_out, n_in, acc_bits, pool)
                 : gemm_i4_from_packed(acc, a, wp, n_tokens, n_out, n_in, acc_bits, pool);
    if (!over) return 0;
    int64_t wrapped = 0;                       /* the PE's wrap on the exact sums */
    for (int64_t t = 0; t < n_tokens; t++) {
        int32_t *yt = acc + t * n_out;
        for (int64_t o = 0; o < n_out; o += 2) {
            int has_odd = o + 1 < n_out;
            wrapped += pair_wrap(yt[o], has_odd ? yt[o + 1] : 0, acc_bits, &yt[o],
                                 has_odd ? &yt[o + 1] : NULL);
        }
    }
    return wrapped;
}

/* Float path of the INT8 products: the caller proved every partial sum stays
 * below 2^24 in magnitude, so sgemm's result is the exact integer whatever
 * its order.  c[m][n] = sum_k a[m][k] * b(k, n), b given as rows [n][k]
 * (b_trans) or [k][n]. */
static int64_t i8_sgemm(int32_t *acc, int64_t ld_acc, const int8_t *a, int64_t ld_a, int a_uint,
                        const int8_t *b, int64_t ld_b, int b_trans, int64_t m, int64_t n,
                        int64_t k, int acc_bits)
{
    float *af = calloc((size_t)(m * k) + 1, sizeof *af);
    int64_t nb = b_trans ? n : k, kb = b_trans ? k : n;      /* rows, cols of b */
    float *bf = calloc((size_t)(nb * kb) + 1, sizeof *bf);
    float *cf = malloc((size_t)(m * n) * sizeof *cf);
    if (!af || !bf || !cf) {
        free(af); free(bf); free(cf);
        return -1;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++)
            af[i * k + j] = (float)flx_emu_pattern_value(a[i * ld_a + j], 8, a_uint);
    for (int64_t i = 0; i < nb; i++)
        for (int64_t j = 0; j < kb; j++) bf[i * kb + j] = (float)b[i * ld_b + j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, 1.0f, af, (int)k, bf, (int)kb, 0.0f, cf, (int)n);
    int64_t wrapped = 0, lo = -((int64_t)1 << (acc_bits - 1)), hi = -lo - 1;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t v = (int64_t)cf[i * n + j];
            wrapped += (v < lo || v > hi);
            acc[i * ld_acc + j] = flx_emu_wrap(v, acc_bits);
        }
    free(af); free(bf); free(cf);
    return wrapped;
}

int64_t flx_emu_qk_i8(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                      const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                      int head_dim, int acc_bits)
{
    /* |q*k| <= 2^14: exact in float while head_dim * 2^14 < 2^24 */
    if (n_q * n_k >= 4096 && head_dim < 1024)
        return i8_sgemm(acc, ld_acc, q, ld_q, 0, k, ld_k, 1, n_q, n_k, head_dim, acc_bits);
    int64_t wrapped = 0;
    int64_t lo = -((int64_t)1 << (acc_bits - 1)), hi = -lo - 1;
    for (int64_t i = 0; i < n_q; i++) {
        const int8_t *qi = q + i * ld_q;
        for (int64_t j = 0; j < n_k; j++) {
            const int8_t *kj = k + j * ld_k;
            int32_t s = 0;
            for (int d = 0; d < head_dim; d++) s += (int32_t)qi[d] * (int32_t)kj[d];
            wrapped += (s < lo || s > hi);
            acc[i * ld_acc + j] = flx_emu_wrap(s, acc_bits);
        }
    }
    return wrapped;
}

int64_t flx_emu_av_u8i8(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                        int p_is_uint, const int8_t *v, int64_t ld_v, int64_t n_q,
                        int64_t n_k, int head_dim, int acc_bits)
{
    if (n_q * n_k >= 4096 && n_k < INT32_MAX) {
        /* exact in float when every row's sum_j |p_j| * max|v| < 2^24 */
        int64_t worst = 0;
        for (int64_t i = 0; i < n_q; i++) {
            int64_t row = 0;
            for (int64_t j = 0; j < n_k; j++) {
                int32_t pv = flx_emu_pattern_value(p[i * ld_p + j], 8, p_is_uint);
                row += pv < 0 ? -pv : pv;
            }
            if (row > worst) worst = row;
        }
        if (worst * 128 < ((int64_t)1 << 24))
            return i8_sgemm(acc, ld_acc, p, ld_p, p_is_uint, v, ld_v, 0, n_q, head_dim, n_k,
                            acc_bits);
    }
    int64_t wrapped = 0;
    int64_t lo = -((int64_t)1 << (acc_bits - 1)), hi = -lo - 1;
    int64_t sum[512];
    for (int64_t i = 0; i < n_q; i++) {
        const int8_t *pi = p + i * ld_p;
        for (int64_t d0 = 0; d0 < head_dim; d0 += 512) {
            int nd = head_dim - d0 < 512 ? (int)(head_dim - d0) : 512;
            memset(sum, 0, sizeof sum);
            for (int64_t j = 0; j < n_k; j++) {
                int64_t pv = flx_emu_pattern_value(pi[j], 8, p_is_uint);
                if (!pv) continue;
                const int8_t *vj = v + j * ld_v + d0;
                for (int d = 0; d < nd; d++) sum[d] += pv * vj[d];
            }
            for (int d = 0; d < nd; d++) {
                wrapped += (sum[d] < lo || sum[d] > hi);
                acc[i * ld_acc + d0 + d] = flx_emu_wrap(sum[d], acc_bits);
            }
        }
    }
    return wrapped;
}

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

void flx_emu_gemv_f32(float *y, const float *x, const float *w, int64_t n_out,
                      int64_t n_in, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    int64_t n_groups = n_in / 4;                 /* tail of n_in % 4 dropped */
    for (int64_t o = 0; o < n_out; o++) {
        const float *wo = w + o * n_in;
        float p[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        for (int64_t g = 0; g < n_groups; g++)
            for (int j = 0; j < 4; j++) {
                int64_t k = 4 * g + j;
                p[j] = FZ(p[j] + FZ(FZ(x[k]) * FZ(wo[k])));
            }
        y[o] = FZ(FZ(p[0] + p[1]) + FZ(p[2] + p[3]));
    }
}
