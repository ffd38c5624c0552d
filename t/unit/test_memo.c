/* tb_memo: the per-process, lock-free memo in front of the sticky cache:
 * freshness, direct-mapped replacement, and whole entries under
 * concurrent writers and readers. */
#include <apr_atomic.h>
#include <apr_thread_proc.h>

#include "tb_memo.h"
#include "tb_unit.h"

#define T0 ((apr_time_t)1700000000 * APR_USEC_PER_SEC)
#define FRESH apr_time_from_sec(1)

/* Threads hammering one memo: writers put (k, v, when = v * 7) for a few
 * keys, readers check that every hit is whole (when == value * 7). */
#define KEYS 4
#define ROUNDS 200000

typedef struct race_t {
    tb_memo_t *m;
    volatile apr_uint32_t torn, hits;
    int writer;
} race_t;

typedef struct racer_t {
    race_t *race;
    int writer;
} racer_t;

static void *APR_THREAD_FUNC racer(apr_thread_t *t, void *data)
{
    racer_t *me = data;
    race_t *race = me->race;
    int i, v;
    apr_time_t when;

    for (i = 0; i < ROUNDS; ++i) {
        apr_uint64_t key = (apr_uint64_t)(i % KEYS) + 1;

        if (me->writer) {
            tb_memo_put(race->m, key, i, (apr_time_t)i * 7, T0);
        }
        else if (tb_memo_get(race->m, key, T0, FRESH, &v, &when)) {
            apr_atomic_inc32(&race->hits);
            if (when != (apr_time_t)v * 7) {
                apr_atomic_inc32(&race->torn);
            }
        }
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

void test_memo(apr_pool_t *p)
{
    tb_memo_t *m;
    apr_time_t when = 0;
    apr_uint64_t a = tb_memo_hash("tb:s:1:abc"), b = tb_memo_hash("tb:s:1:abd");
    int v = 0, i, found, missed;

    OK(tb_memo_create(&m, p, 100) == APR_SUCCESS, "memo: created");
    OK(a && b && a != b && a == tb_memo_hash("tb:s:1:abc"),
       "memo: hashes are stable, distinct, never 0");
    OK(tb_memo_hash("") != 0 && tb_memo_hash(NULL) != 0, "memo: empty keys hash to non-zero");
    OK(!tb_memo_get(m, a, T0, FRESH, &v, &when), "memo: empty: a miss");
    tb_memo_put(m, a, 42, T0 - 5, T0);
    OK(tb_memo_get(m, a, T0, FRESH, &v, &when) && v == 42 && when == T0 - 5,
       "memo: what was put is read back, value and time");
    OK(tb_memo_get(m, a, T0 + FRESH - 1, FRESH, &v, &when),
       "memo: fresh until `fresh` has passed");
    OK(!tb_memo_get(m, a, T0 + FRESH, FRESH, &v, &when),
       "memo: stale after it (the shared store is asked again)");
    OK(!tb_memo_get(m, a, T0 - 1, FRESH, &v, &when),
       "memo: an entry from the future (a clock step back) is not trusted");
    OK(!tb_memo_get(m, b, T0, FRESH, &v, &when), "memo: another key: a miss");
    tb_memo_put(m, a, 0, 0, T0);
    OK(tb_memo_get(m, a, T0, FRESH, &v, &when) && v == 0,
       "memo: \"nothing\" can be memoised too");

    /* direct-mapped: 128 entries for 100; 1000 keys push each other out,
     * and a hit is always the key's own value */
    for (i = 1; i <= 1000; ++i) {
        tb_memo_put(m, (apr_uint64_t)i * 0x9E3779B97F4A7C15ULL, i, 0, T0);
    }
    for (i = 1, found = 0, missed = 0; i <= 1000; ++i) {
        if (tb_memo_get(m, (apr_uint64_t)i * 0x9E3779B97F4A7C15ULL, T0, FRESH, &v, &when)) {
            found += v == i;
            missed += v != i;
        }
    }
    OK(found > 0 && found <= 128 && !missed,
       "memo: a full memo keeps at most its size (%d of 1000), never a wrong "
       "value", found);

    {
        race_t race = { NULL, 0, 0, 0 };
        racer_t r[4];
        apr_thread_t *t[4];
        apr_status_t rv;
        int started = 0;

        tb_memo_create(&race.m, p, 4);
        for (i = 0; i < 4; ++i) {
            r[i].race = &race;
            r[i].writer = i < 2;
            if (apr_thread_create(&t[i], NULL, racer, &r[i], p) == APR_SUCCESS) {
                ++started;
            }
        }
        for (i = 0; i < started; ++i) {
            apr_thread_join(&rv, t[i]);
        }
        OK(started == 4, "memo race: two writers and two readers ran");
        OK(race.torn == 0, "memo race: no hit was torn (%u hits, %u torn)",
           race.hits, race.torn);
    }
}
