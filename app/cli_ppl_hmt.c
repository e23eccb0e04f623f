/* `flxemu ppl --hmt FILE` (cli_ppl_hmt.h, docs/hmt.md). */
#include "cli_ppl_hmt.h"
#include "cli.h"
#include "flx_emu_hmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int parse_quirks(const char *v, void *dst)
{
    int q = flx_emu_hmt_quirks_parse(v);
    if (q < 0) return -1;
    *(int *)dst = q;
    return 0;
}

#define H(f) offsetof(cli_ppl_hmt, f)
const cli_opt cli_ppl_hmt_opts[] = {
    CLI_SEC("HMT long context (docs/hmt.md):"),
    CLI_S("hmt", 0, "FILE", H(path),
          "HMT parameters (safetensors with HMT-pytorch's names; flxemu synth\n"
          "--hmt writes random ones): perplexity of HMT-pytorch's test protocol\n"
          "(a sample of up to --hmt-segments segments every segment, its last\n"
          "segment's tokens scored, the mean of the per-batch PPLs) and of a\n"
          "plain sliding window on the same tokens; with --engine emu,\n"
          "--reference-quirks also gives FlexLLM's HMT as written (Sn/Mn read from\n"
          "the input rows so P stays 0, empty slots unmasked, zero initial memory,\n"
          "zero sensory rows in segment 0)"),
    {.kind = CLI_INT, .name = "hmt-segments", .metavar = "N", .offset = H(segments), .ilo = 2, .ihi = 4096, .mark = 1,
     .help = "segments per context, 2..64 for the emu engine (default 16)"},
    {.kind = CLI_CHOICE, .name = "hmt-eval", .metavar = "pytorch|contexts", .choices = "pytorch|contexts",
     .offset = H(eval), .mark = 1,
     .help = "pytorch (default): HMT-pytorch's test samples, a new one every\n"
             "segment (--chunks N: the first N samples); contexts: disjoint\n"
             "contexts every (segments - 1) segments, exp(mean NLL)"},
    {.kind = CLI_INT, .name = "hmt-batch", .metavar = "N", .offset = H(batch), .ilo = 1, .ihi = 1 << 20, .mark = 1,
     .help = "pytorch: samples per PPL batch (HMT-pytorch's --batch_size;\n"
             "default 1: the mean of the per-sample PPLs)"},
    {.kind = CLI_I32, .name = "hmt-segment-length", .metavar = "N", .offset = H(over.segment_length), .ilo = 5,
     .ihi = 1 << 20, .mark = 1, .help = "stage-1 length incl. 2 memory and the sensory tokens (file, else 1024)"},
    {.kind = CLI_I32, .name = "hmt-sensory", .metavar = "N", .offset = H(over.n_sensory), .ilo = 0, .ihi = 1 << 20,
     .mark = 1, .help = "sensory tokens (file, else 32)"},
    {.kind = CLI_I32, .name = "hmt-cache", .metavar = "N", .offset = H(over.cache_size), .ilo = 1, .ihi = 65536,
     .mark = 1, .help = "memories kept (file, else 64 as FlexLLM); the emu ring has N slots,\n"
                        "N a multiple of 4"},
    {.kind = CLI_NUM, .name = "hmt-sum-fraction", .metavar = "F", .offset = H(over.sum_fraction), .dlo = 1e-9,
     .dhi = 1.0, .mark = 1, .help = "summary prefix fraction of a segment (file, else 0.5)"},
    {.kind = CLI_CHOICE, .name = "hmt-final-norm", .metavar = "on|off", .choices = "off|on", .offset = H(final_norm),
     .mark = 1, .help = "Sn/Mn after the final RMSNorm (float default on, as HMT-pytorch;\n"
                        "emu default off, as FlexLLM's drainer)"},
    {.kind = CLI_INT, .name = "hmt-baseline-ctx", .metavar = "N", .offset = H(baseline_ctx), .ilo = 0,
     .ihi = 1 << 20, .mark = 1, .help = "plain window of the baseline (default: the stage-1 length; 0: none)"},
    {.kind = CLI_CUSTOM, .name = "hmt-quirks", .metavar = "LIST", .offset = H(quirks), .parse = parse_quirks,
     .expect = "a comma list of region0, unmasked, zero-init, zero-sensory, all, none", .mark = 1,
     .help = "emu: only these HMT quirks (region0,unmasked,zero-init,zero-sensory,\n"
             "all, none), whatever --reference-quirks says"},
    {0}};
#undef H

void cli_ppl_hmt_init(cli_ppl_hmt *h)
{
    memset(h, 0, sizeof *h);
    flx_hmt_settings_unset(&h->over);
    h->segments = 16;
    h->baseline_ctx = -1;
    h->final_norm = -1;
    h->quirks = -1;
    h->eval = FLX_HMT_EVAL_PYTORCH;
    h->batch = 1;
}

typedef struct {
    flx_progress *bar;
} progress_ctx;

static void on_segment(void *ctx, const flx_hmt_ppl_info *info)
{
    progress_ctx *p = ctx;
    flx_progress_update(p->bar, info->segments_done);
    if (info->segment == info->n_segments - 1) {
        printf("[%lld]%.4lf,", (long long)info->window + 1, info->running_ppl);
        fflush(stdout);
    }
}

static void json_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.17g", v);
    else fputs("null", fp);
}

/* Simulated U280 seconds of one context through the cycle model's HMT path
 * (FlexLLM's 990-token segments); -1 with a note when it does not apply. */
static double device_seconds(const flx_hmt_params *p, int64_t window_tokens, char *note, size_t cap)
{
    flx_perf_config cfg;
    flx_error e = {0};
    if (p->seg_len != 990 || p->n_sensory != 32 || p->sum_len != 495) {
        snprintf(note, cap, "the cycle model's HMT path is FlexLLM's 990/495/32 segment layout, these "
                            "parameters use %d/%d/%d", p->seg_len, p->sum_len, p->n_sensory);
        return -1.0;
    }
    if (flx_perf_config_find(CLI_EMU_PERF_CONFIG, NULL, &cfg, &e)) {
        snprintf(note, cap, "%s", e.msg);
        return -1.0;
    }
    flx_perf_report *rep = calloc(1, sizeof *rep);
    flx_perf_hmt_report hr;
    double s = -1.0;
    if (!rep) snprintf(note, cap, "out of memory");
    else if (flx_perf_hmt_prefill(&cfg, window_tokens, rep, &hr, NULL, &e)) snprintf(note, cap, "%s", e.msg);
    else s = hr.total_cycles / (cfg.tim.clock_mhz * 1e6);
    free(rep);
    return s;
}

/* What the report of an HMT run needs besides the parameters and results. */
typedef struct hmt_report {
    int emu, quirks;
    char qnames[64];
    flx_hmt_flow flow;
    int64_t window, base;         /* context tokens; baseline window (0: none) */
    double dev_win;               /* simulated device seconds per context, < 0: unavailable */
    char note[FLX_ERROR_MSG_BYTES];
    double ctx_tps, row_tps;
} hmt_report;

/* The result on stdout, the device time and speed on stderr. */
static void hmt_print(const cli_ppl_hmt *h, const cli_ppl_hmt_run_in *in, const flx_hmt_params *p,
                      const flx_hmt_ppl_result *r, hmt_report *x)
{
    x->dev_win = device_seconds(p, x->window, x->note, sizeof x->note);
    if (h->eval == FLX_HMT_EVAL_CONTEXTS)
        printf("Final estimate: PPL = %.4lf  (HMT, %lld contexts of %lld segments, %lld tokens scored)\n", r->ppl,
               (long long)r->n_windows, h->segments, (long long)(r->n_windows * r->n_scored));
    else
        printf("Final estimate: PPL = %.4lf  (HMT-pytorch's protocol: mean over %lld batches of %lld samples of "
               "up to %lld segments, %lld tokens scored; exp(mean NLL) = %.4lf)\n", r->ppl,
               (long long)(r->n_windows / r->batch), (long long)r->batch, h->segments,
               (long long)(r->n_windows * r->n_scored), r->pooled_ppl);
    if (x->base)
        printf("Baseline:       PPL = %.4lf  (plain window of %lld tokens, the same tokens)\n", r->baseline_ppl,
               (long long)x->base);
    printf("per-segment mean NLL:");
    for (int64_t k = 0; k < h->segments; k++) printf(" %.4f", r->segment_mean_nll[k]);
    printf("\n");
    if (x->emu)
        printf("engine emu: %s, reference quirks %s, HMT quirks %s\n", flx_emu_fp_name(&in->eo->fp),
               in->eo->reference_quirks ? "on" : "off", x->quirks ? x->qnames : "none");
    fflush(stdout);
    if (x->dev_win >= 0)
        fprintf(stderr, "device: simulated U280 time (%s, HMT path) %.6f s = %lld contexts x %.6f s\n",
                CLI_EMU_PERF_CONFIG, x->dev_win * (double)r->n_windows, (long long)r->n_windows, x->dev_win);
    else
        fprintf(stderr, "device: simulated U280 time unavailable: %s\n", x->note);
    int64_t ctx_tokens = 0;
    for (int64_t w = 0; w < r->n_windows; w++) ctx_tokens += r->window_len[w];
    x->ctx_tps = r->seconds > 0 ? (double)ctx_tokens / r->seconds : 0.0;
    x->row_tps = r->seconds > 0 ? (double)r->rows_run / r->seconds : 0.0;
    fprintf(stderr, "perplexity (HMT): %.2f s, %.1f context tokens/s, %.1f rows/s through the backbone "
                    "(stage 0 + stage 1); baseline %.2f s\n", r->seconds, x->ctx_tps, x->row_tps, r->seconds_baseline);
}

/* --json */
static int hmt_json(const cli_ppl_hmt *h, const cli_ppl_hmt_run_in *in, const flx_hmt_params *p,
                    const flx_hmt_ppl_result *r, const hmt_report *x, flx_error *err)
{
    flx_outfile of;
    if (flx_outfile_open(&of, in->json, err)) return FLX_EIO;
    FILE *fp = of.fp;
    struct rusage ru;
    long long peak = getrusage(RUSAGE_SELF, &ru) == 0 ? (long long)ru.ru_maxrss * 1024 : -1;
    fprintf(fp, "{\n  \"mode\": \"hmt\",\n  \"protocol\": ");
    cli_json_str(fp, in->protocol);
    fprintf(fp, ",\n  \"model\": ");
    cli_json_str(fp, in->model_name);
    fprintf(fp, ",\n  \"hmt\": ");
    cli_json_str(fp, p->path);
    fprintf(fp, ",\n  \"text\": ");
    cli_json_str(fp, in->text_name);
    fprintf(fp, ",\n  \"text_sha256\": ");
    cli_json_str(fp, in->text_hex);
    fprintf(fp, ",\n  \"engine\": \"%s\",\n  \"reference_quirks\": %s,\n  \"hmt_quirks\": \"%s\",\n"
                "  \"final_norm\": %s,\n",
            x->emu ? "emu" : "float", x->emu && in->eo->reference_quirks ? "true" : "false", x->qnames,
            x->flow.final_norm ? "true" : "false");
    if (x->emu) fprintf(fp, "  \"fp\": \"%s\",\n", flx_emu_fp_name(&in->eo->fp));
    fprintf(fp, "  \"tokens\": %lld,\n  \"segment_tokens\": %d,\n  \"summary_tokens\": %d,\n"
                "  \"sensory_tokens\": %d,\n  \"cache_size\": %d,\n  \"h\": %d,\n  \"segments\": %lld,\n"
                "  \"eval\": \"%s\",\n  \"batch\": %lld,\n"
                "  \"context_tokens\": %lld,\n  \"stride\": %lld,\n  \"windows\": %lld,\n"
                "  \"windows_available\": %lld,\n  \"scored_tokens\": %lld,\n",
            (long long)in->n_tokens, p->seg_len, p->sum_len, p->n_sensory, p->cache_size, p->h, h->segments,
            h->eval == FLX_HMT_EVAL_CONTEXTS ? "contexts" : "pytorch", (long long)r->batch, (long long)x->window, (long long)r->stride, (long long)r->n_windows, (long long)r->n_available,
            (long long)(r->n_windows * r->n_scored));
    fprintf(fp, "  \"mean_nll\": ");
    json_num(fp, r->mean_nll);
    fprintf(fp, ",\n  \"ppl\": ");
    json_num(fp, r->ppl);
    fprintf(fp, ",\n  \"pooled_ppl\": ");
    json_num(fp, r->pooled_ppl);
    fprintf(fp, ",\n  \"baseline_ctx\": %lld,\n  \"baseline_mean_nll\": ", (long long)x->base);
    json_num(fp, r->baseline_mean_nll);
    fprintf(fp, ",\n  \"baseline_ppl\": ");
    json_num(fp, r->baseline_ppl);
    fprintf(fp, ",\n  \"segment_mean_nll\": [");
    for (int64_t k = 0; k < h->segments; k++) {
        fprintf(fp, "%s", k ? ", " : "");
        json_num(fp, r->segment_mean_nll[k]);
    }
    fprintf(fp, "],\n  \"segment_scored_tokens\": [");
    for (int64_t k = 0; k < h->segments; k++)
        fprintf(fp, "%s%lld", k ? ", " : "", (long long)r->segment_count[k]);
    fprintf(fp, "],\n  \"window_mean_nll\": [");
    for (int64_t w = 0; w < r->n_windows; w++) {
        fprintf(fp, "%s", w ? ", " : "");
        json_num(fp, r->window_mean_nll[w]);
    }
    fprintf(fp, "],\n  \"window_start\": [");
    for (int64_t w = 0; w < r->n_windows; w++) fprintf(fp, "%s%lld", w ? ", " : "", (long long)r->window_start[w]);
    fprintf(fp, "],\n  \"window_tokens\": [");
    for (int64_t w = 0; w < r->n_windows; w++) fprintf(fp, "%s%lld", w ? ", " : "", (long long)r->window_len[w]);
    fprintf(fp, "],\n  \"threads\": %d,\n  \"seconds\": %.6f,\n  \"seconds_baseline\": %.6f,\n"
                "  \"context_tokens_per_second\": %.3f,\n  \"backbone_rows\": %lld,\n"
                "  \"backbone_rows_per_second\": %.3f,\n  \"peak_rss_bytes\": %lld,\n",
            in->threads, r->seconds, r->seconds_baseline, x->ctx_tps, (long long)r->rows_run, x->row_tps, peak);
    fprintf(fp, "  \"device_config\": \"%s\",\n  \"device_seconds_per_context\": ", CLI_EMU_PERF_CONFIG);
    json_num(fp, x->dev_win >= 0 ? x->dev_win : NAN);
    fprintf(fp, ",\n  \"device_seconds\": ");
    json_num(fp, x->dev_win >= 0 ? x->dev_win * (double)r->n_windows : NAN);
    fprintf(fp, "\n}\n");
    return flx_outfile_commit(&of, err);
}

int cli_ppl_hmt_run(const cli_ppl_hmt *h, const cli_ppl_hmt_run_in *in, flx_error *err)
{
    const int emu = in->emu != NULL;
    const flx_llama_config *c = emu ? &in->emu->qm.cfg : &in->model->cfg;
    const int quirks = !emu ? 0 : h->quirks >= 0 ? h->quirks : in->eo->reference_quirks ? FLX_EMU_HMT_Q_ALL : 0;
    if (!emu && h->quirks > 0)
        return flx_fail(err, FLX_EINVAL, "--hmt-quirks describes FlexLLM's hardware: use it with --engine emu");
    char qnames[64];
    snprintf(qnames, sizeof qnames, "%s%s%s%s", quirks & FLX_EMU_HMT_Q_REGION0 ? "region0," : "",
             quirks & FLX_EMU_HMT_Q_UNMASKED ? "unmasked," : "", quirks & FLX_EMU_HMT_Q_ZERO_INIT ? "zero-init," : "",
             quirks & FLX_EMU_HMT_Q_ZERO_SENSORY ? "zero-sensory," : "");
    if (qnames[0]) qnames[strlen(qnames) - 1] = '\0';
    flx_hmt_params p;
    int rc = flx_hmt_load(&p, h->path, c->d_model, &h->over, err);
    if (rc) return rc;
    const int64_t s1 = flx_hmt_stage1_rows(&p);
    const int64_t base = h->baseline_ctx < 0 ? s1 : h->baseline_ctx;
    const int64_t max_rows = base > s1 ? base : s1;
    if (emu && h->segments > 64)
        fprintf(stderr, "flxemu ppl: note: %lld segments exceed FlexLLM's HMT_MAX_SEG_NUM of 64 (the "
                        "ring buffer wraps; emulated anyway)\n", h->segments);
    flx_hmt_flow flow = {h->final_norm >= 0 ? h->final_norm : 1, 0, 0, 1};   /* HMT-pytorch */
    if (emu) flow = flx_emu_hmt_flow(quirks, h->final_norm >= 0 ? h->final_norm : 0);
    flx_hmt_float_backbone fb = {0};
    flx_hmt_float_memory *fm = NULL;
    flx_emu_hmt_backbone eb = {0};
    flx_emu_hmt_mem em = {0};
    int em_open = 0;
    flx_hmt_backbone bb;
    flx_hmt_memory mem;
    flx_pool *score_pool = NULL;
    if (emu) {
        if ((rc = cli_emu_start(in->emu, in->eo, max_rows, in->threads, err))) goto out;
        if ((rc = flx_emu_hmt_backbone_init(&eb, &in->emu->eng, max_rows, in->emu->pool, err))) goto out;
        if ((rc = flx_emu_hmt_mem_init(&em, &p, &in->eo->fp, quirks, err))) goto out;
        em_open = 1;
        bb = flx_emu_hmt_backbone_ops(&eb);
        mem = flx_emu_hmt_mem_ops(&em);
        score_pool = in->emu->pool;
    } else {
        flx_llama_opts lo = {.n_threads = in->threads, .bf16_activations = in->bf16, .hooks = in->hooks};
        if ((rc = flx_hmt_float_backbone_init(&fb, in->model, &lo, max_rows, err))) goto out;
        if ((rc = flx_hmt_float_memory_new(&fm, &p, err))) goto out;
        bb = flx_hmt_float_backbone_ops(&fb);
        mem = flx_hmt_float_memory_ops(fm);
        score_pool = fb.st.pool;
    }
    const int64_t window = h->segments * p.seg_len;
    flx_hmt_ppl_opts o = {h->segments, in->max_windows, base, flow, on_segment, NULL, score_pool,
                          h->eval, h->batch};
    int64_t n_avail = 0, n_seg_run = 0;
    int64_t n_win = flx_hmt_ppl_count(&p, &o, in->n_tokens, &n_avail, &n_seg_run);
    if (h->eval == FLX_HMT_EVAL_CONTEXTS)
        fprintf(stderr, "perplexity (HMT): %s, engine %s%s%s%s, %lld tokens, contexts of %lld segments x %d = "
                        "%lld tokens (stride %lld), the last segment scored",
                p.path, emu ? "emu" : "float", quirks ? " (HMT quirks " : "", quirks ? qnames : "",
                quirks ? ")" : "", (long long)in->n_tokens, h->segments, p.seg_len, (long long)window,
                (long long)(window - p.seg_len));
    else
        fprintf(stderr, "perplexity (HMT): %s, engine %s%s%s%s, %lld tokens, HMT-pytorch's samples of up to "
                        "%lld segments x %d tokens, a new one every %d tokens (%lld of %lld, batches of %lld), "
                        "the last %d tokens of each scored",
                p.path, emu ? "emu" : "float", quirks ? " (HMT quirks " : "", quirks ? qnames : "",
                quirks ? ")" : "", (long long)in->n_tokens, h->segments, p.seg_len, p.seg_len, (long long)n_win,
                (long long)n_avail, h->batch, p.seg_len);
    fprintf(stderr, "; Sn/Mn %s final norm; baseline: plain window of %lld\n",
            flow.read_inputs ? "read from the inputs (quirk), no" : flow.final_norm ? "after the" : "without the",
            (long long)base);
    flx_progress bar;
    flx_progress_begin(&bar, "hmt ppl", n_seg_run, in->progress);
    progress_ctx pc = {&bar};
    o.on_segment_ctx = &pc;
    flx_hmt_ppl_result r;
    rc = flx_hmt_ppl_run(&p, &bb, &mem, in->tokens, in->n_tokens, &o, &r, err);
    flx_progress_end(&bar);
    printf("\n");
    if (rc) goto out;

    hmt_report x = {.emu = emu, .quirks = quirks, .flow = flow, .window = window, .base = base};
    snprintf(x.qnames, sizeof x.qnames, "%s", qnames);
    hmt_print(h, in, &p, &r, &x);
    if (in->json) rc = hmt_json(h, in, &p, &r, &x, err);
    flx_hmt_ppl_result_free(&r);
out:
    flx_hmt_float_backbone_free(&fb);
    flx_hmt_float_memory_free(fm);
    flx_emu_hmt_backbone_free(&eb);
    if (em_open) flx_emu_hmt_mem_free(&em);
    flx_hmt_free(&p);
    return rc;
}
