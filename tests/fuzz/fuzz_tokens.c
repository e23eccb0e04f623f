/* libFuzzer target: token-id files (`--tokens FILE`: one id per line).
 * The first input byte picks the vocabulary size the ids are checked
 * against; the rest is the file.  Every id returned must be in range. */
#include "fuzz_util.h"
#include "flx_ppl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const int32_t vocabs[4] = {1, 258, 128256, INT32_MAX};
    int32_t n_vocab = vocabs[data[0] & 3];
    const char *path = fuzz_write("tokens.txt", data + 1, size - 1);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    flx_error err = {0};
    int rc = flx_tokens_read(path, n_vocab, &ids, &n_ids, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) {
        if (n_ids < 0 || (size_t)n_ids > size) abort();
        for (int64_t i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        free(ids);
    } else if (ids || n_ids) {
        abort();   /* a refusal returns nothing */
    }
    return 0;
}
