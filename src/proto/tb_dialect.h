/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_DIALECT_H
#define TB_DIALECT_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "tb_ir.h"
#include "tb_json.h"
#include "tb_sse.h"
#include "tb_util.h"

/* One module per protocol, each a table of functions over the IR: the
 * seam every protocol plugs into. A dialect may serve clients (a request
 * arrives in it), upstream accounts (an account speaks it), or both; the
 * request path, the commit point, usage and failover are written once,
 * against this table, and never ask which dialect they hold.
 *
 * Same dialect on both sides is the fast path: the client's bytes are
 * forwarded with only the model (and usage option) spliced in, and the
 * upstream's events are forwarded as they are, read by the decoder only
 * for the commit decision and the usage. */

typedef enum {
    TB_DIALECT_CHAT,             /* OpenAI Chat Completions */
    TB_DIALECT_RESPONSES,        /* OpenAI Responses */
    TB_DIALECT_ANTHROPIC,        /* Anthropic Messages */
    TB_DIALECT_GEMINI,           /* Google Gemini */
    TB_DIALECT_COUNT
} tb_dialect_id_t;

/* What a client asked for: the route. */
typedef enum {
    TB_OP_CHAT,                  /* POST .../chat/completions */
    TB_OP_RESPONSES,             /* POST .../responses */
    TB_OP_COMPACT                /* POST .../responses/compact */
} tb_op_t;

/* Capabilities of an account (tb_accounts.capabilities). */
#define TB_CAP_STREAM_USAGE 0x01u /* honours stream_options.include_usage */
#define TB_CAP_STORE        0x02u /* keeps responses: previous_response_id */
#define TB_CAP_COMPACT      0x04u /* /responses/compact, compaction items */

/* What only an account of the client's own dialect can do with a
 * request; a converted account cannot serve it (yet). */
#define TB_NEED_NATIVE      0x01u /* server-side state of that provider */
#define TB_NEED_STORE       0x02u /* ... and TB_CAP_STORE */
#define TB_NEED_COMPACT     0x04u /* ... and TB_CAP_COMPACT */

/* What one scan of a client's body found: enough to route it and, on the
 * fast path, to forward it without looking at it again. */
typedef struct tb_req_info_t {
    tb_op_t op;
    const char *model;           /* as the client named it */
    int stream;
    int include_usage;           /* the client asked for stream usage */
    unsigned needs;              /* TB_NEED_* */
    const char *needs_param;     /* the field that needs them */
    tb_jdoc_t doc;               /* the body's index (spans into body) */
    const char *body;
    apr_size_t len;
} tb_req_info_t;

typedef struct tb_dialect_t tb_dialect_t;

struct tb_dialect_t {
    tb_dialect_id_t id;
    const char *name;            /* as in tb_accounts.protocol */
    const char *error_family;    /* dialects sharing one error shape relay
                                  * each other's error bodies unchanged */
    unsigned default_caps;       /* capabilities when the account names none */

    /* ---- a client's request in this dialect ---- */

    /* Validate the body in one pass and fill *info; APR_EINVAL with *err
     * (a 400) when it cannot be served. */
    apr_status_t (*check)(apr_pool_t *p, tb_op_t op, const char *body,
                          apr_size_t len, tb_req_info_t *info,
                          tb_ir_error_t *err);
    /* The whole request in the IR, for a converted account. */
    apr_status_t (*parse)(apr_pool_t *p, const tb_req_info_t *info,
                          tb_ir_req_t **preq, tb_ir_error_t *err);
    /* Splice the model (and what the gateway adds) into the client's own
     * bytes, for an account of this dialect: the pieces of the body. */
    apr_status_t (*splice)(apr_pool_t *p, const tb_req_info_t *info,
                           const char *model, unsigned caps,
                           apr_array_header_t **piov);

    /* ---- an account speaking this dialect ---- */

    /* The path below the account's base URL. */
    const char *(*path)(apr_pool_t *p, tb_op_t op, const char *model,
                        int stream);
    /* Headers carrying the account's credential. */
    void (*auth)(apr_pool_t *p, const char *credential,
                 apr_array_header_t *headers);
    /* The IR request as this dialect's body; APR_EINVAL with *err when
     * the request cannot be expressed in it. */
    apr_status_t (*emit)(apr_pool_t *p, const tb_ir_req_t *req,
                         const char *model, unsigned caps, const char **pbody,
                         apr_size_t *plen, tb_ir_error_t *err);
    /* A complete (non-stream) answer into the IR. */
    apr_status_t (*parse_response)(apr_pool_t *p, const char *body,
                                   apr_size_t len, tb_ir_resp_t **presp);
    /* Usage of a complete answer, cheaply (pass-through). 1 when found. */
    int (*usage_scan)(apr_pool_t *p, const char *body, apr_size_t len,
                      tb_ir_usage_t *u);
    /* The upstream's error body into the IR. */
    void (*error_read)(apr_pool_t *p, int status, const char *body,
                       apr_size_t len, tb_ir_error_t *err);
    /* Stream decoding: upstream SSE events into IR events. */
    void *(*decoder_create)(apr_pool_t *p);
    apr_status_t (*decode)(void *dec, apr_pool_t *scratch,
                           const tb_sse_event_t *ev, tb_ir_sink_fn *sink,
                           void *ctx);

    /* ---- answers to a client of this dialect ---- */

    /* A complete answer from the IR response. */
    apr_status_t (*render)(apr_pool_t *p, const tb_ir_req_t *req,
                           const tb_ir_resp_t *resp, const char **pbody,
                           apr_size_t *plen);
    /* An error body. */
    const char *(*render_error)(apr_pool_t *p, const tb_ir_error_t *err);
    /* Stream encoding: IR events into client events. `req` is NULL on the
     * fast path, where the encoder only observes (out is NULL) and writes
     * what the gateway itself adds: a missing end, or a failure. */
    void *(*encoder_create)(apr_pool_t *p, const tb_ir_req_t *req,
                            int wants_usage);
    apr_status_t (*encode)(void *enc, apr_pool_t *scratch,
                           const tb_ir_ev_t *ev, tb_buf_t *out);
    /* End the client's stream with a failure, in this dialect's terms. */
    apr_status_t (*encode_fail)(void *enc, apr_pool_t *scratch,
                                const tb_ir_error_t *err, tb_buf_t *out);
};

/* The dialect named as in tb_accounts.protocol, or NULL. */
const tb_dialect_t *tb_dialect_find(const char *name);
const tb_dialect_t *tb_dialect_get(tb_dialect_id_t id);

/* Can an account of dialect `up` serve this client's dialect at all
 * (pass-through, or a converter exists both ways)? */
int tb_dialect_can_serve(const tb_dialect_t *client, const tb_dialect_t *up);

/* Can an account of dialect `up` with capabilities `caps` take this
 * request? TB_FIT_DIALECT: its protocol cannot serve the client's at all;
 * TB_FIT_NEEDS: the request needs what only a native account with other
 * capabilities has (info->needs). */
typedef enum { TB_FIT_OK, TB_FIT_DIALECT, TB_FIT_NEEDS } tb_fit_t;
tb_fit_t tb_dialect_fit(const tb_dialect_t *client, const tb_req_info_t *info,
                        const tb_dialect_t *up, unsigned caps);

/* Capabilities from a comma separated list ("stream_usage,store");
 * unknown names are returned in *punknown (NULL when none). */
unsigned tb_caps_parse(const char *list, const char **punknown,
                       apr_pool_t *p);

/* The dialects built so far. */
extern const tb_dialect_t tb_dialect_chat;
extern const tb_dialect_t tb_dialect_responses;

/* ---- helpers shared by the OpenAI dialects ---------------------------------------- */

/* Append SSE bytes: "event: <name>\n" when given, then the data as "data:"
 * lines (split at newlines), then the blank line. */
apr_status_t tb_sse_write(tb_buf_t *out, apr_pool_t *p, const char *event,
                          const char *data, apr_size_t len);

/* Append a JSON value as one SSE event. */
apr_status_t tb_sse_write_json(tb_buf_t *out, apr_pool_t *p,
                               const char *event, const json_t *json);

/* OpenAI's error object from an error body ({"error":{...}}, or any text),
 * for errors relayed or converted. */
void tb_openai_error_read(apr_pool_t *p, int status, const char *body,
                          apr_size_t len, tb_ir_error_t *err);
const char *tb_openai_error_render(apr_pool_t *p, const tb_ir_error_t *err);

/* Fill *err as a 500: the gateway could not write the converted request
 * (its own failure, not the client's). Returns APR_EGENERAL. */
apr_status_t tb_ir_error_conversion(tb_ir_error_t *err);

/* Fill *err as a 400 invalid_request_error. Returns APR_EINVAL. */
apr_status_t tb_ir_error_invalid(tb_ir_error_t *err, const char *code,
                                 const char *param, const char *message);

/* The top-level "usage" member of a body, parsed alone. */
json_t *tb_json_usage_member(apr_pool_t *p, const char *body, apr_size_t len);

/* jansson helpers for converters */
const char *tb_jstr(const json_t *obj, const char *key);   /* or NULL */
json_t *tb_jset_str(json_t *obj, const char *key, const char *val); /* skips NULL */

#endif /* TB_DIALECT_H */
