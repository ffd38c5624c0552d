/* tb_keycache: per-process cache of key lookups by SHA-256 hex digest. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "tb_keycache.h"
#include "tb_sha256.h"
#include "tb_unit.h"

#define T0 ((apr_time_t)1700000000 * APR_USEC_PER_SEC)
#define TTL apr_time_from_sec(60)

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

static void basics(apr_pool_t *p)
{
    tb_keycache_t *c = NULL;
    tb_keyinfo_t in = sample(42), out, neg;
    const char *h1 = hash_of(p, "tb-key-one"), *h2 = hash_of(p, "tb-key-two");
    char *name = strdup("ci runner"), *models = strdup("gpt-4o, mini");
    char group[16];
    apr_pool_t *reader;

    OK(tb_keycache_create(&c, p, 16) == APR_SUCCESS && c,
       "keycache: created");
    OK(tb_keycache_count(c) == 0, "keycache: starts empty");
    OK(tb_keycache_get(c, h1, T0, TTL, p, &out) == APR_NOTFOUND,
       "keycache: miss on an empty cache");

    /* the source strings are the caller's, and change after the put */
    apr_cpystrn(group, "team", sizeof(group));
    in.name = name;
    in.key_models = models;
    in.group_name = group;
    tb_keycache_put(c, h1, &in, T0);
    OK(tb_keycache_count(c) == 1, "keycache: one entry after a put");
    name[0] = 'X';
    free(name);
    free(models);
    group[0] = 'X';
    in = sample(42);

    memset(&out, 0, sizeof(out));
    OK(tb_keycache_get(c, h1, T0, TTL, p, &out) == APR_SUCCESS,
       "keycache: hit right after the put");
    OK(same_info(&out, &in),
       "keycache: every field comes back as put (name %s, models %s, "
       "group %s)", out.name ? out.name : "NULL",
       out.key_models ? out.key_models : "NULL",
       out.group_name ? out.group_name : "NULL");
    OK(out.group_models == NULL, "keycache: a NULL allowlist stays NULL");
    OK(tb_keycache_get(c, h2, T0, TTL, p, &out) == APR_NOTFOUND,
       "keycache: another hash still misses");

    /* readers get their own copies, in their own pool */
    apr_pool_create(&reader, p);
    OK(tb_keycache_get(c, h1, T0, TTL, reader, &out) == APR_SUCCESS
       && out.name, "keycache: hit into a reader's pool");
    if (out.name) {
        ((char *)out.name)[0] = '#';
    }
    apr_pool_destroy(reader);
    OK(tb_keycache_get(c, h1, T0, TTL, p, &out) == APR_SUCCESS
       && same_info(&out, &in),
       "keycache: changing or freeing a reader's copy leaves the entry");

    /* time to live */
    OK(tb_keycache_get(c, h1, T0 + TTL - 1, TTL, p, &out) == APR_SUCCESS,
       "keycache: still fresh just before ttl");
    OK(tb_keycache_get(c, h1, T0 + TTL + 1, TTL, p, &out) == APR_NOTFOUND,
       "keycache: stale just after ttl");
    OK(tb_keycache_get(c, h1, T0 + apr_time_from_sec(3600), TTL, p, &out)
       == APR_NOTFOUND, "keycache: stale long after ttl");
    OK(tb_keycache_get(c, h1, T0 + apr_time_from_sec(90),
                       apr_time_from_sec(120), p, &out) == APR_SUCCESS,
       "keycache: the ttl is the caller's: 90s old is fresh under 120s");
    OK(tb_keycache_get(c, h1, T0 - apr_time_from_sec(5), TTL, p, &out)
       == APR_NOTFOUND,
       "keycache: an entry fetched 'in the future' (clock stepped back) "
       "is not trusted");

    /* replacement */
    in = sample(43);
    in.key_active = 0;
    in.group_models = "o1";
    tb_keycache_put(c, h1, &in, T0 + apr_time_from_sec(100));
    OK(tb_keycache_count(c) == 1, "keycache: a put for the same hash replaces");
    OK(tb_keycache_get(c, h1, T0 + apr_time_from_sec(150), TTL, p, &out)
       == APR_SUCCESS && same_info(&out, &in),
       "keycache: the replacement is what comes back, fresh from its own time");

    /* negative entries */
    memset(&neg, 0, sizeof(neg));
    tb_keycache_put(c, h2, &neg, T0);
    memset(&out, 0xff, sizeof(out));
    OK(tb_keycache_get(c, h2, T0 + 1, TTL, p, &out) == APR_SUCCESS,
       "keycache: a negative entry is a hit");
    OK(out.found == 0 && out.name == NULL && out.prefix == NULL
       && out.last4 == NULL && out.key_models == NULL
       && out.group_name == NULL && out.group_models == NULL,
       "keycache: ... saying found=0, with no strings");
    OK(tb_keycache_count(c) == 2, "keycache: two entries counted");
    OK(tb_keycache_get(c, h2, T0 + TTL + 1, TTL, p, &out) == APR_NOTFOUND,
       "keycache: negative entries expire too");
}

static void capacity(apr_pool_t *p)
{
    tb_keycache_t *c;
    tb_keyinfo_t in = sample(1), out;
    const char *h[7];
    int i, all = 1;
    unsigned int n;

    for (i = 0; i < 7; ++i) {
        h[i] = hash_of(p, apr_psprintf(p, "key-%d", i));
    }
    tb_keycache_create(&c, p, 3);
    for (i = 0; i < 3; ++i) {
        in.key_id = i;
        tb_keycache_put(c, h[i], &in, T0);
    }
    for (i = 0; i < 3; ++i) {
        all &= tb_keycache_get(c, h[i], T0, TTL, p, &out) == APR_SUCCESS
            && out.key_id == i;
    }
    OK(tb_keycache_count(c) == 3 && all, "keycache max 3: holds 3 entries");

    in.key_id = 3;
    tb_keycache_put(c, h[3], &in, T0);
    n = tb_keycache_count(c);
    OK(n <= 3, "keycache max 3: a 4th distinct put keeps count <= 3 (%u)", n);
    OK(n == 1, "keycache max 3: ... by emptying the cache first (%u)", n);
    OK(tb_keycache_get(c, h[3], T0, TTL, p, &out) == APR_SUCCESS
       && out.key_id == 3, "keycache max 3: the newest entry is there");
    OK(tb_keycache_get(c, h[0], T0, TTL, p, &out) == APR_NOTFOUND,
       "keycache max 3: an old entry was dropped");

    for (i = 4; i < 6; ++i) {
        in.key_id = i;
        tb_keycache_put(c, h[i], &in, T0);
    }
    in.key_id = 50;
    tb_keycache_put(c, h[4], &in, T0);
    OK(tb_keycache_count(c) == 3
       && tb_keycache_get(c, h[5], T0, TTL, p, &out) == APR_SUCCESS
       && tb_keycache_get(c, h[4], T0, TTL, p, &out) == APR_SUCCESS
       && out.key_id == 50,
       "keycache max 3: replacing an entry of a full cache empties nothing");

    for (i = 0; i < 100; ++i) {
        tb_keycache_put(c, hash_of(p, apr_psprintf(p, "many-%d", i)), &in, T0);
        all &= tb_keycache_count(c) <= 3;
    }
    OK(all, "keycache max 3: 100 more distinct puts never exceed 3");
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
        tb_keycache_put(s->cache, s->hash[k], &in, T0);
        k = (k + 3) % NKEYS;
        if (tb_keycache_get(s->cache, s->hash[k], T0, TTL, p, &out)
            == APR_SUCCESS) {
            apr_snprintf(name, sizeof(name), "name-%d", k);
            bad += out.key_id != k || !out.name || strcmp(out.name, name);
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

    tb_keycache_create(&c, p, NKEYS / 2);
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
    OK(tb_keycache_count(c) <= NKEYS / 2,
       "keycache threads: the bound holds under contention");
}

/* Run a scenario in a child process first, so that a crash shows as one
 * failed check instead of ending the whole run; then, if it survived, run
 * it here for its checks. (Emptying a full cache is where a use-after-free
 * showed up.) */
static void guarded(void (*fn)(apr_pool_t *), apr_pool_t *p, const char *what)
{
    pid_t pid;
    int status = 0;

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        int fd = open("/dev/null", O_WRONLY);

        setrlimit(RLIMIT_CORE, &no_core);   /* a crash leaves no core file */
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
        }
        fn(p);
        fflush(stdout);
        _exit(0);
    }
    if (pid > 0) {
        waitpid(pid, &status, 0);
        OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "keycache %s: the scenario runs to its end (child %s %d)", what,
           WIFSIGNALED(status) ? "killed by signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            return;
        }
    }
    fn(p);
}

void test_keycache(apr_pool_t *p)
{
    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    basics(sub);
    guarded(capacity, sub, "capacity");
    guarded(threads, sub, "threads");
    apr_pool_destroy(sub);  /* frees the entries: checked by valgrind */
}
