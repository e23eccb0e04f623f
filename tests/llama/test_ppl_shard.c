/* Sharded perplexity (what flxemu ppl does under MPI, without MPI):
 * windows split among shards (flx_ppl_opts.shard / n_shards), every
 * shard's scored tokens collected through on_token, flx_ppl_merge over all
 * of them gives the one-run result bit for bit (PPL, uncertainty, window
 * means, KLD summary), and the shards' record parts put together in window
 * order after the header are the one-run --save-logits file. */
#include "flx_ppl.h"
#include "llama_test_model.h"
#include "test_util.h"

#include <math.h>

enum { V = 29, N_TOK = 150 };

typedef struct sink {
    int64_t n_scored;
    double *nll;
    flx_kld_token *kt;
    int64_t calls;
} sink;

static void on_token(void *ctx, int64_t w, int64_t i, double nll, const flx_kld_token *kt)
{
    sink *s = ctx;
    cr_assert(i >= 0 && i < s->n_scored);
    s->nll[w * s->n_scored + i] = nll;
    if (kt) s->kt[w * s->n_scored + i] = *kt;
    s->calls++;
}

typedef struct windows_seen {
    int64_t n;
    int64_t w[16];
    double ppl[16];
} windows_seen;

static void on_window(void *ctx, const flx_ppl_progress_info *info)
{
    windows_seen *s = ctx;
    s->w[s->n] = info->window;
    s->ppl[s->n++] = info->running_ppl;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void check(flx_ppl_protocol proto, int n_ctx, int n_shards, int with_base)
{
    flx_model m;
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, V);
    tm_build(&m, &c, 5, 0.5);
    int32_t stream[N_TOK];
    for (int i = 0; i < N_TOK; i++) stream[i] = (i * 7 + i * i) % V;
    flx_error err = {0};
    const char *dir = flx_test_tmpdir();
    char base_path[512], one_path[512], part[8][512];
    snprintf(base_path, sizeof base_path, "%s/shard-base-%d.kl", dir, proto);
    snprintf(one_path, sizeof one_path, "%s/shard-one-%d-%d.kl", dir, proto, n_ctx);

    /* a base run of another model for the KLD case */
    flx_kld_base base;
    if (with_base) {
        flx_model m2;
        tm_build(&m2, &c, 6, 0.5);
        flx_ppl_opts ob = {.protocol = proto, .n_ctx = n_ctx, .bos_id = 1, .llama = {.n_threads = 1},
                           .save_logits_path = base_path};
        flx_ppl_result rb;
        cr_assert_eq(flx_ppl_run(&m2, stream, N_TOK, &ob, &rb, &err), FLX_OK, "%s", err.msg);
        flx_ppl_result_free(&rb);
        flx_model_free(&m2);
        cr_assert_eq(flx_kld_base_open(&base, base_path, &err), FLX_OK, "%s", err.msg);
    }

    /* one run */
    windows_seen seen1 = {0};
    flx_ppl_opts o = {.protocol = proto, .n_ctx = n_ctx, .bos_id = 1, .llama = {.n_threads = 1},
                      .save_logits_path = with_base ? NULL : one_path, .kl_base = with_base ? &base : NULL,
                      .on_window = on_window, .on_window_ctx = &seen1};
    flx_ppl_result one;
    cr_assert_eq(flx_ppl_run(&m, stream, N_TOK, &o, &one, &err), FLX_OK, "%s", err.msg);
    const flx_ppl_plan *p = &one.plan;
    cr_assert_geq(p->n_windows, n_shards);
    const size_t n_all = (size_t)(p->n_windows * p->n_scored);

    /* shards */
    sink s = {p->n_scored, calloc(n_all, sizeof(double)), calloc(n_all, sizeof(flx_kld_token)), 0};
    for (int k = 0; k < n_shards; k++) {
        snprintf(part[k], sizeof part[k], "%s/shard-part-%d-%d.kl", dir, proto, k);
        flx_ppl_opts os = o;
        os.shard = k;
        os.n_shards = n_shards;
        os.on_window = NULL;
        os.on_token = on_token;
        os.on_token_ctx = &s;
        os.save_logits_path = with_base ? NULL : part[k];
        os.llama.n_threads = 1 + k % 2;   /* each shard its own thread count */
        flx_ppl_result r;
        cr_assert_eq(flx_ppl_run(&m, stream, N_TOK, &os, &r, &err), FLX_OK, "%s", err.msg);
        flx_ppl_result_free(&r);
    }
    cr_assert_eq(s.calls, (int64_t)n_all, "every scored token once");

    windows_seen seen2 = {0};
    flx_ppl_opts om = o;
    om.on_window_ctx = &seen2;
    flx_ppl_result merged;
    cr_assert_eq(flx_ppl_merge(p, N_TOK, s.nll, with_base ? s.kt : NULL, &om, &merged, &err), FLX_OK, "%s",
                 err.msg);
    cr_assert_eq(merged.n_scored, one.n_scored);
    cr_assert_eq(memcmp(&merged.ppl, &one.ppl, sizeof one.ppl), 0, "ppl %.17g vs %.17g", merged.ppl, one.ppl);
    cr_assert_eq(memcmp(&merged.ppl_unc, &one.ppl_unc, sizeof one.ppl), 0);
    cr_assert_eq(memcmp(&merged.mean_nll, &one.mean_nll, sizeof one.ppl), 0);
    cr_assert_eq(memcmp(merged.window_mean_nll, one.window_mean_nll, (size_t)p->n_windows * sizeof(double)), 0);
    cr_assert_eq(merged.has_kld, one.has_kld);
    if (with_base) cr_assert_eq(memcmp(&merged.kld, &one.kld, sizeof one.kld), 0, "KLD summary differs");
    cr_assert_eq(seen2.n, seen1.n);
    cr_assert_eq(memcmp(seen2.w, seen1.w, sizeof seen1.w), 0);
    cr_assert_eq(memcmp(seen2.ppl, seen1.ppl, sizeof seen1.ppl), 0, "running PPL per window");
    cr_assert(isfinite(one.ppl) && one.ppl > 1.0);

    if (!with_base) {   /* header + tokens of the one-run file, then the parts' windows in order */
        size_t n_one, n_part[8];
        char *whole = slurp(one_path, &n_one), *parts[8];
        for (int k = 0; k < n_shards; k++) parts[k] = slurp(part[k], &n_part[k]);
        const size_t win = (size_t)p->n_scored * (size_t)flx_kld_record_u16(V) * 2;
        const size_t head = 8 + 12 + (size_t)(p->n_windows * p->n_ctx) * 4;
        size_t parts_total = 0;
        for (int k = 0; k < n_shards; k++) parts_total += n_part[k];
        cr_assert_eq(n_one, head + parts_total);
        for (int64_t w = 0; w < p->n_windows; w++)
            cr_assert_eq(memcmp(whole + head + (size_t)w * win, parts[w % n_shards] + (size_t)(w / n_shards) * win, win), 0,
                         "window %lld", (long long)w);
        for (int k = 0; k < n_shards; k++) free(parts[k]);
        free(whole);
    } else {
        flx_kld_base_close(&base);
    }
    free(s.nll);
    free(s.kt);
    flx_ppl_result_free(&one);
    flx_ppl_result_free(&merged);
    flx_model_free(&m);
}

Test(ppl_shard, hf_two_shards) { check(FLX_PPL_HF, 16, 2, 0); }
Test(ppl_shard, hf_three_shards_uneven) { check(FLX_PPL_HF, 20, 3, 0); }
Test(ppl_shard, llamacpp_two_shards) { check(FLX_PPL_LLAMACPP, 16, 2, 0); }
Test(ppl_shard, kld_two_shards) { check(FLX_PPL_HF, 16, 2, 1); }
Test(ppl_shard, kld_llamacpp_three_shards) { check(FLX_PPL_LLAMACPP, 16, 3, 1); }

Test(ppl_shard, bad_shard_refused)
{
    flx_model m;
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, V);
    tm_build(&m, &c, 5, 0.5);
    (void)ref_forward;   /* the shared header's double forward is not needed here */
    int32_t stream[64] = {0};
    flx_ppl_opts o = {.protocol = FLX_PPL_HF, .n_ctx = 16, .llama = {.n_threads = 1}, .shard = 2, .n_shards = 2};
    flx_ppl_result r;
    flx_error err = {0};
    cr_assert_eq(flx_ppl_run(&m, stream, 64, &o, &r, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "shard") != NULL, "%s", err.msg);
    flx_model_free(&m);
}
