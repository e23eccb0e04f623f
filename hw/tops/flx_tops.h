// flx_tops.h -- synthesizable top functions of the HLS kernels, one per golden
// kernel of `flxemu golden`, each a plain (non-template) function around one
// flx_hls kernel with a fixed configuration.  Vitis HLS needs such a top for
// csynth and cosim (hw/scripts/run_hls.tcl), and the testbenches in hw/tb call
// these same functions, so C simulation here, Vitis csim and RTL cosim run
// one and the same code.
//
// The configurations are the golden vectors' U280 shapes (reference-design
// §2.1, production config_u280_mem_opt.h) with the sizes the golden set uses:
// runtime loop bounds are arguments, buffer depths come from the config.
// To synthesize another configuration, change the config struct here (every
// knob of the kernel is a static member of its default config in
// hw/kernels/*.h) and the testbench/golden sizes that go with it.
// All tops with an exponential use flx-exp (EXP_FLX): its RTL is made of
// basic float operators, so cosim reproduces csim bit for bit.
#ifndef FLX_TOPS_H
#define FLX_TOPS_H

#include "../kernels/av_u8i8.h"
#include "../kernels/causal_mask.h"
#include "../kernels/dequant.h"
#include "../kernels/dequant_static.h"
#include "../kernels/exp_stage.h"
#include "../kernels/fht.h"
#include "../kernels/gemv_f32.h"
#include "../kernels/gemm_i4_dec.h"
#include "../kernels/gemm_i4_pref.h"
#include "../kernels/qk_i8.h"
#include "../kernels/quant_asym.h"
#include "../kernels/quant_static.h"
#include "../kernels/residual.h"
#include "../kernels/rmsnorm.h"
#include "../kernels/rope.h"
#include "../kernels/silu_gate.h"
#include "../kernels/softmax.h"
#include "../kernels/topk_sampling.h"

namespace flx_tops {

using hls::stream;
using hls::vector;

// ------------------------------------------------------------ configurations

typedef flx_hls::quant_asym_pref_config quant_asym_pref_cfg;   // TP 8, N 4, Kmax 2048
typedef flx_hls::quant_asym_dec_config quant_asym_dec_cfg;     // B 16, N 4, Kmax 8192
typedef flx_hls::dequant_pref_config dequant_pref_cfg;         // TP 8, Nacc 19, asym
struct quant_static_q_cfg : flx_hls::quant_static_pref_config {};   // Q: 32 heads x 64, signed
struct quant_static_p_cfg : flx_hls::quant_static_pref_config {     // P: one row of 64, unsigned
    static const unsigned heads = 1;
    static const bool is_signed = false;
};
struct dequant_static_cfg : flx_hls::dequant_static_pref_config {   // 32 x 16 channels
    static const unsigned head_dim = 16;
};
typedef flx_hls::gemm_i4_pref_config gemm_i4_pref_cfg;       // TP 8, WP 24, L 11
typedef flx_hls::gemm_i4_dec_config gemm_i4_dec_cfg;           // B 16, W 64, L 13 (production)
typedef flx_hls::gemv_f32_dec_config gemv_f32_cfg;             // B 4, W 8 (HMT)
typedef flx_hls::qk_i8_pref_config qk_i8_cfg;                  // TP 8, Kp 16, ap_int<22>
typedef flx_hls::av_u8i8_pref_config av_u8i8_cfg;              // TP 8, Vp 16, ap_int<26>
typedef flx_hls::causal_mask_pref_config causal_mask_cfg;
typedef flx_hls::softmax_pref_config softmax_pref_cfg;         // TP 8, flx-exp
struct softmax_dec_cfg : flx_hls::softmax_dec_config {         // one head per lane group
    static const unsigned hp = 1;
};
typedef flx_hls::softmax_block_config softmax_block_cfg;       // B 4, scaled (HMT)
typedef flx_hls::rmsnorm_pref_config rmsnorm_pref_cfg;         // TP 8, D 2048
typedef flx_hls::rmsnorm_dec_config rmsnorm_dec_cfg;           // B_T 8, D 2048
struct rope_cfg : flx_hls::rope_pref_config {                  // table rows of the golden set
    static const unsigned max_pos = 16;
};
typedef flx_hls::silu_gate_dec_config silu_gate_cfg;           // B 16, flx-exp
typedef flx_hls::residual_config residual_cfg;                 // B 16
typedef flx_hls::fht_dec_config fht_cfg;                       // B 16, N 8192
typedef flx_hls::topk_sampling_config topk_sampling_cfg;                     // B 16, VP 131072, K 5
typedef flx_hls::exp_stage_config exp_cfg;                     // flx-exp

// ------------------------------------------------------------------ the tops

void top_quant_asym_pref(stream<vector<float, 8> > &x, stream<vector<ap_int<4>, 8> > &q,
                         stream<vector<float, 2> > &s_b, unsigned n_blocks, unsigned k_dim);
void top_quant_asym_dec(stream<vector<float, 16> > &x, stream<vector<ap_int<4>, 16> > &q,
                        stream<vector<float, 2> > &s_b, unsigned k_dim);
void top_dequant_pref(stream<vector<ap_int<19>, 8> > &acc, stream<vector<float, 2> > &s_b,
                      stream<vector<float, 2> > &w_sb, stream<vector<float, 8> > &y,
                      unsigned n_blocks, unsigned n_out);
void top_quant_static_q(stream<vector<float, 8> > &x, stream<vector<ap_int<8>, 8> > &q,
                        const float scale[32], float mha_scale_factor, unsigned n_blocks);
void top_quant_static_p(stream<vector<float, 8> > &x, stream<vector<ap_int<8>, 8> > &q,
                        const float scale[1], float mha_scale_factor, unsigned n_blocks);
void top_dequant_static_pref(stream<vector<ap_int<22>, 8> > &acc, stream<vector<float, 8> > &y,
                             const float in_s[32], const float w_s[8], unsigned n_blocks);
void top_gemm_i4_pref(stream<vector<ap_int<4>, 8> > &a, stream<vector<ap_int<4>, 24> > &w,
                      stream<vector<ap_int<19>, 8> > &acc, unsigned n_blocks, unsigned k_dim,
                      unsigned n_out);
void top_gemm_i4_dec(stream<vector<ap_int<4>, 16> > &a, stream<vector<ap_int<4>, 64> > w[16],
                     stream<vector<ap_int<21>, 16> > &acc, unsigned k_dim, unsigned n_out);
void top_gemv_f32_dec(stream<vector<float, 4> > &x, stream<vector<float, 8> > w[4],
                      stream<vector<float, 4> > &y, unsigned k_dim, unsigned n_out);
void top_qk_i8_pref(stream<vector<ap_int<8>, 8> > &q, stream<vector<ap_int<8>, 16> > &k,
                    stream<vector<ap_int<22>, 8> > &acc, unsigned n_blocks, unsigned n_heads,
                    unsigned seq_len);
void top_av_u8i8_pref(stream<vector<ap_int<8>, 8> > &p, stream<vector<ap_int<8>, 16> > &v,
                      stream<vector<ap_int<26>, 8> > &acc, unsigned n_blocks, unsigned n_heads,
                      unsigned seq_len);
void top_softmax_pref(stream<vector<float, 8> > &scores, stream<vector<float, 8> > &p,
                      unsigned first_block, unsigned n_blocks, unsigned n_heads, unsigned seq_len);
void top_softmax_dec(stream<vector<float, 1> > &scores, stream<vector<float, 1> > &p,
                     unsigned n_iters, unsigned n);
void top_softmax_block(stream<vector<float, 4> > &x, stream<vector<float, 4> > &p, unsigned n,
                       float scale);
void top_rmsnorm_pref(stream<vector<float, 8> > &x, stream<float> &gamma,
                      stream<vector<float, 8> > &y, unsigned n_blocks);
void top_rmsnorm_dec(stream<vector<float, 8> > &x, stream<vector<float, 8> > &gamma,
                     stream<vector<float, 8> > &y);
void top_rope_pref(stream<vector<float, 8> > &x, stream<vector<float, 8> > &y,
                   const float sin_tab[16][32], const float cos_tab[16][32], unsigned first_block,
                   unsigned n_blocks, unsigned n_heads);
void top_silu_gate_dec(stream<vector<float, 16> > &gate, stream<vector<float, 16> > &up,
                       stream<vector<float, 16> > &y, unsigned beats);
void top_residual_dec(stream<vector<float, 16> > &in, stream<vector<float, 16> > &res,
                      stream<vector<float, 16> > &y, unsigned beats);
void top_fht_dec(stream<vector<float, 16> > &x, stream<vector<float, 16> > &y, float scale_factor);
void top_topk_sampling(stream<vector<float, 16> > &logits, float r, int ids[5], float values[5],
                       float probs[5], int *token);
void top_exp(stream<float> &x, stream<float> &y, unsigned n);

}  // namespace flx_tops

#endif  // FLX_TOPS_H
