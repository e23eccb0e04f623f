// Compile-only stand-in for XRT's <xrt/xrt_bo.h> (see xrt_device.h here).
#ifndef FLX_XRT_STUB_BO_H
#define FLX_XRT_STUB_BO_H
#include "xrt_device.h"
enum xclBOSyncDirection { XCL_BO_SYNC_BO_TO_DEVICE = 0, XCL_BO_SYNC_BO_FROM_DEVICE };
namespace xrt {
class bo {
public:
    bo();
    bo(const xrt::device &device, size_t sz, memory_group grp);
    bo(const bo &parent, size_t size, size_t offset);
    bo(const bo &) = default;
    bo &operator=(const bo &) = default;
    size_t size() const;
    void sync(xclBOSyncDirection dir, size_t sz, size_t offset);
    void write(const void *src, size_t size, size_t seek);
    void read(void *dst, size_t size, size_t skip);
};
}  // namespace xrt
#endif
