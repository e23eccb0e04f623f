/* The INT8 attention products for a few query rows (the decode step: the
 * G query heads of one KV group against every cached key), with AVX-512
 * VNNI.  Same contracts and results as flx_emu_qk_i8 / flx_emu_av_u8i8: the
 * sums are exact integers (order free), then wrapped to acc_bits.
 *
 * QK^T: key bytes xor 0x80 are k + 128 as unsigned bytes, so vpdpbusd
 * gives sum_d (k_d + 128) q_d = sum_d k_d q_d + 128 sum_d q_d; the second
 * term, fixed per query row, is subtracted.  16 keys' 64-byte chunks are
 * transposed (lane j = key j) and multiplied 4 dimensions at a time with
 * the query's bytes broadcast, so the lanes are the 16 keys' sums.
 * A.V: four keys' values are interleaved bytewise so that one vpdpbusd
 * multiplies four probabilities (unsigned, one broadcast dword) with the
 * four values of each of 16 dimensions. */
#include "flx_emu.h"

#include <string.h>

static int64_t wrap_out(int32_t *out, const int64_t *sum, int64_t n, int acc_bits)
{
    const int64_t lo = -((int64_t)1 << (acc_bits - 1)), hi = -lo - 1;
    int64_t wrapped = 0;
    for (int64_t i = 0; i < n; i++) {
        wrapped += sum[i] < lo || sum[i] > hi;
        out[i] = flx_emu_wrap(sum[i], acc_bits);
    }
    return wrapped;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

enum { MAX_ROWS = 16 };

/* r[j] = 16 dwords of key j  ->  r[c] = dword c of keys 0..15 (lane j) */
VNNI_TARGET static inline void transpose16(__m512i *r)
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4b + m], 128-bit lane L: dword 4L + m of keys 4b .. 4b+3 */
    for (int b = 0; b < 4; b++) {
        u[4 * b] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
        u[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
    }
    /* 4 x 4 transpose of the 128-bit lanes: r[4L + m] lane b = u[4b + m] lane L */
    for (int m = 0; m < 4; m++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44), v1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
        r[m] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        r[8 + m] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

enum { QK_ROWS = 8,     /* query rows whose sums stay in registers */
       QK_AHEAD = 32,   /* keys prefetched ahead */
       AV_AHEAD = 32 };

/* 16 keys at a time: their 64-byte chunks are transposed so that lane j
 * holds key j; then one vpdpbusd per 4 dimensions with the query's 4 bytes
 * broadcast gives 16 keys' sums per query row with no horizontal add, the
 * transposed keys being shared by up to QK_ROWS query rows. */
VNNI_TARGET static int64_t qk_vnni(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                                   const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                                   int head_dim, int acc_bits)
{
    const int n_c = head_dim / 64;
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    const int sh = acc_bits < 32 ? 32 - acc_bits : 0;
    const __m512i lo = _mm512_set1_epi32(sh ? -(1 << (acc_bits - 1)) : INT32_MIN);
    const __m512i hi = _mm512_set1_epi32(sh ? (1 << (acc_bits - 1)) - 1 : INT32_MAX);
    int64_t wrapped = 0;
    for (int64_t i0 = 0; i0 < n_q; i0 += QK_ROWS) {
        const int nq = n_q - i0 < QK_ROWS ? (int)(n_q - i0) : QK_ROWS;
        __m512i off[QK_ROWS];
        for (int i = 0; i < nq; i++) {
            const int8_t *qi = q + (i0 + i) * ld_q;
            int32_t sum = 0;
            for (int d = 0; d < head_dim; d++) sum += qi[d];
            off[i] = _mm512_set1_epi32(128 * sum);     /* |sum (k+128) q| < 2^31: exact */
        }
        for (int64_t j0 = 0; j0 < n_k; j0 += 16) {
            const int nj = n_k - j0 < 16 ? (int)(n_k - j0) : 16;
            const __mmask16 valid = (__mmask16)((1u << nj) - 1);
            __m512i part[QK_ROWS];
            for (int i = 0; i < nq; i++) part[i] = _mm512_setzero_si512();
            /* the keys are 64-byte pieces of cache rows far apart: fetch
             * the block after next ahead of use */
            for (int j = 0; j < 16 && j0 + QK_AHEAD + j < n_k; j++)
                for (int c = 0; c < n_c; c++)
                    _mm_prefetch((const char *)(k + (j0 + QK_AHEAD + j) * ld_k + 64 * c), _MM_HINT_T0);
            for (int c = 0; c < n_c; c++) {
                __m512i kt[16];
                for (int j = 0; j < 16; j++)
                    kt[j] = j < nj ? _mm512_xor_si512(_mm512_loadu_si512((const void *)(k + (j0 + j) * ld_k + 64 * c)), x80)
                                   : _mm512_setzero_si512();
                transpose16(kt);
                for (int i = 0; i < nq; i++) {
                    const int8_t *qc = q + (i0 + i) * ld_q + 64 * c;
                    for (int d = 0; d < 16; d++) {
                        int32_t q4;
                        memcpy(&q4, qc + 4 * d, 4);
                        part[i] = _mm512_dpbusd_epi32(part[i], kt[d], _mm512_set1_epi32(q4));
                    }
                }
            }
            for (int i = 0; i < nq; i++) {
                const __m512i v = _mm512_sub_epi32(part[i], off[i]);
                const __mmask16 out = _mm512_cmplt_epi32_mask(v, lo) | _mm512_cmpgt_epi32_mask(v, hi);
                wrapped += __builtin_popcount((unsigned)(out & valid));
                const __m512i w = _mm512_srai_epi32(_mm512_slli_epi32(v, (unsigned)sh), (unsigned)sh);
                _mm512_mask_storeu_epi32(acc + (i0 + i) * ld_acc + j0, valid, w);
            }
        }
    }
    return wrapped;
}

VNNI_TARGET static int64_t av_vnni(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                                   const int8_t *v, int64_t ld_v, int64_t n_q, int64_t n_k,
                                   int head_dim, int acc_bits)
{
    const int n_c = head_dim / 64;
    int64_t wrapped = 0;
    for (int c = 0; c < n_c; c++) {
        __m512i a[MAX_ROWS][4];
        for (int64_t i = 0; i < n_q; i++)
            for (int m = 0; m < 4; m++) a[i][m] = _mm512_setzero_si512();
        for (int64_t j = 0; j < n_k; j += 4) {
            /* rows j..j+3 (zero past n_k), interleaved so that dword s of
             * 128-bit lane L in x[m] holds dimension 16L + 4m + s of all four */
            __m512i r[4];
            for (int t = 0; t < 4 && j + AV_AHEAD + t < n_k; t++)
                _mm_prefetch((const char *)(v + (j + AV_AHEAD + t) * ld_v + 64 * c), _MM_HINT_T0);
            for (int t = 0; t < 4; t++)
                r[t] = j + t < n_k ? _mm512_loadu_si512((const void *)(v + (j + t) * ld_v + 64 * c))
                                   : _mm512_setzero_si512();
            __m512i ab_lo = _mm512_unpacklo_epi8(r[0], r[1]), ab_hi = _mm512_unpackhi_epi8(r[0], r[1]);
            __m512i cd_lo = _mm512_unpacklo_epi8(r[2], r[3]), cd_hi = _mm512_unpackhi_epi8(r[2], r[3]);
            __m512i x[4] = { _mm512_unpacklo_epi16(ab_lo, cd_lo), _mm512_unpackhi_epi16(ab_lo, cd_lo),
                             _mm512_unpacklo_epi16(ab_hi, cd_hi), _mm512_unpackhi_epi16(ab_hi, cd_hi) };
            for (int64_t i = 0; i < n_q; i++) {
                uint32_t quad = 0;
                if (j + 4 <= n_k) memcpy(&quad, p + i * ld_p + j, 4);     /* little endian */
                else for (int t = 0; j + t < n_k; t++) quad |= (uint32_t)(uint8_t)p[i * ld_p + j + t] << (8 * t);
                const __m512i pv = _mm512_set1_epi32((int32_t)quad);
                for (int m = 0; m < 4; m++) a[i][m] = _mm512_dpbusd_epi32(a[i][m], pv, x[m]);
            }
        }
        for (int64_t i = 0; i < n_q; i++) {
            int32_t s[4][16];
            for (int m = 0; m < 4; m++) _mm512_storeu_si512((void *)s[m], a[i][m]);
            int64_t sum[64];
            for (int L = 0; L < 4; L++)
                for (int m = 0; m < 4; m++)
                    for (int t = 0; t < 4; t++) sum[16 * L + 4 * m + t] = s[m][4 * L + t];
            wrapped += wrap_out(acc + i * ld_acc + 64 * c, sum, 64, acc_bits);
        }
    }
    return wrapped;
}

int64_t flx_emu_qk_i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                           const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                           int head_dim, int acc_bits)
{
    if (head_dim % 64 || head_dim > 4096 || !flx_emu_vnni_available())
        return flx_emu_qk_i8(acc, ld_acc, q, ld_q, k, ld_k, n_q, n_k, head_dim, acc_bits);
    return qk_vnni(acc, ld_acc, q, ld_q, k, ld_k, n_q, n_k, head_dim, acc_bits);
}

int64_t flx_emu_av_u8i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                           int p_is_uint, const int8_t *v, int64_t ld_v, int64_t n_q,
                           int64_t n_k, int head_dim, int acc_bits)
{
    /* 255 * 128 * 65536 < 2^31: the int32 lanes stay exact */
    if (!p_is_uint || head_dim % 64 || n_q > MAX_ROWS || n_k > 65536 || !flx_emu_vnni_available())
        return flx_emu_av_u8i8(acc, ld_acc, p, ld_p, p_is_uint, v, ld_v, n_q, n_k, head_dim, acc_bits);
    return av_vnni(acc, ld_acc, p, ld_p, v, ld_v, n_q, n_k, head_dim, acc_bits);
}

#else
int64_t flx_emu_qk_i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                           const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                           int head_dim, int acc_bits)
{
    return flx_emu_qk_i8(acc, ld_acc, q, ld_q, k, ld_k, n_q, n_k, head_dim, acc_bits);
}

int64_t flx_emu_av_u8i8_vnni(int32_t *acc, int64_t ld_acc, const int8_t *p, int64_t ld_p,
                           int p_is_uint, const int8_t *v, int64_t ld_v, int64_t n_q,
                           int64_t n_k, int head_dim, int acc_bits)
{
    return flx_emu_av_u8i8(acc, ld_acc, p, ld_p, p_is_uint, v, ld_v, n_q, n_k, head_dim, acc_bits);
}
#endif
