// main.cpp -- flx_host: runs a .flxq model on the hw/ accelerator (the tops
// in C simulation, or an FPGA card through XRT) and prints the generated
// token ids; the same ids as
//   flxemu generate --engine emu --reference-quirks --exp flx --tokens FILE -n N --seed S
// on the same model (hw/README.md "The host program").
#include "flx_host.h"

#include "flx_core.h"
#include "flx_ppl.h"
#include "flx_qmodel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdexcept>

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: flx_host --model FILE.flxq --tokens FILE [options]\n"
            "\n"
            "Loads a FlexLLM .flxq model (flxemu quantize --recipe flexllm) into the HBM buffers\n"
            "of the hw/ tops, runs the prefill of the prompt but its last token (top_layer_prefill,\n"
            "one call per layer over all its rows), then one decode step per new token\n"
            "(top_layer_decode per layer, top_head_sample: top 5 with a threshold drawn from --seed),\n"
            "and prints the generated ids, one per line.  They equal `flxemu generate --engine emu\n"
            "--reference-quirks --exp flx` on the same model, prompt, -n and --seed.\n"
            "\n"
            "  --model FILE        quantized model (.flxq): Llama-3.2-1B's layer shape, 1..16 layers,\n"
            "                      a vocabulary the head top holds (%u rows in this build)\n"
            "  --tokens FILE       prompt ids, one per line, at least one; prompt + -n at most\n"
            "                      2048 (the caches' and the RoPE table's positions)\n"
            "  -n N                tokens to generate (default 16); stops after EOS\n"
            "  --seed S            sampling seed (default 42, as flxemu generate)\n"
            "  --backend csim|xrt  csim (default): the HLS tops called in software; xrt: the card\n"
            "  --xclbin-prefill F  xrt: the xclbin with top_layer_prefill (hw/link/u280_prefill.cfg)\n"
            "  --xclbin-decode F   xrt: the xclbin with top_layer_decode and top_head_sample\n"
            "  --device I          xrt: device index (default 0)\n"
            "  --prefill-chunk N   prefill in chunks of N rows (a multiple of 16; per chunk one\n"
            "                      top_layer_prefill per layer at pos0 = 0, N, 2N, ...); default:\n"
            "                      the whole prompt in one call per layer.  Same ids either way\n"
            "  --ids FILE          also write all ids (prompt + generated), one per line, as\n"
            "                      flxemu generate --ids does\n"
            "  -h, --help          this help\n"
            "\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n",
            flx_host::shape::vocab);
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "flx_host: %s%s%s\n(flx_host --help for usage)\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static bool parse_u64(const char *s, unsigned long long max, unsigned long long *v)
{
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || x > max) return false;
    *v = x;
    return true;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL, *ids_path = NULL, *backend = "csim";
    const char *xp = NULL, *xd = NULL;
    unsigned long long n_new = 16, seed = 42, device = 0, chunk = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            return 0;
        }
        bool known = !strcmp(f, "--model") || !strcmp(f, "--tokens") || !strcmp(f, "-n") ||
                     !strcmp(f, "--seed") || !strcmp(f, "--backend") || !strcmp(f, "--xclbin-prefill") ||
                     !strcmp(f, "--xclbin-decode") || !strcmp(f, "--device") || !strcmp(f, "--ids") ||
                     !strcmp(f, "--prefill-chunk");
        if (!known) return usage_error("unknown option", f);
        if (!v) return usage_error("a value is missing after", f);
        i++;
        if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "--tokens")) tokens = v;
        else if (!strcmp(f, "--ids")) ids_path = v;
        else if (!strcmp(f, "--backend")) backend = v;
        else if (!strcmp(f, "--xclbin-prefill")) xp = v;
        else if (!strcmp(f, "--xclbin-decode")) xd = v;
        else if (!strcmp(f, "-n")) {
            if (!parse_u64(v, flx_host::shape::max_len, &n_new)) return usage_error("-n expects 0..2048, got", v);
        } else if (!strcmp(f, "--seed")) {
            if (!parse_u64(v, (unsigned long long)INT64_MAX, &seed)) return usage_error("--seed expects 0..2^63-1, got", v);
        } else if (!strcmp(f, "--prefill-chunk")) {
            if (!parse_u64(v, flx_host::shape::max_len, &chunk) || chunk == 0 || chunk % flx_host::shape::pref_align)
                return usage_error("--prefill-chunk expects a multiple of 16 in 16..2048, got", v);
        } else if (!parse_u64(v, 255, &device)) {
            return usage_error("--device expects 0..255, got", v);
        }
    }
    if (!model) return usage_error("--model FILE.flxq is required", NULL);
    if (!tokens) return usage_error("--tokens FILE is required", NULL);
    bool xrt = !strcmp(backend, "xrt");
    if (!xrt && strcmp(backend, "csim")) return usage_error("--backend expects csim or xrt, got", backend);
    if (xrt && (!xp || !xd)) return usage_error("--backend xrt needs --xclbin-prefill and --xclbin-decode", NULL);
    if (!xrt && (xp || xd)) return usage_error("--xclbin-prefill/--xclbin-decode need --backend xrt", NULL);
    if (xrt && !flx_host::have_xrt()) {
        fprintf(stderr, "flx_host: this build has no XRT backend: XRT's headers were not found when it was "
                        "configured (source /opt/xilinx/xrt/setup.sh, then meson setup with -Dxrt=enabled)\n");
        return 1;
    }

    flx_error err = {};
    if (ids_path && flx_outfile_check(ids_path, &err)) {   // before the long run
        fprintf(stderr, "flx_host: %s\n", err.msg);
        return 1;
    }
    flx_qmodel qm;
    memset(&qm, 0, sizeof qm);
    if (flx_qmodel_load(&qm, model, &err)) {
        fprintf(stderr, "flx_host: %s\n", err.msg);
        return 1;
    }
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    if (flx_tokens_read(tokens, qm.cfg.n_vocab, &ids, &n_ids, &err)) {
        fprintf(stderr, "flx_host: %s\n", err.msg);
        flx_qmodel_free(&qm);
        return 1;
    }
    std::vector<int32_t> prompt(ids, ids + n_ids), out;
    free(ids);
    int rc = 0;
    try {
        flx_host::model_image img;
        double t0 = flx_now_seconds();
        std::string why = flx_host::pack_model(qm, img);
        flx_qmodel_free(&qm);
        if (!why.empty()) throw std::runtime_error(std::string(model) + ": " + why);
        std::unique_ptr<flx_host::backend> dev =
            xrt ? flx_host::make_xrt_backend((unsigned)device, xp, xd) : flx_host::make_csim_backend();
        fprintf(stderr, "flx_host: %s backend, %u layers, HBM images packed in %.1f s\n", dev->name(), img.n_layers,
                flx_now_seconds() - t0);
        t0 = flx_now_seconds();
        flx_host::generate(*dev, img, prompt, (unsigned)n_new, seed, out, (unsigned)chunk);
        fprintf(stderr, "flx_host: %zu prompt + %zu new tokens in %.1f s\n", prompt.size(), out.size(),
                flx_now_seconds() - t0);
    } catch (const std::exception &e) {
        fprintf(stderr, "flx_host: %s\n", e.what());
        rc = 1;
    }
    for (size_t i = 0; i < out.size(); i++) printf("%d\n", out[i]);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "flx_host: <stdout>: write error\n");
        return 1;
    }
    if (!rc && ids_path) {
        flx_outfile o;
        if (flx_outfile_open(&o, ids_path, &err)) {
            fprintf(stderr, "flx_host: %s\n", err.msg);
            return 1;
        }
        for (size_t i = 0; i < prompt.size(); i++) fprintf(o.fp, "%d\n", prompt[i]);
        for (size_t i = 0; i < out.size(); i++) fprintf(o.fp, "%d\n", out[i]);
        if (flx_outfile_commit(&o, &err)) {
            fprintf(stderr, "flx_host: %s\n", err.msg);
            return 1;
        }
    }
    return rc;
}
