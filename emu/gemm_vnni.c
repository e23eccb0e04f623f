/* The exact INT4 GEMM with AVX-512 VNNI (vpdpbusd: uint8 x int8 products
 * summed in int32, no saturation).  Activations are uint4 (0..15) and weights
 * int4 (-8..7), so every partial sum is an exact integer far below 2^31:
 * the result equals the plain integer GEMM bit for bit, whatever the loop
 * order or thread split.  Selected at run time (flx_emu_gemm_i4). */
#include "flx_emu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

int flx_emu_vnni_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

enum { TILE_T = 8, TILE_O = 32 };

typedef struct {
    const uint8_t *a;     /* [T8][K4*4] uint4 values, zero padded   */
    const uint8_t *w;     /* packed: [O32/32][K4][2][16 lanes][4]   */
    int32_t *acc;         /* [T8][O32]                              */
    int64_t T8, O32, K4;
} vnni_job;

/* Tasks are (token chunk, output group) pairs: a chunk of <= 128 tokens
 * (A: 128*K bytes, stays in L2) against a group of 16 blocks of 32 output
 * channels, each block's packed weights (32*K bytes) reused by every token
 * tile of the chunk.  Every output is written by exactly one task. */
enum { CHUNK_T = 128, GROUP_OB = 16 };

VNNI_TARGET static void vnni_tasks(void *ctx, int64_t i0, int64_t i1, int thread_id)
{
    const vnni_job *j = ctx;
    const int64_t Kb = j->K4 * 4, n_ob = j->O32 / TILE_O;
    const int64_t n_og = (n_ob + GROUP_OB - 1) / GROUP_OB;
    for (int64_t task = i0; task < i1; task++) {
        int64_t tc = task / n_og, og = task % n_og;
        int64_t t_begin = tc * CHUNK_T, t_end = t_begin + CHUNK_T < j->T8 ? t_begin + CHUNK_T : j->T8;
        int64_t ob_end = (og + 1) * GROUP_OB < n_ob ? (og + 1) * GROUP_OB : n_ob;
        for (int64_t ob = og * GROUP_OB; ob < ob_end; ob++) {
            const uint8_t *wb = j->w + ob * j->K4 * 128;
            for (int64_t t0 = t_begin; t0 < t_end; t0 += TILE_T) {
                __m512i c[TILE_T][2];
                for (int r = 0; r < TILE_T; r++) c[r][0] = c[r][1] = _mm512_setzero_si512();
                const uint8_t *ab = j->a + t0 * Kb;
                for (int64_t k4 = 0; k4 < j->K4; k4++) {
                    __m512i w0 = _mm512_loadu_si512((const void *)(wb + k4 * 128));
                    __m512i w1 = _mm512_loadu_si512((const void *)(wb + k4 * 128 + 64));
                    for (int r = 0; r < TILE_T; r++) {
                        int32_t quad;
                        memcpy(&quad, ab + r * Kb + k4 * 4, 4);
                        __m512i av = _mm512_set1_epi32(quad);
                        c[r][0] = _mm512_dpbusd_epi32(c[r][0], av, w0);
                        c[r][1] = _mm512_dpbusd_epi32(c[r][1], av, w1);
                    }
                }
                for (int r = 0; r < TILE_T; r++) {
                    int32_t *out = j->acc + (t0 + r) * j->O32 + ob * TILE_O;
                    _mm512_storeu_si512((void *)out, c[r][0]);
                    _mm512_storeu_si512((void *)(out + 16), c[r][1]);
                }
            }
        }
    }
}

typedef struct {
    const int8_t *w;
    uint8_t *wp;
    int64_t n_out, n_in, K4;
} pack_job;

/* Four weights of one row as a word, each byte's low nibble sign-extended:
 * bit 3 of a byte times 0x1E is 0xF0 in that same byte (no carries). */
static inline uint32_t nibbles4(const int8_t *row, int64_t k, int64_t n_in)
{
    uint32_t x = 0;
    if (k + 4 <= n_in) memcpy(&x, row + k, 4);
    else for (int64_t i = k; i < n_in; i++) x |= (uint32_t)(uint8_t)row[i] << (8 * (i - k));
    uint32_t lo = x & 0x0F0F0F0Fu;
    return lo | ((lo & 0x08080808u) * 0x1Eu);
}

static void pack_blocks(void *ctx, int64_t b0, int64_t b1, int thread_id)
{
    const pack_job *j = ctx;
    for (int64_t ob = b0; ob < b1; ob++)
        for (int64_t k4 = 0; k4 < j->K4; k4++) {
            uint32_t *dst = (uint32_t *)(j->wp + (ob * j->K4 + k4) * 128);
            for (int l = 0; l < TILE_O; l++) {
                int64_t o = ob * TILE_O + l;    /* half = l / 16, lane = l % 16 */
                dst[l] = o < j->n_out ? nibbles4(j->w + o * j->n_in, 4 * k4, j->n_in) : 0;
            }
        }
}

int flx_emu_gemm_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool)
{
    const int64_t T8 = (n_tokens + TILE_T - 1) / TILE_T * TILE_T;
    const int64_t O32 = (n_out + TILE_O - 1) / TILE_O * TILE_O;
    const int64_t K4 = (n_in + 3) / 4;
    uint8_t *ap = calloc((size_t)(T8 * K4 * 4), 1);
    uint8_t *wp = aligned_alloc(64, (size_t)(O32 * K4 * 4));
    /* write straight into acc when the shape needs no padding */
    int direct = (T8 == n_tokens && O32 == n_out);
    int32_t *cp = direct ? acc : malloc((size_t)(T8 * O32) * sizeof *cp);
    if (!ap || !wp || !cp) {
        free(ap); free(wp);
        if (!direct) free(cp);
        return -1;
    }
    /* uint4 patterns -> bytes 0..15 (the explicit unsigned reinterpretation) */
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t k = 0; k < n_in; k++) ap[t * K4 * 4 + k] = (uint8_t)(a[t * n_in + k] & 15);
    /* weights: low nibble sign-extended, packed lane-major per 4 inputs */
    pack_job pj = { w, wp, n_out, n_in, K4 };
    flx_pool_for(pool, O32 / TILE_O, 4, pack_blocks, &pj);
    vnni_job job = { ap, wp, cp, T8, O32, K4 };
    int64_t n_og = (O32 / TILE_O + GROUP_OB - 1) / GROUP_OB, n_tc = (T8 + CHUNK_T - 1) / CHUNK_T;
    flx_pool_for(pool, n_tc * n_og, 1, vnni_tasks, &job);
    if (!direct) {
        for (int64_t t = 0; t < n_tokens; t++)
            memcpy(acc + t * n_out, cp + t * O32, (size_t)n_out * sizeof *acc);
        free(cp);
    }
    free(ap); free(wp);
    return 0;
}

/* GEMV rows: one 64-byte vpdpbusd step per 64 inputs straight from the
 * int8 weight rows (no packing; decode reads every weight once per token).
 * The low nibble is sign-extended bytewise: ((w & 15) ^ 8) - 8. */
typedef struct {
    const uint8_t *a;     /* [T][K64] uint4 values, zero padded to 64 */
    const int8_t *w;      /* [n_out][n_in]                            */
    int32_t *acc;         /* [T][n_out]                               */
    int64_t T, n_out, n_in, K64;
} gemv_job;

VNNI_TARGET static void gemv_rows(void *ctx, int64_t o0, int64_t o1, int thread_id)
{
    const gemv_job *j = ctx;
    const __m512i m15 = _mm512_set1_epi8(15), m8 = _mm512_set1_epi8(8);
    for (int64_t o = o0; o < o1; o++) {
        const int8_t *row = j->w + o * j->n_in;
        for (int64_t t = 0; t < j->T; t++) {
            const uint8_t *at = j->a + t * j->K64;
            __m512i c = _mm512_setzero_si512();
            for (int64_t k = 0; k < j->n_in; k += 64) {
                int64_t left = j->n_in - k;
                __m512i w = left >= 64 ? _mm512_loadu_si512((const void *)(row + k))
                                       : _mm512_maskz_loadu_epi8(((__mmask64)1 << left) - 1, row + k);
                w = _mm512_sub_epi8(_mm512_xor_si512(_mm512_and_si512(w, m15), m8), m8);
                __m512i av = _mm512_loadu_si512((const void *)(at + k));
                c = _mm512_dpbusd_epi32(c, av, w);
            }
            j->acc[t * j->n_out + o] = _mm512_reduce_add_epi32(c);
        }
    }
}

int flx_emu_gemv_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool)
{
    const int64_t K64 = (n_in + 63) / 64 * 64;
    uint8_t *ap = calloc((size_t)(n_tokens * K64) + 1, 1);
    if (!ap) return -1;
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t k = 0; k < n_in; k++) ap[t * K64 + k] = (uint8_t)(a[t * n_in + k] & 15);
    gemv_job job = { ap, w, acc, n_tokens, n_out, n_in, K64 };
    flx_pool_for(pool, n_out, 64, gemv_rows, &job);
    free(ap);
    return 0;
}

#else
int flx_emu_vnni_available(void) { return 0; }
int flx_emu_gemv_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool)
{
    return -1;
}
int flx_emu_gemm_u4i4_vnni(int32_t *acc, const int8_t *a, const int8_t *w, int64_t n_tokens,
                           int64_t n_out, int64_t n_in, flx_pool *pool)
{
    return -1;
}
#endif
