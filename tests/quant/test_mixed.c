/* mixed: per-tensor weight bits from a recipe file and from
 * --search-bits; the .flxq records them, loads them back, the fake-quant
 * model runs them, the bit-exact engine refuses them by name; bad recipe
 * files are refused naming the entry. */
#include "flx_qmodel.h"
#include "test_util.h"

#include <sys/wait.h>

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(s, f);
    fclose(f);
}

static int row_absmax(const flx_qtensor *t, int row)
{
    int m = 0;
    for (int k = 0; k < t->n_in; k++) {
        int v = t->q[(size_t)row * t->n_in + k];
        if ((v < 0 ? -v : v) > m) m = v < 0 ? -v : v;
    }
    return m;
}

static double ppl_of(const char *out)
{
    const char *p = strstr(out, "PPL = ");
    cr_assert(p != NULL, "%s", out);
    return atof(p + 6);
}

Test(mixed, recipe_file_search_and_refusals, .timeout = 180)
{
    char hf[4096], gguf[4096], text[4096], cmd[16384], out[16384];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char rf[600], f1[600], f2[600], f3[600];
    snprintf(rf, sizeof rf, "%s/mix.json", dir);
    snprintf(f1, sizeof f1, "%s/mix.flxq", dir);
    snprintf(f2, sizeof f2, "%s/search.flxq", dir);
    snprintf(f3, sizeof f3, "%s/plain.flxq", dir);
    write_text(rf, "{\"recipe\": \"flexllm\", \"weights\": {\"layers.*.w_down\": 8, \"layers.0.wq\": 6}}");
    const char *common = "--calib %s --nsamples 4 --seqlen 128 --threads 2";
    char cal[5000];
    snprintf(cal, sizeof cal, common, text);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --tokenizer %s --recipe-file %s %s --out %s 2>&1", bin, hf, gguf, rf,
             cal, f1);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);

    flx_qmodel qm;
    flx_error err = {0};
    cr_assert_eq(flx_qmodel_load(&qm, f1, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.mixed);
    for (int l = 0; l < 5; l++) {
        cr_assert_eq(qm.layers[l].w_down.bits, 8);
        cr_assert_eq(qm.layers[l].w_up.bits, 4);
        cr_assert_eq(qm.layers[l].wq.bits, l == 0 ? 6 : 4);
        /* symmetric per row: the largest weight of a row lands on +-(2^(b-1) - 1) */
        cr_assert_eq(row_absmax(&qm.layers[l].w_down, 3), 127);
        cr_assert_eq(row_absmax(&qm.layers[l].w_up, 3), 7);
    }
    cr_assert_eq(row_absmax(&qm.layers[0].wq, 5), 31);
    flx_qmodel_free(&qm);
    /* fake-quant runs it; the INT4 engine refuses it by name */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 2 2>&1", bin, f1, text);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --ctx 128 --chunks 1 2>&1", bin, f1, text);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "layer 0 wq: 6-bit weights") != NULL, "%s", out);

    /* greedy search under a 5-bit budget beats uniform 4 bits */
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --tokenizer %s --recipe flexllm --search-bits --budget 5 %s --out %s 2>&1",
             bin, hf, gguf, cal, f2);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    const char *avg = strstr(out, "average ");
    cr_assert(avg != NULL, "%s", out);
    cr_assert(atof(avg + 8) <= 5.0 && atof(avg + 8) > 4.5, "%s", out);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --tokenizer %s --recipe flexllm %s --out %s 2>&1", bin, hf, gguf,
             cal, f3);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    double p[2];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 256 --chunks 12 2>/dev/null", bin, i ? f3 : f2, text);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
        p[i] = ppl_of(out);
    }
    cr_log_info("flexllm stories260K 12 x 256: search budget 5 PPL %.4f, uniform 4-bit %.4f", p[0], p[1]);
    cr_assert_lt(p[0], p[1]);
    cr_assert_eq(flx_qmodel_load(&qm, f2, &err), FLX_OK, "%s", err.msg);
    double bits = 0, w = 0;
    int n8 = 0;
    for (int l = 0; l < 5; l++) {
        const flx_qtensor *t[7] = {&qm.layers[l].wq, &qm.layers[l].wk, &qm.layers[l].wv, &qm.layers[l].wo,
                                   &qm.layers[l].w_gate, &qm.layers[l].w_up, &qm.layers[l].w_down};
        for (int i = 0; i < 7; i++) {
            cr_assert(t[i]->bits == 4 || t[i]->bits == 8);
            n8 += t[i]->bits == 8;
            bits += (double)t[i]->bits * t[i]->n_out * t[i]->n_in;
            w += (double)t[i]->n_out * t[i]->n_in;
        }
    }
    cr_assert(n8 > 0 && bits / w <= 5.0 + 1e-9, "%d at 8 bits, average %g", n8, bits / w);
    flx_qmodel_free(&qm);

    /* refusals, each naming what is wrong */
    const char *bad[4][2] = {
        {"{\"recipe\": \"w4a8\", \"weights\": {\"layers.7.wq\": 8}}", "layers.7.wq"},
        {"{\"recipe\": \"w4a8\", \"weights\": {\"layers.0.wq\": 9}}", "2..8"},
        {"{\"recipe\": \"w4a8\", \"weights\": {\"head\": 8}}", "head"},
        {"{\"weights\": {}}", "\"recipe\""},
    };
    for (int i = 0; i < 4; i++) {
        write_text(rf, bad[i][0]);
        snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe-file %s --out %s/x.flxq 2>&1", bin, gguf, rf, dir);
        int rc = flx_test_sh(cmd, out, sizeof out);
        cr_assert(rc == 1 || rc == 2, "%d %s", rc, out);
        cr_assert(strstr(out, bad[i][1]) != NULL, "%s", out);
    }
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a8 --recipe-file %s --out %s/x.flxq 2>&1", bin, gguf, rf, dir);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 2, "%s", out);
}

static int max_abs_code(const flx_qtensor *t)
{
    int m = 0;
    for (int r = 0; r < t->n_out; r++) {
        int v = row_absmax(t, r);
        if (v > m) m = v;
    }
    return m;
}

/* activation bits per linear input (recipe file and --act-budget), mixed
 * weights with --gptq, and the engine's refusal of inputs other than 4-bit */
Test(mixed, activation_bits_and_gptq, .timeout = 240)
{
    char hf[4096], gguf[4096], text[4096], cmd[16384], out[16384];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char rf[600], fa[600], fb[600], fg[600], fr[600], fs[600];
    snprintf(rf, sizeof rf, "%s/mix.json", dir);
    snprintf(fa, sizeof fa, "%s/a4to8.flxq", dir);
    snprintf(fb, sizeof fb, "%s/w4a8.flxq", dir);
    snprintf(fg, sizeof fg, "%s/gptq.flxq", dir);
    snprintf(fr, sizeof fr, "%s/rtn.flxq", dir);
    snprintf(fs, sizeof fs, "%s/search.flxq", dir);
    char cal[5000];
    snprintf(cal, sizeof cal, "--calib %s --nsamples 4 --seqlen 128 --threads 2", text);

    /* w4a4 with every input raised to 8 bits is w4a8: the same perplexity digits */
    write_text(rf, "{\"recipe\": \"w4a4\", \"activations\": {\"layers.*.qkv\": 8, \"layers.*.o\": 8, "
                   "\"layers.*.gate_up\": 8, \"layers.*.down\": 8}}");
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe-file %s --out %s 2>&1", bin, gguf, rf, fa);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a8 --out %s 2>&1", bin, gguf, fb);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    char line[2][256];
    double p[2];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 4 2>/dev/null", bin, i ? fb : fa, text);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
        const char *s = strstr(out, "PPL = ");
        cr_assert(s != NULL, "%s", out);
        snprintf(line[i], sizeof line[i], "%.40s", s);
        p[i] = ppl_of(out);
    }
    cr_assert_str_eq(line[0], line[1]);
    /* and a16 inputs (float) on a w4a4 recipe: lower than plain w4a4 */
    write_text(rf, "{\"recipe\": \"w4a4\", \"activations\": {\"layers.*.qkv\": 16, \"layers.*.o\": 16, "
                   "\"layers.*.gate_up\": 16, \"layers.*.down\": 16}}");
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe-file %s --out %s 2>&1", bin, gguf, rf, fa);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a4 --out %s 2>&1", bin, gguf, fb);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 4 2>/dev/null", bin, i ? fb : fa, text);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
        p[i] = ppl_of(out);
    }
    cr_assert_lt(p[0], p[1], "float inputs %g, 4-bit inputs %g", p[0], p[1]);

    /* flexllm: 8-bit weights and inputs where the file says, with GPTQ */
    write_text(rf, "{\"recipe\": \"flexllm\", \"weights\": {\"layers.*.w_down\": 8}, "
                   "\"activations\": {\"layers.*.down\": 8, \"layers.1.qkv\": 16}}");
    for (int g = 0; g < 2; g++) {
        snprintf(cmd, sizeof cmd, "%s quantize --model %s --tokenizer %s --recipe-file %s %s %s --out %s 2>&1", bin, hf,
                 gguf, rf, g ? "--gptq" : "", cal, g ? fg : fr);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    }
    flx_qmodel qg, qr;
    flx_error err = {0};
    cr_assert_eq(flx_qmodel_load(&qg, fg, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_qmodel_load(&qr, fr, &err), FLX_OK, "%s", err.msg);
    cr_assert(qg.a_bits_of != NULL);
    int differ = 0;
    for (int l = 0; l < 5; l++) {
        cr_assert_eq(qg.layers[l].w_down.bits, 8);
        cr_assert_eq(qg.layers[l].w_up.bits, 4);
        cr_assert_gt(max_abs_code(&qg.layers[l].w_down), 8, "layer %d: 8-bit GPTQ codes", l);
        cr_assert_leq(max_abs_code(&qg.layers[l].w_up), 8);
        const flx_qtensor *a = &qg.layers[l].w_down, *b = &qr.layers[l].w_down;
        differ += memcmp(a->q, b->q, (size_t)a->n_out * a->n_in) != 0;
        cr_assert_eq(flx_qmodel_act_bits(&qg, &(flx_recipe){.a_bits = 4}, l, FLX_LINEAR_DOWN), 8);
        cr_assert_eq(flx_qmodel_act_bits(&qg, &(flx_recipe){.a_bits = 4}, l, FLX_LINEAR_QKV), l == 1 ? 16 : 4);
        cr_assert_eq(flx_qmodel_act_bits(&qg, &(flx_recipe){.a_bits = 4}, l, FLX_LINEAR_O), 4);
    }
    cr_assert_eq(differ, 5, "GPTQ's 8-bit down codes are not RTN's");
    flx_qmodel_free(&qg);
    flx_qmodel_free(&qr);
    snprintf(cmd, sizeof cmd, "%s info --model %s 2>&1", bin, fg);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"layers.1.qkv\":16") && strstr(out, "mixed activation bits"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 2 2>&1", bin, fg, text);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    /* the engine refuses 8-bit inputs (weights all 4-bit here) by name */
    write_text(rf, "{\"recipe\": \"flexllm\", \"activations\": {\"layers.2.o\": 8}}");
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --tokenizer %s --recipe-file %s %s --out %s 2>&1", bin, hf, gguf,
             rf, cal, fr);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s ppl --engine emu --model %s --file %s --ctx 128 --chunks 1 2>&1", bin, fr, text);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "layer 2 o input: 8-bit activations") != NULL, "%s", out);

    /* --act-budget: inputs raised to 8 within the average, with --gptq */
    snprintf(cmd, sizeof cmd,
             "%s quantize --model %s --tokenizer %s --recipe flexllm --search-bits --act-budget 5 --gptq %s --out %s 2>&1",
             bin, hf, gguf, cal, fs);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    const char *avg = strstr(out, "average ");
    cr_assert(avg != NULL && strstr(out, "8-bit activations"), "%s", out);
    cr_assert(atof(avg + 8) <= 5.0 && atof(avg + 8) > 4.0, "%s", out);
    cr_assert_eq(flx_qmodel_load(&qg, fs, &err), FLX_OK, "%s", err.msg);
    int n8 = 0;
    double bits = 0, macs = 0;
    const double in_macs[4] = {64 * 64 + 2 * 32 * 64, 64 * 64, 2 * 256 * 64, 64 * 256};   /* stories260K, d_ff padded */
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 4; k++) {
            int32_t b = flx_qmodel_act_bits(&qg, &(flx_recipe){.a_bits = 4}, l, (flx_linear_kind)k);
            cr_assert(b == 4 || b == 8);
            n8 += b == 8;
            bits += b * in_macs[k];
            macs += in_macs[k];
        }
    cr_assert(n8 > 0 && bits / macs <= 5.0 + 1e-9, "%d inputs at 8 bits, average %g", n8, bits / macs);
    flx_qmodel_free(&qg);

    /* refusals naming the entry */
    const char *bad[3][2] = {
        {"{\"recipe\": \"w4a8\", \"activations\": {\"layers.0.qk\": 8}}", "layers.0.qk"},
        {"{\"recipe\": \"w4a8\", \"activations\": {\"layers.0.o\": 12}}", "2..8 or 16"},
        {"{\"recipe\": \"w4a8\", \"activations\": {\"head\": 8}}", "head"},
    };
    for (int i = 0; i < 3; i++) {
        write_text(rf, bad[i][0]);
        snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe-file %s --out %s/x.flxq 2>&1", bin, gguf, rf, dir);
        int rc = flx_test_sh(cmd, out, sizeof out);
        cr_assert(rc == 1 || rc == 2, "%d %s", rc, out);
        cr_assert(strstr(out, bad[i][1]) != NULL, "%s", out);
    }
}
