/* The in-memory model: storage ownership, config validation, RoPE frequencies. */
#include "flx_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void *flx_model_alloc(flx_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 16;
        void **p = realloc(m->owned, cap * sizeof *p);
        if (!p) return NULL;
        m->owned = p;
        m->cap_owned = cap;
    }
    /* Only the largest tensors (a 1B model's 1 GB embedding, which is also
     * its tied head) in huge pages: the head GEMM streams all of it for every
     * chunk of logits, while asking for 5 GB of huge pages costs seconds of
     * kernel compaction at load on a machine with a full page cache. */
    void *buf = bytes >= ((size_t)256 << 20) ? flx_alloc_large(bytes) : malloc(bytes ? bytes : 1);
    if (buf) m->owned[m->n_owned++] = buf;
    return buf;
}

int flx_model_release(flx_model *m, const void *p)
{
    if (!p) return 0;
    for (size_t i = 0; i < m->n_owned; i++)
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = m->owned[--m->n_owned];
            return 1;
        }
    return 0;
}

void flx_model_free(flx_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (size_t i = 0; i < m->n_maps; i++) flx_unmap_file(&m->maps[i]);
    free(m->maps);
    flx_tokenizer_free(m->tok);
    free(m->w.layers);
    free(m->w.rope_inv_freq);
    free(m->path);
    memset(m, 0, sizeof *m);
}

int flx_llama_config_validate(const flx_llama_config *c, const char *source, flx_error *err)
{
    /* Upper bounds keep a crafted header from asking for absurd allocations;
     * they are far above any Llama-family model. */
    struct { const char *name; int64_t v, lo, hi; } f[] = {
        {"vocab_size",          c->n_vocab,     1, 1 << 24},
        {"hidden_size",         c->d_model,     1, 1 << 17},
        {"num_hidden_layers",   c->n_layers,    1, 1024},
        {"num_attention_heads", c->n_heads,     1, 4096},
        {"num_key_value_heads", c->n_kv_heads,  1, 4096},
        {"head_dim",            c->head_dim,    2, 4096},
        {"intermediate_size",   c->d_ff,        1, 1 << 20},
        {"max_position_embeddings", c->max_seq_len, 1, 1 << 24},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return flx_fail(err, FLX_EFORMAT, "%s: field %s = %lld is outside [%lld, %lld]",
                            source, f[i].name, (long long)f[i].v, (long long)f[i].lo,
                            (long long)f[i].hi);
    if (c->n_heads % c->n_kv_heads != 0)
        return flx_fail(err, FLX_EFORMAT,
                        "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        source, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return flx_fail(err, FLX_EFORMAT, "%s: head_dim %d must be even for RoPE", source,
                        c->head_dim);
    if (!(c->rms_eps > 0.0f) || !isfinite(c->rms_eps))
        return flx_fail(err, FLX_EFORMAT, "%s: rms_norm_eps %g must be positive", source,
                        (double)c->rms_eps);
    if (!(c->rope_theta > 1.0) || !isfinite(c->rope_theta))
        return flx_fail(err, FLX_EFORMAT, "%s: rope_theta %g must be > 1", source, c->rope_theta);
    if (c->rope_llama3) {
        if (!(c->rope_factor >= 1.0) || !(c->rope_low_freq_factor > 0.0) ||
            !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_max_pos <= 0)
            return flx_fail(err, FLX_EFORMAT,
                            "%s: rope_scaling (llama3) needs factor >= 1, 0 < low_freq_factor < "
                            "high_freq_factor and original_max_position_embeddings > 0",
                            source);
    }
    if (c->bos_id >= c->n_vocab || c->eos_id >= c->n_vocab)
        return flx_fail(err, FLX_EFORMAT, "%s: bos/eos token id outside the vocabulary of %d",
                        source, c->n_vocab);
    return FLX_OK;
}

void flx_llama_rope_inv_freq(const flx_llama_config *c, double *inv_freq)
{
    const double two_pi = 6.283185307179586476925286766559;
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double inv = pow(c->rope_theta, -(2.0 * i) / (double)c->head_dim);
        if (c->rope_llama3) {
            /* HF _compute_llama3_parameters: keep high frequencies, divide low
             * ones by factor, blend linearly in between. */
            double low_wavelen = (double)c->rope_orig_max_pos / c->rope_low_freq_factor;
            double high_wavelen = (double)c->rope_orig_max_pos / c->rope_high_freq_factor;
            double wavelen = two_pi / inv;
            if (wavelen > low_wavelen) {
                inv = inv / c->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = ((double)c->rope_orig_max_pos / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1.0 - smooth) * inv / c->rope_factor + smooth * inv;
            }
        }
        inv_freq[i] = inv;
    }
}
