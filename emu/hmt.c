/* FlexLLM's HMT plug-in, bit-exact (flx_emu_hmt.h, docs/hmt.md). */
#include "flx_emu_hmt.h"
#include "flx_qmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- kernels */

void flx_emu_hmt_key(float *k, const float *m, const float *wk, int64_t d, int64_t h,
                     const flx_emu_fp *fp)
{
    flx_emu_gemv_f32(k, m, wk, h, d, fp);
}

void flx_emu_hmt_recall(float *p, float *q, float *scores, const float *s, const float *wq,
                        const float *kmem, const float *mmem_t, const uint8_t *mask, int64_t d,
                        int64_t h, int64_t n_slots, const flx_emu_fp *fp)
{
    /* Qn = Wq Sn; An = Kmem Qn (one PE dot product per slot) */
    flx_emu_gemv_f32(q, s, wq, h, d, fp);
    flx_emu_gemv_f32(scores, q, kmem, n_slots, h, fp);
    if (mask)
        for (int64_t i = 0; i < n_slots; i++)
            if (!mask[i]) scores[i] = -1e32f;
    /* dec_Softmax over the slots with scale sqrt_HIDDEN_DIM (45.254833f for
     * h = 2048), then Pn = sum_slot An'[slot] Mmem[slot] */
    float scale = (float)sqrt((double)h);
    flx_emu_softmax_block(scores, n_slots, FLX_EMU_HMT_LANES, scale, fp);
    flx_emu_gemv_f32(p, scores, mmem_t, d, n_slots, fp);
}

/* ---------------------------------------------------------------- quirks */

int flx_emu_hmt_quirks_parse(const char *list)
{
    static const struct { const char *name; int bits; } words[] = {
        {"region0", FLX_EMU_HMT_Q_REGION0}, {"unmasked", FLX_EMU_HMT_Q_UNMASKED},
        {"zero-init", FLX_EMU_HMT_Q_ZERO_INIT}, {"zero-sensory", FLX_EMU_HMT_Q_ZERO_SENSORY},
        {"all", FLX_EMU_HMT_Q_ALL}, {"none", 0}};
    int bits = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (strlen(words[i].name) == n && !strncmp(words[i].name, p, n)) found = words[i].bits;
        if (found < 0) return -1;
        bits |= found;
        p += n + (e ? 1 : 0);
    }
    return bits;
}

flx_hmt_flow flx_emu_hmt_flow(int quirks, int final_norm)
{
    /* FlexLLM omits the last segment's trailing P (no effect on any score) */
    flx_hmt_flow f = {final_norm, (quirks & FLX_EMU_HMT_Q_REGION0) != 0,
                      (quirks & FLX_EMU_HMT_Q_ZERO_SENSORY) != 0, 0};
    return f;
}

/* ---------------------------------------------------------------- memory */

static void hm_reset(void *ctx)
{
    flx_emu_hmt_mem *hm = ctx;
    const flx_hmt_params *p = hm->p;
    const size_t n = (size_t)hm->n_slots;
    memset(hm->m, 0, n * (size_t)p->d_model * sizeof(float));
    memset(hm->k, 0, n * (size_t)p->h * sizeof(float));
    memset(hm->filled, 0, n);
}

static int hm_recall(void *ctx, const float *s, float *out, flx_error *err)
{
    (void)err;
    flx_emu_hmt_mem *hm = ctx;
    const flx_hmt_params *p = hm->p;
    const int64_t d = p->d_model, N = hm->n_slots;
    int any = 0;
    for (int64_t i = 0; i < N; i++) any |= hm->filled[i];
    if (!any) {
        /* the first segment: the hardware's Pn buffer starts at zero; HMT
         * intends the learned initial memory */
        if (hm->quirks & FLX_EMU_HMT_Q_ZERO_INIT) memset(out, 0, (size_t)d * sizeof *out);
        else memcpy(out, p->init_mem, (size_t)d * sizeof *out);
        return FLX_OK;
    }
    for (int64_t o = 0; o < d; o++)
        for (int64_t i = 0; i < N; i++)
            hm->mt[o * N + i] = hm->m[i * d + o];
    flx_emu_hmt_recall(out, hm->q, hm->scores, s, p->wq, hm->k, hm->mt,
                       (hm->quirks & FLX_EMU_HMT_Q_UNMASKED) ? NULL : hm->filled, d, p->h, N, &hm->fp);
    return FLX_OK;
}

static int hm_store(void *ctx, int64_t seg, const float *m, flx_error *err)
{
    (void)err;
    flx_emu_hmt_mem *hm = ctx;
    const flx_hmt_params *p = hm->p;
    int slot = (int)(seg % hm->n_slots);
    memcpy(hm->m + (int64_t)slot * p->d_model, m, (size_t)p->d_model * sizeof *m);
    flx_emu_hmt_key(hm->k + (int64_t)slot * p->h, m, p->wk, p->d_model, p->h, &hm->fp);
    hm->filled[slot] = 1;
    return FLX_OK;
}

int flx_emu_hmt_mem_init(flx_emu_hmt_mem *hm, const flx_hmt_params *p, const flx_emu_fp *fp, int quirks,
                         flx_error *err)
{
    memset(hm, 0, sizeof *hm);
    if (p->cache_size < FLX_EMU_HMT_LANES || p->cache_size % FLX_EMU_HMT_LANES)
        return flx_fail(err, FLX_EINVAL, "%s: mem_recall_context %d: the emulated memory ring needs a "
                        "positive multiple of %d slots (dec_Softmax's %d lanes; FlexLLM has 64)", p->path,
                        p->cache_size, FLX_EMU_HMT_LANES, FLX_EMU_HMT_LANES);
    hm->p = p;
    hm->fp = *fp;
    hm->quirks = quirks;
    hm->n_slots = p->cache_size;
    const size_t d = (size_t)p->d_model, h = (size_t)p->h, n = (size_t)hm->n_slots;
    hm->m = malloc(n * d * sizeof(float));
    hm->k = malloc(n * h * sizeof(float));
    hm->q = malloc(h * sizeof(float));
    hm->mt = malloc(n * d * sizeof(float));
    hm->filled = malloc(n);
    hm->scores = malloc(n * sizeof(float));
    if (!hm->m || !hm->k || !hm->q || !hm->mt || !hm->filled || !hm->scores) {
        flx_emu_hmt_mem_free(hm);
        return flx_fail(err, FLX_ENOMEM, "HMT memory: out of memory");
    }
    hm_reset(hm);
    return FLX_OK;
}

void flx_emu_hmt_mem_free(flx_emu_hmt_mem *hm)
{
    if (!hm) return;
    free(hm->m);
    free(hm->k);
    free(hm->q);
    free(hm->mt);
    free(hm->filled);
    free(hm->scores);
    memset(hm, 0, sizeof *hm);
}

flx_hmt_memory flx_emu_hmt_mem_ops(flx_emu_hmt_mem *hm)
{
    flx_hmt_memory ops = {hm, hm_reset, hm_recall, hm_store};
    return ops;
}

/* ---------------------------------------------------------------- backbone */

static int eb_run(void *ctx, const float *x, int64_t n, flx_error *err)
{
    flx_emu_hmt_backbone *eb = ctx;
    if (n > eb->max_rows)
        return flx_fail(err, FLX_EINVAL, "HMT: a run of %lld rows exceeds %lld", (long long)n,
                        (long long)eb->max_rows);
    eb->n_rows = 0;
    int rc = flx_emu_prefill_embd(eb->e, eb->hidden, x, n, eb->pool, err);
    if (!rc) eb->n_rows = n;
    return rc;
}

static int eb_hidden(void *ctx, int64_t row, int final_norm, float *out, flx_error *err)
{
    flx_emu_hmt_backbone *eb = ctx;
    const flx_llama_config *c = &eb->e->qm->cfg;
    const int64_t d = c->d_model;
    if (row < 0 || row >= eb->n_rows)
        return flx_fail(err, FLX_EINVAL, "HMT: hidden row %lld of a %lld-row run", (long long)row,
                        (long long)eb->n_rows);
    if (final_norm)
        flx_emu_rmsnorm_pref(out, eb->hidden + row * d, eb->e->qm->out_norm, 1, d, c->rms_eps,
                             &eb->e->opts.fp);
    else
        memcpy(out, eb->hidden + row * d, (size_t)d * sizeof *out);
    return FLX_OK;
}

static int eb_logits(void *ctx, int64_t row0, int64_t n, float *out, flx_error *err)
{
    flx_emu_hmt_backbone *eb = ctx;
    const int64_t d = eb->e->qm->cfg.d_model;
    if (row0 < 0 || n < 1 || row0 + n > eb->n_rows)
        return flx_fail(err, FLX_EINVAL, "HMT: logits rows %lld..%lld of a %lld-row run", (long long)row0,
                        (long long)(row0 + n - 1), (long long)eb->n_rows);
    return flx_emu_head(eb->e, out, eb->hidden + row0 * d, n, eb->pool, err);
}

int flx_emu_hmt_backbone_init(flx_emu_hmt_backbone *eb, const flx_emu_engine *e, int64_t max_rows,
                              flx_pool *pool, flx_error *err)
{
    memset(eb, 0, sizeof *eb);
    eb->e = e;
    eb->pool = pool;
    eb->max_rows = max_rows;
    const flx_llama_config *c = &e->qm->cfg;
    /* rows per head call as plain ppl's windows (flx_emu_window_logits): at
     * most 128 MiB of logits, whole 32-row GEMM tiles */
    eb->head_rows = ((int64_t)128 << 20) / ((int64_t)c->n_vocab * 4);
    if (eb->head_rows > 32) eb->head_rows &= ~(int64_t)31;
    if (eb->head_rows < 1) eb->head_rows = 1;
    if (eb->head_rows > max_rows) eb->head_rows = max_rows;
    eb->hidden = malloc((size_t)max_rows * (size_t)c->d_model * sizeof(float));
    eb->logits_buf = malloc((size_t)eb->head_rows * (size_t)c->n_vocab * sizeof(float));
    if (!eb->hidden || !eb->logits_buf) {
        flx_emu_hmt_backbone_free(eb);
        return flx_fail(err, FLX_ENOMEM, "HMT: out of memory for %lld rows", (long long)max_rows);
    }
    return FLX_OK;
}

void flx_emu_hmt_backbone_free(flx_emu_hmt_backbone *eb)
{
    if (!eb) return;
    free(eb->hidden);
    free(eb->logits_buf);
    memset(eb, 0, sizeof *eb);
}

flx_hmt_backbone flx_emu_hmt_backbone_ops(flx_emu_hmt_backbone *eb)
{
    const flx_llama_config *c = &eb->e->qm->cfg;
    flx_hmt_backbone b = {eb, c->d_model, c->n_vocab, eb->e->qm->tok_embd, eb->max_rows, eb->head_rows,
                          eb->logits_buf, eb_run, eb_hidden, eb_logits};
    return b;
}
