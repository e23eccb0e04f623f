/* KL divergence against a saved base run, in llama.cpp's 16-bit
 * log-probability record format (flx_ppl.h, docs/ppl.md, KL divergence). */
#include "flx_ppl.h"
#include "llama_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KLD_MAGIC "_logits_"
#define KLD_HEADER_BYTES 20   /* magic + n_ctx + n_vocab + n_chunk */

int64_t flx_kld_record_u16(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

void flx_kld_record_make(const float *logits, int64_t n_vocab, uint16_t *rec)
{
    float max_l = logits[0], min_l = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) {
        max_l = logits[i] > max_l ? logits[i] : max_l;
        min_l = logits[i] < min_l ? logits[i] : min_l;
    }
    /* only a 16-nat window below the maximum is kept */
    if (min_l < max_l - 16.0f) min_l = max_l - 16.0f;
    double sum_exp = flx_exp_shift_sum(NULL, logits, n_vocab, max_l);
    float log_sum_exp = (float)log(sum_exp);
    float min_log_prob = min_l - max_l - log_sum_exp;
    float scale = (max_l - min_l) / 65535.0f;
    memcpy(rec, &scale, sizeof scale);
    memcpy(rec + 2, &min_log_prob, sizeof min_log_prob);
    uint16_t *q = rec + 4;
    for (int64_t i = 0; i < n_vocab; i++) {
        long v = scale > 0.0f ? lrintf((logits[i] - min_l) / scale) : 0;
        q[i] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
    }
    if (n_vocab % 2) q[n_vocab] = 0;   /* padding to an even count */
}

int flx_kld_base_open(flx_kld_base *b, const char *path, flx_error *err)
{
    memset(b, 0, sizeof *b);
    int rc = flx_map_file(&b->file, path, err);
    if (rc) return rc;
    const uint8_t *d = b->file.data;
    size_t bytes = b->file.bytes;
    if (bytes < KLD_HEADER_BYTES || memcmp(d, KLD_MAGIC, 8) != 0) {
        flx_kld_base_close(b);
        return flx_fail(err, FLX_EFORMAT, "%s: not a logits base file (magic \"_logits_\" missing at offset 0)",
                        path);
    }
    memcpy(&b->n_ctx, d + 8, 4);
    memcpy(&b->n_vocab, d + 12, 4);
    memcpy(&b->n_chunk, d + 16, 4);
    const char *bad = b->n_ctx < 2 ? "n_ctx (offset 8)" : b->n_vocab < 1 ? "n_vocab (offset 12)"
                    : b->n_chunk < 1 ? "n_chunk (offset 16)" : NULL;
    /* every message below reads fields of b: format it before closing b */
    if (bad) {
        rc = flx_fail(err, FLX_EFORMAT, "%s: header field %s must be positive", path, bad);
        flx_kld_base_close(b);
        return rc;
    }
    size_t n_tok, tok_bytes, head;
    if (flx_size_mul((size_t)b->n_chunk, (size_t)b->n_ctx, &n_tok) ||
        flx_size_mul(n_tok, 4, &tok_bytes) || flx_size_add(tok_bytes, KLD_HEADER_BYTES, &head) ||
        head > bytes) {
        rc = flx_fail(err, FLX_EFORMAT,
                      "%s: %d chunks of %d tokens do not fit in the file (%zu bytes)", path,
                      b->n_chunk, b->n_ctx, bytes);
        flx_kld_base_close(b);
        return rc;
    }
    size_t rec_bytes = (size_t)flx_kld_record_u16(b->n_vocab) * 2, per_chunk;
    int64_t n_hf = b->n_ctx - 1, n_lc = b->n_ctx - 1 - b->n_ctx / 2;
    size_t rest = bytes - head;
    if (flx_size_mul(rec_bytes, (size_t)b->n_chunk, &per_chunk) || rest % per_chunk != 0 ||
        (rest / per_chunk != (size_t)n_hf && rest / per_chunk != (size_t)n_lc)) {
        rc = flx_fail(err, FLX_EFORMAT,
                      "%s: %zu bytes of records after offset %zu are not %d chunks of %lld (hf) or "
                      "%lld (llamacpp) records of %zu bytes",
                      path, rest, head, b->n_chunk, (long long)n_hf, (long long)n_lc, rec_bytes);
        flx_kld_base_close(b);
        return rc;
    }
    b->n_scored = (int64_t)(rest / per_chunk);
    b->protocol = b->n_scored == n_hf ? FLX_PPL_HF : FLX_PPL_LLAMACPP;
    b->tokens = (const int32_t *)(d + KLD_HEADER_BYTES);   /* 4-aligned in a page-aligned map */
    b->records = d + head;
    return FLX_OK;
}

void flx_kld_base_close(flx_kld_base *b)
{
    if (!b) return;
    flx_unmap_file(&b->file);
    memset(b, 0, sizeof *b);
}

const uint16_t *flx_kld_base_record(const flx_kld_base *b, int64_t chunk, int64_t r)
{
    size_t rec_bytes = (size_t)flx_kld_record_u16(b->n_vocab) * 2;
    return (const uint16_t *)(b->records + ((size_t)chunk * (size_t)b->n_scored + (size_t)r) * rec_bytes);
}

void flx_kld_token_eval(const float *logits, int64_t n_vocab, const uint16_t *rec, int32_t target,
                        flx_kld_token *out)
{
    float max_l = logits[0];
    int64_t imax = 0;
    for (int64_t i = 1; i < n_vocab; i++)
        if (logits[i] > max_l) { max_l = logits[i]; imax = i; }
    double sum_exp = flx_exp_shift_sum(NULL, logits, n_vocab, max_l);
    double lse = (double)max_l + log(sum_exp);        /* log p(i) = l_i - lse */
    float scale, min_log_prob;
    memcpy(&scale, rec, sizeof scale);
    memcpy(&min_log_prob, rec + 2, sizeof min_log_prob);
    const uint16_t *q = rec + 4;
    out->nll = lse - (double)logits[target];
    out->nll_base = -((double)scale * q[target] + (double)min_log_prob);
    double kld = 0.0, best = 0.0;
    int64_t imax_base = 0;
    for (int64_t i = 0; i < n_vocab; i++) {
        double lp_base = (double)scale * q[i] + (double)min_log_prob;
        if (i == 0 || lp_base > best) { best = lp_base; imax_base = i; }
        if (lp_base > -16.0) kld += exp(lp_base) * (lp_base - ((double)logits[i] - lse));
    }
    out->kld = kld;
    out->same_top = imax == imax_base;
    out->dp = exp(-out->nll) - exp(-out->nll_base);
}

int flx_kld_stats_add(flx_kld_stats *st, const flx_kld_token *t)
{
    if (st->count == st->capacity) {
        int64_t cap = st->capacity ? 2 * st->capacity : 4096;
        float *v = realloc(st->kld_values, (size_t)cap * sizeof *v);
        if (!v) return FLX_ENOMEM;
        st->kld_values = v;
        st->capacity = cap;
    }
    st->kld_values[st->count++] = (float)t->kld;
    st->sum_nll += t->nll;
    st->sum_nll2 += t->nll * t->nll;
    st->sum_nll_base += t->nll_base;
    st->sum_nll_base2 += t->nll_base * t->nll_base;
    st->sum_nll_nll_base += t->nll * t->nll_base;
    st->sum_kld += t->kld;
    st->sum_kld2 += t->kld * t->kld;
    st->n_same_top += t->same_top;
    st->sum_dp += t->dp;
    st->sum_dp2 += t->dp * t->dp;
    return FLX_OK;
}

void flx_kld_stats_free(flx_kld_stats *st)
{
    if (!st) return;
    free(st->kld_values);
    memset(st, 0, sizeof *st);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void flx_kld_summarize(flx_kld_stats *st, flx_kld_summary *o)
{
    memset(o, 0, sizeof *o);
    int64_t n = st->count;
    if (n < 1) return;
    flx_mean_unc lq = flx_mean_and_uncertainty(st->sum_nll, st->sum_nll2, n);
    flx_mean_unc lb = flx_mean_and_uncertainty(st->sum_nll_base, st->sum_nll_base2, n);
    /* covariance of the two per-token NLLs, divided by n - 1 like the means' variances */
    double cov = n < 10 ? 0.0
                        : (st->sum_nll_nll_base / n - (st->sum_nll / n) * (st->sum_nll_base / n)) /
                              (double)(n - 1);
    o->ppl = (flx_mean_unc){exp(lq.mean), exp(lq.mean) * lq.unc};
    o->ppl_base = (flx_mean_unc){exp(lb.mean), exp(lb.mean) * lb.unc};
    o->cor = lq.unc > 0 && lb.unc > 0 ? cov / (lq.unc * lb.unc) : 0.0;
    double lr_var = lq.unc * lq.unc + lb.unc * lb.unc - 2.0 * cov;
    o->log_ratio = (flx_mean_unc){lq.mean - lb.mean, lr_var > 0 ? sqrt(lr_var) : 0.0};
    o->ratio = (flx_mean_unc){exp(o->log_ratio.mean), exp(o->log_ratio.mean) * o->log_ratio.unc};
    o->kld = flx_mean_and_uncertainty(st->sum_kld, st->sum_kld2, n);
    double p = (double)st->n_same_top / (double)n;
    o->same_top = (flx_mean_unc){p, n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : 0.0};
    o->dp = flx_mean_and_uncertainty(st->sum_dp, st->sum_dp2, n);
    qsort(st->kld_values, (size_t)n, sizeof(float), cmp_float);
    const float *v = st->kld_values;
    o->kld_min = v[0];
    o->kld_max = v[n - 1];
    o->kld_median = v[(n - 1) / 2];
    o->kld_p90 = v[(int64_t)((double)(n - 1) * 0.90)];
    o->kld_p99 = v[(int64_t)((double)(n - 1) * 0.99)];
}
