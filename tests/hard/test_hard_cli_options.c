/* The command line's one convention (issue 14 item 4): every command's
 * --help (and -h, and `flxemu help CMD`) prints the same text with
 * examples; a misspelled option gets the nearest one suggested and exit 2;
 * a missing value is exit 2; paths are accepted as positional arguments;
 * every --seed has the same default, and the default is what runs. */
#include "hard_util.h"

static const char *const COMMANDS[] = {"ppl", "generate", "tokenize", "synth", "info", "quantize",
                                       "analyze", "compare", "golden", "perf", "dse"};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static char out1[1 << 16], out2[1 << 16];

/* stdout of `flxemu ARGS` (stderr dropped) into buf; the exit status */
static int run_out(char *buf, size_t cap, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", flx_test_bin(), args);
    return flx_test_sh(cmd, buf, cap);
}

Test(hard_cli_options, help_everywhere_with_examples)
{
    for (size_t c = 0; c < N_COMMANDS; c++) {
        char args[256];
        snprintf(args, sizeof args, "%s --help", COMMANDS[c]);
        cr_assert_eq(run_out(out1, sizeof out1, args), 0, "%s", args);
        cr_assert(strstr(out1, "Examples:\n  flxemu "), "%s: no examples:\n%s", args, out1);
        char usage[64];
        snprintf(usage, sizeof usage, "usage: flxemu %s ", COMMANDS[c]);
        cr_assert(!strncmp(out1, usage, strlen(usage)), "%s:\n%s", args, out1);
        cr_assert(strstr(out1, "  -h, --help"), "%s", args);
        cr_assert(strstr(out1, "Exit status: 0 success, 1 failure, 2 usage error."), "%s", args);
        /* -h, `flxemu help CMD`, and --help before anything else print the same */
        const char *forms[] = {"%s -h", "help %s", "%s --help --frobnicate"};
        for (int f = 0; f < 3; f++) {
            snprintf(args, sizeof args, forms[f], COMMANDS[c]);
            cr_assert_eq(run_out(out2, sizeof out2, args), 0, "%s", args);
            cr_assert_str_eq(out1, out2, "'%s' differs from --help", args);
        }
    }
    /* the program's own help lists every command and has examples */
    cr_assert_eq(run_out(out1, sizeof out1, "--help"), 0);
    for (size_t c = 0; c < N_COMMANDS; c++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %-10s ", COMMANDS[c]);
        cr_assert(strstr(out1, line), "'%s' missing from flxemu --help", COMMANDS[c]);
    }
    cr_assert(strstr(out1, "Examples:"), "%s", out1);
    hard_run r = hard_sh("'%s' help nosuch >/dev/null", flx_test_bin());
    cr_assert_eq(r.status, 2, "%s", r.err);
    r = hard_sh("'%s' pll >/dev/null", flx_test_bin());
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "unknown command 'pll' (did you mean 'ppl'?)"), "%s", r.err);
}

Test(hard_cli_options, misspelled_option_did_you_mean)
{
    struct { const char *args, *want; } c[] = {
        {"ppl --ctxx 5", "flxemu ppl: unknown option '--ctxx' (did you mean '--ctx'?)"},
        {"quantize --modle m --recipe fp --out x.flxq", "unknown option '--modle' (did you mean '--model'?)"},
        {"generate --thread 2", "unknown option '--thread' (did you mean '--threads'?)"},
        {"perf --prefil 8", "unknown option '--prefil' (did you mean '--prefill'?)"},
        {"golden --kernal fht --out /tmp/x", "unknown option '--kernal' (did you mean '--kernel'?)"},
        {"info -json x", "unknown option '-json' (did you mean '--json'?)"},
        {"ppl --reference-quirk", "did you mean '--reference-quirks'?"},   /* a shared engine option */
        {"ppl --hmt-segment 3", "did you mean '--hmt-segments'?"},         /* a shared HMT option */
        {"ppl --ctxx=5", "unknown option '--ctxx=5' (did you mean '--ctx'?)"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        hard_run r = hard_sh("'%s' %s </dev/null >/dev/null", flx_test_bin(), c[i].args);
        cr_assert_eq(r.status, 2, "%s: %d %s", c[i].args, r.status, r.err);
        cr_assert(strstr(r.err, c[i].want), "%s: want \"%s\", got: %s", c[i].args, c[i].want, r.err);
        cr_assert(strstr(r.err, "--help"), "%s: no hint to --help: %s", c[i].args, r.err);
    }
    /* nothing near: no suggestion, still exit 2 */
    hard_run r = hard_sh("'%s' ppl --frobnicate >/dev/null", flx_test_bin());
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "unknown option '--frobnicate'") && !strstr(r.err, "did you mean"), "%s", r.err);
}

Test(hard_cli_options, missing_and_bad_values_exit_2)
{
    struct { const char *args, *want; } c[] = {
        {"ppl --ctx", "--ctx needs a value"},
        {"info --json", "--json needs a value"},
        {"generate -n", "-n needs a value"},
        {"synth --shape", "--shape needs a value"},
        {"ppl --ctx 1", "--ctx expects an integer in [2, 1048576], got '1'"},
        {"ppl --protocol gpt", "--protocol expects hf or llamacpp, got 'gpt'"},
        {"quantize --seed -1 --model m --recipe fp --out x", "--seed expects an integer"},
        {"ppl --bos=1", "--bos takes no value"},
        {"perf extra", "unexpected argument 'extra'"},
        {"info a b", "unexpected argument 'b'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        hard_run r = hard_sh("'%s' %s </dev/null >/dev/null", flx_test_bin(), c[i].args);
        cr_assert_eq(r.status, 2, "%s: %d %s", c[i].args, r.status, r.err);
        cr_assert(strstr(r.err, c[i].want), "%s: want \"%s\", got: %s", c[i].args, c[i].want, r.err);
    }
    /* --name=value and -xVALUE are the same as --name value */
    cr_assert_eq(run_out(out1, sizeof out1, "perf --prefill=64 --decode 8"), 0);
    cr_assert_eq(run_out(out2, sizeof out2, "perf --prefill 64 --decode=8"), 0);
    cr_assert_str_eq(out1, out2);
    cr_assert(strstr(out1, "prompt 64 tokens"), "%s", out1);
}

/* the "load time" line differs between two runs: compare up to it */
static void cut_load_time(char *s)
{
    char *t = strstr(s, "load time:");
    cr_assert_not_null(t, "%s", s);
    *t = 0;
}

Test(hard_cli_options, positional_paths)
{
    char gguf[4096], args[8192];
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("tiny-llama3-random.gguf"));
    /* info PATH = info --model PATH */
    snprintf(args, sizeof args, "info '%s'", gguf);
    cr_assert_eq(run_out(out1, sizeof out1, args), 0, "%s", args);
    snprintf(args, sizeof args, "info --model '%s'", gguf);
    cr_assert_eq(run_out(out2, sizeof out2, args), 0, "%s", args);
    cut_load_time(out1);
    cut_load_time(out2);
    cr_assert_str_eq(out1, out2);
    cr_assert(strstr(out1, "format:      gguf"), "%s", out1);
    /* both forms at once, or none: usage errors */
    hard_run r = hard_sh("'%s' info --model '%s' '%s' >/dev/null", flx_test_bin(), gguf, gguf);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "give the path once"), "%s", r.err);
    r = hard_sh("'%s' info >/dev/null", flx_test_bin());
    cr_assert_eq(r.status, 2, "%s", r.err);
    /* tokenize FILE = --file FILE = stdin = --text */
    const char *dir = flx_test_tmpdir();
    char txt[600];
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    hard_write(txt, "Hello world, once upon a time", 29);
    snprintf(args, sizeof args, "tokenize --model '%s' '%s'", gguf, txt);
    cr_assert_eq(run_out(out1, sizeof out1, args), 0, "%s", args);
    cr_assert_gt(strlen(out1), 10);
    const char *same[] = {"tokenize --model '%s' --file '%s'", "tokenize --model '%s' - < '%s'",
                          "tokenize --model '%s' < '%s'"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, same[i], gguf, txt);
        cr_assert_eq(run_out(out2, sizeof out2, args), 0, "%s", args);
        cr_assert_str_eq(out1, out2, "%s", args);
    }
    snprintf(args, sizeof args, "tokenize --model '%s' --text 'Hello world, once upon a time'", gguf);
    cr_assert_eq(run_out(out2, sizeof out2, args), 0, "%s", args);
    cr_assert_str_eq(out1, out2);
    /* a positional that is not a file: the message points to --text */
    r = hard_sh("'%s' tokenize --model '%s' 'Hello world' >/dev/null", flx_test_bin(), gguf);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "Hello world") && strstr(r.err, "use --text"), "%s", r.err);
    /* synth DIR = synth --out DIR (same bytes), then ppl MODEL = ppl --model MODEL */
    r = hard_sh("'%s' synth --shape tiny '%s/a' && '%s' synth --shape tiny --out '%s/b'", flx_test_bin(), dir,
                flx_test_bin(), dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = hard_sh("cmp '%s/a/model.safetensors' '%s/b/model.safetensors'", dir, dir);
    cr_assert_eq(r.status, 0, "synth DIR and synth --out DIR differ");
    snprintf(args, sizeof args, "ppl '%s/a' --file '%s' --ctx 8 --threads 1", dir, txt);
    cr_assert_eq(run_out(out1, sizeof out1, args), 0, "%s", args);
    snprintf(args, sizeof args, "ppl --model '%s/a' --file '%s' --ctx 8 --threads 1", dir, txt);
    cr_assert_eq(run_out(out2, sizeof out2, args), 0, "%s", args);
    cr_assert(strstr(out1, "Final estimate: PPL = "), "%s", out1);
    cr_assert_str_eq(out1, out2);
}

/* the "--seed S ... (default N)" line of a command's help, or NULL */
static const char *seed_default(const char *help, char *buf, size_t cap)
{
    const char *s = strstr(help, "--seed S");
    if (!s) return NULL;
    const char *d = strstr(s, "(default ");
    const char *eol = strchr(s, '\n');
    cr_assert(d && eol && d < eol, "--seed without a default: %.200s", s);
    snprintf(buf, cap, "%.*s", (int)(strcspn(d, ")") + 1), d);
    return buf;
}

Test(hard_cli_options, one_seed_default_and_it_is_used)
{
    /* the same default in every command that takes --seed */
    const char *with_seed[] = {"quantize", "analyze", "synth", "generate", "golden"};
    char first[64] = "", cur[64];
    int n_with = 0;
    for (size_t c = 0; c < N_COMMANDS; c++) {
        char args[128];
        snprintf(args, sizeof args, "%s --help", COMMANDS[c]);
        cr_assert_eq(run_out(out1, sizeof out1, args), 0);
        if (!seed_default(out1, cur, sizeof cur)) continue;
        n_with++;
        if (!first[0]) snprintf(first, sizeof first, "%s", cur);
        cr_assert_str_eq(cur, first, "%s: --seed %s, others %s", COMMANDS[c], cur, first);
    }
    cr_assert_eq(n_with, (int)(sizeof with_seed / sizeof with_seed[0]));
    cr_assert_str_eq(first, "(default 0)");
    /* and what runs without --seed is --seed 0: synth's bytes, golden's manifest */
    const char *dir = flx_test_tmpdir();
    hard_run r = hard_sh("'%s' synth --shape tiny --dtype f32 '%s/d' && '%s' synth --shape tiny --dtype f32 "
                         "--seed 0 '%s/z' && '%s' synth --shape tiny --dtype f32 --seed 1 '%s/o'",
                         flx_test_bin(), dir, flx_test_bin(), dir, flx_test_bin(), dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(hard_sh("cmp -s '%s/d/model.safetensors' '%s/z/model.safetensors'", dir, dir).status, 0);
    cr_assert_neq(hard_sh("cmp -s '%s/d/model.safetensors' '%s/o/model.safetensors'", dir, dir).status, 0,
                  "seeds 0 and 1 gave the same weights: the test shows nothing");
    r = hard_sh("'%s' golden --kernel softmax_dec --out '%s/g' && '%s' golden --kernel softmax_dec --seed 0 "
                "--out '%s/g0'", flx_test_bin(), dir, flx_test_bin(), dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(hard_sh("cmp -s '%s/g/manifest.json' '%s/g0/manifest.json'", dir, dir).status, 0);
    char man[700];
    snprintf(man, sizeof man, "%s/g/manifest.json", dir);
    char *m = hard_slurp(man);
    cr_assert(m && strstr(m, "\"seed_exact\":\t\"0\"") , "%.400s", m ? m : "");
    free(m);
}
