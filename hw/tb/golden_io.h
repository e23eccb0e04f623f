// golden_io.h -- reading the golden vectors of `flxemu golden` (manifest.json
// and .npy / .npy.gz files) and comparing kernel outputs bit for bit.
// Testbench code: plain C++ (no HLS types), exceptions for bad input files.
#ifndef FLX_TB_GOLDEN_IO_H
#define FLX_TB_GOLDEN_IO_H

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace flx_tb {

// One .npy v1/v2 array, little-endian, C order.
struct npy_array {
    std::string path;
    std::string descr;                 // "<f4", "|i1", "|u1", "<i4"
    std::vector<long long> shape;
    std::vector<unsigned char> data;   // count * elem_size bytes
    size_t count = 0, elem_size = 0;

    float f32(size_t i) const { float v; std::memcpy(&v, &data[i * 4], 4); return v; }
    int32_t i32(size_t i) const { int32_t v; std::memcpy(&v, &data[i * 4], 4); return v; }
    int8_t i8(size_t i) const { return (int8_t)data[i]; }
    uint8_t u8(size_t i) const { return data[i]; }
};

// Parses the bytes of a .npy file; throws std::runtime_error naming `path`.
npy_array parse_npy(const std::string &path, const std::vector<unsigned char> &bytes);
// Reads a whole file, gunzipping when the name ends in .gz (zlib).
std::vector<unsigned char> read_file(const std::string &path);

struct manifest {
    std::string dir;
    std::string exp;                   // "flx-exp" or "glibc-expf"
    bool ftz = false, gzip = false;
    std::vector<std::string> kernels;  // in manifest order
    // kernel -> file name -> crc32 (8 hex digits)
    std::map<std::string, std::map<std::string, std::string> > crc;
    // kernel -> the numbers of its reference.call (layer_prefill: pos0,
    // tokens, rows, seq_len, ...); absent for sets without one
    std::map<std::string, std::map<std::string, long long> > call;
};

manifest load_manifest(const std::string &dir);

// One compared output tensor.
struct check {
    std::string tensor;
    bool ok = true;
    size_t compared = 0;
    std::string message;               // first mismatch, or why it failed
};

// What a kernel testbench sees: its golden files and the comparisons.
class tb_ctx {
  public:
    tb_ctx(const manifest &m, const std::string &kernel) : m_(m), kernel_(kernel) {}
    const std::string &kernel() const { return kernel_; }
    // a number of the kernel's reference.call, or `dflt` when the manifest has none
    long long call(const char *key, long long dflt) const
    {
        auto k = m_.call.find(kernel_);
        if (k == m_.call.end()) return dflt;
        auto v = k->second.find(key);
        return v == k->second.end() ? dflt : v->second;
    }
    bool exp_flx() const { return m_.exp == "flx-exp"; }

    // A golden tensor with the expected dtype and shape (throws otherwise).
    npy_array load(const char *tensor, const char *descr, std::vector<long long> shape) const;

    // Bit-for-bit comparisons against the golden tensor `tensor` (natural
    // layout); `got` in the same flat order.  Record a check each.
    void expect_f32(const char *tensor, const std::vector<float> &got);
    // integers: compares values (int32 files, int8 files, uint8 files)
    void expect_int(const char *tensor, const char *descr, const std::vector<long long> &got);

    // prefixes the message of the last check, when it failed (e.g. the name
    // of the intermediate it compared)
    void label_last(const std::string &prefix)
    {
        if (!checks_.empty() && !checks_.back().ok) checks_.back().message = prefix + checks_.back().message;
    }

    const std::vector<check> &checks() const { return checks_; }
    mutable std::vector<std::string> notes;   // CRC warnings etc.

  private:
    std::string file_path(const char *tensor) const;
    std::vector<unsigned char> read_checked(const std::string &path) const;
    const manifest &m_;
    std::string kernel_;
    std::vector<check> checks_;
};

}  // namespace flx_tb

#endif
