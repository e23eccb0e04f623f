/* The decode GEMV on packed INT4 weights (docs/kernels.md "Decode GEMV on
 * packed weights").  Codes are packed two per byte (column 2i in the low
 * nibble, as in the .flxq file) and laid out in tiles of 4 rows x 64 bytes
 * (128 columns): tile (g, s) holds bytes 64s..64s+63 of rows 4g..4g+3, one
 * row after the other, and the tiles of a group of rows follow each other,
 * so a GEMV streams its weights sequentially, one 256-byte tile per step.
 * Bytes past the end of a row and rows past n_out are zero.  The GEMV reads
 * this layout in place and unpacks the nibbles in registers.
 *
 * Activations are uint4 (0..15), weights int4 (-8..7): every partial sum
 * is an exact integer, so the result equals the plain integer GEMM
 * (flx_emu_gemm_i4 before its wrap) whatever the order or thread split.
 *
 * The VNNI form.  A weight byte xor 0x88 holds both codes offset by 8
 * (w + 8 in 0..15, unsigned); its low nibble pairs with the even columns,
 * its high nibble, left in place (16 * (w + 8)), with the odd columns, each
 * through one vpdpbusd (unsigned weights x activations, which are 0..15 and
 * so valid signed bytes).  Per output:
 *   sum_k a_k w_k = S_lo + S_hi / 16 - 8 * sum_k a_k,
 * where S_hi is a multiple of 16 lane by lane (exact shift).  Zero bytes of
 * the padding meet zero activations and add nothing. */
#include "flx_emu.h"

#include <string.h>

enum { TILE_ROWS = 4, TILE_BYTES = 64 };

/* 64-byte steps per row */
static int64_t row_steps(int64_t n_in)
{
    return ((n_in + 1) / 2 + TILE_BYTES - 1) / TILE_BYTES;
}

int64_t flx_emu_i4p_bytes(int64_t n_out, int64_t n_in)
{
    return (n_out + TILE_ROWS - 1) / TILE_ROWS * row_steps(n_in) * TILE_ROWS * TILE_BYTES;
}

void flx_emu_pack_i4(uint8_t *wp, const int8_t *w, int64_t o0, int64_t o1, int64_t n_out,
                     int64_t n_in)
{
    const int64_t steps = row_steps(n_in);
    for (int64_t g = o0 / TILE_ROWS; g * TILE_ROWS < o1; g++)
        for (int r = 0; r < TILE_ROWS; r++) {
            const int64_t o = g * TILE_ROWS + r;
            for (int64_t s = 0; s < steps; s++) {
                uint8_t *dst = wp + ((g * steps + s) * TILE_ROWS + r) * TILE_BYTES;
                memset(dst, 0, TILE_BYTES);
                if (o >= n_out) continue;
                const int8_t *row = w + o * n_in;
                if (2 * (s + 1) * TILE_BYTES <= n_in) {           /* a whole tile row: vectorizes */
                    const int8_t *src = row + 2 * s * TILE_BYTES;
                    for (int c = 0; c < TILE_BYTES; c++)
                        dst[c] = (uint8_t)(((uint8_t)src[2 * c] & 15u) | ((uint8_t)src[2 * c + 1] << 4));
                    continue;
                }
                for (int c = 0; c < TILE_BYTES; c++) {
                    int64_t k = 2 * (s * TILE_BYTES + c);
                    if (k >= n_in) break;
                    uint8_t b = (uint8_t)row[k] & 15u;
                    if (k + 1 < n_in) b |= (uint8_t)(((uint8_t)row[k + 1] & 15u) << 4);
                    dst[c] = b;
                }
            }
        }
}

/* prepared activations: [even columns][odd columns], each row_steps * 64
 * bytes, zero padded, then the int32 sum of all values */
int64_t flx_emu_i4p_act_bytes(int64_t n_in)
{
    return 2 * row_steps(n_in) * TILE_BYTES + 64;
}

void flx_emu_i4p_act(uint8_t *ap, const int8_t *a, int64_t n_in)
{
    const int64_t hb = row_steps(n_in) * TILE_BYTES;
    uint8_t *ev = ap, *od = ap + hb;
    memset(ap, 0, (size_t)flx_emu_i4p_act_bytes(n_in));
    int32_t sum = 0;
    for (int64_t k = 0; k < n_in; k++) {
        uint8_t v = (uint8_t)a[k] & 15u;     /* the uint4 reinterpretation */
        if (k & 1) od[k / 2] = v;
        else ev[k / 2] = v;
        sum += v;
    }
    memcpy(ap + 2 * hb, &sum, sizeof sum);
}

static int64_t count_out(const int32_t *acc, int64_t n, int acc_bits)
{
    const int32_t lim = (int32_t)1 << (acc_bits - 1);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += (acc[i] < -lim) | (acc[i] >= lim);
    return bad;
}

int64_t flx_emu_gemv_i4p(int32_t *acc, const uint8_t *ap, const uint8_t *wp, int64_t o0,
                         int64_t o1, int64_t n_in, int acc_bits)
{
    const int64_t steps = row_steps(n_in), hb = steps * TILE_BYTES;
    const uint8_t *ev = ap, *od = ap + hb;
    for (int64_t o = o0; o < o1; o++) {
        const int64_t g = o / TILE_ROWS, r = o % TILE_ROWS;
        int32_t s = 0;
        for (int64_t st = 0; st < steps; st++) {
            const uint8_t *t = wp + ((g * steps + st) * TILE_ROWS + r) * TILE_BYTES;
            for (int c = 0; c < TILE_BYTES; c++) {
                int32_t lo = (int32_t)((t[c] & 15u) ^ 8u) - 8, hi = (int32_t)((t[c] >> 4) ^ 8u) - 8;
                s += lo * ev[st * TILE_BYTES + c] + hi * od[st * TILE_BYTES + c];
            }
        }
        acc[o] = s;
    }
    return count_out(acc + o0, o1 - o0, acc_bits);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* The weights stream from memory once per token: fetching 1 KiB ahead
 * keeps more lines in flight than the hardware prefetcher alone (measured
 * on the 2-core VM: about +20 % read bandwidth). */
enum { PREFETCH_BYTES = 1024 };

VNNI_TARGET int64_t flx_emu_gemv_i4p_vnni(int32_t *acc, const uint8_t *ap, const uint8_t *wp,
                                          int64_t o0, int64_t o1, int64_t n_in, int acc_bits)
{
    const int64_t steps = row_steps(n_in), hb = steps * TILE_BYTES;
    int32_t sum_a;
    memcpy(&sum_a, ap + 2 * hb, sizeof sum_a);
    const __m512i x88 = _mm512_set1_epi8((char)0x88), m0f = _mm512_set1_epi8(0x0f),
                  mf0 = _mm512_set1_epi8((char)0xf0);
    for (int64_t g = o0 / TILE_ROWS; g * TILE_ROWS < o1; g++) {
        const uint8_t *t = wp + g * steps * TILE_ROWS * TILE_BYTES;
        __m512i lo[TILE_ROWS], hi[TILE_ROWS];
        for (int r = 0; r < TILE_ROWS; r++) lo[r] = hi[r] = _mm512_setzero_si512();
        for (int64_t s = 0; s < steps; s++, t += TILE_ROWS * TILE_BYTES) {
            const __m512i e = _mm512_loadu_si512((const void *)(ap + s * TILE_BYTES));
            const __m512i d = _mm512_loadu_si512((const void *)(ap + hb + s * TILE_BYTES));
            for (int r = 0; r < TILE_ROWS; r++) {
                _mm_prefetch((const char *)t + PREFETCH_BYTES + r * TILE_BYTES, _MM_HINT_T0);
                __m512i w = _mm512_xor_si512(_mm512_loadu_si512((const void *)(t + r * TILE_BYTES)), x88);
                lo[r] = _mm512_dpbusd_epi32(lo[r], _mm512_and_si512(w, m0f), e);
                hi[r] = _mm512_dpbusd_epi32(hi[r], _mm512_and_si512(w, mf0), d);
            }
        }
        for (int r = 0; r < TILE_ROWS; r++) {
            const int64_t o = g * TILE_ROWS + r;
            if (o < o0 || o >= o1) continue;
            acc[o] = _mm512_reduce_add_epi32(_mm512_add_epi32(lo[r], _mm512_srai_epi32(hi[r], 4))) -
                     8 * sum_a;
        }
    }
    return count_out(acc + o0, o1 - o0, acc_bits);
}

#else
int64_t flx_emu_gemv_i4p_vnni(int32_t *acc, const uint8_t *ap, const uint8_t *wp, int64_t o0,
                              int64_t o1, int64_t n_in, int acc_bits)
{
    return flx_emu_gemv_i4p(acc, ap, wp, o0, o1, n_in, acc_bits);
}
#endif
