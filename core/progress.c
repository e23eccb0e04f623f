/* Monotonic time and a progress bar with throughput and ETA on stderr. */
#include "flx_core.h"

#include <time.h>

double flx_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void draw(flx_progress *p, int final)
{
    double now = flx_now_seconds();
    double dt = now - p->t_start;
    double rate = dt > 0 ? (double)p->done / dt : 0.0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0.0;
    int width = 30;
    int filled = p->total > 0 ? (int)((double)width * (double)p->done / (double)p->total) : 0;
    if (filled > width) filled = width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld  %.1f/s  %s %.0fs   ", p->label, bar,
            (long long)p->done, (long long)p->total, rate, final ? "took" : "eta",
            final ? dt : eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
    p->t_last_draw = now;
}

void flx_progress_begin(flx_progress *p, const char *label, int64_t total, int enabled)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = flx_now_seconds();
    p->t_last_draw = 0;
    p->enabled = enabled;
    if (enabled) draw(p, 0);
}

void flx_progress_update(flx_progress *p, int64_t done)
{
    p->done = done;
    if (p->enabled && flx_now_seconds() - p->t_last_draw > 0.25) draw(p, 0);
}

void flx_progress_end(flx_progress *p)
{
    if (p->enabled) draw(p, 1);
    p->enabled = 0;
}
