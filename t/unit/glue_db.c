/* A database for src/mod_tokenbay_state.c that the test scripts: the
 * three functions of src/mod_tokenbay_db.h it calls, answering as the
 * test says (up, down, failing queries, keys active or not), counting the
 * calls, and holding them in flight when asked. See glue.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "mod_tokenbay_db.h"
#include "glue.h"

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;  /* any of db */

static struct {
    int down;
    int query_error;
    int active;
    int hold;               /* key lookups wait while set */
    int held;               /* key lookups waiting */
    int park;               /* the keeper's calls wait while set */
    int parked;             /* the keeper's calls waiting */
    int calls[GLUE_CALLS];
    int loads;              /* catalogues built */
} db = { 0, 0, 1, 0, 0, 0, 0, { 0 }, 0 };

/* NB: per thread: the keeper is the one thread of the process that
 * makes no request (see glue_request) */
static __thread int request_thread;

void glue_db_request_thread(void)
{
    request_thread = 1;
}

static void set(int *field, int value)
{
    pthread_mutex_lock(&mutex);
    *field = value;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mutex);
}

void glue_db_set_down(int down)
{
    set(&db.down, down);
}

void glue_db_set_query_error(int error)
{
    set(&db.query_error, error);
}

void glue_db_set_active(int active)
{
    set(&db.active, active);
}

void glue_db_hold(int hold)
{
    set(&db.hold, hold);
}

void glue_db_park_keeper(int park)
{
    set(&db.park, park);
}

int glue_db_calls(glue_call_t call)
{
    int n;

    pthread_mutex_lock(&mutex);
    n = db.calls[call];
    pthread_mutex_unlock(&mutex);
    return n;
}

/* A held or parked call goes on by itself after this long: a test whose
 * code under test does not do what it expects then fails, not hangs. */
#define HOLD_MAX_MS 10000

static struct timespec deadline(int ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        ++until.tv_sec;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/* Waits under the mutex, up to `ms`, for *field to reach n; returns it. */
static int wait_for(const int *field, int n, int ms)
{
    struct timespec until = deadline(ms);
    int have;

    pthread_mutex_lock(&mutex);
    while (*field < n
           && pthread_cond_timedwait(&changed, &mutex, &until) == 0) {
    }
    have = *field;
    pthread_mutex_unlock(&mutex);
    return have;
}

int glue_db_wait_held(int n, int ms)
{
    return wait_for(&db.held, n, ms);
}

int glue_db_wait_keeper_parked(int ms)
{
    return wait_for(&db.parked, 1, ms) >= 1;
}

/* A call arrives, under the mutex: counted, parked or held as the test
 * says, then answered as the database is by then. */
static apr_status_t enter(glue_call_t call)
{
    struct timespec until = deadline(HOLD_MAX_MS);

    ++db.calls[call];
    if (!request_thread && db.park) {
        ++db.parked;
        pthread_cond_broadcast(&changed);
        while (db.park
               && pthread_cond_timedwait(&changed, &mutex, &until) == 0) {
        }
        --db.parked;
    }
    if (call == GLUE_KEY_LOOKUP && db.hold) {
        ++db.held;
        pthread_cond_broadcast(&changed);
        while (db.hold
               && pthread_cond_timedwait(&changed, &mutex, &until) == 0) {
        }
        --db.held;
    }
    return db.down ? APR_ECONNREFUSED
         : db.query_error ? APR_EGENERAL : APR_SUCCESS;
}

static void key_of(const char *hash, int active, tb_keyinfo_t *info)
{
    size_t len = strlen(hash);

    memset(info, 0, sizeof(*info));
    info->found = 1;
    info->key_id = strtol(hash + (len > 8 ? len - 8 : 0), NULL, 16);
    info->name = "glue";
    info->prefix = "tb-glue";
    info->last4 = "0000";
    info->key_active = active;
    info->group_id = 1;
    info->group_name = "default";
    info->group_active = 1;
}

apr_status_t tb_db_key_lookup(server_rec *s, apr_pool_t *p, const char *hash,
                              tb_keyinfo_t *info)
{
    apr_status_t rv;

    pthread_mutex_lock(&mutex);
    if ((rv = enter(GLUE_KEY_LOOKUP)) == APR_SUCCESS) {
        key_of(hash, db.active, info);
    }
    pthread_mutex_unlock(&mutex);
    return rv;
}

apr_status_t tb_db_keys_lookup(server_rec *s, apr_pool_t *p,
                               const char *const *hashes, int n,
                               tb_db_key_cb *cb, void *ctx)
{
    apr_status_t rv;
    tb_keyinfo_t info;
    int i, active;

    pthread_mutex_lock(&mutex);
    rv = enter(GLUE_KEYS_LOOKUP);
    active = db.active;
    pthread_mutex_unlock(&mutex);
    /* the callback takes the key cache's lock: not under ours */
    for (i = 0; rv == APR_SUCCESS && i < n; ++i) {
        key_of(hashes[i], active, &info);
        cb(ctx, hashes[i], &info);
    }
    return rv;
}

apr_status_t tb_db_catalog_load(server_rec *s, apr_pool_t *p, apr_pool_t *cp,
                                tb_catalog_t **pcat)
{
    apr_status_t rv;
    int load = 0;

    pthread_mutex_lock(&mutex);
    if ((rv = enter(GLUE_CATALOG_LOAD)) == APR_SUCCESS) {
        load = ++db.loads;
    }
    pthread_mutex_unlock(&mutex);
    if (rv == APR_SUCCESS
        && (rv = tb_catalog_create(pcat, cp)) == APR_SUCCESS) {
        tb_catalog_add_model(*pcat, apr_psprintf(cp, "load-%d", load),
                             "glue", 0);
    }
    return rv;
}

apr_status_t tb_db_account_mark_error(server_rec *s, apr_pool_t *p,
                                      int account_id, const char *reason)
{
    (void)s;
    (void)p;
    (void)account_id;
    (void)reason;
    return APR_SUCCESS;
}
