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

/* A per-process cache of key lookups by SHA-256 hex digest, with a TTL so a
 * change in the database takes effect without a restart. Thread-safe; the
 * entries are private copies and readers get their own copy in their pool,
 * so an entry may be replaced while a request still uses the old one. */
typedef struct tb_keycache_t tb_keycache_t;

apr_status_t tb_keycache_create(tb_keycache_t **pcache, apr_pool_t *p,
                                unsigned int max_entries);

/* APR_SUCCESS with a copy in *pinfo when a fresh entry exists (fetched
 * within `ttl` of `now`); APR_NOTFOUND otherwise. */
apr_status_t tb_keycache_get(tb_keycache_t *cache, const char *hash,
                             apr_time_t now, apr_interval_time_t ttl,
                             apr_pool_t *p, tb_keyinfo_t *pinfo);

/* Store (replacing) the entry for `hash`. When the cache is full it is
 * emptied first: a crude bound, but lookups are cheap and it cannot grow. */
void tb_keycache_put(tb_keycache_t *cache, const char *hash,
                     const tb_keyinfo_t *info, apr_time_t now);

unsigned int tb_keycache_count(tb_keycache_t *cache);

#endif /* TB_KEYCACHE_H */
