/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_date.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "tb_util.h"

int tb_allowlist_permits(const char *list, const char *model)
{
    const char *s, *e;
    apr_size_t mlen;

    if (!list) {
        return 1;
    }
    for (s = list; *s && (apr_isspace(*s) || *s == ','); ++s)
        ;
    if (!*s) {
        return 1;
    }
    mlen = strlen(model);
    while (*s) {
        while (*s && (apr_isspace(*s) || *s == ',')) {
            ++s;
        }
        e = s;
        while (*e && *e != ',') {
            ++e;
        }
        /* trim trailing blanks of this entry */
        {
            const char *t = e;
            while (t > s && apr_isspace(t[-1])) {
                --t;
            }
            if ((apr_size_t)(t - s) == mlen && mlen && !strncmp(s, model, mlen)) {
                return 1;
            }
        }
        s = e;
    }
    return 0;
}

const char *tb_mask_secret(apr_pool_t *p, const char *secret, int head)
{
    apr_size_t len = secret ? strlen(secret) : 0;

    if (len < (apr_size_t)head + 4 + 8) {
        return "****";
    }
    return apr_psprintf(p, "%.*s..%s", head, secret, secret + len - 4);
}

static apr_uint32_t random_counter;
static apr_uint64_t random_seed;

void tb_random_seed(apr_uint64_t seed)
{
    random_seed = seed ^ ((apr_uint64_t)getpid() << 32) ^ (apr_uint64_t)apr_time_now();
}

apr_uint32_t tb_random_u32(void)
{
    apr_uint64_t z = random_seed
        + 0x9E3779B97F4A7C15ULL * ((apr_uint64_t)apr_atomic_inc32(&random_counter) + 1);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (apr_uint32_t)((z ^ (z >> 31)) >> 32);
}

int tb_parse_long(const char *s, long min, long max, long *pv)
{
    char *end;
    long v;

    if (!s || !*s || apr_isspace(*s)) {
        return 0;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        return 0;
    }
    *pv = v;
    return 1;
}

#define RETRY_AFTER_MAX apr_time_from_sec(7 * 86400)

apr_interval_time_t tb_parse_retry_after(const char *value, apr_time_t now)
{
    apr_time_t when;
    long v;

    if (!value) {
        return -1;
    }
    while (apr_isspace(*value)) {
        ++value;
    }
    if (apr_isdigit(*value)) {
        return tb_parse_long(value, 0, 86400L * 7, &v) ? apr_time_from_sec(v) : -1;
    }
    if ((when = apr_date_parse_http(value)) == APR_DATE_BAD) {
        return -1;
    }
    return when <= now ? 0 : when - now > RETRY_AFTER_MAX ? RETRY_AFTER_MAX
                                                         : when - now;
}

apr_interval_time_t tb_parse_retry_after_ms(const char *value)
{
    char *end;
    double ms;

    if (!value) {
        return -1;
    }
    while (apr_isspace(*value)) {
        ++value;
    }
    if (!apr_isdigit(*value)) {
        return -1;   /* no sign, no "nan", no "inf" */
    }
    errno = 0;
    ms = strtod(value, &end);
    while (apr_isspace(*end)) {
        ++end;
    }
    if (errno || *end || ms * 1000.0 > (double)RETRY_AFTER_MAX) {
        return -1;
    }
    return (apr_interval_time_t)(ms * 1000.0);
}

apr_status_t tb_buf_append(tb_buf_t *b, apr_pool_t *p, const char *s,
                           apr_size_t n, apr_size_t max)
{
    if (b->len + n > max) {
        return APR_ENOSPC;
    }
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 256;
        char *nd;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        nd = apr_palloc(p, cap);
        if (b->len) {
            memcpy(nd, b->data, b->len);
        }
        b->data = nd;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->data + b->len, s, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return APR_SUCCESS;
}

void tb_buf_clear(tb_buf_t *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void tb_utf8_trim(char *s)
{
    apr_size_t n = strlen(s), i = n, need;
    unsigned char c;

    /* back to the start of the last sequence (at most 3 continuations) */
    while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        --i;
    }
    if (i == 0) {
        return;
    }
    c = (unsigned char)s[i - 1];
    need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (c >= 0x80 && n - (i - 1) < need) {
        s[i - 1] = '\0';
    }
}

/* The length of the well-formed UTF-8 sequence at s (shortest form, no
 * surrogates, at most U+10FFFF), or 0. */
static apr_size_t utf8_seq(const unsigned char *s, apr_size_t n)
{
    unsigned cp;
    apr_size_t len, k;

    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) { len = 2; cp = s[0] & 0x1F; }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) { len = 3; cp = s[0] & 0x0F; }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) { len = 4; cp = s[0] & 0x07; }
    else return 0;
    if (len > n) {
        return 0;
    }
    for (k = 1; k < len; ++k) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
        || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return 0;
    }
    return len;
}

char *tb_utf8_clean(apr_pool_t *p, const char *s, apr_size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char *out = apr_palloc(p, n + 1);
    apr_size_t i = 0, o = 0;

    while (i < n) {
        apr_size_t k = u[i] ? utf8_seq(u + i, n - i) : 0;

        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
        else {
            out[o++] = '?';
            ++i;
        }
    }
    out[o] = '\0';
    return out;
}
