/* tb_stream: the stream pipeline (upstream SSE bytes → commit decision →
 * client events): holding back the opening, the commit point, errors
 * before and after it, usage, normalisation, and bounded memory. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "tb_stream.h"
#include "tb_unit.h"

/* ---- the client side: records commits and what was written ------------- */

typedef struct out_rec_t {
    char *buf;               /* malloc'd, NUL-terminated; NULL when counting */
    apr_size_t len, cap;
    int count_only;          /* keep no bytes, just count them */
    int commits;
    int writes;
    int writes_at_commit;    /* writes seen when commit ran */
    apr_size_t first_write;  /* length of the first write */
    apr_status_t write_rv;   /* returned by write */
    apr_status_t commit_rv;  /* returned by commit */
} out_rec_t;

static apr_status_t rec_commit(void *ctx)
{
    out_rec_t *o = ctx;

    ++o->commits;
    o->writes_at_commit = o->writes;
    return o->commit_rv;
}

static apr_status_t rec_write(void *ctx, const char *buf, apr_size_t len)
{
    out_rec_t *o = ctx;

    if (++o->writes == 1) {
        o->first_write = len;
    }
    if (!o->count_only) {
        if (o->len + len + 1 > o->cap) {
            apr_size_t cap = o->cap ? o->cap : 1024;

            while (cap < o->len + len + 1) {
                cap *= 2;
            }
            o->buf = realloc(o->buf, cap);
            if (!o->buf) {
                abort();
            }
            o->cap = cap;
        }
        memcpy(o->buf + o->len, buf, len);
        o->buf[o->len + len] = '\0';
    }
    o->len += len;
    return o->write_rv;
}

static const char *written(const out_rec_t *o)
{
    return o->buf ? o->buf : "";
}

static void out_reset(out_rec_t *o)
{
    free(o->buf);
    memset(o, 0, sizeof(*o));
}

/* A stream on `p` writing into `o`. */
static tb_stream_t *mk(apr_pool_t *p, out_rec_t *o, int wants_usage,
                       apr_size_t max_held)
{
    tb_stream_opts_t opts;
    tb_stream_out_t out;
    tb_stream_t *s = NULL;
    apr_status_t rv;

    memset(&opts, 0, sizeof(opts));
    opts.client = &tb_dialect_chat;
    opts.upstream = &tb_dialect_chat;
    opts.client_wants_usage = wants_usage;
    opts.max_event = 1 << 20;
    opts.max_held = max_held;
    out.ctx = o;
    out.commit = rec_commit;
    out.write = rec_write;
    rv = tb_stream_create(&s, p, &opts, &out);
    if (rv != APR_SUCCESS || !s) {
        OK(0, "stream create (rv %d)", rv);
        abort();
    }
    return s;
}

static apr_status_t feed(tb_stream_t *s, const char *str)
{
    return tb_stream_feed(s, str, strlen(str));
}

/* The test name's view of a string: line ends made visible, cut short. */
static const char *vis(apr_pool_t *p, const char *s)
{
    apr_size_t n = strlen(s), i;
    char *out = apr_palloc(p, 2 * (n > 120 ? 120 : n) + 8), *o = out;

    for (i = 0; i < n && i < 120; ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
            *o++ = '\\';
            *o++ = s[i] == '\n' ? 'n' : 'r';
        }
        else if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            *o++ = '?';
        }
        else {
            *o++ = s[i];
        }
    }
    if (n > 120) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}

static const char *state_name(tb_stream_state_t st)
{
    return st == TB_STREAM_OPEN ? "OPEN"
         : st == TB_STREAM_COMMITTED ? "COMMITTED"
         : st == TB_STREAM_COMPLETE ? "COMPLETE"
         : st == TB_STREAM_INTERRUPTED ? "INTERRUPTED" : "?";
}

static int ends_with(const char *s, const char *tail)
{
    apr_size_t n = strlen(s), t = strlen(tail);

    return n >= t && !memcmp(s + n - t, tail, t);
}

/* ---- upstream chunks ---------------------------------------------------- */

#define ROLE "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":" \
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}," \
    "\"finish_reason\":null}]}\n\n"
#define EMPTY "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{}," \
    "\"finish_reason\":null}]}\n\n"
#define KEEPALIVE ": keepalive\n\n"
#define HELLO "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":" \
    "{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n"
#define WORLD "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":" \
    "{\"content\":\" world\"},\"finish_reason\":null}]}\n\n"
#define FINISH "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{}," \
    "\"finish_reason\":\"stop\"}]}\n\n"
#define USAGE_ONLY "data: {\"id\":\"c1\",\"choices\":[],\"usage\":" \
    "{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n"
#define DONE "data: [DONE]\n\n"
#define ERROR_EV "data: {\"error\":{\"message\":\"Rate limit reached\"," \
    "\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"rate_limit\"}}\n\n"

/* ---- the commit point --------------------------------------------------- */

static void test_commit(apr_pool_t *p)
{
    out_rec_t o = { 0 };
    tb_stream_t *s = mk(p, &o, 0, 65536);
    apr_status_t rv1, rv2, rv3, rv;

    OK(tb_stream_state(s) == TB_STREAM_OPEN && tb_stream_committed_at(s) == 0
       && tb_stream_upstream_error(s) == NULL,
       "stream starts OPEN, uncommitted, without an upstream error");
    rv1 = feed(s, ROLE);
    rv2 = feed(s, EMPTY);
    rv3 = feed(s, KEEPALIVE);
    OK(rv1 == APR_SUCCESS && rv2 == APR_SUCCESS && rv3 == APR_SUCCESS,
       "stream opening events are accepted (%d %d %d)", rv1, rv2, rv3);
    OK(o.commits == 0 && o.writes == 0 && o.len == 0
       && tb_stream_state(s) == TB_STREAM_OPEN,
       "stream role-only, empty delta, keepalive: nothing written, no commit "
       "(%d commits, %d writes, state %s)", o.commits, o.writes,
       state_name(tb_stream_state(s)));
    rv = feed(s, HELLO);
    OK(rv == APR_SUCCESS && o.commits == 1 && o.writes_at_commit == 0,
       "stream first content commits, before any write (rv %d, %d commits)",
       rv, o.commits);
    OK(o.writes == 1 && !strcmp(written(&o), ROLE EMPTY HELLO),
       "stream the held events then the content, in one write (%d writes: %s)",
       o.writes, vis(p, written(&o)));
    OK(tb_stream_state(s) == TB_STREAM_COMMITTED
       && tb_stream_committed_at(s) > 0,
       "stream state COMMITTED with a commit time (%s)",
       state_name(tb_stream_state(s)));
    rv = feed(s, WORLD);
    OK(rv == APR_SUCCESS && o.writes == 2 && o.commits == 1
       && !strcmp(written(&o), ROLE EMPTY HELLO WORLD),
       "stream later chunks are written as they come (%d writes)", o.writes);
    feed(s, FINISH);
    OK(o.writes == 3 && ends_with(written(&o), FINISH),
       "stream the finish chunk is written");
    rv = feed(s, DONE);
    OK(rv == APR_SUCCESS && tb_stream_state(s) == TB_STREAM_COMPLETE
       && ends_with(written(&o), FINISH DONE),
       "stream [DONE] is passed on and the state is COMPLETE (%s)",
       state_name(tb_stream_state(s)));
    {
        apr_size_t before = o.len;

        rv = feed(s, HELLO KEEPALIVE);
        rv1 = tb_stream_finish(s);
        OK(rv == APR_SUCCESS && rv1 == APR_SUCCESS && o.len == before
           && o.commits == 1 && tb_stream_state(s) == TB_STREAM_COMPLETE,
           "stream nothing after [DONE] is written, finish adds nothing "
           "(rv %d/%d, %" APR_SIZE_T_FMT " more bytes)", rv, rv1,
           o.len - before);
    }
    out_reset(&o);

    /* the same stream in one feed and one byte at a time */
    {
        const char *all = ROLE EMPTY KEEPALIVE HELLO WORLD FINISH DONE;
        apr_size_t i, n = strlen(all);
        const char *want = ROLE EMPTY HELLO WORLD FINISH DONE;

        s = mk(p, &o, 0, 65536);
        rv = feed(s, all);
        OK(rv == APR_SUCCESS && !strcmp(written(&o), want) && o.commits == 1
           && tb_stream_state(s) == TB_STREAM_COMPLETE,
           "stream a whole stream in one feed (%s)", vis(p, written(&o)));
        out_reset(&o);
        s = mk(p, &o, 0, 65536);
        rv = APR_SUCCESS;
        for (i = 0; i < n && rv == APR_SUCCESS; ++i) {
            rv = tb_stream_feed(s, all + i, 1);
        }
        OK(rv == APR_SUCCESS && !strcmp(written(&o), want) && o.commits == 1
           && tb_stream_state(s) == TB_STREAM_COMPLETE,
           "stream a whole stream one byte at a time gives the same bytes");
        out_reset(&o);
    }
}

/* A chunk whose delta is `delta` (a JSON object text). */
static const char *delta_chunk(apr_pool_t *p, const char *delta)
{
    return apr_psprintf(p, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,"
                        "\"delta\":%s,\"finish_reason\":null}]}\n\n", delta);
}

static void commits_on(apr_pool_t *p, const char *chunk, int want_commit,
                       const char *what)
{
    out_rec_t o = { 0 };
    tb_stream_t *s = mk(p, &o, 0, 65536);
    apr_status_t rv;

    feed(s, ROLE);
    rv = feed(s, chunk);
    if (want_commit) {
        OK(rv == APR_SUCCESS && o.commits == 1
           && tb_stream_state(s) == TB_STREAM_COMMITTED
           && !strcmp(written(&o), apr_pstrcat(p, ROLE, chunk, NULL)),
           "stream %s counts as content (rv %d, %d commits, state %s)",
           what, rv, o.commits, state_name(tb_stream_state(s)));
    }
    else {
        OK(rv == APR_SUCCESS && o.commits == 0 && o.len == 0
           && tb_stream_state(s) == TB_STREAM_OPEN,
           "stream %s is not content (rv %d, %d commits, state %s)",
           what, rv, o.commits, state_name(tb_stream_state(s)));
    }
    out_reset(&o);
}

static void test_content_kinds(apr_pool_t *p)
{
    commits_on(p, FINISH, 1, "finish_reason alone");
    commits_on(p, delta_chunk(p, "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
                              "\"type\":\"function\",\"function\":{\"name\":"
                              "\"get_weather\",\"arguments\":\"\"}}]}"), 1,
               "a tool_calls delta");
    commits_on(p, delta_chunk(p, "{\"refusal\":\"I can't help with that.\"}"), 1,
               "a refusal");
    commits_on(p, delta_chunk(p, "{\"reasoning_content\":\"Let me think\"}"), 1,
               "reasoning_content");
    commits_on(p, delta_chunk(p, "{\"reasoning\":\"Hmm\"}"), 1, "reasoning");
    commits_on(p, delta_chunk(p, "{\"function_call\":{\"name\":\"f\"}}"), 1,
               "a legacy function_call");
    commits_on(p, delta_chunk(p, "{\"content\":\"\"}"), 0, "an empty content string");
    commits_on(p, delta_chunk(p, "{\"content\":null}"), 0, "null content");
    commits_on(p, delta_chunk(p, "{\"tool_calls\":[]}"), 0, "an empty tool_calls");
    commits_on(p, delta_chunk(p, "{\"refusal\":null}"), 0, "a null refusal");
    commits_on(p, "data: not json\n\n", 0, "non-JSON data");
    commits_on(p, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
               "\"assistant\"},\"finish_reason\":null},{\"index\":1,\"delta\":"
               "{\"content\":\"B\"},\"finish_reason\":null}]}\n\n", 1,
               "content in the second choice");
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors_before_commit(apr_pool_t *p)
{
    out_rec_t o = { 0 };
    tb_stream_t *s;
    apr_status_t rv;

    s = mk(p, &o, 0, 65536);
    feed(s, ROLE);
    rv = feed(s, ERROR_EV);
    OK(rv == TB_STREAM_E_UPSTREAM && o.commits == 0 && o.len == 0,
       "stream an error event before content: TB_STREAM_E_UPSTREAM, nothing "
       "written (rv %d, %d commits, %" APR_SIZE_T_FMT " bytes)", rv, o.commits,
       o.len);
    OK(tb_stream_upstream_error(s)
       && !strcmp(tb_stream_upstream_error(s)->message, "Rate limit reached"),
       "stream the upstream error message is kept (%s)",
       tb_stream_upstream_error(s) ? tb_stream_upstream_error(s)->message : "NULL");
    OK(tb_stream_state(s) == TB_STREAM_OPEN, "stream still OPEN after an "
       "error before the commit (%s)", state_name(tb_stream_state(s)));
    rv = tb_stream_fail(s, "x", "y");
    OK(rv == APR_SUCCESS && o.len == 0 && tb_stream_state(s) == TB_STREAM_OPEN,
       "stream fail before the commit is a no-op");
    out_reset(&o);

    /* the content after the error in the same feed is not sent */
    s = mk(p, &o, 0, 65536);
    rv = feed(s, ROLE ERROR_EV HELLO);
    OK(rv == TB_STREAM_E_UPSTREAM && o.commits == 0 && o.len == 0,
       "stream an error event then content in one feed: E_UPSTREAM, nothing "
       "written (rv %d)", rv);
    out_reset(&o);

    /* event: error */
    s = mk(p, &o, 0, 65536);
    rv = feed(s, "event: error\ndata: {\"type\":\"overloaded\",\"message\":"
              "\"Overloaded\"}\n\n");
    OK(rv == TB_STREAM_E_UPSTREAM && o.len == 0 && o.commits == 0
       && tb_stream_upstream_error(s) != NULL,
       "stream event: error before content: E_UPSTREAM (rv %d, message %s)",
       rv, tb_stream_upstream_error(s) ? tb_stream_upstream_error(s)->message : "NULL");
    out_reset(&o);

    /* the error as a bare string */
    s = mk(p, &o, 0, 65536);
    rv = feed(s, "data: {\"error\":\"bad gateway\"}\n\n");
    OK(rv == TB_STREAM_E_UPSTREAM && tb_stream_upstream_error(s)
       && !strcmp(tb_stream_upstream_error(s)->message, "bad gateway"),
       "stream a string error: E_UPSTREAM with its message (%s)",
       tb_stream_upstream_error(s) ? tb_stream_upstream_error(s)->message : "NULL");
    out_reset(&o);

    /* event: error whose data is not JSON is still an error event */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE);
    rv = feed(s, "event: error\ndata: Internal Server Error\n\n");
    OK(rv == TB_STREAM_E_UPSTREAM && o.len == 0 && o.commits == 0,
       "stream event: error with non-JSON data before content: E_UPSTREAM "
       "(rv %d)", rv);
    out_reset(&o);

    /* "error": null is not an error */
    s = mk(p, &o, 0, 65536);
    rv = feed(s, "data: {\"error\":null,\"choices\":[{\"index\":0,\"delta\":"
              "{\"content\":\"x\"},\"finish_reason\":null}]}\n\n");
    OK(rv == APR_SUCCESS && o.commits == 1 && !tb_stream_upstream_error(s),
       "stream \"error\": null is not an error (rv %d)", rv);
    out_reset(&o);

    /* [DONE] before content */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE);
    rv = feed(s, DONE);
    OK(rv == TB_STREAM_E_EMPTY && o.len == 0 && o.commits == 0,
       "stream [DONE] before content: TB_STREAM_E_EMPTY, nothing written "
       "(rv %d)", rv);
    out_reset(&o);

    /* finish without content */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE EMPTY KEEPALIVE);
    rv = tb_stream_finish(s);
    OK(rv == TB_STREAM_E_EMPTY && o.len == 0 && o.commits == 0,
       "stream finish without content: TB_STREAM_E_EMPTY, nothing written "
       "(rv %d)", rv);
    out_reset(&o);

    s = mk(p, &o, 0, 65536);
    rv = tb_stream_finish(s);
    OK(rv == TB_STREAM_E_EMPTY && o.len == 0,
       "stream finish of an empty stream: TB_STREAM_E_EMPTY (rv %d)", rv);
    out_reset(&o);

    /* the final event lacks its blank line: finish still sees the content */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
         "\"finish_reason\":\"stop\"}]}");
    OK(o.commits == 0, "stream an unfinished content event is not sent yet");
    rv = tb_stream_finish(s);
    OK(rv == APR_SUCCESS && o.commits == 1
       && tb_stream_state(s) == TB_STREAM_COMPLETE && ends_with(written(&o),
                                                                "\n\n" DONE),
       "stream finish dispatches the last event, commits and completes "
       "(rv %d, %s)", rv, vis(p, written(&o)));
    out_reset(&o);
}

/* The last event written: a data line carrying an OpenAI error object. */
static void is_error_chunk(apr_pool_t *p, const char *out, const char *message,
                           const char *code, const char *what)
{
    const char *last = NULL, *q;
    json_t *j = NULL, *e;
    int ok = 0;

    for (q = out; (q = strstr(q, "data: ")); q += 6) {
        if (q == out || q[-1] == '\n') {
            last = q;
        }
    }
    if (last && ends_with(last, "\n\n")) {
        j = json_loadb(last + 6, strlen(last) - 8, 0, NULL);
    }
    e = json_object_get(j, "error");
    if (json_is_object(e) && json_object_size(json_object_get(j, "error")) == 4
        && json_object_size(j) == 1) {
        ok = json_is_string(json_object_get(e, "message"))
            && !strcmp(json_string_value(json_object_get(e, "message")), message)
            && json_is_string(json_object_get(e, "type"))
            && json_is_null(json_object_get(e, "param"))
            && json_is_string(json_object_get(e, "code"))
            && !strcmp(json_string_value(json_object_get(e, "code")), code);
    }
    OK(ok, "stream %s: the last event is data: {\"error\":{message,type,param,"
       "code}} with code %s (%s)", what, code, last ? vis(p, last) : "none");
    json_decref(j);
}

static void test_after_commit(apr_pool_t *p)
{
    out_rec_t o = { 0 };
    tb_stream_t *s;
    apr_status_t rv;
    apr_size_t before;

    /* an upstream error event is passed on */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE HELLO);
    rv = feed(s, ERROR_EV);
    OK(rv == APR_SUCCESS && ends_with(written(&o), HELLO ERROR_EV)
       && tb_stream_state(s) == TB_STREAM_INTERRUPTED,
       "stream an error event after the commit is passed on, state "
       "INTERRUPTED (rv %d, %s)", rv, state_name(tb_stream_state(s)));
    before = o.len;
    feed(s, WORLD DONE);
    rv = tb_stream_finish(s);
    OK(rv == APR_SUCCESS && o.len == before
       && tb_stream_state(s) == TB_STREAM_INTERRUPTED,
       "stream nothing follows the interruption (rv %d)", rv);
    out_reset(&o);

    /* tb_stream_fail */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE HELLO);
    rv = tb_stream_fail(s, "Upstream timed out \"quoted\"", "upstream_timeout");
    OK(rv == APR_SUCCESS && tb_stream_state(s) == TB_STREAM_INTERRUPTED,
       "stream fail after the commit: state INTERRUPTED (rv %d, %s)", rv,
       state_name(tb_stream_state(s)));
    is_error_chunk(p, written(&o), "Upstream timed out \"quoted\"",
                   "upstream_timeout", "fail");
    OK(!strncmp(written(&o), ROLE HELLO "data: {", strlen(ROLE HELLO) + 7),
       "stream fail: the error chunk follows the content");
    before = o.len;
    rv = tb_stream_fail(s, "again", "again");
    OK(rv == APR_SUCCESS && o.len == before,
       "stream fail twice writes once");
    rv = tb_stream_finish(s);
    OK(rv == APR_SUCCESS && o.len == before
       && tb_stream_state(s) == TB_STREAM_INTERRUPTED,
       "stream finish after fail adds nothing (rv %d)", rv);
    out_reset(&o);

    /* finish after content, without a finish_reason */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE HELLO);
    rv = tb_stream_finish(s);
    OK(rv == APR_SUCCESS && tb_stream_state(s) == TB_STREAM_INTERRUPTED,
       "stream finish without a finish_reason: INTERRUPTED (rv %d, %s)", rv,
       state_name(tb_stream_state(s)));
    is_error_chunk(p, written(&o), "The upstream stream ended before the "
                   "response was complete.", "stream_interrupted",
                   "finish without a finish_reason");
    OK(!strstr(written(&o), DONE), "stream an interrupted stream has no [DONE]");
    out_reset(&o);

    /* finish with a finish_reason but no [DONE] */
    s = mk(p, &o, 0, 65536);
    feed(s, ROLE HELLO FINISH);
    rv = tb_stream_finish(s);
    OK(rv == APR_SUCCESS && tb_stream_state(s) == TB_STREAM_COMPLETE
       && !strcmp(written(&o), ROLE HELLO FINISH DONE),
       "stream finish after a finish_reason without [DONE] writes [DONE], "
       "COMPLETE (rv %d, %s)", rv, vis(p, written(&o)));
    out_reset(&o);

    /* keepalives once streaming */
    s = mk(p, &o, 0, 65536);
    feed(s, HELLO);
    before = o.len;
    rv = feed(s, ": ping\n\n");
    OK(rv == APR_SUCCESS && !strcmp(written(&o) + before, ": ping\n\n"),
       "stream a keepalive after the commit is written as :<text>\\n\\n (%s)",
       vis(p, written(&o) + before));
    before = o.len;
    feed(s, ":x\r\n\r\n");
    OK(!strcmp(written(&o) + before, ":x\n\n"),
       "stream a CRLF keepalive is written as \":x\\n\\n\" (%s)",
       vis(p, written(&o) + before));
    out_reset(&o);

    /* non-JSON data after the commit is relayed */
    s = mk(p, &o, 0, 65536);
    feed(s, HELLO);
    before = o.len;
    rv = feed(s, "data: not json\n\n");
    OK(rv == APR_SUCCESS && !strcmp(written(&o) + before, "data: not json\n\n"),
       "stream non-JSON data after the commit is relayed as is (%s)",
       vis(p, written(&o) + before));
    out_reset(&o);

    /* non-JSON data with a NUL byte after the commit: relayed byte for byte
     * (or dropped), never with bytes that were not in the event. Only the
     * first 8 bytes are compared, so a broken relay is not read further. */
    s = mk(p, &o, 0, 65536);
    feed(s, HELLO);
    before = o.len;
    rv = tb_stream_feed(s, "data: x\0yyy\n\n", 13);
    OK(rv == APR_SUCCESS && (o.len == before
                             || (o.len - before == 13
                                 && !memcmp(o.buf + before, "data: x\0", 8))),
       "stream data with a NUL byte after the commit is relayed as is or "
       "dropped (%" APR_SIZE_T_FMT " bytes written, starting %s)",
       o.len - before, o.len - before >= 8 && o.buf[before + 7] == '\0'
       ? "data: x\\0" : o.len > before ? "data: x + something else" : "-");
    out_reset(&o);
}

/* ---- usage -------------------------------------------------------------- */

static void test_usage(apr_pool_t *p)
{
    out_rec_t o = { 0 };
    tb_stream_t *s;
    const tb_ir_usage_t *u;
    apr_status_t rv;

    s = mk(p, &o, 0, 65536);
    u = tb_stream_usage(s);
    OK(u->input == -1 && u->output == -1
       && u->total == -1, "stream usage starts unknown (-1)");
    rv = feed(s, ROLE HELLO FINISH USAGE_ONLY DONE);
    u = tb_stream_usage(s);
    OK(rv == APR_SUCCESS && !strcmp(written(&o), ROLE HELLO FINISH DONE),
       "stream the usage-only chunk is hidden when the client did not ask "
       "(%s)", vis(p, written(&o)));
    OK(u->input == 5 && u->output == 7
       && u->total == 12, "stream ... but its counts are kept "
       "(%ld/%ld/%ld)", u->input, u->output,
       u->total);
    out_reset(&o);

    s = mk(p, &o, 1, 65536);
    rv = feed(s, ROLE HELLO FINISH USAGE_ONLY DONE);
    u = tb_stream_usage(s);
    OK(rv == APR_SUCCESS && !strcmp(written(&o), ROLE HELLO FINISH USAGE_ONLY DONE),
       "stream the usage-only chunk is shown when the client asked (%s)",
       vis(p, written(&o)));
    OK(u->input == 5 && u->output == 7
       && u->total == 12, "stream usage counts when shown");
    out_reset(&o);

    /* usage carried on a content chunk is not hidden */
    s = mk(p, &o, 0, 65536);
    {
        const char *c = "data: {\"choices\":[{\"index\":0,\"delta\":{},"
            "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
            "\"completion_tokens\":2,\"total_tokens\":3}}\n\n";

        rv = feed(s, apr_pstrcat(p, HELLO, c, NULL));
        u = tb_stream_usage(s);
        OK(rv == APR_SUCCESS && ends_with(written(&o), c) && u->total == 3,
           "stream usage on a chunk with choices is passed on and counted");
    }
    out_reset(&o);
}

/* ---- normalisation, bounds, client errors ------------------------------- */

static void test_misc(apr_pool_t *p)
{
    out_rec_t o = { 0 };
    tb_stream_t *s;
    apr_status_t rv;
    const char *small_role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\"}}]}\n\n";
    int i;

    /* data:{...} without the space, CRLF line ends */
    s = mk(p, &o, 0, 65536);
    rv = feed(s, "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}"
              "\r\n\r\nevent: x\r\nid: 1\r\ndata:{\"choices\":[{\"index\":0,"
              "\"delta\":{\"content\":\"b\"}}]}\r\n\r\n");
    OK(rv == APR_SUCCESS && !strcmp(written(&o),
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
       "event: x\nid: 1\n"
       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"),
       "stream data:{...} is written as data: {...}\\n\\n, event and id kept (%s)",
       vis(p, written(&o)));
    out_reset(&o);

    /* the held bytes are bounded */
    s = mk(p, &o, 0, 100);
    rv = feed(s, small_role);
    OK(rv == APR_SUCCESS && o.commits == 0 && strlen(small_role) <= 100,
       "stream max_held 100: one %" APR_SIZE_T_FMT "-byte opening chunk is "
       "held", strlen(small_role));
    rv = feed(s, small_role);
    OK(rv == APR_SUCCESS && o.commits == 1 && o.writes_at_commit == 0
       && tb_stream_state(s) == TB_STREAM_COMMITTED
       && !strcmp(written(&o), apr_pstrcat(p, small_role, small_role, NULL)),
       "stream max_held 100: opening chunks beyond it commit the stream and "
       "are written in order (%d commits, %s)", o.commits,
       state_name(tb_stream_state(s)));
    out_reset(&o);

    s = mk(p, &o, 0, 100);
    rv = APR_SUCCESS;
    for (i = 0; i < 20 && rv == APR_SUCCESS; ++i) {
        rv = feed(s, small_role);
    }
    OK(rv == APR_SUCCESS && o.commits == 1 && o.len == 20 * strlen(small_role),
       "stream max_held 100: 20 opening chunks all reach the client (%"
       APR_SIZE_T_FMT " bytes)", o.len);
    out_reset(&o);

    s = mk(p, &o, 0, 100);
    rv = feed(s, ROLE);
    OK(rv == APR_SUCCESS && o.commits == 1 && !strcmp(written(&o), ROLE),
       "stream max_held 100: one opening chunk larger than it commits at once");
    out_reset(&o);

    /* the client goes away */
    s = mk(p, &o, 0, 65536);
    o.write_rv = APR_ECONNABORTED;
    feed(s, ROLE);
    rv = feed(s, HELLO);
    OK(rv == APR_ECONNABORTED, "stream a write failure on the commit is "
       "returned by feed (rv %d)", rv);
    rv = feed(s, WORLD);
    OK(rv == APR_ECONNABORTED, "stream a write failure later is returned by "
       "feed (rv %d)", rv);
    rv = feed(s, ": ka\n\n");
    OK(rv == APR_ECONNABORTED, "stream a write failure on a keepalive is "
       "returned (rv %d)", rv);
    rv = tb_stream_fail(s, "m", "c");
    OK(rv == APR_ECONNABORTED, "stream a write failure in fail is returned "
       "(rv %d)", rv);
    out_reset(&o);

    s = mk(p, &o, 0, 65536);
    feed(s, HELLO);
    o.write_rv = APR_ECONNABORTED;
    rv = feed(s, WORLD FINISH DONE);
    OK(rv == APR_ECONNABORTED && o.writes == 2,
       "stream a write failure stops the feed (rv %d, %d writes)", rv, o.writes);
    out_reset(&o);

    s = mk(p, &o, 0, 65536);
    feed(s, HELLO FINISH);
    o.write_rv = APR_ECONNABORTED;
    rv = tb_stream_finish(s);
    OK(rv == APR_ECONNABORTED, "stream a write failure in finish is returned "
       "(rv %d)", rv);
    out_reset(&o);

    s = mk(p, &o, 0, 65536);
    o.commit_rv = APR_ECONNABORTED;
    rv = feed(s, HELLO);
    OK(rv == APR_ECONNABORTED && o.writes == 0,
       "stream a commit failure is returned, nothing written (rv %d)", rv);
    out_reset(&o);
}

/* ---- bounded memory ----------------------------------------------------- */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

static void test_memory(apr_pool_t *parent)
{
    static const apr_size_t sizes[] = { 16384, 16384, 1000, 37, 4096, 16384,
                                        65536, 1, 16384, 333 };
    const int warm = 1000, n = 100000;
    apr_size_t cap = (apr_size_t)(warm + n) * 200 + 64, len = 0, at, warm_len = 0;
    char *big = malloc(cap);
    apr_pool_t *p;
    out_rec_t o = { 0 };
    tb_stream_t *s;
    apr_status_t rv = APR_SUCCESS;
    size_t before, after;
    int i, k = 0;

    if (!big) {
        abort();
    }
    /* the big event stream, built once */
    for (i = 0; i < warm + n; ++i) {
        if (i == warm) {
            warm_len = len;
        }
        len += apr_snprintf(big + len, cap - len,
                            "data: {\"id\":\"chatcmpl-%d\",\"object\":\"chat."
                            "completion.chunk\",\"choices\":[{\"index\":0,"
                            "\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":"
                            "null}]}\n\n", i % 7, i);
    }
    warm_len = warm_len ? warm_len : len;

    apr_pool_create(&p, parent);
    o.count_only = 1;
    s = mk(p, &o, 0, 65536);
    for (at = 0; at < warm_len && rv == APR_SUCCESS; ++k) {
        apr_size_t step = sizes[k % (sizeof(sizes) / sizeof(sizes[0]))];

        step = step > warm_len - at ? warm_len - at : step;
        rv = tb_stream_feed(s, big + at, step);
        at += step;
    }
    before = heap_in_use();
    for (; at < len && rv == APR_SUCCESS; ++k) {
        apr_size_t step = sizes[k % (sizeof(sizes) / sizeof(sizes[0]))];

        step = step > len - at ? len - at : step;
        rv = tb_stream_feed(s, big + at, step);
        at += step;
    }
    after = heap_in_use();
    OK(rv == APR_SUCCESS && o.len == len && o.commits == 1,
       "stream memory: %d events (%" APR_SIZE_T_FMT " bytes) all written "
       "(rv %d, %" APR_SIZE_T_FMT " bytes out)", warm + n, len, rv, o.len);
    OK(after < before + 256 * 1024,
       "stream memory: heap in use %zu before and %zu after 100000 more "
       "events (growth %ld bytes, under 256 KB)", before, after,
       (long)after - (long)before);
    rv = tb_stream_feed(s, FINISH DONE, strlen(FINISH DONE));
    OK(rv == APR_SUCCESS && tb_stream_state(s) == TB_STREAM_COMPLETE,
       "stream memory: the long stream completes");
    apr_pool_destroy(p);
    free(big);
}

void test_stream(apr_pool_t *p)
{
    apr_pool_t *sp;

    apr_pool_create(&sp, p);
    test_commit(sp);
    test_content_kinds(sp);
    test_errors_before_commit(sp);
    test_after_commit(sp);
    test_usage(sp);
    test_misc(sp);
    test_memory(sp);
    apr_pool_destroy(sp);
}
