/* Top-k sampling of dec_Sampling_Embedding_Layer (reference-design §1.13). */
#include "flx_emu.h"

#define FZ(v) (ftz ? flx_emu_ftz(v) : (v))

/* sort_top_k: first position p with v > val[p] (strict: an equal value stays
 * behind the earlier entry), shift the tail down one place, insert. */
static void insert_top(float *val, int32_t *id, int k, float v, int32_t idx)
{
    if (!(v > val[k - 1])) return;      /* the list is sorted: no place for v */
    int p = 0;
    while (p < k && !(v > val[p])) p++;
    if (p == k) return;
    for (int i = k - 1; i > p; i--) { val[i] = val[i - 1]; id[i] = id[i - 1]; }
    val[p] = v;
    id[p] = idx;
}

/* One lane's list over ids [i0, i0 + n).  Most logits cannot enter the
 * list, so a block of 16 is offered value by value only when one of its raw
 * values beats the list's last entry t.  No insertion is skipped: FZ(v) > t
 * implies v > t (under FTZ the list holds no subnormal, so a flushed v = +-0
 * above t means t <= -FLT_MIN < v), so the list is the one of offering
 * every value. */
static void lane_top(float *val, int32_t *id, int k, const float *logits, int64_t i0, int64_t n, int ftz)
{
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const float *b = logits + i0 + j;
        const float t = val[k - 1];
        int any = 0;
        for (int u = 0; u < 16; u++) any |= b[u] > t;
        if (!any) continue;
        for (int u = 0; u < 16; u++) insert_top(val, id, k, FZ(b[u]), (int32_t)(i0 + j + u));
    }
    for (; j < n; j++) insert_top(val, id, k, FZ(logits[i0 + j]), (int32_t)(i0 + j));
}

int flx_emu_topk_sampling(flx_emu_topk *out, const float *logits, int64_t n_vocab_pad,
                          int n_lanes, int k, float r, const flx_emu_fp *fp)
{
    const int ftz = fp->ftz;
    if (k < 1 || k > FLX_EMU_TOPK_MAX || n_lanes < 1 || n_vocab_pad % n_lanes) return -1;
    const int64_t per = n_vocab_pad / n_lanes;
    float lane_val[FLX_EMU_TOPK_MAX];
    int32_t lane_id[FLX_EMU_TOPK_MAX];
    out->k = k;
    for (int p = 0; p < k; p++) { out->value[p] = -1e32f; out->id[p] = -1; }
    /* per-lane lists, then the rank-major merge; lanes are independent, so the
     * merge can run lane by lane as long as ranks are visited rank-major */
    float all_val[64][FLX_EMU_TOPK_MAX];
    int32_t all_id[64][FLX_EMU_TOPK_MAX];
    if (n_lanes > 64) return -1;
    for (int i = 0; i < n_lanes; i++) {
        for (int p = 0; p < k; p++) { lane_val[p] = -1e32f; lane_id[p] = -1; }
        lane_top(lane_val, lane_id, k, logits, i * per, per, ftz);
        for (int p = 0; p < k; p++) { all_val[i][p] = lane_val[p]; all_id[i][p] = lane_id[p]; }
    }
    for (int p = 0; p < k; p++)
        for (int i = 0; i < n_lanes; i++)
            insert_top(out->value, out->id, k, all_val[i][p], all_id[i][p]);
    float e[FLX_EMU_TOPK_MAX];
    float sp[2] = { 0.0f, 0.0f };
    for (int p = 0; p < k; p++) {
        e[p] = flx_emu_exp(fp, FZ(out->value[p] - out->value[0]));
        sp[p & 1] = FZ(sp[p & 1] + e[p]);
    }
    float sum = FZ(sp[0] + sp[1]);
    for (int p = 0; p < k; p++) out->prob[p] = FZ(e[p] / sum);
    out->cdf[0] = out->prob[0];
    for (int p = 1; p < k; p++) out->cdf[p] = FZ(out->prob[p] + out->cdf[p - 1]);
    out->selected = k - 1;
    for (int p = 0; p < k; p++)
        if (r < out->cdf[p]) { out->selected = p; break; }
    out->token = out->id[out->selected];
    return 0;
}
