// golden_io.cpp -- .npy / manifest reading and bit comparisons for the HLS
// testbenches (see golden_io.h).
#include "golden_io.h"

#include <cjson/cJSON.h>
#include <zlib.h>

#include <cstdio>
#include <sys/stat.h>

namespace flx_tb {

static const size_t MAX_FILE_BYTES = (size_t)1 << 30;

static std::runtime_error fail(const std::string &path, const std::string &what)
{
    return std::runtime_error(path + ": " + what);
}

std::vector<unsigned char> read_file(const std::string &path)
{
    std::vector<unsigned char> out;
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
        gzFile g = gzopen(path.c_str(), "rb");
        if (!g) throw fail(path, "cannot open");
        unsigned char buf[1 << 16];
        for (;;) {
            int n = gzread(g, buf, sizeof buf);
            if (n < 0) { gzclose(g); throw fail(path, "corrupt gzip data"); }
            if (n == 0) break;
            out.insert(out.end(), buf, buf + n);
            if (out.size() > MAX_FILE_BYTES) { gzclose(g); throw fail(path, "larger than 1 GiB uncompressed"); }
        }
        gzclose(g);
        return out;
    }
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) throw fail(path, "cannot open");
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        out.insert(out.end(), buf, buf + n);
        if (out.size() > MAX_FILE_BYTES) { std::fclose(f); throw fail(path, "larger than 1 GiB"); }
    }
    bool err = std::ferror(f);
    std::fclose(f);
    if (err) throw fail(path, "read error");
    return out;
}

// value of 'key': in the header dict, as the raw text up to the next
// top-level ',' or '}' (tuples kept whole)
static std::string dict_value(const std::string &h, const std::string &key, const std::string &path)
{
    size_t p = h.find("'" + key + "'");
    if (p == std::string::npos) throw fail(path, "npy header has no '" + key + "'");
    p = h.find(':', p);
    if (p == std::string::npos) throw fail(path, "npy header: malformed '" + key + "'");
    p++;
    while (p < h.size() && h[p] == ' ') p++;
    size_t e = p;
    int depth = 0;
    while (e < h.size()) {
        char c = h[e];
        if (c == '(') depth++;
        if (c == ')') depth--;
        if (depth == 0 && (c == ',' || c == '}')) break;
        e++;
    }
    while (e > p && h[e - 1] == ' ') e--;
    if (e == p) throw fail(path, "npy header: empty '" + key + "'");
    return h.substr(p, e - p);
}

npy_array parse_npy(const std::string &path, const std::vector<unsigned char> &b)
{
    npy_array a;
    a.path = path;
    if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw fail(path, "not a .npy file (bad magic)");
    unsigned major = b[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (b.size() < 12) throw fail(path, "truncated header");
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        throw fail(path, "unsupported .npy version " + std::to_string(major));
    }
    if (hlen > b.size() - off) throw fail(path, "header length " + std::to_string(hlen) + " runs past the end of the file");
    std::string h(b.begin() + off, b.begin() + off + hlen);
    std::string descr = dict_value(h, "descr", path);
    if (descr.size() < 2 || (descr[0] != '\'' && descr[0] != '"')) throw fail(path, "npy header: bad descr");
    a.descr = descr.substr(1, descr.size() - 2);
    if (a.descr == "<f4" || a.descr == "<i4") a.elem_size = 4;
    else if (a.descr == "|i1" || a.descr == "|u1") a.elem_size = 1;
    else throw fail(path, "unsupported dtype '" + a.descr + "' (need <f4, <i4, |i1 or |u1)");
    std::string fo = dict_value(h, "fortran_order", path);
    if (fo.compare(0, 5, "False") != 0) throw fail(path, "fortran_order arrays are not supported");
    std::string sh = dict_value(h, "shape", path);
    if (sh.empty() || sh[0] != '(') throw fail(path, "npy header: bad shape");
    a.count = 1;
    size_t i = 1;
    while (i < sh.size() && sh[i] != ')') {
        while (i < sh.size() && (sh[i] == ' ' || sh[i] == ',')) i++;
        if (i >= sh.size() || sh[i] == ')') break;
        if (sh[i] < '0' || sh[i] > '9') throw fail(path, "npy header: bad shape '" + sh + "'");
        long long d = 0;
        while (i < sh.size() && sh[i] >= '0' && sh[i] <= '9') {
            d = d * 10 + (sh[i] - '0');
            if (d > (1ll << 40)) throw fail(path, "npy header: dimension too large");
            i++;
        }
        a.shape.push_back(d);
        a.count *= (size_t)d;
        if (a.count > MAX_FILE_BYTES) throw fail(path, "npy header: shape too large");
    }
    size_t data_off = off + hlen, want = a.count * a.elem_size;
    if (b.size() - data_off != want)
        throw fail(path, "holds " + std::to_string(b.size() - data_off) + " data bytes, shape and dtype need " +
                             std::to_string(want));
    a.data.assign(b.begin() + data_off, b.end());
    return a;
}

manifest load_manifest(const std::string &dir)
{
    manifest m;
    m.dir = dir;
    std::string path = dir + "/manifest.json";
    std::vector<unsigned char> bytes = read_file(path);
    std::string text(bytes.begin(), bytes.end());
    cJSON *j = cJSON_Parse(text.c_str());
    if (!j) throw fail(path, "not valid JSON");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "exp");
    const cJSON *ftz = cJSON_GetObjectItemCaseSensitive(j, "ftz");
    const cJSON *gz = cJSON_GetObjectItemCaseSensitive(j, "gzip");
    const cJSON *ks = cJSON_GetObjectItemCaseSensitive(j, "kernels");
    if (!cJSON_IsString(ex) || !cJSON_IsBool(ftz) || !cJSON_IsBool(gz) || !cJSON_IsArray(ks)) {
        cJSON_Delete(j);
        throw fail(path, "not a golden-vector manifest (needs exp, ftz, gzip, kernels)");
    }
    m.exp = ex->valuestring;
    m.ftz = cJSON_IsTrue(ftz);
    m.gzip = cJSON_IsTrue(gz);
    const cJSON *k;
    cJSON_ArrayForEach(k, ks) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(k, "kernel");
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(k, "files");
        if (!cJSON_IsString(name) || !cJSON_IsArray(files)) {
            cJSON_Delete(j);
            throw fail(path, "malformed kernel entry");
        }
        m.kernels.push_back(name->valuestring);
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(k, "reference");
        const cJSON *call = ref ? cJSON_GetObjectItemCaseSensitive(ref, "call") : nullptr;
        const cJSON *c;
        if (cJSON_IsObject(call))
            cJSON_ArrayForEach(c, call) {
                if (cJSON_IsNumber(c) && c->valuedouble >= -1e15 && c->valuedouble <= 1e15)
                    m.call[name->valuestring][c->string] = (long long)c->valuedouble;
            }
        const cJSON *f;
        cJSON_ArrayForEach(f, files) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "file");
            const cJSON *crc = cJSON_GetObjectItemCaseSensitive(f, "crc32");
            if (cJSON_IsString(fn) && cJSON_IsString(crc)) m.crc[name->valuestring][fn->valuestring] = crc->valuestring;
        }
    }
    cJSON_Delete(j);
    if (m.exp != "flx-exp" && m.exp != "glibc-expf") throw fail(path, "unknown exp '" + m.exp + "'");
    return m;
}

std::string tb_ctx::file_path(const char *tensor) const
{
    return m_.dir + "/" + kernel_ + "/" + tensor + (m_.gzip ? ".npy.gz" : ".npy");
}

static std::string shape_str(const std::vector<long long> &s)
{
    std::string r = "(";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + ")";
}

// The file's bytes (gunzipped); a note when the stored bytes do not match the
// manifest's CRC32 (zlib's crc32 is the same CRC as the emulator's).
std::vector<unsigned char> tb_ctx::read_checked(const std::string &path) const
{
    std::string fname = path.substr(path.rfind('/') + 1);
    auto kc = m_.crc.find(kernel_);
    if (kc != m_.crc.end()) {
        auto fc = kc->second.find(fname);
        if (fc != kc->second.end()) {
            std::vector<unsigned char> raw;
            FILE *f = std::fopen(path.c_str(), "rb");
            unsigned char buf[1 << 16];
            size_t n;
            while (f && (n = std::fread(buf, 1, sizeof buf, f)) > 0) raw.insert(raw.end(), buf, buf + n);
            if (f) std::fclose(f);
            char have[16];
            std::snprintf(have, sizeof have, "%08lx", crc32(0L, raw.data(), (uInt)raw.size()));
            if (f && fc->second != have)
                notes.push_back(path + ": CRC32 " + have + " differs from the manifest's " + fc->second +
                                " (file edited or corrupted)");
        }
    }
    return read_file(path);
}

npy_array tb_ctx::load(const char *tensor, const char *descr, std::vector<long long> shape) const
{
    std::string path = file_path(tensor);
    npy_array a = parse_npy(path, read_checked(path));
    if (a.descr != descr) throw fail(path, "dtype " + a.descr + ", the testbench needs " + descr);
    if (a.shape != shape) throw fail(path, "shape " + shape_str(a.shape) + ", the testbench needs " + shape_str(shape));
    return a;
}

void tb_ctx::expect_f32(const char *tensor, const std::vector<float> &got)
{
    check c;
    c.tensor = tensor;
    try {
        npy_array e = parse_npy(file_path(tensor), read_checked(file_path(tensor)));
        if (e.descr != "<f4" || e.count != got.size())
            throw fail(e.path, "holds " + std::to_string(e.count) + " " + e.descr + " values, the kernel produced " +
                                   std::to_string(got.size()) + " float32");
        for (size_t i = 0; i < got.size(); i++) {
            uint32_t eb, gb;
            float ev = e.f32(i);
            std::memcpy(&eb, &ev, 4);
            std::memcpy(&gb, &got[i], 4);
            c.compared++;
            if (eb != gb) {
                char msg[512];
                std::snprintf(msg, sizeof msg, "%s: first mismatch at flat index %zu of %zu: expected 0x%08x (%.9g), "
                              "got 0x%08x (%.9g)", e.path.c_str(), i, got.size(), eb, (double)ev, gb, (double)got[i]);
                c.ok = false;
                c.message = msg;
                break;
            }
        }
    } catch (const std::exception &ex) {
        c.ok = false;
        c.message = ex.what();
    }
    checks_.push_back(c);
}

void tb_ctx::expect_int(const char *tensor, const char *descr, const std::vector<long long> &got)
{
    check c;
    c.tensor = tensor;
    try {
        npy_array e = parse_npy(file_path(tensor), read_checked(file_path(tensor)));
        if (e.descr != descr || e.count != got.size())
            throw fail(e.path, "holds " + std::to_string(e.count) + " " + e.descr + " values, the kernel produced " +
                                   std::to_string(got.size()) + " " + descr);
        int bytes = (int)e.elem_size;
        for (size_t i = 0; i < got.size(); i++) {
            long long ev = e.elem_size == 4 ? e.i32(i) : (e.descr == "|u1" ? (long long)e.u8(i) : (long long)e.i8(i));
            c.compared++;
            if (ev != got[i]) {
                char msg[512];
                unsigned long long m = bytes == 4 ? 0xffffffffull : 0xffull;
                std::snprintf(msg, sizeof msg, "%s: first mismatch at flat index %zu of %zu: expected 0x%0*llx (%lld), "
                              "got 0x%0*llx (%lld)", e.path.c_str(), i, got.size(), bytes * 2,
                              (unsigned long long)ev & m, ev, bytes * 2, (unsigned long long)got[i] & m, got[i]);
                c.ok = false;
                c.message = msg;
                break;
            }
        }
    } catch (const std::exception &ex) {
        c.ok = false;
        c.message = ex.what();
    }
    checks_.push_back(c);
}

}  // namespace flx_tb
