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

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flxemu tokenize (--model PATH | --tokenizer FILE) [options]\n"
            "\n"
            "Encodes text to token ids, printed one per line; with --decode, turns ids back\n"
            "into text.  No BOS is added unless --bos.\n"
            "\n"
            "  --model PATH       HF checkpoint folder (uses PATH/tokenizer.json) or a .gguf\n"
            "                     file (its tokenizer.ggml.* keys; weights are not loaded)\n"
            "  --tokenizer FILE   tokenizer.json or .gguf\n"
            "  --file FILE        input (default: standard input)\n"
            "  --bos              prepend the vocabulary's BOS token\n"
            "  --special          map special-token text such as <|begin_of_text|> to its id\n"
            "  --decode           input is token ids (whitespace separated); print the text\n"
            "  --json FILE        summary (counts, time, checksums; the ids when encoding)\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct tok_args {
    const char *model, *tokenizer, *file, *json;
    int bos, special, decode;
} tok_args;

static int parse_args(int argc, char **argv, tok_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **dst = NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(f, "--model")) dst = &a->model;
        else if (!strcmp(f, "--tokenizer")) dst = &a->tokenizer;
        else if (!strcmp(f, "--file") || !strcmp(f, "-f")) dst = &a->file;
        else if (!strcmp(f, "--json")) dst = &a->json;
        else if (!strcmp(f, "--bos")) a->bos = 1;
        else if (!strcmp(f, "--special")) a->special = 1;
        else if (!strcmp(f, "--decode")) a->decode = 1;
        else return cli_usage_error(CMD, "unknown option '%s'", f);
        if (dst) {
            if (i + 1 >= argc) return cli_usage_error(CMD, "%s needs a value", f);
            if (*dst) return cli_usage_error(CMD, "%s given twice", f);
            *dst = argv[++i];
        }
    }
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
    if (rc) return rc < 0 ? FLX_EXIT_OK : rc;
    if ((rc = cli_check_output("tokenize", "--json", a.json))) return rc;

    flx_error err = {0};
    flx_tokenizer *tok = NULL;
    char *source = NULL, *input = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t input_bytes = 0, n_ids = 0, text_bytes = 0;
    int exit_code = FLX_EXIT_FAIL;
    const char *in_name = a.file ? a.file : "<stdin>";

    if (load_tokenizer(&a, &tok, &source, &err)) goto done;
    if (read_input(a.file, &input, &input_bytes, &err)) goto done;
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
