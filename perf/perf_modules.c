/* perf_modules.c -- per-module cycle formulas of the FlexLLM kernels, read off
 * their loop structure (reference-design §1, §2.2).  Each function
 * returns the busy cycles of one call (a token block in prefill, one token or
 * one head iteration in decode), how long it reads its input, when its first
 * consumable output appears, and the bytes it moves over HBM.
 *
 * lambda is the per-iteration pipeline overhead (the model's one calibrated
 * constant); the other overhead terms (drain, skew) come from array sizes. */
#include "flx_perf.h"

#include <math.h>
#include <string.h>

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int log2_int(int n)
{
    int l = 0;
    while ((1 << (l + 1)) <= n) l++;
    return l;
}

/* A module that buffers its whole input (in_cycles of reading) before it
 * emits: busy `cycles` in all, first output at first_out, the rest of its
 * time a tail after the input is in. */
static flx_perf_module store_forward(double cycles, double in_cycles, double first_out)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    m.cycles = cycles;
    m.in_cycles = in_cycles;
    m.first_out = first_out;
    m.store_forward = 1;
    m.tail = cycles - in_cycles;
    return m;
}

void flx_perf_model_llama32_1b(flx_perf_model *m)
{
    m->n_layers = 16;
    m->dim = 2048;
    m->kv_dim = 512;
    m->head_dim = 64;
    m->n_q_heads = 32;
    m->n_kv_heads = 8;
    m->inter_dim = 8192;
    m->vocab = 128256;
    m->vocab_pad = 131072;
    m->top_k = 5;
}

/* ---------------------------------------------------------------- prefill */

/* pref_Linear_Layer_i4xi4[_blocked]: buffer K activation beats, then for each
 * of ceil(O/WP) weight blocks stream K (activation, weight) beats through the
 * TP/2 x WP/(2BN) arrays and drain WP outputs.  Weight blocks do not overlap
 * (DATAFLOW region per block), so each costs K + delta with
 * delta = WP (drain) + TP/2 + WP/(2BN) (skew) + lambda.  Every weight word
 * (wp_read int4 lanes) is re-read for every token block. */
flx_perf_module flx_perf_pref_linear(int tp, int wp, int wp_read, int n_blocks_bn, int k_in,
                                     int o_out, double lambda)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_wblk = ceil_div(o_out, wp);
    double delta = wp + tp / 2.0 + wp / (2.0 * n_blocks_bn) + lambda;
    m.cycles = k_in + (double)n_wblk * (k_in + delta);
    m.in_cycles = k_in;
    m.first_out = k_in + (k_in + delta);
    m.tail = m.cycles - m.in_cycles;
    m.store_forward = 1;   /* the whole activation block is buffered first */
    double w_bytes = (double)n_wblk * k_in * (wp_read / 2.0);
    double s_bytes = (double)n_wblk * wp * 8.0;   /* (scale, sum) float pairs */
    m.hbm_bytes = w_bytes + s_bytes;
    m.port_bytes = w_bytes / n_blocks_bn;         /* BN weight ports, one s/sum port */
    m.hbm_ports = n_blocks_bn + 1;
    return m;
}

/* pref_MHA_i8xi8_qxk: per query head buffer d beats of q, then for every key
 * block of Kp keys stream d beats through the TP/2 x Kp/2 grid; the full L x L
 * score matrix is computed (no causal skipping). delta = Kp + TP/2 + Kp/2 + lambda.
 * The K cache manager re-streams L/Kp x d words of Kp bytes per head. */
flx_perf_module flx_perf_pref_qk(int tp, int k_par, int n_q_heads, int head_dim, int L,
                                 double lambda)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_kblk = ceil_div(L, k_par);
    double delta = k_par + tp / 2.0 + k_par / 2.0 + lambda;
    double per_head = head_dim + (double)n_kblk * (head_dim + delta);
    m.cycles = n_q_heads * per_head;
    m.in_cycles = (double)n_q_heads * head_dim;
    m.first_out = per_head;            /* softmax needs a whole score row */
    m.tail = per_head - head_dim;      /* the last head's key sweep        */
    m.hbm_bytes = (double)n_q_heads * n_kblk * head_dim * k_par;
    m.port_bytes = m.hbm_bytes;
    m.hbm_ports = 1;
    return m;
}

/* pref_MHA_i8xi8_axv: per head buffer the L probabilities, then d/Vp dim
 * blocks of L beats; delta = Vp + TP/2 + Vp/2 + lambda.  V words of Vp dims
 * are re-streamed per (head, dim block). */
flx_perf_module flx_perf_pref_av(int tp, int v_par, int n_q_heads, int head_dim, int L,
                                 double lambda)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_dblk = ceil_div(head_dim, v_par);
    double delta = v_par + tp / 2.0 + v_par / 2.0 + lambda;
    m.cycles = n_q_heads * (L + (double)n_dblk * (L + delta));
    m.in_cycles = (double)n_q_heads * L;
    m.first_out = L + (L + delta);
    m.tail = (double)n_dblk * (L + delta);
    m.hbm_bytes = (double)n_q_heads * n_dblk * L * v_par;
    m.port_bytes = m.hbm_bytes;
    m.hbm_ports = 1;
    return m;
}

/* pref_Softmax: per head, a max pass, an exp/sum pass and a normalize pass of
 * L beats each. */
flx_perf_module flx_perf_pref_softmax(int n_q_heads, int L)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    m.cycles = 3.0 * n_q_heads * L;
    m.in_cycles = (double)n_q_heads * L;
    m.first_out = 2.0 * L;
    m.tail = 2.0 * L;
    return m;
}

/* Element-wise streams (mask, dequant, RoPE, static quantizers, residual,
 * SiLU x up, loaders): one beat per cycle, no buffering. */
flx_perf_module flx_perf_pref_stream(int n_beats)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    m.cycles = n_beats;
    m.in_cycles = n_beats;
    m.first_out = 0;
    return m;
}

/* pref_Layer_Norm: read D beats accumulating x^2 (II 4 per 4 beats), TP
 * reciprocal square roots, emit D beats.  The gamma load (D per call) is
 * charged once per layer by the composition. */
flx_perf_module flx_perf_pref_rmsnorm(int tp, int dim)
{
    return store_forward(2.0 * dim + tp, dim, (double)dim + tp);
}

/* pref_quant_layer_fp32_qint: load K beats tracking max/min, TP scales, emit K. */
flx_perf_module flx_perf_pref_act_quant(int tp, int k)
{
    return store_forward(2.0 * k + tp, k, (double)k + tp);
}

/* pref_FHT: read N, log2 N constant-geometry stages of 1.5 N cycles, write N. */
flx_perf_module flx_perf_pref_fht(int n)
{
    double stages = 1.5 * n * log2_int(n);
    return store_forward(2.0 * n + stages, n, n + stages);
}

/* ---------------------------------------------------------------- decode */

/* dec_Linear_Layer_i4xi4_unroll: buffer the K/B-beat input, then for each of
 * O/(B W) output blocks broadcast K beats to the B arrays of W/2 PEs; blocks do
 * not overlap, delta = W (drain) + W/2 (skew) + lambda.  The dequantizer's
 * per-block work (B W + W) overlaps the next block; only its last W beats
 * drain after the GEMV.  B weight ports read W/2 bytes per cycle each. */
flx_perf_module flx_perf_dec_gemv(int b, int w, int k_in, int o_out, double lambda)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_oblk = ceil_div(o_out, (int64_t)b * w);
    double delta = w + w / 2.0 + lambda;
    m.cycles = (double)k_in / b + (double)n_oblk * (k_in + delta) + w;
    m.in_cycles = (double)k_in / b;
    m.first_out = (double)k_in / b + k_in + delta;
    double w_bytes = (double)n_oblk * b * w * k_in / 2.0;
    m.hbm_bytes = w_bytes + (double)n_oblk * b * w * 8.0;
    m.port_bytes = w_bytes / b;
    m.hbm_ports = b + 1;
    return m;
}

/* dec_quant_layer_fp32_qint: K/B beats with per-lane max/min, B-step lane
 * reduction, K/B beats out. */
flx_perf_module flx_perf_dec_act_quant(int b, int k)
{
    double cycles = 2.0 * k / b + b;
    return store_forward(cycles, (double)k / b, cycles);
}

/* dec_Layer_Norm: read, gamma, emit: 3 D / B_T. */
flx_perf_module flx_perf_dec_rmsnorm(int bt, int dim)
{
    double cycles = 3.0 * dim / bt;
    return store_forward(cycles, (double)dim / bt, cycles);
}

/* dec_io_buffer: store C/B_in beats, re-emit C/B_out (a barrier); equal
 * partitions make it a pass-through copy that streams with its neighbours. */
flx_perf_module flx_perf_dec_io_buffer(int c, int b_in, int b_out)
{
    if (b_in == b_out) return (flx_perf_module){0};
    double cycles = (double)c / b_in + (double)c / b_out;
    return store_forward(cycles, (double)c / b_in, cycles);
}

/* dec_FHT: (N/B)(2 + 1.5 log2 N). */
flx_perf_module flx_perf_dec_fht(int b, int n)
{
    double cycles = (double)n / b * (2.0 + 1.5 * log2_int(n));
    return store_forward(cycles, (double)n / b, cycles);
}

/* dec_MHA_i8xi8_qxk, one head iteration (all HP lanes in parallel): buffer d
 * q beats, then ceil(S/Kp) key blocks of d beats through a 1-D array of Kp/2
 * PEs per lane; delta = Kp (drain) + Kp/2 (skew) + lambda.  Each lane reads
 * ceil(S/Kp) x d K-cache words of Kp bytes from its own port. */
flx_perf_module flx_perf_dec_qk(int hp, int k_par, int n_q_heads, int head_dim, int S,
                                double lambda)
{
    (void)n_q_heads;
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_kblk = ceil_div(S, k_par);
    double delta = k_par + k_par / 2.0 + lambda;
    m.cycles = head_dim + (double)n_kblk * (head_dim + delta);
    m.in_cycles = head_dim;
    m.first_out = m.cycles;
    m.store_forward = 1;
    m.port_bytes = (double)n_kblk * head_dim * k_par;
    m.hbm_bytes = m.port_bytes * hp;
    m.hbm_ports = hp;
    return m;
}

/* dec_MHA_Softmax, one head iteration: max, exp/sum, normalize over S. */
flx_perf_module flx_perf_dec_softmax(int S)
{
    return store_forward(3.0 * S, S, 3.0 * S);
}

/* dec_MHA_i8xi8_axv, one head iteration: buffer S probabilities, then d/Vp
 * dim blocks of S beats; delta = Vp + Vp/2 + lambda.  V words hold Vp dims. */
flx_perf_module flx_perf_dec_av(int hp, int v_par, int head_dim, int S, double lambda)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    int64_t n_dblk = ceil_div(head_dim, v_par);
    double delta = v_par + v_par / 2.0 + lambda;
    m.cycles = S + (double)n_dblk * (S + delta);
    m.in_cycles = S;
    m.first_out = m.cycles;
    m.store_forward = 1;
    m.port_bytes = (double)n_dblk * S * v_par;
    m.hbm_bytes = m.port_bytes * hp;
    m.hbm_ports = hp;
    return m;
}

/* sort_top_k (FlexLLM Logits.h) / the inlined FSQ equivalent, one insert:
 *   find loop: PIPELINE II=1 over top_k slots; the "first slot with v > list[k]"
 *     flag is carried from iteration to iteration but is a 1-cycle compare-and-
 *     select, so II 1 holds; latency (top_k - 1) + cmp_depth + loop_overhead;
 *   insert/shift loop: PIPELINE II=2 over top_k slots (reads list[k-1], writes
 *     list[k] in a LUTRAM), latency (top_k - 1) II + 2 + loop_overhead; FSQ
 *     shifts with an unrolled copy of the partitioned registers: 1 state. */
double flx_perf_sort_insert_cycles(int top_k, int insert_ii, double cmp_depth,
                                   double loop_overhead)
{
    double find = (top_k - 1) + cmp_depth + loop_overhead;
    double ins = insert_ii > 0 ? (double)(top_k - 1) * insert_ii + 2.0 + loop_overhead : 1.0;
    return find + ins;
}

/* dec_Sampling_Embedding_Layer: for each chunk of B W logits the pipelined
 * buffer loop reads W beats (W + 1 + loop_overhead states), then the rolled
 * lane_top_k_loop makes W steps; one step inserts one logit into each of the
 * B lane lists: B inserts one after another when the lane loop's pipelined
 * sub-loops are inlined (FSQ: sibling loops run sequentially), or one insert
 * time when every lane has its own sort_top_k instance (FlexLLM); +1 state
 * per step.  The loop is not pipelined across steps: it contains pipelined
 * sub-loops, so HLS neither auto-pipelines nor flattens it.  Then the
 * rolled top_k x B merge (one insert each; FSQ's merge find is an unrolled
 * priority compare: cmp_depth + 1, + 1 shift) and the softmax/CDF tail: 3
 * short pipelined loops (exp, divide, CDF) of top_k trips and one float
 * pipeline depth (fill) each. */
flx_perf_module flx_perf_dec_sampling(int b, int w, int vocab_pad, int top_k, int lanes_serial,
                                      int insert_ii, double cmp_depth, double loop_overhead,
                                      double fill)
{
    int64_t n_chunk = ceil_div(vocab_pad, (int64_t)b * w);
    double tau = flx_perf_sort_insert_cycles(top_k, insert_ii, cmp_depth, loop_overhead);
    double step = (lanes_serial ? b * tau : tau) + 1.0;
    double buffer = w + 1.0 + loop_overhead;
    double merge_insert = insert_ii > 0 ? tau : cmp_depth + 2.0;
    double tail = 3.0 * (top_k - 1 + fill);
    double cycles = (double)n_chunk * (buffer + w * step) + (double)top_k * b * merge_insert + tail;
    return store_forward(cycles, (double)n_chunk * w, cycles);
}

/* dec_block_io_sync, once per layer boundary: the layer output is drained
 * to io_mmap (HBM) beat by beat as the residual emits it, and the same task
 * then loads the next layer's input from there, so the write responses
 * (one HBM round trip) and the read's first beat (another) lie between the
 * two layers. */
flx_perf_module flx_perf_dec_layer_sync(double hbm_latency)
{
    return store_forward(2.0 * hbm_latency, 0, 2.0 * hbm_latency);
}

/* dec_input_loader from vocab_lib (DDR) after sampling: one DDR round trip
 * for the first beat, then D/B_T beats. */
flx_perf_module flx_perf_dec_embedding(int bt, int dim, double ddr_latency)
{
    flx_perf_module m;
    memset(&m, 0, sizeof m);
    m.cycles = ddr_latency + (double)dim / bt;
    m.first_out = ddr_latency + 1.0;
    m.tail = m.cycles;
    return m;
}
