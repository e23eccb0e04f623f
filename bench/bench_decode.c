/* bench_decode -- decode speed of the bit-exact engine (issue 13 item 2):
 * the host flow of `flxemu generate --engine emu` on a .flxq, prefill of
 * the prompt but its last token, then decode steps sampling the top 5 with
 * thresholds from a seed, timed apart from the prefill.
 *
 *   bench_decode --model M.flxq [--prompt 512] [--gen 128] [--threads 2,1]
 *                [--paths fast,ref] [--seed 42] [--profile]
 *
 * The prompt is --prompt pseudo-random ids (fixed).  The prefill runs once;
 * every (path, threads) run starts from a copy of its KV cache.  "fast" is
 * flx_emu_decoder_step (what generate uses), "ref" the simple reference
 * step flx_emu_decode_step.  Per run: decode wall time, tokens/s, CPU time
 * per token (user and system, all threads), and the SHA-256 of every
 * logit of every step plus the generated ids: equal hashes across paths
 * and thread counts mean bit-identical decoding.  --profile: where the fast
 * step's wall time goes, per thread and stage, in ms per token. */
#include "flx_emu.h"
#include "flx_qmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void *must(void *p) { if (!p) { fprintf(stderr, "bench_decode: out of memory\n"); exit(1); } return p; }

static void cpu_seconds(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec;
    *sys = (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *paths = "fast,ref";
    int64_t n_prompt = 512, n_gen = 128;
    uint64_t seed = 42;
    int thr[8] = { 2, 1 }, n_thr = 2, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) n_prompt = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc) n_gen = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--paths") && i + 1 < argc) paths = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_thr = 0;
            for (char *s = argv[++i]; *s && n_thr < 8;) {
                thr[n_thr++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
            }
        } else {
            fprintf(stderr, "usage: bench_decode --model M.flxq [--prompt N] [--gen N] [--threads A,B] "
                            "[--paths fast,ref] [--seed S] [--profile]\n");
            return 2;
        }
    }
    if (!model || n_prompt < 1 || n_gen < 1) {
        fprintf(stderr, "bench_decode: --model is required; --prompt and --gen must be >= 1\n");
        return 2;
    }
    flx_error err = { 0 };
    flx_qmodel qm;
    double t0 = flx_now_seconds();
    if (flx_qmodel_load(&qm, model, &err)) { fprintf(stderr, "bench_decode: %s\n", err.msg); return 1; }
    flx_emu_opts o;
    flx_emu_opts_default(&o);
    flx_emu_engine e;
    if (flx_emu_engine_init(&e, &qm, &o, n_prompt + n_gen, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    const flx_llama_config *c = &qm.cfg;
    printf("model %s: %d layers, d_model %d, d_ff %d, vocab %d; load %.1f s; VNNI %s\n", model,
           c->n_layers, c->d_model, c->d_ff, c->n_vocab, flx_now_seconds() - t0,
           flx_emu_vnni_available() ? "yes" : "no");
    int32_t *prompt = must(malloc((size_t)n_prompt * sizeof *prompt));
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n_prompt; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        prompt[i] = (int32_t)(r % (uint64_t)c->n_vocab);
    }
    /* prefill once (its bits do not depend on the thread count) */
    flx_emu_kv kv0;
    if (flx_emu_kv_init(&kv0, &e, n_prompt + n_gen, &err)) { fprintf(stderr, "bench_decode: %s\n", err.msg); return 1; }
    flx_pool *pool = flx_pool_create(thr[0]);
    double u0, s0, u1, s1;
    cpu_seconds(&u0, &s0);
    t0 = flx_now_seconds();
    if (n_prompt > 1 && flx_emu_prefill(&e, NULL, &kv0, prompt, n_prompt - 1, pool, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    cpu_seconds(&u1, &s1);
    printf("prefill of %lld tokens, %d threads: %.2f s wall, %.2f s CPU\n", (long long)(n_prompt - 1),
           thr[0], flx_now_seconds() - t0, (u1 - u0) + (s1 - s0));
    flx_pool_free(pool);
    const size_t kv_bytes = (size_t)c->n_layers * (size_t)kv0.cap * (size_t)kv0.kv_dim;
    float *logits = must(malloc((size_t)e.n_vocab_pad * sizeof(float)));
    flx_emu_decoder dec;
    int have_dec = 0;
    printf("| path | threads | decode wall s | tokens/s | CPU ms/token (user+sys) | user ms/token | SHA-256 (logits, ids) |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (const char *p = paths; *p;) {
        size_t len = strcspn(p, ",");
        int fast = len == 4 && !strncmp(p, "fast", 4);
        int ref = len == 3 && !strncmp(p, "ref", 3);
        if (!fast && !ref) { fprintf(stderr, "bench_decode: unknown path '%.*s'\n", (int)len, p); return 2; }
        for (int ti = 0; ti < n_thr; ti++) {
            pool = flx_pool_create(thr[ti]);
            if (fast && !have_dec) {
                double tp = flx_now_seconds();
                if (flx_emu_decoder_init(&dec, &e, pool, &err)) { fprintf(stderr, "bench_decode: %s\n", err.msg); return 1; }
                printf("decoder: %.2f GB of packed weights in %.2f s (%s GEMV)\n", (double)dec.packed_bytes / 1e9,
                       flx_now_seconds() - tp, dec.vnni ? "VNNI" : "portable");
                have_dec = 1;
            }
            flx_emu_kv kv;
            if (flx_emu_kv_init(&kv, &e, kv0.cap, &err)) { fprintf(stderr, "bench_decode: %s\n", err.msg); return 1; }
            memcpy(kv.k, kv0.k, kv_bytes);
            memcpy(kv.v, kv0.v, kv_bytes);
            flx_emu_decode_prof prof;
            memset(&prof, 0, sizeof prof);
            if (fast) dec.prof = profile ? &prof : NULL;
            flx_sha256 sha;
            flx_sha256_init(&sha);
            flx_rng rng;
            flx_rng_seed(&rng, seed);
            int32_t token = prompt[n_prompt - 1];
            double busy = 0.0;   /* decode steps only (no hashing) */
            cpu_seconds(&u0, &s0);
            for (int64_t step = 0; step < n_gen; step++) {
                int64_t pos = n_prompt - 1 + step;
                double ts = flx_now_seconds();
                int rc = fast ? flx_emu_decoder_step(&dec, logits, NULL, &kv, token, pos, pool, &err)
                              : flx_emu_decode_step(&e, logits, &kv, token, pos, pool, &err);
                flx_emu_topk tk;
                if (!rc && (flx_emu_topk_sampling(&tk, logits, e.n_vocab_pad, o.sample_lanes, o.top_k,
                                                (float)flx_rng_uniform(&rng), &o.fp) || tk.token < 0))
                    rc = flx_fail(&err, FLX_ENUMERIC, "sampling found no token");
                busy += flx_now_seconds() - ts;
                if (rc) { fprintf(stderr, "bench_decode: step %lld: %s\n", (long long)step, err.msg); return 1; }
                flx_sha256_update(&sha, logits, (size_t)e.n_vocab_pad * sizeof(float));
                flx_sha256_update(&sha, &tk.token, sizeof tk.token);
                token = tk.token;
            }
            cpu_seconds(&u1, &s1);
            uint8_t dg[32];
            flx_sha256_final(&sha, dg);
            double cpu = (u1 - u0) + (s1 - s0);
            char hex[65];
            for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", dg[i]);
            printf("| %s | %d | %.2f | %.2f | %.1f | %.1f | %s |\n", fast ? "fast" : "ref", thr[ti], busy,
                   (double)n_gen / busy, 1e3 * cpu / (double)n_gen, 1e3 * (u1 - u0) / (double)n_gen, hex);
            if (fast && profile && prof.steps) {
                static const char *stage[FLX_EMU_PROF_N] = { "prep", "qkv", "att", "o", "gateup", "fht",
                                                             "down", "head", "wait" };
                for (int r = 0; r < thr[ti] && r < FLX_EMU_PROF_RANKS; r++) {
                    double tot = 0.0;
                    printf("  thread %d, ms/token:", r);
                    for (int k = 0; k < FLX_EMU_PROF_N; k++) {
                        printf(" %s %.2f", stage[k], 1e3 * prof.seconds[r][k] / (double)prof.steps);
                        tot += prof.seconds[r][k];
                    }
                    printf(" | total %.2f\n", 1e3 * tot / (double)prof.steps);
                }
                dec.prof = NULL;
            }
            fflush(stdout);
            flx_emu_kv_free(&kv);
            flx_pool_free(pool);
        }
        p += len;
        if (*p == ',') p++;
    }
    if (have_dec) flx_emu_decoder_free(&dec);
    free(logits);
    free(prompt);
    flx_emu_kv_free(&kv0);
    flx_emu_engine_free(&e);
    flx_qmodel_free(&qm);
    return 0;
}
