/* The WikiText-2 test text as the Hugging Face perplexity recipe sees it,
 * and the checksum check of the raw file. */
#include "flx_ppl.h"

#include <stdlib.h>
#include <string.h>

/* Length of the UTF-8 sequence at s[0..n) if it is a character Python's
 * str.isspace() accepts, else 0. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xc2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;        /* U+0085 U+00A0 */
    if (n >= 3) {
        unsigned cp = ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
        if ((c & 0xf0) != 0xe0 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
            cp == 0x202f || cp == 0x205f || cp == 0x3000)
            return 3;
    }
    return 0;
}

static int blank(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = py_space_len((const unsigned char *)s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int flx_wikitext_hf_text(const char *raw, size_t bytes, char **out, size_t *out_bytes, flx_error *err)
{
    /* Python's text mode turns "\r\n" and a lone "\r" into "\n" first */
    char *text = malloc(bytes + 1);
    size_t n = 0;
    if (!text) return flx_fail(err, FLX_ENOMEM, "wikitext: out of memory for %zu bytes", bytes);
    for (size_t i = 0; i < bytes; i++) {
        if (raw[i] == '\r') {
            text[n++] = '\n';
            if (i + 1 < bytes && raw[i + 1] == '\n') i++;
        } else {
            text[n++] = raw[i];
        }
    }
    /* every row adds at most 2 separator bytes to its own length */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    char *o = malloc(n + 2 * (lines + 1) + 1);
    if (!o) {
        free(text);
        return flx_fail(err, FLX_ENOMEM, "wikitext: out of memory for %zu bytes", n);
    }
    size_t k = 0, start = 0;
    int first = 1;
    while (start < n) {
        const char *nl = memchr(text + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - text) + 1 : n;   /* the row keeps its "\n" */
        if (!first) {
            o[k++] = '\n';
            o[k++] = '\n';
        }
        first = 0;
        if (!blank(text + start, end - start)) {
            memcpy(o + k, text + start, end - start);
            k += end - start;
        }
        start = end;
    }
    o[k] = '\0';
    free(text);
    *out = o;
    *out_bytes = k;
    return FLX_OK;
}

int flx_wikitext_check(const char *path, const char *sha256_hex, int *checked, flx_error *err)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    *checked = 0;
    if (strcmp(name, "wiki.test.raw") != 0) return FLX_OK;
    *checked = 1;
    if (strcmp(sha256_hex, FLX_WIKITEXT2_TEST_SHA256) != 0)
        return flx_fail(err, FLX_EFORMAT,
                        "%s: sha256 %s is not the WikiText-2 (raw) test split's %s; get the right "
                        "file with data/wikitext2/fetch.sh (see data/wikitext2/README.md)",
                        path, sha256_hex, FLX_WIKITEXT2_TEST_SHA256);
    return FLX_OK;
}
