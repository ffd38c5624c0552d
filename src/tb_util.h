/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_UTIL_H
#define TB_UTIL_H

#include <apr_pools.h>
#include <apr_time.h>

/* Is `model` on a comma separated allowlist? NULL or blank list: everything
 * is allowed. Entries are trimmed; comparison is exact. */
int tb_allowlist_permits(const char *list, const char *model);

/* A display form of a secret for logs and admin output: the first `head`
 * and last 4 characters around "..", or "****" when too short to show any. */
const char *tb_mask_secret(apr_pool_t *p, const char *secret, int head);

/* Seed for tb_random_u32; mixes in pid and time, call once per process. */
void tb_random_seed(apr_uint64_t seed);

/* Fast, lock-free, thread-safe pseudo random numbers (splitmix64 over an
 * atomic counter). Not for secrets: only for spreading load. */
apr_uint32_t tb_random_u32(void);

/* How long an upstream asks to wait, in microseconds; -1 when absent or
 * unparsable. Retry-After: delta-seconds, or an HTTP-date (relative to
 * `now`; a date in the past is 0). retry-after-ms (OpenAI's, which its
 * SDKs prefer): milliseconds, fractions allowed. At most a week. */
apr_interval_time_t tb_parse_retry_after(const char *value, apr_time_t now);
apr_interval_time_t tb_parse_retry_after_ms(const char *value);

/* Is `s` exactly a decimal integer in [min, max]? Stores it in *pv. */
int tb_parse_long(const char *s, long min, long max, long *pv);

/* Shorten s (in place) so that it does not end inside a UTF-8 sequence:
 * what a byte-counted cut of text leaves must stay valid text. */
void tb_utf8_trim(char *s);

/* A copy of n bytes that is valid UTF-8: every byte that does not belong
 * to a well-formed sequence becomes '?'. For text relayed from elsewhere
 * (an upstream's non-JSON error page) into JSON. */
char *tb_utf8_clean(apr_pool_t *p, const char *s, apr_size_t n);

/* A piece of a body sent in pieces: the pass-through body is the
 * client's bytes around a spliced value, sent without a copy. */
typedef struct tb_iovec_t {
    const char *base;
    apr_size_t len;
} tb_iovec_t;

/* A growable byte buffer in a pool: doubles up to holding `max` bytes,
 * always NUL-terminated. Old storage stays in the pool, so bound the pool's
 * life (or `max`) accordingly. */
typedef struct tb_buf_t {
    char *data;
    apr_size_t len, cap;
} tb_buf_t;

/* APR_ENOSPC when the content would exceed `max` (nothing is appended). */
apr_status_t tb_buf_append(tb_buf_t *b, apr_pool_t *p, const char *s,
                           apr_size_t n, apr_size_t max);
void tb_buf_clear(tb_buf_t *b);

#endif /* TB_UTIL_H */
