/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "tb_keycache.h"

/* One malloc'd block per entry: the struct, then its strings. */
typedef struct entry_t {
    char hash[TB_SHA256_HEX_LEN + 1];
    apr_time_t fetched;
    tb_keyinfo_t info;       /* string members point into this block */
} entry_t;

struct tb_keycache_t {
    apr_pool_t *pool;        /* its own allocator: used under mutex only */
    apr_thread_mutex_t *mutex;
    apr_hash_t *entries;     /* hash hex -> entry_t*, under mutex */
    unsigned int max_entries;
};

static void free_all(tb_keycache_t *cache)
{
    apr_hash_index_t *hi;

    /* NB: the hash's keys live inside the entries: take each entry out of
     * the hash before freeing it, never free first and clear after */
    for (hi = apr_hash_first(NULL, cache->entries); hi; hi = apr_hash_next(hi)) {
        void *val;
        apr_hash_this(hi, NULL, NULL, &val);
        apr_hash_set(cache->entries, ((entry_t *)val)->hash,
                     APR_HASH_KEY_STRING, NULL);
        free(val);
    }
}

static apr_status_t cache_cleanup(void *data)
{
    tb_keycache_t *cache = data;

    free_all(cache);
    apr_pool_destroy(cache->pool);
    return APR_SUCCESS;
}

apr_status_t tb_keycache_create(tb_keycache_t **pcache, apr_pool_t *p,
                                unsigned int max_entries)
{
    tb_keycache_t *cache = apr_pcalloc(p, sizeof(*cache));
    apr_status_t rv;

    rv = apr_thread_mutex_create(&cache->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* NB: the hash allocates as it grows, from threads holding this
     * cache's mutex only; a pool shared with other caches (each under
     * its own mutex) would be touched concurrently */
    if ((rv = apr_pool_create_unmanaged_ex(&cache->pool, NULL, NULL))
        != APR_SUCCESS) {
        return rv;
    }
    cache->entries = apr_hash_make(cache->pool);
    cache->max_entries = max_entries ? max_entries : 1;
    apr_pool_cleanup_register(p, cache, cache_cleanup, apr_pool_cleanup_null);
    *pcache = cache;
    return APR_SUCCESS;
}

/* Deep copy of the info's strings, either into a pool or a flat buffer. */
static apr_size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *str_put(char **pcur, const char *s)
{
    char *dst;
    apr_size_t n;

    if (!s) {
        return NULL;
    }
    n = strlen(s) + 1;
    dst = *pcur;
    memcpy(dst, s, n);
    *pcur += n;
    return dst;
}

static void info_copy_to_pool(apr_pool_t *p, const tb_keyinfo_t *src,
                              tb_keyinfo_t *dst)
{
    *dst = *src;
    dst->name = src->name ? apr_pstrdup(p, src->name) : NULL;
    dst->prefix = src->prefix ? apr_pstrdup(p, src->prefix) : NULL;
    dst->last4 = src->last4 ? apr_pstrdup(p, src->last4) : NULL;
    dst->key_models = src->key_models ? apr_pstrdup(p, src->key_models) : NULL;
    dst->group_name = src->group_name ? apr_pstrdup(p, src->group_name) : NULL;
    dst->group_models = src->group_models ? apr_pstrdup(p, src->group_models) : NULL;
}

apr_status_t tb_keycache_get(tb_keycache_t *cache, const char *hash,
                             apr_time_t now, apr_interval_time_t ttl,
                             apr_pool_t *p, tb_keyinfo_t *pinfo)
{
    apr_status_t rv = APR_NOTFOUND;
    entry_t *e;

    apr_thread_mutex_lock(cache->mutex);
    e = apr_hash_get(cache->entries, hash, APR_HASH_KEY_STRING);
    if (e && now >= e->fetched && now - e->fetched < ttl) {
        info_copy_to_pool(p, &e->info, pinfo);
        rv = APR_SUCCESS;
    }
    apr_thread_mutex_unlock(cache->mutex);
    return rv;
}

void tb_keycache_put(tb_keycache_t *cache, const char *hash,
                     const tb_keyinfo_t *info, apr_time_t now)
{
    apr_size_t size = sizeof(entry_t) + str_size(info->name)
        + str_size(info->prefix) + str_size(info->last4)
        + str_size(info->key_models) + str_size(info->group_name)
        + str_size(info->group_models);
    entry_t *e = malloc(size), *old;
    char *cur;

    if (!e) {
        return;
    }
    apr_cpystrn(e->hash, hash, sizeof(e->hash));
    e->fetched = now;
    e->info = *info;
    cur = (char *)(e + 1);
    e->info.name = str_put(&cur, info->name);
    e->info.prefix = str_put(&cur, info->prefix);
    e->info.last4 = str_put(&cur, info->last4);
    e->info.key_models = str_put(&cur, info->key_models);
    e->info.group_name = str_put(&cur, info->group_name);
    e->info.group_models = str_put(&cur, info->group_models);

    apr_thread_mutex_lock(cache->mutex);
    old = apr_hash_get(cache->entries, hash, APR_HASH_KEY_STRING);
    if (old) {
        /* NB: the hash keeps the key pointer of the first set; the key
         * lives in the entry, so remove before freeing and re-adding. */
        apr_hash_set(cache->entries, old->hash, APR_HASH_KEY_STRING, NULL);
        free(old);
    }
    else if (apr_hash_count(cache->entries) >= cache->max_entries) {
        free_all(cache);
    }
    apr_hash_set(cache->entries, e->hash, APR_HASH_KEY_STRING, e);
    apr_thread_mutex_unlock(cache->mutex);
}

unsigned int tb_keycache_count(tb_keycache_t *cache)
{
    unsigned int n;

    apr_thread_mutex_lock(cache->mutex);
    n = apr_hash_count(cache->entries);
    apr_thread_mutex_unlock(cache->mutex);
    return n;
}
