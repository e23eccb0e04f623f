/* perf_power.c -- board power of an FPGA design from its modelled utilization,
 * anchored on the one measured board power (docs/perf-model.md, "Power"). */
#include "flx_perf.h"

/* P = static + (active - static) * util / ref_util: the dynamic part scales
 * with the modelled utilization; the reference design (ref_util) draws the
 * measured active_w. */
double flx_perf_board_power(const flx_perf_config *cfg, double utilization)
{
    return cfg->pow.static_w +
           (cfg->pow.active_w - cfg->pow.static_w) * utilization / cfg->pow.ref_util;
}
