/* The model behind `flxemu ppl` and `flxemu generate` (cli_model.h). */
#include "cli_model.h"
#include "flx_synth.h"

#include <string.h>

int cli_model_open(cli_model *m, const char *path, int emu, const char *tokenizer, int threads,
                   flx_error *err)
{
    memset(m, 0, sizeof *m);
    m->mp = &m->model;
    if (emu) {
        if (cli_emu_load(&m->emu, path, threads, err)) return FLX_EIO;
        m->mp = &m->emu.view;
    } else if (path && flx_qmodel_is_file(path)) {
        if (flx_fakequant_open_lean(&m->fq, &m->model, path, threads, err)) return FLX_EIO;
    } else if (path) {
        if (flx_model_load(&m->model, path, err)) return FLX_EIO;
    } else {
        flx_llama_config cfg;
        if (flx_synth_config("tiny", &cfg, err) || flx_synth_build(&m->model, &cfg, CLI_EMBEDDED_SEED, err))
            return FLX_EIO;
    }
    if (tokenizer && flx_tokenizer_load(&m->tok_over, tokenizer, err)) return FLX_EIO;
    m->tok = m->tok_over ? m->tok_over : m->mp->tok;
    return FLX_OK;
}

void cli_model_close(cli_model *m)
{
    flx_tokenizer_free(m->tok_over);
    flx_model_free(&m->model);
    flx_fakequant_close(m->fq);
    cli_emu_close(&m->emu);
    memset(m, 0, sizeof *m);
}
