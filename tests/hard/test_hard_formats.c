/* Issue 10, defect 6: safetensors header errors name the byte offset of the
 * offending entry (the README promises file, field and offset). */
#include "hard_util.h"
#include "flx_safetensors.h"

#include <stdint.h>

static void write_st(const char *path, const char *header, size_t data_bytes)
{
    size_t n = strlen(header);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint64_t len = n;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    cr_assert_eq(fclose(f), 0);
}

Test(hard_formats, safetensors_entry_errors_name_the_offset)
{
    const char *dir = flx_test_tmpdir();
    char *path = flx_path_join(dir, "m.safetensors");
    /* "bad.w" starts at header byte 55, file byte 63 */
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, "
                    "\"bad.w\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    cr_assert_eq(strstr(h, "\"bad.w\"") - h, 55);
    struct { const char *header; const char *want; } c[] = {
        {h, "tensor bad.w (header entry at offset 63): field dtype \"F99\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, \"bad.w\"  :  [1]}",
         "header entry bad.w (header entry at offset 63) is not an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, "
         "\"bad.w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[8,12]}}",
         "tensor bad.w (header entry at offset 63): field shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, "
         "\"bad.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,99]}}",
         "tensor bad.w (header entry at offset 63): field data_offsets [8, 99]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}, \"b\" [1]}",
         "header JSON is malformed near offset 67"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        write_st(path, c[i].header, 16);
        flx_safetensors st;
        flx_error err = {0};
        cr_assert_neq(flx_st_open(&st, path, &err), FLX_OK, "case %zu", i);
        cr_assert(strstr(err.msg, path) && strstr(err.msg, c[i].want), "case %zu: want '%s', got '%s'",
                  i, c[i].want, err.msg);
    }
    free(path);
}
