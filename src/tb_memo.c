/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "tb_memo.h"

#define LD(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)

typedef struct entry_t {
    apr_uint32_t seq;        /* odd while a writer is at work */
    apr_int32_t value;
    apr_uint64_t key;        /* 0: empty */
    apr_int64_t when;
    apr_int64_t put_at;
} entry_t;

struct tb_memo_t {
    entry_t *entries;
    apr_uint64_t mask;
};

apr_status_t tb_memo_create(tb_memo_t **pmemo, apr_pool_t *p, unsigned int n)
{
    tb_memo_t *m = apr_pcalloc(p, sizeof(*m));
    apr_uint64_t size = 1;

    while (size < n && size < (1u << 24)) {
        size <<= 1;
    }
    m->entries = apr_pcalloc(p, size * sizeof(entry_t));
    m->mask = size - 1;
    *pmemo = m;
    return APR_SUCCESS;
}

apr_uint64_t tb_memo_hash(const char *s)
{
    apr_uint64_t h = 14695981039346656037ULL;

    for (; s && *s; ++s) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h ? h : 1;   /* 0 marks an empty entry */
}

static entry_t *slot_of(tb_memo_t *m, apr_uint64_t key)
{
    /* NB: FNV's low bits mix poorly on their own: fold the high half in */
    return &m->entries[(key ^ (key >> 32)) & m->mask];
}

int tb_memo_get(tb_memo_t *m, apr_uint64_t key, apr_time_t now,
                apr_interval_time_t fresh, int *pvalue, apr_time_t *pwhen)
{
    entry_t *e = slot_of(m, key);
    apr_uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    apr_uint64_t k;
    apr_int64_t when, put_at;
    apr_int32_t value;

    if (seq & 1) {
        return 0;
    }
    k = LD(&e->key);
    value = LD(&e->value);
    when = LD(&e->when);
    put_at = LD(&e->put_at);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != seq || k != key
        || now - put_at >= fresh || put_at > now) {
        return 0;
    }
    *pvalue = value;
    *pwhen = when;
    return 1;
}

void tb_memo_put(tb_memo_t *m, apr_uint64_t key, int value, apr_time_t when,
                 apr_time_t now)
{
    entry_t *e = slot_of(m, key);
    apr_uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);

    /* busy: another writer is at it, and this is only a memo */
    if ((seq & 1) || !__atomic_compare_exchange_n(&e->seq, &seq, seq + 1, 0,
                                                  __ATOMIC_ACQUIRE,
                                                  __ATOMIC_RELAXED)) {
        return;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ST(&e->key, key);
    ST(&e->value, value);
    ST(&e->when, when);
    ST(&e->put_at, now);
    __atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
}
