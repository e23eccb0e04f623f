/* perf_hmt.c -- timing of the HMT plug-in (reference-design §4): long prompts processed
 * as segments of 990 tokens, each costing a summary prefill (stage 0, from
 * the second segment on), an fp32 cross-attention retrieval over 64 memory
 * slots, a 1024-token prefill (stage 1) and, except for the last segment, the
 * key of the new memory.  There is no HMT decode kernel: decode afterwards
 * attends the last stage-1 sequence. */
#include "flx_perf.h"

#include <stdlib.h>
#include <string.h>

/* HMT constants (reference-design §0.1, §4) */
enum {
    HMT_SEG_LEN = 990,
    HMT_SUM_SEG_LEN = 495,
    HMT_REC_SEG_LEN = 32,
    HMT_MEM_NUM = 64,
    HMT_MAX_SEG_NUM = 64,
    HMT_GEMV_B = 4,   /* dec_Linear_Layer_fp32xfp32<B = 4, W = 8> */
    HMT_GEMV_W = 8,
};

int64_t flx_perf_hmt_max_tokens(void) { return (int64_t)HMT_SEG_LEN * HMT_MAX_SEG_NUM; }

int flx_perf_hmt_stage_lengths(int64_t n_tokens, int64_t *stage0, int64_t *stage1, int max)
{
    if (n_tokens < 1 || n_tokens > flx_perf_hmt_max_tokens()) return -1;
    int n_seg = (int)((n_tokens + HMT_SEG_LEN - 1) / HMT_SEG_LEN);
    if (n_seg > max) return -1;
    for (int i = 0; i < n_seg; i++) {
        int64_t len = n_tokens - (int64_t)i * HMT_SEG_LEN;
        if (len > HMT_SEG_LEN) len = HMT_SEG_LEN;
        int last = i == n_seg - 1;
        stage0[i] = i > 0 ? 2 + (len < HMT_SUM_SEG_LEN ? len : HMT_SUM_SEG_LEN) : 0;
        stage1[i] = 1 + HMT_REC_SEG_LEN + len + (last ? 0 : 1);
    }
    return n_seg;
}

/* fp32 GEMV with the same loop structure as the INT4 one (PE_fp32xfp32_pack_
 * 1x2_1D consumes one k per cycle); no dequantizer drain. */
static double fp32_gemv(int k_in, int o_out, double lambda)
{
    flx_perf_module m = flx_perf_dec_gemv(HMT_GEMV_B, HMT_GEMV_W, k_in, o_out, lambda);
    return m.cycles - HMT_GEMV_W;
}

static void accumulate(flx_perf_phase *dst, const flx_perf_phase *src)
{
    for (int i = 0; i < src->n_stages; i++) {
        const flx_perf_stage *s = &src->stage[i];
        flx_perf_stage *d = NULL;
        for (int j = 0; j < dst->n_stages && !d; j++)
            if (!strcmp(dst->stage[j].name, s->name)) d = &dst->stage[j];
        if (!d) {
            if (dst->n_stages >= FLX_PERF_MAX_STAGES) continue;
            d = &dst->stage[dst->n_stages++];
            memset(d, 0, sizeof *d);
            memcpy(d->name, s->name, sizeof d->name);
        }
        d->cycles += s->cycles;
        d->busy_cycles += s->busy_cycles;
        d->compute_cycles += s->compute_cycles;
        d->memory_cycles += s->memory_cycles;
        d->hbm_bytes += s->hbm_bytes;
        if (s->hbm_ports > d->hbm_ports) d->hbm_ports = s->hbm_ports;
        d->memory_bound = d->memory_cycles > d->compute_cycles;
    }
    dst->cycles += src->cycles;
}

static int add_prefill(const flx_perf_config *cfg, int64_t n, flx_perf_report *rep,
                       flx_perf_report *tmp, double *cycles, flx_error *err)
{
    memset(tmp, 0, sizeof *tmp);
    int rc = flx_perf_prefill(cfg, n, tmp, err);
    if (rc) return rc;
    accumulate(&rep->prefill, &tmp->prefill);
    rep->prefill_kv_pass_cycles += tmp->prefill_kv_pass_cycles;
    rep->prefill_fill_cycles += tmp->prefill_fill_cycles;
    rep->prefill_steady_cycles += tmp->prefill_steady_cycles;
    memcpy(rep->prefill_bottleneck, tmp->prefill_bottleneck, sizeof rep->prefill_bottleneck);
    *cycles += tmp->prefill.cycles;
    return FLX_OK;
}

int flx_perf_hmt_prefill(const flx_perf_config *cfg, int64_t n_tokens, flx_perf_report *rep,
                         flx_perf_hmt_report *hmt, int64_t *last_stage1_tokens, flx_error *err)
{
    if (n_tokens < 1 || n_tokens > flx_perf_hmt_max_tokens())
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: HMT prefill of %lld tokens is outside [1, %lld] "
                        "(64 segments of 990)",
                        (long long)n_tokens, (long long)flx_perf_hmt_max_tokens());
    memset(hmt, 0, sizeof *hmt);
    flx_perf_report *tmp = calloc(1, sizeof *tmp);
    if (!tmp) return flx_fail(err, FLX_ENOMEM, "cycle model: out of memory");
    double lam = cfg->tim.lambda_cycles;
    int D = cfg->model.dim;
    hmt->n_segments = (n_tokens + HMT_SEG_LEN - 1) / HMT_SEG_LEN;
    int rc = FLX_OK;
    for (int64_t i = 0; i < hmt->n_segments && !rc; i++) {
        int64_t len = n_tokens - i * HMT_SEG_LEN;
        if (len > HMT_SEG_LEN) len = HMT_SEG_LEN;
        int last = i == hmt->n_segments - 1;
        if (i > 0) {
            /* stage 0: [T, first min(len, 495) tokens, T]; then Qn = Wq Sn,
             * scores over the 64 slots, softmax, Pn = sum_slot p M */
            rc = add_prefill(cfg, 2 + (len < HMT_SUM_SEG_LEN ? len : HMT_SUM_SEG_LEN), rep, tmp,
                             &hmt->stage0_cycles, err);
            hmt->retrieval_cycles += fp32_gemv(D, D, lam) + fp32_gemv(D, HMT_MEM_NUM, lam) +
                                     3.0 * HMT_MEM_NUM / HMT_GEMV_B +
                                     fp32_gemv(HMT_MEM_NUM, D, lam);
        }
        /* stage 1: [Pn, 32 recent tokens, the segment, Pn unless last] */
        int64_t s1 = 1 + HMT_REC_SEG_LEN + len + (last ? 0 : 1);
        if (!rc) rc = add_prefill(cfg, s1, rep, tmp, &hmt->stage1_cycles, err);
        if (!last) hmt->retrieval_cycles += fp32_gemv(D, D, lam);   /* Kn = Wk Mn */
        if (last && last_stage1_tokens) *last_stage1_tokens = s1;
    }
    free(tmp);
    if (rc) return rc;
    hmt->total_cycles = hmt->stage0_cycles + hmt->retrieval_cycles + hmt->stage1_cycles;
    flx_perf_phase ret;
    memset(&ret, 0, sizeof ret);
    ret.n_stages = 1;
    snprintf(ret.stage[0].name, sizeof ret.stage[0].name, "hmt_retrieval");
    ret.stage[0].cycles = ret.stage[0].busy_cycles = ret.stage[0].compute_cycles =
        hmt->retrieval_cycles;
    ret.cycles = hmt->retrieval_cycles;
    accumulate(&rep->prefill, &ret);
    rep->prefill_fill_cycles += hmt->retrieval_cycles;   /* sequential, off the pipelines */
    return FLX_OK;
}

int flx_perf_run_hmt(const flx_perf_config *cfg, int64_t prompt_tokens, int64_t decode_tokens,
                     flx_perf_report *rep, flx_perf_hmt_report *hmt, flx_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (prompt_tokens < 2)
        return flx_fail(err, FLX_EINVAL, "cycle model: HMT needs a prompt of at least 2 tokens");
    if (decode_tokens < 1 || decode_tokens > cfg->max_decode_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: %lld decode tokens is outside [1, %d] (MAX_DEC_SEQ_LEN of %s)",
                        (long long)decode_tokens, cfg->max_decode_tokens, cfg->name);
    int64_t n = prompt_tokens - 1, ctx = 0;
    int rc = flx_perf_hmt_prefill(cfg, n, rep, hmt, &ctx, err);
    if (rc) return rc;
    double hz = cfg->tim.clock_mhz * 1e6;
    rep->clock_hz = hz;
    rep->prompt_tokens = prompt_tokens;
    rep->prefill_tokens = n;
    rep->prefill_padded = flx_perf_prefill_pad(cfg, ctx);
    rep->decode_tokens = decode_tokens;
    rep->prefill.cycles = hmt->total_cycles;
    rep->prefill_s = hmt->total_cycles / hz;
    rep->hmt = 1;
    /* decode continues from the last stage-1 sequence */
    if (ctx + decode_tokens > cfg->max_total_tokens)
        return flx_fail(err, FLX_EINVAL, "cycle model: %lld + %lld positions exceed %d",
                        (long long)ctx, (long long)decode_tokens, cfg->max_total_tokens);
    return flx_perf_finish_run(cfg, ctx, decode_tokens, rep, err);
}
