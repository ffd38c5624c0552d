/* tb_keycache: per-process cache of key lookups by SHA-256 hex digest:
 * copies, least-recently-used bounds kept apart for known and unknown
 * keys, and what the revalidating thread asks of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "tb_keycache.h"
#include "tb_sha256.h"
#include "tb_unit.h"

#define T0 ((apr_time_t)1700000000 * APR_USEC_PER_SEC)

static const char *hash_of(apr_pool_t *p, const char *key)
{
    char *out = apr_palloc(p, TB_SHA256_HEX_LEN + 1);

    tb_sha256_hex(key, strlen(key), out);
    return out;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static int same_info(const tb_keyinfo_t *a, const tb_keyinfo_t *b)
{
    return a->found == b->found && a->key_id == b->key_id
        && same_str(a->name, b->name) && same_str(a->prefix, b->prefix)
        && same_str(a->last4, b->last4) && a->key_active == b->key_active
        && a->expires == b->expires && same_str(a->key_models, b->key_models)
        && a->group_id == b->group_id
        && same_str(a->group_name, b->group_name)
        && a->group_active == b->group_active
        && same_str(a->group_models, b->group_models);
}

static tb_keyinfo_t sample(long key_id)
{
    tb_keyinfo_t i;

    memset(&i, 0, sizeof(i));
    i.found = 1;
    i.key_id = key_id;
    i.name = "ci runner";
    i.prefix = "tb-abc";
    i.last4 = "wxyz";
    i.key_active = 1;
    i.expires = 1800000000;
    i.key_models = "gpt-4o, mini";
    i.group_id = 7;
    i.group_name = "team";
    i.group_active = 1;
    i.group_models = NULL;
    return i;
}

static unsigned int known_count(tb_keycache_t *c)
{
    unsigned int k, u;

    tb_keycache_count(c, &k, &u);
    return k;
}

static unsigned int unknown_count(tb_keycache_t *c)
{
    unsigned int k, u;

    tb_keycache_count(c, &k, &u);
    return u;
}

static int has(tb_keycache_t *c, const char *hash, apr_time_t now,
               apr_pool_t *p, tb_keyinfo_t *out)
{
    apr_time_t fetched;

    return tb_keycache_get(c, hash, now, p, out, &fetched) == APR_SUCCESS;
}

static void basics(apr_pool_t *p)
{
    tb_keycache_t *c = NULL;
    tb_keyinfo_t in = sample(42), out, neg;
    const char *h1 = hash_of(p, "tb-key-one"), *h2 = hash_of(p, "tb-key-two");
    char *name = strdup("ci runner"), *models = strdup("gpt-4o, mini");
    char group[16];
    apr_pool_t *reader;
    apr_time_t fetched = 0;

    OK(tb_keycache_create(&c, p, 16, 16) == APR_SUCCESS && c,
       "keycache: created");
    OK(known_count(c) == 0 && unknown_count(c) == 0, "keycache: starts empty");
    OK(tb_keycache_get(c, h1, T0, p, &out, &fetched) == APR_NOTFOUND,
       "keycache: miss on an empty cache");

    /* the source strings are the caller's, and change after the put */
    apr_cpystrn(group, "team", sizeof(group));
    in.name = name;
    in.key_models = models;
    in.group_name = group;
    tb_keycache_put(c, h1, &in, T0);
    OK(known_count(c) == 1 && unknown_count(c) == 0,
       "keycache: one known entry after a put");
    name[0] = 'X';
    free(name);
    free(models);
    group[0] = 'X';
    in = sample(42);

    memset(&out, 0, sizeof(out));
    OK(tb_keycache_get(c, h1, T0 + 5, p, &out, &fetched) == APR_SUCCESS,
       "keycache: hit right after the put");
    OK(fetched == T0, "keycache: the hit says when the entry was fetched");
    OK(same_info(&out, &in),
       "keycache: every field comes back as put (name %s, models %s, "
       "group %s)", out.name ? out.name : "NULL",
       out.key_models ? out.key_models : "NULL",
       out.group_name ? out.group_name : "NULL");
    OK(out.group_models == NULL, "keycache: a NULL allowlist stays NULL");
    OK(!has(c, h2, T0, p, &out), "keycache: another hash still misses");

    /* readers get their own copies, in their own pool */
    apr_pool_create(&reader, p);
    OK(has(c, h1, T0, reader, &out) && out.name,
       "keycache: hit into a reader's pool");
    if (out.name) {
        ((char *)out.name)[0] = '#';
    }
    apr_pool_destroy(reader);
    OK(has(c, h1, T0, p, &out) && same_info(&out, &in),
       "keycache: changing or freeing a reader's copy leaves the entry");

    /* age is the caller's business: the cache keeps entries until evicted
     * or expired */
    OK(tb_keycache_get(c, h1, T0 + apr_time_from_sec(86400), p, &out,
                       &fetched) == APR_SUCCESS && fetched == T0,
       "keycache: a day later the entry is still there, fetched at T0");

    /* replacement */
    in = sample(43);
    in.key_active = 0;
    in.group_models = "o1";
    tb_keycache_put(c, h1, &in, T0 + apr_time_from_sec(100));
    OK(known_count(c) == 1, "keycache: a put for the same hash replaces");
    OK(tb_keycache_get(c, h1, T0 + apr_time_from_sec(150), p, &out, &fetched)
       == APR_SUCCESS && same_info(&out, &in)
       && fetched == T0 + apr_time_from_sec(100),
       "keycache: the replacement is what comes back, with its own time");

    /* negative entries */
    memset(&neg, 0, sizeof(neg));
    tb_keycache_put(c, h2, &neg, T0);
    memset(&out, 0xff, sizeof(out));
    OK(has(c, h2, T0 + 1, p, &out), "keycache: a negative entry is a hit");
    OK(out.found == 0 && out.name == NULL && out.prefix == NULL
       && out.last4 == NULL && out.key_models == NULL
       && out.group_name == NULL && out.group_models == NULL,
       "keycache: ... saying found=0, with no strings");
    OK(known_count(c) == 1 && unknown_count(c) == 1,
       "keycache: one known and one unknown entry");

    /* a known key the database no longer has becomes an unknown one */
    tb_keycache_put(c, h1, &neg, T0 + apr_time_from_sec(200));
    OK(known_count(c) == 0 && unknown_count(c) == 2,
       "keycache: a known key answered 'not found' moves to the unknown ones");
    OK(has(c, h1, T0, p, &out) && !out.found,
       "keycache: ... and reads as not found");
}

/* Least recently used goes first, per kind; unknown keys never push out
 * known ones. */
static void capacity(apr_pool_t *p)
{
    tb_keycache_t *c;
    tb_keyinfo_t in = sample(1), out, neg;
    const char *h[8];
    int i, all = 1;

    memset(&neg, 0, sizeof(neg));
    for (i = 0; i < 8; ++i) {
        h[i] = hash_of(p, apr_psprintf(p, "key-%d", i));
    }
    tb_keycache_create(&c, p, 3, 2);
    for (i = 0; i < 3; ++i) {
        in.key_id = i;
        tb_keycache_put(c, h[i], &in, T0 + i);
    }
    for (i = 0; i < 3; ++i) {
        all &= has(c, h[i], T0 + 10, p, &out) && out.key_id == i;
    }
    OK(known_count(c) == 3 && all, "keycache 3 known: holds 3 entries");

    /* use 0 and 2: 1 is now the least recently used */
    has(c, h[0], T0 + 20, p, &out);
    has(c, h[2], T0 + 21, p, &out);
    in.key_id = 3;
    tb_keycache_put(c, h[3], &in, T0 + 30);
    OK(known_count(c) == 3, "keycache 3 known: a 4th keeps 3 (%u)",
       known_count(c));
    OK(!has(c, h[1], T0 + 31, p, &out),
       "keycache 3 known: the least recently used one went");
    OK(has(c, h[0], T0 + 32, p, &out) && has(c, h[2], T0 + 33, p, &out)
       && has(c, h[3], T0 + 34, p, &out) && out.key_id == 3,
       "keycache 3 known: the others stayed");

    /* a refresh (put of a known hash) is not a use: it does not save an
     * entry that nobody asks for */
    in.key_id = 30;
    tb_keycache_put(c, h[0], &in, T0 + 40);   /* 0 was used at T0+32 */
    in.key_id = 4;
    tb_keycache_put(c, h[4], &in, T0 + 41);
    OK(!has(c, h[0], T0 + 42, p, &out),
       "keycache 3 known: a refreshed but unused entry is still the LRU one");

    /* a flood of unknown keys */
    for (i = 0; i < 1000; ++i) {
        tb_keycache_put(c, hash_of(p, apr_psprintf(p, "random-%d", i)), &neg,
                        T0 + 50 + i);
        all &= unknown_count(c) <= 2;
    }
    OK(all, "keycache flood: 1000 unknown keys never exceed the 2 places");
    OK(known_count(c) == 3 && has(c, h[2], T0 + 2000, p, &out)
       && has(c, h[3], T0 + 2001, p, &out) && has(c, h[4], T0 + 2002, p, &out)
       && out.found,
       "keycache flood: every known key survived it");
}

static void revalidation(apr_pool_t *p)
{
    tb_keycache_t *c;
    tb_keyinfo_t in = sample(1), out, neg;
    const char *h[5], *due[8];
    int i, n;

    memset(&neg, 0, sizeof(neg));
    for (i = 0; i < 5; ++i) {
        h[i] = hash_of(p, apr_psprintf(p, "due-%d", i));
    }
    tb_keycache_create(&c, p, 10, 10);
    /* fetched at T0+0..T0+3s */
    for (i = 0; i < 4; ++i) {
        tb_keycache_put(c, h[i], &in, T0 + apr_time_from_sec(i));
    }
    tb_keycache_put(c, h[4], &neg, T0);
    /* used: 0 and 3 recently, 1 and 2 long ago (at their fetch) */
    has(c, h[3], T0 + apr_time_from_sec(100), p, &out);
    has(c, h[0], T0 + apr_time_from_sec(101), p, &out);

    n = tb_keycache_due(c, T0 + apr_time_from_sec(10), T0 + apr_time_from_sec(50),
                        8, p, due);
    OK(n == 2, "keycache due: two known keys fetched before and used since (%d)",
       n);
    OK(n == 2 && !strcmp(due[0], h[0]) && !strcmp(due[1], h[3]),
       "keycache due: the longest unconfirmed first");
    n = tb_keycache_due(c, T0 + apr_time_from_sec(2), T0, 8, p, due);
    OK(n == 2 && !strcmp(due[0], h[0]) && !strcmp(due[1], h[1]),
       "keycache due: only those fetched before the limit (%d)", n);
    n = tb_keycache_due(c, T0 + apr_time_from_sec(10), T0, 3, p, due);
    OK(n == 3, "keycache due: at most max (%d)", n);
    n = tb_keycache_due(c, T0 + apr_time_from_sec(10), T0, 8, p, due);
    for (i = 0; i < n; ++i) {
        OK(strcmp(due[i], h[4]), "keycache due: never an unknown key (%d)", i);
    }

    /* expire: known keys unused since, unknown ones fetched before */
    OK(tb_keycache_expire(c, T0 + apr_time_from_sec(50), T0 + 1) == 3,
       "keycache expire: two unused known keys and the old unknown one go");
    OK(known_count(c) == 2 && unknown_count(c) == 0
       && has(c, h[0], T0 + apr_time_from_sec(200), p, &out)
       && has(c, h[3], T0 + apr_time_from_sec(200), p, &out),
       "keycache expire: the keys in use stay");
}

/* ---- concurrent use ------------------------------------------------------ */

#define NKEYS 8
#define NTHREADS 4
#define ROUNDS 3000

typedef struct {
    tb_keycache_t *cache;
    const char *hash[NKEYS];
    int index;
    int bad;            /* each thread has its own shared_t: no race */
} shared_t;

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    shared_t *s = data;
    apr_pool_t *p;
    int i, bad = 0;

    apr_pool_create(&p, NULL);
    for (i = 0; i < ROUNDS; ++i) {
        int k = (i * 7 + s->index) % NKEYS;
        tb_keyinfo_t in = sample(k), out;
        char name[32];

        apr_snprintf(name, sizeof(name), "name-%d", k);
        in.name = name;
        in.found = k % 3 != 0;   /* some unknown keys too */
        tb_keycache_put(s->cache, s->hash[k], &in, T0 + i);
        k = (k + 3) % NKEYS;
        if (has(s->cache, s->hash[k], T0 + i, p, &out) && out.found) {
            apr_snprintf(name, sizeof(name), "name-%d", k);
            bad += out.key_id != k || !out.name || strcmp(out.name, name);
        }
        if (i % 97 == 0) {
            const char *due[NKEYS];
            tb_keycache_due(s->cache, T0 + i, T0, NKEYS, p, due);
            tb_keycache_expire(s->cache, T0 + i - 50, T0 + i - 50);
        }
        if (i % 256 == 0) {
            apr_pool_clear(p);
        }
    }
    apr_pool_destroy(p);
    s->bad = bad;
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void threads(apr_pool_t *p)
{
    shared_t s[NTHREADS];
    apr_thread_t *th[NTHREADS];
    tb_keycache_t *c;
    int i, k, bad = 0, started = 0;

    tb_keycache_create(&c, p, NKEYS / 2, NKEYS / 4);
    for (i = 0; i < NTHREADS; ++i) {
        s[i].cache = c;
        s[i].index = i;
        s[i].bad = 0;
        for (k = 0; k < NKEYS; ++k) {
            s[i].hash[k] = hash_of(p, apr_psprintf(p, "thread-key-%d", k));
        }
        if (apr_thread_create(&th[i], NULL, worker, &s[i], p) != APR_SUCCESS) {
            break;
        }
        ++started;
    }
    for (i = 0; i < started; ++i) {
        apr_status_t rv;
        apr_thread_join(&rv, th[i]);
        bad += s[i].bad;
    }
    OK(started == NTHREADS, "keycache threads: %d of %d threads started",
       started, NTHREADS);
    OK(bad == 0, "keycache threads: every hit matches its hash (%d wrong)",
       bad);
    OK(known_count(c) <= NKEYS / 2 && unknown_count(c) <= NKEYS / 4,
       "keycache threads: the bounds hold under contention");
}

void test_keycache(apr_pool_t *p)
{
    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    basics(sub);
    capacity(sub);
    revalidation(sub);
    threads(sub);
    apr_pool_destroy(sub);  /* frees the entries: checked by valgrind */
}
