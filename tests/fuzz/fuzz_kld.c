/* libFuzzer target: .kld logits base files (`ppl --kld-base`).  A file that
 * opens must hold every token and every record its header promises: each
 * record is read in full, and a synthetic logits row is scored against it
 * as `ppl --kld` does. */
#include "fuzz_util.h"
#include "flx_ppl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("base.kld", data, size);
    flx_kld_base b;
    flx_error err = {0};
    int rc = flx_kld_base_open(&b, path, &err);
    fuzz_check_error(rc, &err);
    if (rc != FLX_OK) return 0;
    if (b.n_ctx < 2 || b.n_vocab < 1 || b.n_chunk < 1) abort();
    fuzz_touch(b.tokens, (size_t)b.n_chunk * (size_t)b.n_ctx * sizeof *b.tokens);
    size_t rec_bytes = (size_t)flx_kld_record_u16(b.n_vocab) * 2;
    float *logits = b.n_vocab <= (1 << 16) ? malloc((size_t)b.n_vocab * sizeof *logits) : NULL;
    if (logits)
        for (int32_t v = 0; v < b.n_vocab; v++) logits[v] = (float)(v % 7) - 3.0f;
    for (int64_t c = 0; c < b.n_chunk; c++)
        for (int64_t r = 0; r < b.n_scored; r++) {
            const uint16_t *rec = flx_kld_base_record(&b, c, r);
            fuzz_touch(rec, rec_bytes);
            if (logits) {
                flx_kld_token t;
                flx_kld_token_eval(logits, b.n_vocab, rec, 0, &t);
            }
        }
    free(logits);
    flx_kld_base_close(&b);
    return 0;
}
