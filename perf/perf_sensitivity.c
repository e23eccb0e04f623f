/* perf_sensitivity.c -- how far each assumed (uncalibrated) constant moves
 * the decode prediction: every constant is set to the low and the high end
 * of its documented plausible range, one at a time, and the decode time of
 * the whole run is recomputed (docs/perf-model.md §0, §2.6).  The calibrated
 * constants (clock, lambda) are not varied: they are fixed by the measured
 * prefill. */
#include "flx_perf.h"

#include <math.h>
#include <string.h>

typedef struct knob {
    const char *name;
    const char *range_why;
    double lo, hi;
} knob;

/* Ranges: HLS iteration depths and loop states as Vitis HLS reports them for
 * 300 MHz designs (an fcmp is 1-3 stages, a pipelined loop adds 1-3 states),
 * float pipeline depths 10-40 (fadd/fmul ~4-8, fdiv/exp/rsqrt ~15-30), AXI
 * round trips of U280 HBM 50-200 cycles and DDR4 75-300 cycles at 300 MHz,
 * sustained HBM fraction 0.70-0.95. */
static const knob knobs[] = {
    {"timing.cmp_depth_cycles", "fcmp + select depth 1-3", 1, 3},
    {"timing.loop_overhead_cycles", "pipelined sub-loop entry/exit 1-3", 1, 3},
    {"timing.stage_fill_cycles", "float pipeline depth 10-40", 10, 40},
    {"timing.hbm_latency_cycles", "HBM round trip 50-200", 50, 200},
    {"timing.ddr_latency_cycles", "DDR round trip 75-300", 75, 300},
    {"memory.hbm_efficiency", "sustained HBM fraction 0.70-0.95", 0.70, 0.95},
    {"decode.sort_lanes_serial", "lanes serial (1) or parallel (0)", 0, 1},
    {"decode.sort_insert_ii", "insert loop II: unrolled (0) .. 2", 0, 2},
};
#define N_KNOBS ((int)(sizeof knobs / sizeof knobs[0]))

int flx_perf_sensitivity_count(void) { return N_KNOBS; }

static void set_knob(flx_perf_config *c, int k, double v)
{
    switch (k) {
    case 0: c->tim.cmp_depth_cycles = v; break;
    case 1: c->tim.loop_overhead_cycles = v; break;
    case 2: c->tim.stage_fill_cycles = v; break;
    case 3: c->tim.hbm_latency_cycles = v; break;
    case 4: c->tim.ddr_latency_cycles = v; break;
    case 5: c->dev.hbm_efficiency = v; break;
    case 6: c->dec.sort_lanes_serial = (int)v; break;
    case 7: c->dec.sort_insert_ii = (int)v; break;
    }
}

static double get_knob(const flx_perf_config *c, int k)
{
    switch (k) {
    case 0: return c->tim.cmp_depth_cycles;
    case 1: return c->tim.loop_overhead_cycles;
    case 2: return c->tim.stage_fill_cycles;
    case 3: return c->tim.hbm_latency_cycles;
    case 4: return c->tim.ddr_latency_cycles;
    case 5: return c->dev.hbm_efficiency;
    case 6: return c->dec.sort_lanes_serial;
    case 7: return c->dec.sort_insert_ii;
    }
    return 0;
}

static int decode_s(const flx_perf_config *c, int64_t n_ctx, int64_t d, double *s,
                    flx_error *err)
{
    double total = 0, cy;
    for (int64_t t = 0; t < d; t++) {
        int rc = flx_perf_decode_step_seconds(c, n_ctx + t + 1, &cy, NULL, err);
        if (rc) return rc;
        total += cy;
    }
    *s = total / (c->tim.clock_mhz * 1e6);
    return FLX_OK;
}

int flx_perf_sensitivity(const flx_perf_config *cfg, int64_t prompt_tokens,
                         int64_t decode_tokens, flx_perf_sensitivity_row *rows, int max_rows,
                         double *base_tokens_per_s, flx_error *err)
{
    if (prompt_tokens < 1 || decode_tokens < 1)
        return flx_fail(err, FLX_EINVAL, "cycle model: sensitivity needs a prompt and decode tokens");
    int64_t n = prompt_tokens - 1;
    double base;
    int rc = decode_s(cfg, n, decode_tokens, &base, err);
    if (rc) return rc;
    if (base_tokens_per_s) *base_tokens_per_s = decode_tokens / base;
    int nr = N_KNOBS < max_rows ? N_KNOBS : max_rows;
    for (int k = 0; k < nr; k++) {
        flx_perf_sensitivity_row *r = &rows[k];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", knobs[k].name);
        snprintf(r->range, sizeof r->range, "%s", knobs[k].range_why);
        r->value = get_knob(cfg, k);
        r->lo = knobs[k].lo;
        r->hi = knobs[k].hi;
        double t[2];
        for (int j = 0; j < 2; j++) {
            flx_perf_config c = *cfg;
            set_knob(&c, k, j ? knobs[k].hi : knobs[k].lo);
            rc = decode_s(&c, n, decode_tokens, &t[j], err);
            if (rc) return rc;
        }
        /* change of the decode rate, in percent of the base rate */
        r->rate_lo_pct = 100.0 * (base / t[0] - 1.0);
        r->rate_hi_pct = 100.0 * (base / t[1] - 1.0);
        r->over_2pct = fabs(r->rate_lo_pct) > 2.0 || fabs(r->rate_hi_pct) > 2.0;
    }
    return nr;
}
