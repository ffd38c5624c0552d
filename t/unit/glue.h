#ifndef TB_GLUE_H
#define TB_GLUE_H
/* What t/unit/tb_glue puts around the httpd glue it tests
 * (src/mod_tokenbay_state.c and src/mod_tokenbay_config.c): httpd's
 * functions as stubs that capture the log (glue_stubs.c), a database that
 * the test scripts (glue_db.c), and servers and requests just complete
 * enough for that code. Each suite runs in a process of its own (the
 * runner forks), so the log, the database and the module's per-process
 * globals start afresh for every suite. */
#include <httpd.h>
#include <http_log.h>

#include "mod_tokenbay_config.h"

/* ---- the log (glue_stubs.c) --------------------------------------------- */

/* Lines the module logged with the tag TB<tag>, at `max_level` or more
 * severe (APLOG_TRACE8: any level). Every server logs at TRACE8, so
 * nothing is filtered out before it gets here. */
int glue_log_count(int tag, int max_level);

/* Waits up to `ms` for that count to reach `n`; returns the count (for
 * lines a background thread logs). */
int glue_log_wait(int tag, int max_level, int n, int ms);

/* ---- the database (glue_db.c) ------------------------------------------- */

/* Every key the fake database is asked for exists (key_id: the last 8
 * hex digits of its digest), active or not as glue_db_set_active says.
 * Each catalogue it builds has one model, "load-<n>" for the n-th
 * successful load, so that a test can tell snapshots apart. */
typedef enum {
    GLUE_KEY_LOOKUP,        /* tb_db_key_lookup: requests */
    GLUE_KEYS_LOOKUP,       /* tb_db_keys_lookup: the keeper's batches */
    GLUE_CATALOG_LOAD,      /* tb_db_catalog_load: either */
    GLUE_CALLS
} glue_call_t;

/* Down: no connection, every call APR_ECONNREFUSED (what mod_dbd's
 * glue says when it cannot get one). */
void glue_db_set_down(int down);
/* A connection, but each query fails: APR_EGENERAL. */
void glue_db_set_query_error(int error);
void glue_db_set_active(int active);

/* Calls made so far, counted as they start (held ones included). */
int glue_db_calls(glue_call_t call);

/* While held, key lookups wait inside the database (in flight, not
 * answered yet); they answer when released, as the database is then:
 * hold, let requests in, set it down, release, and they all fail at
 * once. A call held (or parked, below) goes on by itself after 10 s, so
 * that a test the module does not follow fails instead of hanging. */
void glue_db_hold(int hold);
/* Waits up to `ms` for `n` key lookups to be held; returns how many are. */
int glue_db_wait_held(int n, int ms);

/* While parked, every call the keeper thread makes (any thread that is
 * not a request's) waits inside the database, holding no lock of the
 * module's but st->refresh when it is a catalogue load: only the request
 * path acts, as with a keeper stuck on a database that does not answer. */
void glue_db_park_keeper(int park);
/* Waits up to `ms` for the keeper to be parked; 1 if it is. */
int glue_db_wait_keeper_parked(int ms);

/* Marks the calling thread as a request thread (glue_request does). */
void glue_db_request_thread(void);

/* ---- servers and requests (glue_stubs.c) --------------------------------- */

typedef struct glue_t {
    apr_pool_t *pool;       /* the suite's: servers, configuration */
    apr_pool_t *pchild;     /* the "child process": state and keeper */
    server_rec *s;          /* the main server, vhosts on s->next */
} glue_t;

/* A main server (g->s) or, once there is one, a vhost after the last
 * server, with a fresh tb_srv_conf_t (all unset: the defaults) that the
 * test sets fields of directly, as the directives would. */
server_rec *glue_server(glue_t *g);

/* child_init for all servers, in a new g->pchild (starts the keeper). */
apr_status_t glue_child_init(glue_t *g);

/* The end of the child: releases whatever the database holds (requests
 * and the keeper), then destroys g->pchild, which stops the keeper. */
void glue_finish(glue_t *g);

/* A request to server s, in a pool of its own (unmanaged, so any thread
 * may make one); the calling thread becomes a request thread. */
request_rec *glue_request(server_rec *s);
void glue_request_done(request_rec *r);

/* A key's digest: 64 hex digits ending in n. */
const char *glue_hash(apr_pool_t *p, unsigned int n);

#endif
