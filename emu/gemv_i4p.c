/* The decode GEMV on the engine's packed INT4 weights (docs/kernels.md
 * "Decode GEMV on packed weights"): it reads the prefill's flx_emu_wpack
 * layout in place (one copy of the weights serves both), unpacking the
 * nibbles in registers.  Line (b, g) of 64 bytes holds inputs 4g..4g+3 of
 * rows 32b + l (low nibbles, bytes 4l..4l+3) and 32b + 16 + l (high
 * nibbles), so one vpdpbusd per half gives 16 outputs with no horizontal
 * sum, and a block of 32 rows streams G = k64 / 4 lines sequentially.
 *
 * Activations are uint4 (0..15), weights int4 (-8..7): every partial sum
 * is an exact integer, so the result equals the plain integer GEMM
 * (flx_emu_gemm_i4 before its wrap) whatever the order or thread split.
 *
 * The VNNI form.  A weight byte xor 0x88 holds both codes offset by 8
 * (w + 8 in 0..15, unsigned); the low nibble (& 0x0F) and the high one
 * left in place (& 0xF0: 16 * (w + 8)) are the unsigned operands of two
 * vpdpbusd against the same broadcast 4 activations (0..15, valid signed
 * bytes).  Per output: sum_k a_k w_k = S - 8 * sum_k a_k, with S_hi / 16
 * for the high rows (a multiple of 16 lane by lane: an exact shift).
 * Zero padding meets zero activations and adds nothing. */
#include "flx_emu.h"

#include <string.h>

/* prepared activations: k64 uint4 bytes (zero padded), then the int32 sum
 * of all values in its own 64-byte line */
int64_t flx_emu_i4p_act_bytes(int64_t n_in)
{
    return (n_in + 63) / 64 * 64 + 64;
}

void flx_emu_i4p_act(uint8_t *ap, const int8_t *a, int64_t n_in)
{
    const int64_t k64 = (n_in + 63) / 64 * 64;
    memset(ap, 0, (size_t)flx_emu_i4p_act_bytes(n_in));
    int32_t sum = 0;
    for (int64_t k = 0; k < n_in; k++) {
        uint8_t v = (uint8_t)a[k] & 15u;     /* the uint4 reinterpretation */
        ap[k] = v;
        sum += v;
    }
    memcpy(ap + k64, &sum, sizeof sum);
}

static int64_t count_out(const int32_t *acc, int64_t n, int acc_bits)
{
    const int32_t lim = (int32_t)1 << (acc_bits - 1);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += (acc[i] < -lim) | (acc[i] >= lim);
    return bad;
}

/* out[o - o0] for o in [o0, o1) */
static int64_t gemv_portable(int32_t *out, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                             int64_t o1, int acc_bits)
{
    const int64_t G = w->k64 / 4;
    for (int64_t o = o0; o < o1; o++) {
        const int64_t b = o / 32, l = o % 16, shift = (o % 32) / 16 * 4;
        const uint8_t *line = w->nib + b * G * 64 + 4 * l;
        int32_t s = 0;
        for (int64_t g = 0; g < G; g++)
            for (int j = 0; j < 4; j++) {
                int32_t v = (int32_t)(((line[g * 64 + j] >> shift) & 15u) ^ 8u) - 8;
                s += v * ap[4 * g + j];
            }
        out[o - o0] = s;
    }
    return count_out(out, o1 - o0, acc_bits);
}

int64_t flx_emu_gemv_i4p(int32_t *acc, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                         int64_t o1, int acc_bits)
{
    return gemv_portable(acc + o0, ap, w, o0, o1, acc_bits);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* The weights stream from memory once per token: fetching 1 KiB ahead
 * keeps more lines in flight than the hardware prefetcher alone (measured
 * on the 2-core VM: about +20 % read bandwidth). */
enum { PREFETCH_BYTES = 1024 };

VNNI_TARGET static int64_t gemv_vnni(int32_t *out, const uint8_t *ap, const flx_emu_wpack *w,
                                     int64_t o0, int64_t o1, int acc_bits)
{
    const int64_t G = w->k64 / 4;
    int32_t sum_a;
    memcpy(&sum_a, ap + w->k64, sizeof sum_a);
    const __m512i x88 = _mm512_set1_epi8((char)0x88), m0f = _mm512_set1_epi8(0x0f),
                  mf0 = _mm512_set1_epi8((char)0xf0), off = _mm512_set1_epi32(8 * sum_a);
    for (int64_t b = o0 / 32; b * 32 < o1; b++) {
        const uint8_t *t = w->nib + b * G * 64;
        /* two chains per half (even and odd lines) hide vpdpbusd's latency */
        __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
        int64_t g = 0;
        for (; g + 2 <= G; g += 2, t += 128) {
            _mm_prefetch((const char *)t + PREFETCH_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)t + PREFETCH_BYTES + 64, _MM_HINT_T0);
            int32_t q0, q1;
            memcpy(&q0, ap + 4 * g, 4);
            memcpy(&q1, ap + 4 * g + 4, 4);
            const __m512i a0 = _mm512_set1_epi32(q0), a1 = _mm512_set1_epi32(q1);
            const __m512i v0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)t), x88);
            const __m512i v1 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(t + 64)), x88);
            lo0 = _mm512_dpbusd_epi32(lo0, _mm512_and_si512(v0, m0f), a0);
            hi0 = _mm512_dpbusd_epi32(hi0, _mm512_and_si512(v0, mf0), a0);
            lo1 = _mm512_dpbusd_epi32(lo1, _mm512_and_si512(v1, m0f), a1);
            hi1 = _mm512_dpbusd_epi32(hi1, _mm512_and_si512(v1, mf0), a1);
        }
        for (; g < G; g++, t += 64) {
            int32_t q0;
            memcpy(&q0, ap + 4 * g, 4);
            const __m512i a0 = _mm512_set1_epi32(q0);
            const __m512i v0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)t), x88);
            lo0 = _mm512_dpbusd_epi32(lo0, _mm512_and_si512(v0, m0f), a0);
            hi0 = _mm512_dpbusd_epi32(hi0, _mm512_and_si512(v0, mf0), a0);
        }
        int32_t sums[32];
        _mm512_storeu_si512((void *)sums, _mm512_sub_epi32(_mm512_add_epi32(lo0, lo1), off));
        _mm512_storeu_si512((void *)(sums + 16),
                            _mm512_sub_epi32(_mm512_srai_epi32(_mm512_add_epi32(hi0, hi1), 4), off));
        const int64_t first = b * 32 > o0 ? b * 32 : o0, last = b * 32 + 32 < o1 ? b * 32 + 32 : o1;
        memcpy(out + (first - o0), sums + (first - b * 32), (size_t)(last - first) * sizeof *out);
    }
    return count_out(out, o1 - o0, acc_bits);
}

int64_t flx_emu_gemv_i4p_vnni(int32_t *acc, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits)
{
    return gemv_vnni(acc + o0, ap, w, o0, o1, acc_bits);
}

int64_t flx_emu_gemv_i4p_rows(int32_t *out, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits, int vnni)
{
    return vnni ? gemv_vnni(out, ap, w, o0, o1, acc_bits) : gemv_portable(out, ap, w, o0, o1, acc_bits);
}

#else
int64_t flx_emu_gemv_i4p_vnni(int32_t *acc, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits)
{
    return flx_emu_gemv_i4p(acc, ap, w, o0, o1, acc_bits);
}

int64_t flx_emu_gemv_i4p_rows(int32_t *out, const uint8_t *ap, const flx_emu_wpack *w, int64_t o0,
                              int64_t o1, int acc_bits, int vnni)
{
    (void)vnni;
    return gemv_portable(out, ap, w, o0, o1, acc_bits);
}
#endif
