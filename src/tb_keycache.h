/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_KEYCACHE_H
#define TB_KEYCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "tb_sha256.h"

/* What the database says about one gateway key (and its group). */
typedef struct tb_keyinfo_t {
    int found;               /* 0: no such key (cached negatively too) */
    long key_id;
    const char *name;        /* operator's label, may be empty */
    const char *prefix;      /* display prefix of the key */
    const char *last4;       /* display suffix of the key */
    int key_active;          /* status = 'active' */
    apr_int64_t expires;     /* unix seconds, 0 = never */
    const char *key_models;  /* allowlist or NULL */
    long group_id;
    const char *group_name;
    int group_active;
    const char *group_models;/* allowlist or NULL */
} tb_keyinfo_t;

/* A per-process cache of key lookups by SHA-256 hex digest. Thread-safe;
 * entries are private copies and readers get their own copy in their
 * pool, so an entry may be replaced while a request still uses the old
 * one.
 *
 * Known keys and unknown ones (negative answers) are kept apart, each
 * bounded and evicted least recently used first: a flood of random keys
 * only ever evicts other unknown keys, never a key that works.
 *
 * The cache only records when each entry was fetched and last used; the
 * caller decides what is fresh (see mod_tokenbay_state.c: fresh within
 * TokenBayKeyCacheTTL, then revalidated in the background, and served
 * stale while the database cannot answer). */
typedef struct tb_keycache_t tb_keycache_t;

apr_status_t tb_keycache_create(tb_keycache_t **pcache, apr_pool_t *p,
                                unsigned int max_known,
                                unsigned int max_unknown);

/* APR_SUCCESS with a copy in *pinfo (strings in p) and the time it was
 * fetched in *pfetched, marking the entry used at `now`; APR_NOTFOUND
 * when the cache has nothing for `hash`. */
apr_status_t tb_keycache_get(tb_keycache_t *cache, const char *hash,
                             apr_time_t now, apr_pool_t *p,
                             tb_keyinfo_t *pinfo, apr_time_t *pfetched);

/* Store the database's answer for `hash` (fetched at `now`), replacing
 * what was there; a known key that the database no longer has moves to
 * the unknown ones. */
void tb_keycache_put(tb_keycache_t *cache, const char *hash,
                     const tb_keyinfo_t *info, apr_time_t now);

/* Up to `max` digests of known keys fetched before `fetched_before` and
 * used since `used_since`, the longest unconfirmed first, into phashes
 * (strings in p), for revalidation. Returns how many. */
int tb_keycache_due(tb_keycache_t *cache, apr_time_t fetched_before,
                    apr_time_t used_since, int max, apr_pool_t *p,
                    const char **phashes);

/* Forget known keys not used since `known_used_since`, and unknown ones
 * fetched before `unknown_fetched_before`. Returns how many went. */
unsigned int tb_keycache_expire(tb_keycache_t *cache,
                                apr_time_t known_used_since,
                                apr_time_t unknown_fetched_before);

void tb_keycache_count(tb_keycache_t *cache, unsigned int *pknown,
                       unsigned int *punknown);

#endif /* TB_KEYCACHE_H */
