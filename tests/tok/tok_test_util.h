/* Helpers shared by the tokenizer suites. */
#ifndef FLX_TOK_TEST_UTIL_H
#define FLX_TOK_TEST_UTIL_H

#include "flx_tokenizer.h"
#include "test_util.h"

/* Reads a shared data file whole (fails the test if missing). */
static inline char *tok_read_data(const char *rel, size_t *bytes)
{
    flx_error err = {0};
    char *buf = NULL;
    int rc = flx_read_file(flx_test_data(rel), (size_t)1 << 28, &buf, bytes, &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
    return buf;
}

static inline void tok_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Encodes and checks the result against expected[0..n_expected). */
static inline void tok_expect(const flx_tokenizer *t, const char *text, size_t bytes, int add_bos,
                              int parse_special, const int32_t *expected, size_t n_expected,
                              const char *what)
{
    flx_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = flx_tokenizer_encode(t, text, bytes, add_bos, parse_special, &ids, &n, &err);
    cr_assert_eq(rc, FLX_OK, "%s: %s", what, err.msg);
    cr_assert_eq(n, n_expected, "%s: %zu ids, expected %zu", what, n, n_expected);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ids[i], expected[i], "%s: id %zu is %d, expected %d", what, i, ids[i],
                     expected[i]);
    free(ids);
}

/* decode(encode(text)) == text, byte for byte. */
static inline void tok_round_trip(const flx_tokenizer *t, const char *text, size_t bytes,
                                  int add_bos, const char *what)
{
    flx_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(flx_tokenizer_encode(t, text, bytes, add_bos, 0, &ids, &n, &err), FLX_OK, "%s: %s",
                 what, err.msg);
    char *back = NULL;
    size_t back_bytes = 0;
    cr_assert_eq(flx_tokenizer_decode(t, ids, n, &back, &back_bytes, &err), FLX_OK, "%s: %s", what,
                 err.msg);
    cr_assert_eq(back_bytes, bytes, "%s: decoded %zu bytes, expected %zu", what, back_bytes, bytes);
    cr_assert(!memcmp(back, text, bytes), "%s: decoded text differs", what);
    free(back);
    free(ids);
}

/* The llama.cpp test vectors: .inp cases separated by
 * "\n__ggml_vocab_test__\n" (the file ends with a separator), .out one line
 * of space-separated ids per case.  Checks every case and its round trip. */
static inline void tok_check_llama_bpe_vectors(const flx_tokenizer *t)
{
    size_t inp_bytes, out_bytes;
    char *inp = tok_read_data("llama3-tokenizer/llama-bpe-vectors.inp", &inp_bytes);
    char *out = tok_read_data("llama3-tokenizer/llama-bpe-vectors.out", &out_bytes);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = inp, *line = out;
    int n_cases = 0;
    for (;;) {
        char *end = strstr(p, sep);
        if (!end) break;
        char *eol = strchr(line, '\n');
        cr_assert_not_null(eol, "vector %d: .out has fewer lines than .inp has cases", n_cases);
        *eol = '\0';
        int32_t expected[256];
        size_t n_expected = 0;
        for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " ")) {
            cr_assert_lt(n_expected, 256);
            expected[n_expected++] = (int32_t)atoi(tok);
        }
        char what[64];
        snprintf(what, sizeof what, "vector %d", n_cases);
        tok_expect(t, p, (size_t)(end - p), 0, 0, expected, n_expected, what);
        tok_round_trip(t, p, (size_t)(end - p), 0, what);
        n_cases++;
        p = end + strlen(sep);
        line = eol + 1;
    }
    cr_assert_eq(*p, '\0', "text after the last separator");
    cr_assert_eq(n_cases, 46);
    free(inp);
    free(out);
}

/* wiki.test.raw: exactly 289,076 ids without BOS, BOS + the same with it,
 * and an exact round trip. */
static inline void tok_check_wiki(const flx_tokenizer *t)
{
    size_t bytes;
    char *text = tok_read_data("wikitext2/wiki.test.raw", &bytes);
    cr_assert_eq(bytes, 1290590);
    flx_error err = {0};
    int32_t *ids = NULL, *ids_bos = NULL;
    size_t n = 0, n_bos = 0;
    cr_assert_eq(flx_tokenizer_encode(t, text, bytes, 0, 0, &ids, &n, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(n, 289076);
    cr_assert_eq(flx_tokenizer_encode(t, text, bytes, 1, 1, &ids_bos, &n_bos, &err), FLX_OK, "%s",
                 err.msg);
    cr_assert_eq(n_bos, 289077);
    cr_assert_eq(ids_bos[0], 128000);
    cr_assert(!memcmp(ids_bos + 1, ids, n * sizeof *ids), "BOS changed the other ids");
    char *back = NULL;
    size_t back_bytes = 0;
    cr_assert_eq(flx_tokenizer_decode(t, ids, n, &back, &back_bytes, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(back_bytes, bytes);
    cr_assert(!memcmp(back, text, bytes), "wiki.test.raw does not round-trip");
    free(back);
    free(ids);
    free(ids_bos);
    free(text);
}

#endif
