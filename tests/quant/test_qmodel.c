/* qmodel: recipe strings (meaning and errors), building a quantized
 * stories260K, .flxq save -> load identity and byte-for-byte determinism,
 * refusal of damaged files, the fake-quant float model (fp recipe equals
 * the float model exactly; quantized recipes stay close), and the
 * `flxemu quantize` command's bad-input paths. */
#include "flx_qmodel.h"
#include "flx_llama.h"
#include "flx_safetensors.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

/* ---------------------------------------------------------------- recipes */

Test(qmodel, recipe_strings)
{
    flx_recipe r;
    flx_error err;
    cr_assert_eq(flx_recipe_parse(&r, "fp", &err), FLX_OK);
    cr_assert_eq(r.kind, FLX_RECIPE_FP);
    cr_assert(r.w_bits == 16 && r.a_bits == 16 && r.kv_bits == 16);

    cr_assert_eq(flx_recipe_parse(&r, "flexllm", &err), FLX_OK);
    /* reference-design §3.2 */
    cr_assert(r.w_bits == 4 && r.w.scheme == FLX_QS_SYM && r.w.gran == FLX_QG_ROW && r.w_wsum);
    cr_assert(r.w.round == FLX_QR_HALF_AWAY && !r.w.mse_clip);
    cr_assert(r.a_bits == 4 && r.a.scheme == FLX_QS_ASYM_FLOAT && r.a.gran == FLX_QG_ROW);
    cr_assert(r.quant_head && r.static_attn && r.kv_bits == 8 && r.r4_online && !r.r3_online);

    cr_assert_eq(flx_recipe_parse(&r, "w4a16g128", &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(r.name, "w4a16g128");
    cr_assert(r.w.gran == FLX_QG_GROUP && r.w.group_size == 128 && r.a_bits == 16 && r.kv_bits == 16);
    cr_assert_eq(flx_recipe_parse(&r, "w4g128a16", &err), FLX_OK);
    cr_assert_str_eq(r.name, "w4a16g128");   /* canonical order */

    cr_assert_eq(flx_recipe_parse(&r, "w8a8", &err), FLX_OK);
    cr_assert(r.w_bits == 8 && r.a_bits == 8 && r.kv_bits == 16 && r.kind == FLX_RECIPE_RESEARCH);
    cr_assert_eq(flx_recipe_parse(&r, "w4a8kv8", &err), FLX_OK);
    cr_assert(r.kv_bits == 8 && r.k.scheme == FLX_QS_ASYM_FLOAT && r.k.gran == FLX_QG_GROUP);

    cr_assert_eq(flx_recipe_parse(&r, "w4a4kv4-spinquant", &err), FLX_OK);
    cr_assert_eq(r.kind, FLX_RECIPE_SPINQUANT);
    cr_assert(r.w.mse_clip && r.w.round == FLX_QR_HALF_EVEN && r.w.scheme == FLX_QS_SYM);
    cr_assert(r.a.scheme == FLX_QS_ASYM_ZP && r.a_o.gran == FLX_QG_GROUP && r.k.scheme == FLX_QS_ASYM_ZP);
    cr_assert(!r.quant_head && r.r3_online && r.r4_online);

    char json[2048];
    flx_recipe_json(&r, json, sizeof json);
    cr_assert(strstr(json, "\"name\":\"w4a4kv4-spinquant\"") && strstr(json, "half_even"), "%s", json);

    struct { const char *s, *msg; } bad[] = {
        {"", "empty"},
        {"int4", "unknown recipe"},
        {"w4", "needs both"},
        {"w9a8", "weight bits 9"},
        {"w4a1", "activation bits 1"},
        {"w4a8kv17", "KV bits 17"},
        {"w4a8-quarot", "unknown suffix"},
        {"w4a4a4", "given twice"},
        {"w4a16g0", "positive"},
        {"w16a8g128", "needs quantized weights"},
        {"w4a8g", "needs a number"},
        {"w4a8x2", "unexpected"},
        {"w4a1234567", "too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(flx_recipe_parse(&r, bad[i].s, &err), FLX_EINVAL, "'%s' accepted", bad[i].s);
        cr_assert(strstr(err.msg, bad[i].msg) != NULL, "'%s': %s", bad[i].s, err.msg);
    }
}

/* ---------------------------------------------------------------- helpers */

static void load_stories(flx_model *m)
{
    flx_error err = {0};
    cr_assert_eq(flx_model_load(m, flx_test_data("stories260K/hf"), &err), FLX_OK, "%s", err.msg);
}

static void build(flx_qmodel *qm, const flx_model *m, const char *recipe, const flx_attn_scales *sc)
{
    flx_recipe r;
    flx_error err = {0};
    cr_assert_eq(flx_recipe_parse(&r, recipe, &err), FLX_OK, "%s", err.msg);
    flx_qbuild b = {0};
    b.recipe = &r;
    b.scales = sc;
    b.source = "stories260K";
    cr_assert_eq(flx_qmodel_build(qm, m, &b, &err), FLX_OK, "%s", err.msg);
}

static void file_sha(const char *path, char hex[65])
{
    flx_error err;
    cr_assert_eq(flx_sha256_file_hex(path, hex, &err), FLX_OK, "%s", err.msg);
}

static void assert_qtensor_eq(const flx_qtensor *a, const flx_qtensor *b, const char *what)
{
    cr_assert(a->n_out == b->n_out && a->n_in == b->n_in && a->bits == b->bits, "%s", what);
    cr_assert(a->group_size == b->group_size && a->symmetric == b->symmetric, "%s", what);
    size_t n = (size_t)a->n_out * a->n_in, ng = (size_t)a->n_out * (a->n_in / a->group_size);
    if (a->q) {
        cr_assert(b->q != NULL, "%s", what);
        cr_assert_eq(memcmp(a->q, b->q, n), 0, "%s codes", what);
        cr_assert_eq(memcmp(a->scale, b->scale, ng * 4), 0, "%s scales", what);
        cr_assert_eq(!a->wsum, !b->wsum, "%s", what);
        if (a->wsum) cr_assert_eq(memcmp(a->wsum, b->wsum, (size_t)a->n_out * 4), 0, "%s", what);
    } else {
        cr_assert_eq(memcmp(a->w, b->w, n * 4), 0, "%s float", what);
    }
}

/* ---------------------------------------------------------------- build, save, load */

Test(qmodel, build_quantizes_like_the_quantizer)
{
    flx_model m;
    load_stories(&m);
    flx_qmodel qm;
    build(&qm, &m, "w4a8", NULL);
    /* layer 1 wk row 3, recomputed with flx_quant directly */
    const flx_qtensor *t = &qm.layers[1].wk;
    int32_t n_in = t->n_in;
    cr_assert_eq(n_in, 64);
    cr_assert_eq(t->n_out, 32);   /* 4 kv heads x 8 */
    flx_qspec s = flx_qspec_make(4, FLX_QS_SYM, FLX_QG_ROW, 0);
    flx_qparams p;
    int32_t q[64];
    const float *row = m.w.layers[1].wk + 3 * n_in;
    flx_quant_params(&s, row, 1, n_in, &p);
    flx_quant_apply(&s, row, 1, n_in, &p, q);
    cr_assert_eq(t->scale[3], p.scale);
    for (int k = 0; k < n_in; k++) cr_assert_eq(t->q[3 * n_in + k], q[k]);
    /* research recipes keep the head in float, tied weights copied */
    cr_assert(qm.head.q == NULL && qm.head.w != NULL);
    cr_assert_eq(memcmp(qm.head.w, m.w.tok_embd, (size_t)512 * 64 * 4), 0);
    flx_qmodel_free(&qm);

    /* flexllm: INT4 head with wsum = s * sum(q) */
    flx_attn_scales sc[5];
    for (int l = 0; l < 5; l++) sc[l] = (flx_attn_scales){0.01f, 0.1f, 0.02f, 1.0f / 255};
    build(&qm, &m, "flexllm", sc);
    const flx_qtensor *h = &qm.head;
    cr_assert(h->q && h->wsum && h->bits == 4);
    for (int o = 0; o < h->n_out; o += 37) {
        int64_t sum = 0;
        for (int k = 0; k < h->n_in; k++) {
            int v = h->q[(size_t)o * h->n_in + k];
            cr_assert(v >= -8 && v <= 7);
            sum += v;
        }
        cr_assert_eq(h->wsum[o], h->scale[o] * (float)sum);
    }
    cr_assert_eq(qm.layers[4].k_s, 0.1f);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
}

Test(qmodel, save_load_identical_and_deterministic)
{
    flx_model m;
    load_stories(&m);
    const char *dir = flx_test_tmpdir();
    char p1[512], p2[512], p3[512];
    const char *recipes[3] = {"w4a8kv8", "w8a8g4", "flexllm"};
    flx_attn_scales sc[5];
    for (int l = 0; l < 5; l++) sc[l] = (flx_attn_scales){0.01f * (l + 1), 0.1f, 0.02f, 1.0f / 255};
    for (int ri = 0; ri < 3; ri++) {
        flx_qmodel a, b, c;
        flx_error err = {0};
        build(&a, &m, recipes[ri], sc);
        build(&c, &m, recipes[ri], sc);   /* a second build of the same input */
        snprintf(p1, sizeof p1, "%s/a%d.flxq", dir, ri);
        snprintf(p2, sizeof p2, "%s/b%d.flxq", dir, ri);
        snprintf(p3, sizeof p3, "%s/c%d.flxq", dir, ri);
        cr_assert_eq(flx_qmodel_save(&a, p1, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_qmodel_save(&c, p3, &err), FLX_OK, "%s", err.msg);
        cr_assert(flx_qmodel_is_file(p1));
        cr_assert_eq(flx_qmodel_load(&b, p1, &err), FLX_OK, "%s", err.msg);
        cr_assert_str_eq(b.recipe, a.recipe);
        cr_assert_str_eq(b.rotation, "none");
        cr_assert_eq(memcmp(&b.cfg, &a.cfg, sizeof a.cfg), 0);
        cr_assert_eq(memcmp(b.tok_embd, a.tok_embd, (size_t)512 * 64 * 4), 0);
        cr_assert_eq(memcmp(b.rope_inv_freq, a.rope_inv_freq, 4 * sizeof(double)), 0);
        for (int l = 0; l < 5; l++) {
            const flx_qlayer *x = &a.layers[l], *y = &b.layers[l];
            assert_qtensor_eq(&x->wq, &y->wq, "wq");
            assert_qtensor_eq(&x->wk, &y->wk, "wk");
            assert_qtensor_eq(&x->wv, &y->wv, "wv");
            assert_qtensor_eq(&x->wo, &y->wo, "wo");
            assert_qtensor_eq(&x->w_gate, &y->w_gate, "w_gate");
            assert_qtensor_eq(&x->w_up, &y->w_up, "w_up");
            assert_qtensor_eq(&x->w_down, &y->w_down, "w_down");
            cr_assert_eq(memcmp(x->attn_norm, y->attn_norm, 64 * 4), 0);
            cr_assert(x->q_s == y->q_s && x->k_s == y->k_s && x->v_s == y->v_s && x->a_s == y->a_s);
        }
        assert_qtensor_eq(&a.head, &b.head, "head");
        /* same inputs -> same bytes; and load -> save gives the same bytes */
        cr_assert_eq(flx_qmodel_save(&b, p2, &err), FLX_OK, "%s", err.msg);
        char h1[65], h2[65], h3[65];
        file_sha(p1, h1);
        file_sha(p2, h2);
        file_sha(p3, h3);
        cr_assert_str_eq(h1, h2, "%s: load+save changed the bytes", recipes[ri]);
        cr_assert_str_eq(h1, h3, "%s: two builds differ", recipes[ri]);
        flx_qmodel_free(&a);
        flx_qmodel_free(&b);
        flx_qmodel_free(&c);
    }
    /* int4 codes are nibble pairs: [n_out, n_in/2] U8; the metadata names the recipe */
    snprintf(p1, sizeof p1, "%s/a0.flxq", dir);
    flx_safetensors st;
    flx_error err;
    cr_assert_eq(flx_st_open(&st, p1, &err), FLX_OK, "%s", err.msg);
    const flx_st_tensor *t = flx_st_find(&st, "layers.0.wq.q");
    cr_assert(t && t->dtype == FLX_ST_U8 && t->shape[0] == 64 && t->shape[1] == 32);
    cr_assert_str_eq(flx_st_meta(&st, "recipe"), "w4a8kv8");
    cr_assert_str_eq(flx_st_meta(&st, "format"), "flxq");
    cr_assert(strstr(flx_st_meta(&st, "config"), "\"d_ff\":172") != NULL);
    flx_st_close(&st);
    flx_model_free(&m);
}

Test(qmodel, damaged_files_are_refused)
{
    flx_model m;
    load_stories(&m);
    flx_qmodel qm, back;
    build(&qm, &m, "w4a8", NULL);
    const char *dir = flx_test_tmpdir();
    char p[512], q[512];
    flx_error err = {0};
    snprintf(p, sizeof p, "%s/ok.flxq", dir);
    cr_assert_eq(flx_qmodel_save(&qm, p, &err), FLX_OK, "%s", err.msg);
    char *data = NULL;
    size_t bytes = 0;
    cr_assert_eq(flx_read_file(p, 1 << 26, &data, &bytes, &err), FLX_OK);

    /* truncated */
    snprintf(q, sizeof q, "%s/trunc.flxq", dir);
    FILE *f = fopen(q, "wb");
    fwrite(data, 1, bytes - 100, f);
    fclose(f);
    cr_assert_neq(flx_qmodel_load(&back, q, &err), FLX_OK);
    cr_assert(strstr(err.msg, q) != NULL, "%s", err.msg);
    cr_assert(!flx_qmodel_is_file(q));

    /* a plain safetensors file is not a .flxq */
    cr_assert(!flx_qmodel_is_file(flx_test_data("stories260K/hf/model.safetensors")));
    cr_assert_eq(flx_qmodel_load(&back, flx_test_data("stories260K/hf/model.safetensors"), &err),
                 FLX_EFORMAT);
    cr_assert(strstr(err.msg, "not a .flxq") != NULL, "%s", err.msg);

    /* a code outside the 4-bit range cannot come from a nibble, so flip the
     * recipe in the header to an 8-bit one of the same length instead: the
     * U8 nibble tensors no longer match the expected I8 shape */
    char *hdr = memmem(data, bytes, "\"recipe\":\"w4a8\"", 15);
    cr_assert(hdr != NULL);
    memcpy(hdr, "\"recipe\":\"w8a8\"", 15);
    snprintf(q, sizeof q, "%s/recipe.flxq", dir);
    f = fopen(q, "wb");
    fwrite(data, 1, bytes, f);
    fclose(f);
    cr_assert_eq(flx_qmodel_load(&back, q, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tensor 'layers.0.wq.q'") != NULL, "%s", err.msg);

    /* an unknown recipe in the metadata */
    memcpy(hdr, "\"recipe\":\"w9a8\"", 15);
    f = fopen(q, "wb");
    fwrite(data, 1, bytes, f);
    fclose(f);
    cr_assert_eq(flx_qmodel_load(&back, q, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "metadata field 'recipe'") != NULL, "%s", err.msg);

    /* a NaN scale */
    memcpy(hdr, "\"recipe\":\"w4a8\"", 15);
    flx_safetensors st;
    cr_assert_eq(flx_st_open(&st, p, &err), FLX_OK);
    const flx_st_tensor *s = flx_st_find(&st, "layers.2.wo.scale");
    size_t off = s->offset + 4 * 5;
    flx_st_close(&st);
    float nan = NAN;
    memcpy(data + off, &nan, 4);
    f = fopen(q, "wb");
    fwrite(data, 1, bytes, f);
    fclose(f);
    cr_assert_eq(flx_qmodel_load(&back, q, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "layers.2.wo.scale") && strstr(err.msg, "element 5"), "%s", err.msg);
    free(data);

    /* recipe vs shapes: group 48 does not divide d_model 64 */
    flx_recipe r;
    cr_assert_eq(flx_recipe_parse(&r, "w4a16g48", &err), FLX_OK);
    cr_assert_eq(flx_recipe_check(&r, &m.cfg, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "group size 48 does not divide") != NULL, "%s", err.msg);
    flx_qbuild b = {0};
    b.recipe = &r;
    cr_assert_eq(flx_qmodel_build(&back, &m, &b, &err), FLX_EINVAL);
    /* flexllm without calibrated scales */
    cr_assert_eq(flx_recipe_parse(&r, "flexllm", &err), FLX_OK);
    cr_assert_eq(flx_qmodel_build(&back, &m, &b, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "--calib") != NULL, "%s", err.msg);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
}

/* ---------------------------------------------------------------- fake quantization */

static void logits_of(const flx_model *m, const flx_llama_hooks *hooks, const int32_t *toks, int n,
                      float *out)
{
    flx_llama_opts o = {0};
    o.max_tokens = n;
    o.max_ctx = n;
    o.hooks = hooks;
    flx_llama_state st;
    flx_error err = {0};
    cr_assert_eq(flx_llama_init(&st, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&st, toks, n, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_logits(&st, 0, n, out, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&st);
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

Test(qmodel, fake_quant_float_model)
{
    flx_model m;
    load_stories(&m);
    enum { N = 48, V = 512 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (i * 37 + 11) % V;
    float *ref = malloc(sizeof(float) * N * V), *got = malloc(sizeof(float) * N * V);
    logits_of(&m, NULL, toks, N, ref);

    const char *dir = flx_test_tmpdir();
    char p[512];
    struct { const char *recipe; double lo, hi; } cases[] = {
        {"fp", 0.0, 0.0},          /* exactly the float model */
        {"w16a16", 0.0, 0.0},      /* nothing quantized either */
        {"w8a8", 1e-5, 0.03},
        {"w4a16", 1e-3, 0.5},
        {"w4a4kv4-spinquant", 1e-2, 2.0},
    };
    double prev = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flx_qmodel qm;
        build(&qm, &m, cases[i].recipe, NULL);
        snprintf(p, sizeof p, "%s/m%zu.flxq", dir, i);
        flx_error err = {0};
        cr_assert_eq(flx_qmodel_save(&qm, p, &err), FLX_OK, "%s", err.msg);
        flx_qmodel_free(&qm);
        /* through the file, as flxemu ppl does */
        flx_model fm = {0};
        flx_fakequant *fq = NULL;
        cr_assert_eq(flx_fakequant_open(&fq, &fm, p, &err), FLX_OK, "%s", err.msg);
        logits_of(&fm, &fq->hooks, toks, N, got);
        double e = rel_err(got, ref, (size_t)N * V);
        cr_assert(e >= cases[i].lo && e <= cases[i].hi, "%s: relative logit error %g", cases[i].recipe, e);
        if (i >= 2) cr_assert(e > prev, "%s: error %g not above the previous recipe's %g", cases[i].recipe, e, prev);
        prev = e;
        /* dequantized weights are s * q */
        if (flx_qtensor_is_int(&fq->own_qm->layers[0].wq)) {
            const flx_qtensor *t = &fq->own_qm->layers[0].wq;
            int8_t *row = malloc((size_t)t->n_in);
            cr_assert_not_null(row);
            flx_qtensor_rows(t, 70 / t->n_in, 1, row);
            cr_assert_eq(fm.w.layers[0].wq[70], t->scale[70 / t->n_in] * (float)row[70 % t->n_in]);
            free(row);
        }
        flx_model_free(&fm);
        flx_fakequant_close(fq);
    }
    free(ref);
    free(got);
    flx_model_free(&m);
}

/* The fake-quant model's weights: s * q per group, the same bits whether
 * dequantized on 1 or on 2 threads. */
Test(qmodel, fake_quant_weights_by_group_and_thread_count)
{
    flx_model m;
    load_stories(&m);
    const char *dir = flx_test_tmpdir();
    const char *recipes[2] = { "w4a16g4", "w4a4kv4-spinquant" };   /* 4 divides d_ff 172 */
    for (int i = 0; i < 2; i++) {
        flx_qmodel qm;
        build(&qm, &m, recipes[i], NULL);
        char p[512];
        snprintf(p, sizeof p, "%s/g%d.flxq", dir, i);
        flx_error err = {0};
        cr_assert_eq(flx_qmodel_save(&qm, p, &err), FLX_OK, "%s", err.msg);
        flx_qmodel_free(&qm);
        flx_model f1 = {0}, f2 = {0};
        flx_fakequant *q1 = NULL, *q2 = NULL;
        cr_assert_eq(flx_fakequant_open(&q1, &f1, p, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_fakequant_open_threads(&q2, &f2, p, 2, &err), FLX_OK, "%s", err.msg);
        const flx_llama_config *c = &f1.cfg;
        const int32_t d = c->d_model, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, f = c->d_ff;
        const size_t n_w[7] = { (size_t)qd * d, (size_t)kvd * d, (size_t)kvd * d, (size_t)d * qd,
                                (size_t)f * d, (size_t)f * d, (size_t)d * f };
        for (int l = 0; l < c->n_layers; l++) {
            const flx_llama_layer *a = &f1.w.layers[l], *b = &f2.w.layers[l];
            const float *wa[7] = { a->wq, a->wk, a->wv, a->wo, a->w_gate, a->w_up, a->w_down };
            const float *wb[7] = { b->wq, b->wk, b->wv, b->wo, b->w_gate, b->w_up, b->w_down };
            for (int k = 0; k < 7; k++)
                cr_assert_eq(memcmp(wa[k], wb[k], n_w[k] * sizeof(float)), 0, "%s layer %d linear %d", recipes[i], l, k);
        }
        cr_assert_eq(memcmp(f1.w.output, f2.w.output, (size_t)c->n_vocab * d * sizeof(float)), 0);
        /* the hooks' per-token fake quantization spread over the pool: same logits */
        enum { NT = 40 };
        int32_t toks[NT];
        for (int t = 0; t < NT; t++) toks[t] = (t * 29 + 5) % c->n_vocab;
        float *l1 = malloc(sizeof(float) * NT * c->n_vocab), *l2 = malloc(sizeof(float) * NT * c->n_vocab);
        logits_of(&f1, &q1->hooks, toks, NT, l1);
        logits_of(&f2, &q2->hooks, toks, NT, l2);
        cr_assert(q1->pool == NULL && q2->pool != NULL);
        cr_assert_eq(memcmp(l1, l2, sizeof(float) * NT * c->n_vocab), 0, "%s: logits differ with the pool", recipes[i]);
        free(l1);
        free(l2);
        /* w_up of layer 1, row 5, column 37: group 37 / gs of that row */
        const flx_qtensor *t = &q1->own_qm->layers[1].w_up;
        const int32_t ng = t->n_in / t->group_size;
        const size_t at = (size_t)5 * t->n_in + 37, gi = (size_t)5 * ng + 37 / t->group_size;
        cr_assert_eq(t->group_size, i == 0 ? 4 : t->n_in);
        /* the loaded model's codes (its 4-bit ones stay the file's nibbles) */
        int8_t *row = malloc((size_t)t->n_in);
        cr_assert(row && flx_qtensor_is_int(t));
        flx_qtensor_rows(t, 5, 1, row);
        const float code = (float)row[37];
        free(row);
        const float want = t->zero ? t->scale[gi] * (code - t->zero[gi]) : t->scale[gi] * code;
        cr_assert_eq(f1.w.layers[1].w_up[at], want);
        cr_assert_neq(want, 0.0f);
        flx_model_free(&f1);
        flx_model_free(&f2);
        flx_fakequant_close(q1);
        flx_fakequant_close(q2);
    }
    flx_model_free(&m);
}

Test(qmodel, rotated_fp_model_keeps_its_logits)
{
    flx_model m, orig;
    load_stories(&m);
    load_stories(&orig);
    enum { N = 32, V = 512 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (i * 53 + 7) % V;
    float *ref = malloc(sizeof(float) * N * V), *got = malloc(sizeof(float) * N * V);
    logits_of(&orig, NULL, toks, N, ref);

    flx_error err = {0};
    flx_recipe r;
    cr_assert_eq(flx_recipe_parse(&r, "fp", &err), FLX_OK);
    flx_rotation_set rs;
    /* stories260K: d_model 64 (Hadamard would do), d_ff 172 -> dense random R4 */
    cr_assert_eq(flx_rotset_generate(&rs, &m.cfg, FLX_ROT_RANDOM, 0, 1, 7, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_spinquant_apply(&m, &rs, NULL, &err), FLX_OK, "%s", err.msg);
    flx_qmodel qm;
    flx_qbuild b = {0};
    b.recipe = &r;
    b.rot = &rs;
    b.rot_seed = 7;
    cr_assert_eq(flx_qmodel_build(&qm, &m, &b, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.r4_online && qm.r4_dense);
    const char *dir = flx_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/rot.flxq", dir);
    cr_assert_eq(flx_qmodel_save(&qm, p, &err), FLX_OK, "%s", err.msg);
    flx_qmodel_free(&qm);
    flx_rotset_free(&rs);

    flx_model fm = {0};
    flx_fakequant *fq = NULL;
    cr_assert_eq(flx_fakequant_open(&fq, &fm, p, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(fq->own_qm->rotation, "random");
    logits_of(&fm, &fq->hooks, toks, N, got);
    double e = rel_err(got, ref, (size_t)N * V);
    cr_assert(e < 1e-4, "rotated fp model drifts: %g", e);
    flx_model_free(&fm);
    flx_fakequant_close(fq);
    /* the online R4 (dense here) on 2 threads: the same logits */
    float *got2 = malloc(sizeof(float) * N * V);
    cr_assert_eq(flx_fakequant_open_threads(&fq, &fm, p, 2, &err), FLX_OK, "%s", err.msg);
    logits_of(&fm, &fq->hooks, toks, N, got2);
    cr_assert_eq(memcmp(got, got2, sizeof(float) * N * V), 0, "online R4 on the pool changed the logits");
    free(got2);
    flx_model_free(&fm);
    flx_fakequant_close(fq);
    free(ref);
    free(got);
    flx_model_free(&m);
    flx_model_free(&orig);
}

/* ---------------------------------------------------------------- CLI */

static int run(const char *args, char *out, size_t cap)
{
    char cmd[20000];
    snprintf(cmd, sizeof cmd, "%s quantize %s 2>&1", flx_test_bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(qmodel, cli_bad_input_and_determinism, .timeout = 120)
{
    char out[8192], args[16384];
    /* the GGUF carries the tokenizer the calibration text needs */
    char model[4096];
    snprintf(model, sizeof model, "%s", flx_test_data("stories260K/stories260K.gguf"));
    const char *dir = flx_test_tmpdir();
    cr_assert_eq(run("--help", out, sizeof out), 0);
    cr_assert(strstr(out, "--recipe") != NULL);
    snprintf(args, sizeof args, "--model %s --recipe w4a3kv99 --out %s/x.flxq", model, dir);
    cr_assert_eq(run(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "KV bits 99") != NULL, "%s", out);
    snprintf(args, sizeof args, "--model %s --recipe w4a8g48 --out %s/x.flxq", model, dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "group size 48 does not divide") != NULL, "%s", out);
    snprintf(args, sizeof args, "--model %s --recipe flexllm --out %s/x.flxq", model, dir);
    cr_assert_eq(run(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--calib") != NULL, "%s", out);
    snprintf(args, sizeof args, "--model %s --recipe w4a8 --gptq --out %s/x.flxq", model, dir);
    cr_assert_eq(run(args, out, sizeof out), 2, "%s", out);
    snprintf(args, sizeof args, "--model %s --recipe w4a8 --rotate nosuchfile --out %s/x.flxq", model, dir);
    cr_assert_eq(run(args, out, sizeof out), 2, "%s", out);
    /* a rotation file of the wrong size: a quantized model file is safetensors but has no R1 */
    snprintf(args, sizeof args, "--model %s --recipe w4a8 --rotate %s --out %s/x.flxq", model,
             flx_test_data("stories260K/hf/model.safetensors"), dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    /* R1 of the wrong size (stories260K has d_model 64), and a 64 x 64 R1 that is not orthogonal */
    static float r1[64 * 64];
    char rot[512];
    flx_error e2 = {0};
    for (int sz = 32, pass = 0; pass < 2; pass++, sz = 64) {
        for (int i = 0; i < sz * sz; i++) r1[i] = (i % (sz + 1) == 0) ? 1.0f : 0.0f;   /* identity */
        if (pass == 1) r1[5] = 0.5f;                                                  /* not orthogonal */
        flx_st_desc d = {"R1", FLX_ST_F32, 2, {sz, sz}};
        const void *data[1] = {r1};
        snprintf(rot, sizeof rot, "%s/rot%d.safetensors", dir, pass);
        cr_assert_eq(flx_st_write(rot, &d, data, 1, NULL, NULL, 0, &e2), FLX_OK, "%s", e2.msg);
        snprintf(args, sizeof args, "--model %s --recipe w4a8 --rotate %s --out %s/x.flxq", model, rot, dir);
        cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
        cr_assert(strstr(out, "R1") != NULL, "%s", out);
        cr_assert(pass == 0 || strstr(out, "orthogonal") != NULL, "%s", out);
    }
    /* calibration text shorter than one window */
    char calib[512];
    snprintf(calib, sizeof calib, "%s/short.txt", dir);
    FILE *f = fopen(calib, "w");
    fputs("Once upon a time there was a cat.", f);
    fclose(f);
    snprintf(args, sizeof args, "--model %s --recipe flexllm --calib %s --seqlen 256 --out %s/x.flxq",
             model, calib, dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "short.txt") != NULL, "%s", out);
    char x[512];
    snprintf(x, sizeof x, "%s/x.flxq", dir);
    cr_assert(!flx_file_exists(x), "a failed run left an output");

    /* same inputs, same bytes (rotation, calibration and all) */
    char text[4096];   /* flx_test_data returns a static buffer: keep a copy */
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    char h1[65], h2[65], o1[512], o2[512];
    snprintf(o1, sizeof o1, "%s/r1.flxq", dir);
    snprintf(o2, sizeof o2, "%s/r2.flxq", dir);
    snprintf(args, sizeof args,
             "--model %s --recipe flexllm --rotate random --seed 3 --calib %s --nsamples 4 --seqlen 128 --threads 1 --out %s",
             model, text, o1);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args,
             "--model %s --recipe flexllm --rotate random --seed 3 --calib %s --nsamples 4 --seqlen 128 --threads 2 --out %s --json %s/q.json",
             model, text, o2, dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    char jp[512], *js = NULL;
    size_t jn = 0;
    snprintf(jp, sizeof jp, "%s/q.json", dir);
    cr_assert_eq(flx_read_file(jp, 1 << 20, &js, &jn, &e2), FLX_OK, "%s", e2.msg);
    cr_assert(strstr(js, "\"recipe\":{\"name\":\"flexllm\"") && strstr(js, "\"rotation\":\"random\""), "%s", js);
    free(js);
    file_sha(o1, h1);
    file_sha(o2, h2);
    cr_assert_str_eq(h1, h2);
    flx_qmodel qm;
    flx_error err;
    cr_assert_eq(flx_qmodel_load(&qm, o1, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.has_attn_scales && qm.layers[0].q_s > 0 && qm.r4_online && !qm.r3_online);
    cr_assert(qm.tok != NULL);   /* found through the source folder */
    float rtn_q_s[5];
    for (int l = 0; l < 5; l++) rtn_q_s[l] = qm.layers[l].q_s;
    flx_qmodel_free(&qm);

    /* flexllm with GPTQ: the static scales come from GPTQ's own passes (q/k/v
     * of the quantized weights), the finished layers are released on the
     * way; same bytes for 1 and 2 threads */
    for (int t = 1; t <= 2; t++) {
        snprintf(args, sizeof args,
                 "--model %s --recipe flexllm --rotate random --seed 3 --gptq --calib %s --nsamples 4 --seqlen 128 --threads %d --out %s",
                 model, text, t, t == 1 ? o1 : o2);
        cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    }
    file_sha(o1, h1);
    file_sha(o2, h2);
    cr_assert_str_eq(h1, h2);
    cr_assert_eq(flx_qmodel_load(&qm, o1, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.has_attn_scales);
    int n_moved = 0;
    for (int l = 0; l < 5; l++) {
        const flx_qlayer *L = &qm.layers[l];
        cr_assert(isfinite(L->q_s) && L->q_s > 0 && L->k_s > 0 && L->v_s > 0 && L->a_s == 1.0f / 255.0f);
        /* within 25% of the float model's, but not all equal to it */
        cr_assert(fabsf(L->q_s - rtn_q_s[l]) < 0.25f * rtn_q_s[l], "layer %d Q_s %g vs %g", l, L->q_s, rtn_q_s[l]);
        n_moved += L->q_s != rtn_q_s[l];
    }
    cr_assert_gt(n_moved, 0);
    flx_qmodel_free(&qm);

    /* flexllm without --rotate still merges R4 (the hardware always runs the FHT):
     * a power-of-two d_ff (tiny-llama3-random: 256) keeps it an FHT, no dense matrix */
    char tiny[4096];
    snprintf(tiny, sizeof tiny, "%s", flx_test_data("tiny-llama3-random"));
    snprintf(args, sizeof args, "--model %s --recipe flexllm --calib %s --nsamples 2 --seqlen 64 --out %s",
             tiny, text, o1);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert_eq(flx_qmodel_load(&qm, o1, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(qm.rotation, "none");
    cr_assert(qm.r4_online && !qm.r3_online && qm.r4_dense == NULL);
    for (int i = 0; i < 64; i++) cr_assert_eq(qm.layers[1].attn_norm[i], 1.0f);   /* folded */
    flx_qmodel_free(&qm);
}

Test(qmodel, fake_quant_hooks_by_hand)
{
    flx_model m;
    load_stories(&m);
    flx_attn_scales sc[5];
    for (int l = 0; l < 5; l++) sc[l] = (flx_attn_scales){0.01f, 0.1f, 0.02f, 1.0f / 255};
    flx_qmodel qm;
    build(&qm, &m, "flexllm", sc);
    flx_fakequant fq;
    flx_error err = {0};
    cr_assert_eq(flx_fakequant_build(&fq, &qm, &err), FLX_OK, "%s", err.msg);
    /* stories260K: 8 heads x head_dim 8 = 64 q values, 4 kv heads -> 32 k/v values per token */
    float q[64] = {0}, k[32] = {0}, v[32] = {0};
    q[0] = 0.1f;
    q[1] = -20.0f;
    /* Q scale = F * Q_s with F = floor(sqrt(head_dim)) (FlexLLM's integer sqrt_HEAD_DIM, 8
     * for head_dim 64); head_dim 8 here: F = 2, scale 0.02: 0.1/0.02 = 5 -> 0.1;
     * -20/0.02 = -1000 -> -128 -> -2.56 */
    k[0] = 13.0f;    /* K_s = 0.1: 130 -> clamp 127 -> 12.7                              */
    v[0] = -0.05f;   /* V_s = 0.02: -2.5 -> round half away -3 -> -0.06                  */
    v[1] = 0.05f;    /* 2.5 -> 3 -> 0.06                                                 */
    cr_assert_eq(fq.hooks.qkv(fq.hooks.ctx, 2, q, k, v, 1, 0, &qm.cfg, &err), FLX_OK);
    cr_assert_eq(flx_attn_q_factor(8), 2);
    cr_assert_eq(flx_attn_q_factor(64), 8);
    cr_assert_eq(flx_attn_q_factor(63), 7);
    /* then times sqrt(8) / 2, so that the float forward's 1/sqrt(8) leaves the
     * hardware's score scale 1/F = 1/2 */
    float sq = 2.0f * 0.01f, hw = (float)(sqrt(8.0) / 2.0);
    cr_assert_eq(q[0], (sq * 5.0f) * hw);
    cr_assert_eq(q[1], (sq * -128.0f) * hw);
    cr_assert_eq(k[0], 0.1f * 127.0f);
    cr_assert_eq(v[0], 0.02f * -3.0f);
    cr_assert_eq(v[1], 0.02f * 3.0f);
    cr_assert_eq(q[2], 0.0f);
    /* linear inputs: 4-bit per token with float offset.  Token (-1, 0.5, 2, 3.5, 0 x 60):
     * min -1, max 3.5, s = 0.3f; x^ = s q + min with q = 0, 5, 10, 15 and 0 -> round(1/0.3) = 3 */
    float x[64] = {0};
    x[0] = -1.0f; x[1] = 0.5f; x[2] = 2.0f; x[3] = 3.5f;
    cr_assert_eq(fq.hooks.linear_input(fq.hooks.ctx, 0, FLX_LINEAR_QKV, x, 1, 64, &err), FLX_OK);
    float s = 4.5f / 15.0f;
    cr_assert_eq(x[0], -1.0f);
    cr_assert_eq(x[1], s * 5.0f + -1.0f);
    cr_assert_eq(x[3], s * 15.0f + -1.0f);
    cr_assert_eq(x[10], s * 3.0f + -1.0f);
    /* the head input is quantized too in flexllm */
    float hx[64] = {0};
    hx[0] = 1.0f;
    cr_assert_eq(fq.hooks.linear_input(fq.hooks.ctx, 5, FLX_LINEAR_HEAD, hx, 1, 64, &err), FLX_OK);
    cr_assert_eq(hx[0], (1.0f / 15.0f) * 15.0f + 0.0f);
    /* softmax output: UINT8 static with A_s = 1/255 (layer 3):
     * p8 = min(round(p / A_s), 255); 0.3 -> 76.5 -> 77; 0.001 -> 0.255 -> 0;
     * 0.0029 -> 0.7395 -> 1; 1 -> 255; masked 0 stays 0 */
    cr_assert(fq.hooks.probs != NULL);
    float a_s = 1.0f / 255;
    float p[2][3] = { { 0.3f, 0.001f, 0.0f }, { 0.0029f, 1.0f, 0.0f } };
    fq.hooks.probs(fq.hooks.ctx, 3, &p[0][0], 2, 3);
    cr_assert_eq(p[0][0], 77.0f * a_s);
    cr_assert_eq(p[0][1], 0.0f);
    cr_assert_eq(p[0][2], 0.0f);
    cr_assert_eq(p[1][0], 1.0f * a_s);
    cr_assert_eq(p[1][1], 255.0f * a_s);
    flx_fakequant_free(&fq);
    /* recipes without static attention scales leave P alone */
    flx_qmodel_free(&qm);
    build(&qm, &m, "w4a16", NULL);
    cr_assert_eq(flx_fakequant_build(&fq, &qm, &err), FLX_OK, "%s", err.msg);
    cr_assert(fq.hooks.probs == NULL);
    flx_fakequant_free(&fq);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
}

/* Found by tests/fuzz/fuzz_flxq: the rotation seed in the metadata was cast
 * from double to uint64_t unchecked, undefined behaviour for 1e+300 or a
 * negative seed (UBSan: "outside the range of representable values").  Such
 * a file is now refused with a message naming the field. */
Test(qmodel, rotation_seed_out_of_range_is_refused)
{
    flx_model m;
    load_stories(&m);
    flx_qmodel qm, back;
    build(&qm, &m, "w4a16", NULL);
    qm.rotation_seed = 123456;   /* six characters, replaced in place below */
    const char *dir = flx_test_tmpdir();
    char p[512], q[512];
    flx_error err = {0};
    snprintf(p, sizeof p, "%s/seed.flxq", dir);
    snprintf(q, sizeof q, "%s/seed_bad.flxq", dir);
    cr_assert_eq(flx_qmodel_save(&qm, p, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_qmodel_load(&back, p, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(back.rotation_seed, 123456);
    flx_qmodel_free(&back);
    char *data = NULL;
    size_t bytes = 0;
    cr_assert_eq(flx_read_file(p, 1 << 26, &data, &bytes, &err), FLX_OK);
    char *at = memmem(data, bytes, "\":123456,", 9);   /* in the escaped rotation JSON */
    cr_assert(at != NULL);
    at += 2;
    static const char *const bad[] = {"1e+300", "-12345", "0.5000", "2e+019"};
    for (int i = 0; i < 4; i++) {
        memcpy(at, bad[i], 6);
        FILE *f = fopen(q, "wb");
        cr_assert(f && fwrite(data, 1, bytes, f) == bytes && fclose(f) == 0);
        cr_assert_eq(flx_qmodel_load(&back, q, &err), FLX_EFORMAT, "seed %s", bad[i]);
        cr_assert(strstr(err.msg, "metadata field 'rotation': seed") && strstr(err.msg, q),
                  "%s", err.msg);
    }
    free(data);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
}
