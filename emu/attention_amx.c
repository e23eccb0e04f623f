/* The prefill attention's INT8 products on AMX tiles (docs/kernels.md §15):
 * QK^T as int8 x int8 (tdpbssd), A.V as uint8 P x int8 V (tdpbusd), both
 * summed exactly in int32 (|q.k| <= 64 * 2^14 per 64 dims, |p.v| <= 255 *
 * 128 * n_k < 2^31 for n_k < 65536), so the results are the PE's exact sums
 * whatever the tile order; the caller applies the accumulator width.
 * K and V of a head are re-laid once per layer into the B-tile layout. */
#include "flx_emu.h"

#include <string.h>

void flx_emu_kpack(int8_t *kp, const int8_t *k, int64_t ld_k, int64_t n_k, int head_dim)
{
    const int G = head_dim / 4;
    for (int64_t j = 0; j < n_k; j++) {
        int64_t kb = j / 16, n = j % 16;
        for (int g = 0; g < G; g++) memcpy(kp + ((kb * G + g) * 16 + n) * 4, k + j * ld_k + 4 * g, 4);
    }
}

void flx_emu_vpack(int8_t *vp, const int8_t *v, int64_t ld_v, int64_t n_k, int64_t n_k64,
                   int head_dim)
{
    memset(vp + n_k / 4 * 4 * head_dim, 0, (size_t)((n_k64 - n_k / 4 * 4) * head_dim));
    for (int64_t j = 0; j < n_k; j++) {
        int8_t *row = vp + (j / 4) * 4 * head_dim + j % 4;
        const int8_t *src = v + j * ld_v;
        for (int d = 0; d < head_dim; d++) row[4 * d] = src[d];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-int8")))

typedef struct { uint8_t palette, start; uint8_t res[14]; uint16_t colsb[16]; uint8_t rows[16]; } amx_cfg;

AMX_TARGET void flx_emu_amx_begin(void)
{
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) { cfg.colsb[i] = 64; cfg.rows[i] = 16; }
    /* GCC 12's _tile_loadconfig names only 8 bytes of cfg as its operand:
     * the barrier keeps the other 56 from being optimized away */
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

AMX_TARGET void flx_emu_amx_end(void) { _tile_release(); }

AMX_TARGET void flx_emu_qk32_amx(int32_t *s, int64_t ld_s, const int8_t *q, int64_t ld_q,
                                 const int8_t *kp, int64_t n_k, int head_dim)
{
    const int64_t G = head_dim / 4, nkb = n_k / 16;
    for (int64_t kb = 0; kb < nkb; kb += 2) {
        const int two = kb + 1 < nkb;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int d = 0; d < head_dim; d += 64) {
            _tile_loadd(4, q + d, ld_q);
            _tile_loadd(5, q + 16 * ld_q + d, ld_q);
            _tile_loadd(6, kp + (kb * G + d / 4) * 64, 64);
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(2, 5, 6);
            if (two) {
                _tile_loadd(7, kp + ((kb + 1) * G + d / 4) * 64, 64);
                _tile_dpbssd(1, 4, 7);
                _tile_dpbssd(3, 5, 7);
            }
        }
        _tile_stored(0, s + kb * 16, ld_s * 4);
        _tile_stored(2, s + 16 * ld_s + kb * 16, ld_s * 4);
        if (two) {
            _tile_stored(1, s + (kb + 1) * 16, ld_s * 4);
            _tile_stored(3, s + 16 * ld_s + (kb + 1) * 16, ld_s * 4);
        }
    }
}

AMX_TARGET void flx_emu_av32_amx(int32_t *o, int64_t ld_o, const uint8_t *p, int64_t ld_p,
                                 const int8_t *vp, int64_t n_k, int head_dim)
{
    const int64_t row = 4 * (int64_t)head_dim;          /* bytes per 4 keys */
    for (int dt = 0; dt < head_dim / 16; dt += 2) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int64_t k = 0; k < n_k; k += 64) {
            _tile_loadd(4, p + k, ld_p);
            _tile_loadd(5, p + 16 * ld_p + k, ld_p);
            _tile_loadd(6, vp + (k / 4) * row + dt * 64, row);
            _tile_loadd(7, vp + (k / 4) * row + (dt + 1) * 64, row);
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
        _tile_stored(0, o + dt * 16, ld_o * 4);
        _tile_stored(1, o + (dt + 1) * 16, ld_o * 4);
        _tile_stored(2, o + 16 * ld_o + dt * 16, ld_o * 4);
        _tile_stored(3, o + 16 * ld_o + (dt + 1) * 16, ld_o * 4);
    }
}
#else
void flx_emu_amx_begin(void) {}
void flx_emu_amx_end(void) {}
void flx_emu_qk32_amx(int32_t *s, int64_t ld_s, const int8_t *q, int64_t ld_q, const int8_t *kp,
                      int64_t n_k, int head_dim) {}
void flx_emu_av32_amx(int32_t *o, int64_t ld_o, const uint8_t *p, int64_t ld_p, const int8_t *vp,
                      int64_t n_k, int head_dim) {}
#endif
