/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>
#include <strings.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_forward.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_state.h"
#include "tb_catalog.h"
#include "tb_curl.h"
#include "tb_json.h"
#include "tb_sched.h"
#include "tb_stream.h"
#include "tb_util.h"

#define USER_AGENT "mod_tokenbay/" TB_VERSION

/* Largest single upstream SSE event, and most bytes of opening events held
 * back before the commit. */
#define MAX_STREAM_EVENT (4 * 1024 * 1024)
#define MAX_HELD         (64 * 1024)

/* Why the gateway itself stopped a transfer. */
#define TB_E_FIRST_TIMEOUT (APR_OS_START_USERERR + 201)
#define TB_E_IDLE_TIMEOUT  (APR_OS_START_USERERR + 202)
#define TB_E_STREAM_DONE   (APR_OS_START_USERERR + 203)

/* How long a finished stream's upstream may take to end its response. */
#define COMPLETE_GRACE apr_time_from_sec(1)

/* ---- building the upstream request --------------------------------------------- */

/* The client's bytes with only the model value replaced, so nothing else
 * changes on the way through. */
static const char *with_model(request_rec *r, const char *body, apr_size_t len,
                              const char *model, apr_size_t *plen)
{
    json_t *root;
    apr_size_t start, vlen;
    const char *quoted = tb_json_quote(r->pool, model);

    if (tb_json_member_span(body, len, "model", &start, &vlen) == APR_SUCCESS) {
        if (vlen == strlen(quoted) && !memcmp(body + start, quoted, vlen)) {
            *plen = len;
            return body;
        }
        return tb_json_splice(r->pool, body, len, start, vlen, quoted, plen);
    }
    /* unusual spelling (escaped keys): rebuild from a parsed tree */
    if (tb_json_parse(&root, r->pool, body, len, NULL) != APR_SUCCESS) {
        return NULL;
    }
    json_object_set_new(root, "model", json_string(model));
    return tb_json_dump(r->pool, root, plen);
}

/* Streams always ask the upstream for usage, so the gateway learns the
 * token counts whether or not the client wants the usage chunk. Spliced
 * into the raw bytes like the model: the client's other stream options and
 * numbers stay exactly as sent. Returns the body unchanged when it cannot
 * be done safely (usage then goes uncounted, the request still works). */
static const char *with_stream_usage(request_rec *r, const char *body,
                                     apr_size_t len, int client_asked,
                                     apr_size_t *plen)
{
    static const char OPTS[] = "{\"include_usage\":true}";
    apr_size_t start, vlen, istart, ilen, i;

    *plen = len;
    if (client_asked) {
        return body;
    }
    switch (tb_json_member_span(body, len, "stream_options", &start, &vlen)) {
    case APR_NOTFOUND:
        /* insert as the first member: the object has members (model) */
        for (i = 0; i < len && body[i] != '{'; ++i)
            ;
        return tb_json_splice(r->pool, body, len, i + 1, 0,
                              apr_pstrcat(r->pool, "\"stream_options\":", OPTS,
                                          ",", NULL), plen);
    case APR_SUCCESS:
        break;
    default:
        return body;
    }
    if (body[start] != '{') {
        /* null or not an object: replace it */
        return tb_json_splice(r->pool, body, len, start, vlen, OPTS, plen);
    }
    switch (tb_json_member_span(body + start, vlen, "include_usage", &istart,
                                &ilen)) {
    case APR_SUCCESS:
        return tb_json_splice(r->pool, body, len, start + istart, ilen, "true",
                              plen);
    case APR_NOTFOUND:
        for (i = start + 1; i < start + vlen && strchr(" \t\r\n", body[i]); ++i)
            ;
        return tb_json_splice(r->pool, body, len, start + 1, 0,
                              body[i] == '}' ? "\"include_usage\":true"
                                             : "\"include_usage\":true,", plen);
    default:
        return body;
    }
}

/* The client's socket, to notice a hang-up while waiting on the upstream;
 * -1 where there is none of our own (an HTTP/2 stream). */
static int client_fd(request_rec *r)
{
    conn_rec *c = r->connection;
    apr_socket_t *sock;
    apr_os_sock_t fd;

    if (c->master) {
        return -1;
    }
    sock = ap_get_conn_socket(c);
    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS) {
        return -1;
    }
    return fd;
}

static void build_request(request_rec *r, const tb_route_t *rt, const char *path,
                          const char *body, apr_size_t len,
                          const tb_openai_req_t *creq, tb_http_request_t *req)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);
    const tb_account_t *acct = rt->account;

    memset(req, 0, sizeof(*req));
    req->method = "POST";
    req->url = apr_pstrcat(r->pool, acct->base_url, path, NULL);
    req->headers = apr_array_make(r->pool, 5, sizeof(const char *));
    APR_ARRAY_PUSH(req->headers, const char *) = "Content-Type: application/json";
    APR_ARRAY_PUSH(req->headers, const char *) =
        creq->stream ? "Accept: text/event-stream" : "Accept: application/json";
    APR_ARRAY_PUSH(req->headers, const char *) = "User-Agent: " USER_AGENT;
    APR_ARRAY_PUSH(req->headers, const char *) =
        apr_pstrcat(r->pool, "X-Request-Id: ", tb_request_id(r), NULL);
    if (*acct->credential) {
        APR_ARRAY_PUSH(req->headers, const char *) =
            apr_pstrcat(r->pool, "Authorization: Bearer ", acct->credential, NULL);
    }
    req->body = with_model(r, body, len, rt->upstream_model, &req->body_len);
    req->connect_timeout = tb_conf_connect_timeout(dc);
    req->timeout = tb_conf_timeout(dc);
    req->watch_fd = client_fd(r);
}

/* ---- one attempt: the sink that decides between buffering and streaming ----------- */

typedef struct attempt_t {
    request_rec *r;
    int want_stream;             /* the client asked for SSE */
    int streaming;               /* ...and the upstream answered with SSE */
    tb_http_buffer_t buf;        /* anything else: buffered, bounded */
    tb_http_sink_t buf_sink;
    tb_stream_t *stream;
    apr_bucket_brigade *bb;      /* the one brigade for client writes */
    int client_gone;             /* a write to the client failed */
    int head_seen;               /* the upstream's status line arrived */
    int eos_sent;                /* the client's response is complete */
    apr_time_t completed;        /* when the stream reached [DONE] */
    apr_time_t started, last_data;
    apr_interval_time_t first_timeout, idle_timeout;
} attempt_t;

static apr_status_t out_commit(void *ctx)
{
    attempt_t *a = ctx;
    request_rec *r = a->r;

    r->status = HTTP_OK;
    ap_set_content_type(r, "text/event-stream");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    apr_table_unset(r->headers_out, "Content-Length");
    /* NB: compression filters would hold events back */
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    return APR_SUCCESS;
}

/* One or more complete events: copy (curl's buffer is not ours), FLUSH,
 * pass, check, clean up. */
static apr_status_t out_write(void *ctx, const char *buf, apr_size_t len)
{
    attempt_t *a = ctx;
    conn_rec *c = a->r->connection;
    apr_status_t rv;

    if (a->client_gone) {
        return APR_ECONNABORTED;
    }
    rv = apr_brigade_write(a->bb, NULL, NULL, buf, len);
    if (rv == APR_SUCCESS) {
        APR_BRIGADE_INSERT_TAIL(a->bb, apr_bucket_flush_create(c->bucket_alloc));
        rv = ap_pass_brigade(a->r->output_filters, a->bb);
    }
    apr_brigade_cleanup(a->bb);
    if (rv != APR_SUCCESS || c->aborted) {
        a->client_gone = 1;
        return APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

static apr_status_t attempt_on_head(void *ctx, int status, const char *ctype)
{
    attempt_t *a = ctx;

    a->head_seen = 1;
    a->streaming = a->want_stream && status == HTTP_OK && ctype
        && !strncasecmp(ctype, "text/event-stream", 17);
    return a->buf_sink.on_head(a->buf_sink.ctx, status, ctype);
}

/* The client's response is complete: end it now, whatever the upstream
 * still does with its connection. */
static void send_eos(attempt_t *a)
{
    conn_rec *c = a->r->connection;

    if (a->eos_sent || a->client_gone || c->aborted) {
        return;
    }
    a->eos_sent = 1;
    APR_BRIGADE_INSERT_TAIL(a->bb, apr_bucket_eos_create(c->bucket_alloc));
    ap_pass_brigade(a->r->output_filters, a->bb);
    apr_brigade_cleanup(a->bb);
}

static apr_status_t attempt_on_data(void *ctx, const char *data, apr_size_t len)
{
    attempt_t *a = ctx;
    apr_status_t rv;

    a->last_data = apr_time_now();
    if (!a->streaming) {
        return a->buf_sink.on_data(a->buf_sink.ctx, data, len);
    }
    rv = tb_stream_feed(a->stream, data, len);
    if (rv == APR_SUCCESS && !a->completed
        && tb_stream_state(a->stream) == TB_STREAM_COMPLETE) {
        a->completed = a->last_data;
        send_eos(a);
    }
    return rv;
}

/* The stream's own clocks: until the first content, the first-token
 * timeout (the attempt may then fail over); after it, the idle timeout. */
static apr_status_t attempt_on_tick(void *ctx, apr_time_t now,
                                    apr_interval_time_t *pwait)
{
    attempt_t *a = ctx;
    apr_time_t deadline;
    apr_status_t rv;

    if (a->completed) {
        /* [DONE] went out: give the upstream a moment to end its response
         * (so its connection can be reused), then stop waiting */
        deadline = a->completed + COMPLETE_GRACE;
        rv = TB_E_STREAM_DONE;
    }
    else if (a->head_seen && !a->streaming) {
        return APR_SUCCESS;   /* a buffered answer: TokenBayTimeout governs */
    }
    else if (tb_stream_state(a->stream) == TB_STREAM_OPEN) {
        deadline = a->started + a->first_timeout;
        rv = TB_E_FIRST_TIMEOUT;
    }
    else {
        deadline = a->last_data + a->idle_timeout;
        rv = TB_E_IDLE_TIMEOUT;
    }
    if (now >= deadline) {
        return rv;
    }
    if (deadline - now < *pwait) {
        *pwait = deadline - now;
    }
    return APR_SUCCESS;
}

static apr_status_t attempt_init(attempt_t *a, request_rec *r,
                                 const tb_openai_req_t *creq,
                                 apr_bucket_brigade *bb, tb_http_sink_t *sink)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);

    memset(a, 0, sizeof(*a));
    a->r = r;
    a->bb = bb;
    a->want_stream = creq->stream;
    a->started = a->last_data = apr_time_now();
    a->first_timeout = tb_conf_first_timeout(dc);
    a->idle_timeout = tb_conf_idle_timeout(dc);
    tb_http_buffer_init(&a->buf, r->pool, (apr_size_t)tb_conf_max_response(dc),
                        &a->buf_sink);
    memset(sink, 0, sizeof(*sink));
    sink->ctx = a;
    sink->on_head = attempt_on_head;
    sink->on_data = attempt_on_data;
    if (creq->stream) {
        tb_stream_opts_t opts;
        tb_stream_out_t out = { a, out_commit, out_write };

        opts.client_wants_usage = creq->include_usage;
        opts.max_event = MAX_STREAM_EVENT;
        opts.max_held = MAX_HELD;
        sink->on_tick = attempt_on_tick;
        return tb_stream_create(&a->stream, r->pool, &opts, &out);
    }
    return APR_SUCCESS;
}

/* ---- outcomes ------------------------------------------------------------------------- */

static void note_usage(request_rec *r, const tb_usage_t *u)
{
    if (u->prompt_tokens >= 0) {
        apr_table_setn(r->notes, "TOKENBAY_PROMPT_TOKENS",
                       apr_ltoa(r->pool, u->prompt_tokens));
    }
    if (u->completion_tokens >= 0) {
        apr_table_setn(r->notes, "TOKENBAY_COMPLETION_TOKENS",
                       apr_ltoa(r->pool, u->completion_tokens));
    }
    if (u->total_tokens >= 0) {
        apr_table_setn(r->notes, "TOKENBAY_TOTAL_TOKENS",
                       apr_ltoa(r->pool, u->total_tokens));
    }
}

static int relay_buffered(request_rec *r, const tb_http_buffer_t *buf)
{
    const char *ctype = buf->content_type ? buf->content_type : "application/json";

    const char *data = buf->body.data ? buf->body.data : "";

    if (buf->status >= 200 && buf->status < 300 && buf->body.len
        && !strncasecmp(ctype, "application/json", 16)) {
        tb_usage_t usage;

        tb_usage_init(&usage);
        if (tb_openai_usage_scan(r->pool, data, buf->body.len, &usage)) {
            note_usage(r, &usage);
        }
    }
    apr_table_setn(r->notes, "TOKENBAY_OUTCOME",
                   buf->status < 400 ? "ok" : "upstream_client_error");
    return tb_respond_body(r, buf->status, ctype, data, buf->body.len);
}

/* After the commit the account is never switched: the stream ends here,
 * completely or with an error chunk, and the request is classified. */
static int finish_committed(attempt_t *a, const tb_http_result_t *res)
{
    request_rec *r = a->r;
    conn_rec *c = r->connection;
    const char *outcome;

    if (tb_stream_state(a->stream) == TB_STREAM_COMMITTED && !a->client_gone
        && res->error != TB_UP_CLIENT_GONE && !c->aborted) {
        /* the upstream stopped: end the client's stream in its protocol */
        if (res->error == TB_UP_OK) {
            tb_stream_finish(a->stream);
        }
        else if (res->sink_rv == TB_E_IDLE_TIMEOUT) {
            tb_stream_fail(a->stream, "The upstream stopped sending events.",
                           "stream_idle_timeout");
        }
        else if (res->error == TB_UP_TIMEOUT) {
            tb_stream_fail(a->stream, "The upstream response took longer "
                           "than the gateway allows.", "stream_timeout");
        }
        else {
            tb_stream_fail(a->stream, "The upstream connection broke "
                           "mid-stream.", "stream_interrupted");
        }
    }
    if (tb_stream_state(a->stream) == TB_STREAM_COMPLETE) {
        outcome = "ok";   /* whatever the transport did after [DONE] */
    }
    else if (a->client_gone || res->error == TB_UP_CLIENT_GONE || c->aborted) {
        outcome = "client_aborted";
    }
    else {
        outcome = "interrupted";
    }
    if (strcmp(outcome, "ok")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, TB_LOGNO(44)
                      "stream via account %s ended: %s (%s)",
                      apr_table_get(r->notes, "TOKENBAY_ACCOUNT"), outcome,
                      res->detail ? res->detail : "upstream ended early");
    }
    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", outcome);
    apr_table_setn(r->notes, "TOKENBAY_TTFT_MS",
                   apr_ltoa(r->pool, (long)apr_time_as_msec(
                            tb_stream_committed_at(a->stream) - a->started)));
    note_usage(r, tb_stream_usage(a->stream));
    send_eos(a);
    return OK;
}

/* Statuses that say "this account, not this request": try another one.
 * Everything else (2xx, the client's own 4xx) goes back to the client. */
static int status_retryable(int status)
{
    return status == 401 || status == 403 || status == 408 || status == 409
        || status == 429 || status >= 500;
}

/* What the failed attempts add up to, when none succeeded. */
typedef struct failures_t {
    int connect, timeout, io;
    int rate_limited;        /* some attempt got 429 */
    int upstream_status;     /* the last status other than 429, or 0 */
    long retry_after;
} failures_t;

static void failures_answer(request_rec *r, const failures_t *f, int attempts,
                            tb_error_t *err)
{
    const char *n = apr_psprintf(r->pool, "%d attempt%s", attempts,
                                 attempts == 1 ? "" : "s");

    if (f->timeout) {
        tb_error_set(err, HTTP_GATEWAY_TIME_OUT, "api_error", "upstream_timeout",
                     NULL, apr_psprintf(r->pool, "The upstream did not answer "
                                        "in time (%s).", n));
    }
    else if (f->rate_limited && !f->connect && !f->io && !f->upstream_status) {
        tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                     "upstream_rate_limited", NULL,
                     apr_psprintf(r->pool, "Every upstream account is rate "
                                  "limited right now (%s); retry later.", n));
        err->retry_after = f->retry_after >= 0 ? f->retry_after : 1;
    }
    else {
        tb_error_set(err, HTTP_BAD_GATEWAY, "api_error", "upstream_error", NULL,
                     apr_psprintf(r->pool, "The upstream request failed "
                     "(%s; last: %s).", n,
                     f->upstream_status
                     ? apr_psprintf(r->pool, "HTTP %d", f->upstream_status)
                     : f->connect ? "connection failed"
                     : f->io ? "connection broken" : "stream error"));
    }
}

/* Record why an attempt failed (for the final answer) and log it. */
static void note_failure(request_rec *r, const char *account, int attempt,
                         const attempt_t *a, const tb_http_result_t *res,
                         failures_t *f)
{
    const char *why;

    if (res->error == TB_UP_OK && !a->streaming) {
        if (res->status != 429) {
            f->upstream_status = res->status;
        }
        else {
            f->rate_limited = 1;
            if (res->retry_after >= 0
                && (f->retry_after < 0 || res->retry_after < f->retry_after)) {
                f->retry_after = res->retry_after;
            }
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, TB_LOGNO(42)
                      "account %s answered HTTP %d (attempt %d)",
                      account, res->status, attempt);
        return;
    }
    if (res->sink_rv == TB_E_FIRST_TIMEOUT || res->error == TB_UP_TIMEOUT) {
        f->timeout = 1;
        why = res->sink_rv == TB_E_FIRST_TIMEOUT ? "no content before "
              "TokenBayFirstTokenTimeout" : res->detail;
    }
    else if (res->sink_rv == TB_STREAM_E_UPSTREAM) {
        f->io = 1;
        why = apr_pstrcat(r->pool, "error event before any content: ",
                          tb_stream_upstream_error(a->stream), NULL);
    }
    else if (res->error == TB_UP_OK) {
        f->io = 1;
        why = "stream ended before any content";
    }
    else {
        if (res->error == TB_UP_CONNECT) {
            f->connect = 1;
        }
        else {
            f->io = 1;
        }
        why = res->detail;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, TB_LOGNO(43)
                  "account %s failed: %s (attempt %d)", account,
                  why ? why : "unknown error", attempt);
}

/* ---- the attempt loop ------------------------------------------------------------------ */

int tb_forward(request_rec *r, const char *path, const char *body,
               apr_size_t len, const tb_openai_req_t *creq,
               apr_array_header_t *routes)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);
    int max_attempts = tb_conf_max_attempts(dc), attempts = 0, idx;
    unsigned char *tried = apr_pcalloc(r->pool, routes->nelts ? routes->nelts : 1);
    const tb_route_t *rt = (const tb_route_t *)routes->elts;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    failures_t fail;
    tb_error_t err;

    memset(&fail, 0, sizeof(fail));
    fail.retry_after = -1;
    if (creq->stream) {
        /* the same for every account: done once, only the model differs */
        apr_table_setn(r->notes, "TOKENBAY_STREAM", "1");
        body = with_stream_usage(r, body, len, creq->include_usage, &len);
    }
    while (attempts < max_attempts
           && (idx = tb_sched_pick(rt, routes->nelts, tried, tb_random_u32())) >= 0) {
        const tb_account_t *acct = rt[idx].account;
        tb_http_request_t req;
        tb_http_result_t res;
        tb_http_sink_t sink;
        attempt_t a;
        apr_status_t rv;

        tried[idx] = 1;
        ++attempts;
        build_request(r, &rt[idx], path, body, len, creq, &req);
        if (!req.body || attempt_init(&a, r, creq, bb, &sink) != APR_SUCCESS) {
            tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error", NULL,
                         NULL, "The upstream request could not be prepared.");
            return tb_respond_error(r, &err);
        }
        apr_table_setn(r->notes, "TOKENBAY_ACCOUNT", acct->name);
        apr_table_setn(r->notes, "TOKENBAY_UPSTREAM_MODEL", rt[idx].upstream_model);
        apr_table_setn(r->notes, "TOKENBAY_ATTEMPTS", apr_itoa(r->pool, attempts));

        rv = tb_curl_perform(tb_state_curl_pool(), &req, &sink, r->pool, &res);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, TB_LOGNO(40)
                          "cannot set up an upstream request");
            tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error", NULL,
                         NULL, "The upstream request could not be set up.");
            return tb_respond_error(r, &err);
        }
        if (a.stream && tb_stream_state(a.stream) != TB_STREAM_OPEN) {
            return finish_committed(&a, &res);
        }
        if (res.error == TB_UP_CLIENT_GONE || a.client_gone || r->connection->aborted) {
            apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "client_aborted");
            return OK;
        }
        if (res.error == TB_UP_OK && !a.streaming && !status_retryable(res.status)) {
            apr_table_setn(r->notes, "TOKENBAY_UPSTREAM_STATUS",
                           apr_itoa(r->pool, res.status));
            return relay_buffered(r, &a.buf);
        }
        if (res.error == TB_UP_OK && a.streaming) {
            /* the upstream's stream ended without content: maybe an event
             * that lacked its blank line still commits it */
            res.sink_rv = tb_stream_finish(a.stream);
            if (tb_stream_state(a.stream) != TB_STREAM_OPEN) {
                return finish_committed(&a, &res);
            }
        }
        if (res.error == TB_UP_ABORTED && res.sink_rv == APR_ENOSPC) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, TB_LOGNO(41)
                          "account %s: response or event larger than the "
                          "gateway accepts", acct->name);
            tb_error_set(&err, HTTP_BAD_GATEWAY, "api_error",
                         "upstream_response_too_large", NULL,
                         "The upstream response exceeds the gateway's limit.");
            apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "upstream_error");
            return tb_respond_error(r, &err);
        }
        note_failure(r, acct->name, attempts, &a, &res, &fail);
    }
    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "upstream_error");
    if (!attempts) {
        tb_error_set(&err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                     "no_available_account", NULL,
                     "No upstream account can take this request right now.");
        err.retry_after = 1;
        return tb_respond_error(r, &err);
    }
    failures_answer(r, &fail, attempts, &err);
    return tb_respond_error(r, &err);
}
