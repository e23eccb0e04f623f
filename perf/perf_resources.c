/* perf_resources.c -- resource model per PE type and per buffer, HBM port
 * counts, utilization and the fit check against the device's limits.
 *
 * DSP counts follow exactly from the PE packing of reference-design §1.3: an INT4
 * 2x2 PE uses 2 multipliers, an INT4 1x2 PE one, the INT8 PEs 2 and 1.  LUT
 * and memory costs are per-unit estimates (docs/perf-model.md, "Resource
 * model"): typical Vitis HLS figures, NOT calibrated against a FlexLLM
 * utilization report (none was found).  Buffers are costed in BRAM36 as
 * 512 x 72-bit and URAM as 4096 x 72-bit blocks.  The board power built on the
 * utilization lives in perf_power.c. */
#include "flx_perf.h"

#include <math.h>
#include <string.h>

/* per-unit estimates */
#define LUT_PE_I4_2X2   120.0   /* packing, field extraction, control  */
#define LUT_PE_I4_1X2    60.0
#define LUT_PE_I8_2X2   100.0
#define LUT_PE_I8_1X2    50.0
#define DSP_FMUL 3.0
#define LUT_FMUL 100.0
#define DSP_FADD 2.0
#define LUT_FADD 250.0
#define LUT_FDIV 800.0
#define DSP_FEXP 7.0
#define LUT_FEXP 700.0
#define LUT_PER_TASK   500.0   /* FIFOs, FSM of one dataflow task      */
#define LUT_PER_PORT  2000.0   /* AXI master with burst buffers        */
#define BRAM_PER_PORT    2.0

typedef struct fp_bundle { double fmul, fadd, fdiv, fexp; } fp_bundle;

/* Versal DSP58 blocks do an fp32 multiply or add in one block (DSPFP32 mode,
 * AM004); UltraScale+ DSP48E2 needs the counts above. */
static void add_fp(const flx_perf_config *cfg, flx_perf_resources *r, double lanes, fp_bundle b)
{
    int dsp58 = cfg->dev.kind == FLX_PERF_DEV_V80;
    double dmul = dsp58 ? 1 : DSP_FMUL, dadd = dsp58 ? 1 : DSP_FADD;
    r->dsps += lanes * (b.fmul * dmul + b.fadd * dadd + b.fexp * DSP_FEXP);
    r->luts += lanes * (b.fmul * LUT_FMUL + b.fadd * LUT_FADD + b.fdiv * LUT_FDIV +
                        b.fexp * LUT_FEXP);
}

/* A buffer of depth words of width bits, in BRAM36 (or URAM when large). */
static void add_buffer(flx_perf_resources *r, double depth, double width_bits)
{
    double bram = ceil(width_bits / 72.0) * ceil(depth / 512.0);
    if (bram > 16) {
        r->urams += ceil(width_bits / 72.0) * ceil(depth / 4096.0);
    } else {
        r->bram36 += bram;
    }
}

/* ---------------------------------------------------------------- prefill kernel */

static void prefill_linear(const flx_perf_config *cfg, flx_perf_resources *r, int tp, int wp, int k_in)
{
    double pes = (tp / 2.0) * (wp / 2.0);
    r->dsps += 2 * pes;
    r->luts += LUT_PE_I4_2X2 * pes;
    add_buffer(r, k_in, tp * 4.0);                          /* activation buffer */
    add_fp(cfg, r, tp, (fp_bundle){3, 1, 0, 0});                  /* dequantizer       */
    r->luts += 3 * LUT_PER_TASK;
}

static void prefill_kernel(const flx_perf_config *cfg, flx_perf_resources *r, int *ports,
                           int with_arrays)
{
    const flx_perf_model *m = &cfg->model;
    const flx_perf_prefill_par *p = &cfg->pre;
    int tp = p->tp, L = cfg->max_prefill_tokens;
    if (with_arrays) {
        prefill_linear(cfg, r, tp, p->qkvo_wp, m->dim);          /* kq */
        prefill_linear(cfg, r, tp, p->qkvo_wp, m->dim);          /* vo */
        for (int i = 0; i < 2; i++) prefill_linear(cfg, r, tp, p->ffn_wp, m->dim);  /* gate, up */
        prefill_linear(cfg, r, tp, p->ffn_wp, m->inter_dim);      /* down */
        /* attention arrays: TP/2 x Kp/2 and TP/2 x Vp/2 INT8 2x2 PEs */
        double qk_pes = (tp / 2.0) * (p->k_par / 2.0), av_pes = (tp / 2.0) * (p->v_par / 2.0);
        r->dsps += 2 * (qk_pes + av_pes);
        r->luts += LUT_PE_I8_2X2 * (qk_pes + av_pes);
    }
    add_buffer(r, m->head_dim, tp * 8.0);                /* q of one head     */
    add_buffer(r, L, tp * 8.0);                          /* P row             */
    add_buffer(r, L, tp * 32.0);                         /* softmax row       */
    /* float lanes: norms x3, quantizers x5, static quant/dequant x5, RoPE x2,
     * softmax, SiLU, gate, residual x2, FHT butterflies */
    add_fp(cfg, r, tp * 3.0, (fp_bundle){2, 1, 1, 0});
    add_fp(cfg, r, tp * 5.0, (fp_bundle){0, 1, 1, 0});
    add_fp(cfg, r, tp * 5.0, (fp_bundle){2, 0, 1, 0});
    add_fp(cfg, r, tp * 2.0, (fp_bundle){4, 2, 0, 0});
    add_fp(cfg, r, tp, (fp_bundle){1, 2, 1, 1});
    add_fp(cfg, r, tp, (fp_bundle){1, 1, 1, 1});
    add_fp(cfg, r, tp * 2.0, (fp_bundle){0, 1, 0, 0});
    add_fp(cfg, r, tp, (fp_bundle){0, 2, 1, 0});
    for (int i = 0; i < 3; i++) add_buffer(r, m->dim, tp * 32.0);      /* norm buffers  */
    for (int i = 0; i < 4; i++) add_buffer(r, m->dim, tp * 32.0);      /* quant buffers */
    add_buffer(r, m->inter_dim, tp * 32.0);                            /* down quant    */
    add_buffer(r, 2.0 * m->inter_dim, tp * 32.0);                      /* FHT, 2 buffers*/
    for (int i = 0; i < 2; i++) add_buffer(r, m->dim, tp * 32.0);      /* residual FIFOs*/
    r->luts += 30 * LUT_PER_TASK;
    /* ports: io, 2 gamma, kq + s/sum, vo + s/sum, K cache, V cache, and per
     * FFN linear ffn_blocks weight ports + one s/sum port */
    int n_ports = with_arrays ? 1 + 2 + 2 + 2 + 2 + 3 * (p->ffn_blocks + 1) : 3;
    r->luts += LUT_PER_PORT * n_ports;
    r->bram36 += BRAM_PER_PORT * n_ports;
    *ports = n_ports;
}

/* ---------------------------------------------------------------- decode kernel */

static void decode_kernel(const flx_perf_config *cfg, flx_perf_resources *r, int *ports)
{
    const flx_perf_model *m = &cfg->model;
    const flx_perf_decode_par *d = &cfg->dec;
    /* GEMV engine: B arrays of W/2 INT4 1x2 PEs, one dequant lane per block */
    double pes = (double)d->block * (d->w_par / 2.0);
    r->dsps += pes;
    r->luts += LUT_PE_I4_1X2 * pes;
    add_fp(cfg, r, d->block, (fp_bundle){3, 1, 0, 0});
    for (int u = 0; u < d->unroll; u++) add_buffer(r, m->inter_dim, 4.0 * 8);  /* inputs */
    /* attention: HP lanes of Kp/2 and Vp/2 INT8 1x2 PEs */
    double att = (double)d->head_par * (d->k_par / 2.0 + d->v_par / 2.0);
    r->dsps += att;
    r->luts += LUT_PE_I8_1X2 * att;
    /* static K register [layers][HP][kv/HP][Kp] INT8 */
    for (int h = 0; h < d->head_par; h++)
        add_buffer(r, (double)m->n_layers * m->kv_dim / d->head_par, d->k_par * 8.0);
    for (int h = 0; h < d->head_par; h++) {
        add_buffer(r, cfg->max_total_tokens, 32.0);   /* softmax row */
        add_buffer(r, cfg->max_total_tokens, 8.0);    /* P row       */
    }
    /* float lanes: norms (B_T), quantizers (B), RoPE/quant8/dequant/softmax (HP),
     * SiLU/gate/FHT (B), residual (B_T) */
    add_fp(cfg, r, d->block_t * 2.0, (fp_bundle){2, 1, 1, 0});
    add_fp(cfg, r, d->block * 2.0, (fp_bundle){0, 1, 1, 0});
    add_fp(cfg, r, d->head_par, (fp_bundle){8, 4, 3, 1});
    add_fp(cfg, r, d->block, (fp_bundle){1, 3, 1, 1});
    add_fp(cfg, r, d->block_t, (fp_bundle){0, 1, 0, 0});
    for (int i = 0; i < 6; i++) add_buffer(r, m->dim / d->block_t, 32.0 * d->block_t);
    add_buffer(r, 2.0 * m->inter_dim / d->block, 32.0 * d->block);      /* FHT */
    add_buffer(r, m->inter_dim / d->block, 32.0 * d->block);            /* quant */
    r->luts += 40 * LUT_PER_TASK;
    /* ports: io, gamma, s/sum, B weight ports (the KV caches share them) */
    int n_ports = 3 + d->block / d->block_pack;
    r->luts += LUT_PER_PORT * n_ports;
    r->bram36 += BRAM_PER_PORT * n_ports;
    *ports = n_ports;
}

void flx_perf_resources_prefill(const flx_perf_config *cfg, int with_arrays,
                                flx_perf_resources *r)
{
    memset(r, 0, sizeof *r);
    prefill_kernel(cfg, r, &r->hbm_ports_prefill, with_arrays);
}

void flx_perf_resources_decode(const flx_perf_config *cfg, flx_perf_resources *r)
{
    memset(r, 0, sizeof *r);
    decode_kernel(cfg, r, &r->hbm_ports_decode);
}

void flx_perf_resources_add(flx_perf_resources *a, const flx_perf_resources *b)
{
    a->luts += b->luts;
    a->dsps += b->dsps;
    a->bram36 += b->bram36;
    a->urams += b->urams;
    if (b->hbm_ports_prefill > a->hbm_ports_prefill) a->hbm_ports_prefill = b->hbm_ports_prefill;
    if (b->hbm_ports_decode > a->hbm_ports_decode) a->hbm_ports_decode = b->hbm_ports_decode;
}

void flx_perf_resources_of(const flx_perf_config *cfg, flx_perf_resources *r)
{
    flx_perf_resources d;
    flx_perf_resources_prefill(cfg, 1, r);
    flx_perf_resources_decode(cfg, &d);
    flx_perf_resources_add(r, &d);
}

double flx_perf_utilization(const flx_perf_config *cfg, const flx_perf_resources *r)
{
    const flx_perf_device *d = &cfg->dev;
    double u = r->luts / (double)(d->luts - d->shell_luts);
    double t = r->dsps / (double)(d->dsps - d->shell_dsps);
    if (t > u) u = t;
    t = r->bram36 / (double)(d->bram36 - d->shell_bram36);
    if (t > u) u = t;
    t = r->urams / (double)(d->urams - d->shell_urams);
    if (t > u) u = t;
    return u;
}

int flx_perf_fits(const flx_perf_config *cfg, const flx_perf_resources *r, char *why,
                  size_t why_bytes)
{
    const flx_perf_device *d = &cfg->dev;
    /* leave 20% of LUTs for routing closure, as HLS designs rarely place above 80% */
    struct { const char *n; double used, avail; } lim[] = {
        {"LUT", r->luts, 0.8 * (double)(d->luts - d->shell_luts)},
        {"DSP", r->dsps, (double)(d->dsps - d->shell_dsps)},
        {"BRAM", r->bram36, (double)(d->bram36 - d->shell_bram36)},
        {"URAM", r->urams, (double)(d->urams - d->shell_urams)},
        {"HBM ports (prefill)", r->hbm_ports_prefill, d->hbm_ports},
        {"HBM ports (decode)", r->hbm_ports_decode, d->hbm_ports},
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].used > lim[i].avail) {
            if (why) snprintf(why, why_bytes, "%s %.0f > %.0f", lim[i].n, lim[i].used,
                              lim[i].avail);
            return 0;
        }
    return 1;
}
