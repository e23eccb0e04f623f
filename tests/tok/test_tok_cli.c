/* flxemu tokenize: ids one per line, --decode back, --json, --model folder
 * and GGUF, usage errors (exit 2) and bad files (exit 1, naming the file). */
#include "tok_test_util.h"

#include <stdarg.h>
#include <sys/wait.h>

/* Runs a shell command line; returns the exit status. */
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "did not exit: %s", cmd);
    return WEXITSTATUS(st);
}

/* flx_test_data returns a static buffer: keep a copy */
static const char *data_copy(const char *rel)
{
    char *p = strdup(flx_test_data(rel));
    cr_assert_not_null(p);
    return p;
}

static char *slurp(const char *path, size_t *bytes)
{
    flx_error err = {0};
    char *buf = NULL;
    cr_assert_eq(flx_read_file(path, (size_t)1 << 28, &buf, bytes, &err), FLX_OK, "%s", err.msg);
    return buf;
}

static size_t count_lines(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++) n += s[i] == '\n';
    return n;
}

Test(tok_cli, wiki_encode_decode_json)
{
    const char *dir = flx_test_tmpdir();
    const char *tok = data_copy("llama3-tokenizer/tokenizer.json");
    const char *wiki = data_copy("wikitext2/wiki.test.raw");
    cr_assert_eq(run("%s tokenize --tokenizer %s --file %s --json %s/enc.json > %s/ids.txt",
                     flx_test_bin(), tok, wiki, dir, dir), 0);
    char path[1200];
    size_t bytes;
    snprintf(path, sizeof path, "%s/ids.txt", dir);
    char *ids = slurp(path, &bytes);
    cr_assert_eq(count_lines(ids, bytes), 289076);
    free(ids);
    snprintf(path, sizeof path, "%s/enc.json", dir);
    char *json = slurp(path, &bytes);
    cr_assert(strstr(json, "\"n_tokens\":289076"), "%.200s", json);
    cr_assert(strstr(json, "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"));
    free(json);

    /* decode from stdin reproduces the file byte for byte */
    cr_assert_eq(run("%s tokenize --tokenizer %s --decode < %s/ids.txt > %s/back.txt",
                     flx_test_bin(), tok, dir, dir), 0);
    snprintf(path, sizeof path, "%s/back.txt", dir);
    char *back = slurp(path, &bytes);
    size_t wiki_bytes;
    char *orig = slurp(wiki, &wiki_bytes);
    cr_assert_eq(bytes, wiki_bytes);
    cr_assert(!memcmp(back, orig, bytes));
    free(back);
    free(orig);
}

Test(tok_cli, model_folder_gguf_bos_special)
{
    const char *dir = flx_test_tmpdir();
    char path[1200];
    size_t bytes;
    /* --model FOLDER uses FOLDER/tokenizer.json (that one adds BOS via its template) */
    const char *model = data_copy("tiny-llama3-random");
    cr_assert_eq(run("printf 'Hello world' | %s tokenize --model %s --bos > %s/a.txt",
                     flx_test_bin(), model, dir), 0);
    snprintf(path, sizeof path, "%s/a.txt", dir);
    char *out = slurp(path, &bytes);
    cr_assert_str_eq(out, "128000\n9906\n1917\n");
    free(out);
    /* --model X.gguf reads only the vocabulary; --special maps <|eot_id|> */
    const char *gguf = data_copy("tiny-llama3-random.gguf");
    cr_assert_eq(run("printf 'Hello<|eot_id|>' | %s tokenize --model %s --special > %s/b.txt",
                     flx_test_bin(), gguf, dir), 0);
    snprintf(path, sizeof path, "%s/b.txt", dir);
    out = slurp(path, &bytes);
    cr_assert_str_eq(out, "9906\n128009\n");
    free(out);
    /* SentencePiece GGUF, decode of whitespace-separated ids */
    const char *spm = data_copy("stories260K/stories260K.gguf");
    cr_assert_eq(run("printf '1 403 407\\n261   378' | %s tokenize --tokenizer %s --decode > %s/c.txt",
                     flx_test_bin(), spm, dir), 0);
    snprintf(path, sizeof path, "%s/c.txt", dir);
    out = slurp(path, &bytes);
    cr_assert_str_eq(out, "Once upon a time");
    free(out);
}

Test(tok_cli, usage_errors_exit_2)
{
    const char *bin = flx_test_bin();
    const char *tok = data_copy("llama3-tokenizer/tokenizer.json");
    cr_assert_eq(run("%s tokenize --help > /dev/null", bin), 0);
    cr_assert_eq(run("%s tokenize < /dev/null 2>/dev/null", bin), 2);                      /* no source */
    cr_assert_eq(run("%s tokenize --tokenizer %s --model %s </dev/null 2>/dev/null", bin, tok, tok), 2);
    cr_assert_eq(run("%s tokenize --tokenizer %s --frobnicate </dev/null 2>/dev/null", bin, tok), 2);
    cr_assert_eq(run("%s tokenize --tokenizer %s --decode --bos </dev/null 2>/dev/null", bin, tok), 2);
    cr_assert_eq(run("%s tokenize --tokenizer %s --file 2>/dev/null", bin, tok), 2);       /* no value */
    cr_assert_eq(run("%s tokenize --tokenizer %s --json a --json b </dev/null 2>/dev/null", bin, tok), 2);
}

Test(tok_cli, bad_files_exit_1_naming_them)
{
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char path[1200];
    size_t bytes;
    const char *tok = data_copy("llama3-tokenizer/tokenizer.json");
    /* missing tokenizer file */
    cr_assert_eq(run("%s tokenize --tokenizer %s/nope.json </dev/null 2> %s/e1", bin, dir, dir), 1);
    snprintf(path, sizeof path, "%s/e1", dir);
    char *msg = slurp(path, &bytes);
    cr_assert(strstr(msg, "nope.json"), "%s", msg);
    free(msg);
    /* folder without tokenizer.json */
    cr_assert_eq(run("%s tokenize --model %s </dev/null 2> %s/e2", bin, dir, dir), 1);
    snprintf(path, sizeof path, "%s/e2", dir);
    msg = slurp(path, &bytes);
    cr_assert(strstr(msg, "tokenizer.json"), "%s", msg);
    free(msg);
    /* malformed tokenizer.json: names the field */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    tok_write_file(path, "{\"model\":{\"type\":\"BPE\",\"merges\":[]}}");
    cr_assert_eq(run("%s tokenize --tokenizer %s </dev/null 2> %s/e3", bin, path, dir), 1);
    snprintf(path, sizeof path, "%s/e3", dir);
    msg = slurp(path, &bytes);
    cr_assert(strstr(msg, "bad.json") && strstr(msg, "model.vocab"), "%s", msg);
    free(msg);
    /* ids that are not numbers, and ids out of range */
    snprintf(path, sizeof path, "%s/ids", dir);
    tok_write_file(path, "9906\n19x17\n");
    cr_assert_eq(run("%s tokenize --tokenizer %s --decode --file %s 2> %s/e4 >/dev/null", bin, tok,
                     path, dir), 1);
    snprintf(path, sizeof path, "%s/e4", dir);
    msg = slurp(path, &bytes);
    cr_assert(strstr(msg, "line 2") && strstr(msg, "19x17"), "%s", msg);
    free(msg);
    snprintf(path, sizeof path, "%s/ids", dir);
    tok_write_file(path, "9906 200000\n");
    cr_assert_eq(run("%s tokenize --tokenizer %s --decode --file %s 2> %s/e5 >/dev/null", bin, tok,
                     path, dir), 1);
    snprintf(path, sizeof path, "%s/e5", dir);
    msg = slurp(path, &bytes);
    cr_assert(strstr(msg, "200000") && strstr(msg, "out of range"), "%s", msg);
    free(msg);
    /* missing input file; no half-written --json */
    cr_assert_eq(run("%s tokenize --tokenizer %s --file %s/none.txt --json %s/o.json 2>/dev/null",
                     bin, tok, dir, dir), 1);
    snprintf(path, sizeof path, "%s/o.json", dir);
    cr_assert(!flx_file_exists(path));
}
