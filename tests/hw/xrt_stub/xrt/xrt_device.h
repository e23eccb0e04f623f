// Compile-only stand-in for XRT's <xrt/xrt_device.h>: the declarations of
// the native C++ API that hw/host/backend_xrt.cpp uses, with the signatures
// of XRT's public headers (xrt::device, xrt::uuid).  No definitions: the
// 'hw-host-xrt-syntax' test only compiles against it (-fsyntax-only), so a
// misspelt call or a wrong argument type is found here; the real check is
// a build against XRT itself.
#ifndef FLX_XRT_STUB_DEVICE_H
#define FLX_XRT_STUB_DEVICE_H
#include <cstddef>
#include <cstdint>
#include <string>
namespace xrt {
using memory_group = uint32_t;
class uuid {
public:
    uuid();
};
class device {
public:
    device();
    explicit device(unsigned int didx);
    uuid load_xclbin(const std::string &xclbin_fnm);
};
}  // namespace xrt
#endif
