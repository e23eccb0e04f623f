/* Input files (mmap, whole-file reads) and path helpers; output files are in outfile.c. */
#include "flx_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int flx_map_file(flx_mapped_file *f, const char *path, flx_error *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return flx_fail(err, FLX_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return flx_fail(err, FLX_EIO, "%s: not a regular file", path);
    }
    f->bytes = (size_t)st.st_size;
    f->path = dup_str(path);
    if (!f->path) {
        close(fd);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    if (f->bytes > 0) {
        void *p = mmap(NULL, f->bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(f->path);
            f->path = NULL;
            return flx_fail(err, FLX_EIO, "%s: mmap failed: %s", path, strerror(e));
        }
        f->data = p;
    }
    close(fd);
    return FLX_OK;
}

void flx_unmap_file(flx_mapped_file *f)
{
    if (f->data) munmap((void *)f->data, f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void flx_mapped_release(const flx_mapped_file *f, size_t offset, size_t bytes)
{
    if (!f->data || offset >= f->bytes) return;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)(f->data + offset);
    uintptr_t hi = (uintptr_t)(f->data + (bytes > f->bytes - offset ? f->bytes : offset + bytes));
    lo = (lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);   /* whole pages only */
    hi &= ~((uintptr_t)page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int flx_read_file(const char *path, size_t max_bytes, char **out, size_t *bytes,
                  flx_error *err)
{
    *out = NULL;
    if (bytes) *bytes = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return flx_fail(err, FLX_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* a folder opens and "seeks" to LONG_MAX; devices and pipes have no size */
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        int dir = S_ISDIR(st.st_mode);
        fclose(fp);
        return flx_fail(err, FLX_EIO, "%s: %s", path, dir ? "is a directory" : "not a regular file");
    }
    long n = (long)st.st_size;
    if (n < 0 || (size_t)n > max_bytes) {
        fclose(fp);
        return flx_fail(err, FLX_EFORMAT, "%s: size %ld bytes exceeds the limit of %zu bytes",
                        path, n, max_bytes);
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(fp);
        return flx_fail(err, FLX_ENOMEM, "%s: cannot allocate %ld bytes", path, n);
    }
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    if (got != (size_t)n) {
        free(buf);
        return flx_fail(err, FLX_EIO, "%s: short read (%zu of %ld bytes)", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    if (bytes) *bytes = (size_t)n;
    return FLX_OK;
}

char *flx_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

int flx_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int flx_path_fail(const char *path, flx_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return flx_fail(err, FLX_EIO, "%s: %s", path,
                        errno == ENOENT ? "no such file or folder" : strerror(errno));
    const char *what = S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
                     : S_ISDIR(st.st_mode) ? "a folder" : "a regular file";
    return flx_fail(err, FLX_EIO, "%s: %s, not a regular file or folder", path, what);
}

int flx_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

size_t flx_json_count_values(const char *text, size_t bytes)
{
    size_t n = 1;
    int in_str = 0;
    for (size_t i = 0; i < bytes; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            n++;
        }
    }
    return n;
}

int flx_json_budget(const char *text, size_t bytes, size_t max_values, const char *path,
                    flx_error *err)
{
    size_t n = flx_json_count_values(text, bytes);
    if (n > max_values)
        return flx_fail(err, FLX_EFORMAT, "%s: about %zu JSON values exceed the limit of %zu for this "
                        "file", path, n, max_values);
    return FLX_OK;
}
