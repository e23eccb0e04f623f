/* flx_core.h -- shared plumbing of libflxemu: status codes and error messages,
 * memory-mapped input files, atomic output files, a deterministic thread pool,
 * a seeded RNG, checksums, half-precision conversions and a progress bar.
 *
 * Conventions used by every module:
 *  - Functions that can fail return an int status: FLX_OK (0) or a negative
 *    FLX_E* code, and fill a caller-owned flx_error with a sentence naming the
 *    file, the field and the offset where that applies.  The library never
 *    calls exit() and never prints except through flx_progress.
 *  - Sizes are size_t and named for their unit (bytes, n_elems, n_tokens).
 *  - No global mutable state: everything lives in structs the caller owns.
 */
#ifndef FLX_CORE_H
#define FLX_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

enum flx_status {
    FLX_OK           =  0,
    FLX_EIO          = -1, /* a file could not be opened, read or written   */
    FLX_EFORMAT      = -2, /* a file's content violates its format          */
    FLX_ENOMEM       = -3, /* an allocation failed                          */
    FLX_EINVAL       = -4, /* a caller-supplied argument is invalid         */
    FLX_EUNSUPPORTED = -5, /* valid but not supported (dtype, architecture) */
    FLX_ENOTFOUND    = -6, /* a required key, tensor or file is missing     */
    FLX_ENUMERIC     = -7, /* NaN/Inf or an arithmetic range violation      */
};

#define FLX_ERROR_MSG_BYTES 1024

typedef struct flx_error {
    int  code;                      /* last status, FLX_OK if none          */
    char msg[FLX_ERROR_MSG_BYTES];  /* human sentence, "" if none           */
} flx_error;

/* Records code and a printf-style message in err (err may be NULL) and
 * returns code, so callers can write `return flx_fail(err, FLX_EFORMAT, ...)`. */
int flx_fail(flx_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Fixed text for a status code ("I/O error", "format error", ...). */
const char *flx_status_str(int code);

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
int flx_size_mul(size_t a, size_t b, size_t *out);
int flx_size_add(size_t a, size_t b, size_t *out);

/* ---------------------------------------------------------------- files */

/* malloc for big buffers (weights, activations): from 4 MiB up, whole 2 MiB
 * pages advised as huge pages.  Free with free(); NULL when out of memory. */
void *flx_alloc_large(size_t bytes);

/* A read-only memory-mapped file.  Zero-length files map to data == NULL. */
typedef struct flx_mapped_file {
    const uint8_t *data;
    size_t         bytes;
    char          *path;    /* owned copy, for error messages */
} flx_mapped_file;

int  flx_map_file(flx_mapped_file *f, const char *path, flx_error *err);
void flx_unmap_file(flx_mapped_file *f);
/* Tell the kernel a mapped byte range is no longer needed (drops it from RSS). */
void flx_mapped_release(const flx_mapped_file *f, size_t offset, size_t bytes);

/* Reads a whole file into a NUL-terminated heap buffer; refuses files larger
 * than max_bytes.  *out must be freed with free(). */
int flx_read_file(const char *path, size_t max_bytes, char **out, size_t *bytes,
                  flx_error *err);

/* An output file that never lies (core/outfile.c).  A regular file (or a
 * missing one) is written to an exclusive temporary file "PATH.tmp.XXXXXXXXXXXX"
 * beside it (mode 0666 & ~umask, created with O_EXCL so a planted link is never
 * followed), fsynced, renamed over PATH by flx_outfile_commit(), and the
 * folder fsynced before success is reported; a symbolic link at PATH is
 * resolved first and keeps pointing where it did.  "-", /dev/stdout,
 * /dev/stderr and /dev/fd/N write to the process's own descriptor; character
 * devices and FIFOs are written directly; anything else (a folder, socket,
 * block device, dangling link) is refused, never replaced.
 * flx_outfile_abort() deletes the temporary file, and so does a SIGINT,
 * SIGTERM or SIGHUP once flx_outfile_catch_signals() was called. */
typedef struct flx_outfile {
    FILE *fp;
    char *path;        /* as given, for messages */
    char *final_path;  /* where the temporary file goes (links resolved); NULL when direct */
    char *tmp_path;    /* NULL when written directly */
    int   slot;        /* signal-cleanup slot + 1; 0 when none */
} flx_outfile;

int  flx_outfile_open(flx_outfile *o, const char *path, flx_error *err);
int  flx_outfile_commit(flx_outfile *o, flx_error *err);
void flx_outfile_abort(flx_outfile *o);
/* Whether flx_outfile_open(path) would succeed, checked before long work: the
 * same resolution, and for a regular target a probe temporary file created and
 * removed beside it.  An empty path is FLX_EINVAL. */
int  flx_outfile_check(const char *path, flx_error *err);
/* Installs the SIGINT/SIGTERM/SIGHUP handler that removes open temporary
 * files and then lets the signal end the process as before; signals that are
 * ignored or already handled are left alone.  Call once from main(). */
int  flx_outfile_catch_signals(void);

/* A JSON parse tree costs ~100 bytes per value whatever the text's size
 * (["a","b"] is 10 bytes and 3 values), so readers bound the values before
 * parsing: flx_json_count_values is an upper bound (brackets and commas
 * outside strings, plus one); flx_json_budget refuses text over max_values
 * with a message naming path (README, "Resource caps"). */
size_t flx_json_count_values(const char *text, size_t bytes);
int    flx_json_budget(const char *text, size_t bytes, size_t max_values, const char *path,
                       flx_error *err);

/* Joins a directory and a file name into a heap string ("dir/name"). */
char *flx_path_join(const char *dir, const char *name);
int   flx_is_dir(const char *path);
int   flx_file_exists(const char *path);
/* Fails (FLX_EIO) with why path is not a regular file or folder: "no such
 * file or folder", "a character device, not a regular file or folder", a
 * FIFO, ...  For input paths that are neither. */
int   flx_path_fail(const char *path, flx_error *err);

/* ---------------------------------------------------------------- threads */

/* A fixed set of worker threads.  flx_pool_for() calls fn on disjoint ranges
 * covering [0, n); which thread runs which range varies from run to run, so
 * fn must write each output element from that element's inputs alone.  That
 * rule is what makes every result independent of the thread count. */
typedef struct flx_pool flx_pool;

typedef void (*flx_range_fn)(void *ctx, int64_t begin, int64_t end, int thread_id);

flx_pool *flx_pool_create(int n_threads);   /* n_threads <= 0: one per core */
void      flx_pool_free(flx_pool *pool);
int       flx_pool_threads(const flx_pool *pool);
/* Runs fn over [0, n) in ranges of at most grain (>= 1) items; blocks until
 * every range is done.  pool may be NULL: runs serially on the caller. */
void      flx_pool_for(flx_pool *pool, int64_t n, int64_t grain,
                       flx_range_fn fn, void *ctx);

/* ---------------------------------------------------------------- random */

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every platform. */
typedef struct flx_rng { uint64_t s[4]; } flx_rng;

void     flx_rng_seed(flx_rng *rng, uint64_t seed);
uint64_t flx_rng_u64(flx_rng *rng);
double   flx_rng_uniform(flx_rng *rng);   /* [0, 1), 53 random bits */
double   flx_rng_normal(flx_rng *rng);    /* N(0, 1), Box-Muller    */

/* ---------------------------------------------------------------- checksums */

typedef struct flx_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t  block[64];
    size_t   block_fill;
} flx_sha256;

void flx_sha256_init(flx_sha256 *ctx);
void flx_sha256_update(flx_sha256 *ctx, const void *data, size_t bytes);
void flx_sha256_final(flx_sha256 *ctx, uint8_t digest[32]);
/* One-shot digest as 64 lowercase hex chars plus NUL. */
void flx_sha256_hex(const void *data, size_t bytes, char hex[65]);
int  flx_sha256_file_hex(const char *path, char hex[65], flx_error *err);

uint32_t flx_crc32(uint32_t crc, const void *data, size_t bytes); /* zlib's */

/* ---------------------------------------------------------------- half types */

/* IEEE binary16 and bfloat16 conversions; float -> half rounds to nearest
 * even, NaN stays NaN (quiet), overflow goes to infinity. */
float    flx_f16_to_f32(uint16_t h);
uint16_t flx_f32_to_f16(float f);
float    flx_bf16_to_f32(uint16_t h);
uint16_t flx_f32_to_bf16(float f);

/* ---------------------------------------------------------------- time, progress */

double flx_now_seconds(void);   /* monotonic clock */

/* A one-line progress bar with rate and ETA on stderr; silent when disabled. */
typedef struct flx_progress {
    const char *label;
    int64_t     total;
    int64_t     done;
    double      t_start;
    double      t_last_draw;
    int         enabled;
} flx_progress;

void flx_progress_begin(flx_progress *p, const char *label, int64_t total, int enabled);
void flx_progress_update(flx_progress *p, int64_t done);
void flx_progress_end(flx_progress *p);

#ifdef __cplusplus
}
#endif
#endif /* FLX_CORE_H */
