/* perf_compose.c -- composes the module formulas into prefill and decode
 * times (reference-design §2.3, §2.4, §3.3, §3.4) and the host flow:
 *   prefill: layers in sequence; per layer a K/V pass over all tokens (the K
 *            cache manager stores every key before emitting any), then the
 *            Q -> attention -> O -> FFN dataflow per token block;
 *   decode:  per token, per layer, modules strictly in sequence (attention
 *            pipelined over head iterations), then lm_head and sampling;
 *   host:    prefill of P - 1 tokens, KV hand-over over PCIe, D decode steps.
 * The HMT plug-in's segment loop is composed in perf_hmt.c from the same
 * prefill model. */
#include "flx_perf.h"

#include <math.h>
#include <string.h>

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int64_t lcm64(int64_t a, int64_t b) { return a / gcd64(a, b) * b; }

static double dmax(double a, double b) { return a > b ? a : b; }

double flx_perf_port_bytes_per_cycle(const flx_perf_config *cfg)
{
    double hz = cfg->tim.clock_mhz * 1e6;
    double sustained = cfg->dev.hbm_port_gbps * 1e9 * cfg->dev.hbm_efficiency / hz;
    return sustained < cfg->dev.axi_port_bytes ? sustained : cfg->dev.axi_port_bytes;
}

flx_perf_module flx_perf_bw_limit(flx_perf_module m, double port_bpc)
{
    double mem = m.port_bytes / port_bpc;
    if (mem > m.cycles && m.cycles > 0) {
        double f = mem / m.cycles;
        m.cycles *= f;
        m.in_cycles *= f;
        m.first_out *= f;
        m.tail *= f;
    }
    return m;
}

/* Pipeline recurrence (docs/perf-model.md "Composition"): for item i and
 * stage s with producer p (the previous stage; the first stage's input is in
 * memory at time 0):
 *   start  = max(first-output time of p, finish of s on item i-1)
 *   first  = start + first_out, and for store-and-forward stages also
 *            >= finish(p) + first_out - in_cycles
 *   finish = max(start + cycles, finish(p) + tail)                          */
double flx_perf_pipeline(const flx_perf_module *st, int n_stages, int64_t n_items)
{
    double prev_finish[FLX_PERF_MAX_STAGES];
    double end = 0;
    if (n_stages > FLX_PERF_MAX_STAGES) n_stages = FLX_PERF_MAX_STAGES;
    for (int s = 0; s < n_stages; s++) prev_finish[s] = 0;
    for (int64_t i = 0; i < n_items; i++) {
        double p_first = 0, p_finish = 0;
        for (int s = 0; s < n_stages; s++) {
            const flx_perf_module *m = &st[s];
            double start = dmax(p_first, prev_finish[s]);
            double first = start + m->first_out;
            if (m->store_forward) first = dmax(first, p_finish + m->first_out - m->in_cycles);
            double finish = dmax(start + m->cycles, p_finish + m->tail);
            if (first > finish) first = finish;
            prev_finish[s] = finish;
            p_first = first;
            p_finish = finish;
        }
        end = p_finish;
    }
    return end;
}

/* ---------------------------------------------------------------- stage table */

static flx_perf_stage *stage_get(flx_perf_phase *ph, const char *name)
{
    for (int i = 0; i < ph->n_stages; i++)
        if (!strcmp(ph->stage[i].name, name)) return &ph->stage[i];
    if (ph->n_stages >= FLX_PERF_MAX_STAGES) return &ph->stage[FLX_PERF_MAX_STAGES - 1];
    flx_perf_stage *st = &ph->stage[ph->n_stages++];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    return st;
}

/* Records `calls` executions of module m (raw, before the bandwidth limit)
 * that put crit cycles on the phase's critical path. */
static void stage_add(flx_perf_phase *ph, const char *name, flx_perf_module raw, double calls,
                      double crit, double port_bpc)
{
    flx_perf_stage *st = stage_get(ph, name);
    double mem = raw.port_bytes / port_bpc;
    st->compute_cycles += raw.cycles * calls;
    st->memory_cycles += mem * calls;
    st->busy_cycles += dmax(raw.cycles, mem) * calls;
    st->hbm_bytes += raw.hbm_bytes * calls;
    if (raw.hbm_ports > st->hbm_ports) st->hbm_ports = raw.hbm_ports;
    st->cycles += crit;
    st->memory_bound = st->memory_cycles > st->compute_cycles;
}

/* ---------------------------------------------------------------- prefill */

static int check_cfg(const flx_perf_config *cfg, flx_error *err)
{
    if (!cfg) return flx_fail(err, FLX_EINVAL, "cycle model: no configuration");
    return FLX_OK;
}

/* The host pads the prompt to a multiple of 16 (reference-design §2.1); the K repack and
 * key blocks also need multiples of TP and Kp. */
int64_t flx_perf_prefill_pad(const flx_perf_config *cfg, int64_t n_tokens)
{
    int64_t q = lcm64(lcm64(16, cfg->pre.tp), cfg->pre.k_par);
    return (n_tokens + q - 1) / q * q;
}

typedef struct named_module {
    const char     *name;
    flx_perf_module m;
} named_module;

int flx_perf_prefill(const flx_perf_config *cfg, int64_t n_tokens, flx_perf_report *rep,
                     flx_error *err)
{
    int rc = check_cfg(cfg, err);
    if (rc) return rc;
    if (n_tokens < 1 || n_tokens > cfg->max_prefill_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: prefill of %lld tokens is outside [1, %d] (MAX_PRE_SEQ_LEN of %s)",
                        (long long)n_tokens, cfg->max_prefill_tokens, cfg->name);
    const flx_perf_model *md = &cfg->model;
    const flx_perf_prefill_par *p = &cfg->pre;
    double lam = cfg->tim.lambda_cycles;
    double bpc = flx_perf_port_bytes_per_cycle(cfg);
    int64_t L = flx_perf_prefill_pad(cfg, n_tokens);
    int64_t n_blk = L / p->tp;
    int D = md->dim, KV = md->kv_dim, I = md->inter_dim, H = md->n_q_heads;

    flx_perf_module loader = flx_perf_pref_stream(D);
    loader.hbm_bytes = loader.port_bytes = (double)D * p->tp * 4;
    loader.hbm_ports = 1;
    flx_perf_module kstore = flx_perf_pref_stream(KV);
    kstore.hbm_bytes = kstore.port_bytes = (double)KV * p->tp;
    kstore.hbm_ports = 2;   /* K cache port and V cache port, one each */
    kstore.port_bytes = (double)KV * p->tp;
    flx_perf_module drain = flx_perf_pref_stream(D);
    drain.hbm_bytes = drain.port_bytes = (double)D * p->tp * 4;
    drain.hbm_ports = 1;

    /* K/V pass: kq and vo linears run their K and V passes concurrently over
     * every token block; the chains are symmetric, the K chain is timed. */
    named_module a[] = {
        {"loader", loader},
        {"rmsnorm", flx_perf_pref_rmsnorm(p->tp, D)},
        {"quant4_attn", flx_perf_pref_act_quant(p->tp, D)},
        {"k_proj", flx_perf_pref_linear(p->tp, p->qkvo_wp, p->qkvo_wp_read, 1, D, KV, lam)},
        {"rope_quant8_kv", flx_perf_pref_stream(KV)},
        {"kv_cache_store", kstore},
    };
    named_module b[] = {
        {"loader", loader},
        {"rmsnorm", flx_perf_pref_rmsnorm(p->tp, D)},
        {"quant4_attn", flx_perf_pref_act_quant(p->tp, D)},
        {"q_proj", flx_perf_pref_linear(p->tp, p->qkvo_wp, p->qkvo_wp_read, 1, D, D, lam)},
        {"rope_quant8_q", flx_perf_pref_stream(D)},
        {"qk", flx_perf_pref_qk(p->tp, p->k_par, H, md->head_dim, (int)L, lam)},
        {"score_dequant_mask", flx_perf_pref_stream(H * (int)L)},
        {"softmax", flx_perf_pref_softmax(H, (int)L)},
        {"quant8_p", flx_perf_pref_stream(H * (int)L)},
        {"av", flx_perf_pref_av(p->tp, p->v_par, H, md->head_dim, (int)L, lam)},
        {"o_dequant", flx_perf_pref_stream(D)},
        {"quant4_o", flx_perf_pref_act_quant(p->tp, D)},
        {"o_proj", flx_perf_pref_linear(p->tp, p->qkvo_wp, p->qkvo_wp_read, 1, D, D, lam)},
        {"residual", flx_perf_pref_stream(D)},
        {"rmsnorm", flx_perf_pref_rmsnorm(p->tp, D)},
        {"quant4_ffn", flx_perf_pref_act_quant(p->tp, D)},
        {"gate_up_proj", flx_perf_pref_linear(p->tp, p->ffn_wp, p->ffn_wp, p->ffn_blocks, D, I,
                                              lam)},
        {"silu_mul", flx_perf_pref_stream(I)},
        {"fht", flx_perf_pref_fht(I)},
        {"quant4_down", flx_perf_pref_act_quant(p->tp, I)},
        {"down_proj", flx_perf_pref_linear(p->tp, p->ffn_wp, p->ffn_wp, p->ffn_blocks, I, D,
                                           lam)},
        {"residual", flx_perf_pref_stream(D)},
        {"drainer", drain},
    };
    enum { NA = sizeof a / sizeof a[0], NB = sizeof b / sizeof b[0] };
    flx_perf_module ma[NA], mb[NB];
    for (int i = 0; i < NA; i++) ma[i] = flx_perf_bw_limit(a[i].m, bpc);
    for (int i = 0; i < NB; i++) mb[i] = flx_perf_bw_limit(b[i].m, bpc);

    double kv_pass = flx_perf_pipeline(ma, NA, n_blk);
    double dataflow = flx_perf_pipeline(mb, NB, n_blk);
    double gamma_load = D;   /* the first norm's gamma load precedes its first block */
    double layer = kv_pass + dataflow + gamma_load;
    int bott = 0;
    for (int i = 1; i < NB; i++)
        if (mb[i].cycles > mb[bott].cycles) bott = i;

    if (rep) {
        double nl = md->n_layers;
        memset(&rep->prefill, 0, sizeof rep->prefill);
        rep->prefill_tokens = n_tokens;
        rep->prefill_padded = L;
        double calls = nl * (double)n_blk;
        for (int i = 0; i < NA; i++)
            stage_add(&rep->prefill, a[i].name, a[i].m, calls, 0, bpc);
        /* the V pass on the vo linear, concurrent with the K pass */
        stage_add(&rep->prefill, "v_proj",
                  flx_perf_pref_linear(p->tp, p->qkvo_wp, p->qkvo_wp_read, 1, D, KV, lam), calls,
                  0, bpc);
        for (int i = 0; i < NB; i++)
            stage_add(&rep->prefill, b[i].name, b[i].m, calls, 0, bpc);
        for (int i = 0; i < rep->prefill.n_stages; i++)
            rep->prefill.stage[i].cycles = rep->prefill.stage[i].busy_cycles;
        double call_cycles = cfg->tim.kernel_call_s * cfg->tim.clock_mhz * 1e6;
        rep->prefill.cycles = nl * layer + call_cycles;
        rep->prefill_kv_pass_cycles = nl * kv_pass;
        rep->prefill_steady_cycles = nl * (double)n_blk * mb[bott].cycles;
        rep->prefill_fill_cycles =
            rep->prefill.cycles - rep->prefill_kv_pass_cycles - rep->prefill_steady_cycles;
        snprintf(rep->prefill_bottleneck, sizeof rep->prefill_bottleneck, "%s", b[bott].name);
    }
    return FLX_OK;
}

/* ---------------------------------------------------------------- decode */

/* A GEMV whose weight ports may each feed block_pack blocks. */
static flx_perf_module gemv(const flx_perf_config *cfg, int k_in, int o_out)
{
    const flx_perf_decode_par *q = &cfg->dec;
    flx_perf_module m = flx_perf_dec_gemv(q->block, q->w_par, k_in, o_out, cfg->tim.lambda_cycles);
    m.port_bytes *= q->block_pack;
    m.hbm_ports = q->block / q->block_pack + 1;
    return m;
}

int flx_perf_decode_step(const flx_perf_config *cfg, int64_t context, flx_perf_phase *phase,
                         flx_error *err)
{
    int rc = check_cfg(cfg, err);
    if (rc) return rc;
    if (context < 1 || context > cfg->max_total_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: decode context of %lld keys is outside [1, %d] (MAX_SUM_SEQ_LEN of %s)",
                        (long long)context, cfg->max_total_tokens, cfg->name);
    const flx_perf_model *md = &cfg->model;
    const flx_perf_decode_par *q = &cfg->dec;
    double lam = cfg->tim.lambda_cycles;
    double bpc = flx_perf_port_bytes_per_cycle(cfg);
    int D = md->dim, I = md->inter_dim;
    int S = (int)context - (q->attend_current ? 0 : 1);   /* keys attended */
    int B = q->block, W = q->w_par, BT = q->block_t, HP = q->head_par;
    int n_iter = md->n_q_heads / HP;
    const flx_perf_timing *tm = &cfg->tim;

    /* per layer, strictly sequential (docs/perf-model.md §2.6) */
    named_module seq[] = {
        {"layer_io_sync", flx_perf_dec_layer_sync(tm->hbm_latency_cycles)},
        {"rmsnorm", flx_perf_dec_rmsnorm(BT, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, BT, B)},
        {"act_quant", flx_perf_dec_act_quant(B, D)},
        {"kv_proj", gemv(cfg, D, q->kv_dim_pad)},
        {"q_proj", gemv(cfg, D, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, B, HP)},
        {"rope_quant8", flx_perf_pref_stream(md->n_q_heads / HP * md->head_dim)},
        {"kv_cache_update", flx_perf_pref_stream(md->head_dim)},
        /* attention inserted here */
        {"io_buffer", flx_perf_dec_io_buffer(D, HP, B)},
        {"act_quant", flx_perf_dec_act_quant(B, D)},
        {"o_proj", gemv(cfg, D, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, B, BT)},
        {"rmsnorm", flx_perf_dec_rmsnorm(BT, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, BT, B)},
        {"act_quant", flx_perf_dec_act_quant(B, D)},
        {"gate_proj", gemv(cfg, D, I)},
        {"up_proj", gemv(cfg, D, I)},
        {"fht", flx_perf_dec_fht(B, I)},
        {"act_quant", flx_perf_dec_act_quant(B, I)},
        {"down_proj", gemv(cfg, I, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, B, BT)},
    };
    enum { NS = sizeof seq / sizeof seq[0], ATT_AT = 9 };
    /* attention: qk -> softmax -> av, store-and-forward, over n_iter heads */
    named_module att[] = {
        {"qk", flx_perf_dec_qk(HP, q->k_par, md->n_q_heads, md->head_dim, S, lam)},
        {"softmax", flx_perf_dec_softmax(S)},
        {"av", flx_perf_dec_av(HP, q->v_par, md->head_dim, S, lam)},
    };
    double t_att[3], t_max = 0;
    int att_bott = 0;
    for (int i = 0; i < 3; i++) {
        t_att[i] = flx_perf_bw_limit(att[i].m, bpc).cycles;
        if (t_att[i] > t_max) {
            t_max = t_att[i];
            att_bott = i;
        }
    }
    /* per token, after the last layer */
    named_module tail[] = {
        {"final_norm", flx_perf_dec_rmsnorm(BT, D)},
        {"io_buffer", flx_perf_dec_io_buffer(D, BT, B)},
        {"act_quant", flx_perf_dec_act_quant(B, D)},
        {"lm_head", gemv(cfg, D, md->vocab_pad)},
        {"sampling", flx_perf_dec_sampling(B, W, md->vocab_pad, md->top_k, q->sort_lanes_serial,
                                           q->sort_insert_ii, tm->cmp_depth_cycles,
                                           tm->loop_overhead_cycles, tm->stage_fill_cycles)},
        {"embedding", flx_perf_dec_embedding(BT, D, tm->ddr_latency_cycles)},
    };
    enum { NT = sizeof tail / sizeof tail[0] };

    /* Every store-and-forward stage on the chain also waits for its float
     * pipeline to fill once per call (the per-beat trip counts above are
     * II x trips only): stage_fill_cycles per such stage, attention's three
     * tasks counted once per layer (their head iterations overlap). */
    int n_sf_layer = 3, n_sf_tail = 0;
    double layer = 0;
    for (int i = 0; i < NS; i++) {
        layer += flx_perf_bw_limit(seq[i].m, bpc).cycles;
        if (seq[i].m.store_forward && seq[i].m.cycles > 0) n_sf_layer++;
    }
    double att_total = 0;
    for (int i = 0; i < 3; i++) att_total += t_att[i];
    att_total += (n_iter - 1) * t_max;
    layer += att_total;
    double tail_cycles = 0;
    for (int i = 0; i < NT; i++) {
        tail_cycles += flx_perf_bw_limit(tail[i].m, bpc).cycles;
        if (tail[i].m.store_forward && tail[i].m.cycles > 0) n_sf_tail++;
    }
    double nl = md->n_layers;
    double fill_layer = n_sf_layer * tm->stage_fill_cycles;
    double fill_tail = n_sf_tail * tm->stage_fill_cycles;
    double total = nl * (layer + fill_layer) + tail_cycles + fill_tail;

    if (phase) {
        for (int i = 0; i < NS; i++) {
            if (i == ATT_AT) {
                for (int k = 0; k < 3; k++) {
                    double crit = (k == att_bott ? n_iter : 1) * t_att[k];
                    stage_add(phase, att[k].name, att[k].m, nl * n_iter, nl * crit, bpc);
                }
            }
            stage_add(phase, seq[i].name, seq[i].m, nl, nl * flx_perf_bw_limit(seq[i].m, bpc).cycles,
                      bpc);
        }
        for (int i = 0; i < NT; i++)
            stage_add(phase, tail[i].name, tail[i].m, 1, flx_perf_bw_limit(tail[i].m, bpc).cycles, bpc);
        flx_perf_module fill;
        memset(&fill, 0, sizeof fill);
        fill.cycles = nl * fill_layer + fill_tail;
        stage_add(phase, "pipeline_fill", fill, 1, fill.cycles, bpc);
        phase->cycles += total;
    }
    return FLX_OK;
}

/* ---------------------------------------------------------------- host flow */

int flx_perf_run(const flx_perf_config *cfg, int64_t prompt_tokens, int64_t decode_tokens,
                 flx_perf_report *rep, flx_error *err)
{
    int rc = check_cfg(cfg, err);
    if (rc) return rc;
    memset(rep, 0, sizeof *rep);
    if (prompt_tokens < 1)
        return flx_fail(err, FLX_EINVAL, "cycle model: the prompt needs at least 1 token, got %lld",
                        (long long)prompt_tokens);
    if (decode_tokens < 1 || decode_tokens > cfg->max_decode_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: %lld decode tokens is outside [1, %d] (MAX_DEC_SEQ_LEN of %s)",
                        (long long)decode_tokens, cfg->max_decode_tokens, cfg->name);
    int64_t n = prompt_tokens - 1;   /* the last prompt token starts decode */
    if (n > cfg->max_prefill_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: a %lld-token prompt prefills %lld tokens, more than %d "
                        "(MAX_PRE_SEQ_LEN of %s; the host truncates prompts)",
                        (long long)prompt_tokens, (long long)n, cfg->max_prefill_tokens,
                        cfg->name);
    if (n + decode_tokens > cfg->max_total_tokens)
        return flx_fail(err, FLX_EINVAL,
                        "cycle model: %lld prefill + %lld decode positions exceed %d "
                        "(MAX_SUM_SEQ_LEN of %s: RoPE table and KV caches)",
                        (long long)n, (long long)decode_tokens, cfg->max_total_tokens, cfg->name);
    double hz = cfg->tim.clock_mhz * 1e6;
    rep->clock_hz = hz;
    rep->prompt_tokens = prompt_tokens;
    rep->decode_tokens = decode_tokens;
    if (n > 0) {
        rc = flx_perf_prefill(cfg, n, rep, err);
        if (rc) return rc;
        rep->prefill_s = rep->prefill.cycles / hz;
    }
    return flx_perf_finish_run(cfg, n, decode_tokens, rep, err);
}

int flx_perf_finish_run(const flx_perf_config *cfg, int64_t n_ctx, int64_t decode_tokens,
                        flx_perf_report *rep, flx_error *err)
{
    double hz = rep->clock_hz;
    /* KV hand-over: the host reads n_ctx positions of every layer's K and V
     * cache (INT8) back and writes them in the decode layout. */
    double kv_bytes = 2.0 * cfg->model.n_layers * (double)n_ctx * cfg->model.kv_dim;
    rep->handover_s = n_ctx > 0 ? 2.0 * kv_bytes / (cfg->dev.pcie_gbps * 1e9) : 0;

    double call_cycles = cfg->tim.kernel_call_s * hz;
    rep->decode.cycles = call_cycles;
    for (int64_t t = 0; t < decode_tokens; t++) {
        double before = rep->decode.cycles;
        int rc = flx_perf_decode_step(cfg, n_ctx + t + 1, &rep->decode, err);
        if (rc) return rc;
        if (t == 0) rep->first_step_s = (rep->decode.cycles - before + call_cycles) / hz;
    }
    rep->decode_s = rep->decode.cycles / hz;
    rep->ttft_s = rep->prefill_s + rep->handover_s + rep->first_step_s;
    rep->e2e_s = rep->prefill_s + rep->handover_s + rep->decode_s;
    rep->decode_tokens_per_s = (double)decode_tokens / rep->decode_s;

    flx_perf_resources res;
    flx_perf_resources_of(cfg, &res);
    rep->power_w = flx_perf_board_power(cfg, flx_perf_utilization(cfg, &res));
    rep->energy_j = rep->power_w * rep->e2e_s;
    return FLX_OK;
}

/* ---------------------------------------------------------------- emulator API */

int flx_perf_prefill_seconds(const flx_perf_config *cfg, int64_t n_tokens, double *cycles,
                             double *seconds, flx_error *err)
{
    flx_perf_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = flx_perf_prefill(cfg, n_tokens, &rep, err);
    if (rc) return rc;
    if (cycles) *cycles = rep.prefill.cycles;
    if (seconds) *seconds = rep.prefill.cycles / (cfg->tim.clock_mhz * 1e6);
    return FLX_OK;
}

int flx_perf_decode_step_seconds(const flx_perf_config *cfg, int64_t context, double *cycles,
                                 double *seconds, flx_error *err)
{
    flx_perf_phase ph;
    memset(&ph, 0, sizeof ph);
    int rc = flx_perf_decode_step(cfg, context, &ph, err);
    if (rc) return rc;
    if (cycles) *cycles = ph.cycles;
    if (seconds) *seconds = ph.cycles / (cfg->tim.clock_mhz * 1e6);
    return FLX_OK;
}
