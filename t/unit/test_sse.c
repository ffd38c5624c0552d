/* tb_sse: the incremental server-sent events parser, as a specification of
 * its behaviour: any split of the input gives the same events, line ends,
 * fields, comments, the end of stream, and the memory bound. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_sse.h"
#include "tb_unit.h"

/* ---- a recorder: a transcript of everything the callback saw ------------- */

typedef struct rec_t {
    char *log;              /* malloc'd transcript, NUL-terminated */
    apr_size_t len, cap;
    int quiet;              /* count only, no transcript */
    int events, comments;
    int unterminated;       /* strings handed over without their NUL */
    int fail_at;            /* return fail_rv on this callback (1-based) */
    apr_status_t fail_rv;
    int calls;
} rec_t;

static void rec_put(rec_t *r, const char *s, apr_size_t n)
{
    if (r->len + n + 1 > r->cap) {
        apr_size_t cap = r->cap ? r->cap : 256;

        while (cap < r->len + n + 1) {
            cap *= 2;
        }
        r->log = realloc(r->log, cap);
        if (!r->log) {
            abort();
        }
        r->cap = cap;
    }
    memcpy(r->log + r->len, s, n);
    r->len += n;
    r->log[r->len] = '\0';
}

static void rec_puts(rec_t *r, const char *s)
{
    rec_put(r, s, strlen(s));
}

static void rec_reset(rec_t *r)
{
    free(r->log);
    memset(r, 0, sizeof(*r));
}

static const char *rec_log(const rec_t *r)
{
    return r->log ? r->log : "";
}

/* One entry per callback: "E[event][id]{data}" or "C{text}", where a NULL
 * event or id is written as "-" and strings as "<len>:<bytes>". */
static void rec_str(rec_t *r, const char *s, apr_size_t n)
{
    char num[32];

    if (!s) {
        rec_puts(r, "-");
        return;
    }
    apr_snprintf(num, sizeof(num), "%" APR_SIZE_T_FMT ":", n);
    rec_puts(r, num);
    rec_put(r, s, n);
}

static apr_status_t rec_cb(void *ctx, const tb_sse_event_t *ev)
{
    rec_t *r = ctx;

    ++r->calls;
    if (!ev->data || ev->data[ev->data_len] != '\0') {
        ++r->unterminated;
    }
    if (ev->kind == TB_SSE_COMMENT) {
        ++r->comments;
    }
    else {
        ++r->events;
    }
    if (!r->quiet) {
        if (ev->kind == TB_SSE_COMMENT) {
            rec_puts(r, "C{");
        }
        else {
            rec_puts(r, "E[");
            rec_str(r, ev->event, ev->event ? strlen(ev->event) : 0);
            rec_puts(r, "][");
            rec_str(r, ev->id, ev->id ? strlen(ev->id) : 0);
            rec_puts(r, "]{");
        }
        rec_str(r, ev->data, ev->data_len);
        rec_puts(r, "}\n");
    }
    if (r->fail_at && r->calls == r->fail_at) {
        return r->fail_rv;
    }
    return APR_SUCCESS;
}

/* The test name's view of a string: line ends made visible, cut short. */
static const char *vis(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *out = apr_palloc(p, 4 * (n > 60 ? 60 : n) + 8), *o = out;
    apr_size_t i;

    for (i = 0; i < n && i < 60; ++i) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        }
        else if (c < 0x20 || c >= 0x7f) {
            apr_snprintf(o, 5, "\\x%02x", c);
            o += 4;
        }
        else {
            *o++ = (char)c;
        }
    }
    if (n > 60) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}

/* Feed `in` in the pieces that `cuts` (ascending offsets) makes, then
 * finish; the transcript goes to r. Returns the first failure. */
static apr_status_t parse_pieces(apr_pool_t *p, const char *in, apr_size_t len,
                                 const apr_size_t *cuts, int ncuts,
                                 apr_size_t max_event, rec_t *r)
{
    tb_sse_parser_t *ps = tb_sse_parser_create(p, max_event);
    apr_size_t at = 0;
    apr_status_t rv;
    int i;

    for (i = 0; i <= ncuts; ++i) {
        apr_size_t to = i < ncuts ? cuts[i] : len;

        if ((rv = tb_sse_feed(ps, in + at, to - at, rec_cb, r)) != APR_SUCCESS) {
            return rv;
        }
        at = to;
    }
    return tb_sse_finish(ps, rec_cb, r);
}

static apr_status_t parse_once(apr_pool_t *p, const char *in, apr_size_t len,
                               rec_t *r)
{
    return parse_pieces(p, in, len, NULL, 0, 1 << 20, r);
}

/* `in` parsed in one feed gives exactly the transcript `want`. */
static void parses_to(apr_pool_t *p, const char *in, apr_size_t len,
                      const char *want, const char *what)
{
    rec_t r = { 0 };
    apr_status_t rv = parse_once(p, in, len, &r);

    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), want),
       "sse %s: %s gives %s (got %s, rv %d)", what, vis(p, in, len),
       vis(p, want, strlen(want)), vis(p, rec_log(&r), r.len), rv);
    OK(r.unterminated == 0, "sse %s: every string is NUL-terminated", what);
    rec_reset(&r);
}

/* Every 2-way split, and one byte at a time, give the one-shot events. */
static void split_invariant(apr_pool_t *p, const char *in, const char *what)
{
    apr_size_t len = strlen(in), i;
    rec_t whole = { 0 }, r = { 0 };
    apr_pool_t *sp;
    apr_size_t *cuts;
    int bad = 0, badcut = -1;

    apr_pool_create(&sp, p);
    parse_once(sp, in, len, &whole);
    OK(whole.calls > 0, "sse split %s: the one-shot parse sees %d callbacks",
       what, whole.calls);
    for (i = 0; i <= len; ++i) {
        apr_status_t rv;

        apr_pool_clear(sp);
        rv = parse_pieces(sp, in, len, &i, 1, 1 << 20, &r);
        if (rv != APR_SUCCESS || r.len != whole.len
            || memcmp(rec_log(&r), rec_log(&whole), whole.len)
            || r.unterminated) {
            ++bad;
            if (badcut < 0) {
                badcut = (int)i;
            }
        }
        rec_reset(&r);
    }
    OK(bad == 0, "sse split %s: all %" APR_SIZE_T_FMT " two-way splits give the "
       "same events (%d differ, first at %d)", what, len + 1, bad, badcut);

    apr_pool_clear(sp);
    cuts = apr_palloc(sp, (len ? len : 1) * sizeof(*cuts));
    for (i = 0; i + 1 < len; ++i) {
        cuts[i] = i + 1;
    }
    parse_pieces(sp, in, len, cuts, len ? (int)len - 1 : 0, 1 << 20, &r);
    OK(r.len == whole.len && !memcmp(rec_log(&r), rec_log(&whole), whole.len),
       "sse split %s: one byte at a time gives the same events (got %s)",
       what, vis(sp, rec_log(&r), r.len));
    rec_reset(&r);

    /* three-way splits around every pair of line ends: CR|LF and the like */
    {
        apr_size_t j;
        int bad3 = 0;

        for (i = 0; i < len; ++i) {
            if (in[i] != '\r' && in[i] != '\n') {
                continue;
            }
            for (j = i + 1; j <= len && j <= i + 3; ++j) {
                apr_size_t c3[2];
                apr_status_t rv;

                c3[0] = i;
                c3[1] = j;
                rv = parse_pieces(sp, in, len, c3, 2, 1 << 20, &r);
                if (rv != APR_SUCCESS || r.len != whole.len
                    || memcmp(rec_log(&r), rec_log(&whole), whole.len)) {
                    ++bad3;
                }
                rec_reset(&r);
            }
        }
        OK(bad3 == 0, "sse split %s: three-way splits around line ends give "
           "the same events (%d differ)", what, bad3);
    }
    rec_reset(&whole);
    apr_pool_destroy(sp);
}

/* a literal's length, embedded NULs included */
#define PARSES(p, lit, want, what) parses_to(p, lit, sizeof(lit) - 1, want, what)

/* ---- the format ---------------------------------------------------------- */

static void test_basics(apr_pool_t *p)
{
    PARSES(p, "data: hello\n\n", "E[-][-]{5:hello}\n", "one event");
    PARSES(p, "data: a\n\ndata: b\n\ndata: c\n\n",
              "E[-][-]{1:a}\nE[-][-]{1:b}\nE[-][-]{1:c}\n",
              "several events in one feed");
    PARSES(p, "data:x\n\n", "E[-][-]{1:x}\n", "data without the space");
    PARSES(p, "data:  x\n\n", "E[-][-]{2: x}\n",
              "only one leading space is removed");
    PARSES(p, "data: x \n\n", "E[-][-]{2:x }\n",
              "trailing spaces are kept");
    PARSES(p, "data:\n\n", "E[-][-]{0:}\n", "an empty data field");
    PARSES(p, "data\n\n", "E[-][-]{0:}\n",
              "a field without a colon (data alone is an empty data line)");
    PARSES(p, "data\ndata\n\n", "E[-][-]{1:\n}\n",
              "two empty data lines join into a newline");
    PARSES(p, "data: a\ndata: b\ndata:c\n\n", "E[-][-]{5:a\nb\nc}\n",
              "multi-line data is joined with \\n");
    PARSES(p, "data: a:b: c\n\n", "E[-][-]{6:a:b: c}\n",
              "only the first colon splits the field");
    PARSES(p, "data: {\"a\":1}\n\n", "E[-][-]{7:{\"a\":1}}\n",
              "JSON data");
    PARSES(p, "event: delta\nid: 42\ndata: x\n\n",
              "E[5:delta][2:42]{1:x}\n", "event and id fields are reported");
    PARSES(p, "event: delta\nid: 42\ndata: x\n\ndata: y\n\n",
              "E[5:delta][2:42]{1:x}\nE[-][-]{1:y}\n",
              "event and id are reset after dispatch");
    PARSES(p, "event: a\nevent: b\ndata: x\n\n", "E[1:b][-]{1:x}\n",
              "the last event field wins");
    PARSES(p, "event:\ndata: x\n\n", "E[0:][-]{1:x}\n",
              "an empty event field is reported as empty, not absent");
    PARSES(p, "id: a\0b\ndata: x\n\n", "E[-][-]{1:x}\n",
              "an id containing NUL is ignored");
    PARSES(p, "\n\n\nevent: e\n\nid: 3\n\n", "",
              "blank lines without data do not dispatch");
    PARSES(p, "event: e\n\ndata: x\n\n", "E[-][-]{1:x}\n",
              "an event field without data is dropped at the blank line");
    PARSES(p, "foo: bar\nretry: 1000\nDATA: no\ndata : no\ndata: x\n\n",
              "E[-][-]{1:x}\n", "unknown fields and retry are ignored");
    PARSES(p, "retry: 5\n\n", "",
              "a retry-only block dispatches nothing");
    PARSES(p, ": ping\n\n", "C{5: ping}\n",
              "a comment is reported with its text");
    PARSES(p, ":\n", "C{0:}\n", "an empty comment");
    PARSES(p, "data: a\n: mid\ndata: b\n\n", "C{4: mid}\nE[-][-]{3:a\nb}\n",
              "a comment inside an event does not end it");
    PARSES(p, "data: caf\xc3\xa9\n\n", "E[-][-]{5:caf\xc3\xa9}\n",
              "UTF-8 passes through");
}

static void test_line_ends(apr_pool_t *p)
{
    static const char *const ends[][2] = {
        { "\n", "LF" }, { "\r\n", "CRLF" }, { "\r", "CR" }
    };
    const char *want = "E[1:e][1:7]{3:a\nb}\nC{2: k}\nE[-][-]{1:c}\n";
    int i;

    for (i = 0; i < 3; ++i) {
        const char *nl = ends[i][0];
        const char *in = apr_pstrcat(p, "event: e", nl, "id: 7", nl, "data: a",
                                     nl, "data: b", nl, nl, ": k", nl,
                                     "data: c", nl, nl, NULL);

        parses_to(p, in, strlen(in), want,
                  apr_psprintf(p, "%s line ends", ends[i][1]));
    }
    PARSES(p, "data: a\r\ndata: b\rdata: c\n\r\n", "E[-][-]{5:a\nb\nc}\n",
              "mixed line ends");
    PARSES(p, "data: a\n\r\n\ndata: b\r\r", "E[-][-]{1:a}\nE[-][-]{1:b}\n",
              "CR CR is a line end and a blank line");
    PARSES(p, "data: a\n\rdata: b\n\n", "E[-][-]{1:a}\nE[-][-]{1:b}\n",
              "LF CR is two line ends");

    /* CR at the end of one feed, LF at the start of the next */
    {
        tb_sse_parser_t *ps = tb_sse_parser_create(p, 1 << 20);
        rec_t r = { 0 };
        apr_status_t rv1, rv2, rv3;

        rv1 = tb_sse_feed(ps, "data: a\r", 8, rec_cb, &r);
        rv2 = tb_sse_feed(ps, "\ndata: b\r", 9, rec_cb, &r);
        OK(rv1 == APR_SUCCESS && rv2 == APR_SUCCESS && r.calls == 0,
           "sse CRLF split across feeds: no blank line, no event yet (got %s)",
           vis(p, rec_log(&r), r.len));
        rv3 = tb_sse_feed(ps, "\n", 1, rec_cb, &r);
        OK(rv3 == APR_SUCCESS && r.calls == 0,
           "sse CRLF split across feeds: the LF of a CRLF is not a blank line");
        tb_sse_feed(ps, "\r", 1, rec_cb, &r);
        OK(!strcmp(rec_log(&r), "E[-][-]{3:a\nb}\n"),
           "sse CRLF split across feeds: one event \"a\\nb\" (got %s)",
           vis(p, rec_log(&r), r.len));
        tb_sse_feed(ps, "\n", 1, rec_cb, &r);
        tb_sse_finish(ps, rec_cb, &r);
        OK(r.calls == 1, "sse CRLF split across feeds: a last split CRLF adds "
           "nothing (%d callbacks)", r.calls);
        rec_reset(&r);
    }
    /* an empty feed between the CR and the LF */
    {
        tb_sse_parser_t *ps = tb_sse_parser_create(p, 1 << 20);
        rec_t r = { 0 };

        tb_sse_feed(ps, "data: a\r", 8, rec_cb, &r);
        tb_sse_feed(ps, "", 0, rec_cb, &r);
        tb_sse_feed(ps, "\ndata: b\r\n\r\n", 12, rec_cb, &r);
        OK(!strcmp(rec_log(&r), "E[-][-]{3:a\nb}\n"),
           "sse CRLF split by an empty feed: one event (got %s)",
           vis(p, rec_log(&r), r.len));
        rec_reset(&r);
    }
}

static void test_splits(apr_pool_t *p)
{
    split_invariant(p, "data: hello\n\n", "one event");
    split_invariant(p, "event: e\r\nid: 1\r\ndata: {\"a\":1}\r\ndata:two\r\n\r\n"
                    ": ka\r\n\r\ndata: last\r\n\r\n", "CRLF stream");
    split_invariant(p, "data: a\rdata: b\r\r: c\r\rdata:  d\r\r", "CR stream");
    split_invariant(p, "retry: 3\nfoo\n: hi\ndata\ndata: x\r\n\nid: 9\n"
                    "event: z\ndata: y\r\r\ndata: tail", "mixed stream, no final "
                    "blank line");
    split_invariant(p, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}"
                    "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
                    ": keepalive\n\ndata: [DONE]\n\n", "chat stream");
}

/* ---- end of stream ------------------------------------------------------- */

static void test_finish(apr_pool_t *p)
{
    tb_sse_parser_t *ps;
    rec_t r = { 0 };
    apr_status_t rv;

    ps = tb_sse_parser_create(p, 1 << 20);
    rv = tb_sse_feed(ps, "data: a\n\ndata: b\n", 17, rec_cb, &r);
    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), "E[-][-]{1:a}\n"),
       "sse finish: an event without its blank line is not dispatched by feed "
       "(got %s)", vis(p, rec_log(&r), r.len));
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), "E[-][-]{1:a}\nE[-][-]{1:b}\n"),
       "sse finish: ... but by finish (got %s)", vis(p, rec_log(&r), r.len));
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.calls == 2, "sse finish: twice dispatches nothing "
       "more (%d callbacks)", r.calls);
    rec_reset(&r);

    ps = tb_sse_parser_create(p, 1 << 20);
    tb_sse_feed(ps, "id: 5\ndata: x\ndata: partial", 27, rec_cb, &r);
    OK(r.calls == 0, "sse finish: a partial line waits for more bytes");
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), "E[-][1:5]{9:x\npartial}\n"),
       "sse finish: a partial line at EOF is processed (got %s)",
       vis(p, rec_log(&r), r.len));
    rec_reset(&r);

    ps = tb_sse_parser_create(p, 1 << 20);
    tb_sse_feed(ps, ": bye", 5, rec_cb, &r);
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), "C{4: bye}\n"),
       "sse finish: a partial comment at EOF is reported (got %s)",
       vis(p, rec_log(&r), r.len));
    rec_reset(&r);

    ps = tb_sse_parser_create(p, 1 << 20);
    tb_sse_feed(ps, "data: x\n\nevent: e\n", 18, rec_cb, &r);
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.calls == 1,
       "sse finish: a trailing block without data dispatches nothing");
    rec_reset(&r);

    ps = tb_sse_parser_create(p, 1 << 20);
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.calls == 0, "sse finish: an empty stream gives "
       "nothing");
    rec_reset(&r);

    ps = tb_sse_parser_create(p, 1 << 20);
    tb_sse_feed(ps, "data: x\r", 8, rec_cb, &r);
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_SUCCESS && !strcmp(rec_log(&r), "E[-][-]{1:x}\n"),
       "sse finish: after a final CR (got %s)", vis(p, rec_log(&r), r.len));
    rec_reset(&r);
}

/* ---- comments are NUL-terminated, also mid-buffer ------------------------ */

static void test_comment_nul(apr_pool_t *p)
{
    /* no NUL after the comment: the parser must copy it */
    char buf[] = "data: a\n\n: hello\ndata: b\n\n:x\rdata: c\n\n";
    apr_size_t len = sizeof(buf) - 1;
    tb_sse_parser_t *ps = tb_sse_parser_create(p, 1 << 20);
    rec_t r = { 0 };
    apr_status_t rv;

    rv = tb_sse_feed(ps, buf, len, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.comments == 2 && r.unterminated == 0,
       "sse comments in the middle of the caller's buffer are NUL-terminated "
       "(%d comments, %d unterminated)", r.comments, r.unterminated);
    OK(!strcmp(rec_log(&r), "E[-][-]{1:a}\nC{6: hello}\nE[-][-]{1:b}\nC{1:x}\n"
               "E[-][-]{1:c}\n"), "sse comments mid-buffer: text (got %s)",
       vis(p, rec_log(&r), r.len));
    OK(!memcmp(buf, "data: a\n\n: hello\ndata: b\n\n:x\rdata: c\n\n", len),
       "sse the caller's buffer is left as it was");
    rec_reset(&r);
}

/* ---- the bound ----------------------------------------------------------- */

static void test_bound(apr_pool_t *p)
{
    tb_sse_parser_t *ps;
    rec_t r = { 0 };
    apr_status_t rv;
    char *big, *in;
    apr_size_t i, n;

    /* exactly max_event raw bytes is fine; one more is not */
    big = apr_palloc(p, 200);
    memset(big, 'x', 200);
    in = apr_pstrcat(p, "data: ", apr_pstrmemdup(p, big, 56), "\n\n", NULL);
    ps = tb_sse_parser_create(p, 64);
    rv = tb_sse_feed(ps, in, strlen(in), rec_cb, &r);
    OK(rv == APR_SUCCESS && r.events == 1,
       "sse bound: an event of exactly max_event (64) bytes is accepted "
       "(rv %d)", rv);
    rec_reset(&r);
    in = apr_pstrcat(p, "data: ", apr_pstrmemdup(p, big, 57), "\n\n", NULL);
    ps = tb_sse_parser_create(p, 64);
    rv = tb_sse_feed(ps, in, strlen(in), rec_cb, &r);
    OK(rv == APR_ENOSPC && r.events == 0,
       "sse bound: max_event + 1 bytes gives APR_ENOSPC (rv %d)", rv);
    rec_reset(&r);

    /* an unfinished line of exactly max_event bytes, ended by finish */
    in = apr_pstrcat(p, "data: ", apr_pstrmemdup(p, big, 58), NULL);
    ps = tb_sse_parser_create(p, 64);
    rv = tb_sse_feed(ps, in, strlen(in), rec_cb, &r);
    if (rv == APR_SUCCESS) {
        rv = tb_sse_finish(ps, rec_cb, &r);
    }
    OK(rv == APR_SUCCESS && r.events == 1
       && r.len == strlen("E[-][-]{58:}\n") + 58,
       "sse bound: an unfinished line of exactly max_event (64) bytes is "
       "dispatched by finish (rv %d, %d events)", rv, r.events);
    rec_reset(&r);

    /* a big event in small feeds */
    ps = tb_sse_parser_create(p, 100);
    in = apr_pstrcat(p, "data: ", apr_pstrmemdup(p, big, 200), "\n\n", NULL);
    n = strlen(in);
    rv = APR_SUCCESS;
    for (i = 0; i < n && rv == APR_SUCCESS; i += 7) {
        rv = tb_sse_feed(ps, in + i, n - i < 7 ? n - i : 7, rec_cb, &r);
    }
    OK(rv == APR_ENOSPC && r.events == 0,
       "sse bound: a 208-byte event fed 7 bytes at a time gives APR_ENOSPC "
       "(rv %d)", rv);
    rec_reset(&r);

    /* many short data lines add up */
    ps = tb_sse_parser_create(p, 100);
    rv = APR_SUCCESS;
    for (i = 0; i < 50 && rv == APR_SUCCESS; ++i) {
        rv = tb_sse_feed(ps, "data: x\n", 8, rec_cb, &r);
    }
    OK(rv == APR_ENOSPC && r.events == 0,
       "sse bound: many data lines of one event add up to APR_ENOSPC (rv %d)",
       rv);
    rec_reset(&r);

    /* a line that never ends */
    ps = tb_sse_parser_create(p, 1000);
    rv = APR_SUCCESS;
    for (i = 0; i < 1000 && rv == APR_SUCCESS; ++i) {
        rv = tb_sse_feed(ps, big, 200, rec_cb, &r);
    }
    OK(rv == APR_ENOSPC && i <= 6, "sse bound: an endless line gives APR_ENOSPC "
       "early (rv %d after %" APR_SIZE_T_FMT " feeds of 200)", rv, i);
    rec_reset(&r);

    /* many events each under the bound are fine, whatever their total */
    ps = tb_sse_parser_create(p, 64);
    r.quiet = 1;
    rv = APR_SUCCESS;
    for (i = 0; i < 10000 && rv == APR_SUCCESS; ++i) {
        rv = tb_sse_feed(ps, "data: 0123456789\n\n", 18, rec_cb, &r);
    }
    OK(rv == APR_SUCCESS && r.events == 10000,
       "sse bound: 10000 small events never hit a 64-byte bound (%d events)",
       r.events);
    rec_reset(&r);
}

/* 100000 keepalives, fed as one buffer and in odd pieces. */
static void keepalives(apr_pool_t *p, const char *unit, const char *what)
{
    apr_size_t ul = strlen(unit), n = 100000, len = ul * n, i, at;
    char *in = malloc(len + 32);
    tb_sse_parser_t *ps;
    rec_t r = { 0 };
    apr_status_t rv;

    if (!in) {
        abort();
    }
    for (i = 0; i < n; ++i) {
        memcpy(in + i * ul, unit, ul);
    }
    memcpy(in + len, "data: after\n\n", 13);
    len += 13;

    r.quiet = 1;
    ps = tb_sse_parser_create(p, 64);
    rv = tb_sse_feed(ps, in, len, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.comments == 100000 && r.events == 1,
       "sse keepalives: 100000 \"%s\" in one feed never hit a 64-byte bound "
       "(rv %d, %d comments, %d events)", what, rv, r.comments, r.events);
    rec_reset(&r);

    r.quiet = 1;
    ps = tb_sse_parser_create(p, 64);
    rv = APR_SUCCESS;
    for (at = 0, i = 0; at < len && rv == APR_SUCCESS; ++i) {
        apr_size_t step = 1 + (i * 7919) % 61;

        if (step > len - at) {
            step = len - at;
        }
        rv = tb_sse_feed(ps, in + at, step, rec_cb, &r);
        at += step;
    }
    if (rv == APR_SUCCESS) {
        rv = tb_sse_finish(ps, rec_cb, &r);
    }
    OK(rv == APR_SUCCESS && r.comments == 100000 && r.events == 1,
       "sse keepalives: 100000 \"%s\" in odd pieces never hit the bound "
       "(rv %d, %d comments, %d events)", what, rv, r.comments, r.events);
    rec_reset(&r);
    free(in);
}

/* ---- callback errors ----------------------------------------------------- */

static void test_cb_error(apr_pool_t *p)
{
    const char *in = "data: 1\n\n: c\n\ndata: 3\n\ndata: 4\n\n";
    tb_sse_parser_t *ps;
    rec_t r = { 0 };
    apr_status_t rv;

    r.fail_at = 2;
    r.fail_rv = APR_ECONNABORTED;
    ps = tb_sse_parser_create(p, 1 << 20);
    rv = tb_sse_feed(ps, in, strlen(in), rec_cb, &r);
    OK(rv == APR_ECONNABORTED && r.calls == 2,
       "sse a callback error (on a comment) stops the feed and is returned "
       "(rv %d, %d callbacks)", rv, r.calls);
    rec_reset(&r);

    r.fail_at = 3;
    r.fail_rv = APR_EGENERAL;
    ps = tb_sse_parser_create(p, 1 << 20);
    rv = tb_sse_feed(ps, in, strlen(in), rec_cb, &r);
    OK(rv == APR_EGENERAL && r.calls == 3,
       "sse a callback error (on an event) stops the feed and is returned "
       "(rv %d, %d callbacks)", rv, r.calls);
    rec_reset(&r);

    r.fail_at = 1;
    r.fail_rv = APR_EGENERAL;
    ps = tb_sse_parser_create(p, 1 << 20);
    rv = tb_sse_feed(ps, "data: last", 10, rec_cb, &r);
    OK(rv == APR_SUCCESS && r.calls == 0, "sse callback error: setup");
    rv = tb_sse_finish(ps, rec_cb, &r);
    OK(rv == APR_EGENERAL && r.calls == 1,
       "sse a callback error in finish is returned (rv %d)", rv);
    rec_reset(&r);
}

void test_sse(apr_pool_t *p)
{
    apr_pool_t *sp;

    apr_pool_create(&sp, p);
    test_basics(sp);
    test_line_ends(sp);
    test_splits(sp);
    test_finish(sp);
    test_comment_nul(sp);
    test_bound(sp);
    keepalives(sp, ": ping\n\n", ": ping\\n\\n");
    keepalives(sp, ": ping\n", ": ping\\n");
    keepalives(sp, ": ping\r\n", ": ping\\r\\n");
    test_cb_error(sp);
    apr_pool_destroy(sp);
}
