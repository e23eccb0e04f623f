/* flx_perf.h -- cycle-approximate performance model of the FlexLLM Llama-3.2-1B
 * accelerator: per-module cycle formulas, prefill/decode composition, HBM
 * bandwidth, host flow, board power, an A100 roofline baseline, a resource
 * model and a design-space sweep.
 *
 * Every formula and constant is written down in docs/perf-model.md.  The model
 * has ONE calibrated constant, timing.lambda_cycles (per-iteration pipeline
 * overhead), fitted to the single measured point of reference-design §5.3 (prefill of 1024
 * tokens in 1.6615 s on the U280).  Everything else is loop structure or a
 * documented assumption.
 *
 * Units: cycles are kernel clock cycles (double, because the model sums
 * fractional memory cycles), seconds, bytes, watts, joules.
 */
#ifndef FLX_PERF_H
#define FLX_PERF_H

#include <stdint.h>
#include <stdio.h>

#include "flx_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- model shape */

/* The transformer the accelerator runs (Llama-3.2-1B, reference-design §0.1). */
typedef struct flx_perf_model {
    int n_layers;       /* 16                                   */
    int dim;            /* D = 2048                             */
    int kv_dim;         /* 512 = 8 KV heads x 64                */
    int head_dim;       /* d = 64                               */
    int n_q_heads;      /* 32                                   */
    int n_kv_heads;     /* 8                                    */
    int inter_dim;      /* I = 8192 (FHT size)                  */
    int vocab;          /* 128256                               */
    int vocab_pad;      /* 131072 rows of the INT4 lm_head      */
    int top_k;          /* 5 (sampling list length)             */
} flx_perf_model;

void flx_perf_model_llama32_1b(flx_perf_model *m);

/* ---------------------------------------------------------------- configuration */

typedef enum flx_perf_device_kind {
    FLX_PERF_DEV_U280 = 0,
    FLX_PERF_DEV_V80  = 1,
} flx_perf_device_kind;

/* Device limits and memory system (documented sources in docs/perf-model.md). */
typedef struct flx_perf_device {
    flx_perf_device_kind kind;
    char    name[16];         /* "u280" | "v80"                                     */
    int64_t luts, dsps, bram36, urams;            /* whole device                    */
    int64_t shell_luts, shell_dsps, shell_bram36, shell_urams; /* platform shell     */
    int     hbm_ports;        /* kernel AXI ports into HBM                          */
    double  hbm_port_gbps;    /* theoretical GB/s behind one port                   */
    double  hbm_efficiency;   /* sustained fraction of it (assumed, not calibrated) */
    int     axi_port_bytes;   /* data width of one kernel port, bytes per cycle     */
    double  pcie_gbps;        /* host link, for the KV hand-over                    */
} flx_perf_device;

/* Prefill (spatial dataflow) parallelism, reference-design §2.1. */
typedef struct flx_perf_prefill_par {
    int tp;            /* TOKEN_PARALLEL: tokens per block                       */
    int qkvo_wp;       /* PRE_QKVO_W_PARALLEL: output lanes computed (kq, vo)    */
    int qkvo_wp_read;  /* lanes read per weight word (>= qkvo_wp)                */
    int k_par;         /* PRE_K_PARALLEL Kp: keys per QK^T block                 */
    int v_par;         /* PRE_V_PARALLEL Vp: dims per A.V block                  */
    int ffn_wp;        /* PRE_FFN_W_PARALLEL: output lanes (gate, up, down)      */
    int ffn_blocks;    /* BN: arrays (and weight ports) per FFN linear           */
} flx_perf_prefill_par;

/* Decode (temporal, shared GEMV engine) parallelism, reference-design §2.1. */
typedef struct flx_perf_decode_par {
    int block_t;       /* T_BLOCK_PARALLEL B_T: lanes of norms/residual/embedding */
    int block;         /* T_QKVO_FFN_BLOCK_PARALLEL B: GEMV blocks (weight ports) */
    int unroll;        /* U: GEMV halves (dec_Linear_Layer_i4xi4_unroll)         */
    int head_par;      /* DEC_HEAD_PARALLEL HP                                   */
    int w_par;         /* DEC_W_PARALLEL W: columns per block per pass            */
    int k_par;         /* DEC_K_PARALLEL: keys per QK^T block                     */
    int v_par;         /* DEC_V_PARALLEL: dims per A.V block                      */
    int kv_dim_pad;    /* KV_HIDDEN_DIM_PAD: outputs of the fused [K;V] GEMV      */
    int block_pack;    /* GEMV blocks fed by one weight port (blockpack_2: 2)     */
    int attend_current;    /* 1: attention covers S = n + t + 1 keys (FlexLLM);
                            * 0: S = n + t, the current token left out (FSQ)    */
    int sort_lanes_serial; /* 1: the B lanes' top-k inserts run one after another
                            * (FSQ: loops inlined in the unrolled lane loop);
                            * 0: B parallel sort_top_k instances (FlexLLM)     */
    int sort_insert_ii;    /* II of sort_top_k's insert/shift loop (FlexLLM 2);
                            * 0: the shift is an unrolled one-state copy (FSQ) */
} flx_perf_decode_par;

typedef struct flx_perf_timing {
    double clock_mhz;              /* kernel clock                                  */
    double lambda_cycles;          /* CALIBRATED per-iteration pipeline overhead    */
    double kernel_call_s;          /* host overhead per kernel launch (assumed)     */
    /* Assumed HLS/memory constants of the decode step (docs/perf-model.md §2.6);
     * none is fitted. */
    double cmp_depth_cycles;       /* iteration depth of a pipelined fcmp+select loop */
    double loop_overhead_cycles;   /* entry + exit states of a pipelined sub-loop    */
    double stage_fill_cycles;      /* float pipeline depth a store-and-forward stage
                                    * adds once per call on the sequential chain     */
    double hbm_latency_cycles;     /* AXI round trip of an HBM read or write response */
    double ddr_latency_cycles;     /* AXI round trip of a DDR read                    */
} flx_perf_timing;

/* Board power: P = static_w + (active_w - static_w) * util / ref_util, where
 * util is the modelled resource utilization of the design (see resources) and
 * ref_util that of the design whose board power active_w was measured. */
typedef struct flx_perf_power {
    double static_w;   /* board power with the shell loaded and the kernel idle  */
    double active_w;   /* board power of the reference design while running     */
    double ref_util;   /* modelled utilization of that reference design          */
} flx_perf_power;

typedef struct flx_perf_config {
    char                 name[64];
    char                 path[512];   /* file it was loaded from ("" if built in) */
    flx_perf_model       model;
    flx_perf_device      dev;
    flx_perf_prefill_par pre;
    flx_perf_decode_par  dec;
    flx_perf_timing      tim;
    flx_perf_power       pow;
    int max_prefill_tokens;  /* MAX_PRE_SEQ_LEN (1024)                        */
    int max_decode_tokens;   /* MAX_DEC_SEQ_LEN (1024)                        */
    int max_total_tokens;    /* MAX_SUM_SEQ_LEN (2048): RoPE table, KV caches */
} flx_perf_config;

/* Loads and validates a JSON configuration.  Every rejected value yields a
 * message "FILE: field 'a.b': why". */
int flx_perf_config_load(const char *path, flx_perf_config *cfg, flx_error *err);
/* Parses JSON text; file_label names the source in messages. */
int flx_perf_config_parse(const char *json, const char *file_label, flx_perf_config *cfg,
                          flx_error *err);
/* Checks the hardware rules (non-zero parallelism, divisibility the kernels
 * need); file_label names the source in messages. */
int flx_perf_config_validate(const flx_perf_config *cfg, const char *file_label,
                             flx_error *err);
/* name_or_path: an existing file, a path ending in ".json", or a bare name
 * ("u280", "u280_mem_opt", "v80") looked up in config_dir (NULL: the compiled-in
 * source-tree directory, then the install directory): NAME.json. */
int flx_perf_config_find(const char *name_or_path, const char *config_dir,
                         flx_perf_config *cfg, flx_error *err);
/* The directories searched for bare names, in order (NULL-terminated). */
const char *const *flx_perf_config_dirs(void);

/* ---------------------------------------------------------------- modules */

/* One module's cost for the work of one call (a token block in prefill, one
 * token in decode), straight from its loop structure. */
typedef struct flx_perf_module {
    double cycles;        /* busy cycles of the compute loops                       */
    double in_cycles;     /* of which: cycles spent reading its input stream        */
    double first_out;     /* cycles from its start to its first consumable output   */
    double tail;          /* cycles of work left after its last input beat arrives  */
    int    store_forward; /* 1: needs its whole input before the non-input work     */
    double hbm_bytes;     /* bytes moved over HBM ports by this call                */
    double port_bytes;    /* of which: bytes on the busiest port                    */
    int    hbm_ports;     /* ports used                                             */
} flx_perf_module;

/* Prefill, per token block of tp tokens, L = padded prefill length. */
flx_perf_module flx_perf_pref_linear(int tp, int wp, int wp_read, int n_blocks_bn, int k_in,
                                     int o_out, double lambda);
flx_perf_module flx_perf_pref_qk(int tp, int k_par, int n_q_heads, int head_dim, int L,
                                 double lambda);
flx_perf_module flx_perf_pref_av(int tp, int v_par, int n_q_heads, int head_dim, int L,
                                 double lambda);
flx_perf_module flx_perf_pref_softmax(int n_q_heads, int L);
flx_perf_module flx_perf_pref_stream(int n_beats);           /* mask, dequant, RoPE, quant8 */
flx_perf_module flx_perf_pref_rmsnorm(int tp, int dim);      /* gamma load counted per call */
flx_perf_module flx_perf_pref_act_quant(int tp, int k);
flx_perf_module flx_perf_pref_fht(int n);
/* Decode, per token. */
flx_perf_module flx_perf_dec_gemv(int b, int w, int k_in, int o_out, double lambda);
flx_perf_module flx_perf_dec_act_quant(int b, int k);
flx_perf_module flx_perf_dec_rmsnorm(int bt, int dim);
flx_perf_module flx_perf_dec_io_buffer(int c, int b_in, int b_out);
flx_perf_module flx_perf_dec_fht(int b, int n);
flx_perf_module flx_perf_dec_qk(int hp, int k_par, int n_q_heads, int head_dim, int S,
                                double lambda);  /* per head iteration */
flx_perf_module flx_perf_dec_softmax(int S);     /* per head iteration */
flx_perf_module flx_perf_dec_av(int hp, int v_par, int head_dim, int S,
                                double lambda);  /* per head iteration */
/* Two HBM round trips between layers (drain, then reload, in dec_block_io_sync). */
flx_perf_module flx_perf_dec_layer_sync(double hbm_latency);
/* The next token's embedding row fetched from DDR: latency + D/B_T beats. */
flx_perf_module flx_perf_dec_embedding(int bt, int dim, double ddr_latency);
/* One sort_top_k insert into a top_k list: the find loop (II 1, top_k trips,
 * depth cmp_depth) plus the insert/shift loop (II insert_ii, depth 2) or, with
 * insert_ii = 0, one state of unrolled shift; each pipelined loop costs
 * loop_overhead extra states. */
double flx_perf_sort_insert_cycles(int top_k, int insert_ii, double cmp_depth,
                                   double loop_overhead);
/* dec_Sampling_Embedding_Layer over vocab_pad logits in chunks of b x w:
 * buffer w beats, then w insert steps of b lanes (serial or parallel), then
 * the top_k x b merge and the softmax/CDF tail (3 float pipelines of depth
 * fill). */
flx_perf_module flx_perf_dec_sampling(int b, int w, int vocab_pad, int top_k, int lanes_serial,
                                      int insert_ii, double cmp_depth, double loop_overhead,
                                      double fill);

/* ---------------------------------------------------------------- composition */

/* Wall cycles of n_items flowing through a linear chain of stages (each item
 * visits every stage in order; a stage works on one item at a time).  The
 * recurrence is in docs/perf-model.md; for store-and-forward stages it gives
 * the classic sum(t) + (n - 1) * max(t). */
double flx_perf_pipeline(const flx_perf_module *stages, int n_stages, int64_t n_items);

/* The module slowed to its busiest port's pace when memory is the limit. */
flx_perf_module flx_perf_bw_limit(flx_perf_module m, double port_bytes_per_cycle);

/* Bytes one HBM port delivers per kernel cycle: min(port width, efficiency x
 * port bandwidth / clock). */
double flx_perf_port_bytes_per_cycle(const flx_perf_config *cfg);

#define FLX_PERF_MAX_STAGES 40
#define FLX_PERF_NAME 24

typedef struct flx_perf_stage {
    char   name[FLX_PERF_NAME];
    double cycles;          /* cycles on the critical path (sequential parts) or busy  */
    double busy_cycles;     /* cycles the module works (summed over blocks/tokens)     */
    double compute_cycles;  /* loop-structure cycles                                   */
    double memory_cycles;   /* cycles its busiest HBM port needs for its bytes         */
    double hbm_bytes;       /* bytes moved over HBM                                    */
    int    hbm_ports;
    int    memory_bound;    /* memory_cycles > compute_cycles                          */
} flx_perf_stage;

typedef struct flx_perf_phase {
    int            n_stages;
    flx_perf_stage stage[FLX_PERF_MAX_STAGES];
    double         cycles;   /* wall cycles of the phase */
} flx_perf_phase;

typedef struct flx_perf_report {
    int64_t prompt_tokens;    /* P                                                     */
    int64_t prefill_tokens;   /* n = P - 1 prompt tokens the prefill kernel processes  */
    int64_t prefill_padded;   /* n padded to the block multiple the hardware needs     */
    int64_t decode_tokens;    /* D generated tokens                                    */
    flx_perf_phase prefill;   /* busy cycles per stage over all layers                 */
    double prefill_kv_pass_cycles;  /* K/V pass (barrier) part, all layers               */
    double prefill_fill_cycles;     /* pipeline fill/drain, all layers                   */
    double prefill_steady_cycles;   /* n_blocks x slowest stage, all layers              */
    char   prefill_bottleneck[FLX_PERF_NAME];
    flx_perf_phase decode;    /* cycles per stage summed over all decode steps         */
    double clock_hz;
    double prefill_s, handover_s, ttft_s, decode_s, e2e_s;
    double decode_tokens_per_s;
    double first_step_s;      /* decode step producing the first token               */
    double power_w, energy_j;
    int    hmt;               /* 1: the prefill went through the HMT plug-in         */
} flx_perf_report;

/* Prefill length after the host's padding (multiple of lcm(16, TP, Kp)). */
int64_t flx_perf_prefill_pad(const flx_perf_config *cfg, int64_t n_tokens);

/* Prefill kernel cycles for n_tokens tokens (padded as the host does), all
 * layers, including the kernel call; fills rep's prefill fields (rep may be
 * NULL to only validate). */
int flx_perf_prefill(const flx_perf_config *cfg, int64_t n_tokens, flx_perf_report *rep,
                     flx_error *err);
/* One decode step at position n + t, context = n + t + 1 positions (the
 * current token included); the step attends context keys when
 * dec.attend_current is 1 (FlexLLM) and context - 1 when it is 0 (FSQ).
 * ADDS the step's per-stage cycles and its total to *phase (zero it first to
 * get one step alone); phase may be NULL to only validate. */
int flx_perf_decode_step(const flx_perf_config *cfg, int64_t context, flx_perf_phase *phase,
                         flx_error *err);
/* The whole host flow: prefill of P - 1 tokens, KV hand-over, D decode steps. */
int flx_perf_run(const flx_perf_config *cfg, int64_t prompt_tokens, int64_t decode_tokens,
                 flx_perf_report *rep, flx_error *err);

/* The part of a run after the prefill, shared by flx_perf_run and the HMT
 * run: KV hand-over of n_ctx positions, decode_tokens steps starting at
 * context n_ctx + 1, then TTFT, end-to-end time, decode rate, power and
 * energy.  rep->clock_hz and rep->prefill_s must already be set. */
int flx_perf_finish_run(const flx_perf_config *cfg, int64_t n_ctx, int64_t decode_tokens,
                        flx_perf_report *rep, flx_error *err);

/* ---------------------------------------------------------------- sensitivity */

typedef struct flx_perf_sensitivity_row {
    char   name[40];      /* config field                                   */
    char   range[48];     /* why this range                                 */
    double value, lo, hi; /* configured value and the range tried           */
    double rate_lo_pct;   /* decode tokens/s change at lo, % of the base    */
    double rate_hi_pct;   /* ... at hi                                      */
    int    over_2pct;     /* either end moves decode by more than 2 %        */
} flx_perf_sensitivity_row;

/* One row per assumed constant (see perf_sensitivity.c for the ranges);
 * returns the number of rows written (<= max_rows) or a negative error. */
int flx_perf_sensitivity(const flx_perf_config *cfg, int64_t prompt_tokens,
                         int64_t decode_tokens, flx_perf_sensitivity_row *rows, int max_rows,
                         double *base_tokens_per_s, flx_error *err);
int flx_perf_sensitivity_count(void);

/* ---------------------------------------------------------------- HMT plug-in */

typedef struct flx_perf_hmt_report {
    int64_t n_segments;        /* ceil(n / 990)                                    */
    double  stage0_cycles;     /* summary prefills (segments after the first)      */
    double  retrieval_cycles;  /* fp32 Qn, scores, softmax, Pn and Kn GEMVs        */
    double  stage1_cycles;     /* 1024-token prefills                              */
    double  total_cycles;
} flx_perf_hmt_report;

/* Longest prompt the HMT prefill takes: 64 segments of 990 tokens. */
int64_t flx_perf_hmt_max_tokens(void);
/* Per segment: the summary (stage 0, 0 for the first segment) and stage-1
 * sequence lengths of an HMT prefill of n_tokens; returns the number of
 * segments, or -1 if n_tokens is out of range or max is too small. */
int flx_perf_hmt_stage_lengths(int64_t n_tokens, int64_t *stage0, int64_t *stage1, int max);
/* HMT prefill of n_tokens: adds the stage prefills' per-stage busy cycles and
 * an "hmt_retrieval" stage to rep->prefill (zero rep first); the last stage-1
 * length (the decode context) goes to *last_stage1_tokens (may be NULL). */
int flx_perf_hmt_prefill(const flx_perf_config *cfg, int64_t n_tokens, flx_perf_report *rep,
                         flx_perf_hmt_report *hmt, int64_t *last_stage1_tokens, flx_error *err);
/* Host flow with HMT: HMT prefill of P - 1 tokens, hand-over of the last
 * stage-1 KV, D decode steps attending it. */
int flx_perf_run_hmt(const flx_perf_config *cfg, int64_t prompt_tokens, int64_t decode_tokens,
                     flx_perf_report *rep, flx_perf_hmt_report *hmt, flx_error *err);

/* API for the emulator (issue 5 item 6): the device time of the work a
 * `generate`/`ppl --engine emu` run did, under a configuration loaded with
 * flx_perf_config_find("u280_mem_opt", NULL, &cfg, &err). */
int flx_perf_prefill_seconds(const flx_perf_config *cfg, int64_t n_tokens, double *cycles,
                             double *seconds, flx_error *err);
int flx_perf_decode_step_seconds(const flx_perf_config *cfg, int64_t context, double *cycles,
                                 double *seconds, flx_error *err);

/* ---------------------------------------------------------------- resources, power */

typedef struct flx_perf_resources {
    double luts, dsps, bram36, urams;
    int    hbm_ports_prefill, hbm_ports_decode;
} flx_perf_resources;

/* Kernel resources (shell excluded) of the configuration's prefill and decode
 * kernels, both resident in one bitstream. */
void flx_perf_resources_of(const flx_perf_config *cfg, flx_perf_resources *r);
/* The prefill kernel alone (with_arrays = 0: without its linear and attention
 * arrays: norms, quantizers, buffers, ports) and the decode kernel alone. */
void flx_perf_resources_prefill(const flx_perf_config *cfg, int with_arrays,
                                flx_perf_resources *r);
void flx_perf_resources_decode(const flx_perf_config *cfg, flx_perf_resources *r);
void flx_perf_resources_add(flx_perf_resources *a, const flx_perf_resources *b);
/* Utilization: the largest fraction of the user-available LUT/DSP/BRAM/URAM. */
double flx_perf_utilization(const flx_perf_config *cfg, const flx_perf_resources *r);
int    flx_perf_fits(const flx_perf_config *cfg, const flx_perf_resources *r, char *why,
                     size_t why_bytes);
double flx_perf_board_power(const flx_perf_config *cfg, double utilization);

/* ---------------------------------------------------------------- GPU baseline */

typedef struct flx_gpu_model {
    char   name[48];
    double hbm_gbps;        /* peak DRAM bandwidth                              */
    double peak_tflops;     /* dense BF16 tensor-core peak                      */
    double mem_efficiency;  /* sustained fraction of hbm_gbps (documented)      */
    double flop_efficiency; /* sustained fraction of peak in prefill GEMMs      */
    double idle_w, max_w;   /* board power at idle and at TDP                   */
    double step_overhead_s; /* framework/launch overhead per forward pass       */
    double layer_overhead_s;/* ... and per decoder layer per forward pass       */
    int    bytes_per_param; /* 2 (BF16)                                         */
    char   source[1024];    /* where the overhead figure comes from             */
} flx_gpu_model;

/* The built-in A100 roofline (no overhead). */
void flx_gpu_a100_bf16(flx_gpu_model *g);

#define FLX_GPU_MAX_BASELINES 8
/* Loads the GPU baselines of a JSON file (perf/configs/gpu_a100.json: device
 * figures plus one entry per framework, each with its cited source); a bare
 * name is looked up like a configuration.  Returns the number loaded (>= 1) or
 * a negative error naming file and field. */
int flx_gpu_load(const char *name_or_path, flx_gpu_model *models, int max_models,
                 flx_error *err);

typedef struct flx_gpu_report {
    double prefill_s, decode_s, e2e_s, ttft_s, decode_tokens_per_s;
    double prefill_w, decode_w, energy_j;
    int    prefill_memory_bound;
} flx_gpu_report;

void flx_gpu_run(const flx_gpu_model *g, const flx_perf_model *m, int64_t prompt_tokens,
                 int64_t decode_tokens, flx_gpu_report *rep);

/* ---------------------------------------------------------------- headline claims */

typedef struct flx_perf_claim {
    char   id[40];            /* "u280.e2e", "hmt.prefill_latency", ...              */
    char   claim[64];         /* what the paper claims                                */
    char   design[64];        /* FPGA configuration evaluated                         */
    char   unit[12];          /* unit of fpga_value / gpu_value                       */
    int    projection;        /* 1: V80, a projection, not a built design             */
    int    alternative;       /* 1: an alternative reading, not the assumed one       */
    double paper;             /* the paper's ratio                                    */
    char   interpretation[400];
    double fpga_value;        /* the FPGA side of the ratio                           */
    int    n_base;
    char   base[FLX_GPU_MAX_BASELINES][48];
    double gpu_value[FLX_GPU_MAX_BASELINES];  /* the GPU side under each baseline     */
    double model[FLX_GPU_MAX_BASELINES];      /* the model's ratio under each baseline */
} flx_perf_claim;

/* Every headline claim (U280 on u280_mem_opt and u280_fsq, V80 projection,
 * HMT) under each GPU baseline.  Returns the number of rows or a negative error. */
int flx_perf_claims(const flx_gpu_model *gpus, int n_gpu, flx_perf_claim *claims, int max_claims,
                    flx_error *err);
/* SVG of the claims table: paper vs model per baseline, log-scale bars. */
int flx_perf_svg_claims(FILE *fp, const flx_perf_claim *claims, int n_claims);

/* ---------------------------------------------------------------- design space */

typedef enum flx_dse_family {
    FLX_DSE_HYBRID   = 0,  /* spatial prefill + temporal decode (FlexLLM)          */
    FLX_DSE_TEMPORAL = 1,  /* one shared engine for both stages                    */
    FLX_DSE_SPATIAL  = 2,  /* per-linear dataflow arrays used by both stages        */
} flx_dse_family;

const char *flx_dse_family_name(flx_dse_family f);

typedef struct flx_dse_point {
    flx_dse_family       family;
    flx_perf_prefill_par pre;
    flx_perf_decode_par  dec;
    double prefill_s, decode_s, e2e_s, energy_j, power_w, utilization;
    flx_perf_resources   res;
    int    pareto;           /* on the (e2e, energy) Pareto front */
} flx_dse_point;

typedef enum flx_dse_objective { FLX_DSE_E2E = 0, FLX_DSE_ENERGY = 1 } flx_dse_objective;

typedef struct flx_dse_result {
    flx_dse_point *points;    /* every feasible design evaluated (owned)           */
    int64_t        n_points;
    int64_t        n_rejected;/* designs over the device's limits                  */
    int64_t       *pareto;    /* indices into points, by increasing e2e (owned)    */
    int64_t        n_pareto;
    int64_t        best[3];   /* best per family by the objective (-1 if none)     */
    int64_t        best_all;
} flx_dse_result;

/* Sweeps the three families on base's device.  progress may be NULL. */
int  flx_dse_run(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                 flx_dse_objective obj, flx_dse_result *res, flx_progress *progress,
                 flx_error *err);
void flx_dse_free(flx_dse_result *res);

/* The sweep in pieces, to spread it over processes (flxemu dse under MPI):
 * flx_dse_run is flx_dse_task_run for every task i < flx_dse_n_tasks()
 * (each independent of the others: one prefill option with the
 * unified-spatial decode on it, one decode engine, or one unified-temporal
 * design), then flx_dse_finish on all the tasks in order; done in pieces it
 * gives the same result, bit for bit.  flx_dse_task is plain data (no
 * pointers), so it can travel between processes of the same program. */
typedef struct flx_dse_task {
    int32_t kind;                  /* 0 prefill option, 1 decode engine, 2 temporal   */
    int32_t valid;                 /* 0: the option does not exist on this device    */
    flx_perf_prefill_par pre;      /* prefill option                                 */
    flx_perf_decode_par  dec;      /* decode engine                                  */
    double prefill_s;              /* prefill option: prefill + KV hand-over         */
    double decode_s;               /* prefill option: spatial decode; engine: decode */
    flx_perf_resources res;        /* prefill option or decode engine                */
    flx_dse_point pt;              /* temporal design                                */
} flx_dse_task;

int64_t flx_dse_n_tasks(void);
/* FLX_EINVAL when the prompt/decode lengths exceed base's limits (as
 * flx_dse_run reports them). */
int  flx_dse_check(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                   flx_error *err);
int  flx_dse_task_run(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                      int64_t i, flx_dse_task *t, flx_error *err);
int  flx_dse_finish(const flx_perf_config *base, int64_t prompt_tokens, int64_t decode_tokens,
                    flx_dse_objective obj, const flx_dse_task *tasks, flx_dse_result *res,
                    flx_error *err);
/* Evaluates one design of a family (used by the sweep and the tests). */
int  flx_dse_eval(const flx_perf_config *base, flx_dse_family fam,
                  const flx_perf_prefill_par *pre, const flx_perf_decode_par *dec,
                  int64_t prompt_tokens, int64_t decode_tokens, flx_dse_point *pt,
                  flx_error *err);

/* ---------------------------------------------------------------- pictures */

/* SVG of the per-stage time breakdown (prefill and decode).  Returns 0/-1. */
int flx_perf_svg_breakdown(FILE *fp, const flx_perf_config *cfg, const flx_perf_report *rep);
/* A named design drawn on the Pareto plot (production, FSQ). */
typedef struct flx_dse_mark {
    char          label[48];
    flx_dse_point pt;
} flx_dse_mark;

/* SVG of the DSE points and Pareto front (e2e latency vs energy), with the
 * marked designs as labelled stars; the legend sits right of the plots. */
int flx_perf_svg_pareto(FILE *fp, const flx_perf_config *base, const flx_dse_result *res,
                        flx_dse_objective obj, const flx_dse_mark *marks, int n_marks);

#ifdef __cplusplus
}
#endif
#endif /* FLX_PERF_H */
