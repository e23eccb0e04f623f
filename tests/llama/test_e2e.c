/* End to end on the real stories260K model (../shared/data): HF and GGUF
 * copies give the same logits, greedy decoding reproduces llama2.c's
 * reference, and the flxemu ppl / generate commands print what they should. */
#include "flx_ppl.h"
#include "test_util.h"

#include <math.h>
#include <sys/wait.h>

static void load(flx_model *m, const char *rel)
{
    flx_error err = {0};
    cr_assert_eq(flx_model_load(m, flx_test_data(rel), &err), FLX_OK, "%s", err.msg);
}

static float *logits_of(const flx_model *m, const int32_t *tok, int n)
{
    flx_llama_state s;
    flx_error err = {0};
    flx_llama_opts o = {.n_threads = 1, .max_tokens = n, .max_ctx = n};
    cr_assert_eq(flx_llama_init(&s, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&s, tok, n, &err), FLX_OK, "%s", err.msg);
    float *lg = malloc((size_t)n * m->cfg.n_vocab * sizeof *lg);
    cr_assert_eq(flx_llama_logits(&s, 0, n, lg, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&s);
    return lg;
}

static int32_t *expected_ids(int64_t *n)
{
    int32_t *ids = NULL;
    flx_error err = {0};
    const char *path = flx_test_data("stories260K/expected_greedy_n200.ids.txt");
    /* the file is space-separated on one line: rewrite one per line */
    char *text;
    size_t bytes;
    cr_assert_eq(flx_read_file(path, 1 << 20, &text, &bytes, &err), FLX_OK);
    for (size_t i = 0; i < bytes; i++) if (text[i] == ' ') text[i] = '\n';
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/ids.txt", flx_test_tmpdir());
    FILE *f = fopen(tmp, "wb");
    fwrite(text, 1, bytes, f);
    fclose(f);
    free(text);
    cr_assert_eq(flx_tokens_read(tmp, 512, &ids, n, &err), FLX_OK, "%s", err.msg);
    return ids;
}

Test(e2e, stories260K_hf_and_gguf_logits_agree, .timeout = 60)
{
    flx_model hf, gg;
    load(&hf, "stories260K/hf");
    load(&gg, "stories260K/stories260K.gguf");
    cr_assert_eq(hf.cfg.rope_pairing, FLX_ROPE_SPLIT_HALF);
    cr_assert_eq(gg.cfg.rope_pairing, FLX_ROPE_ADJACENT);
    int64_t n;
    int32_t *ids = expected_ids(&n);
    float *a = logits_of(&hf, ids, 200), *b = logits_of(&gg, ids, 200);
    double mx = 0;
    for (int i = 0; i < 200 * 512; i++) mx = fmax(mx, fabs(a[i] - b[i]));
    cr_assert(mx <= 1e-4, "HF vs GGUF logits differ by %g", mx);
    free(a); free(b); free(ids);
    flx_model_free(&hf);
    flx_model_free(&gg);
}

Test(e2e, llama3_random_hf_and_gguf_logits_agree, .timeout = 60)
{
    /* llama3 RoPE scaling (HF rope_scaling vs GGUF rope_freqs), GQA, BF16 weights, 128k head */
    flx_model hf, gg;
    load(&hf, "tiny-llama3-random");
    load(&gg, "tiny-llama3-random.gguf");
    cr_assert(hf.cfg.rope_llama3);
    for (int i = 0; i < 8; i++)
        cr_assert(fabs(hf.w.rope_inv_freq[i] / gg.w.rope_inv_freq[i] - 1) < 1e-6, "inv_freq[%d]", i);
    int32_t tok[96];
    for (int i = 0; i < 96; i++) tok[i] = i == 0 ? 128000 : (i * 7919) % 128000;
    float *a = logits_of(&hf, tok, 96), *b = logits_of(&gg, tok, 96);
    double mx = 0;
    for (size_t i = 0; i < (size_t)96 * 128256; i++) mx = fmax(mx, fabs(a[i] - b[i]));
    cr_assert(mx <= 1e-4, "HF vs GGUF logits differ by %g", mx);
    free(a); free(b);
    flx_model_free(&hf);
    flx_model_free(&gg);
}

Test(e2e, stories260K_greedy_from_bos_reproduces_llama2c, .timeout = 60)
{
    int64_t n;
    int32_t *want = expected_ids(&n);
    cr_assert_eq(n, 201);
    const char *models[2] = {"stories260K/hf", "stories260K/stories260K.gguf"};
    for (int k = 0; k < 2; k++) {
        flx_model m;
        load(&m, models[k]);
        flx_llama_state s;
        flx_error err = {0};
        flx_llama_opts o = {.n_threads = 1, .max_tokens = 1, .max_ctx = 201};
        cr_assert_eq(flx_llama_init(&s, &m, &o, &err), FLX_OK);
        int32_t tok = want[0];
        float lg[512];
        cr_assert_eq(tok, 1);
        for (int i = 1; i < 201; i++) {
            cr_assert_eq(flx_llama_forward(&s, &tok, 1, &err), FLX_OK, "%s", err.msg);
            cr_assert_eq(flx_llama_logits(&s, 0, 1, lg, &err), FLX_OK);
            tok = flx_argmax(lg, 512);
            cr_assert_eq(tok, want[i], "%s: token %d is %d, llama2.c has %d", models[k], i, tok, want[i]);
        }
        flx_llama_free(&s);
        flx_model_free(&m);
    }
    free(want);
}

/* ---- the command line ---- */

/* Runs a shell command, returns its exit status and stdout (malloc'ed). */
static int sh(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(e2e_cli, generate_greedy_prints_reference_text, .timeout = 60)
{
    char cmd[16384], *out, *want;
    size_t bytes;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(flx_test_data("stories260K/expected_greedy_n200.txt"), 1 << 20, &want,
                               &bytes, &err), FLX_OK);
    snprintf(cmd, sizeof cmd, "%s generate --model %s -n 200 --temp 0 --threads 1 2>/dev/null",
             flx_test_bin(), flx_test_data("stories260K/stories260K.gguf"));
    cr_assert_eq(sh(cmd, &out), 0);
    cr_assert(!strncmp(out, want, bytes), "got:\n%s", out);
    free(out);
    free(want);
    /* sampling is reproducible with a seed and differs from greedy */
    char *s1, *s2;
    snprintf(cmd, sizeof cmd, "%s generate --model %s -n 60 --temp 1 --top-k 20 --seed 7 2>/dev/null",
             flx_test_bin(), flx_test_data("stories260K/stories260K.gguf"));
    cr_assert_eq(sh(cmd, &s1), 0);
    cr_assert_eq(sh(cmd, &s2), 0);
    cr_assert_str_eq(s1, s2);
    free(s1);
    free(s2);
    snprintf(cmd, sizeof cmd, "%s generate --engine fpga 2>&1", flx_test_bin());
    cr_assert_eq(sh(cmd, &out), 2);
    free(out);
}

static double final_ppl(const char *out, double *unc)
{
    const char *f = strstr(out, "Final estimate: PPL = ");
    cr_assert(f, "no final line in:\n%s", out);
    double p;
    cr_assert_eq(sscanf(f, "Final estimate: PPL = %lf +/- %lf", &p, unc), 2);
    return p;
}

Test(e2e_cli, ppl_both_protocols_on_tinystories, .timeout = 120)
{
    char cmd[16384], *out;
    char model[4096], text[4096];   /* flx_test_data returns a static buffer */
    snprintf(model, sizeof model, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();

    /* llama.cpp protocol: the [i] stream, then the final line, verbatim formats */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --protocol llamacpp --chunks 3 --threads 1 "
             "--json %s/lc.json 2>/dev/null", flx_test_bin(), model, text, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    double unc, p = final_ppl(out, &unc);
    cr_assert(!strncmp(out, "[1]", 3) && strstr(out, ",[2]") && strstr(out, ",[3]"), "%s", out);
    cr_assert(p > 2.0 && p < 8.0, "stories260K PPL %g is implausible", p);
    cr_assert(unc > 0 && unc < p);
    char *last = strstr(out, "[3]");
    double p3;
    cr_assert_eq(sscanf(last, "[3]%lf,", &p3), 1);
    cr_assert_float_eq(p3, p, 1e-4, "the last running value is the final PPL");
    free(out);
    char *json;
    size_t bytes;
    flx_error err = {0};
    char jp[600];
    snprintf(jp, sizeof jp, "%s/lc.json", dir);
    cr_assert_eq(flx_read_file(jp, 1 << 20, &json, &bytes, &err), FLX_OK);
    cr_assert(strstr(json, "\"protocol\": \"llamacpp\""));
    cr_assert(strstr(json, "\"windows\": 3,"));
    cr_assert(strstr(json, "\"scored_tokens\": 765,"), "3 x 255:\n%s", json);
    /* the digest of stories260K.gguf given in the data README */
    cr_assert(strstr(json, "\"model_sha256\": \"f858acb45dddba463f41aaa665e6956f71a85e3148b7bfdcaebd4dfc6074948e\""),
              "%s", json);
    free(json);

    /* HF protocol, window 256: all 255 positions scored */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 256 --chunks 3 --threads 1 "
             "--json %s/hf.json 2>/dev/null", flx_test_bin(), model, text, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    double ph = final_ppl(out, &unc);
    cr_assert(ph > 2.0 && ph < 10.0);
    free(out);
    snprintf(jp, sizeof jp, "%s/hf.json", dir);
    cr_assert_eq(flx_read_file(jp, 1 << 20, &json, &bytes, &err), FLX_OK);
    cr_assert(strstr(json, "\"protocol\": \"hf\""));
    cr_assert(strstr(json, "\"scored_tokens\": 765,"), "3 x 255:\n%s", json);
    free(json);

    /* 1 and 2 threads agree within 1e-5 relative */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 256 --chunks 3 --threads 2 2>/dev/null",
             flx_test_bin(), model, text);
    cr_assert_eq(sh(cmd, &out), 0);
    double p2 = final_ppl(out, &unc);
    cr_assert(fabs(p2 / ph - 1) < 1e-5, "1 thread %.6f, 2 threads %.6f", ph, p2);
    free(out);

    /* HF checkpoint with the GGUF's vocabulary gives the same number */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --tokenizer %s --file %s --ctx 256 --chunks 3 "
             "--threads 1 2>/dev/null", flx_test_bin(), flx_test_data("stories260K/hf"), model, text);
    cr_assert_eq(sh(cmd, &out), 0);
    double phf = final_ppl(out, &unc);
    cr_assert(fabs(phf / ph - 1) < 1e-5, "hf %.6f vs gguf %.6f", phf, ph);
    free(out);
}

Test(e2e_cli, kl_divergence_against_a_saved_run, .timeout = 120)
{
    char cmd[16384], *out;
    char model[4096], text[4096];   /* flx_test_data returns a static buffer */
    snprintf(model, sizeof model, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --protocol llamacpp -c 128 --chunks 4 "
             "--threads 1 --save-logits %s/base.kld 2>/dev/null", flx_test_bin(), model, text, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    free(out);
    /* the same model against itself */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --kl-base %s/base.kld --threads 1 2>/dev/null",
             flx_test_bin(), model, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    const char *k = strstr(out, "Mean    KLD:");
    cr_assert(k, "%s", out);
    double kld;
    cr_assert_eq(sscanf(k, "Mean    KLD: %lf", &kld), 1);
    cr_assert(fabs(kld) < 1e-4, "self KLD %g", kld);
    cr_assert(strstr(out, "Same top p: 100.000"), "%s", out);
    free(out);
    /* the BF16 checkpoint differs measurably but little */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --tokenizer %s --kl-base %s/base.kld --threads 1 "
             "--json %s/q.json 2>/dev/null", flx_test_bin(), flx_test_data("stories260K/hf-bf16"), model, dir, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    k = strstr(out, "Mean    KLD:");
    cr_assert(k);
    cr_assert_eq(sscanf(k, "Mean    KLD: %lf", &kld), 1);
    cr_assert(kld > 1e-6 && kld < 0.05, "bf16 weights KLD %g", kld);
    free(out);
}

Test(e2e_cli, bad_inputs_fail_cleanly)
{
    char cmd[16384], *out;
    const char *dir = flx_test_tmpdir();
    snprintf(cmd, sizeof cmd, "%s ppl --protocol gpu 2>&1", flx_test_bin());
    cr_assert_eq(sh(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s ppl --tokens /x --file /y 2>&1", flx_test_bin());
    cr_assert_eq(sh(cmd, &out), 2);
    free(out);
    /* a token id outside the vocabulary, named with its line */
    snprintf(cmd, sizeof cmd, "printf '1\\n5\\n9999\\n' > %s/t.txt && %s ppl --model %s --tokens %s/t.txt 2>&1",
             dir, flx_test_bin(), flx_test_data("stories260K/stories260K.gguf"), dir);
    cr_assert_eq(sh(cmd, &out), 1);
    cr_assert(strstr(out, "line 3"), "%s", out);
    free(out);
    /* a wrong wiki.test.raw is refused with the fetch instructions */
    snprintf(cmd, sizeof cmd, "echo hello > %s/wiki.test.raw && %s ppl --model %s --file %s/wiki.test.raw 2>&1",
             dir, flx_test_bin(), flx_test_data("stories260K/stories260K.gguf"), dir);
    cr_assert_eq(sh(cmd, &out), 1);
    cr_assert(strstr(out, "data/wikitext2"), "%s", out);
    free(out);
}

Test(e2e_cli, tokens_file_gives_the_same_ppl_as_the_text, .timeout = 120)
{
    char cmd[16384], *out;
    char model[4096], text[4096];
    snprintf(model, sizeof model, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    /* ids without BOS from the tokenize command; ppl --tokens --bos must equal ppl --file */
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --file %s > %s/ids.txt", flx_test_bin(), model, text, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    free(out);
    double unc, a, b;
    for (int proto = 0; proto < 2; proto++) {
        const char *p = proto ? "--protocol llamacpp --chunks 2" : "--ctx 128 --chunks 3";
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s %s --threads 1 2>/dev/null", flx_test_bin(),
                 model, text, p);
        cr_assert_eq(sh(cmd, &out), 0);
        a = final_ppl(out, &unc);
        free(out);
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --tokens %s/ids.txt --bos %s --threads 1 2>/dev/null",
                 flx_test_bin(), model, dir, p);
        cr_assert_eq(sh(cmd, &out), 0);
        b = final_ppl(out, &unc);
        free(out);
        cr_assert_eq(a, b, "%s: --file %.4f vs --tokens --bos %.4f", p, a, b);
        /* without --bos the stream is shifted by one token: a different number */
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --tokens %s/ids.txt %s --threads 1 2>/dev/null",
                 flx_test_bin(), model, dir, p);
        cr_assert_eq(sh(cmd, &out), 0);
        cr_assert_neq(final_ppl(out, &unc), a);
        free(out);
    }
    /* generate from a token prompt writes prompt + new ids */
    snprintf(cmd, sizeof cmd, "printf '1\\n403\\n407\\n' > %s/p.txt && %s generate --model %s --tokens %s/p.txt "
             "-n 5 --ids %s/g.txt 2>/dev/null && cat %s/g.txt", dir, flx_test_bin(), model, dir, dir, dir);
    cr_assert_eq(sh(cmd, &out), 0);
    /* the reference greedy continuation of "1 403 407" is "261 378 432 383 286" */
    cr_assert(strstr(out, "\n1\n403\n407\n261\n378\n432\n383\n286\n"), "%s", out);
    free(out);
    /* --help works for both commands */
    snprintf(cmd, sizeof cmd, "%s ppl --help && %s generate --help", flx_test_bin(), flx_test_bin());
    cr_assert_eq(sh(cmd, &out), 0);
    cr_assert(strstr(out, "--protocol hf|llamacpp") && strstr(out, "--top-k"));
    free(out);
}
