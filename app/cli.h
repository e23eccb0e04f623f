/* cli.h -- what every flxemu subcommand shares: the command table, strict
 * number parsing for flags, and the exit-code convention
 *   0 success, 1 runtime failure (bad file, numeric error), 2 usage error. */
#ifndef FLX_CLI_H
#define FLX_CLI_H

#include "flx_core.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* ---------------------------------------------------------------- options
 * One small option parser for every subcommand.  A command declares a table
 * of cli_opt (long name, short letter, kind, metavar, help, where the value
 * goes); the same table parses argv, prints --help (usage, options,
 * examples) and suggests the nearest option for a misspelled one
 * ("unknown option '--ctxx' (did you mean '--ctx'?)", exit 2).
 * Accepted forms: --name VALUE, --name=VALUE, -x VALUE, -xVALUE, flags;
 * -h/--help anywhere prints the help; "--" ends the options; everything not
 * an option is positional (a lone "-" too). */

/* The one default of every --seed option (flxemu quantize, analyze, synth,
 * generate, golden). */
#define CLI_DEFAULT_SEED 0
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)
#define CLI_SEED_DEFAULT_TEXT "default " CLI_STR(CLI_DEFAULT_SEED)

typedef enum cli_kind {
    CLI_END = 0,   /* ends a table                                            */
    CLI_SECTION,   /* a heading line in --help (help text), not an option      */
    CLI_FLAG,      /* no value: stores .set into an int                        */
    CLI_STR,       /* const char *                                            */
    CLI_INT,       /* long long in [ilo, ihi]                                  */
    CLI_I32,       /* int32_t in [ilo, ihi]                                    */
    CLI_NUM,       /* double in [dlo, dhi]                                     */
    CLI_CHOICE,    /* one of .choices ("a|b|c"): its index into an int         */
    CLI_CUSTOM,    /* .parse(value, dst) == 0, else "expects .expect"          */
} cli_kind;

typedef struct cli_opt {
    cli_kind    kind;
    const char *name;        /* long name without "--" (NULL for a section) */
    char        short_name;  /* -x, or 0                                    */
    const char *metavar;     /* the value in --help (NULL for flags)        */
    size_t      offset;      /* destination in the group's struct           */
    const char *help;        /* lines separated by '\n'                     */
    long long   ilo, ihi;    /* CLI_INT, CLI_I32 range                      */
    double      dlo, dhi;    /* CLI_NUM range                               */
    int         set;         /* CLI_FLAG: the value stored                  */
    int         mark;        /* given: ++*group.seen                        */
    const char *choices;     /* CLI_CHOICE ("llamacpp|llama.cpp" aliases go last) */
    const char *expect;      /* CLI_CUSTOM: what the error says it expects  */
    int       (*parse)(const char *value, void *dst);   /* CLI_CUSTOM     */
} cli_opt;

/* Table entries, for readability: O is offsetof in the group's struct. */
#define CLI_SEC(text) {.kind = CLI_SECTION, .help = (text)}
#define CLI_S(nm, sh, meta, O, h) {.kind = CLI_STR, .name = (nm), .short_name = (sh), .metavar = (meta), .offset = (O), .help = (h)}
#define CLI_F(nm, sh, val, O, h) {.kind = CLI_FLAG, .name = (nm), .short_name = (sh), .set = (val), .offset = (O), .help = (h)}
#define CLI_I(nm, sh, meta, O, lo, hi, h) {.kind = CLI_INT, .name = (nm), .short_name = (sh), .metavar = (meta), .offset = (O), .ilo = (lo), .ihi = (hi), .help = (h)}
#define CLI_N(nm, sh, meta, O, lo, hi, h) {.kind = CLI_NUM, .name = (nm), .short_name = (sh), .metavar = (meta), .offset = (O), .dlo = (lo), .dhi = (hi), .help = (h)}
#define CLI_C(nm, meta, ch, O, h) {.kind = CLI_CHOICE, .name = (nm), .metavar = (meta), .choices = (ch), .offset = (O), .help = (h)}
#define CLI_SEED(O, h) CLI_I("seed", 0, "S", O, 0, INT64_MAX, h " (" CLI_SEED_DEFAULT_TEXT ")")
#define CLI_THREADS(O) CLI_I("threads", 't', "N", O, 1, 1024, "threads (default: all cores)")

/* A table and the struct its offsets point into; seen (optional) counts the
 * options given that have .mark set. */
typedef struct cli_group {
    const cli_opt *opts;
    void          *base;
    int           *seen;
} cli_group;

typedef struct cli_spec {
    const char *name;        /* "ppl"                                                */
    const char *usage;       /* after "usage: flxemu NAME ", '\n' before each further form */
    const char *about;       /* what the command does                                */
    const char *positional;  /* help of the positional arguments, or NULL (none taken) */
    int         max_positional;
    const char *examples;    /* one "flxemu ..." line each ("  # comment" allowed)   */
    const char *notes;       /* printed last (before the exit status), or NULL       */
    void      (*more_help)(FILE *fp);   /* dynamic text after the notes, or NULL   */
    int         once;        /* 1: an option with a value given twice is an error    */
} cli_spec;

/* Parses argv[1..argc-1] (argv[0] is the command name).  Positional
 * arguments go to pos[0..*n_pos-1] (at most spec->max_positional).
 * Returns 0, CLI_HELP_SHOWN after printing the help (exit 0), or
 * FLX_EXIT_USAGE after printing the error. */
#define CLI_HELP_SHOWN (-1)
int cli_parse(const cli_spec *spec, const cli_group *groups, int n_groups, int argc, char **argv,
              const char **pos, int *n_pos);

/* The help text of a command, as --help prints it. */
void cli_help(FILE *fp, const cli_spec *spec, const cli_group *groups, int n_groups);

/* Edit distance (insertions, deletions, substitutions, adjacent swaps). */
int cli_edit_distance(const char *a, const char *b);

/* A path given as the positional argument or as --FLAG, not both:
 * *dst keeps the flag's value, or takes the positional one.  Returns 0 or
 * FLX_EXIT_USAGE (printed). */
int cli_positional_path(const char *cmd, const char *flag, const char **dst, const char *pos);

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

/* s as a JSON string literal: quotes, backslashes and control bytes escaped;
 * NULL is "". */
void cli_json_str(FILE *fp, const char *s);

/* text and then tail written to path atomically (flx_outfile); an exit
 * status, the message printed on failure.  text NULL: out of memory. */
int cli_write_text(const char *cmd, const char *path, const char *text, const char *tail);

/* A drawing (SVG) made by draw(fp, ctx) != 0 on failure, written to path
 * atomically; an exit status, the message printed on failure. */
typedef int (*cli_draw_fn)(FILE *fp, const void *ctx);
int cli_write_drawing(const char *cmd, const char *path, cli_draw_fn draw, const void *ctx);

/* Where the shared test data lives: $FLXEMU_DATA, else NULL. */
const char *cli_data_dir(void);

#endif
