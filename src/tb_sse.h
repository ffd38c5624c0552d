/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_SSE_H
#define TB_SSE_H

#include <apr_pools.h>

/* An incremental parser for server-sent events (the WHATWG event stream
 * format), fed whatever bytes the network delivers: events split across
 * reads, several in one read, CRLF/LF/CR line ends, "data:" with or
 * without the space, multi-line data, comments, event/id fields, and a
 * last event without its blank line (tb_sse_finish). Memory is bounded by
 * `max_event` and does not grow with the length of the stream. */

typedef enum {
    TB_SSE_EVENT,     /* a dispatched event: data (and maybe event, id) */
    TB_SSE_COMMENT    /* a ":" line, e.g. a keepalive */
} tb_sse_kind_t;

/* Valid only during the callback: strings point into parser buffers and
 * are NUL-terminated. */
typedef struct tb_sse_event_t {
    tb_sse_kind_t kind;
    const char *event;     /* "event:" value, NULL when absent */
    const char *id;        /* "id:" value, NULL when absent */
    const char *data;      /* data lines joined by "\n" (or the comment text) */
    apr_size_t data_len;
} tb_sse_event_t;

/* A non-APR_SUCCESS return stops the feed and is returned by it. */
typedef apr_status_t tb_sse_event_cb(void *ctx, const tb_sse_event_t *ev);

typedef struct tb_sse_parser_t tb_sse_parser_t;

tb_sse_parser_t *tb_sse_parser_create(apr_pool_t *p, apr_size_t max_event);

/* Parse bytes, calling cb for each complete event or comment. Returns
 * APR_ENOSPC when one event exceeds max_event (the stream is unusable). */
apr_status_t tb_sse_feed(tb_sse_parser_t *ps, const char *buf, apr_size_t len,
                         tb_sse_event_cb *cb, void *ctx);

/* End of stream: dispatch an event that lacked its final blank line. */
apr_status_t tb_sse_finish(tb_sse_parser_t *ps, tb_sse_event_cb *cb, void *ctx);

#endif /* TB_SSE_H */
