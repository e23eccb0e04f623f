/* The bit-exact HMT flow: retrieval kernel against a transcription of the
 * spec, emulator vs float HMT on a tiny quantized model, the reference
 * quirks (P = 0), thread-count invariance, and `flxemu ppl --hmt`. */
#include "flx_emu_hmt.h"
#include "flx_qmodel.h"
#include "flx_synth.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

enum { SEGLEN = 12, SENS = 4, NSEG = 5, H = 48 };

static char dir[256], flxq[512], model_dir[512], hmt_path[512];

static int run_cmd(const char *cmd, char *out, size_t cap)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out_buf[1 << 16];

/* tiny synthetic model with d_ff 128, quantized with the flexllm recipe;
 * HMT parameters with h = 48 and 12-token segments */
static void make_model(void)
{
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    cr_assert_eq(mkdir(model_dir, 0755), 0);
    flx_llama_config cfg;
    flx_error err = {0};
    cr_assert_eq(flx_synth_config("tiny", &cfg, &err), FLX_OK);
    cfg.d_ff = 128;
    cr_assert_eq(flx_synth_write_hf(model_dir, &cfg, 11, 0, NULL, &err), FLX_OK, "%s", err.msg);
    char calib[512], cmd[2048];
    snprintf(calib, sizeof calib, "%s/calib.txt", dir);
    FILE *f = fopen(calib, "w");
    for (int i = 0; i < 60; i++) fprintf(f, "Line %d: the quick brown fox jumps over the lazy dog.\n", i);
    fclose(f);
    snprintf(flxq, sizeof flxq, "%s/m.flxq", dir);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe flexllm --calib %s --nsamples 4 --seqlen 64 "
             "--out %s --threads 1", flx_test_bin(), model_dir, calib, flxq);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    snprintf(hmt_path, sizeof hmt_path, "%s/hmt.safetensors", dir);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --seed 9 --hmt %s --hmt-dim %d --hmt-segment-length %d "
             "--hmt-sensory %d", flx_test_bin(), hmt_path, H, SEGLEN + 2 + SENS, SENS);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
}

static void tokens(int32_t *t, int n)
{
    for (int i = 0; i < n; i++) t[i] = (int32_t)((i * 7919 + 13) % 256);
}

/* Transcription of spec section 4 / 1.3 / 1.8 for one recall. */
Test(emu_hmt, recall_kernel_matches_spec_order)
{
    enum { D = 40, HH = 24, S = FLX_EMU_HMT_SLOTS };
    static float wq[HH * D], kmem[S * HH], mmem[S * D], mt[D * S], s[D];
    uint32_t st = 99;
#define RND() ((st = st * 1664525u + 1013904223u), ((float)(st >> 8) / 16777216.0f - 0.5f))
    for (int i = 0; i < HH * D; i++) wq[i] = RND();
    for (int i = 0; i < S * HH; i++) kmem[i] = RND();
    for (int i = 0; i < S * D; i++) mmem[i] = RND();
    for (int i = 0; i < D; i++) s[i] = 4.0f * RND();
    for (int o = 0; o < D; o++)
        for (int k = 0; k < S; k++) mt[o * S + k] = mmem[k * D + o];
    uint8_t mask[S];
    for (int k = 0; k < S; k++) mask[k] = k < 37;
    flx_emu_fp fp = {FLX_EMU_EXP_GLIBC, 0};
    for (int masked = 0; masked < 2; masked++) {
        float p[D], q[HH], sc[S];
        flx_emu_hmt_recall(p, q, sc, s, wq, kmem, mt, masked ? mask : NULL, D, HH, S, &fp);
        /* by hand: four partial sums per dot product */
        float qq[HH], a[S], e[S];
        for (int j = 0; j < HH; j++) {
            float ps[4] = {0, 0, 0, 0};
            for (int k = 0; k < D; k++) ps[k % 4] = ps[k % 4] + s[k] * wq[j * D + k];
            qq[j] = (ps[0] + ps[1]) + (ps[2] + ps[3]);
            cr_assert_eq(q[j], qq[j]);
        }
        for (int k = 0; k < S; k++) {
            float ps[4] = {0, 0, 0, 0};
            for (int j = 0; j < HH; j++) ps[j % 4] = ps[j % 4] + qq[j] * kmem[k * HH + j];
            a[k] = (ps[0] + ps[1]) + (ps[2] + ps[3]);
            if (masked && !mask[k]) a[k] = -1e32f;
        }
        /* block softmax, 4 lanes of 16: lane maxima, then lanes 0..3 */
        float m = -1e32f;
        for (int l = 0; l < 4; l++) {
            float lm = -1e32f;
            for (int k = 0; k < 16; k++) if (a[l * 16 + k] > lm) lm = a[l * 16 + k];
            if (lm > m) m = lm;
        }
        float scale = (float)sqrt((double)HH), tot = 0.0f;
        for (int l = 0; l < 4; l++) {
            float ps[4] = {0, 0, 0, 0};
            for (int k = 0; k < 16; k++) {
                e[l * 16 + k] = expf((a[l * 16 + k] - m) / scale);
                ps[k % 4] = ps[k % 4] + e[l * 16 + k];
            }
            tot = tot + ((ps[0] + ps[1]) + (ps[2] + ps[3]));
        }
        float r = 1.0f / tot;
        for (int k = 0; k < S; k++) {
            cr_assert_eq(sc[k], e[k] * r, "slot %d", k);
            if (masked && !mask[k]) cr_assert_eq(sc[k], 0.0f);
        }
        for (int o = 0; o < D; o++) {
            float ps[4] = {0, 0, 0, 0};
            for (int k = 0; k < S; k++) ps[k % 4] = ps[k % 4] + sc[k] * mmem[k * D + o];
            cr_assert_eq(p[o], (ps[0] + ps[1]) + (ps[2] + ps[3]), "p[%d]", o);
        }
    }
#undef RND
}

typedef struct {
    float *p, *m, *lg;   /* traces and all stage-1 logits */
    int64_t n_vocab;
} run_out;

static int cap_logits(void *ctx, int64_t seg, int64_t j0, int64_t n, const float *logits)
{
    run_out *o = ctx;
    memcpy(o->lg + ((size_t)seg * SEGLEN + (size_t)j0) * (size_t)o->n_vocab, logits,
           (size_t)(n * o->n_vocab) * sizeof(float));
    return 0;
}

static void run_emu(const flx_qmodel *qm, const flx_hmt_params *hp, int quirks, int threads, int final_norm,
                    const int32_t *tok, run_out *o)
{
    flx_error err = {0};
    flx_emu_opts eo;
    flx_emu_opts_default(&eo);
    eo.reference_quirks = quirks;
    flx_emu_engine e;
    cr_assert_eq(flx_emu_engine_init(&e, qm, &eo, flx_hmt_stage1_rows(hp), &err), FLX_OK, "%s", err.msg);
    flx_pool *pool = flx_pool_create(threads);
    flx_emu_hmt_backbone eb;
    flx_emu_hmt_mem hm;
    cr_assert_eq(flx_emu_hmt_backbone_init(&eb, &e, flx_hmt_stage1_rows(hp), pool, &err), FLX_OK);
    cr_assert_eq(flx_emu_hmt_mem_init(&hm, hp, &eo.fp, quirks ? FLX_EMU_HMT_Q_ALL : 0, &err), FLX_OK);
    flx_hmt_backbone bb = flx_emu_hmt_backbone_ops(&eb);
    flx_hmt_memory mem = flx_emu_hmt_mem_ops(&hm);
    flx_hmt_flow flow = flx_emu_hmt_flow(quirks ? FLX_EMU_HMT_Q_ALL : 0, final_norm);
    flx_hmt_trace tr = {o->p, NULL, o->m, 0};
    o->n_vocab = qm->cfg.n_vocab;
    cr_assert_eq(flx_hmt_context(hp, &flow, &bb, &mem, tok, NSEG * SEGLEN, cap_logits, o, &tr, &err), FLX_OK,
                 "%s", err.msg);
    flx_emu_hmt_mem_free(&hm);
    flx_emu_hmt_backbone_free(&eb);
    flx_pool_free(pool);
    flx_emu_engine_free(&e);
}

static run_out new_out(int64_t d, int64_t V)
{
    run_out o = {calloc(NSEG * d, 4), calloc(NSEG * d, 4), malloc((size_t)NSEG * SEGLEN * V * 4), V};
    cr_assert(o.p && o.m && o.lg);
    return o;
}

static void free_out(run_out *o)
{
    free(o->p);
    free(o->m);
    free(o->lg);
}

/* relative L2 distance */
static double rel_l2(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

Test(emu_hmt, emu_vs_float_quirks_threads, .timeout = 300)
{
    make_model();
    flx_error err = {0};
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_load(&qm, flxq, &err), FLX_OK, "%s", err.msg);
    const int64_t d = qm.cfg.d_model, V = qm.cfg.n_vocab;
    flx_hmt_params hp;
    cr_assert_eq(flx_hmt_load(&hp, hmt_path, (int32_t)d, NULL, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(hp.h, H);
    int32_t tok[NSEG * SEGLEN];
    tokens(tok, NSEG * SEGLEN);

    /* intended semantics, 1 and 2 threads: identical bits */
    run_out a = new_out(d, V), b = new_out(d, V);
    run_emu(&qm, &hp, 0, 1, 1, tok, &a);
    run_emu(&qm, &hp, 0, 2, 1, tok, &b);
    cr_assert_eq(memcmp(a.p, b.p, (size_t)NSEG * d * 4), 0);
    cr_assert_eq(memcmp(a.m, b.m, (size_t)NSEG * d * 4), 0);
    cr_assert_eq(memcmp(a.lg, b.lg, (size_t)NSEG * SEGLEN * V * 4), 0);
    /* P0 is the learned initial memory; with one memory cached (masked
     * empty slots) the recall is exactly that memory */
    cr_assert_eq(memcmp(a.p, hp.init_mem, (size_t)d * 4), 0);
    cr_assert_eq(memcmp(a.p + d, a.m, (size_t)d * 4), 0);
    double pnorm = 0;
    for (int64_t i = 0; i < NSEG * d; i++) pnorm += fabs(a.p[i]);
    cr_assert(pnorm > 1.0, "P is not trivial: %g", pnorm);

    /* the float flow on the same model's fake quantization: within the
     * documented tolerance (docs/hmt.md) */
    flx_model fm_model;
    flx_fakequant *fq = NULL;
    memset(&fm_model, 0, sizeof fm_model);
    cr_assert_eq(flx_fakequant_open_threads(&fq, &fm_model, flxq, 1, &err), FLX_OK, "%s", err.msg);
    flx_hmt_float_backbone fb;
    flx_hmt_float_memory *fmem;
    flx_llama_opts lo = {.n_threads = 1, .hooks = &fq->hooks};
    cr_assert_eq(flx_hmt_float_backbone_init(&fb, &fm_model, &lo, flx_hmt_stage1_rows(&hp), &err), FLX_OK);
    cr_assert_eq(flx_hmt_float_memory_new(&fmem, &hp, &err), FLX_OK);
    flx_hmt_backbone bb = flx_hmt_float_backbone_ops(&fb);
    flx_hmt_memory mem = flx_hmt_float_memory_ops(fmem);
    flx_hmt_flow flow = {1, 0, 0, 1};
    run_out f = new_out(d, V);
    flx_hmt_trace tr = {f.p, NULL, f.m, 0};
    cr_assert_eq(flx_hmt_context(&hp, &flow, &bb, &mem, tok, NSEG * SEGLEN, cap_logits, &f, &tr, &err), FLX_OK,
                 "%s", err.msg);
    /* tolerance: segment 0's M comes from identical inputs in both engines
     * (P0 = the initial memory), so its distance e0 is the backbone's own
     * W4A4-emulator vs fake-quant discrepancy; the memory path must not add
     * more than 25 % + 0.01 to it over the later segments */
    const double e0 = rel_l2(a.m, f.m, d);
    cr_assert(e0 > 0 && e0 <= 0.2, "backbone discrepancy %g", e0);
    const double tol = 1.25 * e0 + 0.01;
    for (int n = 1; n < NSEG; n++) {
        double ep = rel_l2(a.p + n * d, f.p + n * d, d);
        double em = rel_l2(a.m + n * d, f.m + n * d, d);
        cr_assert(ep <= tol, "segment %d: P relative L2 %g > %g", n, ep, tol);
        if (n < NSEG - 1) cr_assert(em <= tol, "segment %d: M relative L2 %g > %g", n, em, tol);
    }
    double el = rel_l2(a.lg, f.lg, (int64_t)NSEG * SEGLEN * V);
    cr_assert(el <= tol + 0.02, "logits relative L2 %g", el);
    /* reference quirks: Sn and Mn read from the inputs, zero initial memory,
     * so every P is exactly zero */
    run_out q = new_out(d, V);
    run_emu(&qm, &hp, 1, 2, 0, tok, &q);
    for (int64_t i = 0; i < NSEG * d; i++) {
        cr_assert_eq(q.p[i], 0.0f, "P[%lld] = %g", (long long)i, q.p[i]);
        cr_assert_eq(q.m[i], 0.0f);
    }
    free_out(&a); free_out(&b); free_out(&f); free_out(&q);
    flx_hmt_float_memory_free(fmem);
    flx_hmt_float_backbone_free(&fb);
    flx_fakequant_close(fq);
    flx_model_free(&fm_model);
    flx_hmt_free(&hp);
    flx_qmodel_free(&qm);
}

/* A ring of 8 slots (mem_recall_context 8) over 12 segments: after the
 * wrap, slot i holds the newest memory of a segment = i mod 8, its key is
 * Wk of it, and the last segment's recall equals the kernel applied to the
 * ring rebuilt by hand from the traced memories (segments 8, 9, 10, 3 .. 7
 * in slots 0 .. 7).  A cache that is not a multiple of 4 is refused. */
Test(emu_hmt, small_ring_wraps, .timeout = 300)
{
    enum { N = 8, NS = 12 };
    make_model();
    flx_error err = {0};
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_load(&qm, flxq, &err), FLX_OK, "%s", err.msg);
    const int64_t d = qm.cfg.d_model;
    flx_hmt_settings over;
    flx_hmt_settings_unset(&over);
    over.cache_size = N;
    flx_hmt_params hp;
    cr_assert_eq(flx_hmt_load(&hp, hmt_path, (int32_t)d, &over, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(hp.cache_size, N);
    const int64_t h = hp.h;
    int32_t tok[NS * SEGLEN];
    tokens(tok, NS * SEGLEN);
    flx_emu_opts eo;
    flx_emu_opts_default(&eo);
    flx_emu_engine e;
    cr_assert_eq(flx_emu_engine_init(&e, &qm, &eo, flx_hmt_stage1_rows(&hp), &err), FLX_OK, "%s", err.msg);
    flx_emu_hmt_backbone eb;
    flx_emu_hmt_mem hm;
    cr_assert_eq(flx_emu_hmt_backbone_init(&eb, &e, flx_hmt_stage1_rows(&hp), NULL, &err), FLX_OK);
    cr_assert_eq(flx_emu_hmt_mem_init(&hm, &hp, &eo.fp, 0, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(hm.n_slots, N);
    flx_hmt_backbone bb = flx_emu_hmt_backbone_ops(&eb);
    flx_hmt_memory mem = flx_emu_hmt_mem_ops(&hm);
    flx_hmt_flow flow = flx_emu_hmt_flow(0, 0);
    float *tp = calloc(NS * d, 4), *ts = calloc(NS * d, 4), *tm = calloc(NS * d, 4);
    flx_hmt_trace tr = {tp, ts, tm, 0};
    cr_assert_eq(flx_hmt_context(&hp, &flow, &bb, &mem, tok, NS * SEGLEN, NULL, NULL, &tr, &err), FLX_OK,
                 "%s", err.msg);
    /* the last segment stores nothing: segments 0 .. 10 were stored */
    float *mt = calloc((size_t)d * N, 4), *km = calloc((size_t)N * h, 4), *k = calloc(h, 4);
    uint8_t filled[N];
    for (int i = 0; i < N; i++) {
        int j = (NS - 2) - (((NS - 2) - i) % N + N) % N;   /* newest j <= 10 with j mod 8 = i */
        cr_assert_eq(j % N, i);
        cr_assert(j >= NS - 1 - N && j <= NS - 2, "slot %d <- segment %d", i, j);
        cr_assert_eq(hm.filled[i], 1);
        cr_assert_eq(memcmp(hm.m + i * d, tm + j * d, (size_t)d * 4), 0, "slot %d holds segment %d's M", i, j);
        flx_emu_hmt_key(k, tm + j * d, hp.wk, d, h, &eo.fp);
        cr_assert_eq(memcmp(hm.k + i * h, k, (size_t)h * 4), 0, "slot %d key", i);
        memcpy(km + i * h, k, (size_t)h * 4);
        for (int64_t o = 0; o < d; o++) mt[o * N + i] = tm[j * d + o];
        filled[i] = 1;
    }
    float *p = calloc(d, 4), *q = calloc(h, 4), sc[N];
    flx_emu_hmt_recall(p, q, sc, ts + (NS - 1) * d, hp.wq, km, mt, filled, d, h, N, &eo.fp);
    cr_assert_eq(memcmp(p, tp + (NS - 1) * d, (size_t)d * 4), 0, "segment 11's P from the wrapped ring");
    /* the wrap matters: segment 0's memory (overwritten in slot 0) would give another P */
    for (int64_t o = 0; o < d; o++) mt[o * N] = tm[o];
    flx_emu_hmt_key(km, tm, hp.wk, d, h, &eo.fp);
    float *p0 = calloc(d, 4);
    flx_emu_hmt_recall(p0, q, sc, ts + (NS - 1) * d, hp.wq, km, mt, filled, d, h, N, &eo.fp);
    cr_assert_neq(memcmp(p0, p, (size_t)d * 4), 0);
    flx_emu_hmt_mem_free(&hm);
    /* 6 slots: not a multiple of the softmax's 4 lanes */
    hp.cache_size = 6;
    cr_assert_eq(flx_emu_hmt_mem_init(&hm, &hp, &eo.fp, 0, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "mem_recall_context 6") && strstr(err.msg, hmt_path), "%s", err.msg);
    free(tp); free(ts); free(tm); free(mt); free(km); free(k); free(p); free(q); free(p0);
    flx_emu_hmt_backbone_free(&eb);
    flx_emu_engine_free(&e);
    flx_hmt_free(&hp);
    flx_qmodel_free(&qm);
}

/* float32 / int32 payload of a golden .npy (n values expected) */
static float *npy_f32(const char *dir, const char *name, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/layer_hmt_segment/%s.npy", dir, name);
    char *data;
    size_t bytes;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 24, &data, &bytes, &err), FLX_OK, "%s", err.msg);
    size_t hl = 10 + ((uint8_t)data[8] | ((size_t)(uint8_t)data[9] << 8));
    cr_assert_eq(bytes - hl, n * 4, "%s: %zu bytes of data", path, bytes - hl);
    float *v = malloc(n * 4);
    memcpy(v, data + hl, n * 4);
    free(data);
    return v;
}

/* `golden --layer hmt`'s segment steps (layer_hmt_segment) hold the flow's
 * structure: the loader rows are T / the hmt_io rows / Pn where the flow puts
 * them (segment 0: [P0 = memory_cell.memory, tokens, P0]; 70: with sensory
 * rows; 71, the last: no trailing P), Sn and Mn are the prefill outputs'
 * rows, Qn = Wq Sn and Kn = Wk Mn in the PE order, only slot 70 mod 64 = 6
 * changes at 70 and nothing at 71; --check agrees. */
Test(emu_hmt, golden_segment_step_structure, .timeout = 120)
{
    enum { D = 64, HH = 32, L = 10, S = 64, NT = 720 };
    char gdir[512];
    snprintf(gdir, sizeof gdir, "%s/g", flx_test_tmpdir());
    flx_emu_golden_opts o = {4, {FLX_EMU_EXP_FLX, 0}, 0, 0, 0};
    flx_error err = {0};
    cr_assert_eq(flx_emu_golden_write(gdir, "layer_hmt", "u280", &o, &err), FLX_OK, "%s", err.msg);
    int64_t nf = 0;
    cr_assert_eq(flx_emu_golden_check(gdir, &nf, &err), FLX_OK, "%s", err.msg);
    cr_assert_gt(nf, 150);
    float *io = npy_f32(gdir, "hmt_io", (1 + NT) * D), *init = npy_f32(gdir, "init_mem", D);
    float *wq = npy_f32(gdir, "wq", HH * D), *wk = npy_f32(gdir, "wk", HH * D);
    const size_t row = D * 4;
    flx_emu_fp fp = {FLX_EMU_EXP_FLX, 0};
    float qq[HH], kk[HH];
    /* segment 0: no stage 0, P0 = memory_cell.memory, [P0, 10 tokens, P0] + 4 zero rows */
    {
        float *p = npy_f32(gdir, "s0_p", D), *x1 = npy_f32(gdir, "s0_x1", 16 * D), *y1 = npy_f32(gdir, "s0_y1", 12 * D);
        float *m = npy_f32(gdir, "s0_m", D), *mo = npy_f32(gdir, "s0_mmem_out", S * D);
        cr_assert_eq(memcmp(p, init, row), 0);
        cr_assert_eq(memcmp(x1, p, row), 0);
        cr_assert_eq(memcmp(x1 + D, io + D, 10 * row), 0);
        cr_assert_eq(memcmp(x1 + 11 * D, p, row), 0);
        for (int i = 12 * D; i < 16 * D; i++) cr_assert_eq(x1[i], 0.0f);
        cr_assert_eq(memcmp(m, y1 + 11 * D, row), 0, "M0 = stage-1 output row 11");
        cr_assert_eq(memcmp(mo, m, row), 0, "slot 0 holds M0");
        for (int i = D; i < S * D; i++) cr_assert_eq(mo[i], 0.0f);
        free(p); free(x1); free(y1); free(m); free(mo);
    }
    /* segment 70 on the full ring */
    {
        const int f = 1 + 700;   /* hmt_io row of segment 70's first token */
        float *x0 = npy_f32(gdir, "s70_x0", 8 * D), *y0 = npy_f32(gdir, "s70_y0", 7 * D);
        float *x1 = npy_f32(gdir, "s70_x1", 16 * D), *y1 = npy_f32(gdir, "s70_y1", 16 * D);
        float *sn = npy_f32(gdir, "s70_s", D), *p = npy_f32(gdir, "s70_p", D), *m = npy_f32(gdir, "s70_m", D);
        float *q = npy_f32(gdir, "s70_q", HH), *k = npy_f32(gdir, "s70_k", HH), *a = npy_f32(gdir, "s70_a", S);
        float *mi = npy_f32(gdir, "s70_mmem_in", S * D), *mo = npy_f32(gdir, "s70_mmem_out", S * D);
        float *ki = npy_f32(gdir, "s70_kmem_in", S * HH), *ko = npy_f32(gdir, "s70_kmem_out", S * HH);
        /* stage 0: [T, tokens 0..4 of segment 70, T], one zero row */
        cr_assert_eq(memcmp(x0, io, row), 0);
        cr_assert_eq(memcmp(x0 + D, io + f * D, 5 * row), 0);
        cr_assert_eq(memcmp(x0 + 6 * D, io, row), 0);
        for (int i = 0; i < D; i++) cr_assert_eq(x0[7 * D + i], 0.0f);
        cr_assert_eq(memcmp(sn, y0 + 6 * D, row), 0, "Sn = stage-0 output row 6");
        /* stage 1: [Pn, last 4 tokens of segment 69, segment 70, Pn] */
        cr_assert_eq(memcmp(x1, p, row), 0);
        cr_assert_eq(memcmp(x1 + D, io + (f - 4) * D, 4 * row), 0);
        cr_assert_eq(memcmp(x1 + 5 * D, io + f * D, 10 * row), 0);
        cr_assert_eq(memcmp(x1 + 15 * D, p, row), 0);
        cr_assert_eq(memcmp(m, y1 + 15 * D, row), 0, "Mn = stage-1 output row 15");
        flx_emu_gemv_f32(qq, sn, wq, HH, D, &fp);
        flx_emu_gemv_f32(kk, m, wk, HH, D, &fp);
        cr_assert_eq(memcmp(q, qq, sizeof qq), 0);
        cr_assert_eq(memcmp(k, kk, sizeof kk), 0);
        double sum = 0;
        for (int i = 0; i < S; i++) sum += a[i];
        cr_assert(fabs(sum - 1.0) < 1e-5, "softmax sums to %g", sum);
        for (int sl = 0; sl < S; sl++) {
            int changed = memcmp(mi + sl * D, mo + sl * D, row) != 0 || memcmp(ki + sl * HH, ko + sl * HH, HH * 4) != 0;
            cr_assert_eq(changed, sl == 6, "slot %d", sl);
        }
        cr_assert_eq(memcmp(mo + 6 * D, m, row), 0);
        cr_assert_eq(memcmp(ko + 6 * HH, k, HH * 4), 0);
        /* segment 71, the last: no trailing P, the ring unchanged */
        float *x71 = npy_f32(gdir, "s71_x1", 16 * D), *p71 = npy_f32(gdir, "s71_p", D);
        float *m71 = npy_f32(gdir, "s71_mmem_out", S * D);
        cr_assert_eq(memcmp(x71, p71, row), 0);
        cr_assert_eq(memcmp(x71 + D, io + (f + 10 - 4) * D, 4 * row), 0);
        cr_assert_eq(memcmp(x71 + 5 * D, io + (f + 10) * D, 10 * row), 0);
        for (int i = 15 * D; i < 16 * D; i++) cr_assert_eq(x71[i], 0.0f);
        cr_assert_eq(memcmp(m71, mo, (size_t)S * row), 0);
        char path[600];
        snprintf(path, sizeof path, "%s/layer_hmt_segment/s71_m.npy", gdir);
        cr_assert(!flx_file_exists(path), "the last segment has no Mn");
        float *all[] = {x0, y0, x1, y1, sn, p, m, q, k, a, mi, mo, ki, ko, x71, p71, m71};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    free(io); free(init); free(wq); free(wk);
}

static double json_num(const char *path, const char *key)
{
    char *text;
    size_t bytes;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 20, &text, &bytes, &err), FLX_OK, "%s", err.msg);
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    char *at = strstr(text, pat);
    cr_assert(at, "%s: no %s", path, key);
    double v = strtod(at + strlen(pat), NULL);
    free(text);
    return v;
}

/* flxemu ppl --hmt on both engines; threads; usage errors. */
Test(emu_hmt, cli_ppl_hmt, .timeout = 300)
{
    make_model();
    char tf[600], j1[600], j2[600], j3[600], cmd[4096];
    snprintf(tf, sizeof tf, "%s/t.txt", dir);
    FILE *f = fopen(tf, "w");
    for (int i = 0; i < 40; i++) fprintf(f, "Sentence %d of a long text about memories and segments.\n", i);
    fclose(f);
    snprintf(j1, sizeof j1, "%s/1.json", dir);
    snprintf(j2, sizeof j2, "%s/2.json", dir);
    snprintf(j3, sizeof j3, "%s/3.json", dir);
    const char *B = flx_test_bin();
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --hmt %s --hmt-segments 3 --chunks 4 "
             "--threads 1 --json %s", B, flxq, tf, hmt_path, j1);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    cr_assert(strstr(out_buf, "Final estimate: PPL = ") && strstr(out_buf, "Baseline:"), "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --hmt %s --hmt-segments 3 --chunks 4 "
             "--threads 2 --json %s", B, flxq, tf, hmt_path, j2);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    cr_assert_eq(json_num(j1, "ppl"), json_num(j2, "ppl"));
    cr_assert_eq(json_num(j1, "baseline_ppl"), json_num(j2, "baseline_ppl"));
    cr_assert_eq(json_num(j1, "windows"), 4.0);
    cr_assert_eq(json_num(j1, "scored_tokens"), 4.0 * SEGLEN);
    cr_assert_eq(json_num(j1, "stride"), (double)SEGLEN);   /* HMT-pytorch's samples: one every segment */
    double pe = json_num(j1, "ppl");
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s --hmt-segments 3 --chunks 4 --json %s", B,
             flxq, tf, hmt_path, j3);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    double pf = json_num(j3, "ppl");
    cr_assert(pe > 1 && pf > 1 && fabs(log(pe / pf)) < 0.05, "emu %g, float %g", pe, pf);
    /* usage errors and a bad file */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt-segments 3", B, flxq, tf);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 2, "%s", out_buf);
    cr_assert(strstr(out_buf, "need --hmt FILE"), "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s --ctx 64", B, flxq, tf, hmt_path);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 2, "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s", B, flxq, tf, tf);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 1, "%s", out_buf);
    cr_assert(strstr(out_buf, tf), "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s --hmt-segments 400", B, flxq, tf, hmt_path);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 1, "%s", out_buf);
    cr_assert(strstr(out_buf, "fewer than one context"), "%s", out_buf);
    /* --hmt-cache: a 4-slot ring over 6 segments runs (and wraps); 6 slots are refused by name */
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --hmt %s --hmt-segments 6 --hmt-cache 4 "
             "--chunks 1 --threads 1 --json %s", B, flxq, tf, hmt_path, j3);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    cr_assert_eq(json_num(j3, "cache_size"), 4.0);
    cr_assert(json_num(j3, "ppl") > 1);
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --hmt %s --hmt-segments 3 --hmt-cache 6",
             B, flxq, tf, hmt_path);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 1, "%s", out_buf);
    cr_assert(strstr(out_buf, "mem_recall_context 6") && strstr(out_buf, hmt_path), "%s", out_buf);
}

/* A long WikiText-2 context (16 segments of FlexLLM's 990 tokens = 15,840)
 * runs, and the peak memory does not grow with the number of segments. */
Test(emu_hmt, long_context_memory_bound, .timeout = 600)
{
    make_model();
    char wiki[1024];
    snprintf(wiki, sizeof wiki, "%.1000s", flx_test_data("wikitext2/wiki.test.raw"));
    char h990[600], j4[600], j16[600], cmd[8192];
    snprintf(h990, sizeof h990, "%s/h990.safetensors", dir);
    snprintf(j4, sizeof j4, "%s/4.json", dir);
    snprintf(j16, sizeof j16, "%s/16.json", dir);
    const char *B = flx_test_bin();
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --hmt %s", B, h990);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s --hmt-segments 4 --hmt-eval contexts "
             "--chunks 1 --json %s", B, model_dir, wiki, h990, j4);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --hmt %s --hmt-segments 16 --hmt-eval contexts "
             "--chunks 1 --json %s", B, model_dir, wiki, h990, j16);
    cr_assert_eq(run_cmd(cmd, out_buf, sizeof out_buf), 0, "%s", out_buf);
    cr_assert_eq(json_num(j16, "context_tokens"), 15840.0);
    cr_assert_eq(json_num(j16, "scored_tokens"), 990.0);
    double r4 = json_num(j4, "peak_rss_bytes"), r16 = json_num(j16, "peak_rss_bytes");
    /* the token stream itself is the same; the flow's memory is one segment's */
    cr_assert(r16 < r4 * 1.1 + (4 << 20), "peak RSS 4 segments %g, 16 segments %g", r4, r16);
    cr_assert(json_num(j16, "device_seconds") > 0);
}
