/* flx_qmodel.h -- a quantized Llama model in memory: what `flxemu quantize`
 * produces, what .flxq files hold, and what the bit-exact emulator consumes.
 *
 * Contract between quant/ (producer) and emu/ (consumer).  Fields may be
 * added; existing fields keep their meaning.
 *
 * Weights of the FlexLLM recipe: INT4 symmetric per output channel, values
 * in [-8, 7] stored one per int8 (unpacked, for speed; .flxq files pack two
 * per byte, even channel in the low nibble), a float scale per row and the
 * float sum of the row's dequantized weights (wsum = s * sum_k q[k], stored,
 * never recomputed: flexllm-kernels.md 1.2).
 */
#ifndef FLX_QMODEL_H
#define FLX_QMODEL_H

#include "flx_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flx_qtensor {
    int32_t n_out;         /* rows (output channels)                        */
    int32_t n_in;          /* columns (input channels)                      */
    int32_t bits;          /* 2..8, or 16/32 for an unquantized float tensor */
    int32_t group_size;    /* columns per scale; n_in = per output channel  */
    int     symmetric;     /* 1: q in [-2^(b-1), 2^(b-1)-1]; 0: uses zero   */
    int8_t *q;             /* (n_out, n_in) integer values, or NULL if float */
    float  *scale;         /* (n_out, n_in / group_size)                    */
    float  *zero;          /* (n_out, n_in / group_size) zero points, or NULL */
    float  *wsum;          /* (n_out) s * sum(q) per row, or NULL           */
    float  *w;             /* (n_out, n_in) float weights when bits >= 16   */
} flx_qtensor;

typedef struct flx_qlayer {
    const float *attn_norm;   /* (d_model) gains; all ones after folding   */
    flx_qtensor  wq, wk, wv, wo;
    const float *ffn_norm;    /* (d_model)                                 */
    flx_qtensor  w_gate, w_up, w_down;
    /* FlexLLM static attention scales (flexllm-kernels.md 1.12), one value
     * per layer replicated over heads: Q8 = round(q / (8 * q_s)) etc. */
    float        q_s, k_s, v_s, a_s;
} flx_qlayer;

typedef struct flx_qmodel {
    flx_llama_config cfg;
    char             recipe[64];   /* "flexllm", "fp", "w4a8kv8", ...     */
    char             rotation[32]; /* "none", "hadamard", "random", "file" */
    int              r3_online;    /* Hadamard on Q and K after RoPE       */
    int              r4_online;    /* normalized Hadamard before down_proj */
    const float     *tok_embd;     /* (n_vocab, d_model) fp32, rotated     */
    flx_qlayer      *layers;       /* [n_layers]                           */
    const float     *out_norm;     /* (d_model)                            */
    flx_qtensor      head;         /* (n_vocab, d_model)                   */
    double          *rope_inv_freq;/* [head_dim/2]                         */
    flx_tokenizer   *tok;          /* NULL if none                         */
    /* storage owned by the model */
    void           **owned;
    size_t           n_owned;
    size_t           cap_owned;
    flx_mapped_file  file;
} flx_qmodel;

#ifdef __cplusplus
}
#endif
#endif
