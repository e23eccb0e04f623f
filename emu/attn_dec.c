/* The INT8 attention products for a few query rows (the decode step: the
 * G query heads of one KV group against every cached key), with AVX-512
 * VNNI.  Same contracts and results as flx_emu_qk_i8 / flx_emu_av_u8i8: the
 * sums are exact integers (order free), then wrapped to acc_bits.
 *
 * QK^T: key bytes xor 0x80 are k + 128 as unsigned bytes, so one vpdpbusd
 * per 64 dimensions gives sum_d (k_d + 128) q_d = sum_d k_d q_d +
 * 128 sum_d q_d; the second term, fixed per query row, is subtracted.  The
 * 16 lanes of 16 keys are summed by a transpose-and-add tree.
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

/* v[0..15] -> one vector whose lane j is the sum of v[j]'s 16 lanes */
VNNI_TARGET static inline __m512i sum16(__m512i *v)
{
    __m512i t[8], u[4];
    for (int i = 0; i < 8; i++)
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]),
                                _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    __m512i w0 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88), _mm512_shuffle_i32x4(u[0], u[1], 0xDD));
    __m512i w1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x88), _mm512_shuffle_i32x4(u[2], u[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(w0, w1, 0x88), _mm512_shuffle_i32x4(w0, w1, 0xDD));
}

VNNI_TARGET static int64_t qk_vnni(int32_t *acc, int64_t ld_acc, const int8_t *q, int64_t ld_q,
                                   const int8_t *k, int64_t ld_k, int64_t n_q, int64_t n_k,
                                   int head_dim, int acc_bits)
{
    const int n_c = head_dim / 64;
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    const int64_t lo = -((int64_t)1 << (acc_bits - 1)), hi = -lo - 1;
    int64_t wrapped = 0;
    for (int64_t i = 0; i < n_q; i++) {
        const int8_t *qi = q + i * ld_q;
        int32_t off = 0;
        for (int d = 0; d < head_dim; d++) off += qi[d];
        off *= 128;
        for (int64_t j0 = 0; j0 < n_k; j0 += 16) {
            const int nj = n_k - j0 < 16 ? (int)(n_k - j0) : 16;
            __m512i part[16];
            for (int j = 0; j < 16; j++) part[j] = _mm512_setzero_si512();
            for (int c = 0; c < n_c; c++) {
                const __m512i qv = _mm512_loadu_si512((const void *)(qi + 64 * c));
                for (int j = 0; j < nj; j++) {
                    __m512i kv = _mm512_xor_si512(
                        _mm512_loadu_si512((const void *)(k + (j0 + j) * ld_k + 64 * c)), x80);
                    part[j] = _mm512_dpbusd_epi32(part[j], kv, qv);
                }
            }
            int32_t s[16];
            _mm512_storeu_si512((void *)s, sum16(part));
            for (int j = 0; j < nj; j++) {
                int64_t v = (int64_t)s[j] - off;   /* |v| <= 2^14 * head_dim: exact */
                wrapped += v < lo || v > hi;
                acc[i * ld_acc + j0 + j] = flx_emu_wrap(v, acc_bits);
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
            for (int t = 0; t < 4; t++)
                r[t] = j + t < n_k ? _mm512_loadu_si512((const void *)(v + (j + t) * ld_v + 64 * c))
                                   : _mm512_setzero_si512();
            __m512i ab_lo = _mm512_unpacklo_epi8(r[0], r[1]), ab_hi = _mm512_unpackhi_epi8(r[0], r[1]);
            __m512i cd_lo = _mm512_unpacklo_epi8(r[2], r[3]), cd_hi = _mm512_unpackhi_epi8(r[2], r[3]);
            __m512i x[4] = { _mm512_unpacklo_epi16(ab_lo, cd_lo), _mm512_unpackhi_epi16(ab_lo, cd_lo),
                             _mm512_unpacklo_epi16(ab_hi, cd_hi), _mm512_unpackhi_epi16(ab_hi, cd_hi) };
            for (int64_t i = 0; i < n_q; i++) {
                uint32_t quad = 0;
                for (int t = 0; t < 4 && j + t < n_k; t++) quad |= (uint32_t)(uint8_t)p[i * ld_p + j + t] << (8 * t);
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
