/* Helpers of the hardening suites: run a shell command line, capture what it
 * printed, read small files. */
#ifndef FLX_HARD_UTIL_H
#define FLX_HARD_UTIL_H

#include "test_util.h"
#include "flx_core.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

/* A command's outcome: exit code (or -signal when killed) and its stderr. */
typedef struct hard_run {
    int  status;
    char err[8192];
} hard_run;

static inline char *hard_slurp(const char *path)
{
    flx_error e = {0};
    char *buf = NULL;
    size_t n = 0;
    if (flx_read_file(path, (size_t)64 << 20, &buf, &n, &e)) return NULL;
    return buf;
}

/* Runs "{ CMD ; } 2>ERRFILE" through sh; stderr lands in r->err. */
static inline hard_run hard_sh(const char *fmt, ...)
{
    static char cmd[16384];
    char errpath[] = "/tmp/flxemu-hard-err-XXXXXX";
    int fd = mkstemp(errpath);
    cr_assert(fd >= 0);
    close(fd);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd + 2, sizeof cmd - 80, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd - 80);
    memcpy(cmd, "{ ", 2);
    snprintf(cmd + 2 + n, 78, " ; } 2>%s", errpath);
    hard_run r;
    memset(&r, 0, sizeof r);
    int st = system(cmd);
    cr_assert(st != -1);
    /* sh reports a child killed by signal S as exit code 128+S */
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    if (r.status > 128) r.status = -(r.status - 128);
    char *e = hard_slurp(errpath);
    if (e) {
        snprintf(r.err, sizeof r.err, "%s", e);
        free(e);
    }
    unlink(errpath);
    return r;
}

static inline void hard_write(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, bytes, f), bytes);
    cr_assert_eq(fclose(f), 0);
}

#endif
