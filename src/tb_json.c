/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tb_json.h"
#include "tb_util.h"

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

static json_t *build(const char *buf, apr_size_t len, const char **pwhat,
                     apr_size_t *pat);
static apr_status_t write_value(tb_buf_t *out, apr_pool_t *p, const json_t *j,
                                int depth);

/* NB: our own reader and writer, not jansson's: the same trees, several
 * times faster on the large string values of agent requests (a converted
 * 50 KB Codex turn spent most of a millisecond in json_loadb/json_dumps). */
apr_status_t tb_json_parse(json_t **pjson, apr_pool_t *p, const char *buf,
                           apr_size_t len, const char **perr)
{
    const char *what = NULL;
    apr_size_t at = 0;
    json_t *json = build(buf, len, &what, &at);

    *pjson = NULL;
    if (json && !json_is_object(json) && !json_is_array(json)) {
        json_decref(json);
        json = NULL;
        what = "'[' or '{' expected";
        at = 0;
    }
    if (!json) {
        if (perr) {
            *perr = apr_psprintf(p, "%s at byte %" APR_SIZE_T_FMT,
                                 what ? what : "invalid JSON", at);
        }
        return APR_EINVAL;
    }
    *pjson = tb_json_pool_own(p, json);
    return APR_SUCCESS;
}

const char *tb_json_dump(apr_pool_t *p, const json_t *json, apr_size_t *plen)
{
    tb_buf_t out;

    memset(&out, 0, sizeof(out));
    if (!json || write_value(&out, p, json, 0) != APR_SUCCESS) {
        return NULL;
    }
    if (plen) {
        *plen = out.len;
    }
    return out.data ? out.data : "";
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

static apr_status_t member_span(const char *buf, apr_size_t len,
                                const char *key, int first,
                                apr_size_t *pstart, apr_size_t *plen)
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
            if (first) {
                return rv;
            }
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

apr_status_t tb_json_member_span(const char *buf, apr_size_t len,
                                 const char *key, apr_size_t *pstart,
                                 apr_size_t *plen)
{
    return member_span(buf, len, key, 0, pstart, plen);
}

apr_status_t tb_json_first_member_span(const char *buf, apr_size_t len,
                                       const char *key, apr_size_t *pstart,
                                       apr_size_t *plen)
{
    return member_span(buf, len, key, 1, pstart, plen);
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

/* ---- values as jansson trees (tb_json_parse) --------------------------------------- */

/* The value of a validated string literal's body (between the quotes),
 * escapes decoded, into out (at least n bytes); returns its length. */
static apr_size_t unescape(const unsigned char *s, apr_size_t n, char *out)
{
    apr_size_t i = 0, o = 0;

    while (i < n) {
        unsigned cp;
        int k;

        if (s[i] != '\\') {
            out[o++] = (char)s[i++];
            continue;
        }
        switch (s[i + 1]) {
        case 'b': out[o++] = '\b'; i += 2; continue;
        case 'f': out[o++] = '\f'; i += 2; continue;
        case 'n': out[o++] = '\n'; i += 2; continue;
        case 'r': out[o++] = '\r'; i += 2; continue;
        case 't': out[o++] = '\t'; i += 2; continue;
        case 'u': break;
        default: out[o++] = (char)s[i + 1]; i += 2; continue;
        }
        for (cp = 0, k = 2; k < 6; ++k) {
            cp = cp * 16 + (unsigned)hexval(s[i + k]);
        }
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            for (k = 2; k < 6; ++k) {
                lo = lo * 16 + (unsigned)hexval(s[i + k]);
            }
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        }
        else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
        else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
        else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

/* A jansson string for a validated string token [start, end) (quotes
 * included): NUL-safe, escapes decoded. */
static json_t *string_json(val_t *v, apr_size_t start, apr_size_t end, int escaped)
{
    const unsigned char *s = v->b + start + 1;
    apr_size_t n = end - start - 2;
    char *tmp;
    json_t *j;

    if (!escaped) {
        return json_stringn_nocheck((const char *)s, n);
    }
    if (!(tmp = malloc(n ? n : 1))) {
        return NULL;
    }
    j = json_stringn_nocheck(tmp, unescape(s, n, tmp));
    free(tmp);
    return j;
}

/* A jansson number for a validated number token: an integer when it has
 * no fraction or exponent and fits, else a real (NULL beyond a double). */
static json_t *number_json(val_t *v, apr_size_t start, apr_size_t end)
{
    apr_size_t n = end - start;
    char small[64], *num = small;
    json_t *j = NULL;

    if (n >= sizeof(small) && !(num = malloc(n + 1))) {
        return NULL;
    }
    memcpy(num, v->b + start, n);
    num[n] = '\0';
    if (!strpbrk(num, ".eE")) {
        long long ll;

        errno = 0;
        ll = strtoll(num, NULL, 10);
        if (errno != ERANGE) {
            j = json_integer((json_int_t)ll);
        }
    }
    if (!j) {
        /* beyond jansson's integers: a real, as close as it gets */
        double d = strtod(num, NULL);
        if (!isinf(d) && !isnan(d)) {
            j = json_real(d);
        }
    }
    if (num != small) {
        free(num);
    }
    return j;
}

/* A new node of the index (its span is completed by the caller). Indexes,
 * not pointers: the array grows while children are parsed. */
/* The index's first nodes come from the pool. */
#define NODES_IN_POOL 512

static apr_status_t nodes_free(void *data)
{
    free(data);
    return APR_SUCCESS;
}

/* A new node of the index (its span is completed by the caller), or -1
 * when the index is full: then the value is validated, not indexed.
 * Indexes, not pointers: the array grows while children are parsed. */
static int node_new(val_t *v, int parent, int *plast)
{
    tb_jdoc_t *d = v->doc;
    tb_jnode_t *n;
    int idx;

    if (d->nnodes == d->max_nodes) {
        d->truncated = 1;
        if (parent >= 0) {
            d->nodes[parent].partial = 1;
        }
        return -1;
    }
    if (d->nnodes == d->cap) {
        int cap = d->cap ? d->cap * 2 : NODES_IN_POOL;
        tb_jnode_t *nodes;

        if (cap > d->max_nodes) {
            cap = d->max_nodes;
        }
        if (!d->cap) {
            /* an agent's turn needs a few hundred: from the pool, no malloc */
            nodes = apr_palloc(v->pool, (apr_size_t)cap * sizeof(*nodes));
        }
        else {
            /* NB: beyond that, realloc, not the pool: a pool would keep
             * every old copy; the pool frees the one array (the document
             * itself may be a copy, or gone, by then) */
            nodes = realloc(d->cap > NODES_IN_POOL ? d->nodes : NULL,
                            (apr_size_t)cap * sizeof(*nodes));
            if (nodes && d->cap == NODES_IN_POOL) {
                memcpy(nodes, d->nodes, (apr_size_t)d->nnodes * sizeof(*nodes));
            }
        }
        if (!nodes) {
            d->truncated = 1;
            if (parent >= 0) {
                d->nodes[parent].partial = 1;
            }
            return -1;
        }
        if (d->cap > NODES_IN_POOL) {
            apr_pool_cleanup_kill(v->pool, d->nodes, nodes_free);
        }
        if (cap > NODES_IN_POOL) {
            apr_pool_cleanup_register(v->pool, nodes, nodes_free, apr_pool_cleanup_null);
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

static int v_value(val_t *v, int depth, int self, json_t **pj);

/* A member name: recorded for the index (unescaped when it had escapes);
 * its span in pstart and pend for a tree. */
static int v_key(val_t *v, int node, apr_size_t *pstart, apr_size_t *pend)
{
    apr_size_t start = v->i;

    if (!v_string(v)) {
        return 0;
    }
    *pstart = start;
    *pend = v->i;
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

/* Put a member or element into the tree being built. */
static int tree_add(val_t *v, json_t *parent, apr_size_t kstart, apr_size_t kend,
                    int kescaped, json_t *item)
{
    int rc;

    if (!json_is_object(parent)) {
        rc = json_array_append_new(parent, item);
    }
    else if (!kescaped) {
        /* the last of duplicate names wins, as in jansson */
        rc = json_object_setn_new_nocheck(parent, (const char *)v->b + kstart + 1,
                                          kend - kstart - 2, item);
    }
    else {
        apr_size_t n = kend - kstart - 2;
        char *key = malloc(n ? n : 1);

        if (!key) {
            json_decref(item);
            return v_fail(v, "out of memory");
        }
        rc = json_object_setn_new_nocheck(parent, key,
                                          unescape(v->b + kstart + 1, n, key), item);
        free(key);
    }
    return rc ? v_fail(v, "out of memory") : 1;
}

/* A container's members or elements; children are indexed while depth
 * stays within the document's limit, and put in a tree when pj asks. */
static int v_container(val_t *v, int depth, int self, json_t **pj)
{
    int obj = v->b[v->i] == '{';
    char close = obj ? '}' : ']';
    /* NB: elements of arrays below the first level are never looked up:
     * not indexed (a body of nested arrays would only fill the index) */
    int record = v->doc && self >= 0 && depth < v->max_depth && (obj || depth < 2);
    int last = -1;

    if (depth >= MAX_DEPTH) {
        return v_fail(v, "nested too deeply");
    }
    if (pj && !(*pj = obj ? json_object() : json_array())) {
        return v_fail(v, "out of memory");
    }
    ++v->i;
    v_ws(v);
    if (v->i < v->len && v->b[v->i] == close) {
        ++v->i;
        return 1;
    }
    for (;;) {
        int child = record ? node_new(v, self, &last) : -1;
        apr_size_t kstart = 0, kend = 0;
        int kescaped = 0;
        json_t *item = NULL;

        if (record && child < 0 && depth == 0) {
            /* the root's members are what every check reads */
            return v_fail(v, "too many members");
        }
        if (obj) {
            v_ws(v);
            if (v->i >= v->len || v->b[v->i] != '"') {
                return v_fail(v, "expected a member name");
            }
            if (!v_key(v, child, &kstart, &kend)) {
                return 0;
            }
            kescaped = v->escaped;
            v_ws(v);
            if (v->i >= v->len || v->b[v->i] != ':') {
                return v_fail(v, "expected ':'");
            }
            ++v->i;
        }
        if (!v_value(v, depth + 1, child, pj ? &item : NULL)) {
            return 0;
        }
        if (pj && !tree_add(v, *pj, kstart, kend, kescaped, item)) {
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

/* One value; `self` is its node in the index, or -1; pj, when not NULL,
 * receives it as a jansson value (released here when it fails). */
static int v_value(val_t *v, int depth, int self, json_t **pj)
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
        ok = v_container(v, depth, self, pj);
        if (!ok && pj) {
            json_decref(*pj);
            *pj = NULL;
        }
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
    if (ok && pj && type != '{' && type != '[') {
        *pj = type == '"' ? string_json(v, start, v->i, v->escaped)
            : type == 't' ? json_true() : type == 'f' ? json_false()
            : type == 'n' ? json_null() : number_json(v, start, v->i);
        if (!*pj) {
            return v_fail(v, type == '0' ? "number out of range" : "out of memory");
        }
    }
    return ok;
}

static apr_status_t scan(val_t *v, apr_pool_t *p, const char **perr)
{
    int root = -1, none = -1;

    if (v->doc) {
        root = node_new(v, -1, &none);
    }
    if (v_value(v, 0, root, NULL)) {
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
    /* bounded by the body, at a fraction of its size: 48 bytes a node */
    doc->max_nodes = (int)(len / 64 < 1000000 ? 4096 + len / 64 : 1000000);
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

int tb_jdoc_streq(const tb_jdoc_t *d, int node, const char *s, apr_pool_t *p)
{
    const tb_jnode_t *n;
    apr_size_t len = strlen(s);
    const char *v;

    if (node < 0 || node >= d->nnodes || d->nodes[node].type != '"') {
        return 0;
    }
    n = &d->nodes[node];
    if (!n->escaped) {
        return n->len == len + 2 && !memcmp(d->buf + n->start + 1, s, len);
    }
    v = tb_jdoc_string(d, node, p);
    return v && !strcmp(v, s);
}

int tb_jdoc_is(const tb_jdoc_t *d, int node, const char *literal)
{
    apr_size_t n = strlen(literal);

    return node >= 0 && node < d->nnodes && d->nodes[node].len == n
        && !memcmp(d->buf + d->nodes[node].start, literal, n);
}

static json_t *build(const char *buf, apr_size_t len, const char **pwhat,
                     apr_size_t *pat)
{
    val_t v;
    json_t *j = NULL;

    memset(&v, 0, sizeof(v));
    v.b = (const unsigned char *)buf;
    v.len = len;
    if (v_value(&v, 0, -1, &j)) {
        v_ws(&v);
        if (v.i != len) {
            json_decref(j);
            j = NULL;
            v.what = "unexpected data after the value";
        }
    }
    *pwhat = v.what;
    *pat = v.i;
    return j;
}

/* ---- writing a tree ------------------------------------------------------------------- */

#define MAX_DUMP ((apr_size_t)256 * 1024 * 1024)

static apr_status_t put(tb_buf_t *out, apr_pool_t *p, const char *s, apr_size_t n)
{
    return tb_buf_append(out, p, s, n, MAX_DUMP);
}

/* A JSON string literal: plain runs copied whole, the rest escaped as
 * jansson does (UTF-8 kept, "/" not escaped). */
static apr_status_t put_string(tb_buf_t *out, apr_pool_t *p, const char *s,
                               apr_size_t n)
{
    const unsigned char *b = (const unsigned char *)s;
    apr_size_t i = 0;
    apr_status_t rv;

    if ((rv = put(out, p, "\"", 1)) != APR_SUCCESS) {
        return rv;
    }
    while (i < n) {
        apr_size_t j = plain_run(b, i, n);
        char esc[8];
        const char *e = esc;
        apr_size_t elen = 2;

        if (j > i && (rv = put(out, p, s + i, j - i)) != APR_SUCCESS) {
            return rv;
        }
        if (j >= n) {
            break;
        }
        i = j;
        /* a run of non-ASCII bytes goes as it is */
        if (b[i] >= 0x80) {
            for (j = i; j < n && b[j] >= 0x80; ++j)
                ;
            if ((rv = put(out, p, s + i, j - i)) != APR_SUCCESS) {
                return rv;
            }
            i = j;
            continue;
        }
        switch (b[i]) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            apr_snprintf(esc, sizeof(esc), "\\u%04X", b[i]);
            elen = 6;
            break;
        }
        if ((rv = put(out, p, e, elen)) != APR_SUCCESS) {
            return rv;
        }
        ++i;
    }
    return put(out, p, "\"", 1);
}

/* The shortest text that reads back as the same double, always with a
 * '.' or an exponent so that it reads back as a real. */
static apr_status_t put_real(tb_buf_t *out, apr_pool_t *p, double d)
{
    char buf[40];
    int prec;

    for (prec = 1; prec <= 17; ++prec) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    if (!strpbrk(buf, ".eE") && strlen(buf) + 3 < sizeof(buf)) {
        strcat(buf, ".0");
    }
    return put(out, p, buf, strlen(buf));
}

static apr_status_t write_value(tb_buf_t *out, apr_pool_t *p, const json_t *j,
                                int depth)
{
    apr_status_t rv = APR_SUCCESS;
    char num[32];

    /* NB: converters nest a client's values deeper than the client did
     * (a tool's schema goes one or two levels down): room for that */
    if (depth > MAX_DEPTH + 32) {
        return APR_EINVAL;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        apr_size_t klen;
        json_t *val;
        int first = 1;

        rv = put(out, p, "{", 1);
        json_object_keylen_foreach((json_t *)j, key, klen, val) {
            if (rv == APR_SUCCESS && !first) {
                rv = put(out, p, ",", 1);
            }
            first = 0;
            if (rv == APR_SUCCESS) {
                rv = put_string(out, p, key, klen);
            }
            if (rv == APR_SUCCESS) {
                rv = put(out, p, ":", 1);
            }
            if (rv == APR_SUCCESS) {
                rv = write_value(out, p, val, depth + 1);
            }
        }
        return rv == APR_SUCCESS ? put(out, p, "}", 1) : rv;
    }
    case JSON_ARRAY: {
        size_t i, n = json_array_size(j);

        rv = put(out, p, "[", 1);
        for (i = 0; rv == APR_SUCCESS && i < n; ++i) {
            if (i) {
                rv = put(out, p, ",", 1);
            }
            if (rv == APR_SUCCESS) {
                rv = write_value(out, p, json_array_get(j, i), depth + 1);
            }
        }
        return rv == APR_SUCCESS ? put(out, p, "]", 1) : rv;
    }
    case JSON_STRING:
        return put_string(out, p, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return put(out, p, num, strlen(num));
    case JSON_REAL:
        return put_real(out, p, json_real_value(j));
    case JSON_TRUE:
        return put(out, p, "true", 4);
    case JSON_FALSE:
        return put(out, p, "false", 5);
    default:
        return put(out, p, "null", 4);
    }
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
