// HMT's HLS twin (hw/kernels/hmt.h) on the golden vectors of one whole
// segment step (`flxemu golden --layer hmt`): retrieval on a full 64-slot
// ring, then the update that overwrites slot 70 mod 64, bit for bit with both
// exponentials; a flipped bit of the golden P is reported.
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

Test(hw_hmt, layer_hmt_csim_matches_golden)
{
    std::string base = flx_test_tmpdir();
    for (const char *exp : {"glibc", "flx"}) {
        std::string dir = base + "/" + exp;
        std::string cmd = std::string("'") + flx_test_bin() + "' golden --layer hmt --exp " + exp + " --out '" +
                          dir + "' 2>/dev/null";
        cr_assert_eq(sh(cmd), 0, "%s", cmd.c_str());
        flx_tb::kernel_result r = run_layer(dir);
        cr_expect(r.ok, "%s: %s", exp, r.message.c_str());
        // q 2048 + a 64 + p 2048, then k 2048 + both rings 2 x 64 x 2048
        cr_expect_eq(r.compared, 2048u + 64u + 2048u + 2048u + 2u * 64u * 2048u, "%s: %zu", exp, r.compared);
    }
    // one flipped bit of the golden Pn is a mismatch naming the tensor
    std::string dir = base + "/flx";
    cr_assert_eq(sh("python3 -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); "
                    "b[len(b)-4*100] ^= 1; open(p,'wb').write(b)\" '" + dir + "/layer_hmt/p.npy'"), 0);
    flx_tb::kernel_result r = run_layer(dir);
    cr_expect(!r.ok && r.message.find("p.npy") != std::string::npos, "%s", r.message.c_str());
    sh("rm -rf '" + base + "'");
}
