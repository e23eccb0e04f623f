// flx_tops_variants.h -- synthesizable tops of the decode and prefill kernel
// variants that `flxemu golden` also writes (dequant_dec, dequant_dec_plain,
// quant_static_dec, dequant_static_dec, qk_i8_dec, av_u8i8_dec,
// silu_gate_pref, residual_pref): like flx_tops.h, one plain function per
// golden kernel around one flx_hls kernel with a fixed configuration, called
// by the testbench (hw/tb/tb_variants.cpp) and synthesized by run_hls.tcl.
#ifndef FLX_TOPS_VARIANTS_H
#define FLX_TOPS_VARIANTS_H

#include "flx_tops.h"

namespace flx_tops {

typedef flx_hls::dequant_dec_config dequant_dec_cfg;           // B 16, W 64, Nacc 21
typedef flx_hls::dequant_dec_config dequant_dec_plain_cfg;     // B 16, Nacc 21 (W unused)
typedef flx_hls::quant_static_dec_config quant_static_dec_cfg; // HP 8, 32 heads x 64, signed
typedef flx_hls::dequant_static_dec_config dequant_static_dec_cfg;   // HP 8, Nacc 22
typedef flx_hls::qk_i8_dec_config qk_i8_dec_cfg;               // Kp 32, ap_int<22>
typedef flx_hls::av_u8i8_dec_config av_u8i8_dec_cfg;           // Vp 32, ap_int<27>
typedef flx_hls::silu_gate_pref_config silu_gate_pref_cfg;     // TP 8, flx-exp
struct residual_pref_cfg : flx_hls::residual_config {          // TP 8 token lanes
    static const unsigned b = 8;
};

void top_dequant_dec(stream<vector<ap_int<21>, 16> > &acc, stream<vector<float, 2> > &s_b,
                     stream<vector<float, 2> > &w_sb, stream<vector<float, 16> > &y, unsigned n_out);
void top_dequant_dec_plain(stream<vector<ap_int<21>, 16> > &acc, stream<vector<float, 2> > &s_b,
                           stream<vector<float, 16> > &ws, stream<vector<float, 16> > &wsum,
                           stream<vector<float, 16> > &y, unsigned beats);
void top_quant_static_dec(stream<vector<float, 8> > &x, stream<vector<ap_int<8>, 8> > &q,
                          const float scale[32], float mha_scale_factor);
void top_dequant_static_dec(stream<vector<ap_int<22>, 8> > &acc, stream<vector<float, 8> > &y,
                            const float in_s[32], const float w_s[8], unsigned n_per_head);
void top_qk_i8_dec(stream<ap_int<8> > &q, stream<vector<ap_int<8>, 32> > &k,
                   stream<ap_int<22> > &acc, unsigned n_keys);
void top_av_u8i8_dec(stream<ap_int<8> > &p, stream<vector<ap_int<8>, 32> > &v,
                     stream<ap_int<27> > &acc, unsigned n_keys);
void top_silu_gate_pref(stream<vector<float, 8> > &gate, stream<vector<float, 8> > &up,
                        stream<vector<float, 8> > &y, unsigned n_blocks, unsigned n_channels);
void top_residual_pref(stream<vector<float, 8> > &in, stream<vector<float, 8> > &res,
                       stream<vector<float, 8> > &y, unsigned beats);

}  // namespace flx_tops

#endif  // FLX_TOPS_VARIANTS_H
