// host.cpp -- the generate flow of the host program, the same for every
// backend: FlexLLM's host flow (reference-design §3.3) as flx_emu_generate
// runs it: prefill of the prompt but its last token (padded with zero rows
// to a multiple of 16, in calls of 16 rows at pos0 = 0, 16, ...: per call
// one top_layer_prefill per layer, the layers' K/V caches keeping the earlier
// calls' rows), the K/V rows of the prompt handed to the decode caches, then one decode step per new token
// (top_layer_decode per layer, top_head_sample with a threshold r drawn
// from the seed), stopping after EOS.
#include "flx_host.h"

#include "flx_core.h"

#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <stdexcept>

namespace flx_host {

static std::runtime_error fail(const char *fmt, long long a, long long b = 0)
{
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    return std::runtime_error(buf);
}

void generate(backend &dev, const model_image &m, const std::vector<int32_t> &prompt, unsigned n_new,
              uint64_t seed, std::vector<int32_t> &out)
{
    typedef shape S;
    if (prompt.empty()) throw std::runtime_error("generate: empty prompt");
    const size_t n = prompt.size() - 1;   // prefill rows; decode starts from the last prompt token
    if (prompt.size() + n_new > S::max_len)
        throw fail("generate: %lld prompt + %lld new tokens exceed the decode caches' 2048 positions",
                   (long long)prompt.size(), n_new);
    for (size_t i = 0; i < prompt.size(); i++)
        if (prompt[i] < 0 || prompt[i] >= (int32_t)m.n_vocab)
            throw fail("generate: prompt token %lld is %lld, outside the vocabulary", (long long)i, prompt[i]);
    const unsigned L = m.n_layers, KV = S::kv_dim, D = S::d, T = S::pref_tokens;
    std::vector<std::vector<int8_t> > k(L), v(L);
    if (n > 0) {
        dev.prefill_load(m);
        std::vector<float> x((size_t)T * D);
        for (size_t pos0 = 0; pos0 < n; pos0 += T) {   // n + padding <= max_len: checked above
            std::fill(x.begin(), x.end(), 0.0f);
            for (size_t t = pos0; t < n && t < pos0 + T; t++)
                memcpy(&x[(t - pos0) * D], &m.vocab_lib[(size_t)prompt[t] * D], D * sizeof(float));
            dev.prefill_input(x.data());
            for (unsigned l = 0; l < L; l++) dev.prefill_layer(l, (unsigned)pos0);
        }
        for (unsigned l = 0; l < L; l++) {
            k[l].resize(n * KV);
            v[l].resize(n * KV);
            dev.prefill_caches(l, k[l].data(), v[l].data(), (unsigned)n);
        }
    }
    dev.decode_load(m);
    for (unsigned l = 0; l < L && n > 0; l++) dev.decode_caches(l, k[l].data(), v[l].data(), (unsigned)n);
    dev.decode_input(&m.vocab_lib[(size_t)prompt[n] * D]);
    flx_rng rng;
    flx_rng_seed(&rng, seed);
    for (unsigned step = 0; step < n_new; step++) {
        const unsigned pos = (unsigned)(n + step);
        for (unsigned l = 0; l < L; l++) dev.decode_layer(l, pos);
        float r = (float)flx_rng_uniform(&rng);
        int ids[6];
        dev.decode_head(r, ids);
        const int32_t token = ids[5];
        if (token < 0 || token >= (int32_t)S::vocab)
            throw fail("generate: step %lld: the sampler returned token %lld", step, token);
        out.push_back(token);
        if (token == m.eos) break;
        // a padded vocabulary row has no embedding: flxemu stops there too
        if (token >= (int32_t)m.n_vocab && step + 1 < n_new)
            throw fail("generate: step %lld sampled padded vocabulary row %lld (its logit is 0 on the "
                       "hardware): no token to continue with", step, token);
    }
}

}  // namespace flx_host
