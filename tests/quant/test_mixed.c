/* mixed: per-tensor weight bits from a recipe file and from
 * --search-bits; the .flxq records them, loads them back, the fake-quant
 * model runs them, the bit-exact engine refuses them by name; bad recipe
 * files are refused naming the entry. */
#include "flx_qmodel.h"
#include "test_util.h"

#include <ctype.h>
#include <stdarg.h>
#include <sys/wait.h>

/* What every test here starts from: stories260K (HF folder and GGUF),
 * TinyStories text, calibration options, a scratch folder, the program. */
typedef struct mix_env {
    char hf[4096], gguf[4096], text[4096], cal[5000];
    const char *dir, *bin;
} mix_env;

static void env_init(mix_env *e)
{
    snprintf(e->hf, sizeof e->hf, "%s", flx_test_data("stories260K/hf"));
    snprintf(e->gguf, sizeof e->gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(e->text, sizeof e->text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    snprintf(e->cal, sizeof e->cal, "--calib %s --nsamples 4 --seqlen 128 --threads 2", e->text);
    e->dir = flx_test_tmpdir();
    e->bin = flx_test_bin();
}

/* buf (600 bytes) = the scratch folder's file name */
static void in_dir(const mix_env *e, char buf[600], const char *name)
{
    snprintf(buf, 600, "%s/%s", e->dir, name);
}

/* Runs the printf-formatted shell command, its stdout in out; the exit status. */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd);
    return flx_test_sh(cmd, out, cap);
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(s, f);
    fclose(f);
}

static double ppl_of(const char *out)
{
    const char *p = strstr(out, "PPL = ");
    cr_assert(p != NULL, "%s", out);
    return atof(p + 6);
}

/* Fake-quant perplexity of a .flxq on chunks x ctx tokens of the text; the
 * "PPL = ..." line's first 40 bytes in line when not NULL. */
static double ppl_run(const mix_env *e, const char *model, int ctx, int chunks, char line[41])
{
    char out[16384];
    cr_assert_eq(sh(out, sizeof out, "%s ppl --model %s --file %s --ctx %d --chunks %d 2>/dev/null", e->bin, model,
                    e->text, ctx, chunks), 0, "%s", out);
    if (line) snprintf(line, 41, "%.40s", strstr(out, "PPL = ") ? strstr(out, "PPL = ") : "");
    return ppl_of(out);
}

/* Each recipe file bad[i][0] refused (exit 1 or 2) with bad[i][1] in the message. */
static void expect_refusals(const mix_env *e, const char *const (*bad)[2], int n)
{
    char rf[600], out[16384];
    in_dir(e, rf, "bad.json");
    for (int i = 0; i < n; i++) {
        write_text(rf, bad[i][0]);
        int rc = sh(out, sizeof out, "%s quantize --model %s --recipe-file %s --out %s/x.flxq 2>&1", e->bin, e->gguf,
                    rf, e->dir);
        cr_assert(rc == 1 || rc == 2, "%d %s", rc, out);
        cr_assert(strstr(out, bad[i][1]) != NULL, "%s", out);
    }
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

Test(mixed, recipe_file_search_and_refusals, .timeout = 180)
{
    mix_env e;
    env_init(&e);
    char out[16384], rf[600], f1[600], f2[600], f3[600];
    in_dir(&e, rf, "mix.json");
    in_dir(&e, f1, "mix.flxq");
    in_dir(&e, f2, "search.flxq");
    in_dir(&e, f3, "plain.flxq");
    write_text(rf, "{\"recipe\": \"flexllm\", \"weights\": {\"layers.*.w_down\": 8, \"layers.0.wq\": 6}}");
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe-file %s %s --out %s 2>&1", e.bin,
                    e.hf, e.gguf, rf, e.cal, f1), 0, "%s", out);

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
    cr_assert_eq(sh(out, sizeof out, "%s ppl --model %s --file %s --ctx 128 --chunks 2 2>&1", e.bin, f1, e.text), 0,
                 "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s ppl --engine emu --model %s --file %s --ctx 128 --chunks 1 2>&1", e.bin, f1,
                    e.text), 1, "%s", out);
    cr_assert(strstr(out, "layer 0 wq: 6-bit weights") != NULL, "%s", out);

    /* greedy search under a 5-bit budget beats uniform 4 bits */
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe flexllm --search-bits --budget 5 "
                    "%s --out %s 2>&1", e.bin, e.hf, e.gguf, e.cal, f2), 0, "%s", out);
    const char *avg = strstr(out, "average ");
    cr_assert(avg != NULL, "%s", out);
    cr_assert(atof(avg + 8) <= 5.0 && atof(avg + 8) > 4.5, "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe flexllm %s --out %s 2>&1", e.bin,
                    e.hf, e.gguf, e.cal, f3), 0, "%s", out);
    double p[2];
    for (int i = 0; i < 2; i++) p[i] = ppl_run(&e, i ? f3 : f2, 256, 12, NULL);
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
    static const char *const bad[4][2] = {
        {"{\"recipe\": \"w4a8\", \"weights\": {\"layers.7.wq\": 8}}", "layers.7.wq"},
        {"{\"recipe\": \"w4a8\", \"weights\": {\"layers.0.wq\": 9}}", "2..8"},
        {"{\"recipe\": \"w4a8\", \"weights\": {\"head\": 8}}", "head"},
        {"{\"weights\": {}}", "\"recipe\""},
    };
    expect_refusals(&e, bad, 4);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --recipe w4a8 --recipe-file %s/bad.json --out %s/x.flxq "
                    "2>&1", e.bin, e.gguf, e.dir, e.dir), 2, "%s", out);
}

/* multiplies per token behind each linear input of stories260K (d_ff padded
 * to 256): q/k/v, o, gate/up, down */
static const double IN_MACS[4] = {64 * 64 + 2 * 32 * 64, 64 * 64, 2 * 256 * 64, 64 * 256};

static int max_abs_code(const flx_qtensor *t)
{
    int m = 0;
    for (int r = 0; r < t->n_out; r++) {
        int v = row_absmax(t, r);
        if (v > m) m = v;
    }
    return m;
}

/* A recipe file (mixed) and a plain recipe quantized from the GGUF without
 * calibration, each evaluated on 4 x 128 tokens: PPL into p[0] (file) and
 * p[1] (plain), the "PPL = " lines into line[0..1]. */
static void file_vs_recipe(const mix_env *e, const char *recipe_file_text, const char *recipe, double p[2],
                           char line[2][41])
{
    char out[16384], rf[600], fa[600], fb[600];
    in_dir(e, rf, "mix.json");
    in_dir(e, fa, "file.flxq");
    in_dir(e, fb, "plain.flxq");
    write_text(rf, recipe_file_text);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --recipe-file %s --out %s 2>&1", e->bin, e->gguf, rf, fa),
                 0, "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --recipe %s --out %s 2>&1", e->bin, e->gguf, recipe, fb),
                 0, "%s", out);
    for (int i = 0; i < 2; i++) p[i] = ppl_run(e, i ? fb : fa, 128, 4, line[i]);
}

/* activation bits per linear input (recipe file and --act-budget), mixed
 * weights with --gptq, and the engine's refusal of inputs other than 4-bit */
Test(mixed, activation_bits_and_gptq, .timeout = 240)
{
    mix_env e;
    env_init(&e);
    char out[16384], rf[600], fg[600], fr[600], fs[600];
    in_dir(&e, rf, "mix.json");
    in_dir(&e, fg, "gptq.flxq");
    in_dir(&e, fr, "rtn.flxq");
    in_dir(&e, fs, "search.flxq");

    /* w4a4 with every input raised to 8 bits is w4a8: the same perplexity digits */
    char line[2][41];
    double p[2];
    file_vs_recipe(&e, "{\"recipe\": \"w4a4\", \"activations\": {\"layers.*.qkv\": 8, \"layers.*.o\": 8, "
                       "\"layers.*.gate_up\": 8, \"layers.*.down\": 8}}", "w4a8", p, line);
    cr_assert_str_eq(line[0], line[1]);
    /* and a16 inputs (float) on a w4a4 recipe: lower than plain w4a4 */
    file_vs_recipe(&e, "{\"recipe\": \"w4a4\", \"activations\": {\"layers.*.qkv\": 16, \"layers.*.o\": 16, "
                       "\"layers.*.gate_up\": 16, \"layers.*.down\": 16}}", "w4a4", p, line);
    cr_assert_lt(p[0], p[1], "float inputs %g, 4-bit inputs %g", p[0], p[1]);

    /* flexllm: 8-bit weights and inputs where the file says, with GPTQ */
    write_text(rf, "{\"recipe\": \"flexllm\", \"weights\": {\"layers.*.w_down\": 8}, "
                   "\"activations\": {\"layers.*.down\": 8, \"layers.1.qkv\": 16}}");
    for (int g = 0; g < 2; g++)
        cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe-file %s %s %s --out %s 2>&1",
                        e.bin, e.hf, e.gguf, rf, g ? "--gptq" : "", e.cal, g ? fg : fr), 0, "%s", out);
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
    cr_assert_eq(sh(out, sizeof out, "%s info --model %s 2>&1", e.bin, fg), 0, "%s", out);
    cr_assert(strstr(out, "\"layers.1.qkv\":16") && strstr(out, "mixed activation bits"), "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s ppl --model %s --file %s --ctx 128 --chunks 2 2>&1", e.bin, fg, e.text), 0,
                 "%s", out);
    /* the engine refuses 8-bit inputs (weights all 4-bit here) by name */
    write_text(rf, "{\"recipe\": \"flexllm\", \"activations\": {\"layers.2.o\": 8}}");
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe-file %s %s --out %s 2>&1", e.bin,
                    e.hf, e.gguf, rf, e.cal, fr), 0, "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s ppl --engine emu --model %s --file %s --ctx 128 --chunks 1 2>&1", e.bin, fr,
                    e.text), 1, "%s", out);
    cr_assert(strstr(out, "layer 2 o input: 8-bit activations") != NULL, "%s", out);

    /* --act-budget: inputs raised to 8 within the average, with --gptq */
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe flexllm --search-bits "
                    "--act-budget 5 --gptq %s --out %s 2>&1", e.bin, e.hf, e.gguf, e.cal, fs), 0, "%s", out);
    const char *avg = strstr(out, "average ");
    cr_assert(avg != NULL && strstr(out, "8-bit activations"), "%s", out);
    cr_assert(atof(avg + 8) <= 5.0 && atof(avg + 8) > 4.0, "%s", out);
    cr_assert_eq(flx_qmodel_load(&qg, fs, &err), FLX_OK, "%s", err.msg);
    int n8 = 0;
    double bits = 0, macs = 0;
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 4; k++) {
            int32_t b = flx_qmodel_act_bits(&qg, &(flx_recipe){.a_bits = 4}, l, (flx_linear_kind)k);
            cr_assert(b == 4 || b == 8);
            n8 += b == 8;
            bits += b * IN_MACS[k];
            macs += IN_MACS[k];
        }
    cr_assert(n8 > 0 && bits / macs <= 5.0 + 1e-9, "%d inputs at 8 bits, average %g", n8, bits / macs);
    flx_qmodel_free(&qg);

    /* refusals naming the entry */
    static const char *const bad[3][2] = {
        {"{\"recipe\": \"w4a8\", \"activations\": {\"layers.0.qk\": 8}}", "layers.0.qk"},
        {"{\"recipe\": \"w4a8\", \"activations\": {\"layers.0.o\": 12}}", "2..8 or 16"},
        {"{\"recipe\": \"w4a8\", \"activations\": {\"head\": 8}}", "head"},
    };
    expect_refusals(&e, bad, 3);
}

/* Well-formed enough to be XML: one root <svg>, every tag closed in order
 * (or self-closing), attribute values quoted, no raw '<' in them, every
 * '&' an entity.  NULL, or what is wrong. */
static const char *xml_check(const char *s)
{
    const char *name[64];
    size_t len[64];
    int depth = 0, roots = 0;
    if (strncmp(s, "<svg ", 5)) return "does not start with <svg";
    for (const char *p = s; *p;) {
        if (*p == '&') {
            static const char *const ent[4] = {"&lt;", "&gt;", "&amp;", "&quot;"};
            int ok = 0;
            for (int i = 0; i < 4; i++) ok |= !strncmp(p, ent[i], strlen(ent[i]));
            if (!ok) return "a raw '&'";
        }
        if (*p != '<') {
            if (!depth && !isspace((unsigned char)*p)) return "text outside the root";
            p++;
            continue;
        }
        const char *q = p + 1;
        int closing = *q == '/';
        q += closing;
        const char *nm = q;
        while (isalnum((unsigned char)*q) || *q == '-' || *q == ':') q++;
        size_t n = (size_t)(q - nm);
        if (!n) return "a tag without a name";
        while (*q && *q != '>') {
            if (*q == '<') return "'<' inside a tag";
            if (*q == '"') {
                for (q++; *q && *q != '"'; q++)
                    if (*q == '<') return "'<' in an attribute value";
                if (!*q) return "an unterminated attribute value";
            }
            q++;
        }
        if (!*q) return "an unterminated tag";
        if (closing) {
            if (!depth || len[depth - 1] != n || strncmp(name[depth - 1], nm, n)) return "a mismatched closing tag";
            depth--;
        } else if (q[-1] != '/') {
            if (depth == 64) return "nesting too deep";
            if (!depth) roots++;
            name[depth] = nm;
            len[depth++] = n;
        }
        p = q + 1;
    }
    return depth ? "an unclosed tag" : roots != 1 ? "not one root" : NULL;
}

static int count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p++) n++;
    return n;
}

static int has_tmp_file(const char *dir)
{
    char out[4096];
    cr_assert_eq(sh(out, sizeof out, "ls -a %s", dir), 0);
    return strstr(out, ".tmp.") != NULL;
}

/* --search-svg: one cell per projection and per linear input holding the
 * bits the .flxq got, one path point per upgrade (and the start), a file
 * that parses; refused up front for paths it cannot write, and an old
 * picture is left as it was when the run fails. */
Test(mixed, search_svg, .timeout = 120)
{
    mix_env e;
    env_init(&e);
    char out[16384], fq[600], svg[600];
    in_dir(&e, fq, "s.flxq");
    in_dir(&e, svg, "bits.svg");
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s --recipe flexllm --search-bits --budget 5 "
                    "--act-budget 5 %s --search-svg %s --out %s 2>&1", e.bin, e.hf, e.gguf, e.cal, svg, fq), 0,
                 "%s", out);
    char *sv = NULL;
    size_t sn = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(svg, 1 << 22, &sv, &sn, &err), FLX_OK, "%s", err.msg);
    const char *bad = xml_check(sv);
    cr_assert(bad == NULL, "%s: %s", svg, bad);

    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_load(&qm, fq, &err), FLX_OK, "%s", err.msg);
    static const char *const wn[7] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
    static const char *const an[4] = {"qkv", "o", "gate_up", "down"};
    int seen[5][11] = {{0}}, n8w = 0, n8a = 0, cells = 0;
    for (const char *p = sv; (p = strstr(p, "class=\"cell\"")) != NULL; p++) {
        char panel[32], col[32];
        int l = -1;
        double v = 0;
        cr_assert_eq(sscanf(p, "class=\"cell\" data-panel=\"%31[^\"]\" data-layer=\"%d\" data-col=\"%31[^\"]\" "
                               "data-value=\"%lf\"", panel, &l, col, &v), 4, "%.120s", p);
        cr_assert(l >= 0 && l < 5, "%.120s", p);
        int w = !strcmp(panel, "weights"), j = -1;
        cr_assert(w || !strcmp(panel, "activations"), "%s", panel);
        for (int k = 0; k < (w ? 7 : 4); k++)
            if (!strcmp(col, w ? wn[k] : an[k])) j = k;
        cr_assert(j >= 0, "%s", col);
        const flx_qtensor *t[7] = {&qm.layers[l].wq, &qm.layers[l].wk, &qm.layers[l].wv, &qm.layers[l].wo,
                                   &qm.layers[l].w_gate, &qm.layers[l].w_up, &qm.layers[l].w_down};
        int bits = w ? t[j]->bits : flx_qmodel_act_bits(&qm, &(flx_recipe){.a_bits = 4}, l, (flx_linear_kind)j);
        cr_assert_eq((int)v, bits, "layer %d %s: picture %g, file %d bits", l, col, v, bits);
        cr_assert(bits == 4 || bits == 8);
        *(w ? &n8w : &n8a) += bits == 8;
        seen[l][w ? j : 7 + j]++;
        cells++;
    }
    cr_assert_eq(cells, 5 * 11);
    for (int l = 0; l < 5; l++)
        for (int j = 0; j < 11; j++) cr_assert_eq(seen[l][j], 1, "layer %d item %d", l, j);
    cr_assert(n8w > 0 && n8a > 0, "%d weights, %d inputs at 8 bits", n8w, n8a);
    /* the greedy path: the start and one point per upgrade, in each half */
    cr_assert_eq(count_of(sv, "class=\"step\""), (n8w + 1) + (n8a + 1));
    cr_assert_eq(count_of(sv, "<title>step "), n8w + n8a);
    flx_qmodel_free(&qm);
    free(sv);

    /* refusals before any work: a missing folder, a folder, no --search-bits */
    char fq2[600];
    in_dir(&e, fq2, "never.flxq");
    const char *search = "--recipe flexllm --search-bits --budget 5";
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s %s %s --search-svg %s/no/such/x.svg "
                    "--out %s 2>&1", e.bin, e.hf, e.gguf, search, e.cal, e.dir, fq2), 1, "%s", out);
    cr_assert(strstr(out, "--search-svg") != NULL, "%s", out);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s %s %s --search-svg %s --out %s 2>&1",
                    e.bin, e.hf, e.gguf, search, e.cal, e.dir, fq2), 1, "%s", out);
    cr_assert(strstr(out, "--search-svg") != NULL, "%s", out);
    struct stat st;
    cr_assert(stat(fq2, &st) != 0, "%s written although the run was refused", fq2);
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --recipe flexllm --search-svg %s --out %s 2>&1", e.bin,
                    e.gguf, svg, fq2), 2, "%s", out);
    cr_assert(strstr(out, "--search-svg only applies to --search-bits") != NULL, "%s", out);
    /* a run that fails after the check leaves the old picture whole */
    write_text(svg, "old");
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s %s --calib %s/missing.txt --search-svg %s "
                    "--out %s 2>&1", e.bin, e.hf, e.gguf, search, e.dir, svg, fq2), 1, "%s", out);
    cr_assert_eq(flx_read_file(svg, 1 << 20, &sv, &sn, &err), FLX_OK, "%s", err.msg);
    cr_assert_str_eq(sv, "old");
    free(sv);
    /* a write error is reported, not swallowed */
    cr_assert_eq(sh(out, sizeof out, "%s quantize --model %s --tokenizer %s %s %s --search-svg /dev/full --out %s 2>&1",
                    e.bin, e.hf, e.gguf, search, e.cal, fq2), 1, "%s", out);
    cr_assert(!has_tmp_file(e.dir), "a temporary file left in %s", e.dir);
}
