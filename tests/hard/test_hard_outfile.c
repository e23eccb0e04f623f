/* Output files (issue 10, defect 2): exclusive temporary files that never
 * follow a planted link, devices and pipes written in place and never
 * replaced, links kept, umask respected, temporary files removed on SIGINT
 * and SIGTERM, and output paths checked before the long work starts. */
#include "hard_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char *join(const char *dir, const char *name)
{
    char *p = flx_path_join(dir, name);
    cr_assert_not_null(p);
    return p;
}

static void write_out(const char *path, const char *text)
{
    flx_outfile o;
    flx_error err = {0};
    cr_assert_eq(flx_outfile_open(&o, path, &err), FLX_OK, "%s", err.msg);
    fputs(text, o.fp);
    cr_assert_eq(flx_outfile_commit(&o, &err), FLX_OK, "%s", err.msg);
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* The temporary name used to be PATH.tmp.PID, opened with fopen("wb"): a
 * link planted there was followed and its target overwritten. */
Test(hard_outfile, planted_link_at_temp_name_not_followed)
{
    const char *dir = flx_test_tmpdir();
    char *victim = join(dir, "victim.txt"), *path = join(dir, "out.json");
    hard_write(victim, "precious", 8);
    char planted[1024];
    snprintf(planted, sizeof planted, "%s.tmp.%ld", path, (long)getpid());
    cr_assert_eq(symlink(victim, planted), 0);
    write_out(path, "{\"ok\": 1}");
    char *v = hard_slurp(victim), *o = hard_slurp(path);
    cr_assert_str_eq(v, "precious");
    cr_assert_str_eq(o, "{\"ok\": 1}");
    struct stat st;
    cr_assert_eq(lstat(planted, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the planted link is left alone");
    cr_assert_eq(count_entries(dir), 3, "only victim, link and output");
    free(v), free(o), free(victim), free(path);
}

/* A link at the output path keeps pointing where it did; its target gets
 * the data.  A new file gets mode 0666 & ~umask. */
Test(hard_outfile, link_kept_and_umask_respected)
{
    const char *dir = flx_test_tmpdir();
    char *sub = join(dir, "sub");
    cr_assert_eq(mkdir(sub, 0777), 0);
    char *target = join(sub, "real.json"), *link = join(dir, "link.json");
    hard_write(target, "old", 3);
    cr_assert_eq(symlink(target, link), 0);
    write_out(link, "new");
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced by a file");
    char *t = hard_slurp(target);
    cr_assert_str_eq(t, "new");
    free(t);
    cr_assert_eq(count_entries(sub), 1);

    mode_t old = umask(027);
    char *p = join(dir, "masked.txt");
    write_out(p, "x");
    umask(old);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640, "mode %o", (unsigned)(st.st_mode & 0777));
    free(p), free(sub), free(target), free(link);
}

/* Device nodes of our own (so a broken build cannot replace the machine's
 * /dev/null); falls back to the real ones when mknod is not permitted. */
static const char *device(const char *dir, const char *name, int minor, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, name);
    if (mknod(buf, S_IFCHR | 0666, makedev(1, minor)) == 0) return buf;
    snprintf(buf, n, "/dev/%s", name);
    return buf;
}

/* --json to a character device or a FIFO writes into it, never replaces it;
 * /dev/full fails with the device's error; "-" and /dev/fd/1 are stdout. */
Test(hard_outfile, devices_and_pipes_written_in_place)
{
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char null_dev[512], full_dev[512];
    device(dir, "null", 3, null_dev, sizeof null_dev);
    device(dir, "full", 7, full_dev, sizeof full_dev);
    struct stat st;

    hard_run r = hard_sh("%s perf --json %s >/dev/null", bin, null_dev);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(stat(null_dev, &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "%s was replaced", null_dev);

    r = hard_sh("%s perf --json %s >/dev/null", bin, full_dev);
    cr_assert_eq(r.status, 1, "%d %s", r.status, r.err);
    cr_assert(strstr(r.err, "write failed"), "%s", r.err);
    cr_assert_eq(stat(full_dev, &st), 0);
    cr_assert(S_ISCHR(st.st_mode), "%s was replaced", full_dev);

    char *fifo = join(dir, "fifo"), *got = join(dir, "from_fifo.json");
    cr_assert_eq(mkfifo(fifo, 0666), 0);
    r = hard_sh("cat %s > %s & %s perf --json %s >/dev/null; wait", fifo, got, bin, fifo);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(stat(fifo, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
    char *text = hard_slurp(got);
    cr_assert(text && strstr(text, "\"config\""), "%s", text ? text : "(none)");
    free(text);

    const char *streams[] = {"-", "/dev/fd/1"};
    for (int i = 0; i < 2; i++) {
        r = hard_sh("%s perf --json %s > %s", bin, streams[i], got);
        cr_assert_eq(r.status, 0, "%s", r.err);
        text = hard_slurp(got);
        /* the JSON follows perf's report on the same stdout */
        cr_assert(text && strstr(text, "\"config\"") && strstr(text, "prefill"), "%s: %.200s",
                  streams[i], text ? text : "(none)");
        free(text);
    }
    /* a folder, a socket-like non-file: refused with a reason, nothing created */
    r = hard_sh("%s perf --json %s >/dev/null", bin, dir);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "is a directory"), "%s", r.err);
    free(fifo), free(got);
}

/* The signal handler removes open temporary files and lets the signal end
 * the process as before (killed by that signal). */
Test(hard_outfile, temp_removed_on_sigterm_library)
{
    const char *dir = flx_test_tmpdir();
    char *path = join(dir, "big.bin");
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        flx_outfile o;
        flx_error err = {0};
        if (flx_outfile_catch_signals() || flx_outfile_open(&o, path, &err)) _exit(3);
        fputs("partial", o.fp);
        fflush(o.fp);
        if (write(pfd[1], "x", 1) != 1) _exit(4);
        for (;;) pause();
    }
    close(pfd[1]);
    char c;
    cr_assert_eq(read(pfd[0], &c, 1), 1);
    cr_assert_eq(count_entries(dir), 1, "the temporary file exists while writing");
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %x", st);
    cr_assert_eq(count_entries(dir), 0, "temporary file left behind");
    free(path);
}

/* SIGINT during `ppl --save-logits` leaves neither the output nor its
 * temporary file. */
Test(hard_outfile, temp_removed_on_sigint_cli)
{
    const char *dir = flx_test_tmpdir();
    char *toks = join(dir, "ids.txt"), *out = join(dir, "run.kld");
    FILE *f = fopen(toks, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 400000; i++) fprintf(f, "%d\n", (i * 7) % 250);
    cr_assert_eq(fclose(f), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(flx_test_bin(), "flxemu", "ppl", "--tokens", toks, "--threads", "1",
              "--save-logits", out, (char *)NULL);
        _exit(127);
    }
    int seen = 0;
    for (int i = 0; i < 4000 && !seen; i++) {
        seen = count_entries(dir) > 1;
        if (!seen) usleep(5000);
    }
    cr_assert(seen, "no temporary file appeared within 20 s");
    kill(pid, SIGINT);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %x", st);
    cr_assert_eq(count_entries(dir), 1, "a temporary file was left behind");
    free(toks), free(out);
}

/* Output paths are checked before the evaluation starts: an unwritable
 * --json no longer surfaces after the whole run; "" is a usage error. */
Test(hard_outfile, outputs_checked_before_work)
{
    const char *dir = flx_test_tmpdir();
    const char *bin = flx_test_bin();
    char out[1024];
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    const char *cases[][2] = {
        {"ppl --json", "is a directory"},
        {"ppl --save-logits", "is a directory"},
        {"ppl --json /nonexistent-flxemu-dir/r.json", "cannot create a file in /nonexistent-flxemu-dir"},
        {"generate --ids", "is a directory"},
    };
    for (int i = 0; i < 4; i++) {
        int with_dir = !strchr(cases[i][0], '/');
        hard_run r = hard_sh("%s %s %s > %s", bin, cases[i][0], with_dir ? dir : "", out);
        cr_assert_eq(r.status, 1, "%s: %d %s", cases[i][0], r.status, r.err);
        cr_assert(strstr(r.err, cases[i][1]), "%s: %s", cases[i][0], r.err);
        char *text = hard_slurp(out);
        cr_assert(text && !strstr(text, "Final estimate") && !text[0],
                  "%s: the evaluation ran first: %.200s", cases[i][0], text ? text : "");
        free(text);
    }
    const char *empty[] = {"ppl --json ''", "ppl --save-logits ''", "perf --json ''", "dse --device u280 --svg ''",
                           "generate --ids ''", "tokenize --json ''"};
    for (int i = 0; i < 6; i++) {
        hard_run r = hard_sh("%s %s </dev/null >/dev/null", bin, empty[i]);
        cr_assert_eq(r.status, 2, "%s: %d %s", empty[i], r.status, r.err);
    }
    cr_assert_eq(count_entries(dir), 1, "probe files were left behind");
}
