/* pad: zero-padding d_ff (quant/pad.c) leaves the float model's logits bit
 * for bit unchanged; `flxemu quantize` pads a non-power-of-two d_ff when
 * R4 runs online, records it in the .flxq, and the bit-exact engine then
 * runs stories260K (the Hugging Face checkpoint, and the GGUF after its q/k
 * rows are permuted from adjacent to split-half RoPE pairing). */
#include "flx_qmodel.h"
#include "flx_llama.h"
#include "test_util.h"
#include "qtest_model.h"

#include <math.h>
#include <sys/wait.h>

static float *logits_of(const flx_model *m, const int32_t *ids, int n, int threads)
{
    flx_llama_opts o = {0};
    o.n_threads = threads;
    o.max_tokens = n;
    o.max_ctx = n;
    flx_llama_state s;
    flx_error err = {0};
    cr_assert_eq(flx_llama_init(&s, m, &o, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_llama_forward(&s, ids, n, &err), FLX_OK, "%s", err.msg);
    float *out = malloc((size_t)n * m->cfg.n_vocab * sizeof *out);
    cr_assert_eq(flx_llama_logits(&s, 0, n, out, &err), FLX_OK, "%s", err.msg);
    flx_llama_free(&s);
    return out;
}

static void check_padding_exact(const char *rel)
{
    flx_model m = {0};
    flx_error err = {0};
    cr_assert_eq(flx_model_load(&m, flx_test_data(rel), &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(m.cfg.d_ff, 172);
    int32_t ids[201];
    int n = qt_story_ids(ids, 201);
    cr_assert_eq(n, 201);
    const size_t nl = (size_t)n * m.cfg.n_vocab;
    float *ref1 = logits_of(&m, ids, n, 1), *ref2 = logits_of(&m, ids, n, 2);
    /* keep copies of layer 2's weights to check the layout */
    const int D = m.cfg.d_model, F = 172;
    float *g0 = malloc((size_t)F * D * 4), *d0 = malloc((size_t)D * F * 4);
    memcpy(g0, m.w.layers[2].w_gate, (size_t)F * D * 4);
    memcpy(d0, m.w.layers[2].w_down, (size_t)D * F * 4);

    cr_assert_eq(flx_next_pow2(172), 256);
    cr_assert_eq(flx_next_pow2(256), 256);
    cr_assert_neq(flx_model_pad_dff(&m, 100, &err), FLX_OK);   /* never shrinks */
    cr_assert_eq(flx_model_pad_dff(&m, 256, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(m.cfg.d_ff, 256);
    const flx_llama_layer *L = &m.w.layers[2];
    for (int r = 0; r < 256; r++)
        for (int c = 0; c < D; c++) {
            float want = r < F ? g0[(size_t)r * D + c] : 0.0f;
            cr_assert(L->w_gate[(size_t)r * D + c] == want && (r < F || L->w_up[(size_t)r * D + c] == 0.0f),
                      "gate/up row %d col %d", r, c);
        }
    for (int r = 0; r < D; r++)
        for (int c = 0; c < 256; c++) {
            float want = c < F ? d0[(size_t)r * F + c] : 0.0f;
            cr_assert(L->w_down[(size_t)r * 256 + c] == want, "down row %d col %d", r, c);
        }
    float *pad1 = logits_of(&m, ids, n, 1), *pad2 = logits_of(&m, ids, n, 2);
    cr_assert_eq(memcmp(ref1, pad1, nl * sizeof(float)), 0, "%s: padded logits differ (1 thread)", rel);
    cr_assert_eq(memcmp(ref2, pad2, nl * sizeof(float)), 0, "%s: padded logits differ (2 threads)", rel);
    /* the padding is not a no-op test: the logits are real */
    double mx = 0;
    for (size_t i = 0; i < nl; i++) mx = fmax(mx, fabs(ref1[i]));
    cr_assert_gt(mx, 1.0);
    free(ref1); free(ref2); free(pad1); free(pad2); free(g0); free(d0);
    flx_model_free(&m);
}

Test(pad, padded_float_model_has_bit_identical_logits_hf) { check_padding_exact("stories260K/hf"); }
Test(pad, padded_float_model_has_bit_identical_logits_gguf) { check_padding_exact("stories260K/stories260K.gguf"); }

/* adjacent -> split-half RoPE pairing: the GGUF's logits stay within float
 * rounding, and equal the HF checkpoint's (the same weights, converted) */
Test(pad, rope_pairing_permutation_keeps_the_logits)
{
    flx_model g = {0}, h = {0};
    flx_error err = {0};
    cr_assert_eq(flx_model_load(&g, flx_test_data("stories260K/stories260K.gguf"), &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(flx_model_load(&h, flx_test_data("stories260K/hf"), &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(g.cfg.rope_pairing, FLX_ROPE_ADJACENT);
    int32_t ids[201];
    int n = qt_story_ids(ids, 201);
    const size_t nl = (size_t)n * g.cfg.n_vocab;
    float *a = logits_of(&g, ids, n, 1);
    cr_assert_eq(flx_model_rope_to_split_half(&g, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(g.cfg.rope_pairing, FLX_ROPE_SPLIT_HALF);
    float *b = logits_of(&g, ids, n, 1), *c = logits_of(&h, ids, n, 1);
    double md = 0, mx = 0, mh = 0;
    for (size_t i = 0; i < nl; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mh = fmax(mh, fabs((double)c[i] - b[i]));
        mx = fmax(mx, fabs(a[i]));
    }
    cr_log_info("RoPE permutation: max |dlogit| %.3g vs original, %.3g vs HF (max |logit| %.3g)", md, mh, mx);
    cr_assert(mx > 1.0 && md < 1e-5 * mx && mh < 1e-5 * mx, "%g %g %g", md, mh, mx);
    /* the rows really moved: q row 1 of head 0 is the GGUF's row 2 */
    flx_model g0 = {0};
    cr_assert_eq(flx_model_load(&g0, flx_test_data("stories260K/stories260K.gguf"), &err), FLX_OK);
    cr_assert_eq(memcmp(g.w.layers[0].wq + 1 * 64, g0.w.layers[0].wq + 2 * 64, 64 * sizeof(float)), 0);
    cr_assert_eq(memcmp(g.w.layers[0].wk + 4 * 64, g0.w.layers[0].wk + 1 * 64, 64 * sizeof(float)), 0);
    free(a); free(b); free(c);
    flx_model_free(&g0);
    flx_model_free(&g);
    flx_model_free(&h);
}

Test(pad, quantize_pads_and_the_engine_runs_stories260K, .timeout = 240)
{
    char hf[4096], gguf[4096], text[4096], cmd[20000], out[16384], f1[600], f2[600], f3[600];
    snprintf(hf, sizeof hf, "%s", flx_test_data("stories260K/hf"));
    snprintf(gguf, sizeof gguf, "%s", flx_test_data("stories260K/stories260K.gguf"));
    snprintf(text, sizeof text, "%s", flx_test_data("tinystories/tinystories_val_first_stories.txt"));
    const char *dir = flx_test_tmpdir();
    snprintf(f1, sizeof f1, "%s/pad.flxq", dir);
    snprintf(f2, sizeof f2, "%s/nopad.flxq", dir);
    snprintf(f3, sizeof f3, "%s/gguf.flxq", dir);
    const char *bin = flx_test_bin();
    /* the HF folder has no tokenizer: --tokenizer gives it the GGUF's */
    snprintf(cmd, sizeof cmd,
             "%s quantize --model %s --tokenizer %s --recipe flexllm --calib %s --nsamples 4 --seqlen 128 "
             "--threads 2 --out %s 2>&1", bin, hf, gguf, text, f1);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "d_ff zero-padded") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s quantize --model %s --tokenizer %s --recipe flexllm --calib %s --nsamples 4 --seqlen 128 "
             "--pad-dff none --threads 2 --out %s 2>&1", bin, hf, gguf, text, f2);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s quantize --model %s --recipe flexllm --pad-dff maybe --out %s 2>&1", bin, hf, f2);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 2, "%s", out);

    flx_qmodel qm;
    flx_error err = {0};
    cr_assert_eq(flx_qmodel_load(&qm, f1, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(qm.cfg.d_ff, 256);
    cr_assert_eq(qm.d_ff_source, 172);
    cr_assert(qm.r4_online && qm.r4_dense == NULL);
    /* padded gate rows quantize to zero codes; wsum 0 */
    for (int r = 172; r < 256; r++) {
        for (int c = 0; c < 64; c++) cr_assert_eq(qm.layers[0].w_gate.q[r * 64 + c], 0);
        cr_assert(qm.layers[0].w_up.wsum[r] == 0.0f);
    }
    flx_qmodel_free(&qm);
    cr_assert_eq(flx_qmodel_load(&qm, f2, &err), FLX_OK, "%s", err.msg);
    cr_assert(qm.cfg.d_ff == 172 && qm.d_ff_source == 0 && qm.r4_dense != NULL);
    flx_qmodel_free(&qm);

    /* the bit-exact engine runs the padded file, refuses the unpadded one;
     * fake-quant and bit-exact perplexities are both those of a trained
     * model (float stories260K: ~4 on this text), and not equal */
    double ppl[2];
    for (int e = 0; e < 2; e++) {
        snprintf(cmd, sizeof cmd,
                 "%s ppl --model %s --tokenizer %s --engine %s --file %s --ctx 128 --chunks 3 --threads 2 2>&1",
                 bin, f1, gguf, e ? "emu" : "float", text);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
        const char *p = strstr(out, "PPL = ");
        cr_assert(p != NULL, "%s", out);
        ppl[e] = atof(p + 6);
    }
    cr_log_info("stories260K flexllm 3 x 128: fake-quant %.4f, bit-exact %.4f", ppl[0], ppl[1]);
    cr_assert(ppl[0] > 3.0 && ppl[0] < 12.0 && ppl[1] > 3.0 && ppl[1] < 12.0, "%g %g", ppl[0], ppl[1]);
    cr_assert(ppl[0] != ppl[1]);
    snprintf(cmd, sizeof cmd, "%s ppl --model %s --tokenizer %s --engine emu --file %s --ctx 128 --chunks 1 2>&1",
             bin, f2, gguf, text);
    cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "d_ff 172 is not a power of two") != NULL, "%s", out);
    /* the GGUF pairs RoPE dimensions (2i, 2i+1): for flexllm, quantize permutes
     * its q/k rows to the engine's split-half pairing; the file then gives
     * the HF checkpoint's perplexities in both engines */
    for (int e = 0; e < 2; e++) {
        snprintf(cmd, sizeof cmd,
                 "%s quantize --model %s --recipe flexllm --calib %s --nsamples 4 --seqlen 128 --threads 2 --out %s 2>&1 && "
                 "%s ppl --model %s --engine %s --file %s --ctx 128 --chunks 3 --threads 2 2>&1",
                 bin, gguf, text, f3, bin, f3, e ? "emu" : "float", text);
        cr_assert_eq(flx_test_sh(cmd, out, sizeof out), 0, "%s", out);
        const char *p = strstr(out, "PPL = ");
        cr_assert(p != NULL, "%s", out);
        cr_assert(fabs(atof(p + 6) - ppl[e]) < 0.02 * ppl[e], "GGUF %s PPL %g vs HF %g", e ? "emu" : "float",
                  atof(p + 6), ppl[e]);
    }
}
