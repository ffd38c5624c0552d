/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_STREAM_H
#define TB_STREAM_H

#include <apr_pools.h>
#include <apr_time.h>

#include "tb_dialect.h"
#include "tb_ir.h"

/* The stream pipeline: upstream bytes → SSE events → the account's
 * dialect decodes them into IR events → the commit decision → the
 * client's events: the upstream's own bytes when both sides speak the
 * same dialect, else the client's dialect encodes the IR events. It is a
 * state machine fed by whoever drives the transport (today the request
 * thread's libcurl loop) and writes through callbacks, so drivers and
 * dialects change independently, and several streams could race for one
 * commit (hedged requests).
 *
 * The commit point, written once for every dialect: nothing reaches the
 * client until the first event with real content (text, reasoning, a
 * refusal, a tool call, a finish, opaque reasoning). Opening events
 * without content (a role-only chunk, response.created/in_progress, an
 * empty item, keepalives) are held back. Before the commit an upstream
 * error event or an end without content is reported to the caller, who
 * may try another account; after it the stream is ended in the client's
 * dialect (a chat error chunk, response.failed), never silently. */

/* Stream-specific outcomes of tb_stream_feed / tb_stream_finish. */
#define TB_STREAM_E_UPSTREAM (APR_OS_START_USERERR + 101) /* error event before commit */
#define TB_STREAM_E_EMPTY    (APR_OS_START_USERERR + 102) /* ended before any content */

typedef enum {
    TB_STREAM_OPEN = 0,       /* nothing sent to the client yet */
    TB_STREAM_COMMITTED,      /* content is flowing to the client */
    TB_STREAM_COMPLETE,       /* ended normally */
    TB_STREAM_INTERRUPTED     /* ended with an error after the commit */
} tb_stream_state_t;

/* Where client bytes go. commit runs once, before the first write; write
 * gets one or more complete client events and should flush them. A
 * non-APR_SUCCESS return (the client is gone) is passed back to the
 * feeder unchanged. */
typedef struct tb_stream_out_t {
    void *ctx;
    apr_status_t (*commit)(void *ctx);
    apr_status_t (*write)(void *ctx, const char *buf, apr_size_t len);
} tb_stream_out_t;

typedef struct tb_stream_opts_t {
    const tb_dialect_t *client;   /* the client's dialect */
    const tb_dialect_t *upstream; /* the account's */
    const tb_ir_req_t *req;       /* the request in the IR when converting;
                                   * NULL on the fast path (same dialect) */
    int client_wants_usage;       /* chat: pass the usage chunk on */
    apr_size_t max_event;         /* largest upstream event accepted */
    apr_size_t max_held;          /* most bytes held back before the commit */
} tb_stream_opts_t;

typedef struct tb_stream_t tb_stream_t;

/* `p` lives as long as the stream; per-event work uses a sub-pool that is
 * cleared after every feed, so memory does not grow with the stream. */
apr_status_t tb_stream_create(tb_stream_t **pstream, apr_pool_t *p,
                              const tb_stream_opts_t *opts,
                              const tb_stream_out_t *out);

/* Upstream bytes, any split. */
apr_status_t tb_stream_feed(tb_stream_t *s, const char *buf, apr_size_t len);

/* The upstream ended cleanly. Before the commit: TB_STREAM_E_EMPTY. After:
 * completes the client's stream when the upstream finished its answer,
 * or ends it with the client dialect's failure when it stopped short. */
apr_status_t tb_stream_finish(tb_stream_t *s);

/* After the commit, end the client's stream with a failure carrying
 * `code` (no-op before the commit or once ended). */
apr_status_t tb_stream_fail(tb_stream_t *s, const char *message,
                            const char *code);

tb_stream_state_t tb_stream_state(const tb_stream_t *s);
const tb_ir_usage_t *tb_stream_usage(const tb_stream_t *s);
apr_time_t tb_stream_committed_at(const tb_stream_t *s);
/* The upstream's last error event (before the commit: why the attempt
 * failed; after it: what the client's failure says), or NULL. */
const tb_ir_error_t *tb_stream_upstream_error(const tb_stream_t *s);

/* The upstream's id of the response it streams (its START event), or
 * NULL. */
const char *tb_stream_response_id(const tb_stream_t *s);

#endif /* TB_STREAM_H */
