/* The prefill's exact INT4 GEMM on weights packed once, when the engine is
 * built (docs/kernels.md §15).  Layout: output blocks of 32 rows, inputs in
 * groups of 4 (padded to a multiple of 64 with zeros), one 64-byte line per
 * (block, group): byte 4l + j holds w[32b + l][4g + j] in its low nibble and
 * w[32b + 16 + l][4g + j] in its high nibble.  Half the bytes of the int8
 * rows, and unpacking a line gives two 16-lane x 4-input operands of
 * vpdpbusd / two rows of an AMX B tile directly.
 *
 * Products are uint4 x int4 summed in int32: every partial sum is an exact
 * integer (|sum| <= 15 * 8 * K < 2^31), so the tile order, the loop order
 * and the thread split cannot change a bit.  Each output is written by one
 * task.  AMX (tdpbusd) is used when the CPU and the OS allow it, else
 * AVX-512 VNNI (vpdpbusd); FLXEMU_NO_AMX=1 selects VNNI. */
#include "flx_emu.h"

#include <stdlib.h>
#include <string.h>

int64_t flx_emu_wpack_bytes(int64_t n_out, int64_t n_in)
{
    return (n_out + 31) / 32 * ((n_in + 63) / 64 * 16) * 64;
}

void flx_emu_wpack_place(flx_emu_wpack *p, uint8_t *mem, int64_t n_out, int64_t n_in)
{
    memset(p, 0, sizeof *p);
    p->n_out = n_out;
    p->n_in = n_in;
    p->o32 = (n_out + 31) / 32 * 32;
    p->k64 = (n_in + 63) / 64 * 64;
    p->nib = mem;
}

int flx_emu_wpack_alloc(flx_emu_wpack *p, int64_t n_out, int64_t n_in)
{
    flx_emu_wpack_place(p, flx_alloc_large((size_t)flx_emu_wpack_bytes(n_out, n_in)), n_out, n_in);
    return p->nib ? 0 : -1;
}

/* The 64 bytes v (inputs k0..k0+63 of rows l and 16 + l of a block) go as
 * 16 dwords to byte 4l of 16 consecutive lines (a transpose through dword
 * stores; the block's lines stay in L1/L2). */
static void put_lines(uint8_t *dst, const uint8_t *v)
{
    for (int q = 0; q < 16; q++) memcpy(dst + q * 64, v + 4 * q, 4);
}

/* codes k0..k0+63 of a row (zeros past n_in or for a missing row) */
static void row64(uint8_t *dst, const int8_t *row, int64_t k0, int64_t n_in)
{
    memset(dst, 0, 64);
    if (!row) return;
    int64_t n = n_in - k0 < 64 ? n_in - k0 : 64;
    if (n > 0) memcpy(dst, row + k0, (size_t)n);
}

/* the same from a row of nibbles (code k in byte k / 2, odd k high) */
static void nib_row64(uint8_t *dst, const uint8_t *row, int64_t k0, int64_t n_in)
{
    memset(dst, 0, 64);
    for (int64_t k = k0; row && k < n_in && k < k0 + 64; k++)
        dst[k - k0] = (uint8_t)(k & 1 ? row[k / 2] >> 4 : row[k / 2] & 15u);
}

/* Block b: for each row pair (l, 16 + l) and 64 inputs, the 64 bytes
 * lo & 15 | hi << 4 are made in one vectorizable loop, then put_lines. */
void flx_emu_wpack_fill(flx_emu_wpack *p, const int8_t *w, int64_t b0, int64_t b1)
{
    const int64_t n_out = p->n_out, n_in = p->n_in, G = p->k64 / 4;
    for (int64_t b = b0; b < b1; b++) {
        uint8_t *blk = p->nib + b * G * 64;
        for (int l = 0; l < 16; l++) {
            int64_t olo = 32 * b + l, ohi = olo + 16;
            const int8_t *rlo = olo < n_out ? w + olo * n_in : NULL;
            const int8_t *rhi = ohi < n_out ? w + ohi * n_in : NULL;
            for (int64_t k0 = 0; k0 < p->k64; k0 += 64) {
                uint8_t lo[64], hi[64], v[64];
                const uint8_t *sl = lo, *sh = hi;
                if (rlo && k0 + 64 <= n_in) sl = (const uint8_t *)rlo + k0;
                else row64(lo, rlo, k0, n_in);
                if (rhi && k0 + 64 <= n_in) sh = (const uint8_t *)rhi + k0;
                else row64(hi, rhi, k0, n_in);
                for (int c = 0; c < 64; c++) v[c] = (uint8_t)((sl[c] & 15u) | (uint8_t)(sh[c] << 4));
                put_lines(blk + (k0 / 4) * 64 + 4 * l, v);
            }
        }
    }
}

/* The same bytes from the nibble rows of a .flxq file: a code's 4-bit two's
 * complement pattern is its nibble, so a line byte takes the even input's
 * nibble from the low half and the odd input's from the high half of a
 * file byte, with no int8 step. */
void flx_emu_wpack_fill_nib(flx_emu_wpack *p, const uint8_t *nib, int64_t b0, int64_t b1)
{
    const int64_t n_out = p->n_out, n_in = p->n_in, G = p->k64 / 4, rb = (n_in + 1) / 2;
    for (int64_t b = b0; b < b1; b++) {
        uint8_t *blk = p->nib + b * G * 64;
        for (int l = 0; l < 16; l++) {
            int64_t olo = 32 * b + l, ohi = olo + 16;
            const uint8_t *rlo = olo < n_out ? nib + olo * rb : NULL;
            const uint8_t *rhi = ohi < n_out ? nib + ohi * rb : NULL;
            for (int64_t k0 = 0; k0 < p->k64; k0 += 64) {
                uint8_t v[64];
                if (rlo && rhi && k0 + 64 <= n_in) {
                    const uint8_t *bl = rlo + k0 / 2, *bh = rhi + k0 / 2;
                    for (int c = 0; c < 32; c++) {
                        v[2 * c] = (uint8_t)((bl[c] & 15u) | (uint8_t)(bh[c] << 4));
                        v[2 * c + 1] = (uint8_t)((bl[c] >> 4) | (bh[c] & 0xF0u));
                    }
                } else {
                    uint8_t lo[64], hi[64];
                    nib_row64(lo, rlo, k0, n_in);
                    nib_row64(hi, rhi, k0, n_in);
                    for (int c = 0; c < 64; c++) v[c] = (uint8_t)((lo[c] & 15u) | (uint8_t)(hi[c] << 4));
                }
                put_lines(blk + (k0 / 4) * 64 + 4 * l, v);
            }
        }
    }
}

void flx_emu_wpack_rows(const flx_emu_wpack *p, int64_t o0, int64_t n_rows, int8_t *dst)
{
    const int64_t G = p->k64 / 4;
    for (int64_t o = o0; o < o0 + n_rows; o++) {
        const uint8_t *blk = p->nib + (o / 32) * G * 64 + 4 * (o % 16);
        const int shift = o % 32 >= 16 ? 4 : 0;
        int8_t *row = dst + (o - o0) * p->n_in;
        for (int64_t k = 0; k < p->n_in; k++) {
            uint8_t v = (uint8_t)((blk[(k / 4) * 64 + k % 4] >> shift) & 15u);
            row[k] = (int8_t)((int8_t)(uint8_t)(v << 4) >> 4);   /* sign of the nibble */
        }
    }
}

int flx_emu_wpack_init(flx_emu_wpack *p, const int8_t *w, int64_t n_out, int64_t n_in)
{
    if (flx_emu_wpack_alloc(p, n_out, n_in)) return -1;
    flx_emu_wpack_fill(p, w, 0, p->o32 / 32);
    return 0;
}

void flx_emu_wpack_free(flx_emu_wpack *p)
{
    free(p->nib);
    memset(p, 0, sizeof *p);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni,amx-tile,amx-int8")))

int flx_emu_amx_available(void)
{
    const char *off = getenv("FLXEMU_NO_AMX");
    if (off && *off && strcmp(off, "0")) return 0;
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    if (!((d >> 24) & 1) || !((d >> 25) & 1)) return 0;          /* AMX-TILE, AMX-INT8 */
    /* Linux hands out the 8 KiB tile state on request (ARCH_REQ_XCOMP_PERM,
     * XFEATURE_XTILEDATA); idempotent, and a refusal means no AMX */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

typedef struct {
    const uint8_t *a;      /* [T32][k64] uint4 values, zero padded       */
    const flx_emu_wpack *w;
    int32_t *acc;          /* [n_tokens][n_out]                          */
    int64_t n_tokens, T32, chunk, n_tc, n_og;
    int amx;
    uint8_t **tbuf;        /* per thread: unpacked panel [2][k64/4][64]  */
    int *over;             /* per thread: an exact sum left +-2^(bits-1) */
    int32_t lim;
} packed_job;

enum { GROUP_OB = 8 };

/* 64 packed bytes -> the two 16-lane x 4-input operands, nibbles
 * sign-extended bytewise: ((n & 15) ^ 8) - 8 */
static inline __attribute__((always_inline)) VNNI_TARGET void unpack_line(__m512i v, __m512i *lo,
                                                                          __m512i *hi)
{
    const __m512i m15 = _mm512_set1_epi8(15), m8 = _mm512_set1_epi8(8);
    __m512i l = _mm512_and_si512(v, m15);
    __m512i h = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15);
    *lo = _mm512_sub_epi8(_mm512_xor_si512(l, m8), m8);
    *hi = _mm512_sub_epi8(_mm512_xor_si512(h, m8), m8);
}

/* rows t0..t0+nt of a 32-wide output block from a [16][16] int32 tile
 * image, range flag against lim */
static inline VNNI_TARGET void put_rows(const packed_job *j, const int32_t *tile, int64_t t0,
                                        int64_t o0, int *over)
{
    int64_t nt = j->n_tokens - t0 < 16 ? j->n_tokens - t0 : 16;
    int64_t no = j->w->n_out - o0 < 16 ? j->w->n_out - o0 : 16;
    int bad = 0;
    if (no == 16) {                       /* whole rows: one vector each */
        const __m512i lo = _mm512_set1_epi32(-j->lim), hi = _mm512_set1_epi32(j->lim - 1);
        __mmask16 out = 0;
        for (int64_t r = 0; r < nt; r++) {
            __m512i v = _mm512_loadu_si512((const void *)(tile + r * 16));
            out |= _mm512_cmplt_epi32_mask(v, lo) | _mm512_cmpgt_epi32_mask(v, hi);
            _mm512_storeu_si512((void *)(j->acc + (t0 + r) * j->w->n_out + o0), v);
        }
        *over |= out != 0;
        return;
    }
    for (int64_t r = 0; r < nt; r++) {
        int32_t *dst = j->acc + (t0 + r) * j->w->n_out + o0;
        for (int64_t c = 0; c < no; c++) {
            int32_t v = tile[r * 16 + c];
            bad |= (v < -j->lim) | (v >= j->lim);
            dst[c] = v;
        }
    }
    *over |= bad;
}

typedef struct { uint8_t palette, start; uint8_t res[14]; uint16_t colsb[16]; uint8_t rows[16]; } amx_cfg;

AMX_TARGET static void amx_block(const packed_job *j, const uint8_t *bp, int64_t ob, int64_t t_begin,
                                 int64_t t_end, int *over)
{
    const int64_t K = j->w->k64, G = K / 4;
    const uint8_t *b0 = bp, *b1 = bp + G * 64;
    int32_t tile[4][256];
    for (int64_t t0 = t_begin; t0 < t_end; t0 += 32) {
        const uint8_t *a0 = j->a + t0 * K, *a1 = a0 + 16 * K;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int64_t k = 0; k < K; k += 64) {
            _tile_loadd(4, a0 + k, K);
            _tile_loadd(5, a1 + k, K);
            _tile_loadd(6, b0 + k * 16, 64);
            _tile_loadd(7, b1 + k * 16, 64);
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
        _tile_stored(0, tile[0], 64);
        _tile_stored(1, tile[1], 64);
        _tile_stored(2, tile[2], 64);
        _tile_stored(3, tile[3], 64);
        put_rows(j, tile[0], t0, ob * 32, over);
        put_rows(j, tile[1], t0, ob * 32 + 16, over);
        if (t0 + 16 < j->n_tokens) {
            put_rows(j, tile[2], t0 + 16, ob * 32, over);
            put_rows(j, tile[3], t0 + 16, ob * 32 + 16, over);
        }
    }
}

/* VNNI: 8 tokens x 32 outputs per register block, the unpacked panel read
 * one 4-input group (2 x 64 bytes) at a time */
VNNI_TARGET static void vnni_block(const packed_job *j, const uint8_t *bp, int64_t ob,
                                   int64_t t_begin, int64_t t_end, int *over)
{
    const int64_t K = j->w->k64, G = K / 4;
    const uint8_t *b0 = bp, *b1 = bp + G * 64;
    int32_t tile[2][256];
    for (int64_t t0 = t_begin; t0 < t_end; t0 += 16) {
        for (int half = 0; half < 2; half++) {
            __m512i c[8][2];
            for (int r = 0; r < 8; r++) c[r][0] = c[r][1] = _mm512_setzero_si512();
            const uint8_t *ab = j->a + (t0 + 8 * half) * K;
            for (int64_t g = 0; g < G; g++) {
                __m512i w0 = _mm512_load_si512((const void *)(b0 + g * 64));
                __m512i w1 = _mm512_load_si512((const void *)(b1 + g * 64));
                for (int r = 0; r < 8; r++) {
                    int32_t quad;
                    memcpy(&quad, ab + r * K + 4 * g, 4);
                    __m512i av = _mm512_set1_epi32(quad);
                    c[r][0] = _mm512_dpbusd_epi32(c[r][0], av, w0);
                    c[r][1] = _mm512_dpbusd_epi32(c[r][1], av, w1);
                }
            }
            for (int r = 0; r < 8; r++) {
                _mm512_storeu_si512((void *)(tile[0] + (8 * half + r) * 16), c[r][0]);
                _mm512_storeu_si512((void *)(tile[1] + (8 * half + r) * 16), c[r][1]);
            }
        }
        put_rows(j, tile[0], t0, ob * 32, over);
        put_rows(j, tile[1], t0, ob * 32 + 16, over);
    }
}

/* Tasks: (token chunk, group of output blocks).  A chunk's activations
 * (<= ~1 MiB) stay in L2 while each block's panel is unpacked once into the
 * thread's buffer (32 x K bytes) and reused by every token of the chunk. */
AMX_TARGET static void packed_tasks(void *ctx, int64_t i0, int64_t i1, int thread_id)
{
    const packed_job *j = ctx;
    const int64_t G = j->w->k64 / 4, n_ob = j->w->o32 / 32;
    uint8_t *bp = j->tbuf[thread_id];
    int over = 0;
    if (j->amx) {
        amx_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.palette = 1;
        for (int i = 0; i < 8; i++) { cfg.colsb[i] = 64; cfg.rows[i] = 16; }
        /* GCC 12's _tile_loadconfig names only 8 bytes of cfg as its operand:
         * the barrier keeps the other 56 from being optimized away */
        __asm__ volatile("" : : "r"(&cfg) : "memory");
        _tile_loadconfig(&cfg);
    }
    for (int64_t task = i0; task < i1; task++) {
        int64_t tc = task / j->n_og, og = task % j->n_og;
        int64_t t_begin = tc * j->chunk;
        int64_t t_end = t_begin + j->chunk < j->T32 ? t_begin + j->chunk : j->T32;
        int64_t ob_end = (og + 1) * GROUP_OB < n_ob ? (og + 1) * GROUP_OB : n_ob;
        for (int64_t ob = og * GROUP_OB; ob < ob_end; ob++) {
            const uint8_t *src = j->w->nib + ob * G * 64;
            for (int64_t g = 0; g < G; g++) {
                __m512i lo, hi;
                unpack_line(_mm512_loadu_si512((const void *)(src + g * 64)), &lo, &hi);
                _mm512_store_si512((void *)(bp + g * 64), lo);
                _mm512_store_si512((void *)(bp + (G + g) * 64), hi);
            }
            if (j->amx) amx_block(j, bp, ob, t_begin, t_end, &over);
            else vnni_block(j, bp, ob, t_begin, t_end, &over);
        }
    }
    if (j->amx) _tile_release();
    j->over[thread_id] |= over;
}

typedef struct { const int8_t *a; uint8_t *ap; int64_t n_in, K, n_tokens; } act_job;

static void act_rows(void *ctx, int64_t t0, int64_t t1, int thread_id)
{
    const act_job *j = ctx;
    for (int64_t t = t0; t < t1; t++) {
        uint8_t *dst = j->ap + t * j->K;
        if (t >= j->n_tokens) { memset(dst, 0, (size_t)j->K); continue; }
        const int8_t *src = j->a + t * j->n_in;
        for (int64_t k = 0; k < j->n_in; k++) dst[k] = (uint8_t)(src[k] & 15);  /* uint4 pattern */
        memset(dst + j->n_in, 0, (size_t)(j->K - j->n_in));
    }
}

int flx_emu_gemm_u4i4_packed(int32_t *acc, const int8_t *a, const flx_emu_wpack *w,
                             int64_t n_tokens, int acc_bits, int *out_of_range, flx_pool *pool)
{
    if (!flx_emu_vnni_available() || n_tokens < 1) return -1;
    const int amx = flx_emu_amx_available();
    const int64_t K = w->k64, T32 = (n_tokens + 31) / 32 * 32;
    const int n_threads = pool ? flx_pool_threads(pool) : 1;
    int64_t chunk = ((int64_t)1 << 20) / K / 32 * 32;            /* activations <= 1 MiB */
    if (chunk < 32) chunk = 32;
    if (chunk > T32) chunk = T32;
    const int64_t n_tc = (T32 + chunk - 1) / chunk, n_ob = w->o32 / 32;
    const int64_t n_og = (n_ob + GROUP_OB - 1) / GROUP_OB;
    uint8_t *ap = malloc((size_t)(T32 * K));      /* reused heap, no page zeroing per call */
    uint8_t **tbuf = calloc((size_t)n_threads, sizeof *tbuf);
    int *over = calloc((size_t)n_threads, sizeof *over);
    int rc = (ap && tbuf && over) ? 0 : -1;
    for (int i = 0; i < n_threads && !rc; i++)
        if (!(tbuf[i] = aligned_alloc(64, (size_t)(K / 4) * 128))) rc = -1;
    if (!rc) {
        act_job aj = { a, ap, w->n_in, K, n_tokens };
        flx_pool_for(pool, T32, 32, act_rows, &aj);
        packed_job job = { ap, w, acc, n_tokens, T32, chunk, n_tc, n_og, amx, tbuf, over,
                           (int32_t)1 << (acc_bits - 1) };
        flx_pool_for(pool, n_tc * n_og, 1, packed_tasks, &job);
        *out_of_range = 0;
        for (int i = 0; i < n_threads; i++) *out_of_range |= over[i];
    }
    for (int i = 0; tbuf && i < n_threads; i++) free(tbuf[i]);
    free(tbuf); free(over);
    free(ap);
    return rc;
}

#else
int flx_emu_amx_available(void) { return 0; }
int flx_emu_gemm_u4i4_packed(int32_t *acc, const int8_t *a, const flx_emu_wpack *w,
                             int64_t n_tokens, int acc_bits, int *out_of_range, flx_pool *pool)
{
    return -1;
}
#endif
