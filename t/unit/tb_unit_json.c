/* JSON helpers shared by the conversion tests (tb_unit_json.h). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_json.h"
#include "tb_unit_json.h"

/* Single quotes become double quotes. */
const char *Q(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *c;

    for (c = out; *c; ++c) {
        if (*c == '\'') {
            *c = '"';
        }
    }
    return out;
}

/* Parsed by jansson itself, not the library's reader: an independent
 * judge of what the gateway writes. Owned by the pool. */
json_t *jparse_flags(apr_pool_t *p, const char *s, apr_size_t len, size_t flags)
{
    json_t *j;

    if (!s || !(j = json_loadb(s, len, flags, NULL))) {
        return NULL;
    }
    return tb_json_pool_own(p, j);
}

json_t *jparse(apr_pool_t *p, const char *s, apr_size_t len)
{
    return jparse_flags(p, s, len, 0);
}

/* Serialised by jansson (for test names and fixtures). */
const char *jdump(apr_pool_t *p, const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    const char *out = s ? apr_pstrdup(p, s) : NULL;

    free(s);
    return out;
}

/* A member by path: "messages.1.tool_calls.0.id"; a negative index counts
 * from the end of an array. */
json_t *jat(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *s = path;
    char key[256];

    while (cur && *s) {
        apr_size_t n = strcspn(s, ".");

        if (n >= sizeof(key)) {
            return NULL;
        }
        memcpy(key, s, n);
        key[n] = '\0';
        if (json_is_array(cur)) {
            char *end;
            long i = strtol(key, &end, 10);

            if (*end || end == key) {
                return NULL;
            }
            if (i < 0) {
                i += (long)json_array_size(cur);
            }
            cur = i >= 0 ? json_array_get(cur, (size_t)i) : NULL;
        }
        else {
            cur = json_object_get(cur, key);
        }
        s += n;
        if (*s == '.') {
            ++s;
        }
    }
    return (json_t *)cur;
}

const char *js(const json_t *root, const char *path)
{
    const json_t *v = jat(root, path);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int jeq(const json_t *root, const char *path, const char *want)
{
    const char *v = js(root, path);

    return v && !strcmp(v, want);
}

long jint(const json_t *root, const char *path)
{
    const json_t *v = jat(root, path);

    return json_is_integer(v) ? (long)json_integer_value(v) : -999;
}

int jhas(const json_t *root, const char *path)
{
    return jat(root, path) != NULL;
}

size_t jlen(const json_t *root, const char *path)
{
    const json_t *v = jat(root, path);

    return json_is_array(v) ? json_array_size(v)
         : json_is_object(v) ? json_object_size(v) : 0;
}
