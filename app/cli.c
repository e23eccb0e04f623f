/* Shared command-line helpers. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "flxemu %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'flxemu %s --help'.\n", cmd);
    return FLX_EXIT_USAGE;
}

int cli_fail(const char *cmd, const flx_error *err)
{
    fprintf(stderr, "flxemu %s: %s\n", cmd,
            err && err->msg[0] ? err->msg : flx_status_str(err ? err->code : FLX_EIO));
    return FLX_EXIT_FAIL;
}

int cli_parse_i64(const char *cmd, const char *flag, const char *s, long long lo,
                  long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || *s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects an integer in [%lld, %lld], got '%s'", flag, lo, hi,
                        s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || *s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a number in [%g, %g], got '%s'", flag, lo, hi,
                        s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

void cli_json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(fp, "\\%c", c);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}

int cli_write_text(const char *cmd, const char *path, const char *text, const char *tail)
{
    flx_error err = {0};
    if (!text) {
        flx_fail(&err, FLX_ENOMEM, "%s: out of memory", path);
        return cli_fail(cmd, &err);
    }
    flx_outfile o;
    if (flx_outfile_open(&o, path, &err)) return cli_fail(cmd, &err);
    if (fputs(text, o.fp) < 0 || fputs(tail, o.fp) < 0) {
        flx_outfile_abort(&o);
        flx_fail(&err, FLX_EIO, "%s: write failed", path);
        return cli_fail(cmd, &err);
    }
    return flx_outfile_commit(&o, &err) ? cli_fail(cmd, &err) : FLX_EXIT_OK;
}

int cli_write_drawing(const char *cmd, const char *path, cli_draw_fn draw, const void *ctx)
{
    flx_error err = {0};
    flx_outfile o;
    if (flx_outfile_open(&o, path, &err)) return cli_fail(cmd, &err);
    if (draw(o.fp, ctx) != 0) {
        flx_outfile_abort(&o);
        flx_fail(&err, FLX_EIO, "%s: writing the SVG failed", path);
        return cli_fail(cmd, &err);
    }
    return flx_outfile_commit(&o, &err) ? cli_fail(cmd, &err) : FLX_EXIT_OK;
}

const char *cli_data_dir(void)
{
    const char *d = getenv("FLXEMU_DATA");
    return d && *d ? d : NULL;
}

int cli_check_output(const char *cmd, const char *flag, const char *path)
{
    if (!path) return FLX_EXIT_OK;
    if (!*path) return cli_usage_error(cmd, "%s needs a file name, got ''", flag);
    flx_error err = {0};
    if (flx_outfile_check(path, &err)) {
        fprintf(stderr, "flxemu %s: %s %s\n", cmd, flag, err.msg);
        return FLX_EXIT_FAIL;
    }
    return FLX_EXIT_OK;
}

/* ---------------------------------------------------------------- options */

int cli_edit_distance(const char *a, const char *b)
{
    /* optimal string alignment distance over three rolling rows */
    enum { MAXN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXN || m >= MAXN) return 1 << 20;
    int rows[3][MAXN + 1];
    int *pp = rows[0], *p = rows[1], *c = rows[2];
    for (size_t j = 0; j <= m; j++) p[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        c[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = p[j] + 1;
            if (c[j - 1] + 1 < v) v = c[j - 1] + 1;
            if (p[j - 1] + cost < v) v = p[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
        }
        int *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    return p[m];
}

static int is_option(const cli_opt *o) { return o->kind != CLI_SECTION && o->kind != CLI_END; }

/* the nearest long name to what was typed (dashes and "=value" dropped), or NULL */
static const char *nearest(const cli_group *g, int n_groups, const char *typed)
{
    char word[64];
    while (*typed == '-') typed++;
    snprintf(word, sizeof word, "%.*s", (int)strcspn(typed, "="), typed);
    size_t len = strlen(word);
    if (len == 0) return NULL;
    const char *best = NULL, *prefix_of = NULL;
    int best_d = 1 << 20, n_prefix = 0;
    for (int k = 0; k < n_groups; k++)
        for (const cli_opt *o = g[k].opts; o->kind != CLI_END; o++) {
            if (!is_option(o)) continue;
            int d = cli_edit_distance(word, o->name);
            if (d < best_d) {
                best_d = d;
                best = o->name;
            }
            if (len >= 3 && !strncmp(o->name, word, len)) {
                n_prefix++;
                prefix_of = o->name;
            }
        }
    int limit = 1 + (int)len / 4;
    if (best && best_d <= limit) return best;
    return n_prefix == 1 ? prefix_of : NULL;
}

/* "a|b|c" -> "a, b or c" */
static void choices_text(const char *choices, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t n_alt = 1;
    for (const char *s = choices; *s; s++) n_alt += *s == '|';
    size_t k = 0;
    for (const char *s = choices; *s && k + 8 < cap;) {
        size_t w = strcspn(s, "|");
        k += (size_t)snprintf(buf + k, cap - k, "%.*s", (int)w, s);
        s += w;
        if (*s == '|') {
            s++;
            n_alt--;
            k += (size_t)snprintf(buf + k, cap - k, "%s", n_alt == 1 ? " or " : ", ");
        }
    }
}

/* index of value in "a|b|c", or -1 */
static int choice_index(const char *choices, const char *value)
{
    int i = 0;
    size_t n = strlen(value);
    for (const char *s = choices;; i++) {
        size_t w = strcspn(s, "|");
        if (w == n && !strncmp(s, value, n)) return i;
        if (!s[w]) return -1;
        s += w + 1;
    }
}

static int store(const char *cmd, const cli_opt *o, const cli_group *g, const char *v)
{
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", o->name);
    void *dst = (char *)g->base + o->offset;
    long long x;
    switch (o->kind) {
    case CLI_FLAG: *(int *)dst = o->set; break;
    case CLI_STR: *(const char **)dst = v; break;
    case CLI_INT:
        if (cli_parse_i64(cmd, flag, v, o->ilo, o->ihi, (long long *)dst)) return FLX_EXIT_USAGE;
        break;
    case CLI_I32:
        if (cli_parse_i64(cmd, flag, v, o->ilo, o->ihi, &x)) return FLX_EXIT_USAGE;
        *(int32_t *)dst = (int32_t)x;
        break;
    case CLI_NUM:
        if (cli_parse_f64(cmd, flag, v, o->dlo, o->dhi, (double *)dst)) return FLX_EXIT_USAGE;
        break;
    case CLI_CHOICE: {
        int i = choice_index(o->choices, v);
        if (i < 0) {
            char alts[256];
            choices_text(o->metavar, alts, sizeof alts);
            return cli_usage_error(cmd, "%s expects %s, got '%s'", flag, alts, v);
        }
        *(int *)dst = i;
        break;
    }
    case CLI_CUSTOM:
        if (o->parse(v, dst)) return cli_usage_error(cmd, "%s expects %s, got '%s'", flag, o->expect, v);
        break;
    default: break;
    }
    if (o->mark && g->seen) ++*g->seen;
    return 0;
}

int cli_parse(const cli_spec *spec, const cli_group *groups, int n_groups, int argc, char **argv,
              const char **pos, int *n_pos)
{
    const char *cmd = spec->name;
    *n_pos = 0;
    int options_done = 0;
    enum { MAX_GROUPS = 8, MAX_OPTS = 128 };
    unsigned char given[MAX_GROUPS][MAX_OPTS];
    memset(given, 0, sizeof given);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || !a[1]) {
            if (*n_pos >= spec->max_positional) {
                if (!spec->max_positional)
                    return cli_usage_error(cmd, "unexpected argument '%s' (this command takes options only)", a);
                return cli_usage_error(cmd, "unexpected argument '%s' (at most %d %s)", a,
                                       spec->max_positional, spec->max_positional > 1 ? "positional arguments" : "positional argument");
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_help(stdout, spec, groups, n_groups);
            return CLI_HELP_SHOWN;
        }
        /* find the option: --name[=value] or -x[value] */
        const cli_opt *hit = NULL;
        const cli_group *hg = NULL;
        const char *inline_v = NULL;
        int is_long = a[1] == '-';
        size_t nlen = is_long ? strcspn(a + 2, "=") : 0;
        for (int k = 0; k < n_groups && !hit; k++)
            for (const cli_opt *o = groups[k].opts; o->kind != CLI_END && !hit; o++) {
                if (!is_option(o)) continue;
                if (is_long && strlen(o->name) == nlen && !strncmp(a + 2, o->name, nlen)) {
                    hit = o;
                    if (a[2 + nlen] == '=') inline_v = a + 3 + nlen;
                } else if (!is_long && o->short_name && a[1] == o->short_name &&
                           (!a[2] || o->kind != CLI_FLAG)) {
                    hit = o;
                    if (a[2]) inline_v = a + 2;
                }
                if (hit) hg = &groups[k];
            }
        if (!hit) {
            const char *near = nearest(groups, n_groups, a);
            if (near) return cli_usage_error(cmd, "unknown option '%s' (did you mean '--%s'?)", a, near);
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
        const char *v = NULL;
        if (hit->kind == CLI_FLAG) {
            if (inline_v) return cli_usage_error(cmd, "--%s takes no value", hit->name);
        } else if (inline_v) {
            v = inline_v;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return cli_usage_error(cmd, "%s needs a value (%s)", a, hit->metavar);
        }
        int gi = (int)(hg - groups), oi = (int)(hit - hg->opts);
        if (spec->once && v && gi < MAX_GROUPS && oi < MAX_OPTS && given[gi][oi]++)
            return cli_usage_error(cmd, "--%s given twice", hit->name);
        int rc = store(cmd, hit, hg, v);
        if (rc) return rc;
    }
    return 0;
}

/* help lines after the first, indented to the help column */
static void help_lines(FILE *fp, const char *text, int col)
{
    const char *s = text;
    int first = 1;
    while (*s || first) {
        size_t w = strcspn(s, "\n");
        if (!first) fprintf(fp, "%*s", col, "");
        fprintf(fp, "%.*s\n", (int)w, s);
        first = 0;
        s += w;
        if (*s == '\n') s++;
    }
}

void cli_help(FILE *fp, const cli_spec *spec, const cli_group *groups, int n_groups)
{
    enum { COL = 26 };
    fprintf(fp, "usage: flxemu %s ", spec->name);
    for (const char *s = spec->usage; *s; s++) {
        fputc(*s, fp);
        if (*s == '\n') fprintf(fp, "       flxemu %s ", spec->name);
    }
    fprintf(fp, "\n\n%s\n", spec->about);
    if (spec->positional) {
        fprintf(fp, "\narguments:\n");
        help_lines(fp, spec->positional, COL);
    }
    if (!(n_groups > 0 && groups[0].opts[0].kind == CLI_SECTION)) fprintf(fp, "\noptions:\n");
    else fprintf(fp, "\n");
    for (int k = 0; k < n_groups; k++)
        for (const cli_opt *o = groups[k].opts; o->kind != CLI_END; o++) {
            if (o->kind == CLI_SECTION) {
                fprintf(fp, "%s\n", o->help);
                continue;
            }
            char left[128];
            int n = snprintf(left, sizeof left, "  %c%c%s--%s%s%s", o->short_name ? '-' : ' ',
                             o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
                             o->metavar ? " " : "", o->metavar ? o->metavar : "");
            if (n < COL - 1) {
                fprintf(fp, "%-*s", COL, left);
            } else {
                fprintf(fp, "%s\n%*s", left, COL, "");
            }
            help_lines(fp, o->help, COL);
        }
    fprintf(fp, "%-*s%s\n", COL, "  -h, --help", "this help");
    if (spec->examples) {
        fprintf(fp, "\nExamples:\n");
        for (const char *s = spec->examples; *s;) {
            size_t w = strcspn(s, "\n");
            fprintf(fp, "  %.*s\n", (int)w, s);
            s += w;
            if (*s == '\n') s++;
        }
    }
    if (spec->notes) fprintf(fp, "\n%s", spec->notes);
    if (spec->more_help) spec->more_help(fp);
    fprintf(fp, "\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

int cli_positional_path(const char *cmd, const char *flag, const char **dst, const char *pos)
{
    if (!pos) return 0;
    if (*dst) return cli_usage_error(cmd, "give the path once: as %s or as '%s'", flag, pos);
    *dst = pos;
    return 0;
}
