// hbm_layout.cpp -- a .flxq model packed into the buffers the tops read
// (hw/README.md "The host program" lists every buffer and its layout).
// The packings themselves are hbm_pack.h's (shared with hw/tb/tb_layer.cpp):
// decode at flx_tops::layer_decode_map's offsets, K and V one fused linear
// of 1024 rows; prefill [K | Q] and [V | O] sharing a buffer, K (V) first,
// gate, up and down each over three port buffers.
#include "flx_host.h"
#include "hbm_pack.h"

#include "flx_emu.h"

#include <stdio.h>
#include <string.h>

namespace flx_host {

namespace {

// row(o) of a linear (rows >= n_src zero) or of the fused [K;V] (b = V)
struct row_src {
    const flx_qtensor *a, *b;
    unsigned n_src, k_dim;
    const int8_t *operator()(unsigned o) const
    {
        if (o >= n_src) return NULL;
        if (!b) return a->q + (size_t)o * k_dim;
        bool k;
        unsigned r = flx_pack::kv_fused_row(o, &k);
        return (k ? a : b)->q + (size_t)r * k_dim;
    }
    float table(unsigned o, bool sum) const
    {
        if (o >= n_src) return 0.0f;
        const flx_qtensor *t = a;
        unsigned r = o;
        if (b) {
            bool k;
            r = flx_pack::kv_fused_row(o, &k);
            t = k ? a : b;
        }
        return sum ? t->wsum[r] : t->scale[r];
    }
};

// a decode linear of n_out rows into the 16 lanes at word offset `word`,
// ws / wsum into s at float offset s_off
void pack_dec(const row_src &src, unsigned n_out, bytes *lanes, size_t word, std::vector<float> &s, size_t s_off)
{
    uint8_t *l[16];
    for (unsigned b = 0; b < 16; b++) l[b] = lanes[b].data();
    flx_pack::pack_dec(src, n_out, src.k_dim, l, word);
    for (unsigned o = 0; o < n_out; o++) {
        s[s_off + o] = src.table(o, false);
        s[s_off + n_out + o] = src.table(o, true);
    }
}

// one prefill linear appended to w (words) and s (ws then wsum)
void pack_pref(const flx_qtensor &t, bytes &w, std::vector<float> &s)
{
    const unsigned n_out = (unsigned)t.n_out, k_dim = (unsigned)t.n_in;
    row_src src = {&t, NULL, n_out, k_dim};
    flx_pack::pack_pref(src, n_out, k_dim, w);
    s.insert(s.end(), t.scale, t.scale + n_out);
    s.insert(s.end(), t.wsum, t.wsum + n_out);
}

// one prefill FFN linear into its three port images, s = ws then wsum
void pack_pref_ffn(const flx_qtensor &t, bytes ports[3], std::vector<float> &s)
{
    const unsigned n_out = (unsigned)t.n_out, k_dim = (unsigned)t.n_in;
    row_src src = {&t, NULL, n_out, k_dim};
    flx_pack::pack_pref_ffn(src, n_out, k_dim, ports);
    s.assign(t.scale, t.scale + n_out);
    s.insert(s.end(), t.wsum, t.wsum + n_out);
}

std::string fmt(const char *f, long long a, long long b = 0)
{
    char buf[256];
    snprintf(buf, sizeof buf, f, a, b);
    return buf;
}

}  // namespace

std::string pack_model(const flx_qmodel &qm, model_image &img)
{
    typedef shape S;
    const flx_llama_config &c = qm.cfg;
    if (c.d_model != (int)S::d || c.n_heads != (int)S::heads || c.n_kv_heads != (int)S::kv_heads ||
        c.head_dim != (int)S::head_dim || c.d_ff != (int)S::ff) {
        char buf[300];
        snprintf(buf, sizeof buf,
                 "model shape d_model %d, heads %d x %d, %d KV heads, d_ff %d: the tops are built for "
                 "Llama-3.2-1B's layer (2048, 32 x 64, 8, 8192)",
                 c.d_model, c.n_heads, c.head_dim, c.n_kv_heads, c.d_ff);
        return buf;
    }
    if (c.n_layers < 1 || c.n_layers > (int)S::max_layers)
        return fmt("%lld layers: the decode top keeps K registers for 1..%lld layers", c.n_layers,
                   S::max_layers);
    if (c.rms_eps != 1e-5f) return "rms_eps is not 1e-5: the tops' RMSNorm is built with eps = 1e-5";
    // the engine's own checks (INT4 symmetric per-channel weights with sums,
    // online R4, static attention scales, no R3), the RoPE table of the
    // reference (the tops' decode K register is the reference's: quirks mode)
    // and the padded vocabulary the sampler splits over 16 lanes
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    o.reference_quirks = 1;
    o.fp.exp = FLX_EMU_EXP_FLX;
    flx_emu_engine e;
    flx_error err = {};
    if (flx_emu_engine_init(&e, &qm, &o, S::max_len, &err)) return err.msg;
    if (e.n_vocab_pad != (int64_t)S::vocab) {
        std::string m = fmt("vocabulary %lld (padded %lld)", c.n_vocab, e.n_vocab_pad) +
                        fmt(": the head top (top_head_sample) is built for %lld rows", S::vocab);
        flx_emu_engine_free(&e);
        return m;
    }
    img.rope.assign(2 * (size_t)S::max_len * S::rope_half, 0.0f);
    memcpy(img.rope.data(), e.rope_sin, (size_t)S::max_len * S::rope_half * sizeof(float));
    memcpy(img.rope.data() + (size_t)S::max_len * S::rope_half, e.rope_cos,
           (size_t)S::max_len * S::rope_half * sizeof(float));
    flx_emu_engine_free(&e);

    img.n_layers = (unsigned)c.n_layers;
    img.n_vocab = (unsigned)c.n_vocab;
    img.eos = qm.tok ? flx_tokenizer_eos(qm.tok) : c.eos_id;
    img.layers.assign(img.n_layers, layer_image());
    typedef flx_tops::layer_decode_map M;
    for (unsigned l = 0; l < img.n_layers; l++) {
        const flx_qlayer &L = qm.layers[l];
        layer_image &li = img.layers[l];
        li.gamma.assign(L.attn_norm, L.attn_norm + S::d);
        li.gamma.insert(li.gamma.end(), L.ffn_norm, L.ffn_norm + S::d);
        li.att.assign(128, 0.0f);
        for (unsigned h = 0; h < S::heads; h++) {
            li.att[h] = L.q_s;
            li.att[96 + h] = L.a_s;
        }
        for (unsigned h = 0; h < S::kv_heads; h++) {
            li.att[32 + h] = L.k_s;
            li.att[64 + h] = L.v_s;
        }
        // decode: [K;V], Q, O, gate, up, down at layer_decode_map's offsets
        for (unsigned b = 0; b < 16; b++) li.w[b].assign((size_t)M::lane_words * dec_word_bytes, 0);
        li.s_sum.assign(M::s_floats, 0.0f);
        const flx_qtensor *lin[M::n_lin] = {&L.wk, &L.wq, &L.wo, &L.w_gate, &L.w_up, &L.w_down};
        for (unsigned i = 0; i < M::n_lin; i++) {
            row_src src = {lin[i], i == 0 ? &L.wv : NULL, M::n_out(i), M::k_dim(i)};
            pack_dec(src, M::n_out(i), li.w, M::word_base(i), li.s_sum, M::s_base(i));
        }
        // prefill
        pack_pref(L.wk, li.w_kq, li.s_kq);
        pack_pref(L.wq, li.w_kq, li.s_kq);
        pack_pref(L.wv, li.w_vo, li.s_vo);
        pack_pref(L.wo, li.w_vo, li.s_vo);
        pack_pref_ffn(L.w_gate, li.w_gate, li.s_gate);
        pack_pref_ffn(L.w_up, li.w_up, li.s_up);
        pack_pref_ffn(L.w_down, li.w_down, li.s_down);
    }
    img.out_norm.assign(qm.out_norm, qm.out_norm + S::d);
    for (unsigned b = 0; b < 16; b++) img.head_w[b].assign((size_t)S::vocab / 1024 * S::d * dec_word_bytes, 0);
    img.head_s_sum.assign(2 * (size_t)S::vocab, 0.0f);
    row_src hs = {&qm.head, NULL, img.n_vocab, S::d};
    pack_dec(hs, S::vocab, img.head_w, 0, img.head_s_sum, 0);
    img.vocab_lib.assign((size_t)S::vocab * S::d, 0.0f);
    memcpy(img.vocab_lib.data(), qm.tok_embd, (size_t)img.n_vocab * S::d * sizeof(float));
    return "";
}

}  // namespace flx_host
