// backend_none.cpp -- stands in for backend_xrt.cpp in builds without XRT's
// headers: --backend xrt then says how to get it.
#include "flx_host.h"

namespace flx_host {

std::unique_ptr<backend> make_xrt_backend(unsigned, const std::string &, const std::string &)
{
    return std::unique_ptr<backend>();
}

bool have_xrt() { return false; }

}  // namespace flx_host
