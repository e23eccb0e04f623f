/* The stories260K SentencePiece vocabulary read from llama2.c's tok512.bin,
 * independently of the library, plus a slow llama2.c-style encoder to check
 * the library's heap-based one against. */
#ifndef FLX_TOK_SPM_UTIL_H
#define FLX_TOK_SPM_UTIL_H

#include "tok_test_util.h"

#define TOK512_N 512

typedef struct tok512 {
    char   *raw[TOK512_N];    /* llama2.c strings: real spaces, "\n<s>\n" */
    char   *gguf[TOK512_N];   /* as in the GGUF: U+2581 for space, "<s>" */
    float   scores[TOK512_N];
    int32_t types[TOK512_N];
    size_t  raw_len[TOK512_N];
    int32_t sorted[TOK512_N]; /* ids ordered by raw string, for binary search */
} tok512;

static inline int tok512_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static const tok512 *tok512_sorting;   /* test-only: qsort has no context argument */

static inline int tok512_cmp_ids(const void *a, const void *b)
{
    const tok512 *v = tok512_sorting;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int c = tok512_cmp(v->raw[x], v->raw_len[x], v->raw[y], v->raw_len[y]);
    return c ? c : (x > y) - (x < y);
}

/* tok512.bin: int32 max_token_length, then per token float32 score, int32
 * length and the bytes. */
static inline void tok512_read(tok512 *v)
{
    size_t bytes;
    char *buf = tok_read_data("stories260K/tok512.bin", &bytes);
    size_t at = 4;
    for (int i = 0; i < TOK512_N; i++) {
        int32_t len;
        cr_assert_leq(at + 8, bytes, "tok512.bin truncated at token %d", i);
        memcpy(&v->scores[i], buf + at, 4);
        memcpy(&len, buf + at + 4, 4);
        at += 8;
        cr_assert(len >= 0 && at + (size_t)len <= bytes, "tok512.bin: bad length of token %d", i);
        v->raw[i] = strndup(buf + at, (size_t)len);
        at += (size_t)len;
        /* GGUF spelling: each space as U+2581 (3 bytes) */
        char *g = malloc(3 * (size_t)len + 1);
        size_t n = 0;
        for (int32_t k = 0; k < len; k++) {
            if (buf[at - (size_t)len + (size_t)k] == ' ') { memcpy(g + n, "\xE2\x96\x81", 3); n += 3; }
            else g[n++] = buf[at - (size_t)len + (size_t)k];
        }
        g[n] = '\0';
        v->gguf[i] = g;
        v->types[i] = i == 0 ? FLX_TOKEN_UNKNOWN : i <= 2 ? FLX_TOKEN_CONTROL
                    : i <= 258 ? FLX_TOKEN_BYTE : FLX_TOKEN_NORMAL;
    }
    cr_assert_eq(at, bytes, "tok512.bin has trailing bytes");
    for (int i = 0; i < TOK512_N; i++) { v->raw_len[i] = strlen(v->raw[i]); v->sorted[i] = i; }
    tok512_sorting = v;
    qsort(v->sorted, TOK512_N, sizeof v->sorted[0], tok512_cmp_ids);
    free(v->gguf[1]);
    free(v->gguf[2]);
    v->gguf[1] = strdup("<s>");
    v->gguf[2] = strdup("</s>");
    free(buf);
}

static inline void tok512_free(tok512 *v)
{
    for (int i = 0; i < TOK512_N; i++) { free(v->raw[i]); free(v->gguf[i]); }
}

static inline flx_tokenizer *tok512_tokenizer(const tok512 *v)
{
    flx_vocab_desc d = {
        .kind = FLX_TOK_SPM, .n_tokens = TOK512_N, .tokens = (const char *const *)v->gguf,
        .scores = v->scores, .token_types = v->types, .n_merges = 0, .merges = NULL,
        .bos_id = 1, .eos_id = 2, .unk_id = 0, .add_bos = 1, .pre = "default",
    };
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_OK, "%s", err.msg);
    return t;
}

/* llama2.c run.c encode(), written plainly: binary search in the sorted
 * vocabulary, a full rescan for the best pair after every merge.  Returns
 * the id count. */
static inline int32_t tok512_find(const tok512 *v, const char *s, size_t len)
{
    int lo = 0, hi = TOK512_N - 1, found = -1;
    while (lo <= hi) {   /* the lowest id among equal strings */
        int mid = (lo + hi) / 2;
        int32_t id = v->sorted[mid];
        int c = tok512_cmp(v->raw[id], v->raw_len[id], s, len);
        if (c < 0) lo = mid + 1;
        else { if (c == 0) found = id; hi = mid - 1; }
    }
    return found;
}

static inline size_t tok512_slow_encode(const tok512 *v, const char *text, int32_t *ids)
{
    size_t n = 0;
    ids[n++] = 1;   /* BOS */
    if (text[0]) ids[n++] = tok512_find(v, " ", 1);
    size_t len = strlen(text);
    for (size_t i = 0; i < len;) {
        size_t k = 1;   /* a lead byte and its continuation bytes, as run.c groups them */
        while (i + k < len && ((unsigned char)text[i + k] & 0xC0) == 0x80 && k < 4) k++;
        int32_t id = tok512_find(v, text + i, k);
        if (id >= 0) ids[n++] = id;
        else for (size_t b = 0; b < k; b++) ids[n++] = (unsigned char)text[i + b] + 3;
        i += k;
    }
    char buf[64];
    for (;;) {
        float best = -1e10f;
        int32_t best_id = -1;
        size_t best_i = 0;
        for (size_t i = 1; i + 1 < n; i++) {   /* never merges BOS */
            int m = snprintf(buf, sizeof buf, "%s%s", v->raw[ids[i]], v->raw[ids[i + 1]]);
            int32_t id = m < (int)sizeof buf ? tok512_find(v, buf, (size_t)m) : -1;
            if (id >= 0 && v->scores[id] > best) { best = v->scores[id]; best_id = id; best_i = i; }
        }
        if (best_id < 0) break;
        ids[best_i] = best_id;
        memmove(ids + best_i + 1, ids + best_i + 2, (n - best_i - 2) * sizeof *ids);
        n--;
    }
    return n;
}

/* Checks t against the slow encoder and the round trip on the first
 * n_paragraphs blank-line-separated paragraphs of the TinyStories sample. */
static inline void tok512_check_paragraphs(const flx_tokenizer *t, const tok512 *v, int n_paragraphs)
{
    size_t bytes;
    char *text = tok_read_data("tinystories/tinystories_val_first_stories.txt", &bytes);
    char *p = text;
    int32_t *slow = malloc(8 * bytes * sizeof *slow);
    for (int k = 0; k < n_paragraphs; k++) {
        char *end = strstr(p, "\n\n");
        cr_assert_not_null(end);
        *end = '\0';
        size_t n_slow = tok512_slow_encode(v, p, slow);
        char what[64];
        snprintf(what, sizeof what, "paragraph %d", k);
        tok_expect(t, p, strlen(p), 1, 0, slow, n_slow, what);
        tok_round_trip(t, p, strlen(p), 1, what);
        p = end + 2;
    }
    free(slow);
    free(text);
}

#endif
