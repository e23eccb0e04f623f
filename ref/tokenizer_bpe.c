/* Byte-level BPE (Llama-3): the GPT-2 byte<->unicode map, the pre-tokenizer
 * regex (PCRE2) and rank-ordered merges.
 *
 * Encoding one text fragment:
 *   1. split it into pre-tokens with the regex, left to right (bytes that are
 *      not valid UTF-8 form pre-tokens of their own: the regex never sees them);
 *   2. a pre-token that is a whole vocabulary entry is emitted as is
 *      (ignore_merges, Llama-3 / HF `ignore_merges: true`);
 *   3. otherwise start from one token per byte and merge the adjacent pair
 *      with the lowest merge rank, leftmost on ties, until none merges. */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- byte-level map */

/* GPT-2 bytes_to_unicode: the 188 printable bytes ('!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF) stand for themselves; the other 68 map, in byte order, to
 * U+0100..U+0143 (space -> U+0120 'Ġ', newline -> U+010A 'Ċ'). */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* Code point of byte b in the map. */
static uint32_t byte_to_cp(unsigned b)
{
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;   /* rank of b among the non-printable bytes */
    for (unsigned c = 0; c < b; c++) n += !byte_is_printable(c);
    return 256 + n;
}

/* Inverse of byte_to_cp: byte for code point cp, or -1 if cp is not in the map. */
static int cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b) && n-- == 0) return (int)b;
    return -1;
}

long tok_bytelevel_decode(const char *src, size_t src_bytes, char *dst)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;
    long n = 0;
    while (i < src_bytes) {
        size_t len = tok_utf8_len(s + i, src_bytes - i);
        uint32_t cp;
        if (len == 1) cp = s[i];
        else if (len == 2) cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
        else return -1;   /* the map's image is U+0021..U+0143: at most 2 bytes */
        int b = cp_to_byte(cp);
        if (b < 0) return -1;
        dst[n++] = (char)b;
        i += len;
    }
    return n;
}

/* ---------------------------------------------------------------- pre-tokenizer */

/* Unicode White_Space (25 code points).  PCRE2's \s under PCRE2_UCP is
 * \p{Z} plus \h and \v, which adds U+180E (a format character since
 * Unicode 6.3, not White_Space): so the patterns spell the set out. */
#define WS "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
           "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* Llama-3 (tiktoken cl100k):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+                 */
static const char llama3_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" WS "]*[\\r\\n]+"
    "|[" WS "]+(?![^" WS "])"
    "|[" WS "]+";

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d"
    "| ?\\p{L}+"
    "| ?\\p{N}+"
    "| ?[^" WS "\\p{L}\\p{N}]+"
    "|[" WS "]+(?![^" WS "])"
    "|[" WS "]+";

/* Which pattern a pre-tokenizer name selects; NULL if unknown.  llama.cpp's
 * "default" BPE pre-tokenizer is not supported as such: it maps to the
 * Llama-3 rules, which give the same ids for vocabularies without merges
 * (the byte-level vocabulary of synthetic models). */
static const char *pattern_for(const char *pre, int *ignore_merges)
{
    *ignore_merges = 1;
    if (!pre || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")
        || !strcmp(pre, "llama-3") || !strcmp(pre, "default"))
        return llama3_pattern;
    if (!strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        *ignore_merges = 0;
        return gpt2_pattern;
    }
    return NULL;
}

/* ---------------------------------------------------------------- pair map */

static uint32_t pair_hash(uint64_t key)
{
    /* splitmix64 finalizer */
    key ^= key >> 30; key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 27; key *= 0x94d049bb133111ebull;
    key ^= key >> 31;
    return (uint32_t)key;
}

static int pair_map_init(tok_pair_map *m, size_t n_entries)
{
    uint32_t cap = 16;
    while (cap < 2 * n_entries) cap <<= 1;
    m->slots = malloc((size_t)cap * sizeof *m->slots);
    if (!m->slots) return FLX_ENOMEM;
    for (uint32_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->cap = cap;
    m->n = 0;
    return FLX_OK;
}

static const tok_pair_slot *pair_find(const tok_pair_map *m, uint64_t key)
{
    if (!m->cap) return NULL;
    uint32_t i = pair_hash(key) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return &m->slots[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Inserts unless present (the first, lowest rank, wins, as in llama.cpp). */
static void pair_insert(tok_pair_map *m, uint64_t key, int32_t rank, int32_t result)
{
    uint32_t i = pair_hash(key) & (m->cap - 1);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return;
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].result = result;
    m->n++;
}

/* ---------------------------------------------------------------- init */

int tok_bpe_init(flx_tokenizer *t, const flx_vocab_desc *desc, flx_error *err)
{
    const char *pattern = pattern_for(desc->pre, &t->ignore_merges);
    if (!pattern)
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "pre-tokenizer \"%s\" is not supported (known: llama-bpe, gpt2)", desc->pre);

    /* Pieces: normal tokens are byte-level strings, decoded once here; the
     * encoder then works on raw bytes.  Special tokens stand for their text. */
    for (int32_t i = 0; i < t->n_tokens; i++) {
        tok_entry *e = &t->entries[i];
        if (!e->type) continue;
        const char *text = tok_text(t, i);
        long n = -1;
        if (e->type == FLX_TOKEN_NORMAL || e->type == FLX_TOKEN_BYTE || e->type == FLX_TOKEN_UNUSED)
            n = tok_bytelevel_decode(text, e->text_len, t->arena + t->arena_bytes);
        if (n < 0) {   /* special, or not a byte-level string: never produced by encoding */
            e->piece_off = tok_arena_put(t, text, e->text_len);
            e->piece_len = e->text_len;
            continue;
        }
        e->piece_off = (uint32_t)t->arena_bytes;
        e->piece_len = (uint32_t)n;
        t->arena[t->arena_bytes + (size_t)n] = '\0';
        t->arena_bytes += (size_t)n + 1;
        if (e->type != FLX_TOKEN_UNUSED) tok_lookup_insert(t, e->piece_off, e->piece_len, i);
    }

    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_ids[b] = tok_lookup(t, &c, 1);
        if (t->byte_ids[b] < 0) {
            uint32_t cp = byte_to_cp((unsigned)b);
            return flx_fail(err, FLX_EFORMAT,
                            "tokens: no byte-level token for byte 0x%02X (U+%04X); a byte-level "
                            "BPE vocabulary needs all 256 to encode any text", b, cp);
        }
    }

    int rc = pair_map_init(&t->merges, desc->n_merges > 0 ? (size_t)desc->n_merges : 0);
    if (rc) return flx_fail(err, rc, "merges: out of memory for %d merges", desc->n_merges);
    char *buf = NULL;
    size_t buf_cap = 0;
    for (int32_t r = 0; r < desc->n_merges; r++) {
        const char *m = desc->merges[r];
        if (!m) { free(buf); return flx_fail(err, FLX_EFORMAT, "merges[%d] is missing", r); }
        size_t len = strlen(m);
        /* "left right": the separator is the first space after the first
         * character (a lone space may itself be a token in other vocabularies) */
        const char *sep = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sep || sep + 1 == m + len)
            { free(buf); return flx_fail(err, FLX_EFORMAT, "merges[%d] \"%.64s\": expected \"left right\"", r, m); }
        if (len > buf_cap) {
            char *nb = realloc(buf, len);
            if (!nb) { free(buf); return flx_fail(err, FLX_ENOMEM, "merges: out of memory"); }
            buf = nb;
            buf_cap = len;
        }
        long nl = tok_bytelevel_decode(m, (size_t)(sep - m), buf);
        long nr = nl < 0 ? -1 : tok_bytelevel_decode(sep + 1, len - (size_t)(sep - m) - 1, buf + nl);
        if (nl < 0 || nr < 0)
            { free(buf); return flx_fail(err, FLX_EFORMAT, "merges[%d] \"%.64s\": not a byte-level string", r, m); }
        int32_t left = tok_lookup(t, buf, (size_t)nl);
        int32_t right = tok_lookup(t, buf + nl, (size_t)nr);
        int32_t result = tok_lookup(t, buf, (size_t)(nl + nr));
        if (left < 0 || right < 0 || result < 0) {
            const char *what = left < 0 ? "left part" : right < 0 ? "right part" : "merged token";
            free(buf);
            return flx_fail(err, FLX_EFORMAT, "merges[%d] \"%.64s\": %s is not in the vocabulary",
                            r, m, what);
        }
        pair_insert(&t->merges, (uint64_t)(uint32_t)left << 32 | (uint32_t)right, r, result);
    }
    free(buf);

    int errcode;
    PCRE2_SIZE erroff;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                          &errcode, &erroff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return flx_fail(err, FLX_EUNSUPPORTED, "pre-tokenizer regex: PCRE2 error at %zu: %s",
                        (size_t)erroff, (const char *)msg);
    }
    uint32_t have_jit = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
    t->re_jit = have_jit && pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return FLX_OK;
}

void tok_bpe_free(flx_tokenizer *t)
{
    free(t->merges.slots);
    t->merges.slots = NULL;
    if (t->re) pcre2_code_free(t->re);
    t->re = NULL;
}

/* ---------------------------------------------------------------- encode */

static int bpe_pair(const flx_tokenizer *t, tok_scratch *s, int32_t left_id, int32_t right_id,
                    double *priority, int32_t *result)
{
    (void)s;
    const tok_pair_slot *p = pair_find(&t->merges,
                                       (uint64_t)(uint32_t)left_id << 32 | (uint32_t)right_id);
    if (!p) return 0;
    *priority = p->rank;
    *result = p->result;
    return 1;
}

/* One pre-token (raw bytes) -> ids. */
static int bpe_word(const flx_tokenizer *t, tok_scratch *s, const char *w, size_t bytes,
                    tok_ids *out)
{
    if (bytes == 0) return FLX_OK;
    if (t->ignore_merges || bytes == 1) {
        int32_t id = tok_lookup(t, w, bytes);
        if (id >= 0) return tok_ids_push(out, id);
    }
    if (bytes > INT32_MAX || tok_scratch_symbols(s, bytes)) return FLX_ENOMEM;
    for (size_t i = 0; i < bytes; i++) {
        s->sym[i].id = t->byte_ids[(unsigned char)w[i]];
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < bytes ? (int32_t)i + 1 : -1;
    }
    return tok_merge_and_emit(t, s, bytes, bpe_pair, out);
}

/* Calls fn on each pre-token of text, in order: maximal runs of valid UTF-8
 * are split by the regex (its alternatives together match every character,
 * so matches are contiguous; a gap would still be passed on as a piece), and
 * each maximal run of bytes that are not valid UTF-8 is one pre-token. */
typedef int (*pretok_fn)(void *ctx, const char *w, size_t bytes);

static int bpe_split(const flx_tokenizer *t, const char *text, size_t bytes, pretok_fn fn,
                     void *ctx, flx_error *err)
{
    if (bytes == 0) return FLX_OK;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!md) return flx_fail(err, FLX_ENOMEM, "out of memory for the regex match data");
    const unsigned char *u = (const unsigned char *)text;
    size_t pos = 0;
    int rc = FLX_OK;
    while (pos < bytes && !rc) {
        /* a run of valid UTF-8: [pos, end) */
        size_t end = pos, len;
        while (end < bytes && (len = tok_utf8_len(u + end, bytes - end))) end += len;
        const char *run = text + pos;
        size_t run_bytes = end - pos, at = 0;
        while (at < run_bytes && !rc) {
            int m = pcre2_match(t->re, (PCRE2_SPTR)run, run_bytes, at, PCRE2_NO_UTF_CHECK, md,
                                NULL);
            size_t m0 = run_bytes, m1 = run_bytes;
            if (m >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                m0 = ov[0];
                m1 = ov[1] > ov[0] ? ov[1] : ov[0] + tok_utf8_len(u + pos + ov[0], run_bytes - ov[0]);
            } else if (m != PCRE2_ERROR_NOMATCH) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(m, msg, sizeof msg);
                rc = flx_fail(err, FLX_EINVAL, "pre-tokenizer failed at byte %zu of the text: %s",
                              pos + at, (const char *)msg);
                break;
            }
            if (m0 > at) rc = fn(ctx, run + at, m0 - at);
            if (!rc && m1 > m0) rc = fn(ctx, run + m0, m1 - m0);
            if (rc) rc = flx_fail(err, rc, "out of memory while encoding");
            at = m1;
        }
        pos = end;
        /* a run of invalid bytes */
        while (end < bytes && !tok_utf8_len(u + end, bytes - end)) end++;
        if (!rc && end > pos) {
            rc = fn(ctx, text + pos, end - pos);
            if (rc) rc = flx_fail(err, rc, "out of memory while encoding");
        }
        pos = end;
    }
    pcre2_match_data_free(md);
    return rc;
}

typedef struct encode_ctx {
    const flx_tokenizer *t;
    tok_scratch         *s;
    tok_ids             *out;
} encode_ctx;

static int encode_word(void *ctx, const char *w, size_t bytes)
{
    encode_ctx *c = ctx;
    return bpe_word(c->t, c->s, w, bytes, c->out);
}

int tok_bpe_encode_text(const flx_tokenizer *t, tok_scratch *s, const char *text, size_t bytes,
                        tok_ids *out, flx_error *err)
{
    encode_ctx c = {t, s, out};
    return bpe_split(t, text, bytes, encode_word, &c, err);
}

/* ---------------------------------------------------------------- public: pre-tokens */

typedef struct ends_ctx {
    const char *text;
    size_t     *v;
    size_t      n, cap;
} ends_ctx;

static int record_end(void *ctx, const char *w, size_t bytes)
{
    ends_ctx *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        size_t *nv = realloc(c->v, cap * sizeof *nv);
        if (!nv) return FLX_ENOMEM;
        c->v = nv;
        c->cap = cap;
    }
    c->v[c->n++] = (size_t)(w - c->text) + bytes;
    return FLX_OK;
}

int flx_tokenizer_pretokenize(const flx_tokenizer *tok, const char *text, size_t bytes,
                              size_t **ends, size_t *n_pieces, flx_error *err)
{
    *ends = NULL;
    *n_pieces = 0;
    if (!tok || tok->kind != FLX_TOK_BPE)
        return flx_fail(err, FLX_EINVAL, "pre-tokenizing needs a byte-level BPE tokenizer");
    if (!text && bytes) return flx_fail(err, FLX_EINVAL, "text is NULL");
    ends_ctx c = {text, NULL, 0, 0};
    int rc = bpe_split(tok, text, bytes, record_end, &c, err);
    if (rc) { free(c.v); return rc; }
    *ends = c.v;
    *n_pieces = c.n;
    return FLX_OK;
}
