/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_forward.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_shared.h"
#include "mod_tokenbay_state.h"
#include "tb_catalog.h"
#include "tb_curl.h"
#include "tb_json.h"
#include "tb_sched.h"
#include "tb_sha256.h"
#include "tb_stream.h"
#include "tb_dialect.h"
#include "tb_util.h"

#define USER_AGENT "mod_tokenbay/" TB_VERSION

/* Largest single upstream SSE event, and most bytes of opening events held
 * back before the commit (Responses opening events echo the request's
 * instructions and tools: tens of kilobytes for a Codex turn). */
#define MAX_STREAM_EVENT (4 * 1024 * 1024)
#define MAX_HELD         (1024 * 1024)

/* Why the gateway itself stopped a transfer. */
#define TB_E_FIRST_TIMEOUT (APR_OS_START_USERERR + 201)
#define TB_E_IDLE_TIMEOUT  (APR_OS_START_USERERR + 202)
#define TB_E_STREAM_DONE   (APR_OS_START_USERERR + 203)

/* How long a finished stream's upstream may take to end its response. */
#define COMPLETE_GRACE apr_time_from_sec(1)

/* ---- building the upstream request --------------------------------------------- */

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

/* What one request carries through its attempts. */
typedef struct fwd_t {
    request_rec *r;
    const tb_dialect_t *client;  /* the dialect the client speaks */
    tb_req_info_t *info;         /* what the scan of its body found */
    tb_ir_req_t *ir;             /* the request in the IR: parsed once, on
                                  * the first converted attempt */
    apr_bucket_brigade *bb;      /* the one brigade for client writes */
} fwd_t;

/* What every upstream request carries: who asks (never the client's
 * key), the account's credential in its dialect's way, the timeouts, and
 * the client's socket to watch. */
static void request_common(request_rec *r, const tb_account_t *acct,
                           tb_http_request_t *req, const char *accept)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);

    req->headers = apr_array_make(r->pool, 6, sizeof(const char *));
    APR_ARRAY_PUSH(req->headers, const char *) =
        apr_pstrcat(r->pool, "Accept: ", accept, NULL);
    APR_ARRAY_PUSH(req->headers, const char *) = "User-Agent: " USER_AGENT;
    APR_ARRAY_PUSH(req->headers, const char *) =
        apr_pstrcat(r->pool, "X-Request-Id: ", tb_request_id(r), NULL);
    acct->dialect->auth(r->pool, acct->credential, req->headers);
    req->connect_timeout = tb_conf_connect_timeout(dc);
    req->timeout = tb_conf_timeout(dc);
    req->watch_fd = client_fd(r);
}

/* The upstream request for one account: the client's bytes with the model
 * spliced in when the account speaks the client's dialect (the fast path,
 * no copy), else the request converted through the IR. APR_EINVAL with
 * *err when this account cannot express the request. */
static apr_status_t build_request(fwd_t *f, const tb_route_t *rt,
                                  tb_http_request_t *req, tb_ir_error_t *err)
{
    request_rec *r = f->r;
    const tb_account_t *acct = rt->account;
    const tb_dialect_t *up = acct->dialect;
    apr_array_header_t *iov;
    apr_status_t rv;

    memset(req, 0, sizeof(*req));
    if (up == f->client) {
        if ((rv = up->splice(r->pool, f->info, rt->upstream_model, acct->caps, &iov))
            != APR_SUCCESS) {
            return rv;
        }
        req->body_iov = iov;
    }
    else {
        if (!f->ir && (rv = f->client->parse(r->pool, f->info, &f->ir, err))
                      != APR_SUCCESS) {
            return rv;
        }
        if ((rv = up->emit(r->pool, f->ir, rt->upstream_model, acct->caps,
                           &req->body, &req->body_len, err)) != APR_SUCCESS) {
            return rv;
        }
    }
    req->method = "POST";
    req->url = apr_pstrcat(r->pool, acct->base_url,
                           up->path(r->pool, f->info->op, rt->upstream_model,
                                    f->info->stream), NULL);
    request_common(r, acct, req, f->info->stream ? "text/event-stream"
                                                 : "application/json");
    APR_ARRAY_PUSH(req->headers, const char *) = "Content-Type: application/json";
    return APR_SUCCESS;
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
    void (*on_commit)(void *ctx);   /* the attempt's answer begins */
    void *commit_ctx;
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
    if (a->on_commit) {
        a->on_commit(a->commit_ctx);
    }
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
    /* ended, completely or with an error the client has been told of:
     * the client's response ends now, whatever the upstream still does */
    if (rv == APR_SUCCESS && !a->completed
        && tb_stream_state(a->stream) >= TB_STREAM_COMPLETE) {
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

static apr_status_t attempt_init(attempt_t *a, fwd_t *f, const tb_route_t *rt,
                                 tb_http_sink_t *sink)
{
    request_rec *r = f->r;
    tb_dir_conf_t *dc = tb_conf_dir(r);

    memset(a, 0, sizeof(*a));
    a->r = r;
    a->bb = f->bb;
    a->want_stream = f->info->stream;
    a->started = a->last_data = apr_time_now();
    a->first_timeout = tb_conf_first_timeout(dc);
    a->idle_timeout = tb_conf_idle_timeout(dc);
    tb_http_buffer_init(&a->buf, r->pool, (apr_size_t)tb_conf_max_response(dc),
                        &a->buf_sink);
    memset(sink, 0, sizeof(*sink));
    sink->ctx = a;
    sink->on_head = attempt_on_head;
    sink->on_data = attempt_on_data;
    if (f->info->stream) {
        tb_stream_opts_t opts;
        tb_stream_out_t out = { a, out_commit, out_write };

        memset(&opts, 0, sizeof(opts));
        opts.client = f->client;
        opts.upstream = rt->account->dialect;
        opts.req = f->ir;
        opts.client_wants_usage = f->info->include_usage;
        opts.max_event = MAX_STREAM_EVENT;
        opts.max_held = MAX_HELD;
        sink->on_tick = attempt_on_tick;
        return tb_stream_create(&a->stream, r->pool, &opts, &out);
    }
    return APR_SUCCESS;
}

/* ---- outcomes ------------------------------------------------------------------------- */

static void note_count(request_rec *r, const char *name, long v)
{
    if (v >= 0) {
        apr_table_setn(r->notes, name, apr_ltoa(r->pool, v));
    }
}

static void note_usage(request_rec *r, const tb_ir_usage_t *u)
{
    note_count(r, "TOKENBAY_PROMPT_TOKENS", u->input);
    note_count(r, "TOKENBAY_COMPLETION_TOKENS", u->output);
    note_count(r, "TOKENBAY_TOTAL_TOKENS", tb_ir_usage_total(u));
    note_count(r, "TOKENBAY_CACHED_TOKENS", u->input_cached);
    note_count(r, "TOKENBAY_REASONING_TOKENS", u->output_reasoning);
}

static int is_json(const char *ctype)
{
    return !strncasecmp(ctype, "application/json", 16);
}

/* A complete (non-stream) answer: relayed as it is when the account
 * speaks the client's dialect, else converted through the IR. Errors
 * that are the client's (4xx other than the account's own) go back with
 * their status, in the client's error shape. */
static int answer_buffered(fwd_t *f, const tb_route_t *rt,
                           const tb_http_buffer_t *buf)
{
    request_rec *r = f->r;
    const tb_dialect_t *up = rt->account->dialect;
    const char *ctype = buf->content_type ? buf->content_type : "application/json";
    const char *data = buf->body.data ? buf->body.data : "";
    int ok = buf->status >= 200 && buf->status < 300;
    tb_ir_usage_t usage;
    tb_ir_resp_t *resp;
    tb_ir_error_t ierr;
    tb_error_t err;
    const char *body;
    apr_size_t len;

    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", ok ? "ok" : "upstream_client_error");
    if (up == f->client) {
        tb_ir_usage_init(&usage);
        if (ok && buf->body.len && is_json(ctype)
            && up->usage_scan(r->pool, data, buf->body.len, &usage)) {
            note_usage(r, &usage);
        }
        return tb_respond_body(r, buf->status, ctype, data, buf->body.len);
    }
    if (!ok) {
        if (!strcmp(up->error_family, f->client->error_family) && is_json(ctype)) {
            return tb_respond_body(r, buf->status, ctype, data, buf->body.len);
        }
        up->error_read(r->pool, buf->status, data, buf->body.len, &ierr);
        body = f->client->render_error(r->pool, &ierr);
        return tb_respond_body(r, buf->status, "application/json", body, strlen(body));
    }
    if (!is_json(ctype) || up->parse_response(r->pool, data, buf->body.len, &resp)
                           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, TB_LOGNO(45)
                      "account %s: an answer the gateway cannot read (%s, %"
                      APR_SIZE_T_FMT " bytes)", rt->account->name, ctype,
                      buf->body.len);
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "upstream_error");
        tb_error_set(&err, HTTP_BAD_GATEWAY, "api_error", "upstream_error", NULL,
                     "The upstream's answer could not be read.");
        return tb_respond_error(r, &err);
    }
    note_usage(r, &resp->usage);
    if (resp->failed) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "upstream_error");
        tb_error_set(&err, HTTP_BAD_GATEWAY, resp->error.type ? resp->error.type
                     : "api_error", resp->error.code ? resp->error.code
                     : "upstream_error", NULL, resp->error.message);
        return tb_respond_error(r, &err);
    }
    if (f->client->render(r->pool, f->ir, resp, &body, &len) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return tb_respond_body(r, HTTP_OK, "application/json", body, len);
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
        else if (res->sink_rv == APR_ENOSPC) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, TB_LOGNO(48)
                          "account %s: stream event larger than the gateway "
                          "accepts", apr_table_get(r->notes, "TOKENBAY_ACCOUNT"));
            tb_stream_fail(a->stream, "An upstream event exceeds the gateway's "
                           "limit.", "upstream_response_too_large");
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
    apr_interval_time_t retry_after;  /* the shortest asked for, -1 none */
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
        if (f->retry_after >= 0) {
            err->retry_after_ms = (long)apr_time_as_msec(f->retry_after + 999);
        }
        else {
            err->retry_after = 1;
        }
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
                          tb_stream_upstream_error(a->stream)
                          ? tb_stream_upstream_error(a->stream)->message : "", NULL);
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

/* ---- scheduling ------------------------------------------------------------------- */

/* How long a request waiting for a slot sleeps between looks. */
#define QUEUE_POLL_MIN apr_time_from_msec(5)
#define QUEUE_POLL_SPAN 10          /* + 0..9 ms, so waiters spread */

/* Longest response id or session value remembered as it is. */
#define MAX_ID_LEN 128

/* What the scheduler needs of one request. */
typedef struct sched_req_t {
    tb_sched_t *table;           /* NULL: no shared state */
    tb_sched_cand_t *cands;      /* one per route */
    tb_sched_want_t want;
    const char *resp_key;        /* sticky key of previous_response_id */
    const char *session_key;     /* sticky key of the session */
    int session_account;         /* the account it has, 0 none */
    apr_time_t session_stored;   /* ... since */
    int keep_response_id;        /* the upstream keeps the response */
    int owner_gone;              /* previous_response_id names a response
                                  * of an account that cannot serve now */
    long key_id;                 /* the gateway key's */
    int sticky_from;             /* the layer of want.preferred: 1 or 2 */
    tb_sched_policy_t policy;
} sched_req_t;

/* A top-level string member of the request, or NULL. */
static const char *body_string(request_rec *r, const tb_req_info_t *info,
                               const char *name)
{
    int n = tb_jdoc_member(&info->doc, 0, name);

    return n >= 0 ? tb_jdoc_string(&info->doc, n, r->pool) : NULL;
}

/* A key of the sticky cache: a hash of the client's value (of any length:
 * it fits every provider's keys), its kind ('s' a session, 'r' a
 * response) and the gateway key it belongs to (another key's finds
 * nothing). NB: it starts with one of 64 printable characters ('?' to
 * '~') taken from the hash: shmcb puts an entry in the subcache its first
 * byte names, and keys that all began alike shared one subcache of its 64
 * (the default size), a 64th of the room, where entries were pushed out
 * under load. */
static const char *sticky_key(apr_pool_t *p, char kind, long key_id,
                              const char *value)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[TB_SHA256_DIGEST_LEN];
    char hex[33];
    int i;

    tb_sha256(value, strlen(value), md);
    for (i = 0; i < 16; ++i) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[32] = '\0';
    return apr_psprintf(p, "%c%s:%c:%ld", '?' + (md[16] & 63), hex, kind, key_id);
}

/* The session a request belongs to: Codex's session_id header, then the
 * body's prompt_cache_key, then its user. */
static const char *session_key(request_rec *r, const tb_req_info_t *info,
                               long key_id)
{
    const char *v = apr_table_get(r->headers_in, "session_id");

    if (!v || !*v) {
        v = apr_table_get(r->headers_in, "session-id");
    }
    if (!v || !*v) {
        v = body_string(r, info, "prompt_cache_key");
    }
    if (!v || !*v) {
        v = body_string(r, info, "user");
    }
    return v && *v ? sticky_key(r->pool, 's', key_id, v) : NULL;
}

/* The sticky key of a response id. */
static const char *response_key(apr_pool_t *p, const char *id, long key_id)
{
    return id && *id && strlen(id) <= MAX_ID_LEN ? sticky_key(p, 'r', key_id, id)
                                                 : NULL;
}

/* The candidate serving account `id`, or -1. */
static int cand_of_account(const tb_route_t *rt, int n, int id)
{
    int i;

    for (i = 0; id > 0 && i < n; ++i) {
        if (rt[i].account->id == id) {
            return i;
        }
    }
    return -1;
}

static void sched_init(sched_req_t *sr, request_rec *r, const tb_req_info_t *info,
                       const char *model_id, long key_id,
                       const apr_array_header_t *routes)
{
    const tb_route_t *rt = (const tb_route_t *)routes->elts;
    int i, n = routes->nelts;

    memset(sr, 0, sizeof(*sr));
    sr->key_id = key_id;
    sr->table = tb_shared_sched();
    sr->cands = apr_pcalloc(r->pool, (n ? n : 1) * sizeof(*sr->cands));
    for (i = 0; i < n; ++i) {
        const tb_account_t *a = rt[i].account;
        sr->cands[i].slot = a->sched_slot;
        sr->cands[i].priority = a->priority;
        sr->cands[i].weight = a->weight;
        sr->cands[i].limit = a->max_concurrency;
    }
    sr->want.model = tb_sched_model_hash(model_id);
    sr->want.preferred = -1;
    tb_shared_policy(r->server, &sr->policy);

    /* (1) the account that produced the response this one continues: it
     * alone holds it */
    if (info->op != TB_OP_CHAT) {
        sr->resp_key = response_key(r->pool,
                                    body_string(r, info, "previous_response_id"),
                                    key_id);
    }
    if (sr->resp_key) {
        /* NB: "unknown" is not memoised: it may be stored any moment */
        int owner = tb_sticky_get(r, sr->resp_key, 0, NULL);

        sr->want.preferred = cand_of_account(rt, n, owner);
        if (sr->want.preferred >= 0) {
            sr->want.strict = 1;
            sr->sticky_from = 1;
        }
        else if (owner) {
            sr->owner_gone = 1;   /* it made the response, and cannot serve */
        }
    }
    /* (2) the account the session used last, while it is fit */
    sr->session_key = session_key(r, info, key_id);
    if (sr->session_key && sr->want.preferred < 0) {
        sr->session_account = tb_sticky_get(r, sr->session_key, 1,
                                            &sr->session_stored);
        sr->want.preferred = cand_of_account(rt, n, sr->session_account);
        if (sr->want.preferred >= 0) {
            sr->sticky_from = 2;
        }
    }
    /* an upstream keeps a response only when asked to (store, true by
     * default): an id it forgets is not worth remembering */
    sr->keep_response_id = info->op == TB_OP_RESPONSES
        && !tb_jdoc_is(&info->doc, tb_jdoc_member(&info->doc, 0, "store"), "false");
}

/* Has the client hung up while the request waits? (Nothing is read: a
 * pipelined next request is data, not a hang-up.) */
static int client_hung_up(request_rec *r)
{
    int fd = client_fd(r);
    char b;

    return r->connection->aborted
        || (fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0);
}

/* The upstream's error code, when its answer has one. */
static const char *error_code_of(request_rec *r, const tb_dialect_t *up,
                                 const tb_http_buffer_t *buf)
{
    tb_ir_error_t ierr;

    if (!buf->body.len || !buf->content_type || !is_json(buf->content_type)) {
        return NULL;
    }
    memset(&ierr, 0, sizeof(ierr));
    up->error_read(r->pool, buf->status, buf->body.data, buf->body.len, &ierr);
    return ierr.code;
}

/* A code that says the account's money or quota is gone, not a burst. */
static int is_quota_code(const char *code)
{
    return code && (strstr(code, "insufficient_quota") || strstr(code, "billing")
                    || strstr(code, "quota_exceeded"));
}

/* What an attempt that did not answer the client says of the account.
 * TB_OUT__COUNT: nothing (the client left, or the gateway's own limit). */
static tb_outcome_t failure_outcome(request_rec *r, const tb_route_t *rt,
                                    const attempt_t *a, const tb_http_result_t *res,
                                    const char **pcode)
{
    *pcode = NULL;
    if (res->error == TB_UP_OK && !a->streaming) {
        *pcode = error_code_of(r, rt->account->dialect, &a->buf);
        if (res->status == 429) {
            return is_quota_code(*pcode) ? TB_OUT_QUOTA : TB_OUT_RATE_LIMITED;
        }
        if (res->status == 401 || res->status == 403) {
            return TB_OUT_AUTH;
        }
        return TB_OUT_SERVER;
    }
    if (res->sink_rv == TB_E_FIRST_TIMEOUT || res->error == TB_UP_TIMEOUT) {
        return TB_OUT_TIMEOUT;
    }
    if (res->sink_rv == TB_STREAM_E_UPSTREAM) {
        const tb_ir_error_t *e = tb_stream_upstream_error(a->stream);
        *pcode = e ? e->code : NULL;
        return is_quota_code(*pcode) ? TB_OUT_QUOTA
             : *pcode && strstr(*pcode, "rate_limit") ? TB_OUT_RATE_LIMITED
             : TB_OUT_STREAM;
    }
    switch (res->error) {
    case TB_UP_CONNECT:
        return TB_OUT_CONNECT;
    case TB_UP_CLIENT_GONE:
        return TB_OUT__COUNT;
    case TB_UP_ABORTED:
        return res->sink_rv == APR_ENOSPC ? TB_OUT__COUNT : TB_OUT_STREAM;
    default:
        return TB_OUT_STREAM;
    }
}

/* Tell the scheduler; a new error mark is logged and written to the
 * database once, by the request that set it. */
static void report(request_rec *r, sched_req_t *sr, const tb_route_t *rt,
                   int idx, tb_outcome_t out, int status,
                   apr_interval_time_t retry_after, const char *code,
                   apr_time_t started)
{
    const tb_account_t *acct = rt->account;
    apr_interval_time_t d;

    if (out == TB_OUT__COUNT) {
        return;
    }
    d = tb_sched_report(sr->table, sr->cands[idx].slot, sr->want.model, out,
                        status, retry_after, &sr->policy, started, apr_time_now());
    if (out == TB_OUT_AUTH && sr->cands[idx].slot < 0) {
        d = -1;   /* no slot to hold the mark: the database holds it */
    }
    if (d < 0) {
        /* NB: the upstream's error code only (bounded): its message may
         * quote the credential */
        const char *reason = apr_psprintf(r->pool, "upstream answered HTTP %d%s%.96s",
                                          status, code ? ": " : "",
                                          code ? code : "");
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, TB_LOGNO(53)
                      "account %s marked error: %s; it is not scheduled until "
                      "an operator re-enables it (tokenbay-admin account "
                      "enable %s)", acct->name, reason, acct->name);
        tb_state_account_mark_error(r, acct, reason);
    }
    else if (d > 0) {
        /* quota and connection failures cool the whole account */
        int whole = out == TB_OUT_QUOTA || out == TB_OUT_CONNECT;

        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, TB_LOGNO(54)
                      "account %s cools for %" APR_TIME_T_FMT " ms%s%s: %s",
                      acct->name, apr_time_as_msec(d), whole ? "" : " for model ",
                      whole ? "" : apr_table_get(r->notes, "TOKENBAY_MODEL"),
                      tb_outcome_name(out));
    }
}

/* The answer went to the client: remember who gave it. */
static void remember(fwd_t *f, sched_req_t *sr, const tb_route_t *rt,
                     const char *response_id)
{
    request_rec *r = f->r;
    tb_srv_conf_t *sc = tb_conf_srv(r->server);
    const char *key;

    /* NB: the shared cache is written only when the session moves, or
     * when its entry is a quarter of its TTL old (an active session never
     * expires): not at every request */
    if (sr->session_key && (sr->session_account != rt->account->id
                            || apr_time_now() - sr->session_stored
                               > tb_conf_sticky_ttl(sc) / 4)) {
        tb_sticky_set(r, sr->session_key, rt->account->id, tb_conf_sticky_ttl(sc));
    }
    /* only an id the client sees is worth keeping: the account's own,
     * when it speaks the client's dialect */
    if (sr->keep_response_id && rt->account->dialect == f->client
        && (key = response_key(r->pool, response_id, sr->key_id))) {
        tb_sticky_set(r, key, rt->account->id, tb_conf_response_ttl(sc));
    }
}

/* A stream commits: who answers is remembered before the client can have
 * read the end of the answer (and continue it, from any process). */
typedef struct commit_memo_t {
    fwd_t *f;
    sched_req_t *sr;
    const tb_route_t *rt;
    attempt_t *a;
} commit_memo_t;

static void remember_at_commit(void *ctx)
{
    commit_memo_t *cm = ctx;

    remember(cm->f, cm->sr, cm->rt, tb_stream_response_id(cm->a->stream));
}

/* The top-level "id" of a buffered answer. */
static const char *answer_id(request_rec *r, const tb_http_buffer_t *buf)
{
    apr_size_t at, len;

    if (buf->status < 200 || buf->status >= 300 || !buf->body.len
        || tb_json_first_member_span(buf->body.data, buf->body.len, "id", &at, &len)
           != APR_SUCCESS
        || len < 2 || buf->body.data[at] != '"') {
        return NULL;
    }
    return tb_json_string_value(r->pool, buf->body.data + at, len);
}

/* The response a request continues belongs to an account that is gone,
 * disabled or marked error: no other account holds it, and none is asked
 * to start afresh. The upstream's own answer to an unknown id. */
static int answer_previous_gone(request_rec *r, const tb_req_info_t *info)
{
    tb_error_t err;
    const char *id = body_string(r, info, "previous_response_id");

    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
    tb_error_set(&err, HTTP_NOT_FOUND, "invalid_request_error",
                 "previous_response_not_found", "previous_response_id",
                 apr_psprintf(r->pool, "Previous response with id '%s' not "
                              "found.", id ? id : ""));
    return tb_respond_error(r, &err);
}

/* Every account that could serve is at its concurrency limit and stayed
 * so for TokenBayQueueTimeout. */
static int answer_full(request_rec *r, const char *model)
{
    tb_error_t err;

    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
    tb_error_set(&err, HTTP_TOO_MANY_REQUESTS, "requests", "rate_limit_exceeded",
                 NULL, apr_psprintf(r->pool, "Every upstream account for the "
                 "model '%s' is at its concurrency limit; retry shortly.", model));
    err.retry_after = 1;
    return tb_respond_error(r, &err);
}

/* ---- the attempt loop ------------------------------------------------------------------ */

/* How long the request waited for a slot, for the log. */
static void note_queued(request_rec *r, apr_time_t queued_at, apr_time_t now)
{
    apr_table_setn(r->notes, "TOKENBAY_QUEUE_MS",
                   apr_ltoa(r->pool, (long)apr_time_as_msec(now - queued_at)));
}

static const char *layer_name(tb_pick_t pick, const sched_req_t *sr)
{
    switch (pick) {
    case TB_PICK_PREFERRED:
        return sr->sticky_from == 1 ? "previous_response" : "session";
    case TB_PICK_RECOVERING:
        return "recovering";
    default:
        return "priority";
    }
}

int tb_forward(request_rec *r, const tb_dialect_t *client, tb_req_info_t *info,
               const char *model_id, long key_id, apr_array_header_t *routes)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);
    int max_attempts = tb_conf_max_attempts(dc), attempts = 0, idx;
    unsigned char *tried = apr_pcalloc(r->pool, routes->nelts ? routes->nelts : 1);
    const tb_route_t *rt = (const tb_route_t *)routes->elts;
    apr_time_t queue_until = 0, queued_at = 0;
    sched_req_t sr;
    fwd_t f;
    failures_t fail;
    tb_ir_error_t conv_err;
    int conv_failed = 0, full = 0;
    tb_error_t err;

    memset(&f, 0, sizeof(f));
    f.r = r;
    f.client = client;
    f.info = info;
    f.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    memset(&fail, 0, sizeof(fail));
    fail.retry_after = -1;
    if (info->stream) {
        apr_table_setn(r->notes, "TOKENBAY_STREAM", "1");
    }
    sched_init(&sr, r, info, model_id, key_id, routes);
    if (sr.owner_gone) {
        return answer_previous_gone(r, info);
    }
    memset(&conv_err, 0, sizeof(conv_err));
    while (attempts < max_attempts) {
        const tb_account_t *acct;
        tb_http_request_t req;
        tb_http_result_t res;
        tb_http_sink_t sink;
        tb_lease_t *lease;
        tb_outcome_t out;
        const char *code;
        tb_pick_t pick;
        attempt_t a;
        apr_status_t rv;

        sr.want.now = apr_time_now();
        sr.want.rnd = tb_random_u32();
        pick = tb_sched_pick(sr.table, tb_shared_proc(), sr.cands, routes->nelts,
                             tried, &sr.want, &idx);
        if (pick == TB_PICK_NONE) {
            if (sr.sticky_from == 1 && !attempts && !conv_failed) {
                return answer_previous_gone(r, info);   /* marked error */
            }
            break;
        }
        if (pick == TB_PICK_FULL) {
            /* wait, boundedly, for a slot on an account fit to serve */
            if (!queue_until) {
                queued_at = sr.want.now;
                queue_until = queued_at + tb_conf_queue_timeout(dc);
            }
            if (sr.want.now >= queue_until || client_hung_up(r)) {
                note_queued(r, queued_at, sr.want.now);
                full = 1;
                break;
            }
            apr_sleep(QUEUE_POLL_MIN
                      + apr_time_from_msec(tb_random_u32() % QUEUE_POLL_SPAN));
            continue;
        }
        acct = rt[idx].account;
        lease = tb_shared_lease(r, sr.cands[idx].slot);
        tried[idx] = 1;
        apr_table_setn(r->notes, "TOKENBAY_SCHED", layer_name(pick, &sr));
        if (sr.sticky_from != 1) {
            /* failover: the others, by the usual rules; but a response is
             * continued by its account or not at all */
            sr.want.preferred = -1;
        }
        if (queued_at) {
            note_queued(r, queued_at, sr.want.now);
        }
        memset(&conv_err, 0, sizeof(conv_err));
        if ((rv = build_request(&f, &rt[idx], &req, &conv_err)) != APR_SUCCESS) {
            tb_shared_lease_end(r, lease);
            if (rv != APR_EINVAL) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, TB_LOGNO(47)
                              "account %s (%s): the request could not be built: %s",
                              acct->name, acct->protocol, conv_err.message
                              ? conv_err.message : "conversion failed");
                tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error",
                             "conversion_failed", NULL,
                             "The request could not be prepared for the upstream.");
                return tb_respond_error(r, &err);
            }
            /* this account cannot express the request; another may */
            conv_failed = 1;
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, TB_LOGNO(46)
                          "account %s (%s) cannot take this request: %s",
                          acct->name, acct->protocol,
                          conv_err.message ? conv_err.message : "conversion failed");
            continue;
        }
        ++attempts;
        if (attempt_init(&a, &f, &rt[idx], &sink) != APR_SUCCESS) {
            tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error", NULL,
                         NULL, "The upstream request could not be prepared.");
            return tb_respond_error(r, &err);
        }
        if (a.stream) {
            commit_memo_t *cm = apr_palloc(r->pool, sizeof(*cm));
            cm->f = &f;
            cm->sr = &sr;
            cm->rt = &rt[idx];
            cm->a = &a;
            a.on_commit = remember_at_commit;
            a.commit_ctx = cm;
        }
        apr_table_setn(r->notes, "TOKENBAY_ACCOUNT", acct->name);
        apr_table_setn(r->notes, "TOKENBAY_PROTOCOL", acct->protocol);
        apr_table_setn(r->notes, "TOKENBAY_UPSTREAM_MODEL", rt[idx].upstream_model);
        apr_table_setn(r->notes, "TOKENBAY_ATTEMPTS", apr_itoa(r->pool, attempts));

        rv = tb_curl_perform(tb_state_curl_pool(), &req, &sink, r->pool, &res);
        /* the exchange with the account is over (a stream included): its
         * slot goes back now, not when a slow client has read the rest */
        tb_shared_lease_end(r, lease);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, TB_LOGNO(40)
                          "cannot set up an upstream request");
            tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error", NULL,
                         NULL, "The upstream request could not be set up.");
            return tb_respond_error(r, &err);
        }
        if (res.error == TB_UP_OK && a.streaming
            && tb_stream_state(a.stream) == TB_STREAM_OPEN) {
            /* the upstream's stream ended without content: maybe an event
             * that lacked its blank line still commits it */
            res.sink_rv = tb_stream_finish(a.stream);
        }
        if (a.stream && tb_stream_state(a.stream) != TB_STREAM_OPEN) {
            int status = finish_committed(&a, &res);
            const char *outcome = apr_table_get(r->notes, "TOKENBAY_OUTCOME");

            /* the account answered; only a stream it broke speaks against
             * it, not one the gateway's own limits stopped */
            out = TB_OUT__COUNT;
            if (!strcmp(outcome, "ok")) {
                out = TB_OUT_OK;
            }
            else if (!strcmp(outcome, "interrupted") && res.sink_rv != APR_ENOSPC
                     && res.error != TB_UP_TIMEOUT) {
                out = TB_OUT_STREAM;
            }
            report(r, &sr, &rt[idx], idx, out, res.status, -1, NULL, a.started);
            return status;
        }
        if (res.error == TB_UP_CLIENT_GONE || a.client_gone || r->connection->aborted) {
            apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "client_aborted");
            return OK;
        }
        if (res.error == TB_UP_OK && !a.streaming && !status_retryable(res.status)) {
            apr_table_setn(r->notes, "TOKENBAY_UPSTREAM_STATUS",
                           apr_itoa(r->pool, res.status));
            report(r, &sr, &rt[idx], idx, res.status >= 200 && res.status < 300
                   ? TB_OUT_OK : TB_OUT__COUNT, res.status, -1, NULL, a.started);
            remember(&f, &sr, &rt[idx], answer_id(r, &a.buf));
            return answer_buffered(&f, &rt[idx], &a.buf);
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
        out = failure_outcome(r, &rt[idx], &a, &res, &code);
        report(r, &sr, &rt[idx], idx, out, res.status, res.retry_after, code,
               a.started);
        note_failure(r, acct->name, attempts, &a, &res, &fail);
    }
    if (full && client_hung_up(r)) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "client_aborted");
        return OK;
    }
    if (full && !attempts) {
        return answer_full(r, info->model);
    }
    if (!attempts && conv_failed) {
        /* no account could express it: the request's own limits */
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
        tb_error_set(&err, conv_err.status ? conv_err.status : HTTP_BAD_REQUEST,
                     conv_err.type, conv_err.code, conv_err.param, conv_err.message);
        return tb_respond_error(r, &err);
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

/* ---- a stored response: GET and DELETE .../responses/{id} ------------------------- */

static int answer_no_response(request_rec *r, const char *id)
{
    tb_error_t err;

    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
    tb_error_set(&err, HTTP_NOT_FOUND, "invalid_request_error",
                 "response_not_found", NULL,
                 apr_psprintf(r->pool, "Response with id '%s' not found.", id));
    return tb_respond_error(r, &err);
}

int tb_forward_response_item(request_rec *r, const tb_keyinfo_t *key,
                             const char *id)
{
    const char *rkey = response_key(r->pool, id, key->key_id);
    const tb_catalog_t *cat;
    const tb_account_t *acct;
    tb_http_request_t req;
    tb_http_result_t res;
    tb_http_buffer_t buf;
    tb_http_sink_t sink;
    tb_error_t err;
    int owner;

    /* only the key that made it may read or delete it: for any other, the
     * same 404 as for an id that never existed */
    owner = rkey ? tb_sticky_get(r, rkey, 0, NULL) : 0;
    if (!owner) {
        return answer_no_response(r, id);
    }
    if (tb_state_catalog(r, &cat) != APR_SUCCESS) {
        tb_state_catalog_error(&err);
        return tb_respond_error(r, &err);
    }
    acct = tb_catalog_account(cat, owner);
    if (!acct || !acct->active || acct->unusable || !acct->dialect
        || acct->dialect != &tb_dialect_responses
        || tb_sched_ready_at(tb_shared_sched(), acct->sched_slot, 0, 0)
           == APR_INT64_MAX) {
        return answer_no_response(r, id);   /* its holder is gone */
    }
    memset(&req, 0, sizeof(req));
    req.method = r->method_number == M_DELETE ? "DELETE" : "GET";
    req.url = apr_pstrcat(r->pool, acct->base_url, "/responses/",
                          ap_escape_path_segment(r->pool, id),
                          r->args ? "?" : "", r->args ? r->args : "", NULL);
    request_common(r, acct, &req, "application/json");
    tb_http_buffer_init(&buf, r->pool,
                        (apr_size_t)tb_conf_max_response(tb_conf_dir(r)), &sink);
    apr_table_setn(r->notes, "TOKENBAY_ACCOUNT", acct->name);
    apr_table_setn(r->notes, "TOKENBAY_PROTOCOL", acct->protocol);
    if (tb_curl_perform(tb_state_curl_pool(), &req, &sink, r->pool, &res)
        != APR_SUCCESS || res.error != TB_UP_OK) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME",
                       res.error == TB_UP_CLIENT_GONE ? "client_aborted"
                                                      : "upstream_error");
        tb_error_set(&err, HTTP_BAD_GATEWAY, "api_error", "upstream_error", NULL,
                     "The account holding this response could not be reached.");
        return tb_respond_error(r, &err);
    }
    apr_table_setn(r->notes, "TOKENBAY_UPSTREAM_STATUS", apr_itoa(r->pool, res.status));
    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", res.status < 400 ? "ok"
                   : "upstream_client_error");
    return tb_respond_body(r, res.status, buf.content_type ? buf.content_type
                           : "application/json", buf.body.data ? buf.body.data : "",
                           buf.body.len);
}
