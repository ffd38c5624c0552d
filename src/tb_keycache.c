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
    apr_time_t used;
    struct entry_t *prev, *next;   /* its kind's list, most recent first */
    tb_keyinfo_t info;             /* string members point into this block */
} entry_t;

/* Known or unknown keys: a list by last use, and a bound. */
typedef struct lru_t {
    entry_t *head, *tail;
    unsigned int count, max;
} lru_t;

struct tb_keycache_t {
    apr_pool_t *pool;        /* its own allocator: used under mutex only */
    apr_thread_mutex_t *mutex;
    apr_hash_t *entries;     /* hash hex -> entry_t*, under mutex */
    lru_t known, unknown;
};

static lru_t *kind_of(tb_keycache_t *cache, const entry_t *e)
{
    return e->info.found ? &cache->known : &cache->unknown;
}

static void lru_unlink(lru_t *l, entry_t *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    }
    else {
        l->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    }
    else {
        l->tail = e->prev;
    }
    e->prev = e->next = NULL;
    --l->count;
}

static void lru_push(lru_t *l, entry_t *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head) {
        l->head->prev = e;
    }
    else {
        l->tail = e;
    }
    l->head = e;
    ++l->count;
}

/* `e` takes `old`'s place in the list. */
static void lru_replace(lru_t *l, entry_t *old, entry_t *e)
{
    e->prev = old->prev;
    e->next = old->next;
    if (e->prev) {
        e->prev->next = e;
    }
    else {
        l->head = e;
    }
    if (e->next) {
        e->next->prev = e;
    }
    else {
        l->tail = e;
    }
}

/* NB: the hash's key lives inside the entry: take it out of the hash
 * before freeing it, never free first */
static void entry_drop(tb_keycache_t *cache, entry_t *e)
{
    apr_hash_set(cache->entries, e->hash, APR_HASH_KEY_STRING, NULL);
    lru_unlink(kind_of(cache, e), e);
    free(e);
}

static apr_status_t cache_cleanup(void *data)
{
    tb_keycache_t *cache = data;

    while (cache->known.head) {
        entry_drop(cache, cache->known.head);
    }
    while (cache->unknown.head) {
        entry_drop(cache, cache->unknown.head);
    }
    apr_pool_destroy(cache->pool);
    return APR_SUCCESS;
}

apr_status_t tb_keycache_create(tb_keycache_t **pcache, apr_pool_t *p,
                                unsigned int max_known,
                                unsigned int max_unknown)
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
    cache->known.max = max_known ? max_known : 1;
    cache->unknown.max = max_unknown ? max_unknown : 1;
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

static const char *pstrdup_or_null(apr_pool_t *p, const char *s)
{
    return s ? apr_pstrdup(p, s) : NULL;
}

static void info_copy_to_pool(apr_pool_t *p, const tb_keyinfo_t *src,
                              tb_keyinfo_t *dst)
{
    *dst = *src;
    dst->name = pstrdup_or_null(p, src->name);
    dst->prefix = pstrdup_or_null(p, src->prefix);
    dst->last4 = pstrdup_or_null(p, src->last4);
    dst->key_models = pstrdup_or_null(p, src->key_models);
    dst->group_name = pstrdup_or_null(p, src->group_name);
    dst->group_models = pstrdup_or_null(p, src->group_models);
}

apr_status_t tb_keycache_get(tb_keycache_t *cache, const char *hash,
                             apr_time_t now, apr_pool_t *p,
                             tb_keyinfo_t *pinfo, apr_time_t *pfetched)
{
    apr_status_t rv = APR_NOTFOUND;
    entry_t *e;

    apr_thread_mutex_lock(cache->mutex);
    e = apr_hash_get(cache->entries, hash, APR_HASH_KEY_STRING);
    if (e) {
        lru_t *l = kind_of(cache, e);

        info_copy_to_pool(p, &e->info, pinfo);
        *pfetched = e->fetched;
        e->used = now;
        lru_unlink(l, e);
        lru_push(l, e);
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
    lru_t *l;

    if (!e) {
        return;
    }
    memset(e, 0, sizeof(*e));
    apr_cpystrn(e->hash, hash, sizeof(e->hash));
    e->fetched = now;
    e->used = now;
    e->info = *info;
    cur = (char *)(e + 1);
    e->info.name = str_put(&cur, info->name);
    e->info.prefix = str_put(&cur, info->prefix);
    e->info.last4 = str_put(&cur, info->last4);
    e->info.key_models = str_put(&cur, info->key_models);
    e->info.group_name = str_put(&cur, info->group_name);
    e->info.group_models = str_put(&cur, info->group_models);
    l = kind_of(cache, e);

    apr_thread_mutex_lock(cache->mutex);
    old = apr_hash_get(cache->entries, hash, APR_HASH_KEY_STRING);
    if (old && kind_of(cache, old) == l) {
        /* a refresh is not a use: same place in the list, same last use */
        e->used = old->used;
        lru_replace(l, old, e);
        apr_hash_set(cache->entries, old->hash, APR_HASH_KEY_STRING, NULL);
        free(old);
    }
    else {
        if (old) {
            entry_drop(cache, old);
        }
        while (l->count >= l->max) {
            entry_drop(cache, l->tail);
        }
        lru_push(l, e);
    }
    apr_hash_set(cache->entries, e->hash, APR_HASH_KEY_STRING, e);
    apr_thread_mutex_unlock(cache->mutex);
}

typedef struct due_t {
    const char *hash;
    apr_time_t fetched;
} due_t;

static int due_cmp(const void *a, const void *b)
{
    apr_time_t x = ((const due_t *)a)->fetched, y = ((const due_t *)b)->fetched;

    return x < y ? -1 : x > y;
}

int tb_keycache_due(tb_keycache_t *cache, apr_time_t fetched_before,
                    apr_time_t used_since, int max, apr_pool_t *p,
                    const char **phashes)
{
    due_t *all;
    entry_t *e;
    int n = 0, i;

    if (max <= 0) {
        return 0;
    }
    apr_thread_mutex_lock(cache->mutex);
    all = apr_palloc(p, sizeof(*all) * (cache->known.count + 1));
    /* most recently used first: stop at the first entry unused since */
    for (e = cache->known.head; e && e->used >= used_since; e = e->next) {
        if (e->fetched < fetched_before) {
            all[n].hash = apr_pstrdup(p, e->hash);
            all[n].fetched = e->fetched;
            ++n;
        }
    }
    apr_thread_mutex_unlock(cache->mutex);
    qsort(all, (size_t)n, sizeof(*all), due_cmp);
    for (i = 0; i < n && i < max; ++i) {
        phashes[i] = all[i].hash;
    }
    return i;
}

unsigned int tb_keycache_expire(tb_keycache_t *cache,
                                apr_time_t known_used_since,
                                apr_time_t unknown_fetched_before)
{
    unsigned int gone = 0;
    entry_t *e, *prev;

    apr_thread_mutex_lock(cache->mutex);
    while (cache->known.tail && cache->known.tail->used < known_used_since) {
        entry_drop(cache, cache->known.tail);
        ++gone;
    }
    /* unknown keys: by age, not use (a flood keeps using them) */
    for (e = cache->unknown.tail; e; e = prev) {
        prev = e->prev;
        if (e->fetched < unknown_fetched_before) {
            entry_drop(cache, e);
            ++gone;
        }
    }
    apr_thread_mutex_unlock(cache->mutex);
    return gone;
}

void tb_keycache_count(tb_keycache_t *cache, unsigned int *pknown,
                       unsigned int *punknown)
{
    apr_thread_mutex_lock(cache->mutex);
    *pknown = cache->known.count;
    *punknown = cache->unknown.count;
    apr_thread_mutex_unlock(cache->mutex);
}
