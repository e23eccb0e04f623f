// data_io.h -- FlexLLM's decode data movers (reference-design §1.1, 1.4, 1.12, 1.13):
// HBM weight loaders with nibble unpacking in the host's packing, the
// bandwidth scale/sum loader, dec_io_buffer (lane re-partitioning), the
// decode K/V cache update (the K-group register of reference-design §6.2 behind a quirks
// switch) and the embedding fetch.  Movement only: every value is copied
// bit for bit.
#ifndef FLX_HLS_DATA_IO_H
#define FLX_HLS_DATA_IO_H

#include "flx_hls.h"

namespace flx_hls {

// One HBM word of a decode weight lane: W/2 bytes, byte j = the nibble pair
// of output columns 2j (low nibble) and 2j+1 (high nibble), signed int4.
template <unsigned W>
struct dec_wword {
    typedef hls::vector<ap_uint<8>, W / 2> type;
};

// `dec_weight_loader_int4_pack_2<B, W>`, one lane (one HBM port): per output
// block N < n_blocks and input k < k_dim, word base + N*k_dim + k, unpacked
// into W signed int4 lanes.
template <unsigned W>
void dec_weight_loader_i4(const typename dec_wword<W>::type *mem, unsigned base,
                          hls::stream<hls::vector<ap_int<4>, W> > &w, unsigned n_blocks, unsigned k_dim)
{
    for (unsigned i = 0; i < n_blocks * k_dim; i++) {
#pragma HLS PIPELINE II = 1
        typename dec_wword<W>::type word = mem[base + i];
        hls::vector<ap_int<4>, W> o;
        for (unsigned j = 0; j < W / 2; j++) {
#pragma HLS UNROLL
            ap_uint<8> byte = word[j];
            ap_uint<4> lo = byte.range(3, 0), hi = byte.range(7, 4);
            o[2 * j] = ap_int<4>(lo);        // the nibble's pattern read signed
            o[2 * j + 1] = ap_int<4>(hi);
        }
        w.write(o);
    }
}

// `dec_weight_s_loader_fp32_bandwidth`: (ws, wsum) pairs in the order output
// block N, lane j, column c, from address base + j*(n_out/B) + N*W + c.
template <unsigned B, unsigned W>
void dec_s_loader_bw(const float *ws, const float *wsum, unsigned base,
                     hls::stream<hls::vector<float, 2> > &w_sb, unsigned n_out)
{
    const unsigned per = n_out / B;
    for (unsigned n = 0; n < n_out / (B * W); n++)
        for (unsigned j = 0; j < B; j++)
            for (unsigned c = 0; c < W; c++) {
#pragma HLS PIPELINE II = 1
                unsigned a = base + j * per + n * W + c;
                hls::vector<float, 2> p;
                p[0] = ws[a];
                p[1] = wsum[a];
                w_sb.write(p);
            }
}

// `dec_io_buffer<Bin, Bout, max, rep>`: store the whole vector of n elements
// (block-partitioned with Bin lanes), then emit it rep times block-partitioned
// with Bout lanes.  A store-and-forward barrier.
template <class T, unsigned BIN, unsigned BOUT, unsigned MAX>
void dec_io_buffer(hls::stream<hls::vector<T, BIN> > &in, hls::stream<hls::vector<T, BOUT> > &out,
                   unsigned n, unsigned rep)
{
    T reg[MAX];
    const unsigned pin = n / BIN, pout = n / BOUT;
    for (unsigned k = 0; k < pin; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<T, BIN> v = in.read();
        for (unsigned i = 0; i < BIN; i++) reg[i * pin + k] = v[i];
    }
    for (unsigned r = 0; r < rep; r++)
        for (unsigned k = 0; k < pout; k++) {
#pragma HLS PIPELINE II = 1
            hls::vector<T, BOUT> v;
            for (unsigned j = 0; j < BOUT; j++) v[j] = reg[j * pout + k];
            out.write(v);
        }
}

// Decode K cache update (`dec_K_cache_buffer_template` + manager, spec
// 1.12 decode 2-3 and 6.2), natural layout kcache[pos][kv_dim].
// quirks = true: the reference's static 32-slot register k_reg is zeroed at
// pos % 32 == 0, the new key goes to slot pos % 32 and the whole group is
// written back: rows 32*(pos/32) .. +31 (up to cap), so the first decode
// step after a prompt of n % 32 != 0 overwrites prompt keys with the
// register's zeros, as the reference's C simulation does.
// quirks = false: only row pos is written.
template <unsigned KV_DIM>
void dec_k_cache_update(const ap_int<8> k_new[KV_DIM], ap_int<8> k_reg[32][KV_DIM], ap_int<8> *kcache,
                        unsigned pos, unsigned cap, bool quirks)
{
    if (!quirks) {
        for (unsigned d = 0; d < KV_DIM; d++) kcache[pos * KV_DIM + d] = k_new[d];
        return;
    }
    if (pos % 32 == 0)
        for (unsigned s = 0; s < 32; s++)
            for (unsigned d = 0; d < KV_DIM; d++) k_reg[s][d] = 0;
    for (unsigned d = 0; d < KV_DIM; d++) k_reg[pos % 32][d] = k_new[d];
    const unsigned base = pos / 32 * 32;
    for (unsigned s = 0; s < 32 && base + s < cap; s++)
        for (unsigned d = 0; d < KV_DIM; d++) kcache[(base + s) * KV_DIM + d] = k_reg[s][d];
}

// Embedding fetch (`dec_input_loader`, block 0, row = token): the fp32 row
// of `token`, block-partitioned with B_T lanes.
template <unsigned BT>
void dec_embed_fetch(const float *table, unsigned d, unsigned token, hls::stream<hls::vector<float, BT> > &out)
{
    const unsigned per = d / BT;
    for (unsigned k = 0; k < per; k++) {
#pragma HLS PIPELINE II = 1
        hls::vector<float, BT> v;
        for (unsigned i = 0; i < BT; i++) v[i] = table[(unsigned long)token * d + i * per + k];
        out.write(v);
    }
}

// ---------------------------------------------------------------- prefill
// (the prefill weight loader is dec_weight_loader_i4 with W = WP: the same
// word format, one port; the FFN's three ports each W = WP/3)

// `pref_io_discard`: per token block forward the first `keep` beats, drop
// the rest of `total` (the padded outputs of a linear whose output count is
// not a multiple of WP).
template <class T>
void pref_io_discard(hls::stream<T> &in, hls::stream<T> &out, unsigned n_blocks, unsigned keep,
                     unsigned total)
{
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II = 1
            T v = in.read();
            if (i < keep) out.write(v);
        }
}

// `pref_weight_s_loader_fp32`: per token block, n_out (ws, wsum) pairs in
// channel order.
inline void pref_s_loader(const float *ws, const float *wsum, hls::stream<hls::vector<float, 2> > &w_sb,
                          unsigned n_blocks, unsigned n_out)
{
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned o = 0; o < n_out; o++) {
#pragma HLS PIPELINE II = 1
            hls::vector<float, 2> p;
            p[0] = ws[o];
            p[1] = wsum[o];
            w_sb.write(p);
        }
}

// The store side of the prefill K and V cache managers: n_blocks token
// blocks of kv_dim beats (channel, lanes = tokens), the INT8 keys (values)
// of positions 8*first_block .. 8*(first_block+n_blocks)-1, written to those
// rows of cache [rows][kv_dim].  A manager stores every row of the call
// before it streams any (the barrier of reference-design §2.3).
template <unsigned TP>
void pref_kv_cache_store(hls::stream<hls::vector<ap_int<8>, TP> > &in, ap_int<8> *cache, unsigned first_block,
                         unsigned n_blocks, unsigned kv_dim)
{
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned c = 0; c < kv_dim; c++) {
#pragma HLS PIPELINE II = 1
            hls::vector<ap_int<8>, TP> v = in.read();
            for (unsigned t = 0; t < TP; t++) {
#pragma HLS UNROLL
                cache[(size_t)((first_block + blk) * TP + t) * kv_dim + c] = v[t];
            }
        }
}

// `pref_K_cache_manager_template` (reference-design §1.12 prefill 3), read side: every
// key is stored (k8 [seq_len][kv_dim], complete) before QK^T; then per
// query block and query head h (KV head h/G) all seq_len/KP key words of
// each dim: lane j = key N*KP + j.
template <unsigned KP>
void pref_k_cache_manager(const ap_int<8> *k8, hls::stream<hls::vector<ap_int<8>, KP> > &out, unsigned n_blocks,
                          unsigned n_heads, unsigned group, unsigned head_dim, unsigned kv_dim, unsigned seq_len)
{
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++)
            for (unsigned n = 0; n < seq_len / KP; n++)
                for (unsigned d = 0; d < head_dim; d++) {
#pragma HLS PIPELINE II = 1
                    hls::vector<ap_int<8>, KP> v;
                    for (unsigned j = 0; j < KP; j++) v[j] = k8[(n * KP + j) * kv_dim + (h / group) * head_dim + d];
                    out.write(v);
                }
}

// the V side (reference-design §1.12 prefill 10): per query block, head and dim block of
// VP dims, seq_len words (key j, lane c = v8[j][kv_head*head_dim + db*VP + c]).
template <unsigned VP>
void pref_v_cache_manager(const ap_int<8> *v8, hls::stream<hls::vector<ap_int<8>, VP> > &out, unsigned n_blocks,
                          unsigned n_heads, unsigned group, unsigned head_dim, unsigned kv_dim, unsigned seq_len)
{
    for (unsigned blk = 0; blk < n_blocks; blk++)
        for (unsigned h = 0; h < n_heads; h++)
            for (unsigned db = 0; db < head_dim / VP; db++)
                for (unsigned j = 0; j < seq_len; j++) {
#pragma HLS PIPELINE II = 1
                    hls::vector<ap_int<8>, VP> v;
                    for (unsigned c = 0; c < VP; c++) v[c] = v8[j * kv_dim + (h / group) * head_dim + db * VP + c];
                    out.write(v);
                }
}

}  // namespace flx_hls

#endif  // FLX_HLS_DATA_IO_H
