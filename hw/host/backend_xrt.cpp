// backend_xrt.cpp -- the host's device on an FPGA card through XRT's native
// C++ API (xrt::device, xrt::kernel, xrt::bo, xrt::run; link with
// -lxrt_coreutil, C++17).  Built only where XRT's headers are found
// (hw/host/meson.build; hw/README.md "The host program").
//
// Two xclbins, as hw/link holds two link configurations: the prefill one
// (top_layer_prefill) and the decode one (top_layer_decode + top_head_sample).
// Prefill: load its xclbin, upload every layer's prefill buffers, run the
// layers once per chunk of the prompt (one chunk by default; the K/V caches
// stay on the card between chunks), read the prompt's K/V rows back.  Decode: load its xclbin (the prefill
// buffers are released first), upload the decode buffers and the K/V
// hand-over, then per step one run per layer and one of the head, reading
// back only the six sampled ids.  Activations stay on the card: the layers'
// io buffers are sub-buffers of one io buffer (layer l reads slot l, writes
// slot l+1), and the head writes the sampled token's embedding row into
// slot 0, the next step's layer-0 input.
#include "flx_host.h"

#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <stdexcept>

namespace flx_host {

namespace {

// argument positions of the tops (hw/tops/flx_tops_layer.h)
enum { PF_IO, PF_GAMMA, PF_ATT, PF_ROPE, PF_W_KQ, PF_S_KQ, PF_W_VO, PF_S_VO, PF_W_GATE, PF_S_GATE = PF_W_GATE + 3,
       PF_W_UP, PF_S_UP = PF_W_UP + 3, PF_W_DOWN, PF_S_DOWN = PF_W_DOWN + 3, PF_KCACHE, PF_VCACHE, PF_N_TOKENS,
       PF_POS0 };
enum { DC_IO, DC_GAMMA, DC_ATT, DC_ROPE, DC_W0, DC_S_SUM = DC_W0 + 16, DC_KCACHE, DC_VCACHE, DC_POS, DC_LAYER };
enum { HD_HIDDEN, HD_GAMMA, HD_W0, HD_S_SUM = HD_W0 + 16, HD_VOCAB, HD_R, HD_LOGITS, HD_PROBS, HD_OUT, HD_NEXT_X };

struct pref_layer {
    xrt::bo gamma, att, w_kq, s_kq, w_vo, s_vo, w_gate[3], s_gate, w_up[3], s_up, w_down[3], s_down, kcache, vcache;
};
struct dec_layer {
    xrt::bo gamma, att, w[16], s_sum, kcache, vcache;
};

class xrt_backend : public backend {
public:
    xrt_backend(unsigned index, const std::string &xp, const std::string &xd)
        : dev_(index), xclbin_pref_(xp), xclbin_dec_(xd)
    {
    }
    const char *name() const { return "xrt"; }

    void prefill_load(const model_image &m, unsigned max_rows)
    {
        release();
        uuid_ = dev_.load_xclbin(xclbin_pref_);
        k_pref_ = xrt::kernel(dev_, uuid_, "top_layer_prefill");
        const size_t T = max_rows, D = shape::d, KV = shape::kv_dim;
        p_io_ = xrt::bo(dev_, (m.n_layers + 1) * T * D * sizeof(float), k_pref_.group_id(PF_IO));
        p_rope_ = upload(k_pref_, PF_ROPE, m.rope);
        std::vector<int8_t> zero((size_t)shape::max_len * KV, 0);
        p_.resize(m.n_layers);
        for (unsigned l = 0; l < m.n_layers; l++) {
            const layer_image &li = m.layers[l];
            pref_layer &p = p_[l];
            p.gamma = upload(k_pref_, PF_GAMMA, li.gamma);
            p.att = upload(k_pref_, PF_ATT, li.att);
            p.w_kq = upload(k_pref_, PF_W_KQ, li.w_kq);
            p.s_kq = upload(k_pref_, PF_S_KQ, li.s_kq);
            p.w_vo = upload(k_pref_, PF_W_VO, li.w_vo);
            p.s_vo = upload(k_pref_, PF_S_VO, li.s_vo);
            for (int i = 0; i < 3; i++) {   // each FFN matrix on three ports (banks)
                p.w_gate[i] = upload(k_pref_, PF_W_GATE + i, li.w_gate[i]);
                p.w_up[i] = upload(k_pref_, PF_W_UP + i, li.w_up[i]);
                p.w_down[i] = upload(k_pref_, PF_W_DOWN + i, li.w_down[i]);
            }
            p.s_gate = upload(k_pref_, PF_S_GATE, li.s_gate);
            p.s_up = upload(k_pref_, PF_S_UP, li.s_up);
            p.s_down = upload(k_pref_, PF_S_DOWN, li.s_down);
            p.kcache = upload(k_pref_, PF_KCACHE, zero);
            p.vcache = upload(k_pref_, PF_VCACHE, zero);
        }
    }
    void prefill_input(const float *x, unsigned rows)
    {
        const size_t bytes = (size_t)rows * shape::d * sizeof(float);
        p_io_.write(x, bytes, 0);
        p_io_.sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, 0);
    }
    void prefill_layer(unsigned l, unsigned rows, unsigned pos0)
    {
        const size_t slot = (size_t)rows * shape::d * sizeof(float);   // a multiple of 128 KiB
        xrt::bo io(p_io_, 2 * slot, l * slot);   // x rows at slot l, y rows at slot l + 1
        const pref_layer &p = p_[l];
        xrt::run run = k_pref_(io, p.gamma, p.att, p_rope_, p.w_kq, p.s_kq, p.w_vo, p.s_vo, p.w_gate[0],
                               p.w_gate[1], p.w_gate[2], p.s_gate, p.w_up[0], p.w_up[1], p.w_up[2], p.s_up,
                               p.w_down[0], p.w_down[1], p.w_down[2], p.s_down, p.kcache, p.vcache, rows, pos0);
        run.wait();
    }
    void prefill_caches(unsigned l, int8_t *k, int8_t *v, unsigned rows)
    {
        const size_t bytes = (size_t)rows * shape::kv_dim;
        p_[l].kcache.sync(XCL_BO_SYNC_BO_FROM_DEVICE, bytes, 0);
        p_[l].kcache.read(k, bytes, 0);
        p_[l].vcache.sync(XCL_BO_SYNC_BO_FROM_DEVICE, bytes, 0);
        p_[l].vcache.read(v, bytes, 0);
    }

    void decode_load(const model_image &m)
    {
        release();
        uuid_ = dev_.load_xclbin(xclbin_dec_);
        k_dec_ = xrt::kernel(dev_, uuid_, "top_layer_decode");
        k_head_ = xrt::kernel(dev_, uuid_, "top_head_sample");
        n_layers_ = m.n_layers;
        const size_t D = shape::d;
        d_io_ = xrt::bo(dev_, (m.n_layers + 1) * D * sizeof(float), k_dec_.group_id(DC_IO));
        d_rope_ = upload(k_dec_, DC_ROPE, m.rope);
        std::vector<int8_t> zero((size_t)shape::max_len * shape::kv_dim, 0);
        d_.resize(m.n_layers);
        for (unsigned l = 0; l < m.n_layers; l++) {
            const layer_image &li = m.layers[l];
            dec_layer &d = d_[l];
            d.gamma = upload(k_dec_, DC_GAMMA, li.gamma);
            d.att = upload(k_dec_, DC_ATT, li.att);
            for (unsigned b = 0; b < 16; b++) d.w[b] = upload(k_dec_, DC_W0 + b, li.w[b]);
            d.s_sum = upload(k_dec_, DC_S_SUM, li.s_sum);
            d.kcache = upload(k_dec_, DC_KCACHE, zero);
            d.vcache = upload(k_dec_, DC_VCACHE, zero);
        }
        h_gamma_ = upload(k_head_, HD_GAMMA, m.out_norm);
        for (unsigned b = 0; b < 16; b++) h_w_[b] = upload(k_head_, HD_W0 + b, m.head_w[b]);
        h_s_sum_ = upload(k_head_, HD_S_SUM, m.head_s_sum);
        h_vocab_ = upload(k_head_, HD_VOCAB, m.vocab_lib);
        h_logits_ = xrt::bo(dev_, shape::vocab * sizeof(float), k_head_.group_id(HD_LOGITS));
        h_probs_ = xrt::bo(dev_, 5 * sizeof(float), k_head_.group_id(HD_PROBS));
        h_out_ = xrt::bo(dev_, 6 * sizeof(int), k_head_.group_id(HD_OUT));
    }
    void decode_caches(unsigned l, const int8_t *k, const int8_t *v, unsigned rows)
    {
        const size_t bytes = (size_t)rows * shape::kv_dim;
        d_[l].kcache.write(k, bytes, 0);
        d_[l].kcache.sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, 0);
        d_[l].vcache.write(v, bytes, 0);
        d_[l].vcache.sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, 0);
    }
    void decode_input(const float *x)
    {
        d_io_.write(x, shape::d * sizeof(float), 0);
        d_io_.sync(XCL_BO_SYNC_BO_TO_DEVICE, shape::d * sizeof(float), 0);
    }
    void decode_layer(unsigned l, unsigned pos)
    {
        const size_t slot = shape::d * sizeof(float);
        xrt::bo io(d_io_, 2 * slot, l * slot);
        const dec_layer &d = d_[l];
        xrt::run run = k_dec_(io, d.gamma, d.att, d_rope_, d.w[0], d.w[1], d.w[2], d.w[3], d.w[4], d.w[5], d.w[6],
                              d.w[7], d.w[8], d.w[9], d.w[10], d.w[11], d.w[12], d.w[13], d.w[14], d.w[15], d.s_sum,
                              d.kcache, d.vcache, pos, l);
        run.wait();
    }
    void decode_head(float r, int ids[6])
    {
        const size_t slot = shape::d * sizeof(float);
        xrt::bo hidden(d_io_, slot, n_layers_ * slot), next_x(d_io_, slot, 0);
        xrt::run run = k_head_(hidden, h_gamma_, h_w_[0], h_w_[1], h_w_[2], h_w_[3], h_w_[4], h_w_[5], h_w_[6],
                               h_w_[7], h_w_[8], h_w_[9], h_w_[10], h_w_[11], h_w_[12], h_w_[13], h_w_[14], h_w_[15],
                               h_s_sum_, h_vocab_, r, h_logits_, h_probs_, h_out_, next_x);
        run.wait();
        h_out_.sync(XCL_BO_SYNC_BO_FROM_DEVICE, 6 * sizeof(int), 0);
        h_out_.read(ids, 6 * sizeof(int), 0);
    }

private:
    template <class T>
    xrt::bo upload(const xrt::kernel &k, int arg, const std::vector<T> &v)
    {
        xrt::bo b(dev_, v.size() * sizeof(T), k.group_id(arg));
        b.write(v.data(), v.size() * sizeof(T), 0);
        b.sync(XCL_BO_SYNC_BO_TO_DEVICE, v.size() * sizeof(T), 0);
        return b;
    }
    // buffers and kernels of the loaded xclbin go before another is loaded
    void release()
    {
        p_.clear();
        d_.clear();
        p_io_ = p_rope_ = d_io_ = d_rope_ = h_gamma_ = h_s_sum_ = h_vocab_ = h_logits_ = h_probs_ = h_out_ = xrt::bo();
        for (unsigned b = 0; b < 16; b++) h_w_[b] = xrt::bo();
        k_pref_ = k_dec_ = k_head_ = xrt::kernel();
    }

    xrt::device dev_;
    std::string xclbin_pref_, xclbin_dec_;
    xrt::uuid uuid_;
    xrt::kernel k_pref_, k_dec_, k_head_;
    xrt::bo p_io_, p_rope_, d_io_, d_rope_, h_gamma_, h_w_[16], h_s_sum_, h_vocab_, h_logits_, h_probs_, h_out_;
    std::vector<pref_layer> p_;
    std::vector<dec_layer> d_;
    unsigned n_layers_ = 0;
};

}  // namespace

std::unique_ptr<backend> make_xrt_backend(unsigned device_index, const std::string &xclbin_prefill,
                                          const std::string &xclbin_decode)
{
    return std::unique_ptr<backend>(new xrt_backend(device_index, xclbin_prefill, xclbin_decode));
}

bool have_xrt() { return true; }

}  // namespace flx_host
