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

int starts(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

/* A value for a test name, cut short. */
const char *show(apr_pool_t *p, const json_t *j)
{
    const char *s;

    if (!j) {
        return "(absent)";
    }
    s = jdump(p, j);
    if (!s) {
        return "(?)";
    }
    return strlen(s) > 300 ? apr_pstrcat(p, apr_pstrndup(p, s, 300), "...", NULL) : s;
}

/* A raw string for a test name: one line, cut short. */
const char *V(apr_pool_t *p, const char *s)
{
    apr_size_t n, i;
    char *out, *o;

    if (!s) {
        return "(null)";
    }
    n = strlen(s);
    o = out = apr_palloc(p, 2 * (n > 300 ? 300 : n) + 8);
    for (i = 0; i < n && i < 300; ++i) {
        if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            *o++ = '\\';
            *o++ = s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : 'r';
        }
        else if ((unsigned char)s[i] < 0x20) {
            *o++ = '?';
        }
        else {
            *o++ = s[i];
        }
    }
    if (n > 300) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = '\0';
    return out;
}

