/* Issue 10, item 9: the resource caps stated in the README, each tested with
 * a crafted input just over it: refused with a message naming the file and
 * the limit, and (for the CLI cases) the peak memory of the refusing flxemu
 * measured with wait4() and bounded.  Big inputs are sparse files, so the
 * tests write little. */
#include "hard_util.h"
#include "flx_safetensors.h"
#include "flx_gguf.h"
#include "flx_tokenizer.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>

/* ASan's shadow memory and quarantine add to every process's peak */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_SLACK_MIB 400
#else
#define RSS_SLACK_MIB 0
#endif

typedef struct capped_run {
    int  status;
    long peak_mib;
    char err[4096];
} capped_run;

/* Runs flxemu with argv (NULL-terminated), stdin from /dev/null. */
static capped_run run_flxemu(const char *const *args)
{
    char errpath[] = "/tmp/flxemu-caps-err-XXXXXX";
    int efd = mkstemp(errpath);
    cr_assert(efd >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDWR);
        dup2(in, 0);
        dup2(in, 1);
        dup2(efd, 2);
        char *argv[16];
        int n = 0;
        argv[n++] = (char *)"flxemu";
        for (; args[n - 1] && n < 15; n++) argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(flx_test_bin(), argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
    close(efd);
    capped_run r;
    memset(&r, 0, sizeof r);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    r.peak_mib = ru.ru_maxrss / 1024;
    char *e = hard_slurp(errpath);
    if (e) snprintf(r.err, sizeof r.err, "%s", e);
    free(e);
    unlink(errpath);
    return r;
}

static void expect_refused(const char *const *args, const char *want, long max_mib)
{
    capped_run r = run_flxemu(args);
    cr_assert_eq(r.status, 1, "%s %s: status %d: %s", args[0], args[1], r.status, r.err);
    cr_assert(strstr(r.err, want), "%s %s: want '%s', got: %s", args[0], args[1], want, r.err);
    cr_assert_leq(r.peak_mib, max_mib + RSS_SLACK_MIB, "%s %s: peak %ld MiB", args[0], args[1], r.peak_mib);
}

static char *sparse(const char *dir, const char *name, off_t bytes)
{
    char *p = flx_path_join(dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, bytes), 0);
    close(fd);
    return p;
}

/* Texts: --file 2 GiB, --tokens, --calib, tokenize --file 1 GiB; the size is
 * checked before anything is read. */
Test(hard_caps, text_sizes)
{
    const char *dir = flx_test_tmpdir();
    char *text = sparse(dir, "text.txt", ((off_t)2 << 30) + 1);
    char *ids = sparse(dir, "ids.txt", ((off_t)1 << 30) + 1);
    const char *a1[] = {"ppl", "--file", text, NULL};
    expect_refused(a1, "exceeds the limit of 2147483648 bytes", 64);
    const char *a2[] = {"ppl", "--tokens", ids, NULL};
    expect_refused(a2, "exceeds the limit of 1073741824 bytes", 64);
    char *tok = strdup(flx_test_data("llama3-tokenizer/tokenizer.json"));
    const char *a3[] = {"tokenize", "--tokenizer", tok, "--file", ids, NULL};
    expect_refused(a3, "exceeds the limit of 1073741824 bytes", 256);
    free(tok);
    free(text), free(ids);
}

/* tokenizer.json: 128 MiB and 8,388,608 JSON values (a parse tree costs
 * ~100 bytes a value: 8.4 M values of ["a","b"] merges peak at ~0.95 GiB). */
Test(hard_caps, tokenizer_json)
{
    const char *dir = flx_test_tmpdir();
    char *big = sparse(dir, "big.json", ((off_t)128 << 20) + 1);
    const char *a1[] = {"tokenize", "--tokenizer", big, NULL};
    expect_refused(a1, "exceeds the limit of 134217728 bytes", 64);
    /* 8,388,609 values in 16 MiB: [0,0,...] */
    char *many = flx_path_join(dir, "many.json");
    FILE *f = fopen(many, "w");
    cr_assert_not_null(f);
    fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[0", f);
    for (int i = 0; i < (8 << 20); i++) fputs(",0", f);
    fputs("]}}", f);
    cr_assert_eq(fclose(f), 0);
    const char *a2[] = {"tokenize", "--tokenizer", many, NULL};
    expect_refused(a2, "JSON values exceed the limit of 8388608", 96);
    free(big), free(many);
}

/* Vocabulary and merges: 2^24 each (tokenizer.json ids stop at 2^22). */
Test(hard_caps, vocabulary_and_merges)
{
    const char *dummy[1] = {"a"};
    flx_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.kind = FLX_TOK_BPE;
    d.tokens = dummy;   /* refused before a single entry is read */
    d.bos_id = d.eos_id = d.unk_id = -1;
    d.n_tokens = FLX_TOK_MAX_VOCAB + 1;
    flx_tokenizer *t = NULL;
    flx_error err = {0};
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "vocabulary size 16777217 is out of range [1, 16777216]"), "%s", err.msg);
    d.n_tokens = 1;
    d.merges = dummy;
    d.n_merges = FLX_TOK_MAX_MERGES + 1;
    cr_assert_eq(flx_tokenizer_create(&t, &d, &err), FLX_EFORMAT);
    cr_assert(strstr(err.msg, "16777217 merges exceed the limit of 16777216"), "%s", err.msg);

    const char *dir = flx_test_tmpdir();
    char *p = flx_path_join(dir, "tok.json");
    const char *j = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4194304},\"merges\":[]}}";
    hard_write(p, j, strlen(j));
    cr_assert_neq(flx_tokenizer_load_json(&t, p, &err), FLX_OK);
    cr_assert(strstr(err.msg, p) && strstr(err.msg, "4194304"), "%s", err.msg);
    free(p);
}

static void le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* GGUF: 65,536 tensors and 65,536 metadata keys, checked before the tables
 * are allocated. */
Test(hard_caps, gguf_counts)
{
    const char *dir = flx_test_tmpdir();
    char *p = flx_path_join(dir, "m.gguf");
    uint8_t h[4096];
    memset(h, 0, sizeof h);
    memcpy(h, "GGUF", 4);
    h[4] = 3;
    le64(h + 8, FLX_GGUF_MAX_TENSORS + 1);
    le64(h + 16, 1);
    hard_write(p, h, sizeof h);
    const char *a[] = {"info", "--model", p, NULL};
    expect_refused(a, "tensor_count 65537 at offset 8 exceeds the limit of 65536", 64);
    le64(h + 8, 1);
    le64(h + 16, FLX_GGUF_MAX_KV + 1);
    hard_write(p, h, sizeof h);
    expect_refused(a, "metadata_kv_count 65537 at offset 16 exceeds the limit of 65536", 64);
    free(p);
}

static char *write_st_header(const char *dir, const char *name, const char *json, size_t n)
{
    char *p = flx_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    uint8_t le[8];
    le64(le, n);
    fwrite(le, 1, 8, f);
    fwrite(json, 1, n, f);
    cr_assert_eq(fclose(f), 0);
    return p;
}

/* safetensors: a 100 MB header (as the format's reference reader), 65,536
 * tensors, 1,048,576 JSON values. */
Test(hard_caps, safetensors_header)
{
    const char *dir = flx_test_tmpdir();
    flx_safetensors st;
    flx_error err = {0};
    char *p = flx_path_join(dir, "long.safetensors");
    uint8_t le[8];
    le64(le, 100000001);
    hard_write(p, le, 8);
    cr_assert_neq(flx_st_open(&st, p, &err), FLX_OK);
    cr_assert(strstr(err.msg, "header length 100000001 at offset 0 exceeds the 100 MB limit"), "%s", err.msg);
    free(p);

    /* 65,537 empty tensors */
    size_t cap = (size_t)80 << 20, n = 0;
    char *j = malloc(cap);
    cr_assert_not_null(j);
    n += (size_t)sprintf(j + n, "{");
    for (int i = 0; i <= FLX_ST_MAX_TENSORS; i++)
        n += (size_t)sprintf(j + n, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                             i ? "," : "", i);
    n += (size_t)sprintf(j + n, "}");
    p = write_st_header(dir, "many.safetensors", j, n);
    cr_assert_neq(flx_st_open(&st, p, &err), FLX_OK);
    cr_assert(strstr(err.msg, "has 65537 tensors, more than the limit of 65536"), "%s", err.msg);
    free(p);

    /* 1,048,577 values in one tensor's shape */
    n = (size_t)sprintf(j, "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,0],\"shape\":[0");
    for (int i = 0; i < (1 << 20); i++) n += (size_t)sprintf(j + n, ",0");
    n += (size_t)sprintf(j + n, "]}}");
    p = write_st_header(dir, "values.safetensors", j, n);
    cr_assert_neq(flx_st_open(&st, p, &err), FLX_OK);
    cr_assert(strstr(err.msg, "JSON values exceed the limit of 1048576"), "%s", err.msg);
    free(p);
    free(j);
}
