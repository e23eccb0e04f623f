/* A small persistent thread pool with dynamic range scheduling.
 *
 * Ranges are handed out from an atomic counter, so the mapping of ranges to
 * threads changes between runs; callers guarantee determinism by computing
 * every output element from its own inputs in a fixed order (flx_core.h). */
#include "flx_core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct flx_pool {
    int              n_threads;      /* including the calling thread */
    pthread_t       *workers;        /* n_threads - 1 */
    pthread_mutex_t  mu;
    pthread_cond_t   wake;
    pthread_cond_t   done;
    uint64_t         generation;     /* bumped for every job */
    int              n_finished;     /* workers finished with this generation */
    int              stop;
    /* the current job */
    flx_range_fn     fn;
    void            *ctx;
    int64_t          n;
    int64_t          grain;
    atomic_llong     next;
};

typedef struct { flx_pool *pool; int id; } worker_arg;

static void run_ranges(flx_pool *p, int thread_id)
{
    for (;;) {
        int64_t begin = atomic_fetch_add(&p->next, p->grain);
        if (begin >= p->n) break;
        int64_t end = begin + p->grain < p->n ? begin + p->grain : p->n;
        p->fn(p->ctx, begin, end, thread_id);
    }
}

static void *worker_main(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    flx_pool *p = a.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_ranges(p, a.id);
        pthread_mutex_lock(&p->mu);
        p->n_finished++;
        pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

flx_pool *flx_pool_create(int n_threads)
{
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    flx_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) { free(p); return NULL; }
        for (int i = 0; i < n_threads - 1; i++) {
            worker_arg *a = malloc(sizeof *a);
            if (a) {
                a->pool = p;
                a->id = i + 1;
            }
            if (!a || pthread_create(&p->workers[i], NULL, worker_main, a) != 0) {
                free(a);
                p->n_threads = i + 1;   /* keep the ones that started */
                break;
            }
        }
    }
    return p;
}

void flx_pool_free(flx_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int flx_pool_threads(const flx_pool *p)
{
    return p ? p->n_threads : 1;
}

void flx_pool_for(flx_pool *p, int64_t n, int64_t grain, flx_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n_threads == 1 || n <= grain) {
        for (int64_t b = 0; b < n; b += grain) fn(ctx, b, b + grain < n ? b + grain : n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    atomic_store(&p->next, 0);
    p->n_finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_ranges(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->n_finished < p->n_threads - 1) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
