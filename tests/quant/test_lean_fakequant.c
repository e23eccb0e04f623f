/* The lean fake-quant model (flx_fakequant_open_lean): no dequantized copy
 * of a quantized linear in memory, rows dequantized per product through
 * hooks.weight_rows, and the same logits bits as the eager model
 * (flx_fakequant_open_threads) for several recipes -- flexllm with its INT4
 * head, a grouped recipe, zero points -- on stories260K and the tiny Llama-3
 * (vocabulary 128,256, so the INT4 head is split into many row blocks), on 1
 * and 2 threads, with whole blocks and with 64-row pieces, for a prefill
 * window and for a one-token decode step. */
#include "flx_qmodel.h"
#include "flx_llama.h"
#include "test_util.h"

enum { N = 40 };

static void build_file(const char *model_dir, const char *recipe, const char *path)
{
    flx_model m;
    flx_error err = {0};
    cr_assert_eq(flx_model_load(&m, model_dir, &err), FLX_OK, "%s", err.msg);
    flx_recipe r;
    cr_assert_eq(flx_recipe_parse(&r, recipe, &err), FLX_OK, "%s", err.msg);
    flx_attn_scales sc[16];
    cr_assert_leq(m.cfg.n_layers, 16);
    for (int l = 0; l < m.cfg.n_layers; l++) sc[l] = (flx_attn_scales){0.01f, 0.02f, 0.01f, 1.0f / 255};
    flx_qbuild b = {0};
    b.recipe = &r;
    b.scales = r.static_attn ? sc : NULL;
    b.source = model_dir;
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_build(&qm, &m, &b, &err), FLX_OK, "%s: %s", recipe, err.msg);
    cr_assert_eq(flx_qmodel_save(&qm, path, &err), FLX_OK, "%s", err.msg);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
}

/* logits of a window of N tokens, then of one more token (the sgemv path) */
static float *run(const flx_model *m, const flx_fakequant *fq, int n_threads, int64_t block_bytes)
{
    const int32_t V = m->cfg.n_vocab;
    int32_t toks[N + 1];
    for (int i = 0; i <= N; i++) toks[i] = (int32_t)(((int64_t)i * 7919 + 13) % V);
    flx_llama_opts o = {.n_threads = n_threads, .max_tokens = N, .max_ctx = N + 1, .hooks = &fq->hooks,
                        .weight_block_bytes = block_bytes};
    flx_llama_state st;
    flx_error err = {0};
    float *out = malloc(sizeof(float) * (size_t)(N + 1) * V);
    cr_assert(out);
    cr_assert_eq(flx_llama_init(&st, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&st, toks, N, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_logits(&st, 0, N, out, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&st, toks + N, 1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_logits(&st, 0, 1, out + (size_t)N * V, &err), FLX_OK, "%s", err.msg);
    if (!fq->lean) cr_assert(st.w_buf == NULL);   /* eager: every weight in the model */
    flx_llama_free(&st);
    return out;
}

static void compare(const char *model_dir, const char *recipe, const char *tag)
{
    char p[512];
    snprintf(p, sizeof p, "%s/lean-%s.flxq", flx_test_tmpdir(), tag);
    build_file(model_dir, recipe, p);
    flx_error err = {0};
    for (int th = 1; th <= 2; th++) {
        flx_model fe = {0}, fl = {0};
        flx_fakequant *qe = NULL, *ql = NULL;
        cr_assert_eq(flx_fakequant_open_threads(&qe, &fe, p, th, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_fakequant_open_lean(&ql, &fl, p, th, &err), FLX_OK, "%s", err.msg);
        cr_assert(!qe->lean && ql->lean && ql->hooks.weight_rows && !qe->hooks.weight_rows);
        /* no float copy of a quantized linear; float ones are the file's */
        const flx_qmodel *qm = ql->own_qm;
        for (int l = 0; l < fl.cfg.n_layers; l++) {
            const flx_qlayer *Q = &qm->layers[l];
            const flx_llama_layer *L = &fl.w.layers[l];
            cr_assert_eq(L->wq == NULL, flx_qtensor_is_int(&Q->wq));
            cr_assert_eq(L->w_down == NULL, flx_qtensor_is_int(&Q->w_down));
            if (!flx_qtensor_is_int(&Q->w_up)) cr_assert_eq(L->w_up, Q->w_up.w);
        }
        cr_assert_eq(fl.w.output == NULL, flx_qtensor_is_int(&qm->head), "%s: head", recipe);
        const size_t n = (size_t)(N + 1) * fe.cfg.n_vocab;
        float *want = run(&fe, qe, th, 0);
        const int64_t blocks[2] = {0, 1};   /* default pieces; 64 rows at a time */
        for (int b = 0; b < 2; b++) {
            float *got = run(&fl, ql, th, blocks[b]);
            cr_assert_eq(memcmp(got, want, n * sizeof(float)), 0,
                         "%s %s, %d thread(s), block bytes %lld: lean logits differ from eager", model_dir,
                         recipe, th, (long long)blocks[b]);
            free(got);
        }
        /* and they are a real quantized model: not the float logits */
        int differs = 0;
        for (size_t i = 0; i < n && !differs; i++) differs = want[i] != want[(i + 1) % n];
        cr_assert(differs);
        free(want);
        flx_model_free(&fe);
        flx_model_free(&fl);
        flx_fakequant_close(qe);
        flx_fakequant_close(ql);
    }
}

Test(lean_fakequant, same_bits_as_eager_stories260K)
{
    const char *dir = flx_test_data("stories260K/hf");
    compare(dir, "flexllm", "s-flexllm");
    compare(dir, "w4a16g4", "s-g4");                     /* 4 divides d_ff 172 */
    compare(dir, "w4a4kv4-spinquant", "s-spinquant");
    compare(dir, "w8a8", "s-w8a8");
    compare(dir, "fp", "s-fp");                          /* nothing to dequantize */
}

Test(lean_fakequant, same_bits_as_eager_tiny_llama3_int4_head)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", flx_test_data("tiny-llama3-random"));
    compare(dir, "flexllm", "t-flexllm");
    compare(dir, "w4a8kv8g16", "t-g16");
}

/* Without the hook a model with a missing weight is refused, not run. */
Test(lean_fakequant, missing_weight_needs_the_hook)
{
    char p[512];
    snprintf(p, sizeof p, "%s/lean-refuse.flxq", flx_test_tmpdir());
    build_file(flx_test_data("stories260K/hf"), "w4a16", p);
    flx_model fl = {0};
    flx_fakequant *ql = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_fakequant_open_lean(&ql, &fl, p, 1, &err), FLX_OK, "%s", err.msg);
    flx_llama_hooks no_weights = ql->hooks;
    no_weights.weight_rows = NULL;
    flx_llama_opts o = {.n_threads = 1, .max_tokens = 4, .max_ctx = 4, .hooks = &no_weights};
    flx_llama_state st;
    cr_assert_eq(flx_llama_init(&st, &fl, &o, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "incomplete") != NULL, "%s", err.msg);
    flx_model_free(&fl);
    flx_fakequant_close(ql);
}
