// tb_hmt.h -- testbenches of HMT's retrieval and ring-buffer update
// (golden kernels hmt_recall, hmt_update; and layer_hmt, the whole segment
// step that `flxemu golden --layer hmt` writes).
#ifndef FLX_TB_HMT_H
#define FLX_TB_HMT_H

#include "tb_kernels.h"

namespace flx_tb {

void tb_layer_hmt(tb_ctx &c);

}  // namespace flx_tb

#endif
