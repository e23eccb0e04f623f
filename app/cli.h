/* cli.h -- what every flxemu subcommand shares: the command table, strict
 * number parsing for flags, and the exit-code convention
 *   0 success, 1 runtime failure (bad file, numeric error), 2 usage error. */
#ifndef FLX_CLI_H
#define FLX_CLI_H

#include "flx_core.h"

#define FLX_EXIT_OK    0
#define FLX_EXIT_FAIL  1
#define FLX_EXIT_USAGE 2

typedef int (*flx_cmd_fn)(int argc, char **argv);

typedef struct flx_command {
    const char *name;
    const char *summary;
    flx_cmd_fn  run;
} flx_command;

/* Subcommands: argv[0] is the subcommand name; each handles --help itself. */
int flx_cmd_ppl(int argc, char **argv);
int flx_cmd_generate(int argc, char **argv);
int flx_cmd_tokenize(int argc, char **argv);
int flx_cmd_synth(int argc, char **argv);
int flx_cmd_info(int argc, char **argv);
int flx_cmd_quantize(int argc, char **argv);
int flx_cmd_analyze(int argc, char **argv);
int flx_cmd_compare(int argc, char **argv);
int flx_cmd_golden(int argc, char **argv);
int flx_cmd_perf(int argc, char **argv);
int flx_cmd_dse(int argc, char **argv);

/* Prints "flxemu CMD: message" and a hint to use --help; returns FLX_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints "flxemu CMD: <err->msg>"; returns FLX_EXIT_FAIL. */
int cli_fail(const char *cmd, const flx_error *err);

/* Strict parsers: the whole string must be a number within [lo, hi].
 * On failure they print a usage error naming the flag and return -1. */
int cli_parse_i64(const char *cmd, const char *flag, const char *s, long long lo,
                  long long hi, long long *out);
int cli_parse_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out);

/* An output file named by FLAG, checked before any long work starts (so a
 * bad --json does not surface after an hour of evaluation): NULL is fine, ""
 * is a usage error (FLX_EXIT_USAGE), a path flx_outfile_check() refuses is a
 * failure (FLX_EXIT_FAIL, message printed).  Returns FLX_EXIT_OK otherwise. */
int cli_check_output(const char *cmd, const char *flag, const char *path);

/* Where the shared test data lives: $FLXEMU_DATA, else NULL. */
const char *cli_data_dir(void);

#endif
