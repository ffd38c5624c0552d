/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_SHARED_H
#define MOD_TOKENBAY_SHARED_H

#include <httpd.h>

#include "tb_sched.h"

/* What the processes of one host share:
 *   - the scheduler's table (tb_sched.h): requests in flight per account,
 *     cooldowns, error marks. Anonymous shared memory made by the parent
 *     in post_config and kept in the process pool, so that it outlives
 *     graceful restarts (cooldowns and error marks are kept); children
 *     inherit it. The parent gives back the leases of a child that died
 *     holding them (the child_status hook).
 *   - the sticky maps (response id -> account, session -> account) in a
 *     mod_socache provider (TokenBayStickyCache): shmcb on one host,
 *     redis or memcache when several hosts share the load.
 * Cooldowns, error marks and slots are per host; the error mark is also
 * written to the database (tb_accounts.status = 'error'), so every host
 * stops using the account at its next catalogue reload. */

/* post_config (the real pass) and child_init. */
int tb_shared_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void tb_shared_child_init(apr_pool_t *pchild, server_rec *s);
void tb_shared_register_hooks(apr_pool_t *p);

/* The table, NULL when none could be made (the gateway then schedules
 * without limits or health, and said so at start-up). */
tb_sched_t *tb_shared_sched(void);

/* The slot of an account in the table, -1 for none. */
int tb_shared_slot(int account_id);

/* The scheduling policy of a server (its cooldown directives). */
void tb_shared_policy(server_rec *s, tb_sched_policy_t *pol);

/* A lease on an account's slot, taken by tb_sched_pick, given back when
 * r->pool is cleaned up, or earlier with tb_shared_lease_end (failover). */
typedef struct tb_lease_t tb_lease_t;
tb_lease_t *tb_shared_lease(request_rec *r, int slot);
void tb_shared_lease_end(request_rec *r, tb_lease_t *lease);

/* The process's row in the table (for tb_sched_pick), -1 for none. */
int tb_shared_proc(void);

/* ---- sticky maps ---------------------------------------------------------- */

/* The account remembered under `key`, or 0, and when it was stored
 * (*pstored, when not NULL). What the shared cache says is memoised per
 * process for a second (and its "nothing" too, with memo_miss). Never
 * fails the request: a cache that cannot answer answers nothing. */
int tb_sticky_get(request_rec *r, const char *key, int memo_miss,
                  apr_time_t *pstored);

/* Remember `account_id` under `key` for `ttl`. */
void tb_sticky_set(request_rec *r, const char *key, int account_id,
                   apr_interval_time_t ttl);

/* The provider's name for the status page ("shmcb", ...), or NULL. */
const char *tb_sticky_provider(void);

#endif /* MOD_TOKENBAY_SHARED_H */
