// backend_csim.cpp -- the host's device in C simulation: the HBM buffers are
// host vectors in the images' layout and every kernel call is a call of the
// HLS top itself (hw/tops), so the host logic, the packing and the tops are
// checked together without a card.
#include "flx_host.h"
#include "hbm_pack.h"

#include <string.h>

namespace flx_host {

namespace {

typedef ap_int<8> i8;
typedef flx_tops::dec_word dec_word;
typedef flx_tops::pref_word pref_word;
typedef flx_tops::pref_ffn_word pref_ffn_word;

// an HBM byte image as the top's words (NB bytes each), into a reused buffer
template <class WORD, unsigned NB>
const WORD *words(const bytes &b, std::vector<WORD> &w)
{
    flx_pack::to_words<WORD, NB>(b, w);
    return w.data();
}

class csim_backend : public backend {
public:
    const char *name() const { return "csim"; }

    void prefill_load(const model_image &m, unsigned max_rows)
    {
        m_ = &m;
        const size_t T = max_rows, D = shape::d, KV = shape::kv_dim, N = shape::max_len;
        p_io_.assign((m.n_layers + 1) * T * D, 0.0f);
        p_k_.assign(m.n_layers, std::vector<i8>(N * KV, i8(0)));
        p_v_.assign(m.n_layers, std::vector<i8>(N * KV, i8(0)));
    }
    void prefill_input(const float *x, unsigned rows) { memcpy(p_io_.data(), x, (size_t)rows * shape::d * 4); }
    // layer l of the chunk: io slot l (rows x d) in, slot l + 1 out
    void prefill_layer(unsigned l, unsigned rows, unsigned pos0)
    {
        const layer_image &li = m_->layers[l];
        const unsigned NB = pref_word_bytes, FB = pref_ffn_word_bytes;
        const pref_word *kq = words<pref_word, NB>(li.w_kq, pw_[0]), *vo = words<pref_word, NB>(li.w_vo, pw_[1]);
        const pref_ffn_word *f[9];
        for (unsigned i = 0; i < 3; i++) {
            f[i] = words<pref_ffn_word, FB>(li.w_gate[i], fw_[i]);
            f[3 + i] = words<pref_ffn_word, FB>(li.w_up[i], fw_[3 + i]);
            f[6 + i] = words<pref_ffn_word, FB>(li.w_down[i], fw_[6 + i]);
        }
        flx_tops::top_layer_prefill(&p_io_[(size_t)l * rows * shape::d], li.gamma.data(), li.att.data(),
                                    m_->rope.data(), kq, li.s_kq.data(), vo, li.s_vo.data(), f[0], f[1], f[2],
                                    li.s_gate.data(), f[3], f[4], f[5], li.s_up.data(), f[6], f[7], f[8],
                                    li.s_down.data(), p_k_[l].data(), p_v_[l].data(), rows, pos0);
    }
    void prefill_caches(unsigned l, int8_t *k, int8_t *v, unsigned rows)
    {
        for (size_t i = 0; i < (size_t)rows * shape::kv_dim; i++) {
            k[i] = (int8_t)p_k_[l][i].to_int();
            v[i] = (int8_t)p_v_[l][i].to_int();
        }
    }

    void decode_load(const model_image &m)
    {
        m_ = &m;
        const size_t D = shape::d, KV = shape::kv_dim, N = shape::max_len;
        d_io_.assign((m.n_layers + 1) * D, 0.0f);
        d_k_.assign(m.n_layers, std::vector<i8>(N * KV, i8(0)));
        d_v_.assign(m.n_layers, std::vector<i8>(N * KV, i8(0)));
        logits_.assign(shape::vocab, 0.0f);
        probs_.assign(5, 0.0f);
    }
    void decode_caches(unsigned l, const int8_t *k, const int8_t *v, unsigned rows)
    {
        for (size_t i = 0; i < (size_t)rows * shape::kv_dim; i++) {
            d_k_[l][i] = (int)k[i];
            d_v_[l][i] = (int)v[i];
        }
    }
    void decode_input(const float *x) { memcpy(d_io_.data(), x, shape::d * sizeof(float)); }
    void decode_layer(unsigned l, unsigned pos)
    {
        const layer_image &li = m_->layers[l];
        const dec_word *const *w = lanes(li.w);
        flx_tops::top_layer_decode(&d_io_[(size_t)l * shape::d], li.gamma.data(), li.att.data(), m_->rope.data(),
                                   w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11],
                                   w[12], w[13], w[14], w[15], li.s_sum.data(), d_k_[l].data(), d_v_[l].data(),
                                   pos, l);
    }
    void decode_head(float r, int ids[6])
    {
        const dec_word *const *w = lanes(m_->head_w);
        flx_tops::top_head_sample(&d_io_[(size_t)m_->n_layers * shape::d], m_->out_norm.data(), w[0], w[1], w[2],
                                  w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12], w[13], w[14],
                                  w[15], m_->head_s_sum.data(), m_->vocab_lib.data(), r, logits_.data(),
                                  probs_.data(), ids, d_io_.data());
    }

private:
    const dec_word *const *lanes(const bytes *v)
    {
        for (unsigned b = 0; b < 16; b++) lane_[b] = words<dec_word, dec_word_bytes>(v[b], dw_[b]);
        return lane_;
    }
    const model_image *m_ = nullptr;
    std::vector<float> p_io_, d_io_, logits_, probs_;
    std::vector<std::vector<i8> > p_k_, p_v_, d_k_, d_v_;
    const dec_word *lane_[16];
    std::vector<dec_word> dw_[16];   // the words of the call in progress
    std::vector<pref_word> pw_[2];
    std::vector<pref_ffn_word> fw_[9];
};

}  // namespace

std::unique_ptr<backend> make_csim_backend() { return std::unique_ptr<backend>(new csim_backend()); }

}  // namespace flx_host
