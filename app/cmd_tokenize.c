/* flxemu tokenize -- text to token ids (one per line) and back, so that
 * tokenizations can be diffed against other tools. */
#include "cli.h"
#include "flx_tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "tokenize"
#define MAX_INPUT_BYTES ((size_t)1 << 30)

typedef struct tok_args {
    const char *model, *tokenizer, *file, *json, *text;
    int bos, special, decode;
} tok_args;

#define A(f) offsetof(tok_args, f)
static const cli_opt tok_opts[] = {
    CLI_S("model", 'm', "PATH", A(model),
          "HF checkpoint folder (uses PATH/tokenizer.json) or a .gguf\n"
          "file (its tokenizer.ggml.* keys; weights are not loaded)"),
    CLI_S("tokenizer", 0, "FILE", A(tokenizer), "tokenizer.json or .gguf"),
    CLI_S("file", 'f', "FILE", A(file), "input file, as the positional FILE (default: standard input)"),
    CLI_S("text", 0, "TEXT", A(text), "input given on the command line instead of a file"),
    CLI_F("bos", 0, 1, A(bos), "prepend the vocabulary's BOS token"),
    CLI_F("special", 0, 1, A(special), "map special-token text such as <|begin_of_text|> to its id"),
    CLI_F("decode", 0, 1, A(decode), "input is token ids (whitespace separated); print the text"),
    CLI_S("json", 0, "FILE", A(json), "summary (counts, time, checksums; the ids when encoding)"),
    {0}};
#undef A

static const cli_spec tok_spec = {
    .name = CMD,
    .usage = "(--model PATH | --tokenizer FILE) [options] [FILE]",
    .about = "Encodes text to token ids, printed one per line; with --decode, turns ids back\n"
             "into text.  No BOS is added unless --bos.",
    .positional = "  FILE                    input file ('-' or none: standard input), as --file",
    .max_positional = 1,
    .examples = "flxemu tokenize --tokenizer tokenizer.json story.txt\n"
                "flxemu tokenize --model llama-3.2-1b/ --text 'Hello world' --bos\n"
                "flxemu tokenize --model model.gguf --decode ids.txt",
    .once = 1,
};

static int parse_args(int argc, char **argv, tok_args *a)
{
    memset(a, 0, sizeof *a);
    const cli_group g[] = {{tok_opts, a, NULL}};
    const char *pos[1];
    int n_pos, rc = cli_parse(&tok_spec, g, 1, argc, argv, pos, &n_pos);
    if (rc) return rc;
    if (n_pos && strcmp(pos[0], "-") && (rc = cli_positional_path(CMD, "--file", &a->file, pos[0]))) return rc;
    if (a->file && a->text) return cli_usage_error(CMD, "give the input once: --text or a file");
    if (!a->model == !a->tokenizer)
        return cli_usage_error(CMD, "give exactly one of --model and --tokenizer");
    if (a->decode && (a->bos || a->special))
        return cli_usage_error(CMD, "--bos and --special apply to encoding, not to --decode");
    return 0;
}

static int load_tokenizer(const tok_args *a, flx_tokenizer **tok, char **source, flx_error *err)
{
    const char *path = a->tokenizer ? a->tokenizer : a->model;
    if (a->model && flx_is_dir(a->model)) {
        *source = flx_path_join(a->model, "tokenizer.json");
        if (!*source) return flx_fail(err, FLX_ENOMEM, "out of memory");
        if (!flx_file_exists(*source))
            return flx_fail(err, FLX_ENOTFOUND, "%s: no tokenizer.json in this folder", a->model);
    } else {
        *source = strdup(path);
        if (!*source) return flx_fail(err, FLX_ENOMEM, "out of memory");
    }
    return flx_tokenizer_load(tok, *source, err);
}

static int read_input(const char *path, char **buf, size_t *bytes, flx_error *err)
{
    if (path) return flx_read_file(path, MAX_INPUT_BYTES, buf, bytes, err);
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    if (!b) return flx_fail(err, FLX_ENOMEM, "out of memory reading standard input");
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_INPUT_BYTES) {
                free(b);
                return flx_fail(err, FLX_EINVAL, "<stdin>: more than %zu bytes", MAX_INPUT_BYTES);
            }
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); return flx_fail(err, FLX_ENOMEM, "out of memory reading standard input"); }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return flx_fail(err, FLX_EIO, "<stdin>: read error");
    }
    b[n] = '\0';
    *buf = b;
    *bytes = n;
    return FLX_OK;
}

/* Whitespace-separated decimal ids. */
static int parse_ids(const char *name, char *text, size_t bytes, int32_t **ids, size_t *n_ids,
                     flx_error *err)
{
    int32_t *v = malloc((bytes / 2 + 1) * sizeof *v);   /* each id takes >= 2 bytes with its separator */
    if (!v) return flx_fail(err, FLX_ENOMEM, "out of memory");
    size_t n = 0, line = 1;
    char *p = text, *end = text + bytes;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            line += *p == '\n';
            p++;
            continue;
        }
        char *q = p;
        while (q < end && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') q++;
        char save = *q;   /* text is NUL-terminated at end, so *q is writable */
        *q = '\0';
        char *stop = NULL;
        errno = 0;
        long long id = strtoll(p, &stop, 10);
        if (stop != q || errno || id < INT32_MIN || id > INT32_MAX) {
            int rc = flx_fail(err, FLX_EFORMAT, "%s: line %zu: '%.32s' is not a token id", name,
                              line, p);
            free(v);
            return rc;
        }
        *q = save;
        v[n++] = (int32_t)id;
        p = q;
    }
    *ids = v;
    *n_ids = n;
    return FLX_OK;
}

static int write_json(const char *path, cJSON *root, flx_error *err)
{
    char *s = cJSON_PrintUnformatted(root);
    if (!s) return flx_fail(err, FLX_ENOMEM, "out of memory writing %s", path);
    flx_outfile o;
    int rc = flx_outfile_open(&o, path, err);
    if (!rc) {
        if (fputs(s, o.fp) < 0 || fputc('\n', o.fp) < 0) {
            flx_outfile_abort(&o);
            rc = flx_fail(err, FLX_EIO, "%s: write error", path);
        } else {
            rc = flx_outfile_commit(&o, err);
        }
    }
    free(s);
    return rc;
}

int flx_cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? FLX_EXIT_OK : rc;
    if ((rc = cli_check_output("tokenize", "--json", a.json))) return rc;

    flx_error err = {0};
    flx_tokenizer *tok = NULL;
    char *source = NULL, *input = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t input_bytes = 0, n_ids = 0, text_bytes = 0;
    int exit_code = FLX_EXIT_FAIL;
    const char *in_name = a.file ? a.file : a.text ? "<--text>" : "<stdin>";

    if (load_tokenizer(&a, &tok, &source, &err)) goto done;
    if (a.text) {
        input_bytes = strlen(a.text);
        input = strdup(a.text);
        if (!input) { flx_fail(&err, FLX_ENOMEM, "out of memory"); goto done; }
    } else if (read_input(a.file, &input, &input_bytes, &err)) {
        if (a.file && !flx_file_exists(a.file) && !flx_is_dir(a.file) && strchr(a.file, ' ')) {
            char msg[FLX_ERROR_MSG_BYTES];
            snprintf(msg, sizeof msg, "%s", err.msg);
            flx_fail(&err, err.code, "%s (for text on the command line use --text)", msg);
        }
        goto done;
    }
    double t0 = flx_now_seconds();
    if (a.decode) {
        if (parse_ids(in_name, input, input_bytes, &ids, &n_ids, &err)) goto done;
        if (flx_tokenizer_decode(tok, ids, n_ids, &text, &text_bytes, &err)) {
            char msg[FLX_ERROR_MSG_BYTES];
            snprintf(msg, sizeof msg, "%s", err.msg);
            flx_fail(&err, err.code, "%s: %s", in_name, msg);
            goto done;
        }
    } else if (flx_tokenizer_encode(tok, input, input_bytes, a.bos, a.special, &ids, &n_ids, &err)) {
        goto done;
    }
    double seconds = flx_now_seconds() - t0;

    if (a.decode) {
        fwrite(text, 1, text_bytes, stdout);
    } else {
        static char obuf[1 << 16];
        setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
        for (size_t i = 0; i < n_ids; i++) printf("%d\n", ids[i]);
    }
    if (fflush(stdout) || ferror(stdout)) {
        flx_fail(&err, FLX_EIO, "<stdout>: write error");
        goto done;
    }

    if (a.json) {
        char in_sha[65], out_sha[65];
        flx_sha256_hex(input, input_bytes, in_sha);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "tokenizer", source);
        cJSON_AddStringToObject(root, "kind", flx_tokenizer_get_kind(tok) == FLX_TOK_BPE ? "bpe" : "spm");
        cJSON_AddNumberToObject(root, "n_vocab", flx_tokenizer_n_vocab(tok));
        cJSON_AddStringToObject(root, "mode", a.decode ? "decode" : "encode");
        cJSON_AddStringToObject(root, "input", in_name);
        cJSON_AddNumberToObject(root, "input_bytes", (double)input_bytes);
        cJSON_AddStringToObject(root, "input_sha256", in_sha);
        cJSON_AddNumberToObject(root, "n_tokens", (double)n_ids);
        cJSON_AddNumberToObject(root, "seconds", seconds);
        if (a.decode) {
            flx_sha256_hex(text, text_bytes, out_sha);
            cJSON_AddNumberToObject(root, "output_bytes", (double)text_bytes);
            cJSON_AddStringToObject(root, "output_sha256", out_sha);
        } else {
            cJSON_AddBoolToObject(root, "bos", a.bos);
            cJSON_AddBoolToObject(root, "special", a.special);
            cJSON *arr = n_ids <= INT32_MAX ? cJSON_CreateIntArray((const int *)ids, (int)n_ids) : NULL;
            if (arr) cJSON_AddItemToObject(root, "ids", arr);
        }
        int jrc = write_json(a.json, root, &err);
        cJSON_Delete(root);
        if (jrc) goto done;
    }
    exit_code = FLX_EXIT_OK;
done:
    if (exit_code != FLX_EXIT_OK) cli_fail(CMD, &err);
    flx_tokenizer_free(tok);
    free(source);
    free(input);
    free(text);
    free(ids);
    return exit_code;
}
