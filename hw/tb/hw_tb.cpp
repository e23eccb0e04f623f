// hw_tb -- C simulation of the FlexLLM HLS kernels against the golden vectors
// of `flxemu golden`: every output compared bit for bit, the first mismatch
// printed (flat index, expected and got as hex bits), like `golden --check`.
//
//   hw_tb [--kernel NAME]... [--list] DIR
// Exit 0 when every kernel matches, 1 on any mismatch or bad file, 2 on a
// usage error.
#include "tb_kernels.h"

#include <cstdio>
#include <cstring>

static void usage(FILE *f)
{
    std::fprintf(f,
                 "usage: hw_tb [--kernel NAME]... [--strict] DIR\n"
                 "       hw_tb --list\n"
                 "\n"
                 "Runs the HLS kernels of hw/kernels in C simulation on the golden vectors in DIR\n"
                 "(written by `flxemu golden --kernel all --out DIR`; use --exp flx for the\n"
                 "flx-exp kernels, or the default glibc for std::exp) and compares every output\n"
                 "bit for bit.  Without --kernel, every kernel listed in DIR/manifest.json; a\n"
                 "golden kernel without an HLS testbench is reported as SKIP (a FAIL with\n"
                 "--strict or when named with --kernel).\n"
                 "Exit status: 0 all match, 1 a mismatch or unreadable file, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    std::vector<std::string> only;
    const char *dir = nullptr;
    bool strict = false;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!std::strcmp(argv[i], "--list")) {
            for (const flx_tb::tb_entry &e : flx_tb::testbenches()) std::printf("%-16s %s\n", e.kernel, e.hls);
            return 0;
        } else if (!std::strcmp(argv[i], "--strict")) {
            strict = true;
        } else if (!std::strcmp(argv[i], "--kernel")) {
            if (i + 1 >= argc) { std::fprintf(stderr, "hw_tb: --kernel needs a value\n"); return 2; }
            only.push_back(argv[++i]);
        } else if (argv[i][0] == '-') {
            std::fprintf(stderr, "hw_tb: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (dir) {
            std::fprintf(stderr, "hw_tb: one golden folder only ('%s' and '%s')\n", dir, argv[i]);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    flx_tb::manifest m;
    try {
        m = flx_tb::load_manifest(dir);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hw_tb: %s\n", e.what());
        return 1;
    }
    std::vector<std::string> run = only.empty() ? m.kernels : only;
    int n_fail = 0, n_skip = 0;
    for (const std::string &k : run) {
        bool listed = false, has_tb = false;
        for (const std::string &mk : m.kernels) listed = listed || mk == k;
        for (const flx_tb::tb_entry &e : flx_tb::testbenches()) has_tb = has_tb || k == e.kernel;
        if (listed && !has_tb && only.empty() && !strict) {
            std::printf("SKIP %-16s no HLS testbench for this golden kernel\n", k.c_str());
            n_skip++;
            continue;
        }
        flx_tb::kernel_result r;
        r.kernel = k;
        if (!listed) r.message = "kernel '" + k + "' is not in " + std::string(dir) + "/manifest.json";
        else r = flx_tb::run_kernel(m, k);
        for (const std::string &n : r.notes) std::printf("note: %s\n", n.c_str());
        if (r.ok) {
            std::printf("PASS %-16s %zu values bit-exact\n", k.c_str(), r.compared);
        } else {
            std::printf("FAIL %-16s %s\n", k.c_str(), r.message.c_str());
            n_fail++;
        }
    }
    std::printf("hw_tb: %zu kernels, %zu passed, %d failed, %d skipped (%s, exp=%s)\n", run.size(),
                run.size() - n_fail - n_skip, n_fail, n_skip, dir, m.exp.c_str());
    return n_fail ? 1 : 0;
}
