/* libFuzzer target: cycle-model configuration JSON (`flxemu perf --config`).
 * A configuration that loads (parse + validation) is then run through the
 * whole model: prefill, decode steps, the host flow with and without HMT,
 * resources and power, at a short and at the longest allowed length.  Every
 * result must be a finite, non-negative time. */
#include <math.h>

#include "fuzz_util.h"
#include "flx_perf.h"

static void run(const flx_perf_config *cfg, int64_t prompt, int64_t decode)
{
    flx_perf_report rep;
    flx_error err = {0};
    memset(&rep, 0, sizeof rep);
    int rc = flx_perf_run(cfg, prompt, decode, &rep, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK && !(isfinite(rep.e2e_s) && rep.e2e_s >= 0 && isfinite(rep.ttft_s))) {
        fprintf(stderr, "fuzz: perf run gives e2e %g s, ttft %g s\n", rep.e2e_s, rep.ttft_s);
        abort();
    }
    memset(&rep, 0, sizeof rep);
    flx_perf_hmt_report hmt;
    rc = flx_perf_run_hmt(cfg, prompt, decode, &rep, &hmt, &err);
    fuzz_check_error(rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("config.json", data, size);
    flx_perf_config cfg;
    flx_error err = {0};
    int rc = flx_perf_config_load(path, &cfg, &err);
    fuzz_check_error(rc, &err);
    if (rc != FLX_OK) return 0;
    run(&cfg, 17, 4);
    int64_t p = cfg.max_prefill_tokens < 4096 ? cfg.max_prefill_tokens : 4096;
    int64_t d = cfg.max_decode_tokens < 256 ? cfg.max_decode_tokens : 256;
    run(&cfg, p, d);
    flx_perf_resources r;
    flx_perf_resources_of(&cfg, &r);
    double util = flx_perf_utilization(&cfg, &r);
    char why[256];
    (void)flx_perf_fits(&cfg, &r, why, sizeof why);
    (void)flx_perf_board_power(&cfg, util);
    return 0;
}
