/* Malformed tokenizer.json files and vocabulary descriptions: each is
 * rejected with a status and a message naming the file and the field. */
#include "tok_test_util.h"

/* The 256 byte-level tokens as JSON object members ("<char>": id, ...), ids
 * 0..255 in byte order, written independently of the library. */
static void byte_vocab_members(char *out, size_t cap)
{
    size_t at = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        int n = 0;
        for (int c = 0; c < b; c++)
            n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174));
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)n;
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", (char)cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", (char)cp);
        else snprintf(u, sizeof u, "%c%c", (char)(0xC0 | cp >> 6), (char)(0x80 | (cp & 63)));
        at += (size_t)snprintf(out + at, cap - at, "%s\"%s\":%d", b ? "," : "", u, b);
    }
}

/* Writes {"added_tokens": ADDED, "model": {"type":"BPE","vocab":{bytes EXTRA},
 * "merges": MERGES} REST} and loads it; returns the status, the message in err. */
static int load_variant(const char *added, const char *extra_vocab, const char *merges,
                        const char *rest, flx_error *err, char *path, size_t path_cap)
{
    static char members[8192];
    byte_vocab_members(members, sizeof members);
    static char json[16384];
    snprintf(json, sizeof json,
             "{\"added_tokens\":%s,\"model\":{\"type\":\"BPE\",\"vocab\":{%s%s},\"merges\":%s}%s}",
             added, members, extra_vocab, merges, rest);
    static const char *dir = NULL;   /* one scratch folder per test process */
    if (!dir) dir = flx_test_tmpdir();
    snprintf(path, path_cap, "%s/tokenizer.json", dir);
    tok_write_file(path, json);
    flx_tokenizer *t = NULL;
    memset(err, 0, sizeof *err);
    int rc = flx_tokenizer_load_json(&t, path, err);
    if (rc) cr_assert_null(t);
    flx_tokenizer_free(t);
    return rc;
}

#define EXPECT_BAD(code, needle, ...)                                                          \
    do {                                                                                       \
        flx_error e_;                                                                          \
        char p_[512];                                                                          \
        int rc_ = load_variant(__VA_ARGS__, &e_, p_, sizeof p_);                               \
        cr_assert_eq(rc_, code, "status %d (%s)", rc_, e_.msg);                                \
        cr_assert(strstr(e_.msg, needle), "message lacks '%s': %s", needle, e_.msg);           \
        cr_assert(strstr(e_.msg, p_), "message lacks the path: %s", e_.msg);                   \
    } while (0)

Test(tok_bad, good_base_file_loads)
{
    flx_error e;
    char p[512];
    /* the base of every variant below is valid: "ab" from merge "a b" */
    cr_assert_eq(load_variant("[{\"id\":300,\"content\":\"<s>\",\"special\":true}]", ",\"ab\":256",
                              "[\"a b\"]", "", &e, p, sizeof p), FLX_OK, "%s", e.msg);
    cr_assert_eq(load_variant("[]", ",\"ab\":256", "[[\"a\",\"b\"]]", "", &e, p, sizeof p), FLX_OK,
                 "%s", e.msg);
}

Test(tok_bad, vocab_ids)
{
    EXPECT_BAD(FLX_EFORMAT, "model.vocab[\"ab\"]", "[]", ",\"ab\":-1", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.vocab[\"ab\"]", "[]", ",\"ab\":2.5", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.vocab[\"ab\"]", "[]", ",\"ab\":\"7\"", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.vocab[\"ab\"]", "[]", ",\"ab\":1e300", "[]", "");
    /* out of range for a file this small: 257 entries allow ids < 257 x 1024 */
    EXPECT_BAD(FLX_EFORMAT, "model.vocab[\"ab\"]", "[]", ",\"ab\":263168", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "id 97 is used by both", "[]", ",\"ab\":97", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "added_tokens[0]", "[{\"id\":97,\"content\":\"<s>\"}]", "", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "added_tokens[0]", "[{\"id\":300}]", "", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "added_tokens[1]",
               "[{\"id\":300,\"content\":\"<s>\"},{\"id\":300,\"content\":\"</s>\"}]", "", "[]", "");
    EXPECT_BAD(FLX_EFORMAT, "added_tokens is not an array", "{}", "", "[]", "");
}

Test(tok_bad, merges)
{
    EXPECT_BAD(FLX_EFORMAT, "merges[0] \"ab\"", "[]", ",\"ab\":256", "[\"ab\"]", "");
    EXPECT_BAD(FLX_EFORMAT, "merges[0] \"a \"", "[]", ",\"ab\":256", "[\"a \"]", "");
    EXPECT_BAD(FLX_EFORMAT, "merges[1]", "[]", ",\"ab\":256", "[\"a b\",\"a zz\"]", "");
    EXPECT_BAD(FLX_EFORMAT, "merged token is not in the vocabulary", "[]", ",\"ab\":256",
               "[\"b a\"]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.merges[0]", "[]", "", "[5]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.merges[0]", "[]", "", "[[\"a\"]]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.merges[1]", "[]", ",\"ab\":256", "[[\"a\",\"b\"],[\"a\",7]]", "");
    EXPECT_BAD(FLX_EFORMAT, "model.merges is not an array", "[]", "", "\"a b\"", "");
    /* a merge part that is not a byte-level string (raw space, U+0200) */
    EXPECT_BAD(FLX_EFORMAT, "not a byte-level string", "[]", "", "[\"a \xC8\x80\"]", "");
}

Test(tok_bad, structure_and_features)
{
    flx_error e;
    char p[512];
    flx_tokenizer *t = NULL;
    const char *dir = flx_test_tmpdir();
    static const struct { const char *json, *needle; int code; } cases[] = {
        {"", "not valid JSON", FLX_EFORMAT},
        {"{\"model\":{\"vocab\":{\"a\":0}", "not valid JSON", FLX_EFORMAT},
        {"[1,2]", "not a JSON object", FLX_EFORMAT},
        {"{}", "model is missing", FLX_EFORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", "model.vocab", FLX_EFORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[1]}}", "model.vocab", FLX_EFORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", "model.vocab is empty", FLX_EFORMAT},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "model.type", FLX_EUNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0}}}",
         "model.byte_fallback", FLX_EUNSUPPORTED},
        /* only one byte token: the others are needed to encode any text */
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", "no byte-level token for byte 0x00",
         FLX_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "%s/case%zu.json", dir, i);
        tok_write_file(p, cases[i].json);
        memset(&e, 0, sizeof e);
        int rc = flx_tokenizer_load_json(&t, p, &e);
        cr_assert_eq(rc, cases[i].code, "case %zu: status %d (%s)", i, rc, e.msg);
        cr_assert_null(t);
        cr_assert(strstr(e.msg, cases[i].needle) && strstr(e.msg, p), "case %zu: %s", i, e.msg);
    }
    /* a truncated real file */
    size_t bytes;
    char *real = tok_read_data("llama3-tokenizer/tokenizer.json", &bytes);
    real[bytes / 2] = '\0';
    snprintf(p, sizeof p, "%s/truncated.json", dir);
    tok_write_file(p, real);
    free(real);
    cr_assert_eq(flx_tokenizer_load_json(&t, p, &e), FLX_EFORMAT);
    cr_assert(strstr(e.msg, "not valid JSON"), "%s", e.msg);
    /* missing file */
    snprintf(p, sizeof p, "%s/none.json", dir);
    cr_assert_eq(flx_tokenizer_load_json(&t, p, &e), FLX_EIO);
    cr_assert(strstr(e.msg, p), "%s", e.msg);

    /* an unknown pre-tokenizer regex; a template naming a token that does not exist */
    EXPECT_BAD(FLX_EUNSUPPORTED, "pre_tokenizer", "[]", "", "[]",
               ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"}}");
    EXPECT_BAD(FLX_EFORMAT, "post_processor", "[]", "", "[]",
               ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":"
               "[{\"SpecialToken\":{\"id\":\"<bos>\"}}]}");
}

Test(tok_bad, create_rejects_bad_descriptions)
{
    static const char *const tokens[] = {"a", "b", "ab"};
    flx_vocab_desc d = {.kind = FLX_TOK_BPE, .n_tokens = 3, .tokens = tokens,
                        .bos_id = -1, .eos_id = -1, .unk_id = -1};
    flx_tokenizer *t = NULL;
    flx_error e = {0};
    d.n_tokens = 0;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &e), FLX_EFORMAT);
    cr_assert(strstr(e.msg, "vocabulary size 0"), "%s", e.msg);
    d.n_tokens = 3;
    d.kind = (flx_tokenizer_kind)7;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &e), FLX_EUNSUPPORTED);
    d.kind = FLX_TOK_BPE;
    d.n_merges = 2;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &e), FLX_EINVAL);
    cr_assert(strstr(e.msg, "merges"), "%s", e.msg);
    d.n_merges = 0;
    d.eos_id = 3;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &e), FLX_EFORMAT);
    cr_assert(strstr(e.msg, "eos_id 3"), "%s", e.msg);
    d.eos_id = -1;
    d.pre = "qwen2";
    cr_assert_eq(flx_tokenizer_create(&t, &d, &e), FLX_EUNSUPPORTED);
    cr_assert(strstr(e.msg, "qwen2"), "%s", e.msg);
    cr_assert_eq(flx_tokenizer_create(NULL, &d, &e), FLX_EINVAL);
    cr_assert_eq(flx_tokenizer_create(&t, NULL, &e), FLX_EINVAL);
    cr_assert_null(t);
}
