/* cli_model.h -- the model behind `flxemu ppl` and `flxemu generate`: a
 * float checkpoint, a .flxq's fake-quant float model, a .flxq on the
 * bit-exact engine (--engine emu), or the embedded synthetic "tiny" model
 * when no path is given; and the tokenizer that goes with it. */
#ifndef FLX_CLI_MODEL_H
#define FLX_CLI_MODEL_H

#include "cli_emu.h"

#define CLI_EMBEDDED_SEED 1234   /* seed of the embedded synthetic model */

typedef struct cli_model {
    flx_model model;              /* float (or fake-quant) weights           */
    flx_fakequant *fq;            /* float engine on a .flxq, else NULL      */
    cli_emu emu;                  /* --engine emu                            */
    const flx_model *mp;          /* what a run reads: model, or emu's view  */
    flx_tokenizer *tok_over;      /* --tokenizer                             */
    const flx_tokenizer *tok;     /* tok_over, else the model's own (or NULL) */
} cli_model;

/* Opens path (NULL: the embedded model) for the float engine or, with emu,
 * the bit-exact one (path must be a .flxq); then the tokenizer override.
 * cli_model_close after either outcome. */
int  cli_model_open(cli_model *m, const char *path, int emu, const char *tokenizer, int threads,
                    flx_error *err);
void cli_model_close(cli_model *m);

#endif
