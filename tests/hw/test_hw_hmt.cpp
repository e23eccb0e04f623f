// HMT's HLS twin (hw/kernels/hmt.h, hmt_control.h) on the golden vectors of
// `flxemu golden --layer hmt`: layer_hmt (retrieval on a full 64-slot ring,
// then the update that overwrites slot 70 mod 64, U280 size) and
// layer_hmt_segment (whole segment steps through hmt_segment_step: both
// loaders, Sn, retrieval, Mn, ring update; segments 0..3 from reset and 70,
// 71 on a full ring, tiny shape), bit for bit with
// both exponentials; a flipped golden bit is reported; hw_tb runs both.
#include "test_util.h"

#include "../../hw/tb/tb_hmt.h"

#include <sys/wait.h>

#include <string>

static int sh(const std::string &cmd)
{
    int st = std::system(cmd.c_str());
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static flx_tb::kernel_result run_layer(const std::string &dir)
{
    flx_tb::manifest m = flx_tb::load_manifest(dir);
    flx_tb::tb_ctx c(m, "layer_hmt");
    flx_tb::kernel_result r;
    try {
        flx_tb::tb_layer_hmt(c);
        r.ok = !c.checks().empty();
        for (const flx_tb::check &k : c.checks()) {
            r.compared += k.compared;
            if (!k.ok && r.ok) {
                r.ok = false;
                r.message = k.message;
            }
        }
    } catch (const std::exception &e) {
        r.message = e.what();
    }
    return r;
}

// One golden set per exponential (`--layer hmt` writes both kernels), each
// csim run once: C simulation is the slow part of this suite.
Test(hw_hmt, layer_hmt_and_segment_steps_match_golden)
{
    std::string base = flx_test_tmpdir();
    const char *tb = std::getenv("FLXEMU_HW_TB");
    cr_assert(tb && *tb, "FLXEMU_HW_TB is not set");
    for (const char *exp : {"glibc", "flx"}) {
        std::string dir = base + "/" + exp;
        std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer hmt --exp " + exp + " --out '" +
                          dir + "' 2>/dev/null";
        cr_assert_eq(sh(cmd), 0, "%s", cmd.c_str());
        flx_tb::manifest m = flx_tb::load_manifest(dir);
        cr_assert_eq(m.kernels.size(), 2u, "--layer hmt writes layer_hmt and layer_hmt_segment");
        flx_tb::kernel_result r = run_layer(dir);
        cr_expect(r.ok, "%s: %s", exp, r.message.c_str());
        // q 2048 + a 64 + p 2048, then k 2048 + both rings 2 x 64 x 2048
        cr_expect_eq(r.compared, 2048u + 64u + 2048u + 2048u + 2u * 64u * 2048u, "%s: %zu", exp, r.compared);
        r = flx_tb::run_kernel(m, "layer_hmt_segment");
        cr_expect(r.ok, "%s: %s", exp, r.message.c_str());
        cr_expect(r.notes.empty());
        // per step the ring after it (64x64 + 64x32 + 64 filled) and x1 (16x64), p 64; segment 0 adds
        // m 64, k 32; segments 1..3 and 70 add x0 8x64, s 64, q 32, a 64, m 64, k 32; segment 71 (last)
        // adds x0, s, q, a
        const size_t ring = 4096 + 2048 + 64, common = ring + 1024 + 64, recall = 512 + 64 + 32 + 64, upd = 64 + 32;
        cr_expect_eq(r.compared, (common + upd) + 4 * (common + recall + upd) + (common + recall), "%s: %zu", exp,
                     r.compared);
        // the command-line testbench: the segment steps by name
        cr_expect_eq(sh(std::string("'") + tb + "' --kernel layer_hmt_segment '" + dir + "' >/dev/null"), 0);
    }
    // hw_tb on the whole set (both kernels)
    std::string dir = base + "/flx";
    cr_expect_eq(sh(std::string("'") + tb + "' '" + dir + "' >/dev/null"), 0);
    // one flipped bit of the golden Pn is a mismatch naming the tensor
    cr_assert_eq(sh("python3 -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); "
                    "b[len(b)-4*100] ^= 1; open(p,'wb').write(b)\" '" + dir + "/layer_hmt/p.npy'"), 0);
    flx_tb::kernel_result r = run_layer(dir);
    cr_expect(!r.ok && r.message.find("p.npy") != std::string::npos, "%s", r.message.c_str());
    // a flipped bit in segment 70's stage-1 loader rows (row 5 = the first
    // segment token) is a mismatch naming s70_x1, and hw_tb exits 1
    cr_assert_eq(sh("python3 -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); "
                    "b[len(b)-4*(11*64)] ^= 1; open(p,'wb').write(b)\" '" + dir + "/layer_hmt_segment/s70_x1.npy'"), 0);
    r = flx_tb::run_kernel(flx_tb::load_manifest(dir), "layer_hmt_segment");
    cr_expect(!r.ok && r.message.find("s70_x1.npy") != std::string::npos, "%s", r.message.c_str());
    cr_expect_eq(sh(std::string("'") + tb + "' --kernel layer_hmt_segment '" + dir + "' >/dev/null"), 1);
    sh("rm -rf '" + base + "'");
}
