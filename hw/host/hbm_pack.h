// hbm_pack.h -- INT4 weight matrices packed into the HBM byte images the
// tops' weight loaders read (reference-design §1.4).  The one implementation
// of both packings: the host program (hbm_layout.cpp) packs a .flxq with it,
// the layer testbench (hw/tb/tb_layer.cpp) the golden matrices, so what
// hw_tb checks against the golden layers is the host's packing.
//
// A row source is any callable `const int8_t *row(unsigned o)` giving the
// k_dim INT4 values (-8..7) of output row o, or NULL for a zero row.
//
// Decode (dec_weight_loader_i4, 16 lanes of W = 64 rows per block): a linear
// of n_out rows is split over the lanes in n_out/16 consecutive rows; lane b
// holds rows b*(n_out/16) + 2n (low nibble) and 2n+1 (high nibble) in byte
// n mod 32 of its word (n/32)*k_dim + k; a word is 32 bytes.
// Prefill [K | Q], [V | O] (one weight port each pair, WP = 24): channel c
// sits in word (c/24)*k_dim + k, byte (c%24)/2, low nibble for even c; a
// word is 12 bytes; the channels past n_out of the last block are zero.
// Prefill gate, up, down (the blocked FFN linear of reference-design §1.4,
// WP = 96 over three ports): output pair p of weight block N (channels
// N*96 + 2p, +1) sits in port p % 3, byte p / 3 of word N*k_dim + k; a word
// is 16 bytes (32 weights); channels past n_out are zero.
#ifndef FLX_HBM_PACK_H
#define FLX_HBM_PACK_H

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace flx_pack {

static const unsigned dec_lanes = 16, dec_w = 64, dec_word_bytes = 32;
static const unsigned pref_wp = 24, pref_word_bytes = 12;
static const unsigned pref_ffn_wp = 96, pref_ffn_ports = 3, pref_ffn_word_bytes = 16;

// words of one decode lane for a linear of n_out rows, k_dim inputs
inline size_t dec_lane_words(unsigned n_out, unsigned k_dim)
{
    return (size_t)(n_out / dec_lanes / dec_w) * k_dim;
}
// words of a prefill linear
inline size_t pref_words(unsigned n_out, unsigned k_dim) { return (size_t)((n_out + pref_wp - 1) / pref_wp) * k_dim; }
// words of each port of a prefill FFN linear
inline size_t pref_ffn_words(unsigned n_out, unsigned k_dim)
{
    return (size_t)((n_out + pref_ffn_wp - 1) / pref_ffn_wp) * k_dim;
}

// the nibble pair of channels c0, c0 + 1 (past n_out: zero) into byte p,
// p + stride, ... for k = 0 .. k_dim-1
template <class ROW>
void pack_pair(ROW row, unsigned c0, unsigned n_out, unsigned k_dim, uint8_t *p, size_t stride)
{
    const int8_t *r0 = c0 < n_out ? row(c0) : NULL, *r1 = c0 + 1 < n_out ? row(c0 + 1) : NULL;
    if (!r0 && !r1) return;
    for (unsigned k = 0; k < k_dim; k++) {
        unsigned lo = r0 ? (unsigned)r0[k] & 15u : 0u, hi = r1 ? (unsigned)r1[k] & 15u : 0u;
        p[(size_t)k * stride] = (uint8_t)(lo | hi << 4);
    }
}

// n_out rows (n_out a multiple of 16 * 64) into lane images lanes[0..15]
// from word `word` on (each lane image already large enough)
template <class ROW>
void pack_dec(ROW row, unsigned n_out, unsigned k_dim, uint8_t *const lanes[dec_lanes], size_t word)
{
    const unsigned per = n_out / dec_lanes, half = dec_w / 2;
    for (unsigned b = 0; b < dec_lanes; b++)
        for (unsigned n = 0; n < per / 2; n++) {
            const int8_t *r0 = row(b * per + 2 * n), *r1 = row(b * per + 2 * n + 1);
            if (!r0 && !r1) continue;
            uint8_t *base = lanes[b] + (word + (size_t)(n / half) * k_dim) * dec_word_bytes + n % half;
            for (unsigned k = 0; k < k_dim; k++) {
                unsigned lo = r0 ? (unsigned)r0[k] & 15u : 0u, hi = r1 ? (unsigned)r1[k] & 15u : 0u;
                base[(size_t)k * dec_word_bytes] = (uint8_t)(lo | hi << 4);
            }
        }
}

// the fused [K;V] decode linear (1024 rows): fused row o is K row
// (o/64)*32 + o%32 when o%64 < 32, else that V row; so lane b holds K rows
// 32b..32b+31, then V rows 32b..32b+31.  Returns the source row and sets *is_k.
inline unsigned kv_fused_row(unsigned o, bool *is_k)
{
    *is_k = o % 64 < 32;
    return (o / 64) * 32 + o % 32;
}

// one prefill linear appended to the byte image w
template <class ROW>
void pack_pref(ROW row, unsigned n_out, unsigned k_dim, std::vector<uint8_t> &w)
{
    const unsigned nb = (n_out + pref_wp - 1) / pref_wp;
    const size_t base = w.size() / pref_word_bytes;
    w.resize((base + (size_t)nb * k_dim) * pref_word_bytes, 0);
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned j = 0; j < pref_wp / 2; j++)
            pack_pair(row, blk * pref_wp + 2 * j, n_out, k_dim,
                      &w[(base + (size_t)blk * k_dim) * pref_word_bytes + j], pref_word_bytes);
}

// one prefill FFN linear into its three port images (each replaced)
template <class ROW>
void pack_pref_ffn(ROW row, unsigned n_out, unsigned k_dim, std::vector<uint8_t> ports[pref_ffn_ports])
{
    const unsigned nb = (n_out + pref_ffn_wp - 1) / pref_ffn_wp;
    for (unsigned i = 0; i < pref_ffn_ports; i++) ports[i].assign(pref_ffn_words(n_out, k_dim) * pref_ffn_word_bytes, 0);
    for (unsigned blk = 0; blk < nb; blk++)
        for (unsigned p = 0; p < pref_ffn_wp / 2; p++)
            pack_pair(row, blk * pref_ffn_wp + 2 * p, n_out, k_dim,
                      &ports[p % pref_ffn_ports][(size_t)blk * k_dim * pref_ffn_word_bytes + p / pref_ffn_ports],
                      pref_ffn_word_bytes);
}

// a byte image as the tops' word type (NB bytes per word; what an m_axi read
// of HBM gives), into w
template <class WORD, unsigned NB>
void to_words(const std::vector<uint8_t> &b, std::vector<WORD> &w)
{
    const size_t n = b.size() / NB;
    if (w.size() < n) w.resize(n);
    for (size_t i = 0; i < n; i++)
        for (unsigned j = 0; j < NB; j++) w[i][j] = (unsigned)b[i * NB + j];
}

}  // namespace flx_pack

#endif  // FLX_HBM_PACK_H
