/* Forward pass: against a double-precision scalar implementation, RoPE
 * pairings, llama3 frequencies, KV-cache decoding, BF16 rounding, hooks. */
#include "flx_llama.h"
#include "llama_test_model.h"
#include "test_util.h"

#include <cblas.h>

#include <math.h>

/* fp32 sgemm vs double, relative to the largest |logit| */
#define LOGIT_TOL 1e-5

static float *run_logits(const flx_model *m, const int32_t *tok, int n, int bf16,
                         const flx_llama_hooks *hooks)
{
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 1, .bf16_activations = bf16, .max_tokens = n, .max_ctx = n,
                        .hooks = hooks};
    cr_assert_eq(flx_llama_init(&s, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&s, tok, n, &err), FLX_OK, "%s", err.msg);
    float *lg = malloc((size_t)n * m->cfg.n_vocab * sizeof *lg);
    cr_assert_eq(flx_llama_logits(&s, 0, n, lg, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&s);
    return lg;
}

/* max |a - b| / max |b| */
static double max_abs_diff(const float *a, const double *b, size_t n)
{
    double mx = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return mx / scale;
}

Test(forward, hand_computed_output_path)
{
    /* all attention and MLP weights zero: logits = out_norm(embedding) . output rows */
    flx_llama_config c = tm_config(1, 2, 1, 1, 2, 3);
    flx_model m;
    tm_build(&m, &c, 1, 0.0);
    float *e = (float *)m.w.tok_embd;
    e[0] = 3; e[1] = 4;      /* token 0 */
    e[2] = 1; e[3] = 0;      /* token 1 */
    e[4] = 0; e[5] = -2;     /* token 2 */
    float *wn = (float *)m.w.out_norm;
    wn[0] = 1; wn[1] = 0.5f;
    for (int l = 0; l < c.n_layers; l++) {
        memset((float *)m.w.layers[l].wo, 0, 2 * sizeof(float));
        memset((float *)m.w.layers[l].w_down, 0, 4 * sizeof(float));
    }
    int32_t tok[1] = {0};
    float *lg = run_logits(&m, tok, 1, 0, NULL);
    /* h = [3, 4] / sqrt(12.5 + 1e-5) * [1, 0.5];  logits = h . e[v] */
    double r = sqrt(12.5 + 1e-5), h0 = 3 / r, h1 = 2 / r;
    cr_assert_float_eq(lg[0], h0 * 3 + h1 * 4, 1e-6);
    cr_assert_float_eq(lg[1], h0, 1e-6);
    cr_assert_float_eq(lg[2], -2 * h1, 1e-6);
    free(lg);
    flx_model_free(&m);
}

static void check_against_reference(flx_rope_pairing pairing, int tied, int n_kv)
{
    flx_llama_config c = tm_config(2, 16, 4, n_kv, 24, 37);
    c.rope_pairing = pairing;
    c.tie_embeddings = tied;
    flx_model m;
    tm_build(&m, &c, 7, 0.3);
    int32_t tok[9] = {1, 5, 9, 36, 0, 4, 4, 17, 2};
    float *lg = run_logits(&m, tok, 9, 0, NULL);
    double *ref = malloc(9 * 37 * sizeof *ref);
    ref_forward(&m, tok, 9, ref);
    double d = max_abs_diff(lg, ref, 9 * 37);
    cr_assert(d < LOGIT_TOL, "max |float - double| / max |logit| = %g", d);
    free(lg);
    free(ref);
    flx_model_free(&m);
}

Test(forward, matches_double_reference_split_half_gqa) { check_against_reference(FLX_ROPE_SPLIT_HALF, 1, 2); }
Test(forward, matches_double_reference_adjacent_mha_untied) { check_against_reference(FLX_ROPE_ADJACENT, 0, 4); }

Test(forward, matches_double_reference_across_attention_blocks)
{
    /* 300 tokens: two causal blocks of query rows (256 + 44) */
    flx_llama_config c = tm_config(1, 8, 2, 1, 8, 11);
    flx_model m;
    tm_build(&m, &c, 3, 0.4);
    int n = 300;
    int32_t *tok = malloc(n * sizeof *tok);
    for (int i = 0; i < n; i++) tok[i] = (i * 7 + 3) % 11;
    float *lg = run_logits(&m, tok, n, 0, NULL);
    double *ref = malloc((size_t)n * 11 * sizeof *ref);
    ref_forward(&m, tok, n, ref);
    double d = max_abs_diff(lg, ref, (size_t)n * 11);
    cr_assert(d < LOGIT_TOL, "max |float - double| / max |logit| = %g", d);
    free(tok); free(lg); free(ref);
    flx_model_free(&m);
}

Test(forward, split_half_equals_adjacent_under_row_permutation)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 29);
    flx_model hf, gg;
    tm_build(&hf, &c, 11, 0.3);
    tm_build(&gg, &c, 11, 0.3);
    gg.cfg.rope_pairing = FLX_ROPE_ADJACENT;
    int hd = c.head_dim;
    /* GGUF row 2i <- HF row i, row 2i+1 <- HF row i + hd/2, within each head */
    for (int l = 0; l < c.n_layers; l++) {
        struct { const float *src; float *dst; int heads; } mats[2] = {
            {hf.w.layers[l].wq, (float *)gg.w.layers[l].wq, c.n_heads},
            {hf.w.layers[l].wk, (float *)gg.w.layers[l].wk, c.n_kv_heads}};
        for (int k = 0; k < 2; k++)
            for (int h = 0; h < mats[k].heads; h++)
                for (int i = 0; i < hd / 2; i++)
                    for (int a = 0; a < 2; a++)
                        memcpy(mats[k].dst + ((size_t)h * hd + 2 * i + a) * c.d_model,
                               mats[k].src + ((size_t)h * hd + i + a * hd / 2) * c.d_model,
                               c.d_model * sizeof(float));
    }
    int32_t tok[12] = {1, 3, 5, 7, 11, 13, 17, 19, 23, 0, 2, 28};
    float *a = run_logits(&hf, tok, 12, 0, NULL);
    float *b = run_logits(&gg, tok, 12, 0, NULL);
    double mx = 0;
    for (int i = 0; i < 12 * 29; i++) mx = fmax(mx, fabs(a[i] - b[i]));
    cr_assert(mx < 1e-5, "pairings disagree by %g", mx);
    /* and the pairing matters: the unpermuted rows with adjacent pairing differ */
    gg.cfg.rope_pairing = FLX_ROPE_SPLIT_HALF;
    float *wrong = run_logits(&gg, tok, 12, 0, NULL);
    mx = 0;
    for (int i = 0; i < 12 * 29; i++) mx = fmax(mx, fabs(a[i] - wrong[i]));
    cr_assert(mx > 1e-3, "a wrong pairing went unnoticed (%g)", mx);
    free(a); free(b); free(wrong);
    flx_model_free(&hf);
    flx_model_free(&gg);
}

Test(forward, llama3_inv_freq_follows_hf_rule)
{
    /* tiny-llama3-random's RoPE: theta 500000, head_dim 16, factor 32, low 1, high 4, 8192 */
    flx_llama_config c = tm_config(1, 64, 4, 2, 8, 8);
    c.rope_theta = 500000.0;
    c.rope_llama3 = 1;
    c.rope_factor = 32;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_orig_max_pos = 8192;
    double f[8];
    flx_llama_rope_inv_freq(&c, f);
    for (int i = 0; i < 8; i++) {
        double base = pow(500000.0, -2.0 * i / 16.0);
        double div = i < 4 ? 1.0 : i == 4 ? 3.2922621 : 32.0;   /* data/README section 4 */
        cr_assert(fabs(f[i] * div / base - 1.0) < 1e-7, "inv_freq[%d] = %.10g, base %.10g", i, f[i], base);
    }
    /* i = 4 by hand: wavelen = 2 pi / base, smooth = (8192/wavelen - 1)/3 */
    double b4 = pow(500000.0, -0.5), smooth = (8192.0 * b4 / (2 * M_PI) - 1) / 3;
    cr_assert(fabs(f[4] - ((1 - smooth) * b4 / 32 + smooth * b4)) < 1e-15);
}

Test(forward, kv_cache_decode_equals_batched)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 31);
    flx_model m;
    tm_build(&m, &c, 5, 0.3);
    int32_t tok[10] = {1, 4, 9, 16, 25, 30, 6, 13, 22, 3};
    float *batched = run_logits(&m, tok, 10, 0, NULL);
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 1, .max_tokens = 3, .max_ctx = 10};
    cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK);
    float lg[3 * 31];
    double mx = 0;
    /* a 3-token prompt, then one token at a time */
    cr_assert_eq(flx_llama_forward(&s, tok, 3, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_logits(&s, 0, 3, lg, &err), FLX_OK);
    for (int i = 0; i < 3 * 31; i++) mx = fmax(mx, fabs(lg[i] - batched[i]));
    for (int t = 3; t < 10; t++) {
        cr_assert_eq(flx_llama_forward(&s, tok + t, 1, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_llama_logits(&s, 0, 1, lg, &err), FLX_OK);
        for (int i = 0; i < 31; i++) mx = fmax(mx, fabs(lg[i] - batched[t * 31 + i]));
    }
    cr_assert(mx < 1e-5, "decode vs batched: %g", mx);
    /* the cache is full now */
    cr_assert_eq(flx_llama_forward(&s, tok, 1, &err), FLX_EINVAL);
    flx_llama_reset(&s);
    cr_assert_eq(flx_llama_forward(&s, tok, 1, &err), FLX_OK);
    int32_t bad = 31;
    cr_assert_eq(flx_llama_forward(&s, &bad, 1, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "outside the vocabulary"), "%s", err.msg);
    flx_llama_free(&s);
    free(batched);
    flx_model_free(&m);
}

/* ---- hooks ---- */

typedef struct {
    int n_calls, n_qkv_calls;
    int layers[64], kinds[64];
    int64_t n_in[64];
    int all_bf16;
    int zero_head;
} hook_log;

static int is_bf16(float v) { return flx_bf16_to_f32(flx_f32_to_bf16(v)) == v; }

static int log_linear(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in,
                      flx_error *err)
{
    (void)err;
    hook_log *h = ctx;
    h->layers[h->n_calls] = layer;
    h->kinds[h->n_calls] = kind;
    h->n_in[h->n_calls++] = n_in;
    for (int64_t i = 0; i < n * n_in; i++) h->all_bf16 &= is_bf16(x[i]);
    if (kind == FLX_LINEAR_HEAD && h->zero_head) memset(x, 0, (size_t)(n * n_in) * sizeof *x);
    return FLX_OK;
}

static int log_qkv(void *ctx, int layer, float *q, float *k, float *v, int64_t n, int64_t pos0,
                   const flx_llama_config *c, flx_error *err)
{
    (void)layer; (void)v; (void)pos0; (void)err;
    hook_log *h = ctx;
    h->n_qkv_calls++;
    for (int64_t i = 0; i < n * c->n_heads * c->head_dim; i++) h->all_bf16 &= is_bf16(q[i]);
    for (int64_t i = 0; i < n * c->n_kv_heads * c->head_dim; i++) h->all_bf16 &= is_bf16(k[i]);
    return FLX_OK;
}

static int failing_hook(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in,
                        flx_error *err)
{
    (void)ctx; (void)x; (void)n; (void)n_in;
    if (layer == 1 && kind == FLX_LINEAR_DOWN) return flx_fail(err, FLX_ENUMERIC, "fake quantizer saw a NaN");
    return FLX_OK;
}

Test(forward, hooks_see_every_linear_in_order_and_can_edit)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 19);
    flx_model m;
    tm_build(&m, &c, 9, 0.3);
    int32_t tok[4] = {1, 2, 3, 4};
    hook_log log = {.all_bf16 = 1};
    flx_llama_hooks hk = { .ctx = &log, .linear_input = log_linear, .qkv = log_qkv };
    float *lg = run_logits(&m, tok, 4, 0, &hk);
    cr_assert_eq(log.n_calls, 2 * 4 + 1);
    cr_assert_eq(log.n_qkv_calls, 2);
    int kinds[4] = {FLX_LINEAR_QKV, FLX_LINEAR_O, FLX_LINEAR_GATE_UP, FLX_LINEAR_DOWN};
    int64_t n_in[4] = {16, 16, 16, 24};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(log.layers[i], i / 4);
        cr_assert_eq(log.kinds[i], kinds[i % 4]);
        cr_assert_eq(log.n_in[i], n_in[i % 4]);
    }
    cr_assert_eq(log.layers[8], 2);
    cr_assert_eq(log.kinds[8], FLX_LINEAR_HEAD);
    cr_assert_eq(log.all_bf16, 0, "fp32 activations should not all be BF16 values");
    free(lg);
    /* editing in place: a zeroed head input gives zero logits */
    hook_log z = {.zero_head = 1};
    flx_llama_hooks hz = { .ctx = &z, .linear_input = log_linear };
    lg = run_logits(&m, tok, 4, 0, &hz);
    for (int i = 0; i < 4 * 19; i++) cr_assert_eq(lg[i], 0.0f);
    free(lg);
    /* a failing hook stops the forward pass with its status and message */
    flx_llama_hooks hf = { .linear_input = failing_hook };
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.max_tokens = 4, .max_ctx = 4, .hooks = &hf};
    cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK);
    cr_assert_eq(flx_llama_forward(&s, tok, 4, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "NaN"), "%s", err.msg);
    flx_llama_free(&s);
    flx_model_free(&m);
}

/* The layer halves callable alone (layer-by-layer calibration) replay the
 * forward bit for bit from rows captured at the hooks. */
typedef struct replay_cap {
    const flx_llama_state *s;
    int layer;
    float *x_before_o, *attn;   /* residual and attention rows at the o hook */
    float *x_before_down, *gate; /* residual and SwiGLU rows at the down hook */
    int64_t n, d, qd, f;
} replay_cap;

static int capture_linear(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in,
                          flx_error *err)
{
    replay_cap *c = ctx;
    (void)err;
    if (layer != c->layer) return FLX_OK;
    if (kind == FLX_LINEAR_O) {
        memcpy(c->x_before_o, c->s->x, (size_t)(n * c->d) * sizeof(float));
        memcpy(c->attn, x, (size_t)(n * n_in) * sizeof(float));
    } else if (kind == FLX_LINEAR_DOWN) {
        memcpy(c->x_before_down, c->s->x, (size_t)(n * c->d) * sizeof(float));
        memcpy(c->gate, x, (size_t)(n * n_in) * sizeof(float));
    }
    return FLX_OK;
}

Test(forward, layer_halves_replay_the_forward)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 19);
    flx_model m;
    tm_build(&m, &c, 5, 0.3);
    const int n = 6;
    int32_t tok[6] = {3, 1, 4, 1, 5, 9};
    replay_cap cap = {0};
    cap.layer = 1;
    cap.n = n;
    cap.d = c.d_model;
    cap.qd = (int64_t)c.n_heads * c.head_dim;
    cap.f = c.d_ff;
    cap.x_before_o = malloc(sizeof(float) * n * cap.d);
    cap.attn = malloc(sizeof(float) * n * cap.qd);
    cap.x_before_down = malloc(sizeof(float) * n * cap.d);
    cap.gate = malloc(sizeof(float) * n * cap.f);
    flx_llama_hooks hk = { .ctx = &cap, .linear_input = capture_linear };
    flx_llama_state s, r;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 2, .max_tokens = n, .max_ctx = n, .hooks = &hk};
    cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK, "%s", err.msg);
    cap.s = &s;
    cr_assert_eq(flx_llama_forward(&s, tok, n, &err), FLX_OK, "%s", err.msg);
    /* s.x now holds the last layer's output (the final norm went to xn) */
    flx_llama_opts o2 = {.n_threads = 2, .max_tokens = n, .max_ctx = n};
    cr_assert_eq(flx_llama_init(&r, &m, &o2, &err), FLX_OK, "%s", err.msg);
    /* o projection + residual, then the whole feed-forward block */
    memcpy(r.x, cap.x_before_o, sizeof(float) * n * cap.d);
    memcpy(r.attn, cap.attn, sizeof(float) * n * cap.qd);
    cr_assert_eq(flx_llama_attn_out(&r, 1, n, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(r.x, cap.x_before_down, sizeof(float) * n * cap.d), 0, "attention half differs");
    cr_assert_eq(flx_llama_ffn(&r, 1, n, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(r.x, s.x, sizeof(float) * n * cap.d), 0, "feed-forward half differs");
    /* the down projection alone from the SwiGLU rows */
    memcpy(r.x, cap.x_before_down, sizeof(float) * n * cap.d);
    memcpy(r.gate, cap.gate, sizeof(float) * n * cap.f);
    cr_assert_eq(flx_llama_ffn_down(&r, 1, n, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(r.x, s.x, sizeof(float) * n * cap.d), 0, "down projection differs");
    /* out-of-range layers and row counts are refused */
    cr_assert_eq(flx_llama_ffn(&r, 2, n, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "layer 2") != NULL, "%s", err.msg);
    cr_assert_eq(flx_llama_attn_out(&r, -1, n, &err), FLX_EINVAL);
    cr_assert_eq(flx_llama_ffn_down(&r, 0, n + 1, &err), FLX_EINVAL);
    cr_assert_eq(flx_llama_ffn(&r, 0, 0, &err), FLX_EINVAL);
    flx_llama_free(&s);
    flx_llama_free(&r);
    free(cap.x_before_o); free(cap.attn); free(cap.x_before_down); free(cap.gate);
    flx_model_free(&m);
}

Test(forward, bf16_activations_round_every_linear_input)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 19);
    flx_model m;
    tm_build(&m, &c, 13, 0.3);
    int32_t tok[6] = {1, 2, 3, 4, 5, 6};
    hook_log log = {.all_bf16 = 1};
    flx_llama_hooks hk = { .ctx = &log, .linear_input = log_linear, .qkv = log_qkv };
    float *b = run_logits(&m, tok, 6, 1, &hk);
    cr_assert_eq(log.all_bf16, 1, "a linear input or q/k was not a BF16 value");
    float *f = run_logits(&m, tok, 6, 0, NULL);
    double mx = 0, ref = 0;
    for (int i = 0; i < 6 * 19; i++) {
        mx = fmax(mx, fabs(b[i] - f[i]));
        ref = fmax(ref, fabs(f[i]));
    }
    /* BF16 keeps 8 significant bits: visible, but small, differences */
    cr_assert(mx > 1e-5 && mx < 0.05 * ref, "bf16 vs fp32 logits differ by %g (scale %g)", mx, ref);
    free(b);
    free(f);
    flx_model_free(&m);
}

Test(forward, thread_count_changes_results_only_by_rounding)
{
    flx_llama_config c = tm_config(2, 64, 8, 2, 160, 97);
    flx_model m;
    tm_build(&m, &c, 21, 0.1);
    int n = 100;
    int32_t *tok = malloc(n * sizeof *tok);
    for (int i = 0; i < n; i++) tok[i] = (i * 31 + 7) % 97;
    float *lg[2];
    openblas_set_num_threads(2);
    for (int k = 0; k < 2; k++) {
        flx_llama_state s;
        flx_error err = {0};
        flx_llama_opts o = {.n_threads = k + 1, .max_tokens = n, .max_ctx = n};
        cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK);
        cr_assert_eq(flx_llama_forward(&s, tok, n, &err), FLX_OK);
        lg[k] = malloc((size_t)n * 97 * sizeof(float));
        cr_assert_eq(flx_llama_logits(&s, 0, n, lg[k], &err), FLX_OK);
        flx_llama_free(&s);
    }
    double mx = 0;
    for (int i = 0; i < n * 97; i++) mx = fmax(mx, fabs(lg[0][i] - lg[1][i]));
    cr_assert(mx < 1e-4, "1 vs 2 threads: %g", mx);
    cr_assert_eq(openblas_get_num_threads(), 2, "the OpenBLAS thread count is restored");
    free(lg[0]); free(lg[1]); free(tok);
    flx_model_free(&m);
}

/* white-box: the private vector helpers of ref/ */
#include "../../ref/internal/llama_impl.h"

Test(forward, vector_exp_is_accurate_and_position_independent)
{
    /* every 257th float bit pattern in [-87, 0]: within SLEEF u10's 1 ulp of exp in double */
    double worst = 0;
    for (uint32_t b = 0x80000000u; b <= 0xc2ae0000u; b += 257) {
        float x;
        memcpy(&x, &b, 4);
        double want = exp((double)x), got = flx_exp_nonpos(x);
        double ulp = ldexp(1.0, ilogb(want) - 23);
        worst = fmax(worst, fabs(got - want) / ulp);
    }
    cr_assert(worst <= 1.0, "worst error %.2f ulp", worst);
    cr_assert_eq(flx_exp_nonpos(-100.0f), 0.0f);
    cr_assert_eq(flx_exp_nonpos(0.0f), 1.0f);
    cr_assert(isnan(flx_exp_nonpos(NAN)));
    /* the 4-lane blocks and the padded tail give the scalar value at every position */
    float x[37], out[37];
    double sum = 0;
    for (int i = 0; i < 37; i++) x[i] = -0.37f * i + 1.5f;
    double s = flx_exp_shift_sum(out, x, 37, 1.5f);
    for (int i = 0; i < 37; i++) {
        cr_assert_eq(out[i], flx_exp_nonpos(x[i] - 1.5f), "position %d", i);
        sum += exp((double)x[i] - 1.5);
    }
    cr_assert(fabs(s / sum - 1) < 1e-6);
    cr_assert_eq(flx_max_f32(x, 37), 1.5f);
    x[33] = 9.0f;
    cr_assert_eq(flx_max_f32(x, 37), 9.0f);
    x[3] = 10.0f;
    cr_assert_eq(flx_max_f32(x, 37), 10.0f);
}

/* The AVX and SSE2 SLEEF paths give the same bits (sampled here, every
 * input in bench/bench_vmath.c), and the automatic choice is one of them. */
Test(forward, vector_exp_paths_agree)
{
    enum { N = 4096 };
    static float x[N], a[N], b[N], c[N];
    uint32_t bits = 0x80000000u;
    int64_t n_checked = 0;
    while (bits <= 0xc2ae0000u) {
        int n = 0;
        for (; n < N - 1 && bits <= 0xc2ae0000u; n++, bits += 4099) memcpy(&x[n], &bits, 4);
        x[n++] = NAN;
        flx_vm_exp(a, x, n, FLX_VM_SSE2);
        flx_vm_exp(c, x, n, FLX_VM_AUTO);
        if (__builtin_cpu_supports("avx")) flx_vm_exp(b, x, n, FLX_VM_AVX);
        else memcpy(b, a, sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) {
            cr_assert(memcmp(&a[i], &b[i], 4) == 0, "x = %a: sse2 %a, avx %a", x[i], a[i], b[i]);
            cr_assert(memcmp(&a[i], &c[i], 4) == 0, "x = %a: sse2 %a, auto %a", x[i], a[i], c[i]);
        }
        n_checked += n;
    }
    cr_assert_gt(n_checked, 270000);
    float z = -0.0f, e;
    flx_vm_exp(&e, &z, 1, FLX_VM_AUTO);
    cr_assert_eq(e, 1.0f, "exp(-0) = 1");
}

/* SwiGLU's silu(g) * u against double, over both signs and the tails where
 * exp(-g) would overflow; vector lanes equal the scalar tail. */
Test(forward, silu_mul_accuracy_and_tails)
{
    enum { N = 4003 };
    static float g[N], u[N], g1[N];
    for (int i = 0; i < N; i++) {
        g[i] = -120.0f + 240.0f * (float)i / (N - 1);   /* -120 .. 120, includes 0 */
        u[i] = 1.0f + 0.001f * (float)(i % 17);
    }
    memcpy(g1, g, sizeof g);
    flx_silu_mul(g, u, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double x = g1[i], want = x / (1.0 + exp(-x)) * (double)u[i];
        if (fabs(want) < 1e-30) {
            cr_assert(fabs(g[i]) < 1e-30, "g = %g: %g, want ~0", x, g[i]);
            continue;
        }
        worst = fmax(worst, fabs(g[i] - want) / fabs(want));
        /* the same value through the scalar tail (a 1-element call) */
        float one = g1[i];
        flx_silu_mul(&one, &u[i], 1);
        cr_assert_eq(one, g[i], "g = %g: lane %g, scalar %g", x, g[i], one);
    }
    cr_assert(worst < 1e-6, "worst relative error %g", worst);
    float big[2] = {100.0f, -100.0f}, ones[2] = {1.0f, 1.0f};
    flx_silu_mul(big, ones, 2);
    cr_assert_eq(big[0], 100.0f);
    cr_assert(big[1] <= 0.0f && big[1] > -1e-40f);
}

/* residual hook: capture every layer's input in one forward, then resume
 * a second forward at each layer from the captured rows: the logits are
 * the first forward's, bit for bit; a resume before the current layer or
 * past the last is refused. */
typedef struct resid_cap {
    float *saved;     /* (n_layers + 1, n, d) */
    int64_t n, d;
    int resume;       /* -1: capture; else the layer to resume at */
    int calls, bad_next;
} resid_cap;

static int resid_hook(void *ctx, int layer, float *x, int64_t n, int64_t pos0, int *next, flx_error *err)
{
    resid_cap *c = ctx;
    (void)pos0; (void)err;
    c->calls++;
    if (c->bad_next) {
        *next = c->bad_next;
        return FLX_OK;
    }
    if (c->resume < 0) {
        memcpy(c->saved + (size_t)layer * n * c->d, x, sizeof(float) * n * c->d);
    } else if (layer == 0 && c->resume > 0) {
        memcpy(x, c->saved + (size_t)c->resume * n * c->d, sizeof(float) * n * c->d);
        *next = c->resume;
    }
    return FLX_OK;
}

Test(forward, residual_hook_resumes_from_saved_layer_inputs)
{
    flx_llama_config c = tm_config(3, 16, 4, 2, 24, 23);
    flx_model m;
    tm_build(&m, &c, 13, 0.3);
    const int n = 7;
    int32_t tok[7] = {2, 7, 1, 8, 2, 8, 1};
    resid_cap cap = { malloc(sizeof(float) * (c.n_layers + 1) * n * c.d_model), n, c.d_model, -1, 0, 0 };
    flx_llama_hooks hk = { .ctx = &cap, .residual = resid_hook };
    float *ref = run_logits(&m, tok, n, 0, &hk);
    cr_assert_eq(cap.calls, c.n_layers + 1, "called at every layer and before the final norm");
    float *plain = run_logits(&m, tok, n, 0, NULL);
    cr_assert_eq(memcmp(ref, plain, sizeof(float) * n * c.n_vocab), 0, "a reading hook changes nothing");
    for (int l = 0; l <= c.n_layers; l++) {
        cap.resume = l;
        cap.calls = 0;
        float *lg = run_logits(&m, tok, n, 0, &hk);
        cr_assert_eq(memcmp(lg, ref, sizeof(float) * n * c.n_vocab), 0, "resumed at layer %d", l);
        /* layer 0's call, then one per layer from l + 1 on and before the norm */
        cr_assert_eq(cap.calls, l == 0 ? c.n_layers + 1 : 1 + c.n_layers - l, "calls resuming at %d", l);
        free(lg);
    }
    /* a resume past the last layer is refused, naming the layer */
    cap.bad_next = c.n_layers + 1;
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 1, .max_tokens = n, .max_ctx = n, .hooks = &hk};
    cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&s, tok, n, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "resumes at layer 4") != NULL, "%s", err.msg);
    flx_llama_free(&s);
    free(ref); free(plain); free(cap.saved);
    flx_model_free(&m);
}
