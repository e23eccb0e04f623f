/* Byte-level BPE (Llama-3) from tokenizer.json: llama.cpp's 46 vectors,
 * WikiText-2's reference count, round trips, the White_Space rule of the
 * pre-tokenizer, special tokens, any byte sequence, decode errors, and a
 * synthetic vocabulary with holes and no merges. */
#include "tok_test_util.h"

static flx_tokenizer *load_llama3_json(void)
{
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    int rc = flx_tokenizer_load_json(&t, flx_test_data("llama3-tokenizer/tokenizer.json"), &err);
    cr_assert_eq(rc, FLX_OK, "%s", err.msg);
    return t;
}

Test(tok_bpe, llama3_json_vectors_and_wiki)
{
    flx_tokenizer *t = load_llama3_json();
    cr_assert_eq(flx_tokenizer_get_kind(t), FLX_TOK_BPE);
    cr_assert_eq(flx_tokenizer_n_vocab(t), 128256);
    cr_assert_eq(flx_tokenizer_bos(t), 128000);
    cr_assert_eq(flx_tokenizer_eos(t), 128001);
    cr_assert_eq(flx_tokenizer_adds_bos(t), 0);   /* this file's post_processor adds none */
    tok_check_llama_bpe_vectors(t);
    tok_check_wiki(t);
    flx_tokenizer_free(t);
}

/* Pieces of text as strings, joined by '|' (pieces here contain no '|'). */
static void pieces(const flx_tokenizer *t, const char *text, char *out, size_t cap)
{
    size_t *ends = NULL, n = 0;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_pretokenize(t, text, strlen(text), &ends, &n, &err), FLX_OK, "%s",
                 err.msg);
    size_t at = 0, start = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        at += (size_t)snprintf(out + at, cap - at, "%s%.*s", i ? "|" : "", (int)(ends[i] - start),
                               text + start);
        start = ends[i];
    }
    cr_assert_eq(start, strlen(text), "pieces do not cover the text");
    free(ends);
}

static size_t put_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

Test(tok_bpe, pretokenizer_regex_and_white_space)
{
    flx_tokenizer *t = load_llama3_json();
    char got[512];
    /* the example checked with Python's regex module (docs/tokenizer.md) */
    pieces(t, " = Robert Boulter = \n \n Robert", got, sizeof got);
    cr_assert_str_eq(got, " =| Robert| Boulter| =| \n \n| Robert");
    pieces(t, "I'm 12345 they'RE\t\tok!!\r\n", got, sizeof got);
    cr_assert_str_eq(got, "I|'m| |123|45| they|'RE|\t|\tok|!!\r\n");

    /* "x" c c "y": a White_Space c other than CR/LF leaves one c to prefix
     * "y" (\s+(?!\S)); CR/LF end the run (\s*[\r\n]+); a non-space c that is
     * no letter or number is punctuation ([^\s\p{L}\p{N}]+). */
    static const uint32_t white[25] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680,
                                       0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
                                       0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F,
                                       0x205F, 0x3000};
    /* not White_Space: PCRE2's \s wrongly includes U+180E; Python's
     * str.isspace() wrongly includes 0x1C..0x1F */
    static const uint32_t other[] = {0x1C, 0x1D, 0x1E, 0x1F, 0x180E, 0x200B, 0xFEFF};
    for (int k = 0; k < 25 + 7; k++) {
        uint32_t cp = k < 25 ? white[k] : other[k - 25];
        char c[4], text[16], expect[32];
        size_t len = put_utf8(cp, c);
        snprintf(text, sizeof text, "x%.*s%.*sy", (int)len, c, (int)len, c);
        if (k < 25 && cp != 0x0A && cp != 0x0D)
            snprintf(expect, sizeof expect, "x|%.*s|%.*sy", (int)len, c, (int)len, c);
        else
            snprintf(expect, sizeof expect, "x|%.*s%.*s|y", (int)len, c, (int)len, c);
        pieces(t, text, got, sizeof got);
        cr_assert_str_eq(got, expect, "U+%04X", cp);
    }
    flx_tokenizer_free(t);
}

Test(tok_bpe, special_tokens_and_decode)
{
    flx_tokenizer *t = load_llama3_json();
    static const char text[] = "<|begin_of_text|>Hello<|eot_id|><|end_of_text|>";
    static const int32_t with[] = {128000, 9906, 128009, 128001};
    tok_expect(t, text, strlen(text), 0, 1, with, 4, "parse_special");
    /* BOS requested and present in the text: both appear, as in llama.cpp */
    static const int32_t with_bos[] = {128000, 128000, 9906, 128009, 128001};
    tok_expect(t, text, strlen(text), 1, 1, with_bos, 5, "parse_special + BOS");

    flx_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(flx_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &n, &err), FLX_OK);
    cr_assert_gt(n, 4);
    for (size_t i = 0; i < n; i++) cr_assert_lt(ids[i], 128000, "special id without parse_special");
    char *back = NULL;
    size_t bytes = 0;
    cr_assert_eq(flx_tokenizer_decode(t, ids, n, &back, &bytes, &err), FLX_OK);
    cr_assert_str_eq(back, text);
    free(back);
    free(ids);

    /* specials decode to their text */
    cr_assert_eq(flx_tokenizer_decode(t, with, 4, &back, &bytes, &err), FLX_OK);
    cr_assert_str_eq(back, text);
    free(back);
    /* piece: space is Ġ in the vocabulary, a byte on output */
    char buf[8];
    cr_assert_eq(flx_tokenizer_piece(t, -1, 220, buf, sizeof buf), 1);
    cr_assert_eq(buf[0], ' ');
    cr_assert_str_eq(flx_tokenizer_token_text(t, 220), "\xC4\xA0");   /* U+0120 */
    cr_assert_eq(flx_tokenizer_piece(t, -1, 198, buf, sizeof buf), 1);
    cr_assert_eq(buf[0], '\n');
    cr_assert_eq(flx_tokenizer_token_type(t, 128000), FLX_TOKEN_CONTROL);
    cr_assert_geq(flx_tokenizer_max_piece_bytes(t), 17);   /* <|begin_of_text|> */
    flx_tokenizer_free(t);
}

Test(tok_bpe, any_bytes_encode_and_round_trip)
{
    flx_tokenizer *t = load_llama3_json();
    flx_error err = {0};
    /* every single byte, valid UTF-8 or not, is one token that decodes back */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(flx_tokenizer_encode(t, &c, 1, 0, 0, &ids, &n, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(n, 1, "byte 0x%02X", b);
        char buf[8];
        cr_assert_eq(flx_tokenizer_piece(t, -1, ids[0], buf, sizeof buf), 1);
        cr_assert_eq((unsigned char)buf[0], b);
        free(ids);
    }
    /* invalid UTF-8 of every kind, mixed with text */
    static const char bad[] =
        "ok \xFF\xFE then \xC0\xAF overlong, \xED\xA0\x80 surrogate, \xF4\x90\x80\x80 too big, "
        "cut \xE2\x82 and \x80\x80 stray \xC3 end \xF0\x9F\xA6";
    tok_round_trip(t, bad, sizeof bad - 1, 0, "invalid UTF-8");
    /* NUL bytes are text too */
    tok_round_trip(t, "a\0b\0\0 c", 7, 0, "NUL bytes");

    /* long runs: one huge pre-token each (regex and merge heap stay linear) */
    size_t big = 1 << 19;
    char *s = malloc(big);
    memset(s, ' ', big);
    tok_round_trip(t, s, big, 0, "512 KiB of spaces");
    memset(s, 'a', big);
    tok_round_trip(t, s, big, 0, "512 KiB of letters");
    for (size_t i = 0; i < big; i++) s[i] = "\n \t1x!"[i % 6];
    tok_round_trip(t, s, big, 0, "512 KiB of mixed classes");
    for (size_t i = 0; i < big; i++) s[i] = (char)(i * 2654435761u >> 13);
    tok_round_trip(t, s, big, 0, "512 KiB of random bytes");
    free(s);

    /* empty input */
    int32_t *ids = NULL;
    size_t n = 5;
    cr_assert_eq(flx_tokenizer_encode(t, "", 0, 0, 0, &ids, &n, &err), FLX_OK);
    cr_assert_eq(n, 0);
    free(ids);
    cr_assert_eq(flx_tokenizer_encode(t, NULL, 0, 1, 0, &ids, &n, &err), FLX_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 128000);
    free(ids);
    flx_tokenizer_free(t);
}

Test(tok_bpe, decode_rejects_bad_ids)
{
    flx_tokenizer *t = load_llama3_json();
    flx_error err = {0};
    char *text = NULL;
    size_t bytes = 0;
    const int32_t high[] = {9906, 128256};
    cr_assert_eq(flx_tokenizer_decode(t, high, 2, &text, &bytes, &err), FLX_EINVAL);
    cr_assert_null(text);
    cr_assert(strstr(err.msg, "128256") && strstr(err.msg, "position 1"), "%s", err.msg);
    const int32_t neg[] = {-1};
    cr_assert_eq(flx_tokenizer_decode(t, neg, 1, &text, &bytes, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "-1"), "%s", err.msg);
    char buf[4];
    cr_assert_lt(flx_tokenizer_piece(t, -1, 128256, buf, sizeof buf), 0);
    cr_assert_lt(flx_tokenizer_piece(t, -1, -7, buf, sizeof buf), 0);
    /* a buffer too small for the piece is an error, not a truncation */
    cr_assert_lt(flx_tokenizer_piece(t, -1, 128000, buf, sizeof buf), 0);
    flx_tokenizer_free(t);
}

/* GPT-2 bytes_to_unicode written out independently of the library: the
 * code point byte b is shown as. */
static uint32_t gpt2_cp(int b)
{
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (printable) return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
    return 256u + (uint32_t)n;
}

/* The synthetic models' vocabulary: 256 byte tokens in a shuffled id order,
 * BOS/EOS at 128000/128001, a hole in between, no merges. */
Test(tok_bpe, byte_vocab_with_holes_and_no_merges)
{
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("{\"version\":\"1.0\",\"added_tokens\":["
          "{\"id\":128000,\"content\":\"<|begin_of_text|>\",\"special\":true},"
          "{\"id\":128001,\"content\":\"<|end_of_text|>\",\"special\":true}],"
          "\"normalizer\":null,\"pre_tokenizer\":null,\"model\":{\"type\":\"BPE\","
          "\"vocab\":{", f);
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = put_utf8(gpt2_cp(b), u);
        int id = (b * 7 + 3) % 256;   /* a permutation of 0..255 */
        if (u[0] == '"' || u[0] == '\\') fprintf(f, "%s\"\\%c\":%d", b ? "," : "", u[0], id);
        else fprintf(f, "%s\"%.*s\":%d", b ? "," : "", (int)n, u, id);
    }
    fputs("},\"merges\":[]}}", f);
    fclose(f);

    flx_tokenizer *t = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_load_json(&t, path, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_tokenizer_n_vocab(t), 128002);
    cr_assert_eq(flx_tokenizer_bos(t), 128000);
    cr_assert_eq(flx_tokenizer_eos(t), 128001);
    static const char text[] = "Hi \xC3\xA9\n\"\\";
    int32_t expect[10];
    expect[0] = 128000;
    for (size_t i = 0; i < sizeof text - 1; i++) expect[i + 1] = ((unsigned char)text[i] * 7 + 3) % 256;
    tok_expect(t, text, sizeof text - 1, 1, 0, expect, sizeof text, "byte vocabulary");
    tok_round_trip(t, text, sizeof text - 1, 0, "byte vocabulary");
    char *out = NULL;
    size_t bytes = 0;
    const int32_t hole[] = {5000};
    cr_assert_eq(flx_tokenizer_decode(t, hole, 1, &out, &bytes, &err), FLX_EINVAL);
    cr_assert(strstr(err.msg, "5000") && strstr(err.msg, "not in the vocabulary"), "%s", err.msg);
    flx_tokenizer_free(t);
}

/* Special tokens: the longest match wins, user-defined tokens are split out
 * even without parse_special, control tokens only with it. */
Test(tok_bpe, special_token_matching_rules)
{
    static char text[256][4];
    const char *tokens[262];
    int32_t types[262];
    for (int b = 0; b < 256; b++) {
        text[b][put_utf8(gpt2_cp(b), text[b])] = '\0';
        tokens[b] = text[b];
        types[b] = FLX_TOKEN_NORMAL;
    }
    tokens[256] = "<a>";   types[256] = FLX_TOKEN_CONTROL;
    tokens[257] = "<a>b";  types[257] = FLX_TOKEN_CONTROL;
    tokens[258] = "<u>";   types[258] = FLX_TOKEN_USER_DEFINED;
    tokens[259] = NULL;    types[259] = 0;                      /* a hole */
    tokens[260] = "<a>";   types[260] = FLX_TOKEN_CONTROL;      /* same text: lowest id wins */
    tokens[261] = "<";     types[261] = FLX_TOKEN_UNKNOWN;
    flx_vocab_desc d = {.kind = FLX_TOK_BPE, .n_tokens = 262, .tokens = tokens,
                        .token_types = types, .bos_id = 256, .eos_id = -1, .unk_id = 261};
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_OK, "%s", err.msg);
    static const char s[] = "<a>bx<a><u><<a";
    const int32_t special[] = {257, 'x', 256, 258, 261, 261, 'a'};
    tok_expect(t, s, strlen(s), 0, 1, special, 7, "parse_special");
    const int32_t plain[] = {'<', 'a', '>', 'b', 'x', '<', 'a', '>', 258, '<', '<', 'a'};
    tok_expect(t, s, strlen(s), 0, 0, plain, 12, "user-defined only");
    tok_round_trip(t, s, strlen(s), 0, "specials");
    flx_tokenizer_free(t);
}
