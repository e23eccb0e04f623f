/* flxemu generate -- text from a prompt with the float reference model:
 * greedy at --temp 0, else top-k / temperature sampling with a seed. */
#include "cli.h"
#include "cli_emu.h"
#include "cli_model.h"
#include "flx_ppl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "generate"

typedef struct gen_args {
    const char *model, *tokenizer, *prompt, *tokens, *ids;
    long long n_gen, top_k, seed, threads;
    double temp;
    int bos, emu, sampling_set, emu_flags;
    flx_emu_opts eo;
} gen_args;

#define A(f) offsetof(gen_args, f)
static const cli_opt gen_opts[] = {
    CLI_S("model", 'm', "PATH", A(model),
          "HF checkpoint folder, .gguf, or quantized .flxq (its fake-quant\n"
          "float model; default: the embedded synthetic \"tiny\" model,\n"
          "seed " CLI_STR(CLI_EMBEDDED_SEED) ", as in flxemu ppl)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer), "tokenizer.json or .gguf overriding the model's own"),
    CLI_S("prompt", 'p', "TEXT", A(prompt), "prompt (default: empty)"),
    CLI_S("tokens", 0, "FILE", A(tokens), "prompt as token ids, one per line, used exactly (no BOS unless --bos)"),
    CLI_F("bos", 0, 1, A(bos), "with --tokens: prepend BOS"),
    CLI_I("n-predict", 'n', "N", A(n_gen), 0, 1 << 24, "tokens to generate (default 256)"),
    {.kind = CLI_NUM, .name = "temp", .metavar = "T", .offset = A(temp), .dlo = 0.0, .dhi = 100.0, .mark = 1,
     .help = "temperature; 0 = greedy (default 0)"},
    {.kind = CLI_INT, .name = "top-k", .metavar = "K", .offset = A(top_k), .ilo = 0, .ihi = 1 << 24, .mark = 1,
     .help = "sample among the K most likely tokens; 0 = all (default 40)"},
    CLI_SEED(A(seed), "sampling seed"),
    CLI_THREADS(A(threads)),
    CLI_C("engine", "float|emu", "float|emu", A(emu),
          "float (default): float reference; emu: bit-exact FlexLLM U280\n"
          "engine on a .flxq from `flxemu quantize --recipe flexllm`:\n"
          "prefill of the prompt but its last token, then decode steps\n"
          "sampling the top 5 with a threshold drawn from --seed (no\n"
          "--temp/--top-k); the simulated U280 time goes to stderr"),
    CLI_S("ids", 0, "FILE", A(ids), "also write all ids (prompt + generated), one per line"),
    {0}};
#undef A

static const cli_spec gen_spec = {
    .name = CMD,
    .usage = "[--model PATH] [options]",
    .about = "Generates text, streaming it to stdout as it is produced.  The prompt is encoded\n"
             "with the vocabulary's BOS (an empty prompt is BOS alone); generation stops after\n"
             "-n tokens or at EOS.  Greedy at --temp 0, else top-k / temperature sampling.",
    .examples = "flxemu generate -n 16                                # embedded tiny model\n"
                "flxemu generate --model llama-3.2-1b/ --prompt 'Once upon a time' -n 64 --temp 0.8\n"
                "flxemu generate --model q.flxq --engine emu --prompt 'The fox' -n 32 --ids ids.txt",
};

static int parse_args(int argc, char **argv, gen_args *a)
{
    memset(a, 0, sizeof *a);
    a->prompt = "";
    a->n_gen = 256;
    a->top_k = 40;
    a->seed = CLI_DEFAULT_SEED;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n_cpu > 0 ? n_cpu : 1;
    flx_emu_opts_default(&a->eo);
    const cli_group g[] = {{gen_opts, a, &a->sampling_set}, {cli_emu_opts, &a->eo, &a->emu_flags}};
    int n_pos, rc = cli_parse(&gen_spec, g, 2, argc, argv, NULL, &n_pos);
    if (rc) return rc;
    if ((rc = cli_check_output(CMD, "--ids", a->ids))) return rc;
    if (a->emu_flags && !a->emu)
        return cli_usage_error(CMD, "--exp, --ftz and --reference-quirks need --engine emu");
    if (a->emu && !a->model)
        return cli_usage_error(CMD, "--engine emu needs --model FILE.flxq (made by flxemu quantize --recipe flexllm)");
    if (a->emu && a->sampling_set)
        return cli_usage_error(CMD, "--temp and --top-k are float-engine options; the emu engine samples "
                                    "the top 5 with a threshold drawn from --seed");
    if (a->tokens && a->prompt[0]) return cli_usage_error(CMD, "--prompt and --tokens exclude each other");
    if (a->bos && !a->tokens) return cli_usage_error(CMD, "--bos only applies to --tokens");
    return 0;
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

/* What the phases of one generate run share; gen_free releases it. */
typedef struct gen_run {
    cli_model m;                  /* model, engine and tokenizer (cli_model.h) */
    int32_t *ids;                 /* prompt, then room for the generated tokens */
    int64_t n_prompt;
} gen_run;

/* The model (float, fake-quant .flxq, bit-exact engine, or the embedded
 * one) and its tokenizer. */
static int gen_load(const gen_args *a, gen_run *r, flx_error *err)
{
    if (cli_model_open(&r->m, a->model, a->emu, a->tokenizer, (int)a->threads, err)) return FLX_EIO;
    if (!r->m.tok && !a->tokens)
        return flx_fail(err, FLX_ENOTFOUND, "%s: the model has no tokenizer; pass --tokenizer or --tokens",
                        r->m.mp->path ? r->m.mp->path : "model");
    return FLX_OK;
}

/* The prompt's ids (--tokens, with --bos, or the encoded --prompt), with
 * room for n_gen more, each checked against the vocabulary. */
static int gen_prompt(const gen_args *a, gen_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->m.mp->cfg;
    int32_t *prompt_ids = NULL;
    int64_t n_p = 0;
    if (a->tokens) {
        if (flx_tokens_read(a->tokens, c->n_vocab, &prompt_ids, &n_p, err)) return FLX_EIO;
    } else {
        size_t n;
        if (flx_tokenizer_encode(r->m.tok, a->prompt, strlen(a->prompt), 1, 0, &prompt_ids, &n, err)) return FLX_EIO;
        n_p = (int64_t)n;
    }
    int32_t bos = r->m.tok ? flx_tokenizer_bos(r->m.tok) : c->bos_id;
    int add_bos = a->bos;
    r->n_prompt = n_p + add_bos;
    int rc = FLX_OK;
    if (r->n_prompt == 0)
        rc = flx_fail(err, FLX_EINVAL, "empty prompt: give --prompt, or --tokens with at least one id, or --bos");
    else if (add_bos && bos < 0)
        rc = flx_fail(err, FLX_EINVAL, "--bos: the vocabulary has no BOS token");
    else if (!(r->ids = malloc(((size_t)r->n_prompt + (size_t)a->n_gen) * sizeof *r->ids)))
        rc = flx_fail(err, FLX_ENOMEM, "out of memory");
    if (rc) {
        free(prompt_ids);
        return rc;
    }
    if (add_bos) r->ids[0] = bos;
    if (n_p) memcpy(r->ids + add_bos, prompt_ids, (size_t)n_p * sizeof *r->ids);
    free(prompt_ids);
    for (int64_t i = 0; i < r->n_prompt; i++)
        if (r->ids[i] < 0 || r->ids[i] >= c->n_vocab)
            return flx_fail(err, FLX_EINVAL, "prompt token %zu has id %d outside the model's vocabulary of %d",
                            (size_t)i, r->ids[i], c->n_vocab);
    return FLX_OK;
}

/* The float engine: the prompt echoed, then each new token streamed; the
 * speed on stderr, --ids. */
static int gen_float(const gen_args *a, gen_run *r, flx_error *err)
{
    const flx_llama_config *c = &r->m.mp->cfg;
    const flx_tokenizer *tok = r->m.tok;
    int32_t *ids = r->ids;
    flx_llama_state st = {0};
    flx_sampler sm = {0};
    float *logits = NULL;
    int rc = FLX_EIO;
    flx_llama_opts lo = {.n_threads = (int)a->threads, .max_tokens = r->n_prompt,
                         .max_ctx = r->n_prompt + a->n_gen, .head_rows = 1, .hooks = r->m.fq ? &r->m.fq->hooks : NULL};
    if (flx_llama_init(&st, &r->m.model, &lo, err)) goto out;
    if (flx_sampler_init(&sm, c->n_vocab, (float)a->temp, (int32_t)a->top_k, (uint64_t)a->seed, err)) goto out;
    logits = malloc((size_t)c->n_vocab * sizeof *logits);
    if (!logits) {
        rc = flx_fail(err, FLX_ENOMEM, "out of memory");
        goto out;
    }
    /* echo the prompt (the pieces of its ids), then stream the new tokens */
    int32_t bos = tok ? flx_tokenizer_bos(tok) : c->bos_id;
    char piece[256];
    for (int64_t i = 0; tok && i < r->n_prompt; i++) {
        if (ids[i] == bos) continue;   /* a control token, not text */
        int n = flx_tokenizer_piece(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
    }
    fflush(stdout);
    double t0 = flx_now_seconds();
    int64_t n_ids = r->n_prompt, n_new = 0;
    if (flx_llama_forward(&st, ids, n_ids, err)) goto out;
    int32_t eos = tok ? flx_tokenizer_eos(tok) : c->eos_id;
    while (n_new < a->n_gen) {
        if (flx_llama_logits(&st, st.n_rows - 1, 1, logits, err)) goto out;
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
        if (n_new < a->n_gen && flx_llama_forward(&st, &next, 1, err)) goto out;
    }
    printf("\n");
    double dt = flx_now_seconds() - t0;
    fprintf(stderr, "generate: %lld prompt + %lld new tokens, %.1f tokens/s\n", (long long)r->n_prompt,
            (long long)n_new, dt > 0 ? (double)n_new / dt : 0.0);
    rc = a->ids ? write_ids(a->ids, ids, n_ids, err) : FLX_OK;
out:
    free(logits);
    flx_sampler_free(&sm);
    flx_llama_free(&st);
    return rc;
}

static void gen_free(gen_run *r)
{
    free(r->ids);
    cli_model_close(&r->m);
}

int flx_cmd_generate(int argc, char **argv)
{
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return FLX_EXIT_OK;
    if (rc) return rc;
    flx_error err = {0};
    gen_run r;
    memset(&r, 0, sizeof r);
    if (gen_load(&a, &r, &err) || gen_prompt(&a, &r, &err))
        rc = cli_fail(CMD, &err);
    else if (a.emu)
        rc = generate_emu(&r.m.emu, &a.eo, r.ids, r.n_prompt, a.n_gen, (uint64_t)a.seed, r.m.tok, &r.m.mp->cfg,
                          (int)a.threads, a.ids, &err);
    else if (gen_float(&a, &r, &err))
        rc = cli_fail(CMD, &err);
    gen_free(&r);
    return rc;
}
