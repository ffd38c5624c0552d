/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_SCHED_H
#define TB_SCHED_H

#include <apr.h>
#include <apr_time.h>

/* The scheduler's shared state: one table in memory shared by every
 * process and thread of a host (in httpd, anonymous shared memory made in
 * the parent and inherited by the children; in the unit tests, any
 * memory). Per upstream account, in a slot found by the account's id (so
 * a slot outlives catalogue reloads and graceful restarts):
 *   - requests in flight, against the account's max_concurrency;
 *   - its health: a cooldown of the whole account (quota, connection
 *     failures), cooldowns per (account, model) (rate limits, 5xx,
 *     timeouts), and the error mark (the upstream refused the credential)
 *     that only an operator clears;
 *   - counters for the status page.
 * Everything on the request path is lock-free: leases are compare-and-
 * swap on the in-flight count, health is read under a sequence lock;
 * only a health change takes the slot's writer lock, briefly.
 *
 * Leases are also counted per process, so the leases of a process that
 * died holding them (a crash, a kill) can be given back by the parent
 * (tb_sched_proc_reap). A writer's lock names its pid: one that died
 * mid-write is taken over by whoever finds it dead, so a slot never
 * stays locked. */

typedef struct tb_sched_t tb_sched_t;

/* Per (account, model) cooldowns kept per account; the oldest goes. */
#define TB_SCHED_MODELS 8

/* What an attempt came to, as the scheduler learns it. */
typedef enum {
    TB_OUT_OK = 0,           /* an answer was relayed */
    TB_OUT_RATE_LIMITED,     /* 429: (account, model) cools for Retry-After */
    TB_OUT_QUOTA,            /* quota or billing exhausted: the account, long */
    TB_OUT_AUTH,             /* 401/403: the account is marked error */
    TB_OUT_SERVER,           /* 5xx, 408, 409: (account, model), briefly */
    TB_OUT_TIMEOUT,          /* no answer in time: (account, model), briefly */
    TB_OUT_CONNECT,          /* no connection: the account, briefly */
    TB_OUT_STREAM,           /* a stream failed before content: (account,
                              * model), briefly */
    TB_OUT__COUNT
} tb_outcome_t;

/* The outcome's name for logs and the status page. */
const char *tb_outcome_name(tb_outcome_t out);

/* How long things cool. Repeated failures of the brief kinds double the
 * cooldown from `error` up to `error_max`; a success resets it. */
typedef struct tb_sched_policy_t {
    apr_interval_time_t rate_limit;     /* a 429 without Retry-After */
    apr_interval_time_t rate_limit_max; /* the most a Retry-After is honoured */
    apr_interval_time_t quota;
    apr_interval_time_t error;
    apr_interval_time_t error_max;
} tb_sched_policy_t;

/* ---- the table ---------------------------------------------------------- */

/* Bytes for a table of `slots` accounts and `procs` process rows. */
apr_size_t tb_sched_size(unsigned int slots, unsigned int procs);

/* A new, empty table in `mem` (at least tb_sched_size bytes, aligned for
 * 64-bit atomics); the memory is cleared. */
tb_sched_t *tb_sched_format(void *mem, unsigned int slots, unsigned int procs);

/* The table already in `mem` when it has this layout, else NULL (then
 * format a new one). */
tb_sched_t *tb_sched_open(void *mem, apr_size_t size, unsigned int slots,
                          unsigned int procs);

/* The slot of an account, claimed on first use; -1 when the table is
 * full (the account is then scheduled without shared state). */
int tb_sched_slot(tb_sched_t *s, int account_id);

/* ---- processes ---------------------------------------------------------- */

/* A row for the calling process (its pid); -1 when all are taken (its
 * leases are then not tracked per process). */
int tb_sched_proc_join(tb_sched_t *s, apr_uint32_t pid);

/* The process `pid` is gone: give back the leases it still held and free
 * its row. Returns the number of leases given back. */
unsigned int tb_sched_proc_reap(tb_sched_t *s, apr_uint32_t pid);

/* Is process `pid` still there (kill(pid, 0))? The `alive` of a sweep. */
int tb_sched_pid_alive(apr_uint32_t pid);

/* Calls `alive` for each process with a row; reaps those it says are
 * gone. Returns the number of leases given back. */
unsigned int tb_sched_proc_sweep(tb_sched_t *s, int (*alive)(apr_uint32_t pid));

/* ---- choosing an account ------------------------------------------------ */

/* An account able to serve the request. */
typedef struct tb_sched_cand_t {
    int slot;                /* its slot, or -1: no shared state (always
                              * healthy, no limit) */
    int priority;            /* higher tier first */
    unsigned int weight;     /* share inside the tier; 0 takes no traffic */
    unsigned int limit;      /* max_concurrency, 0 unlimited */
} tb_sched_cand_t;

typedef enum {
    TB_PICK_PREFERRED,       /* the caller's preferred candidate (sticky) */
    TB_PICK_HEALTHY,         /* a healthy one with a free slot */
    TB_PICK_RECOVERING,      /* none is healthy: the first to recover */
    TB_PICK_FULL,            /* those that could serve are at their limit:
                              * wait and try again */
    TB_PICK_NONE             /* nothing left to try */
} tb_pick_t;

typedef struct tb_sched_want_t {
    apr_uint32_t model;      /* tb_sched_model_hash of the canonical model */
    int preferred;           /* a candidate to try first, or -1 */
    int strict;              /* the preferred one even while it cools (it
                              * alone holds what the request refers to) */
    apr_time_t now;
    apr_uint32_t rnd;        /* a random number for the weighted choice */
} tb_sched_want_t;

/* Choose among the candidates not excluded (excluded[i] 0 or 1: the pick
 * uses bit 0x80 of each flag while it runs and leaves the array as it
 * found it), and take a lease on the chosen one's slot (release it
 * with tb_sched_release). In order: the preferred candidate when it is
 * healthy with a free slot; the highest priority tier that has a healthy
 * candidate with a free slot, weighted random inside it; when no
 * candidate is healthy, the one whose cooldown ends first. A strict
 * preference is the only choice: taken even while it cools, FULL while
 * it is at its limit, NONE once it is excluded or marked error. *pidx
 * gets the index for PREFERRED, HEALTHY and RECOVERING. With s NULL every
 * candidate is healthy and unlimited. */
tb_pick_t tb_sched_pick(tb_sched_t *s, int proc, const tb_sched_cand_t *cands,
                        int n, unsigned char *excluded,
                        const tb_sched_want_t *want, int *pidx);

/* Give back a lease taken by tb_sched_pick. */
void tb_sched_release(tb_sched_t *s, int slot, int proc);

/* The 32-bit hash that stands for a model in the table (never 0). */
apr_uint32_t tb_sched_model_hash(const char *model);

/* ---- health ------------------------------------------------------------- */

/* Learn how an attempt on a slot, begun at `started`, ended. `status` is
 * the upstream's HTTP status (0 when none), `retry_after` what the
 * upstream asked for (-1 when nothing). A cooldown never shortens one
 * already running; a success clears only cooldowns set before its
 * attempt began. Returns how long the account or the pair now cools
 * (the longer cooldown where one stands; 0: none); -1 when this report marked the account error (so that
 * exactly one caller acts on a new mark). */
apr_interval_time_t tb_sched_report(tb_sched_t *s, int slot, apr_uint32_t model,
                                    tb_outcome_t out, int status,
                                    apr_interval_time_t retry_after,
                                    const tb_sched_policy_t *pol,
                                    apr_time_t started, apr_time_t now);

/* Clear the error mark when it was set at or before `before` (an
 * operator re-enabled the account since). Returns 1 when a mark went. */
int tb_sched_clear_error(tb_sched_t *s, int slot, apr_time_t before);

/* One cooldown. */
typedef struct tb_sched_cool_t {
    apr_uint32_t model;      /* 0 for the whole account */
    apr_time_t until;
    tb_outcome_t reason;
    int status;              /* the HTTP status behind it, or 0 */
    unsigned int streak;     /* failures in a row */
} tb_sched_cool_t;

/* A consistent copy of a slot, for the status page. */
typedef struct tb_sched_view_t {
    int account_id;
    unsigned int in_flight;
    apr_time_t error_at;     /* the error mark, 0 none */
    int error_status;
    tb_sched_cool_t account; /* the account's own cooldown (until 0: none) */
    tb_sched_cool_t models[TB_SCHED_MODELS]; /* model 0: unused */
    apr_uint64_t successes, failures;
    apr_time_t last_success, last_failure;
    tb_outcome_t last_outcome;   /* of the last failure */
    int last_status;             /* ... and its HTTP status */
} tb_sched_view_t;

/* APR_NOTFOUND when the slot is not in use. */
apr_status_t tb_sched_view(tb_sched_t *s, int slot, tb_sched_view_t *v);

/* Successes and failures of a slot in the last five minutes and the
 * current one (approximate: for the status page). */
#define TB_SCHED_RECENT_SECONDS 300
void tb_sched_recent(tb_sched_t *s, int slot, apr_time_t now,
                     apr_uint64_t *pok, apr_uint64_t *pfailed);

/* When a candidate can next be used for `model` (0 when it can now;
 * APR_INT64_MAX when marked error). */
apr_time_t tb_sched_ready_at(tb_sched_t *s, int slot, apr_uint32_t model,
                             apr_time_t now);

#endif /* TB_SCHED_H */
