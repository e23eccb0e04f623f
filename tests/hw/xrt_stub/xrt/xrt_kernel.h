// Compile-only stand-in for XRT's <xrt/xrt_kernel.h> (see xrt_device.h here).
#ifndef FLX_XRT_STUB_KERNEL_H
#define FLX_XRT_STUB_KERNEL_H
#include "xrt_bo.h"
#include <utility>
enum ert_cmd_state { ERT_CMD_STATE_COMPLETED = 4 };
namespace xrt {
class kernel;
class run {
public:
    run();
    explicit run(const kernel &krnl);
    template <typename... Args>
    void operator()(Args &&...args);
    ert_cmd_state wait(unsigned int timeout_ms = 0) const;
};
class kernel {
public:
    kernel();
    kernel(const xrt::device &device, const xrt::uuid &xclbin_id, const std::string &name);
    template <typename... Args>
    run operator()(Args &&...args) const
    {
        run r(*this);
        r(std::forward<Args>(args)...);
        return r;
    }
    int group_id(int argno) const;
};
}  // namespace xrt
#endif
