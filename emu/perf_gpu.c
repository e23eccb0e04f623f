/* perf_gpu.c -- the GPU baseline: an NVIDIA A100 running Llama-3.2-1B in BF16
 * at batch 1, as a roofline with documented efficiencies (docs/perf-model.md,
 * "GPU baseline").  Prefill processes all P prompt tokens and yields the
 * first token; each of the remaining D - 1 tokens is one decode step. */
#include "flx_perf.h"

#include <string.h>

/* A100 SXM4 80 GB: 2039 GB/s HBM2e, 312 TFLOP/s dense BF16, 400 W
 * (NVIDIA A100 datasheet, as tabulated at
 * https://glennklockwood.com/garden/processors/A100).  The efficiencies and
 * the idle power are assumptions, not measurements. */
void flx_gpu_a100_bf16(flx_gpu_model *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "A100-SXM4-80GB BF16 roofline");
    g->hbm_gbps = 2039.0;
    g->peak_tflops = 312.0;
    g->mem_efficiency = 0.80;
    g->flop_efficiency = 0.50;
    g->idle_w = 55.0;
    g->max_w = 400.0;
    g->step_overhead_s = 0.0;
    g->bytes_per_param = 2;
}

static double dmax(double a, double b) { return a > b ? a : b; }

/* Parameters read per forward pass: the 16 layers and the (tied) lm_head. */
static double layer_params(const flx_perf_model *m)
{
    double per = 2.0 * m->dim * m->dim + 2.0 * m->dim * m->kv_dim + 3.0 * m->dim * m->inter_dim;
    return per * m->n_layers;
}

typedef struct gpu_pass { double s, util; int mem_bound; } gpu_pass;

static gpu_pass roofline(const flx_gpu_model *g, double flops, double bytes)
{
    gpu_pass r;
    double t_c = flops / (g->peak_tflops * 1e12 * g->flop_efficiency);
    double t_m = bytes / (g->hbm_gbps * 1e9 * g->mem_efficiency);
    double t = dmax(t_c, t_m);
    r.mem_bound = t_m >= t_c;
    r.s = t + g->step_overhead_s;
    /* utilization of the binding resource relative to its peak */
    double u_c = flops / (r.s * g->peak_tflops * 1e12), u_m = bytes / (r.s * g->hbm_gbps * 1e9);
    r.util = dmax(u_c, u_m);
    return r;
}

void flx_gpu_run(const flx_gpu_model *g, const flx_perf_model *m, int64_t prompt_tokens,
                 int64_t decode_tokens, flx_gpu_report *rep)
{
    memset(rep, 0, sizeof *rep);
    double P = (double)prompt_tokens, wp = layer_params(m);
    double head = (double)m->dim * m->vocab;
    double bpp = g->bytes_per_param;
    double kv_token_bytes = 2.0 * m->n_layers * m->kv_dim * bpp;   /* K and V */
    /* prefill: GEMMs over P tokens, causal attention (QK^T and A.V each
     * P^2/2 x D MACs per layer), lm_head on the last token only */
    double flops = 2.0 * P * wp + 2.0 * P * P * m->dim * m->n_layers + 2.0 * head;
    double bytes = bpp * (wp + head) + P * kv_token_bytes + 2.0 * P * m->dim * bpp * m->n_layers;
    gpu_pass pf = roofline(g, flops, bytes);
    rep->prefill_s = pf.s;
    rep->prefill_memory_bound = pf.mem_bound;
    rep->prefill_w = g->idle_w + (g->max_w - g->idle_w) * pf.util;
    double e = rep->prefill_w * pf.s, dec_s = 0;
    for (int64_t t = 1; t < decode_tokens; t++) {
        double S = P + (double)t;   /* keys incl. the new token */
        double f = 2.0 * (wp + head) + 4.0 * S * m->dim * m->n_layers;
        double b = bpp * (wp + head) + S * kv_token_bytes;
        gpu_pass st = roofline(g, f, b);
        double w = g->idle_w + (g->max_w - g->idle_w) * st.util;
        dec_s += st.s;
        e += w * st.s;
    }
    rep->decode_s = dec_s;
    rep->ttft_s = rep->prefill_s;
    rep->e2e_s = rep->prefill_s + dec_s;
    rep->decode_tokens_per_s = decode_tokens > 1 ? (double)(decode_tokens - 1) / dec_s : 0;
    rep->decode_w = dec_s > 0 ? (e - rep->prefill_w * pf.s) / dec_s : 0;
    rep->energy_j = e;
}
