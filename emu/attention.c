/* Attention helpers of MHA.h (reference-design §1.12). */
#include "flx_emu.h"

void flx_emu_causal_mask(float *scores, int64_t ld, int64_t n_q, int64_t n_k,
                         int64_t q_pos0)
{
    for (int64_t i = 0; i < n_q; i++)
        for (int64_t j = q_pos0 + i + 1; j < n_k; j++)
            if (j >= 0) scores[i * ld + j] = -1e32f;
}
