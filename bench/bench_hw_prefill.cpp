// bench_hw_prefill.cpp -- C-simulation time of the prefill layer top
// (top_layer_prefill, hw/kernels/layer_pref.h) over a prompt of N rows in
// one call, and, with --chunk C, the same prompt in calls of C rows at
// pos0 = 0, C, 2C, ...: the layer output and the K/V caches of both must be
// identical bit for bit (exit 1 otherwise).  Seeded random INT4 weights
// with the U280 layer shape, layer-0 attention scales of the reference,
// RoPE base 10000, inputs uniform in [-2, 2).  Results: bench/README.md
// ("HLS C simulation of whole layers").
//   bench_hw_prefill [--tokens N] [--chunk C] [--seed S]
#include "../hw/host/hbm_pack.h"
#include "../hw/tops/flx_tops_layer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

typedef flx_tops::pref_word pword;
typedef flx_tops::pref_ffn_word fword;
const unsigned D = 2048, KV = 512, F = 8192, MAXP = 2048;

uint64_t rng_state;
double uniform()
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

struct linear {
    std::vector<int8_t> w;   // [n_out][k_dim]
    std::vector<float> s;    // ws then wsum
    unsigned n_out, k_dim;
    linear(unsigned o, unsigned k) : w((size_t)o * k), n_out(o), k_dim(k)
    {
        for (auto &v : w) v = (int8_t)((int)(uniform() * 16.0) - 8);
        for (unsigned i = 0; i < o; i++) s.push_back((float)(0.002 + 0.002 * uniform()));
        for (unsigned i = 0; i < o; i++) {
            long sum = 0;
            for (unsigned k2 = 0; k2 < k; k2++) sum += w[(size_t)i * k + k2];
            s.push_back((float)sum * s[i]);
        }
    }
    const int8_t *operator()(unsigned o) const { return &w[(size_t)o * k_dim]; }
};

struct layer {
    std::vector<float> gamma, att, rope, s_kq, s_vo;
    std::vector<pword> w_kq, w_vo;
    std::vector<fword> gate[3], up[3], down[3];
    const float *s_gate, *s_up, *s_down;
    linear lg, lu, ld;
    layer() : lg(F, D), lu(F, D), ld(D, F)
    {
        gamma.assign(2 * D, 1.0f);
        att.assign(128, 0.0f);
        for (unsigned h = 0; h < 32; h++) {
            att[h] = 0.0175285172f;
            att[96 + h] = 0.00318154902f;
        }
        for (unsigned h = 0; h < 8; h++) {
            att[32 + h] = 0.106267393f;
            att[64 + h] = 0.00409434037f;
        }
        rope.assign(2 * (size_t)MAXP * 32, 0.0f);
        for (unsigned p = 0; p < MAXP; p++)
            for (unsigned k = 0; k < 32; k++) {
                double a = p * std::pow(10000.0, -2.0 * k / 64.0);
                rope[(size_t)p * 32 + k] = (float)std::sin(a);
                rope[(size_t)MAXP * 32 + (size_t)p * 32 + k] = (float)std::cos(a);
            }
        std::vector<uint8_t> img;
        linear k(KV, D), q(D, D), v(KV, D), o(D, D);
        flx_pack::pack_pref(k, KV, D, img);
        flx_pack::pack_pref(q, D, D, img);
        flx_pack::to_words<pword, flx_pack::pref_word_bytes>(img, w_kq);
        img.clear();
        flx_pack::pack_pref(v, KV, D, img);
        flx_pack::pack_pref(o, D, D, img);
        flx_pack::to_words<pword, flx_pack::pref_word_bytes>(img, w_vo);
        s_kq = k.s;
        s_kq.insert(s_kq.end(), q.s.begin(), q.s.end());
        s_vo = v.s;
        s_vo.insert(s_vo.end(), o.s.begin(), o.s.end());
        std::vector<uint8_t> ports[3];
        const linear *ffn[3] = {&lg, &lu, &ld};
        std::vector<fword> *dst[3] = {gate, up, down};
        for (int m = 0; m < 3; m++) {
            flx_pack::pack_pref_ffn(*ffn[m], ffn[m]->n_out, ffn[m]->k_dim, ports);
            for (int i = 0; i < 3; i++) flx_pack::to_words<fword, flx_pack::pref_ffn_word_bytes>(ports[i], dst[m][i]);
        }
        s_gate = lg.s.data();
        s_up = lu.s.data();
        s_down = ld.s.data();
    }
    // one call over rows x [rows][D] at pos0; y [rows][D]
    void run(const float *x, float *y, unsigned rows, unsigned pos0, ap_int<8> *kc, ap_int<8> *vc) const
    {
        std::vector<float> io(2 * (size_t)rows * D);
        std::memcpy(io.data(), x, (size_t)rows * D * sizeof(float));
        flx_tops::top_layer_prefill(io.data(), gamma.data(), att.data(), rope.data(), w_kq.data(), s_kq.data(),
                                    w_vo.data(), s_vo.data(), gate[0].data(), gate[1].data(), gate[2].data(), s_gate,
                                    up[0].data(), up[1].data(), up[2].data(), s_up, down[0].data(), down[1].data(),
                                    down[2].data(), s_down, kc, vc, rows, pos0);
        std::memcpy(y, io.data() + (size_t)rows * D, (size_t)rows * D * sizeof(float));
    }
};

double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int usage()
{
    std::fprintf(stderr, "usage: bench_hw_prefill [--tokens N] [--chunk C] [--seed S]\n"
                         "  N, C: multiples of 16, N <= 2048 (default N 16, no chunked run); S default 1\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv)
{
    unsigned n = 16, chunk = 0;
    unsigned long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        char *end;
        unsigned long v = std::strtoul(argv[i + 1], &end, 10);
        if (*end || !*argv[i + 1]) return usage();
        if (!std::strcmp(argv[i], "--tokens")) n = (unsigned)v;
        else if (!std::strcmp(argv[i], "--chunk")) chunk = (unsigned)v;
        else if (!std::strcmp(argv[i], "--seed")) seed = v;
        else return usage();
        i++;
    }
    if (n == 0 || n % 16 || n > MAXP || chunk % 16 || chunk > n) return usage();
    rng_state = seed;
    double t0 = now();
    layer L;
    std::vector<float> x((size_t)n * D), y1((size_t)n * D), y2((size_t)n * D);
    for (auto &v : x) v = (float)(uniform() * 4.0 - 2.0);
    std::printf("bench_hw_prefill: %s build, weights packed in %.2f s\n", FLX_HLS_SHIM ? "shim" : "AMD ap_int",
                now() - t0);
    std::vector<ap_int<8> > k1((size_t)n * KV), v1((size_t)n * KV), k2((size_t)n * KV), v2((size_t)n * KV);
    t0 = now();
    L.run(x.data(), y1.data(), n, 0, k1.data(), v1.data());
    std::printf("one call, %u rows: %.2f s\n", n, now() - t0);
    if (!chunk) return 0;
    t0 = now();
    for (unsigned p = 0; p < n; p += chunk) {
        const unsigned rows = n - p < chunk ? n - p : chunk;
        L.run(&x[(size_t)p * D], &y2[(size_t)p * D], rows, p, k2.data(), v2.data());
    }
    std::printf("%u calls of %u rows: %.2f s\n", (n + chunk - 1) / chunk, chunk, now() - t0);
    size_t bad = 0;
    for (size_t i = 0; i < y1.size(); i++) bad += std::memcmp(&y1[i], &y2[i], 4) != 0;
    for (size_t i = 0; i < k1.size(); i++) bad += k1[i] != k2[i] || v1[i] != v2[i];
    std::printf("chunked vs one call: %s (%zu of %zu values differ)\n", bad ? "DIFFERENT" : "identical", bad,
                y1.size() + 2 * k1.size());
    return bad ? 1 : 0;
}
