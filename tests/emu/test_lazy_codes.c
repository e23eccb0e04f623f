/* The engine's packed weights straight from a .flxq file's nibbles
 * (flx_qmodel_load_ex with lazy_codes): the same packed bytes as packing the
 * int8 codes, for any thread count; the lazy model's accessors; the same
 * logits through every engine path (VNNI/AMX, portable, reference decode,
 * fast decode); the fake-quant model's weights from nibbles; the loader's
 * checks and messages unchanged on a pool. */
#include "flx_emu.h"
#include "flx_qmodel.h"
#include "flx_safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 99;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int8_t code(void) { return (int8_t)((int)(urand() * 16) - 8); }

/* ------------------------------------------------------------ kernel level */

/* Rows of nibbles as a .flxq stores them, with the pad nibble of an odd
 * row set to garbage (a file may hold anything there: it is no code). */
static uint8_t *nibbles(const int8_t *w, int64_t n_out, int64_t n_in)
{
    const int64_t rb = (n_in + 1) / 2;
    uint8_t *nib = malloc((size_t)(n_out * rb));
    cr_assert_not_null(nib);
    for (int64_t o = 0; o < n_out; o++) {
        flx_pack_int4(w + o * n_in, (size_t)n_in, nib + o * rb);
        if (n_in & 1) nib[o * rb + rb - 1] |= 0xA0;
    }
    return nib;
}

Test(emu_lazy_codes, pack_from_nibbles_equals_pack_from_int8)
{
    const int64_t shapes[][2] = { { 1, 1 }, { 45, 67 }, { 32, 64 }, { 70, 130 }, { 33, 63 }, { 96, 257 }, { 16, 2 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t O = shapes[s][0], K = shapes[s][1];
        int8_t *w = malloc((size_t)(O * K));
        for (int64_t i = 0; i < O * K; i++) w[i] = code();
        uint8_t *nib = nibbles(w, O, K);
        flx_emu_wpack ref, fromnib;
        cr_assert_eq(flx_emu_wpack_init(&ref, w, O, K), 0);
        cr_assert_eq(flx_emu_wpack_alloc(&fromnib, O, K), 0);
        const int64_t nb = fromnib.o32 / 32, bytes = flx_emu_wpack_bytes(O, K);
        cr_assert_eq(bytes, nb * fromnib.k64 * 16);
        memset(fromnib.nib, 0x5C, (size_t)bytes);      /* every byte must be written */
        /* blocks in any order and split (as the pool's threads do) */
        for (int64_t b = nb - 1; b >= 0; b--) flx_emu_wpack_fill_nib(&fromnib, nib, b, b + 1);
        cr_assert_eq(memcmp(ref.nib, fromnib.nib, (size_t)bytes), 0, "shape %lld x %lld", (long long)O, (long long)K);
        /* the codes read back from either copy are the codes */
        int8_t *back = malloc((size_t)(O * K));
        flx_emu_wpack_rows(&fromnib, 0, O, back);
        cr_assert_eq(memcmp(back, w, (size_t)(O * K)), 0, "rows of %lld x %lld", (long long)O, (long long)K);
        if (O > 3) {
            flx_emu_wpack_rows(&ref, 2, O - 3, back);
            cr_assert_eq(memcmp(back, w + 2 * K, (size_t)((O - 3) * K)), 0);
        }
        free(back);
        flx_emu_wpack_free(&ref);
        flx_emu_wpack_free(&fromnib);
        free(nib);
        free(w);
    }
}

/* The portable GEMM of the prefill (no VNNI) on codes read back from the
 * packed copy (w = NULL) gives the int8 path's sums, wraps included. */
Test(emu_lazy_codes, gemm_from_packed_rows_equals_gemm_on_codes)
{
    const int64_t T = 9, O = 70, K = 130;
    int8_t *w = malloc((size_t)(O * K)), *a = malloc((size_t)(T * K));
    for (int64_t i = 0; i < O * K; i++) w[i] = code();
    for (int64_t i = 0; i < T * K; i++) a[i] = (int8_t)(urand() * 16);
    flx_emu_wpack wp;
    cr_assert_eq(flx_emu_wpack_init(&wp, w, O, K), 0);
    int32_t *want = malloc((size_t)(T * O) * 4), *got = malloc((size_t)(T * O) * 4);
    const int bits[2] = { 21, 10 };   /* 10 bits: many sums wrap */
    setenv("FLXEMU_NO_VNNI", "1", 1);
    for (int i = 0; i < 2; i++) {
        int64_t w1 = flx_emu_gemm_i4(want, a, 1, w, T, O, K, bits[i], NULL);
        int64_t w2 = flx_emu_gemm_i4_wp(got, a, NULL, &wp, T, O, K, bits[i], NULL);
        cr_assert_eq(w1, w2, "bits %d: wrapped %lld vs %lld", bits[i], (long long)w1, (long long)w2);
        cr_assert_eq(memcmp(want, got, (size_t)(T * O) * 4), 0, "bits %d", bits[i]);
        if (i == 1) cr_assert_gt(w1, 0, "the 10-bit case must wrap");
    }
    unsetenv("FLXEMU_NO_VNNI");
    flx_emu_wpack_free(&wp);
    free(w); free(a); free(want); free(got);
}

/* ------------------------------------------------------------ model level */

/* NV * DM > 65536: the finite check of the embedding takes several chunks */
enum { NL = 2, DM = 64, NH = 4, NKV = 2, HD = 16, FF = 128, NV = 1100, VP = 2048 };

static void make_tensor(flx_qmodel *qm, flx_qtensor *t, int n_out, int n_in, float s_lo, float s_hi)
{
    t->n_out = n_out; t->n_in = n_in; t->bits = 4; t->group_size = n_in; t->symmetric = 1;
    t->q = flx_qmodel_alloc(qm, (size_t)n_out * n_in);
    t->scale = flx_qmodel_alloc(qm, (size_t)n_out * sizeof(float));
    t->wsum = flx_qmodel_alloc(qm, (size_t)n_out * sizeof(float));
    cr_assert(t->q && t->scale && t->wsum);
    for (int o = 0; o < n_out; o++) {
        int sum = 0;
        for (int k = 0; k < n_in; k++) sum += t->q[(size_t)o * n_in + k] = code();
        t->scale[o] = (float)(s_lo + (s_hi - s_lo) * urand());
        t->wsum[o] = t->scale[o] * (float)sum;
    }
}

/* A small flexllm model written as a .flxq file; returns its path. */
static const char *write_model(void)
{
    static char path[512];
    flx_qmodel qm;
    memset(&qm, 0, sizeof qm);
    rng = 4321;
    flx_llama_config *c = &qm.cfg;
    c->n_vocab = NV; c->d_model = DM; c->n_layers = NL; c->n_heads = NH; c->n_kv_heads = NKV;
    c->head_dim = HD; c->d_ff = FF; c->max_seq_len = 256; c->rms_eps = 1e-5f;
    c->rope_theta = 500000.0; c->rope_pairing = FLX_ROPE_SPLIT_HALF; c->bos_id = 1; c->eos_id = 2;
    strcpy(qm.recipe, "flexllm");
    strcpy(qm.rotation, "hadamard");
    qm.r4_online = 1;
    qm.has_attn_scales = 1;
    float *emb = flx_qmodel_alloc(&qm, (size_t)NV * DM * sizeof(float));
    float *ones = flx_qmodel_alloc(&qm, DM * sizeof(float));
    qm.layers = flx_qmodel_alloc(&qm, NL * sizeof *qm.layers);
    double *inv = flx_qmodel_alloc(&qm, HD / 2 * sizeof(double));
    cr_assert(emb && ones && qm.layers && inv);
    memset(qm.layers, 0, NL * sizeof *qm.layers);
    for (int i = 0; i < NV * DM; i++) emb[i] = (float)(urand() * 2.0 - 1.0);
    for (int i = 0; i < DM; i++) ones[i] = 1.0f;
    for (int k = 0; k < HD / 2; k++) inv[k] = pow(500000.0, -2.0 * k / HD);
    qm.tok_embd = emb;
    qm.out_norm = ones;
    qm.rope_inv_freq = inv;
    for (int l = 0; l < NL; l++) {
        flx_qlayer *L = &qm.layers[l];
        L->attn_norm = ones;
        L->ffn_norm = ones;
        make_tensor(&qm, &L->wq, DM, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->wk, NKV * HD, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->wv, NKV * HD, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->wo, DM, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->w_gate, FF, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->w_up, FF, DM, 0.02f, 0.04f);
        make_tensor(&qm, &L->w_down, DM, FF, 0.02f, 0.04f);
        L->q_s = 0.01f; L->k_s = 0.03f; L->v_s = 0.02f; L->a_s = 1.0f / 255.0f;
    }
    make_tensor(&qm, &qm.head, NV, DM, 0.05f, 0.1f);
    snprintf(path, sizeof path, "%s/m.flxq", flx_test_tmpdir());
    flx_error err = { 0 };
    cr_assert_eq(flx_qmodel_save(&qm, path, &err), FLX_OK, "%s", err.msg);
    flx_qmodel_free(&qm);
    return path;
}

static const flx_qtensor *tensor(const flx_qmodel *qm, int i)
{
    if (i == NL * 7) return &qm->head;
    const flx_qlayer *L = &qm->layers[i / 7];
    const flx_qtensor *t[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    return t[i % 7];
}

static void load(flx_qmodel *qm, const char *path, flx_pool *pool, int lazy)
{
    flx_error err = { 0 };
    const flx_qload_opts o = { pool, lazy };
    cr_assert_eq(flx_qmodel_load_ex(qm, path, &o, &err), FLX_OK, "%s", err.msg);
}

static int64_t packed_bytes(const flx_emu_engine *e)
{
    int64_t n = 0;
    for (int i = 0; i <= NL * 7; i++) n += flx_emu_wpack_bytes(e->wpack[i].n_out, e->wpack[i].n_in);
    return n;
}

/* Lazy loads keep nibbles only; flx_qtensor_rows and flx_qmodel_unpack give
 * the eager load's codes; the engine packs the same bytes from either, with
 * no pool, 1 or 2 threads; saving a lazy model writes the same file. */
Test(emu_lazy_codes, lazy_model_packs_the_same_bytes_for_any_thread_count)
{
    const char *path = write_model();
    flx_pool *pools[3] = { NULL, flx_pool_create(1), flx_pool_create(2) };
    flx_qmodel eager, eager2, lazy[3];
    load(&eager, path, NULL, 0);
    load(&eager2, path, pools[2], 0);
    for (int p = 0; p < 3; p++) load(&lazy[p], path, pools[p], 1);
    int8_t *rows = malloc((size_t)NV * DM > (size_t)DM * FF ? (size_t)NV * DM : (size_t)DM * FF);
    for (int i = 0; i <= NL * 7; i++) {
        const flx_qtensor *te = tensor(&eager, i), *t2 = tensor(&eager2, i), *tl = tensor(&lazy[2], i);
        const size_t n = (size_t)te->n_out * te->n_in;
        cr_assert(te->q && !te->nib, "eager tensor %d", i);
        cr_assert_eq(memcmp(te->q, t2->q, n), 0, "eager load on 2 threads, tensor %d", i);
        cr_assert(!tl->q && tl->nib && flx_qtensor_is_int(tl), "lazy tensor %d", i);
        flx_qtensor_rows(tl, 0, tl->n_out, rows);
        cr_assert_eq(memcmp(rows, te->q, n), 0, "lazy rows, tensor %d", i);
        flx_qtensor_rows(tl, 3, 5, rows);
        cr_assert_eq(memcmp(rows, te->q + 3 * te->n_in, (size_t)5 * te->n_in), 0, "lazy rows 3..7, tensor %d", i);
    }
    free(rows);
    cr_assert_eq(memcmp(eager.tok_embd, lazy[0].tok_embd, (size_t)NV * DM * sizeof(float)), 0);

    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_error err = { 0 };
    flx_emu_engine ref, e[3];
    cr_assert_eq(flx_emu_engine_init(&ref, &eager, &o, 64, &err), FLX_OK, "%s", err.msg);
    const int64_t bytes = packed_bytes(&ref);
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(flx_emu_engine_init_ex(&e[p], &lazy[p], &o, 64, pools[p], &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(packed_bytes(&e[p]), bytes);
        cr_assert_eq(memcmp(e[p].wpack_mem, ref.wpack_mem, (size_t)bytes), 0, "pool %d", p);
        for (int i = 0; i <= NL * 7; i++)
            cr_assert_eq(e[p].wpack[i].nib - e[p].wpack_mem, ref.wpack[i].nib - ref.wpack_mem);
    }
    /* each matrix also equals a plain one-thread pack of the int8 codes */
    for (int i = 0; i <= NL * 7; i++) {
        const flx_qtensor *t = tensor(&eager, i);
        flx_emu_wpack one;
        cr_assert_eq(flx_emu_wpack_init(&one, t->q, t->n_out, t->n_in), 0);
        cr_assert_eq(memcmp(one.nib, e[2].wpack[i].nib, (size_t)flx_emu_wpack_bytes(t->n_out, t->n_in)), 0,
                     "matrix %d", i);
        flx_emu_wpack_free(&one);
    }

    /* the nibbles stay readable after the engine released their pages */
    char resaved[600];
    snprintf(resaved, sizeof resaved, "%s.again", path);
    cr_assert_eq(flx_qmodel_save(&lazy[1], resaved, &err), FLX_OK, "%s", err.msg);
    char *a, *b;
    size_t na, nb;
    cr_assert_eq(flx_read_file(path, (size_t)1 << 24, &a, &na, &err), FLX_OK);
    cr_assert_eq(flx_read_file(resaved, (size_t)1 << 24, &b, &nb, &err), FLX_OK);
    cr_assert(na == nb && memcmp(a, b, na) == 0, "a lazy model saves the same file");
    free(a);
    free(b);

    /* the fake-quant model dequantizes the nibbles to the same floats */
    flx_fakequant fqe, fql;
    cr_assert_eq(flx_fakequant_build(&fqe, &eager, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_fakequant_build(&fql, &lazy[0], &err), FLX_OK, "%s", err.msg);
    for (int l = 0; l < NL; l++) {
        const flx_llama_layer *a = &fqe.model.w.layers[l], *b = &fql.model.w.layers[l];
        const float *wa[7] = { a->wq, a->wk, a->wv, a->wo, a->w_gate, a->w_up, a->w_down };
        const float *wb[7] = { b->wq, b->wk, b->wv, b->wo, b->w_gate, b->w_up, b->w_down };
        for (int i = 0; i < 7; i++) {
            const flx_qtensor *t = tensor(&eager, l * 7 + i);
            cr_assert_eq(memcmp(wa[i], wb[i], (size_t)t->n_out * t->n_in * sizeof(float)), 0, "layer %d w%d", l, i);
        }
    }
    cr_assert_eq(memcmp(fqe.model.w.output, fql.model.w.output, (size_t)NV * DM * sizeof(float)), 0);
    flx_fakequant_free(&fqe);
    flx_fakequant_free(&fql);

    /* explicit unpack: the eager codes, on any pool */
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(flx_qmodel_unpack(&lazy[p], pools[p], &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_qmodel_unpack(&lazy[p], pools[p], &err), FLX_OK, "a second call is a no-op");
        for (int i = 0; i <= NL * 7; i++) {
            const flx_qtensor *te = tensor(&eager, i), *tl = tensor(&lazy[p], i);
            cr_assert_not_null(tl->q);
            cr_assert_eq(memcmp(te->q, tl->q, (size_t)te->n_out * te->n_in), 0, "unpack pool %d tensor %d", p, i);
        }
    }

    flx_emu_engine_free(&ref);
    for (int p = 0; p < 3; p++) {
        flx_emu_engine_free(&e[p]);
        flx_qmodel_free(&lazy[p]);
    }
    flx_qmodel_free(&eager);
    flx_qmodel_free(&eager2);
    flx_pool_free(pools[1]);
    flx_pool_free(pools[2]);
}

typedef struct {
    float *logits;
    int64_t n_vocab;
} rows_ctx;

static int keep_rows(void *ctx, int64_t row0, int64_t n_rows, const float *logits)
{
    rows_ctx *r = ctx;
    memcpy(r->logits + row0 * r->n_vocab, logits, (size_t)(n_rows * r->n_vocab) * sizeof(float));
    return 0;
}

/* window logits, then reference and fast decode steps after a prefill */
static void run(const flx_qmodel *qm, float *win, float *dec, flx_pool *pool)
{
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_error err = { 0 };
    flx_emu_engine e;
    cr_assert_eq(flx_emu_engine_init_ex(&e, qm, &o, 64, pool, &err), FLX_OK, "%s", err.msg);
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = (int32_t)((i * 37 + 11) % NV);
    rows_ctx rc = { win, NV };
    cr_assert_eq(flx_emu_window_logits(&e, toks, 40, keep_rows, &rc, pool, &err), FLX_OK, "%s", err.msg);
    flx_emu_kv kv, kv2;
    cr_assert_eq(flx_emu_kv_init(&kv, &e, 64, &err), FLX_OK);
    cr_assert_eq(flx_emu_kv_init(&kv2, &e, 64, &err), FLX_OK);
    cr_assert_eq(flx_emu_prefill(&e, NULL, &kv, toks, 20, pool, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_emu_prefill(&e, NULL, &kv2, toks, 20, pool, &err), FLX_OK, "%s", err.msg);
    flx_emu_decoder d;
    cr_assert_eq(flx_emu_decoder_init(&d, &e, pool, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(e.n_vocab_pad, VP);
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(flx_emu_decode_step(&e, dec + (2 * s) * VP, &kv, toks[20 + s], 20 + s, pool, &err), FLX_OK,
                     "%s", err.msg);
        cr_assert_eq(flx_emu_decoder_step(&d, dec + (2 * s + 1) * VP, NULL, &kv2, toks[20 + s], 20 + s, pool, &err),
                     FLX_OK, "%s", err.msg);
    }
    flx_emu_decoder_free(&d);
    flx_emu_kv_free(&kv);
    flx_emu_kv_free(&kv2);
    flx_emu_engine_free(&e);
}

/* Every engine path gives the eager model's bits on the lazy one: the
 * prefill GEMM (VNNI/AMX when the CPU has it, else and with FLXEMU_NO_VNNI
 * the portable GEMM on rows read back from the packed copy), the reference
 * decode step (rows read back) and the fast decode (packed GEMV). */
Test(emu_lazy_codes, lazy_model_gives_the_same_logits_on_every_path)
{
    const char *path = write_model();
    flx_pool *pool = flx_pool_create(2);
    flx_qmodel eager, lazy;
    load(&eager, path, NULL, 0);
    load(&lazy, path, pool, 1);
    const size_t nw = (size_t)40 * NV, nd = (size_t)6 * VP;
    float *w1 = calloc(nw, 4), *w2 = calloc(nw, 4), *d1 = calloc(nd, 4), *d2 = calloc(nd, 4);
    for (int novnni = 0; novnni < 2; novnni++) {
        if (novnni) setenv("FLXEMU_NO_VNNI", "1", 1);
        run(&eager, w1, d1, NULL);
        run(&lazy, w2, d2, pool);
        cr_assert_eq(memcmp(w1, w2, nw * 4), 0, "window logits, FLXEMU_NO_VNNI=%d", novnni);
        cr_assert_eq(memcmp(d1, d2, nd * 4), 0, "decode logits, FLXEMU_NO_VNNI=%d", novnni);
        for (int s = 0; s < 3; s++)   /* reference and fast decode agree */
            cr_assert_eq(memcmp(d2 + 2 * s * VP, d2 + (2 * s + 1) * VP, VP * 4), 0, "step %d", s);
        int finite = 1;
        for (size_t i = 0; i < nw; i++) finite &= isfinite(w1[i]) != 0;
        cr_assert(finite);
    }
    unsetenv("FLXEMU_NO_VNNI");
    free(w1); free(w2); free(d1); free(d2);
    flx_qmodel_free(&eager);
    flx_qmodel_free(&lazy);
    flx_pool_free(pool);
}

/* A bad element found by the pooled finite check is named as the serial
 * check names it (the first one), for eager and lazy loads alike. */
Test(emu_lazy_codes, loader_messages_independent_of_the_pool)
{
    const char *path = write_model();
    flx_safetensors st;
    flx_error err = { 0 };
    cr_assert_eq(flx_st_open(&st, path, &err), FLX_OK, "%s", err.msg);
    const flx_st_tensor *t = flx_st_find(&st, "tok_embd");
    cr_assert_not_null(t);
    const size_t off = t->offset;
    flx_st_close(&st);
    const long bad[2] = { 66000, 9001 };   /* chunks 1 and 0: the first in file order is reported */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    const float inf = INFINITY, nan = NAN;
    fseek(f, (long)off + bad[0] * 4, SEEK_SET);
    fwrite(&nan, 4, 1, f);
    fseek(f, (long)off + bad[1] * 4, SEEK_SET);
    fwrite(&inf, 4, 1, f);
    fclose(f);
    flx_pool *pool = flx_pool_create(2);
    for (int p = 0; p < 2; p++)
        for (int lazy = 0; lazy < 2; lazy++) {
            flx_qmodel qm;
            const flx_qload_opts o = { p ? pool : NULL, lazy };
            cr_assert_eq(flx_qmodel_load_ex(&qm, path, &o, &err), FLX_ENUMERIC);
            cr_assert(strstr(err.msg, "tensor 'tok_embd' element 9001 is not finite"), "%s", err.msg);
            cr_assert(strstr(err.msg, path), "%s", err.msg);
        }
    flx_pool_free(pool);
}
