/* tokenizer_impl.h -- private to the tokenizer sources (tokenizer*.c): the
 * tokenizer struct, the string and pair hash maps, and the merge engine
 * shared by byte-level BPE and SentencePiece-style encoding. */
#ifndef FLX_TOKENIZER_IMPL_H
#define FLX_TOKENIZER_IMPL_H

#include "flx_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>

/* ---------------------------------------------------------------- hash maps */

/* byte string -> token id.  Keys are (offset, length) into the tokenizer's
 * arena, so the map stores no strings of its own.  Open addressing, linear
 * probing, capacity a power of two at least twice the entry count. */
typedef struct tok_str_slot {
    uint32_t hash;
    uint32_t off;       /* key bytes: arena[off .. off + len) */
    uint32_t len;
    int32_t  id;        /* -1: empty slot */
} tok_str_slot;

typedef struct tok_str_map {
    tok_str_slot *slots;   /* [cap] */
    uint32_t      cap;     /* power of two */
    uint32_t      n;
} tok_str_map;

/* (left id, right id) -> merge rank and merged id (byte-level BPE). */
typedef struct tok_pair_slot {
    uint64_t key;       /* left << 32 | right; UINT64_MAX: empty */
    int32_t  rank;      /* index in the merge list: lower merges first */
    int32_t  result;    /* id of the concatenation */
} tok_pair_slot;

typedef struct tok_pair_map {
    tok_pair_slot *slots;  /* [cap] */
    uint32_t       cap;
    uint32_t       n;
} tok_pair_map;

uint32_t tok_hash_bytes(const void *data, size_t bytes);

/* ---------------------------------------------------------------- tokenizer */

/* A byte trie of the special-token texts, so that matching at a position
 * costs the length of the match, not the number of special tokens. */
typedef struct tok_trie_node {
    int32_t first_child, next_sibling;   /* -1: none */
    int32_t token;                       /* token ending here; -1: none */
    uint8_t byte;                        /* the byte leading to this node */
} tok_trie_node;

/* One vocabulary entry.  `text` is the string as stored in the vocabulary
 * (byte-level unicode for BPE, U+2581 spaces for SPM, raw text for special
 * tokens); `piece` is what the token decodes to, as raw bytes. */
typedef struct tok_entry {
    uint32_t text_off, text_len;      /* in arena */
    uint32_t piece_off, piece_len;    /* in arena */
    int32_t  type;                    /* enum flx_token_type; 0 = unused id */
    float    score;                   /* SPM merge priority (higher first) */
} tok_entry;

struct flx_tokenizer {
    flx_tokenizer_kind kind;
    int32_t    n_tokens;
    tok_entry *entries;         /* [n_tokens] */
    char      *arena;           /* all token texts and pieces, NUL-separated */
    size_t     arena_bytes;
    size_t     max_piece_bytes; /* longest decoded piece */
    size_t     max_text_bytes;  /* longest stored text */

    int32_t bos_id, eos_id, unk_id;   /* -1 if none */
    int     add_bos;

    /* Lookup used while encoding: BPE keys are raw bytes (the decoded piece)
     * of normal tokens; SPM keys are the stored texts of normal tokens. */
    tok_str_map lookup;
    int32_t     byte_ids[256];  /* token of each single byte (BPE: byte-level
                                   token; SPM: <0xNN>); -1 if none */

    /* Tokens matched as whole strings in the input before pre-tokenizing:
     * control/unknown tokens when parse_special, user-defined ones always.
     * Sorted by first byte, then by length (longest first). */
    tok_trie_node *trie;        /* [n_trie]; node 0 is the root */
    int32_t        n_trie;
    int32_t        n_special;   /* control + unknown + user-defined */
    int32_t        n_user;      /* user-defined: matched even without parse_special */

    /* BPE only */
    tok_pair_map merges;
    int          ignore_merges; /* a pre-token that is a whole token is emitted as is */
    pcre2_code  *re;            /* the pre-tokenizer */
    int          re_jit;        /* JIT-compiled */
};

/* Key bytes of an entry in the encode lookup map. */
static inline const char *tok_text(const flx_tokenizer *t, int32_t id)
{ return t->arena + t->entries[id].text_off; }
static inline const char *tok_piece(const flx_tokenizer *t, int32_t id)
{ return t->arena + t->entries[id].piece_off; }

/* Finds a byte string in the encode lookup map; -1 if absent. */
int32_t tok_lookup(const flx_tokenizer *t, const char *s, size_t bytes);
/* Adds arena[off .. off + len) -> id unless the key is present (first wins). */
void    tok_lookup_insert(flx_tokenizer *t, uint32_t off, uint32_t len, int32_t id);
/* Appends bytes plus a NUL to the arena (sized by flx_tokenizer_create);
 * returns their offset. */
uint32_t tok_arena_put(flx_tokenizer *t, const char *s, size_t bytes);

/* ---------------------------------------------------------------- encoding */

/* A growable id array. */
typedef struct tok_ids {
    int32_t *v;
    size_t   n, cap;
} tok_ids;

int tok_ids_push(tok_ids *ids, int32_t id);

/* The merge engine: a doubly linked list of symbols and a binary heap of
 * candidate adjacent pairs keyed by (priority, left position), lowest first.
 * Both tokenizers merge "the best pair, leftmost on ties" until no pair
 * merges; a popped pair is skipped when either symbol changed since it was
 * pushed (lazy deletion), which gives exactly the order of a full rescan. */
typedef struct tok_symbol {
    int32_t id;
    int32_t prev, next;   /* positions, -1 at the ends */
} tok_symbol;

typedef struct tok_cand {
    double  priority;     /* BPE: merge rank; SPM: -score */
    int32_t left, right;  /* positions */
    int32_t left_id, right_id;
    int32_t result;       /* merged token id */
} tok_cand;

typedef struct tok_scratch {
    tok_symbol *sym;  size_t sym_cap;
    tok_cand   *heap; size_t heap_n, heap_cap;
    char       *buf;  size_t buf_cap;      /* SPM concatenation buffer */
} tok_scratch;

void tok_scratch_free(tok_scratch *s);
int  tok_scratch_symbols(tok_scratch *s, size_t n);
int  tok_scratch_buf(tok_scratch *s, size_t bytes);

/* Looks up whether symbols with ids (left_id, right_id) merge; fills the
 * priority and result of c and returns 1, or returns 0. */
typedef int (*tok_pair_fn)(const flx_tokenizer *t, tok_scratch *s, int32_t left_id,
                           int32_t right_id, double *priority, int32_t *result);

/* Merges s->sym[0..n) (linked in order) and appends the surviving ids to out. */
int tok_merge_and_emit(const flx_tokenizer *t, tok_scratch *s, size_t n, tok_pair_fn pair,
                       tok_ids *out);

/* Length of the valid UTF-8 character at s (1..4), or 0 if the bytes at s do
 * not start one (RFC 3629: no overlongs, surrogates or values > U+10FFFF). */
size_t tok_utf8_len(const unsigned char *s, size_t avail);

/* ---------------------------------------------------------------- per kind */

int  tok_bpe_init(flx_tokenizer *t, const flx_vocab_desc *desc, flx_error *err);
void tok_bpe_free(flx_tokenizer *t);
/* Pre-tokenizes and encodes ordinary text (no special tokens) into out. */
int  tok_bpe_encode_text(const flx_tokenizer *t, tok_scratch *s, const char *text, size_t bytes,
                         tok_ids *out, flx_error *err);
/* Byte-level string (GPT-2 bytes_to_unicode) -> raw bytes; dst holds at
 * least strlen(src) bytes.  Returns the byte count or -1 if src has a
 * character outside the map. */
long tok_bytelevel_decode(const char *src, size_t src_bytes, char *dst);

int  tok_spm_init(flx_tokenizer *t, const flx_vocab_desc *desc, flx_error *err);
int  tok_spm_encode_text(const flx_tokenizer *t, tok_scratch *s, const char *text, size_t bytes,
                         int dummy_prefix, tok_ids *out, flx_error *err);

#endif /* FLX_TOKENIZER_IMPL_H */
