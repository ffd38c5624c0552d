/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "tb_json.h"
#include "tb_sse.h"
#include "tb_stream.h"

struct tb_stream_t {
    apr_pool_t *pool;
    apr_pool_t *iterp;        /* per-feed scratch, cleared after each feed */
    tb_stream_opts_t opts;
    tb_stream_out_t out;
    tb_sse_parser_t *sse;
    tb_stream_state_t state;
    char *held;               /* client events held back before the commit */
    apr_size_t held_len;
    tb_usage_t usage;
    int saw_done;             /* upstream sent [DONE] */
    int saw_finish;           /* some choice carried a finish_reason */
    apr_time_t committed_at;
    const char *upstream_error;
};

static const char DONE_EVENT[] = "data: [DONE]\n\n";

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
    s->sse = tb_sse_parser_create(p, opts->max_event);
    s->held = apr_palloc(p, opts->max_held + 1);
    tb_usage_init(&s->usage);
    *pstream = s;
    return APR_SUCCESS;
}

tb_stream_state_t tb_stream_state(const tb_stream_t *s) { return s->state; }
const tb_usage_t *tb_stream_usage(const tb_stream_t *s) { return &s->usage; }
apr_time_t tb_stream_committed_at(const tb_stream_t *s) { return s->committed_at; }
const char *tb_stream_upstream_error(const tb_stream_t *s) { return s->upstream_error; }

/* ---- writing to the client ----------------------------------------------------- */

static apr_status_t commit(tb_stream_t *s)
{
    apr_status_t rv = s->out.commit ? s->out.commit(s->out.ctx) : APR_SUCCESS;

    s->state = TB_STREAM_COMMITTED;
    s->committed_at = apr_time_now();
    return rv;
}

/* Send `line` (may be NULL), preceded by whatever was held back. */
static apr_status_t emit(tb_stream_t *s, const char *line, apr_size_t len)
{
    if (s->held_len) {
        char *all = apr_palloc(s->iterp, s->held_len + len);

        memcpy(all, s->held, s->held_len);
        if (len) {
            memcpy(all + s->held_len, line, len);
        }
        len += s->held_len;
        line = all;
        s->held_len = 0;
    }
    return len ? s->out.write(s->out.ctx, line, len) : APR_SUCCESS;
}

/* Before the commit: keep the event for later, or commit when the prelude
 * grows beyond what we are willing to hold. */
static apr_status_t hold(tb_stream_t *s, const char *line, apr_size_t len)
{
    apr_status_t rv;

    if (s->held_len + len <= s->opts.max_held) {
        memcpy(s->held + s->held_len, line, len);
        s->held_len += len;
        return APR_SUCCESS;
    }
    if ((rv = commit(s)) != APR_SUCCESS) {
        return rv;
    }
    return emit(s, line, len);
}

static apr_status_t error_chunk(tb_stream_t *s, const char *message,
                                const char *code)
{
    const char *body = tb_json_error_body(s->iterp, message, "api_error", NULL,
                                          code);
    const char *line = apr_pstrcat(s->iterp, "data: ", body, "\n\n", NULL);

    return emit(s, line, strlen(line));
}

/* ---- the OpenAI Chat Completions dialect (pass-through) ------------------------- */

static int nonempty_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

/* Real content: text, a refusal, reasoning, tool calls, or a finish. A
 * role-only or empty delta is not content. */
static int chat_chunk_has_content(tb_stream_t *s, const json_t *chunk)
{
    const json_t *choices = json_object_get(chunk, "choices"), *c;
    size_t i;
    int content = 0;

    json_array_foreach(choices, i, c) {
        const json_t *d = json_object_get(c, "delta");
        const json_t *fr = json_object_get(c, "finish_reason");

        if (fr && !json_is_null(fr)) {
            s->saw_finish = 1;
            content = 1;
        }
        if (nonempty_string(json_object_get(d, "content"))
            || nonempty_string(json_object_get(d, "refusal"))
            || nonempty_string(json_object_get(d, "reasoning_content"))
            || nonempty_string(json_object_get(d, "reasoning"))
            || json_array_size(json_object_get(d, "tool_calls")) > 0
            || json_is_object(json_object_get(d, "function_call"))) {
            content = 1;
        }
    }
    return content;
}

/* A short, loggable message from an upstream error payload: the error
 * object's message, the payload's own message, or its text. */
static const char *error_message_of(apr_pool_t *p, const json_t *chunk,
                                    const tb_sse_event_t *ev)
{
    const json_t *err = json_object_get(chunk, "error");
    const json_t *m = json_is_object(err) ? json_object_get(err, "message") : err;

    if (!json_is_string(m)) {
        m = json_object_get(chunk, "message");
    }
    if (json_is_string(m)) {
        return apr_pstrdup(p, json_string_value(m));
    }
    if (!chunk && ev->data_len) {
        return apr_pstrmemdup(p, ev->data, ev->data_len > 200 ? 200 : ev->data_len);
    }
    return "upstream error event";
}

/* "data: " + the event's data + blank line, by length: data may hold NULs. */
static const char *data_line(apr_pool_t *p, const tb_sse_event_t *ev,
                             apr_size_t *plen)
{
    char *line = apr_palloc(p, ev->data_len + 9);

    memcpy(line, "data: ", 6);
    memcpy(line + 6, ev->data, ev->data_len);
    memcpy(line + 6 + ev->data_len, "\n\n", 3);
    *plen = ev->data_len + 8;
    return line;
}

static apr_status_t chat_event(tb_stream_t *s, const tb_sse_event_t *ev)
{
    const char *line;
    apr_size_t len;
    json_t *chunk;
    const json_t *err;
    apr_status_t rv;
    int content, usage_only;

    if (s->state >= TB_STREAM_COMPLETE) {
        return APR_SUCCESS;   /* nothing after the end counts */
    }
    if (ev->kind == TB_SSE_COMMENT) {
        /* keepalives are not content; once streaming, pass them on */
        if (s->state != TB_STREAM_COMMITTED) {
            return APR_SUCCESS;
        }
        line = apr_pstrcat(s->iterp, ":", ev->data, "\n\n", NULL);
        return emit(s, line, strlen(line));
    }
    if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)) {
        if (s->state != TB_STREAM_COMMITTED) {
            return TB_STREAM_E_EMPTY;
        }
        s->saw_done = 1;
        s->state = TB_STREAM_COMPLETE;
        return emit(s, DONE_EVENT, sizeof(DONE_EVENT) - 1);
    }
    line = data_line(s->iterp, ev, &len);
    if (tb_json_parse(&chunk, s->iterp, ev->data, ev->data_len, NULL)
        != APR_SUCCESS || !json_is_object(chunk)) {
        chunk = NULL;
    }
    err = json_object_get(chunk, "error");
    if ((err && !json_is_null(err)) || (ev->event && !strcmp(ev->event, "error"))) {
        if (s->state != TB_STREAM_COMMITTED) {
            s->upstream_error = error_message_of(s->pool, chunk, ev);
            return TB_STREAM_E_UPSTREAM;
        }
        /* passed on: an OpenAI error payload makes the client's SDK raise */
        s->state = TB_STREAM_INTERRUPTED;
        return emit(s, line, len);
    }
    if (!chunk) {
        /* not JSON: not content; relayed as is once streaming */
        return s->state == TB_STREAM_COMMITTED ? emit(s, line, len) : APR_SUCCESS;
    }
    tb_openai_usage_read(chunk, &s->usage);
    content = chat_chunk_has_content(s, chunk);
    usage_only = json_is_array(json_object_get(chunk, "choices"))
        && json_array_size(json_object_get(chunk, "choices")) == 0
        && json_is_object(json_object_get(chunk, "usage"));
    if (usage_only && !s->opts.client_wants_usage) {
        return APR_SUCCESS;   /* asked for by the gateway, not the client */
    }
    if (s->state == TB_STREAM_COMMITTED) {
        return emit(s, line, len);
    }
    if (!content) {
        return hold(s, line, len);
    }
    if ((rv = commit(s)) != APR_SUCCESS) {
        return rv;
    }
    return emit(s, line, len);
}

static apr_status_t on_sse(void *ctx, const tb_sse_event_t *ev)
{
    return chat_event(ctx, ev);
}

apr_status_t tb_stream_feed(tb_stream_t *s, const char *buf, apr_size_t len)
{
    apr_status_t rv = tb_sse_feed(s->sse, buf, len, on_sse, s);

    apr_pool_clear(s->iterp);
    return rv;
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
            if (s->saw_finish) {
                /* some upstreams omit [DONE]; clients still want it */
                s->state = TB_STREAM_COMPLETE;
                rv = emit(s, DONE_EVENT, sizeof(DONE_EVENT) - 1);
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
    apr_status_t rv;

    if (s->state != TB_STREAM_COMMITTED) {
        return APR_SUCCESS;
    }
    s->state = TB_STREAM_INTERRUPTED;
    rv = error_chunk(s, message, code);
    apr_pool_clear(s->iterp);
    return rv;
}
