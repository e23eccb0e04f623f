/* flxemu golden: write/check round trips, corruption detection, usage errors. */
#include "flx_emu.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>
#include <zlib.h>

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(emu_golden, round_trip_plain_and_gzip)
{
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s golden --kernel all --out %s/g --seed 5 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/g 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "files match") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --kernel softmax_dec --out %s/z --gzip --exp flx --ftz 2>&1",
             flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s/z/softmax_dec/p.npy.gz", tmp);
    cr_assert(flx_file_exists(cmd));
    snprintf(cmd, sizeof cmd, "%s golden --check %s/z 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "2 files match") != NULL, "%s", out);
    /* the library's view: same result, file count */
    snprintf(cmd, sizeof cmd, "%s/g", tmp);
    int64_t n = 0;
    flx_error err = { 0 };
    cr_assert_eq(flx_emu_golden_check(cmd, &n, &err), FLX_OK, "%s", err.msg);
    cr_assert_gt(n, 60);
}

Test(emu_golden, npy_header_and_values)
{
    const char *tmp = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/g", tmp);
    flx_emu_golden_opts o = { 3, { FLX_EMU_EXP_GLIBC, 0 }, 0, 0, 0 };
    flx_error err = { 0 };
    cr_assert_eq(flx_emu_golden_write(path, "quant_asym_dec", "u280", &o, &err), FLX_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/g/quant_asym_dec/x.npy", tmp);
    char *data;
    size_t n;
    cr_assert_eq(flx_read_file(path, 1 << 20, &data, &n, &err), FLX_OK);
    cr_assert_eq(memcmp(data, "\x93NUMPY\x01\x00", 8), 0);
    size_t hl = (uint8_t)data[8] | ((size_t)(uint8_t)data[9] << 8);
    cr_assert_eq((10 + hl) % 64, 0);
    cr_assert(strstr(data + 10, "'descr': '<f4'") != NULL);
    cr_assert(strstr(data + 10, "'shape': (2048,)") != NULL);
    cr_assert_eq(n, 10 + hl + 2048 * 4);
    /* q must equal the emulator's quantization of x, as bytes 0..15 */
    float *x = (float *)(data + 10 + hl);
    int8_t q[2048];
    float s, b;
    flx_emu_quant_asym(q, &s, &b, x, 1, 2048, 4, &o.fp);
    snprintf(path, sizeof path, "%s/g/quant_asym_dec/q.npy", tmp);
    char *qd;
    size_t qn;
    cr_assert_eq(flx_read_file(path, 1 << 20, &qd, &qn, &err), FLX_OK);
    const uint8_t *qv = (const uint8_t *)qd + qn - 2048;
    for (int i = 0; i < 2048; i++) cr_assert_eq(qv[i], (uint8_t)(q[i] & 15));
    /* the stream file: beat k lane i = element i*128 + k */
    snprintf(path, sizeof path, "%s/g/quant_asym_dec/x.stream.npy", tmp);
    char *sd;
    size_t sn;
    cr_assert_eq(flx_read_file(path, 1 << 20, &sd, &sn, &err), FLX_OK);
    cr_assert(strstr(sd + 10, "'shape': (128, 16)") != NULL);
    const float *sv = (const float *)(sd + sn - 2048 * 4);
    cr_assert_eq(sv[5 * 16 + 3], x[3 * 128 + 5]);
    free(data); free(qd); free(sd);
}

Test(emu_golden, corruption_is_reported_with_the_file_name)
{
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192], path[512];
    snprintf(cmd, sizeof cmd, "%s golden --kernel fht_dec --out %s/g 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(path, sizeof path, "%s/g/fht_dec/y.npy", tmp);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 200, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/g 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "fht_dec/y.npy") != NULL && strstr(out, "CRC32") != NULL, "%s", out);
}

/* the names kernels had before docs/kernels.md §17 */
Test(emu_golden, former_names_are_aliases_with_the_same_vectors)
{
    static const char *pairs[][2] = {
        { "gemv_i4_dec", "gemm_i4_dec" }, { "qk_i8", "qk_i8_pref" }, { "av_u8i8", "av_u8i8_pref" },
        { "dequant_static", "dequant_static_pref" }, { "rope", "rope_pref" },
        { "silu_gate", "silu_gate_dec" }, { "fht", "fht_dec" }, { "gemv_f32", "gemv_f32_dec" },
        { "residual", "residual_dec" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cr_assert_str_eq(flx_emu_golden_kernel_find(pairs[i][0]), pairs[i][1]);
        cr_assert_str_eq(flx_emu_golden_kernel_find(pairs[i][1]), pairs[i][1]);
    }
    cr_assert_null(flx_emu_golden_kernel_find("nosuch"));
    cr_assert_null(flx_emu_golden_kernel_find("layer_prefill"));   /* --layer only */
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192], a[512], b[512];
    snprintf(cmd, sizeof cmd, "%s golden --kernel rope --out %s/old 2>/dev/null", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --kernel rope_pref --out %s/new 2>/dev/null", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    const char *files[] = { "x.npy", "sin.npy", "cos.npy", "y.npy", "y.stream.npy" };
    for (size_t i = 0; i < 5; i++) {
        snprintf(a, sizeof a, "%s/old/rope_pref/%s", tmp, files[i]);
        snprintf(b, sizeof b, "%s/new/rope_pref/%s", tmp, files[i]);
        char *da, *db;
        size_t na, nb;
        flx_error err = { 0 };
        cr_assert_eq(flx_read_file(a, 1 << 24, &da, &na, &err), FLX_OK, "%s", err.msg);
        cr_assert_eq(flx_read_file(b, 1 << 24, &db, &nb, &err), FLX_OK, "%s", err.msg);
        cr_assert(na == nb && memcmp(da, db, na) == 0, "%s differs", files[i]);
        free(da); free(db);
    }
    /* a set written before the renaming: folder and manifest say "rope" */
    snprintf(cmd, sizeof cmd, "cd %s/old && mv rope_pref rope && sed -i 's/\"rope_pref\"/\"rope\"/' manifest.json "
             "&& grep -q '\"kernel\":[[:space:]]*\"rope\"' manifest.json", tmp);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/old 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    /* and the check reads that folder */
    snprintf(a, sizeof a, "%s/old/rope/x.npy", tmp);
    FILE *f = fopen(a, "r+b");
    cr_assert_not_null(f);
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    cr_assert_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "rope/x.npy") != NULL, "%s", out);
}

Test(emu_golden, layer_prefill_round_trip, .timeout = 120)
{
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s golden --layer prefill --out %s/l --gzip 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/l 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "71 files match") != NULL, "%s", out);   /* with the intermediates */
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    cr_assert_eq(system(cmd), 0);
}

/* a later prefill call: --pos0 32 --n-tokens 13 (a padded last call after
 * two 16-row calls) writes the cache rows to preload, states the call in
 * the manifest, and --check re-runs it from the manifest's call */
Test(emu_golden, layer_prefill_later_call_round_trip, .timeout = 120)
{
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192], path[512];
    snprintf(cmd, sizeof cmd, "%s golden --layer prefill --pos0 32 --n-tokens 13 --out %s/l 2>&1",
             flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/l 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "73 files match") != NULL, "%s", out);   /* + k8_cache, v8_cache */
    snprintf(path, sizeof path, "%s/l/manifest.json", tmp);
    char *man = NULL;
    size_t n = 0;
    flx_error err = { 0 };
    cr_assert_eq(flx_read_file(path, 1 << 24, &man, &n, &err), FLX_OK, "%s", err.msg);
    cr_assert(strstr(man, "\"pos0\":\t32") && strstr(man, "\"tokens\":\t13") && strstr(man, "\"rows\":\t16") &&
              strstr(man, "\"seq_len\":\t48"), "%s", man);
    cr_assert(strstr(man, "\"cache_rows_preloaded\":\t[0, 32]") && strstr(man, "\"token_positions\":\t[32, 45]"),
              "%s", man);
    cr_assert(strstr(man, "\"file\":\t\"k8_cache.npy\"") && strstr(man, "\"shape\":\t[32, 512]"), "%s", man);
    free(man);
    /* a changed preloaded cache row is found by the check */
    snprintf(path, sizeof path, "%s/l/layer_prefill/v8_cache.npy", tmp);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    unsigned char h[10];
    cr_assert_eq(fread(h, 1, 10, f), 10u);
    long off = 10 + (h[8] | (long)h[9] << 8) + 5 * 512 + 7;     /* row 5 */
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s golden --check %s/l 2>&1", flx_test_bin(), tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "v8_cache.npy") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    cr_assert_eq(system(cmd), 0);
}

Test(emu_golden, usage_errors)
{
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s golden --layer prefill --pos0 24 --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "multiples of 16") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --layer prefill --pos0 2032 --n-tokens 17 --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --layer decode --n-tokens 4 --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--layer prefill") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --layer decode --pos0 48 --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "multiple of 32") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --kernel fht_dec --pos0 16 --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --layer middle --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --layer prefill --kernel fht_dec --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --kernel nosuch --out /tmp/x 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "nosuch") != NULL);
    snprintf(cmd, sizeof cmd, "%s golden --kernel fht_dec --out /tmp/x --config v80 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s golden --help", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 0);
    cr_assert(strstr(out, "topk_sampling") != NULL);
    snprintf(cmd, sizeof cmd, "%s golden --check /nonexistent/dir 2>&1", flx_test_bin());
    cr_assert_eq(run(cmd, out, sizeof out), 1, "%s", out);
}

/* Found with tests/fuzz/fuzz_golden: a .npy.gz file was inflated in full
 * (buffer doubling up to 2 GiB) before its size was compared with the 276
 * bytes the emulator writes, so 5 MB of gzip made `golden --check` take
 * 2.2 GB.  The check now inflates at most the expected size plus one byte.
 * The test builds a 64 MiB bomb, gives it a matching CRC32 (the checksum is
 * not a secret) and expects the size refusal without inflating it. */
Test(emu_golden, gzip_bomb_is_refused_at_the_expected_size)
{
    const char *tmp = flx_test_tmpdir();
    char cmd[1024], out[8192], path[512];
    snprintf(cmd, sizeof cmd, "%s golden --kernel softmax_dec --gzip --out %s/b 2>&1", flx_test_bin(),
             tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(path, sizeof path, "%s/b/softmax_dec/p.npy.gz", tmp);
    gzFile g = gzopen(path, "wb1");
    cr_assert_not_null(g);
    static uint8_t zeros[1 << 16];
    for (int i = 0; i < 1024; i++) cr_assert_eq(gzwrite(g, zeros, sizeof zeros), (int)sizeof zeros);
    cr_assert_eq(gzclose(g), Z_OK);
    char *gz = NULL, *man = NULL;
    size_t gz_bytes = 0, man_bytes = 0;
    flx_error err = {0};
    cr_assert_eq(flx_read_file(path, 1 << 26, &gz, &gz_bytes, &err), FLX_OK, "%s", err.msg);
    char mpath[512];
    snprintf(mpath, sizeof mpath, "%s/b/manifest.json", tmp);
    cr_assert_eq(flx_read_file(mpath, 1 << 20, &man, &man_bytes, &err), FLX_OK, "%s", err.msg);
    cJSON *m = cJSON_Parse(man);
    cJSON *files = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "kernels"), 0), "files");
    cJSON *f;
    int patched = 0;
    cJSON_ArrayForEach(f, files) {
        if (strcmp(cJSON_GetObjectItem(f, "file")->valuestring, "p.npy.gz")) continue;
        char crc[16];
        snprintf(crc, sizeof crc, "%08x", (unsigned)flx_crc32(0, gz, gz_bytes));
        cJSON_ReplaceItemInObject(f, "crc32", cJSON_CreateString(crc));
        patched++;
    }
    cr_assert_eq(patched, 1);
    char *text = cJSON_Print(m);
    FILE *fp = fopen(mpath, "wb");
    cr_assert(fp && fputs(text, fp) >= 0 && fclose(fp) == 0);
    free(text);
    cJSON_Delete(m);
    free(man);
    free(gz);
    int64_t n = 0;
    snprintf(cmd, sizeof cmd, "%s/b", tmp);
    cr_assert_eq(flx_emu_golden_check(cmd, &n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "p.npy.gz") && strstr(err.msg, "more than 276 bytes, expected 276"),
              "%s", err.msg);
}
