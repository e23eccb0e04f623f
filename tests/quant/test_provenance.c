/* provenance: a .flxq carries its tokenizer and says how it was made.
 * Round trip of every provenance field against digests computed here,
 * the embedded tokenizer encodes like the original and is checked by
 * sha256, `flxemu info` and `ppl --json` on a .flxq, and files written
 * without the new keys (the earlier format) still load. */
#include "flx_qmodel.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <sys/wait.h>

static void sha_of(const char *path, char hex[65])
{
    flx_error err = {0};
    cr_assert_eq(flx_sha256_file_hex(path, hex, &err), FLX_OK, "%s", err.msg);
}

static const cJSON *at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(v != NULL, "provenance has no '%s'", k);
    return v;
}

Test(provenance, round_trip_tokenizer_info_and_ppl, .timeout = 180)
{
    char hf[4096], gguf[4096], text[4096], weights[4096], cmd[20000], out[65536];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    snprintf(weights, sizeof weights, "%s", flx_test_data("stories260K/hf/model.safetensors"));
    const char *dir = flx_test_tmpdir();
    char f1[600], f2[600], js[600];
    snprintf(f1, sizeof f1, "%s/a.flxq", dir);
    snprintf(f2, sizeof f2, "%s/b.flxq", dir);
    const char *bin = flx_test_bin();
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s quantize --model %s --tokenizer %s --recipe w4a8kv8 --rotate hadamard --seed 5 --gptq "
                 "--act-order --calib %s --nsamples 3 --seqlen 64 --threads %d --out %s 2>&1",
                 bin, hf, gguf, text, i + 1, i ? f2 : f1);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    }
    char h1[65], h2[65];
    sha_of(f1, h1);
    sha_of(f2, h2);
    cr_assert_str_eq(h1, h2, "same inputs, different bytes");

    /* every provenance field against what it describes */
    flx_qmodel qm;
    flx_error err = {0};
    cr_assert_eq(flx_qmodel_load(&qm, f1, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.provenance != NULL);
    cJSON *p = cJSON_Parse(qm.provenance);
    cr_assert(p != NULL);
    char want[65];
    sha_of(weights, want);
    cr_assert_str_eq(at(at(p, "source_model"), "sha256")->valuestring, want);
    cr_assert_str_eq(at(p, "recipe")->valuestring, "w4a8kv8");
    char vline[256], vwant[300];
    snprintf(cmd, sizeof cmd, "%s --version", bin);
    cr_assert_eq(flx_test_sh(cmd, vline, sizeof vline), 0);
    snprintf(vwant, sizeof vwant, "flxemu %s\n", at(p, "flxemu_version")->valuestring);
    cr_assert_str_eq(vline, vwant);
    const cJSON *rot = at(p, "rotation");
    cr_assert_str_eq(at(rot, "kind")->valuestring, "hadamard");
    cr_assert_eq(at(rot, "seed")->valuedouble, 5.0);
    cr_assert(cJSON_IsTrue(at(rot, "r3_online")) && cJSON_IsTrue(at(rot, "r4_online")));
    cr_assert_eq(at(at(p, "d_ff_padding"), "from")->valuedouble, 172.0);
    cr_assert_eq(at(at(p, "d_ff_padding"), "to")->valuedouble, 256.0);
    cr_assert_str_eq(at(p, "weights")->valuestring, "gptq");
    cr_assert_eq(at(at(p, "gptq"), "block_size")->valuedouble, 128.0);
    cr_assert_eq(at(at(p, "gptq"), "damp")->valuedouble, 0.01);
    cr_assert(cJSON_IsTrue(at(at(p, "gptq"), "act_order")));
    const cJSON *cal = at(p, "calibration");
    sha_of(text, want);
    cr_assert_str_eq(at(at(cal, "text"), "sha256")->valuestring, want);
    cr_assert_eq(at(cal, "windows")->valuedouble, 3.0);
    cr_assert_eq(at(cal, "seqlen")->valuedouble, 64.0);
    sha_of(gguf, want);
    cr_assert_str_eq(at(at(p, "tokenizer_from"), "sha256")->valuestring, want);
    cJSON_Delete(p);

    /* the embedded tokenizer: checked by sha256, encodes like the GGUF's */
    cr_assert(qm.tok != NULL && qm.tok_blob != NULL);
    cr_assert_str_eq(qm.tok_format, "gguf");
    char bh[65];
    flx_sha256_hex(qm.tok_blob, qm.tok_blob_bytes, bh);
    cr_assert_str_eq(bh, qm.tok_sha256);
    cr_assert_lt(qm.tok_blob_bytes, 64 * 1024, "only the tokenizer keys, not the GGUF's weights");
    flx_tokenizer *ref = NULL;
    cr_assert_eq(flx_tokenizer_load(&ref, gguf, &err), FLX_OK, "%s", err.msg);
    const char *sample = "Once upon a time, a little girl named Lily found a shiny red ball. \xc3\xa9!";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    cr_assert_eq(flx_tokenizer_encode(qm.tok, sample, strlen(sample), 1, 0, &a, &na, &err), FLX_OK);
    cr_assert_eq(flx_tokenizer_encode(ref, sample, strlen(sample), 1, 0, &b, &nb, &err), FLX_OK);
    cr_assert(na == nb && na > 10 && memcmp(a, b, na * sizeof *a) == 0);
    free(a);
    free(b);
    flx_tokenizer_free(ref);
    flx_qmodel_free(&qm);

    /* a damaged tokenizer tensor is refused by name */
    char *bytes = NULL;
    size_t n = 0;
    cr_assert_eq(flx_read_file(f1, 1 << 26, &bytes, &n, &err), FLX_OK);
    /* the embedded tokenizer is a GGUF: its magic marks where it starts */
    size_t off = 0;
    for (size_t i = 0; i + 4 <= n; i++)
        if (!memcmp(bytes + i, "GGUF", 4)) off = i;
    cr_assert_gt(off, 0);
    bytes[off + 100] ^= 0x5a;
    FILE *fp = fopen(f2, "wb");
    fwrite(bytes, 1, n, fp);
    fclose(fp);
    free(bytes);
    cr_assert_neq(flx_qmodel_load(&qm, f2, &err), FLX_OK);
    cr_assert(strstr(err.msg, "tokenizer") != NULL && strstr(err.msg, "b.flxq") != NULL, "%s", err.msg);

    /* flxemu info on the .flxq */
    snprintf(js, sizeof js, "%s/info.json", dir);
    snprintf(cmd, sizeof cmd, "%s info --model %s --json %s 2>&1", bin, f1, js);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "recipe:      w4a8kv8") && strstr(out, "embedded (gguf") &&
              strstr(out, "zero-padded from 172") && strstr(out, "calibration: 3 windows x 64 tokens") &&
              strstr(out, "act-order on"), "%s", out);
    char *jt = NULL;
    size_t jn = 0;
    cr_assert_eq(flx_read_file(js, 1 << 20, &jt, &jn, &err), FLX_OK);
    cJSON *ij = cJSON_Parse(jt);
    free(jt);
    cr_assert_str_eq(at(at(ij, "provenance"), "weights")->valuestring, "gptq");
    cr_assert_str_eq(at(at(ij, "recipe"), "name")->valuestring, "w4a8kv8");
    cJSON_Delete(ij);

    /* ppl on the file alone (no --tokenizer): text and --json name the recipe and provenance */
    snprintf(js, sizeof js, "%s/ppl.json", dir);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 64 --chunks 2 --json %s 2>&1", bin, f1, text, js);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "quantized model: recipe w4a8kv8, rotation hadamard (seed 5) +R3 +R4") != NULL, "%s", out);
    cr_assert(strstr(out, "gptq weights (act-order), calibration 3 x 64 tokens") != NULL, "%s", out);
    cr_assert_eq(flx_read_file(js, 1 << 20, &jt, &jn, &err), FLX_OK);
    ij = cJSON_Parse(jt);
    free(jt);
    const cJSON *q = at(ij, "quantized");
    cr_assert_str_eq(at(q, "recipe")->valuestring, "w4a8kv8");
    cr_assert_eq(at(at(q, "provenance"), "rotation")->type, cJSON_Object);
    cJSON_Delete(ij);
}

Test(provenance, files_without_the_new_keys_still_load)
{
    /* the earlier format: no provenance, no tokenizer tensor, no padding;
     * the tokenizer comes from the source model, as before */
    flx_model m = {0};
    flx_error err = {0};
    char gguf[4096];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    cr_assert_eq(flx_model_load(&m, gguf, &err), FLX_OK, "%s", err.msg);
    flx_recipe r;
    cr_assert_eq(flx_recipe_parse(&r, "w4a16", &err), FLX_OK);
    flx_qbuild b = {0};
    b.recipe = &r;
    b.source = gguf;
    flx_qmodel qm;
    cr_assert_eq(flx_qmodel_build(&qm, &m, &b, &err), FLX_OK, "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/old.flxq", flx_test_tmpdir());
    cr_assert_eq(flx_qmodel_save(&qm, path, &err), FLX_OK, "%s", err.msg);
    flx_qmodel_free(&qm);
    flx_model_free(&m);
    flx_qmeta meta;
    cr_assert_eq(flx_qmeta_read(&meta, path, &err), FLX_OK, "%s", err.msg);
    cr_assert(meta.provenance == NULL && meta.tokenizer == NULL && meta.padding == NULL && meta.tokenizer_bytes == 0);
    char line[1024];
    flx_qmeta_summary(&meta, line, sizeof line);
    cr_assert(strstr(line, "recipe w4a16") && strstr(line, "no provenance"), "%s", line);
    flx_qmeta_free(&meta);
    cr_assert_eq(flx_qmodel_load(&qm, path, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.provenance == NULL && qm.tok_blob == NULL && qm.tok != NULL);
    flx_qmodel_free(&qm);
}

Test(provenance, ppl_warns_when_calibration_and_evaluation_text_overlap, .timeout = 120)
{
    char gguf[4096], cmd[16384], out[16384], ev[600], ca[600], f[600];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    char *text = NULL;
    size_t n = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(flx_test_data("tinystories/tinystories_val_first_stories.txt"), 1 << 22, &text, &n, &err),
                 FLX_OK);
    const char *dir = flx_test_tmpdir();
    snprintf(ev, sizeof ev, "%s/eval.txt", dir);
    snprintf(ca, sizeof ca, "%s/calib.txt", dir);
    snprintf(f, sizeof f, "%s/q.flxq", dir);
    size_t cut = n / 2;
    while (cut < n && text[cut] != '\n') cut++;
    FILE *fp = fopen(ev, "wb");
    fwrite(text, 1, cut, fp);
    fclose(fp);
    fp = fopen(ca, "wb");
    fwrite(text + cut, 1, n - cut, fp);
    fclose(fp);
    free(text);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe flexllm --calib %s --nsamples 4 --seqlen 128 --out %s 2>&1",
             flx_test_bin(), gguf, ca, f);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    /* the calibration text itself: its first windows are the calibration windows */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 4 2>&1", flx_test_bin(), f, ca);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    const char *w = strstr(out, "warning: ");
    cr_assert(w != NULL && strstr(out, "calibration and evaluation text overlap"), "%s", out);
    cr_assert_gt(atof(w + 9), 80.0, "%s", out);
    /* the other half of the file: no warning */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 20 2>&1", flx_test_bin(), f, ev);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "overlap") == NULL, "%s", out);
}
