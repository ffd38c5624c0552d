/* tb_json (parsing into pools, the raw member scanner, splicing, quoting,
 * error bodies), the chat dialect's request check and usage reads. */
#include <string.h>

#include <apr_strings.h>

#include "tb_json.h"
#include "tb_dialect.h"
#include "tb_unit.h"

/* Parse anything (scalars too) with jansson directly; owned by p. */
static json_t *load_any(apr_pool_t *p, const char *buf, apr_size_t len)
{
    return tb_json_pool_own(p, json_loadb(buf, len, JSON_DECODE_ANY
                                          | JSON_ALLOW_NUL, NULL));
}

static const char *status_name(apr_status_t rv)
{
    return rv == APR_SUCCESS ? "APR_SUCCESS"
         : rv == APR_NOTFOUND ? "APR_NOTFOUND"
         : rv == APR_EINVAL ? "APR_EINVAL" : "another status";
}

/* ---- tb_json_member_span ----------------------------------------------- */

/* The value of `key` in `body` spans exactly the text `want`, and what
 * jansson reads for that key is the same value as the span's text. */
static void span_is(apr_pool_t *p, const char *body, const char *key,
                    const char *want, const char *what)
{
    apr_size_t start = 12345, vlen = 12345, len = strlen(body);
    apr_status_t rv = tb_json_member_span(body, len, key, &start, &vlen);
    json_t *root, *mine;

    OK(rv == APR_SUCCESS, "member_span %s: found \"%s\" (%s)", what, key,
       status_name(rv));
    if (rv != APR_SUCCESS) {
        return;
    }
    OK(start + vlen <= len && vlen == strlen(want)
       && !memcmp(body + start, want, vlen),
       "member_span %s: spans exactly %s (got %.*s)", what, want,
       (int)(start + vlen <= len ? vlen : 0), body + start);
    root = load_any(p, body, len);
    mine = load_any(p, body + start, vlen);
    OK(root && mine && json_equal(json_object_get(root, key), mine),
       "member_span %s: the span is the value jansson sees for \"%s\"",
       what, key);
}

static void span_status(const char *body, apr_size_t len, const char *key,
                        apr_status_t want, const char *what)
{
    apr_size_t start = 0, vlen = 0;
    apr_status_t rv = tb_json_member_span(body, len, key, &start, &vlen);

    OK(rv == want, "member_span %s: %s (got %s)", what, status_name(want),
       status_name(rv));
}

static void member_span_finds(apr_pool_t *p)
{
    span_is(p, "{\"model\":\"gpt-4o\",\"messages\":[]}", "model",
            "\"gpt-4o\"", "first member, string value incl. quotes");
    span_is(p, "{\"messages\":[],\"stream\":true,\"model\":\"m\"}", "model",
            "\"m\"", "last member");
    span_is(p, " \r\n\t{\n  \"messages\" : [ ] ,\r\n\t\"model\"\t:\n  \"x\" \n}\n",
            "model", "\"x\"", "with spaces, tabs and CR/LF everywhere");
    span_is(p, "{\"model\":\"a\\\"b\\\\\"}", "model", "\"a\\\"b\\\\\"",
            "value with an escaped quote and backslash");
    span_is(p, "{\"x\":\"\\\\\",\"model\":\"m\"}", "model", "\"m\"",
            "after a string ending in an escaped backslash");
    span_is(p, "{\"x\":\"]}{[,:\",\"model\":\"m\"}", "model", "\"m\"",
            "after a string full of brackets and separators");
    span_is(p, "{\"model\":\"gpt-\\u00e9\\n\"}", "model",
            "\"gpt-\\u00e9\\n\"", "value with \\u and \\n escapes");
    span_is(p, "{\"model\":null}", "model", "null", "null value");
    span_is(p, "{\"model\":  42 ,\"x\":1}", "model", "42",
            "number value without the surrounding blanks");
    span_is(p, "{\"model\":-1.5e3}", "model", "-1.5e3",
            "number value right before the closing brace");
    span_is(p, "{\"model\":true}", "model", "true", "boolean value");
    span_is(p, "{\"model\":{\"a\":[1,{\"b\":\"}\"}]},\"z\":0}", "model",
            "{\"a\":[1,{\"b\":\"}\"}]}", "object value, nested");
    span_is(p, "{\"model\":[1,[2,[3]],\"]\"]}", "model",
            "[1,[2,[3]],\"]\"]", "array value, nested");
    span_is(p, "{\"model\":\"\"}", "model", "\"\"", "empty string value");
    span_is(p, "{\"temperature\":0.2,\"max_tokens\":100}", "max_tokens",
            "100", "another key than model");
}

#define SPAN_STATUS(body, want, what) \
    span_status((body), strlen(body), "model", (want), (what))

static void member_span_top_level_only(apr_pool_t *p)
{
    span_is(p, "{\"messages\":[{\"role\":\"user\",\"model\":\"inner\"}],"
               "\"model\":\"outer\"}", "model", "\"outer\"",
            "ignores \"model\" inside a message");
    span_is(p, "{\"model\":\"outer\",\"messages\":[{\"role\":\"user\","
               "\"model\":\"inner\"}]}", "model", "\"outer\"",
            "ignores a later \"model\" inside a message");
    span_is(p, "{\"meta\":{\"model\":\"inner\",\"x\":{\"model\":1}},"
               "\"model\":\"outer\"}", "model", "\"outer\"",
            "ignores \"model\" in nested objects");
    span_is(p, "{\"list\":[\"model\",\"model\",{\"model\":2}],"
               "\"model\":\"outer\"}", "model", "\"outer\"",
            "ignores \"model\" as array elements");
    span_is(p, "{\"content\":\"\\\"model\\\":\\\"fake\\\"\","
               "\"model\":\"real\"}", "model", "\"real\"",
            "ignores \"model\" inside a string value");
    span_is(p, "{\"model\":\"first\",\"model\":\"second\"}", "model",
            "\"second\"", "last duplicate wins, as in jansson");
    span_is(p, "{\"model\":\"first\",\"x\":1,\"model\":{\"v\":2},\"y\":[]}",
            "model", "{\"v\":2}", "last duplicate wins across members");

    SPAN_STATUS("{\"meta\":{\"model\":\"x\"}}", APR_NOTFOUND,
                "only a nested \"model\"");
    SPAN_STATUS("{\"note\":\"{\\\"model\\\": 1}\"}", APR_NOTFOUND,
                "only \"model\" inside a string");
    SPAN_STATUS("{\"models\":1,\"model_\":2,\"mode\":3,\"Model\":4}",
                APR_NOTFOUND, "only keys that merely resemble it");
}

static void member_span_absent_or_invalid(void)
{
    static const char *const invalid[][2] = {
        { "", "empty text" },
        { "   \n", "blank text" },
        { "[]", "an array" },
        { "[{\"model\":\"x\"}]", "an array holding an object" },
        { "\"model\"", "a string" },
        { "null", "null" },
        { "42", "a number" },
        { "{", "a lone opening brace" },
        { "{\"model\"", "truncated after a key" },
        { "{\"model\":", "truncated after the colon" },
        { "{\"model\":\"x\"", "truncated before the closing brace" },
        { "{\"model\":\"x\",", "truncated after a comma" },
        { "{\"model\":\"unterminated}", "an unterminated string" },
        { "{\"model\":\"x\\", "truncated inside an escape" },
        { "{\"model\":[1,2", "truncated inside an array" },
        { "{\"model\":{\"a\":1", "truncated inside an object" },
        { "{\"a\":1,}", "a trailing comma" },
        { "{,}", "a comma alone" },
        { "{\"a\" 1}", "a missing colon" },
        { "{\"a\":1 \"model\":2}", "a missing comma" },
        { "{model:1}", "an unquoted key" },
        { "{\"model\":}", "a missing value" },
        { "{\"mod\\u0065l\":\"x\"}", "the key spelled with an escape" },
        { "{\"a\\\"b\":1,\"model\":\"m\"}", "another key with an escape" },
    };
    apr_size_t i;

    SPAN_STATUS("{}", APR_NOTFOUND, "{}");
    SPAN_STATUS(" { \n\t} ", APR_NOTFOUND, "{} with blanks");
    SPAN_STATUS("{\"a\":1,\"b\":[\"model\"]}", APR_NOTFOUND,
                "object without the key");
    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); ++i) {
        span_status(invalid[i][0], strlen(invalid[i][0]), "model",
                    APR_EINVAL, invalid[i][1]);
    }

    /* the length is honoured: no reading up to a NUL */
    {
        const char *s = "{\"model\":\"abc\"}GARBAGE";
        apr_size_t start = 0, vlen = 0;

        OK(tb_json_member_span(s, 15, "model", &start, &vlen) == APR_SUCCESS
           && start == 9 && vlen == 5,
           "member_span stops at len: bytes after the object are not read");
        span_status(s, 14, "model", APR_EINVAL,
                    "len cutting off the closing brace");
        span_status(s, 12, "model", APR_EINVAL,
                    "len cutting the value string short");
    }
}

/* ---- tb_json_splice ------------------------------------------------------ */

/* The first occurrence, without walking the rest: an answer's "id". */
static void first_member_span(void)
{
    const char *dup = "{\"id\":\"resp_1\",\"x\":[1,2],\"id\":\"resp_2\"}";
    const char *cut = "{\"id\":\"resp_9\",\"output\":[{\"unterminated";
    apr_size_t start = 0, vlen = 0;

    OK(tb_json_first_member_span(dup, strlen(dup), "id", &start, &vlen) == APR_SUCCESS
       && vlen == 8 && !strncmp(dup + start, "\"resp_1\"", 8),
       "first_member_span: the first of duplicates");
    OK(tb_json_member_span(dup, strlen(dup), "id", &start, &vlen) == APR_SUCCESS
       && !strncmp(dup + start, "\"resp_2\"", 8),
       "member_span: the last of duplicates (as jansson keeps)");
    OK(tb_json_first_member_span(cut, strlen(cut), "id", &start, &vlen) == APR_SUCCESS
       && !strncmp(cut + start, "\"resp_9\"", 8),
       "first_member_span: stops there, whatever follows");
    OK(tb_json_first_member_span(cut, strlen(cut), "output", &start, &vlen) == APR_EINVAL,
       "first_member_span: a member in a broken text is not vouched for");
    OK(tb_json_first_member_span("[1]", 3, "id", &start, &vlen) == APR_EINVAL
       && tb_json_first_member_span("{}", 2, "id", &start, &vlen) == APR_NOTFOUND,
       "first_member_span: not an object, or no such member");
}

static void splice_round_trip(apr_pool_t *p)
{
    const char *body =
        "{\"temperature\":0.2, \"model\" : \"alias\",\n"
        "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9 \\\"model\\\"\"}],"
        "\"top_p\":1.0,\"n\":1e0}";
    apr_size_t len = strlen(body), start, vlen, out_len = 0, rlen;
    const char *repl = tb_json_quote(p, "gpt-4o-2024-08-06");
    char *out;
    json_t *root, *orig;
    const char *err = NULL;

    OK(tb_json_member_span(body, len, "model", &start, &vlen) == APR_SUCCESS,
       "splice: the model value is located first");
    rlen = strlen(repl);
    out = tb_json_splice(p, body, len, start, vlen, repl, &out_len);
    OK(out_len == len - vlen + rlen, "splice: out length = %lu - %lu + %lu",
       (unsigned long)len, (unsigned long)vlen, (unsigned long)rlen);
    OK(out[out_len] == '\0' && strlen(out) == out_len,
       "splice: result is NUL terminated at out_len");
    OK(!memcmp(out, body, start), "splice: bytes before the value unchanged");
    OK(!memcmp(out + start, repl, rlen), "splice: the new value in place");
    OK(!memcmp(out + start + rlen, body + start + vlen, len - start - vlen),
       "splice: bytes after the value unchanged");
    OK(strstr(out, "\"temperature\":0.2,") && strstr(out, "\"top_p\":1.0,")
       && strstr(out, "\"n\":1e0}") && strstr(out, "h\\u00e9 \\\"model\\\""),
       "splice: number spellings (0.2, 1.0, 1e0) and escapes kept as sent");
    OK(tb_json_parse(&root, p, out, out_len, &err) == APR_SUCCESS,
       "splice: the result parses (%s)", root ? "ok" : err);
    OK(root && !strcmp(json_string_value(json_object_get(root, "model")),
                       "gpt-4o-2024-08-06"),
       "splice: the result's model is the replacement");
    orig = load_any(p, body, len);
    if (root && orig) {
        json_object_del(root, "model");
        json_object_del(orig, "model");
    }
    OK(root && orig && json_equal(root, orig),
       "splice: every other member is equal to the original");

    out = tb_json_splice(p, "abcdef", 6, 0, 6, "xy", &out_len);
    OK(out_len == 2 && !strcmp(out, "xy"), "splice: replacing everything");
    out = tb_json_splice(p, "abcdef", 6, 2, 2, "", &out_len);
    OK(out_len == 4 && !strcmp(out, "abef"), "splice: empty replacement deletes");
    out = tb_json_splice(p, "abcdef", 6, 6, 0, "gh", &out_len);
    OK(out_len == 8 && !strcmp(out, "abcdefgh"), "splice: inserting at the end");
    out = tb_json_splice(p, "abcdef", 6, 0, 0, "", &out_len);
    OK(out_len == 6 && !strcmp(out, "abcdef"), "splice: no-op gives a copy");
}

/* ---- tb_json_quote ------------------------------------------------------- */

static void quote_is(apr_pool_t *p, const char *s, const char *want,
                     const char *what)
{
    const char *got = tb_json_quote(p, s);

    OK(got && !strcmp(got, want), "quote %s: %s (got %s)", what, want,
       got ? got : "NULL");
    if (s && got) {
        json_t *back = load_any(p, got, strlen(got));
        OK(json_is_string(back) && !strcmp(json_string_value(back), s),
           "quote %s: reads back as the original string", what);
    }
}

static void quote_escapes(apr_pool_t *p)
{
    quote_is(p, "gpt-4o", "\"gpt-4o\"", "plain text");
    quote_is(p, "", "\"\"", "empty string");
    quote_is(p, "a\"b\\c", "\"a\\\"b\\\\c\"", "quote and backslash");
    quote_is(p, "l1\nl2\tt\r\b\f", "\"l1\\nl2\\tt\\r\\b\\f\"",
             "newline, tab, CR, BS, FF");
    quote_is(p, "\x01\x02\x10", "\"\\u0001\\u0002\\u0010\"",
             "other control chars as \\u00XX");
    quote_is(p, "org/model", "\"org/model\"", "slash is not escaped");
    quote_is(p, "caf\xc3\xa9", "\"caf\xc3\xa9\"", "UTF-8 kept as is");
    OK(!strcmp(tb_json_quote(p, "bad\xff"), "\"\""),
       "quote invalid UTF-8: an empty literal, never invalid JSON");
    OK(!strcmp(tb_json_quote(p, NULL), "\"\""),
       "quote NULL: an empty literal");
}

/* ---- tb_json_error_body ------------------------------------------------ */

static json_t *error_of(apr_pool_t *p, const char *body)
{
    json_t *root = body ? load_any(p, body, strlen(body)) : NULL;
    json_t *err = json_object_get(root, "error");

    OK(json_is_object(root) && json_object_size(root) == 1
       && json_is_object(err) && json_object_size(err) == 4,
       "error body is {\"error\":{4 members}}: %s", body ? body : "NULL");
    return json_is_object(err) ? err : NULL;
}

static int member_str(const json_t *obj, const char *key, const char *want)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) && !strcmp(json_string_value(v), want);
}

static void error_body_shape(apr_pool_t *p)
{
    json_t *e;

    e = error_of(p, tb_json_error_body(p, "Unknown model 'x'.",
                                       "invalid_request_error", "model",
                                       "model_not_found"));
    OK(e && member_str(e, "message", "Unknown model 'x'.")
       && member_str(e, "type", "invalid_request_error")
       && member_str(e, "param", "model")
       && member_str(e, "code", "model_not_found"),
       "error body: message, type, param and code as given");

    e = error_of(p, tb_json_error_body(p, "Bad gateway.", "api_error",
                                       NULL, NULL));
    OK(e && member_str(e, "message", "Bad gateway.")
       && member_str(e, "type", "api_error")
       && json_is_null(json_object_get(e, "param"))
       && json_is_null(json_object_get(e, "code")),
       "error body: NULL param and code are sent as null");

    e = error_of(p, tb_json_error_body(p, NULL, NULL, NULL, "c"));
    OK(e && member_str(e, "message", "") && member_str(e, "type", "api_error")
       && member_str(e, "code", "c"),
       "error body: NULL message is \"\", NULL type is \"api_error\"");

    e = error_of(p, tb_json_error_body(p, "say \"hi\"\n\\ <\xc3\xa9>",
                                       "t", "messages[0]", NULL));
    OK(e && member_str(e, "message", "say \"hi\"\n\\ <\xc3\xa9>")
       && member_str(e, "param", "messages[0]"),
       "error body: message with quotes, newline, backslash, UTF-8 survives");

    e = error_of(p, tb_json_error_body(p, "bad \xff byte", "api_error",
                                       "p\xfe", "code"));
    OK(e != NULL, "error body: invalid UTF-8 input still gives a valid body");
}

/* ---- tb_json_parse / pool ownership / dump ------------------------------- */

static void parse_and_own(apr_pool_t *p)
{
    apr_pool_t *sub;
    json_t *j = json_null(), *held;
    const char *err = NULL, *s;
    apr_size_t len = 0;
    apr_status_t rv;

    apr_pool_create(&sub, p);
    rv = tb_json_parse(&j, sub, "{\"a\":[1,2],\"b\":\"x\"}", 19, &err);
    OK(rv == APR_SUCCESS && json_is_object(j), "parse: an object parses");
    OK(j && json_array_size(json_object_get(j, "a")) == 2,
       "parse: members are there");
    s = tb_json_dump(sub, j, &len);
    OK(s && !strcmp(s, "{\"a\":[1,2],\"b\":\"x\"}") && len == strlen(s),
       "dump: compact, in insertion order, with its length (%s)",
       s ? s : "NULL");
    held = json_incref(j);
    apr_pool_destroy(sub);
    OK(held->refcount == 1,
       "parse: the pool's reference is dropped when the pool goes (left %lu)",
       (unsigned long)held->refcount);
    json_decref(held);

    apr_pool_create(&sub, p);
    j = json_null(); /* a value that is not NULL */
    rv = tb_json_parse(&j, sub, "{\"a\": [1, 2}", 12, &err);
    OK(rv == APR_EINVAL, "parse malformed: APR_EINVAL");
    OK(j == NULL, "parse malformed: *pjson is NULL");
    OK(err && strstr(err, "expected ',' or ']'") && strstr(err, "at byte 11"),
       "parse malformed: what and where (%s)", err ? err : "NULL");
    err = NULL;
    OK(tb_json_parse(&j, sub, "", 0, &err) == APR_EINVAL && err && *err,
       "parse empty input: APR_EINVAL with a reason (%s)", err ? err : "NULL");
    OK(tb_json_parse(&j, sub, "{\"a\":1} x", 9, NULL) == APR_EINVAL,
       "parse: trailing garbage rejected, NULL perr allowed");
    OK(tb_json_parse(&j, sub, "{\"a\":1}x", 7, NULL) == APR_SUCCESS,
       "parse: only len bytes are read");
    OK(tb_json_parse(&j, sub, "{\"s\":\"x\\u0000y\"}", 16, &err) == APR_SUCCESS
       && json_string_length(json_object_get(j, "s")) == 3,
       "parse: \\u0000 inside strings is allowed");
    s = tb_json_dump(sub, json_object_get(j, "s"), NULL);
    OK(s && !strcmp(s, "\"x\\u0000y\""), "dump: any value, not only objects");
    apr_pool_destroy(sub);

    apr_pool_create(&sub, p);
    OK(tb_json_pool_own(sub, NULL) == NULL, "pool_own: NULL passes through");
    held = json_object();
    OK(tb_json_pool_own(sub, json_incref(held)) == held,
       "pool_own: returns the value it was given");
    apr_pool_destroy(sub);
    OK(held->refcount == 1, "pool_own: the owned reference goes with the pool");
    json_decref(held);
}

/* ---- the chat dialect's request check, and usage reads ------------------- */

static void chat_ok(apr_pool_t *p, const char *text, const char *model,
                    int stream, const char *what)
{
    tb_req_info_t req;
    tb_ir_error_t inv;
    apr_status_t rv;

    memset(&req, 0, sizeof(req));
    memset(&inv, 0, sizeof(inv));
    rv = tb_dialect_chat.check(p, TB_OP_CHAT, text, strlen(text), &req, &inv);
    OK(rv == APR_SUCCESS && req.model && !strcmp(req.model, model)
       && req.stream == stream,
       "chat_check %s: accepted, model %s, stream %d (rv %d, %s)", what,
       model, stream, rv, inv.message ? inv.message : "-");
}

static void chat_bad(apr_pool_t *p, const char *text, const char *param,
                     const char *what)
{
    tb_req_info_t req;
    tb_ir_error_t inv;
    apr_status_t rv;

    memset(&req, 0, sizeof(req));
    memset(&inv, 0, sizeof(inv));
    inv.param = "unset";
    rv = tb_dialect_chat.check(p, TB_OP_CHAT, text, strlen(text), &req, &inv);
    OK(rv == APR_EINVAL && inv.status == 400
       && !strcmp(inv.type, "invalid_request_error"), "chat_check %s: rejected", what);
    OK(inv.message && *inv.message, "chat_check %s: has a message (%s)", what,
       inv.message ? inv.message : "NULL");
    if (param) {
        OK(inv.param && !strcmp(inv.param, param),
           "chat_check %s: param is %s (got %s)", what, param,
           inv.param ? inv.param : "NULL");
        OK(inv.message && strstr(inv.message, param),
           "chat_check %s: the message names '%s'", what, param);
    }
    else {
        OK(inv.param == NULL, "chat_check %s: param is NULL", what);
    }
}

static void openai_chat_check(apr_pool_t *p)
{
    chat_ok(p, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}]}", "gpt-4o", 0, "minimal body");
    chat_ok(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
               "\"stream\":true}", "m", 1, "stream true");
    chat_ok(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
               "\"stream\":false}", "m", 0, "stream false");
    chat_ok(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
               "\"stream\":null}", "m", 0, "stream null (as if absent)");
    chat_ok(p, "{\"messages\":[{\"role\":\"system\",\"content\":\"x\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}],"
               "\"model\":\"gpt-4o-mini\",\"temperature\":0.2,"
               "\"tools\":[],\"x_unknown\":{\"a\":1}}", "gpt-4o-mini", 0,
            "several messages and unknown fields");

    chat_bad(p, "[{\"model\":\"m\"}]", NULL, "an array body");
    chat_bad(p, "{\"messages\":[{\"role\":\"user\"}]}", "model",
             "missing model");
    chat_bad(p, "{\"model\":42,\"messages\":[{\"role\":\"user\"}]}", "model",
             "model a number");
    chat_bad(p, "{\"model\":null,\"messages\":[{\"role\":\"user\"}]}", "model",
             "model null");
    chat_bad(p, "{\"model\":[\"m\"],\"messages\":[{\"role\":\"user\"}]}",
             "model", "model an array");
    chat_bad(p, "{\"model\":\"\",\"messages\":[{\"role\":\"user\"}]}", "model",
             "model empty");
    chat_bad(p, "{\"model\":\"\"}", "model",
             "model checked before messages");
    chat_bad(p, "{\"model\":\"m\"}", "messages", "missing messages");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[]}", "messages",
             "messages empty");
    chat_bad(p, "{\"model\":\"m\",\"messages\":{\"role\":\"user\"}}",
             "messages", "messages an object");
    chat_bad(p, "{\"model\":\"m\",\"messages\":\"hi\"}", "messages",
             "messages a string");
    chat_bad(p, "{\"model\":\"m\",\"messages\":null}", "messages",
             "messages null");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}",
             "messages[0]", "a message without role");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},"
                "{\"role\":\"assistant\"},{\"content\":\"x\"}]}",
             "messages[2]", "the third message without role");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[{\"role\":7}]}",
             "messages[0]", "a role that is not a string");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[\"hi\"]}",
             "messages[0]", "a message that is not an object");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
                "\"stream\":\"true\"}", "stream", "stream a string");
    chat_bad(p, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
                "\"stream\":1}", "stream", "stream a number");
}

static int usage_scan(apr_pool_t *p, const char *body, tb_ir_usage_t *u)
{
    return tb_dialect_chat.usage_scan(p, body, strlen(body), u);
}

static void openai_usage(apr_pool_t *p)
{
    tb_ir_usage_t u;

    tb_ir_usage_init(&u);
    OK(u.input == -1 && u.output == -1 && u.total == -1 && u.input_cached == -1
       && u.output_reasoning == -1, "usage_init: all counts unknown (-1)");

    OK(usage_scan(p, "{\"id\":\"c\",\"usage\":"
        "{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}", &u) == 1,
       "chat usage: a usage object is reported");
    OK(u.input == 10 && u.output == 5 && u.total == 15 && u.input_cached == 4
       && u.output_reasoning == 2, "chat usage: counts and details are read");

    tb_ir_usage_init(&u);
    OK(usage_scan(p, "{\"id\":\"c\",\"choices\":[]}", &u) == 0
       && u.input == -1 && u.total == -1,
       "chat usage: no usage, returns 0 and nothing changes");
    OK(usage_scan(p, "{\"usage\":null}", &u) == 0,
       "chat usage: usage null counts as absent");
    OK(usage_scan(p, "[1]", &u) == 0, "chat usage: not an object, returns 0");

    u.input = 1; u.output = 2; u.total = 3;
    OK(usage_scan(p, "{\"usage\":{\"completion_tokens\":40}}", &u) == 1
       && u.input == 1 && u.output == 40 && u.total == 3,
       "chat usage: absent fields keep their previous values");

    tb_ir_usage_init(&u);
    OK(usage_scan(p, "{\"usage\":{\"prompt_tokens\":-4,"
        "\"completion_tokens\":\"5\",\"total_tokens\":2.5}}", &u) == 1
       && u.input == -1 && u.output == -1 && u.total == -1,
       "chat usage: negative, string and real counts are ignored");
    OK(usage_scan(p, "{\"usage\":{\"prompt_tokens\":0,"
        "\"total_tokens\":2000000000}}", &u) == 1
       && u.input == 0 && u.total == 2000000000L,
       "chat usage: zero and large counts are read");

    tb_ir_usage_init(&u);
    OK(tb_dialect_responses.usage_scan(p, "{\"id\":\"r\",\"usage\":{"
        "\"input_tokens\":7,\"input_tokens_details\":{\"cached_tokens\":3},"
        "\"output_tokens\":9,\"output_tokens_details\":{\"reasoning_tokens\":5},"
        "\"total_tokens\":16},\"output\":[]}", 175, &u) == 1
       && u.input == 7 && u.input_cached == 3 && u.output == 9
       && u.output_reasoning == 5 && u.total == 16,
       "responses usage: Responses names are read");
}

void test_json(apr_pool_t *p)
{
    first_member_span();
    {
        tb_req_info_t req;
        tb_ir_error_t inv;
        const char *b1 = "{\"model\":\"m\",\"messages\":[{\"x\\u0041\":1}]}";
        const char *b2 = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],"
                         "\"stream\":true,\"stream_options\":{\"include_\\u0075sage\":true}}";

        memset(&inv, 0, sizeof(inv));
        OK(tb_dialect_chat.check(p, TB_OP_CHAT, b1, strlen(b1), &req, &inv) == APR_EINVAL
           && inv.param && !strcmp(inv.param, "messages[0]"),
           "chat_check: an escaped key inside a message still needs a role");
        OK(tb_dialect_chat.check(p, TB_OP_CHAT, b2, strlen(b2), &req, &inv) == APR_SUCCESS
           && req.stream == 1 && req.include_usage == 1,
           "chat_check: an escaped include_usage inside stream_options is read");
    }

    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    member_span_finds(sub);
    member_span_top_level_only(sub);
    member_span_absent_or_invalid();
    splice_round_trip(sub);
    quote_escapes(sub);
    error_body_shape(sub);
    parse_and_own(sub);
    openai_chat_check(sub);
    openai_usage(sub);
    apr_pool_destroy(sub);
}
