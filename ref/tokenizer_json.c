/* Hugging Face tokenizer.json (model.type BPE, byte-level) -> flx_vocab_desc
 * -> flx_tokenizer_create.
 *
 * Read: model.vocab (string -> id), model.merges ("a b" strings or [a, b]
 * pairs, rank = index), model.ignore_merges, added_tokens (id, content,
 * special), pre_tokenizer (must be the Llama-3 split regex or GPT-2's
 * ByteLevel regex), post_processor (a TemplateProcessing that starts with a
 * special token means "add BOS").  Ids may have gaps: unused ids are holes. */
#include "tokenizer_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest tokenizer.json accepted (real ones are ~10 MB). */
#define JSON_MAX_BYTES ((size_t)128 << 20)   /* Llama 3's is 9 MB */
#define JSON_MAX_VALUES ((size_t)8 << 20)   /* Llama 3's has ~1 M (merges as pairs) */
/* Ids must be below this and below 1024 x the number of entries, so a
 * small file cannot ask for a huge id table. */
#define JSON_MAX_ID (1 << 22)

static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct json_load {
    const char    *path;
    flx_error     *err;
    const char   **tokens;     /* [n_tokens] */
    int32_t       *types;      /* [n_tokens] */
    char         **joined;     /* [n_merges] merges written as [a, b], joined "a b" */
    const char   **merges;     /* [n_merges] */
    int32_t        n_tokens, n_merges;
} json_load;

static void json_load_free(json_load *L)
{
    if (L->joined)
        for (int32_t i = 0; i < L->n_merges; i++) free(L->joined[i]);
    free(L->joined);
    free((void *)L->tokens);
    free(L->types);
    free((void *)L->merges);
}

/* An integer id in [0, limit), else -1. */
static int64_t json_id(const cJSON *v, int64_t limit)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= (double)limit || d != floor(d)) return -1;
    return (int64_t)d;
}

/* The regex of a Split pre-tokenizer inside pt (Sequence or Split), and
 * whether a ByteLevel step applies its own (GPT-2) regex. */
static void find_pretok(const cJSON *pt, const char **regex, int *bytelevel_regex)
{
    if (!cJSON_IsObject(pt)) return;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pt, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) find_pretok(it, regex, bytelevel_regex);
    } else if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "Regex"));
        if (!re) re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "String"));
        if (re && !*regex) *regex = re;
        else if (!re) *regex = "";   /* a Split we cannot read */
    } else if (!strcmp(type, "ByteLevel")) {
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (!use || cJSON_IsTrue(use)) *bytelevel_regex = 1;   /* HF default: true */
    }
}

/* The special token a TemplateProcessing puts first, if any. */
static const char *find_template_bos(const cJSON *pp)
{
    if (!cJSON_IsObject(pp)) return NULL;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pp, "type"));
    if (!type) return NULL;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            const char *b = find_template_bos(it);
            if (b) return b;
        }
        return NULL;
    }
    if (strcmp(type, "TemplateProcessing")) return NULL;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "id"));
}

static int32_t find_token(const json_load *L, const char *text)
{
    if (!text) return -1;
    for (int32_t i = 0; i < L->n_tokens; i++)
        if (L->tokens[i] && L->types[i] != FLX_TOKEN_NORMAL && !strcmp(L->tokens[i], text)) return i;
    return -1;
}

static int32_t find_first_named(const json_load *L, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = find_token(L, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* model.type, byte_fallback, ignore_merges; the vocab object and the
 * added_tokens array (NULL when absent). */
static int read_model(json_load *L, const cJSON *root, const cJSON **vocab, const cJSON **added,
                      int *ignore_merges)
{
    const char *path = L->path;
    flx_error *err = L->err;
    if (!cJSON_IsObject(root)) return flx_fail(err, FLX_EFORMAT, "%s: not a JSON object", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return flx_fail(err, FLX_EFORMAT, "%s: model is missing", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE")))
        return flx_fail(err, FLX_EUNSUPPORTED, "%s: model.type \"%s\" is not supported (only BPE)",
                        path, cJSON_IsString(type) ? type->valuestring : "?");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return flx_fail(err, FLX_EUNSUPPORTED,
                        "%s: model.byte_fallback: SentencePiece-converted BPE is not supported from "
                        "tokenizer.json (use the model's GGUF vocabulary)", path);
    *ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(*vocab))
        return flx_fail(err, FLX_EFORMAT, "%s: model.vocab is missing or not an object", path);
    *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (*added && !cJSON_IsNull(*added) && !cJSON_IsArray(*added))
        return flx_fail(err, FLX_EFORMAT, "%s: added_tokens is not an array", path);
    return FLX_OK;
}

/* The id table from model.vocab and added_tokens, in two passes: the id
 * range first (bounded by `limit`, so a small file cannot ask for a huge
 * table), then id -> text. */
static int read_ids(json_load *L, const cJSON *vocab, const cJSON *added, int64_t limit)
{
    const char *path = L->path;
    flx_error *err = L->err;
    int64_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = json_id(it, limit);
        if (id < 0)
            return flx_fail(err, FLX_EFORMAT,
                            "%s: model.vocab[\"%.64s\"]: id is not an integer in [0, %lld) (the "
                            "limit is 1024 x the number of entries, at most %d)",
                            path, it->string, (long long)limit, JSON_MAX_ID);
        if (id > max_id) max_id = id;
    }
    int k = 0;
    cJSON_ArrayForEach(it, added) {
        int64_t id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), limit);
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        if (id < 0 || !content)
            return flx_fail(err, FLX_EFORMAT,
                            "%s: added_tokens[%d]: needs \"id\" (an integer in [0, %lld)) and "
                            "\"content\" (a string)", path, k, (long long)limit);
        if (id > max_id) max_id = id;
        k++;
    }
    if (max_id < 0) return flx_fail(err, FLX_EFORMAT, "%s: model.vocab is empty", path);

    L->n_tokens = (int32_t)max_id + 1;
    L->tokens = calloc((size_t)L->n_tokens, sizeof *L->tokens);
    L->types = calloc((size_t)L->n_tokens, sizeof *L->types);
    if (!L->tokens || !L->types) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)json_id(it, limit);
        if (L->tokens[id])
            return flx_fail(err, FLX_EFORMAT, "%s: model.vocab: id %d is used by both \"%.64s\" and \"%.64s\"",
                            path, id, L->tokens[id], it->string);
        L->tokens[id] = it->string;
        L->types[id] = FLX_TOKEN_NORMAL;
    }
    k = 0;
    cJSON_ArrayForEach(it, added) {
        int32_t id = (int32_t)json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), limit);
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
        if (L->tokens[id] && (strcmp(L->tokens[id], content) || L->types[id] != FLX_TOKEN_NORMAL))
            return flx_fail(err, FLX_EFORMAT,
                            "%s: added_tokens[%d]: id %d (\"%.64s\") is already used by \"%.64s\"",
                            path, k, id, content, L->tokens[id]);
        L->tokens[id] = content;
        L->types[id] = special ? FLX_TOKEN_CONTROL : FLX_TOKEN_USER_DEFINED;
        k++;
    }
    return FLX_OK;
}

/* model.merges: "a b" strings, or [a, b] pairs joined into "a b". */
static int read_merges(json_load *L, const cJSON *merges)
{
    const char *path = L->path;
    flx_error *err = L->err;
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges))
        return flx_fail(err, FLX_EFORMAT, "%s: model.merges is not an array", path);
    int n_merges = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
    L->merges = calloc(n_merges ? (size_t)n_merges : 1, sizeof *L->merges);
    L->joined = calloc(n_merges ? (size_t)n_merges : 1, sizeof *L->joined);
    if (!L->merges || !L->joined) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    L->n_merges = n_merges;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            L->merges[k] = it->valuestring;
        } else {
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
            const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !a || !b || !*a || !*b)
                return flx_fail(err, FLX_EFORMAT,
                                "%s: model.merges[%d]: expected \"left right\" or [\"left\", \"right\"]",
                                path, k);
            size_t la = strlen(a), lb = strlen(b);
            char *j = malloc(la + lb + 2);
            if (!j) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
            memcpy(j, a, la);
            j[la] = ' ';
            memcpy(j + la + 1, b, lb + 1);
            L->joined[k] = j;
            L->merges[k] = j;
        }
        k++;
    }
    return FLX_OK;
}

/* The pre-tokenizer's name for flx_tokenizer_create: NULL (Llama-3 rules),
 * "llama-bpe" or "gpt2"; anything else is refused. */
static int read_pretokenizer(json_load *L, const cJSON *root, const char **pre)
{
    const char *regex = NULL;
    int bytelevel_regex = 0;
    find_pretok(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &regex, &bytelevel_regex);
    *pre = NULL;
    if (regex) {
        if (strcmp(regex, llama3_regex))
            return flx_fail(L->err, FLX_EUNSUPPORTED,
                            "%s: pre_tokenizer: the Split regex is not the Llama-3 one (only the "
                            "Llama-3 and GPT-2 byte-level pre-tokenizers are supported)", L->path);
        *pre = "llama-bpe";
    } else if (bytelevel_regex) {
        *pre = "gpt2";
    }
    return FLX_OK;
}

/* BOS (from the post-processor's template, else by name), EOS and UNK. */
static int read_special_ids(json_load *L, const cJSON *root, const cJSON *vocab, int64_t limit,
                            flx_vocab_desc *d)
{
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    const char *tmpl_bos = find_template_bos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    int32_t bos = find_token(L, tmpl_bos);
    if (tmpl_bos && bos < 0)
        return flx_fail(L->err, FLX_EFORMAT,
                        "%s: post_processor: template token \"%.64s\" is not an added token", L->path,
                        tmpl_bos);
    d->add_bos = bos >= 0;
    if (bos < 0) bos = find_first_named(L, bos_names);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    int32_t unk_id = -1;
    if (unk) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk);
        unk_id = u ? (int32_t)json_id(u, limit) : find_token(L, unk);
    }
    d->bos_id = bos;
    d->eos_id = find_first_named(L, eos_names);
    d->unk_id = unk_id;
    return FLX_OK;
}

static int parse(json_load *L, const cJSON *root, flx_vocab_desc *d, int *ignore_merges)
{
    const cJSON *vocab = NULL, *added = NULL;
    int rc = read_model(L, root, &vocab, &added, ignore_merges);
    if (rc) return rc;
    int64_t n_entries = cJSON_GetArraySize(vocab) + (cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0);
    int64_t limit = n_entries * 1024 < JSON_MAX_ID ? n_entries * 1024 : JSON_MAX_ID;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *pre = NULL;
    if ((rc = read_ids(L, vocab, added, limit)) ||
        (rc = read_merges(L, cJSON_GetObjectItemCaseSensitive(model, "merges"))) ||
        (rc = read_pretokenizer(L, root, &pre)) ||
        (rc = read_special_ids(L, root, vocab, limit, d)))
        return rc;
    d->kind = FLX_TOK_BPE;
    d->n_tokens = L->n_tokens;
    d->tokens = L->tokens;
    d->scores = NULL;
    d->token_types = L->types;
    d->n_merges = L->n_merges;
    d->merges = L->merges;
    d->pre = pre;
    return FLX_OK;
}

int flx_tokenizer_load_json(flx_tokenizer **out, const char *path, flx_error *err)
{
    if (!out || !path) return flx_fail(err, FLX_EINVAL, "flx_tokenizer_load_json: NULL argument");
    *out = NULL;
    char *buf = NULL;
    size_t bytes = 0;
    int rc = flx_read_file(path, JSON_MAX_BYTES, &buf, &bytes, err);
    if (rc) return rc;
    if ((rc = flx_json_budget(buf, bytes, JSON_MAX_VALUES, path, err))) {
        free(buf);
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength(buf, bytes);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= buf && at <= buf + bytes ? (size_t)(at - buf) : 0;
        free(buf);
        return flx_fail(err, FLX_EFORMAT, "%s: not valid JSON (error near byte %zu)", path, off);
    }
    free(buf);

    json_load L = {.path = path, .err = err};
    flx_vocab_desc d;
    memset(&d, 0, sizeof d);
    int ignore_merges = 0;
    rc = parse(&L, root, &d, &ignore_merges);
    flx_tokenizer *t = NULL;
    if (!rc) {
        rc = flx_tokenizer_create(&t, &d, err);
        if (rc && err) {   /* name the file in the vocabulary's complaint */
            char msg[FLX_ERROR_MSG_BYTES];
            snprintf(msg, sizeof msg, "%s", err->msg);
            flx_fail(err, rc, "%s: %s", path, msg);
        }
    }
    if (t) t->ignore_merges = ignore_merges;
    json_load_free(&L);
    cJSON_Delete(root);
    if (rc) return rc;
    *out = t;
    return FLX_OK;
}
