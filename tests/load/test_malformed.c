/* Bad input at the model level: truncated files, NaN/Inf weights, wrong
 * dtypes, corrupt config/tokenizer/metadata, and the CLI's exit codes and
 * output files on such input. */
#include "flx_gguf.h"
#include "flx_model.h"
#include "flx_safetensors.h"
#include "flx_synth.h"
#include "load_test_util.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

/* A tiny synthetic HF folder (F32 or BF16) in a fresh tmpdir. */
static const char *tiny_folder(int bf16)
{
    static char dir[256];
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    flx_llama_config c;
    flx_error err = {0};
    cr_assert_eq(flx_synth_config("tiny", &c, &err), FLX_OK);
    cr_assert_eq(flx_synth_write_hf(dir, &c, 3, bf16, NULL, &err), FLX_OK, "%s", err.msg);
    return dir;
}

static int load_err(const char *path, flx_error *err)
{
    flx_model m;
    int rc = flx_model_load(&m, path, err);
    if (rc == FLX_OK) flx_model_free(&m);
    return rc;
}

/* Overwrites bytes of a file in place. */
static void patch(const char *path, size_t offset, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    fseek(fp, (long)offset, SEEK_SET);
    cr_assert_eq(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

static size_t tensor_offset(const char *st_path, const char *name)
{
    flx_safetensors st;
    flx_error err = {0};
    cr_assert_eq(flx_st_open(&st, st_path, &err), FLX_OK, "%s", err.msg);
    const flx_st_tensor *t = flx_st_find(&st, name);
    cr_assert_not_null(t);
    size_t off = t->offset;
    flx_st_close(&st);
    return off;
}

Test(malformed, nan_and_inf_weights_are_named)
{
    const char *dir = tiny_folder(0);
    char st[512];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    size_t off = tensor_offset(st, "model.layers.1.mlp.up_proj.weight");
    float nan = NAN;
    patch(st, off + 4 * (64 * 3 + 5), &nan, 4);   /* row 3, column 5 */
    flx_error err = {0};
    cr_assert_eq(load_err(dir, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "model.layers.1.mlp.up_proj.weight") && strstr(err.msg, st) &&
              strstr(err.msg, "row 3, column 5"), "%s", err.msg);

    dir = tiny_folder(1);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    off = tensor_offset(st, "model.norm.weight");
    uint16_t inf = 0xFF80;   /* BF16 -inf */
    patch(st, off + 2 * 7, &inf, 2);
    cr_assert_eq(load_err(dir, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "model.norm.weight") && strstr(err.msg, "element 7"), "%s", err.msg);
}

Test(malformed, truncated_model_files)
{
    const char *dir = tiny_folder(1);
    char st[512];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    size_t n;
    uint8_t *full = read_all(st, &n);
    for (size_t cut = 0; cut < n; cut += 1 + n / 41) {
        write_bytes(st, full, cut);
        flx_error err = {0};
        cr_assert_neq(load_err(dir, &err), FLX_OK, "cut %zu accepted", cut);
        cr_assert(strstr(err.msg, "model.safetensors"), "cut %zu: %s", cut, err.msg);
    }
    free(full);

    char src[4096], gg[512];
    snprintf(src, sizeof src, "%s", flx_test_data("stories260K/stories260K.gguf"));
    full = read_all(src, &n);
    snprintf(gg, sizeof gg, "%s/m.gguf", dir);
    for (size_t cut = 0; cut < n; cut += cut < 12000 ? 97 : 100003) {
        write_bytes(gg, full, cut);
        flx_error err = {0};
        cr_assert_neq(load_err(gg, &err), FLX_OK, "cut %zu accepted", cut);
        cr_assert(strstr(err.msg, gg) || (cut < 4 && strstr(err.msg, "m.gguf")), "cut %zu: %s", cut,
                  err.msg);
    }
    free(full);
}

Test(malformed, wrong_dtype_and_bad_config_fields)
{
    /* a weight stored as I32: same byte size as F32, refused by name */
    const char *dir = tiny_folder(0);
    char st[512];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    size_t n;
    uint8_t *b = read_all(st, &n);
    const char *key = "\"model.norm.weight\":{\"dtype\":\"F32\"";
    char *hit = memmem(b, n, key, strlen(key));
    cr_assert_not_null(hit);
    memcpy(hit + 30, "I32", 3);
    write_bytes(st, b, n);
    free(b);
    flx_error err = {0};
    cr_assert_eq(load_err(dir, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "model.norm.weight") && strstr(err.msg, "I32"), "%s", err.msg);

    dir = tiny_folder(1);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    b = read_all(cfg, &n);
    const char *field[] = {"\"num_hidden_layers\": 2", "\"head_dim\": 16", "\"rope_theta\": 500000.0",
                           "\"rms_norm_eps\": 1e-05", "\"vocab_size\": 258"};
    const char *bad[] = {"\"num_hidden_layers\": \"2\"", "\"head_dim\": 15", "\"rope_theta\": -1",
                         "\"rms_norm_eps\": 0", "\"vocab_size\": 257.5"};
    const char *name[] = {"num_hidden_layers", "head_dim", "rope_theta", "rms_norm_eps", "vocab_size"};
    for (int i = 0; i < 5; i++) {
        char *text = malloc(n + 64);
        char *at = strstr((char *)b, field[i]);
        cr_assert_not_null(at, "config.json lacks %s", field[i]);
        size_t pre = (size_t)(at - (char *)b);
        memcpy(text, b, pre);
        strcpy(text + pre, bad[i]);
        strcat(text, at + strlen(field[i]));
        write_text(cfg, text);
        free(text);
        cr_assert_eq(load_err(dir, &err), FLX_EFORMAT, "%s", bad[i]);
        cr_assert(strstr(err.msg, cfg) && strstr(err.msg, name[i]), "%s: %s", name[i], err.msg);
    }
    write_text(cfg, "{not json");
    cr_assert_eq(load_err(dir, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, cfg), "%s", err.msg);
    free(b);
}

Test(malformed, corrupt_tokenizer_json_fails_the_load)
{
    const char *dir = tiny_folder(1);
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": 12}}");
    flx_error err = {0};
    int rc = load_err(dir, &err);
    cr_assert_neq(rc, FLX_OK);
    cr_assert(strstr(err.msg, "tokenizer.json"), "%s", err.msg);
    write_text(p, "");
    cr_assert_neq(load_err(dir, &err), FLX_OK);
    cr_assert(strstr(err.msg, "tokenizer.json"), "%s", err.msg);
}

/* A GGUF llama model of the tiny shape, built from the synthetic weights,
 * with hooks to corrupt its metadata. */
typedef struct gg_opts {
    const char *arch;
    uint32_t    embd;
    int         drop_block_count;
    int         rope_freqs_n;      /* 0: none */
    int         tokens_n, scores_n; /* 0: no tokenizer */
    const char *tok_model;
} gg_opts;

static void write_tiny_gguf(const char *path, const gg_opts *o)
{
    flx_llama_config c;
    flx_error err = {0};
    flx_synth_config("tiny", &c, &err);
    flx_model m;
    cr_assert_eq(flx_synth_build(&m, &c, 5, &err), FLX_OK);
    tgguf g = {0};
    tg_str(&g, "general.architecture", o->arch ? o->arch : "llama");
    tg_u32(&g, "llama.embedding_length", o->embd ? o->embd : 64);
    if (!o->drop_block_count) tg_u32(&g, "llama.block_count", 2);
    tg_u32(&g, "llama.feed_forward_length", 172);
    tg_u32(&g, "llama.attention.head_count", 4);
    tg_u32(&g, "llama.attention.head_count_kv", 2);
    tg_u32(&g, "llama.context_length", 2048);
    tg_f32(&g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    tg_f32(&g, "llama.rope.freq_base", 500000.0f);
    if (o->tokens_n) {
        char **toks = calloc((size_t)o->tokens_n, sizeof *toks);
        float *scores = calloc((size_t)o->scores_n + 1, sizeof *scores);
        for (int i = 0; i < o->tokens_n; i++) {
            toks[i] = malloc(16);
            if (i < 256) snprintf(toks[i], 16, "<0x%02X>", i);
            else snprintf(toks[i], 16, "tok%d", i);
        }
        tg_str(&g, "tokenizer.ggml.model", o->tok_model ? o->tok_model : "llama");
        tg_arr_str(&g, "tokenizer.ggml.tokens", (const char *const *)toks, (size_t)o->tokens_n);
        tg_arr_f32(&g, "tokenizer.ggml.scores", scores, (size_t)o->scores_n);
        for (int i = 0; i < o->tokens_n; i++) free(toks[i]);
        free(toks);
        free(scores);
    }
    uint64_t ne[2] = {64, 258};
    tg_tensor(&g, "token_embd.weight", 2, ne, FLX_GGML_F32, m.w.tok_embd, 258 * 64 * 4);
    const char *nm[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                         "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < 2; l++) {
        const flx_llama_layer *L = &m.w.layers[l];
        const float *w[9] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->ffn_norm, L->w_gate,
                             L->w_up, L->w_down};
        uint64_t shp[9][2] = {{64, 1}, {64, 64}, {64, 32}, {64, 32}, {64, 64}, {64, 1},
                              {64, 172}, {64, 172}, {172, 64}};
        for (int k = 0; k < 9; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, nm[k]);
            tg_tensor(&g, name, shp[k][1] == 1 ? 1 : 2, shp[k], FLX_GGML_F32, w[k],
                      shp[k][0] * shp[k][1] * 4);
        }
    }
    ne[0] = 64;
    tg_tensor(&g, "output_norm.weight", 1, ne, FLX_GGML_F32, m.w.out_norm, 64 * 4);
    if (o->rope_freqs_n) {
        float f[16];
        for (int i = 0; i < 16; i++) f[i] = i == 3 ? -1.0f : 1.0f;
        ne[0] = (uint64_t)o->rope_freqs_n;
        tg_tensor(&g, "rope_freqs.weight", 1, ne, FLX_GGML_F32, f, (size_t)o->rope_freqs_n * 4);
    }
    tbuf f = tg_finish(&g);
    write_bytes(path, f.p, f.n);
    free(f.p);
    flx_model_free(&m);
}

Test(malformed, gguf_metadata_errors_name_the_key)
{
    char p[512];
    snprintf(p, sizeof p, "%s/g.gguf", flx_test_tmpdir());
    flx_error err = {0};
    gg_opts ok = {0};
    write_tiny_gguf(p, &ok);
    flx_model m;
    cr_assert_eq(flx_model_load(&m, p, &err), FLX_OK, "%s", err.msg);
    cr_assert_eq(m.cfg.n_vocab, 258);
    cr_assert_eq(m.cfg.head_dim, 16);
    flx_model_free(&m);

    gg_opts o = {.arch = "gpt2"};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EUNSUPPORTED);
    cr_assert(strstr(err.msg, "general.architecture") && strstr(err.msg, p), "%s", err.msg);

    o = (gg_opts){.drop_block_count = 1};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "llama.block_count"), "%s", err.msg);

    o = (gg_opts){.embd = 1u << 30};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "hidden_size"), "%s", err.msg);

    o = (gg_opts){.embd = 128};   /* tensors no longer match the metadata */
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "token_embd.weight") && strstr(err.msg, "shape"), "%s", err.msg);

    o = (gg_opts){.rope_freqs_n = 4};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "rope_freqs.weight"), "%s", err.msg);
    o = (gg_opts){.rope_freqs_n = 8};   /* right size, one negative divisor */
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_ENUMERIC);
    cr_assert(strstr(err.msg, "rope_freqs.weight") && strstr(err.msg, "element 3"), "%s", err.msg);

    o = (gg_opts){.tokens_n = 258, .scores_n = 100};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "tokenizer.ggml.scores"), "%s", err.msg);
    o = (gg_opts){.tokens_n = 258, .scores_n = 258, .tok_model = "bert"};
    write_tiny_gguf(p, &o);
    cr_assert_eq(flx_model_load(&m, p, &err), FLX_OK, "an unsupported vocabulary kind is not fatal");
    cr_assert_null(m.tok);
    cr_assert(strstr(m.tok_note, "bert"), "%s", m.tok_note);
    flx_model_free(&m);
    o = (gg_opts){.tokens_n = 300, .scores_n = 300};
    write_tiny_gguf(p, &o);
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT, "%s", err.msg);
    cr_assert(strstr(err.msg, "300") && strstr(err.msg, "258"), "more tokens than embeddings: %s",
              err.msg);

    /* not a model at all */
    write_text(p, "hello");
    cr_assert_eq(load_err(p, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "not a GGUF"), "%s", err.msg);
    cr_assert_eq(load_err("/nonexistent/model", &err), FLX_EIO);
}

/* ------------------------------------------------------------ CLI */

static int run(const char *cmd)
{
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s did not exit", cmd);
    return WEXITSTATUS(st);
}

Test(malformed, cli_exit_codes_and_no_output_files)
{
    const char *bin = flx_test_bin();
    char tmp[256], cmd[8192], out[512];
    snprintf(tmp, sizeof tmp, "%s", flx_test_tmpdir());

    /* info on corrupt input: exit 1, no JSON file */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmp);
    write_text(bad, "GGUF\x03");
    snprintf(out, sizeof out, "%s/info.json", tmp);
    snprintf(cmd, sizeof cmd, "%s info --model %s --json %s 2>%s/err.txt", bin, bad, out, tmp);
    cr_assert_eq(run(cmd), 1);
    cr_assert(!flx_file_exists(out));
    char ep[512];
    snprintf(ep, sizeof ep, "%s/err.txt", tmp);
    size_t n;
    char *msg = (char *)read_all(ep, &n);
    msg[n] = '\0';
    cr_assert(strstr(msg, "bad.gguf"), "%s", msg);
    free(msg);
    snprintf(cmd, sizeof cmd, "%s info --model %s/none 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s info --bogus 2>/dev/null", bin);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s info 2>/dev/null", bin);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s info --help >/dev/null", bin);
    cr_assert_eq(run(cmd), 0);

    /* synth usage errors and refusals */
    snprintf(cmd, sizeof cmd, "%s synth --out %s/x 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x --dtype f16 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x --seed -4 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s synth --shape nope --out %s/x 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x --tokenizer %s 2>/dev/null", bin, tmp,
             bad);
    cr_assert_eq(run(cmd), 1);
    snprintf(out, sizeof out, "%s/x", tmp);
    cr_assert(!flx_is_dir(out), "a failed synth leaves no folder");

    /* a good run, then a refusal to overwrite, then --force */
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x --seed 9 --dtype f32 2>/dev/null", bin,
             tmp);
    cr_assert_eq(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x 2>/dev/null", bin, tmp);
    cr_assert_eq(run(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s synth --shape tiny --out %s/x --force --seed 9 --dtype f32 2>/dev/null",
             bin, tmp);
    cr_assert_eq(run(cmd), 0);
    snprintf(out, sizeof out, "%s/info.json", tmp);
    snprintf(cmd, sizeof cmd, "%s info --model %s/x --json %s >/dev/null 2>&1", bin, tmp, out);
    cr_assert_eq(run(cmd), 0);
    char *json = (char *)read_all(out, &n);
    json[n] = '\0';
    cr_assert(strstr(json, "\"format\":\t\"hf\"") || strstr(json, "\"format\": \"hf\""), "%s", json);
    cr_assert(strstr(json, "\"vocab_size\":\t258") || strstr(json, "\"vocab_size\": 258"), "%s", json);
    free(json);

    /* the folder matches the library's writer for the same seed */
    char lib[256];
    snprintf(lib, sizeof lib, "%s", flx_test_tmpdir());
    flx_llama_config c;
    flx_error err = {0};
    flx_synth_config("tiny", &c, &err);
    cr_assert_eq(flx_synth_write_hf(lib, &c, 9, 0, NULL, &err), FLX_OK);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/x/model.safetensors", tmp);
    snprintf(b, sizeof b, "%s/model.safetensors", lib);
    size_t na, nb;
    uint8_t *pa = read_all(a, &na), *pb = read_all(b, &nb);
    cr_assert(na == nb && !memcmp(pa, pb, na));
    free(pa);
    free(pb);
}

/* Seeded byte corruption of headers: every variant either loads or fails
 * with a message naming the file; none may crash (run under ASan too). */
Test(malformed, corrupted_header_bytes_never_crash)
{
    const char *rel[2] = {"stories260K/stories260K.gguf", "stories260K/hf-bf16/model.safetensors"};
    char dir[256];
    snprintf(dir, sizeof dir, "%s", flx_test_tmpdir());
    flx_rng rng;
    flx_rng_seed(&rng, 2024);
    for (int f = 0; f < 2; f++) {
        size_t n;
        uint8_t *orig = read_all(flx_test_data(rel[f]), &n);
        size_t header = f == 0 ? 12000 : 8 + (size_t)orig[0] + ((size_t)orig[1] << 8);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, f == 0 ? "c.gguf" : "model.safetensors");
        if (f == 1) {
            char cfg[512];
            snprintf(cfg, sizeof cfg, "%s/config.json", dir);
            size_t cn;
            uint8_t *c = read_all(flx_test_data("stories260K/hf-bf16/config.json"), &cn);
            write_bytes(cfg, c, cn);
            free(c);
        }
        uint8_t *buf = malloc(n);
        for (int trial = 0; trial < 150; trial++) {
            memcpy(buf, orig, n);
            int flips = 1 + (int)(flx_rng_u64(&rng) % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)(flx_rng_u64(&rng) % header);
                uint64_t r = flx_rng_u64(&rng);
                buf[at] = (r & 1) ? (uint8_t)(r >> 8) : (uint8_t)(buf[at] ^ (1u << ((r >> 8) & 7)));
            }
            write_bytes(path, buf, n);
            flx_model m;
            flx_error err = {0};
            int rc = flx_model_load(&m, f == 0 ? path : dir, &err);
            if (rc == FLX_OK) flx_model_free(&m);
            else cr_assert(err.msg[0] != '\0', "trial %d: empty message", trial);
        }
        free(buf);
        free(orig);
    }
}
