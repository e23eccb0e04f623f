/* Shared command-line helpers. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
