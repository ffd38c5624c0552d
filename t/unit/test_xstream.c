/* Stream transcoding through tb_stream (conversions.md §6C, §6E, traps
 * 50-53, 60-62, 66-68): a chat upstream for a Responses client, a
 * Responses upstream for a chat client, and Responses pass-through. Every
 * input is fed whole and byte by byte. Every Responses stream the gateway
 * writes is checked by rs_check(), the rules of the openai SDK's
 * accumulator (§6C "Emitters MUST satisfy it"); every chat stream by
 * cc_check(), the rules of ChatCompletionStream (clients.md §0).
 *
 * JSON in this file is written with single quotes, turned into double
 * quotes by Q(); a quote inside a JSON string is \\' in the C text. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "tb_stream.h"
#include "tb_unit.h"
#include "tb_unit_json.h"

/* ---- helpers -------------------------------------------------------------------- */


/* ---- a stream run ------------------------------------------------------------------ */

typedef struct out_rec_t {
    char *buf;
    apr_size_t len, cap;
    int commits, writes, writes_at_commit;
} out_rec_t;

static apr_status_t rec_commit(void *ctx)
{
    out_rec_t *o = ctx;

    ++o->commits;
    o->writes_at_commit = o->writes;
    return APR_SUCCESS;
}

static apr_status_t rec_write(void *ctx, const char *buf, apr_size_t len)
{
    out_rec_t *o = ctx;

    ++o->writes;
    if (o->len + len + 1 > o->cap) {
        apr_size_t cap = o->cap ? o->cap : 1024;

        while (cap < o->len + len + 1) {
            cap *= 2;
        }
        if (!(o->buf = realloc(o->buf, cap))) {
            abort();
        }
        o->cap = cap;
    }
    memcpy(o->buf + o->len, buf, len);
    o->len += len;
    o->buf[o->len] = '\0';
    return APR_SUCCESS;
}

typedef struct run_t {
    const char *out;             /* everything the client got */
    int commits, writes, writes_at_commit;
    apr_status_t feed_rv, finish_rv;
    tb_stream_state_t state;
    tb_ir_usage_t usage;
    const char *upstream_error;  /* its message, before the commit */
} run_t;

/* Feed `input` (whole, or one byte at a time) into a stream from an
 * `up` account to a `client`, then end it (finish) when asked. */
static run_t *run(apr_pool_t *p, const tb_dialect_t *client, const tb_dialect_t *up,
                  const tb_ir_req_t *req, int wants_usage, const char *input,
                  int bytewise, int finish)
{
    run_t *r = apr_pcalloc(p, sizeof(*r));
    apr_pool_t *sp;
    out_rec_t o;
    tb_stream_opts_t opts;
    tb_stream_out_t out;
    tb_stream_t *s = NULL;
    const tb_ir_error_t *ue;
    apr_size_t len = strlen(input), i;
    apr_status_t rv;

    memset(&o, 0, sizeof(o));
    memset(&opts, 0, sizeof(opts));
    apr_pool_create(&sp, p);
    opts.client = client;
    opts.upstream = up;
    opts.req = client == up ? NULL : req;
    opts.client_wants_usage = wants_usage;
    opts.max_event = 1 << 20;
    opts.max_held = 1 << 16;
    out.ctx = &o;
    out.commit = rec_commit;
    out.write = rec_write;
    if (tb_stream_create(&s, sp, &opts, &out) != APR_SUCCESS || !s) {
        r->feed_rv = APR_EGENERAL;
        r->out = "";
        apr_pool_destroy(sp);
        return r;
    }
    if (bytewise) {
        for (rv = APR_SUCCESS, i = 0; i < len && rv == APR_SUCCESS; ++i) {
            rv = tb_stream_feed(s, input + i, 1);
        }
    }
    else {
        rv = tb_stream_feed(s, input, len);
    }
    r->feed_rv = rv;
    if (finish && rv == APR_SUCCESS) {
        r->finish_rv = tb_stream_finish(s);
    }
    r->state = tb_stream_state(s);
    r->usage = *tb_stream_usage(s);
    if ((ue = tb_stream_upstream_error(s)) && ue->message) {
        r->upstream_error = apr_pstrdup(p, ue->message);
    }
    r->out = apr_pstrmemdup(p, o.buf ? o.buf : "", o.len);
    r->commits = o.commits;
    r->writes = o.writes;
    r->writes_at_commit = o.writes_at_commit;
    free(o.buf);
    apr_pool_destroy(sp);
    return r;
}

/* A client's request in the IR, as its dialect parses it. */
static tb_ir_req_t *ir_of(apr_pool_t *p, const tb_dialect_t *d, tb_op_t op,
                          const char *qbody, tb_req_info_t *info)
{
    const char *body = Q(p, qbody);
    tb_ir_error_t err;
    tb_ir_req_t *req = NULL;

    memset(info, 0, sizeof(*info));
    if (d->check(p, op, body, strlen(body), info, &err) != APR_SUCCESS
        || d->parse(p, info, &req, &err) != APR_SUCCESS) {
        return NULL;
    }
    return req;
}

/* ---- the client's events ------------------------------------------------------------ */

typedef struct sse_ev_t {
    const char *event;           /* the event: line, or NULL */
    const char *data;            /* the data lines joined */
} sse_ev_t;

static apr_array_header_t *sse_split(apr_pool_t *p, const char *out)
{
    apr_array_header_t *evs = apr_array_make(p, 16, sizeof(sse_ev_t));
    const char *s = out;

    while (*s) {
        const char *end = strstr(s, "\n\n");
        const char *block_end = end ? end : s + strlen(s);
        const char *line = s;
        sse_ev_t ev = { NULL, NULL };

        while (line < block_end) {
            const char *nl = memchr(line, '\n', block_end - line);
            apr_size_t n = (nl ? nl : block_end) - line;
            const char *l = apr_pstrmemdup(p, line, n);

            if (starts(l, "event: ")) {
                ev.event = l + 7;
            }
            else if (starts(l, "data: ") || starts(l, "data:")) {
                const char *d = l[5] == ' ' ? l + 6 : l + 5;
                ev.data = ev.data ? apr_pstrcat(p, ev.data, "\n", d, NULL) : d;
            }
            line = nl ? nl + 1 : block_end;
        }
        if (ev.event || ev.data) {
            *(sse_ev_t *)apr_array_push(evs) = ev;
        }
        s = end ? end + 2 : block_end;
    }
    return evs;
}

/* ---- the Responses stream checker (§6C) ------------------------------------------- */

typedef struct rs_t {
    const char *why;             /* the first broken rule, NULL when none */
    const char *types;           /* event types without "response.", spaced */
    int n;                       /* events */
    json_t *events;              /* every event, parsed */
    json_t *created;             /* response.created's response */
    json_t *final;               /* the terminal event's response */
    const char *terminal;        /* its type */
    json_t *output;              /* the items as the events built them */
    json_t *done;                /* output_item.done items by index, or null */
} rs_t;

static void bad(apr_pool_t *p, rs_t *rc, int i, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void bad(apr_pool_t *p, rs_t *rc, int i, const char *type, const char *fmt, ...)
{
    va_list ap;

    if (rc->why) {
        return;
    }
    va_start(ap, fmt);
    rc->why = apr_psprintf(p, "event %d (%s): %s", i, type ? type : "?",
                           apr_pvsprintf(p, fmt, ap));
    va_end(ap);
}

/* An integer member that must be present. */
static int need_int(apr_pool_t *p, rs_t *rc, int i, const char *t, const json_t *ev,
                    const char *key, long *pv)
{
    const json_t *v = json_object_get(ev, key);

    if (!json_is_integer(v)) {
        bad(p, rc, i, t, "'%s' missing or not an integer", key);
        return 0;
    }
    *pv = (long)json_integer_value(v);
    return 1;
}

static const char *acc(apr_pool_t *p, json_t *obj, const char *key, const char *delta)
{
    const char *old = tb_jstr(obj, key);
    const char *now = apr_pstrcat(p, old ? old : "", delta, NULL);

    json_object_set_new(obj, key, json_string(now));
    return now;
}

/* The item an event names by output_index (and item_id when it has one). */
static json_t *ev_item(apr_pool_t *p, rs_t *rc, int i, const char *t, const json_t *ev,
                       const char *want_type, long *poi)
{
    json_t *item;
    const char *iid = tb_jstr(ev, "item_id");

    if (!need_int(p, rc, i, t, ev, "output_index", poi)) {
        return NULL;
    }
    if (!(item = json_array_get(rc->output, *poi))) {
        bad(p, rc, i, t, "missing output at index %ld", *poi);
        return NULL;
    }
    if (want_type && !jeq(item, "type", want_type)) {
        bad(p, rc, i, t, "output %ld is a %s, not a %s", *poi,
            js(item, "type") ? js(item, "type") : "?", want_type);
        return NULL;
    }
    if (strcmp(t, "response.output_item.done") && (!iid || !jeq(item, "id", iid))) {
        bad(p, rc, i, t, "item_id %s is not the id of output %ld (%s)", iid ? iid : "-",
            *poi, js(item, "id") ? js(item, "id") : "-");
        return NULL;
    }
    return item;
}

static void check_usage(apr_pool_t *p, rs_t *rc, int i, const char *t, const json_t *u)
{
    if (!json_is_object(u) || !json_is_integer(jat(u, "input_tokens"))
        || !json_is_integer(jat(u, "output_tokens"))
        || !json_is_integer(jat(u, "total_tokens"))
        || !json_is_integer(jat(u, "input_tokens_details.cached_tokens"))
        || !json_is_integer(jat(u, "output_tokens_details.reasoning_tokens"))) {
        bad(p, rc, i, t, "usage lacks Responses fields: %s", show(p, u));
    }
}

static void rs_event(apr_pool_t *p, rs_t *rc, int i, const char *t, json_t *ev)
{
    const json_t *resp = json_object_get(ev, "response");
    json_t *item, *part, *parts;
    long oi = -1, ci = -1, si = -1;
    const char *s;

    if (!strcmp(t, "response.created")) {
        if (!json_is_object(resp) || !js(resp, "id") || !jeq(resp, "object", "response")
            || !js(resp, "status") || !json_is_array(jat(resp, "output"))) {
            bad(p, rc, i, t, "response lacks id/object/status/output: %s", show(p, resp));
        }
        rc->created = (json_t *)resp;
    }
    else if (!strcmp(t, "response.in_progress") || !strcmp(t, "response.queued")) {
        if (!js(resp, "id") || !jeq(resp, "id", js(rc->created, "id"))) {
            bad(p, rc, i, t, "response.id differs from response.created's");
        }
    }
    else if (!strcmp(t, "response.output_item.added")) {
        if (!need_int(p, rc, i, t, ev, "output_index", &oi)) {
            return;
        }
        item = json_object_get(ev, "item");
        if (oi != (long)json_array_size(rc->output)) {
            bad(p, rc, i, t, "output_index %ld, but %lu items are open", oi,
                (unsigned long)json_array_size(rc->output));
            return;
        }
        if (!js(item, "id") || !js(item, "type")) {
            bad(p, rc, i, t, "item without id or type: %s", show(p, item));
            return;
        }
        if ((jeq(item, "type", "message")
             && (!jeq(item, "role", "assistant") || !json_is_array(jat(item, "content"))
                 || json_array_size(jat(item, "content"))))
            || (jeq(item, "type", "function_call")
                && (!js(item, "call_id") || !js(item, "name") || !js(item, "arguments")))
            || (jeq(item, "type", "custom_tool_call")
                && (!js(item, "call_id") || !js(item, "name") || !js(item, "input")))
            || (jeq(item, "type", "reasoning") && !json_is_array(jat(item, "summary")))) {
            bad(p, rc, i, t, "item lacks required (zero/empty) fields: %s", show(p, item));
            return;
        }
        json_array_append_new(rc->output, json_deep_copy(item));
        json_array_append(rc->done, json_null());
    }
    else if (!strcmp(t, "response.output_item.done")) {
        json_t *cur = ev_item(p, rc, i, t, ev, NULL, &oi);

        item = json_object_get(ev, "item");
        if (!cur) {
            return;
        }
        if (!json_is_object(item) || !jeq(item, "id", js(cur, "id"))
            || !jeq(item, "type", js(cur, "type"))) {
            bad(p, rc, i, t, "item id/type differ from output_item.added: %s vs %s",
                show(p, item), show(p, cur));
            return;
        }
        if (!json_is_null(json_array_get(rc->done, oi))) {
            bad(p, rc, i, t, "output %ld done twice", oi);
            return;
        }
        if (jeq(item, "type", "function_call")
            && (!jeq(item, "arguments", js(cur, "arguments") ? js(cur, "arguments") : "")
                || !jeq(item, "call_id", js(cur, "call_id") ? js(cur, "call_id") : "")
                || !jeq(item, "name", js(cur, "name") ? js(cur, "name") : ""))) {
            bad(p, rc, i, t, "the done call differs from what the events built: %s vs %s",
                show(p, item), show(p, cur));
            return;
        }
        if (jeq(item, "type", "custom_tool_call")
            && !jeq(item, "input", js(cur, "input") ? js(cur, "input") : "")) {
            bad(p, rc, i, t, "the done input differs: %s vs %s", show(p, item),
                show(p, cur));
            return;
        }
        if (jeq(item, "type", "message")) {
            size_t k;
            if (json_array_size(jat(item, "content")) != json_array_size(jat(cur, "content"))) {
                bad(p, rc, i, t, "the done message has other parts: %s vs %s",
                    show(p, item), show(p, cur));
                return;
            }
            for (k = 0; k < json_array_size(jat(cur, "content")); ++k) {
                const json_t *a = json_array_get(jat(item, "content"), k);
                const json_t *b = json_array_get(jat(cur, "content"), k);
                const char *ta = js(a, "text") ? js(a, "text") : js(a, "refusal");
                const char *tb = js(b, "text") ? js(b, "text") : js(b, "refusal");
                if (!ta || !tb || strcmp(ta, tb)) {
                    bad(p, rc, i, t, "the done text differs from the deltas: %s vs %s",
                        show(p, a), show(p, b));
                    return;
                }
            }
        }
        if (jeq(item, "type", "reasoning")) {
            size_t k;
            for (k = 0; k < json_array_size(jat(cur, "summary")); ++k) {
                const char *a = js(item, apr_psprintf(p, "summary.%lu.text",
                                                      (unsigned long)k));
                const char *b = js(cur, apr_psprintf(p, "summary.%lu.text",
                                                     (unsigned long)k));
                if (!a || !b || strcmp(a, b)) {
                    bad(p, rc, i, t, "the done summary differs from the deltas");
                    return;
                }
            }
        }
        json_array_set_new(rc->output, oi, json_deep_copy(item));
        json_array_set(rc->done, oi, item);
    }
    else if (!strcmp(t, "response.content_part.added")) {
        if (!(item = ev_item(p, rc, i, t, ev, "message", &oi))
            || !need_int(p, rc, i, t, ev, "content_index", &ci)) {
            return;
        }
        part = json_object_get(ev, "part");
        parts = json_object_get(item, "content");
        if (ci != (long)json_array_size(parts)) {
            bad(p, rc, i, t, "content_index %ld but %lu parts", ci,
                (unsigned long)json_array_size(parts));
        }
        else if (!(jeq(part, "type", "output_text") && js(part, "text")
                   && json_is_array(jat(part, "annotations")))
                 && !(jeq(part, "type", "refusal") && js(part, "refusal"))) {
            bad(p, rc, i, t, "part is not output_text{text, annotations[]} or refusal: %s",
                show(p, part));
        }
        else {
            json_array_append_new(parts, json_deep_copy(part));
        }
    }
    else if (!strcmp(t, "response.output_text.delta") || !strcmp(t, "response.output_text.done")
             || !strcmp(t, "response.refusal.delta") || !strcmp(t, "response.refusal.done")
             || !strcmp(t, "response.content_part.done")) {
        int text = strstr(t, "output_text") != NULL;
        int done = strstr(t, ".done") != NULL;
        int partdone = strstr(t, "content_part") != NULL;
        const char *key;

        if (!(item = ev_item(p, rc, i, t, ev, "message", &oi))
            || !need_int(p, rc, i, t, ev, "content_index", &ci)) {
            return;
        }
        if (!(part = json_array_get(jat(item, "content"), ci))) {
            bad(p, rc, i, t, "missing content at index %ld", ci);
            return;
        }
        if (partdone) {
            const json_t *ep = json_object_get(ev, "part");
            key = jeq(part, "type", "refusal") ? "refusal" : "text";
            if (!jeq(ep, "type", js(part, "type")) || !js(ep, key)
                || !jeq(ep, key, js(part, key))) {
                bad(p, rc, i, t, "the done part differs: %s vs %s", show(p, ep),
                    show(p, part));
            }
            return;
        }
        key = text ? "text" : "refusal";
        if (!jeq(part, "type", text ? "output_text" : "refusal")) {
            bad(p, rc, i, t, "expected content to be '%s', got %s",
                text ? "output_text" : "refusal", show(p, part));
            return;
        }
        if (text && !json_is_array(json_object_get(ev, "logprobs"))) {
            bad(p, rc, i, t, "logprobs is not an array");
            return;
        }
        if (!done) {
            if (!(s = tb_jstr(ev, "delta"))) {
                bad(p, rc, i, t, "no delta");
                return;
            }
            acc(p, part, key, s);
        }
        else if (!(s = tb_jstr(ev, key)) || !jeq(part, key, s)) {
            bad(p, rc, i, t, "the done %s is not the whole of the deltas (%s vs %s)", key,
                s ? s : "-", js(part, key) ? js(part, key) : "-");
        }
    }
    else if (!strcmp(t, "response.function_call_arguments.delta")
             || !strcmp(t, "response.function_call_arguments.done")) {
        if (!(item = ev_item(p, rc, i, t, ev, "function_call", &oi))) {
            return;
        }
        if (strstr(t, ".delta")) {
            if (!(s = tb_jstr(ev, "delta"))) {
                bad(p, rc, i, t, "no delta");
                return;
            }
            acc(p, item, "arguments", s);
        }
        else if (!(s = tb_jstr(ev, "arguments")) || !jeq(item, "arguments", s)
                 || !js(ev, "name") || !jeq(item, "name", js(ev, "name"))) {
            bad(p, rc, i, t, "the done event lacks the whole arguments or the name "
                "(%s; the deltas made %s)", show(p, ev), js(item, "arguments"));
        }
    }
    else if (!strcmp(t, "response.custom_tool_call_input.delta")
             || !strcmp(t, "response.custom_tool_call_input.done")) {
        if (!(item = ev_item(p, rc, i, t, ev, "custom_tool_call", &oi))) {
            return;
        }
        if (strstr(t, ".delta")) {
            if (!(s = tb_jstr(ev, "delta"))) {
                bad(p, rc, i, t, "no delta");
                return;
            }
            acc(p, item, "input", s);
        }
        else if (!(s = tb_jstr(ev, "input")) || !jeq(item, "input", s)) {
            bad(p, rc, i, t, "the done input is not the whole of the deltas");
        }
    }
    else if (!strcmp(t, "response.reasoning_summary_part.added")
             || !strcmp(t, "response.reasoning_summary_part.done")
             || !strcmp(t, "response.reasoning_summary_text.delta")
             || !strcmp(t, "response.reasoning_summary_text.done")) {
        if (!(item = ev_item(p, rc, i, t, ev, "reasoning", &oi))
            || !need_int(p, rc, i, t, ev, "summary_index", &si)) {
            return;
        }
        parts = json_object_get(item, "summary");
        if (!strcmp(t, "response.reasoning_summary_part.added")) {
            part = json_object_get(ev, "part");
            if (si != (long)json_array_size(parts) || !jeq(part, "type", "summary_text")) {
                bad(p, rc, i, t, "summary_index %ld with %lu parts, part %s", si,
                    (unsigned long)json_array_size(parts), show(p, part));
                return;
            }
            json_array_append_new(parts, json_deep_copy(part));
            return;
        }
        if (!(part = json_array_get(parts, si))) {
            bad(p, rc, i, t, "reasoning part %ld not found", si);
            return;
        }
        if (!strcmp(t, "response.reasoning_summary_text.delta")) {
            if (!(s = tb_jstr(ev, "delta"))) {
                bad(p, rc, i, t, "no delta");
                return;
            }
            acc(p, part, "text", s);
        }
        else if (!strcmp(t, "response.reasoning_summary_text.done")
                 && (!(s = tb_jstr(ev, "text")) || !jeq(part, "text", s))) {
            bad(p, rc, i, t, "the done text is not the whole of the deltas");
        }
    }
    else if (!strcmp(t, "response.completed") || !strcmp(t, "response.incomplete")
             || !strcmp(t, "response.failed")) {
        const char *status = t + strlen("response.");
        const json_t *out = jat(resp, "output");
        size_t k;

        rc->terminal = t;
        rc->final = (json_t *)resp;
        if (!js(resp, "id") || !jeq(resp, "id", js(rc->created, "id"))
            || !jeq(resp, "object", "response") || !js(resp, "model")
            || !jeq(resp, "status", status) || !json_is_array(out)) {
            bad(p, rc, i, t, "response lacks id (as created)/object/model/status %s/"
                "output: %s", status, show(p, resp));
            return;
        }
        if (!strcmp(status, "failed")) {
            if (!js(resp, "error.code") || !js(resp, "error.message")) {
                bad(p, rc, i, t, "no error {code, message}: %s", show(p, resp));
            }
            for (k = 0; k < json_array_size(out); ++k) {
                if (js(json_array_get(out, k), "id")
                    && !jeq(rc->output, apr_psprintf(p, "%lu.id", (unsigned long)k),
                            js(json_array_get(out, k), "id"))) {
                    bad(p, rc, i, t, "output %lu has another id than streamed",
                        (unsigned long)k);
                }
            }
            return;
        }
        if (!strcmp(status, "incomplete") && !js(resp, "incomplete_details.reason")) {
            bad(p, rc, i, t, "no incomplete_details.reason");
        }
        check_usage(p, rc, i, t, jat(resp, "usage"));
        if (json_array_size(out) != json_array_size(rc->output)) {
            bad(p, rc, i, t, "output has %lu items, the events %lu",
                (unsigned long)json_array_size(out),
                (unsigned long)json_array_size(rc->output));
            return;
        }
        for (k = 0; k < json_array_size(out); ++k) {
            if (json_is_null(json_array_get(rc->done, k))) {
                bad(p, rc, i, t, "output %lu was never done", (unsigned long)k);
            }
            else if (!json_equal(json_array_get(out, k), json_array_get(rc->done, k))) {
                bad(p, rc, i, t, "output %lu differs from its output_item.done: %s vs %s",
                    (unsigned long)k, show(p, json_array_get(out, k)),
                    show(p, json_array_get(rc->done, k)));
            }
        }
    }
    else if (!strcmp(t, "error")) {
        if (!js(ev, "message") && !js(ev, "error.message")) {
            bad(p, rc, i, t, "an error event without a message");
        }
    }
    else if (strcmp(t, "keepalive")) {
        bad(p, rc, i, t, "Unhandled response stream event");
    }
}

/* The rules of §6C over a whole Responses stream. */
static void rs_check(apr_pool_t *p, const char *out, rs_t *rc)
{
    apr_array_header_t *evs = sse_split(p, out);
    long seq = -1;
    int i;

    memset(rc, 0, sizeof(*rc));
    rc->types = "";
    rc->events = tb_json_pool_own(p, json_array());
    rc->output = tb_json_pool_own(p, json_array());
    rc->done = tb_json_pool_own(p, json_array());
    rc->n = evs->nelts;
    for (i = 0; i < evs->nelts; ++i) {
        const sse_ev_t *e = &APR_ARRAY_IDX(evs, i, sse_ev_t);
        json_t *ev = e->data ? jparse(p, e->data, strlen(e->data)) : NULL;
        const char *t = tb_jstr(ev, "type");
        long n;

        rc->types = apr_pstrcat(p, rc->types, i ? " " : "",
                                t ? (starts(t, "response.") ? t + 9 : t)
                                  : (e->data ? V(p, e->data) : "?"), NULL);
        if (e->data && !strcmp(e->data, "[DONE]")) {
            bad(p, rc, i, "[DONE]", "a [DONE] in a Responses stream (trap 53)");
            continue;
        }
        if (!json_is_object(ev) || !t) {
            bad(p, rc, i, e->event, "data is not an event object: %s", V(p, e->data));
            continue;
        }
        json_array_append(rc->events, ev);
        if (e->event && strcmp(e->event, t)) {
            bad(p, rc, i, t, "the event: line says %s", e->event);
        }
        if (!need_int(p, rc, i, t, ev, "sequence_number", &n)) {
            continue;
        }
        if (n != seq + 1) {
            bad(p, rc, i, t, "sequence_number %ld after %ld", n, seq);
        }
        seq = n;
        if (rc->terminal) {
            bad(p, rc, i, t, "an event after %s", rc->terminal);
        }
        if (!rc->created && strcmp(t, "response.created")) {
            bad(p, rc, i, t, "expected 'response.created' event first");
            continue;
        }
        if (rc->created && !strcmp(t, "response.created")) {
            bad(p, rc, i, t, "a second response.created");
        }
        rs_event(p, rc, i, t, ev);
    }
    if (!rc->terminal) {
        bad(p, rc, evs->nelts, "(end)", "no terminal event (completed/incomplete/failed)");
    }
}

/* What the items came to: types, texts, calls; ids left out (they are
 * new in every run). */
static const char *rs_digest(apr_pool_t *p, const rs_t *rc)
{
    const json_t *item, *c;
    size_t i, k;
    const char *d = "";

    json_array_foreach(rc->final ? json_object_get(rc->final, "output") : NULL, i, item) {
        d = apr_pstrcat(p, d, "[", js(item, "type") ? js(item, "type") : "?", NULL);
        json_array_foreach(json_object_get(item, "content"), k, c) {
            d = apr_pstrcat(p, d, " text=", js(c, "text") ? js(c, "text") : "-", NULL);
        }
        json_array_foreach(json_object_get(item, "summary"), k, c) {
            d = apr_pstrcat(p, d, " summary=", js(c, "text") ? js(c, "text") : "-", NULL);
        }
        if (js(item, "call_id")) {
            d = apr_pstrcat(p, d, " ", js(item, "call_id"), " ", js(item, "name") ?: "-",
                            " ", js(item, "arguments") ? js(item, "arguments")
                                                       : js(item, "input") ?: "-", NULL);
        }
        d = apr_pstrcat(p, d, "]", NULL);
    }
    return apr_pstrcat(p, d, " status=", js(rc->final, "status") ?: "-", NULL);
}

/* The first event of a type, or NULL. */
static json_t *rs_event_of(const rs_t *rc, const char *type, int nth)
{
    const json_t *ev;
    size_t i;

    json_array_foreach(rc->events, i, ev) {
        if (jeq(ev, "type", type) && nth-- == 0) {
            return (json_t *)ev;
        }
    }
    return NULL;
}

/* ---- the chat stream checker (clients.md §0, ChatCompletionStream) ---------------- */

typedef struct cc_t {
    const char *why;
    int chunks;
    const char *content, *reasoning;
    json_t *calls;               /* [{id, type, name, arguments, first_args}] */
    const char *finish;
    json_t *usage;               /* the usage chunk's */
    json_t *error;               /* an error payload's error */
    int done;                    /* [DONE] came, last */
    int role_first;
} cc_t;

static void cbad(apr_pool_t *p, cc_t *cc, int i, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void cbad(apr_pool_t *p, cc_t *cc, int i, const char *fmt, ...)
{
    va_list ap;

    if (cc->why) {
        return;
    }
    va_start(ap, fmt);
    cc->why = apr_psprintf(p, "chunk %d: %s", i, apr_pvsprintf(p, fmt, ap));
    va_end(ap);
}

static void cc_check(apr_pool_t *p, const char *out, cc_t *cc)
{
    apr_array_header_t *evs = sse_split(p, out);
    int i, saw_choice = 0;

    memset(cc, 0, sizeof(*cc));
    cc->content = cc->reasoning = "";
    cc->calls = tb_json_pool_own(p, json_array());
    for (i = 0; i < evs->nelts; ++i) {
        const sse_ev_t *e = &APR_ARRAY_IDX(evs, i, sse_ev_t);
        json_t *ch, *choice, *delta, *tc;
        const json_t *fin;
        size_t k;

        if (cc->done) {
            cbad(p, cc, i, "data after [DONE]");
            break;
        }
        if (!e->data) {
            cbad(p, cc, i, "an event without data");
            continue;
        }
        if (!strcmp(e->data, "[DONE]")) {
            cc->done = 1;
            continue;
        }
        if (cc->error) {
            cbad(p, cc, i, "data after the error");
        }
        ++cc->chunks;
        ch = jparse(p, e->data, strlen(e->data));
        if (!json_is_object(ch)) {
            cbad(p, cc, i, "not a JSON object: %s", V(p, e->data));
            continue;
        }
        if (json_object_get(ch, "error") && !json_is_null(json_object_get(ch, "error"))) {
            cc->error = json_object_get(ch, "error");
            if (!js(cc->error, "message")) {
                cbad(p, cc, i, "an error without a message");
            }
            continue;
        }
        if (!jeq(ch, "object", "chat.completion.chunk") || !js(ch, "id")
            || !json_is_integer(jat(ch, "created")) || !js(ch, "model")
            || !json_is_array(jat(ch, "choices"))) {
            cbad(p, cc, i, "not a chat.completion.chunk with id/created/model/choices: %s",
                 V(p, e->data));
            continue;
        }
        if (!json_array_size(jat(ch, "choices"))) {
            if (!json_is_object(jat(ch, "usage"))
                || !json_is_integer(jat(ch, "usage.prompt_tokens"))
                || !json_is_integer(jat(ch, "usage.completion_tokens"))
                || !json_is_integer(jat(ch, "usage.total_tokens"))) {
                cbad(p, cc, i, "choices [] without a usage: %s", V(p, e->data));
            }
            if (!cc->finish) {
                cbad(p, cc, i, "the usage chunk before the finish chunk");
            }
            cc->usage = jat(ch, "usage");
            continue;
        }
        choice = jat(ch, "choices.0");
        delta = json_object_get(choice, "delta");
        if (jint(choice, "index") != 0 || !json_is_object(delta)) {
            cbad(p, cc, i, "choice without index 0 or delta: %s", V(p, e->data));
            continue;
        }
        if (!saw_choice++) {
            cc->role_first = jeq(delta, "role", "assistant");
            if (!cc->role_first) {
                cbad(p, cc, i, "missing role for choice 0 (the first delta)");
            }
        }
        if (cc->finish && (js(delta, "content") || json_object_get(delta, "tool_calls"))) {
            cbad(p, cc, i, "content after the finish chunk");
        }
        if (js(delta, "content")) {
            cc->content = apr_pstrcat(p, cc->content, js(delta, "content"), NULL);
        }
        if (js(delta, "reasoning_content")) {
            cc->reasoning = apr_pstrcat(p, cc->reasoning, js(delta, "reasoning_content"),
                                        NULL);
        }
        json_array_foreach(json_object_get(delta, "tool_calls"), k, tc) {
            long idx = jint(tc, "index");
            json_t *call;

            if (idx < 0 || idx > (long)json_array_size(cc->calls)) {
                cbad(p, cc, i, "tool call index %ld with %lu calls", idx,
                     (unsigned long)json_array_size(cc->calls));
                continue;
            }
            if (idx == (long)json_array_size(cc->calls)) {
                if (!js(tc, "id") || !jeq(tc, "type", "function")
                    || !js(tc, "function.name") || !js(tc, "function.arguments")) {
                    cbad(p, cc, i, "missing choices[0].tool_calls[%ld].id|type|function."
                         "name|function.arguments: %s", idx, show(p, tc));
                    continue;
                }
                json_array_append_new(cc->calls, json_pack("{s:s, s:s, s:s, s:s, s:s}",
                                      "id", js(tc, "id"), "type", js(tc, "type"),
                                      "name", js(tc, "function.name"), "arguments",
                                      js(tc, "function.arguments"), "first_args",
                                      js(tc, "function.arguments")));
                continue;
            }
            call = json_array_get(cc->calls, idx);
            if (js(tc, "function.arguments")) {
                acc(p, call, "arguments", js(tc, "function.arguments"));
            }
        }
        fin = json_object_get(choice, "finish_reason");
        if (json_is_string(fin)) {
            if (cc->finish) {
                cbad(p, cc, i, "a second finish_reason");
            }
            cc->finish = json_string_value(fin);
        }
        else if (fin && !json_is_null(fin)) {
            cbad(p, cc, i, "finish_reason is neither a string nor null");
        }
    }
    if (!cc->error && (!cc->finish || !cc->done)) {
        cbad(p, cc, evs->nelts, "the stream ended without %s",
             !cc->finish ? "a finish_reason (missing finish_reason for choice 0)"
                         : "[DONE]");
    }
}

/* ---- upstream chat chunks ------------------------------------------------------- */

static const char *cchunk(apr_pool_t *p, const char *qdelta, const char *finish)
{
    return apr_psprintf(p, "data: {\"id\":\"chatcmpl-up1\",\"object\":\"chat.completion."
                        "chunk\",\"created\":1730000000,\"model\":\"gpt-4o-up\",\"choices\":"
                        "[{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s}]}"
                        "\n\n", Q(p, qdelta),
                        finish ? apr_psprintf(p, "\"%s\"", finish) : "null");
}

#define CROLE "{'role':'assistant','content':''}"
#define CUSAGE "data: {\"id\":\"chatcmpl-up1\",\"object\":\"chat.completion.chunk\"," \
    "\"created\":1730000000,\"model\":\"gpt-4o-up\",\"choices\":[],\"usage\":" \
    "{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13," \
    "\"prompt_tokens_details\":{\"cached_tokens\":5},\"completion_tokens_details\":" \
    "{\"reasoning_tokens\":1}}}\n\n"
#define CDONE "data: [DONE]\n\n"

/* ---- chat upstream -> Responses client (6C) ----------------------------------------- */

/* One scenario, whole and byte by byte: both runs pass the checker, end
 * in `want_state`, and produce the same events and items. The whole run
 * is returned. */
static run_t *c2r_case(apr_pool_t *p, const char *name, const tb_ir_req_t *req,
                       const char *input, const char *want_types,
                       tb_stream_state_t want_state, rs_t *rc)
{
    run_t *r = NULL, *rb;
    rs_t rcb;

    r = run(p, &tb_dialect_responses, &tb_dialect_chat, req, 0, input, 0, 1);
    rs_check(p, r->out, rc);
    OK(!rc->why, "xstream chat->responses %s: the SDK accumulator's rules hold (%s)",
       name, rc->why ? rc->why : "ok");
    OK(r->feed_rv == APR_SUCCESS && r->finish_rv == APR_SUCCESS && r->commits == 1
       && r->writes_at_commit == 0 && r->state == want_state,
       "xstream chat->responses %s: fed and finished, committed once, state %d "
       "(rv %d/%d, %d commits, state %d)", name, want_state, r->feed_rv, r->finish_rv,
       r->commits, r->state);
    if (want_types) {
        OK(!strcmp(rc->types, want_types), "xstream chat->responses %s: event order "
           "(%s)", name, rc->types);
    }
    OK(!strstr(r->out, "chat.completion") && !strstr(r->out, "[DONE]"),
       "xstream chat->responses %s: no chat chunk, no [DONE] reaches the client", name);
    rb = run(p, &tb_dialect_responses, &tb_dialect_chat, req, 0, input, 1, 1);
    rs_check(p, rb->out, &rcb);
    OK(!rcb.why && !strcmp(rcb.types, rc->types)
       && !strcmp(rs_digest(p, &rcb), rs_digest(p, rc)) && rb->state == r->state,
       "xstream chat->responses %s: byte by byte, the same events and items (%s; %s)",
       name, rcb.why ? rcb.why : rcb.types, V(p, rs_digest(p, &rcb)));
    return r;
}

#define T_OPEN "created in_progress"
#define T_MSG_OPEN "output_item.added content_part.added"
#define T_MSG_CLOSE "output_text.done content_part.done output_item.done"

static void test_c2r_stream(apr_pool_t *p)
{
    tb_req_info_t info;
    tb_ir_req_t *req;
    rs_t rc;
    run_t *r;
    json_t *ev, *fr;
    const char *in;

    req = ir_of(p, &tb_dialect_responses, TB_OP_RESPONSES,
                "{'model':'gpt-5','input':'hi','stream':true,'instructions':'Be brief.',"
                "'tools':[{'type':'function','name':'get_weather','parameters':{'type':"
                "'object','properties':{'city':{'type':'string'}}}},"
                "{'type':'function','name':'get_time','parameters':{'type':'object',"
                "'properties':{}}},"
                "{'type':'custom','name':'apply_patch','format':{'type':'grammar',"
                "'syntax':'lark','definition':'start: x'}}]}", &info);
    OK(req != NULL, "xstream chat->responses: the Responses request parses");
    if (!req) {
        return;
    }

    /* text */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hel'}", NULL),
                     cchunk(p, "{'content':'lo'}", NULL), cchunk(p, "{}", "stop"), CUSAGE,
                     CDONE, NULL);
    r = c2r_case(p, "text", req, in, T_OPEN " " T_MSG_OPEN " output_text.delta "
                 "output_text.delta " T_MSG_CLOSE " completed", TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    OK(jeq(fr, "output.0.content.0.text", "Hello") && jeq(fr, "status", "completed")
       && starts(js(fr, "id"), "resp_") && jeq(fr, "object", "response") && js(fr, "model"),
       "xstream text: response.completed has id resp_..., object, model, the text "
       "(trap 51) (%s)", show(p, fr));
    OK(jint(fr, "usage.input_tokens") == 9 && jint(fr, "usage.output_tokens") == 4
       && jint(fr, "usage.total_tokens") == 13
       && jint(fr, "usage.input_tokens_details.cached_tokens") == 5
       && jint(fr, "usage.output_tokens_details.reasoning_tokens") == 1
       && !jat(fr, "usage.prompt_tokens"),
       "xstream text: usage in Responses names (%s)", show(p, jat(fr, "usage")));
    OK(r->usage.input == 9 && r->usage.output == 4,
       "xstream text: the stream's usage for billing (%ld/%ld)", r->usage.input,
       r->usage.output);
    ev = rs_event_of(&rc, "response.created", 0);
    OK(jint(ev, "sequence_number") == 0 && jeq(ev, "response.status", "in_progress")
       && json_is_array(jat(ev, "response.output")) && js(ev, "response.id")
       && jeq(ev, "response.instructions", "Be brief."),
       "xstream text: response.created first, sequence_number 0 (trap 53) (%s)",
       show(p, ev));
    {
        static const char *const required[] = {
            "id", "object", "created_at", "completed_at", "status", "incomplete_details",
            "model", "previous_response_id", "instructions", "output", "error", "tools",
            "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
            "presence_penalty", "frequency_penalty", "top_logprobs", "temperature",
            "reasoning", "usage", "max_output_tokens", "max_tool_calls", "store",
            "background", "service_tier", "metadata", "safety_identifier",
            "prompt_cache_key", NULL
        };
        const char *missing = "";
        int k;

        for (k = 0; required[k]; ++k) {
            if (!jat(rc.created, required[k]) || !jat(rc.final, required[k])) {
                missing = apr_pstrcat(p, missing, " ", required[k], NULL);
            }
        }
        OK(!*missing, "xstream text: response.created and response.completed carry every "
           "member OpenResponses requires (6B) (missing:%s)", *missing ? missing : " none");
    }
    ev = rs_event_of(&rc, "response.output_item.added", 0);
    OK(jint(ev, "output_index") == 0 && json_is_array(jat(ev, "item.content"))
       && !json_array_size(jat(ev, "item.content")),
       "xstream text: output_item.added has output_index 0 and content [] (trap 66) "
       "(%s)", show(p, ev));
    ev = rs_event_of(&rc, "response.content_part.added", 0);
    OK(jint(ev, "output_index") == 0 && jint(ev, "content_index") == 0
       && jeq(ev, "part.type", "output_text") && jeq(ev, "part.text", "")
       && json_is_array(jat(ev, "part.annotations")),
       "xstream text: content_part.added with content_index 0, text \"\", annotations "
       "[] (trap 66) (%s)", show(p, ev));
    ev = rs_event_of(&rc, "response.output_text.delta", 0);
    OK(jint(ev, "content_index") == 0 && json_is_array(jat(ev, "logprobs"))
       && jeq(ev, "delta", "Hel"),
       "xstream text: output_text.delta with logprobs [] (%s)", show(p, ev));
    ev = rs_event_of(&rc, "response.output_text.done", 0);
    OK(jeq(ev, "text", "Hello"), "xstream text: output_text.done carries the full "
       "text (trap 52) (%s)", show(p, ev));

    /* reasoning, text, a function call: the §6C example */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL),
                     cchunk(p, "{'reasoning_content':'Need weather.'}", NULL),
                     cchunk(p, "{'content':'Checking'}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'id':'call_abc','type':'function',"
                            "'function':{'name':'get_weather','arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'{\\'city\\':'}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'\\'Oslo\\'}'}}]}", NULL),
                     cchunk(p, "{}", "tool_calls"), CUSAGE, CDONE, NULL);
    c2r_case(p, "reasoning+text+call", req, in,
             T_OPEN " output_item.added reasoning_summary_part.added "
             "reasoning_summary_text.delta reasoning_summary_text.done "
             "reasoning_summary_part.done output_item.done " T_MSG_OPEN
             " output_text.delta " T_MSG_CLOSE " output_item.added "
             "function_call_arguments.delta function_call_arguments.delta "
             "function_call_arguments.done output_item.done completed",
             TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    OK(jeq(fr, "output.0.type", "reasoning") && jeq(fr, "output.0.summary.0.text",
                                                    "Need weather.")
       && jeq(fr, "output.1.type", "message") && jeq(fr, "output.1.content.0.text",
                                                     "Checking")
       && jeq(fr, "output.2.type", "function_call"),
       "xstream reasoning+text+call: three items, in order (%s)", show(p, jat(fr, "output")));
    OK(starts(js(fr, "output.2.id"), "fc_") && jeq(fr, "output.2.call_id", "call_abc")
       && jeq(fr, "output.2.name", "get_weather")
       && jeq(fr, "output.2.arguments", "{\"city\":\"Oslo\"}")
       && starts(js(fr, "output.0.id"), "rs_") && starts(js(fr, "output.1.id"), "msg_"),
       "xstream reasoning+text+call: fc_ id, call_id = the chat id, rs_/msg_ ids "
       "(trap 54) (%s)", show(p, jat(fr, "output.2")));
    ev = rs_event_of(&rc, "response.function_call_arguments.done", 0);
    OK(jeq(ev, "arguments", "{\"city\":\"Oslo\"}") && jeq(ev, "name", "get_weather")
       && jint(ev, "output_index") == 2,
       "xstream reasoning+text+call: function_call_arguments.done carries the whole "
       "arguments and the name (trap 52) (%s)", show(p, ev));
    ev = rs_event_of(&rc, "response.output_item.added", 2);
    OK(jeq(ev, "item.arguments", "") && jeq(ev, "item.call_id", "call_abc"),
       "xstream reasoning+text+call: the call announced with arguments \"\" (trap 66) "
       "(%s)", show(p, ev));
    ev = rs_event_of(&rc, "response.reasoning_summary_part.added", 0);
    OK(jint(ev, "summary_index") == 0 && jint(ev, "output_index") == 0,
       "xstream reasoning+text+call: summary_index 0 (%s)", show(p, ev));

    /* two parallel calls */
    in = apr_pstrcat(p,
                     cchunk(p, "{'role':'assistant','content':null,'tool_calls':[{'index':0,"
                            "'id':'call_1','type':'function','function':{'name':'get_weather',"
                            "'arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':1,'id':'call_2','type':'function',"
                            "'function':{'name':'get_time','arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'{\\'city\\':\\'Oslo\\'}'}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}",
                            NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "parallel calls", req, in,
             T_OPEN " output_item.added output_item.added function_call_arguments.delta "
             "function_call_arguments.delta function_call_arguments.done output_item.done "
             "function_call_arguments.done output_item.done completed",
             TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    OK(jeq(fr, "output.0.call_id", "call_1") && jeq(fr, "output.0.arguments",
                                                    "{\"city\":\"Oslo\"}")
       && jeq(fr, "output.1.call_id", "call_2") && jeq(fr, "output.1.arguments", "{}")
       && jeq(fr, "output.1.name", "get_time") && jeq(fr, "status", "completed"),
       "xstream parallel calls: both calls, each with its arguments (%s)",
       show(p, jat(fr, "output")));
    OK(json_is_object(jat(fr, "usage")),
       "xstream parallel calls: a usage object even when the upstream sent none (%s)",
       show(p, jat(fr, "usage")));

    /* a custom tool the upstream called as a function (trap 64) */
    in = apr_pstrcat(p,
                     cchunk(p, "{'role':'assistant','content':null,'tool_calls':[{'index':0,"
                            "'id':'call_p','type':'function','function':{'name':'apply_patch',"
                            "'arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'{\\'input\\':\\'*** Begin Patch\\\\n'}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'*** End Patch\\\\n\\'}'}}]}", NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "custom tool", req, in, NULL, TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    OK(jeq(fr, "output.0.type", "custom_tool_call") && jeq(fr, "output.0.call_id", "call_p")
       && jeq(fr, "output.0.name", "apply_patch")
       && jeq(fr, "output.0.input", "*** Begin Patch\n*** End Patch\n")
       && !jat(fr, "output.0.arguments"),
       "xstream custom tool: restored as custom_tool_call, input unwrapped (%s)",
       show(p, jat(fr, "output")));
    OK(!strstr(rc.types, "function_call_arguments") && strstr(rc.types, "output_item.added")
       && strstr(rc.types, "custom_tool_call_input.done")
       && strstr(rc.types, "output_item.added") < strstr(rc.types, "custom_tool_call_input")
       && strstr(rc.types, "custom_tool_call_input.done")
          < strstr(rc.types, "output_item.done"),
       "xstream custom tool: announced, its input, done; no function events (%s)",
       rc.types);

    /* a custom tool (held until complete) next to a function call */
    in = apr_pstrcat(p,
                     cchunk(p, "{'role':'assistant','content':null,'tool_calls':[{'index':0,"
                            "'id':'call_p','type':'function','function':{'name':'apply_patch',"
                            "'arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':1,'id':'call_w','type':'function',"
                            "'function':{'name':'get_weather','arguments':''}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'arguments':"
                            "'{\\'input\\':\\'x\\'}'}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':1,'function':{'arguments':'{}'}}]}",
                            NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "custom + function call", req, in, NULL, TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    {
        int cu = jeq(fr, "output.0.type", "custom_tool_call") ? 0 : 1;
        OK(jlen(fr, "output") == 2 && jeq(fr, apr_psprintf(p, "output.%d.type", cu),
                                           "custom_tool_call")
           && jeq(fr, apr_psprintf(p, "output.%d.input", cu), "x")
           && jeq(fr, apr_psprintf(p, "output.%d.call_id", cu), "call_p")
           && jeq(fr, apr_psprintf(p, "output.%d.type", 1 - cu), "function_call")
           && jeq(fr, apr_psprintf(p, "output.%d.call_id", 1 - cu), "call_w"),
           "xstream custom + function call: both items (%s)", show(p, jat(fr, "output")));
    }

    /* the name comes after the call's first deltas: announced with it */
    in = apr_pstrcat(p,
                     cchunk(p, "{'role':'assistant','content':null,'tool_calls':[{'index':0,"
                            "'id':'call_late','type':'function','function':{'arguments':"
                            "'{\\'input\\':'}}]}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'function':{'name':'apply_patch',"
                            "'arguments':'\\'y\\'}'}}]}", NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "name after the first delta", req, in, NULL, TB_STREAM_COMPLETE, &rc);
    fr = rc.final;
    OK(jlen(fr, "output") == 1 && jeq(fr, "output.0.type", "custom_tool_call")
       && jeq(fr, "output.0.name", "apply_patch") && jeq(fr, "output.0.input", "y")
       && jeq(fr, "output.0.call_id", "call_late"),
       "xstream name after the first delta: the call keeps its id and its early "
       "arguments, and is recognised by its name (%s)", show(p, jat(fr, "output")));

    /* a refusal */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'refusal':'I can'}", NULL),
                     cchunk(p, "{'refusal':'not.'}", NULL), cchunk(p, "{}", "stop"), CDONE,
                     NULL);
    c2r_case(p, "refusal", req, in, T_OPEN " " T_MSG_OPEN " refusal.delta refusal.delta "
             "refusal.done content_part.done output_item.done completed",
             TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "output.0.content.0.type", "refusal")
       && jeq(rc.final, "output.0.content.0.refusal", "I cannot."),
       "xstream refusal: a refusal part (%s)", show(p, jat(rc.final, "output")));

    /* escapes, control and astral characters, arguments kept as written */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL),
                     cchunk(p, "{'content':'caf\\u00e9 \\'q\\' \\\\ \\/ \\n\\t \\u0001 "
                            "\\ud83d\\ude00'}", NULL),
                     cchunk(p, "{'content':' \xe2\x80\x94 end\\u2028'}", NULL),
                     cchunk(p, "{'tool_calls':[{'index':0,'id':'call_e','type':'function',"
                            "'function':{'name':'get_weather','arguments':"
                            "'{\\'q\\':\\'\\\\u00e9\\\\n\\'}'}}]}", NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "escapes", req, in, NULL, TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "output.0.content.0.text", "caf\xc3\xa9 \"q\" \\ / \n\t \x01 "
           "\xf0\x9f\x98\x80 \xe2\x80\x94 end\xe2\x80\xa8")
       && jeq(rs_event_of(&rc, "response.output_text.done", 0), "text",
              "caf\xc3\xa9 \"q\" \\ / \n\t \x01 \xf0\x9f\x98\x80 \xe2\x80\x94 end\xe2\x80\xa8"),
       "xstream escapes: the text comes out equal (%s)",
       show(p, jat(rc.final, "output.0.content")));
    OK(jeq(rc.final, "output.1.arguments", "{\"q\":\"\\u00e9\\n\"}"),
       "xstream escapes: the arguments come out as the upstream wrote them (%s)",
       show(p, jat(rc.final, "output.1")));

    /* trap 60: id, name and arguments in the first chunk */
    in = apr_pstrcat(p,
                     cchunk(p, "{'role':'assistant','tool_calls':[{'index':0,'id':'call_g',"
                            "'type':'function','function':{'name':'get_weather','arguments':"
                            "'{\\'city\\':\\'Oslo\\'}'}}]}", NULL),
                     cchunk(p, "{}", "tool_calls"), CDONE, NULL);
    c2r_case(p, "one-chunk call", req, in, T_OPEN " output_item.added "
             "function_call_arguments.delta function_call_arguments.done output_item.done "
             "completed", TB_STREAM_COMPLETE, &rc);
    ev = rs_event_of(&rc, "response.function_call_arguments.done", 0);
    OK(jeq(ev, "arguments", "{\"city\":\"Oslo\"}")
       && jeq(rc.final, "output.0.arguments", "{\"city\":\"Oslo\"}"),
       "xstream one-chunk call: the arguments are not doubled (trap 60) (%s)",
       show(p, ev));

    /* trap 67: `reasoning` deltas */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'reasoning':'Step 1. '}", NULL),
                     cchunk(p, "{'reasoning':'Step 2.'}", NULL),
                     cchunk(p, "{'content':'Done'}", NULL), cchunk(p, "{}", "stop"),
                     CDONE, NULL);
    c2r_case(p, "reasoning field", req, in, T_OPEN " output_item.added "
             "reasoning_summary_part.added reasoning_summary_text.delta "
             "reasoning_summary_text.delta reasoning_summary_text.done "
             "reasoning_summary_part.done output_item.done " T_MSG_OPEN
             " output_text.delta " T_MSG_CLOSE " completed", TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "output.0.summary.0.text", "Step 1. Step 2.")
       && jeq(rc.final, "output.1.content.0.text", "Done"),
       "xstream reasoning field: `reasoning` deltas make the reasoning item (trap 67) "
       "(%s)", show(p, jat(rc.final, "output")));

    /* trap 61: length and content_filter */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Partial'}", NULL),
                     cchunk(p, "{}", "length"), CUSAGE, CDONE, NULL);
    c2r_case(p, "length", req, in, T_OPEN " " T_MSG_OPEN " output_text.delta "
             T_MSG_CLOSE " incomplete", TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "status", "incomplete")
       && jeq(rc.final, "incomplete_details.reason", "max_output_tokens")
       && jeq(rc.final, "output.0.content.0.text", "Partial"),
       "xstream length: response.incomplete, reason max_output_tokens (trap 61) (%s)",
       show(p, jat(rc.final, "incomplete_details")));
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Par'}", NULL),
                     cchunk(p, "{}", "content_filter"), CDONE, NULL);
    c2r_case(p, "content_filter", req, in, NULL, TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "status", "incomplete") && !strcmp(rc.terminal ? rc.terminal : "",
                                                        "response.incomplete")
       && jeq(rc.final, "incomplete_details.reason", "content_filter"),
       "xstream content_filter: response.incomplete, reason content_filter (%s)",
       show(p, jat(rc.final, "incomplete_details")));

    /* an error chunk after content */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hel'}", NULL),
                     "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                     "\"rate_limit_error\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}"
                     "\n\n", NULL);
    r = c2r_case(p, "error after content", req, in, NULL, TB_STREAM_INTERRUPTED, &rc);
    OK(!strcmp(rc.terminal ? rc.terminal : "", "response.failed")
       && jeq(rc.final, "status", "failed")
       && jeq(rc.final, "error.code", "rate_limit_exceeded")
       && jeq(rc.final, "error.message", "Rate limit reached"),
       "xstream error after content: response.failed, status failed, the upstream's "
       "error code (%s)", show(p, jat(rc.final, "error")));
    OK(!strstr(r->out, "data: {\"error\""),
       "xstream error after content: never a chat error chunk (%s)", V(p, r->out));

    /* an end without [DONE] after the finish; an end without a finish */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hi'}", NULL),
                     cchunk(p, "{}", "stop"), CUSAGE, NULL);
    c2r_case(p, "no [DONE]", req, in, T_OPEN " " T_MSG_OPEN " output_text.delta "
             T_MSG_CLOSE " completed", TB_STREAM_COMPLETE, &rc);
    OK(jeq(rc.final, "output.0.content.0.text", "Hi") && jint(rc.final, "usage.input_tokens")
       == 9, "xstream no [DONE]: completed anyway, with the usage (%s)",
       show(p, rc.final));
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hi'}", NULL), NULL);
    c2r_case(p, "cut short", req, in, NULL, TB_STREAM_INTERRUPTED, &rc);
    OK(!strcmp(rc.terminal ? rc.terminal : "", "response.failed")
       && jeq(rc.final, "error.code", "stream_interrupted"),
       "xstream cut short: response.failed with code stream_interrupted (%s)",
       show(p, jat(rc.final, "error")));

    /* an error before any content: no byte reaches the client */
    in = apr_pstrcat(p, cchunk(p, CROLE, NULL),
                     "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\"}}"
                     "\n\n", NULL);
    r = run(p, &tb_dialect_responses, &tb_dialect_chat, req, 0, in, 0, 1);
    OK(r->feed_rv == TB_STREAM_E_UPSTREAM && r->commits == 0 && !*r->out
       && r->upstream_error && !strcmp(r->upstream_error, "Overloaded"),
       "xstream chat->responses: an error before content -> TB_STREAM_E_UPSTREAM, "
       "nothing written (rv %d, %s)", r->feed_rv, V(p, r->out));
}

/* ---- Responses upstream -> chat client (6E) --------------------------------------- */

/* `event: <type>` + data; its sequence_number is a placeholder that
 * renum() fills in, in the order of the text (C leaves the order in which
 * arguments are evaluated open). */
static const char *rev(apr_pool_t *p, const char *type, const char *qmembers)
{
    const char *data = apr_psprintf(p, "{\"type\":\"%s\",\"sequence_number\":SEQ%s%s}",
                                    type, *qmembers ? "," : "", Q(p, qmembers));

    return apr_psprintf(p, "event: %s\ndata: %s\n\n", type, data);
}

/* The placeholders numbered from `start`, in order. */
static const char *renum(apr_pool_t *p, const char *s, long start)
{
    static const char mark[] = "\"sequence_number\":SEQ";
    const char *out = "", *at;

    while ((at = strstr(s, mark))) {
        out = apr_psprintf(p, "%s%.*s\"sequence_number\":%ld", out, (int)(at - s), s,
                           start++);
        s = at + sizeof(mark) - 1;
    }
    return apr_pstrcat(p, out, s, NULL);
}

#define RESP_IP "'response':{'id':'resp_up1','object':'response','created_at':1730000000," \
    "'status':'in_progress','model':'gpt-4.1','output':[],'usage':null}"
#define RUSAGE "'usage':{'input_tokens':11,'input_tokens_details':{'cached_tokens':2}," \
    "'output_tokens':7,'output_tokens_details':{'reasoning_tokens':3},'total_tokens':18}"
#define MSG_ITEM "{'id':'msg_up1','type':'message','status':'in_progress','role':" \
    "'assistant','content':[]}"
#define FC_ITEM(args, status) "{'id':'fc_up1','type':'function_call','status':'" status \
    "','arguments':'" args "','call_id':'call_up1','name':'get_weather'}"
#define FC_ARGS "{\\'location\\':\\'Paris\\'}"

static const char *completed(apr_pool_t *p, const char *status,
                             const char *qoutput, const char *extra)
{
    return rev(p, apr_pstrcat(p, "response.", status, NULL),
               apr_psprintf(p, "'response':{'id':'resp_up1','object':'response',"
                            "'created_at':1730000000,'status':'%s','model':'gpt-4.1',"
                            "'output':%s%s}", status, qoutput, extra));
}

/* A Responses upstream for a chat client, whole and byte by byte. */
static run_t *r2c_case(apr_pool_t *p, const char *name, const tb_ir_req_t *req,
                       int wants_usage, const char *input, tb_stream_state_t want_state,
                       cc_t *cc)
{
    run_t *r, *rb;
    cc_t ccb;

    r = run(p, &tb_dialect_chat, &tb_dialect_responses, req, wants_usage, input, 0, 1);
    cc_check(p, r->out, cc);
    OK(!cc->why, "xstream responses->chat %s: ChatCompletionStream's rules hold (%s)",
       name, cc->why ? cc->why : "ok");
    OK(r->feed_rv == APR_SUCCESS && r->finish_rv == APR_SUCCESS && r->commits == 1
       && r->state == want_state,
       "xstream responses->chat %s: fed and finished, state %d (rv %d/%d, %d commits, "
       "state %d)", name, want_state, r->feed_rv, r->finish_rv, r->commits, r->state);
    OK(!strstr(r->out, "event:") && !strstr(r->out, "response."),
       "xstream responses->chat %s: no Responses event reaches the client", name);
    rb = run(p, &tb_dialect_chat, &tb_dialect_responses, req, wants_usage, input, 1, 1);
    cc_check(p, rb->out, &ccb);
    OK(!ccb.why && !strcmp(ccb.content, cc->content)
       && json_equal(ccb.calls, cc->calls) && !strcmp(ccb.finish ?: "-", cc->finish ?: "-")
       && ccb.chunks == cc->chunks,
       "xstream responses->chat %s: byte by byte, the same chunks (%s)", name,
       ccb.why ? ccb.why : "ok");
    return r;
}

static void test_r2c_stream(apr_pool_t *p)
{
    tb_req_info_t info;
    tb_ir_req_t *req;
    cc_t cc;
    run_t *r;
    const char *in, *head;
    apr_array_header_t *evs;
    json_t *first;

    req = ir_of(p, &tb_dialect_chat, TB_OP_CHAT,
                "{'model':'gpt-4o','messages':[{'role':'user','content':'hi'}],"
                "'stream':true,'stream_options':{'include_usage':true},"
                "'tools':[{'type':'function','function':{'name':'get_weather',"
                "'parameters':{'type':'object','properties':{}}}}]}", &info);
    OK(req && info.include_usage, "xstream responses->chat: the chat request parses");
    if (!req) {
        return;
    }

    /* text */
    head = apr_pstrcat(p, rev(p, "response.created", RESP_IP),
                       rev(p, "response.in_progress", RESP_IP), NULL);
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         MSG_ITEM),
                     rev(p, "response.content_part.added", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'part':{'type':'output_text',"
                         "'annotations':[],'text':''}"),
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Hello','logprobs':[]"),
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':' world','logprobs':[]"),
                     rev(p, "response.output_text.done", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'text':'Hello world',"
                         "'logprobs':[]"),
                     rev(p, "response.content_part.done", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'part':{'type':'output_text',"
                         "'annotations':[],'text':'Hello world'}"),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         "{'id':'msg_up1','type':'message','status':'completed','role':"
                         "'assistant','content':[{'type':'output_text','annotations':[],"
                         "'text':'Hello world'}]}"),
                     completed(p, "completed", "[{'id':'msg_up1','type':'message',"
                               "'status':'completed','role':'assistant','content':[{'type':"
                               "'output_text','annotations':[],'text':'Hello world'}]}]",
                               "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r = r2c_case(p, "text", req, 1, in, TB_STREAM_COMPLETE, &cc);
    evs = sse_split(p, r->out);
    first = evs->nelts ? jparse(p, APR_ARRAY_IDX(evs, 0, sse_ev_t).data,
                                strlen(APR_ARRAY_IDX(evs, 0, sse_ev_t).data)) : NULL;
    OK(jeq(first, "choices.0.delta.role", "assistant"),
       "xstream responses->chat text: the role chunk first (%s)", show(p, first));
    OK(!strcmp(cc.content, "Hello world") && cc.finish && !strcmp(cc.finish, "stop")
       && cc.done && !json_array_size(cc.calls),
       "xstream responses->chat text: delta.content, finish stop, [DONE] (%s, %s)",
       cc.content, cc.finish ? cc.finish : "-");
    OK(jint(cc.usage, "prompt_tokens") == 11 && jint(cc.usage, "completion_tokens") == 7
       && jint(cc.usage, "total_tokens") == 18
       && jint(cc.usage, "prompt_tokens_details.cached_tokens") == 2
       && jint(cc.usage, "completion_tokens_details.reasoning_tokens") == 3,
       "xstream responses->chat text: the usage chunk (choices []) in chat names (%s)",
       show(p, cc.usage));
    r = r2c_case(p, "text without include_usage", req, 0, in, TB_STREAM_COMPLETE, &cc);
    OK(!cc.usage && !strstr(r->out, "\"choices\":[]"),
       "xstream responses->chat text: no usage chunk when the client did not ask (%s)",
       show(p, cc.usage));

    /* a function call, as OpenAI streams it */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         FC_ITEM("", "in_progress")),
                     rev(p, "response.function_call_arguments.delta", "'item_id':"
                         "'fc_up1','output_index':0,'delta':'{\\'location'"),
                     rev(p, "response.function_call_arguments.delta", "'item_id':"
                         "'fc_up1','output_index':0,'delta':'\\':\\'Paris\\'}'"),
                     rev(p, "response.function_call_arguments.done", "'item_id':"
                         "'fc_up1','output_index':0,'name':'get_weather','arguments':'"
                         FC_ARGS "'"),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         FC_ITEM(FC_ARGS, "completed")),
                     completed(p, "completed", "[" FC_ITEM(FC_ARGS, "completed") "]",
                               "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r = r2c_case(p, "function call", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 1 && jeq(cc.calls, "0.id", "call_up1")
       && jeq(cc.calls, "0.type", "function") && jeq(cc.calls, "0.name", "get_weather")
       && jeq(cc.calls, "0.first_args", ""),
       "xstream responses->chat call: tool_calls[0] with id = call_id, type, name, "
       "arguments \"\" first (%s)", show(p, cc.calls));
    OK(jeq(cc.calls, "0.arguments", "{\"location\":\"Paris\"}"),
       "xstream responses->chat call: the argument deltas, once (%s)",
       show(p, jat(cc.calls, "0.arguments")));
    OK(cc.finish && !strcmp(cc.finish, "tool_calls") && !strstr(r->out, "fc_up1"),
       "xstream responses->chat call: finish tool_calls; the fc_ id never shown (%s)",
       cc.finish ? cc.finish : "-");

    /* two parallel calls */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         "{'id':'fc_a','type':'function_call','status':'in_progress',"
                         "'arguments':'','call_id':'call_a','name':'get_weather'}"),
                     rev(p, "response.output_item.added", "'output_index':1,'item':"
                         "{'id':'fc_b','type':'function_call','status':'in_progress',"
                         "'arguments':'','call_id':'call_b','name':'get_weather'}"),
                     rev(p, "response.function_call_arguments.delta", "'item_id':'fc_b',"
                         "'output_index':1,'delta':'{\\'location\\':\\'Oslo\\'}'"),
                     rev(p, "response.function_call_arguments.delta", "'item_id':'fc_a',"
                         "'output_index':0,'delta':'" FC_ARGS "'"),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         "{'id':'fc_a','type':'function_call','status':'completed',"
                         "'arguments':'" FC_ARGS "','call_id':'call_a','name':'get_weather'}"),
                     rev(p, "response.output_item.done", "'output_index':1,'item':"
                         "{'id':'fc_b','type':'function_call','status':'completed',"
                         "'arguments':'{\\'location\\':\\'Oslo\\'}','call_id':'call_b',"
                         "'name':'get_weather'}"),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "parallel calls", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 2 && jeq(cc.calls, "0.id", "call_a")
       && jeq(cc.calls, "0.arguments", "{\"location\":\"Paris\"}")
       && jeq(cc.calls, "1.id", "call_b")
       && jeq(cc.calls, "1.arguments", "{\"location\":\"Oslo\"}"),
       "xstream responses->chat parallel calls: indexes 0 and 1, each its arguments (%s)",
       show(p, cc.calls));

    /* trap 62: only the .done events; only output_item.added + done; only the
     * completed output */
    in = apr_pstrcat(p, head,
                     rev(p, "response.function_call_arguments.done", "'item_id':"
                         "'fc_up1','output_index':0,'name':'get_weather','arguments':'"
                         FC_ARGS "'"),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         FC_ITEM(FC_ARGS, "completed")),
                     completed(p, "completed", "[" FC_ITEM(FC_ARGS, "completed") "]",
                               "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "only .done", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 1 && jeq(cc.calls, "0.id", "call_up1")
       && jeq(cc.calls, "0.name", "get_weather")
       && jeq(cc.calls, "0.arguments", "{\"location\":\"Paris\"}")
       && cc.finish && !strcmp(cc.finish, "tool_calls"),
       "xstream responses->chat only .done: the whole call still comes (trap 62) (%s)",
       show(p, cc.calls));
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         FC_ITEM("", "in_progress")),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         FC_ITEM(FC_ARGS, "completed")),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "added + done", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 1 && jeq(cc.calls, "0.arguments",
                                             "{\"location\":\"Paris\"}"),
       "xstream responses->chat added + done: the arguments from the done item (%s)",
       show(p, cc.calls));
    in = apr_pstrcat(p, head, completed(p, "completed", "[" FC_ITEM(FC_ARGS,
                                        "completed") "]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "completed only", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 1 && jeq(cc.calls, "0.id", "call_up1")
       && jeq(cc.calls, "0.arguments", "{\"location\":\"Paris\"}"),
       "xstream responses->chat completed only: the call from the terminal output "
       "(%s)", show(p, cc.calls));

    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         FC_ITEM("", "in_progress")),
                     rev(p, "response.function_call_arguments.done", "'item_id':"
                         "'fc_up1','output_index':0,'name':'get_weather','arguments':'"
                         FC_ARGS "'"),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "added + arguments.done", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(json_array_size(cc.calls) == 1 && jeq(cc.calls, "0.arguments",
                                             "{\"location\":\"Paris\"}"),
       "xstream responses->chat added + arguments.done: the arguments from "
       "function_call_arguments.done when no delta came (6E, trap 62) (%s)",
       show(p, cc.calls));

    /* completed with output [] after streamed deltas; deltas without
     * added events */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         MSG_ITEM),
                     rev(p, "response.content_part.added", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'part':{'type':'output_text',"
                         "'annotations':[],'text':''}"),
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Hi','logprobs':[]"),
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':' there','logprobs':[]"),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "empty output", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(!strcmp(cc.content, "Hi there") && cc.finish && !strcmp(cc.finish, "stop")
       && cc.done && cc.usage,
       "xstream responses->chat empty output: the streamed text once, stop, usage, "
       "[DONE] (trap 62) (%s)", cc.content);
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Bare','logprobs':[]"),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "bare deltas", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(!strcmp(cc.content, "Bare"), "xstream responses->chat bare deltas: text without "
       "output_item.added still streams (%s)", cc.content);

    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'caf\\u00e9 \\'q\\' "
                         "\\\\ \\/ \\n\\t \\u0001 \\ud83d\\ude00 \xe2\x80\x94\\u2028',"
                         "'logprobs':[]"),
                     completed(p, "completed", "[]", "," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "escapes", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(!strcmp(cc.content, "caf\xc3\xa9 \"q\" \\ / \n\t \x01 \xf0\x9f\x98\x80 "
               "\xe2\x80\x94\xe2\x80\xa8"),
       "xstream responses->chat escapes: the text comes out equal (%s)", V(p, cc.content));

    /* text that comes whole, with .done events only */
    {
        static const char *const name[] = {
            "text in output_text.done", "text in output_item.done",
            "text in response.completed"
        };
        const char *msg_done = "{'id':'msg_up1','type':'message','status':'completed',"
            "'role':'assistant','content':[{'type':'output_text','annotations':[],"
            "'text':'Whole'}]}";
        int k;

        for (k = 0; k < 3; ++k) {
            in = head;
            if (k == 0) {
                in = apr_pstrcat(p, in, rev(p, "response.output_item.added",
                                            "'output_index':0,'item':" MSG_ITEM),
                                 rev(p, "response.content_part.added", "'item_id':'msg_up1',"
                                     "'output_index':0,'content_index':0,'part':{'type':"
                                     "'output_text','annotations':[],'text':''}"), NULL);
                in = apr_pstrcat(p, in, rev(p, "response.output_text.done", "'item_id':"
                                            "'msg_up1','output_index':0,'content_index':0,"
                                            "'text':'Whole','logprobs':[]"), NULL);
            }
            if (k <= 1) {
                in = apr_pstrcat(p, in, rev(p, "response.output_item.done", apr_pstrcat(p,
                                            "'output_index':0,'item':", msg_done, NULL)),
                                 NULL);
            }
            in = apr_pstrcat(p, in, completed(p, "completed", k == 2
                                              ? apr_pstrcat(p, "[", msg_done, "]", NULL)
                                              : "[]", "," RUSAGE), NULL);
            in = renum(p, in, 0);
            r2c_case(p, name[k], req, 1, in, TB_STREAM_COMPLETE, &cc);
            OK(!strcmp(cc.content, "Whole"), "xstream responses->chat %s: the text reaches "
               "the client once (trap 62) (%s)", name[k], cc.content);
        }
    }

    /* reasoning summary deltas; incomplete */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_item.added", "'output_index':0,'item':"
                         "{'id':'rs_up1','type':'reasoning','summary':[]}"),
                     rev(p, "response.reasoning_summary_part.added", "'item_id':"
                         "'rs_up1','output_index':0,'summary_index':0,'part':{'type':"
                         "'summary_text','text':''}"),
                     rev(p, "response.reasoning_summary_text.delta", "'item_id':"
                         "'rs_up1','output_index':0,'summary_index':0,'delta':'Hmm.'"),
                     rev(p, "response.output_item.done", "'output_index':0,'item':"
                         "{'id':'rs_up1','type':'reasoning','summary':[{'type':"
                         "'summary_text','text':'Hmm.'}]}"),
                     rev(p, "response.output_item.added", "'output_index':1,'item':"
                         "{'id':'msg_up1','type':'message','status':'in_progress','role':"
                         "'assistant','content':[]}"),
                     rev(p, "response.content_part.added", "'item_id':'msg_up1',"
                         "'output_index':1,'content_index':0,'part':{'type':'output_text',"
                         "'annotations':[],'text':''}"),
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':1,'content_index':0,'delta':'Cut','logprobs':[]"),
                     completed(p, "incomplete", "[]", ",'incomplete_details':"
                               "{'reason':'max_output_tokens'}," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "incomplete", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(!strcmp(cc.reasoning, "Hmm.") && !strcmp(cc.content, "Cut")
       && cc.finish && !strcmp(cc.finish, "length"),
       "xstream responses->chat incomplete: reasoning_content, content, finish length "
       "(%s / %s / %s)", cc.reasoning, cc.content, cc.finish ? cc.finish : "-");

    /* trap 68: usage beside the response; the non-standard response.done */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Yo','logprobs':[]"),
                     rev(p, "response.completed", "'response':{'id':'resp_up1',"
                         "'object':'response','status':'completed','model':'gpt-4.1',"
                         "'output':[]}," RUSAGE), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "top-level usage", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(jint(cc.usage, "prompt_tokens") == 11 && jint(cc.usage, "completion_tokens") == 7,
       "xstream responses->chat top-level usage: taken from beside the response "
       "(trap 68) (%s)", show(p, cc.usage));
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Yo','logprobs':[]"),
                     rev(p, "response.done", "'response':{'id':'resp_up1','object':"
                         "'response','status':'completed','model':'gpt-4.1','output':[],"
                         RUSAGE "}"), NULL);
    in = renum(p, in, 0);
    r2c_case(p, "response.done", req, 1, in, TB_STREAM_COMPLETE, &cc);
    OK(!strcmp(cc.content, "Yo") && cc.finish && !strcmp(cc.finish, "stop") && cc.usage,
       "xstream responses->chat response.done: ends the stream (trap 68)");

    /* response.failed / an error event after content */
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Hel','logprobs':[]"),
                     completed(p, "failed", "[]", ",'error':{'code':'server_error',"
                               "'message':'boom'}"), NULL);
    in = renum(p, in, 0);
    r = r2c_case(p, "failed", req, 1, in, TB_STREAM_INTERRUPTED, &cc);
    OK(cc.error && jeq(cc.error, "message", "boom") && jeq(cc.error, "code", "server_error")
       && !cc.finish,
       "xstream responses->chat failed: a data: {\"error\":...} chunk, no finish_reason "
       "(%s)", V(p, r->out));
    in = apr_pstrcat(p, head,
                     rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                         "'output_index':0,'content_index':0,'delta':'Hel','logprobs':[]"),
                     rev(p, "error", "'code':'server_error','message':'upstream broke',"
                         "'param':null"), NULL);
    in = renum(p, in, 0);
    r = r2c_case(p, "error event", req, 1, in, TB_STREAM_INTERRUPTED, &cc);
    OK(cc.error && jeq(cc.error, "message", "upstream broke") && !cc.finish,
       "xstream responses->chat error event: a data: {\"error\":...} chunk (%s)",
       V(p, r->out));
}

/* ---- Responses pass-through ---------------------------------------------------------- */

static void test_passthrough(apr_pool_t *p)
{
    const char *opening, *delta1, *rest, *all, *extra;
    const char *ev[4];
    apr_pool_t *sp;
    out_rec_t o;
    tb_stream_opts_t opts;
    tb_stream_out_t out;
    tb_stream_t *s = NULL;
    run_t *r, *rb;
    rs_t rc;
    apr_status_t rv = APR_SUCCESS;
    json_t *failed;
    int i;

    ev[0] = renum(p, rev(p, "response.created", RESP_IP), 0);
    ev[1] = renum(p, rev(p, "response.in_progress", RESP_IP), 1);
    ev[2] = renum(p, rev(p, "response.output_item.added", "'output_index':0,'item':"
                          MSG_ITEM), 2);
    ev[3] = rev(p, "response.content_part.added", "'item_id':'msg_up1',"
                "'output_index':0,'content_index':0,'part':{'type':'output_text',"
                "'annotations':[],'logprobs':[],'text':''}");
    ev[3] = renum(p, ev[3], 3);
    opening = apr_pstrcat(p, ev[0], ev[1], ev[2], ev[3], NULL);
    delta1 = rev(p, "response.output_text.delta", "'item_id':'msg_up1',"
                 "'output_index':0,'content_index':0,'delta':'Hello','logprobs':[]");
    delta1 = renum(p, delta1, 4);
    rest = apr_pstrcat(p,
                       rev(p, "response.output_text.done", "'item_id':'msg_up1',"
                           "'output_index':0,'content_index':0,'text':'Hello','logprobs':[]"),
                       rev(p, "response.content_part.done", "'item_id':'msg_up1',"
                           "'output_index':0,'content_index':0,'part':{'type':'output_text',"
                           "'annotations':[],'logprobs':[],'text':'Hello'}"),
                       rev(p, "response.output_item.done", "'output_index':0,'item':"
                           "{'id':'msg_up1','type':'message','status':'completed','role':"
                           "'assistant','content':[{'type':'output_text','annotations':[],"
                           "'logprobs':[],'text':'Hello'}]}"),
                       completed(p, "completed", "[{'id':'msg_up1','type':'message',"
                                 "'status':'completed','role':'assistant','content':[{'type':"
                                 "'output_text','annotations':[],'logprobs':[],'text':"
                                 "'Hello'}]}]", "," RUSAGE), NULL);
    rest = renum(p, rest, 5);
    all = apr_pstrcat(p, opening, delta1, rest, NULL);

    /* the commit point, event by event */
    memset(&o, 0, sizeof(o));
    memset(&opts, 0, sizeof(opts));
    apr_pool_create(&sp, p);
    opts.client = opts.upstream = &tb_dialect_responses;
    opts.max_event = 1 << 20;
    opts.max_held = 1 << 16;
    out.ctx = &o;
    out.commit = rec_commit;
    out.write = rec_write;
    tb_stream_create(&s, sp, &opts, &out);
    for (i = 0; i < 4 && rv == APR_SUCCESS; ++i) {
        rv = tb_stream_feed(s, ev[i], strlen(ev[i]));
    }
    OK(rv == APR_SUCCESS && o.commits == 0 && o.writes == 0
       && tb_stream_state(s) == TB_STREAM_OPEN,
       "xstream pass-through: created, in_progress, an empty output_item.added and "
       "content_part.added are held (rv %d, %d commits, %d writes)", rv, o.commits,
       o.writes);
    rv = tb_stream_feed(s, delta1, strlen(delta1));
    OK(rv == APR_SUCCESS && o.commits == 1 && o.writes_at_commit == 0 && o.buf
       && !strcmp(o.buf, apr_pstrcat(p, opening, delta1, NULL)),
       "xstream pass-through: the first delta commits; the held events go first, as "
       "they came (%s)", V(p, o.buf));
    rv = tb_stream_feed(s, rest, strlen(rest));
    if (rv == APR_SUCCESS) {
        rv = tb_stream_finish(s);
    }
    OK(rv == APR_SUCCESS && o.buf && !strcmp(o.buf, all)
       && tb_stream_state(s) == TB_STREAM_COMPLETE,
       "xstream pass-through: every event forwarded verbatim, event: lines and "
       "sequence_number kept, nothing added (state %d)", tb_stream_state(s));
    OK(tb_stream_usage(s)->input == 11 && tb_stream_usage(s)->output == 7,
       "xstream pass-through: the usage read for billing (%ld/%ld)",
       tb_stream_usage(s)->input, tb_stream_usage(s)->output);
    free(o.buf);
    apr_pool_destroy(sp);

    r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, 0, 1);
    rb = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, 1, 1);
    rs_check(p, rb->out, &rc);
    OK(!strcmp(r->out, all) && !strcmp(rb->out, all) && !rc.why,
       "xstream pass-through: whole or byte by byte, the same bytes (%s)",
       rc.why ? rc.why : "ok");

    /* events without event: lines stay without them */
    all = renum(p, apr_pstrcat(p, "data: ", strstr(rev(p, "response.created", RESP_IP),
                                                   "data: ") + 6,
                               "data: ", strstr(rev(p, "response.output_text.delta",
                                                    "'item_id':'msg_up1','output_index':0,"
                                                    "'content_index':0,'delta':'Hi',"
                                                    "'logprobs':[]"), "data: ") + 6, NULL),
                0);
    r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, 0, 0);
    OK(!strcmp(r->out, all), "xstream pass-through: data-only events forwarded as they "
       "came (%s)", V(p, r->out));

    /* remote compaction (clients.md §3.5): no delta at all, one compaction
     * item; every event reaches the client */
    all = apr_pstrcat(p, ev[0], ev[1], NULL);
    extra = apr_pstrcat(p,
                        rev(p, "response.output_item.added", "'output_index':0,'item':"
                            "{'id':'cmp_1','type':'compaction','encrypted_content':''}"),
                        rev(p, "response.output_item.done", "'output_index':0,'item':"
                            "{'id':'cmp_1','type':'compaction','encrypted_content':'ENC'}"),
                        completed(p, "completed", "[{'id':'cmp_1','type':'compaction',"
                                  "'encrypted_content':'ENC'}]", "," RUSAGE), NULL);
    all = apr_pstrcat(p, all, renum(p, extra, 2), NULL);
    for (i = 0; i < 2; ++i) {
        r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, i, 1);
        OK(r->feed_rv == APR_SUCCESS && r->finish_rv == APR_SUCCESS && !strcmp(r->out, all)
           && r->state == TB_STREAM_COMPLETE,
           "xstream pass-through%s: a compaction stream (no delta) is delivered whole "
           "(rv %d/%d, state %d)", i ? " (byte by byte)" : "", r->feed_rv, r->finish_rv,
           r->state);
    }

    /* an error event after content, then the end */
    extra = rev(p, "error", "'code':'rate_limit_exceeded','message':'Rate limit reached. "
                "Please try again in 1.5s.','param':null");
    extra = renum(p, extra, 5);
    all = apr_pstrcat(p, opening, delta1, extra, NULL);
    for (i = 0; i < 2; ++i) {
        r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, i, 1);
        rs_check(p, r->out, &rc);
        failed = rs_event_of(&rc, "response.failed", 0);
        OK(starts(r->out, all) && failed && jint(failed, "sequence_number") == 6
           && jeq(failed, "response.id", "resp_up1") && jeq(failed, "response.status",
                                                            "failed")
           && js(failed, "response.error.code") && !rc.why
           && r->state == TB_STREAM_INTERRUPTED,
           "xstream pass-through%s: an error event after content: the upstream's events, "
           "then response.failed numbered 6 (last + 1) with the upstream's id (%s; %s)",
           i ? " (byte by byte)" : "", rc.why ? rc.why : "ok",
           V(p, r->out + (starts(r->out, all) ? strlen(all) : 0)));
    }
    OK(jeq(failed, "response.error.code", "rate_limit_exceeded")
       && jeq(failed, "response.error.message",
              "Rate limit reached. Please try again in 1.5s."),
       "xstream pass-through: the added response.failed carries the upstream error's "
       "code and message (Codex acts on error.code: clients.md §3.4, §8.5) (%s)",
       show(p, jat(failed, "response.error")));

    /* the end without a terminal event */
    all = apr_pstrcat(p, opening, delta1, NULL);
    r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, 0, 1);
    rs_check(p, r->out, &rc);
    failed = rs_event_of(&rc, "response.failed", 0);
    OK(starts(r->out, all) && jint(failed, "sequence_number") == 5
       && jeq(failed, "response.id", "resp_up1")
       && jeq(failed, "response.error.code", "stream_interrupted") && !rc.why,
       "xstream pass-through: cut short: response.failed stream_interrupted, "
       "numbered 5, the upstream's id (%s)", rc.why ? rc.why : show(p, failed));

    /* the upstream's own response.failed: nothing added */
    all = apr_pstrcat(p, opening, delta1, completed(p, "failed", "[]",
                      ",'error':{'code':'server_error','message':'boom'}"), NULL);
    all = renum(p, all, 5);
    r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, 0, 1);
    OK(!strcmp(r->out, all) && r->state == TB_STREAM_INTERRUPTED,
       "xstream pass-through: the upstream's response.failed forwarded, nothing added "
       "(state %d; %s)", r->state, V(p, r->out + (starts(r->out, all) ? strlen(all) : 0)));

    /* an error event before content */
    all = apr_pstrcat(p, ev[0], ev[1], rev(p, "error", "'code':'server_error',"
                      "'message':'upstream broke','param':null"), NULL);
    all = renum(p, all, 2);
    for (i = 0; i < 2; ++i) {
        r = run(p, &tb_dialect_responses, &tb_dialect_responses, NULL, 0, all, i, 1);
        OK(r->feed_rv == TB_STREAM_E_UPSTREAM && r->commits == 0 && !*r->out
           && r->upstream_error && !strcmp(r->upstream_error, "upstream broke"),
           "xstream pass-through%s: an error event before content -> "
           "TB_STREAM_E_UPSTREAM, nothing written (rv %d, %s)", i ? " (byte by byte)" : "",
           r->feed_rv, V(p, r->out));
    }
}


/* ---- the checkers themselves ---------------------------------------------------- */

/* The events joined, leaving out number `skip` (-1: none), numbered. */
static const char *join_skip(apr_pool_t *p, const char *const *evs, int n, int skip)
{
    const char *out = "";
    int i;

    for (i = 0; i < n; ++i) {
        if (i != skip) {
            out = apr_pstrcat(p, out, evs[i], NULL);
        }
    }
    return renum(p, out, 0);
}

static int why_has(const char *why, const char *what)
{
    return why && strstr(why, what);
}

static void test_checkers(apr_pool_t *p)
{
    const char *evs[9], *s;
    const char *done_item = "{'id':'msg_up1','type':'message','status':'completed',"
        "'role':'assistant','content':[{'type':'output_text','annotations':[],"
        "'text':'Hi'}]}";
    rs_t rc;
    cc_t cc;

    evs[0] = rev(p, "response.created", RESP_IP);
    evs[1] = rev(p, "response.in_progress", RESP_IP);
    evs[2] = rev(p, "response.output_item.added", "'output_index':0,'item':" MSG_ITEM);
    evs[3] = rev(p, "response.content_part.added", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'part':{'type':'output_text','annotations':[],"
                 "'text':''}");
    evs[4] = rev(p, "response.output_text.delta", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'delta':'Hi','logprobs':[]");
    evs[5] = rev(p, "response.output_text.done", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'text':'Hi','logprobs':[]");
    evs[6] = rev(p, "response.content_part.done", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'part':{'type':'output_text','annotations':[],"
                 "'text':'Hi'}");
    evs[7] = rev(p, "response.output_item.done", apr_pstrcat(p, "'output_index':0,"
                 "'item':", done_item, NULL));
    evs[8] = completed(p, "completed", apr_pstrcat(p, "[", done_item, "]", NULL),
                       "," RUSAGE);
    rs_check(p, join_skip(p, evs, 9, -1), &rc);
    OK(!rc.why, "checker: a well-formed Responses stream passes (%s)",
       rc.why ? rc.why : "ok");
    rs_check(p, join_skip(p, evs, 9, 3), &rc);
    OK(why_has(rc.why, "missing content"), "checker: no content_part.added -> missing "
       "content (%s)", rc.why ? rc.why : "passed");
    rs_check(p, join_skip(p, evs, 9, 2), &rc);
    OK(why_has(rc.why, "missing output"), "checker: no output_item.added -> missing "
       "output (%s)", rc.why ? rc.why : "passed");
    rs_check(p, join_skip(p, evs, 9, 0), &rc);
    OK(why_has(rc.why, "response.created"), "checker: no response.created first (%s)",
       rc.why ? rc.why : "passed");
    rs_check(p, join_skip(p, evs, 9, 8), &rc);
    OK(why_has(rc.why, "no terminal"), "checker: no terminal event (%s)",
       rc.why ? rc.why : "passed");
    rs_check(p, apr_pstrcat(p, join_skip(p, evs, 9, -1), "data: [DONE]\n\n", NULL), &rc);
    OK(why_has(rc.why, "[DONE]"), "checker: a [DONE] (%s)", rc.why ? rc.why : "passed");
    s = join_skip(p, evs, 9, -1);
    rs_check(p, apr_pstrcat(p, apr_pstrndup(p, s, strstr(s, "\"sequence_number\":4") - s),
                            "\"sequence_number\":7",
                            strstr(s, "\"sequence_number\":4") + 19, NULL), &rc);
    OK(why_has(rc.why, "sequence_number 7 after 3"), "checker: a gap in sequence_number "
       "(%s)", rc.why ? rc.why : "passed");
    evs[5] = rev(p, "response.output_text.done", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'text':'H','logprobs':[]");
    rs_check(p, join_skip(p, evs, 9, -1), &rc);
    OK(why_has(rc.why, "not the whole"), "checker: output_text.done without the full "
       "text (%s)", rc.why ? rc.why : "passed");
    evs[5] = rev(p, "response.output_text.done", "'item_id':'msg_up1','output_index':0,"
                 "'content_index':0,'text':'Hi','logprobs':[]");
    evs[8] = completed(p, "completed", "[{'id':'msg_other','type':'message','status':"
                       "'completed','role':'assistant','content':[{'type':'output_text',"
                       "'annotations':[],'text':'Hi'}]}]", "," RUSAGE);
    rs_check(p, join_skip(p, evs, 9, -1), &rc);
    OK(why_has(rc.why, "differs from its output_item.done"), "checker: completed output "
       "with other ids (%s)", rc.why ? rc.why : "passed");
    evs[8] = completed(p, "completed", apr_pstrcat(p, "[", done_item, "]", NULL),
                       ",'usage':{'prompt_tokens':1,'completion_tokens':1,"
                       "'total_tokens':2}");
    rs_check(p, join_skip(p, evs, 9, -1), &rc);
    OK(why_has(rc.why, "usage"), "checker: chat usage names in response.completed (%s)",
       rc.why ? rc.why : "passed");

    s = apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hi'}", NULL),
                    cchunk(p, "{}", "stop"), CDONE, NULL);
    cc_check(p, s, &cc);
    OK(!cc.why && !strcmp(cc.content, "Hi"), "checker: a well-formed chat stream passes "
       "(%s)", cc.why ? cc.why : "ok");
    cc_check(p, apr_pstrcat(p, cchunk(p, "{'content':'Hi'}", NULL), cchunk(p, "{}", "stop"),
                            CDONE, NULL), &cc);
    OK(why_has(cc.why, "missing role"), "checker: chat without a role (%s)",
       cc.why ? cc.why : "passed");
    cc_check(p, apr_pstrcat(p, cchunk(p, CROLE, NULL), cchunk(p, "{'content':'Hi'}", NULL),
                            CDONE, NULL), &cc);
    OK(why_has(cc.why, "finish_reason"), "checker: chat without a finish (%s)",
       cc.why ? cc.why : "passed");
    cc_check(p, apr_pstrcat(p, cchunk(p, "{'role':'assistant','tool_calls':[{'index':1,"
                                      "'id':'c','type':'function','function':{'name':'f',"
                                      "'arguments':''}}]}", NULL),
                            cchunk(p, "{}", "tool_calls"), CDONE, NULL), &cc);
    OK(why_has(cc.why, "index"), "checker: a sparse tool call index (%s)",
       cc.why ? cc.why : "passed");
    cc_check(p, apr_pstrcat(p, cchunk(p, "{'role':'assistant','tool_calls':[{'index':0,"
                                      "'type':'function','function':{'name':'f',"
                                      "'arguments':''}}]}", NULL),
                            cchunk(p, "{}", "tool_calls"), CDONE, NULL), &cc);
    OK(why_has(cc.why, "missing choices[0].tool_calls[0]"), "checker: a first tool "
       "call delta without an id (%s)", cc.why ? cc.why : "passed");
}

void test_xstream(apr_pool_t *p)
{
    test_checkers(p);
    test_c2r_stream(p);
    test_r2c_stream(p);
    test_passthrough(p);
}
