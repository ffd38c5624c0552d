/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 *
 * stream_probe: streaming client for the benchmark (Chat Completions or
 * Responses).
 *
 *   stream_probe -p PORT [-f chat|responses] [-P PATH] [-k KEY] [-m MODEL]
 *                [-n TOTAL] [-c CONC] [-d DELAY_MS] [-e EVENTS] [-r RSS_PID]
 *                [-t TIMEOUT_S] [-o FILE] [-v]
 *
 * Sends TOTAL POST requests with "stream": true to 127.0.0.1:PORT, at most
 * CONC at a time, one request per connection, all driven by one epoll loop.
 * -f chat (default) posts a Chat Completions request to /v1/chat/completions,
 * -f responses a Responses request ("input") to /v1/responses; -P changes
 * the path. The de-chunked body is split into SSE events (blank-line
 * separated; "event:" and "data:" lines, CRLF or LF; an event without a
 * "data:" line, e.g. a ": keepalive" comment, is not counted). For each
 * stream it takes the time from just before the request is written (the
 * connection is already established) to
 *   - the arrival of the first byte of the first event (TTFB),
 *   - the arrival of the first byte of the first content event (time to
 *     first token): for chat the first chunk whose delta has a non-empty
 *     "content" (or "tool_calls"), i.e. the mock's second event; for
 *     Responses the first "response.output_text.delta" event (the mock's
 *     fifth), and
 *   - the end of the response body (last chunk / Content-Length / EOF).
 * A stream is ok when the status is 200 and the body holds exactly EVENTS
 * events (default 20) and a content event; for chat the last one is
 * "data: [DONE]"; for Responses the last one is "response.completed" and
 * every event's "sequence_number" is its index (0, 1, ...).
 *
 * -d DELAY_MS adds "mock_delay_ms": DELAY_MS to the body (the benchmark mock
 * waits that long between events instead of 5 ms). -r PID samples, every
 * 100 ms, the summed VmRSS (and Pss) of PID and its direct children (httpd's
 * parent and its child processes; or the mock alone).
 *
 * -o FILE appends "ttfb_ms content_ms total_ms" for every ok stream to FILE
 * (to pool several runs).
 *
 * Prints one line:
 *   PROBE n=.. ok=.. errors=.. ttfb_p50_ms=.. ttfb_p90_ms=.. content_p50_ms=..
 *         total_p50_ms=..
 *         total_p90_ms=.. peak_open=.. base_rss_kb=.. peak_rss_kb=..
 *         base_pss_kb=.. peak_pss_kb=.. elapsed_ms=..
 * where peak_open is the largest number of streams that had started (first
 * event received) and not yet finished at the same time. The first few
 * errors are described on stderr.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

enum { S_CONNECTING, S_HEADERS, S_BODY, S_DONE };
enum { B_SIZE, B_DATA, B_DATA_CRLF, B_TRAILER, B_LENGTH, B_EOF };
enum { F_CHAT, F_RESPONSES };

typedef struct stream {
    int fd;
    int state;
    int bstate;
    uint64_t t_start, t_first, t_content, t_end;
    size_t scan;                /* body offset of the next line to look at */
    int in_event;               /* a line of an event has been seen */
    size_t ev_start;            /* body offset where that event began */
    uint64_t ev_t;              /* when its first byte arrived */
    int nevents;                /* complete events with data seen so far */
    int last_final;             /* the last event was [DONE] / response.completed */
    int bad_seq;                /* Responses: a sequence_number out of order */
    char *hbuf;                 /* response head while it arrives */
    size_t hlen, hcap;
    char *body;                 /* de-chunked body */
    size_t blen, bcap;
    char line[64];              /* chunk-size / trailer line */
    size_t linelen;
    uint64_t remaining;         /* of the current chunk, or Content-Length */
    int status;
    int live;                   /* counted in g_open */
} stream_t;

static const char *g_path;
static int g_fmt = F_CHAT;
static const char *g_key = "bench";
static const char *g_model = "bench-model";
static int g_port, g_total = 1, g_conc = 1, g_delay = -1, g_events = 20;
static int g_verbose;
static double g_timeout = 60;
static long g_rss_pid;
static const char *g_out;
static char *g_req;
static size_t g_reqlen;
static int g_epfd;
static int g_started, g_finished, g_ok, g_errors, g_errors_shown;
static int g_open, g_peak_open;
static double *g_ttfb, *g_tc, *g_totalt;
static long g_base_rss, g_peak_rss, g_base_pss, g_peak_pss;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        die("realloc");
    }
    return q;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 8192;
        while (c < *len + n + 1) {
            c *= 2;
        }
        *buf = xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* ---- RSS sampling ----------------------------------------------------------- */

static long status_kb(const char *file, const char *field)
{
    char buf[256];
    size_t fl = strlen(field);
    long v = 0;
    FILE *f = fopen(file, "r");

    if (!f) {
        return 0;
    }
    while (fgets(buf, sizeof(buf), f)) {
        if (strncmp(buf, field, fl) == 0) {
            v = strtol(buf + fl, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static long ppid_of(long pid)
{
    char file[64], buf[512], *p;
    FILE *f;
    long pp = -1;

    snprintf(file, sizeof(file), "/proc/%ld/stat", pid);
    if (!(f = fopen(file, "r"))) {
        return -1;
    }
    if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL) {
        /* ") S PPID ..." */
        sscanf(p + 2, "%*c %ld", &pp);
    }
    fclose(f);
    return pp;
}

/* Summed RSS and PSS (kB) of g_rss_pid and its direct children. */
static void sample_rss(long *rss, long *pss)
{
    DIR *d;
    struct dirent *de;
    char file[64];

    *rss = *pss = 0;
    if (!(d = opendir("/proc"))) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        long pid;
        if (!isdigit((unsigned char)de->d_name[0])) {
            continue;
        }
        pid = strtol(de->d_name, NULL, 10);
        if (pid != g_rss_pid && ppid_of(pid) != g_rss_pid) {
            continue;
        }
        snprintf(file, sizeof(file), "/proc/%ld/status", pid);
        *rss += status_kb(file, "VmRSS:");
        snprintf(file, sizeof(file), "/proc/%ld/smaps_rollup", pid);
        *pss += status_kb(file, "Pss:");
    }
    closedir(d);
}

/* ---- streams ---------------------------------------------------------------- */

static void stream_error(stream_t *s, const char *fmt, const char *detail)
{
    g_errors++;
    if (g_errors_shown < 5) {
        g_errors_shown++;
        fprintf(stderr, "stream_probe: error: ");
        fprintf(stderr, fmt, detail ? detail : "");
        if (s->status) {
            fprintf(stderr, " (status %d, %zu body bytes: %.200s)", s->status,
                    s->blen, s->body ? s->body : "");
        }
        fputc('\n', stderr);
    }
}

static void stream_free(stream_t *s)
{
    if (s->fd >= 0) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    if (s->live) {
        g_open--;
        s->live = 0;
    }
    free(s->hbuf);
    free(s->body);
    free(s);
    g_finished++;
}

/* Is [p, p+n) a line starting with the field `name` ("data", "event")?
 * Sets *v, *vl to the value (one optional space after the colon skipped). */
static int sse_field(const char *p, size_t n, const char *name, const char **v, size_t *vl)
{
    size_t k = strlen(name);

    if (n <= k || memcmp(p, name, k) != 0 || p[k] != ':') {
        return 0;
    }
    p += k + 1;
    n -= k + 1;
    if (n && *p == ' ') {
        p++;
        n--;
    }
    *v = p;
    *vl = n;
    return 1;
}

/* The first string value of member `key` anywhere in the JSON text
 * [p, p+n) (whitespace around the ':' allowed): its start, or NULL. */
static const char *json_str(const char *p, size_t n, const char *key)
{
    char pat[48];
    size_t pl = (size_t)snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *end = p + n, *q = p;

    while ((q = memmem(q, (size_t)(end - q), pat, pl)) != NULL) {
        const char *v = q + pl;
        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        if (v < end && *v == ':') {
            v++;
            while (v < end && (*v == ' ' || *v == '\t')) {
                v++;
            }
            if (v < end && *v == '"') {
                return v + 1;
            }
        }
        q += pl;
    }
    return NULL;
}

/* Does the JSON text [p, p+n) have a non-empty string member `key`? */
static int has_nonempty(const char *p, size_t n, const char *key)
{
    const char *v = json_str(p, n, key);
    return v && v < p + n && *v != '"';
}

/* One complete event (its lines, without the blank line) arrived: it began
 * at time ev_t. */
static void on_event_block(stream_t *s, const char *p, size_t n)
{
    const char *end = p + n, *type = NULL, *data = NULL, *v;
    size_t typel = 0, datal = 0, vl;
    int content = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll;
        if (!eol) {
            eol = end;
        }
        ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') {
            ll--;
        }
        if (sse_field(p, ll, "event", &v, &vl)) {
            type = v;
            typel = vl;
        }
        else if (!data && sse_field(p, ll, "data", &v, &vl)) {
            data = v;
            datal = vl;
        }
        p = eol + 1;
    }
    if (!data) {
        return;                 /* a comment or an empty event */
    }
    s->nevents++;
    if (s->nevents == 1) {
        s->t_first = s->ev_t;
        s->live = 1;
        if (++g_open > g_peak_open) {
            g_peak_open = g_open;
        }
    }
    if (g_fmt == F_RESPONSES) {
        static const char seqk[] = "\"sequence_number\":";
        const char *q;
        if (!type) {            /* no "event:" line: take "type" from the data */
            q = json_str(data, datal, "type");
            if (q) {
                const char *qe = memchr(q, '"', (size_t)(data + datal - q));
                if (qe) {
                    type = q;
                    typel = (size_t)(qe - q);
                }
            }
        }
        content = type && typel == 26 && memcmp(type, "response.output_text.delta", 26) == 0;
        s->last_final = type && typel == 18 && memcmp(type, "response.completed", 18) == 0;
        q = memmem(data, datal, seqk, sizeof(seqk) - 1);
        if (!q || strtol(q + sizeof(seqk) - 1, NULL, 10) != s->nevents - 1) {
            s->bad_seq = 1;
        }
    }
    else {
        content = has_nonempty(data, datal, "content") || memmem(data, datal, "\"tool_calls\"", 12);
        s->last_final = datal == 6 && memcmp(data, "[DONE]", 6) == 0;
    }
    if (content && !s->t_content) {
        s->t_content = s->ev_t;
    }
}

/* Split the body bytes not looked at yet into lines and events. `now` is
 * when the newest bytes arrived. */
static void scan_events(stream_t *s, uint64_t now, int at_end)
{
    while (s->scan < s->blen) {
        const char *p = s->body + s->scan;
        const char *eol = memchr(p, '\n', s->blen - s->scan);
        size_t ll;
        if (!s->in_event && *p != '\n' && *p != '\r') {
            s->in_event = 1;    /* the first byte of an event is here */
            s->ev_start = s->scan;
            s->ev_t = now;
        }
        if (!eol) {
            break;              /* an incomplete line: wait for more */
        }
        ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r') {
            ll--;
        }
        s->scan += (size_t)(eol - p) + 1;
        if (ll == 0 && s->in_event) {
            on_event_block(s, s->body + s->ev_start, (size_t)(p - s->body) - s->ev_start);
            s->in_event = 0;
        }
    }
    if (at_end && s->in_event) {    /* the last event had no blank line */
        on_event_block(s, s->body + s->ev_start, s->blen - s->ev_start);
        s->in_event = 0;
    }
}

/* The body is complete: check it and record the times. */
static void stream_complete(stream_t *s)
{
    s->t_end = now_ns();
    scan_events(s, s->t_end, 1);
    if (s->status != 200) {
        stream_error(s, "HTTP status is not 200%s", NULL);
    }
    else if (s->nevents != g_events || !s->last_final || !s->t_content || s->bad_seq) {
        char d[128];
        snprintf(d, sizeof(d), "%d events (expected %d)%s%s%s", s->nevents, g_events,
                 s->last_final ? "" : g_fmt == F_RESPONSES
                     ? ", no response.completed last" : ", no [DONE] last",
                 s->t_content ? "" : ", no content event",
                 s->bad_seq ? ", sequence_number out of order" : "");
        stream_error(s, "%s", d);
    }
    else {
        g_ttfb[g_ok] = (double)(s->t_first - s->t_start) / 1e6;
        g_tc[g_ok] = (double)(s->t_content - s->t_start) / 1e6;
        g_totalt[g_ok] = (double)(s->t_end - s->t_start) / 1e6;
        if (g_out) {
            FILE *f = fopen(g_out, "a");
            if (f) {
                fprintf(f, "%.3f %.3f %.3f\n", g_ttfb[g_ok], g_tc[g_ok], g_totalt[g_ok]);
                fclose(f);
            }
        }
        g_ok++;
    }
    s->state = S_DONE;
}

static void body_bytes(stream_t *s, const char *data, size_t n)
{
    append(&s->body, &s->blen, &s->bcap, data, n);
    scan_events(s, now_ns(), 0);
}

/* Feed raw body bytes through the transfer decoding. */
static void feed_body(stream_t *s, const char *p, size_t n)
{
    while (n && s->state == S_BODY) {
        switch (s->bstate) {
        case B_EOF:
            body_bytes(s, p, n);
            return;
        case B_LENGTH: {
            size_t k = n < s->remaining ? n : (size_t)s->remaining;
            body_bytes(s, p, k);
            s->remaining -= k;
            p += k;
            n -= k;
            if (!s->remaining) {
                stream_complete(s);
            }
            break;
        }
        case B_SIZE:
        case B_TRAILER: {
            char c = *p++;
            n--;
            if (c != '\n') {
                if (s->linelen < sizeof(s->line) - 1) {
                    s->line[s->linelen++] = c;
                }
                break;
            }
            if (s->linelen && s->line[s->linelen - 1] == '\r') {
                s->linelen--;
            }
            s->line[s->linelen] = '\0';
            if (s->bstate == B_TRAILER) {
                if (!s->linelen) {
                    stream_complete(s);
                }
            }
            else {
                char *e;
                s->remaining = strtoull(s->line, &e, 16);
                if (e == s->line) {
                    stream_error(s, "bad chunk size line: %s", s->line);
                    s->state = S_DONE;
                    s->status = -1;
                    return;
                }
                s->bstate = s->remaining ? B_DATA : B_TRAILER;
            }
            s->linelen = 0;
            break;
        }
        case B_DATA: {
            size_t k = n < s->remaining ? n : (size_t)s->remaining;
            body_bytes(s, p, k);
            s->remaining -= k;
            p += k;
            n -= k;
            if (!s->remaining) {
                s->bstate = B_DATA_CRLF;
                s->linelen = 0;
            }
            break;
        }
        case B_DATA_CRLF:
            if (*p == '\n') {
                s->bstate = B_SIZE;
            }
            p++;
            n--;
            break;
        }
    }
}

static int header_has(const char *head, const char *name, const char *needle,
                      char *val, size_t valsz)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p && p[2] != '\r' && p[2] != '\0') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (!eol) {
            break;
        }
        if ((size_t)(eol - line) > nl && line[nl] == ':'
            && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            size_t vl;
            while (*v == ' ') {
                v++;
            }
            vl = (size_t)(eol - v);
            if (vl >= valsz) {
                vl = valsz - 1;
            }
            memcpy(val, v, vl);
            val[vl] = '\0';
            return !needle || strcasestr(val, needle) != NULL;
        }
        p = eol;
    }
    return 0;
}

static void on_data(stream_t *s, const char *p, size_t n)
{
    if (s->state == S_HEADERS) {
        char *end, val[64];
        size_t hl, rest;
        append(&s->hbuf, &s->hlen, &s->hcap, p, n);
        end = strstr(s->hbuf, "\r\n\r\n");
        if (!end) {
            return;
        }
        hl = (size_t)(end - s->hbuf) + 4;
        if (sscanf(s->hbuf, "HTTP/%*d.%*d %d", &s->status) != 1) {
            s->status = -1;
        }
        if (s->status == 100) {     /* skip an interim response */
            memmove(s->hbuf, s->hbuf + hl, s->hlen - hl + 1);
            s->hlen -= hl;
            s->status = 0;
            on_data(s, "", 0);
            return;
        }
        s->hbuf[hl - 2] = '\0';     /* keep one "\r\n" for header_has */
        if (header_has(s->hbuf, "Transfer-Encoding", "chunked", val, sizeof(val))) {
            s->bstate = B_SIZE;
        }
        else if (header_has(s->hbuf, "Content-Length", NULL, val, sizeof(val))) {
            s->bstate = B_LENGTH;
            s->remaining = strtoull(val, NULL, 10);
        }
        else {
            s->bstate = B_EOF;
        }
        s->state = S_BODY;
        rest = s->hlen - hl;
        if (s->bstate == B_LENGTH && !s->remaining) {
            stream_complete(s);
            return;
        }
        if (rest) {
            feed_body(s, s->hbuf + hl, rest);
        }
        return;
    }
    if (s->state == S_BODY) {
        feed_body(s, p, n);
    }
}

static void stream_start(void)
{
    struct sockaddr_in sa;
    struct epoll_event ev;
    stream_t *s = calloc(1, sizeof(*s));
    int one = 1;

    if (!s) {
        die("calloc");
    }
    g_started++;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        die("socket");
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->state = S_CONNECTING;
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        stream_error(s, "connect: %s", strerror(errno));
        stream_free(s);
        return;
    }
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = s;
    if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        die("epoll_ctl");
    }
}

static void on_event(stream_t *s, uint32_t events)
{
    char buf[65536];

    if (s->state == S_CONNECTING) {
        struct epoll_event ev;
        int err = 0;
        socklen_t el = sizeof(err);
        ssize_t w;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            stream_error(s, "connect: %s", strerror(err));
            stream_free(s);
            return;
        }
        s->t_start = now_ns();
        w = write(s->fd, g_req, g_reqlen);
        if (w != (ssize_t)g_reqlen) {   /* a few hundred bytes on a fresh socket */
            stream_error(s, "short write of the request%s", NULL);
            stream_free(s);
            return;
        }
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = s;
        epoll_ctl(g_epfd, EPOLL_CTL_MOD, s->fd, &ev);
        s->state = S_HEADERS;
        return;
    }
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0) {
            on_data(s, buf, (size_t)n);
            if (s->state == S_DONE) {
                stream_free(s);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        /* EOF or error */
        if (s->state == S_BODY && s->bstate == B_EOF && n == 0) {
            stream_complete(s);
        }
        else {
            stream_error(s, n == 0 ? "connection closed early%s" : "read: %s",
                         n == 0 ? "" : strerror(errno));
        }
        stream_free(s);
        return;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i;
    if (!n) {
        return 0;
    }
    i = (int)(p * n + 0.999999) - 1;
    if (i < 0) {
        i = 0;
    }
    return v[i];
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s -p PORT [-f chat|responses] [-P PATH] [-k KEY] [-m MODEL] "
            "[-n TOTAL] [-c CONC] [-d DELAY_MS] [-e EVENTS] [-r RSS_PID] [-t TIMEOUT_S] "
            "[-o FILE] [-v]\n",
            argv0);
    exit(64);
}

int main(int argc, char **argv)
{
    struct epoll_event evs[256];
    struct rlimit rl;
    char body[512], extra[64] = "";
    uint64_t t0, deadline, next_sample = 0;
    int opt, blen;

    while ((opt = getopt(argc, argv, "p:f:P:k:m:n:c:d:e:r:t:o:vh")) != -1) {
        switch (opt) {
        case 'p': g_port = atoi(optarg); break;
        case 'f':
            if (strcmp(optarg, "chat") == 0) {
                g_fmt = F_CHAT;
            }
            else if (strcmp(optarg, "responses") == 0) {
                g_fmt = F_RESPONSES;
            }
            else {
                usage(argv[0]);
            }
            break;
        case 'P': g_path = optarg; break;
        case 'k': g_key = optarg; break;
        case 'm': g_model = optarg; break;
        case 'n': g_total = atoi(optarg); break;
        case 'c': g_conc = atoi(optarg); break;
        case 'd': g_delay = atoi(optarg); break;
        case 'e': g_events = atoi(optarg); break;
        case 'r': g_rss_pid = atol(optarg); break;
        case 't': g_timeout = atof(optarg); break;
        case 'o': g_out = optarg; break;
        case 'v': g_verbose = 1; break;
        default: usage(argv[0]);
        }
    }
    if (g_port <= 0 || g_total <= 0 || g_conc <= 0) {
        usage(argv[0]);
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (g_delay >= 0) {
        snprintf(extra, sizeof(extra), ",\"mock_delay_ms\":%d", g_delay);
    }
    if (g_fmt == F_RESPONSES) {
        blen = snprintf(body, sizeof(body),
                        "{\"model\":\"%s\",\"input\":\"Say hello\",\"max_output_tokens\":16,"
                        "\"stream\":true%s}", g_model, extra);
    }
    else {
        blen = snprintf(body, sizeof(body),
                        "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"Say hello\"}],\"max_tokens\":16,\"stream\":true,"
                        "\"stream_options\":{\"include_usage\":true}%s}", g_model, extra);
    }
    if (!g_path) {
        g_path = g_fmt == F_RESPONSES ? "/v1/responses" : "/v1/chat/completions";
    }
    g_reqlen = (size_t)asprintf(&g_req,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                    "Accept: text/event-stream\r\nUser-Agent: bench-stream-probe\r\n"
                    "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                    g_path, g_port, g_key, blen, body);
    g_ttfb = calloc((size_t)g_total, sizeof(double));
    g_tc = calloc((size_t)g_total, sizeof(double));
    g_totalt = calloc((size_t)g_total, sizeof(double));
    if (!g_ttfb || !g_tc || !g_totalt) {
        die("calloc");
    }
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0) {
        die("epoll_create1");
    }
    if (g_rss_pid) {
        sample_rss(&g_base_rss, &g_base_pss);
        g_peak_rss = g_base_rss;
        g_peak_pss = g_base_pss;
    }

    t0 = now_ns();
    deadline = t0 + (uint64_t)(g_timeout * 1e9);
    while (g_finished < g_total) {
        int i, n, timeout;
        uint64_t now;
        while (g_started < g_total && g_started - g_finished < g_conc) {
            stream_start();
        }
        now = now_ns();
        if (now >= deadline) {
            int left = g_total - g_finished;
            fprintf(stderr, "stream_probe: timeout with %d streams unfinished\n", left);
            g_errors += left;
            break;
        }
        if (g_rss_pid && now >= next_sample) {
            long rss, pss;
            sample_rss(&rss, &pss);
            if (rss > g_peak_rss) {
                g_peak_rss = rss;
            }
            if (pss > g_peak_pss) {
                g_peak_pss = pss;
            }
            if (g_verbose) {
                fprintf(stderr, "t=%.0fms open=%d finished=%d rss=%ldkB pss=%ldkB\n",
                        (double)(now - t0) / 1e6, g_open, g_finished, rss, pss);
            }
            next_sample = now + 100000000ull;
        }
        timeout = (int)((deadline - now) / 1000000ull) + 1;
        if (g_rss_pid) {
            int ts = next_sample > now ? (int)((next_sample - now) / 1000000ull) + 1 : 0;
            if (ts < timeout) {
                timeout = ts;
            }
        }
        n = epoll_wait(g_epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            on_event(evs[i].data.ptr, evs[i].events);
        }
    }

    qsort(g_ttfb, (size_t)g_ok, sizeof(double), cmp_double);
    qsort(g_tc, (size_t)g_ok, sizeof(double), cmp_double);
    qsort(g_totalt, (size_t)g_ok, sizeof(double), cmp_double);
    printf("PROBE n=%d ok=%d errors=%d ttfb_p50_ms=%.3f ttfb_p90_ms=%.3f "
           "content_p50_ms=%.3f total_p50_ms=%.3f total_p90_ms=%.3f peak_open=%d base_rss_kb=%ld "
           "peak_rss_kb=%ld base_pss_kb=%ld peak_pss_kb=%ld elapsed_ms=%.0f\n",
           g_total, g_ok, g_errors, pct(g_ttfb, g_ok, 0.5), pct(g_ttfb, g_ok, 0.9),
           pct(g_tc, g_ok, 0.5), pct(g_totalt, g_ok, 0.5), pct(g_totalt, g_ok, 0.9),
           g_peak_open,
           g_base_rss, g_peak_rss, g_base_pss, g_peak_pss,
           (double)(now_ns() - t0) / 1e6);
    return g_errors ? 1 : 0;
}
