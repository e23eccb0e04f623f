/* flxemu generate -- text from a prompt with the float reference model:
 * greedy at --temp 0, else top-k / temperature sampling with a seed. */
#include "cli.h"
#include "cli_emu.h"
#include "flx_ppl.h"
#include "flx_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "generate"
#define EMBEDDED_SEED 1234   /* same embedded model as flxemu ppl */

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu generate [--model PATH] [options]\n"
            "\n"
            "Generates text, streaming it to stdout as it is produced.  The prompt is encoded\n"
            "with the vocabulary's BOS (an empty prompt is BOS alone); generation stops after\n"
            "-n tokens or at EOS.\n"
            "\n"
            "  --model PATH        HF checkpoint folder, .gguf, or quantized .flxq (its fake-quant\n"
            "                      float model; default: the embedded synthetic \"tiny\" model,\n"
            "                      seed %d, as in flxemu ppl)\n"
            "  --tokenizer FILE    tokenizer.json or .gguf overriding the model's own\n"
            "  --prompt TEXT       prompt (default: empty)\n"
            "  --tokens FILE       prompt as token ids, one per line, used exactly (no BOS unless --bos)\n"
            "  --bos               with --tokens: prepend BOS\n"
            "  -n N                tokens to generate (default 256)\n"
            "  --temp T            temperature; 0 = greedy (default 0)\n"
            "  --top-k K           sample among the K most likely tokens; 0 = all (default 40)\n"
            "  --seed S            sampling seed (default 42)\n"
            "  --threads N         threads (default: all cores)\n"
            "  --engine float|emu  float (default): float reference; emu: bit-exact FlexLLM U280\n"
            "                      engine on a .flxq from `flxemu quantize --recipe flexllm`:\n"
            "                      prefill of the prompt but its last token, then decode steps\n"
            "                      sampling the top 5 with a threshold drawn from --seed (no\n"
            "                      --temp/--top-k); the simulated U280 time goes to stderr\n"
            "  --exp glibc|flx     emu: exponential (default glibc-expf; flx: flx-exp)\n"
            "  --ftz               emu: flush subnormals to zero\n"
            "  --reference-quirks  emu: reproduce the reference design's quirks (docs/reference-design.md §6)\n"
            "  --ids FILE          also write all ids (prompt + generated), one per line\n"
            "  -h, --help          this help\n",
            EMBEDDED_SEED);
}

static int write_ids(const char *path, const int32_t *ids, int64_t n, flx_error *err)
{
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (rc) return rc;
    for (int64_t i = 0; i < n; i++) fprintf(o.fp, "%d\n", ids[i]);
    return flx_outfile_commit(&o, err);
}

/* --engine emu: flx_emu_generate streams each sampled token here. */
typedef struct emu_stream {
    const flx_tokenizer *tok;
    int32_t *ids;         /* prompt + generated */
    int64_t  n_ids;
    int32_t  eos;
} emu_stream;

static int emu_on_token(void *ctx, int64_t step, const flx_emu_topk *tk, float r)
{
    (void)step;
    (void)r;
    emu_stream *s = ctx;
    int32_t next = tk->token;
    s->ids[s->n_ids++] = next;
    if (next == s->eos) return 0;   /* the engine stops after it; not text */
    if (s->tok) {
        char piece[256];
        int n = flx_tokenizer_piece(s->tok, s->ids[s->n_ids - 2], next, piece, sizeof piece);
        if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
    } else {
        printf("%d\n", next);
    }
    fflush(stdout);
    return 0;
}

/* The host flow on the bit-exact engine, then the simulated U280 time of the
 * same work: prefill of n_prompt-1 tokens, one decode step per new token
 * attending n_prompt + step keys.  Returns an exit status. */
static int generate_emu(cli_emu *emu, const flx_emu_opts *eo, int32_t *ids, int64_t n_prompt,
                        int64_t n_gen, uint64_t seed, const flx_tokenizer *tok,
                        const flx_llama_config *c, int threads, const char *ids_path, flx_error *err)
{
    if (cli_emu_start(emu, eo, n_prompt + n_gen, threads, err)) return cli_fail(CMD, err);
    fprintf(stderr, "generate: engine emu (bit-exact FlexLLM), %s%s, seed %llu\n", flx_emu_fp_name(&eo->fp),
            eo->reference_quirks ? ", reference quirks" : "", (unsigned long long)seed);
    int32_t bos = tok ? flx_tokenizer_bos(tok) : c->bos_id;
    char piece[256];
    for (int64_t i = 0; tok && i < n_prompt; i++) {
        if (ids[i] == bos) continue;
        int n = flx_tokenizer_piece(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
    }
    fflush(stdout);
    emu_stream s = {tok, ids, n_prompt, tok ? flx_tokenizer_eos(tok) : c->eos_id};
    double t0 = flx_now_seconds();
    if (flx_emu_generate(&emu->eng, ids, n_prompt, n_gen, seed, s.eos, emu_on_token, &s, emu->pool,
                         err)) {
        printf("\n");
        return cli_fail(CMD, err);
    }
    printf("\n");
    fflush(stdout);
    double dt = flx_now_seconds() - t0;
    int64_t n_new = s.n_ids - n_prompt;
    fprintf(stderr, "generate: %lld prompt + %lld new tokens, %.1f tokens/s (emulation)\n",
            (long long)n_prompt, (long long)n_new, dt > 0 ? (double)n_new / dt : 0.0);
    double pre_s = n_prompt > 1 ? cli_emu_prefill_seconds(emu, n_prompt - 1) : 0.0, dec_s = 0.0;
    for (int64_t t = 0; t < n_new && dec_s >= 0; t++) {
        double st = cli_emu_decode_seconds(emu, n_prompt + t);
        dec_s = st < 0 ? -1.0 : dec_s + st;
    }
    if (pre_s >= 0 && dec_s >= 0)
        fprintf(stderr, "device: simulated U280 time (%s) %.6f s = prefill of %lld tokens %.6f s + "
                        "%lld decode steps %.6f s (%.1f tokens/s)%s\n",
                CLI_EMU_PERF_CONFIG, pre_s + dec_s, (long long)(n_prompt - 1), pre_s, (long long)n_new,
                dec_s, dec_s > 0 ? (double)n_new / dec_s : 0.0,
                cli_emu_shape_matches(emu) ? "" : " (the design's model shape, not this model's)");
    else
        fprintf(stderr, "device: simulated U280 time unavailable: %s\n", emu->perf_note);
    if (ids_path && write_ids(ids_path, ids, s.n_ids, err)) return cli_fail(CMD, err);
    return FLX_EXIT_OK;
}

int flx_cmd_generate(int argc, char **argv)
{
    const char *model_path = NULL, *tok_path = NULL, *prompt = "", *tokens_path = NULL;
    const char *ids_path = NULL, *engine = "float";
    long long n_gen = 256, top_k = 40, seed = 42, threads;
    double temp = 0.0;
    int bos_flag = 0, sampling_set = 0, emu_flags = 0;
    flx_emu_opts eo;
    flx_emu_opts_default(&eo);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n_cpu > 0 ? n_cpu : 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return FLX_EXIT_OK;
        }
        if (!strcmp(f, "--bos")) {
            bos_flag = 1;
            continue;
        }
        int ef = cli_emu_parse_flag(CMD, argc, argv, &i, &eo, &emu_flags);
        if (ef == FLX_EXIT_USAGE) return ef;
        if (ef) continue;
        if (!strcmp(f, "--temp") || !strcmp(f, "--top-k")) sampling_set = 1;
        if (!v) {
            if (!strcmp(f, "--model") || !strcmp(f, "--tokenizer") || !strcmp(f, "--prompt") ||
                !strcmp(f, "--tokens") || !strcmp(f, "-n") || !strcmp(f, "--temp") ||
                !strcmp(f, "--top-k") || !strcmp(f, "--seed") || !strcmp(f, "--threads") ||
                !strcmp(f, "--engine") || !strcmp(f, "--ids"))
                return cli_usage_error(CMD, "%s needs a value", f);
            return cli_usage_error(CMD, "unknown option '%s'", f);
        }
        i++;
        if (!strcmp(f, "--model")) model_path = v;
        else if (!strcmp(f, "--tokenizer")) tok_path = v;
        else if (!strcmp(f, "--prompt") || !strcmp(f, "-p")) prompt = v;
        else if (!strcmp(f, "--tokens")) tokens_path = v;
        else if (!strcmp(f, "--ids")) ids_path = v;
        else if (!strcmp(f, "--engine")) engine = v;
        else if (!strcmp(f, "-n")) { if (cli_parse_i64(CMD, f, v, 0, 1 << 24, &n_gen)) return FLX_EXIT_USAGE; }
        else if (!strcmp(f, "--top-k")) { if (cli_parse_i64(CMD, f, v, 0, 1 << 24, &top_k)) return FLX_EXIT_USAGE; }
        else if (!strcmp(f, "--seed")) { if (cli_parse_i64(CMD, f, v, 0, INT64_MAX, &seed)) return FLX_EXIT_USAGE; }
        else if (!strcmp(f, "--threads")) { if (cli_parse_i64(CMD, f, v, 1, 1024, &threads)) return FLX_EXIT_USAGE; }
        else if (!strcmp(f, "--temp")) { if (cli_parse_f64(CMD, f, v, 0.0, 100.0, &temp)) return FLX_EXIT_USAGE; }
        else return cli_usage_error(CMD, "unknown option '%s'", f);
    }
    int orc = cli_check_output(CMD, "--ids", ids_path);
    if (orc) return orc;
    int use_emu = !strcmp(engine, "emu");
    if (!use_emu && strcmp(engine, "float") != 0)
        return cli_usage_error(CMD, "--engine '%s' is not available (engines: float, emu)", engine);
    if (emu_flags && !use_emu)
        return cli_usage_error(CMD, "--exp, --ftz and --reference-quirks need --engine emu");
    if (use_emu && !model_path)
        return cli_usage_error(CMD, "--engine emu needs --model FILE.flxq (made by flxemu quantize --recipe flexllm)");
    if (use_emu && sampling_set)
        return cli_usage_error(CMD, "--temp and --top-k are float-engine options; the emu engine samples "
                                    "the top 5 with a threshold drawn from --seed");
    if (tokens_path && prompt[0]) return cli_usage_error(CMD, "--prompt and --tokens exclude each other");
    if (bos_flag && !tokens_path) return cli_usage_error(CMD, "--bos only applies to --tokens");

    flx_error err = {0};
    flx_model model = {0};
    flx_fakequant *fq = NULL;     /* float engine on a .flxq */
    cli_emu emu = {0};            /* --engine emu            */
    const flx_model *mp = &model;
    flx_tokenizer *tok_over = NULL;
    flx_llama_state st = {0};
    flx_sampler sm = {0};
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n_prompt = 0;
    int rc = FLX_EXIT_FAIL;

    if (use_emu) {
        if (cli_emu_load(&emu, model_path, &err)) goto fail;
        mp = &emu.view;
    } else if (model_path && flx_qmodel_is_file(model_path)) {
        if (flx_fakequant_open_lean(&fq, &model, model_path, (int)threads, &err)) goto fail;
    } else if (model_path) {
        if (flx_model_load(&model, model_path, &err)) goto fail;
    } else {
        flx_llama_config cfg;
        if (flx_synth_config("tiny", &cfg, &err) || flx_synth_build(&model, &cfg, EMBEDDED_SEED, &err))
            goto fail;
    }
    if (tok_path && flx_tokenizer_load(&tok_over, tok_path, &err)) goto fail;
    const flx_tokenizer *tok = tok_over ? tok_over : mp->tok;
    const flx_llama_config *c = &mp->cfg;
    if (!tok && !tokens_path) {
        flx_fail(&err, FLX_ENOTFOUND, "%s: the model has no tokenizer; pass --tokenizer or --tokens",
                 mp->path ? mp->path : "model");
        goto fail;
    }

    /* prompt ids, with room for the generated ones */
    int32_t *prompt_ids = NULL;
    int64_t n_p = 0;
    if (tokens_path) {
        if (flx_tokens_read(tokens_path, c->n_vocab, &prompt_ids, &n_p, &err)) goto fail;
    } else {
        size_t n;
        if (flx_tokenizer_encode(tok, prompt, strlen(prompt), 1, 0, &prompt_ids, &n, &err)) goto fail;
        n_p = (int64_t)n;
    }
    int32_t bos = tok ? flx_tokenizer_bos(tok) : c->bos_id;
    int add_bos = bos_flag;
    n_prompt = (size_t)n_p + (size_t)add_bos;
    if (n_prompt == 0) {
        free(prompt_ids);
        flx_fail(&err, FLX_EINVAL, "empty prompt: give --prompt, or --tokens with at least one id, or --bos");
        goto fail;
    }
    if (add_bos && bos < 0) {
        free(prompt_ids);
        flx_fail(&err, FLX_EINVAL, "--bos: the vocabulary has no BOS token");
        goto fail;
    }
    ids = malloc((n_prompt + (size_t)n_gen) * sizeof *ids);
    if (!ids) { free(prompt_ids); flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }
    if (add_bos) ids[0] = bos;
    if (n_p) memcpy(ids + add_bos, prompt_ids, (size_t)n_p * sizeof *ids);
    free(prompt_ids);
    for (size_t i = 0; i < n_prompt; i++)
        if (ids[i] < 0 || ids[i] >= c->n_vocab) {
            flx_fail(&err, FLX_EINVAL, "prompt token %zu has id %d outside the model's vocabulary of %d",
                     i, ids[i], c->n_vocab);
            goto fail;
        }

    int64_t max_ctx = (int64_t)n_prompt + n_gen;
    if (use_emu) {
        rc = generate_emu(&emu, &eo, ids, (int64_t)n_prompt, n_gen, (uint64_t)seed, tok, c, (int)threads,
                          ids_path, &err);
        goto out;
    }
    flx_llama_opts lo = {.n_threads = (int)threads, .max_tokens = (int64_t)n_prompt,
                         .max_ctx = max_ctx, .head_rows = 1, .hooks = fq ? &fq->hooks : NULL};
    if (flx_llama_init(&st, &model, &lo, &err)) goto fail;
    if (flx_sampler_init(&sm, c->n_vocab, (float)temp, (int32_t)top_k, (uint64_t)seed, &err)) goto fail;
    logits = malloc((size_t)c->n_vocab * sizeof *logits);
    if (!logits) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto fail; }

    /* echo the prompt (the pieces of its ids), then stream the new tokens */
    char piece[256];
    for (size_t i = 0; tok && i < n_prompt; i++) {
        if (ids[i] == bos) continue;   /* a control token, not text */
        int n = flx_tokenizer_piece(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
    }
    fflush(stdout);
    double t0 = flx_now_seconds();
    int64_t n_ids = (int64_t)n_prompt, n_new = 0;
    if (flx_llama_forward(&st, ids, n_ids, &err)) goto fail;
    int32_t eos = tok ? flx_tokenizer_eos(tok) : c->eos_id;
    while (n_new < n_gen) {
        if (flx_llama_logits(&st, st.n_rows - 1, 1, logits, &err)) goto fail;
        int32_t next = flx_sample(&sm, logits);
        ids[n_ids++] = next;
        n_new++;
        if (next == eos) break;
        if (tok) {
            int n = flx_tokenizer_piece(tok, ids[n_ids - 2], next, piece, sizeof piece);
            if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
            fflush(stdout);
        } else {
            printf("%d\n", next);
        }
        if (n_new < n_gen && flx_llama_forward(&st, &next, 1, &err)) goto fail;
    }
    printf("\n");
    double dt = flx_now_seconds() - t0;
    fprintf(stderr, "generate: %lld prompt + %lld new tokens, %.1f tokens/s\n", (long long)n_prompt,
            (long long)n_new, dt > 0 ? (double)n_new / dt : 0.0);
    if (ids_path && write_ids(ids_path, ids, n_ids, &err)) goto fail;
    rc = FLX_EXIT_OK;
    goto out;
fail:
    rc = cli_fail(CMD, &err);
out:
    free(logits);
    free(ids);
    flx_sampler_free(&sm);
    flx_llama_free(&st);
    flx_tokenizer_free(tok_over);
    flx_model_free(&model);
    flx_fakequant_close(fq);
    cli_emu_close(&emu);
    return rc;
}
