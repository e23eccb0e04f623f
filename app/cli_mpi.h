/* cli_mpi.h -- running one flxemu command as several processes (Open MPI):
 * `mpirun -n N flxemu ppl ...` shares the windows among the N ranks, each
 * with its own threads, and rank 0 prints and writes exactly what one
 * process would have (the same bits; only timing fields differ).
 *
 * MPI stays in this layer: the library only learns to evaluate a subset
 * of windows and to add up per-token results (flx_ppl_opts.shard,
 * flx_ppl_merge).  Built without MPI (meson -Dmpi=disabled or no
 * libopenmpi-dev), or started without an MPI launcher, every function here
 * is the one-process case and the program behaves as before.  A program
 * built without MPI but started by a launcher with several ranks refuses to
 * run (N copies would each do all the work and write the same files). */
#ifndef FLX_CLI_MPI_H
#define FLX_CLI_MPI_H

#include "flx_core.h"
#include "flx_ppl.h"

typedef struct cli_mpi {
    int rank, size;   /* 0, 1 without MPI                          */
    int active;       /* MPI_Init was called (MPI_Finalize is due) */
    int agreed;       /* every rank knows the job failed: no abort  */
} cli_mpi;

/* Joins the MPI job when the process was started by mpirun/srun (Open
 * MPI, PMIx or PMI environment), else rank 0 of 1.  FLX_EINVAL when
 * launched with several ranks by a build without MPI. */
int  cli_mpi_begin(cli_mpi *mp, flx_error *err);
/* Leaves the job: MPI_Finalize, or MPI_Abort of the whole job when this
 * rank failed (failed != 0) alone, so that no other rank waits for it. */
void cli_mpi_end(cli_mpi *mp, int failed);
/* 1 when MPI support was compiled in. */
int  cli_mpi_compiled(void);

/* flx_ppl_run over the ranks: windows w with w % size == rank on each,
 * per-token NLL (and KLD values) gathered on rank 0 and added in window
 * order by flx_ppl_merge; --save-logits: each rank writes its windows'
 * records to PATH.rankR (the folder must be shared by the ranks) and rank 0
 * assembles PATH, byte-identical to the one-process file.  On rank 0, r
 * holds the whole run's result (seconds: the slowest rank; the time
 * breakdown summed over ranks); on the other ranks r is left empty.
 * o->on_window runs on rank 0 only, for every window in order, after all
 * ranks finished.  With one rank this is flx_ppl_run. */
int cli_mpi_ppl_run(cli_mpi *mp, const flx_model *m, const int32_t *tokens, int64_t n_tokens,
                    const flx_ppl_opts *o, flx_ppl_result *r, flx_error *err);

/* Whether this rank does item i of n items shared round-robin (all items
 * with one rank), and a barrier-free gather of every rank's status: the
 * worst (largest) status over the ranks, so that all ranks agree whether
 * the job failed. */
int cli_mpi_mine(const cli_mpi *mp, int64_t i);
int cli_mpi_worst(const cli_mpi *mp, int status);

/* n_items items of item_bytes each, shared round-robin (cli_mpi_mine):
 * each rank passes its own items in order in mine; rank 0 gets every item
 * in item order in all (unused on the other ranks).  With one rank: a copy.
 * Every rank returns the same status (FLX_ENOMEM when rank 0 cannot hold
 * them, or MPI counts overflow). */
int cli_mpi_gather(const cli_mpi *mp, const void *mine, size_t item_bytes, int64_t n_items, void *all);

#endif
