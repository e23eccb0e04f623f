/* libFuzzer target: Hugging Face checkpoint folders.  The input holds up to
 * four files separated by FUZZ_SEP lines: config.json, model.safetensors,
 * tokenizer.json and model.safetensors.index.json (a missing part is a
 * missing file).  They are written to a fresh folder and loaded with
 * flx_model_load; the config is also parsed on its own. */
#include "fuzz_util.h"
#include "flx_model.h"
#include "flx_tokenizer.h"

static const char *const names[] = {
    "config.json", "model.safetensors", "tokenizer.json", "model.safetensors.index.json",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part parts[4];
    int n = fuzz_split(data, size, parts, 4);
    for (int i = 0; i < 4; i++) {
        if (i < n) fuzz_write(names[i], parts[i].data, parts[i].size);
        else fuzz_remove(names[i]);
    }
    flx_error err = {0};
    flx_llama_config cfg;
    fuzz_check_error(flx_hf_config_parse((const char *)parts[0].data, parts[0].size, "config.json",
                                         &cfg, &err), &err);
    flx_model m;
    int rc = flx_model_load_threads(&m, fuzz_dir(), 1, &err);
    fuzz_check_error(rc, &err);
    if (rc == FLX_OK) {
        if (m.tok) {
            int32_t *ids = NULL;
            size_t n_ids = 0;
            static const char text[] = "The quick brown fox";
            if (flx_tokenizer_encode(m.tok, text, sizeof text - 1, 1, 0, &ids, &n_ids, &err) == FLX_OK)
                free(ids);
        }
        flx_model_free(&m);
    }
    return 0;
}
