/* emu pipelines on a small random quantized model built in memory:
 * thread-count invariance, prefill/decode agreement where reference-design §6.8 says they
 * agree, the reference quirks, refusal of models the hardware cannot run. */
#include "flx_emu.h"
#include "flx_qmodel.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NL = 2, DM = 64, NH = 4, NKV = 2, HD = 16, FF = 128, NV = 300 };

typedef struct {
    flx_qmodel qm;
    flx_qlayer layers[NL];
    void *mem[64];
    int n_mem;
} test_model;

static uint64_t st = 12345;
static double urand(void)
{
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(st >> 11) / 9007199254740992.0;
}

static void *tm_alloc(test_model *m, size_t bytes)
{
    void *p = calloc(1, bytes);
    cr_assert_not_null(p);
    m->mem[m->n_mem++] = p;
    return p;
}

static void make_tensor(test_model *m, flx_qtensor *t, int n_out, int n_in, float s_lo, float s_hi)
{
    t->n_out = n_out; t->n_in = n_in; t->bits = 4; t->group_size = n_in; t->symmetric = 1;
    t->q = tm_alloc(m, (size_t)n_out * n_in);
    t->scale = tm_alloc(m, (size_t)n_out * sizeof(float));
    t->wsum = tm_alloc(m, (size_t)n_out * sizeof(float));
    for (int o = 0; o < n_out; o++) {
        int sum = 0;
        for (int k = 0; k < n_in; k++) {
            int v = (int)(urand() * 16) - 8;
            t->q[(size_t)o * n_in + k] = (int8_t)v;
            sum += v;
        }
        t->scale[o] = (float)(s_lo + (s_hi - s_lo) * urand());
        t->wsum[o] = t->scale[o] * (float)sum;
    }
}

static void build(test_model *m)
{
    memset(m, 0, sizeof *m);
    st = 12345;
    flx_qmodel *q = &m->qm;
    flx_llama_config *c = &q->cfg;
    c->n_vocab = NV; c->d_model = DM; c->n_layers = NL; c->n_heads = NH; c->n_kv_heads = NKV;
    c->head_dim = HD; c->d_ff = FF; c->max_seq_len = 256; c->rms_eps = 1e-5f;
    c->rope_theta = 500000.0;
    strcpy(q->recipe, "flexllm");
    strcpy(q->rotation, "hadamard");
    q->r4_online = 1;
    q->has_attn_scales = 1;
    float *emb = tm_alloc(m, (size_t)NV * DM * sizeof(float));
    for (int i = 0; i < NV * DM; i++) emb[i] = (float)(urand() * 2.0 - 1.0);
    q->tok_embd = emb;
    float *ones = tm_alloc(m, DM * sizeof(float));
    for (int i = 0; i < DM; i++) ones[i] = 1.0f;
    q->layers = m->layers;
    for (int l = 0; l < NL; l++) {
        flx_qlayer *L = &m->layers[l];
        L->attn_norm = ones;
        L->ffn_norm = ones;
        make_tensor(m, &L->wq, DM, DM, 0.02f, 0.04f);
        make_tensor(m, &L->wk, NKV * HD, DM, 0.02f, 0.04f);
        make_tensor(m, &L->wv, NKV * HD, DM, 0.02f, 0.04f);
        make_tensor(m, &L->wo, DM, DM, 0.02f, 0.04f);
        make_tensor(m, &L->w_gate, FF, DM, 0.02f, 0.04f);
        make_tensor(m, &L->w_up, FF, DM, 0.02f, 0.04f);
        make_tensor(m, &L->w_down, DM, FF, 0.02f, 0.04f);
        L->q_s = 0.01f; L->k_s = 0.03f; L->v_s = 0.02f; L->a_s = 1.0f / 255.0f;
    }
    q->out_norm = ones;
    make_tensor(m, &q->head, NV, DM, 0.05f, 0.1f);
    double *inv = tm_alloc(m, HD / 2 * sizeof(double));
    for (int k = 0; k < HD / 2; k++) inv[k] = pow(500000.0, -2.0 * k / HD);
    q->rope_inv_freq = inv;
}

static void destroy(test_model *m)
{
    for (int i = 0; i < m->n_mem; i++) free(m->mem[i]);
}

static void engine(flx_emu_engine *e, const test_model *m, int quirks, int norm_lanes)
{
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    o.reference_quirks = quirks;
    o.norm_lanes = norm_lanes;
    flx_error err = { 0 };
    int rc = flx_emu_engine_init(e, &m->qm, &o, 256, &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
}

static int32_t toks[640];
static void make_tokens(void)
{
    for (int i = 0; i < 640; i++) toks[i] = (int32_t)((i * 37 + 11) % NV);
}

/* The engine packs its weights on the caller's pool: the bytes of every
 * packed matrix are the same with no pool, 1 and 2 threads, and equal a
 * plain one-thread flx_emu_wpack_init of the tensor's codes. */
Test(emu_pipeline, weight_packing_identical_for_any_thread_count)
{
    test_model m;
    build(&m);
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_error err = { 0 };
    flx_pool *pools[3] = { NULL, flx_pool_create(1), flx_pool_create(2) };
    flx_emu_engine e[3];
    for (int p = 0; p < 3; p++)
        cr_assert_eq(flx_emu_engine_init_ex(&e[p], &m.qm, &o, 64, pools[p], &err), FLX_OK, "%s", err.msg);
    const int n_w = NL * 7 + 1;
    for (int i = 0; i < n_w; i++) {
        const flx_qlayer *L = &m.qm.layers[i / 7 < NL ? i / 7 : 0];
        const flx_qtensor *all[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
        const flx_qtensor *t = i == n_w - 1 ? &m.qm.head : all[i % 7];
        flx_emu_wpack ref;
        cr_assert_eq(flx_emu_wpack_init(&ref, t->q, t->n_out, t->n_in), 0);
        const size_t bytes = (size_t)(ref.o32 / 32 * ref.k64 * 16);
        for (int p = 0; p < 3; p++) {
            cr_assert_eq(e[p].wpack[i].o32, ref.o32);
            cr_assert_eq(e[p].wpack[i].k64, ref.k64);
            cr_assert_eq(memcmp(e[p].wpack[i].nib, ref.nib, bytes), 0, "matrix %d pool %d", i, p);
        }
        flx_emu_wpack_free(&ref);
    }
    for (int p = 0; p < 3; p++) flx_emu_engine_free(&e[p]);
    flx_pool_free(pools[1]);
    flx_pool_free(pools[2]);
    destroy(&m);
}

Test(emu_pipeline, prefill_identical_for_any_thread_count)
{
    test_model m;
    build(&m);
    make_tokens();
    flx_emu_engine e;
    engine(&e, &m, 0, 8);
    enum { N = 37 };
    static float h0[N * DM], h1[N * DM], h2[N * DM];
    flx_error err = { 0 };
    flx_pool *p1 = flx_pool_create(1), *p2 = flx_pool_create(2);
    cr_assert_eq(flx_emu_prefill(&e, h0, NULL, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_prefill(&e, h1, NULL, toks, N, p1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_prefill(&e, h2, NULL, toks, N, p2, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(h0, h1, sizeof h0), 0);
    cr_assert_eq(memcmp(h0, h2, sizeof h0), 0);
    /* the literal full L x L attention gives the same bits as the causal prefix */
    flx_emu_engine ef;
    flx_emu_opts of = e.opts;
    of.full_attention = 1;
    cr_assert_eq(flx_emu_engine_init(&ef, &m.qm, &of, 256, &err), FLX_OK);
    for (int x = 0; x < 2; x++) {
        ef.opts.fp.exp = x ? FLX_EMU_EXP_FLX : FLX_EMU_EXP_GLIBC;
        e.opts.fp.exp = ef.opts.fp.exp;
        ef.opts.fp.ftz = e.opts.fp.ftz = x;
        cr_assert_eq(flx_emu_prefill(&ef, h1, NULL, toks, N, p2, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_emu_prefill(&e, h2, NULL, toks, N, p2, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(memcmp(h1, h2, sizeof h1), 0);
    }
    e.opts.fp.exp = ef.opts.fp.exp = FLX_EMU_EXP_GLIBC;
    e.opts.fp.ftz = ef.opts.fp.ftz = 0;
    /* several 128-row attention blocks (L_pad = 208) */
    {
        enum { N2 = 200 };
        static float g1[N2 * DM], g2[N2 * DM];
        cr_assert_eq(flx_emu_prefill(&ef, g1, NULL, toks, N2, p2, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_emu_prefill(&e, g2, NULL, toks, N2, NULL, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(memcmp(g1, g2, sizeof g1), 0);
    }
    flx_emu_engine_free(&ef);
    int nonzero = 0;
    for (int i = 0; i < N * DM; i++) nonzero += h0[i] != 0.0f && isfinite(h0[i]);
    cr_assert_gt(nonzero, N * DM / 2);
    /* decode logits too */
    flx_emu_kv kv1, kv2;
    cr_assert_eq(flx_emu_kv_init(&kv1, &e, 64, &err), FLX_OK);
    cr_assert_eq(flx_emu_kv_init(&kv2, &e, 64, &err), FLX_OK);
    float *l1 = malloc(e.n_vocab_pad * sizeof(float)), *l2 = malloc(e.n_vocab_pad * sizeof(float));
    for (int t = 0; t < 5; t++) {
        cr_assert_eq(flx_emu_decode_step(&e, l1, &kv1, toks[t], t, p1, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_emu_decode_step(&e, l2, &kv2, toks[t], t, p2, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(memcmp(l1, l2, e.n_vocab_pad * sizeof(float)), 0);
    }
    free(l1); free(l2);
    flx_emu_kv_free(&kv1); flx_emu_kv_free(&kv2);
    flx_pool_free(p1); flx_pool_free(p2);
    flx_emu_engine_free(&e);
    destroy(&m);
}

/* With one RMSNorm lane the decode tree is (0 + ((s0+s1)+(s2+s3))), the
 * prefill tree exactly; the softmax trees agree for masked/padded keys (they
 * add exact zeros) and the integer products are exact in both: so decode
 * from scratch and prefill + head must give identical logits at every
 * position.  With the production 8 lanes they may differ (reference-design §6.8). */
Test(emu_pipeline, prefill_and_decode_agree_when_trees_coincide)
{
    test_model m;
    build(&m);
    make_tokens();
    enum { N = 21 };
    for (int lanes = 1; lanes <= 8; lanes += 7) {
        flx_emu_engine e;
        engine(&e, &m, 0, lanes);
        flx_error err = { 0 };
        static float hid[N * DM], lp[N * NV];
        cr_assert_eq(flx_emu_prefill(&e, hid, NULL, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_emu_head(&e, lp, hid, N, NULL, &err), FLX_OK, "%s", err.msg);
        flx_emu_kv kv;
        cr_assert_eq(flx_emu_kv_init(&kv, &e, N, &err), FLX_OK);
        float *ld = malloc(e.n_vocab_pad * sizeof(float));
        int64_t differ = 0;
        for (int t = 0; t < N; t++) {
            cr_assert_eq(flx_emu_decode_step(&e, ld, &kv, toks[t], t, NULL, &err), FLX_OK, "%s", err.msg);
            for (int v = 0; v < NV; v++) differ += memcmp(&ld[v], &lp[t * NV + v], 4) != 0;
            for (int v = NV; v < e.n_vocab_pad; v++) cr_assert_eq(ld[v], -1e32f);  /* masked pad */
        }
        if (lanes == 1) cr_assert_eq(differ, 0, "%lld logits differ", (long long)differ);
        else cr_log_info("8 RMSNorm lanes: %lld of %d logits differ between prefill and decode",
                         (long long)differ, N * NV);
        free(ld);
        flx_emu_kv_free(&kv);
        flx_emu_engine_free(&e);
    }
    destroy(&m);
}

Test(emu_pipeline, reference_quirks_k_group_overwrite_and_padded_vocab)
{
    test_model m;
    build(&m);
    make_tokens();
    enum { N = 40 };            /* 40 % 32 = 8: prompt keys 32..39 are lost */
    const int KV = NKV * HD;
    for (int quirks = 0; quirks < 2; quirks++) {
        flx_emu_engine e;
        engine(&e, &m, quirks, 8);
        flx_error err = { 0 };
        flx_emu_kv kv;
        cr_assert_eq(flx_emu_kv_init(&kv, &e, 64, &err), FLX_OK);
        cr_assert_eq(flx_emu_prefill(&e, NULL, &kv, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
        static int8_t before[64 * NKV * HD], after[64 * NKV * HD];     /* layer 0's K rows */
        flx_emu_kv_get_rows(&kv, 0, 0, 64, before, NULL);
        float *lg = malloc(e.n_vocab_pad * sizeof(float));
        cr_assert_eq(flx_emu_decode_step(&e, lg, &kv, toks[N], N, NULL, &err), FLX_OK, "%s", err.msg);
        flx_emu_kv_get_rows(&kv, 0, 0, 64, after, NULL);
        int zeros = 0, changed = 0;
        for (int i = 32 * KV; i < N * KV; i++) {
            zeros += after[i] == 0;
            changed += after[i] != before[i];
        }
        cr_assert_eq(memcmp(after, before, 32 * KV), 0);     /* earlier groups untouched */
        if (quirks) {
            cr_assert_eq(zeros, 8 * KV);
            cr_assert_gt(changed, 0);
            for (int v = NV; v < e.n_vocab_pad; v++) cr_assert(lg[v] == 0.0f && !signbit(lg[v]));
        } else {
            cr_assert_eq(changed, 0);
            for (int v = NV; v < e.n_vocab_pad; v++) cr_assert_eq(lg[v], -1e32f);
        }
        cr_assert_eq(e.n_vocab_pad, 1024);
        free(lg);
        flx_emu_kv_free(&kv);
        flx_emu_engine_free(&e);
    }
    destroy(&m);
}

/* flx_emu_kv keeps k and v head-major, [layer][kv_head][cap][head_dim]:
 * put_rows stores column h * HD + d of row t at ((layer * NKV + h) * cap +
 * pos0 + t) * HD + d and nothing else, get_rows reads the same rows back, a
 * NULL pointer skips that cache.  A prefill's cache read back as rows equals
 * what step-by-step decode writes per head (one norm lane, no quirks: the
 * same K/V bits, as in prefill_and_decode_agree_when_trees_coincide), and
 * put_rows of those rows rebuilds the prefill's cache byte for byte. */
Test(emu_pipeline, kv_rows_helpers_and_head_major_layout)
{
    test_model m;
    build(&m);
    make_tokens();
    enum { CAP = 48, N = 37, P0 = 5, T = 11, KV = NKV * HD };
    const size_t layer_bytes = (size_t)CAP * KV, all = (size_t)NL * layer_bytes;
    flx_emu_engine e;
    engine(&e, &m, 0, 1);
    flx_error err = { 0 };
    flx_emu_kv kv;
    cr_assert_eq(flx_emu_kv_init(&kv, &e, CAP, &err), FLX_OK);
    cr_assert_eq(kv.n_kv_heads, NKV);
    cr_assert_eq(kv.head_dim, HD);
    cr_assert_eq(kv.kv_dim, KV);
    /* rows P0 .. P0+T-1 of layer 1, bytes never 0 */
    static int8_t kr[T * KV], vr[T * KV], kb[T * KV], vb[T * KV];
    for (int i = 0; i < T * KV; i++) {
        kr[i] = (int8_t)(1 + i % 255);
        vr[i] = (int8_t)(1 + (i * 7 + 3) % 255);
    }
    flx_emu_kv_put_rows(&kv, 1, P0, T, kr, vr);
    int64_t nonzero_k = 0, nonzero_v = 0;
    for (size_t i = 0; i < all; i++) {
        nonzero_k += kv.k[i] != 0;
        nonzero_v += kv.v[i] != 0;
    }
    cr_assert_eq(nonzero_k, T * KV);                   /* nothing outside the rows written */
    cr_assert_eq(nonzero_v, T * KV);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NKV; h++)
            for (int d = 0; d < HD; d++) {
                const size_t at = ((size_t)(1 * NKV + h) * CAP + P0 + t) * HD + d;
                cr_assert_eq(kv.k[at], kr[t * KV + h * HD + d], "t %d head %d dim %d", t, h, d);
                cr_assert_eq(kv.v[at], vr[t * KV + h * HD + d], "t %d head %d dim %d", t, h, d);
            }
    cr_assert_eq(flx_emu_kv_head_offset(&kv, 1, 1), (int64_t)(1 * NKV + 1) * CAP * HD);
    flx_emu_kv_get_rows(&kv, 1, P0, T, kb, vb);
    cr_assert_eq(memcmp(kb, kr, sizeof kb), 0);
    cr_assert_eq(memcmp(vb, vr, sizeof vb), 0);
    /* NULL skips: K rows only into layer 0, V rows only out of layer 1 */
    flx_emu_kv_put_rows(&kv, 0, 0, T, kr, NULL);
    for (size_t i = 0; i < layer_bytes; i++) cr_assert_eq(kv.v[i], 0);
    memset(kb, 0, sizeof kb);
    memset(vb, 0, sizeof vb);
    flx_emu_kv_get_rows(&kv, 1, P0, T, NULL, vb);
    cr_assert_eq(memcmp(vb, vr, sizeof vb), 0);
    for (int i = 0; i < T * KV; i++) cr_assert_eq(kb[i], 0);
    flx_emu_kv_get_rows(&kv, 0, 0, T, kb, NULL);
    cr_assert_eq(memcmp(kb, kr, sizeof kb), 0);
    flx_emu_kv_free(&kv);

    /* a prefill's rows: what decode writes at each position, and put_rows
     * of them gives the same cache */
    flx_emu_kv kp, kd, kr2;
    cr_assert_eq(flx_emu_kv_init(&kp, &e, CAP, &err), FLX_OK);
    cr_assert_eq(flx_emu_kv_init(&kd, &e, CAP, &err), FLX_OK);
    cr_assert_eq(flx_emu_kv_init(&kr2, &e, CAP, &err), FLX_OK);
    cr_assert_eq(flx_emu_prefill(&e, NULL, &kp, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
    float *lg = malloc(e.n_vocab_pad * sizeof(float));
    for (int t = 0; t < N; t++)
        cr_assert_eq(flx_emu_decode_step(&e, lg, &kd, toks[t], t, NULL, &err), FLX_OK, "%s", err.msg);
    free(lg);
    static int8_t kpr[N * KV], vpr[N * KV], kdr[N * KV], vdr[N * KV];
    for (int l = 0; l < NL; l++) {
        flx_emu_kv_get_rows(&kp, l, 0, N, kpr, vpr);
        flx_emu_kv_get_rows(&kd, l, 0, N, kdr, vdr);
        cr_assert_eq(memcmp(kpr, kdr, sizeof kpr), 0, "layer %d", l);
        cr_assert_eq(memcmp(vpr, vdr, sizeof vpr), 0, "layer %d", l);
        int nonzero = 0;
        for (int i = 0; i < N * KV; i++) nonzero += kpr[i] != 0;
        cr_assert_gt(nonzero, N * KV / 2);
        flx_emu_kv_put_rows(&kr2, l, 0, N, kpr, vpr);
    }
    cr_assert_eq(memcmp(kr2.k, kp.k, all), 0);
    cr_assert_eq(memcmp(kr2.v, kp.v, all), 0);
    cr_assert_eq(memcmp(kd.k, kp.k, all), 0);
    cr_assert_eq(memcmp(kd.v, kp.v, all), 0);
    flx_emu_kv_free(&kp);
    flx_emu_kv_free(&kd);
    flx_emu_kv_free(&kr2);
    flx_emu_engine_free(&e);
    destroy(&m);
}

Test(emu_pipeline, reference_rope_table_is_base_10000)
{
    test_model m;
    build(&m);
    flx_emu_engine a, b;
    engine(&a, &m, 0, 8);
    engine(&b, &m, 1, 8);
    /* row 5, k = 3 */
    cr_assert_eq(a.rope_sin[5 * 8 + 3], (float)sin(5.0 * pow(500000.0, -6.0 / 16)));
    cr_assert_eq(b.rope_sin[5 * 8 + 3], (float)sin(5.0 * pow(10000.0, -6.0 / 16)));
    cr_assert_eq(a.q_factor, 4.0f);                 /* sqrt(16), the sqrt_HEAD_DIM macro */
    flx_emu_engine_free(&a);
    flx_emu_engine_free(&b);
    destroy(&m);
}

typedef struct { int32_t ids[32]; int n; } collect;
static int on_token(void *ctx, int64_t step, const flx_emu_topk *tk, float r)
{
    collect *c = ctx;
    cr_assert_eq(c->n, step);
    cr_assert(r >= 0.0f && r < 1.0f);
    c->ids[c->n++] = tk->token;
    return 0;
}

Test(emu_pipeline, generate_is_seeded_and_deterministic)
{
    test_model m;
    build(&m);
    make_tokens();
    flx_emu_engine e;
    engine(&e, &m, 0, 8);
    flx_error err = { 0 };
    collect a = { { 0 }, 0 }, b = { { 0 }, 0 }, c1 = { { 0 }, 0 };
    flx_pool *p2 = flx_pool_create(2);
    cr_assert_eq(flx_emu_generate(&e, toks, 9, 6, 7, -1, on_token, &a, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_generate(&e, toks, 9, 6, 7, -1, on_token, &b, p2, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(a.n, 6);
    cr_assert_eq(memcmp(a.ids, b.ids, sizeof a.ids), 0);
    for (int i = 0; i < a.n; i++) cr_assert(a.ids[i] >= 0 && a.ids[i] < NV);
    cr_assert_eq(flx_emu_generate(&e, toks, 1, 3, 7, -1, on_token, &c1, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(c1.n, 3);
    /* the first generated token of the 9-token prompt is what decode gives
     * after the host flow: prefill 8, decode token 8 at position 8 */
    flx_emu_kv kv;
    cr_assert_eq(flx_emu_kv_init(&kv, &e, 16, &err), FLX_OK);
    cr_assert_eq(flx_emu_prefill(&e, NULL, &kv, toks, 8, NULL, &err), FLX_OK);
    float *lg = malloc(e.n_vocab_pad * sizeof(float));
    cr_assert_eq(flx_emu_decode_step(&e, lg, &kv, toks[8], 8, NULL, &err), FLX_OK);
    flx_rng rng;
    flx_rng_seed(&rng, 7);
    flx_emu_topk tk;
    flx_emu_topk_sampling(&tk, lg, e.n_vocab_pad, 16, 5, (float)flx_rng_uniform(&rng), &e.opts.fp);
    cr_assert_eq(tk.token, a.ids[0]);
    free(lg);
    flx_emu_kv_free(&kv);
    flx_pool_free(p2);
    flx_emu_engine_free(&e);
    destroy(&m);
}

/* The fast decode step (packed GEMV, fused and threaded) against the simple
 * reference step: logits, hidden state and the KV cache bit for bit, at
 * positions from 0 and after a prefill hand-over, in every float mode, with
 * and without the reference quirks (K group write-back at n % 32 != 0),
 * for no pool and 1, 2, 3 threads (static shares of rows and KV groups,
 * 3 also splitting the FHT into uneven chunk counts), and through the
 * portable GEMV. */
Test(emu_pipeline, fast_decode_equals_reference_decode)
{
    test_model m;
    build(&m);
    make_tokens();
    enum { N = 40, STEPS = 30, CAP = N + STEPS, NP = 4 };
    flx_pool *pools[NP] = { NULL, flx_pool_create(1), flx_pool_create(2), flx_pool_create(3) };
    cr_assert_eq(flx_pool_threads(pools[3]), 3);
    for (int mode = 0; mode < 4; mode++) {
        flx_emu_engine e;
        engine(&e, &m, mode == 3, 8);
        e.opts.fp.exp = mode == 1 ? FLX_EMU_EXP_FLX : FLX_EMU_EXP_GLIBC;
        e.opts.fp.ftz = mode == 2;
        flx_error err = { 0 };
        if (mode == 1) setenv("FLXEMU_NO_VNNI", "1", 1);     /* the portable packed GEMV */
        flx_emu_decoder dec;
        cr_assert_eq(flx_emu_decoder_init(&dec, &e, pools[2], &err), FLX_OK, "%s", err.msg);
        unsetenv("FLXEMU_NO_VNNI");
        if (mode == 1) cr_assert_eq(dec.vnni, 0);
        else cr_assert_eq(dec.vnni, flx_emu_vnni_available());
        cr_assert_eq(dec.bits, 8 + 7);                     /* L = log2(128) */
        for (int start = 0; start < 2; start++) {
            int64_t p0 = start ? N : 0;
            flx_emu_kv kr, kf[NP];
            cr_assert_eq(flx_emu_kv_init(&kr, &e, CAP, &err), FLX_OK);
            if (start) cr_assert_eq(flx_emu_prefill(&e, NULL, &kr, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
            for (int p = 0; p < NP; p++) {
                cr_assert_eq(flx_emu_kv_init(&kf[p], &e, CAP, &err), FLX_OK);
                memcpy(kf[p].k, kr.k, (size_t)NL * CAP * NKV * HD);
                memcpy(kf[p].v, kr.v, (size_t)NL * CAP * NKV * HD);
            }
            float *lr = malloc(e.n_vocab_pad * sizeof(float)), *lf = malloc(e.n_vocab_pad * sizeof(float));
            float hr[DM], hf[DM];
            int64_t moved = 0;
            for (int64_t pos = p0; pos < p0 + STEPS; pos++) {
                cr_assert_eq(flx_emu_decode_step_ex(&e, lr, hr, &kr, toks[pos], pos, NULL, &err), FLX_OK,
                             "%s", err.msg);
                for (int p = 0; p < NP; p++) {
                    memset(lf, 0x7f, e.n_vocab_pad * sizeof(float));
                    cr_assert_eq(flx_emu_decoder_step(&dec, lf, hf, &kf[p], toks[pos], pos, pools[p], &err),
                                 FLX_OK, "%s", err.msg);
                    cr_assert_eq(memcmp(lr, lf, e.n_vocab_pad * sizeof(float)), 0, "mode %d pos %lld pool %d",
                                 mode, (long long)pos, p);
                    cr_assert_eq(memcmp(hr, hf, sizeof hr), 0);
                    cr_assert_eq(memcmp(kr.k, kf[p].k, (size_t)NL * CAP * NKV * HD), 0);
                    cr_assert_eq(memcmp(kr.v, kf[p].v, (size_t)NL * CAP * NKV * HD), 0);
                }
                for (int v = 0; v < NV; v++) moved += lr[v] != 0.0f && isfinite(lr[v]);
            }
            cr_assert_gt(moved, STEPS * NV / 2);          /* real logits, not zeros */
            /* hidden only (no head) is the same step */
            cr_assert_eq(flx_emu_decoder_step(&dec, NULL, hf, &kf[0], toks[p0 + STEPS - 1], p0 + STEPS - 1, NULL, &err), FLX_OK);
            cr_assert_eq(memcmp(hr, hf, sizeof hr), 0);
            free(lr); free(lf);
            flx_emu_kv_free(&kr);
            for (int p = 0; p < NP; p++) flx_emu_kv_free(&kf[p]);
        }
        /* a position outside the cache is refused as by the reference */
        flx_emu_kv small;
        cr_assert_eq(flx_emu_kv_init(&small, &e, 4, &err), FLX_OK);
        float *lg = malloc(e.n_vocab_pad * sizeof(float));
        cr_assert_eq(flx_emu_decoder_step(&dec, lg, NULL, &small, toks[0], 4, NULL, &err), FLX_EINVAL);
        cr_assert(strstr(err.msg, "position 4"), "%s", err.msg);
        free(lg);
        flx_emu_kv_free(&small);
        flx_emu_decoder_free(&dec);
        flx_emu_engine_free(&e);
    }
    for (int p = 1; p < NP; p++) flx_pool_free(pools[p]);
    destroy(&m);
}

/* flx_emu_generate (fast decode) gives the tokens of the host flow run with
 * the reference step, for 1 and 2 threads: 40 tokens after a 9-token
 * prompt and after a 40-token prompt with the reference quirks. */
Test(emu_pipeline, generate_fast_equals_reference_host_flow_for_any_threads)
{
    test_model m;
    build(&m);
    make_tokens();
    flx_pool *p1 = flx_pool_create(1), *p2 = flx_pool_create(2);
    for (int quirks = 0; quirks < 2; quirks++) {
        const int n_prompt = quirks ? 40 : 9, n_new = 32;
        flx_emu_engine e;
        engine(&e, &m, quirks, 8);
        flx_error err = { 0 };
        collect a = { { 0 }, 0 }, b = { { 0 }, 0 };
        cr_assert_eq(flx_emu_generate(&e, toks, n_prompt, n_new, 11, -1, on_token, &a, p1, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_emu_generate(&e, toks, n_prompt, n_new, 11, -1, on_token, &b, p2, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(a.n, n_new);
        cr_assert_eq(memcmp(a.ids, b.ids, sizeof a.ids), 0);
        /* the reference host flow */
        flx_emu_kv kv;
        cr_assert_eq(flx_emu_kv_init(&kv, &e, n_prompt + n_new, &err), FLX_OK);
        cr_assert_eq(flx_emu_prefill(&e, NULL, &kv, toks, n_prompt - 1, NULL, &err), FLX_OK);
        float *lg = malloc(e.n_vocab_pad * sizeof(float));
        flx_rng rng;
        flx_rng_seed(&rng, 11);
        int32_t tok = toks[n_prompt - 1];
        int distinct = 0;
        for (int s = 0; s < n_new; s++) {
            cr_assert_eq(flx_emu_decode_step(&e, lg, &kv, tok, n_prompt - 1 + s, NULL, &err), FLX_OK);
            flx_emu_topk tk;
            cr_assert_eq(flx_emu_topk_sampling(&tk, lg, e.n_vocab_pad, 16, 5, (float)flx_rng_uniform(&rng),
                                             &e.opts.fp), 0);
            cr_assert_eq(tk.token, a.ids[s], "quirks %d step %d", quirks, s);
            distinct += s > 0 && a.ids[s] != a.ids[s - 1];
            tok = tk.token;
        }
        cr_assert_gt(distinct, 4);
        free(lg);
        flx_emu_kv_free(&kv);
        flx_emu_engine_free(&e);
    }
    flx_pool_free(p1);
    flx_pool_free(p2);
    destroy(&m);
}

Test(emu_pipeline, refuses_models_the_hardware_cannot_run)
{
    test_model m;
    build(&m);
    flx_emu_engine e;
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_error err = { 0 };
    m.layers[1].w_up.bits = 8;
    strcpy(m.qm.recipe, "w8a8");
    cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 64, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "layer 1 w_up: 8-bit weights") != NULL, "%s", err.msg);
    m.layers[1].w_up.bits = 4;
    m.qm.r4_online = 0;
    cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 64, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "R4") != NULL, "%s", err.msg);
    m.qm.r4_online = 1;
    m.layers[0].a_s = 0.0f;
    cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 64, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "a_s") != NULL, "%s", err.msg);
    m.layers[0].a_s = 0.004f;
    m.qm.head.wsum = NULL;
    cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 64, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "head: missing wsum") != NULL, "%s", err.msg);
    destroy(&m);
}

typedef struct { float *all; int64_t rows_seen; } win_ctx;
static int on_rows(void *ctx, int64_t row0, int64_t n_rows, const float *logits)
{
    win_ctx *w = ctx;
    cr_assert_eq(row0, w->rows_seen);
    memcpy(w->all + row0 * NV, logits, (size_t)(n_rows * NV) * sizeof(float));
    w->rows_seen += n_rows;
    return 0;
}

Test(emu_pipeline, window_logits_are_prefill_then_head)
{
    test_model m;
    build(&m);
    make_tokens();
    flx_emu_engine e;
    engine(&e, &m, 0, 8);
    enum { N = 50 };
    static float hid[N * DM], want[N * NV], got[N * NV];
    flx_error err = { 0 };
    cr_assert_eq(flx_emu_prefill(&e, hid, NULL, toks, N, NULL, &err), FLX_OK);
    cr_assert_eq(flx_emu_head(&e, want, hid, N, NULL, &err), FLX_OK);
    win_ctx w = { got, 0 };
    cr_assert_eq(flx_emu_window_logits(&e, toks, N, on_rows, &w, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(w.rows_seen, N);
    cr_assert_eq(memcmp(want, got, sizeof want), 0);
    flx_emu_engine_free(&e);
    destroy(&m);
}

/* A tiny A_s saturates P at 255: rows with sum(p8) * 128 >= 2^24 leave the
 * float fast path for the integer A.V; still the literal path's bits. */
Test(emu_pipeline, saturated_probabilities_take_the_integer_path)
{
    test_model m;
    build(&m);
    make_tokens();
    for (int l = 0; l < NL; l++) m.layers[l].a_s = 1e-6f;
    flx_emu_engine e, ef;
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_error err = { 0 };
    cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 1024, &err), FLX_OK);
    o.full_attention = 1;
    cr_assert_eq(flx_emu_engine_init(&ef, &m.qm, &o, 1024, &err), FLX_OK);
    enum { N = 600 };
    static float a[N * DM], b[N * DM];
    cr_assert_eq(flx_emu_prefill(&e, a, NULL, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_prefill(&ef, b, NULL, toks, N, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    flx_emu_engine_free(&e);
    flx_emu_engine_free(&ef);
    destroy(&m);
}

/* flx_host's multi-call prefill: calls of 16 rows (and uneven calls, and a
 * long one with several 128-row attention blocks after an offset) give the
 * hidden rows and every layer's K/V rows of one prefill over all the rows,
 * bit for bit, with the causal-prefix and the literal full attention, with
 * and without a pool; calls off the 16-row grid are refused. */
Test(emu_pipeline, multi_call_prefill_equals_one_long_prefill)
{
    test_model m;
    build(&m);
    make_tokens();
    enum { N = 245 };
    const int KV = NKV * HD;
    static float one[N * DM], part[N * DM];
    flx_error err = { 0 };
    flx_pool *p2 = flx_pool_create(2);
    /* call boundaries: 16-row calls up to 48, then 32, then the rest (197 rows) */
    const int64_t starts[] = { 0, 16, 32, 48, 80, N };
    for (int full = 0; full < 2; full++) {
        flx_emu_engine e;
        flx_emu_opts o;
        flx_emu_opts_default(&o);
        o.full_attention = full;
        o.reference_quirks = 1;
        cr_assert_eq(flx_emu_engine_init(&e, &m.qm, &o, 256, &err), FLX_OK, "%s", err.msg);
        flx_emu_kv kv1, kv2;
        cr_assert_eq(flx_emu_kv_init(&kv1, &e, 256, &err), FLX_OK);
        cr_assert_eq(flx_emu_kv_init(&kv2, &e, 256, &err), FLX_OK);
        cr_assert_eq(flx_emu_prefill(&e, one, &kv1, toks, N, p2, &err), FLX_OK, "%s", err.msg);
        memset(part, 0, sizeof part);
        for (int c = 0; c + 1 < (int)(sizeof starts / sizeof starts[0]); c++) {
            int64_t p0 = starts[c], n = starts[c + 1] - p0;
            flx_pool *pool = c % 2 ? p2 : NULL;
            cr_assert_eq(flx_emu_prefill_at(&e, part + p0 * DM, &kv2, toks + p0, NULL, n, p0, pool, &err),
                         FLX_OK, "%s", err.msg);
        }
        cr_assert_eq(memcmp(one, part, sizeof one), 0, "full_attention %d", full);
        for (int l = 0; l < NL; l++) {
            static int8_t k1[N * NKV * HD], v1[N * NKV * HD], k2[N * NKV * HD], v2[N * NKV * HD];
            flx_emu_kv_get_rows(&kv1, l, 0, N, k1, v1);
            flx_emu_kv_get_rows(&kv2, l, 0, N, k2, v2);
            cr_assert_eq(memcmp(k1, k2, sizeof k1), 0);
            cr_assert_eq(memcmp(v1, v2, sizeof v1), 0);
        }
        /* the same call from embedding rows instead of token ids */
        static float emb[16 * DM], h[16 * DM];
        for (int t = 0; t < 16; t++) memcpy(emb + t * DM, m.qm.tok_embd + (size_t)toks[16 + t] * DM, DM * 4);
        cr_assert_eq(flx_emu_prefill_at(&e, h, &kv2, NULL, emb, 16, 16, NULL, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(memcmp(h, one + 16 * DM, sizeof h), 0);
        /* the call reads the cache: a different earlier key row changes its rows */
        int8_t row3[NKV * HD];
        flx_emu_kv_get_rows(&kv2, 0, 3, 1, row3, NULL);
        for (int i = 0; i < KV; i++) row3[i] ^= 0x40;
        flx_emu_kv_put_rows(&kv2, 0, 3, 1, row3, NULL);
        cr_assert_eq(flx_emu_prefill_at(&e, h, &kv2, NULL, emb, 16, 16, NULL, &err), FLX_OK, "%s", err.msg);
        cr_assert_neq(memcmp(h, one + 16 * DM, sizeof h), 0);
        /* refusals: off the 16-row grid, no cache, past the RoPE table */
        cr_assert_eq(flx_emu_prefill_at(&e, h, &kv2, toks, NULL, 16, 8, NULL, &err), FLX_EINVAL);
        cr_assert(strstr(err.msg, "multiples of 16"), "%s", err.msg);
        cr_assert_eq(flx_emu_prefill_at(&e, h, NULL, toks, NULL, 16, 16, NULL, &err), FLX_EINVAL);
        cr_assert_eq(flx_emu_prefill_at(&e, h, &kv2, toks, NULL, 16, 256, NULL, &err), FLX_EINVAL);
        flx_emu_kv_free(&kv1);
        flx_emu_kv_free(&kv2);
        flx_emu_engine_free(&e);
    }
    flx_pool_free(p2);
    destroy(&m);
}
