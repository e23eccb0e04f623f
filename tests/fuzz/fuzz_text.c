/* libFuzzer target: the text tokenizers on arbitrary bytes.
 *
 * Three tokenizers are built in memory once: byte-level BPE with the
 * Llama-3 pre-tokenizer and with the GPT-2 one (256 byte tokens, a few dozen
 * merges, two control tokens and one user-defined token), and a
 * SentencePiece-style vocabulary with byte fallback.  The first input byte
 * picks the tokenizer and the flags (parse_special, add_bos); the rest is
 * the text.  Asserted, as docs/tokenizer.md promises:
 *  - byte-level BPE: decode(encode(x)) == x for every byte string x (with
 *    the BOS text in front when add_bos), and the pre-tokens cover x in
 *    increasing order;
 *  - every tokenizer: every id is in [0, n_vocab) and decodes. */
#include "fuzz_util.h"
#include "flx_tokenizer.h"

static flx_tokenizer *tok_bpe, *tok_gpt2, *tok_spm;

/* GPT-2 bytes_to_unicode: printable bytes stand for themselves, the other
 * 68 map to U+0100 + their rank; returns the code point of byte b. */
static unsigned byte_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    unsigned rank = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) rank++;
    return 256 + rank;
}

/* Appends the byte-level spelling of raw to out (UTF-8). */
static void enc(const char *raw, char *out, size_t cap)
{
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)raw; *p && n + 3 < cap; p++) {
        unsigned cp = byte_cp(*p);
        if (cp < 0x80) out[n++] = (char)cp;
        else { out[n++] = (char)(0xC0 | (cp >> 6)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
    }
    out[n] = '\0';
}

static const char *const MERGES[][2] = {
    {"t", "h"}, {"th", "e"}, {" ", "t"}, {" t", "he"}, {"i", "n"}, {"in", "g"}, {"e", "r"},
    {"a", "n"}, {"an", "d"}, {" ", "a"}, {" ", "and"}, {"o", "n"}, {"e", "n"}, {"r", "e"},
    {"\xc3", "\xa9"}, {"1", "2"}, {"12", "3"}, {"\n", "\n"}, {" ", " "}, {"  ", "  "},
    {"'", "s"}, {"h", "e"}, {" ", "w"}, {" w", "or"}, {"o", "r"}, {" wor", "ld"}, {"l", "d"},
    {"\xe2", "\x96"}, {"\xe2\x96", "\x81"}, {"\xf0\x9f", "\x98\x80"}, {"\xf0", "\x9f"}, {"\x98", "\x80"},
};
#define N_MERGES (int)(sizeof MERGES / sizeof MERGES[0])

static flx_tokenizer *make_bpe(const char *pre)
{
    enum { N = 256 + N_MERGES + 3 };
    static char text[N][64];
    const char *tokens[N];
    int32_t types[N];
    static char merge_text[N_MERGES][128];
    const char *merges[N_MERGES];
    for (int b = 0; b < 256; b++) {
        char raw[2] = {(char)b, 0};
        text[b][0] = '\0';
        if (b == 0) {   /* enc() stops at NUL: spell byte 0 directly (U+0100) */
            strcpy(text[b], "\xc4\x80");
        } else enc(raw, text[b], sizeof text[b]);
    }
    for (int i = 0; i < N_MERGES; i++) {
        char l[64] = "", r[64] = "";
        enc(MERGES[i][0], l, sizeof l);
        enc(MERGES[i][1], r, sizeof r);
        snprintf(merge_text[i], sizeof merge_text[i], "%s %s", l, r);
        snprintf(text[256 + i], sizeof text[0], "%s%s", l, r);
        merges[i] = merge_text[i];
    }
    strcpy(text[N - 3], "<|begin_of_text|>");
    strcpy(text[N - 2], "<|end_of_text|>");
    strcpy(text[N - 1], "<|fuzz|>");
    for (int i = 0; i < N; i++) { tokens[i] = text[i]; types[i] = FLX_TOKEN_NORMAL; }
    types[N - 3] = types[N - 2] = FLX_TOKEN_CONTROL;
    types[N - 1] = FLX_TOKEN_USER_DEFINED;
    flx_vocab_desc d = {
        .kind = FLX_TOK_BPE, .n_tokens = N, .tokens = tokens, .token_types = types,
        .n_merges = N_MERGES, .merges = merges, .bos_id = N - 3, .eos_id = N - 2, .unk_id = -1,
        .add_bos = 1, .pre = pre,
    };
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    if (flx_tokenizer_create(&t, &d, &err)) { fprintf(stderr, "fuzz: BPE: %s\n", err.msg); abort(); }
    return t;
}

static flx_tokenizer *make_spm(void)
{
    static const char *const pieces[] = {
        "\xe2\x96\x81", "a", "e", "h", "t", "o", "n", "th", "he", "\xe2\x96\x81t",
        "\xe2\x96\x81the", "in", "ing", "\xc3\xa9", "\xe2\x96\x81\xe2\x96\x81", "<user>",
    };
    enum { NP = sizeof pieces / sizeof pieces[0], N = 3 + 256 + NP };
    static char bytes[256][8];
    const char *tokens[N];
    float scores[N];
    int32_t types[N];
    tokens[0] = "<unk>"; types[0] = FLX_TOKEN_UNKNOWN;
    tokens[1] = "<s>";   types[1] = FLX_TOKEN_CONTROL;
    tokens[2] = "</s>";  types[2] = FLX_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = FLX_TOKEN_BYTE;
    }
    for (int i = 0; i < NP; i++) {
        tokens[259 + i] = pieces[i];
        types[259 + i] = FLX_TOKEN_NORMAL;
    }
    types[N - 1] = FLX_TOKEN_USER_DEFINED;
    for (int i = 0; i < N; i++) scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
    flx_vocab_desc d = {
        .kind = FLX_TOK_SPM, .n_tokens = N, .tokens = tokens, .scores = scores,
        .token_types = types, .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_bos = 1,
    };
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    if (flx_tokenizer_create(&t, &d, &err)) { fprintf(stderr, "fuzz: SPM: %s\n", err.msg); abort(); }
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    tok_bpe = make_bpe(NULL);
    tok_gpt2 = make_bpe("gpt2");
    tok_spm = make_spm();
    return 0;
}

static void check_pretokens(const flx_tokenizer *tok, const char *text, size_t bytes)
{
    size_t *ends = NULL, n = 0;
    flx_error err = {0};
    int rc = flx_tokenizer_pretokenize(tok, text, bytes, &ends, &n, &err);
    fuzz_check_error(rc, &err);
    if (rc) return;
    size_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (ends[i] <= prev || ends[i] > bytes) abort();
        prev = ends[i];
    }
    if (prev != bytes) abort();
    free(ends);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] & 3, parse_special = (data[0] >> 2) & 1, add_bos = (data[0] >> 3) & 1;
    const flx_tokenizer *tok = mode == 1 ? tok_gpt2 : mode == 2 ? tok_spm : tok_bpe;
    const char *text = (const char *)data + 1;
    size_t bytes = size - 1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    flx_error err = {0};
    int rc = flx_tokenizer_encode(tok, text, bytes, add_bos, parse_special, &ids, &n_ids, &err);
    fuzz_check_error(rc, &err);
    if (rc) {
        if (mode != 2) { fprintf(stderr, "fuzz: BPE refused a text: %s\n", err.msg); abort(); }
        return 0;
    }
    int32_t n_vocab = flx_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) abort();
    char *back = NULL;
    size_t back_bytes = 0;
    rc = flx_tokenizer_decode(tok, ids, n_ids, &back, &back_bytes, &err);
    if (rc) { fprintf(stderr, "fuzz: decode of encoded ids fails: %s\n", err.msg); abort(); }
    if (mode != 2) {
        static const char bos[] = "<|begin_of_text|>";
        size_t skip = add_bos ? sizeof bos - 1 : 0;
        if (back_bytes != bytes + skip || (add_bos && memcmp(back, bos, skip)) ||
            memcmp(back + skip, text, bytes)) {
            fprintf(stderr, "fuzz: decode(encode(x)) != x (%zu bytes in, %zu out)\n", bytes,
                    back_bytes);
            abort();
        }
        check_pretokens(tok, text, bytes);
    }
    free(back);
    free(ids);
    return 0;
}
