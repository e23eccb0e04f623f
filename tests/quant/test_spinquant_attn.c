/* spinquant_attn: one attention block of SpinQuant's evaluation path
 * (facebookresearch/SpinQuant: eval_utils/main.py, rotation_utils.py's
 * QKRotationWrapper, utils/quant_utils.py's ActQuantizer), transcribed
 * directly and without optimisation, against the fake-quant model of a
 * `w4a4kv4-spinquant --rotate hadamard` stories260K .flxq.
 *
 * SpinQuant's path, in the order it runs (PyTorch, float32):
 *   q, k, v = x Wq^T, x Wk^T, x Wv^T    (x: the quantized normed input)
 *   v      <- v_proj's output quantizer: per token, groups of head_dim,
 *             find_params_per_token_groupwise: range [min, max] of the
 *             group as found (not widened to 0), asymmetric, zero point
 *   q, k   <- apply_rotary_pos_emb (HF rotate_half), then the wrapper:
 *             q = H(q) / sqrt(head_dim), k = H(k) / sqrt(head_dim)
 *             (fast_hadamard_transform: natural-order Walsh-Hadamard)
 *   k      <- per head: find_params on rows of head_dim: range
 *             [min(min, 0), max(max, 0)], asymmetric, zero point
 *   scores = q k^T / sqrt(head_dim), causal mask, softmax, P v
 *   o_proj input <- per token, groups of head_dim, group-wise quantizer
 * Rounding: torch.round, half to even.  4 bits: maxq = 15. */
#include "flx_qmodel.h"
#include "flx_llama.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

#define N_TOK 64

/* ---------------------------------------------------------------- capture */

typedef struct cap {
    flx_fakequant *fq;
    float *x_qkv;      /* layer 0 q/k/v input after its quantizer  (N, d)     */
    float *k_q, *v_q;  /* layer 0 K after RoPE, R3 and quantizer; V after it  */
    float *o_in;       /* layer 0 o_proj input after its quantizer (N, qd)    */
} cap;

static int cap_linear(void *ctx, int layer, flx_linear_kind kind, float *x, int64_t n, int64_t n_in,
                      flx_error *err)
{
    cap *c = ctx;
    int rc = c->fq->hooks.linear_input(c->fq->hooks.ctx, layer, kind, x, n, n_in, err);
    if (layer == 0 && kind == FLX_LINEAR_QKV) memcpy(c->x_qkv, x, (size_t)(n * n_in) * sizeof(float));
    if (layer == 0 && kind == FLX_LINEAR_O) memcpy(c->o_in, x, (size_t)(n * n_in) * sizeof(float));
    return rc;
}

static int cap_qkv(void *ctx, int layer, float *q, float *k, float *v, int64_t n, int64_t pos0,
                   const flx_llama_config *cfg, flx_error *err)
{
    cap *c = ctx;
    int rc = c->fq->hooks.qkv(c->fq->hooks.ctx, layer, q, k, v, n, pos0, cfg, err);
    size_t kv = (size_t)n * cfg->n_kv_heads * cfg->head_dim;
    if (layer == 0) {
        memcpy(c->k_q, k, kv * sizeof(float));
        memcpy(c->v_q, v, kv * sizeof(float));
    }
    return rc;
}

/* ---------------------------------------------------------------- SpinQuant, transcribed */

/* ActQuantizer on one row of n values: asym, 4 bits, clip 1.
 * with_zero: find_params (per-row path): xmin = min(x.min, 0), xmax = max(x.max, 0);
 * else find_params_per_token_groupwise: xmin = x.min, xmax = x.max. */
static void sq_quant_row(float *x, int n, int with_zero, int *codes)
{
    const float maxq = 15.0f;
    float xmin = x[0], xmax = x[0];
    for (int i = 1; i < n; i++) {
        xmin = fminf(xmin, x[i]);
        xmax = fmaxf(xmax, x[i]);
    }
    if (with_zero) {
        xmin = fminf(xmin, 0.0f);
        xmax = fmaxf(xmax, 0.0f);
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    float scale = (xmax - xmin) / maxq;
    float zero = rintf(-xmin / scale);
    for (int i = 0; i < n; i++) {
        float q = rintf(x[i] / scale) + zero;
        q = q < 0.0f ? 0.0f : q > maxq ? maxq : q;
        if (codes) codes[i] = (int)q;
        x[i] = scale * (q - zero);
    }
}

/* fast_hadamard_transform: unnormalized natural-order (Sylvester) H x */
static void sq_hadamard(float *x, int n)
{
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

typedef struct sq_opts {
    int v_with_zero;     /* 0: SpinQuant (group-wise: no zero in the range) */
    int o_with_zero;
    int r3_before_rope;  /* a departure, to show the test sees it */
} sq_opts;

/* the attention block of layer 0 from its quantized input x (N, d);
 * writes the quantized o_proj input (N, n_heads*hd) and K codes */
static void sq_attention(const flx_model *m, const float *x, sq_opts o, float *o_in, int *k_codes)
{
    const flx_llama_config *c = &m->cfg;
    const int d = c->d_model, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const int qd = nh * hd, kvd = nkv * hd, half = hd / 2;
    const flx_llama_layer *L = &m->w.layers[0];
    float *q = calloc((size_t)N_TOK * qd, 4), *k = calloc((size_t)N_TOK * kvd, 4);
    float *v = calloc((size_t)N_TOK * kvd, 4), *tmp = calloc((size_t)hd, 4);
    /* projections (nn.Linear; float32, the sum rounded once here) */
    for (int t = 0; t < N_TOK; t++) {
        for (int j = 0; j < qd; j++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += (double)x[t * d + i] * L->wq[(size_t)j * d + i];
            q[t * qd + j] = (float)s;
        }
        for (int j = 0; j < kvd; j++) {
            double sk = 0, sv = 0;
            for (int i = 0; i < d; i++) {
                sk += (double)x[t * d + i] * L->wk[(size_t)j * d + i];
                sv += (double)x[t * d + i] * L->wv[(size_t)j * d + i];
            }
            k[t * kvd + j] = (float)sk;
            v[t * kvd + j] = (float)sv;
        }
    }
    /* v_proj's output quantizer: per token, groups of head_dim */
    for (int t = 0; t < N_TOK; t++)
        for (int h = 0; h < nkv; h++) sq_quant_row(v + t * kvd + h * hd, hd, o.v_with_zero, NULL);
    /* R3 as SpinQuant's wrapper: H(x) / sqrt(head_dim) on every head vector */
    const float r3_div = (float)sqrt((double)hd);
    for (int pass = 0; pass < 2; pass++) {
        int rope_now = pass == (o.r3_before_rope ? 1 : 0);
        for (int t = 0; t < N_TOK; t++)
            for (int which = 0; which < 2; which++) {
                float *base = which ? k + t * kvd : q + t * qd;
                int heads = which ? nkv : nh;
                for (int h = 0; h < heads; h++) {
                    float *y = base + h * hd;
                    if (rope_now) {
                        /* HF LlamaRotaryEmbedding (float32): freqs = inv_freq * pos,
                         * emb = cat(freqs, freqs); q*cos + rotate_half(q)*sin */
                        for (int i = 0; i < half; i++) {
                            float inv = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / hd));
                            float f = inv * (float)t, cs = cosf(f), sn = sinf(f);
                            tmp[i] = y[i] * cs + (-y[i + half]) * sn;
                            tmp[i + half] = y[i + half] * cs + y[i] * sn;
                        }
                        memcpy(y, tmp, (size_t)hd * 4);
                    } else {
                        sq_hadamard(y, hd);
                        for (int i = 0; i < hd; i++) y[i] = y[i] / r3_div;
                    }
                }
            }
    }
    /* K: per head, rows of head_dim, the per-row path (range includes 0) */
    for (int t = 0; t < N_TOK; t++)
        for (int h = 0; h < nkv; h++)
            sq_quant_row(k + t * kvd + h * hd, hd, 1, k_codes ? k_codes + t * kvd + h * hd : NULL);
    /* attention: repeat_kv, q k^T / sqrt(hd), causal softmax (float32), P v */
    const float sdiv = (float)sqrt((double)hd);
    float *p = calloc(N_TOK, 4);
    for (int h = 0; h < nh; h++) {
        int g = h / (nh / nkv);
        for (int t = 0; t < N_TOK; t++) {
            float mx = -INFINITY;
            for (int s = 0; s <= t; s++) {
                float dot = 0;
                for (int i = 0; i < hd; i++) dot += q[t * qd + h * hd + i] * k[s * kvd + g * hd + i];
                p[s] = dot / sdiv;
                mx = fmaxf(mx, p[s]);
            }
            float sum = 0;
            for (int s = 0; s <= t; s++) {
                p[s] = expf(p[s] - mx);
                sum += p[s];
            }
            for (int i = 0; i < hd; i++) {
                float acc = 0;
                for (int s = 0; s <= t; s++) acc += (p[s] / sum) * v[s * kvd + g * hd + i];
                o_in[t * qd + h * hd + i] = acc;
            }
        }
    }
    /* o_proj's input quantizer: per token, groups of head_dim */
    for (int t = 0; t < N_TOK; t++)
        for (int h = 0; h < nh; h++) sq_quant_row(o_in + t * qd + h * hd, hd, o.o_with_zero, NULL);
    free(q); free(k); free(v); free(tmp); free(p);
}

/* ---------------------------------------------------------------- test */

static int sh(const char *cmd, char *out, size_t cap_)
{
    FILE *pp = popen(cmd, "r");
    cr_assert(pp != NULL);
    size_t n = fread(out, 1, cap_ - 1, pp);
    out[n] = 0;
    int st = pclose(pp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

Test(spinquant_attn, r3_and_kv4_follow_spinquants_evaluation_path, .timeout = 120)
{
    char hf[4096], cmd[9000], out[8192], path[600];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    const char *dir = flx_test_tmpdir();
    snprintf(path, sizeof path, "%s/sq.flxq", dir);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a4kv4-spinquant --rotate hadamard --out %s 2>&1",
             flx_test_bin(), hf, path);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);

    flx_model m = {0};
    flx_fakequant *fq = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_fakequant_open(&fq, &m, path, &err), FLX_OK, "%s", err.msg);
    cr_assert(fq->rot.r3 && fq->rot.r4);
    const flx_llama_config *c = &m.cfg;
    const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    cap cp = { fq, malloc((size_t)N_TOK * c->d_model * 4), malloc((size_t)N_TOK * kvd * 4),
               malloc((size_t)N_TOK * kvd * 4), malloc((size_t)N_TOK * qd * 4) };
    flx_llama_hooks hk = fq->hooks;
    hk.ctx = &cp;
    hk.linear_input = cap_linear;
    hk.qkv = cap_qkv;
    flx_llama_opts o = {0};
    o.n_threads = 1;
    o.max_tokens = N_TOK;
    o.max_ctx = N_TOK;
    o.hooks = &hk;
    flx_llama_state st;
    cr_assert_eq(flx_llama_init(&st, &m, &o, &err), FLX_OK, "%s", err.msg);
    int32_t ids[N_TOK];
    char *txt = NULL;
    size_t tn = 0;
    cr_assert_eq(flx_read_file(flx_test_data("stories260K/expected_greedy_n200.ids.txt"), 1 << 20, &txt, &tn, NULL), FLX_OK);
    char *pp = txt, *end;
    for (int i = 0; i < N_TOK; i++) {
        ids[i] = (int32_t)strtol(pp, &end, 10);
        pp = end;
    }
    free(txt);
    cr_assert_eq(flx_llama_forward(&st, ids, N_TOK, &err), FLX_OK, "%s", err.msg);

    /* SpinQuant's block from the same quantized input and weights */
    float *ref = malloc((size_t)N_TOK * qd * 4);
    int *kc = malloc((size_t)N_TOK * kvd * sizeof(int));
    sq_attention(&m, cp.x_qkv, (sq_opts){0, 0, 0}, ref, kc);

    /* K codes: the project's K (dequantized) maps back to the same codes
     * except where float rounding of the projection/RoPE/R3 moves a value
     * across a rounding boundary */
    int k_diff = 0;
    for (int t = 0; t < N_TOK; t++)
        for (int h = 0; h < c->n_kv_heads; h++) {
            float row[64];
            int codes[64];
            memcpy(row, cp.k_q + t * kvd + h * c->head_dim, (size_t)c->head_dim * 4);
            sq_quant_row(row, c->head_dim, 1, codes);   /* re-quantizing a quantized row gives its codes */
            for (int i = 0; i < c->head_dim; i++) k_diff += codes[i] != kc[t * kvd + h * c->head_dim + i];
        }
    double e_same = rel_l2(cp.o_in, ref, (size_t)N_TOK * qd);
    /* the departures SpinQuant's path does not take, each visibly farther */
    float *alt = malloc((size_t)N_TOK * qd * 4);
    sq_attention(&m, cp.x_qkv, (sq_opts){1, 1, 0}, alt, NULL);
    double e_zero = rel_l2(cp.o_in, alt, (size_t)N_TOK * qd);
    sq_attention(&m, cp.x_qkv, (sq_opts){0, 0, 1}, alt, NULL);
    double e_pre = rel_l2(cp.o_in, alt, (size_t)N_TOK * qd);
    cr_log_info("layer 0, %d tokens: K codes differing %d of %d; o_proj input rel. L2 vs SpinQuant %.3g, "
                "vs ranges widened to 0 %.3g, vs R3 before RoPE %.3g",
                N_TOK, k_diff, N_TOK * kvd, e_same, e_zero, e_pre);
    cr_assert_lt(k_diff, N_TOK * kvd / 100, "K codes: %d of %d differ", k_diff, N_TOK * kvd);
    cr_assert_lt(e_same, 0.02, "the project's attention block departs from SpinQuant's: %g", e_same);
    cr_assert_gt(e_zero, 3 * e_same, "V/o ranges widened to include 0 should be distinguishable (%g vs %g)", e_zero, e_same);
    cr_assert_gt(e_pre, 3 * e_same, "R3 before RoPE should be distinguishable (%g vs %g)", e_pre, e_same);
    free(ref); free(kc); free(alt);
    free(cp.x_qkv); free(cp.k_q); free(cp.v_q); free(cp.o_in);
    flx_llama_free(&st);
    flx_model_free(&m);
    flx_fakequant_close(fq);
}
