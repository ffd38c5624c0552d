/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE      /* POLLRDHUP */
#endif
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <curl/curl.h>

#include "tb_curl.h"
#include "tb_log.h"
#include "tb_util.h"

/* ---- one exchange ---------------------------------------------------------- */

/* Bodies up to this size are sent with the headers (curl's own limit for
 * that is 64 KB). */
#define INLINE_POST_MAX ((apr_size_t)60 * 1024)

typedef struct xfer_t {
    CURL *easy;
    const apr_array_header_t *iov;   /* the body in pieces, or NULL */
    int iov_at;                      /* the piece being sent */
    apr_size_t iov_off;              /* bytes of it already sent */
    const tb_http_sink_t *sink;
    tb_http_result_t *res;
    apr_pool_t *pool;
    int head_done;
    int retry_after_ms;              /* retry-after-ms seen: it wins */
} xfer_t;

/* Deliver status and content type to the sink once, when the headers of
 * the final response (not a 1xx) are complete. */
static apr_status_t deliver_head(xfer_t *x)
{
    long code = 0;

    if (x->head_done) {
        return APR_SUCCESS;
    }
    x->head_done = 1;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    x->res->status = (int)code;
    return x->sink->on_head
        ? x->sink->on_head(x->sink->ctx, x->res->status, x->res->content_type)
        : APR_SUCCESS;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *data)
{
    xfer_t *x = data;
    size_t len = size * n;
    const char *colon;

    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        /* a new status line: an interim 1xx may precede the final one */
        x->res->content_type = NULL;
        x->res->retry_after = -1;
        x->retry_after_ms = 0;
        return len;
    }
    colon = memchr(buf, ':', len);
    if (colon) {
        apr_size_t nlen = colon - buf;
        const char *v = colon + 1, *end = buf + len;

        while (v < end && (*v == ' ' || *v == '\t')) {
            ++v;
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
            --end;
        }
        if (nlen == 12 && !strncasecmp(buf, "content-type", 12)) {
            x->res->content_type = apr_pstrmemdup(x->pool, v, end - v);
        }
        else if (nlen == 14 && !strncasecmp(buf, "retry-after-ms", 14)) {
            /* as in OpenAI's SDKs: the milliseconds win when both came */
            apr_interval_time_t t =
                tb_parse_retry_after_ms(apr_pstrmemdup(x->pool, v, end - v));
            if (t >= 0) {
                x->res->retry_after = t;
                x->retry_after_ms = 1;
            }
        }
        else if (nlen == 11 && !strncasecmp(buf, "retry-after", 11)
                 && !x->retry_after_ms) {
            x->res->retry_after = tb_parse_retry_after(
                apr_pstrmemdup(x->pool, v, end - v), apr_time_now());
        }
    }
    return len;
}

/* NB: curl's buffer is only valid during this call; sinks must copy. */
static size_t write_cb(char *buf, size_t size, size_t n, void *data)
{
    xfer_t *x = data;
    size_t len = size * n;
    apr_status_t rv;

    if ((rv = deliver_head(x)) == APR_SUCCESS && len) {
        rv = x->sink->on_data(x->sink->ctx, buf, len);
    }
    if (rv != APR_SUCCESS) {
        x->res->sink_rv = rv;
        return 0;   /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

/* The body in pieces, as curl asks for it: no copy of the whole. */
static size_t read_cb(char *buf, size_t size, size_t n, void *data)
{
    xfer_t *x = data;
    size_t room = size * n, done = 0;

    while (room && x->iov && x->iov_at < x->iov->nelts) {
        const tb_iovec_t *v = &APR_ARRAY_IDX(x->iov, x->iov_at, tb_iovec_t);
        size_t k = v->len - x->iov_off;

        if (k > room) {
            k = room;
        }
        memcpy(buf + done, v->base + x->iov_off, k);
        done += k;
        room -= k;
        x->iov_off += k;
        if (x->iov_off == v->len) {
            ++x->iov_at;
            x->iov_off = 0;
        }
    }
    return done;
}

/* NB: curl rewinds the body when it resends a request on a kept-alive
 * connection the upstream had closed: without this, such a retry fails. */
static int seek_cb(void *data, curl_off_t offset, int origin)
{
    xfer_t *x = data;
    curl_off_t left = offset;

    if (origin != SEEK_SET || offset < 0 || !x->iov) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    x->iov_at = 0;
    x->iov_off = 0;
    while (x->iov_at < x->iov->nelts) {
        const tb_iovec_t *v = &APR_ARRAY_IDX(x->iov, x->iov_at, tb_iovec_t);
        if ((curl_off_t)v->len > left) {
            x->iov_off = (apr_size_t)left;
            return CURL_SEEKFUNC_OK;
        }
        left -= (curl_off_t)v->len;
        ++x->iov_at;
    }
    return left == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

static tb_up_error_t classify(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        return TB_UP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        return TB_UP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return TB_UP_TIMEOUT;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return TB_UP_ABORTED;
    default:
        return TB_UP_IO;
    }
}

/* ---- handle pool ----------------------------------------------------------- */

/* Sockets a handle pair may hold at once: its one cached connection, and
 * a new one while the old waits to be closed (CURLMOPT_MAXCONNECTS 1). */
#define HANDLE_FDS 4
#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif
/* Idle pairs looked at for one whose connection goes to the wanted
 * origin, before any idle pair is taken. */
#define ORIGIN_SCAN 32

typedef struct handles_t {
    CURLM *multi;            /* owns the connection cache */
    CURL *easy;
    struct handles_t *next;
    apr_time_t idle_since;
    curl_socket_t fds[HANDLE_FDS]; /* its open sockets (CURL_SOCKET_BAD) */
    char origin[128];        /* "scheme://host:port" of its last exchange */
} handles_t;

struct tb_curl_pool_t {
    apr_thread_mutex_t *mutex;
    handles_t *idle;         /* LIFO: the warmest connections first */
    unsigned int nidle, max_idle;
    apr_interval_time_t keepalive;
};

/* The origin of a URL: everything before the path. */
static apr_size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");

    p = p ? strchr(p + 3, '/') : NULL;
    return p ? (apr_size_t)(p - url) : strlen(url);
}

/* curl opens and closes the pair's sockets through these two, so the
 * pool knows them: an idle one the upstream closed is found by polling
 * it (it turns readable), instead of sitting in CLOSE-WAIT until reuse. */
static curl_socket_t open_socket_cb(void *data, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    handles_t *h = data;
    curl_socket_t fd;
    int i;

    (void)purpose;
#ifdef SOCK_CLOEXEC
    fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
#else
    fd = socket(addr->family, addr->socktype, addr->protocol);
#endif
    if (fd == CURL_SOCKET_BAD) {
        return fd;
    }
    for (i = 0; i < HANDLE_FDS; ++i) {
        if (h->fds[i] == CURL_SOCKET_BAD) {
            h->fds[i] = fd;
            break;
        }
    }
    return fd;
}

static int close_socket_cb(void *data, curl_socket_t fd)
{
    handles_t *h = data;
    int i;

    for (i = 0; i < HANDLE_FDS; ++i) {
        if (h->fds[i] == fd) {
            h->fds[i] = CURL_SOCKET_BAD;
        }
    }
    return close(fd);
}

static void handles_destroy(handles_t *h)
{
    if (h->easy) {
        curl_easy_cleanup(h->easy);
    }
    if (h->multi) {
        curl_multi_cleanup(h->multi);
    }
    free(h);
}

static apr_status_t pool_cleanup(void *data)
{
    tb_curl_pool_t *cp = data;
    handles_t *h;

    while ((h = cp->idle) != NULL) {
        cp->idle = h->next;
        handles_destroy(h);
    }
    return APR_SUCCESS;
}

static apr_status_t curl_global_cleanup_cb(void *data)
{
    curl_global_cleanup();
    return APR_SUCCESS;
}

apr_status_t tb_curl_global_init(apr_pool_t *pconf)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(pconf, NULL, curl_global_cleanup_cb,
                              apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t tb_curl_pool_create(tb_curl_pool_t **ppool, apr_pool_t *p,
                                 unsigned int max_idle,
                                 apr_interval_time_t keepalive)
{
    tb_curl_pool_t *cp = apr_pcalloc(p, sizeof(*cp));
    apr_status_t rv;

    rv = apr_thread_mutex_create(&cp->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    cp->max_idle = max_idle;
    cp->keepalive = keepalive;
    apr_pool_cleanup_register(p, cp, pool_cleanup, apr_pool_cleanup_null);
    *ppool = cp;
    return APR_SUCCESS;
}

static handles_t *handles_create(tb_curl_pool_t *cp)
{
    handles_t *h = calloc(1, sizeof(*h));
    int i;

    if (!h) {
        return NULL;
    }
    for (i = 0; i < HANDLE_FDS; ++i) {
        h->fds[i] = CURL_SOCKET_BAD;
    }
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy) {
        handles_destroy(h);
        return NULL;
    }
    /* one cached connection per pair: the pool picks pairs by origin */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 1L);
    /* what never changes is set once: a curl_easy_reset and a full set of
     * options per request showed up as a tenth of the gateway's CPU */
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h->easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h->easy, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(h->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(h->easy, CURLOPT_OPENSOCKETDATA, h);
    curl_easy_setopt(h->easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    curl_easy_setopt(h->easy, CURLOPT_CLOSESOCKETDATA, h);
    curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x074100
    /* never reuse what the sweep would have closed */
    curl_easy_setopt(h->easy, CURLOPT_MAXAGE_CONN,
                     (long)apr_time_sec(cp->keepalive));
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return h;
}

/* An idle pair, preferably one connected to the URL's origin. */
static handles_t *handles_acquire(tb_curl_pool_t *cp, const char *url)
{
    apr_size_t olen = origin_len(url);
    handles_t *h, **pp;
    int scanned = 0;

    apr_thread_mutex_lock(cp->mutex);
    for (pp = &cp->idle; *pp && scanned < ORIGIN_SCAN; pp = &(*pp)->next, ++scanned) {
        if (!strncmp((*pp)->origin, url, olen) && !(*pp)->origin[olen]) {
            break;
        }
    }
    if (!*pp || scanned == ORIGIN_SCAN) {
        pp = &cp->idle;
    }
    if ((h = *pp) != NULL) {
        *pp = h->next;
        --cp->nidle;
    }
    apr_thread_mutex_unlock(cp->mutex);
    return h ? h : handles_create(cp);
}

static void handles_release(tb_curl_pool_t *cp, handles_t *h, const char *url)
{
    apr_size_t olen = origin_len(url);

    if (olen >= sizeof(h->origin)) {
        olen = 0;   /* such an origin is never matched: fine */
    }
    memcpy(h->origin, url, olen);
    h->origin[olen] = '\0';
    h->idle_since = apr_time_now();
    apr_thread_mutex_lock(cp->mutex);
    if (cp->nidle < cp->max_idle) {
        h->next = cp->idle;
        cp->idle = h;
        ++cp->nidle;
        h = NULL;
    }
    apr_thread_mutex_unlock(cp->mutex);
    if (h) {
        handles_destroy(h);
    }
}

/* One idle pair as the sweep saw it. */
typedef struct seen_t {
    handles_t *h;
    apr_time_t idle_since;       /* identifies that idle period */
    curl_socket_t fds[HANDLE_FDS];
    int close;
} seen_t;

static int seen_cmp(const void *a, const void *b)
{
    apr_uintptr_t x = (apr_uintptr_t)((const seen_t *)a)->h;
    apr_uintptr_t y = (apr_uintptr_t)((const seen_t *)b)->h;

    return x < y ? -1 : x > y;
}

/* Has the upstream closed one of these connections? A hang-up or an
 * error only: a readable socket may be an HTTP/2 PING or SETTINGS, which
 * is no reason to drop the connection. */
static int peer_closed(const curl_socket_t *fds)
{
    struct pollfd pfd[HANDLE_FDS];
    int i, n = 0;

    for (i = 0; i < HANDLE_FDS; ++i) {
        if (fds[i] != CURL_SOCKET_BAD) {
            pfd[n].fd = fds[i];
            pfd[n].events = POLLIN | POLLRDHUP;
            pfd[n].revents = 0;
            ++n;
        }
    }
    if (!n || poll(pfd, (nfds_t)n, 0) <= 0) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
            return 1;
        }
    }
    return 0;
}

unsigned int tb_curl_pool_sweep(tb_curl_pool_t *cp, apr_time_t now)
{
    seen_t *seen;
    handles_t *h, **pp, *doomed = NULL;
    unsigned int n = 0, i, closed = 0;

    /* 1. what is idle now (under the lock: idle pairs are nobody's) */
    apr_thread_mutex_lock(cp->mutex);
    seen = cp->nidle ? malloc(sizeof(*seen) * cp->nidle) : NULL;
    for (h = cp->idle; h && seen && n < cp->nidle; h = h->next, ++n) {
        seen[n].h = h;
        seen[n].idle_since = h->idle_since;
        memcpy(seen[n].fds, h->fds, sizeof(h->fds));
        seen[n].close = 0;
    }
    apr_thread_mutex_unlock(cp->mutex);
    if (!seen) {
        return 0;
    }
    /* 2. judge them unlocked: requests go on taking and giving back pairs */
    for (i = 0; i < n; ++i) {
        seen[i].close = now - seen[i].idle_since >= cp->keepalive
                        || peer_closed(seen[i].fds);
    }
    /* 3. take out those still idle since then, in one pass over the list
     * (a pair used meanwhile is judged at the next sweep) */
    qsort(seen, n, sizeof(*seen), seen_cmp);
    apr_thread_mutex_lock(cp->mutex);
    for (pp = &cp->idle; (h = *pp) != NULL; ) {
        seen_t key, *found;

        key.h = h;
        found = bsearch(&key, seen, n, sizeof(*seen), seen_cmp);
        if (found && found->close && found->idle_since == h->idle_since) {
            *pp = h->next;
            --cp->nidle;
            h->next = doomed;
            doomed = h;
        }
        else {
            pp = &h->next;
        }
    }
    apr_thread_mutex_unlock(cp->mutex);
    free(seen);
    /* 4. close them, unlocked */
    while ((h = doomed) != NULL) {
        doomed = h->next;
        handles_destroy(h);
        ++closed;
    }
    return closed;
}

typedef enum { PEER_IDLE, PEER_GONE, PEER_SENT_DATA } peer_state_t;

/* The client socket polled readable: closed, reset, or just data? */
static peer_state_t peer_state(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n == 0) {
        return PEER_GONE;
    }
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
               ? PEER_IDLE : PEER_GONE;
    }
    return PEER_SENT_DATA;
}

/* The request's headers as curl's list, built in `p`: curl only reads
 * the list (the caller owns it), and its nodes are a public struct, so no
 * malloc and free per header and request as curl_slist_append does. */
static struct curl_slist *build_headers(const tb_http_request_t *req,
                                        apr_pool_t *p)
{
    int i, n = req->headers ? req->headers->nelts : 0;
    struct curl_slist *nodes = apr_palloc(p, (n + 1) * sizeof(*nodes));
    struct curl_slist *list = NULL, **tail = &list;

    for (i = 0; i < n; ++i) {
        const char *h = APR_ARRAY_IDX(req->headers, i, const char *);
        /* NB: never let a CR or LF from data split a header */
        if (strpbrk(h, "\r\n")) {
            continue;
        }
        nodes[i].data = (char *)h;
        *tail = &nodes[i];
        tail = &nodes[i].next;
    }
    /* curl adds "Expect: 100-continue" to large POSTs: a round trip for
     * nothing against an API that always reads the body */
    nodes[n].data = (char *)"Expect:";
    *tail = &nodes[n];
    nodes[n].next = NULL;
    return list;
}

/* The request body. NB: curl sends a body below INLINE_POST_MAX given
 * whole (CURLOPT_POSTFIELDS) in the same write as the headers: one
 * segment, one wake-up of the upstream, measurably cheaper than headers
 * and body apart; pieces are joined for that (one copy of a small body),
 * a single piece is given as it is. Larger bodies go piece by piece
 * through the read callback, never copied whole. */
static void set_post_body(CURL *easy, xfer_t *x, const tb_http_request_t *req,
                          apr_pool_t *p)
{
    const char *body = req->body ? req->body : "";
    apr_size_t total = req->body_len;
    int i;

    if (req->body_iov) {
        for (total = 0, i = 0; i < req->body_iov->nelts; ++i) {
            total += APR_ARRAY_IDX(req->body_iov, i, tb_iovec_t).len;
        }
        if (req->body_iov->nelts == 1) {
            body = APR_ARRAY_IDX(req->body_iov, 0, tb_iovec_t).base;
        }
        else if (total <= INLINE_POST_MAX) {
            char *flat = apr_palloc(p, total + 1);
            apr_size_t at = 0;

            for (i = 0; i < req->body_iov->nelts; ++i) {
                const tb_iovec_t *v = &APR_ARRAY_IDX(req->body_iov, i, tb_iovec_t);
                memcpy(flat + at, v->base, v->len);
                at += v->len;
            }
            body = flat;
        }
        else {
            x->iov = req->body_iov;
            body = NULL;
        }
    }
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)total);
}

apr_status_t tb_curl_perform(tb_curl_pool_t *cpool,
                             const tb_http_request_t *req,
                             const tb_http_sink_t *sink, apr_pool_t *p,
                             tb_http_result_t *res)
{
    handles_t *h = NULL;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc = CURLE_OK;
    CURLMsg *msg;
    xfer_t x;
    int running = 1, left, added = 0, watch, client_gone = 0;
    apr_status_t rv = APR_SUCCESS;

    memset(res, 0, sizeof(*res));
    res->retry_after = -1;
    errbuf[0] = '\0';

    if (!(h = handles_acquire(cpool, req->url))
        || !(headers = build_headers(req, p))) {
        rv = APR_ENOMEM;
        goto leave;
    }
    memset(&x, 0, sizeof(x));
    x.easy = h->easy;
    x.sink = sink;
    x.res = res;
    x.pool = p;

    /* every option that varies is set on every request (no reset) */
    curl_easy_setopt(h->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)apr_time_as_msec(req->connect_timeout));
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS,
                     req->timeout > 0 ? (long)apr_time_as_msec(req->timeout) : 0L);
    curl_easy_setopt(h->easy, CURLOPT_READDATA, &x);
    curl_easy_setopt(h->easy, CURLOPT_SEEKDATA, &x);
    if (!strcmp(req->method, "POST")) {
        set_post_body(h->easy, &x, req, p);
    }
    else {
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
        if (strcmp(req->method, "GET")) {
            /* DELETE: a GET on the wire, but for its method */
            curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, req->method);
        }
    }

    if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK) {
        rv = APR_EGENERAL;
        goto leave;
    }
    added = 1;
    watch = req->watch_fd;
    while (running) {
        struct curl_waitfd wfd;
        apr_interval_time_t wait = apr_time_from_sec(1);

        if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        if (!running) {
            break;
        }
        if (sink->on_tick
            && (res->sink_rv = sink->on_tick(sink->ctx, apr_time_now(), &wait))
               != APR_SUCCESS) {
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        memset(&wfd, 0, sizeof(wfd));
        wfd.fd = watch;
        wfd.events = CURL_WAIT_POLLIN;
        if (curl_multi_poll(h->multi, &wfd, watch >= 0 ? 1 : 0,
                            (int)(wait > 0 ? apr_time_as_msec(wait) + 1 : 1),
                            NULL) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        if (watch >= 0 && wfd.revents) {
            switch (peer_state(watch)) {
            case PEER_GONE:
                client_gone = 1;
                break;
            case PEER_SENT_DATA:
                /* pipelined bytes keep the socket readable: stop watching
                 * it, a hang-up then shows when we next write */
                watch = -1;
                break;
            default:
                break;
            }
            if (client_gone) {
                cc = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
        }
    }
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            cc = msg->data.result;
        }
    }
    if (cc == CURLE_OK) {
        /* an empty body never called write_cb */
        if ((res->sink_rv = deliver_head(&x)) != APR_SUCCESS) {
            cc = CURLE_WRITE_ERROR;
        }
    }
    res->error = client_gone ? TB_UP_CLIENT_GONE : classify(cc);
    if (res->error != TB_UP_OK) {
        res->detail = apr_pstrdup(p, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        if (res->error != TB_UP_ABORTED) {
            res->status = 0;
        }
    }

leave:
    if (h) {
        if (added) {
            curl_multi_remove_handle(h->multi, h->easy);
        }
        /* the easy handle must not keep pointers into this request */
        curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, NULL);
        curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(h->easy, CURLOPT_READDATA, NULL);
        curl_easy_setopt(h->easy, CURLOPT_SEEKDATA, NULL);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
        handles_release(cpool, h, req->url);
    }
    return rv;
}

/* ---- the in-memory sink ------------------------------------------------------ */

static apr_status_t buffer_on_head(void *ctx, int status, const char *ctype)
{
    tb_http_buffer_t *b = ctx;

    b->status = status;
    b->content_type = ctype;
    return APR_SUCCESS;
}

static apr_status_t buffer_on_data(void *ctx, const char *buf, apr_size_t len)
{
    tb_http_buffer_t *b = ctx;

    return tb_buf_append(&b->body, b->pool, buf, len, b->max);
}

void tb_http_buffer_init(tb_http_buffer_t *buf, apr_pool_t *p, apr_size_t max,
                         tb_http_sink_t *sink)
{
    memset(buf, 0, sizeof(*buf));
    buf->pool = p;
    buf->max = max;
    memset(sink, 0, sizeof(*sink));
    sink->ctx = buf;
    sink->on_head = buffer_on_head;
    sink->on_data = buffer_on_data;
}
