// flx_tops_layer.h -- whole-layer tops: the decode decoder layer (reference-design §2.4)
// assembled from the kernels in hw/kernels/layer_dec.h, the prefill decoder
// layer (§2.3, hw/kernels/layer_pref.h) and the decode tail, at the U280
// production configuration (config_u280_mem_opt), with the memory ports of
// the production links (reference-design §5.2; hw/link/*.cfg maps them to banks).
#ifndef FLX_TOPS_LAYER_H
#define FLX_TOPS_LAYER_H

#include "../kernels/layer_dec.h"
#include "../kernels/layer_pref.h"

namespace flx_tops {

typedef flx_hls::layer_dec_config layer_decode_cfg;   // D 2048, FF 8192, B 16, W 64, B_T 8, HP 8
typedef flx_hls::dec_linear_ports<16, 64> dec_ports;
typedef flx_hls::dec_wword<64>::type dec_word;         // 32 bytes: 64 int4 weights of one input

// Where each linear lives in a weight lane (words) and in s_sum (floats):
// [K;V] fused (1024 outputs), Q, O, gate, up, down.  In a lane, a linear of
// n_out outputs and k_dim inputs takes n_out/(16*64)*k_dim words; in s_sum
// its ws take n_out floats, then its wsum n_out floats.
struct layer_decode_map {
    static const unsigned n_lin = 6;
    static unsigned n_out(unsigned i) { return i == 0 ? 1024 : i == 3 || i == 4 ? 8192 : 2048; }
    static unsigned k_dim(unsigned i) { return i == 5 ? 8192 : 2048; }
    static unsigned word_base(unsigned i) {
        unsigned b = 0;
        for (unsigned j = 0; j < i; j++) b += n_out(j) / 1024 * k_dim(j);
        return b;
    }
    static unsigned s_base(unsigned i) {
        unsigned b = 0;
        for (unsigned j = 0; j < i; j++) b += 2 * n_out(j);
        return b;
    }
    static const unsigned lane_words = 59392;   // word_base(6)
    static const unsigned s_floats = 47104;     // s_base(6)
};

// io: x at [0, 2048), y written to [2048, 4096) (io_mmap)
// gamma: attn_norm [0, 2048), ffn_norm [2048, 4096)
// att: Q_s, K_s, V_s, A_s, 32 floats each; rope: PE_sin [2048][32] then PE_cos
// w0..w15: the weight lanes (layer_decode_map), s_sum: scales and sums
// kcache, vcache: [2048][512] INT8 of this layer; pos: the token's position;
// layer: which of the 16 static 32-slot K registers (reference-design §1.12 decode 2).
void top_layer_decode(float *io, const float *gamma, const float *att, const float *rope,
                      const dec_word *w0, const dec_word *w1, const dec_word *w2, const dec_word *w3,
                      const dec_word *w4, const dec_word *w5, const dec_word *w6, const dec_word *w7,
                      const dec_word *w8, const dec_word *w9, const dec_word *w10, const dec_word *w11,
                      const dec_word *w12, const dec_word *w13, const dec_word *w14, const dec_word *w15,
                      const float *s_sum, ap_int<8> *kcache, ap_int<8> *vcache, unsigned pos,
                      unsigned layer);

// The tail of a decode step (LN2, lm_head, top-5 sampling, embedding fetch)
// over FLX_HEAD_VOCAB vocabulary rows, a build-time parameter: a multiple of
// 1024 (one GEMV block of 16 lanes x 64).  Default 131072, Llama-3.2-1B's
// 128,256 rows padded (hw/scripts/build.sh --vocab); the meson build and its
// tests use the tiny golden model's 1024 (meson option hw_head_vocab).
// hidden: the last layer's output; w0..w15 / s_sum: lm_head in the decode
// packing; vocab_lib: [vocab][2048] fp32; out: 5 ids then the token; next_x:
// its embedding row.
#ifndef FLX_HEAD_VOCAB
#define FLX_HEAD_VOCAB 131072
#endif
struct head_sample_cfg : flx_hls::head_sample_config {
    static const unsigned vocab = FLX_HEAD_VOCAB;
};
static_assert(FLX_HEAD_VOCAB >= 1024 && FLX_HEAD_VOCAB % 1024 == 0,
              "FLX_HEAD_VOCAB: a positive multiple of 1024 (16 lanes x 64 rows per GEMV block)");
void top_head_sample(const float *hidden, const float *gamma, const dec_word *w0, const dec_word *w1,
                     const dec_word *w2, const dec_word *w3, const dec_word *w4, const dec_word *w5,
                     const dec_word *w6, const dec_word *w7, const dec_word *w8, const dec_word *w9,
                     const dec_word *w10, const dec_word *w11, const dec_word *w12, const dec_word *w13,
                     const dec_word *w14, const dec_word *w15, const float *s_sum, const float *vocab_lib,
                     float r, float *logits, float *probs, int *out, float *next_x);

// ------------------------------------------------------------------ prefill

typedef flx_hls::layer_pref_config layer_prefill_cfg;  // D 2048, FF 8192, TP 8, WP 24, FFN WP 96 over 3 ports
typedef flx_hls::layer_pref_words<layer_prefill_cfg>::qkvo pref_word;     // 12 bytes: 24 int4 weights of one input
typedef flx_hls::layer_pref_words<layer_prefill_cfg>::ffn pref_ffn_word;  // 16 bytes: 32 int4 weights of one input

struct layer_prefill_map {
    // [K | Q], [V | O]: words of a linear with n_out outputs, k_dim inputs: ceil(n_out/24)*k_dim
    static unsigned words(unsigned n_out, unsigned k_dim) { return (n_out + 23) / 24 * k_dim; }
    // gate, up, down: words of each of the three ports: ceil(n_out/96)*k_dim
    static unsigned ffn_words(unsigned n_out, unsigned k_dim) { return (n_out + 95) / 96 * k_dim; }
    static const unsigned max_tokens = layer_prefill_cfg::max_keys;   // pos0 + n_tokens
};

// One prefill layer over a chunk of n_tokens prompt rows at positions
// pos0 .. pos0+n_tokens-1 (n_tokens and pos0 multiples of 16, n_tokens >=
// 16, pos0 + n_tokens <= 2048; anything else returns at once, writing
// nothing).  A whole prompt (padded to a multiple of 16) is one call at
// pos0 = 0; a prompt in chunks, calls at increasing pos0: the bits are the
// same (hw/kernels/layer_pref.h).  One DATAFLOW region over the chunk's
// token blocks (hw/README.md "The prefill layer top").
// io: x [n_tokens][2048] at 0, y [n_tokens][2048] written at n_tokens*2048;
// gamma: attn_norm, ffn_norm; att: Q_s, K_s, V_s, A_s (32 each); rope:
// PE_sin [2048][32] then PE_cos;
// w_kq: K then Q words (12 bytes: channels N*24 + 2j, +1 in byte j of word
// N*K + k), s_kq: K ws, K wsum, Q ws, Q wsum; w_vo / s_vo: V then O;
// w_gate0..2, w_up0..2, w_down0..2: the three ports of each FFN matrix (16
// bytes: byte j of port i's word N*K + k holds channels N*96 + 2(3j + i),
// +1), s_gate, s_up, s_down: ws then wsum;
// kcache, vcache: the layer's INT8 K (after RoPE) and V caches, [2048][512]:
// rows 0..pos0-1 (earlier chunks) are read, rows pos0..pos0+n_tokens-1 written.
void top_layer_prefill(float *io, const float *gamma, const float *att, const float *rope,
                       const pref_word *w_kq, const float *s_kq, const pref_word *w_vo, const float *s_vo,
                       const pref_ffn_word *w_gate0, const pref_ffn_word *w_gate1, const pref_ffn_word *w_gate2,
                       const float *s_gate, const pref_ffn_word *w_up0, const pref_ffn_word *w_up1,
                       const pref_ffn_word *w_up2, const float *s_up, const pref_ffn_word *w_down0,
                       const pref_ffn_word *w_down1, const pref_ffn_word *w_down2, const float *s_down,
                       ap_int<8> *kcache, ap_int<8> *vcache, unsigned n_tokens, unsigned pos0);

}  // namespace flx_tops

#endif  // FLX_TOPS_LAYER_H
