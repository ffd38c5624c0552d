/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>

#include "tb_sse.h"
#include "tb_stream.h"

/* What the IR events of one upstream event amounted to. */
#define F_CONTENT 0x01u   /* real content: commits the stream */
#define F_USAGE   0x02u   /* a usage snapshot */
#define F_OTHER   0x04u   /* anything else the IR knows */
#define F_ERROR   0x08u   /* an upstream error */
#define F_END     0x10u   /* the upstream's stream is complete */
#define F_FINAL   0x20u   /* an error that commits: the request's own */

struct tb_stream_t {
    apr_pool_t *pool;
    apr_pool_t *iterp;        /* per-feed scratch, cleared after each feed */
    tb_stream_opts_t opts;
    tb_stream_out_t out;
    int passthrough;          /* same dialect: the upstream's bytes go on */
    tb_sse_parser_t *sse;
    void *dec, *enc;
    tb_stream_state_t state;
    tb_buf_t held;            /* client events held back before the commit,
                              * grown as needed up to opts.max_held */
    tb_buf_t ev_out;          /* the client bytes of the current event */
    unsigned flags;           /* of the current upstream event */
    tb_ir_usage_t usage;
    int saw_finish;           /* the answer is complete (a finish) */
    int failed;               /* an error was passed on after the commit */
    apr_time_t committed_at;
    tb_ir_error_t *upstream_error;   /* points at err or NULL */
    tb_ir_error_t err;        /* the upstream's last error, copied into: */
    char err_message[512], err_code[96], err_type[64];
    char response_id[128];    /* the upstream's id of its response */
};

apr_status_t tb_stream_create(tb_stream_t **pstream, apr_pool_t *p,
                              const tb_stream_opts_t *opts,
                              const tb_stream_out_t *out)
{
    tb_stream_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv;

    if ((rv = apr_pool_create(&s->iterp, p)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_tag(s->iterp, "tokenbay_stream_iter");
    s->pool = p;
    s->opts = *opts;
    s->out = *out;
    s->passthrough = opts->client == opts->upstream;
    s->sse = tb_sse_parser_create(p, opts->max_event);
    s->dec = opts->upstream->decoder_create(p);
    s->enc = opts->client->encoder_create(p, s->passthrough ? NULL : opts->req,
                                          opts->client_wants_usage);
    tb_ir_usage_init(&s->usage);
    *pstream = s;
    return APR_SUCCESS;
}

tb_stream_state_t tb_stream_state(const tb_stream_t *s) { return s->state; }
const tb_ir_usage_t *tb_stream_usage(const tb_stream_t *s) { return &s->usage; }
apr_time_t tb_stream_committed_at(const tb_stream_t *s) { return s->committed_at; }
const tb_ir_error_t *tb_stream_upstream_error(const tb_stream_t *s)
{
    return s->upstream_error;
}

/* ---- writing to the client ----------------------------------------------------- */

static apr_status_t commit(tb_stream_t *s)
{
    apr_status_t rv = s->out.commit ? s->out.commit(s->out.ctx) : APR_SUCCESS;

    s->state = TB_STREAM_COMMITTED;
    s->committed_at = apr_time_now();
    return rv;
}

/* Send `buf` (may be empty), preceded by whatever was held back. */
static apr_status_t emit(tb_stream_t *s, const char *buf, apr_size_t len)
{
    if (s->held.len) {
        char *all = apr_palloc(s->iterp, s->held.len + len);

        memcpy(all, s->held.data, s->held.len);
        if (len) {
            memcpy(all + s->held.len, buf, len);
        }
        len += s->held.len;
        buf = all;
        tb_buf_clear(&s->held);
    }
    return len ? s->out.write(s->out.ctx, buf, len) : APR_SUCCESS;
}

/* Before the commit: keep the bytes for later, or commit when the
 * prelude grows beyond what we are willing to hold. NB: a Responses
 * upstream's opening events echo the request's instructions and tools:
 * tens of kilobytes for an agent's request, and still no content. */
static apr_status_t hold(tb_stream_t *s, const char *buf, apr_size_t len)
{
    apr_status_t rv;

    if (tb_buf_append(&s->held, s->pool, buf, len, s->opts.max_held) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if ((rv = commit(s)) != APR_SUCCESS) {
        return rv;
    }
    return emit(s, buf, len);
}

/* ---- the IR events of one upstream event ------------------------------------------ */

/* Is it content? The one definition, for every dialect. */
static int is_content(const tb_ir_ev_t *ev)
{
    switch (ev->kind) {
    case TB_EV_DELTA:
        return ev->text_len > 0;
    case TB_EV_BLOCK_START:
        return ev->bkind == TB_BLOCK_TOOL_CALL;
    case TB_EV_BLOCK_STOP:
        /* opaque reasoning is output a client keeps and sends back */
        return ev->encrypted != NULL || (ev->text && ev->text_len);
    case TB_EV_FINISH:
        return 1;
    default:
        return 0;
    }
}

static apr_status_t on_ir(void *ctx, const tb_ir_ev_t *ev)
{
    tb_stream_t *s = ctx;

    switch (ev->kind) {
    case TB_EV_USAGE:
        tb_ir_usage_merge(&s->usage, ev->usage);
        s->flags |= F_USAGE;
        break;
    case TB_EV_ERROR:
        s->flags |= F_ERROR;
        /* kept for the log, the failover, and a failure the gateway may
         * have to write itself (with the upstream's code); NB: in fixed
         * room, as an upstream may send error events without end */
        memset(&s->err, 0, sizeof(s->err));
        s->err.status = ev->error->status;
        apr_cpystrn(s->err_message, ev->error->message ? ev->error->message : "",
                    sizeof(s->err_message));
        tb_utf8_trim(s->err_message);
        s->err.message = s->err_message;
        if (ev->error->code) {
            apr_cpystrn(s->err_code, ev->error->code, sizeof(s->err_code));
            s->err.code = s->err_code;
        }
        if (ev->error->type) {
            apr_cpystrn(s->err_type, ev->error->type, sizeof(s->err_type));
            s->err.type = s->err_type;
        }
        s->upstream_error = &s->err;
        if (s->state == TB_STREAM_OPEN) {
            if (!tb_ir_error_is_client(ev->error)) {
                return APR_SUCCESS;   /* not encoded: there will be a failover */
            }
            /* the request's own error would be the same on every account:
             * the client gets it, in its dialect (Codex acts on
             * context_length_exceeded) */
            s->flags |= F_FINAL;
        }
        break;
    case TB_EV_END:
        s->flags |= F_END;
        break;
    case TB_EV_MARK:
        break;
    case TB_EV_START:
        /* NB: an id longer than the room is nobody's: none is kept */
        if (ev->id && !s->response_id[0] && strlen(ev->id) < sizeof(s->response_id)) {
            apr_cpystrn(s->response_id, ev->id, sizeof(s->response_id));
        }
        s->flags |= F_OTHER;
        break;
    case TB_EV_FINISH:
        s->saw_finish = 1;
        /* fall through */
    default:
        s->flags |= is_content(ev) ? F_CONTENT : F_OTHER;
        break;
    }
    /* the fast path: the client's encoder only observes (ids, numbering)
     * for what the gateway may have to add itself */
    return s->opts.client->encode(s->enc, s->iterp, ev,
                                  s->passthrough ? NULL : &s->ev_out);
}

/* The upstream's event as it came: event, id and data fields, the data
 * split in lines again. */
static apr_status_t raw_event(tb_stream_t *s, const tb_sse_event_t *ev)
{
    apr_status_t rv;

    if (ev->id) {
        apr_size_t n = strlen(ev->id);

        if (ev->event) {
            tb_buf_append(&s->ev_out, s->iterp, "event: ", 7, s->opts.max_event * 2);
            tb_buf_append(&s->ev_out, s->iterp, ev->event, strlen(ev->event),
                          s->opts.max_event * 2);
            tb_buf_append(&s->ev_out, s->iterp, "\n", 1, s->opts.max_event * 2);
        }
        tb_buf_append(&s->ev_out, s->iterp, "id: ", 4, s->opts.max_event * 2);
        tb_buf_append(&s->ev_out, s->iterp, ev->id, n, s->opts.max_event * 2);
        tb_buf_append(&s->ev_out, s->iterp, "\n", 1, s->opts.max_event * 2);
        rv = tb_sse_write(&s->ev_out, s->iterp, NULL, ev->data, ev->data_len);
    }
    else {
        rv = tb_sse_write(&s->ev_out, s->iterp, ev->event, ev->data, ev->data_len);
    }
    return rv;
}

static apr_status_t on_sse(void *ctx, const tb_sse_event_t *ev)
{
    tb_stream_t *s = ctx;
    apr_status_t rv;

    if (s->state >= TB_STREAM_COMPLETE) {
        return APR_SUCCESS;   /* nothing after the end counts */
    }
    if (ev->kind == TB_SSE_COMMENT) {
        /* keepalives are not content; once streaming, pass them on */
        const char *line;

        if (s->state != TB_STREAM_COMMITTED) {
            return APR_SUCCESS;
        }
        line = apr_pstrcat(s->iterp, ":", ev->data, "\n\n", NULL);
        return emit(s, line, strlen(line));
    }
    s->flags = 0;
    tb_buf_clear(&s->ev_out);
    s->ev_out.data = NULL;
    s->ev_out.cap = 0;
    if ((rv = s->opts.upstream->decode(s->dec, s->iterp, ev, on_ir, s)) != APR_SUCCESS) {
        return rv;
    }
    if ((s->flags & F_ERROR) && !(s->flags & F_FINAL) && s->state == TB_STREAM_OPEN) {
        return TB_STREAM_E_UPSTREAM;
    }
    if (s->passthrough
        && !(s->flags == F_USAGE && !s->opts.client_wants_usage)) {
        /* NB: a usage-only event the gateway asked for, not the client,
         * is not passed on */
        if ((rv = raw_event(s, ev)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (s->state == TB_STREAM_OPEN) {
        if (s->flags & (F_CONTENT | F_FINAL)) {
            if ((rv = commit(s)) != APR_SUCCESS) {
                return rv;
            }
        }
        else if (s->flags & F_END) {
            return TB_STREAM_E_EMPTY;
        }
        else {
            return hold(s, s->ev_out.data ? s->ev_out.data : "", s->ev_out.len);
        }
    }
    if (s->flags & F_ERROR) {
        s->failed = 1;
    }
    if (s->flags & F_END) {
        s->state = s->failed ? TB_STREAM_INTERRUPTED : TB_STREAM_COMPLETE;
    }
    return emit(s, s->ev_out.data ? s->ev_out.data : "", s->ev_out.len);
}

apr_status_t tb_stream_feed(tb_stream_t *s, const char *buf, apr_size_t len)
{
    apr_status_t rv = tb_sse_feed(s->sse, buf, len, on_sse, s);

    apr_pool_clear(s->iterp);
    return rv;
}

/* The end of the client's stream, written by the client's dialect. */
static apr_status_t end_client(tb_stream_t *s)
{
    tb_ir_ev_t end;
    apr_status_t rv;

    memset(&end, 0, sizeof(end));
    end.kind = TB_EV_END;
    end.seq = -1;
    tb_buf_clear(&s->ev_out);
    s->ev_out.data = NULL;
    s->ev_out.cap = 0;
    rv = s->opts.client->encode(s->enc, s->iterp, &end, &s->ev_out);
    s->state = TB_STREAM_COMPLETE;
    return rv == APR_SUCCESS ? emit(s, s->ev_out.data ? s->ev_out.data : "",
                                    s->ev_out.len) : rv;
}

apr_status_t tb_stream_finish(tb_stream_t *s)
{
    apr_status_t rv = tb_sse_finish(s->sse, on_sse, s);

    if (rv == APR_SUCCESS) {
        switch (s->state) {
        case TB_STREAM_OPEN:
            rv = TB_STREAM_E_EMPTY;
            break;
        case TB_STREAM_COMMITTED:
            if (s->saw_finish && !s->failed) {
                /* some upstreams omit their end marker ([DONE]); clients
                 * still get theirs */
                rv = end_client(s);
            }
            else if (s->failed && s->upstream_error) {
                /* an error event the upstream did not end with its own
                 * terminal event: the client's failure carries its code */
                rv = tb_stream_fail(s, s->upstream_error->message,
                                    s->upstream_error->code ? s->upstream_error->code
                                                            : "stream_interrupted");
            }
            else {
                rv = tb_stream_fail(s, "The upstream stream ended before the "
                                    "response was complete.", "stream_interrupted");
            }
            break;
        default:
            break;
        }
    }
    apr_pool_clear(s->iterp);
    return rv;
}

apr_status_t tb_stream_fail(tb_stream_t *s, const char *message,
                            const char *code)
{
    tb_ir_error_t err;
    apr_status_t rv;

    if (s->state != TB_STREAM_COMMITTED) {
        return APR_SUCCESS;
    }
    memset(&err, 0, sizeof(err));
    err.type = "api_error";
    err.code = code;
    err.message = message;
    s->state = TB_STREAM_INTERRUPTED;
    tb_buf_clear(&s->ev_out);
    s->ev_out.data = NULL;
    s->ev_out.cap = 0;
    rv = s->opts.client->encode_fail(s->enc, s->iterp, &err, &s->ev_out);
    if (rv == APR_SUCCESS) {
        rv = emit(s, s->ev_out.data ? s->ev_out.data : "", s->ev_out.len);
    }
    apr_pool_clear(s->iterp);
    return rv;
}

const char *tb_stream_response_id(const tb_stream_t *s)
{
    return s->response_id[0] ? s->response_id : NULL;
}
