/* Hardening regressions of issue 10 that run the flxemu program: a bad line
 * late in a big token file (use-after-free), write errors on stdout, numbers
 * in .kld errors, and messages for folders, devices and FIFOs. */
#include "hard_util.h"

#include <stdint.h>
#include <sys/stat.h>

/* 1. The message quoting a bad line of a --tokens file was formatted after
 * the file's buffer was freed: garbage, and SIGSEGV once the buffer is big
 * enough (>128 KiB) for free() to unmap it. */
Test(hard_cli, tokens_file_bad_line_late_is_quoted)
{
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ids.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 40000; i++) fprintf(f, "%d\n", i % 200);
    fprintf(f, "  12x34-bad-token-line\r\n7\n");
    cr_assert_eq(fclose(f), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_gt(st.st_size, 128 * 1024);
    const char *cmds[] = {"ppl", "generate -n 1"};
    for (int c = 0; c < 2; c++) {
        hard_run r = hard_sh("%s %s --tokens %s >/dev/null", flx_test_bin(), cmds[c], path);
        cr_assert_eq(r.status, 1, "%s: status %d: %s", cmds[c], r.status, r.err);
        char want[700];
        snprintf(want, sizeof want,
                 "%s: line 40001: '12x34-bad-token-line' is not a token id in [0, 258)", path);
        cr_assert(strstr(r.err, want), "%s: %s", cmds[c], r.err);
    }
}

/* 3. A command whose stdout cannot be written fails with exit 1. */
Test(hard_cli, stdout_write_errors_fail)
{
    struct stat st;
    cr_assert_eq(stat("/dev/full", &st), 0, "/dev/full is needed");
    const char *gguf = strdup(flx_test_data("tiny-llama3-random.gguf"));
    char info[1024];
    snprintf(info, sizeof info, "info --model %s", gguf);
    const char *cmds[] = {"--help", "ppl --help", "ppl", "generate -n 3", "perf", info,
                          "tokenize --help"};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        hard_run r = hard_sh("%s %s >/dev/full", flx_test_bin(), cmds[c]);
        cr_assert_eq(r.status, 1, "'%s' > /dev/full: status %d: %s", cmds[c], r.status, r.err);
        cr_assert(strstr(r.err, "<stdout>: write error"), "'%s': %s", cmds[c], r.err);
        /* and the same command succeeds when stdout works */
        r = hard_sh("%s %s >/dev/null", flx_test_bin(), cmds[c]);
        cr_assert_eq(r.status, 0, "'%s': status %d: %s", cmds[c], r.status, r.err);
    }
    free((void *)gguf);
}

static void kld_header(uint8_t *h, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk)
{
    memcpy(h, "_logits_", 8);
    memcpy(h + 8, &n_ctx, 4);
    memcpy(h + 12, &n_vocab, 4);
    memcpy(h + 16, &n_chunk, 4);
}

/* 4. .kld errors quoted header fields after the base was closed (zeroed):
 * "0 chunks of 0 tokens do not fit". */
Test(hard_cli, kld_errors_quote_the_header)
{
    const char *dir = flx_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/base.kld", dir);
    uint8_t buf[4096];
    memset(buf, 0, sizeof buf);
    /* 1000 chunks of 64 tokens need 256,020 bytes of header and tokens */
    kld_header(buf, 64, 258, 1000);
    hard_write(path, buf, 100);
    hard_run r = hard_sh("%s ppl --kl-base %s >/dev/null", flx_test_bin(), path);
    cr_assert_eq(r.status, 1, "%d %s", r.status, r.err);
    cr_assert(strstr(r.err, "1000 chunks of 64 tokens do not fit in the file (100 bytes)"), "%s", r.err);
    /* tokens fit, records do not: 2 chunks of 8 tokens, 10 bytes of records */
    kld_header(buf, 8, 258, 2);
    hard_write(path, buf, 20 + 2 * 8 * 4 + 10);
    r = hard_sh("%s ppl --kl-base %s >/dev/null", flx_test_bin(), path);
    cr_assert_eq(r.status, 1, "%d %s", r.status, r.err);
    cr_assert(strstr(r.err, "10 bytes of records after offset 84 are not 2 chunks of 7 (hf) or 3 "
                            "(llamacpp) records of 524 bytes"), "%s", r.err);
}

/* 6. Folders, devices and FIFOs given as input files are named for what they
 * are, not as "size 9223372036854775807 bytes exceeds the limit" or "no such
 * file or folder"; a model file given as --config is "not a configuration
 * file"; a manifest entry ".." is refused as a file name. */
Test(hard_cli, messages_name_what_the_path_is)
{
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0666), 0);
    char *gguf = strdup(flx_test_data("tiny-llama3-random.gguf"));
    struct { char cmd[1024]; const char *want; } c[8];
    int n = 0;
    snprintf(c[n].cmd, sizeof c[n].cmd, "ppl --file %s", dir);
    c[n++].want = ": is a directory";
    snprintf(c[n].cmd, sizeof c[n].cmd, "tokenize --tokenizer %s", dir);
    c[n++].want = ": is a directory";
    snprintf(c[n].cmd, sizeof c[n].cmd, "perf --config %s", gguf);
    c[n++].want = ": not a configuration file (24483424 bytes";
    snprintf(c[n].cmd, sizeof c[n].cmd, "perf --config %s", dir);
    c[n++].want = ": is a directory";
    snprintf(c[n].cmd, sizeof c[n].cmd, "ppl --model /dev/zero");
    c[n++].want = "/dev/zero: a character device, not a regular file or folder";
    snprintf(c[n].cmd, sizeof c[n].cmd, "info --model %s", fifo);
    c[n++].want = "/fifo: a FIFO, not a regular file or folder";
    snprintf(c[n].cmd, sizeof c[n].cmd, "ppl --engine emu --model %s", fifo);
    c[n++].want = "/fifo: a FIFO, not a regular file or folder";
    snprintf(c[n].cmd, sizeof c[n].cmd, "ppl --file /dev/zero");
    c[n++].want = "/dev/zero: not a regular file";
    for (int i = 0; i < n; i++) {
        hard_run r = hard_sh("%s %s </dev/null >/dev/null", bin, c[i].cmd);
        cr_assert_eq(r.status, 1, "%s: %d %s", c[i].cmd, r.status, r.err);
        cr_assert(strstr(r.err, c[i].want), "%s: want '%s', got: %s", c[i].cmd, c[i].want, r.err);
        cr_assert(!strstr(r.err, "9223372036854775807"), "%s", r.err);
    }
    /* a golden manifest whose entry is ".." */
    char gdir[600];
    snprintf(gdir, sizeof gdir, "%s/golden", dir);
    hard_run r = hard_sh("%s golden --kernel rmsnorm_pref --out %s >/dev/null", bin, gdir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char man[700];
    snprintf(man, sizeof man, "%s/manifest.json", gdir);
    char *text = hard_slurp(man);
    cr_assert_not_null(text);
    char *f = strstr(text, "\"file\":");
    cr_assert_not_null(f, "%.300s", text);
    char *q1 = strchr(f + 7, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
    cr_assert(q1 && q2);
    /* replace the first file name by ".." */
    size_t head = (size_t)(q1 + 1 - text);
    char *edited = malloc(strlen(text) + 8);
    memcpy(edited, text, head);
    strcpy(edited + head, "..");
    strcat(edited, q2);
    hard_write(man, edited, strlen(edited));
    r = hard_sh("%s golden --check %s >/dev/null", bin, gdir);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "file entry '..' is not a file name"), "%s", r.err);
    free(edited), free(text), free(gguf);
}
