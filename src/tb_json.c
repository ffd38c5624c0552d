/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* ---- one pass: validation and an index of the first levels ---------------------- */

#define MAX_DEPTH 512

typedef struct val_t {
    const unsigned char *b;
    apr_size_t len, i;
    const char *what;
    /* the index: NULL when only validating */
    tb_jdoc_t *doc;
    apr_pool_t *pool;
    int max_depth;
    int escaped;              /* the last string had a backslash */
} val_t;

static int v_fail(val_t *v, const char *what)
{
    v->what = what;
    return 0;
}

static void v_ws(val_t *v)
{
    while (v->i < v->len && (v->b[v->i] == ' ' || v->b[v->i] == '\t'
                             || v->b[v->i] == '\n' || v->b[v->i] == '\r')) {
        ++v->i;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int v_hex4(val_t *v, unsigned *pcp)
{
    unsigned cp = 0;
    int k, h;

    if (v->i + 4 > v->len) {
        return v_fail(v, "truncated \\u escape");
    }
    for (k = 0; k < 4; ++k) {
        if ((h = hexval(v->b[v->i + k])) < 0) {
            return v_fail(v, "invalid \\u escape");
        }
        cp = cp * 16 + (unsigned)h;
    }
    v->i += 4;
    *pcp = cp;
    return 1;
}

/* One UTF-8 sequence starting at v->i (shortest form, no surrogates, at
 * most U+10FFFF), as jansson demands. */
static int v_utf8(val_t *v)
{
    unsigned char c = v->b[v->i];
    unsigned cp;
    int n, k;

    if (c < 0x80) { ++v->i; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
    else return v_fail(v, "invalid UTF-8");
    if (v->i + n >= v->len) {
        return v_fail(v, "invalid UTF-8");
    }
    for (k = 1; k <= n; ++k) {
        unsigned char cc = v->b[v->i + k];
        if ((cc & 0xC0) != 0x80) {
            return v_fail(v, "invalid UTF-8");
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return v_fail(v, "invalid UTF-8");
    }
    v->i += n + 1;
    return 1;
}

/* Where the run of plain string bytes starting at i ends: the first
 * quote, backslash, control character or non-ASCII byte (or len). Sixteen
 * bytes a step with SSE2, else eight (SWAR). NB: this is where a large
 * body spends its scan; byte by byte it was most of the gateway's CPU on
 * agent-sized requests. */
#define ONES  APR_UINT64_C(0x0101010101010101)
#define HIGHS APR_UINT64_C(0x8080808080808080)

static APR_INLINE apr_size_t plain_run(const unsigned char *b, apr_size_t i,
                                       apr_size_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);

    while (i + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        /* signed: "below 0x20" also catches 0x80..0xff */
        __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                               _mm_cmpeq_epi8(x, bslash)),
                                  _mm_cmplt_epi8(x, space));
        unsigned m = (unsigned)_mm_movemask_epi8(sp);

        if (m) {
            return i + (apr_size_t)__builtin_ctz(m);
        }
        i += 16;
    }
#endif
    while (i + 8 <= len) {
        apr_uint64_t w, q, bs, special;

        memcpy(&w, b + i, 8);
        q = w ^ (ONES * '"');
        bs = w ^ (ONES * '\\');
        /* exact up to the first special byte, which is all we use */
        special = (((q - ONES) & ~q) | ((bs - ONES) & ~bs)
                   | ((w - ONES * 0x20) & ~w) | w) & HIGHS;
        if (special) {
#if APR_IS_BIGENDIAN
            return i + (apr_size_t)(__builtin_clzll(special) >> 3);
#else
            return i + (apr_size_t)(__builtin_ctzll(special) >> 3);
#endif
        }
        i += 8;
    }
    while (i < len && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 && b[i] < 0x80) {
        ++i;
    }
    return i;
}

static int v_string(val_t *v)
{
    const unsigned char *b = v->b;
    apr_size_t len = v->len;

    v->escaped = 0;
    ++v->i;   /* the opening quote */
    while (v->i < len) {
        unsigned char c;

        v->i = plain_run(b, v->i, len);
        if (v->i >= len) {
            break;
        }
        c = b[v->i];
        if (c == '"') {
            ++v->i;
            return 1;
        }
        if (c < 0x20) {
            return v_fail(v, "control character in string");
        }
        if (c == '\\') {
            unsigned cp;

            v->escaped = 1;
            if (++v->i >= len) {
                break;
            }
            c = b[v->i++];
            if (c == 'u') {
                if (!v_hex4(v, &cp)) {
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    /* a high surrogate must pair with a low one */
                    unsigned lo;
                    if (v->i + 2 > len || b[v->i] != '\\' || b[v->i + 1] != 'u') {
                        return v_fail(v, "unpaired surrogate");
                    }
                    v->i += 2;
                    if (!v_hex4(v, &lo)) {
                        return 0;
                    }
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        return v_fail(v, "unpaired surrogate");
                    }
                }
                else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return v_fail(v, "unpaired surrogate");
                }
            }
            else {
                switch (c) {
                case '"': case '\\': case '/': case 'b': case 'f':
                case 'n': case 'r': case 't':
                    break;
                default:
                    return v_fail(v, "invalid escape");
                }
            }
            continue;
        }
        if (c < 0x80) {
            ++v->i;
        }
        else if (!v_utf8(v)) {
            return 0;
        }
    }
    return v_fail(v, "unterminated string");
}

static int v_digits(val_t *v)
{
    apr_size_t start = v->i;

    while (v->i < v->len && v->b[v->i] >= '0' && v->b[v->i] <= '9') {
        ++v->i;
    }
    return v->i > start;
}

static int v_number(val_t *v)
{
    if (v->b[v->i] == '-') {
        ++v->i;
    }
    if (v->i < v->len && v->b[v->i] == '0') {
        ++v->i;
    }
    else if (!v_digits(v)) {
        return v_fail(v, "invalid number");
    }
    if (v->i < v->len && v->b[v->i] == '.') {
        ++v->i;
        if (!v_digits(v)) {
            return v_fail(v, "invalid number");
        }
    }
    if (v->i < v->len && (v->b[v->i] == 'e' || v->b[v->i] == 'E')) {
        ++v->i;
        if (v->i < v->len && (v->b[v->i] == '+' || v->b[v->i] == '-')) {
            ++v->i;
        }
        if (!v_digits(v)) {
            return v_fail(v, "invalid number");
        }
    }
    return 1;
}

static int v_literal(val_t *v, const char *lit)
{
    apr_size_t n = strlen(lit);

    if (v->i + n > v->len || memcmp(v->b + v->i, lit, n)) {
        return v_fail(v, "invalid literal");
    }
    v->i += n;
    return 1;
}

/* A new node of the index (its span is completed by the caller). Indexes,
 * not pointers: the array grows while children are parsed. */
static int node_new(val_t *v, int parent, int *plast)
{
    tb_jdoc_t *d = v->doc;
    tb_jnode_t *n;
    int idx;

    if (d->nnodes == d->cap) {
        int cap = d->cap ? d->cap * 2 : 64;
        tb_jnode_t *nodes = apr_palloc(v->pool, cap * sizeof(*nodes));

        if (d->nnodes) {
            memcpy(nodes, d->nodes, d->nnodes * sizeof(*nodes));
        }
        d->nodes = nodes;
        d->cap = cap;
    }
    idx = d->nnodes++;
    n = &d->nodes[idx];
    memset(n, 0, sizeof(*n));
    n->child = n->next = -1;
    if (parent >= 0) {
        if (*plast >= 0) {
            d->nodes[*plast].next = idx;
        }
        else {
            d->nodes[parent].child = idx;
        }
        *plast = idx;
        ++d->nodes[parent].nchild;
    }
    return idx;
}

static int v_value(val_t *v, int depth, int self);

/* A member name: recorded for the index (unescaped when it had escapes). */
static int v_key(val_t *v, int node)
{
    apr_size_t start = v->i;

    if (!v_string(v)) {
        return 0;
    }
    if (node >= 0) {
        tb_jnode_t *n = &v->doc->nodes[node];

        if (v->escaped) {
            const char *k = tb_json_string_value(v->pool, (const char *)v->b + start,
                                                 v->i - start);
            n->key = k ? k : "";
            n->key_len = strlen(n->key);
        }
        else {
            n->key = (const char *)v->b + start + 1;
            n->key_len = v->i - start - 2;
        }
    }
    return 1;
}

/* A container's members or elements; children are indexed while depth
 * stays within the document's limit. */
static int v_container(val_t *v, int depth, int self)
{
    int obj = v->b[v->i] == '{';
    char close = obj ? '}' : ']';
    int record = v->doc && self >= 0 && depth < v->max_depth;
    int last = -1;

    if (depth >= MAX_DEPTH) {
        return v_fail(v, "nested too deeply");
    }
    ++v->i;
    v_ws(v);
    if (v->i < v->len && v->b[v->i] == close) {
        ++v->i;
        return 1;
    }
    for (;;) {
        int child = record ? node_new(v, self, &last) : -1;

        if (obj) {
            v_ws(v);
            if (v->i >= v->len || v->b[v->i] != '"') {
                return v_fail(v, "expected a member name");
            }
            if (!v_key(v, child)) {
                return 0;
            }
            v_ws(v);
            if (v->i >= v->len || v->b[v->i] != ':') {
                return v_fail(v, "expected ':'");
            }
            ++v->i;
        }
        if (!v_value(v, depth + 1, child)) {
            return 0;
        }
        v_ws(v);
        if (v->i < v->len && v->b[v->i] == ',') {
            ++v->i;
            continue;
        }
        if (v->i < v->len && v->b[v->i] == close) {
            ++v->i;
            return 1;
        }
        return v_fail(v, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* One value; `self` is its node in the index, or -1. */
static int v_value(val_t *v, int depth, int self)
{
    apr_size_t start;
    int ok;
    char type;

    v_ws(v);
    if (v->i >= v->len) {
        return v_fail(v, "unexpected end of input");
    }
    start = v->i;
    type = (char)v->b[v->i];
    v->escaped = 0;
    switch (type) {
    case '"':
        ok = v_string(v);
        break;
    case 't':
        ok = v_literal(v, "true");
        break;
    case 'f':
        ok = v_literal(v, "false");
        break;
    case 'n':
        ok = v_literal(v, "null");
        break;
    case '{':
    case '[':
        ok = v_container(v, depth, self);
        break;
    default:
        if (type == '-' || (type >= '0' && type <= '9')) {
            ok = v_number(v);
            type = '0';
            break;
        }
        return v_fail(v, "unexpected character");
    }
    if (ok && self >= 0) {
        tb_jnode_t *n = &v->doc->nodes[self];

        n->start = start;
        n->len = v->i - start;
        n->type = type;
        n->escaped = type == '"' && v->escaped;
    }
    return ok;
}

static apr_status_t scan(val_t *v, apr_pool_t *p, const char **perr)
{
    int root = -1, none = -1;

    if (v->doc) {
        root = node_new(v, -1, &none);
    }
    if (v_value(v, 0, root)) {
        v_ws(v);
        if (v->i == v->len) {
            return APR_SUCCESS;
        }
        v->what = "unexpected data after the value";
    }
    if (perr) {
        *perr = apr_psprintf(p, "%s at byte %" APR_SIZE_T_FMT,
                             v->what ? v->what : "invalid JSON", v->i);
    }
    return APR_EINVAL;
}

apr_status_t tb_json_validate(apr_pool_t *p, const char *buf, apr_size_t len,
                              const char **perr)
{
    val_t v;

    memset(&v, 0, sizeof(v));
    v.b = (const unsigned char *)buf;
    v.len = len;
    return scan(&v, p, perr);
}

apr_status_t tb_json_scan(tb_jdoc_t *doc, apr_pool_t *p, const char *buf,
                          apr_size_t len, int max_depth, const char **perr)
{
    val_t v;

    memset(doc, 0, sizeof(*doc));
    doc->buf = buf;
    doc->len = len;
    memset(&v, 0, sizeof(v));
    v.b = (const unsigned char *)buf;
    v.len = len;
    v.doc = doc;
    v.pool = p;
    v.max_depth = max_depth;
    return scan(&v, p, perr);
}

int tb_jdoc_member(const tb_jdoc_t *d, int obj, const char *key)
{
    apr_size_t klen = strlen(key);
    int i, found = -1;

    if (obj < 0 || obj >= d->nnodes || d->nodes[obj].type != '{') {
        return -1;
    }
    /* NB: the last of duplicate names wins, as in jansson and upstreams */
    for (i = d->nodes[obj].child; i >= 0; i = d->nodes[i].next) {
        const tb_jnode_t *n = &d->nodes[i];
        if (n->key_len == klen && !memcmp(n->key, key, klen)) {
            found = i;
        }
    }
    return found;
}

const char *tb_jdoc_string(const tb_jdoc_t *d, int node, apr_pool_t *p)
{
    const tb_jnode_t *n;

    if (node < 0 || node >= d->nnodes || d->nodes[node].type != '"') {
        return NULL;
    }
    n = &d->nodes[node];
    if (!n->escaped) {
        return apr_pstrmemdup(p, d->buf + n->start + 1, n->len - 2);
    }
    return tb_json_string_value(p, d->buf + n->start, n->len);
}

int tb_jdoc_is(const tb_jdoc_t *d, int node, const char *literal)
{
    apr_size_t n = strlen(literal);

    return node >= 0 && node < d->nnodes && d->nodes[node].len == n
        && !memcmp(d->buf + d->nodes[node].start, literal, n);
}

apr_status_t tb_json_array_next(const char *buf, apr_size_t len,
                                apr_size_t *ppos, apr_size_t *pstart,
                                apr_size_t *plen)
{
    scan_t s = { buf, len, *ppos };

    skip_ws(&s);
    if (*ppos == 0) {
        if (s.i >= len || buf[s.i] != '[') {
            return APR_EINVAL;
        }
        ++s.i;
        skip_ws(&s);
    }
    else if (s.i < len && buf[s.i] == ',') {
        ++s.i;
        skip_ws(&s);
    }
    if (s.i >= len || buf[s.i] == ']') {
        *ppos = s.i;
        return APR_EOF;
    }
    *pstart = s.i;
    if (!skip_value(&s)) {
        return APR_EINVAL;
    }
    *plen = s.i - *pstart;
    *ppos = s.i;
    return APR_SUCCESS;
}

const char *tb_json_string_value(apr_pool_t *p, const char *lit,
                                 apr_size_t len)
{
    json_t *str;

    if (len < 2 || lit[0] != '"' || lit[len - 1] != '"') {
        return NULL;
    }
    if (!memchr(lit, '\\', len)) {
        return apr_pstrmemdup(p, lit + 1, len - 2);
    }
    str = tb_json_pool_own(p, json_loadb(lit, len, JSON_DECODE_ANY, NULL));
    return json_is_string(str) ? json_string_value(str) : NULL;
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
