/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_JSON_H
#define TB_JSON_H

#include <apr_pools.h>
#include <jansson.h>

/* Parse a buffer into a jansson value owned by pool `p`: the reference is
 * dropped by a pool cleanup, so no path needs a manual json_decref. On a
 * syntax error returns APR_EINVAL with a short reason in *perr. */
apr_status_t tb_json_parse(json_t **pjson, apr_pool_t *p, const char *buf,
                           apr_size_t len, const char **perr);

/* Hand an owned reference to pool `p` (decref'd at cleanup); returns it. */
json_t *tb_json_pool_own(apr_pool_t *p, json_t *json);

/* Serialise compactly into `p`. NULL on failure. */
const char *tb_json_dump(apr_pool_t *p, const json_t *json, apr_size_t *plen);

/* Locate the value of top-level member `key` in a raw JSON object text,
 * without building a tree. Finds the last occurrence, as jansson's parser
 * keeps the last duplicate. APR_NOTFOUND when absent; APR_EINVAL when the
 * text is not an object this scanner can vouch for (escaped keys, bad
 * syntax): callers then fall back to a full re-serialisation. */
apr_status_t tb_json_member_span(const char *buf, apr_size_t len,
                                 const char *key, apr_size_t *pstart,
                                 apr_size_t *plen);

/* The same, stopping at the first occurrence: for reading a member that
 * comes early (an answer's "id") without walking a large body to its
 * end. Nothing after that member is checked. */
apr_status_t tb_json_first_member_span(const char *buf, apr_size_t len,
                                       const char *key, apr_size_t *pstart,
                                       apr_size_t *plen);

/* Validate a complete JSON text (RFC 8259, UTF-8, nesting up to 512)
 * without building anything, so a body can be checked at wire speed and
 * forwarded untouched. It accepts what jansson accepts with
 * JSON_DECODE_ANY | JSON_ALLOW_NUL (t/unit compares the two), except that
 * numbers too large for jansson's integers and doubles pass (JSON does not
 * bound them; the upstream decides) and raw NUL bytes are always refused
 * (jansson's lexer lets some through). On APR_EINVAL, *perr says what and
 * where. */
apr_status_t tb_json_validate(apr_pool_t *p, const char *buf, apr_size_t len,
                              const char **perr);

/* One pass over a client's body: validates it exactly as tb_json_validate
 * does and, in the same pass, indexes the values of the first `max_depth`
 * levels (0: the root alone; 1: the root's members; 3: e.g.
 * messages[i].role), so that later steps look members up in the index
 * instead of scanning the text again. Spans point into `buf`. */
typedef struct tb_jnode_t {
    const char *key;          /* member name (unescaped); NULL otherwise */
    apr_size_t key_len;
    apr_size_t start, len;    /* the value's bytes in the document */
    int child;                /* first indexed child, -1 for none */
    int next;                 /* next sibling, -1 for the last */
    int nchild;               /* indexed children */
    char type;                /* '{' '[' '"' 't' 'f' 'n', '0' for numbers */
    char escaped;             /* a string value with backslash escapes */
    char partial;             /* some children are not indexed (the index
                               * was full): checks must not read absence */
} tb_jnode_t;

typedef struct tb_jdoc_t {
    const char *buf;
    apr_size_t len;
    tb_jnode_t *nodes;        /* nodes[0] is the root; freed with the pool */
    int nnodes, cap;
    int max_nodes;            /* 4096 + len/64: the index's memory stays a
                               * fraction of the body's */
    int truncated;            /* values beyond max_nodes were validated but
                               * not indexed (never the root's members: a
                               * body with more of those is refused) */
} tb_jdoc_t;

apr_status_t tb_json_scan(tb_jdoc_t *doc, apr_pool_t *p, const char *buf,
                          apr_size_t len, int max_depth, const char **perr);

/* The node of member `key` of object node `obj` (the last of duplicates,
 * as jansson keeps), or -1. */
int tb_jdoc_member(const tb_jdoc_t *d, int obj, const char *key);

/* A string node's value (unescaped, in p), or NULL when not a string. */
const char *tb_jdoc_string(const tb_jdoc_t *d, int node, apr_pool_t *p);

/* Is the node a string equal to `s`? (No copy when it has no escapes.) */
int tb_jdoc_streq(const tb_jdoc_t *d, int node, const char *s, apr_pool_t *p);

/* Is the node exactly this literal ("true", "null", ...)? */
int tb_jdoc_is(const tb_jdoc_t *d, int node, const char *literal);

/* Iterate the elements of a raw JSON array text (already validated):
 * start with *ppos = 0; each APR_SUCCESS gives an element's span;
 * APR_EOF after the last one. */
apr_status_t tb_json_array_next(const char *buf, apr_size_t len,
                                apr_size_t *ppos, apr_size_t *pstart,
                                apr_size_t *plen);

/* The string value of a raw JSON string literal (quotes included), or
 * NULL when the span is not a string. */
const char *tb_json_string_value(apr_pool_t *p, const char *lit,
                                 apr_size_t len);

/* Copy of buf with [start, start+vlen) replaced by `repl`. */
char *tb_json_splice(apr_pool_t *p, const char *buf, apr_size_t len,
                     apr_size_t start, apr_size_t vlen, const char *repl,
                     apr_size_t *pout_len);

/* A JSON string literal for `s` (quotes and escapes added). */
const char *tb_json_quote(apr_pool_t *p, const char *s);

/* The OpenAI error body: {"error":{"message","type","param","code"}};
 * param and code may be NULL (sent as null). */
const char *tb_json_error_body(apr_pool_t *p, const char *message,
                               const char *type, const char *param,
                               const char *code);

#endif /* TB_JSON_H */
