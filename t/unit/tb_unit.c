/* The unit test runner: each suite runs in a child process of its own, so a
 * crash (a signal, an abort, a sanitizer report, an exit halfway) costs that
 * suite one failed check instead of the rest of the run, and cannot pass
 * for a success.
 *
 * The child does not write TAP. It sends one record a line down a pipe:
 *   C <tab> 1|0 <tab> file <tab> line <tab> description   one per check
 *   E <tab> number of checks                               the suite returned
 * and the parent numbers the checks across suites and prints them. A child
 * that ends without its E record, or whose E count or exit status disagrees
 * with what arrived, gets a "not ok ... crashed" line. The TAP ends with the
 * plan and then SENTINEL, so a reader can tell a complete run from a cut
 * one. Usage: tb_unit [suite...], e.g. "tb_unit keycache"; no names, all.
 *
 * Built twice: t/unit/tb_unit, the library's suites, and, with
 * -DTB_UNIT_GLUE, t/unit/tb_glue, the suites of the httpd glue, linked
 * against httpd stubs and a scripted database (glue.h). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>

#include "tb_unit.h"

typedef struct suite_t {
    const char *name;
    void (*fn)(apr_pool_t *p);
} suite_t;

#ifdef TB_UNIT_GLUE
#define NAME "tb_glue"
static const suite_t suites[] = {
    { "backoff", test_state_backoff },
    { "ttl", test_state_ttl },
    { "ttl_no_keeper", test_state_ttl_no_keeper },
    { "stale", test_state_stale },
    { "query_error", test_state_query_error },
    { "cap", test_state_cap },
    { "no_state", test_state_no_state },
    { "catalog", test_state_catalog },
};
#else
#define NAME "tb_unit"
static const suite_t suites[] = {
    { "sha256", test_sha256 },
    { "json", test_json },
    { "sched", test_sched },
    { "catalog", test_catalog },
    { "keycache", test_keycache },
    { "memo", test_memo },
    { "util", test_util },
    { "validate", test_validate },
    { "sse", test_sse },
    { "stream", test_stream },
    { "convert", test_convert },
    { "xstream", test_xstream },
};
#endif
#define NSUITES (sizeof(suites) / sizeof(suites[0]))
#define SENTINEL "# " NAME ": all suites ran"

/* ---- the child: checks become records on the pipe ------------------------ */

int tb_unit_failed;
static int checks;
static FILE *report;        /* the pipe to the parent */
static pid_t reporter;      /* the one process whose checks count */

/* Writes s so that it stays on one line (the record framing) and reads
 * back as plain text in TAP: control characters as escapes, '#' as "\#"
 * with the backslashes before it doubled, so that no description can end
 * in a "# SKIP" or "# TODO" directive and turn a failure into a pass. */
static void put_escaped(FILE *f, const char *s)
{
    const char *c;

    for (c = s; *c; ++c) {
        unsigned char u = (unsigned char)*c;

        if (u == '\\') {
            size_t k, run = strspn(c, "\\");

            for (k = 0; k < run; ++k) {
                fputs(c[run] == '#' ? "\\\\" : "\\", f);
            }
            c += run - 1;
        }
        else if (u == '#') {
            fputs("\\#", f);
        }
        else if (u == '\n') {
            fputs("\\n", f);
        }
        else if (u == '\r') {
            fputs("\\r", f);
        }
        else if (u == '\t') {
            fputs("\\t", f);
        }
        else if (u < 0x20 || u == 0x7f) {
            fprintf(f, "\\x%02x", u);
        }
        else {
            fputc(u, f);
        }
    }
}

void tb_unit_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    char *desc;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    desc = malloc(n < 0 ? 1 : (size_t)n + 1);
    if (!desc) {
        abort();            /* the parent reports the suite as crashed */
    }
    *desc = '\0';
    if (n >= 0) {
        va_start(ap, fmt);
        vsnprintf(desc, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }

    if (!report || getpid() != reporter) {
        /* A process the suite forked itself (test_keycache's guarded()
         * tries a scenario there first, stdout sent to /dev/null): its
         * checks are its own business, and the suite process makes them
         * again. Said on its stdout, not counted. */
        printf("# uncounted check in forked process %ld: %s - %s\n",
               (long)getpid(), cond ? "ok" : "not ok", desc);
        free(desc);
        return;
    }

    ++checks;
    if (!cond) {
        ++tb_unit_failed;
    }
    /* one record at a time even if a suite checks from several threads */
    flockfile(report);
    fprintf(report, "C\t%d\t", cond);
    put_escaped(report, file);
    fprintf(report, "\t%d\t", line);
    put_escaped(report, desc);
    fputc('\n', report);
    /* now: if the suite dies next, this check has still arrived */
    if (fflush(report) != 0) {
        _exit(3);           /* no E record: the parent reports it */
    }
    funlockfile(report);
    free(desc);
}

/* Runs in the forked child; never returns. Exit status 0 or 1 after the E
 * record; any other ending is the parent's to report. */
static void run_child(const suite_t *s, int fd)
{
    struct rlimit no_core = { 0, 0 };
    apr_pool_t *p;

    setrlimit(RLIMIT_CORE, &no_core);   /* a crash leaves no core file */
    /* Whatever the suite prints goes to stderr: shown, but nothing it
     * writes can pass for a check on the parent's stdout. */
    if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        _exit(4);
    }
    report = fdopen(fd, "w");
    if (!report) {
        _exit(4);
    }
    reporter = getpid();

    apr_pool_create(&p, NULL);
    s->fn(p);
    apr_pool_destroy(p);    /* the suite's cleanups are part of the suite */

    fprintf(report, "E\t%d\n", checks);
    fflush(stdout);
    if (fclose(report) != 0) {
        _exit(3);
    }
    _exit(tb_unit_failed ? 1 : 0);
}

/* ---- the parent: numbers the checks, judges how each child ended --------- */

static int tests;           /* TAP numbers handed out */

static void print_not_ok(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void print_not_ok(const char *fmt, ...)
{
    va_list ap;

    printf("not ok %d - ", ++tests);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Prints one C record as a TAP line: 1 if the check passed, 0 if it
 * failed, -1 when the record is no check. */
static int print_check(char *rec)
{
    char *pass, *file, *line, *desc;

    if (strncmp(rec, "C\t", 2)) {
        return -1;
    }
    pass = rec + 2;
    if (!(file = strchr(pass, '\t')) || !(line = strchr(file + 1, '\t'))
        || !(desc = strchr(line + 1, '\t'))) {
        return -1;
    }
    *file++ = *line++ = *desc++ = '\0';
    if (strcmp(pass, "0") && strcmp(pass, "1")) {
        return -1;
    }
    printf("%s %d - %s\n", *pass == '1' ? "ok" : "not ok", ++tests, desc);
    if (*pass == '0') {
        printf("#   failed at %s line %s\n", file, line);
    }
    fflush(stdout);         /* in step with the child's stderr */
    return *pass == '1';
}

/* Runs one suite in a child and prints its checks; 1 if all passed and the
 * child ran to its end, else 0. */
static int run_suite(const suite_t *s)
{
    int fds[2], status, r;
    int arrived = 0, failed = 0, garbled = 0, ended = 0, made = -1;
    char *rec = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *in;
    pid_t pid;

    printf("# suite %s\n", s->name);
    fflush(stdout);         /* or the child inherits it and prints it again */
    fflush(stderr);
    if (pipe(fds) < 0) {
        print_not_ok("%s: pipe: %s", s->name, strerror(errno));
        return 0;
    }
    pid = fork();
    if (pid < 0) {
        print_not_ok("%s: fork: %s", s->name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        run_child(s, fds[1]);
    }
    /* With our end closed, the pipe ends when the child (and whatever it
     * forked) has gone. */
    close(fds[1]);
    in = fdopen(fds[0], "r");
    if (!in) {
        print_not_ok("%s: fdopen: %s", s->name, strerror(errno));
        close(fds[0]);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return 0;
    }
    while ((len = getline(&rec, &cap, in)) > 0) {
        if (rec[len - 1] != '\n') {
            /* cut off mid-record: the child died while writing it */
            print_not_ok("%s: a report cut short: \"%.60s\"", s->name, rec);
            garbled = 1;
            break;
        }
        rec[len - 1] = '\0';
        if (ended) {
            print_not_ok("%s: a report after the end of the suite", s->name);
            garbled = 1;
        }
        else if (!strncmp(rec, "E\t", 2)) {
            ended = 1;
            made = atoi(rec + 2);
        }
        else if ((r = print_check(rec)) >= 0) {
            ++arrived;
            failed += !r;
        }
        else {
            print_not_ok("%s: a report that is no check: \"%.60s\"", s->name,
                         rec);
            garbled = 1;
        }
    }
    free(rec);
    fclose(in);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            print_not_ok("%s: waitpid: %s", s->name, strerror(errno));
            return 0;
        }
    }

    if (WIFSIGNALED(status)) {
        print_not_ok("%s crashed: killed by signal %d (%s) after %d checks",
                     s->name, WTERMSIG(status), strsignal(WTERMSIG(status)),
                     arrived);
        return 0;
    }
    if (!ended) {
        print_not_ok("%s crashed: exit status %d before the end of the "
                     "suite, after %d checks", s->name, WEXITSTATUS(status),
                     arrived);
        return 0;
    }
    /* the child's own verdict must agree with the checks that arrived */
    if (WEXITSTATUS(status) != (failed ? 1 : 0)) {
        print_not_ok("%s crashed: exit status %d after the end of the suite "
                     "with %d failed checks", s->name, WEXITSTATUS(status),
                     failed);
        return 0;
    }
    if (made != arrived) {
        print_not_ok("%s: %d checks made, %d arrived", s->name, made, arrived);
        return 0;
    }
    if (!arrived) {
        print_not_ok("%s: the suite made no checks", s->name);
        return 0;
    }
    return !failed && !garbled;
}

static const suite_t *find_suite(const char *name)
{
    size_t i;

    if (!strncmp(name, "test_", 5)) {
        name += 5;
    }
    for (i = 0; i < NSUITES; ++i) {
        if (!strcmp(name, suites[i].name)) {
            return &suites[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const suite_t *chosen[NSUITES];
    size_t i, n = 0;
    int bad = 0;

    for (i = 1; i < (size_t)argc; ++i) {
        const suite_t *s = find_suite(argv[i]);

        if (!s || n == NSUITES) {
            fprintf(stderr, "usage: %s [suite...]; suites:", argv[0]);
            for (i = 0; i < NSUITES; ++i) {
                fprintf(stderr, " %s", suites[i].name);
            }
            fprintf(stderr, "\n");
            return 2;
        }
        chosen[n++] = s;
    }
    if (!n) {
        for (; n < NSUITES; ++n) {
            chosen[n] = &suites[n];
        }
    }

    apr_initialize();
    for (i = 0; i < n; ++i) {
        bad += !run_suite(chosen[i]);
    }
    apr_terminate();

    if (bad) {
        printf("# " NAME ": %d of %lu suites failed\n", bad, (unsigned long)n);
    }
    printf("1..%d\n", tests);
    printf("%s\n", SENTINEL);
    return bad || fflush(stdout) ? 1 : 0;
}
