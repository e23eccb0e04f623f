/* flx_tokenizer.h -- text <-> token ids.
 *
 * Two vocabularies are supported:
 *  - FLX_TOK_BPE: byte-level BPE (GPT-2 byte<->unicode map) with the Llama-3
 *    pre-tokenizer regex and rank-ordered merges (Llama-3.x, tokenizer.json or
 *    GGUF tokenizer.ggml.model = "gpt2").
 *  - FLX_TOK_SPM: SentencePiece-style "llama" vocabulary (pieces + scores,
 *    byte-fallback tokens <0xNN>, U+2581 for spaces, dummy prefix space),
 *    encoded by highest-score merges like llama2.c (Llama-2 family GGUF).
 */
#ifndef FLX_TOKENIZER_H
#define FLX_TOKENIZER_H

#include "flx_core.h"

/* Caps on a vocabulary (README, "Resource caps"); Llama 3 has 128,256 tokens
 * and 280,147 merges. */
#define FLX_TOK_MAX_VOCAB  (1 << 24)
#define FLX_TOK_MAX_MERGES (1 << 24)

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flx_tokenizer_kind {
    FLX_TOK_BPE = 1,
    FLX_TOK_SPM = 2,
} flx_tokenizer_kind;

/* GGUF token types (tokenizer.ggml.token_type). */
enum flx_token_type {
    FLX_TOKEN_NORMAL = 1, FLX_TOKEN_UNKNOWN = 2, FLX_TOKEN_CONTROL = 3,
    FLX_TOKEN_USER_DEFINED = 4, FLX_TOKEN_UNUSED = 5, FLX_TOKEN_BYTE = 6,
};

/* Everything needed to build a tokenizer, as found in a GGUF file or a
 * tokenizer.json.  Strings are NUL-terminated UTF-8 exactly as stored
 * (byte-level unicode for BPE, U+2581 spaces for SPM).  Ids are array
 * indices; a NULL token string marks an unused id.  flx_tokenizer_create
 * copies what it keeps, so the caller may free the description after. */
typedef struct flx_vocab_desc {
    flx_tokenizer_kind  kind;
    int32_t             n_tokens;
    const char *const  *tokens;       /* [n_tokens]                        */
    const float        *scores;       /* [n_tokens] or NULL (SPM needs it) */
    const int32_t      *token_types;  /* [n_tokens] or NULL: all normal    */
    int32_t             n_merges;
    const char *const  *merges;       /* [n_merges] "left right" (BPE)     */
    int32_t             bos_id;       /* -1 if none */
    int32_t             eos_id;       /* -1 if none */
    int32_t             unk_id;       /* -1 if none */
    int                 add_bos;      /* the vocabulary's default          */
    const char         *pre;          /* pre-tokenizer name, e.g. "llama-bpe"; NULL = default */
} flx_vocab_desc;

typedef struct flx_tokenizer flx_tokenizer;

int  flx_tokenizer_create(flx_tokenizer **out, const flx_vocab_desc *desc, flx_error *err);
/* Hugging Face tokenizer.json (model.type BPE). */
int  flx_tokenizer_load_json(flx_tokenizer **out, const char *path, flx_error *err);
/* tokenizer.json or a GGUF file (tokenizer.ggml.*), chosen by content. */
int  flx_tokenizer_load(flx_tokenizer **out, const char *path, flx_error *err);
void flx_tokenizer_free(flx_tokenizer *tok);

flx_tokenizer_kind flx_tokenizer_get_kind(const flx_tokenizer *tok);
int32_t flx_tokenizer_n_vocab(const flx_tokenizer *tok);
int32_t flx_tokenizer_bos(const flx_tokenizer *tok);   /* -1 if none */
int32_t flx_tokenizer_eos(const flx_tokenizer *tok);   /* -1 if none */
int     flx_tokenizer_adds_bos(const flx_tokenizer *tok);

/* Encodes text[0..bytes) into a malloc'ed id array.  add_bos prepends BOS.
 * parse_special makes special-token strings such as "<|begin_of_text|>"
 * map to their ids; otherwise they are encoded as ordinary text. */
int flx_tokenizer_encode(const flx_tokenizer *tok, const char *text, size_t bytes,
                         int add_bos, int parse_special,
                         int32_t **ids, size_t *n_ids, flx_error *err);

/* The raw bytes one token stands for, given the previous token (SPM drops
 * the dummy-prefix space after BOS; prev_id -1: none).  Returns the byte
 * count written to buf (at most cap), or a negative status for an invalid
 * id or a piece longer than cap (flx_tokenizer_max_piece_bytes() always
 * suffices).  Special tokens: BPE gives their text, SPM control tokens give
 * nothing (as HF and SentencePiece decode respectively). */
int flx_tokenizer_piece(const flx_tokenizer *tok, int32_t prev_id, int32_t id,
                        char *buf, size_t cap);

/* Decodes ids to a malloc'ed NUL-terminated string (bytes, not validated UTF-8). */
int flx_tokenizer_decode(const flx_tokenizer *tok, const int32_t *ids, size_t n_ids,
                         char **text, size_t *bytes, flx_error *err);

/* Longest piece any token decodes to: a flx_tokenizer_piece buffer of this
 * many bytes always suffices. */
size_t flx_tokenizer_max_piece_bytes(const flx_tokenizer *tok);
/* Token type (enum flx_token_type) of id; 0 for an unused or invalid id. */
int32_t flx_tokenizer_token_type(const flx_tokenizer *tok, int32_t id);
/* The token's string as stored in the vocabulary; NULL for an unused id. */
const char *flx_tokenizer_token_text(const flx_tokenizer *tok, int32_t id);

/* Byte-level BPE only: splits text (no special-token handling) into the
 * pre-tokens the regex yields; *ends (malloc'ed, n_pieces entries) holds
 * the end offset of each piece.  For tests and for diffing against other
 * tokenizers. */
int flx_tokenizer_pretokenize(const flx_tokenizer *tok, const char *text, size_t bytes,
                              size_t **ends, size_t *n_pieces, flx_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FLX_TOKENIZER_H */
