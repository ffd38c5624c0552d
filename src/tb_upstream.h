/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_UPSTREAM_H
#define TB_UPSTREAM_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "tb_util.h"

/* A transport-neutral view of one upstream HTTP exchange. The request
 * thread owns everything here; tb_curl.c drives it, and the sink callbacks
 * run on that same thread, so they may write to request-owned brigades. */

typedef enum {
    TB_UP_OK = 0,        /* an HTTP response arrived (any status) */
    TB_UP_CONNECT,       /* could not resolve or connect */
    TB_UP_TIMEOUT,       /* a connect or total timeout fired */
    TB_UP_IO,            /* the connection failed mid-exchange */
    TB_UP_ABORTED,       /* the sink stopped the transfer */
    TB_UP_CLIENT_GONE    /* the watched client connection hung up */
} tb_up_error_t;

typedef struct tb_http_request_t {
    const char *method;                 /* "POST", "GET" or "DELETE" */
    const char *url;
    apr_array_header_t *headers;        /* const char * "Name: value" */
    const char *body;                   /* POST body, not copied */
    apr_size_t body_len;
    const apr_array_header_t *body_iov; /* or the body in pieces
                                         * (tb_iovec_t), not copied */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t timeout;        /* whole exchange; 0 = none */
    int watch_fd;                       /* client socket to watch for a
                                         * hang-up while waiting, or -1 */
} tb_http_request_t;

/* Where the response goes. on_head runs once, before the first on_data (or
 * at the end when the body is empty); a non-APR_SUCCESS return from either
 * stops the transfer (result TB_UP_ABORTED, sink_rv set). */
typedef struct tb_http_sink_t {
    void *ctx;
    apr_status_t (*on_head)(void *ctx, int status, const char *content_type);
    apr_status_t (*on_data)(void *ctx, const char *buf, apr_size_t len);
    /* optional: called between waits; may stop the transfer (timeouts of
     * its own) and lower *pwait, the longest the next wait may take */
    apr_status_t (*on_tick)(void *ctx, apr_time_t now,
                            apr_interval_time_t *pwait);
} tb_http_sink_t;

typedef struct tb_http_result_t {
    tb_up_error_t error;
    int status;                 /* HTTP status, 0 when none arrived */
    const char *content_type;   /* of the response, or NULL */
    apr_interval_time_t retry_after; /* what the upstream asked to wait
                                 * (retry-after-ms, else Retry-After), -1
                                 * if nothing */
    apr_status_t sink_rv;       /* why the sink aborted */
    const char *detail;         /* transport error text, safe to log */
} tb_http_result_t;

/* A sink that collects the body in memory, up to `max` bytes. */
typedef struct tb_http_buffer_t {
    apr_pool_t *pool;
    apr_size_t max;
    tb_buf_t body;
    int status;
    const char *content_type;
} tb_http_buffer_t;

void tb_http_buffer_init(tb_http_buffer_t *buf, apr_pool_t *p, apr_size_t max,
                         tb_http_sink_t *sink);

#endif /* TB_UPSTREAM_H */
