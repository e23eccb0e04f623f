/* Helpers shared by the Criterion suites. */
#ifndef FLX_TEST_UTIL_H
#define FLX_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Absolute path of a file under the shared test data folder.  Fails the
 * test (never skips) when $FLXEMU_DATA is unset or the file is missing, so
 * a CI machine without the data goes red instead of silently green. */
static inline const char *flx_test_data(const char *rel)
{
    static char buf[4096];
    const char *dir = getenv("FLXEMU_DATA");
    if (!dir || !*dir) cr_assert_fail("FLXEMU_DATA is not set: the shared test data is required");
    snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    struct stat st;
    if (stat(buf, &st) != 0)
        cr_assert_fail("test data missing: %s (set FLXEMU_DATA to the shared data folder)", buf);
    return buf;
}

/* A fresh scratch directory for a test's output files. */
static inline const char *flx_test_tmpdir(void)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/flxemu-test-XXXXXX");
    if (!mkdtemp(buf)) cr_assert_fail("mkdtemp failed");
    return buf;
}

/* Path of the built flxemu program (for CLI tests). */
static inline const char *flx_test_bin(void)
{
    const char *b = getenv("FLXEMU_BIN");
    if (!b || !*b) cr_assert_fail("FLXEMU_BIN is not set");
    return b;
}

/* Runs a shell command, its stdout (at most cap - 1 bytes) into out;
 * returns the exit status, -1 when it did not exit normally. */
static inline int flx_test_sh(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen failed: %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
