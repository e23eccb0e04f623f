// tb_registry.cpp -- the testbench registry and the runner.
#include "tb_kernels.h"

namespace flx_tb {

const std::vector<tb_entry> &testbenches()
{
    static const std::vector<tb_entry> all = [] {
        std::vector<tb_entry> v;
        register_quant(v);
        register_gemm(v);
        register_attention(v);
        register_misc(v);
        register_hmt(v);
        register_variants(v);
        register_layer(v);
        return v;
    }();
    return all;
}

kernel_result run_kernel(const manifest &m, const std::string &kernel)
{
    kernel_result r;
    r.kernel = kernel;
    const tb_entry *e = nullptr;
    for (const tb_entry &t : testbenches())
        if (kernel == t.kernel) e = &t;
    if (!e) {
        r.message = "no HLS testbench for golden kernel '" + kernel + "'";
        return r;
    }
    if (m.ftz) {
        r.message = "golden vectors made with --ftz: the HLS kernels model C simulation, which keeps "
                    "subnormals; regenerate without --ftz";
        return r;
    }
    tb_ctx c(m, kernel);
    try {
        e->fn(c);
    } catch (const std::exception &ex) {
        r.message = ex.what();
        r.notes = c.notes;
        return r;
    }
    r.notes = c.notes;
    r.ok = !c.checks().empty();
    if (c.checks().empty()) r.message = "the testbench compared nothing";
    for (const check &k : c.checks()) {
        r.compared += k.compared;
        if (!k.ok && r.ok) {
            r.ok = false;
            r.message = k.message;
        }
    }
    return r;
}

}  // namespace flx_tb
