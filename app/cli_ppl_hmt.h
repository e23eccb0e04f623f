/* cli_ppl_hmt.h -- `flxemu ppl --hmt FILE`: long-context perplexity through
 * the HMT plug-in (docs/hmt.md), on the float engine or the bit-exact one. */
#ifndef FLX_CLI_PPL_HMT_H
#define FLX_CLI_PPL_HMT_H

#include "cli_emu.h"
#include "flx_hmt.h"

typedef struct cli_ppl_hmt {
    const char *path;          /* --hmt FILE (NULL: no HMT)                      */
    flx_hmt_settings over;     /* --hmt-segment-length/-sensory/-cache/-sum-fraction */
    long long segments;        /* --hmt-segments (default 16)                     */
    long long baseline_ctx;    /* --hmt-baseline-ctx (-1: the stage-1 length)     */
    int final_norm;            /* --hmt-final-norm on|off (-1: engine default)   */
    int quirks;                /* --hmt-quirks bits (-1: from --reference-quirks) */
    int eval;                  /* --hmt-eval pytorch|contexts (FLX_HMT_EVAL_*)    */
    long long batch;           /* --hmt-batch (pytorch: samples per PPL batch)   */
    int seen;                  /* an --hmt-* flag was given                       */
} cli_ppl_hmt;

void cli_ppl_hmt_init(cli_ppl_hmt *h);

/* The --hmt options: a table over cli_ppl_hmt; every --hmt-* marks seen. */
extern const cli_opt cli_ppl_hmt_opts[];

typedef struct cli_ppl_hmt_run_in {
    const flx_model *model;       /* float engine (hooks: fake quant), else NULL   */
    const flx_llama_hooks *hooks;
    int bf16;
    cli_emu *emu;                 /* emu engine (loaded, not started), else NULL   */
    const flx_emu_opts *eo;
    int threads, progress;
    long long max_windows;
    const int32_t *tokens;
    int64_t n_tokens;
    const char *json, *model_name, *text_name, *text_hex, *protocol;
} cli_ppl_hmt_run_in;

/* Loads the parameters, runs, prints, writes --json.  FLX_OK or a status
 * with err filled. */
int cli_ppl_hmt_run(const cli_ppl_hmt *h, const cli_ppl_hmt_run_in *in, flx_error *err);

#endif
