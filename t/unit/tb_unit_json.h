#ifndef TB_UNIT_JSON_H
#define TB_UNIT_JSON_H
/* JSON helpers shared by the conversion tests: jansson itself reads what
 * the library writes (an independent judge), paths pick members. */
#include <apr_pools.h>
#include <jansson.h>

/* Single quotes become double quotes (JSON written readably in C). */
const char *Q(apr_pool_t *p, const char *s);
/* Parsed by jansson, owned by the pool; NULL when not JSON. */
json_t *jparse_flags(apr_pool_t *p, const char *s, apr_size_t len, size_t flags);
json_t *jparse(apr_pool_t *p, const char *s, apr_size_t len);
/* Serialised by jansson (for test names). */
const char *jdump(apr_pool_t *p, const json_t *j);
/* A member by path: "messages.1.tool_calls.0.id"; a negative index counts
 * from the end of an array. */
json_t *jat(const json_t *root, const char *path);
const char *js(const json_t *root, const char *path);
int jeq(const json_t *root, const char *path, const char *want);
long jint(const json_t *root, const char *path);   /* -999 when absent */
int jhas(const json_t *root, const char *path);
size_t jlen(const json_t *root, const char *path); /* array or object size */
/* For test names: does s start with prefix; a value or a raw string,
 * on one line, cut short. */
int starts(const char *s, const char *prefix);
const char *show(apr_pool_t *p, const json_t *j);
const char *V(apr_pool_t *p, const char *s);
#endif
