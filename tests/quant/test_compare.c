/* compare: `flxemu compare` against separate `flxemu ppl` runs on the same
 * windows (PPL of each model; KLD and same-top of the second against the
 * first through ppl --save-logits / --kl-base), and its bits per weight. */
#include "flx_core.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/wait.h>

static double after(const char *out, const char *key)
{
    const char *p = strstr(out, key);
    cr_assert(p != NULL, "'%s' not in: %s", key, out);
    return atof(p + strlen(key));
}

Test(compare, table_equals_separate_ppl_runs, .timeout = 120)
{
    char gguf[4096], text[4096], cmd[16384], out[65536], q[600], js[600], base[600];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    snprintf(q, sizeof q, "%s/w4.flxq", dir);
    snprintf(js, sizeof js, "%s/t.json", dir);
    snprintf(base, sizeof base, "%s/base.kld", dir);
    const char *bin = flx_test_bin();
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe w4a8 --out %s 2>&1", bin, gguf, q);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s compare --file %s --ctx 128 --chunks 5 --threads 2 --format markdown --json %s %s %s 2>&1",
             bin, text, js, gguf, q);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "| model | recipe | PPL |") && strstr(out, "| w4a8 |"), "%s", out);
    char *jt = NULL;
    size_t jn = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(js, 1 << 20, &jt, &jn, &err), FLX_OK);
    cJSON *root = cJSON_Parse(jt);
    free(jt);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "models");
    cr_assert_eq(cJSON_GetArraySize(arr), 2);
    const cJSON *m0 = cJSON_GetArrayItem(arr, 0), *m1 = cJSON_GetArrayItem(arr, 1);
    double p0 = cJSON_GetObjectItemCaseSensitive(m0, "ppl")->valuedouble;
    double p1 = cJSON_GetObjectItemCaseSensitive(m1, "ppl")->valuedouble;
    double k1 = cJSON_GetObjectItemCaseSensitive(m1, "kld")->valuedouble;
    double t1 = cJSON_GetObjectItemCaseSensitive(m1, "same_top_percent")->valuedouble;
    double bpw = cJSON_GetObjectItemCaseSensitive(m1, "bits_per_weight")->valuedouble;
    cr_assert(cJSON_GetObjectItemCaseSensitive(m0, "kld") == NULL);
    cJSON_Delete(root);
    /* separate runs */
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --file %s --ctx 128 --chunks 5 --save-logits %s 2>/dev/null", bin,
             gguf, text, base);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(fabs(after(out, "PPL = ") - p0) < 5e-5, "%s vs %.4f", out, p0);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --kl-base %s --ctx 128 --chunks 5 2>/dev/null", bin, q, base);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(fabs(after(out, "PPL = ") - p1) < 5e-5, "%s vs %.4f", out, p1);
    cr_assert(fabs(after(out, "Mean    KLD:") - k1) < 5e-7, "%s vs %.6f", out, k1);
    cr_assert(fabs(after(out, "Same top p:") - t1) < 5e-4, "%s vs %.3f", out, t1);
    /* w4a8 per channel: 4 bits + one float scale per row of every projection and the float head */
    cr_assert(bpw > 4.0 && bpw < 32.0, "%g", bpw);
}
