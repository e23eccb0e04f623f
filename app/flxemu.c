/* flxemu: the command-line front end.  Dispatches to one subcommand; all
 * work is done by libflxemu. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const flx_command commands[] = {
    {"ppl",      "perplexity of a model on a text (HF or llama.cpp protocol)", flx_cmd_ppl},
    {"generate", "generate text from a prompt (float reference or emulator)",  flx_cmd_generate},
    {"tokenize", "text to token ids and back",                                 flx_cmd_tokenize},
    {"synth",    "write a random-weight HF checkpoint (Llama-3.2-1B or tiny)", flx_cmd_synth},
    {"info",     "describe a model file: config, tensors, tokenizer",          flx_cmd_info},
    {"quantize", "quantize a model with a recipe into a .flxq file",           flx_cmd_quantize},
    {"analyze",  "per-layer quantization error, activation stats, sensitivity", flx_cmd_analyze},
    {"compare",  "several models on the same windows: one table of PPL/KLD",  flx_cmd_compare},
    {"golden",   "write or check golden vectors of the bit-exact kernels",     flx_cmd_golden},
    {"perf",     "cycle-approximate latency, throughput and energy",           flx_cmd_perf},
    {"dse",      "design-space exploration of FlexLLM parallelism",            flx_cmd_dse},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu COMMAND [options]\n"
            "\n"
            "Bit-accurate emulator and float reference of the FlexLLM Llama accelerator.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp,
            "\n"
            "Examples:\n"
            "  flxemu ppl                                   # embedded tiny model, built-in text\n"
            "  flxemu info llama-3.2-1b/\n"
            "  flxemu quantize llama-3.2-1b/ --recipe flexllm --calib calib.txt --out q.flxq\n"
            "  flxemu ppl q.flxq --engine emu --chunks 4\n"
            "\n"
            "Run 'flxemu help COMMAND' or 'flxemu COMMAND --help' for a command's options.\n"
            "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int dispatch(int argc, char **argv, const char **name)
{
    if (argc < 2) {
        usage(stderr);
        return FLX_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "help") && argc > 2) {   /* flxemu help COMMAND = flxemu COMMAND --help */
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *av[2] = {argv[2], "--help"};
                *name = commands[i].name;
                return commands[i].run(2, av);
            }
        fprintf(stderr, "flxemu: unknown command '%s'\n\n", argv[2]);
        usage(stderr);
        return FLX_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return FLX_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("flxemu 0.1.0\n");
        return FLX_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            *name = commands[i].name;
            return commands[i].run(argc - 1, argv + 1);
        }
    const char *near = NULL;
    int best = 3;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        int d = cli_edit_distance(argv[1], commands[i].name);
        if (d < best) {
            best = d;
            near = commands[i].name;
        }
    }
    if (near) fprintf(stderr, "flxemu: unknown command '%s' (did you mean '%s'?)\n\n", argv[1], near);
    else fprintf(stderr, "flxemu: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return FLX_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* an interrupted run leaves no temporary output file behind */
    flx_outfile_catch_signals();
    const char *name = NULL;
    int rc = dispatch(argc, argv, &name);
    /* Output that did not reach stdout (a full disk, /dev/full, a closed pipe
     * with SIGPIPE ignored) is a failure, whatever the command thought. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == FLX_EXIT_OK) {
            if (name) fprintf(stderr, "flxemu %s: <stdout>: write error\n", name);
            else fprintf(stderr, "flxemu: <stdout>: write error\n");
        }
        return rc == FLX_EXIT_OK ? FLX_EXIT_FAIL : rc;
    }
    return rc;
}
