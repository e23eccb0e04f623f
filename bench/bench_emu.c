/* bench_emu -- speed of the bit-exact emulator's hardware-perplexity path
 * (prefill of a window, decode-stage head and NLL at every position) on a
 * random-weight quantized model of a named shape, and whether the logits
 * are bit-identical for two thread counts.
 *
 *   bench_emu [--shape llama-3.2-1b|tiny] [--ctx N] [--windows N]
 *             [--threads A,B] [--decode N]
 *
 * Prints tokens/s per thread count and the SHA-256 of every logit. */
#include "flx_emu.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"
#include "flx_synth.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }

static void *must(void *p) { if (!p) { fprintf(stderr, "bench_emu: out of memory\n"); exit(1); } return p; }

static void tensor(flx_qtensor *t, int n_out, int n_in)
{
    t->n_out = n_out; t->n_in = n_in; t->bits = 4; t->group_size = n_in; t->symmetric = 1;
    t->q = must(malloc((size_t)n_out * n_in));
    t->scale = must(malloc((size_t)n_out * sizeof(float)));
    t->wsum = must(malloc((size_t)n_out * sizeof(float)));
    for (int o = 0; o < n_out; o++) {
        int sum = 0;
        int8_t *row = t->q + (size_t)o * n_in;
        for (int k = 0; k < n_in; k += 16) {
            uint64_t r = next();
            for (int j = 0; j < 16 && k + j < n_in; j++) { row[k + j] = (int8_t)((r >> (4 * j)) & 15) - 8; sum += row[k + j]; }
        }
        t->scale[o] = 0.01f + 0.02f * (float)(next() & 1023) / 1024.0f;
        t->wsum[o] = t->scale[o] * (float)sum;
    }
}

typedef struct { flx_sha256 sha; double nll; int64_t n; const int32_t *targets; int64_t n_vocab; double t_hash; } score;

static int on_rows(void *ctx, int64_t row0, int64_t n_rows, const float *logits)
{
    score *s = ctx;
    double t0 = flx_now_seconds();
    flx_sha256_update(&s->sha, logits, (size_t)(n_rows * s->n_vocab) * sizeof(float));
    s->t_hash += flx_now_seconds() - t0;
    for (int64_t r = 0; r < n_rows; r++) {
        s->nll += flx_nll(logits + r * s->n_vocab, s->n_vocab, s->targets[(row0 + r + 1) % 2048]);
        s->n++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *shape = "llama-3.2-1b";
    int64_t ctx = 2048, windows = 2, n_decode = 0;
    int thr[2] = { 1, 2 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--windows") && i + 1 < argc) windows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) n_decode = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            int got = sscanf(argv[++i], "%d,%d", &thr[0], &thr[1]);
            if (got < 1) return 2;
            if (got == 1) thr[1] = 0;            /* one run only */
        } else {
            fprintf(stderr, "usage: bench_emu [--shape S] [--ctx N] [--windows N] [--threads A,B] [--decode N]\n");
            return 2;
        }
    }
    flx_error err = { 0 };
    flx_qmodel qm;
    memset(&qm, 0, sizeof qm);
    if (flx_synth_config(shape, &qm.cfg, &err)) { fprintf(stderr, "bench_emu: %s\n", err.msg); return 1; }
    /* the FHT needs a power-of-two d_ff: round the tiny shape's up */
    while (qm.cfg.d_ff & (qm.cfg.d_ff - 1)) qm.cfg.d_ff += qm.cfg.d_ff & -qm.cfg.d_ff;
    const flx_llama_config *c = &qm.cfg;
    double t0 = flx_now_seconds();
    strcpy(qm.recipe, "flexllm");
    qm.r4_online = 1;
    qm.has_attn_scales = 1;
    float *emb = must(malloc((size_t)c->n_vocab * c->d_model * sizeof(float)));
    for (size_t i = 0; i < (size_t)c->n_vocab * c->d_model; i++)
        emb[i] = (float)((int64_t)(next() >> 40) - (1 << 23)) / (float)(1 << 24);
    qm.tok_embd = emb;
    float *ones = must(malloc((size_t)c->d_model * sizeof(float)));
    for (int i = 0; i < c->d_model; i++) ones[i] = 1.0f;
    qm.layers = must(calloc((size_t)c->n_layers, sizeof *qm.layers));
    const int KV = c->n_kv_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        flx_qlayer *L = &qm.layers[l];
        L->attn_norm = L->ffn_norm = ones;
        tensor(&L->wq, c->d_model, c->d_model); tensor(&L->wk, KV, c->d_model);
        tensor(&L->wv, KV, c->d_model); tensor(&L->wo, c->d_model, c->d_model);
        tensor(&L->w_gate, c->d_ff, c->d_model); tensor(&L->w_up, c->d_ff, c->d_model);
        tensor(&L->w_down, c->d_model, c->d_ff);
        L->q_s = 0.015f; L->k_s = 0.15f; L->v_s = 0.01f; L->a_s = 0.0037f;
    }
    qm.out_norm = ones;
    tensor(&qm.head, c->n_vocab, c->d_model);
    qm.rope_inv_freq = must(malloc((size_t)c->head_dim / 2 * sizeof(double)));
    flx_llama_rope_inv_freq(c, qm.rope_inv_freq);
    fprintf(stderr, "bench_emu: random %s qmodel built in %.1f s\n", shape, flx_now_seconds() - t0);

    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_emu_engine e;
    if (flx_emu_engine_init(&e, &qm, &o, ctx > 2048 ? ctx : 2048, &err)) {
        fprintf(stderr, "bench_emu: %s\n", err.msg);
        return 1;
    }
    int32_t *toks = must(malloc((size_t)(ctx * windows + 2048) * sizeof(int32_t)));
    for (int64_t i = 0; i < ctx * windows + 2048; i++) toks[i] = (int32_t)(next() % (uint64_t)c->n_vocab);
    printf("shape %s, ctx %lld, windows %lld, %s\n", shape, (long long)ctx, (long long)windows,
           flx_emu_fp_name(&o.fp));
    char hex[2][65];
    for (int ti = 0; ti < 2 && thr[ti] > 0; ti++) {
        flx_pool *pool = flx_pool_create(thr[ti]);
        openblas_set_num_threads(1);     /* the emulator's pool does the threading */
        score s;
        memset(&s, 0, sizeof s);
        flx_sha256_init(&s.sha);
        s.n_vocab = c->n_vocab;
        s.targets = toks;
        double t = flx_now_seconds();
        for (int64_t w = 0; w < windows; w++)
            if (flx_emu_window_logits(&e, toks + w * ctx, ctx, on_rows, &s, pool, &err)) {
                fprintf(stderr, "bench_emu: %s\n", err.msg);
                return 1;
            }
        double dt = flx_now_seconds() - t;
        uint8_t d[32];
        flx_sha256_final(&s.sha, d);
        for (int i = 0; i < 32; i++) sprintf(hex[ti] + 2 * i, "%02x", d[i]);
        printf("threads %d: hardware-ppl path %.1f s, %.1f tokens/s (%.1f without the %.1f s of "
               "hashing), mean nll %.4f, logits sha256 %s\n", thr[ti], dt,
               (double)(ctx * windows) / dt, (double)(ctx * windows) / (dt - s.t_hash), s.t_hash,
               s.nll / (double)s.n, hex[ti]);
        if (n_decode > 0) {
            flx_emu_kv kv;
            float *lg = must(malloc((size_t)e.n_vocab_pad * sizeof(float)));
            flx_emu_kv_init(&kv, &e, n_decode, &err);
            t = flx_now_seconds();
            for (int64_t p = 0; p < n_decode; p++)
                if (flx_emu_decode_step(&e, lg, &kv, toks[p], p, pool, &err)) {
                    fprintf(stderr, "bench_emu: %s\n", err.msg);
                    return 1;
                }
            dt = flx_now_seconds() - t;
            printf("threads %d: decode %.2f tokens/s\n", thr[ti], (double)n_decode / dt);
            flx_emu_kv_free(&kv);
            free(lg);
        }
        flx_pool_free(pool);
    }
    if (thr[1] <= 0) return 0;
    printf("bit-identical across thread counts: %s\n", strcmp(hex[0], hex[1]) ? "NO" : "yes");
    return strcmp(hex[0], hex[1]) ? 1 : 0;
}
