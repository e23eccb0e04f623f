/* analyze: `flxemu analyze` numbers checked by hand on stories260K's first
 * layer, whose q/k/v input is computable without running the model
 * (rmsnorm of the embedding rows times the gain): the weight SQNR of wq
 * under w4a16 RTN (s = max|w|/7 per row, round half away), the kurtosis
 * and absmax of the input, and the output error of q with float
 * activations, all recomputed here in double; the SVG and the
 * sensitivity lines are there. */
#include "flx_calib.h"
#include "flx_model.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/wait.h>

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "missing %s", k);
    return v->valuedouble;
}

Test(analyze, first_layer_by_hand, .timeout = 120)
{
    char gguf[4096], text[4096], cmd[16384], out[65536], js[600], svg[600];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    snprintf(js, sizeof js, "%s/a.json", dir);
    snprintf(svg, sizeof svg, "%s/a.svg", dir);
    snprintf(cmd, sizeof cmd,
             "%s analyze --model %s --recipe w4a16 --rotate hadamard --file %s --windows 2 --ctx 64 "
             "--sensitivity --json %s --svg %s --threads 1 2>&1",
             flx_test_bin(), gguf, text, js, svg);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "layer 4:") && strstr(out, "all layers quantized"), "%s", out);

    char *jt = NULL;
    size_t jn = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(js, 1 << 22, &jt, &jn, &err), FLX_OK);
    cJSON *root = cJSON_Parse(jt);
    free(jt);
    cr_assert(root != NULL);
    const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "layers"), 0);
    const cJSON *q = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "linears"), 0);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(q, "unrotated");

    /* by hand: the same windows, the unrotated model */
    flx_model m = {0};
    cr_assert_eq(flx_model_load(&m, gguf, &err), FLX_OK, "%s", err.msg);
    flx_calib_data cd;
    cr_assert_eq(flx_calib_from_text(&cd, &m, text, 2, 64, 0, &err), FLX_OK, "%s", err.msg);
    const int d = m.cfg.d_model, qd = m.cfg.n_heads * m.cfg.head_dim, T = 128;
    const float *wq = m.w.layers[0].wq, *g = m.w.layers[0].attn_norm;
    /* weight SQNR of RTN (4-bit symmetric per row, C round) */
    double se = 0, sw = 0;
    double *wh = malloc(sizeof(double) * qd * d);
    for (int r = 0; r < qd; r++) {
        float amax = 0;
        for (int i = 0; i < d; i++) amax = fmaxf(amax, fabsf(wq[r * d + i]));
        float s = amax / 7.0f;
        for (int i = 0; i < d; i++) {
            float c = roundf(wq[r * d + i] / s);
            c = c < -8 ? -8 : c > 7 ? 7 : c;
            float h = s * c;
            wh[r * d + i] = h;
            se += ((double)h - wq[r * d + i]) * ((double)h - wq[r * d + i]);
            sw += (double)wq[r * d + i] * wq[r * d + i];
        }
    }
    double sqnr = 10 * log10(sw / se);
    cr_assert(fabs(num(u, "w_sqnr_db") - sqnr) < 1e-6, "w_sqnr %g vs %g", num(u, "w_sqnr_db"), sqnr);
    cr_assert(fabs(num(u, "w_mse") - se / (qd * d)) < 1e-12 * (1 + se));
    /* the q input: rmsnorm(embedding) * gain, its moments, and q's output error */
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, mx = 0, en = 0, ed = 0;
    double *x = malloc(sizeof(double) * d);
    for (int t = 0; t < T; t++) {
        const float *e = m.w.tok_embd + (size_t)cd.ids[t] * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)e[i] * e[i];
        double rs = 1.0 / sqrt(ss / d + m.cfg.rms_eps);
        for (int i = 0; i < d; i++) {
            x[i] = e[i] * rs * g[i];
            s1 += x[i]; s2 += x[i] * x[i]; s3 += x[i] * x[i] * x[i]; s4 += x[i] * x[i] * x[i] * x[i];
            mx = fmax(mx, fabs(x[i]));
        }
        for (int r = 0; r < qd; r++) {
            double y = 0, yh = 0;
            for (int i = 0; i < d; i++) {
                y += x[i] * wq[r * d + i];
                yh += x[i] * wh[r * d + i];
            }
            en += (yh - y) * (yh - y);
            ed += y * y;
        }
    }
    double n = (double)T * d, mu = s1 / n, m2 = s2 / n - mu * mu;
    double m4 = s4 / n - 4 * mu * s3 / n + 6 * mu * mu * s2 / n - 3 * mu * mu * mu * mu;
    cr_assert(fabs(num(u, "act_absmax") - mx) < 1e-5 * mx, "absmax %g vs %g", num(u, "act_absmax"), mx);
    cr_assert(fabs(num(u, "act_kurtosis") - m4 / (m2 * m2)) < 1e-3, "kurtosis %g vs %g", num(u, "act_kurtosis"),
              m4 / (m2 * m2));
    cr_assert(fabs(num(u, "out_rel_err") / (en / ed) - 1) < 1e-3, "out_err %g vs %g", num(u, "out_rel_err"), en / ed);
    /* rotated: the input kurtosis of down_proj drops (R4 spreads its outliers) */
    const cJSON *dn = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l0, "linears"), 6);
    cr_assert_lt(num(cJSON_GetObjectItemCaseSensitive(dn, "rotated"), "act_kurtosis"),
                 num(cJSON_GetObjectItemCaseSensitive(dn, "unrotated"), "act_kurtosis"));
    cr_assert(num(l0, "ppl_delta") > 0 && num(root, "ppl_all_quantized") > num(root, "ppl_float"));
    cJSON_Delete(root);
    free(x);
    free(wh);
    flx_calib_free(&cd);
    flx_model_free(&m);
    /* the heat map: 6 panels of 5 x 7 cells */
    char *sv = NULL;
    size_t sn = 0;
    cr_assert_eq(flx_read_file(svg, 1 << 22, &sv, &sn, &err), FLX_OK);
    int cells = 0;
    for (const char *p = sv; (p = strstr(p, "<rect x=")) != NULL; p++) cells++;
    cr_assert_eq(cells, 6 * 5 * 7);
    cr_assert(strstr(sv, "</svg>") != NULL);
    free(sv);
}

/* --sensitivity starts each one-layer run at its layer from the float
 * activations the rotated pass saved; --sensitivity-rerun runs the layers
 * before it again.  Both must give the same bits: every number of the
 * JSON (all printed with 17 digits) except the timings. */
static char *json_without_seconds(const char *path)
{
    char *t = NULL;
    size_t n = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 22, &t, &n, &err), FLX_OK, "%s", err.msg);
    cJSON *root = cJSON_Parse(t);
    free(t);
    cr_assert(root != NULL);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "seconds_layer_local");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "seconds_total");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "ppl_all_quantized")));
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void fast_equals_rerun(const char *recipe, const char *rotate)
{
    char gguf[4096], text[4096], cmd[16384], out[65536], js[2][600];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *mode[2] = {"--sensitivity", "--sensitivity-rerun"};
    for (int i = 0; i < 2; i++) {
        snprintf(js[i], sizeof js[i], "%s/s%d.json", flx_test_tmpdir(), i);
        snprintf(cmd, sizeof cmd,
                 "%s analyze --model %s --recipe %s --rotate %s --file %s --windows 3 --ctx 96 %s --json %s "
                 "--threads 2 2>&1", flx_test_bin(), gguf, recipe, rotate, text, mode[i], js[i]);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    }
    char *a = json_without_seconds(js[0]), *b = json_without_seconds(js[1]);
    cr_assert_str_eq(a, b, "%s %s: saved-activation sensitivity differs from the re-run", recipe, rotate);
    cr_assert(strstr(a, "\"ppl_delta\"") != NULL);
    cJSON_free(a);
    cJSON_free(b);
}

/* flexllm: static scales (their maxima come from the saved pass), P, R4 */
Test(analyze, sensitivity_from_saved_activations_flexllm, .timeout = 120) { fast_equals_rerun("flexllm", "hadamard"); }
/* R3 online on Q/K without rotation, 4-bit K/V */
Test(analyze, sensitivity_from_saved_activations_spinquant, .timeout = 120)
{
    fast_equals_rerun("w4a4kv4-spinquant", "none");
}
