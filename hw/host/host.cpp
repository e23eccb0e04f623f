// host.cpp -- the generate flow of the host program, the same for every
// backend: FlexLLM's host flow (reference-design §3.3) as flx_emu_generate
// runs it: prefill of the prompt but its last token (padded with zero rows
// to a multiple of 16; one top_layer_prefill per layer over all of it, or
// per chunk at pos0 = 0, chunk, ... with the layers' K/V caches keeping the
// earlier chunks' rows), the K/V rows of the prompt handed to the decode caches, then one decode step per new token
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
              uint64_t seed, std::vector<int32_t> &out, unsigned prefill_chunk)
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
    if (prefill_chunk % S::pref_align)
        throw fail("generate: prefill chunk %lld: not a multiple of %lld rows", prefill_chunk, S::pref_align);
    const unsigned L = m.n_layers, KV = S::kv_dim, D = S::d, A = S::pref_align;
    const size_t n_pad = (n + A - 1) / A * A;   // <= max_len: checked above
    const size_t chunk = prefill_chunk && prefill_chunk < n_pad ? prefill_chunk : n_pad;
    std::vector<std::vector<int8_t> > k(L), v(L);
    if (n > 0) {
        dev.prefill_load(m, (unsigned)chunk);
        std::vector<float> x(chunk * D);
        for (size_t pos0 = 0; pos0 < n_pad; pos0 += chunk) {
            const size_t rows = std::min(chunk, n_pad - pos0);
            std::fill(x.begin(), x.end(), 0.0f);
            for (size_t t = pos0; t < n && t < pos0 + rows; t++)
                memcpy(&x[(t - pos0) * D], &m.vocab_lib[(size_t)prompt[t] * D], D * sizeof(float));
            dev.prefill_input(x.data(), (unsigned)rows);
            for (unsigned l = 0; l < L; l++) dev.prefill_layer(l, (unsigned)rows, (unsigned)pos0);
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
