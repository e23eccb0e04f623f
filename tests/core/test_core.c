/* core: checksums, half conversions, thread pool, atomic output files. */
#include "flx_core.h"
#include "test_util.h"

#include <math.h>
#include <unistd.h>

Test(core, sha256_known_vectors)
{
    char hex[65];
    flx_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    flx_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* 1,000,000 x 'a' in uneven pieces exercises the streaming path */
    flx_sha256 ctx;
    flx_sha256_init(&ctx);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        flx_sha256_update(&ctx, a, n);
        left -= n;
    }
    uint8_t d[32];
    flx_sha256_final(&ctx, d);
    cr_assert_eq(d[0], 0xcd);
    cr_assert_eq(d[1], 0xc7);
    cr_assert_eq(d[31], 0xd0);
}

Test(core, crc32_matches_zlib_check_value)
{
    cr_assert_eq(flx_crc32(0, "123456789", 9), 0xCBF43926u);
}

Test(core, bf16_round_to_nearest_even)
{
    cr_assert_eq(flx_f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 is a tie between 0x3f80 and 0x3f81: even wins */
    cr_assert_eq(flx_f32_to_bf16(1.00390625f), 0x3f80);
    /* 1 + 3*2^-8 is a tie between 0x3f81 and 0x3f82: even wins */
    cr_assert_eq(flx_f32_to_bf16(1.01171875f), 0x3f82);
    cr_assert_eq(flx_bf16_to_f32(0xc000), -2.0f);
    cr_assert(isnan(flx_bf16_to_f32(flx_f32_to_bf16(NAN))));
}

Test(core, f16_conversions_round_trip_and_round)
{
    cr_assert_eq(flx_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(flx_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(flx_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(flx_f32_to_f16(65520.0f), 0x7c00);          /* rounds up to inf */
    cr_assert_eq(flx_f32_to_f16(0x1.0p-24f), 0x0001);         /* smallest subnormal */
    cr_assert_eq(flx_f32_to_f16(0x1.0p-25f), 0x0000);         /* tie to even: 0 */
    cr_assert_eq(flx_f32_to_f16(0x1.8p-25f), 0x0001);
    cr_assert_eq(flx_f32_to_f16(1.0f + 0x1.0p-11f), 0x3c00);  /* tie to even */
    cr_assert_eq(flx_f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01);  /* 0.75 ulp: up */
    cr_assert_eq(flx_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02);  /* 1.5 ulp tie: even */
    /* every finite half survives half -> float -> half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;   /* NaN */
        cr_assert_eq(flx_f32_to_f16(flx_f16_to_f32((uint16_t)h)), h, "half 0x%04x", h);
    }
}

typedef struct { double *out; } square_ctx;

static void square_range(void *ctx, int64_t b, int64_t e, int tid)
{
    (void)tid;
    double *out = ((square_ctx *)ctx)->out;
    for (int64_t i = b; i < e; i++) out[i] = sqrt((double)i) * (double)i;
}

Test(core, pool_covers_every_index_once_for_any_thread_count)
{
    enum { N = 100003 };
    static double ref[N], got[N];
    square_ctx c = {ref};
    flx_pool_for(NULL, N, 7, square_range, &c);
    for (int t = 1; t <= 4; t++) {
        flx_pool *p = flx_pool_create(t);
        cr_assert_eq(flx_pool_threads(p), t);
        memset(got, 0, sizeof got);
        c.out = got;
        for (int rep = 0; rep < 3; rep++) flx_pool_for(p, N, 1000, square_range, &c);
        cr_assert_eq(memcmp(ref, got, sizeof got), 0);
        flx_pool_free(p);
    }
}

Test(core, outfile_appears_only_on_commit)
{
    const char *dir = flx_test_tmpdir();
    char *path = flx_path_join(dir, "out.txt");
    flx_outfile o;
    flx_error err = {0};
    cr_assert_eq(flx_outfile_open(&o, path, &err), FLX_OK);
    fputs("partial", o.fp);
    cr_assert_not(flx_file_exists(path));
    flx_outfile_abort(&o);
    cr_assert_not(flx_file_exists(path));
    cr_assert_eq(flx_outfile_open(&o, path, &err), FLX_OK);
    fputs("whole", o.fp);
    cr_assert_eq(flx_outfile_commit(&o, &err), FLX_OK);
    char *text = NULL;
    size_t n = 0;
    cr_assert_eq(flx_read_file(path, 100, &text, &n, &err), FLX_OK);
    cr_assert_str_eq(text, "whole");
    free(text);
    /* a size limit is enforced with a message naming the file */
    cr_assert_eq(flx_read_file(path, 2, &text, &n, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, path) != NULL);
    unlink(path);
    rmdir(dir);
    free(path);
}

Test(core, map_file_reports_missing_path)
{
    flx_mapped_file f;
    flx_error err = {0};
    cr_assert_eq(flx_map_file(&f, "/nonexistent/flxemu.bin", &err), FLX_EIO);
    cr_assert(strstr(err.msg, "/nonexistent/flxemu.bin") != NULL);
}

Test(core, rng_is_reproducible)
{
    flx_rng a, b;
    flx_rng_seed(&a, 42);
    flx_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) cr_assert_eq(flx_rng_u64(&a), flx_rng_u64(&b));
    flx_rng_seed(&a, 7);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 20000; i++) {
        double x = flx_rng_normal(&a);
        sum += x;
        sum2 += x * x;
    }
    cr_assert(fabs(sum / 20000) < 0.05);
    cr_assert(fabs(sum2 / 20000 - 1.0) < 0.05);
}
