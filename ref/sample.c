/* Token sampling: argmax, or temperature softmax over the top-k logits. */
#include "flx_llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t flx_argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

int flx_sampler_init(flx_sampler *sm, int32_t n_vocab, float temperature, int32_t top_k,
                     uint64_t seed, flx_error *err)
{
    memset(sm, 0, sizeof *sm);
    if (n_vocab < 1 || !(temperature >= 0.0f) || !isfinite(temperature))
        return flx_fail(err, FLX_EINVAL, "sampler: need n_vocab >= 1 and a finite temperature >= 0");
    if (top_k <= 0 || top_k > n_vocab) top_k = n_vocab;
    sm->temperature = temperature;
    sm->top_k = top_k;
    sm->n_vocab = n_vocab;
    flx_rng_seed(&sm->rng, seed);
    sm->top_ids = malloc((size_t)top_k * sizeof *sm->top_ids);
    sm->probs = malloc((size_t)top_k * sizeof *sm->probs);
    if (!sm->top_ids || !sm->probs) {
        flx_sampler_free(sm);
        return flx_fail(err, FLX_ENOMEM, "sampler: out of memory for top-%d", top_k);
    }
    return FLX_OK;
}

void flx_sampler_free(flx_sampler *sm)
{
    if (!sm) return;
    free(sm->top_ids);
    free(sm->probs);
    memset(sm, 0, sizeof *sm);
}

/* a ranks before b: larger logit, then lower id (a deterministic order). */
static int ranks_before(const float *x, int32_t a, int32_t b)
{
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}

int32_t flx_sample(flx_sampler *sm, const float *logits)
{
    if (sm->temperature == 0.0f) return flx_argmax(logits, sm->n_vocab);
    int32_t k = sm->top_k, n = 0;
    int32_t *ids = sm->top_ids;
    if (k == sm->n_vocab) {
        for (int32_t i = 0; i < k; i++) ids[i] = i;
        n = k;
    } else {
        /* keep the k best in a sorted array; insertion is cheap because most
         * logits are rejected by the comparison with the current k-th */
        for (int32_t i = 0; i < sm->n_vocab; i++) {
            if (n == k && !ranks_before(logits, i, ids[k - 1])) continue;
            int32_t j = n < k ? n++ : k - 1;
            while (j > 0 && ranks_before(logits, i, ids[j - 1])) {
                ids[j] = ids[j - 1];
                j--;
            }
            ids[j] = i;
        }
    }
    /* softmax of logit / T in double, in id-list order */
    float mx = logits[ids[0]];
    for (int32_t i = 1; i < n; i++) mx = logits[ids[i]] > mx ? logits[ids[i]] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        sm->probs[i] = exp(((double)logits[ids[i]] - mx) / sm->temperature);
        sum += sm->probs[i];
    }
    double u = flx_rng_uniform(&sm->rng) * sum, acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += sm->probs[i];
        if (u < acc) return ids[i];
    }
    return ids[n - 1];   /* u rounded up to the total */
}
