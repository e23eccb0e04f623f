/* SpinQuant rotations (quant/rotate.c): the rotated float model computes
 * the same logits as the original (independent double forward in
 * qtest_model.h), rotation files round-trip and bad ones are refused. */
#include "qtest_model.h"

/* max |a - b| / max |a| over n values */
static double rel_diff(const double *a, const double *b, size_t n)
{
    double md = 0, ma = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
        if (fabs(a[i]) > ma) ma = fabs(a[i]);
    }
    return md / ma;
}

static void check_invariance(flx_model *m, flx_rot_kind kind, int r3, int r4, int online, double *out_rel)
{
    int32_t ids[64];
    int n = qt_story_ids(ids, 40);
    for (int i = 0; i < n; i++) ids[i] %= m->cfg.n_vocab;
    size_t nl = (size_t)n * m->cfg.n_vocab;
    double *ref = malloc(nl * 8), *rot = malloc(nl * 8);
    qt_forward(m, ids, n, NULL, NULL, NULL, ref);
    flx_rotation_set rs;
    flx_error err = { 0 };
    cr_assert_eq(flx_rotset_generate(&rs, &m->cfg, kind, r3, r4, 1234, &err), FLX_OK, "%s", err.msg);
    const float *e0 = m->w.tok_embd;
    float e00 = e0[0];
    cr_assert_eq(flx_spinquant_apply(m, &rs, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(m->cfg.tie_embeddings, 0);
    cr_assert(m->w.output != m->w.tok_embd);
    for (int i = 0; i < m->cfg.d_model; i++) cr_assert(m->w.layers[0].attn_norm[i] == 1.0f);
    if (kind != FLX_ROT_NONE) cr_assert(m->w.tok_embd[0] != e00, "R1 changed the embedding");
    qt_forward(m, ids, n, online ? &rs : NULL, NULL, NULL, rot);
    *out_rel = rel_diff(ref, rot, nl);
    cr_log_info("kind %d r3 %d r4 %d online %d: max rel logit change %.3g", (int)kind, r3, r4, online, *out_rel);
    flx_rotset_free(&rs);
    free(ref);
    free(rot);
}

Test(rotate, stories260K_fold_only_is_invariant)
{
    flx_model m;
    qt_load_hf(&m, flx_test_data("stories260K/hf"));
    double rel;
    check_invariance(&m, FLX_ROT_NONE, 0, 0, 1, &rel);
    cr_assert(rel < 1e-5, "fold/untie changed the logits by %g relative", rel);
    flx_model_free(&m);
}

Test(rotate, stories260K_r1_r2_hadamard_is_invariant)
{
    flx_model m;
    qt_load_hf(&m, flx_test_data("stories260K/hf"));
    double rel;
    check_invariance(&m, FLX_ROT_HADAMARD, 0, 0, 1, &rel);
    cr_assert(rel < 1e-4, "R1+R2 changed the logits by %g relative", rel);
    flx_model_free(&m);
}

Test(rotate, stories260K_r1_to_r4_random_is_invariant)
{
    flx_model m;
    qt_load_hf(&m, flx_test_data("stories260K/hf"));
    double rel;
    /* d_ff = 172 is not a power of two: R4 is a dense random orthogonal */
    check_invariance(&m, FLX_ROT_RANDOM, 1, 1, 1, &rel);
    cr_assert(rel < 1e-4, "R1..R4 changed the logits by %g relative", rel);
    flx_model_free(&m);
}

Test(rotate, missing_online_r4_breaks_invariance)
{
    /* the check can fail: merging R4 without the online op changes the model */
    flx_model m;
    qt_load_hf(&m, flx_test_data("stories260K/hf"));
    double rel;
    check_invariance(&m, FLX_ROT_HADAMARD, 0, 1, 0, &rel);
    cr_assert(rel > 1e-2, "expected a large change, got %g", rel);
    flx_model_free(&m);
}

Test(rotate, synthetic_llama3_r1_to_r4_hadamard_is_invariant)
{
    flx_model m;
    qt_synth(&m, 128, 2, 4, 2, 256, 300, 77);
    double rel;
    check_invariance(&m, FLX_ROT_HADAMARD, 1, 1, 1, &rel);   /* R4 via FHT (256) */
    cr_assert(rel < 1e-4, "R1..R4 changed the logits by %g relative", rel);
    flx_model_free(&m);
    qt_synth(&m, 128, 2, 4, 2, 256, 300, 78);
    check_invariance(&m, FLX_ROT_RANDOM, 1, 1, 1, &rel);
    cr_assert(rel < 1e-4, "random R1..R4 changed the logits by %g relative", rel);
    flx_model_free(&m);
}

Test(rotate, online_r4_is_flexllm_fht)
{
    flx_model m;
    qt_synth(&m, 64, 1, 4, 2, 256, 50, 3);
    flx_rotation_set rs;
    cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, FLX_ROT_NONE, 1, 1, 5, NULL), FLX_OK);
    float x[256], y[256], z[16];
    for (int i = 0; i < 256; i++) x[i] = y[i] = (float)sin(i * 0.37);
    flx_rot_r4(&rs, x, 1, NULL);
    flx_fht(y, 256, FLX_FHT_FLEXLLM, 16.0f, NULL);
    cr_assert(memcmp(x, y, sizeof x) == 0);
    for (int i = 0; i < 16; i++) z[i] = (float)i;
    flx_rot_r3(&rs, z, 1, NULL);   /* head_dim 16: H16 / 4 */
    cr_assert(z[0] == 120.0f / 4.0f && z[1] == -8.0f / 4.0f);
    flx_rotset_free(&rs);
    flx_model_free(&m);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

Test(rotate, rotation_file_round_trip_and_bad_files)
{
    flx_model m;
    qt_synth(&m, 64, 3, 4, 2, 128, 50, 9);
    flx_rotation_set a, b;
    flx_error err = { 0 };
    cr_assert_eq(flx_rotset_generate(&a, &m.cfg, FLX_ROT_RANDOM, 0, 0, 21, &err), FLX_OK);
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/rot.safetensors", dir);
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_OK, "%s", err.msg);
    cr_assert(memcmp(a.r1, b.r1, 64 * 64 * 4) == 0);
    cr_assert(memcmp(a.r2, b.r2, 3 * 16 * 16 * 4) == 0);
    cr_assert_eq(b.kind, FLX_ROT_FILE);
    flx_rotset_free(&b);

    /* wrong model size: a 32-wide model cannot use 64x64 rotations */
    flx_model small;
    qt_synth(&small, 32, 3, 2, 2, 64, 50, 9);
    cr_assert_eq(flx_rotset_load(&b, &small.cfg, path, 0, 0, 0, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "R1") && strstr(err.msg, "shape"), "%s", err.msg);

    /* not orthogonal */
    a.r1[5] *= 1.01f;
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "not orthogonal") && strstr(err.msg, "R1"), "%s", err.msg);
    a.r1[5] /= 1.01f;

    /* NaN in R2.1 */
    float keep = a.r2[16 * 16 + 3];
    a.r2[16 * 16 + 3] = NAN;
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "R2.1"), "%s", err.msg);
    a.r2[16 * 16 + 3] = keep;

    /* truncated file */
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK);
    char *buf = NULL;
    size_t n = 0;
    cr_assert_eq(flx_read_file(path, 1 << 20, &buf, &n, NULL), FLX_OK);
    write_file(path, buf, n - 100);
    cr_assert_neq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_OK);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    write_file(path, buf, 5);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_EFORMAT);
    /* header length beyond the file */
    uint64_t big = 1u << 30;
    memcpy(buf, &big, 8);
    write_file(path, buf, n);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_EFORMAT);
    free(buf);

    /* R1 only (no R2) is accepted; partial R2 is not */
    float *r2 = a.r2;
    a.r2 = NULL;
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_OK, "%s", err.msg);
    cr_assert(b.r2 == NULL);
    flx_rotset_free(&b);
    a.r2 = r2;
    a.n_layers = 2;   /* writes R2.0 and R2.1 only */
    cr_assert_eq(flx_rotset_save(&a, path, &err), FLX_OK);
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, path, 0, 0, 0, &err), FLX_ENOTFOUND);
    cr_assert(strstr(err.msg, "2 of 3"), "%s", err.msg);
    a.n_layers = 3;
    cr_assert_eq(flx_rotset_load(&b, &m.cfg, "/nonexistent/rot.safetensors", 0, 0, 0, &err), FLX_EIO);

    flx_rotset_free(&a);
    flx_model_free(&small);
    flx_model_free(&m);
}

Test(rotate, hadamard_kind_needs_power_of_two)
{
    flx_model m;
    qt_synth(&m, 48, 1, 4, 2, 64, 50, 9);   /* head_dim 12 */
    flx_rotation_set rs;
    flx_error err = { 0 };
    cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, FLX_ROT_HADAMARD, 0, 0, 1, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "random") != NULL, "%s", err.msg);
    cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, FLX_ROT_RANDOM, 1, 0, 1, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "head_dim") != NULL, "%s", err.msg);
    cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, FLX_ROT_RANDOM, 0, 1, 1, &err), FLX_OK, "%s", err.msg);
    flx_rotset_free(&rs);
    flx_model_free(&m);
}

/* ---------------------------------------------------------------- W4A4 with planted outliers */

typedef struct lin_cap {
    float *x[4][5];
    int n_in[4][5];
    int n_tok;
} lin_cap;

static void lin_cap_fn(void *vctx, int layer, int kind, const double *x, int n_tokens, int n_in)
{
    lin_cap *c = vctx;
    if (layer >= 4 || kind > 4) return;
    float *f = malloc(sizeof(float) * n_tokens * n_in);
    for (int i = 0; i < n_tokens * n_in; i++) f[i] = (float)x[i];
    c->x[layer][kind] = f;
    c->n_in[layer][kind] = n_in;
    c->n_tok = n_tokens;
}

/* FlexLLM's A4: per-token asymmetric, float offset (reference-design §1.2(a)) */
static void fake_a4(const float *x, float *y, int n_tok, int n_in)
{
    for (int t = 0; t < n_tok; t++) {
        const float *r = x + t * n_in;
        float mx = -1e32f, mn = 1e32f;
        for (int i = 0; i < n_in; i++) { if (r[i] > mx) mx = r[i]; if (r[i] < mn) mn = r[i]; }
        float s = (mx - mn) / 15.0f;
        if (s == 0) s = 1;
        for (int i = 0; i < n_in; i++) y[t * n_in + i] = s * roundf((r[i] - mn) / s) + mn;
    }
}

/* W4 per-channel symmetric, s = max|w| / 7, q in [-8, 7] */
static void fake_w4(const float *w, float *y, int n_out, int n_in)
{
    for (int o = 0; o < n_out; o++) {
        float m = 0;
        for (int i = 0; i < n_in; i++) m = fabsf(w[o * n_in + i]) > m ? fabsf(w[o * n_in + i]) : m;
        float s = m > 0 ? m / 7.0f : 1.0f;
        for (int i = 0; i < n_in; i++) {
            float q = roundf(w[o * n_in + i] / s);
            q = q < -8 ? -8 : q > 7 ? 7 : q;
            y[o * n_in + i] = s * q;
        }
    }
}

/* sum over the linears that read the residual stream (q, k, v, gate, up)
 * of ||A4(X) W4^T - X W^T||^2, and of ||X W^T||^2 */
static void w4a4_error(const flx_model *m, const lin_cap *c, double *err, double *ref)
{
    *err = *ref = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const flx_llama_layer *L = &m->w.layers[l];
        const int qd = m->cfg.n_heads * m->cfg.head_dim, kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
        struct { const float *w; int n_out, kind; } lin[7] = {
            { L->wq, qd, 0 }, { L->wk, kvd, 0 }, { L->wv, kvd, 0 }, { L->wo, m->cfg.d_model, 1 },
            { L->w_gate, m->cfg.d_ff, 2 }, { L->w_up, m->cfg.d_ff, 2 }, { L->w_down, m->cfg.d_model, 3 } };
        for (int k = 0; k < 7; k++) {
            if (lin[k].kind == 1 || lin[k].kind == 3) continue;
            const int n_in = c->n_in[l][lin[k].kind], n_out = lin[k].n_out, nt = c->n_tok;
            const float *x = c->x[l][lin[k].kind];
            float *xq = malloc(sizeof(float) * nt * n_in), *wq = malloc(sizeof(float) * n_out * n_in);
            fake_a4(x, xq, nt, n_in);
            fake_w4(lin[k].w, wq, n_out, n_in);
            for (int t = 0; t < nt; t++)
                for (int o = 0; o < n_out; o++) {
                    double y = 0, yq = 0;
                    for (int i = 0; i < n_in; i++) {
                        y += (double)x[t * n_in + i] * lin[k].w[o * n_in + i];
                        yq += (double)xq[t * n_in + i] * wq[o * n_in + i];
                    }
                    *err += (yq - y) * (yq - y);
                    *ref += y * y;
                }
            free(xq); free(wq);
        }
    }
}

Test(rotate, hadamard_lowers_w4a4_error_with_planted_outliers)
{
    /* 2 channels of a 1024-wide residual stream 100x larger than the rest
     * (the "massive activations" of trained LLMs) */
    const int d = 1024, n_out_ch = 2;
    const float amp = 100.0f;
    const int outliers[2] = { 77, 301 };
    double rel[2];
    for (int rot = 0; rot < 2; rot++) {
        flx_model m;
        qt_synth(&m, d, 2, d / 64, 2, 2 * d, 200, 31);
        /* massive residual-stream channels, as in real LLMs */
        float *e = (float *)(void *)m.w.tok_embd;
        for (int v = 0; v < m.cfg.n_vocab; v++)
            for (int k = 0; k < n_out_ch; k++) e[(size_t)v * d + outliers[k]] *= amp;
        /* and small norm gains on those channels, so they do not dominate
         * the linears' outputs (what trained models learn for them) */
        for (int l = 0; l < m.cfg.n_layers; l++)
            for (int k = 0; k < n_out_ch; k++) {
                ((float *)(void *)m.w.layers[l].attn_norm)[outliers[k]] /= amp;
                ((float *)(void *)m.w.layers[l].ffn_norm)[outliers[k]] /= amp;
            }
        flx_rotation_set rs;
        cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, rot ? FLX_ROT_HADAMARD : FLX_ROT_NONE, 0, 0, 5, NULL), FLX_OK);
        cr_assert_eq(flx_spinquant_apply(&m, &rs, NULL, NULL), FLX_OK);
        int32_t ids[32];
        for (int i = 0; i < 32; i++) ids[i] = (i * 37 + 11) % m.cfg.n_vocab;
        lin_cap c = { 0 };
        double *logits = malloc(sizeof(double) * 32 * m.cfg.n_vocab);
        qt_forward(&m, ids, 32, &rs, lin_cap_fn, &c, logits);
        double err, ref;
        w4a4_error(&m, &c, &err, &ref);
        rel[rot] = err / ref;
        for (int l = 0; l < 4; l++)
            for (int k = 0; k < 5; k++) free(c.x[l][k]);
        free(logits);
        flx_rotset_free(&rs);
        flx_model_free(&m);
    }
    cr_log_info("W4A4 relative output error of q/k/v/gate/up with %d planted %gx outlier channels of %d: %.4g without rotation, %.4g with R1+R2 Hadamard: factor %.1f",
                n_out_ch, (double)amp, d, rel[0], rel[1], rel[0] / rel[1]);
    cr_assert(rel[0] > 10.0 * rel[1], "Hadamard lowered the W4A4 error only by %.2fx", rel[0] / rel[1]);
}

/* ---------------------------------------------------------------- with the library's forward */

#include "flx_calib.h"
#include "flx_llama.h"
#include "flx_synth.h"

/* logits (n, n_vocab) from flx_llama_forward with rs's online rotations */
static float *real_logits(const flx_model *m, const int32_t *ids, int n, const flx_rotation_set *rs)
{
    flx_llama_hooks h = flx_rot_hooks(rs);
    flx_llama_opts o = { 0 };
    o.n_threads = 1;
    o.max_tokens = n;
    o.max_ctx = n;
    o.hooks = rs ? &h : NULL;
    flx_llama_state st;
    flx_error err = { 0 };
    cr_assert_eq(flx_llama_init(&st, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&st, ids, n, &err), FLX_OK, "%s", err.msg);
    float *lg = malloc(sizeof(float) * n * m->cfg.n_vocab);
    cr_assert_eq(flx_llama_logits(&st, 0, n, lg, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&st);
    return lg;
}

static double rel_diff_f(const float *a, const float *b, size_t n)
{
    double md = 0, ma = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > md) md = fabs((double)a[i] - b[i]);
        if (fabs(a[i]) > ma) ma = fabs(a[i]);
    }
    return md / ma;
}

static void real_invariance(flx_model *m, flx_rot_kind kind, int r3, int r4, const char *what)
{
    int32_t ids[64];
    int n = qt_story_ids(ids, 64);
    for (int i = 0; i < n; i++) ids[i] %= m->cfg.n_vocab;
    float *ref = real_logits(m, ids, n, NULL);
    flx_rotation_set rs;
    flx_error err = { 0 };
    cr_assert_eq(flx_rotset_generate(&rs, &m->cfg, kind, r3, r4, 99, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_spinquant_apply(m, &rs, NULL, &err), FLX_OK, "%s", err.msg);
    float *rot = real_logits(m, ids, n, &rs);
    double rel = rel_diff_f(ref, rot, (size_t)n * m->cfg.n_vocab);
    cr_log_info("%s (flx_llama_forward, fp32): max rel logit change %.3g", what, rel);
    cr_assert(rel < 1e-4, "%s: rotated model's logits differ by %g relative", what, rel);
    flx_rotset_free(&rs);
    free(ref);
    free(rot);
}

Test(rotate, library_forward_stories260K_is_invariant)
{
    flx_model m;
    flx_error err = { 0 };
    cr_assert_eq(flx_model_load(&m, flx_test_data("stories260K/hf"), &err), FLX_OK, "%s", err.msg);
    real_invariance(&m, FLX_ROT_HADAMARD, 0, 0, "stories260K R1+R2");
    flx_model_free(&m);
    cr_assert_eq(flx_model_load(&m, flx_test_data("stories260K/stories260K.gguf"), &err), FLX_OK, "%s", err.msg);
    real_invariance(&m, FLX_ROT_RANDOM, 1, 1, "stories260K (GGUF, adjacent RoPE) R1..R4");
    flx_model_free(&m);
}

Test(rotate, library_forward_synthetic_llama3_is_invariant)
{
    flx_model m;
    qt_synth(&m, 256, 2, 4, 2, 512, 300, 12);
    real_invariance(&m, FLX_ROT_HADAMARD, 1, 1, "synthetic llama3 R1..R4");
    flx_model_free(&m);
    /* the library's own synthetic llama3-style model */
    flx_llama_config cfg;
    flx_error err = { 0 };
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_synth_build(&m, &cfg, 5, &err), FLX_OK, "%s", err.msg);
    real_invariance(&m, flx_is_pow2(cfg.d_model) ? FLX_ROT_HADAMARD : FLX_ROT_RANDOM, 1, 1, "flx_synth tiny R1..R4");
    flx_model_free(&m);
}
