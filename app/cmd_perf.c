/* flxemu perf -- cycle-approximate latency, throughput and energy of a FlexLLM
 * configuration for a prompt of P tokens and D generated tokens, next to an
 * A100 BF16 batch-1 roofline baseline and the paper's claimed ratios. */
#include "cli.h"
#include "flx_perf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "perf"

typedef struct perf_args {
    const char *config, *json, *svg, *gpu;
    long long prompt, decode;
    int hmt, sensitivity, claims;
    double gpu_mem_eff, gpu_flop_eff, gpu_overhead_ms;   /* 0: the baselines file's */
} perf_args;

#define A(f) offsetof(perf_args, f)
static const cli_opt perf_opts[] = {
    CLI_S("config", 0, "NAME|FILE", A(config),
          "configuration: a name in perf/configs (u280_mem_opt =\n"
          "production, u280, u280_fsq, u280_mem_opt_new, v80) or a JSON\n"
          "file (default u280_mem_opt)"),
    CLI_I("prefill", 0, "P", A(prompt), 1, 1 << 20,
          "prompt tokens, 1..1025 (default 1024); the prefill\n"
          "kernel processes P-1, the last one starts decode"),
    CLI_I("decode", 0, "D", A(decode), 1, 1 << 20, "generated tokens, 1..1024 (default 1024)"),
    CLI_S("json", 0, "FILE", A(json), "write the full report as JSON"),
    CLI_S("svg", 0, "FILE", A(svg), "draw the per-stage time breakdown"),
    CLI_N("gpu-mem-eff", 0, "X", A(gpu_mem_eff), 0.01, 1.0, "A100 sustained fraction of 2039 GB/s (default 0.80)"),
    CLI_N("gpu-flop-eff", 0, "X", A(gpu_flop_eff), 0.01, 1.0, "A100 sustained fraction of 312 TFLOP/s (default 0.50)"),
    CLI_N("gpu-overhead-ms", 0, "X", A(gpu_overhead_ms), 0.0, 1000.0,
          "extra overhead per GPU forward pass, every baseline\n(default 0)"),
    CLI_S("gpu", 0, "NAME|FILE", A(gpu), "GPU baselines file (default gpu_a100 in perf/configs)"),
    CLI_F("hmt", 0, 1, A(hmt),
          "prefill through the HMT plug-in: prompts up to 63361\n"
          "tokens in segments of 990; decode attends the last\n"
          "segment's sequence"),
    CLI_F("sensitivity", 0, 1, A(sensitivity),
          "also vary every assumed constant over its range and\n"
          "print how far each moves the decode rate"),
    CLI_F("claims", 0, 1, A(claims),
          "every headline claim of the paper next to the model's\n"
          "figure under each baseline (U280 production and FSQ\n"
          "designs, V80 projection, HMT); --json/--svg then\n"
          "write the claims report"),
    {0}};
#undef A

static const cli_spec perf_spec = {
    .name = "perf",
    .usage = "[--config NAME|FILE.json] [--prefill P] [--decode D] [options]",
    .about = "Cycle-approximate model of the FlexLLM Llama-3.2-1B accelerator: per-stage\n"
             "breakdown, prefill latency, time to first token, decode tokens/s, end-to-end\n"
             "latency and energy, against A100 BF16 batch-1 baselines: HF transformers and\n"
             "vLLM (framework overhead from cited public measurements) and the plain\n"
             "roofline, all printed, labelled.",
    .examples = "flxemu perf                                  # production U280, 1024 + 1024 tokens\n"
                "flxemu perf --config u280_fsq --decode 256 --json perf.json --svg stages.svg\n"
                "flxemu perf --claims                         # the paper's headline claims",
    .notes = "A configuration that fails to load or validate is a failure (exit 1).\n",
};

/* Ratios the FlexLLM paper claims against the A100 (reference-design §5.3); with HMT the
 * paper gives no decode ratio (0 here). */
typedef struct claim { double e2e, decode, energy; } claim;

static claim paper_claim(const flx_perf_config *cfg, int hmt)
{
    int v80 = cfg->dev.kind == FLX_PERF_DEV_V80;
    if (hmt) return v80 ? (claim){4.86, 0, 6.27} : (claim){1.10, 0, 5.21};
    return v80 ? (claim){4.71, 6.55, 4.13} : (claim){1.29, 1.64, 3.14};
}

static void print_phase(const char *title, const flx_perf_phase *ph, double wall, double hz)
{
    printf("%s\n", title);
    printf("  %-20s %12s %7s %7s %9s %10s\n", "stage", "Mcycles", "share", "bound", "mem/comp",
           "HBM MB");
    for (int i = 0; i < ph->n_stages; i++) {
        const flx_perf_stage *s = &ph->stage[i];
        double ratio = s->compute_cycles > 0 ? s->memory_cycles / s->compute_cycles : 0;
        /* bound under the bandwidth model: a stage that moves no HBM bytes is
         * on-chip; otherwise memory when its busiest port needs more cycles
         * than its loops */
        const char *bound = s->hbm_bytes <= 0 ? "on-chip" : s->memory_bound ? "memory" : "compute";
        if (s->hbm_bytes > 0)
            printf("  %-20s %12.3f %6.1f%% %7s %9.2f %10.2f\n", s->name, s->cycles / 1e6,
                   100.0 * s->cycles / wall, bound, ratio, s->hbm_bytes / 1e6);
        else
            printf("  %-20s %12.3f %6.1f%% %7s %9s %10s\n", s->name, s->cycles / 1e6,
                   100.0 * s->cycles / wall, bound, "-", "-");
    }
    printf("  %-20s %12.3f  (%.4f s)\n", "wall", wall / 1e6, wall / hz);
}

static cJSON *phase_json(const flx_perf_phase *ph)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < ph->n_stages; i++) {
        const flx_perf_stage *s = &ph->stage[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name);
        cJSON_AddNumberToObject(o, "cycles", s->cycles);
        cJSON_AddNumberToObject(o, "busy_cycles", s->busy_cycles);
        cJSON_AddNumberToObject(o, "compute_cycles", s->compute_cycles);
        cJSON_AddNumberToObject(o, "memory_cycles", s->memory_cycles);
        cJSON_AddNumberToObject(o, "share", ph->cycles > 0 ? s->cycles / ph->cycles : 0);
        cJSON_AddStringToObject(o, "bound", s->hbm_bytes <= 0 ? "on-chip"
                                            : s->memory_bound ? "memory" : "compute");
        cJSON_AddNumberToObject(o, "hbm_bytes", s->hbm_bytes);
        cJSON_AddNumberToObject(o, "hbm_ports", s->hbm_ports);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* root as pretty JSON into path (root freed); an exit status */
static int write_json_root(const char *path, cJSON *root)
{
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = cli_write_text(CMD, path, text, "");
    free(text);
    return rc;
}

/* "gpu_baselines": one object per baseline with its name and source; the
 * caller adds the run's figures to the objects it gets back */
static cJSON *gpu_baselines_json(cJSON *root, const flx_gpu_model *gpus, int n_gpu, cJSON **objs)
{
    cJSON *gb = cJSON_AddArrayToObject(root, "gpu_baselines");
    for (int b = 0; b < n_gpu; b++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", gpus[b].name);
        cJSON_AddStringToObject(o, "source", gpus[b].source);
        cJSON_AddItemToArray(gb, o);
        if (objs) objs[b] = o;
    }
    return gb;
}

typedef struct claims_svg { const flx_perf_claim *c; int n; } claims_svg;
static int draw_claims(FILE *fp, const void *ctx)
{
    const claims_svg *x = ctx;
    return flx_perf_svg_claims(fp, x->c, x->n);
}

static cJSON *claims_json(const flx_gpu_model *gpus, int n_gpu, const flx_perf_claim *c, int n)
{
    cJSON *root = cJSON_CreateObject();
    gpu_baselines_json(root, gpus, n_gpu, NULL);
    cJSON *arr = cJSON_AddArrayToObject(root, "claims");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", c[i].id);
        cJSON_AddStringToObject(o, "claim", c[i].claim);
        cJSON_AddStringToObject(o, "design", c[i].design);
        cJSON_AddBoolToObject(o, "projection", c[i].projection);
        cJSON_AddBoolToObject(o, "alternative", c[i].alternative);
        cJSON_AddNumberToObject(o, "paper", c[i].paper);
        cJSON_AddStringToObject(o, "interpretation", c[i].interpretation);
        cJSON_AddStringToObject(o, "unit", c[i].unit);
        cJSON_AddNumberToObject(o, "fpga_value", c[i].fpga_value);
        cJSON *m = cJSON_AddArrayToObject(o, "model");
        for (int b = 0; b < c[i].n_base; b++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "baseline", c[i].base[b]);
            cJSON_AddNumberToObject(x, "gpu_value", c[i].gpu_value[b]);
            cJSON_AddNumberToObject(x, "ratio", c[i].model[b]);
            cJSON_AddItemToArray(m, x);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return root;
}

static int claims_report(const flx_gpu_model *gpus, int n_gpu, const char *json_path,
                         const char *svg_path)
{
    flx_error err = {0};
    enum { MAX_CLAIMS = 32 };
    flx_perf_claim *c = calloc(MAX_CLAIMS, sizeof *c);
    if (!c) return cli_fail(CMD, &(flx_error){FLX_ENOMEM, "out of memory"});
    int n = flx_perf_claims(gpus, n_gpu, c, MAX_CLAIMS, &err);
    if (n < 0) {
        free(c);
        return cli_fail(CMD, &err);
    }
    printf("FlexLLM headline claims vs this cycle model (ratio > 1 favours the FPGA)\n");
    printf("A100 baselines:\n");
    for (int b = 0; b < n_gpu; b++) printf("  [%d] %s: %s\n", b + 1, gpus[b].name, gpus[b].source);
    printf("\n  %-46s %-14s %7s", "claim", "design", "paper");
    for (int b = 0; b < n_gpu; b++) printf("  %7s[%d]", "model", b + 1);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("  %-46s %-14s %6.2fx", c[i].claim, c[i].design, c[i].paper);
        for (int b = 0; b < c[i].n_base; b++) printf("  %9.2fx", c[i].model[b]);
        printf("%s%s\n", c[i].projection ? "  PROJECTION" : "", c[i].alternative ? "  (alt)" : "");
        printf("      %s: %s\n", c[i].id, c[i].interpretation);
    }
    int rc = FLX_EXIT_OK;
    if (json_path) rc = write_json_root(json_path, claims_json(gpus, n_gpu, c, n));
    claims_svg cs = {c, n};
    if (rc == FLX_EXIT_OK && svg_path) rc = cli_write_drawing(CMD, svg_path, draw_claims, &cs);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- load / run / report */

/* What the phases of one perf run share. */
typedef struct perf_run {
    flx_gpu_model gpus[FLX_GPU_MAX_BASELINES];
    flx_gpu_report gr[FLX_GPU_MAX_BASELINES];
    int n_gpu;
    int roof;                     /* the roofline (or last) baseline: the legacy "gpu" object */
    flx_perf_config cfg;
    flx_perf_report *rep;
    flx_perf_hmt_report hmt;
    claim cl;
} perf_run;

/* The GPU baselines, with the --gpu-* overrides applied. */
static int perf_load_gpus(const perf_args *a, perf_run *r, flx_error *err)
{
    r->n_gpu = flx_gpu_load(a->gpu, r->gpus, FLX_GPU_MAX_BASELINES, err);
    if (r->n_gpu < 0) return FLX_EINVAL;
    double extra_s = a->gpu_overhead_ms / 1e3;
    for (int b = 0; b < r->n_gpu; b++) {
        if (a->gpu_mem_eff > 0) r->gpus[b].mem_efficiency = a->gpu_mem_eff;
        if (a->gpu_flop_eff > 0) r->gpus[b].flop_efficiency = a->gpu_flop_eff;
        r->gpus[b].step_overhead_s += extra_s;
    }
    return FLX_OK;
}

/* The configuration, the FPGA's cycle model and every GPU baseline. */
static int perf_eval(const perf_args *a, perf_run *r, flx_error *err)
{
    if (flx_perf_config_find(a->config, NULL, &r->cfg, err)) return FLX_EINVAL;
    r->rep = calloc(1, sizeof *r->rep);
    if (!r->rep) return flx_fail(err, FLX_ENOMEM, "out of memory");
    if (a->hmt ? flx_perf_run_hmt(&r->cfg, a->prompt, a->decode, r->rep, &r->hmt, err)
               : flx_perf_run(&r->cfg, a->prompt, a->decode, r->rep, err))
        return FLX_EINVAL;
    for (int b = 0; b < r->n_gpu; b++) flx_gpu_run(&r->gpus[b], &r->cfg.model, a->prompt, a->decode, &r->gr[b]);
    r->roof = r->n_gpu - 1;
    for (int b = 0; b < r->n_gpu; b++)
        if (strstr(r->gpus[b].name, "roofline")) r->roof = b;
    r->cl = paper_claim(&r->cfg, a->hmt);
    return FLX_OK;
}

/* The FPGA: configuration, stage tables, latency, throughput, energy. */
static void print_fpga(const perf_args *a, const perf_run *r)
{
    const flx_perf_config *cfg = &r->cfg;
    const flx_perf_report *rep = r->rep;
    double hz = rep->clock_hz;
    printf("configuration %s (%s, %.2f MHz, lambda %.2f cycles)  %s\n", cfg->name, cfg->dev.name,
           cfg->tim.clock_mhz, cfg->tim.lambda_cycles, cfg->path);
    if (a->hmt)
        printf("prompt %lld tokens: HMT prefill of %lld tokens, then %lld decode steps\n\n", a->prompt,
               (long long)rep->prefill_tokens, a->decode);
    else
        printf("prompt %lld tokens: prefill kernel on %lld (padded to %lld), then %lld decode "
               "steps\n\n", a->prompt, (long long)rep->prefill_tokens, (long long)rep->prefill_padded,
               a->decode);
    if (a->hmt)
        printf("HMT: %lld segments: summary prefills %.1f M, retrieval %.2f M, 1024-token "
               "prefills %.1f M cycles; decode attends %lld positions\n\n",
               (long long)r->hmt.n_segments, r->hmt.stage0_cycles / 1e6, r->hmt.retrieval_cycles / 1e6,
               r->hmt.stage1_cycles / 1e6, (long long)rep->prefill_padded);
    if (rep->prefill_tokens > 0) {
        print_phase("prefill, busy cycles per stage over all layers (dataflow: stages overlap,\n"
                    "share = busy / prefill wall time):", &rep->prefill, rep->prefill.cycles, hz);
        printf("  critical path: K/V pass %.1f M + pipeline fill %.1f M + steady state %.1f M "
               "cycles (bottleneck %s)\n\n",
               rep->prefill_kv_pass_cycles / 1e6, rep->prefill_fill_cycles / 1e6,
               rep->prefill_steady_cycles / 1e6, rep->prefill_bottleneck);
    }
    print_phase("decode, cycles per stage summed over all steps (sequential):", &rep->decode,
                rep->decode.cycles, hz);
    printf("  bound: 'memory' when a stage's HBM bytes on its busiest port need more cycles at "
           "%.1f B/cycle\n  (sustained port rate) than its loops; 'on-chip' when it moves no HBM "
           "bytes.\n", flx_perf_port_bytes_per_cycle(cfg));
    printf("\n");
    printf("  prefill latency     %10.4f s\n", rep->prefill_s);
    printf("  KV hand-over        %10.4f s   (host, PCIe %.0f GB/s)\n", rep->handover_s,
           cfg->dev.pcie_gbps);
    printf("  time to first token %10.4f s\n", rep->ttft_s);
    printf("  decode              %10.4f s   %.2f tokens/s\n", rep->decode_s,
           rep->decode_tokens_per_s);
    printf("  end-to-end          %10.4f s\n", rep->e2e_s);
    printf("  board power         %10.1f W   energy %.1f J (%.3f J/token)\n\n", rep->power_w,
           rep->energy_j, rep->energy_j / (double)a->decode);
}

/* Every GPU baseline against the FPGA, and the paper's claimed ratios. */
static void print_baselines(const perf_run *r)
{
    const flx_perf_report *rep = r->rep;
    const claim *cl = &r->cl;
    printf("A100 baselines (BF16, batch 1; %s; FPGA gain = how many times better the FPGA is)\n",
           r->gpus[0].source[0] ? "sources in the baselines file" : "");
    printf("  %-30s %10s %10s %10s %10s %10s %10s\n", "baseline", "e2e (s)", "gain",
           "decode t/s", "gain", "energy (J)", "gain");
    printf("  %-30s %10.3f %10s %10.2f %10s %10.1f %10s\n", "FPGA (this model)", rep->e2e_s, "",
           rep->decode_tokens_per_s, "", rep->energy_j, "");
    for (int b = 0; b < r->n_gpu; b++) {
        /* with one generated token the GPU makes no decode step (prefill yields it) */
        double d = r->gr[b].decode_tokens_per_s;
        printf("  %-30s %10.3f %9.2fx %10.2f %9.2fx %10.1f %9.2fx\n", r->gpus[b].name, r->gr[b].e2e_s,
               r->gr[b].e2e_s / rep->e2e_s, d, d > 0 ? rep->decode_tokens_per_s / d : 0,
               r->gr[b].energy_j, r->gr[b].energy_j / rep->energy_j);
    }
    printf("  %-30s %10s %9.2fx %10s %9.2fx %10s %9.2fx\n", "paper's claim", "", cl->e2e, "",
           cl->decode, "", cl->energy);
    if (r->cfg.dev.kind == FLX_PERF_DEV_V80)
        printf("  (V80: a PROJECTION of an unbuilt design, as in the paper)\n");
    if (cl->decode > 0)
        printf("  the paper's decode ratio implies an A100 at %.1f tokens/s against this FPGA "
               "figure.\n", rep->decode_tokens_per_s / cl->decode);
    printf("  (all headline claims side by side: flxemu perf --claims)\n");
}

/* --sensitivity: each assumed constant over its range, one at a time */
static int print_sensitivity(const perf_args *a, const perf_run *r, flx_error *err)
{
    flx_perf_sensitivity_row rows[16];
    double base = 0;
    int nr = flx_perf_sensitivity(&r->cfg, a->prompt, a->decode, rows, 16, &base, err);
    if (nr < 0) return FLX_EINVAL;
    printf("\nsensitivity of the decode rate (%.2f tokens/s) to each assumed constant,\n"
           "one at a time (clock and lambda are calibrated, not varied):\n", base);
    printf("  %-28s %8s %14s %9s %9s  %s\n", "constant", "value", "range", "at low", "at high",
           "> 2 %?");
    for (int i = 0; i < nr; i++)
        printf("  %-28s %8g %6g .. %-6g %+8.2f%% %+8.2f%%  %s   (%s)\n", rows[i].name,
               rows[i].value, rows[i].lo, rows[i].hi, rows[i].rate_lo_pct, rows[i].rate_hi_pct,
               rows[i].over_2pct ? "yes" : "no", rows[i].range);
    return FLX_OK;
}

/* The full report as one JSON object. */
static cJSON *perf_json(const perf_args *a, const perf_run *r)
{
    const flx_perf_report *rep = r->rep;
    const flx_gpu_model *gpu = &r->gpus[r->roof];
    const flx_gpu_report *g = &r->gr[r->roof];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "config", r->cfg.name);
    cJSON_AddStringToObject(root, "device", r->cfg.dev.name);
    cJSON_AddNumberToObject(root, "clock_mhz", r->cfg.tim.clock_mhz);
    cJSON_AddNumberToObject(root, "prompt_tokens", (double)a->prompt);
    cJSON_AddNumberToObject(root, "prefill_tokens", (double)rep->prefill_tokens);
    cJSON_AddNumberToObject(root, "prefill_padded", (double)rep->prefill_padded);
    cJSON_AddNumberToObject(root, "decode_tokens", (double)a->decode);
    cJSON_AddBoolToObject(root, "hmt", a->hmt);
    if (a->hmt) {
        cJSON *h = cJSON_AddObjectToObject(root, "hmt_prefill");
        cJSON_AddNumberToObject(h, "segments", (double)r->hmt.n_segments);
        cJSON_AddNumberToObject(h, "stage0_cycles", r->hmt.stage0_cycles);
        cJSON_AddNumberToObject(h, "retrieval_cycles", r->hmt.retrieval_cycles);
        cJSON_AddNumberToObject(h, "stage1_cycles", r->hmt.stage1_cycles);
    }
    cJSON *f = cJSON_AddObjectToObject(root, "fpga");
    cJSON_AddNumberToObject(f, "prefill_s", rep->prefill_s);
    cJSON_AddNumberToObject(f, "prefill_cycles", rep->prefill.cycles);
    cJSON_AddNumberToObject(f, "prefill_kv_pass_cycles", rep->prefill_kv_pass_cycles);
    cJSON_AddNumberToObject(f, "prefill_fill_cycles", rep->prefill_fill_cycles);
    cJSON_AddNumberToObject(f, "prefill_steady_cycles", rep->prefill_steady_cycles);
    cJSON_AddStringToObject(f, "prefill_bottleneck", rep->prefill_bottleneck);
    cJSON_AddNumberToObject(f, "handover_s", rep->handover_s);
    cJSON_AddNumberToObject(f, "ttft_s", rep->ttft_s);
    cJSON_AddNumberToObject(f, "decode_s", rep->decode_s);
    cJSON_AddNumberToObject(f, "decode_cycles", rep->decode.cycles);
    cJSON_AddNumberToObject(f, "decode_tokens_per_s", rep->decode_tokens_per_s);
    cJSON_AddNumberToObject(f, "e2e_s", rep->e2e_s);
    cJSON_AddNumberToObject(f, "power_w", rep->power_w);
    cJSON_AddNumberToObject(f, "energy_j", rep->energy_j);
    cJSON_AddItemToObject(f, "prefill_stages", phase_json(&rep->prefill));
    cJSON_AddItemToObject(f, "decode_stages", phase_json(&rep->decode));
    cJSON *objs[FLX_GPU_MAX_BASELINES];
    gpu_baselines_json(root, r->gpus, r->n_gpu, objs);
    for (int b = 0; b < r->n_gpu; b++) {
        cJSON *o = objs[b];
        cJSON_AddNumberToObject(o, "layer_overhead_s", r->gpus[b].layer_overhead_s);
        cJSON_AddNumberToObject(o, "step_overhead_s", r->gpus[b].step_overhead_s);
        cJSON_AddNumberToObject(o, "prefill_s", r->gr[b].prefill_s);
        cJSON_AddNumberToObject(o, "decode_tokens_per_s", r->gr[b].decode_tokens_per_s);
        cJSON_AddNumberToObject(o, "e2e_s", r->gr[b].e2e_s);
        cJSON_AddNumberToObject(o, "energy_j", r->gr[b].energy_j);
    }
    cJSON *gj = cJSON_AddObjectToObject(root, "gpu");
    cJSON_AddStringToObject(gj, "model", gpu->name);
    cJSON_AddNumberToObject(gj, "mem_efficiency", gpu->mem_efficiency);
    cJSON_AddNumberToObject(gj, "flop_efficiency", gpu->flop_efficiency);
    cJSON_AddNumberToObject(gj, "step_overhead_s", gpu->step_overhead_s);
    cJSON_AddNumberToObject(gj, "prefill_s", g->prefill_s);
    cJSON_AddNumberToObject(gj, "decode_s", g->decode_s);
    cJSON_AddNumberToObject(gj, "decode_tokens_per_s", g->decode_tokens_per_s);
    cJSON_AddNumberToObject(gj, "e2e_s", g->e2e_s);
    cJSON_AddNumberToObject(gj, "energy_j", g->energy_j);
    cJSON *ra = cJSON_AddObjectToObject(root, "ratios");
    cJSON_AddNumberToObject(ra, "e2e_speedup", g->e2e_s / rep->e2e_s);
    cJSON_AddNumberToObject(ra, "decode_throughput",
                            g->decode_tokens_per_s > 0 ? rep->decode_tokens_per_s / g->decode_tokens_per_s : 0);
    cJSON_AddNumberToObject(ra, "energy_efficiency", g->energy_j / rep->energy_j);
    cJSON *p = cJSON_AddObjectToObject(root, "paper_claims");
    cJSON_AddNumberToObject(p, "e2e_speedup", r->cl.e2e);
    cJSON_AddNumberToObject(p, "decode_throughput", r->cl.decode);
    cJSON_AddNumberToObject(p, "energy_efficiency", r->cl.energy);
    return root;
}

static int draw_breakdown(FILE *fp, const void *ctx)
{
    const perf_run *r = ctx;
    return flx_perf_svg_breakdown(fp, &r->cfg, r->rep);
}

int flx_cmd_perf(int argc, char **argv)
{
    perf_args a = {.config = "u280_mem_opt", .gpu = "gpu_a100", .prompt = 1024, .decode = 1024};
    const cli_group g[] = {{perf_opts, &a, NULL}};
    int n_pos, rc = cli_parse(&perf_spec, g, 1, argc, argv, NULL, &n_pos);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    if ((rc = cli_check_output(CMD, "--json", a.json)) || (rc = cli_check_output(CMD, "--svg", a.svg)))
        return rc;
    flx_error err = {0};
    perf_run r;
    memset(&r, 0, sizeof r);
    if (perf_load_gpus(&a, &r, &err)) return cli_fail(CMD, &err);
    if (a.claims) return claims_report(r.gpus, r.n_gpu, a.json, a.svg);
    if (perf_eval(&a, &r, &err)) {
        free(r.rep);
        return cli_fail(CMD, &err);
    }
    print_fpga(&a, &r);
    print_baselines(&r);
    if (a.sensitivity && !a.hmt && print_sensitivity(&a, &r, &err)) rc = cli_fail(CMD, &err);
    if (rc == FLX_EXIT_OK && a.json) rc = write_json_root(a.json, perf_json(&a, &r));
    if (rc == FLX_EXIT_OK && a.svg) rc = cli_write_drawing(CMD, a.svg, draw_breakdown, &r);
    free(r.rep);
    return rc;
}
