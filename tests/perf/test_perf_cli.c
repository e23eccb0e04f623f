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
    cr_assert(strstr(out, "paper claim"));
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
