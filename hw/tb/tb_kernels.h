// tb_kernels.h -- the kernel testbenches: one function per golden kernel of
// `flxemu golden`, each feeding the golden inputs to the HLS kernel in
// C simulation, in the hardware's beat order, and comparing every output
// bit for bit (tb_ctx::expect_*).
#ifndef FLX_TB_KERNELS_H
#define FLX_TB_KERNELS_H

#include "golden_io.h"

#include "../tops/flx_tops.h"

namespace flx_tb {

typedef void (*tb_fn)(tb_ctx &);

struct tb_entry {
    const char *kernel;   // golden kernel name
    tb_fn fn;
    const char *hls;      // HLS function(s) it exercises
};

// every testbench, in golden-kernel order
const std::vector<tb_entry> &testbenches();

struct kernel_result {
    std::string kernel;
    bool ok = false;
    size_t compared = 0;             // output values compared
    std::string message;             // first failure
    std::vector<std::string> notes;  // CRC warnings
};

// Runs the testbench of `kernel` on the golden folder of `m`; never throws.
kernel_result run_kernel(const manifest &m, const std::string &kernel);

// ---- helpers shared by the testbench files

// fails the kernel when a stream was left with data (a beat-count bug)
template <class S>
void expect_drained(const char *name, S &s)
{
    if (!s.empty()) throw std::runtime_error(std::string("stream '") + name + "' holds " +
                                             std::to_string(s.size()) + " unread beats after the kernel");
}

// the registration lists of each testbench file
void register_quant(std::vector<tb_entry> &v);
void register_gemm(std::vector<tb_entry> &v);
void register_attention(std::vector<tb_entry> &v);
void register_misc(std::vector<tb_entry> &v);
void register_hmt(std::vector<tb_entry> &v);   // tb_hmt.cpp
void register_variants(std::vector<tb_entry> &v);
void register_layer(std::vector<tb_entry> &v);

}  // namespace flx_tb

#endif
