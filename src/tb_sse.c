/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include "tb_sse.h"
#include "tb_util.h"

struct tb_sse_parser_t {
    apr_pool_t *pool;
    apr_size_t max_event;
    tb_buf_t line;          /* the current, unfinished line */
    tb_buf_t data;          /* data lines of the current event */
    tb_buf_t event;         /* event field of the current event */
    tb_buf_t id;            /* id field of the current event */
    tb_buf_t comment;       /* the comment being dispatched */
    int has_data;        /* a data field was seen */
    int has_event;
    int has_id;
    int skip_lf;         /* the last line ended with CR: drop a leading LF */
    apr_size_t event_bytes; /* raw bytes of the current event, for the bound */
};

/* Every buffer holds at most one event's bytes: they grow to the largest
 * event seen, are reused, and never exceed max_event. */
static apr_status_t buf_append(tb_sse_parser_t *ps, tb_buf_t *b, const char *s,
                               apr_size_t n)
{
    return tb_buf_append(b, ps->pool, s, n, ps->max_event);
}

tb_sse_parser_t *tb_sse_parser_create(apr_pool_t *p, apr_size_t max_event)
{
    tb_sse_parser_t *ps = apr_pcalloc(p, sizeof(*ps));

    ps->pool = p;
    ps->max_event = max_event ? max_event : 1;
    return ps;
}

static void event_reset(tb_sse_parser_t *ps)
{
    tb_buf_clear(&ps->data);
    tb_buf_clear(&ps->event);
    tb_buf_clear(&ps->id);
    ps->has_data = ps->has_event = ps->has_id = 0;
    ps->event_bytes = 0;
}

static apr_status_t dispatch(tb_sse_parser_t *ps, tb_sse_event_cb *cb, void *ctx)
{
    tb_sse_event_t ev;
    apr_status_t rv = APR_SUCCESS;

    /* per the format, an event without any data line is not dispatched */
    if (ps->has_data) {
        ev.kind = TB_SSE_EVENT;
        ev.event = ps->has_event ? ps->event.data : NULL;
        ev.id = ps->has_id ? ps->id.data : NULL;
        /* data lines were each followed by "\n": drop the last one */
        ev.data_len = ps->data.len ? ps->data.len - 1 : 0;
        if (ps->data.data) {
            ps->data.data[ev.data_len] = '\0';
        }
        ev.data = ps->data.data ? ps->data.data : "";
        rv = cb(ctx, &ev);
    }
    event_reset(ps);
    return rv;
}

/* One complete line (without its line end). */
static apr_status_t process_line(tb_sse_parser_t *ps, const char *line,
                                 apr_size_t n, tb_sse_event_cb *cb, void *ctx)
{
    const char *colon, *value;
    apr_size_t name_len, vlen;
    apr_status_t rv;

    if (n == 0) {
        return dispatch(ps, cb, ctx);
    }
    if (line[0] == ':') {
        tb_sse_event_t ev;

        /* NB: copied, so the text is NUL-terminated like everything the
         * callback gets (the line may sit in the caller's buffer) */
        tb_buf_clear(&ps->comment);
        if ((rv = buf_append(ps, &ps->comment, line + 1, n - 1)) != APR_SUCCESS) {
            return rv;
        }
        ev.kind = TB_SSE_COMMENT;
        ev.event = ev.id = NULL;
        ev.data = ps->comment.data;
        ev.data_len = n - 1;
        if (!ps->has_data && !ps->has_event && !ps->has_id) {
            ps->event_bytes = 0;   /* keepalive lines alone never add up */
        }
        return cb(ctx, &ev);
    }
    colon = memchr(line, ':', n);
    if (colon) {
        name_len = colon - line;
        value = colon + 1;
        vlen = n - name_len - 1;
        if (vlen && *value == ' ') {
            ++value;
            --vlen;
        }
    }
    else {
        name_len = n;
        value = "";
        vlen = 0;
    }
    if (name_len == 4 && !memcmp(line, "data", 4)) {
        ps->has_data = 1;
        if ((rv = buf_append(ps, &ps->data, value, vlen)) != APR_SUCCESS) {
            return rv;
        }
        return buf_append(ps, &ps->data, "\n", 1);
    }
    if (name_len == 5 && !memcmp(line, "event", 5)) {
        ps->has_event = 1;
        tb_buf_clear(&ps->event);
        return buf_append(ps, &ps->event, value, vlen);
    }
    if (name_len == 2 && !memcmp(line, "id", 2) && !memchr(value, '\0', vlen)) {
        ps->has_id = 1;
        tb_buf_clear(&ps->id);
        return buf_append(ps, &ps->id, value, vlen);
    }
    return APR_SUCCESS;   /* retry: and unknown fields are ignored */
}

apr_status_t tb_sse_feed(tb_sse_parser_t *ps, const char *buf, apr_size_t len,
                         tb_sse_event_cb *cb, void *ctx)
{
    const char *p = buf, *end = buf + len;
    apr_status_t rv;

    while (p < end) {
        const char *eol;
        apr_size_t n;

        if (ps->skip_lf) {
            ps->skip_lf = 0;
            if (*p == '\n') {
                ++p;
                continue;
            }
        }
        for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; ++eol)
            ;
        n = eol - p;
        ps->event_bytes += n + (eol < end);
        if (ps->event_bytes > ps->max_event) {
            return APR_ENOSPC;
        }
        if (eol == end) {
            /* an unfinished line: keep it for the next feed */
            return buf_append(ps, &ps->line, p, n);
        }
        if (ps->line.len) {
            if ((rv = buf_append(ps, &ps->line, p, n)) != APR_SUCCESS) {
                return rv;
            }
            rv = process_line(ps, ps->line.data, ps->line.len, cb, ctx);
            tb_buf_clear(&ps->line);
        }
        else {
            rv = process_line(ps, p, n, cb, ctx);
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        ps->skip_lf = (*eol == '\r');
        p = eol + 1;
    }
    return APR_SUCCESS;
}

apr_status_t tb_sse_finish(tb_sse_parser_t *ps, tb_sse_event_cb *cb, void *ctx)
{
    apr_status_t rv = APR_SUCCESS;

    if (ps->line.len) {
        rv = process_line(ps, ps->line.data, ps->line.len, cb, ctx);
        tb_buf_clear(&ps->line);
    }
    if (rv == APR_SUCCESS) {
        rv = dispatch(ps, cb, ctx);
    }
    return rv;
}
