/* cli_emu.h -- the bit-exact engine behind `flxemu ppl/generate --engine emu`:
 * a .flxq model checked for the FlexLLM hardware, its engine, a thread pool,
 * and the U280 cycle model for the device time of the work done. */
#ifndef FLX_CLI_EMU_H
#define FLX_CLI_EMU_H

#include "cli.h"
#include "flx_emu.h"
#include "flx_perf.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"

#define CLI_EMU_U280_PREFILL_TOKENS 1024   /* MAX_PRE_SEQ_LEN of the U280 build */
#define CLI_EMU_PERF_CONFIG "u280_mem_opt" /* production configuration          */

typedef struct cli_emu {
    flx_qmodel      qm;
    int             qm_open;
    flx_emu_engine  eng;
    int             eng_open;
    flx_pool       *pool;
    flx_model       view;     /* cfg and tok of qm, no weights: for code taking a flx_model */
    flx_perf_config perf;
    int             perf_ok;  /* 0: device time unavailable, perf_note says why */
    char            perf_note[FLX_ERROR_MSG_BYTES];
} cli_emu;

/* The engine's float options (--exp glibc|flx, --ftz, --reference-quirks):
 * an option table over flx_emu_opts, each marking the group's seen count. */
extern const cli_opt cli_emu_opts[];

/* Loads a .flxq model (a path that is not one gets a message saying to run
 * flxemu quantize) on a pool of n_threads threads, its 4-bit codes left as
 * the file's nibbles; then cli_emu_start builds its engine for max_pos
 * positions on that pool (FLX_EUNSUPPORTED with the reason when the
 * hardware cannot run the model's recipe or shape).  cli_emu_close after
 * either. */
int  cli_emu_load(cli_emu *x, const char *path, int n_threads, flx_error *err);
int  cli_emu_start(cli_emu *x, const flx_emu_opts *o, int64_t max_pos, int n_threads,
                   flx_error *err);
void cli_emu_close(cli_emu *x);

/* flx_ppl_window_fn over flx_emu_window_logits (ctx: cli_emu). */
int cli_emu_window(void *ctx, const int32_t *tokens, int64_t n_ctx, flx_ppl_rows_fn rows_fn,
                   void *rows_ctx, flx_error *err);

/* Simulated U280 seconds of a prefill of n tokens / a decode step attending
 * `context` keys; -1 when the cycle model is unavailable or refuses. */
double cli_emu_prefill_seconds(cli_emu *x, int64_t n_tokens);
double cli_emu_decode_seconds(cli_emu *x, int64_t context);

/* 1 when the model has the shape the configuration's design is built for
 * (layers, widths, heads, vocabulary); the device time is always that
 * design's, so callers say so when it is not. */
int cli_emu_shape_matches(const cli_emu *x);

#endif
