/* cli_mpi.c -- see cli_mpi.h.  Everything MPI of the program is here,
 * under FLXEMU_MPI (set by meson when Open MPI is found). */
#include "cli_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FLXEMU_MPI
#include <mpi.h>
#endif

/* Ranks announced by the launcher's environment (Open MPI's mpirun, PMIx
 * as started by srun --mpi=pmix, PMI-2, MPICH's hydra); 0 when none. */
static long launcher_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return getenv("PMIX_RANK") ? 1 : 0;   /* PMIx without a size variable */
}

int cli_mpi_compiled(void)
{
#ifdef FLXEMU_MPI
    return 1;
#else
    return 0;
#endif
}

int cli_mpi_begin(cli_mpi *mp, flx_error *err)
{
    memset(mp, 0, sizeof *mp);
    mp->size = 1;
    long n = launcher_size();
#ifdef FLXEMU_MPI
    if (n < 1) return FLX_OK;   /* a plain run: no MPI at all */
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return flx_fail(err, FLX_EIO, "MPI_Init failed");
    mp->active = !inited;
    MPI_Comm_rank(MPI_COMM_WORLD, &mp->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mp->size);
    return FLX_OK;
#else
    if (n > 1)
        return flx_fail(err, FLX_EINVAL,
                        "started as one of %ld MPI ranks, but this flxemu was built without MPI "
                        "(install libopenmpi-dev and rebuild; meson -Dmpi=enabled checks it)", n);
    return FLX_OK;
#endif
}

void cli_mpi_end(cli_mpi *mp, int failed)
{
#ifdef FLXEMU_MPI
    if (mp->active) {
        if (failed && !mp->agreed && mp->size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
        MPI_Finalize();
    }
#else
    (void)failed;
#endif
    memset(mp, 0, sizeof *mp);
}

int cli_mpi_mine(const cli_mpi *mp, int64_t i)
{
    return mp->size <= 1 || i % mp->size == mp->rank;
}

int cli_mpi_worst(const cli_mpi *mp, int status)
{
#ifdef FLXEMU_MPI
    if (mp->size > 1) {
        int worst = status;
        MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return worst;
    }
#else
    (void)mp;
#endif
    return status;
}

#ifdef FLXEMU_MPI
/* ---------------------------------------------------------------- ppl */

/* This rank's scored tokens, stored by its local window index w / size. */
typedef struct token_sink {
    int64_t n_scored, size;
    double *nll;
    flx_kld_token *kt;
} token_sink;

static void on_token(void *ctx, int64_t w, int64_t i, double nll, const flx_kld_token *kt)
{
    token_sink *s = ctx;
    const int64_t at = (w / s->size) * s->n_scored + i;
    s->nll[at] = nll;
    if (kt && s->kt) s->kt[at] = *kt;
}

static int64_t windows_of(int64_t n_windows, int rank, int size)
{
    return n_windows > rank ? (n_windows - rank + size - 1) / size : 0;
}

/* Gathers every rank's bytes (in window-major local order) on rank 0 and
 * puts them in global window order into all (rank 0 only). */
static int gather_windows(const cli_mpi *mp, const void *mine, size_t win_bytes, int64_t n_windows,
                          void *all)
{
    int *counts = NULL, *displs = NULL;
    char *recv = NULL;
    int ok = 1;
    const int64_t n_mine = windows_of(n_windows, mp->rank, mp->size);
    if (mp->rank == 0) {
        counts = malloc((size_t)mp->size * sizeof *counts);
        displs = malloc((size_t)mp->size * sizeof *displs);
        recv = malloc((size_t)n_windows * win_bytes + 1);
        ok = counts && displs && recv;
        int64_t off = 0;
        for (int r = 0; ok && r < mp->size; r++) {
            int64_t b = windows_of(n_windows, r, mp->size) * (int64_t)win_bytes;
            if (b > 0x7fffffff || off > 0x7fffffff) ok = 0;   /* MPI counts are int */
            counts[r] = ok ? (int)b : 0;
            displs[r] = ok ? (int)off : 0;
            off += b;
        }
    }
    ok = cli_mpi_worst(mp, !ok) == 0;   /* everyone learns whether rank 0 can receive */
    if (ok) {
        MPI_Gatherv(mine, (int)(n_mine * (int64_t)win_bytes), MPI_BYTE, recv, counts, displs, MPI_BYTE, 0,
                    MPI_COMM_WORLD);
        if (mp->rank == 0)
            for (int64_t w = 0; w < n_windows; w++)
                memcpy((char *)all + (size_t)w * win_bytes,
                       recv + displs[w % mp->size] + (size_t)(w / mp->size) * win_bytes, win_bytes);
    }
    free(counts);
    free(displs);
    free(recv);
    return ok ? FLX_OK : FLX_ENOMEM;
}

static char *part_path(const char *path, int rank)
{
    size_t n = strlen(path) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.rank%d", path, rank);
    return p;
}

/* Rank 0: the base file from the ranks' parts, as flx_ppl_run writes it
 * in one process (header, the stream's tokens, every window's records). */
static int assemble_logits(const cli_mpi *mp, const char *path, const flx_ppl_plan *p, int64_t n_vocab,
                           const int32_t *tokens, flx_error *err)
{
    const size_t win_bytes = (size_t)p->n_scored * (size_t)flx_kld_record_u16(n_vocab) * sizeof(uint16_t);
    const size_t chunk = (size_t)16 << 20;
    flx_outfile out;
    int rc = flx_outfile_open(&out, path, err);
    if (rc) return rc;
    FILE **parts = calloc((size_t)mp->size, sizeof *parts);
    char *buf = malloc(chunk);
    if (!parts || !buf) rc = flx_fail(err, FLX_ENOMEM, "%s: out of memory", path);
    for (int r = 0; !rc && r < mp->size; r++) {
        char *pp = part_path(path, r);
        if (!pp || !(parts[r] = fopen(pp, "rb")))
            rc = flx_fail(err, FLX_EIO, "%s: cannot read the part of rank %d (is the folder shared "
                                        "by all ranks?)", pp ? pp : path, r);
        free(pp);
    }
    const int32_t hdr[3] = {(int32_t)p->n_ctx, (int32_t)n_vocab, (int32_t)p->n_windows};
    if (!rc && (fwrite("_logits_", 1, 8, out.fp) != 8 || fwrite(hdr, sizeof hdr, 1, out.fp) != 1 ||
                fwrite(tokens, sizeof *tokens, (size_t)(p->n_windows * p->n_ctx), out.fp) !=
                    (size_t)(p->n_windows * p->n_ctx)))
        rc = flx_fail(err, FLX_EIO, "%s: write failed", path);
    /* part r holds windows r, r + size, ... in order: read them in turn */
    for (int64_t w = 0; !rc && w < p->n_windows; w++) {
        FILE *in = parts[w % mp->size];
        for (size_t done = 0; !rc && done < win_bytes; done += chunk) {
            size_t n = win_bytes - done < chunk ? win_bytes - done : chunk;
            if (fread(buf, 1, n, in) != n)
                rc = flx_fail(err, FLX_EIO, "%s: part of rank %d is short", path, (int)(w % mp->size));
            else if (fwrite(buf, 1, n, out.fp) != n)
                rc = flx_fail(err, FLX_EIO, "%s: write failed", path);
        }
    }
    for (int r = 0; parts && r < mp->size; r++)
        if (parts[r]) fclose(parts[r]);
    free(parts);
    free(buf);
    if (rc) {
        flx_outfile_abort(&out);
        return rc;
    }
    return flx_outfile_commit(&out, err);
}

static int ppl_ranks(const cli_mpi *mp, const flx_model *m, const int32_t *tokens, int64_t n_tokens,
                     const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err)
{
    flx_ppl_plan plan;
    int rc = flx_ppl_plan_make(&plan, o->protocol, n_tokens, o->n_ctx, o->max_windows,
                               o->protocol == FLX_PPL_LLAMACPP ? o->bos_id : -1, err);
    if (rc) return rc;
    const int64_t n_mine = windows_of(plan.n_windows, mp->rank, mp->size);
    token_sink sink = {plan.n_scored, mp->size, NULL, NULL};
    sink.nll = malloc((size_t)(n_mine * plan.n_scored + 1) * sizeof *sink.nll);
    if (o->kl_base) sink.kt = malloc((size_t)(n_mine * plan.n_scored + 1) * sizeof *sink.kt);
    char *part = o->save_logits_path ? part_path(o->save_logits_path, mp->rank) : NULL;
    if (!sink.nll || (o->kl_base && !sink.kt) || (o->save_logits_path && !part))
        rc = flx_fail(err, FLX_ENOMEM, "perplexity: out of memory");

    flx_ppl_opts mine = *o;
    mine.shard = mp->rank;
    mine.n_shards = mp->size;
    mine.on_window = NULL;   /* rank 0 reports every window after the merge */
    mine.save_logits_path = part;
    mine.on_token = on_token;
    mine.on_token_ctx = &sink;
    flx_ppl_result local = {0};
    if (!rc) rc = flx_ppl_run(m, tokens, n_tokens, &mine, &local, err);
    if (cli_mpi_worst(mp, rc != FLX_OK) && !rc)
        rc = flx_fail(err, FLX_EIO, "perplexity: another MPI rank failed (see its message)");

    /* timing: the slowest rank's wall time, the breakdown summed */
    double t_max = local.seconds, t_sum[5] = {local.t_linear, local.t_attention, local.t_other, local.t_head,
                                              local.t_score}, t_tot[5] = {0};
    if (!rc) {
        MPI_Reduce(&local.seconds, &t_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(t_sum, t_tot, 5, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    }
    flx_ppl_result_free(&local);

    double *nll = NULL;
    flx_kld_token *kt = NULL;
    if (!rc && mp->rank == 0) {
        nll = malloc((size_t)(plan.n_windows * plan.n_scored) * sizeof *nll);
        if (o->kl_base) kt = malloc((size_t)(plan.n_windows * plan.n_scored) * sizeof *kt);
    }
    if (!rc && cli_mpi_worst(mp, mp->rank == 0 && (!nll || (o->kl_base && !kt))))
        rc = flx_fail(err, FLX_ENOMEM, "perplexity: out of memory gathering the ranks' tokens");
    if (!rc) rc = gather_windows(mp, sink.nll, (size_t)plan.n_scored * sizeof *nll, plan.n_windows, nll);
    if (!rc && o->kl_base)
        rc = gather_windows(mp, sink.kt, (size_t)plan.n_scored * sizeof *kt, plan.n_windows, kt);
    if (rc && err->code == FLX_OK) flx_fail(err, rc, "perplexity: gathering the ranks' tokens failed");

    if (!rc && mp->rank == 0) {
        rc = flx_ppl_merge(&plan, n_tokens, nll, kt, o, r, err);
        if (!rc) {
            r->seconds = t_max;
            r->tokens_per_second = t_max > 0 ? (double)(plan.n_windows * plan.n_ctx) / t_max : 0.0;
            r->t_linear = t_tot[0];
            r->t_attention = t_tot[1];
            r->t_other = t_tot[2];
            r->t_head = t_tot[3];
            r->t_score = t_tot[4];
        }
        if (!rc && o->save_logits_path)
            rc = assemble_logits(mp, o->save_logits_path, &plan, m->cfg.n_vocab, tokens, err);
    }
    rc = cli_mpi_worst(mp, rc) ? (rc ? rc : FLX_EIO) : FLX_OK;
    if (part) remove(part);
    free(part);
    free(nll);
    free(kt);
    free(sink.nll);
    free(sink.kt);
    return rc;
}
#endif

int cli_mpi_ppl_run(cli_mpi *mp, const flx_model *m, const int32_t *tokens, int64_t n_tokens,
                    const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err)
{
#ifdef FLXEMU_MPI
    if (mp->size > 1) {
        memset(r, 0, sizeof *r);
        int rc = ppl_ranks(mp, m, tokens, n_tokens, o, r, err);
        mp->agreed = rc != FLX_OK;   /* ppl_ranks ends with every rank's status */
        return rc;
    }
#else
    (void)mp;
#endif
    return flx_ppl_run(m, tokens, n_tokens, o, r, err);
}

int cli_mpi_gather(const cli_mpi *mp, const void *mine, size_t item_bytes, int64_t n_items, void *all)
{
#ifdef FLXEMU_MPI
    if (mp->size > 1) return gather_windows(mp, mine, item_bytes, n_items, all);
#else
    (void)mp;
#endif
    if (n_items > 0) memcpy(all, mine, (size_t)n_items * item_bytes);
    return FLX_OK;
}
