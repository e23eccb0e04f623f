/* Perplexity: window and scoring rules of both protocols, the llama.cpp
 * uncertainty, a full run against a double-precision recomputation, KL
 * divergence records, the WikiText HF rows. */
#include "flx_ppl.h"
#include "llama_test_model.h"
#include "test_util.h"

#include <math.h>

Test(ppl_plan, hf_windows_tail_dropped_all_positions_scored)
{
    flx_ppl_plan p;
    flx_error err = {0};
    /* 10 tokens, windows of 4: [0,4) [4,8), tokens 8, 9 dropped; 3 scored each */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_HF, 10, 4, 0, 1, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 2);
    cr_assert_eq(p.first, 0);
    cr_assert_eq(p.n_scored, 3);
    cr_assert_eq(p.bos_overwrite, -1, "HF never overwrites BOS");
    int32_t s[10] = {100, 1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4];
    flx_ppl_window_tokens(&p, s, 1, w);
    cr_assert(w[0] == 4 && w[1] == 5 && w[2] == 6 && w[3] == 7);
    /* one window is enough for HF; --chunks caps */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_HF, 4, 4, 0, -1, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 1);
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_HF, 100, 4, 3, -1, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 3);
    cr_assert_eq(p.n_available, 25);
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_HF, 3, 4, 0, -1, &err), FLX_EINVAL);
    /* the usual numbers: 2048 -> 2047 scored */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_HF, 289077, 2048, 0, -1, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 141);
    cr_assert_eq(p.n_scored, 2047);
}

Test(ppl_plan, llamacpp_bos_overwrite_and_second_half)
{
    flx_ppl_plan p;
    flx_error err = {0};
    /* 10 tokens, chunks of 4: 2 chunks; rows 2..2 scored, i.e. one token per chunk */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_LLAMACPP, 10, 4, 0, 99, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 2);
    cr_assert_eq(p.first, 2);
    cr_assert_eq(p.n_scored, 1);
    int32_t s[10] = {99, 1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4];
    flx_ppl_window_tokens(&p, s, 1, w);
    cr_assert(w[0] == 99 && w[1] == 5 && w[2] == 6 && w[3] == 7, "token 4 is overwritten, not shifted");
    cr_assert_eq(s[4], 4, "the stream itself is unchanged");
    /* needs two chunks */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_LLAMACPP, 7, 4, 0, 99, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "at least 8 tokens"), "%s", err.msg);
    /* c = 512: 255 scored; 289077 tokens -> 564 chunks (llama.cpp#7119) */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_LLAMACPP, 289077, 512, 0, 128000, &err), FLX_OK);
    cr_assert_eq(p.n_windows, 564);
    cr_assert_eq(p.n_scored, 255);
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_LLAMACPP, 289077, 512, 0, -1, &err), FLX_OK);
    cr_assert_eq(p.bos_overwrite, -1);
    /* odd window: first = 2, scored 5 - 1 - 2 = 2 */
    cr_assert_eq(flx_ppl_plan_make(&p, FLX_PPL_LLAMACPP, 10, 5, 0, 1, &err), FLX_OK);
    cr_assert_eq(p.n_scored, 2);
}

Test(ppl_stats, llamacpp_uncertainty_on_known_numbers)
{
    flx_ppl_acc a = {0};
    for (int i = 1; i <= 4; i++) flx_ppl_acc_add(&a, i);
    /* m = 2.5, E[x^2] = 7.5, var = 1.25, sigma_mean = sqrt(1.25/3) */
    cr_assert_float_eq(flx_ppl_acc_ppl(&a), exp(2.5), 1e-12);
    cr_assert_float_eq(flx_ppl_acc_uncertainty(&a), exp(2.5) * sqrt(1.25 / 3.0), 1e-12);
    char buf[64];
    snprintf(buf, sizeof buf, "%.4lf +/- %.5lf", flx_ppl_acc_ppl(&a), flx_ppl_acc_uncertainty(&a));
    cr_assert_str_eq(buf, "12.1825 +/- 7.86377");
    /* mean/uncertainty helper: 0 for 10 or fewer samples, like llama.cpp */
    flx_mean_unc mu = flx_mean_and_uncertainty(10, 30, 4);
    cr_assert_float_eq(mu.mean, 2.5, 1e-12);
    cr_assert_eq(mu.unc, 0.0);
    mu = flx_mean_and_uncertainty(11 * 2.0, 11 * 5.0, 11);   /* mean 2, E[x^2] 5 -> var 1 */
    cr_assert_float_eq(mu.unc, sqrt(1.0 / 10.0), 1e-12);
}

Test(ppl_stats, nll_is_log_softmax)
{
    float l[3] = {1.0f, 2.0f, 3.0f};
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    cr_assert_float_eq(flx_nll(l, 3, 0), lse - 1.0, 1e-6);
    cr_assert_float_eq(flx_nll(l, 3, 2), lse - 3.0, 1e-6);
}

/* ---- a full run on a hand-built model ---- */

static flx_model g_model;
static int32_t g_stream[64];

static void make_model(void)
{
    flx_llama_config c = tm_config(2, 16, 4, 2, 24, 23);
    tm_build(&g_model, &c, 17, 0.5);
    for (int i = 0; i < 64; i++) g_stream[i] = (i * i + 3 * i + 1) % 23;
}

/* PPL recomputed with the double forward and the protocol written out by hand */
static double reference_ppl(flx_ppl_protocol proto, int n_ctx, int n_windows, int bos, double *unc)
{
    double *lg = malloc((size_t)n_ctx * 23 * sizeof *lg);
    double sum = 0, sum2 = 0, sum_means = 0;
    int count = 0;
    for (int w = 0; w < n_windows; w++) {
        int32_t win[64];
        memcpy(win, g_stream + w * n_ctx, n_ctx * sizeof *win);
        if (proto == FLX_PPL_LLAMACPP) win[0] = bos;
        ref_forward(&g_model, win, n_ctx, lg);
        int first = proto == FLX_PPL_LLAMACPP ? n_ctx / 2 : 0;
        double wsum = 0;
        for (int i = first; i < n_ctx - 1; i++) {
            double mx = -1e300, se = 0;
            for (int v = 0; v < 23; v++) mx = fmax(mx, lg[i * 23 + v]);
            for (int v = 0; v < 23; v++) se += exp(lg[i * 23 + v] - mx);
            double nll = log(se) + mx - lg[i * 23 + g_stream[w * n_ctx + i + 1]];
            sum += nll;
            sum2 += nll * nll;
            wsum += nll;
            count++;
        }
        sum_means += wsum / (n_ctx - 1 - first);
    }
    free(lg);
    double m = sum / count, var = sum2 / count - m * m;
    *unc = exp(m) * sqrt(var / (count - 1));
    return proto == FLX_PPL_HF ? exp(sum_means / n_windows) : exp(m);
}

static void run(flx_ppl_protocol proto, int n_ctx, int64_t chunks, int threads, const char *save,
                const flx_kld_base *base, flx_ppl_result *r)
{
    flx_ppl_opts o = {.protocol = proto, .n_ctx = n_ctx, .max_windows = chunks, .bos_id = 1,
                      .llama = {.n_threads = threads}, .save_logits_path = save, .kl_base = base};
    flx_error err = {0};
    const int32_t *tok = base ? base->tokens : g_stream;
    int64_t n = base ? (int64_t)base->n_chunk * base->n_ctx : 64;
    cr_assert_eq(flx_ppl_run(&g_model, tok, n, &o, r, &err), FLX_OK, "%s", err.msg);
}

Test(ppl_run, hf_protocol_matches_hand_recomputation, .init = make_model)
{
    flx_ppl_result r;
    run(FLX_PPL_HF, 20, 0, 1, NULL, NULL, &r);
    cr_assert_eq(r.plan.n_windows, 3);
    cr_assert_eq(r.n_scored, 3 * 19);
    double unc, ref = reference_ppl(FLX_PPL_HF, 20, 3, 1, &unc);
    cr_assert(fabs(r.ppl / ref - 1) < 1e-5, "ppl %.8f vs double %.8f", r.ppl, ref);
    cr_assert(fabs(r.ppl_unc / unc - 1) < 1e-4);
    cr_assert(fabs(exp((r.window_mean_nll[0] + r.window_mean_nll[1] + r.window_mean_nll[2]) / 3) - r.ppl) < 1e-9);
    flx_ppl_result_free(&r);
    flx_model_free(&g_model);
}

Test(ppl_run, llamacpp_protocol_matches_hand_recomputation, .init = make_model)
{
    flx_ppl_result r;
    run(FLX_PPL_LLAMACPP, 16, 3, 1, NULL, NULL, &r);
    cr_assert_eq(r.plan.n_windows, 3);
    cr_assert_eq(r.n_scored, 3 * 7);
    double unc, ref = reference_ppl(FLX_PPL_LLAMACPP, 16, 3, 1, &unc);
    cr_assert(fabs(r.ppl / ref - 1) < 1e-5, "ppl %.8f vs double %.8f", r.ppl, ref);
    cr_assert(fabs(r.ppl_unc / unc - 1) < 1e-4, "unc %.8f vs %.8f", r.ppl_unc, unc);
    flx_ppl_result_free(&r);
    flx_model_free(&g_model);
}

Test(ppl_run, one_and_two_threads_agree, .init = make_model)
{
    flx_ppl_result a, b;
    run(FLX_PPL_HF, 32, 0, 1, NULL, NULL, &a);
    run(FLX_PPL_HF, 32, 0, 2, NULL, NULL, &b);
    cr_assert(fabs(a.ppl / b.ppl - 1) < 1e-5, "%.9f vs %.9f", a.ppl, b.ppl);
    flx_ppl_result_free(&a);
    flx_ppl_result_free(&b);
    flx_model_free(&g_model);
}

Test(ppl_kld, run_against_itself_is_zero_and_same_top, .init = make_model)
{
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/base.kld", dir);
    /* keep every logit inside the record's 16-nat window (tied head: scale the
     * embedding), so the base NLLs are exact to the 16-bit rounding */
    float *e = (float *)g_model.w.tok_embd;
    for (int i = 0; i < 23 * 16; i++) e[i] *= 0.3f;
    for (int proto = 0; proto < 2; proto++) {
        flx_ppl_result r0, r1;
        run(proto, 16, 0, 1, path, NULL, &r0);
        flx_kld_base b;
        flx_error err = {0};
        cr_assert_eq(flx_kld_base_open(&b, path, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(b.n_ctx, 16);
        cr_assert_eq(b.n_vocab, 23);
        cr_assert_eq(b.n_chunk, 4);
        cr_assert_eq((int)b.protocol, proto);
        cr_assert_eq(b.n_scored, proto ? 7 : 15);
        cr_assert_eq(b.tokens[17], g_stream[17], "the stream is stored before any BOS overwrite");
        cr_assert_eq(b.tokens[16], g_stream[16]);
        run(proto, 16, 0, 1, NULL, &b, &r1);
        cr_assert(r1.has_kld);
        /* not exactly 0: the base holds log-probs rounded to 16 bits over 16 nats */
        cr_assert(fabs(r1.kld.kld.mean) < 1e-5, "self KLD %g", r1.kld.kld.mean);
        cr_assert_float_eq(r1.kld.same_top.mean, 1.0, 1e-12);
        cr_assert(fabs(r1.kld.ratio.mean - 1) < 1e-4, "PPL ratio %g", r1.kld.ratio.mean);
        cr_assert(fabs(r1.ppl / r0.ppl - 1) < 1e-9);
        /* a different protocol is refused */
        flx_ppl_opts o = {.protocol = !proto, .n_ctx = 16, .bos_id = 1, .kl_base = &b};
        flx_ppl_result r2;
        cr_assert_eq(flx_ppl_run(&g_model, b.tokens, 64, &o, &r2, &err), FLX_EINVAL);
        flx_kld_base_close(&b);
        flx_ppl_result_free(&r0);
        flx_ppl_result_free(&r1);
    }
    flx_model_free(&g_model);
}

Test(ppl_kld, record_dequantizes_to_log_probs)
{
    float l[5] = {0.0f, 1.0f, -3.0f, 2.5f, -40.0f};
    uint16_t rec[2 * 3 + 4];
    cr_assert_eq(flx_kld_record_u16(5), 10);
    flx_kld_record_make(l, 5, rec);
    float scale, minlp;
    memcpy(&scale, rec, 4);
    memcpy(&minlp, rec + 2, 4);
    double lse = log(exp(0.0) + exp(1.0) + exp(-3.0) + exp(2.5) + exp(-40.0));
    cr_assert_float_eq(scale, 16.0 / 65535.0, 1e-9, "window is 16 nats below the max");
    for (int i = 0; i < 4; i++)
        cr_assert(fabs(scale * rec[4 + i] + minlp - (l[i] - lse)) <= scale / 2 + 1e-6, "entry %d", i);
    cr_assert_eq(rec[4 + 4], 0, "below the window clamps to 0");
    cr_assert_eq(rec[4 + 3], 65535, "the maximum maps to 65535");
    cr_assert_eq(rec[4 + 5], 0, "padding");
}

Test(ppl_kld, truncated_or_foreign_base_files_are_refused)
{
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.kld", dir);
    flx_kld_base b;
    flx_error err = {0};
    FILE *f = fopen(path, "wb");
    fwrite("_logitz_", 1, 8, f);
    fclose(f);
    cr_assert_eq(flx_kld_base_open(&b, path, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    f = fopen(path, "wb");
    int32_t h[3] = {16, 23, 1000000};
    fwrite("_logits_", 1, 8, f);
    fwrite(h, 4, 3, f);
    fclose(f);
    cr_assert_eq(flx_kld_base_open(&b, path, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "do not fit"), "%s", err.msg);
    /* right header and tokens but a record count that is neither protocol's */
    f = fopen(path, "wb");
    int32_t h2[3] = {4, 3, 1}, tok[4] = {0, 1, 2, 0};
    uint16_t recs[8 * 2] = {0};
    fwrite("_logits_", 1, 8, f);
    fwrite(h2, 4, 3, f);
    fwrite(tok, 4, 4, f);
    fwrite(recs, 2, 16, f);
    fclose(f);
    cr_assert_eq(flx_kld_base_open(&b, path, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "records"), "%s", err.msg);
}

/* ---- WikiText rows ---- */

Test(wikitext, hf_rows_joined_with_blank_lines)
{
    /* raw: blank line " \n", title, blank, text, a line of Unicode spaces, no final newline */
    const char raw[] = " \n = T = \n \n a b .\n\xe2\x80\x83\t\nend";
    char *out;
    size_t n;
    flx_error err = {0};
    cr_assert_eq(flx_wikitext_hf_text(raw, sizeof raw - 1, &out, &n, &err), FLX_OK);
    /* rows: "", " = T = \n", "", " a b .\n", "", "end" */
    const char want[] = "\n\n = T = \n\n\n\n\n a b .\n\n\n\n\nend";
    cr_assert_eq(n, sizeof want - 1);
    cr_assert_str_eq(out, want);
    free(out);
    /* CRLF becomes LF as in Python's text mode */
    cr_assert_eq(flx_wikitext_hf_text("a\r\nb\r\n", 6, &out, &n, &err), FLX_OK);
    cr_assert_str_eq(out, "a\n\n\nb\n");
    free(out);
}

Test(wikitext, checksum_is_checked_by_file_name)
{
    int checked;
    flx_error err = {0};
    cr_assert_eq(flx_wikitext_check("/x/other.txt", "00", &checked, &err), FLX_OK);
    cr_assert_eq(checked, 0);
    cr_assert_eq(flx_wikitext_check("/x/wiki.test.raw", FLX_WIKITEXT2_TEST_SHA256, &checked, &err), FLX_OK);
    cr_assert_eq(checked, 1);
    cr_assert_eq(flx_wikitext_check("/x/wiki.test.raw", "ab", &checked, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "data/wikitext2"), "%s", err.msg);
}

Test(wikitext, real_test_split_rows)
{
    const char *path = flx_test_data("wikitext2/wiki.test.raw");
    char *raw, *out, hex[65];
    size_t bytes, n;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 24, &raw, &bytes, &err), FLX_OK);
    flx_sha256_hex(raw, bytes, hex);
    cr_assert_str_eq(hex, FLX_WIKITEXT2_TEST_SHA256);
    cr_assert_eq(flx_wikitext_hf_text(raw, bytes, &out, &n, &err), FLX_OK);
    /* 4,358 rows: 2,891 non-empty ones carry 1,287,656 bytes (data README), 4,357 separators */
    cr_assert_eq(n, 1287656 + 2 * 4357);
    cr_assert(!memcmp(out, "\n\n = Robert Boulter = \n\n\n\n\n Robert Boulter is", 45));
    /* digest of "\n\n".join(rows) computed with Python applying the HF loader's rule */
    flx_sha256_hex(out, n, hex);
    cr_assert_str_eq(hex, "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83");
    free(raw);
    free(out);
}
