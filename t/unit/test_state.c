/* src/mod_tokenbay_state.c, the per-process state of the httpd glue: the
 * key lookups on the request path (the TTL, the stale TTL, the back-off
 * shared by the threads while the database is down, the cap on lookups
 * in flight), the catalogue snapshots, and the 503s of a process that has
 * no state. Against the scripted database of glue_db.c; time runs for
 * real, with TTLs of milliseconds.
 *
 * The keeper thread (child_init starts it) acts on its own timer. Where
 * it is not the subject it is kept out of the way: either it has nothing
 * to do (the catalogue loaded, no key near its TTL), or it is parked in
 * its first database call (glue_db_park_keeper), so that the back-off
 * gate is the request path's alone and the calls counted are the
 * requests'. */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_state.h"
#include "glue.h"
/* NB: httpd.h's OK (a hook's "handled") is not needed here; tb_unit.h's
 * check macro takes the name */
#undef OK
#include "tb_unit.h"

/* As in mod_tokenbay_state.c: lookups in flight per process
 * (SYNC_LOOKUPS_MAX), and the first back-off, 500 ms +-25 %
 * (BACKOFF_FIRST): 625 ms at the most. */
#define LOOKUPS_MAX 8
#define BACKOFF_FIRST_MAX apr_time_from_msec(625)

/* How long a test waits for what another thread does before it fails
 * the check (not a delay: waits end as soon as it happened). */
#define PATIENCE_MS 5000

#define MS(n) apr_time_from_msec(n)

/* ---- requests ----------------------------------------------------------- */

/* What one key lookup of a request came to. */
typedef struct seen_t {
    apr_status_t rv;
    int found;
    long key_id;
    int active;
    int stale;              /* the note TOKENBAY_KEY_STALE was set */
} seen_t;

static seen_t lookup(server_rec *s, const char *hash)
{
    request_rec *r = glue_request(s);
    tb_keyinfo_t info;
    seen_t seen;

    memset(&info, 0, sizeof(info));
    seen.rv = tb_state_key_lookup(r, hash, &info);
    seen.found = info.found;
    seen.key_id = info.key_id;
    seen.active = info.key_active;
    seen.stale = apr_table_get(r->notes, "TOKENBAY_KEY_STALE") != NULL;
    glue_request_done(r);
    return seen;
}

/* The error a request gets for status rv. */
static tb_error_t unavailable(server_rec *s, apr_status_t rv)
{
    request_rec *r = glue_request(s);
    tb_error_t err;

    memset(&err, 0, sizeof(err));
    tb_state_unavailable_error(r, rv, &err);
    glue_request_done(r);
    return err;
}

static int key_calls(void)
{
    return glue_db_calls(GLUE_KEY_LOOKUP);
}

/* Sleeps until `t` (at once when it is past). */
static void sleep_until(apr_time_t t)
{
    apr_time_t now = apr_time_now();

    if (t > now) {
        apr_sleep(t - now);
    }
}

/* Lookups on threads of their own, as concurrent requests. */
typedef struct lookup_thread_t {
    apr_thread_t *thread;
    server_rec *s;
    const char *hash;
    seen_t seen;
    volatile apr_uint32_t *finished;    /* lookups done, of the batch */
} lookup_thread_t;

static void *APR_THREAD_FUNC lookup_main(apr_thread_t *t, void *data)
{
    lookup_thread_t *l = data;

    l->seen = lookup(l->s, l->hash);
    apr_atomic_inc32(l->finished);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Starts n lookups of the keys first, first + 1, ...; returns how many
 * threads started. */
static int start_lookups(lookup_thread_t *l, int n, server_rec *s,
                         unsigned int first, volatile apr_uint32_t *finished,
                         apr_pool_t *p)
{
    int i;

    *finished = 0;
    for (i = 0; i < n; ++i) {
        l[i].s = s;
        l[i].hash = glue_hash(p, first + (unsigned int)i);
        l[i].finished = finished;
        l[i].seen.rv = APR_EGENERAL;
        if (apr_thread_create(&l[i].thread, NULL, lookup_main, &l[i], p)
            != APR_SUCCESS) {
            break;
        }
    }
    return i;
}

static void join_lookups(lookup_thread_t *l, int n)
{
    apr_status_t rv;
    int i;

    for (i = 0; i < n; ++i) {
        apr_thread_join(&rv, l[i].thread);
    }
}

static int count_status(const lookup_thread_t *l, int n, apr_status_t rv)
{
    int i, k = 0;

    for (i = 0; i < n; ++i) {
        k += l[i].seen.rv == rv;
    }
    return k;
}

/* Waits up to `ms` for *c to reach n; returns it. */
static int wait_count(volatile apr_uint32_t *c, int n, int ms)
{
    apr_time_t until = apr_time_now() + MS(ms);

    while ((int)apr_atomic_read32(c) < n && apr_time_now() < until) {
        apr_sleep(MS(1));
    }
    return (int)apr_atomic_read32(c);
}

static int child_init(glue_t *g, const char *suite)
{
    apr_status_t rv = glue_child_init(g);

    OK(rv == APR_SUCCESS, "state %s: child_init sets the process up (%d)",
       suite, rv);
    return rv == APR_SUCCESS;
}

/* Parks the keeper in its first database call, after one request has
 * shown it the server (it ignores servers no request has used). */
static void park_keeper(glue_t *g, apr_pool_t *p, const char *suite)
{
    glue_db_park_keeper(1);
    lookup(g->s, glue_hash(p, 0xffff));
    OK(glue_db_wait_keeper_parked(PATIENCE_MS),
       "state %s: the keeper is parked in a database call: only the "
       "request path acts", suite);
}

/* ---- the back-off ------------------------------------------------------- */

/* The requests in flight when the database goes are one failure, not N:
 * the back-off starts at its first step, and is over when it says. */
void test_state_backoff(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    lookup_thread_t l[LOOKUPS_MAX];
    volatile apr_uint32_t finished;
    const tb_catalog_t *cat;
    request_rec *r;
    tb_error_t err;
    seen_t seen;
    apr_time_t failed_at;
    int i, started, held, calls, again;

    glue_server(&g);
    if (!child_init(&g, "backoff")) {
        glue_finish(&g);
        return;
    }
    /* the catalogue loaded, the TTLs at their defaults: nothing for the
     * keeper to do in the few seconds this takes */
    r = glue_request(g.s);
    OK(tb_state_catalog(r, &cat) == APR_SUCCESS && cat,
       "state backoff: the catalogue loads while the database is up");
    glue_request_done(r);
    seen = lookup(g.s, glue_hash(p, 1));
    OK(seen.rv == APR_SUCCESS && seen.found && seen.key_id == 1,
       "state backoff: a key is looked up while the database is up");

    /* the database goes while LOOKUPS_MAX lookups are in it */
    glue_db_hold(1);
    started = start_lookups(l, LOOKUPS_MAX, g.s, 100, &finished, p);
    held = glue_db_wait_held(LOOKUPS_MAX, PATIENCE_MS);
    glue_db_set_down(1);
    glue_db_hold(0);
    join_lookups(l, started);
    failed_at = apr_time_now();
    OK(held == LOOKUPS_MAX,
       "state backoff: %d lookups are in the database at the same moment "
       "(%d)", LOOKUPS_MAX, held);
    OK(count_status(l, started, APR_ECONNREFUSED) == LOOKUPS_MAX,
       "state backoff: all of them fail: the database cannot be reached "
       "(%d of %d)", count_status(l, started, APR_ECONNREFUSED),
       LOOKUPS_MAX);
    OK(glue_log_count(13, APLOG_TRACE8) == 1,
       "state backoff: TB13 (database unavailable) is logged once, not "
       "once per failed lookup (%d)", glue_log_count(13, APLOG_TRACE8));
    err = unavailable(g.s, APR_EAGAIN);
    OK(err.status == HTTP_SERVICE_UNAVAILABLE && err.retry_after == 1,
       "state backoff: the 503 says Retry-After 1 s, the first back-off, "
       "not one moved on by each failure (%d, %ld s)", err.status,
       err.retry_after);

    calls = key_calls();
    for (i = 0, again = 0; i < 3; ++i) {
        again += lookup(g.s, glue_hash(p, 200 + i)).rv == APR_EAGAIN;
    }
    OK(again == 3, "state backoff: while backing off, unknown keys get "
       "APR_EAGAIN (%d of 3)", again);
    OK(key_calls() == calls, "state backoff: ... without a call to the "
       "database (%d)", key_calls() - calls);
    seen = lookup(g.s, glue_hash(p, 1));
    OK(seen.rv == APR_SUCCESS && seen.active && !seen.stale,
       "state backoff: a key confirmed within the TTL is served meanwhile");

    /* once the back-off is over, requests arrive together: one of them
     * probes (held in the database), the rest are told to come back */
    sleep_until(failed_at + BACKOFF_FIRST_MAX + MS(25));
    calls = key_calls();
    glue_db_hold(1);
    started = start_lookups(l, 4, g.s, 300, &finished, p);
    held = glue_db_wait_held(1, PATIENCE_MS);
    wait_count(&finished, started - 1, PATIENCE_MS);
    again = count_status(l, started, APR_EAGAIN);
    OK(held == 1 && key_calls() - calls == 1,
       "state backoff: after the back-off one probe goes to the database, "
       "however many requests arrive (%d calls for %d requests)",
       key_calls() - calls, started);
    OK(again == started - 1, "state backoff: the other requests get "
       "APR_EAGAIN while it probes (%d of %d)", again, started - 1);
    glue_db_set_down(0);
    glue_db_hold(0);
    join_lookups(l, started);
    OK(count_status(l, started, APR_SUCCESS) == 1,
       "state backoff: the probe's request gets its key when the database "
       "answers");
    OK(glue_log_count(14, APLOG_TRACE8) == 1,
       "state backoff: the successful probe logs TB14 (reachable again)");
    calls = key_calls();
    seen = lookup(g.s, glue_hash(p, 400));
    OK(seen.rv == APR_SUCCESS && seen.found && key_calls() - calls == 1,
       "state backoff: then the next unknown key is looked up at once");
    OK(glue_log_count(13, APLOG_TRACE8) == 1,
       "state backoff: TB13 was logged once for the whole outage");
    glue_finish(&g);
}

/* ---- keys are confirmed within TokenBayKeyCacheTTL ----------------------- */

/* With the keeper at work: it confirms the keys in use before they reach
 * the TTL (at half of it, every quarter of it), so a key disabled in the
 * database is refused within the TTL and no request waits for it. */
#define TTL_KEEPER_MS 500

void test_state_ttl(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    tb_srv_conf_t *sc;
    const char *key = glue_hash(p, 1);
    apr_time_t disabled_at;
    seen_t seen;
    int calls;

    sc = tb_conf_srv(glue_server(&g));
    sc->key_cache_ttl = MS(TTL_KEEPER_MS);
    if (!child_init(&g, "ttl")) {
        glue_finish(&g);
        return;
    }
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.found && seen.active
       && key_calls() == 1,
       "state ttl: an active key is looked up in the database");
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.active && key_calls() == 1,
       "state ttl: within the TTL it comes from the cache");

    glue_db_set_active(0);
    disabled_at = apr_time_now();
    calls = key_calls();
    sleep_until(disabled_at + MS(TTL_KEEPER_MS) + MS(TTL_KEEPER_MS / 4));
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.found && !seen.active,
       "state ttl: disabled in the database, the key is refused once its "
       "entry is older than TokenBayKeyCacheTTL (key_active=%d)",
       seen.active);
    OK(!seen.stale, "state ttl: ... and not served stale: the database is "
       "up");
    OK(glue_db_calls(GLUE_KEYS_LOOKUP) > 0 && key_calls() == calls,
       "state ttl: the keeper confirmed it in the background: the request "
       "did not wait for the database (%d batches, %d key lookups)",
       glue_db_calls(GLUE_KEYS_LOOKUP), key_calls() - calls);
    glue_finish(&g);
}

/* A request past the TTL asks the database itself when the keeper is
 * stuck, or not there at all. */
#define TTL_MS 100

/* What the lookup in a forked process saw. */
typedef struct forked_t {
    seen_t seen;
    int calls;              /* key lookups it made */
} forked_t;

/* Looks `hash` up at `when` in a process forked off this one: fork keeps
 * the calling thread only, so there the keeper does not exist. It must
 * be parked (then it holds none of the module's locks, and the copy is
 * consistent). 1 if the process reported. */
static int lookup_in_fork(server_rec *s, const char *hash, apr_time_t when,
                          forked_t *out)
{
    int fds[2], status;
    ssize_t n;
    pid_t pid;

    if (pipe(fds) < 0) {
        return 0;
    }
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        forked_t f;
        int calls;

        close(fds[0]);
        memset(&f, 0, sizeof(f));   /* the padding goes down the pipe too */
        sleep_until(when);
        calls = key_calls();
        f.seen = lookup(s, hash);
        f.calls = key_calls() - calls;
        /* NB: no cleanups here: the keeper a pool cleanup would stop is
         * the parent's */
        _exit(write(fds[1], &f, sizeof(f)) == (ssize_t)sizeof(f) ? 0 : 1);
    }
    close(fds[1]);
    do {
        n = read(fds[0], out, sizeof(*out));
    } while (n < 0 && errno == EINTR);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return n == (ssize_t)sizeof(*out) && WIFEXITED(status)
           && WEXITSTATUS(status) == 0;
}

void test_state_ttl_no_keeper(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    tb_srv_conf_t *sc;
    const char *key = glue_hash(p, 1);
    const tb_catalog_t *cat;
    request_rec *r;
    apr_time_t cached_at;
    forked_t forked;
    seen_t seen;
    int calls, reported;

    sc = tb_conf_srv(glue_server(&g));
    sc->key_cache_ttl = MS(TTL_MS);
    glue_db_park_keeper(1);
    if (!child_init(&g, "ttl_no_keeper")) {
        glue_finish(&g);
        return;
    }
    /* the catalogue from a request: the keeper's first call is then the
     * batch that would confirm the key, and there it gets stuck */
    r = glue_request(g.s);
    OK(tb_state_catalog(r, &cat) == APR_SUCCESS && cat,
       "state ttl_no_keeper: the catalogue loads");
    glue_request_done(r);
    seen = lookup(g.s, key);
    cached_at = apr_time_now();
    OK(seen.rv == APR_SUCCESS && seen.active && key_calls() == 1,
       "state ttl_no_keeper: an active key is looked up in the database");
    glue_db_set_active(0);
    OK(glue_db_wait_keeper_parked(PATIENCE_MS)
       && glue_db_calls(GLUE_KEYS_LOOKUP) == 1,
       "state ttl_no_keeper: the keeper is stuck in its batch query (a "
       "database that does not answer it)");

    sleep_until(cached_at + MS(TTL_MS) + MS(TTL_MS / 4));
    calls = key_calls();
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.found && !seen.active,
       "state ttl_no_keeper: past the TTL the request sees the key "
       "disabled (key_active=%d)", seen.active);
    OK(key_calls() - calls == 1 && !seen.stale,
       "state ttl_no_keeper: ... having looked it up itself, not served "
       "stale (%d calls)", key_calls() - calls);
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && !seen.active && key_calls() - calls == 1,
       "state ttl_no_keeper: that answer is cached in turn");

    /* the same where the keeper does not run at all */
    glue_db_set_active(1);
    key = glue_hash(p, 2);
    seen = lookup(g.s, key);
    cached_at = apr_time_now();
    glue_db_set_active(0);
    OK(seen.rv == APR_SUCCESS && seen.active,
       "state ttl_no_keeper: another active key is looked up");
    memset(&forked, 0, sizeof(forked));
    reported = lookup_in_fork(g.s, key,
                              cached_at + MS(TTL_MS) + MS(TTL_MS / 4),
                              &forked);
    OK(reported, "state ttl_no_keeper: a process forked off, without the "
       "keeper thread, looks it up past the TTL");
    OK(reported && forked.seen.rv == APR_SUCCESS && forked.seen.found
       && !forked.seen.active && forked.calls == 1 && !forked.seen.stale,
       "state ttl_no_keeper: there too the request asks the database and "
       "sees the key disabled (key_active=%d, %d calls)",
       forked.seen.active, forked.calls);
    glue_finish(&g);
}

/* ---- stale keys: only while the database cannot confirm them ------------- */

#define STALE_KEY_TTL_MS 50
#define STALE_TTL_MS 250

void test_state_stale(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    tb_srv_conf_t *sc;
    const char *key = glue_hash(p, 1);
    apr_time_t cached_at;
    seen_t seen;
    int calls;

    sc = tb_conf_srv(glue_server(&g));
    sc->key_cache_ttl = MS(STALE_KEY_TTL_MS);
    sc->key_stale_ttl = MS(STALE_TTL_MS);
    if (!child_init(&g, "stale")) {
        glue_finish(&g);
        return;
    }
    park_keeper(&g, p, "stale");
    seen = lookup(g.s, key);
    cached_at = apr_time_now();
    OK(seen.rv == APR_SUCCESS && seen.found && seen.active,
       "state stale: a key is looked up while the database is up");

    glue_db_set_down(1);
    sleep_until(cached_at + 2 * MS(STALE_KEY_TTL_MS));
    calls = key_calls();
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.found && seen.key_id == 1
       && seen.active, "state stale: database down: the known key past its "
       "TTL is still served (status %d)", seen.rv);
    OK(seen.stale, "state stale: ... with the note TOKENBAY_KEY_STALE");
    OK(key_calls() - calls == 1 && glue_log_count(13, APLOG_TRACE8) == 1,
       "state stale: ... after one try that found the database down "
       "(%d calls, TB13 logged)", key_calls() - calls);

    calls = key_calls();
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.stale && key_calls() == calls,
       "state stale: while backing off, it is served stale without asking "
       "the database");
    seen = lookup(g.s, glue_hash(p, 2));
    OK(seen.rv == APR_EAGAIN && key_calls() == calls,
       "state stale: an unknown key gets APR_EAGAIN at once (status %d)",
       seen.rv);

    /* still within the first back-off (375 ms at the least) */
    sleep_until(cached_at + MS(STALE_TTL_MS) + MS(30));
    seen = lookup(g.s, key);
    OK(seen.rv == APR_EAGAIN && !seen.stale && key_calls() == calls,
       "state stale: past TokenBayKeyStaleTTL the known key is no longer "
       "served: APR_EAGAIN (status %d)", seen.rv);
    glue_finish(&g);
}

/* ---- a failed query is not an outage ------------------------------------- */

void test_state_query_error(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    tb_srv_conf_t *sc;
    const char *key = glue_hash(p, 1);
    tb_error_t err;
    seen_t seen;
    int calls;

    sc = tb_conf_srv(glue_server(&g));
    sc->key_cache_ttl = MS(STALE_KEY_TTL_MS);
    if (!child_init(&g, "query_error")) {
        glue_finish(&g);
        return;
    }
    park_keeper(&g, p, "query_error");
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.active,
       "state query_error: a key is looked up while queries work");
    apr_sleep(2 * MS(STALE_KEY_TTL_MS));

    glue_db_set_query_error(1);
    calls = key_calls();
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.found && seen.active && seen.stale
       && key_calls() - calls == 1,
       "state query_error: the query fails on a live connection: the known "
       "key past its TTL is served stale");
    seen = lookup(g.s, glue_hash(p, 2));
    OK(seen.rv == APR_EGENERAL && key_calls() - calls == 2,
       "state query_error: the gate stays open: the next unknown key goes "
       "to the database again (status %d, %d calls)", seen.rv,
       key_calls() - calls);
    seen = lookup(g.s, glue_hash(p, 3));
    OK(seen.rv == APR_EGENERAL && key_calls() - calls == 3,
       "state query_error: ... and the one after it");
    OK(glue_log_count(13, APLOG_TRACE8) == 0,
       "state query_error: no outage is logged (TB13)");
    err = unavailable(g.s, seen.rv);
    OK(err.status == HTTP_SERVICE_UNAVAILABLE && err.code
       && !strcmp(err.code, "database_unavailable"),
       "state query_error: the unknown key gets a 503 database_unavailable");

    glue_db_set_query_error(0);
    calls = key_calls();
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.active && !seen.stale
       && key_calls() - calls == 1,
       "state query_error: once queries work again the key is confirmed, "
       "no longer stale");
    glue_finish(&g);
}

/* ---- the cap on lookups in flight ----------------------------------------- */

void test_state_cap(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    lookup_thread_t l[LOOKUPS_MAX];
    volatile apr_uint32_t finished;
    const char *key = glue_hash(p, 1);
    tb_error_t err;
    seen_t seen;
    int started, held, calls;

    glue_server(&g);
    if (!child_init(&g, "cap")) {
        glue_finish(&g);
        return;
    }
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.active,
       "state cap: a key is looked up");

    glue_db_hold(1);
    started = start_lookups(l, LOOKUPS_MAX, g.s, 100, &finished, p);
    held = glue_db_wait_held(LOOKUPS_MAX, PATIENCE_MS);
    OK(held == LOOKUPS_MAX, "state cap: %d lookups of unknown keys are in "
       "the database (%d)", LOOKUPS_MAX, held);
    calls = key_calls();
    seen = lookup(g.s, glue_hash(p, 200));
    OK(seen.rv == APR_EBUSY && key_calls() == calls,
       "state cap: one more unknown key gets APR_EBUSY at once, without a "
       "call to the database (status %d)", seen.rv);
    err = unavailable(g.s, seen.rv);
    OK(err.status == HTTP_SERVICE_UNAVAILABLE && err.code
       && !strcmp(err.code, "database_unavailable") && err.message
       && strstr(err.message, "too many") && err.retry_after == 1,
       "state cap: its 503 database_unavailable says too many keys are "
       "being checked (%s)", err.message ? err.message : "no message");
    seen = lookup(g.s, key);
    OK(seen.rv == APR_SUCCESS && seen.active && key_calls() == calls,
       "state cap: a known key is served meanwhile");

    glue_db_hold(0);
    join_lookups(l, started);
    OK(count_status(l, started, APR_SUCCESS) == LOOKUPS_MAX,
       "state cap: the %d lookups in flight get their answers",
       LOOKUPS_MAX);
    calls = key_calls();
    seen = lookup(g.s, glue_hash(p, 201));
    OK(seen.rv == APR_SUCCESS && seen.found && key_calls() - calls == 1,
       "state cap: then the next unknown key is looked up (the refusal "
       "closed no gate)");
    OK(glue_log_count(13, APLOG_TRACE8) == 0,
       "state cap: no outage is logged (TB13)");
    glue_finish(&g);
}

/* ---- a process without state ---------------------------------------------- */

/* child_init failed (or never ran): no state in the server config. Every
 * gateway request gets a 503 and the process says why once. */
void test_state_no_state(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    lookup_thread_t l[4];
    volatile apr_uint32_t finished;
    const tb_catalog_t *cat;
    tb_keyinfo_t info;
    request_rec *r;
    tb_error_t err;
    int i, started, einit = 0;

    glue_server(&g);
    OK(tb_conf_srv(g.s)->state == NULL,
       "state no_state: the server has no state");
    started = start_lookups(l, 4, g.s, 1, &finished, p);
    join_lookups(l, started);
    for (i = 0; i < 10; ++i) {
        cat = (const tb_catalog_t *)p;   /* must be cleared */
        r = glue_request(g.s);
        einit += tb_state_key_lookup(r, glue_hash(p, 10), &info) == APR_EINIT;
        einit += tb_state_catalog(r, &cat) == APR_EINIT && cat == NULL;
        glue_request_done(r);
    }
    OK(count_status(l, started, APR_EINIT) == 4 && einit == 20,
       "state no_state: key lookups and the catalogue return APR_EINIT "
       "(%d of 24)", count_status(l, started, APR_EINIT) + einit);
    err = unavailable(g.s, APR_EINIT);
    OK(err.status == HTTP_SERVICE_UNAVAILABLE && err.type
       && !strcmp(err.type, "api_error") && err.code
       && !strcmp(err.code, "gateway_unavailable") && err.retry_after == 1,
       "state no_state: the error is a 503 gateway_unavailable, Retry-After "
       "1 s (%d %s)", err.status, err.code ? err.code : "(no code)");
    OK(glue_log_count(5, APLOG_TRACE8) == 1,
       "state no_state: TB5 is logged once, however many requests (%d)",
       glue_log_count(5, APLOG_TRACE8));
    OK(glue_db_calls(GLUE_KEY_LOOKUP) + glue_db_calls(GLUE_CATALOG_LOAD) == 0,
       "state no_state: the database is never asked");
    OK(tb_state_curl_pool() == NULL,
       "state no_state: there is no upstream handle pool either");
    glue_finish(&g);
}

/* ---- the catalogue --------------------------------------------------------- */

/* Which load of the fake database a catalogue is ("load-<n>"); 0 if none. */
static int load_of(const tb_catalog_t *cat)
{
    char name[16];
    int n;

    for (n = 1; cat && n < 1000; ++n) {
        apr_snprintf(name, sizeof(name), "load-%d", n);
        if (tb_catalog_resolve(cat, name)) {
            return n;
        }
    }
    return 0;
}

/* A catalogue request that ends at once: the load it got, 0 if none. */
static int catalog_load(server_rec *s, apr_status_t *prv)
{
    request_rec *r = glue_request(s);
    const tb_catalog_t *cat = NULL;
    int n;

    *prv = tb_state_catalog(r, &cat);
    n = load_of(cat);
    glue_request_done(r);
    return n;
}

#define CATALOG_TTL_MS 20

void test_state_catalog(apr_pool_t *p)
{
    glue_t g = { p, NULL, NULL };
    server_rec *s1, *s2;
    const tb_catalog_t *held_cat = NULL;
    request_rec *held;
    apr_time_t until, since;
    apr_status_t rv;
    tb_error_t err;
    int i, load, newer, same;

    s1 = glue_server(&g);
    s2 = glue_server(&g);   /* a vhost, with state of its own */
    /* an hour: the keeper wakes once a second and has nothing to reload */
    tb_conf_srv(s1)->catalog_ttl = apr_time_from_sec(3600);
    tb_conf_srv(s2)->catalog_ttl = apr_time_from_sec(3600);
    if (!child_init(&g, "catalog")) {
        glue_finish(&g);
        return;
    }

    /* held: a request that keeps its snapshot while newer ones come */
    held = glue_request(s1);
    rv = tb_state_catalog(held, &held_cat);
    OK(rv == APR_SUCCESS && load_of(held_cat) == 1
       && glue_db_calls(GLUE_CATALOG_LOAD) == 1,
       "state catalog: the first request gets the catalogue, loaded then "
       "(status %d)", rv);
    load = catalog_load(s1, &rv);
    OK(rv == APR_SUCCESS && load == 1 && glue_db_calls(GLUE_CATALOG_LOAD) == 1,
       "state catalog: within its TTL the next request gets the same, not "
       "reloaded");

    tb_conf_srv(s1)->catalog_ttl = MS(CATALOG_TTL_MS);
    apr_sleep(2 * MS(CATALOG_TTL_MS));
    newer = catalog_load(s1, &rv);
    OK(rv == APR_SUCCESS && newer > 1,
       "state catalog: past its TTL a request gets a newer one (load %d)",
       newer);
    OK(load_of(held_cat) == 1, "state catalog: the request holding the old "
       "one can still read it");
    glue_request_done(held);

    /* the database goes: reloads fail, the last snapshot stays */
    glue_db_set_down(1);
    apr_sleep(2 * MS(CATALOG_TTL_MS));
    load = catalog_load(s1, &rv);
    OK(rv == APR_SUCCESS && load == newer,
       "state catalog: a failed reload keeps serving the snapshot it had "
       "(load %d, had %d)", load, newer);
    OK(glue_log_wait(20, APLOG_WARNING, 1, PATIENCE_MS) == 1,
       "state catalog: TB20 (refresh failed) is logged as a warning");
    for (i = 0, same = 0; i < 5; ++i) {
        apr_sleep(2 * MS(CATALOG_TTL_MS));
        same += catalog_load(s1, &rv) == newer && rv == APR_SUCCESS;
    }
    OK(same == 5, "state catalog: and goes on serving it (%d of 5)", same);
    OK(glue_log_count(20, APLOG_WARNING) == 1,
       "state catalog: TB20 is a warning once, not at every retry (%d)",
       glue_log_count(20, APLOG_WARNING));

    /* a server that never had one */
    held = glue_request(s2);
    held_cat = (const tb_catalog_t *)p;  /* must be cleared */
    rv = tb_state_catalog(held, &held_cat);
    OK(rv != APR_SUCCESS && held_cat == NULL,
       "state catalog: a server with no catalogue yet, database down: the "
       "call fails (status %d)", rv);
    memset(&err, 0, sizeof(err));
    tb_state_unavailable_error(held, rv, &err);
    glue_request_done(held);
    OK(err.status == HTTP_SERVICE_UNAVAILABLE && err.code
       && !strcmp(err.code, "database_unavailable"),
       "state catalog: ... with a 503 database_unavailable");

    glue_db_set_down(0);
    since = apr_time_now();
    until = since + MS(PATIENCE_MS);
    while ((load = catalog_load(s2, &rv)) == 0 && apr_time_now() < until) {
        apr_sleep(MS(10));
    }
    OK(rv == APR_SUCCESS && load > newer,
       "state catalog: once the database is back, that server gets one "
       "after the back-off (%" APR_TIME_T_FMT " ms)",
       apr_time_as_msec(apr_time_now() - since));
    glue_finish(&g);
}
