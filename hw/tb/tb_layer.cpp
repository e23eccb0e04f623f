// tb_layer.cpp -- the whole-layer testbench: `flxemu golden --layer decode`
// through top_layer_decode.  The host side packs the golden INT4 weights
// into the decode HBM layout with the host program's own packing
// (hw/host/hbm_pack.h, reference-design §1.4: per lane b, rows b*(O/B) + 2n, 2n+1
// as a nibble pair in byte n mod (W/2) of word (n/(W/2))*K + m; [K;V] fused
// per lane as K rows 32b.. then V rows 32b..), fills the K/V caches with the
// prefill hand-over and compares the layer output and the new cache rows.
// `--layer prefill` sets (any call the manifest's reference.call states)
// through top_layer_prefill: caches preloaded with the earlier calls' rows,
// the top called from run_pref_call alone (the one place that knows its
// signature), every intermediate, the written and the untouched cache rows.
#include "tb_kernels.h"

#include "../host/hbm_pack.h"
#include "../tops/flx_tops_layer.h"

#include <algorithm>
#include <map>
#include <memory>

namespace flx_tb {

// The layer's intermediates as the kernels hand them over (flx_probe.h),
// compared in dataflow order with the golden set's, so the first mismatch
// names the first stage that differs: "intermediate 'scores': ...".
struct layer_probe : flx_hls::probe_sink {
    std::map<std::string, std::vector<float> > f;
    std::map<std::string, std::vector<long long> > i;
    void f32(const char *name, const float *x, size_t n) { f[name].insert(f[name].end(), x, x + n); }
    void ints(const char *name, const long long *x, size_t n) { i[name].insert(i[name].end(), x, x + n); }
    // the float / integer intermediate `name` against the golden tensor
    void expect(tb_ctx &c, const char *name, const char *int_descr = nullptr)
    {
        if (int_descr) {
            c.expect_int(name, int_descr, i[name]);
        } else {
            c.expect_f32(name, f[name]);
        }
        c.label_last(std::string("intermediate '") + name + "': ");
    }
    // the attention half: norm output, projections, RoPE, Q8
    void expect_front(tb_ctx &c)
    {
        const char *fl[] = {"h_attn", "k", "v", "q", "k_rope", "q_rope"};
        for (const char *n : fl) expect(c, n);
        expect(c, "q8", "|i1");
    }
    // scores onwards
    void expect_back(tb_ctx &c)
    {
        expect(c, "scores");
        expect(c, "p");
        expect(c, "p8", "|u1");
        const char *fl[] = {"attn", "o_proj", "r0", "h_ffn", "gate", "up", "act", "act_fht", "down"};
        for (const char *n : fl) expect(c, n);
    }
};

typedef flx_hls::dec_wword<64>::type word;

// one linear in HBM: per lane its words, the scale/sum tables
struct hbm_linear {
    std::vector<word> lane[16];
    std::vector<float> ws, wsum;
};

// rows(o) gives the int8 weights of fused output row o ([k_dim]), scale(o)/sum(o)
template <class ROW, class SC, class SU>
static void pack(hbm_linear &h, unsigned n_out, unsigned k_dim, ROW row, SC scale, SU sum)
{
    std::vector<uint8_t> img[16];
    uint8_t *lanes[16];
    for (unsigned b = 0; b < 16; b++) {
        img[b].assign(flx_pack::dec_lane_words(n_out, k_dim) * flx_pack::dec_word_bytes, 0);
        lanes[b] = img[b].data();
    }
    flx_pack::pack_dec(row, n_out, k_dim, lanes, 0);
    for (unsigned b = 0; b < 16; b++) {
        h.lane[b].clear();
        flx_pack::to_words<word, flx_pack::dec_word_bytes>(img[b], h.lane[b]);
    }
    h.ws.resize(n_out);
    h.wsum.resize(n_out);
    for (unsigned o = 0; o < n_out; o++) {
        h.ws[o] = scale(o);
        h.wsum[o] = sum(o);
    }
}

static void pack_plain(tb_ctx &c, hbm_linear &h, const char *name, unsigned n_out, unsigned k_dim)
{
    std::string n = name;
    npy_array w = c.load(name, "|i1", {n_out, k_dim});
    npy_array s = c.load((n + "_s").c_str(), "<f4", {n_out}), u = c.load((n + "_sum").c_str(), "<f4", {n_out});
    pack(h, n_out, k_dim, [&](unsigned o) { return (const int8_t *)&w.data[(size_t)o * k_dim]; },
         [&](unsigned o) { return s.f32(o); }, [&](unsigned o) { return u.f32(o); });
}

static flx_tops::dec_ports ports(const hbm_linear &h)
{
    flx_tops::dec_ports p;
    for (unsigned b = 0; b < 16; b++) p.w[b] = h.lane[b].data();
    p.ws = h.ws.data();
    p.wsum = h.wsum.data();
    return p;
}

struct layer_std : flx_tops::layer_decode_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// One decode layer through top_layer_decode (or the EXP_STD template) for
// the token at position P: weights, scales and gains named PRE + "wk", ... in
// the golden folder, rope_sin / rope_cos the row of position P; io: x in
// [0, D), y out [D, 2D).
static void run_dec_layer(tb_ctx &c, const std::string &pre, std::vector<float> &io,
                          std::vector<ap_int<8> > &kcache, std::vector<ap_int<8> > &vcache, unsigned layer,
                          unsigned P)
{
    const unsigned D = 2048, KV = 512, F = 8192, L = 2048, HALF = 32;
    auto nm = [&](const char *n) { return pre + n; };
    npy_array an = c.load(nm("attn_norm").c_str(), "<f4", {D}), fn = c.load(nm("ffn_norm").c_str(), "<f4", {D});
    npy_array qs = c.load(nm("q_s").c_str(), "<f4", {32}), ks = c.load(nm("k_s").c_str(), "<f4", {8});
    npy_array vs = c.load(nm("v_s").c_str(), "<f4", {8}), as = c.load(nm("a_s").c_str(), "<f4", {32});
    npy_array rs = c.load("rope_sin", "<f4", {1, HALF}), rc = c.load("rope_cos", "<f4", {1, HALF});
    // [K;V] fused: lane b columns 0..31 = K rows 32b.., 32..63 = V rows 32b..
    std::unique_ptr<hbm_linear[]> lin(new hbm_linear[6]);
    {
        npy_array wk = c.load(nm("wk").c_str(), "|i1", {KV, D}), wv = c.load(nm("wv").c_str(), "|i1", {KV, D});
        npy_array wks = c.load(nm("wk_s").c_str(), "<f4", {KV}), wkm = c.load(nm("wk_sum").c_str(), "<f4", {KV});
        npy_array wvs = c.load(nm("wv_s").c_str(), "<f4", {KV}), wvm = c.load(nm("wv_sum").c_str(), "<f4", {KV});
        auto src = [](unsigned o, unsigned *r) { bool k; *r = flx_pack::kv_fused_row(o, &k); return k; };
        pack(lin[0], 1024, D,
             [&](unsigned o) {
                 unsigned r;
                 bool k = src(o, &r);
                 return (const int8_t *)&(k ? wk : wv).data[(size_t)r * D];
             },
             [&](unsigned o) { unsigned r; return src(o, &r) ? wks.f32(r) : wvs.f32(r); },
             [&](unsigned o) { unsigned r; return src(o, &r) ? wkm.f32(r) : wvm.f32(r); });
    }
    pack_plain(c, lin[1], nm("wq").c_str(), D, D);
    pack_plain(c, lin[2], nm("wo").c_str(), D, D);
    pack_plain(c, lin[3], nm("w_gate").c_str(), F, D);
    pack_plain(c, lin[4], nm("w_up").c_str(), F, D);
    pack_plain(c, lin[5], nm("w_down").c_str(), D, F);
    // the HBM images: 16 weight lanes and the s_sum table (layer_decode_map)
    typedef flx_tops::layer_decode_map M;
    std::vector<word> lanes[16];
    std::vector<float> s_sum(M::s_floats);
    for (unsigned b = 0; b < 16; b++) {
        lanes[b].resize(M::lane_words);
        for (unsigned i = 0; i < M::n_lin; i++)
            std::copy(lin[i].lane[b].begin(), lin[i].lane[b].end(), lanes[b].begin() + M::word_base(i));
    }
    for (unsigned i = 0; i < M::n_lin; i++) {
        std::copy(lin[i].ws.begin(), lin[i].ws.end(), s_sum.begin() + M::s_base(i));
        std::copy(lin[i].wsum.begin(), lin[i].wsum.end(), s_sum.begin() + M::s_base(i) + M::n_out(i));
    }
    std::vector<float> att(4 * 32, 0.0f), gamma(2 * D), rope(2 * (size_t)L * HALF, 0.0f);
    for (unsigned h = 0; h < 32; h++) {
        att[h] = qs.f32(h);
        att[96 + h] = as.f32(h);
    }
    for (unsigned h = 0; h < 8; h++) {
        att[32 + h] = ks.f32(h);
        att[64 + h] = vs.f32(h);
    }
    for (unsigned k = 0; k < HALF; k++) {   // only row P is used
        rope[(size_t)P * HALF + k] = rs.f32(k);
        rope[(size_t)L * HALF + (size_t)P * HALF + k] = rc.f32(k);
    }
    for (unsigned i = 0; i < D; i++) {
        gamma[i] = an.f32(i);
        gamma[D + i] = fn.f32(i);
    }
    if (c.exp_flx()) {
        std::vector<word> *w = lanes;
        flx_tops::top_layer_decode(io.data(), gamma.data(), att.data(), rope.data(), w[0].data(), w[1].data(),
                                   w[2].data(), w[3].data(), w[4].data(), w[5].data(), w[6].data(), w[7].data(),
                                   w[8].data(), w[9].data(), w[10].data(), w[11].data(), w[12].data(),
                                   w[13].data(), w[14].data(), w[15].data(), s_sum.data(), kcache.data(),
                                   vcache.data(), P, layer);
    } else {
        flx_tops::dec_ports pt[6];
        for (int i = 0; i < 6; i++) pt[i] = ports(lin[i]);
        std::unique_ptr<ap_int<8>[][512]> k_reg(new ap_int<8>[32][512]);
        const float(*st)[32] = (const float(*)[32])rope.data();
        const float(*ct)[32] = (const float(*)[32])(rope.data() + (size_t)L * HALF);
        flx_hls::decoder_layer_dec<layer_std>(io.data(), io.data() + D, gamma.data(), gamma.data() + D, pt[0],
                                              pt[1], pt[2], pt[3], pt[4], pt[5], att.data(), att.data() + 32,
                                              att.data() + 64, att.data() + 96, st, ct, kcache.data(),
                                              vcache.data(), k_reg.get(), P);
    }
}

// the prefill hand-over: rows 0..P-1 of a [2048][512] cache
static void load_cache(tb_ctx &c, const std::string &name, std::vector<ap_int<8> > &cache, unsigned P)
{
    const unsigned KV = 512;
    npy_array a = c.load(name.c_str(), "|i1", {P, KV});
    cache.assign((size_t)2048 * KV, ap_int<8>(0));
    for (size_t i = 0; i < (size_t)P * KV; i++) cache[i] = (int)a.i8(i);
}

// the token at the manifest's reference.call.pos0 (sets without one: 32)
static void tb_layer_decode(tb_ctx &c)
{
    const unsigned D = 2048, KV = 512;
    const long long pos = c.call("pos0", 32);
    if (pos < 32 || pos % 32 || pos >= 2048)
        throw std::runtime_error("manifest: layer_decode at position " + std::to_string(pos) +
                                 ": the decode top's K-group register is checked from a multiple of 32");
    const unsigned P = (unsigned)pos;
    npy_array x = c.load("x", "<f4", {D});
    std::vector<float> io(2 * D);
    for (unsigned i = 0; i < D; i++) io[i] = x.f32(i);
    std::vector<ap_int<8> > kcache, vcache;
    load_cache(c, "k8_cache", kcache, P);
    load_cache(c, "v8_cache", vcache, P);
    layer_probe pr;
    {
        flx_hls::probe_scope scope(&pr);
        run_dec_layer(c, "", io, kcache, vcache, 0, P);
    }
    std::vector<long long> k_new(KV), v_new(KV);
    for (unsigned d = 0; d < KV; d++) {
        k_new[d] = kcache[(size_t)P * KV + d].to_int();
        v_new[d] = vcache[(size_t)P * KV + d].to_int();
    }
    pr.expect_front(c);
    c.expect_int("k8_new", "|i1", k_new);
    c.expect_int("v8_new", "|i1", v_new);
    pr.expect_back(c);
    c.expect_f32("y", std::vector<float>(io.begin() + D, io.end()));
}

struct head_std : flx_tops::head_sample_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// the tiny whole model: two decode layers, then LN2, lm_head (1024 rows:
// the head top built with FLX_HEAD_VOCAB = 1024, else the vocabulary's shape
// check names the difference), top-5 sampling and the next token's embedding row
static void tb_model_decode(tb_ctx &c)
{
    const unsigned D = 2048, V = flx_tops::head_sample_cfg::vocab;
    npy_array x = c.load("x", "<f4", {D}), on = c.load("out_norm", "<f4", {D}), r = c.load("r", "<f4", {1});
    npy_array voc = c.load("vocab", "<f4", {V, D});
    std::vector<float> io(2 * D);
    for (unsigned i = 0; i < D; i++) io[i] = x.f32(i);
    for (unsigned l = 0; l < 2; l++) {
        std::string pre = "L" + std::to_string(l) + "_";
        std::vector<ap_int<8> > kcache, vcache;
        load_cache(c, pre + "k8_cache", kcache, 32);
        load_cache(c, pre + "v8_cache", vcache, 32);
        run_dec_layer(c, pre, io, kcache, vcache, l, 32);
        std::copy(io.begin() + D, io.end(), io.begin());   // layer output -> next input
    }
    std::vector<float> hidden(io.begin(), io.begin() + D);
    c.expect_f32("hidden", hidden);
    hbm_linear head;
    pack_plain(c, head, "head", V, D);
    std::vector<float> s_sum(head.ws);
    s_sum.insert(s_sum.end(), head.wsum.begin(), head.wsum.end());
    std::vector<float> gamma(D), logits(V), next_x(D), probs(5);
    for (unsigned i = 0; i < D; i++) gamma[i] = on.f32(i);
    int out[6] = {0};
    std::vector<word> *w = head.lane;
    if (c.exp_flx())
        flx_tops::top_head_sample(hidden.data(), gamma.data(), w[0].data(), w[1].data(), w[2].data(), w[3].data(),
                                  w[4].data(), w[5].data(), w[6].data(), w[7].data(), w[8].data(), w[9].data(),
                                  w[10].data(), w[11].data(), w[12].data(), w[13].data(), w[14].data(),
                                  w[15].data(), s_sum.data(), (const float *)&voc.data[0], r.f32(0),
                                  logits.data(), probs.data(), out, next_x.data());
    else
        flx_hls::head_sample_dec<head_std>(hidden.data(), gamma.data(), ports(head),
                                           (const float *)&voc.data[0], r.f32(0), logits.data(), probs.data(),
                                           out, next_x.data());
    c.expect_f32("logits", logits);
    c.expect_int("ids", "<i4", std::vector<long long>(out, out + 5));
    c.expect_f32("probs", probs);
    c.expect_int("token", "<i4", std::vector<long long>(out + 5, out + 6));
    c.expect_f32("next_x", next_x);
}

// ------------------------------------------------------------------ prefill

typedef flx_tops::pref_word pword;
typedef flx_tops::pref_ffn_word fword;

// prefill packing (hw/host/hbm_pack.h, reference-design §1.4): channels N*24 + 2j (low
// nibble), +1 (high) in byte j of word N*k_dim + m; channels past n_out are zero.
// Appends to the byte image img; w: img as the top's words.
static void pack_pref(tb_ctx &c, const char *name, unsigned n_out, unsigned k_dim, std::vector<uint8_t> &img,
                      std::vector<pword> &w, std::vector<float> &s)
{
    std::string n = name;
    npy_array m = c.load(name, "|i1", {n_out, k_dim});
    npy_array ws = c.load((n + "_s").c_str(), "<f4", {n_out}), wm = c.load((n + "_sum").c_str(), "<f4", {n_out});
    flx_pack::pack_pref([&](unsigned ch) { return (const int8_t *)&m.data[(size_t)ch * k_dim]; }, n_out, k_dim,
                        img);
    flx_pack::to_words<pword, flx_pack::pref_word_bytes>(img, w);
    for (unsigned o = 0; o < n_out; o++) s.push_back(ws.f32(o));
    for (unsigned o = 0; o < n_out; o++) s.push_back(wm.f32(o));
}

// an FFN linear over its three ports (hw/host/hbm_pack.h pack_pref_ffn)
static void pack_pref_ffn(tb_ctx &c, const char *name, unsigned n_out, unsigned k_dim, std::vector<fword> w[3],
                          std::vector<float> &s)
{
    std::string n = name;
    npy_array m = c.load(name, "|i1", {n_out, k_dim});
    npy_array ws = c.load((n + "_s").c_str(), "<f4", {n_out}), wm = c.load((n + "_sum").c_str(), "<f4", {n_out});
    std::vector<uint8_t> img[3];
    flx_pack::pack_pref_ffn([&](unsigned ch) { return (const int8_t *)&m.data[(size_t)ch * k_dim]; }, n_out, k_dim,
                            img);
    for (unsigned i = 0; i < 3; i++) flx_pack::to_words<fword, flx_pack::pref_ffn_word_bytes>(img[i], w[i]);
    for (unsigned o = 0; o < n_out; o++) s.push_back(ws.f32(o));
    for (unsigned o = 0; o < n_out; o++) s.push_back(wm.f32(o));
}

struct layer_pref_std : flx_tops::layer_prefill_cfg {
    static const int exp_impl = flx_hls::EXP_STD;
};

// One layer's prefill buffers in the HBM layout of the prefill host packing
struct pref_hbm {
    std::vector<pword> w_kq, w_vo;
    std::vector<fword> w_gate[3], w_up[3], w_down[3];   // three ports each
    std::vector<float> s_kq, s_vo, s_gate, s_up, s_down;
    std::vector<float> att, gamma, rope;   // Q_s K_s V_s A_s ×32; attn, ffn gains; PE_sin then PE_cos
};

// The one place that calls the prefill top (or, for --exp glibc sets, the
// same template with EXP_STD): `rows` rows at positions pos0.. from x into y,
// the caches [2048][512] holding rows 0..pos0-1 of the earlier calls.
// Throws when the top cannot run the call (a chunk of a multiple of 16 rows
// at a multiple of 16: seq_len = pos0 + rows must be whole 16-key K-cache words).
static void run_pref_call(tb_ctx &c, pref_hbm &m, const std::vector<float> &x, std::vector<float> &y,
                          std::vector<ap_int<8> > &kc, std::vector<ap_int<8> > &vc, unsigned pos0, unsigned rows)
{
    const unsigned D = 2048, L = 2048;
    if (rows == 0 || rows % 16 || pos0 % 16 || pos0 + rows > L)
        throw std::runtime_error("top_layer_prefill runs a chunk of a multiple of 16 rows at a position that is a "
                                 "multiple of 16; this set's call has " + std::to_string(rows) +
                                 " rows at position " + std::to_string(pos0));
    std::vector<float> io(2 * (size_t)rows * D);
    std::copy(x.begin(), x.end(), io.begin());
    const fword *g0 = m.w_gate[0].data(), *g1 = m.w_gate[1].data(), *g2 = m.w_gate[2].data();
    const fword *u0 = m.w_up[0].data(), *u1 = m.w_up[1].data(), *u2 = m.w_up[2].data();
    const fword *d0 = m.w_down[0].data(), *d1 = m.w_down[1].data(), *d2 = m.w_down[2].data();
    if (c.exp_flx())
        flx_tops::top_layer_prefill(io.data(), m.gamma.data(), m.att.data(), m.rope.data(), m.w_kq.data(),
                                    m.s_kq.data(), m.w_vo.data(), m.s_vo.data(), g0, g1, g2, m.s_gate.data(), u0,
                                    u1, u2, m.s_up.data(), d0, d1, d2, m.s_down.data(), kc.data(), vc.data(), rows,
                                    pos0);
    else
        flx_hls::decoder_layer_pref<layer_pref_std>(io.data(), m.gamma.data(), m.att.data(), m.rope.data(),
                                                    m.w_kq.data(), m.s_kq.data(), m.w_vo.data(), m.s_vo.data(), g0,
                                                    g1, g2, m.s_gate.data(), u0, u1, u2, m.s_up.data(), d0, d1, d2,
                                                    m.s_down.data(), kc.data(), vc.data(), rows / 8, pos0 / 8);
    std::copy(io.begin() + (size_t)rows * D, io.end(), y.begin());
}

// A prefill call: `flxemu golden --layer prefill [--pos0 P] [--n-tokens T]`.
// The manifest's reference.call gives pos0 and the call's rows (a set
// without one is the first call: 16 rows at 0); the caches are preloaded
// with the set's k8_cache / v8_cache rows 0..pos0-1.
static void tb_layer_prefill(tb_ctx &c)
{
    const unsigned D = 2048, KV = 512, F = 8192, L = 2048, HALF = 32;
    const long long P = c.call("pos0", 0), T = c.call("rows", 16);
    if (P < 0 || T < 1 || P + T > L)
        throw std::runtime_error("manifest: layer_prefill call of " + std::to_string(T) + " rows at " +
                                 std::to_string(P) + " is outside the 2048 positions");
    npy_array x = c.load("x", "<f4", {T, D});
    npy_array an = c.load("attn_norm", "<f4", {D}), fn = c.load("ffn_norm", "<f4", {D});
    npy_array qs = c.load("q_s", "<f4", {32}), ks = c.load("k_s", "<f4", {8});
    npy_array vs = c.load("v_s", "<f4", {8}), as = c.load("a_s", "<f4", {32});
    npy_array rs = c.load("rope_sin", "<f4", {T, HALF}), rc = c.load("rope_cos", "<f4", {T, HALF});
    pref_hbm m;
    {
        std::vector<uint8_t> i_kq, i_vo;
        pack_pref(c, "wk", KV, D, i_kq, m.w_kq, m.s_kq);
        pack_pref(c, "wq", D, D, i_kq, m.w_kq, m.s_kq);
        pack_pref(c, "wv", KV, D, i_vo, m.w_vo, m.s_vo);
        pack_pref(c, "wo", D, D, i_vo, m.w_vo, m.s_vo);
        pack_pref_ffn(c, "w_gate", F, D, m.w_gate, m.s_gate);
        pack_pref_ffn(c, "w_up", F, D, m.w_up, m.s_up);
        pack_pref_ffn(c, "w_down", D, F, m.w_down, m.s_down);
    }
    m.att.assign(128, 0.0f);
    m.gamma.resize(2 * D);
    m.rope.assign(2 * (size_t)L * HALF, 0.0f);
    for (unsigned h = 0; h < 32; h++) {
        m.att[h] = qs.f32(h);
        m.att[96 + h] = as.f32(h);
    }
    for (unsigned h = 0; h < 8; h++) {
        m.att[32 + h] = ks.f32(h);
        m.att[64 + h] = vs.f32(h);
    }
    for (size_t i = 0; i < (size_t)T * HALF; i++) {   // rows P .. P+T-1 of the table
        m.rope[(size_t)P * HALF + i] = rs.f32(i);
        m.rope[(size_t)L * HALF + (size_t)P * HALF + i] = rc.f32(i);
    }
    for (unsigned i = 0; i < D; i++) {
        m.gamma[i] = an.f32(i);
        m.gamma[D + i] = fn.f32(i);
    }
    std::vector<float> xin((size_t)T * D), y((size_t)T * D);
    for (size_t i = 0; i < xin.size(); i++) xin[i] = x.f32(i);
    // the layer's caches: rows below pos0 from the earlier calls
    std::vector<ap_int<8> > kc((size_t)L * KV, ap_int<8>(0)), vc((size_t)L * KV, ap_int<8>(0));
    if (P > 0) {
        npy_array k0 = c.load("k8_cache", "|i1", {P, KV}), v0 = c.load("v8_cache", "|i1", {P, KV});
        for (size_t i = 0; i < (size_t)P * KV; i++) {
            kc[i] = (int)k0.i8(i);
            vc[i] = (int)v0.i8(i);
        }
    }
    layer_probe pr;
    {
        flx_hls::probe_scope scope(&pr);
        run_pref_call(c, m, xin, y, kc, vc, (unsigned)P, (unsigned)T);
    }
    auto rows_of = [&](const std::vector<ap_int<8> > &a, size_t r0, size_t n) {
        std::vector<long long> v(n * KV);
        for (size_t i = 0; i < v.size(); i++) v[i] = a[r0 * KV + i].to_int();
        return v;
    };
    pr.expect_front(c);
    c.expect_int("k8", "|i1", rows_of(kc, P, T));
    c.expect_int("v8", "|i1", rows_of(vc, P, T));
    if (P > 0) {   // the earlier calls' rows are only read
        c.expect_int("k8_cache", "|i1", rows_of(kc, 0, P));
        c.label_last("cache rows below pos0 changed by the call: ");
        c.expect_int("v8_cache", "|i1", rows_of(vc, 0, P));
        c.label_last("cache rows below pos0 changed by the call: ");
    }
    pr.expect_back(c);
    c.expect_f32("y", y);
}

void register_layer(std::vector<tb_entry> &v)
{
    v.push_back({"layer_decode", tb_layer_decode, "flx_tops::top_layer_decode (decoder_layer_dec)"});
    v.push_back({"layer_prefill", tb_layer_prefill, "flx_tops::top_layer_prefill (decoder_layer_pref)"});
    v.push_back({"model_decode", tb_model_decode, "2 x top_layer_decode + top_head_sample"});
}

}  // namespace flx_tb
