/* flxemu dse -- design-space exploration of FlexLLM prefill and decode
 * parallelism on a device: Pareto front of (end-to-end latency, energy) and,
 * on the same footing, the best unified temporal, unified spatial and hybrid
 * designs. */
#include "cli.h"
#include "cli_mpi.h"
#include "flx_perf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#define CMD "dse"

typedef struct dse_args {
    const char *json, *svg;
    int device;                   /* index in "u280|v80", -1: not given */
    int objective;                /* flx_dse_objective: e2e|energy */
    long long prompt, decode, top;
} dse_args;

#define A(f) offsetof(dse_args, f)
static const cli_opt dse_opts[] = {
    CLI_C("device", "u280|v80", "u280|v80", A(device),
          "device, also positional (its limits come from\nu280_mem_opt.json / v80.json; required)"),
    CLI_I("prefill", 0, "P", A(prompt), 2, 1 << 20, "prompt tokens (default 1024)"),
    CLI_I("decode", 0, "D", A(decode), 1, 1 << 20, "generated tokens (default 1024)"),
    CLI_C("objective", "e2e|energy", "e2e|energy", A(objective), "ranking of the best designs (default e2e)"),
    CLI_S("json", 0, "FILE", A(json), "Pareto front and best designs as JSON"),
    CLI_S("svg", 0, "FILE", A(svg), "scatter of all designs with the Pareto front"),
    CLI_I("top", 0, "N", A(top), 1, 100000, "Pareto points to print (default 15)"),
    {0}};
#undef A

static const cli_spec dse_spec = {
    .name = "dse",
    .usage = "u280|v80 [--prefill P] [--decode D] [--objective e2e|energy] [options]",
    .about = "Sweeps prefill parallelism (TP, QKVO WP, FFN WP and blocks, K/V parallelism) and\n"
             "decode parallelism (B, W, HP, K/V parallelism) under the device's DSP, LUT, BRAM,\n"
             "URAM and HBM-port limits, for three families: hybrid (spatial prefill + temporal\n"
             "decode, FlexLLM), unified temporal and unified spatial.",
    .positional = "  DEVICE                  u280 or v80, as --device",
    .max_positional = 1,
    .examples = "flxemu dse u280\n"
                "flxemu dse --device v80 --objective energy --top 5\n"
                "flxemu dse u280 --prefill 512 --decode 256 --json dse.json --svg pareto.svg",
};

static void describe(const flx_dse_point *p, char *buf, size_t n)
{
    if (p->family == FLX_DSE_TEMPORAL)
        snprintf(buf, n, "array TP=%d x WP=%d, Kp=Vp=%d (decode B=%d W=%d pack %d)", p->pre.tp,
                 p->pre.qkvo_wp, p->pre.k_par, p->dec.block, p->dec.w_par, p->dec.block_pack);
    else if (p->family == FLX_DSE_SPATIAL)
        snprintf(buf, n, "TP=%d WP=%d FFN=%d/%d Kp=Vp=%d", p->pre.tp, p->pre.qkvo_wp,
                 p->pre.ffn_wp, p->pre.ffn_blocks, p->pre.k_par);
    else
        snprintf(buf, n, "TP=%d WP=%d FFN=%d/%d Kp=%d | B=%d W=%d HP=%d Kd=%d", p->pre.tp,
                 p->pre.qkvo_wp, p->pre.ffn_wp, p->pre.ffn_blocks, p->pre.k_par, p->dec.block,
                 p->dec.w_par, p->dec.head_par, p->dec.k_par);
}

static void print_point(const flx_dse_point *p)
{
    char d[128];
    describe(p, d, sizeof d);
    printf("  %-16s %8.3f %8.3f %8.3f %7.1f %6.1f %5.1f%%  %s\n", flx_dse_family_name(p->family),
           p->prefill_s, p->decode_s, p->e2e_s, p->energy_j, p->power_w, 100 * p->utilization, d);
}

static cJSON *point_json(const flx_dse_point *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "family", flx_dse_family_name(p->family));
    cJSON *pre = cJSON_AddObjectToObject(o, "prefill");
    cJSON_AddNumberToObject(pre, "tp", p->pre.tp);
    cJSON_AddNumberToObject(pre, "qkvo_wp", p->pre.qkvo_wp);
    cJSON_AddNumberToObject(pre, "ffn_wp", p->pre.ffn_wp);
    cJSON_AddNumberToObject(pre, "ffn_blocks", p->pre.ffn_blocks);
    cJSON_AddNumberToObject(pre, "k_par", p->pre.k_par);
    cJSON_AddNumberToObject(pre, "v_par", p->pre.v_par);
    if (p->family != FLX_DSE_SPATIAL) {
        cJSON *dec = cJSON_AddObjectToObject(o, "decode");
        cJSON_AddNumberToObject(dec, "block", p->dec.block);
        cJSON_AddNumberToObject(dec, "w_par", p->dec.w_par);
        cJSON_AddNumberToObject(dec, "head_par", p->dec.head_par);
        cJSON_AddNumberToObject(dec, "k_par", p->dec.k_par);
        cJSON_AddNumberToObject(dec, "v_par", p->dec.v_par);
    }
    cJSON_AddNumberToObject(o, "prefill_s", p->prefill_s);
    cJSON_AddNumberToObject(o, "decode_s", p->decode_s);
    cJSON_AddNumberToObject(o, "e2e_s", p->e2e_s);
    cJSON_AddNumberToObject(o, "energy_j", p->energy_j);
    cJSON_AddNumberToObject(o, "power_w", p->power_w);
    cJSON_AddNumberToObject(o, "utilization", p->utilization);
    cJSON *r = cJSON_AddObjectToObject(o, "resources");
    cJSON_AddNumberToObject(r, "luts", p->res.luts);
    cJSON_AddNumberToObject(r, "dsps", p->res.dsps);
    cJSON_AddNumberToObject(r, "bram36", p->res.bram36);
    cJSON_AddNumberToObject(r, "urams", p->res.urams);
    cJSON_AddNumberToObject(r, "hbm_ports_prefill", p->res.hbm_ports_prefill);
    cJSON_AddNumberToObject(r, "hbm_ports_decode", p->res.hbm_ports_decode);
    return o;
}

static int parse_args(int argc, char **argv, dse_args *a)
{
    *a = (dse_args){.device = -1, .objective = FLX_DSE_E2E, .prompt = 1024, .decode = 1024, .top = 15};
    const cli_group g[] = {{dse_opts, a, NULL}};
    const char *pos[1];
    int n_pos, rc = cli_parse(&dse_spec, g, 1, argc, argv, pos, &n_pos);
    if (rc) return rc;
    if (n_pos) {
        if (a->device >= 0) return cli_usage_error(CMD, "give the device once: --device or '%s'", pos[0]);
        if (strcmp(pos[0], "u280") && strcmp(pos[0], "v80"))
            return cli_usage_error(CMD, "the device is u280 or v80, got '%s'", pos[0]);
        a->device = !strcmp(pos[0], "v80");
    }
    if (a->device < 0) return cli_usage_error(CMD, "--device u280|v80 is required");
    return 0;
}

static const char DSE_HDR[] = "  family            prefill   decode      e2e  energy  power  util   design\n"
                               "                        (s)      (s)      (s)     (J)    (W)\n";

/* The sweep's result: the Pareto front (--top rows), the best design of each
 * family and the hybrid's gain over the unified ones. */
static void print_front(const flx_perf_config *base, const flx_dse_result *res, long long prompt, long long decode,
                        flx_dse_objective obj, long long top)
{
    printf("device %s (limits from %s): %lld feasible designs, %lld over the limits\n",
           base->dev.name, base->path, (long long)res->n_points, (long long)res->n_rejected);
    printf("prompt %lld, decode %lld, objective %s; prefill includes the KV hand-over\n\n", prompt,
           decode, obj == FLX_DSE_E2E ? "end-to-end latency" : "energy");
    const char *hdr = DSE_HDR;
    printf("Pareto front (e2e latency vs energy), %lld points%s:\n%s", (long long)res->n_pareto,
           res->n_pareto > top ? ", --top rows evenly spread" : "", hdr);
    /* exactly min(N, front size) rows, spread evenly from the fastest to the
     * most frugal end of the front */
    int64_t rows = res->n_pareto < top ? res->n_pareto : top;
    for (int64_t r = 0; r < rows; r++) {
        int64_t k = rows > 1 ? (r * (res->n_pareto - 1) + (rows - 1) / 2) / (rows - 1) : 0;
        print_point(&res->points[res->pareto[k]]);
    }
    printf("\nBest design of each family by %s:\n%s", obj == FLX_DSE_E2E ? "e2e" : "energy", hdr);
    for (int f = 0; f < 3; f++) {
        if (res->best[f] >= 0) print_point(&res->points[res->best[f]]);
        else printf("  %-16s none fits the device\n", flx_dse_family_name(f));
    }
    if (res->best[FLX_DSE_HYBRID] >= 0) {
        const flx_dse_point *h = &res->points[res->best[FLX_DSE_HYBRID]];
        for (int f = 1; f < 3; f++) {
            if (res->best[f] < 0) continue;
            const flx_dse_point *u = &res->points[res->best[f]];
            printf("  hybrid vs %s: %.2fx end-to-end, %.2fx energy\n", flx_dse_family_name(f),
                   u->e2e_s / h->e2e_s, u->energy_j / h->energy_j);
        }
    }
}

/* The shipped designs on the same footing: production (and the measured
 * FSQ design) on the U280, the V80 projection. */
static int shipped_marks(const char *device, const flx_perf_config *base, long long prompt, long long decode,
                         flx_dse_mark marks[2], int *n_out, flx_error *err)
{
    int n_marks = 0;
    const char *mark_cfg[2] = {base->name, !strcmp(device, "u280") ? "u280_fsq" : NULL};
    const char *mark_label[2] = {!strcmp(device, "u280") ? "production (u280_mem_opt)"
                                                         : "v80 projection (FSQ V80 block)",
                                 "FSQ, the measured design (u280_fsq)"};
    for (int i = 0; i < 2; i++) {
        if (!mark_cfg[i]) continue;
        flx_perf_config mc;
        if (flx_perf_config_find(mark_cfg[i], NULL, &mc, err) ||
            flx_dse_eval(&mc, FLX_DSE_HYBRID, &mc.pre, &mc.dec, prompt, decode, &marks[n_marks].pt, err))
            return FLX_EINVAL;
        snprintf(marks[n_marks].label, sizeof marks[n_marks].label, "%s", mark_label[i]);
        n_marks++;
    }
    *n_out = n_marks;
    return FLX_OK;
}

static cJSON *dse_json(const flx_perf_config *base, const flx_dse_result *res, long long prompt, long long decode,
                       flx_dse_objective obj, const flx_dse_mark *marks, int n_marks)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", base->dev.name);
    cJSON_AddNumberToObject(root, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(root, "decode_tokens", (double)decode);
    cJSON_AddStringToObject(root, "objective", obj == FLX_DSE_E2E ? "e2e" : "energy");
    cJSON_AddNumberToObject(root, "feasible", (double)res->n_points);
    cJSON_AddNumberToObject(root, "rejected", (double)res->n_rejected);
    cJSON *best = cJSON_AddObjectToObject(root, "best");
    for (int f = 0; f < 3; f++)
        if (res->best[f] >= 0)
            cJSON_AddItemToObject(best, flx_dse_family_name(f),
                                  point_json(&res->points[res->best[f]]));
    cJSON *mk = cJSON_AddArrayToObject(root, "shipped");
    for (int i = 0; i < n_marks; i++) {
        cJSON *o = point_json(&marks[i].pt);
        cJSON_AddStringToObject(o, "label", marks[i].label);
        cJSON_AddItemToArray(mk, o);
    }
    cJSON *pf = cJSON_AddArrayToObject(root, "pareto");
    for (int64_t k = 0; k < res->n_pareto; k++)
        cJSON_AddItemToArray(pf, point_json(&res->points[res->pareto[k]]));
    return root;
}

typedef struct pareto_svg {
    const flx_perf_config *base;
    const flx_dse_result *res;
    flx_dse_objective obj;
    const flx_dse_mark *marks;
    int n_marks;
} pareto_svg;

static int draw_pareto(FILE *fp, const void *ctx)
{
    const pareto_svg *p = ctx;
    return flx_perf_svg_pareto(fp, p->base, p->res, p->obj, p->marks, p->n_marks);
}

/* The sweep's tasks i with cli_mpi_mine(i) on this rank, gathered in task
 * order on rank 0, which combines them (flx_dse_finish): the same result as
 * flx_dse_run in one process, bit for bit.  Every rank returns the same
 * status; res is filled on rank 0 only. */
static int sweep(cli_mpi *mp, const flx_perf_config *base, long long prompt, long long decode,
                 flx_dse_objective obj, flx_dse_result *res, flx_error *err)
{
    memset(res, 0, sizeof *res);
    const int64_t n_tasks = flx_dse_n_tasks();
    flx_dse_task *mine = calloc((size_t)n_tasks, sizeof *mine), *all = calloc((size_t)n_tasks, sizeof *all);
    int rc = mine && all ? FLX_OK : flx_fail(err, FLX_ENOMEM, "design-space sweep: out of memory");
    flx_progress prog;
    flx_progress_begin(&prog, "dse", 1, mp->rank == 0 && isatty(STDERR_FILENO));   /* a bar only for a person */
    prog.total = (n_tasks - mp->rank + mp->size - 1) / mp->size;
    int64_t n_mine = 0;
    for (int64_t i = 0; !rc && i < n_tasks; i++) {
        if (!cli_mpi_mine(mp, i)) continue;
        rc = flx_dse_task_run(base, prompt, decode, i, &mine[n_mine++], err);
        flx_progress_update(&prog, n_mine);
    }
    if (cli_mpi_worst(mp, rc != FLX_OK) && !rc)
        rc = flx_fail(err, FLX_EIO, "design-space sweep: another MPI rank failed (see its message)");
    if (!rc && cli_mpi_gather(mp, mine, sizeof *mine, n_tasks, all))
        rc = flx_fail(err, FLX_ENOMEM, "design-space sweep: gathering the ranks' designs failed");
    if (!rc && mp->rank == 0) rc = flx_dse_finish(base, prompt, decode, obj, all, res, err);
    if (!rc) flx_progress_end(&prog);
    free(mine);
    free(all);
    rc = cli_mpi_worst(mp, rc) ? (rc ? rc : FLX_EIO) : FLX_OK;
    mp->agreed = 1;   /* every rank knows the status: no abort needed */
    if (rc && mp->rank == 0 && res->points) flx_dse_free(res);
    return rc;
}

static int report(const dse_args *a, const char *device, flx_dse_objective obj, const flx_perf_config *base,
                  const flx_dse_result *res);

int flx_cmd_dse(int argc, char **argv)
{
    dse_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    const char *device = a.device ? "v80" : "u280";
    flx_dse_objective obj = (flx_dse_objective)a.objective;
    if ((rc = cli_check_output(CMD, "--json", a.json)) || (rc = cli_check_output(CMD, "--svg", a.svg)))
        return rc;
    flx_error err = {0};
    flx_perf_config base;
    if (flx_perf_config_find(!strcmp(device, "u280") ? "u280_mem_opt" : "v80", NULL, &base, &err))
        return cli_fail(CMD, &err);
    if (flx_dse_check(&base, a.prompt, a.decode, &err)) return cli_fail(CMD, &err);
    /* mpirun/srun: the sweep's tasks shared among the ranks, rank 0 reports */
    cli_mpi mpi;
    if (cli_mpi_begin(&mpi, &err)) return cli_fail(CMD, &err);
    flx_dse_result res;
    rc = sweep(&mpi, &base, a.prompt, a.decode, obj, &res, &err);
    if (rc || mpi.rank != 0) {
        if (rc) cli_fail(CMD, &err);
        cli_mpi_end(&mpi, rc != FLX_OK);
        return rc ? FLX_EXIT_FAIL : FLX_EXIT_OK;
    }
    rc = report(&a, device, obj, &base, &res);
    flx_dse_free(&res);
    cli_mpi_end(&mpi, rc != FLX_EXIT_OK);
    return rc;
}

/* Rank 0 (or the one process): the tables, --json and --svg. */
static int report(const dse_args *a, const char *device, flx_dse_objective obj, const flx_perf_config *base,
                  const flx_dse_result *res)
{
    flx_error err = {0};
    int rc = FLX_EXIT_OK;
    print_front(base, res, a->prompt, a->decode, obj, a->top);
    flx_dse_mark marks[2];
    int n_marks = 0;
    if (shipped_marks(device, base, a->prompt, a->decode, marks, &n_marks, &err)) return cli_fail(CMD, &err);
    printf("\nShipped designs (marked on the SVG):\n%s", DSE_HDR);
    for (int i = 0; i < n_marks; i++) {
        print_point(&marks[i].pt);
        printf("    ^ %s\n", marks[i].label);
    }
    if (a->json) {
        cJSON *root = dse_json(base, res, a->prompt, a->decode, obj, marks, n_marks);
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        rc = cli_write_text(CMD, a->json, text, "");
        free(text);
    }
    pareto_svg ps = {base, res, obj, marks, n_marks};
    if (rc == FLX_EXIT_OK && a->svg) rc = cli_write_drawing(CMD, a->svg, draw_pareto, &ps);
    return rc;
}
