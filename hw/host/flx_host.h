// flx_host.h -- the host program of the hw/ accelerator: a quantized .flxq
// model packed into the HBM images the tops' ports read (hbm_layout.cpp),
// the generate flow over them (host.cpp: prefill of the prompt but its last
// token, then decode steps sampling the top 5, exactly as
// `flxemu generate --engine emu --reference-quirks --exp flx`), and the
// device it runs on, behind one interface with two backends:
//   csim  calls the HLS tops (hw/tops) in software  (backend_csim.cpp)
//   xrt   runs them on an FPGA card through XRT     (backend_xrt.cpp, built
//         only where XRT's headers are found)
// Both backends receive the same images and the same calls, so what csim
// checks here (layout, packing, the call sequence, the tokens) is what the
// card is given.
#ifndef FLX_HOST_H
#define FLX_HOST_H

#include "../tops/flx_tops_layer.h"

#include "flx_qmodel.h"

#include <stdint.h>

#include <memory>
#include <string>
#include <vector>

namespace flx_host {

// The shapes the tops are built for (hw/tops/flx_tops_layer.h): every
// decoder layer is Llama-3.2-1B's, the prefill top runs a chunk of a
// multiple of 16 rows at positions pos0.. (the whole prompt in one call, or
// in chunks at increasing pos0), the prefill and decode caches hold 2048
// positions, the head top holds `vocab` rows (the tiny model's 1024;
// Llama-3.2-1B needs 131072).
struct shape {
    static const unsigned d = 2048, kv_dim = 512, ff = 8192, heads = 32, kv_heads = 8, head_dim = 64;
    static const unsigned pref_align = 16;    // a top_layer_prefill chunk: a multiple of 16 rows
    static const unsigned max_len = 2048;     // decode K/V cache rows, RoPE rows
    static const unsigned max_layers = 16;    // the decode top's static K registers
    static const unsigned vocab = flx_tops::head_sample_cfg::vocab;
    static const unsigned rope_half = head_dim / 2;
};

// Weight buffers are byte images, exactly what HBM holds: a decode word is
// 32 bytes (64 INT4 weights of one input), a prefill word 12 bytes (24), a
// prefill FFN word 16 bytes (32: one of the three ports of a matrix).
// The csim backend turns them into the tops' word types (whose size in C
// simulation need not be the hardware's) as an m_axi read would.
static const unsigned dec_word_bytes = 32, pref_word_bytes = 12, pref_ffn_word_bytes = 16;
typedef std::vector<uint8_t> bytes;

// One decoder layer in HBM (buffer names = the tops' port names).
struct layer_image {
    // both tops
    std::vector<float> gamma;   // attn_norm [d] then ffn_norm [d]
    std::vector<float> att;     // Q_s [32], K_s [32] (8 used), V_s [32] (8 used), A_s [32]
    // top_layer_decode: 16 weight lanes (flx_tops::layer_decode_map) and s_sum
    bytes w[16];
    std::vector<float> s_sum;
    // top_layer_prefill: [K | Q], [V | O] (prefill packing), gate, up,
    // down on three ports each (the blocked FFN packing)
    bytes w_kq, w_vo, w_gate[3], w_up[3], w_down[3];
    std::vector<float> s_kq, s_vo, s_gate, s_up, s_down;
};

// The whole model in HBM.
struct model_image {
    unsigned n_layers = 0, n_vocab = 0;
    int32_t eos = -1;
    std::vector<layer_image> layers;
    std::vector<float> rope;        // PE_sin [max_len][32] then PE_cos [max_len][32]
    std::vector<float> out_norm;    // [d]
    bytes head_w[16];         // lm_head in the decode packing, `vocab` rows (zero past n_vocab)
    std::vector<float> head_s_sum;  // ws [vocab] then wsum [vocab]
    std::vector<float> vocab_lib;   // [vocab][d] fp32 embedding rows (zero past n_vocab)
};

// Packs qm into the images; returns "" or the reason the model does not fit
// the tops (a shape, a recipe, a missing table).
std::string pack_model(const flx_qmodel &qm, model_image &img);

// The device.  Calls come in this order: prefill_load; per chunk of rows at
// pos0 = 0, chunk, 2 chunk, ...: prefill_input, prefill_layer(0..L-1, rows,
// pos0); then prefill_caches per layer; decode_load,
// decode_caches per layer; then per step decode_input (first step only),
// decode_layer(0..L-1), decode_head.  Buffers keep their contents between
// calls, as HBM does.  Errors are thrown as std::runtime_error.
class backend {
public:
    virtual ~backend() {}
    virtual const char *name() const = 0;
    // max_rows: the longest chunk (io holds L+1 slots of it)
    virtual void prefill_load(const model_image &m, unsigned max_rows) = 0;
    // x: [rows][d], the layer-0 input rows of the next chunk (prompt embeddings, zero padding)
    virtual void prefill_input(const float *x, unsigned rows) = 0;
    // one top_layer_prefill call over the chunk's rows at pos0..pos0+rows-1:
    // layer l reads io slot l (rows x d), writes slot l+1; its K/V caches
    // keep the earlier chunks' rows
    virtual void prefill_layer(unsigned layer, unsigned rows, unsigned pos0) = 0;
    // the first `rows` rows of the layer's INT8 K (after RoPE) and V caches, [rows][kv_dim] each
    virtual void prefill_caches(unsigned layer, int8_t *k, int8_t *v, unsigned rows) = 0;
    virtual void decode_load(const model_image &m) = 0;
    // the first `rows` K/V rows of the layer's decode caches (the prefill hand-over)
    virtual void decode_caches(unsigned layer, const int8_t *k, const int8_t *v, unsigned rows) = 0;
    // x: [d], the layer-0 input of the first decode step
    virtual void decode_input(const float *x) = 0;
    // one top_layer_decode call for the token at pos
    virtual void decode_layer(unsigned layer, unsigned pos) = 0;
    // top_head_sample with threshold r: ids[0..5) the top 5, ids[5] the sampled
    // token; its embedding row becomes the next step's layer-0 input
    virtual void decode_head(float r, int ids[6]) = 0;
};

std::unique_ptr<backend> make_csim_backend();
// xclbin_prefill holds top_layer_prefill, xclbin_decode top_layer_decode and
// top_head_sample (hw/link/u280_*.cfg); NULL when built without XRT.
std::unique_ptr<backend> make_xrt_backend(unsigned device_index, const std::string &xclbin_prefill,
                                          const std::string &xclbin_decode);
bool have_xrt();

// The generate flow: prompt ids (at least one; prefill of all but the last,
// padded to a multiple of 16 rows, in chunks of prefill_chunk rows (a
// multiple of 16; 0: the whole prompt in one call per layer), n_new tokens,
// sampling seed.  Appends the generated ids to out (stops after EOS, as
// flxemu generate does).  Throws std::runtime_error.
void generate(backend &dev, const model_image &m, const std::vector<int32_t> &prompt, unsigned n_new,
              uint64_t seed, std::vector<int32_t> &out, unsigned prefill_chunk = 0);

}  // namespace flx_host

#endif  // FLX_HOST_H
