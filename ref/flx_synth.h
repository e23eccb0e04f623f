/* flx_synth.h -- random-weight Llama models with a fixed seed, in memory or
 * written as a Hugging Face checkpoint folder, so that every code path (and
 * every benchmark at full Llama-3.2-1B scale) runs without real weights.
 * Without a real tokenizer the model carries a byte-level vocabulary of its
 * own (256 byte tokens plus BOS/EOS): no third-party data is needed. */
#ifndef FLX_SYNTH_H
#define FLX_SYNTH_H

#include "flx_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Named shapes: "llama-3.2-1b" (exact Llama-3.2-1B config, llama3 RoPE
 * scaling, tied head) and "tiny" (a few layers of width 64; fast tests). */
int flx_synth_config(const char *shape, flx_llama_config *cfg, flx_error *err);

/* Builds a model in memory: weights ~ N(0, 0.02^2) (norm gains 1 + 0.02 z)
 * from seed, byte-level tokenizer attached, format "synthetic".  The draws
 * are Irwin-Hall sums of four 16-bit uniforms (mean 0, variance 1, bounded
 * by +-3.47) computed in integers, so the same seed gives the same weights
 * on every platform and for any thread count.  The tokenizer is left NULL
 * (reason in m->tok_note) while the tokenizer engine is not available. */
int flx_synth_build(flx_model *m, const flx_llama_config *cfg, uint64_t seed, flx_error *err);
int flx_synth_build_threads(flx_model *m, const flx_llama_config *cfg, uint64_t seed, int n_threads,
                            flx_error *err);

/* Writes DIR/config.json, DIR/model.safetensors (BF16 when bf16, else F32)
 * and DIR/tokenizer.json (a copy of tokenizer_path when given, else the
 * byte-level vocabulary).  The same seed gives the same bytes, and the
 * weights equal flx_synth_build's (rounded to BF16 when bf16).  DIR must
 * exist.  Each file appears only when complete, config.json last; on
 * failure the files this call wrote are removed. */
int flx_synth_write_hf(const char *dir, const flx_llama_config *cfg, uint64_t seed, int bf16,
                       const char *tokenizer_path, flx_error *err);
/* Same with a thread count (<= 0: one per core) and a progress bar on stderr. */
int flx_synth_write_hf_ex(const char *dir, const flx_llama_config *cfg, uint64_t seed, int bf16,
                          const char *tokenizer_path, int n_threads, int progress, flx_error *err);

#ifdef __cplusplus
}
#endif
#endif
