/* HMT float reference: the segment flow against an independent hand
 * computation (plain forward passes on hand-built sequences and the recall in
 * double), the cache bound, thread invariance, and the parameter file. */
#include "flx_hmt.h"
#include "flx_ppl.h"
#include "flx_safetensors.h"
#include "flx_synth.h"
#include "test_util.h"

#include <math.h>

enum { SEGLEN = 12, SENS = 4, NSEG = 4 };

static flx_model model;
static flx_hmt_params hp;

static void setup(int cache)
{
    flx_error err = {0};
    flx_llama_config cfg;
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    memset(&model, 0, sizeof model);
    cr_assert_eq(flx_synth_build(&model, &cfg, 7, &err), FLX_OK, "%s", err.msg);
    flx_hmt_settings s;
    flx_hmt_settings_unset(&s);
    s.segment_length = SEGLEN + 2 + SENS;
    s.n_sensory = SENS;
    s.cache_size = cache;
    /* h != d on purpose: the recall's two widths must not be confused */
    cr_assert_eq(flx_hmt_synth(&hp, cfg.d_model, 48, &s, 5, &err), FLX_OK, "%s", err.msg);
    /* larger memory tokens and cross-attention weights than the defaults, so
     * the softmax over memories is far from uniform */
    for (int i = 0; i < hp.h * hp.d_model; i++) {
        hp.wq[i] *= 8.0f;
        hp.wk[i] *= 8.0f;
    }
    cr_assert_eq(hp.seg_len, SEGLEN);
    cr_assert_eq(hp.sum_len, SEGLEN / 2);
}

static void teardown(void)
{
    flx_hmt_free(&hp);
    flx_model_free(&model);
}

/* One plain forward of the given rows: the final normed hidden state of
 * row `row` into h (d), and the logits of rows r0 .. r0+n-1 into lg. */
static void plain_run(const float *x, int64_t n, int64_t row, float *h, int64_t r0, int64_t nl, float *lg)
{
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 1, .max_tokens = n, .max_ctx = n};
    cr_assert_eq(flx_llama_init(&s, &model, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward_embd(&s, x, n, &err), FLX_OK, "%s", err.msg);
    if (h) memcpy(h, s.xn + row * model.cfg.d_model, (size_t)model.cfg.d_model * sizeof *h);
    if (lg) cr_assert_eq(flx_llama_logits(&s, r0, nl, lg, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&s);
}

typedef struct {
    float *lg;      /* [NSEG][SEGLEN][n_vocab] */
    int64_t n_vocab;
} capture;

static int capture_logits(void *ctx, int64_t seg, int64_t j0, int64_t n, const float *logits)
{
    capture *c = ctx;
    memcpy(c->lg + ((size_t)seg * SEGLEN + (size_t)j0) * (size_t)c->n_vocab, logits,
           (size_t)(n * c->n_vocab) * sizeof *logits);
    return 0;
}

static void put(float *x, int64_t row, const float *v, int64_t d)
{
    memcpy(x + row * d, v, (size_t)d * sizeof *v);
}

/* the float HMT flow (backbone + memory) on the fixture's model and parameters */
typedef struct float_flow {
    flx_hmt_float_backbone fb;
    flx_hmt_float_memory *fm;
    flx_hmt_backbone bb;
    flx_hmt_memory mem;
} float_flow;

static void float_flow_open(float_flow *f, int n_threads)
{
    flx_error err = {0};
    flx_llama_opts lo = {.n_threads = n_threads};
    cr_assert_eq(flx_hmt_float_backbone_init(&f->fb, &model, &lo, flx_hmt_stage1_rows(&hp), &err), FLX_OK,
                 "%s", err.msg);
    cr_assert_eq(flx_hmt_float_memory_new(&f->fm, &hp, &err), FLX_OK, "%s", err.msg);
    f->bb = flx_hmt_float_backbone_ops(&f->fb);
    f->mem = flx_hmt_float_memory_ops(f->fm);
}

static void float_flow_close(float_flow *f)
{
    flx_hmt_float_memory_free(f->fm);
    flx_hmt_float_backbone_free(&f->fb);
}

/* The flow of four segments with a cache of two memories, recomputed by
 * hand: each stage a plain forward of a hand-built sequence, the recall in
 * double over the cached memories only. */
Test(hmt, flow_equals_hand_computation)
{
    setup(2);
    const int64_t d = model.cfg.d_model, V = model.cfg.n_vocab, h = hp.h;
    int32_t tok[NSEG * SEGLEN];
    for (int i = 0; i < NSEG * SEGLEN; i++) tok[i] = (int32_t)((i * 37 + 11) % 250);
    flx_error err = {0};
    float_flow ff;
    float_flow_open(&ff, 1);
    flx_hmt_flow flow = {1, 0, 0, 1};
    flx_hmt_trace tr = {calloc(NSEG * d, 4), calloc(NSEG * d, 4), calloc(NSEG * d, 4), 0};
    capture cap = {malloc((size_t)NSEG * SEGLEN * V * 4), V};
    cr_assert_eq(flx_hmt_context(&hp, &flow, &ff.bb, &ff.mem, tok, NSEG * SEGLEN, capture_logits, &cap, &tr, &err),
                 FLX_OK, "%s", err.msg);
    /* rows: 3 summaries of 6 + 2, stage 1 of 1+12+1 then 3 x (1+4+12+1) */
    cr_assert_eq(tr.rows, 3 * 8 + 14 + 3 * 18);

    float *x = malloc((size_t)(SEGLEN + SENS + 2) * d * 4), *M = calloc(NSEG * d, 4);
    float *P = malloc((size_t)d * 4), *S = malloc((size_t)d * 4), *lg = malloc((size_t)SEGLEN * V * 4);
    const float *E = model.w.tok_embd;
    for (int n = 0; n < NSEG; n++) {
        const int32_t *seg = tok + n * SEGLEN;
        if (n == 0) {
            memcpy(P, hp.init_mem, (size_t)d * 4);   /* empty cache: memory_cell.memory */
        } else {
            /* summary: [T, first 6 tokens, T], S = final hidden at the second T */
            put(x, 0, hp.mem, d);
            for (int i = 0; i < SEGLEN / 2; i++) put(x, 1 + i, E + (size_t)seg[i] * d, d);
            put(x, 1 + SEGLEN / 2, hp.mem, d);
            plain_run(x, SEGLEN / 2 + 2, SEGLEN / 2 + 1, S, 0, 0, NULL);
            for (int i = 0; i < d; i++) cr_assert_eq(S[i], tr.s[n * d + i], "S%d[%d]", n, i);
            /* recall over the last two memories (cache of 2) */
            int first = n - 2 < 0 ? 0 : n - 2;
            double q[64], sc[2], mx = -1e300, sum = 0;
            cr_assert(h <= 64);
            for (int j = 0; j < h; j++) {
                q[j] = 0;
                for (int i = 0; i < d; i++) q[j] += (double)hp.wq[j * d + i] * S[i];
            }
            for (int e = first; e < n; e++) {
                double a = 0;
                for (int j = 0; j < h; j++) {
                    double k = 0;
                    for (int i = 0; i < d; i++) k += (double)hp.wk[j * d + i] * M[e * d + i];
                    a += q[j] * (double)(float)k;
                }
                sc[e - first] = a / sqrt((double)h);
                mx = fmax(mx, sc[e - first]);
            }
            for (int e = 0; e < n - first; e++) sum += (sc[e] = exp(sc[e] - mx));
            for (int i = 0; i < d; i++) {
                double acc = 0;
                for (int e = first; e < n; e++) acc += sc[e - first] / sum * M[e * d + i];
                P[i] = (float)acc;
            }
            if (n == 1)   /* one memory: the recall is that memory, exactly */
                for (int i = 0; i < d; i++) cr_assert_eq(P[i], M[i]);
            if (n == 3)   /* the weights of the two memories are far from equal */
                cr_assert(fabs(sc[0] / sum - 0.5) > 0.02, "weights %g %g", sc[0] / sum, sc[1] / sum);
        }
        for (int i = 0; i < d; i++)
            cr_assert(fabsf(P[i] - tr.p[n * d + i]) <= 1e-6f * (1.0f + fabsf(P[i])),
                      "P%d[%d]: hand %.9g, flow %.9g", n, i, P[i], tr.p[n * d + i]);
        /* main pass: [P, 4 sensory tokens of segment n-1 (none for n = 0), segment, P] */
        int r = 0;
        put(x, r++, P, d);
        for (int i = 0; n > 0 && i < SENS; i++) put(x, r++, E + (size_t)tok[n * SEGLEN - SENS + i] * d, d);
        int row0 = r;
        for (int i = 0; i < SEGLEN; i++) put(x, r++, E + (size_t)seg[i] * d, d);
        put(x, r++, P, d);
        plain_run(x, r, r - 1, M + n * d, row0, SEGLEN, lg);
        if (n < NSEG - 1)
            for (int i = 0; i < d; i++) cr_assert_eq(M[n * d + i], tr.m[n * d + i], "M%d[%d]", n, i);
        for (int64_t i = 0; i < SEGLEN * V; i++)
            cr_assert(fabsf(lg[i] - cap.lg[(size_t)n * SEGLEN * V + i]) <= 1e-4f,
                      "segment %d logit %lld: hand %g, flow %g", n, (long long)i, lg[i],
                      cap.lg[(size_t)n * SEGLEN * V + i]);
    }
    free(x); free(M); free(P); free(S); free(lg); free(cap.lg);
    free(tr.p); free(tr.s); free(tr.m);
    float_flow_close(&ff);
    teardown();
}

/* HMT ppl, disjoint contexts (--hmt-eval contexts): scored tokens and segment counts, the
 * same results for 1 and 2 threads, and memory use independent of the
 * context length (the state is sized by one segment). */
Test(hmt, ppl_protocol_and_threads)
{
    setup(64);
    const int64_t N = 40 * SEGLEN + 5;
    int32_t *tok = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919 + 3) % 256);
    flx_hmt_ppl_result r[2];
    for (int t = 0; t < 2; t++) {
        flx_error err = {0};
        float_flow ff;
        float_flow_open(&ff, t + 1);
        flx_hmt_ppl_opts o = {.n_segments = 5, .baseline_ctx = flx_hmt_stage1_rows(&hp),
                              .flow = {1, 0, 0, 1}, .pool = ff.fb.st.pool, .eval = FLX_HMT_EVAL_CONTEXTS};
        cr_assert_eq(flx_hmt_ppl_run(&hp, &ff.bb, &ff.mem, tok, N, &o, &r[t], &err), FLX_OK, "%s", err.msg);
        float_flow_close(&ff);
    }
    /* contexts of 5 x 12 = 60 tokens every 48: (485 - 60) / 48 + 1 = 9 */
    cr_assert_eq(r[0].n_windows, 9);
    cr_assert_eq(r[0].stride, 48);
    cr_assert_eq(r[0].segment_count[0], 9 * (SEGLEN - 1));
    for (int k = 1; k < 5; k++) cr_assert_eq(r[0].segment_count[k], 9 * SEGLEN);
    cr_assert_eq(r[0].segment_mean_nll[4], r[0].mean_nll);
    cr_assert(r[0].ppl > 50 && r[0].ppl < 1000, "ppl %g", r[0].ppl);
    cr_assert(r[0].baseline_ppl > 50 && r[0].baseline_ppl < 1000 && r[0].baseline_ppl != r[0].ppl);
    cr_assert(fabs(r[0].mean_nll - r[1].mean_nll) <= 1e-5, "%.9g vs %.9g", r[0].mean_nll, r[1].mean_nll);
    cr_assert(fabs(r[0].baseline_mean_nll - r[1].baseline_mean_nll) <= 1e-5);
    flx_hmt_ppl_result_free(&r[0]);
    flx_hmt_ppl_result_free(&r[1]);
    free(tok);
    teardown();
}

/* HMT-pytorch's test protocol (docs/hmt.md 3): C = 3 segments of L = 12 over
 * 65 tokens.  Samples (a new one every L tokens, test_length = (C-1) L):
 * [0,24) (sample 0 has C-1 segments), [0,36), [12,48), [24,60), then two cut
 * at the end of the stream, [36,65) and [48,65), which both score [53,65).
 * Each scores its last L tokens; the PPL is the mean over batches of exp(the
 * batch's mean NLL), an incomplete last batch dropped.  The expected values
 * are recomputed here from the logits of each slice's flow, targets picked
 * by hand (target t of a sample is predicted by segment (t-1)/L, row
 * (t-1) mod L), and the baseline from plain forwards of the last 18 tokens
 * before each sample's end. */
Test(hmt, ppl_pytorch_samples_and_aggregation)
{
    setup(64);
    enum { NTOK = 5 * SEGLEN + 5, C = 3, BASE = 1 + SENS + SEGLEN + 1 };
    const int64_t V = model.cfg.n_vocab, d = model.cfg.d_model;
    int32_t tok[NTOK];
    for (int i = 0; i < NTOK; i++) tok[i] = (int32_t)((i * 53 + 7) % 251);
    const int64_t want_start[6] = {0, 0, 12, 24, 36, 48}, want_len[6] = {24, 36, 36, 36, 29, 17};
    flx_error err = {0};
    float_flow ff;
    float_flow_open(&ff, 1);
    flx_hmt_flow flow = {1, 0, 0, 1};
    /* by hand: every sample's scored NLLs (flow) and baseline NLLs (plain window) */
    double nll[6][SEGLEN], bnll[6][SEGLEN];
    capture cap = {malloc((size_t)NSEG * SEGLEN * V * 4), V};
    float *x = malloc((size_t)BASE * d * 4), *lg = malloc((size_t)SEGLEN * V * 4);
    for (int k = 0; k < 6; k++) {
        const int64_t b = want_start[k], len = want_len[k], end = b + len;
        flx_hmt_trace tr = {NULL, NULL, NULL, 0};
        cr_assert_eq(flx_hmt_context(&hp, &flow, &ff.bb, &ff.mem, tok + b, len, capture_logits, &cap, &tr, &err),
                     FLX_OK, "%s", err.msg);
        for (int64_t t = len - SEGLEN, i = 0; t < len; t++, i++) {
            int64_t seg = (t - 1) / SEGLEN, row = (t - 1) % SEGLEN;
            nll[k][i] = flx_nll(cap.lg + ((size_t)seg * SEGLEN + (size_t)row) * (size_t)V, V, tok[b + t]);
        }
        for (int i = 0; i < BASE; i++) put(x, i, model.w.tok_embd + (size_t)tok[end - BASE + i] * d, d);
        plain_run(x, BASE, 0, NULL, BASE - SEGLEN - 1, SEGLEN, lg);
        for (int i = 0; i < SEGLEN; i++) bnll[k][i] = flx_nll(lg + (size_t)i * V, V, tok[end - SEGLEN + i]);
    }
    const int64_t batches[3] = {1, 2, 4};
    for (int bi = 0; bi < 3; bi++) {
        const int64_t B = batches[bi], n = 6 - 6 % B;
        flx_hmt_ppl_opts o = {.n_segments = C, .baseline_ctx = BASE, .flow = flow, .eval = FLX_HMT_EVAL_PYTORCH,
                              .batch = B};
        flx_hmt_ppl_result r;
        cr_assert_eq(flx_hmt_ppl_run(&hp, &ff.bb, &ff.mem, tok, NTOK, &o, &r, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(r.n_available, 6);
        cr_assert_eq(r.n_windows, n, "batch %lld: %lld samples", (long long)B, (long long)r.n_windows);
        cr_assert_eq(r.stride, SEGLEN);
        double ppl_sum = 0, bppl_sum = 0, all = 0, ball = 0;
        for (int64_t q = 0; q < n / B; q++) {
            double s = 0, bs = 0;
            for (int64_t k = q * B; k < (q + 1) * B; k++)
                for (int i = 0; i < SEGLEN; i++) {
                    s += nll[k][i];
                    bs += bnll[k][i];
                }
            ppl_sum += exp(s / (double)(B * SEGLEN));
            bppl_sum += exp(bs / (double)(B * SEGLEN));
            all += s;
            ball += bs;
        }
        const double want = ppl_sum / (double)(n / B), bwant = bppl_sum / (double)(n / B);
        for (int64_t k = 0; k < n; k++) {
            cr_assert_eq(r.window_start[k], want_start[k]);
            cr_assert_eq(r.window_len[k], want_len[k]);
            double m = 0;
            for (int i = 0; i < SEGLEN; i++) m += nll[k][i];
            cr_assert(fabs(r.window_mean_nll[k] - m / SEGLEN) <= 1e-12, "sample %lld", (long long)k);
        }
        cr_assert(fabs(r.ppl - want) <= 1e-12 * want, "batch %lld: ppl %.15g, by hand %.15g", (long long)B,
                  r.ppl, want);
        cr_assert(fabs(r.baseline_ppl - bwant) <= 1e-9 * bwant, "batch %lld: baseline %.15g, by hand %.15g",
                  (long long)B, r.baseline_ppl, bwant);
        cr_assert(fabs(r.mean_nll - all / (double)(n * SEGLEN)) <= 1e-12);
        cr_assert(fabs(r.baseline_mean_nll - ball / (double)(n * SEGLEN)) <= 1e-9);
        cr_assert(fabs(r.pooled_ppl - exp(r.mean_nll)) <= 1e-12 * r.pooled_ppl);
        /* with more than one batch, the mean of the batch PPLs exceeds exp(mean NLL) */
        if (n / B > 1) cr_assert(r.ppl > r.pooled_ppl, "%.15g vs %.15g", r.ppl, r.pooled_ppl);
        if (B == 1) {   /* targets t = 1 .. len-1 of each sample, by segment t / L */
            cr_assert_eq(r.segment_count[0], 6 * 11);                  /* t = 1 .. 11 */
            cr_assert_eq(r.segment_count[1], 12 + 3 * 12 + 12 + 5);   /* lengths 24, 36 x 3, 29, 17 */
            cr_assert_eq(r.segment_count[2], 3 * 12 + 5);              /* 36 x 3; 29: t = 24 .. 28 */
        }
        flx_hmt_ppl_result_free(&r);
    }
    /* --chunks 3 (max_windows) with batches of 2: one batch, samples 0 and 1 */
    flx_hmt_ppl_opts o = {.n_segments = C, .max_windows = 3, .flow = flow, .batch = 2};
    flx_hmt_ppl_result r;
    cr_assert_eq(flx_hmt_ppl_run(&hp, &ff.bb, &ff.mem, tok, NTOK, &o, &r, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(r.n_windows, 2);
    double s = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < SEGLEN; i++) s += nll[k][i];
    cr_assert(fabs(r.ppl - exp(s / (2.0 * SEGLEN))) <= 1e-12 * r.ppl);
    flx_hmt_ppl_result_free(&r);
    free(x); free(lg); free(cap.lg);
    float_flow_close(&ff);
    teardown();
}

/* The parameter file: round trip, metadata vs flags, named errors. */
Test(hmt, file_round_trip_and_errors)
{
    setup(64);
    const char *dir = flx_test_tmpdir();
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/h.safetensors", dir);
    flx_error err = {0};
    cr_assert_eq(flx_hmt_write(&hp, path, &err), FLX_OK, "%s", err.msg);
    flx_hmt_params q;
    cr_assert_eq(flx_hmt_load(&q, path, hp.d_model, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(q.h, 48);
    cr_assert_eq(q.seg_len, SEGLEN);
    cr_assert_eq(q.n_sensory, SENS);
    cr_assert_eq(memcmp(q.wk, hp.wk, (size_t)q.h * q.d_model * 4), 0);
    cr_assert_eq(memcmp(q.init_mem, hp.init_mem, (size_t)q.d_model * 4), 0);
    flx_hmt_free(&q);
    flx_hmt_settings over;
    flx_hmt_settings_unset(&over);
    over.n_sensory = 2;
    cr_assert_eq(flx_hmt_load(&q, path, hp.d_model, &over, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(q.n_sensory, 2);
    cr_assert_eq(q.seg_len, SEGLEN + 2);   /* same segment_length from the file */
    flx_hmt_free(&q);

    /* wrong width of the model */
    cr_assert_eq(flx_hmt_load(&q, path, hp.d_model + 1, NULL, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "'mem'") && strstr(err.msg, "shape"), "%s", err.msg);
    /* BF16 file with [d] vectors and a bad key / missing tensor */
    uint16_t *b = malloc((size_t)hp.h * hp.d_model * 2);
    for (int i = 0; i < hp.h * hp.d_model; i++) b[i] = flx_f32_to_bf16(hp.wq[i]);
    flx_st_desc dsc[4] = {{"mem", FLX_ST_BF16, 1, {hp.d_model}},
                          {"memory_cell.memory", FLX_ST_BF16, 1, {hp.d_model}},
                          {"cross_attn.wq.weight", FLX_ST_BF16, 2, {hp.h, hp.d_model}},
                          {"cross_attn.wk.weight", FLX_ST_BF16, 2, {hp.h - 1, hp.d_model}}};
    const void *data[4] = {b, b, b, b};
    const char *k1[1] = {"num_sensory"}, *v1[1] = {"4"};
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    cr_assert_eq(flx_st_write(bad, dsc, data, 4, k1, v1, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_hmt_load(&q, bad, hp.d_model, NULL, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "cross_attn.wk.weight") && strstr(err.msg, "[47, 64]"), "%s", err.msg);
    dsc[3].shape[0] = hp.h;
    const char *v2[1] = {"four"};
    cr_assert_eq(flx_st_write(bad, dsc, data, 4, k1, v2, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_hmt_load(&q, bad, hp.d_model, NULL, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "num_sensory") && strstr(err.msg, "four"), "%s", err.msg);
    cr_assert_eq(flx_st_write(bad, dsc, data, 4, k1, v1, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_hmt_load(&q, bad, hp.d_model, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(q.wq[5], flx_bf16_to_f32(b[5]));
    cr_assert_eq(q.seg_len, 1024 - 2 - 4);   /* default segment_length, sensory from the file */
    flx_hmt_free(&q);
    cr_assert_eq(flx_st_write(bad, dsc, data, 3, NULL, NULL, 0, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_hmt_load(&q, bad, hp.d_model, NULL, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "'cross_attn.wk.weight' is missing") && strstr(err.msg, bad), "%s", err.msg);
    /* settings that leave no segment */
    over.n_sensory = 2000;
    cr_assert_eq(flx_hmt_load(&q, path, hp.d_model, &over, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "segment_length"), "%s", err.msg);
    free(b);
    teardown();
}

/* More sensory tokens than a segment holds: HMT-pytorch repeats the whole
 * previous segment (input_ids[:, -num_sensory:]), never tokens before it;
 * a baseline window longer than a context is refused. */
Test(hmt, sensory_longer_than_segment)
{
    flx_error err = {0};
    flx_llama_config cfg;
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    memset(&model, 0, sizeof model);
    cr_assert_eq(flx_synth_build(&model, &cfg, 7, &err), FLX_OK, "%s", err.msg);
    flx_hmt_settings s;
    flx_hmt_settings_unset(&s);
    s.segment_length = 10;
    s.n_sensory = 5;   /* L = 3 */
    cr_assert_eq(flx_hmt_synth(&hp, cfg.d_model, cfg.d_model, &s, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(hp.seg_len, 3);
    int32_t tok[9] = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    float_flow ff;
    float_flow_open(&ff, 1);
    flx_hmt_flow flow = {1, 0, 0, 1};
    flx_hmt_trace tr = {NULL, NULL, NULL, 0};
    cr_assert_eq(flx_hmt_context(&hp, &flow, &ff.bb, &ff.mem, tok, 9, NULL, NULL, &tr, &err), FLX_OK, "%s", err.msg);
    /* summaries [T, 1 token, T] x 2; stage 1: 1+3+1, then 2 x (1+3+3+1) */
    cr_assert_eq(tr.rows, 2 * 3 + 5 + 2 * 8);
    flx_hmt_ppl_opts o = {.n_segments = 2, .baseline_ctx = 7, .flow = flow};
    flx_hmt_ppl_result r;
    cr_assert_eq(flx_hmt_ppl_run(&hp, &ff.bb, &ff.mem, tok, 9, &o, &r, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "baseline window 7 is longer than a context of 6"), "%s", err.msg);
    float_flow_close(&ff);
    teardown();
}

/* flxemu synth --hmt: any width, seeded (same seed, same bytes). */
Test(hmt, synth_cli_seeded)
{
    const char *dir = flx_test_tmpdir();
    char cmd[4096], a[600], b[600], c[600];
    snprintf(a, sizeof a, "%s/a.st", dir);
    snprintf(b, sizeof b, "%s/b.st", dir);
    snprintf(c, sizeof c, "%s/c.st", dir);
    const char *out[3] = {a, b, c};
    const int seed[3] = {4, 4, 5};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "'%.1000s' synth --hmt %.600s --hmt-d-model 96 --hmt-dim 40 --hmt-sensory 3 "
                 "--seed %d 2>/dev/null", flx_test_bin(), out[i], seed[i]);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    char *ta, *tb, *tc;
    size_t na, nb, nc;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(a, 1 << 24, &ta, &na, &err), FLX_OK);
    cr_assert_eq(flx_read_file(b, 1 << 24, &tb, &nb, &err), FLX_OK);
    cr_assert_eq(flx_read_file(c, 1 << 24, &tc, &nc, &err), FLX_OK);
    cr_assert(na == nb && !memcmp(ta, tb, na));
    cr_assert(na == nc && memcmp(ta, tc, na));
    flx_hmt_params q;
    cr_assert_eq(flx_hmt_load(&q, a, 96, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(q.h, 40);
    cr_assert_eq(q.n_sensory, 3);
    cr_assert_eq(q.seg_len, 1024 - 2 - 3);
    double bound = 1.0 / sqrt(96.0), mx = 0;
    for (int i = 0; i < 40 * 96; i++) mx = fmax(mx, fabs(q.wq[i]));
    cr_assert(mx <= bound && mx > 0.9 * bound, "max |wq| %g, bound %g", mx, bound);
    flx_hmt_free(&q);
    free(ta); free(tb); free(tc);
}
