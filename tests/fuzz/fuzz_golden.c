/* libFuzzer target: golden-vector sets (manifest.json + .npy / .npy.gz).
 * Input: a flag byte, then manifest.json and the files of the manifest's
 * first kernel, separated by FUZZ_SEP lines; part i+1 becomes
 * <kernel>/<name of the manifest's i-th file>.  With flag bit 0 set the
 * harness writes each part's true CRC32 into the manifest, so the fuzzer
 * also reaches the content comparison behind the checksum gate.  Manifests
 * naming the whole-layer sets (layer_prefill / layer_decode, ~4 s per check
 * under ASan) are skipped: they run the same checking code. */
#include <zlib.h>
#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "flx_emu.h"

static int safe_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    return strchr(s, '/') == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int fix_crc = data[0] & 1;
    fuzz_part parts[12];
    int n = fuzz_split(data + 1, size - 1, parts, 12);
    if (memmem(parts[0].data, parts[0].size, "layer_", 6)) return -1;   /* not kept in the corpus */
    fuzz_reset();
    const uint8_t *man = parts[0].data;
    size_t man_bytes = parts[0].size;
    char *fixed = NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)man, man_bytes);
    const cJSON *ks = cJSON_GetObjectItemCaseSensitive(root, "kernels");
    const cJSON *k0 = cJSON_IsArray(ks) ? cJSON_GetArrayItem(ks, 0) : NULL;
    const cJSON *kn = cJSON_GetObjectItemCaseSensitive(k0, "kernel");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(k0, "files");
    if (cJSON_IsString(kn) && safe_name(kn->valuestring) && cJSON_IsArray(fs)) {
        int i = 1;
        cJSON *f;
        cJSON_ArrayForEach(f, fs) {
            if (i >= n) break;
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "file");
            if (cJSON_IsString(fn) && safe_name(fn->valuestring)) {
                char rel[256];
                snprintf(rel, sizeof rel, "%s/%s", kn->valuestring, fn->valuestring);
                fuzz_write(rel, parts[i].data, parts[i].size);
                if (fix_crc) {
                    char crc[16];
                    snprintf(crc, sizeof crc, "%08x",
                             (unsigned)crc32(0, parts[i].data, (uInt)parts[i].size));
                    cJSON_DeleteItemFromObjectCaseSensitive(f, "crc32");
                    cJSON_AddStringToObject(f, "crc32", crc);
                }
            }
            i++;
        }
        if (fix_crc && (fixed = cJSON_PrintUnformatted(root))) {
            man = (const uint8_t *)fixed;
            man_bytes = strlen(fixed);
        }
    }
    fuzz_write("manifest.json", man, man_bytes);
    cJSON_Delete(root);
    free(fixed);
    int64_t n_files = 0;
    flx_error err = {0};
    fuzz_check_error(flx_emu_golden_check(fuzz_dir(), &n_files, &err), &err);
    return 0;
}
