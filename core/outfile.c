/* Output files that never lie: a regular file appears at its path only when
 * complete and synced; streams and devices are written in place, never
 * replaced; a temporary file never outlives the process, even on SIGINT.
 *
 * Kinds of target (resolved once, by classify()):
 *   "-", /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N
 *                       the process's own descriptor, written through a dup
 *                       (so a shell redirection keeps its file and offset);
 *   character device, FIFO   opened and written directly;
 *   regular file or missing  written to an exclusive temporary file beside it
 *                       (symbolic links resolved first, so a link keeps
 *                       pointing where it did), fsynced, renamed over the
 *                       target, then the directory fsynced;
 *   anything else (directory, socket, block device, dangling link): refused. */
#include "flx_core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------ signal-time cleanup
 *
 * A handler for SIGINT/SIGTERM/SIGHUP must find the temporary files that are
 * open right now, and it cannot be handed a context pointer: this table is
 * the one piece of process-wide mutable state here, and only because a
 * signal handler strictly needs it.  It holds pointers to the heap names of
 * open temporary files (set and cleared with lock-free atomics, so the
 * handler reads it without locks, which would not be async-signal-safe), and
 * one flag telling that the handler has started.  The handler calls only
 * unlink() and raise(), both async-signal-safe.
 *
 * A name is freed only after its slot is cleared and no handler is running:
 * a handler that already loaded the pointer on another thread ends the
 * process, so the thread freeing waits for that instead of freeing. */
#define OUT_SLOTS 256
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "signal cleanup needs lock-free pointers");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "signal cleanup needs a lock-free flag");

static _Atomic(char *) tmp_slots[OUT_SLOTS];
static atomic_int handler_running;

/* Slots are numbered from 1 in flx_outfile.slot, so a zeroed flx_outfile
 * holds none. */
static int slot_register(char *tmp_path)
{
    for (int i = 0; i < OUT_SLOTS; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&tmp_slots[i], &expected, tmp_path)) return i + 1;
    }
    return 0;   /* more than OUT_SLOTS outputs open at once: not cleaned on a signal */
}

static void slot_release(int slot)
{
    if (slot <= 0) return;
    atomic_store(&tmp_slots[slot - 1], NULL);
    /* a handler that read the old pointer on another thread ends the process */
    while (atomic_load(&handler_running)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void on_signal(int sig)
{
    atomic_store(&handler_running, 1);
    for (int i = 0; i < OUT_SLOTS; i++) {
        char *p = atomic_load(&tmp_slots[i]);
        if (p) unlink(p);
    }
    /* SA_RESETHAND restored the default action: the re-raised signal ends the
     * process as it would have without this handler (exit status 128+sig) */
    raise(sig);
}

int flx_outfile_catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&sa.sa_mask, sigs[i]);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0) return FLX_EIO;
        /* leave an ignored signal (nohup) or someone else's handler alone */
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL &&
            sigaction(sigs[i], &sa, NULL) != 0)
            return FLX_EIO;
    }
    return FLX_OK;
}

/* ------------------------------------------------ target classification */

enum out_kind { OUT_STREAM, OUT_DEVICE, OUT_REGULAR };

typedef struct out_target {
    enum out_kind kind;
    int   fd;       /* OUT_STREAM: the process's descriptor */
    char *final;    /* OUT_REGULAR: the path renamed over (links resolved), heap */
    char *dir;      /* OUT_REGULAR: its directory, heap */
} out_target;

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* "-" and the names of this process's own descriptors: -1 when not one. */
static int stream_fd(const char *path)
{
    if (!strcmp(path, "-") || !strcmp(path, "/dev/stdout")) return 1;
    if (!strcmp(path, "/dev/stderr")) return 2;
    const char *num = NULL;
    if (!strncmp(path, "/dev/fd/", 8)) num = path + 8;
    else if (!strncmp(path, "/proc/self/fd/", 14)) num = path + 14;
    if (!num || *num < '0' || *num > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(num, &end, 10);
    return *end == '\0' && errno == 0 && v <= INT_MAX ? (int)v : -1;
}

static int classify(const char *path, out_target *t, flx_error *err)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    if (!path || !*path) return flx_fail(err, FLX_EINVAL, "empty output file name");
    int fd = stream_fd(path);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
            return flx_fail(err, FLX_EIO, "%s: descriptor %d is not open for writing", path, fd);
        t->kind = OUT_STREAM;
        t->fd = fd;
        return FLX_OK;
    }
    struct stat st;
    char *final = NULL;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        final = realpath(path, NULL);
        if (!final)
            return flx_fail(err, FLX_EIO, "%s: symbolic link that cannot be followed (%s); "
                            "not replacing it", path, strerror(errno));
    } else {
        final = dup_str(path);
        if (!final) return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    if (stat(final, &st) == 0) {
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            free(final);
            t->kind = OUT_DEVICE;
            return FLX_OK;
        }
        if (!S_ISREG(st.st_mode)) {
            free(final);
            return flx_fail(err, FLX_EIO, "%s: %s; refusing to replace it", path,
                            S_ISDIR(st.st_mode) ? "is a directory"
                            : "not a regular file, character device or pipe");
        }
    } else if (errno != ENOENT) {
        int e = errno;
        free(final);
        return flx_fail(err, FLX_EIO, "%s: %s", path, strerror(e));
    }
    const char *slash = strrchr(final, '/');
    if (slash && slash[1] == '\0') {
        free(final);
        return flx_fail(err, FLX_EIO, "%s: is a directory", path);
    }
    size_t dn = slash ? (size_t)(slash - final) + (slash == final) : 1;
    t->dir = malloc(dn + 1);
    if (!t->dir) {
        free(final);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    memcpy(t->dir, slash ? final : ".", dn);
    t->dir[dn] = '\0';
    t->kind = OUT_REGULAR;
    t->final = final;
    return FLX_OK;
}

static void target_free(out_target *t)
{
    free(t->final);
    free(t->dir);
    memset(t, 0, sizeof *t);
}

/* Creates FINAL.tmp.XXXXXXXXXXXX exclusively (never following a link planted
 * there) with mode 0666 & ~umask, as any new file; returns the fd or -1 with
 * errno set.  *tmp_out gets the heap name; with slot, the name is registered
 * for signal cleanup *before* the file exists, so no signal can come between
 * creating and registering (a name only this process drew is at stake if
 * the exclusive create fails). */
static int create_temp(const char *final, char **tmp_out, int *slot)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(final) + 20;
    char *tmp = malloc(n);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    for (int attempt = 0; attempt < 64; attempt++) {
        unsigned char rnd[12];
        if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
            /* no entropy yet: O_EXCL still makes it safe, only less unguessable */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            unsigned long long x = (unsigned long long)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^
                                   (unsigned long long)getpid() << 20 ^ (unsigned long long)attempt;
            for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)(x >> (i % 8 * 8));
        }
        char suffix[13];
        for (size_t i = 0; i < 12; i++) suffix[i] = alphabet[rnd[i] % 36];
        suffix[12] = '\0';
        snprintf(tmp, n, "%s.tmp.%s", final, suffix);
        if (slot) *slot = slot_register(tmp);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        int e = errno;
        if (slot) slot_release(*slot), *slot = 0;
        errno = e;
        if (errno != EEXIST) break;
    }
    int e = errno;
    free(tmp);
    errno = e;
    return -1;
}

/* ------------------------------------------------ public API */

int flx_outfile_check(const char *path, flx_error *err)
{
    out_target t;
    int rc = classify(path, &t, err);
    if (rc) return rc;
    if (t.kind == OUT_DEVICE && access(path, W_OK) != 0)
        rc = flx_fail(err, FLX_EIO, "%s: cannot write: %s", path, strerror(errno));
    if (t.kind == OUT_REGULAR) {
        /* the real test: can a temporary file be made beside the target? */
        char *tmp = NULL;
        int slot = 0;   /* a signal now must not leave the probe behind */
        int fd = create_temp(t.final, &tmp, &slot);
        if (fd < 0) {
            rc = flx_fail(err, FLX_EIO, "%s: cannot create a file in %s: %s", path, t.dir,
                          strerror(errno));
        } else {
            close(fd);
            unlink(tmp);
            slot_release(slot);
            free(tmp);
        }
    }
    target_free(&t);
    return rc;
}

int flx_outfile_open(flx_outfile *o, const char *path, flx_error *err)
{
    memset(o, 0, sizeof *o);
    out_target t;
    int rc = classify(path, &t, err);
    if (rc) return rc;
    o->path = dup_str(path);
    if (!o->path) {
        target_free(&t);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    int fd = -1;
    if (t.kind == OUT_STREAM) {
        fd = fcntl(t.fd, F_DUPFD_CLOEXEC, 3);
    } else if (t.kind == OUT_DEVICE) {
        fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    } else {
        fd = create_temp(t.final, &o->tmp_path, &o->slot);
        if (fd >= 0) {
            o->final_path = t.final;
            t.final = NULL;
        }
    }
    if (fd < 0) {
        int e = errno;
        target_free(&t);
        flx_outfile_abort(o);
        return flx_fail(err, FLX_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    target_free(&t);
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        close(fd);
        flx_outfile_abort(o);
        return flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    }
    return FLX_OK;
}

/* fsync that tolerates files and folders that cannot be synced (EINVAL). */
static int sync_fd(int fd) { return fsync(fd) == 0 || errno == EINVAL ? 0 : -1; }

int flx_outfile_commit(flx_outfile *o, flx_error *err)
{
    int rc = FLX_OK;
    if (o->fp) {
        int e = 0;
        if (fflush(o->fp) != 0) e = errno ? errno : EIO;
        else if (ferror(o->fp)) e = EIO;
        else if (o->tmp_path && sync_fd(fileno(o->fp)) != 0) e = errno;
        if (fclose(o->fp) != 0 && !e) e = errno;
        o->fp = NULL;
        if (e) rc = flx_fail(err, FLX_EIO, "%s: write failed: %s", o->path, strerror(e));
    }
    if (!rc && o->tmp_path) {
        if (rename(o->tmp_path, o->final_path) != 0) {
            rc = flx_fail(err, FLX_EIO, "%s: cannot rename from %s: %s", o->path, o->tmp_path,
                          strerror(errno));
        } else {
            slot_release(o->slot);
            o->slot = 0;
            free(o->tmp_path);
            o->tmp_path = NULL;
            /* the rename is durable once the directory is synced */
            char *slash = strrchr(o->final_path, '/');
            if (slash) *slash = '\0';
            const char *dir = !slash ? "." : slash == o->final_path ? "/" : o->final_path;
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0 || sync_fd(dfd) != 0)
                rc = flx_fail(err, FLX_EIO, "%s: cannot sync its folder: %s", o->path,
                              strerror(errno));
            if (dfd >= 0) close(dfd);
        }
    }
    flx_outfile_abort(o);
    return rc;
}

void flx_outfile_abort(flx_outfile *o)
{
    if (o->fp) fclose(o->fp);
    if (o->tmp_path) unlink(o->tmp_path);
    slot_release(o->slot);
    free(o->tmp_path);
    free(o->final_path);
    free(o->path);
    memset(o, 0, sizeof *o);
}
