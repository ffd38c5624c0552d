/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_MEMO_H
#define TB_MEMO_H

#include <apr_pools.h>
#include <apr_time.h>

/* A small best-effort memo for one process's threads: 64-bit keys to an
 * int value and a time, direct-mapped (a key may push out another), with
 * no lock: each entry has its own sequence count, a writer that finds an
 * entry busy gives up, a reader that finds it changing misses. It sits in
 * front of slower shared stores (the sticky cache), so that a busy key is
 * read from there once per `fresh` interval, not at every request. */
typedef struct tb_memo_t tb_memo_t;

/* Room for about `n` keys (rounded up to a power of two). */
apr_status_t tb_memo_create(tb_memo_t **pmemo, apr_pool_t *p, unsigned int n);

/* 1 with *pvalue and *pwhen when `key` was put within `fresh` of `now`. */
int tb_memo_get(tb_memo_t *m, apr_uint64_t key, apr_time_t now,
                apr_interval_time_t fresh, int *pvalue, apr_time_t *pwhen);

/* Remember `value` and `when` for `key`, as of `now`. */
void tb_memo_put(tb_memo_t *m, apr_uint64_t key, int value, apr_time_t when,
                 apr_time_t now);

/* A 64-bit hash of a string (FNV-1a), for keys. */
apr_uint64_t tb_memo_hash(const char *s);

#endif /* TB_MEMO_H */
