/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>

#include "tb_json.h"

static apr_status_t json_pool_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *tb_json_pool_own(apr_pool_t *p, json_t *json)
{
    if (json) {
        apr_pool_cleanup_register(p, json, json_pool_cleanup,
                                  apr_pool_cleanup_null);
    }
    return json;
}

apr_status_t tb_json_parse(json_t **pjson, apr_pool_t *p, const char *buf,
                           apr_size_t len, const char **perr)
{
    json_error_t err;
    json_t *json;

    *pjson = NULL;
    json = json_loadb(buf, len, JSON_ALLOW_NUL, &err);
    if (!json) {
        if (perr) {
            *perr = apr_psprintf(p, "%s (line %d, column %d)", err.text,
                                 err.line, err.column);
        }
        return APR_EINVAL;
    }
    *pjson = tb_json_pool_own(p, json);
    return APR_SUCCESS;
}

const char *tb_json_dump(apr_pool_t *p, const json_t *json, apr_size_t *plen)
{
    char *s, *copy;
    apr_size_t len;

    s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        return NULL;
    }
    len = strlen(s);
    copy = apr_pstrmemdup(p, s, len);
    free(s);
    if (plen) {
        *plen = len;
    }
    return copy;
}

/* ---- a minimal scanner over raw JSON text ------------------------------ */

typedef struct {
    const char *b;
    apr_size_t len, i;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->i < s->len) {
        char c = s->b[s->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        ++s->i;
    }
}

/* At an opening quote: advance past the closing one. *pescaped tells
 * whether a backslash occurred inside. */
static int skip_string(scan_t *s, int *pescaped)
{
    int esc = 0;

    ++s->i;
    while (s->i < s->len) {
        char c = s->b[s->i++];
        if (c == '"') {
            if (pescaped) {
                *pescaped = esc;
            }
            return 1;
        }
        if (c == '\\') {
            esc = 1;
            if (s->i >= s->len) {
                return 0;
            }
            ++s->i;
        }
    }
    return 0;
}

/* Skip one value of any kind; nesting is tracked by depth, strings are
 * skipped whole so brackets inside them do not count. */
static int skip_value(scan_t *s)
{
    int depth = 0;

    skip_ws(s);
    if (s->i >= s->len) {
        return 0;
    }
    do {
        char c;

        if (s->i >= s->len) {
            return 0;
        }
        c = s->b[s->i];
        if (c == '"') {
            if (!skip_string(s, NULL)) {
                return 0;
            }
        }
        else if (c == '{' || c == '[') {
            ++depth;
            ++s->i;
        }
        else if (c == '}' || c == ']') {
            if (depth == 0) {
                return 0;
            }
            --depth;
            ++s->i;
        }
        else if (depth == 0) {
            /* a scalar literal: number, true, false, null */
            apr_size_t start = s->i;
            while (s->i < s->len && !strchr(",}] \t\r\n", s->b[s->i])) {
                ++s->i;
            }
            return s->i > start;
        }
        else {
            ++s->i;
        }
    } while (depth > 0);
    return 1;
}

apr_status_t tb_json_member_span(const char *buf, apr_size_t len,
                                 const char *key, apr_size_t *pstart,
                                 apr_size_t *plen)
{
    scan_t s = { buf, len, 0 };
    apr_size_t klen = strlen(key);
    apr_status_t rv = APR_NOTFOUND;

    skip_ws(&s);
    if (s.i >= len || buf[s.i] != '{') {
        return APR_EINVAL;
    }
    ++s.i;
    skip_ws(&s);
    if (s.i < len && buf[s.i] == '}') {
        return APR_NOTFOUND;
    }
    while (s.i < len) {
        apr_size_t kstart, kend, vstart;
        int escaped = 0;

        skip_ws(&s);
        if (s.i >= len || buf[s.i] != '"') {
            return APR_EINVAL;
        }
        kstart = s.i + 1;
        if (!skip_string(&s, &escaped) || escaped) {
            return APR_EINVAL;
        }
        kend = s.i - 1;
        skip_ws(&s);
        if (s.i >= len || buf[s.i] != ':') {
            return APR_EINVAL;
        }
        ++s.i;
        skip_ws(&s);
        vstart = s.i;
        if (!skip_value(&s)) {
            return APR_EINVAL;
        }
        if (kend - kstart == klen && !memcmp(buf + kstart, key, klen)) {
            *pstart = vstart;
            *plen = s.i - vstart;
            rv = APR_SUCCESS;
        }
        skip_ws(&s);
        if (s.i < len && buf[s.i] == ',') {
            ++s.i;
            continue;
        }
        if (s.i < len && buf[s.i] == '}') {
            return rv;
        }
        return APR_EINVAL;
    }
    return APR_EINVAL;
}

char *tb_json_splice(apr_pool_t *p, const char *buf, apr_size_t len,
                     apr_size_t start, apr_size_t vlen, const char *repl,
                     apr_size_t *pout_len)
{
    apr_size_t rlen = strlen(repl);
    apr_size_t out_len = len - vlen + rlen;
    char *out = apr_palloc(p, out_len + 1);

    memcpy(out, buf, start);
    memcpy(out + start, repl, rlen);
    memcpy(out + start + rlen, buf + start + vlen, len - start - vlen);
    out[out_len] = '\0';
    *pout_len = out_len;
    return out;
}

const char *tb_json_quote(apr_pool_t *p, const char *s)
{
    json_t *str = tb_json_pool_own(p, json_string(s));

    return str ? tb_json_dump(p, str, NULL) : "\"\"";
}

const char *tb_json_error_body(apr_pool_t *p, const char *message,
                               const char *type, const char *param,
                               const char *code)
{
    json_t *err, *body;
    const char *out;

    err = json_pack("{s:s, s:s, s:o, s:o}",
                    "message", message ? message : "",
                    "type", type ? type : "api_error",
                    "param", param ? json_string(param) : json_null(),
                    "code", code ? json_string(code) : json_null());
    body = tb_json_pool_own(p, json_pack("{s:o}", "error", err));
    out = body ? tb_json_dump(p, body, NULL) : NULL;
    return out ? out : "{\"error\":{\"message\":\"internal error\","
                       "\"type\":\"api_error\",\"param\":null,\"code\":null}}";
}
