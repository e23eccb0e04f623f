/* SentencePiece-style "llama" vocabulary (Llama-2 family GGUF, llama2.c's
 * tokenizer.bin): pieces with U+2581 for spaces, scores, <0xNN> byte tokens.
 *
 * Encoding a text fragment, as llama2.c run.c does:
 *   1. spaces become U+2581 and a dummy-prefix U+2581 goes in front (for the
 *      fragment at the start of the text and after each special token);
 *   2. each UTF-8 character becomes its token, or byte-fallback tokens
 *      <0xNN> (or <unk> without them) when it has none;
 *   3. repeatedly merge the adjacent pair whose concatenated text is a token
 *      with the HIGHEST score, leftmost on ties.
 * Only normal and user-defined tokens take part in steps 2-3: control, byte
 * and unknown tokens never arise from text (llama2.c would also consider
 * them; no real vocabulary lets a merge produce one). */
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

static const char spm_space[] = "\xE2\x96\x81";   /* U+2581 LOWER ONE EIGHTH BLOCK */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" token text, or -1. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int tok_spm_init(flx_tokenizer *t, const flx_vocab_desc *desc, flx_error *err)
{
    for (int32_t i = 0; i < t->n_tokens; i++) {
        tok_entry *e = &t->entries[i];
        if (!e->type) continue;
        const char *text = tok_text(t, i);
        int byte = byte_token_value(text, e->text_len);
        if (!desc->token_types && byte >= 0) e->type = FLX_TOKEN_BYTE;
        switch (e->type) {
        case FLX_TOKEN_BYTE: {
            if (byte < 0)
                return flx_fail(err, FLX_EFORMAT,
                                "tokens[%d] \"%.32s\": a byte token (type 6) must read <0xNN>", i, text);
            char c = (char)byte;
            e->piece_off = tok_arena_put(t, &c, 1);
            e->piece_len = 1;
            if (t->byte_ids[byte] < 0) t->byte_ids[byte] = i;
            break;
        }
        case FLX_TOKEN_CONTROL:   /* <s>, </s>: no text (as SentencePiece decodes) */
            e->piece_off = tok_arena_put(t, "", 0);
            e->piece_len = 0;
            break;
        case FLX_TOKEN_UNKNOWN:
            e->piece_off = tok_arena_put(t, text, e->text_len);
            e->piece_len = e->text_len;
            break;
        default: {   /* normal, user-defined, unused: U+2581 -> space */
            char *dst = t->arena + t->arena_bytes;
            size_t n = 0;
            for (size_t k = 0; k < e->text_len;) {
                if (k + 3 <= e->text_len && !memcmp(text + k, spm_space, 3)) {
                    dst[n++] = ' ';
                    k += 3;
                } else {
                    dst[n++] = text[k++];
                }
            }
            dst[n] = '\0';
            e->piece_off = (uint32_t)t->arena_bytes;
            e->piece_len = (uint32_t)n;
            t->arena_bytes += n + 1;
            if (e->type != FLX_TOKEN_UNUSED) tok_lookup_insert(t, e->text_off, e->text_len, i);
        }
        }
    }
    return FLX_OK;
}

static int spm_pair(const flx_tokenizer *t, tok_scratch *s, int32_t left_id, int32_t right_id,
                    double *priority, int32_t *result)
{
    const tok_entry *l = &t->entries[left_id], *r = &t->entries[right_id];
    size_t n = (size_t)l->text_len + r->text_len;
    if (tok_scratch_buf(s, n)) return 0;   /* cannot happen: sized by the caller */
    memcpy(s->buf, t->arena + l->text_off, l->text_len);
    memcpy(s->buf + l->text_len, t->arena + r->text_off, r->text_len);
    int32_t id = tok_lookup(t, s->buf, n);
    if (id < 0) return 0;
    *priority = -(double)t->entries[id].score;
    *result = id;
    return 1;
}

static void push_symbol(tok_scratch *s, size_t *n, int32_t id)
{
    s->sym[*n].id = id;
    s->sym[*n].prev = (int32_t)*n - 1;
    s->sym[*n].next = (int32_t)*n + 1;
    (*n)++;
}

int tok_spm_encode_text(const flx_tokenizer *t, tok_scratch *s, const char *text, size_t bytes,
                        int dummy_prefix, tok_ids *out, flx_error *err)
{
    if (bytes == 0) return FLX_OK;
    if (bytes > (INT32_MAX - 3) / 3)
        return flx_fail(err, FLX_EINVAL, "text of %zu bytes is too long to encode at once", bytes);
    /* escaped text: at most 3 bytes per input byte plus the prefix */
    size_t cap = 3 * bytes + 3;
    char *esc = malloc(cap);
    if (!esc) return flx_fail(err, FLX_ENOMEM, "out of memory while encoding");
    size_t n_esc = 0;
    if (dummy_prefix) {
        memcpy(esc, spm_space, 3);
        n_esc = 3;
    }
    for (size_t i = 0; i < bytes; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n_esc, spm_space, 3);
            n_esc += 3;
        } else {
            esc[n_esc++] = text[i];
        }
    }
    /* the longest token text bounds any concatenation of two symbols */
    if (tok_scratch_symbols(s, n_esc) || tok_scratch_buf(s, 2 * t->max_text_bytes + 1)) {
        free(esc);
        return flx_fail(err, FLX_ENOMEM, "out of memory while encoding");
    }

    const unsigned char *u = (const unsigned char *)esc;
    size_t n = 0;
    for (size_t i = 0; i < n_esc;) {
        size_t len = tok_utf8_len(u + i, n_esc - i);
        int32_t id = len ? tok_lookup(t, esc + i, len) : -1;
        if (id >= 0) {
            push_symbol(s, &n, id);
            i += len;
            continue;
        }
        /* byte fallback for the character (or the one invalid byte) */
        size_t k_end = i + (len ? len : 1);
        for (; i < k_end; i++) {
            int32_t b = t->byte_ids[u[i]];
            if (b < 0) b = t->unk_id;
            if (b < 0) {
                unsigned byte = u[i];
                free(esc);
                return flx_fail(err, FLX_EINVAL,
                                "no token for byte 0x%02X of the text: the vocabulary has neither "
                                "<0x%02X> nor <unk>", byte, byte);
            }
            push_symbol(s, &n, b);
        }
    }
    free(esc);
    if (n) s->sym[n - 1].next = -1;
    int rc = tok_merge_and_emit(t, s, n, spm_pair, out);
    return rc ? flx_fail(err, rc, "out of memory while encoding") : FLX_OK;
}
