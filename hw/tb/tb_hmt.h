// tb_hmt.h -- testbenches of HMT's retrieval and ring-buffer update
// (golden kernels hmt_recall, hmt_update), and the two sets `flxemu golden
// --layer hmt` writes: layer_hmt (retrieval + update at the U280 size) and
// layer_hmt_segment (the whole segment step with both prefills, tiny shape;
// tb_hmt_segment.cpp).
#ifndef FLX_TB_HMT_H
#define FLX_TB_HMT_H

#include "tb_kernels.h"

namespace flx_tb {

void tb_layer_hmt(tb_ctx &c);
void tb_layer_hmt_segment(tb_ctx &c);

}  // namespace flx_tb

#endif
