/* fuzz_util.h -- shared plumbing of the libFuzzer targets in tests/fuzz.
 *
 * The readers under test take paths (they memory-map their input), so each
 * target writes the fuzzer's bytes to files in a private temporary folder,
 * made once per process and removed at exit.  Inputs that stand for several
 * files (an HF folder, a golden-vector set) are split at the separator line
 * FUZZ_SEP; scripts/fuzz-seeds.sh builds seeds in that shape. */
#ifndef FLX_FUZZ_UTIL_H
#define FLX_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/stat.h>

#include "flx_core.h"

#define FUZZ_SEP "\n--flxfuzz-file--\n"

/* The fuzzing folder, "DIR/flxfuzz.XXXXXX" (DIR: $FLX_FUZZ_TMPDIR, else /dev/shm,
 * else $TMPDIR, else /tmp); aborts if it cannot be made
 * (a broken harness must not look like a clean run).  Every file and
 * subfolder written is remembered so fuzz_reset() and the exit handler can
 * remove them. */
#define FUZZ_MAX_PATHS 128
static char fuzz_dir_buf[512];
static char fuzz_paths[FUZZ_MAX_PATHS][640];
static int  fuzz_is_dir[FUZZ_MAX_PATHS];
static int  fuzz_n_paths;

/* Removes everything written so far (files first, folders last). */
static inline void fuzz_reset(void)
{
    for (int i = fuzz_n_paths - 1; i >= 0; i--)
        if (!fuzz_is_dir[i]) unlink(fuzz_paths[i]);
    for (int i = fuzz_n_paths - 1; i >= 0; i--)
        if (fuzz_is_dir[i]) rmdir(fuzz_paths[i]);
    fuzz_n_paths = 0;
}

static inline void fuzz_cleanup(void)
{
    fuzz_reset();
    if (fuzz_dir_buf[0]) rmdir(fuzz_dir_buf);
}

static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_buf[0]) return fuzz_dir_buf;
    /* tmpfs when there is one: on a disk file system, creating the input
     * file costs ~100x more than most targets spend reading it */
    const char *tmp = getenv("FLX_FUZZ_TMPDIR");
    struct stat sb;
    if (!tmp && stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    if (!tmp) tmp = getenv("TMPDIR");
    snprintf(fuzz_dir_buf, sizeof fuzz_dir_buf, "%s/flxfuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir_buf)) { perror("fuzz: mkdtemp"); abort(); }
    atexit(fuzz_cleanup);
    return fuzz_dir_buf;
}

static inline const char *fuzz_track(const char *path, int is_dir)
{
    for (int i = 0; i < fuzz_n_paths; i++)
        if (!strcmp(fuzz_paths[i], path)) return fuzz_paths[i];
    if (fuzz_n_paths == FUZZ_MAX_PATHS) { fprintf(stderr, "fuzz: too many paths\n"); abort(); }
    snprintf(fuzz_paths[fuzz_n_paths], sizeof fuzz_paths[0], "%s", path);
    fuzz_is_dir[fuzz_n_paths] = is_dir;
    return fuzz_paths[fuzz_n_paths++];
}

/* Writes data to fuzz_dir()/name (replacing it; name may hold one
 * subfolder, "kernel/file") and returns the full path (static storage). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    char path[640];
    const char *slash = strchr(name, '/');
    if (slash) {
        snprintf(path, sizeof path, "%s/%.*s", fuzz_dir(), (int)(slash - name), name);
        if (mkdir(path, 0700) && errno != EEXIST) { perror("fuzz: mkdir"); abort(); }
        fuzz_track(path, 1);
    }
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp)) {
        perror("fuzz: write");
        abort();
    }
    return fuzz_track(path, 0);
}

/* Removes fuzz_dir()/name if present (a part the input left out). */
static inline void fuzz_remove(const char *name)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    unlink(path);
}

typedef struct fuzz_part { const uint8_t *data; size_t size; } fuzz_part;

/* Splits data at FUZZ_SEP into at most max parts (the last takes the rest);
 * returns the number of parts (>= 1). */
static inline int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max)
{
    const size_t sep = sizeof FUZZ_SEP - 1;
    int n = 0;
    while (n < max - 1) {
        const uint8_t *hit = size >= sep ? memmem(data, size, FUZZ_SEP, sep) : NULL;
        if (!hit) break;
        parts[n].data = data;
        parts[n].size = (size_t)(hit - data);
        n++;
        size -= (size_t)(hit - data) + sep;
        data = hit + sep;
    }
    parts[n].data = data;
    parts[n].size = size;
    return n + 1;
}

/* Every refusal must come with a message: a reader that fails silently is a
 * finding too. */
static inline void fuzz_check_error(int rc, const flx_error *err)
{
    if (rc != FLX_OK && rc != FLX_ENOTFOUND && err->msg[0] == '\0') {
        fprintf(stderr, "fuzz: status %d (%s) without a message\n", rc, flx_status_str(rc));
        abort();
    }
}

/* Touches every byte of [p, p+n) so ASan checks the whole range. */
static inline uint64_t fuzz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}

#endif
