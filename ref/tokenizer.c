/* The tokenizer object: building it from a vocabulary description, the
 * lookup tables, special tokens, the merge engine both encoders share, and
 * decoding.  The encoders themselves are in tokenizer_bpe.c (byte-level BPE)
 * and tokenizer_spm.c (SentencePiece-style). */
#include "tokenizer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest vocabulary accepted: real ones have at most a few 100k entries;
 * the limit keeps a corrupt count from asking for gigabytes. */
#define TOK_MAX_VOCAB FLX_TOK_MAX_VOCAB
#define TOK_MAX_MERGES FLX_TOK_MAX_MERGES

/* ---------------------------------------------------------------- small helpers */

size_t tok_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;   /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0;  /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80
            || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;   /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0;  /* > U+10FFFF */
        return 4;
    }
    return 0;
}

uint32_t tok_hash_bytes(const void *data, size_t bytes)
{
    /* FNV-1a, 64-bit, folded */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

int tok_ids_push(tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return FLX_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return FLX_OK;
}

/* ---------------------------------------------------------------- lookup map */

static int str_map_init(tok_str_map *m, size_t n_entries)
{
    uint32_t cap = 16;
    while (cap < 2 * n_entries) cap <<= 1;
    m->slots = malloc((size_t)cap * sizeof *m->slots);
    if (!m->slots) return FLX_ENOMEM;
    for (uint32_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->cap = cap;
    m->n = 0;
    return FLX_OK;
}

int32_t tok_lookup(const flx_tokenizer *t, const char *s, size_t bytes)
{
    const tok_str_map *m = &t->lookup;
    uint32_t h = tok_hash_bytes(s, bytes);
    uint32_t i = h & (m->cap - 1);
    while (m->slots[i].id >= 0) {
        const tok_str_slot *e = &m->slots[i];
        if (e->hash == h && e->len == bytes && !memcmp(t->arena + e->off, s, bytes)) return e->id;
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_lookup_insert(flx_tokenizer *t, uint32_t off, uint32_t len, int32_t id)
{
    if (tok_lookup(t, t->arena + off, len) >= 0) return;   /* the first (lowest id) wins */
    tok_str_map *m = &t->lookup;
    uint32_t h = tok_hash_bytes(t->arena + off, len);
    uint32_t i = h & (m->cap - 1);
    while (m->slots[i].id >= 0) i = (i + 1) & (m->cap - 1);
    m->slots[i] = (tok_str_slot){h, off, len, id};
    m->n++;
}

uint32_t tok_arena_put(flx_tokenizer *t, const char *s, size_t bytes)
{
    uint32_t off = (uint32_t)t->arena_bytes;
    if (bytes) memcpy(t->arena + off, s, bytes);
    t->arena[off + bytes] = '\0';
    t->arena_bytes += bytes + 1;
    return off;
}

/* ---------------------------------------------------------------- merge engine */

void tok_scratch_free(tok_scratch *s)
{
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

int tok_scratch_symbols(tok_scratch *s, size_t n)
{
    if (n <= s->sym_cap) return FLX_OK;
    size_t cap = s->sym_cap ? s->sym_cap : 64;
    while (cap < n) cap *= 2;
    tok_symbol *v = realloc(s->sym, cap * sizeof *v);
    if (!v) return FLX_ENOMEM;
    s->sym = v;
    s->sym_cap = cap;
    return FLX_OK;
}

int tok_scratch_buf(tok_scratch *s, size_t bytes)
{
    if (bytes <= s->buf_cap) return FLX_OK;
    size_t cap = s->buf_cap ? s->buf_cap : 256;
    while (cap < bytes) cap *= 2;
    char *v = realloc(s->buf, cap);
    if (!v) return FLX_ENOMEM;
    s->buf = v;
    s->buf_cap = cap;
    return FLX_OK;
}

/* a before b: lower priority, then the leftmost pair */
static int cand_before(const tok_cand *a, const tok_cand *b)
{
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

static int heap_push(tok_scratch *s, const tok_cand *c)
{
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
        tok_cand *v = realloc(s->heap, cap * sizeof *v);
        if (!v) return FLX_ENOMEM;
        s->heap = v;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(c, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = *c;
    return FLX_OK;
}

static tok_cand heap_pop(tok_scratch *s)
{
    tok_cand top = s->heap[0];
    tok_cand last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok_cand *best = &last;
        if (l < n && cand_before(&s->heap[l], best)) { m = l; best = &s->heap[l]; }
        if (r < n && cand_before(&s->heap[r], best)) { m = r; }
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int try_pair(const flx_tokenizer *t, tok_scratch *s, int32_t left, int32_t right,
                    tok_pair_fn pair)
{
    tok_cand c;
    c.left = left;
    c.right = right;
    c.left_id = s->sym[left].id;
    c.right_id = s->sym[right].id;
    if (!pair(t, s, c.left_id, c.right_id, &c.priority, &c.result)) return FLX_OK;
    return heap_push(s, &c);
}

int tok_merge_and_emit(const flx_tokenizer *t, tok_scratch *s, size_t n, tok_pair_fn pair,
                       tok_ids *out)
{
    int rc = FLX_OK;
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n && !rc; i++) rc = try_pair(t, s, (int32_t)i, (int32_t)i + 1, pair);
    while (s->heap_n && !rc) {
        tok_cand c = heap_pop(s);
        tok_symbol *l = &s->sym[c.left], *r = &s->sym[c.right];
        /* stale: one side merged (or died) since the pair was pushed */
        if (l->id != c.left_id || r->id != c.right_id || l->next != c.right) continue;
        l->id = c.result;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = c.left;
        r->id = -1;
        if (l->prev >= 0) rc = try_pair(t, s, l->prev, c.left, pair);
        if (!rc && l->next >= 0) rc = try_pair(t, s, c.left, l->next, pair);
    }
    for (int32_t i = n ? 0 : -1; i >= 0 && !rc; i = s->sym[i].next) rc = tok_ids_push(out, s->sym[i].id);
    return rc;
}

/* ---------------------------------------------------------------- create / free */

static int is_special_type(int32_t type)
{
    return type == FLX_TOKEN_CONTROL || type == FLX_TOKEN_USER_DEFINED || type == FLX_TOKEN_UNKNOWN;
}

/* Child of node with the given byte; -1 if none. */
static int32_t trie_child(const tok_trie_node *trie, int32_t node, uint8_t byte)
{
    for (int32_t c = trie[node].first_child; c >= 0; c = trie[c].next_sibling)
        if (trie[c].byte == byte) return c;
    return -1;
}

static int build_specials(flx_tokenizer *t)
{
    size_t n_nodes = 1;   /* at most one node per special-token byte, plus the root */
    for (int32_t i = 0; i < t->n_tokens; i++)
        if (is_special_type(t->entries[i].type)) n_nodes += t->entries[i].text_len;
    if (n_nodes > INT32_MAX) return FLX_ENOMEM;
    t->trie = malloc(n_nodes * sizeof *t->trie);
    if (!t->trie) return FLX_ENOMEM;
    t->trie[0] = (tok_trie_node){-1, -1, -1, 0};
    t->n_trie = 1;
    for (int32_t i = 0; i < t->n_tokens; i++) {
        const tok_entry *e = &t->entries[i];
        if (!is_special_type(e->type) || e->text_len == 0) continue;
        int32_t node = 0;
        for (uint32_t k = 0; k < e->text_len; k++) {
            uint8_t b = (uint8_t)t->arena[e->text_off + k];
            int32_t c = trie_child(t->trie, node, b);
            if (c < 0) {
                c = t->n_trie++;
                t->trie[c] = (tok_trie_node){-1, t->trie[node].first_child, -1, b};
                t->trie[node].first_child = c;
            }
            node = c;
        }
        if (t->trie[node].token < 0) t->trie[node].token = i;   /* same text twice: lowest id */
        t->n_special++;
        t->n_user += e->type == FLX_TOKEN_USER_DEFINED;
    }
    return FLX_OK;
}

static int check_id(const flx_vocab_desc *d, const char *what, int32_t id, flx_error *err)
{
    if (id == -1) return FLX_OK;
    if (id < 0 || id >= d->n_tokens)
        return flx_fail(err, FLX_EFORMAT, "%s %d is out of range [0, %d)", what, id, d->n_tokens);
    if (!d->tokens[id]) return flx_fail(err, FLX_EFORMAT, "%s %d names an unused id", what, id);
    return FLX_OK;
}

int flx_tokenizer_create(flx_tokenizer **out, const flx_vocab_desc *d, flx_error *err)
{
    if (!out) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_create: out is NULL");
    *out = NULL;
    if (!d) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_create: description is NULL");
    if (d->kind != FLX_TOK_BPE && d->kind != FLX_TOK_SPM)
        return flx_fail(err, FLX_EUNSUPPORTED, "tokenizer kind %d is not supported", (int)d->kind);
    if (d->n_tokens < 1 || d->n_tokens > TOK_MAX_VOCAB)
        return flx_fail(err, FLX_EFORMAT, "vocabulary size %d is out of range [1, %d]",
                        d->n_tokens, TOK_MAX_VOCAB);
    if (!d->tokens) return flx_fail(err, FLX_EINVAL, "tokens is NULL");
    if (d->n_merges < 0 || (d->n_merges > 0 && !d->merges))
        return flx_fail(err, FLX_EINVAL, "merges: count %d without a list", d->n_merges);
    if (d->n_merges > TOK_MAX_MERGES)
        return flx_fail(err, FLX_EFORMAT, "merges: %d merges exceed the limit of %d", d->n_merges,
                        TOK_MAX_MERGES);
    if (d->kind == FLX_TOK_SPM && !d->scores)
        return flx_fail(err, FLX_EFORMAT, "scores: a SentencePiece vocabulary needs token scores");
    int rc;
    if ((rc = check_id(d, "bos_id", d->bos_id, err))) return rc;
    if ((rc = check_id(d, "eos_id", d->eos_id, err))) return rc;
    if ((rc = check_id(d, "unk_id", d->unk_id, err))) return rc;

    /* Every piece is at most as long as its text, so twice the texts
     * (plus terminators) bounds the arena. */
    size_t arena_bytes = 0;
    for (int32_t i = 0; i < d->n_tokens; i++) {
        if (d->token_types && d->tokens[i]
            && (d->token_types[i] < FLX_TOKEN_NORMAL || d->token_types[i] > FLX_TOKEN_BYTE))
            return flx_fail(err, FLX_EFORMAT, "token_types[%d] = %d is not a token type (1..6)", i,
                            d->token_types[i]);
        if (d->scores && d->tokens[i] && isnan(d->scores[i]))
            return flx_fail(err, FLX_EFORMAT, "scores[%d] is NaN", i);
        size_t len = d->tokens[i] ? strlen(d->tokens[i]) : 0;
        arena_bytes += 2 * (len + 1);
        if (arena_bytes > UINT32_MAX)
            return flx_fail(err, FLX_EFORMAT, "tokens: more than 2 GiB of token text");
    }

    flx_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return flx_fail(err, FLX_ENOMEM, "out of memory for the tokenizer");
    t->kind = d->kind;
    t->n_tokens = d->n_tokens;
    t->bos_id = d->bos_id;
    t->eos_id = d->eos_id;
    t->unk_id = d->unk_id;
    t->add_bos = d->add_bos != 0;
    t->entries = calloc((size_t)d->n_tokens, sizeof *t->entries);
    t->arena = malloc(arena_bytes ? arena_bytes : 1);
    if (!t->entries || !t->arena || str_map_init(&t->lookup, (size_t)d->n_tokens)) {
        flx_tokenizer_free(t);
        return flx_fail(err, FLX_ENOMEM, "out of memory for a vocabulary of %d tokens", d->n_tokens);
    }
    for (int32_t i = 0; i < d->n_tokens; i++) {
        tok_entry *e = &t->entries[i];
        if (!d->tokens[i]) continue;   /* unused id: type 0 */
        size_t len = strlen(d->tokens[i]);
        e->text_off = tok_arena_put(t, d->tokens[i], len);
        e->text_len = (uint32_t)len;
        e->type = d->token_types ? d->token_types[i] : FLX_TOKEN_NORMAL;
        e->score = d->scores ? d->scores[i] : 0.0f;
    }
    for (int b = 0; b < 256; b++) t->byte_ids[b] = -1;

    rc = d->kind == FLX_TOK_BPE ? tok_bpe_init(t, d, err) : tok_spm_init(t, d, err);
    if (!rc && build_specials(t)) rc = flx_fail(err, FLX_ENOMEM, "out of memory for special tokens");
    if (rc) {
        flx_tokenizer_free(t);
        return rc;
    }
    for (int32_t i = 0; i < t->n_tokens; i++) {
        if (t->entries[i].piece_len > t->max_piece_bytes) t->max_piece_bytes = t->entries[i].piece_len;
        if (t->entries[i].text_len > t->max_text_bytes) t->max_text_bytes = t->entries[i].text_len;
    }
    *out = t;
    return FLX_OK;
}

void flx_tokenizer_free(flx_tokenizer *t)
{
    if (!t) return;
    if (t->kind == FLX_TOK_BPE) tok_bpe_free(t);
    free(t->trie);
    free(t->lookup.slots);
    free(t->arena);
    free(t->entries);
    free(t);
}

/* ---------------------------------------------------------------- accessors */

flx_tokenizer_kind flx_tokenizer_get_kind(const flx_tokenizer *tok) { return tok->kind; }
int32_t flx_tokenizer_n_vocab(const flx_tokenizer *tok) { return tok->n_tokens; }
int32_t flx_tokenizer_bos(const flx_tokenizer *tok) { return tok->bos_id; }
int32_t flx_tokenizer_eos(const flx_tokenizer *tok) { return tok->eos_id; }
int     flx_tokenizer_adds_bos(const flx_tokenizer *tok) { return tok->add_bos; }
size_t  flx_tokenizer_max_piece_bytes(const flx_tokenizer *tok) { return tok->max_piece_bytes; }

int32_t flx_tokenizer_token_type(const flx_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_tokens ? tok->entries[id].type : 0;
}

const char *flx_tokenizer_token_text(const flx_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_tokens || !tok->entries[id].type) return NULL;
    return tok_text(tok, id);
}

/* ---------------------------------------------------------------- encode */

/* The longest special token starting at text[0..avail); -1 if none. */
static int32_t match_special(const flx_tokenizer *t, const char *text, size_t avail,
                             int parse_special)
{
    int32_t best = -1, node = 0;
    for (size_t k = 0; k < avail; k++) {
        node = trie_child(t->trie, node, (uint8_t)text[k]);
        if (node < 0) break;
        int32_t id = t->trie[node].token;
        if (id >= 0 && (parse_special || t->entries[id].type == FLX_TOKEN_USER_DEFINED)) best = id;
    }
    return best;
}

static int encode_fragment(const flx_tokenizer *t, tok_scratch *s, const char *text, size_t bytes,
                           int after_special, tok_ids *out, flx_error *err)
{
    if (t->kind == FLX_TOK_BPE) return tok_bpe_encode_text(t, s, text, bytes, out, err);
    return tok_spm_encode_text(t, s, text, bytes, after_special, out, err);
}

int flx_tokenizer_encode(const flx_tokenizer *tok, const char *text, size_t bytes, int add_bos,
                         int parse_special, int32_t **ids, size_t *n_ids, flx_error *err)
{
    if (!ids || !n_ids) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_encode: ids is NULL");
    *ids = NULL;
    *n_ids = 0;
    if (!tok) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_encode: tokenizer is NULL");
    if (!text && bytes) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_encode: text is NULL");
    if (add_bos && tok->bos_id < 0)
        return flx_fail(err, FLX_EINVAL, "BOS requested but the vocabulary has no BOS token");
    tok_ids out = {0};
    tok_scratch s = {0};
    int rc = add_bos ? tok_ids_push(&out, tok->bos_id) : FLX_OK;
    if (rc) rc = flx_fail(err, rc, "out of memory while encoding");

    /* Split out special tokens; the text between them is encoded normally.
     * SPM gives each fragment at the start or after a special token its
     * dummy-prefix space, as llama.cpp does. */
    size_t start = 0, pos = 0;
    int after_special = 1;
    int match_any = parse_special ? tok->n_special > 0 : tok->n_user > 0;
    while (!rc && pos < bytes) {
        int32_t id = match_any ? match_special(tok, text + pos, bytes - pos, parse_special) : -1;
        if (id < 0) { pos++; continue; }
        if (pos > start) rc = encode_fragment(tok, &s, text + start, pos - start, after_special, &out, err);
        if (!rc && (rc = tok_ids_push(&out, id))) rc = flx_fail(err, rc, "out of memory while encoding");
        pos += tok->entries[id].text_len;
        start = pos;
        after_special = 1;
    }
    if (!rc && bytes > start)
        rc = encode_fragment(tok, &s, text + start, bytes - start, after_special, &out, err);
    tok_scratch_free(&s);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (!out.v) out.v = malloc(sizeof *out.v);   /* a valid pointer even for no ids */
    if (!out.v) return flx_fail(err, FLX_ENOMEM, "out of memory while encoding");
    *ids = out.v;
    *n_ids = out.n;
    return FLX_OK;
}

/* ---------------------------------------------------------------- decode */

int flx_tokenizer_piece(const flx_tokenizer *tok, int32_t prev_id, int32_t id, char *buf, size_t cap)
{
    if (!tok || id < 0 || id >= tok->n_tokens || !tok->entries[id].type) return FLX_EINVAL;
    const tok_entry *e = &tok->entries[id];
    const char *p = tok->arena + e->piece_off;
    size_t n = e->piece_len;
    /* SentencePiece: the dummy-prefix space of the first word after BOS is
     * not part of the text (llama2.c decode) */
    if (tok->kind == FLX_TOK_SPM && prev_id >= 0 && prev_id == tok->bos_id && n && p[0] == ' ') {
        p++;
        n--;
    }
    if (n > cap || n > INT32_MAX) return FLX_EINVAL;
    if (n) memcpy(buf, p, n);
    return (int)n;
}

int flx_tokenizer_decode(const flx_tokenizer *tok, const int32_t *ids, size_t n_ids, char **text,
                         size_t *bytes, flx_error *err)
{
    if (!text || !bytes) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_decode: text is NULL");
    *text = NULL;
    *bytes = 0;
    if (!tok) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_decode: tokenizer is NULL");
    if (!ids && n_ids) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_decode: ids is NULL");
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_tokens)
            return flx_fail(err, FLX_EINVAL, "token id %d at position %zu is out of range [0, %d)",
                            id, i, tok->n_tokens);
        if (!tok->entries[id].type)
            return flx_fail(err, FLX_EINVAL, "token id %d at position %zu is not in the vocabulary",
                            id, i);
        total += tok->entries[id].piece_len;
    }
    char *s = malloc(total + 1);
    if (!s) return flx_fail(err, FLX_ENOMEM, "out of memory decoding %zu tokens", n_ids);
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int k = flx_tokenizer_piece(tok, i ? ids[i - 1] : -1, ids[i], s + n, total - n);
        n += (size_t)k;   /* cannot fail: ids checked and space reserved above */
    }
    s[n] = '\0';
    *text = s;
    *bytes = n;
    return FLX_OK;
}
