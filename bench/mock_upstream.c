/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 *
 * mock_upstream: a small, fast OpenAI-compatible upstream for the benchmark.
 *
 *     mock_upstream PORT            (listens on 127.0.0.1:PORT)
 *
 * Single-threaded, epoll, HTTP/1.1 keep-alive (and pipelining), Content-Length
 * request bodies of any size up to 16 MiB, arriving in as many reads as they
 * take (chunked request bodies are refused with 411). "model", "stream" and
 * "mock_delay_ms" are read from the top level of the JSON body only (nested
 * members, e.g. in messages or tool schemas, do not count).
 *
 *   POST .../chat/completions   a ~400-byte chat.completion (with usage); or,
 *                               when the body has "stream": true, a chunked
 *                               text/event-stream of 20 events: a role chunk,
 *                               16 content chunks, a finish chunk, a usage
 *                               chunk and data: [DONE], one HTTP chunk each.
 *                               The first event goes out with the headers,
 *                               the next ones every 5 ms (timer heap +
 *                               timerfd, never blocking), so a stream lasts
 *                               19 x delay. The delay comes from the body
 *                               field "mock_delay_ms": N (it passes through
 *                               gateways untouched) or the request header
 *                               X-Mock-Delay-Ms: N.
 *   POST .../responses          a Responses API "response" object (one
 *                               output_text message, usage); or, with
 *                               "stream": true, a chunked event stream of 20
 *                               "event: <type>\ndata: <json>" events
 *                               (sequence_number 0..19): response.created,
 *                               response.in_progress, output_item.added,
 *                               content_part.added, 12 output_text.delta,
 *                               output_text.done, content_part.done,
 *                               output_item.done, response.completed (with
 *                               usage), paced like the chat stream.
 *   GET  .../models             a one-model list.
 *   anything else               404 JSON error.
 *
 * Prints "READY <port>" on stdout once listening; SIGTERM/SIGINT exit.
 */
#define _GNU_SOURCE
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
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define STREAM_EVENTS    20
#define RESP_DELTAS      (STREAM_EVENTS - 8)  /* output_text.delta events */
#define DEFAULT_DELAY_MS 5
#define MAX_HEADER       (64 * 1024)
#define MAX_BODY         (16 * 1024 * 1024)
#define MAX_EVENTS       256

enum { ST_READ, ST_STREAM };
enum { K_CHAT, K_RESPONSES };

typedef struct conn {
    int fd;
    int state;
    int close_after;            /* close once the output is flushed */
    int want_out;               /* EPOLLOUT registered */
    char *rbuf;
    size_t rlen, rcap;
    char *wbuf;
    size_t wlen, woff, wcap;
    /* streaming */
    int next_event;             /* index of the next event to send */
    uint64_t delay_ns;
    uint64_t deadline;          /* monotonic ns of the next event */
    int heap_idx;               /* -1 when not in the timer heap */
    int kind;                   /* K_CHAT or K_RESPONSES */
    char model[80];
    char id[40];
    char msg_id[40];            /* Responses: the output message's id */
    long created;
    unsigned long in_tokens;    /* Responses: "input tokens" (body bytes / 4) */
    struct conn *next_dead;     /* closed, freed after the current batch */
} conn_t;

static int g_epfd, g_lfd, g_tfd;
static conn_t **g_heap;
static size_t g_heap_len, g_heap_cap;
static uint64_t g_armed;        /* deadline the timerfd is armed for, 0 = none */
static unsigned long g_seq;
static volatile sig_atomic_t g_stop;
static conn_t *g_dead;          /* closed connections not yet freed */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        die("realloc");
    }
    return q;
}

/* ---- timer heap (min-heap on deadline) ---------------------------------- */

static void heap_swap(size_t a, size_t b)
{
    conn_t *t = g_heap[a];
    g_heap[a] = g_heap[b];
    g_heap[b] = t;
    g_heap[a]->heap_idx = (int)a;
    g_heap[b]->heap_idx = (int)b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (g_heap[p]->deadline <= g_heap[i]->deadline) {
            break;
        }
        heap_swap(p, i);
        i = p;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g_heap_len && g_heap[l]->deadline < g_heap[m]->deadline) {
            m = l;
        }
        if (r < g_heap_len && g_heap[r]->deadline < g_heap[m]->deadline) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(conn_t *c)
{
    if (g_heap_len == g_heap_cap) {
        g_heap_cap = g_heap_cap ? g_heap_cap * 2 : 1024;
        g_heap = xrealloc(g_heap, g_heap_cap * sizeof(*g_heap));
    }
    g_heap[g_heap_len] = c;
    c->heap_idx = (int)g_heap_len;
    heap_up(g_heap_len++);
}

static void heap_remove(conn_t *c)
{
    size_t i;

    if (c->heap_idx < 0) {
        return;
    }
    i = (size_t)c->heap_idx;
    c->heap_idx = -1;
    if (i != --g_heap_len) {
        g_heap[i] = g_heap[g_heap_len];
        g_heap[i]->heap_idx = (int)i;
        heap_down(i);
        heap_up(i);
    }
}

static void timer_rearm(void)
{
    struct itimerspec its;
    uint64_t d = g_heap_len ? g_heap[0]->deadline : 0;

    if (d == g_armed) {
        return;
    }
    memset(&its, 0, sizeof(its));
    if (d) {
        its.it_value.tv_sec = (time_t)(d / 1000000000ull);
        its.it_value.tv_nsec = (long)(d % 1000000000ull);
    }
    if (timerfd_settime(g_tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        die("timerfd_settime");
    }
    g_armed = d;
}

/* ---- connections --------------------------------------------------------- */

/* Close now, free after the current epoll batch (it may still name c). */
static void conn_close(conn_t *c)
{
    if (c->fd < 0) {
        return;
    }
    heap_remove(c);
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->next_dead = g_dead;
    g_dead = c;
}

static void free_dead(void)
{
    while (g_dead) {
        conn_t *c = g_dead;
        g_dead = c->next_dead;
        free(c->rbuf);
        free(c->wbuf);
        free(c);
    }
}

static void out_append(conn_t *c, const char *data, size_t n)
{
    if (c->woff && c->woff == c->wlen) {
        c->woff = c->wlen = 0;
    }
    if (c->wlen + n > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < c->wlen + n) {
            cap *= 2;
        }
        c->wbuf = xrealloc(c->wbuf, cap);
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, data, n);
    c->wlen += n;
}

static void set_events(conn_t *c, int want_out)
{
    struct epoll_event ev;

    if (want_out == c->want_out) {
        return;
    }
    ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        die("epoll_ctl mod");
    }
    c->want_out = want_out;
}

/* Write what is pending. Returns -1 when the connection was closed. */
static int flush_out(conn_t *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return 0;
        }
        conn_close(c);
        return -1;
    }
    c->woff = c->wlen = 0;
    set_events(c, 0);
    if (c->close_after && c->state == ST_READ) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* ---- tiny request parsing helpers ----------------------------------------- */

static const char *memfind(const char *h, size_t hl, const char *n, size_t nl)
{
    return memmem(h, hl, n, nl);
}

/* The value of header `name` in [hdr, hdr+len) (a copy into out), or NULL. */
static const char *header_get(const char *hdr, size_t len, const char *name,
                              char *out, size_t outsz)
{
    size_t nl = strlen(name);
    const char *p = hdr, *end = hdr + len;

    while (p < end) {
        const char *eol = memfind(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) {
            eol = end;
        }
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            vl = (size_t)(eol - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
                vl--;
            }
            if (vl >= outsz) {
                vl = outsz - 1;
            }
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }
    return p;
}

/* One pass over the JSON object in [b, b+bl): for each keys[i] that is a
 * member of the top-level object, vals[i] = the start of its value (after the
 * ':' and whitespace); NULL when absent. Strings are skipped with memchr, so
 * this is fast on bodies that are mostly long strings (agent prompts), and a
 * key nested in a message or a tool schema is never taken for a top-level
 * one. Not a validator: the benchmark's bodies are well-formed. */
static void json_top_members(const char *b, size_t bl, const char *const *keys,
                             const char **vals, int n)
{
    const char *p = b, *end = b + bl;
    int depth = 0, expect_key = 0, found = 0, i;

    for (i = 0; i < n; i++) {
        vals[i] = NULL;
    }
    while (p < end && found < n) {
        char ch = *p;
        if (ch == '"') {
            const char *s = p + 1, *q = s;
            for (;;) {                  /* the closing quote: not escaped */
                const char *bs;
                q = memchr(q, '"', (size_t)(end - q));
                if (!q) {
                    return;
                }
                for (bs = q; bs > s && bs[-1] == '\\'; bs--) {
                }
                if (((q - bs) & 1) == 0) {
                    break;
                }
                q++;
            }
            p = q + 1;
            if (depth == 1 && expect_key) {
                const char *v = skip_ws(p, end);
                expect_key = 0;
                if (v < end && *v == ':') {
                    for (i = 0; i < n; i++) {
                        if (!vals[i] && strlen(keys[i]) == (size_t)(q - s)
                            && memcmp(keys[i], s, (size_t)(q - s)) == 0) {
                            vals[i] = skip_ws(v + 1, end);
                            found++;
                            break;
                        }
                    }
                    p = v + 1;
                }
            }
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (++depth == 1 && ch == '{') {
                expect_key = 1;
            }
        }
        else if (ch == '}' || ch == ']') {
            if (--depth <= 0) {
                return;
            }
        }
        else if (ch == ',' && depth == 1) {
            expect_key = 1;
        }
        p++;
    }
}

/* ---- responses --------------------------------------------------------------- */

static void respond(conn_t *c, int status, const char *reason, const char *ctype,
                    const char *body, size_t blen)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: bench-mock\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, reason, ctype, blen,
                     c->close_after ? "Connection: close\r\n" : "");
    out_append(c, head, (size_t)n);
    out_append(c, body, blen);
}

static void respond_error(conn_t *c, int status, const char *reason, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":null}}", msg);
    respond(c, status, reason, "application/json", body, (size_t)n);
}

static void chat_completion(conn_t *c)
{
    char body[1024];
    int n = snprintf(body, sizeof(body),
        "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%ld,"
        "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{"
        "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Hello! This is a short reply from the benchmark mock upstream.\","
        "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":14,"
        "\"total_tokens\":26}}",
        c->id, c->created, c->model);
    respond(c, 200, "OK", "application/json", body, (size_t)n);
}

/* The text of the Responses answer: the concatenated output_text deltas. */
static const char *resp_text(void)
{
    static char text[RESP_DELTAS * 8 + 1];
    if (!text[0]) {
        int i, n = 0;
        for (i = 0; i < RESP_DELTAS; i++) {
            n += snprintf(text + n, sizeof(text) - (size_t)n, "tok%02d ", i + 4);
        }
    }
    return text;
}

/* The "output" array of a completed Responses answer. */
static int resp_output(conn_t *c, char *buf, size_t sz)
{
    return snprintf(buf, sz,
        "[{\"type\":\"message\",\"id\":\"%s\",\"status\":\"completed\","
        "\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
        "\"text\":\"%s\",\"annotations\":[]}]}]", c->msg_id, resp_text());
}

static int resp_usage(conn_t *c, char *buf, size_t sz)
{
    return snprintf(buf, sz,
        "{\"input_tokens\":%lu,\"input_tokens_details\":{\"cached_tokens\":0},"
        "\"output_tokens\":%d,\"output_tokens_details\":{\"reasoning_tokens\":0},"
        "\"total_tokens\":%lu}", c->in_tokens, RESP_DELTAS, c->in_tokens + RESP_DELTAS);
}

/* A "response" object; status "in_progress" (empty output, usage null) or
 * "completed". */
static int resp_object(conn_t *c, char *buf, size_t sz, int completed)
{
    char out[512], usage[256];

    if (completed) {
        resp_output(c, out, sizeof(out));
        resp_usage(c, usage, sizeof(usage));
    }
    return snprintf(buf, sz,
        "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%ld,"
        "\"status\":\"%s\",\"error\":null,\"incomplete_details\":null,"
        "\"model\":\"%s\",\"output\":%s,\"usage\":%s}",
        c->id, c->created, completed ? "completed" : "in_progress", c->model,
        completed ? out : "[]", completed ? usage : "null");
}

static void responses_object(conn_t *c)
{
    char body[1024];
    int n = resp_object(c, body, sizeof(body), 1);
    respond(c, 200, "OK", "application/json", body, (size_t)n);
}

/* Responses stream event i: "event: <type>\ndata: <json>\n\n" into ev. */
static int resp_event(conn_t *c, int i, char *ev, size_t sz)
{
    char obj[1024];
    const char *type;
    int n;

    if (i == 0 || i == 1 || i == STREAM_EVENTS - 1) {
        type = i == 0 ? "response.created"
             : i == 1 ? "response.in_progress" : "response.completed";
        resp_object(c, obj, sizeof(obj), i == STREAM_EVENTS - 1);
        return snprintf(ev, sz,
            "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d,\"response\":%s}\n\n",
            type, type, i, obj);
    }
    if (i == 2 || i == STREAM_EVENTS - 2) {
        type = i == 2 ? "response.output_item.added" : "response.output_item.done";
        if (i == 2) {
            snprintf(obj, sizeof(obj),
                "{\"type\":\"message\",\"id\":\"%s\",\"status\":\"in_progress\","
                "\"role\":\"assistant\",\"content\":[]}", c->msg_id);
        }
        else {
            resp_output(c, obj, sizeof(obj));
            /* the one item, without the array's brackets */
            n = (int)strlen(obj);
            memmove(obj, obj + 1, (size_t)n - 2);
            obj[n - 2] = '\0';
        }
        return snprintf(ev, sz,
            "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d,"
            "\"output_index\":0,\"item\":%s}\n\n", type, type, i, obj);
    }
    if (i == 3 || i == STREAM_EVENTS - 3) {
        type = i == 3 ? "response.content_part.added" : "response.content_part.done";
        return snprintf(ev, sz,
            "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d,\"item_id\":\"%s\","
            "\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\","
            "\"text\":\"%s\",\"annotations\":[]}}\n\n",
            type, type, i, c->msg_id, i == 3 ? "" : resp_text());
    }
    if (i == STREAM_EVENTS - 4) {
        return snprintf(ev, sz,
            "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\","
            "\"sequence_number\":%d,\"item_id\":\"%s\",\"output_index\":0,"
            "\"content_index\":0,\"text\":\"%s\"}\n\n", i, c->msg_id, resp_text());
    }
    return snprintf(ev, sz,
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
        "\"sequence_number\":%d,\"item_id\":\"%s\",\"output_index\":0,"
        "\"content_index\":0,\"delta\":\"tok%02d \"}\n\n", i, c->msg_id, i);
}

/* Append SSE event number i (0-based) of the stream, as one HTTP chunk. */
static void stream_event(conn_t *c, int i)
{
    char ev[2048], chunk[32];
    int n, h;

    if (c->kind == K_RESPONSES) {
        n = resp_event(c, i, ev, sizeof(ev));
    }
    else if (i == 0) {
        n = snprintf(ev, sizeof(ev),
            "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
            "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{"
            "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
            "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            c->id, c->created, c->model);
    }
    else if (i < STREAM_EVENTS - 3) {
        n = snprintf(ev, sizeof(ev),
            "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
            "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{"
            "\"index\":0,\"delta\":{\"content\":\"tok%02d \"},"
            "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            c->id, c->created, c->model, i);
    }
    else if (i == STREAM_EVENTS - 3) {
        n = snprintf(ev, sizeof(ev),
            "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
            "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{"
            "\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
            "\"usage\":null}\n\n",
            c->id, c->created, c->model);
    }
    else if (i == STREAM_EVENTS - 2) {
        n = snprintf(ev, sizeof(ev),
            "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
            "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[],"
            "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":16,"
            "\"total_tokens\":28}}\n\n",
            c->id, c->created, c->model);
    }
    else {
        n = snprintf(ev, sizeof(ev), "data: [DONE]\n\n");
    }
    h = snprintf(chunk, sizeof(chunk), "%x\r\n", n);
    out_append(c, chunk, (size_t)h);
    out_append(c, ev, (size_t)n);
    out_append(c, "\r\n", 2);
    if (i == STREAM_EVENTS - 1) {
        out_append(c, "0\r\n\r\n", 5);
    }
}

static void stream_start(conn_t *c, uint64_t delay_ms)
{
    static const char head[] =
        "HTTP/1.1 200 OK\r\nServer: bench-mock\r\n"
        "Content-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";

    out_append(c, head, sizeof(head) - 1);
    if (c->close_after) {
        out_append(c, "Connection: close\r\n", 19);
    }
    out_append(c, "\r\n", 2);
    stream_event(c, 0);
    c->state = ST_STREAM;
    c->next_event = 1;
    c->delay_ns = delay_ms * 1000000ull;
    c->deadline = now_ns() + c->delay_ns;
    heap_push(c);
}

/* Handle every complete request in rbuf (stops at a stream). -1: closed. */
static int process(conn_t *c)
{
    while (c->state == ST_READ) {
        char method[16], path[1024], version[16], val[128];
        const char *hend, *sp1, *sp2, *eol, *hdr, *body;
        size_t hlen, clen = 0, plen, consumed;
        int is_post, is_get, is_chat, is_resp;

        hend = memfind(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!hend) {
            if (c->rlen > MAX_HEADER) {
                c->close_after = 1;
                respond_error(c, 431, "Request Header Fields Too Large", "headers too large");
                c->rlen = 0;
            }
            return 0;
        }
        hlen = (size_t)(hend - c->rbuf) + 4;
        eol = memfind(c->rbuf, hlen, "\r\n", 2);
        sp1 = memchr(c->rbuf, ' ', (size_t)(eol - c->rbuf));
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || (size_t)(sp1 - c->rbuf) >= sizeof(method)
            || (size_t)(sp2 - sp1 - 1) >= sizeof(path)
            || (size_t)(eol - sp2 - 1) >= sizeof(version)) {
            c->close_after = 1;
            respond_error(c, 400, "Bad Request", "bad request line");
            c->rlen = 0;
            return 0;
        }
        memcpy(method, c->rbuf, (size_t)(sp1 - c->rbuf));
        method[sp1 - c->rbuf] = '\0';
        memcpy(path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
        path[sp2 - sp1 - 1] = '\0';
        memcpy(version, sp2 + 1, (size_t)(eol - sp2 - 1));
        version[eol - sp2 - 1] = '\0';
        hdr = eol + 2;

        if (header_get(hdr, (size_t)(hend - hdr), "Transfer-Encoding", val, sizeof(val))) {
            c->close_after = 1;
            respond_error(c, 411, "Length Required", "chunked request bodies are not supported");
            c->rlen = 0;
            return 0;
        }
        if (header_get(hdr, (size_t)(hend - hdr), "Content-Length", val, sizeof(val))) {
            char *e;
            unsigned long long v = strtoull(val, &e, 10);
            if (*e || v > MAX_BODY) {
                c->close_after = 1;
                respond_error(c, 413, "Payload Too Large", "bad or too large Content-Length");
                c->rlen = 0;
                return 0;
            }
            clen = (size_t)v;
        }
        if (c->rlen < hlen + clen) {
            if (header_get(hdr, (size_t)(hend - hdr), "Expect", val, sizeof(val))
                && strcasecmp(val, "100-continue") == 0 && c->rlen == hlen) {
                out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            }
            return 0;           /* wait for the rest of the body */
        }
        body = c->rbuf + hlen;

        /* keep-alive */
        if (header_get(hdr, (size_t)(hend - hdr), "Connection", val, sizeof(val))) {
            if (strcasestr(val, "close")) {
                c->close_after = 1;
            }
            else if (strcmp(version, "HTTP/1.0") == 0 && !strcasestr(val, "keep-alive")) {
                c->close_after = 1;
            }
        }
        else if (strcmp(version, "HTTP/1.1") != 0) {
            c->close_after = 1;
        }

        plen = strcspn(path, "?");
        path[plen] = '\0';
        is_post = strcmp(method, "POST") == 0;
        is_get = strcmp(method, "GET") == 0;
        c->created = (long)time(NULL);
        strcpy(c->model, "bench-model");
        consumed = hlen + clen;

        is_chat = plen >= 17 && strcmp(path + plen - 17, "/chat/completions") == 0;
        is_resp = plen >= 10 && strcmp(path + plen - 10, "/responses") == 0;
        if (is_chat || is_resp) {
            static const char *const keys[] = { "model", "stream", "mock_delay_ms" };
            const char *v[3];
            int stream = 0;
            uint64_t delay_ms = DEFAULT_DELAY_MS;
            c->kind = is_resp ? K_RESPONSES : K_CHAT;
            if (c->kind == K_RESPONSES) {
                ++g_seq;
                snprintf(c->id, sizeof(c->id), "resp_bench%012lu", g_seq);
                snprintf(c->msg_id, sizeof(c->msg_id), "msg_bench%012lu", g_seq);
                c->in_tokens = clen / 4;
            }
            else {
                snprintf(c->id, sizeof(c->id), "chatcmpl-bench%012lu", ++g_seq);
            }
            if (!is_post) {
                respond_error(c, 405, "Method Not Allowed", "use POST");
                goto next;
            }
            json_top_members(body, clen, keys, v, 3);
            if (v[0] && *v[0] == '"') {
                const char *q = memchr(v[0] + 1, '"', (size_t)(body + clen - v[0] - 1));
                if (q && (size_t)(q - v[0] - 1) < sizeof(c->model)) {
                    memcpy(c->model, v[0] + 1, (size_t)(q - v[0] - 1));
                    c->model[q - v[0] - 1] = '\0';
                }
            }
            if (v[1] && (size_t)(body + clen - v[1]) >= 4 && memcmp(v[1], "true", 4) == 0) {
                stream = 1;
            }
            if (v[2]) {
                delay_ms = strtoull(v[2], NULL, 10);
            }
            if (header_get(hdr, (size_t)(hend - hdr), "X-Mock-Delay-Ms", val, sizeof(val))) {
                delay_ms = strtoull(val, NULL, 10);
            }
            if (stream) {
                memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
                c->rlen -= consumed;
                stream_start(c, delay_ms);
                return 0;
            }
            if (c->kind == K_RESPONSES) {
                responses_object(c);
            }
            else {
                chat_completion(c);
            }
        }
        else if (plen >= 7 && strcmp(path + plen - 7, "/models") == 0 && is_get) {
            static const char models[] =
                "{\"object\":\"list\",\"data\":[{\"id\":\"bench-model\","
                "\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"bench\"}]}";
            respond(c, 200, "OK", "application/json", models, sizeof(models) - 1);
        }
        else {
            respond_error(c, 404, "Not Found", "unknown path");
        }
    next:
        memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
        c->rlen -= consumed;
        if (c->close_after) {
            c->rlen = 0;
            return 0;
        }
    }
    return 0;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t n;
        if (c->rcap - c->rlen < 4096) {
            c->rcap = c->rcap ? c->rcap * 2 : 8192;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            if (c->rlen > MAX_HEADER + MAX_BODY) {
                conn_close(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        conn_close(c);          /* EOF or error: the peer is gone */
        return;
    }
    if (c->state == ST_READ && !c->close_after) {
        process(c);
    }
    flush_out(c);
}

static void on_timer(void)
{
    uint64_t exp, now = now_ns();

    if (read(g_tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN) {
        die("read timerfd");
    }
    g_armed = 0;
    while (g_heap_len && g_heap[0]->deadline <= now) {
        conn_t *c = g_heap[0];
        heap_remove(c);
        stream_event(c, c->next_event++);
        if (c->next_event < STREAM_EVENTS) {
            c->deadline += c->delay_ns;
            heap_push(c);
            if (flush_out(c) < 0) {
                continue;
            }
        }
        else {
            c->state = ST_READ;
            if (flush_out(c) < 0) {
                continue;
            }
            if (!c->close_after && c->rlen) {
                process(c);     /* a pipelined request waited for the stream */
                flush_out(c);
            }
        }
    }
}

static void on_accept(void)
{
    for (;;) {
        struct epoll_event ev;
        conn_t *c;
        int one = 1;
        int fd = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "mock_upstream: accept: %s\n", strerror(errno));
            }
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            die("calloc");
        }
        c->fd = fd;
        c->heap_idx = -1;
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            die("epoll_ctl add");
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct epoll_event ev, evs[MAX_EVENTS];
    struct rlimit rl;
    struct sigaction sact;
    int port, one = 1;
    static int lmark, tmark;

    if (argc != 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&sact, 0, sizeof(sact));
    sact.sa_handler = on_signal;
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGINT, &sact, NULL);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    g_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_lfd < 0) {
        die("socket");
    }
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(g_lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("bind");
    }
    if (listen(g_lfd, 4096) < 0) {
        die("listen");
    }
    g_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_tfd < 0 || g_epfd < 0) {
        die("timerfd/epoll");
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &lmark;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_lfd, &ev);
    ev.data.ptr = &tmark;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_tfd, &ev);
    printf("READY %d\n", port);
    fflush(stdout);

    while (!g_stop) {
        int i, n;
        timer_rearm();
        n = epoll_wait(g_epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        /* timers first; connections closed on the way stay allocated (fd -1)
         * until free_dead() at the end of the batch */
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &tmark) {
                on_timer();
                evs[i].data.ptr = NULL;
            }
        }
        for (i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            conn_t *c;
            if (!p) {
                continue;
            }
            if (p == &lmark) {
                on_accept();
                continue;
            }
            c = p;
            if (c->fd < 0) {
                continue;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                conn_close(c);
            }
            else if (evs[i].events & EPOLLIN) {
                on_readable(c);     /* reads, and flushes pending output */
            }
            else if (evs[i].events & (EPOLLOUT | EPOLLRDHUP)) {
                if (evs[i].events & EPOLLRDHUP) {
                    on_readable(c);
                }
                else {
                    flush_out(c);
                }
            }
        }
        free_dead();
    }
    return 0;
}
