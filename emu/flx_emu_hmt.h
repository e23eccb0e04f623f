/* flx_emu_hmt.h -- FlexLLM's HMT plug-in, bit-exact (reference-design §4; docs/hmt.md "Hardware flow" states every float operation).
 *
 * The segment flow of ref/flx_hmt.h runs on the emulator's INT4/INT8
 * prefill (stage 0 and stage 1) with FlexLLM's fp32 memory:
 *   Qn = Wq Sn, An[slot] = Qn . Kmem[slot]   fp32 GEMV, PE_fp32xfp32 order
 *   An' = block softmax of the N slots (N = cache_size, 64 by default), 4 lanes,
 *         exp((x - m) / sqrt(h))
 *   Pn[o] = sum over slots 0..N-1 of An'[slot] Mmem[slot][o]   (PE order)
 *   Kn = Wk Mn; Mmem[n mod N] = Mn, Kmem[n mod N] = Kn
 * Intended semantics (default): empty slots masked (score -1e32f), the first
 * segment's P is the learned initial memory, Sn/Mn from the last layer's
 * output (final RMSNorm, prefill tree, only when flow.final_norm).  With
 * reference quirks: slots unmasked, zero initial memory, and the flow reads
 * Sn/Mn from the input rows (flx_hmt_flow.read_inputs), so Pn stays 0.
 */
#ifndef FLX_EMU_HMT_H
#define FLX_EMU_HMT_H

#include "flx_emu.h"
#include "flx_hmt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FlexLLM's ring (MEM_NUM) holds 64 slots; the emulated ring holds the
 * parameter file's cache_size slots (64 by default), a multiple of the
 * softmax's 4 lanes. */
enum { FLX_EMU_HMT_SLOTS = 64, FLX_EMU_HMT_LANES = 4 };

/* FlexLLM-as-written behaviours, one bit each (--reference-quirks: all). */
enum {
    FLX_EMU_HMT_Q_REGION0      = 1,   /* Sn, Mn read from prefill region 0 (the inputs) */
    FLX_EMU_HMT_Q_UNMASKED     = 2,   /* empty slots take part in the softmax          */
    FLX_EMU_HMT_Q_ZERO_INIT    = 4,   /* first segment's P is zeros                    */
    FLX_EMU_HMT_Q_ZERO_SENSORY = 8,   /* first segment gets 32 zero sensory rows       */
    FLX_EMU_HMT_Q_ALL          = 15,
};

/* Parses a comma list of region0, unmasked, zero-init, zero-sensory, all,
 * none into bits; -1 on an unknown word. */
int flx_emu_hmt_quirks_parse(const char *list);
/* The flow settings of a quirk set (final_norm as given). */
flx_hmt_flow flx_emu_hmt_flow(int quirks, int final_norm);

/* The on-chip memory: N = p->cache_size slots of Mn and Kn (segment n goes
 * to slot n mod N), and the retrieval. */
typedef struct flx_emu_hmt_mem {
    const flx_hmt_params *p;
    flx_emu_fp fp;
    int     quirks;             /* FLX_EMU_HMT_Q_* bits (UNMASKED, ZERO_INIT used here) */
    int     n_slots;            /* N                                           */
    float  *m;                  /* [N][d] Mmem                                 */
    float  *k;                  /* [N][h] Kmem                                 */
    uint8_t *filled;            /* [N] 1 = slot written                        */
    float  *q;                  /* [h] Qn                                      */
    float  *mt;                 /* [d][N] Mmem transposed for the Pn GEMV      */
    float  *scores;             /* [N] An, then An' (last recall)              */
} flx_emu_hmt_mem;

/* Fails (FLX_EINVAL, naming the file and mem_recall_context) unless
 * p->cache_size is a positive multiple of FLX_EMU_HMT_LANES. */
int  flx_emu_hmt_mem_init(flx_emu_hmt_mem *hm, const flx_hmt_params *p, const flx_emu_fp *fp,
                          int quirks, flx_error *err);
void flx_emu_hmt_mem_free(flx_emu_hmt_mem *hm);
flx_hmt_memory flx_emu_hmt_mem_ops(flx_emu_hmt_mem *hm);

/* The two retrieval kernels alone (golden vectors, hw twin), n_slots a
 * multiple of FLX_EMU_HMT_LANES:
 * recall: q[h] = Wq s; scores[n_slots] = Kmem q (masked slots -1e32f when
 * mask != NULL and mask[slot] == 0); block softmax over 4 lanes of
 * n_slots/4; p[d] = Mmem^T scores (kmem [n_slots][h], mmem_t [d][n_slots]).
 * update: k[h] = Wk m. */
void flx_emu_hmt_recall(float *p, float *q, float *scores, const float *s, const float *wq,
                        const float *kmem, const float *mmem_t, const uint8_t *mask, int64_t d,
                        int64_t h, int64_t n_slots, const flx_emu_fp *fp);
void flx_emu_hmt_key(float *k, const float *m, const float *wk, int64_t d, int64_t h,
                     const flx_emu_fp *fp);

/* The emulator's prefill as an HMT backbone: runs of up to max_rows rows;
 * hidden rows from the last layer's output (final_norm: prefill RMSNorm
 * tree with the model's out_norm); logits through the decode-stage final
 * norm and INT4 head, as `flxemu ppl --engine emu` scores. */
typedef struct flx_emu_hmt_backbone {
    const flx_emu_engine *e;
    flx_pool *pool;
    float    *hidden;           /* [max_rows][d] last run's layer output       */
    float    *logits_buf;       /* [head_rows][n_vocab]                        */
    int64_t   head_rows;
    int64_t   n_rows, max_rows;
} flx_emu_hmt_backbone;

int  flx_emu_hmt_backbone_init(flx_emu_hmt_backbone *eb, const flx_emu_engine *e, int64_t max_rows,
                               flx_pool *pool, flx_error *err);
void flx_emu_hmt_backbone_free(flx_emu_hmt_backbone *eb);
flx_hmt_backbone flx_emu_hmt_backbone_ops(flx_emu_hmt_backbone *eb);

#ifdef __cplusplus
}
#endif
#endif /* FLX_EMU_HMT_H */
