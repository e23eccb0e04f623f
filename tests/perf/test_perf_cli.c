/* CLI tests of `flxemu perf` and `flxemu dse`: exit codes, JSON and SVG files. */
#include "flx_core.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/wait.h>

/* Runs `flxemu ARGS`, captures stdout+stderr into out (may be NULL), returns
 * the exit status. */
static int run(const char *args, char *out, size_t out_bytes)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", flx_test_bin(), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen failed");
    size_t n = 0;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && n + 1 < out_bytes) {
            size_t c = k < out_bytes - 1 - n ? k : out_bytes - 1 - n;
            memcpy(out + n, tmp, c);
            n += c;
        }
    }
    if (out) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[1 << 16];

Test(perf_cli, perf_exit_codes)
{
    cr_assert_eq(run("perf --help", out, sizeof out), 0);
    cr_assert(strstr(out, "--config"));
    cr_assert_eq(run("perf --prefill abc", out, sizeof out), 2);
    cr_assert_eq(run("perf --decode 0", out, sizeof out), 2);
    cr_assert_eq(run("perf --bogus 1", out, sizeof out), 2);
    cr_assert_eq(run("perf --config no_such_config", out, sizeof out), 1);
    cr_assert(strstr(out, "no_such_config"), "%s", out);
    cr_assert_eq(run("perf --prefill 2000", out, sizeof out), 1);   /* > MAX_PRE_SEQ_LEN */
    cr_assert(strstr(out, "MAX_PRE_SEQ_LEN"), "%s", out);
    cr_assert_eq(run("perf --config /nonexistent/x.json", out, sizeof out), 1);
    cr_assert_eq(run("perf --hmt --prefill 5000 --decode 16", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "HMT: 6 segments"), "%s", out);
    cr_assert_eq(run("perf --hmt --prefill 70000", out, sizeof out), 1);
}

Test(perf_cli, perf_report_json_svg)
{
    const char *dir = flx_test_tmpdir();
    char args[2048], path[512], svg[512];
    snprintf(path, sizeof path, "%s/r.json", dir);
    snprintf(svg, sizeof svg, "%s/r.svg", dir);
    snprintf(args, sizeof args, "perf --config u280_mem_opt --prefill 1024 --decode 1024 "
             "--json %s --svg %s", path, svg);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "paper's claim"));
    cr_assert(strstr(out, "tokens/s"));
    char *text = NULL;
    size_t n;
    flx_error e = {0};
    cr_assert_eq(flx_read_file(path, 1 << 22, &text, &n, &e), FLX_OK);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j, "JSON does not parse");
    cJSON *f = cJSON_GetObjectItem(j, "fpga");
    cr_assert(fabs(cJSON_GetObjectItem(f, "prefill_s")->valuedouble - 1.6615) < 0.002);
    cr_assert(cJSON_GetArraySize(cJSON_GetObjectItem(f, "decode_stages")) > 10);
    cr_assert(cJSON_GetObjectItem(j, "paper_claims"));
    cJSON_Delete(j);
    free(text);
    cr_assert_eq(flx_read_file(svg, 1 << 22, &text, &n, &e), FLX_OK);
    cr_assert(strstr(text, "<svg") && strstr(text, "</svg>"));
    free(text);
}

Test(perf_cli, perf_bad_config_file_names_field)
{
    const char *dir = flx_test_tmpdir();
    char path[512], args[2048];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"name\": \"x\", \"device\": \"tpu\"}", fp);
    fclose(fp);
    snprintf(args, sizeof args, "perf --config %s", path);
    cr_assert_eq(run(args, out, sizeof out), 1);
    cr_assert(strstr(out, "bad.json") && strstr(out, "device"), "%s", out);
}

Test(perf_cli, dse_exit_codes_and_outputs)
{
    cr_assert_eq(run("dse --help", out, sizeof out), 0);
    cr_assert_eq(run("dse --prefill 64", out, sizeof out), 2);       /* no --device */
    cr_assert_eq(run("dse --device tpu", out, sizeof out), 2);
    cr_assert_eq(run("dse --device u280 --objective speed", out, sizeof out), 2);
    cr_assert_eq(run("dse --device u280 --prefill 4000", out, sizeof out), 1);
    const char *dir = flx_test_tmpdir();
    char args[1024];
    snprintf(args, sizeof args, "dse --device v80 --prefill 64 --decode 4 --objective energy "
             "--svg %s/p.svg --json %s/p.json", dir, dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "unified-temporal") && strstr(out, "unified-spatial") &&
              strstr(out, "hybrid"), "%s", out);
    char path[512];
    snprintf(path, sizeof path, "%s/p.json", dir);
    char *text = NULL;
    size_t n;
    flx_error e = {0};
    cr_assert_eq(flx_read_file(path, 1 << 24, &text, &n, &e), FLX_OK);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "pareto")) > 0);
    cJSON_Delete(j);
    free(text);
}

/* The claims report: every ratio in the JSON is reproduced from the two sides
 * it states (FPGA value and GPU value per baseline), the text prints the same
 * numbers, the V80 rows are marked as projections and the assumed 23.23x
 * reading comes with alternatives. */
Test(perf_cli, claims_report_reproduced_from_json)
{
    const char *dir = flx_test_tmpdir();
    char args[1024], path[512];
    snprintf(path, sizeof path, "%s/claims.json", dir);
    snprintf(args, sizeof args, "perf --claims --json %s --svg %s/claims.svg", path, dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    char *text = NULL;
    size_t n;
    flx_error e = {0};
    cr_assert_eq(flx_read_file(path, 1 << 22, &text, &n, &e), FLX_OK);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j);
    cJSON *claims = cJSON_GetObjectItem(j, "claims");
    int n_claims = cJSON_GetArraySize(claims), n_v80 = 0, n_alt_2323 = 0, n_assumed_2323 = 0;
    cr_assert(n_claims >= 18, "%d claims", n_claims);
    const double papers[] = {1.29, 1.64, 3.14, 4.71, 6.55, 4.13, 23.23, 64, 1.10, 4.86, 5.21, 6.27};
    for (size_t p = 0; p < sizeof papers / sizeof papers[0]; p++) {
        int found = 0;
        for (int i = 0; i < n_claims; i++)
            if (fabs(cJSON_GetObjectItem(cJSON_GetArrayItem(claims, i), "paper")->valuedouble -
                     papers[p]) < 1e-9)
                found = 1;
        cr_assert(found, "paper claim %g missing", papers[p]);
    }
    for (int i = 0; i < n_claims; i++) {
        cJSON *c = cJSON_GetArrayItem(claims, i);
        const char *id = cJSON_GetObjectItem(c, "id")->valuestring;
        double fpga = cJSON_GetObjectItem(c, "fpga_value")->valuedouble;
        int decode = strstr(id, ".decode") != NULL;
        cJSON *m = cJSON_GetObjectItem(c, "model");
        cr_assert_eq(cJSON_GetArraySize(m), 3, "%s: one ratio per baseline", id);
        for (int b = 0; b < 3; b++) {
            cJSON *x = cJSON_GetArrayItem(m, b);
            double gpu = cJSON_GetObjectItem(x, "gpu_value")->valuedouble;
            double ratio = cJSON_GetObjectItem(x, "ratio")->valuedouble;
            double want = decode ? fpga / gpu : gpu / fpga;
            cr_assert(fabs(ratio - want) <= 1e-9 * want, "%s: %g vs %g", id, ratio, want);
            char num[32];
            snprintf(num, sizeof num, "%.2fx", ratio);
            cr_assert(strstr(out, num), "%s: %s not in the text", id, num);
        }
        int proj = cJSON_IsTrue(cJSON_GetObjectItem(c, "projection"));
        if (!strncmp(id, "v80", 3) || strstr(id, ".v80.")) cr_assert(proj, "%s not a projection", id);
        n_v80 += proj;
        if (!strncmp(id, "hmt.prefill_latency", 19)) {
            if (cJSON_IsTrue(cJSON_GetObjectItem(c, "alternative"))) n_alt_2323++;
            else n_assumed_2323++;
            cr_assert(strlen(cJSON_GetObjectItem(c, "interpretation")->valuestring) > 40);
        }
    }
    cr_assert(n_v80 >= 5);
    cr_assert_eq(n_assumed_2323, 1);
    cr_assert(n_alt_2323 >= 2);
    cr_assert(strstr(out, "PROJECTION") && strstr(out, "ASSUMED"), "%s", out);
    cJSON *gb = cJSON_GetObjectItem(j, "gpu_baselines");
    cr_assert_eq(cJSON_GetArraySize(gb), 3);
    for (int b = 0; b < 3; b++)
        cr_assert(strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(gb, b), "source")->valuestring) > 20);
    cJSON_Delete(j);
    free(text);
    snprintf(path, sizeof path, "%s/claims.svg", dir);
    cr_assert_eq(flx_read_file(path, 1 << 22, &text, &n, &e), FLX_OK);
    cr_assert(strstr(text, "<svg") && strstr(text, "PROJECTION") && strstr(text, "</svg>"));
    free(text);
}

Test(perf_cli, default_output_prints_every_baseline)
{
    cr_assert_eq(run("perf --decode 16", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "hf-transformers") && strstr(out, "vllm") && strstr(out, "roofline"),
              "%s", out);
    cr_assert(strstr(out, "paper's claim"), "%s", out);
    cr_assert_eq(run("perf --gpu /nonexistent/g.json", out, sizeof out), 1);
}

/* `dse --top N` prints exactly N Pareto rows (the front has more), the
 * shipped designs are printed and marked on the SVG with the legend right of
 * the plot area; the HMT breakdown is titled HMT; stages without HBM traffic
 * are labelled on-chip. */
Test(perf_cli, plots_and_labels)
{
    const char *dir = flx_test_tmpdir();
    char args[1024], path[512];
    for (int top = 1; top <= 6; top += 5) {
        snprintf(args, sizeof args, "dse --device u280 --prefill 1024 --decode 1024 --top %d --svg "
                 "%s/d.svg", top, dir);
        cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
        const char *a = strstr(out, "Pareto front"), *b = strstr(out, "Best design");
        cr_assert(a && b);
        int rows = 0;
        for (const char *p = a; p < b; p++)
            if (!strncmp(p, "\n  hybrid", 9) || !strncmp(p, "\n  unified", 10)) rows++;
        long front = atol(strstr(a, "), ") + 3);   /* "Pareto front (...), K points" */
        cr_assert(front > 6, "front of %ld points too small for this test", front);
        cr_assert_eq(rows, top, "--top %d printed %d rows:\n%s", top, rows, out);
    }
    cr_assert(strstr(out, "production (u280_mem_opt)") && strstr(out, "u280_fsq"), "%s", out);
    snprintf(path, sizeof path, "%s/d.svg", dir);
    char *text = NULL;
    size_t n;
    flx_error e = {0};
    cr_assert_eq(flx_read_file(path, 1 << 24, &text, &n, &e), FLX_OK);
    cr_assert(strstr(text, "production (u280_mem_opt)") && strstr(text, "the measured design"));
    /* legend entries sit right of the plot frame (x > 830) */
    const char *lg = strstr(text, ">hybrid<");
    cr_assert(lg);
    const char *tx = lg;
    while (tx > text && strncmp(tx, "<text x=\"", 9)) tx--;
    cr_assert(atof(tx + 9) > 830, "legend inside the data area: %.60s", tx);
    free(text);
    snprintf(args, sizeof args, "perf --hmt --prefill 3000 --decode 4 --svg %s/h.svg", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "on-chip") && strstr(out, "compute"), "%s", out);
    snprintf(path, sizeof path, "%s/h.svg", dir);
    cr_assert_eq(flx_read_file(path, 1 << 22, &text, &n, &e), FLX_OK);
    cr_assert(strstr(text, ">HMT long-context"), "HMT chart not titled HMT");
    free(text);
}
