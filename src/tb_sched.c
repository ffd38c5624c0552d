/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "tb_sched.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The table lives in memory shared by processes that may run different
 * builds during a graceful restart: its layout is versioned, and nothing
 * in it is a pointer. Atomics are the compiler's __atomic builtins (GCC
 * and Clang), which work on shared memory as on any other. */

#define MAGIC  0x54425343u   /* "TBSC" */
#define LAYOUT 3u

/* Recent outcomes: per-minute buckets, the last RECENT_MINUTES of them
 * summed (plus the current one's). */
#define RECENT_MINUTES 5
#define RECENT_BUCKETS (RECENT_MINUTES + 1)

#define LD32(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define LD64(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST32(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ST64(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* One cooldown: of the account (hash 0) or of one of its models. */
typedef struct cool_t {
    apr_uint32_t hash;       /* the model's, 0 for a free entry */
    apr_uint32_t reason;     /* tb_outcome_t */
    apr_uint32_t status;
    apr_uint32_t streak;
    apr_uint64_t until;      /* apr_time_t; 0 none */
    apr_uint64_t set_at;     /* when it was set: a success clears only
                              * what was set before its attempt began */
} cool_t;

typedef struct recent_t {
    apr_uint64_t minute;     /* which minute the counts are of */
    apr_uint32_t ok, failed;
} recent_t;

typedef struct slot_t {
    apr_uint32_t account_id; /* 0: free; claimed once, by compare-and-swap */
    apr_uint32_t in_flight;
    apr_uint32_t seq;        /* sequence lock over the health below: odd
                              * while a writer is at work */
    apr_uint32_t lock;       /* writers' lock: the writer's pid, 0 free */
    apr_uint64_t error_at;
    apr_uint32_t error_status;
    apr_uint32_t last_outcome;
    cool_t account;
    cool_t models[TB_SCHED_MODELS];
    /* statistics: plain atomics, outside the sequence lock */
    apr_uint64_t successes, failures, last_success, last_failure;
    apr_uint32_t last_status;
    apr_uint32_t pad;
    recent_t recent[RECENT_BUCKETS];
} slot_t;

typedef struct proc_t {
    apr_uint32_t pid;        /* 0: free */
    apr_uint32_t pad;
} proc_t;

struct tb_sched_t {
    apr_uint32_t magic, layout, nslots, nprocs;
    apr_uint64_t size;
    /* then slot_t[nslots], proc_t[nprocs], apr_uint32_t leases[nprocs][nslots] */
};

#define ALIGN8(n) (((n) + 7) & ~(apr_size_t)7)

static slot_t *slots(tb_sched_t *s)
{
    return (slot_t *)((char *)s + ALIGN8(sizeof(*s)));
}

static proc_t *procs(tb_sched_t *s)
{
    return (proc_t *)(slots(s) + s->nslots);
}

static apr_uint32_t *leases(tb_sched_t *s, int proc)
{
    return (apr_uint32_t *)(procs(s) + s->nprocs) + (apr_size_t)proc * s->nslots;
}

apr_size_t tb_sched_size(unsigned int nslots, unsigned int nprocs)
{
    return ALIGN8(sizeof(tb_sched_t)) + (apr_size_t)nslots * sizeof(slot_t)
         + (apr_size_t)nprocs * sizeof(proc_t)
         + ALIGN8((apr_size_t)nprocs * nslots * sizeof(apr_uint32_t));
}

tb_sched_t *tb_sched_format(void *mem, unsigned int nslots, unsigned int nprocs)
{
    tb_sched_t *s = mem;
    apr_size_t size = tb_sched_size(nslots, nprocs);

    memset(mem, 0, size);
    s->layout = LAYOUT;
    s->nslots = nslots;
    s->nprocs = nprocs;
    s->size = size;
    __atomic_store_n(&s->magic, MAGIC, __ATOMIC_RELEASE);
    return s;
}

tb_sched_t *tb_sched_open(void *mem, apr_size_t size, unsigned int nslots,
                          unsigned int nprocs)
{
    tb_sched_t *s = mem;

    if (size < sizeof(*s) || __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) != MAGIC
        || s->layout != LAYOUT || s->nslots != nslots || s->nprocs != nprocs
        || s->size != tb_sched_size(nslots, nprocs) || s->size > size) {
        return NULL;
    }
    return s;
}

/* ---- slots -------------------------------------------------------------- */

int tb_sched_slot(tb_sched_t *s, int account_id)
{
    apr_uint32_t id = (apr_uint32_t)account_id, i, start;

    if (!s || account_id <= 0 || !s->nslots) {
        return -1;
    }
    /* open addressing; slots are never freed, so a probe ends at the
     * account or at the first free slot */
    start = (id * 2654435761u) % s->nslots;
    for (i = 0; i < s->nslots; ++i) {
        slot_t *sl = &slots(s)[(start + i) % s->nslots];
        apr_uint32_t cur = __atomic_load_n(&sl->account_id, __ATOMIC_ACQUIRE);

        if (cur == 0) {
            apr_uint32_t expected = 0;
            if (__atomic_compare_exchange_n(&sl->account_id, &expected, id, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                return (int)((start + i) % s->nslots);
            }
            cur = expected;
        }
        if (cur == id) {
            return (int)((start + i) % s->nslots);
        }
    }
    return -1;
}

/* ---- the sequence lock over a slot's health -------------------------------- */

/* Spins before asking whether a lock holder is still alive. */
#define SPINS_BEFORE_CHECK 1024

int tb_sched_pid_alive(apr_uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/* A writer that died holding the lock (a crash, a kill mid-write) would
 * stop every reader and writer of the slot: whoever finds it dead takes
 * the lock over, ends its write, and lets go. What it half wrote stays;
 * each field is whole, and the next report overwrites them. */
static void repair(slot_t *sl, apr_uint32_t holder, apr_uint32_t me)
{
    if (holder && holder != me && !tb_sched_pid_alive(holder)
        && __atomic_compare_exchange_n(&sl->lock, &holder, me, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        if (__atomic_load_n(&sl->seq, __ATOMIC_RELAXED) & 1) {
            __atomic_fetch_add(&sl->seq, 1, __ATOMIC_RELEASE);
        }
        __atomic_store_n(&sl->lock, 0, __ATOMIC_RELEASE);
    }
}

static void write_begin(slot_t *sl)
{
    apr_uint32_t me = (apr_uint32_t)getpid(), holder = 0;
    unsigned int spins = 0;

    while (!__atomic_compare_exchange_n(&sl->lock, &holder, me, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        if (++spins % SPINS_BEFORE_CHECK == 0) {
            repair(sl, holder, me);
        }
        holder = 0;
        sched_yield();
    }
    __atomic_fetch_add(&sl->seq, 1, __ATOMIC_RELAXED);
    /* NB: the odd count must be visible before any field changes */
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(slot_t *sl)
{
    __atomic_fetch_add(&sl->seq, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&sl->lock, 0, __ATOMIC_RELEASE);
}

static apr_uint32_t read_begin(slot_t *sl)
{
    unsigned int spins = 0;
    apr_uint32_t seq;

    while ((seq = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE)) & 1) {
        if (++spins % SPINS_BEFORE_CHECK == 0) {
            repair(sl, __atomic_load_n(&sl->lock, __ATOMIC_RELAXED),
                   (apr_uint32_t)getpid());
        }
        sched_yield();
    }
    return seq;
}

static int read_retry(const slot_t *sl, apr_uint32_t seq)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&sl->seq, __ATOMIC_RELAXED) != seq;
}

static void cool_copy(tb_sched_cool_t *to, const cool_t *from)
{
    to->model = LD32(&from->hash);
    to->reason = (tb_outcome_t)LD32(&from->reason);
    to->status = (int)LD32(&from->status);
    to->streak = LD32(&from->streak);
    to->until = (apr_time_t)LD64(&from->until);
}

static void cool_store(cool_t *c, apr_uint32_t hash, tb_outcome_t reason,
                       int status, apr_uint32_t streak, apr_time_t until,
                       apr_time_t now)
{
    ST32(&c->hash, hash);
    ST32(&c->reason, (apr_uint32_t)reason);
    ST32(&c->status, (apr_uint32_t)status);
    ST32(&c->streak, streak);
    ST64(&c->until, (apr_uint64_t)until);
    ST64(&c->set_at, (apr_uint64_t)now);
}

static void cool_clear(cool_t *c)
{
    cool_store(c, 0, TB_OUT_OK, 0, 0, 0, 0);
}

/* A cooldown until `until` on `c` (for `hash`): a longer one already
 * there stands (a 429 of a minute is not shortened by a 500 of a
 * second); the streak counts either way. */
static apr_interval_time_t cool_extend(cool_t *c, apr_uint32_t hash,
                                       tb_outcome_t reason, int status,
                                       apr_uint32_t streak, apr_time_t until,
                                       apr_time_t now)
{
    if (c->hash == hash && (apr_time_t)c->until > until) {
        ST32(&c->streak, streak);
        ST64(&c->set_at, (apr_uint64_t)now);
        return (apr_time_t)c->until - now;
    }
    cool_store(c, hash, reason, status, streak, until, now);
    return until - now;
}

apr_time_t tb_sched_ready_at(tb_sched_t *s, int slot, apr_uint32_t model,
                             apr_time_t now)
{
    slot_t *sl;
    apr_time_t until;
    apr_uint32_t seq;
    int i, error;

    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return 0;
    }
    sl = &slots(s)[slot];
    do {
        seq = read_begin(sl);
        error = LD64(&sl->error_at) != 0;
        until = (apr_time_t)LD64(&sl->account.until);
        for (i = 0; i < TB_SCHED_MODELS; ++i) {
            if (LD32(&sl->models[i].hash) == model) {
                apr_time_t m = (apr_time_t)LD64(&sl->models[i].until);
                if (m > until) {
                    until = m;
                }
            }
        }
    } while (read_retry(sl, seq));
    if (error) {
        return APR_INT64_MAX;
    }
    return until > now ? until : 0;
}

/* ---- leases ------------------------------------------------------------- */

static int lease_take(tb_sched_t *s, int proc, int slot, unsigned int limit)
{
    slot_t *sl;
    apr_uint32_t cur;

    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return 1;
    }
    sl = &slots(s)[slot];
    /* NB: the process's count first, the slot's after (and release in the
     * other order): a process that dies between the two leaves the slot
     * counted one short, never one over for good (the count is clamped
     * at zero when the slot drains) */
    if (proc >= 0 && (unsigned int)proc < s->nprocs) {
        __atomic_fetch_add(&leases(s, proc)[slot], 1, __ATOMIC_RELAXED);
    }
    cur = __atomic_load_n(&sl->in_flight, __ATOMIC_RELAXED);
    do {
        if (limit && cur >= limit) {
            if (proc >= 0 && (unsigned int)proc < s->nprocs) {
                __atomic_fetch_sub(&leases(s, proc)[slot], 1, __ATOMIC_RELAXED);
            }
            return 0;
        }
    } while (!__atomic_compare_exchange_n(&sl->in_flight, &cur, cur + 1, 1,
                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    return 1;
}

/* Take up to n off the in-flight count, never below zero. */
static void in_flight_sub(slot_t *sl, apr_uint32_t n)
{
    apr_uint32_t cur = __atomic_load_n(&sl->in_flight, __ATOMIC_RELAXED);

    do {
        if (!cur) {
            return;
        }
    } while (!__atomic_compare_exchange_n(&sl->in_flight, &cur,
                                          cur > n ? cur - n : 0, 1,
                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
}

void tb_sched_release(tb_sched_t *s, int slot, int proc)
{
    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return;
    }
    in_flight_sub(&slots(s)[slot], 1);
    if (proc >= 0 && (unsigned int)proc < s->nprocs) {
        apr_uint32_t *l = &leases(s, proc)[slot];
        apr_uint32_t cur = __atomic_load_n(l, __ATOMIC_RELAXED);
        do {
            if (!cur) {
                break;
            }
        } while (!__atomic_compare_exchange_n(l, &cur, cur - 1, 1,
                                              __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    }
}

/* ---- processes ---------------------------------------------------------- */

int tb_sched_proc_join(tb_sched_t *s, apr_uint32_t pid)
{
    unsigned int i;

    if (!s || !pid) {
        return -1;
    }
    /* a row left by an earlier process with this pid (its exit was never
     * reported): it is gone, whatever it held */
    tb_sched_proc_reap(s, pid);
    for (i = 0; i < s->nprocs; ++i) {
        apr_uint32_t expected = 0;
        if (__atomic_compare_exchange_n(&procs(s)[i].pid, &expected, pid, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            return (int)i;
        }
    }
    return -1;
}

unsigned int tb_sched_proc_reap(tb_sched_t *s, apr_uint32_t pid)
{
    unsigned int i, j, given = 0;

    if (!s || !pid) {
        return 0;
    }
    for (i = 0; i < s->nprocs; ++i) {
        apr_uint32_t *l;

        if (__atomic_load_n(&procs(s)[i].pid, __ATOMIC_ACQUIRE) != pid) {
            continue;
        }
        l = leases(s, (int)i);
        for (j = 0; j < s->nslots; ++j) {
            apr_uint32_t n = __atomic_exchange_n(&l[j], 0, __ATOMIC_ACQ_REL);
            if (n) {
                in_flight_sub(&slots(s)[j], n);
                given += n;
            }
            if (__atomic_load_n(&slots(s)[j].lock, __ATOMIC_RELAXED) == pid) {
                repair(&slots(s)[j], pid, (apr_uint32_t)getpid());
            }
        }
        __atomic_store_n(&procs(s)[i].pid, 0, __ATOMIC_RELEASE);
    }
    return given;
}

unsigned int tb_sched_proc_sweep(tb_sched_t *s, int (*alive)(apr_uint32_t pid))
{
    unsigned int i, given = 0;

    if (!s) {
        return 0;
    }
    for (i = 0; i < s->nprocs; ++i) {
        apr_uint32_t pid = __atomic_load_n(&procs(s)[i].pid, __ATOMIC_ACQUIRE);
        if (pid && !alive(pid)) {
            given += tb_sched_proc_reap(s, pid);
        }
    }
    return given;
}

/* ---- choosing ------------------------------------------------------------ */

apr_uint32_t tb_sched_model_hash(const char *model)
{
    apr_uint32_t h = 2166136261u;   /* FNV-1a */

    for (; model && *model; ++model) {
        h = (h ^ (unsigned char)*model) * 16777619u;
    }
    return h ? h : 1;
}

/* Marks in the caller's `excluded` flags that live only during a pick. */
#define SKIP 0x80

static int has_room(tb_sched_t *s, const tb_sched_cand_t *c)
{
    return !s || c->slot < 0 || (unsigned int)c->slot >= s->nslots || !c->limit
        || __atomic_load_n(&slots(s)[c->slot].in_flight, __ATOMIC_RELAXED) < c->limit;
}

/* A candidate of tier `best` the weighted choice may take now: not
 * excluded (nor skipped), taking traffic, healthy, with room. */
static int in_tier(tb_sched_t *s, const tb_sched_cand_t *c, unsigned char flags,
                   int best, const tb_sched_want_t *want)
{
    return !flags && c->weight && c->priority == best && has_room(s, c)
        && !tb_sched_ready_at(s, c->slot, want->model, want->now);
}

static apr_uint32_t next_rnd(apr_uint32_t r)
{
    return r * 1664525u + 1013904223u;
}

tb_pick_t tb_sched_pick(tb_sched_t *s, int proc, const tb_sched_cand_t *c,
                        int n, unsigned char *excluded,
                        const tb_sched_want_t *want, int *pidx)
{
    unsigned char *skip = excluded;
    apr_uint32_t rnd = want->rnd;
    int i, healthy_seen = 0, usable_seen = 0;
    tb_pick_t result = TB_PICK_NONE;
    apr_time_t r;

    *pidx = -1;
    i = want->preferred;
    if (want->strict && i >= 0 && i < n) {
        /* it alone holds what the request refers to: it, or nothing */
        if (excluded[i] || tb_sched_ready_at(s, c[i].slot, want->model, want->now)
                           == APR_INT64_MAX) {
            return TB_PICK_NONE;
        }
        if (!lease_take(s, proc, c[i].slot, c[i].limit)) {
            return TB_PICK_FULL;
        }
        *pidx = i;
        return TB_PICK_PREFERRED;
    }
    /* the sticky candidate, while it is fit */
    if (i >= 0 && i < n && !excluded[i] && c[i].weight
        && !tb_sched_ready_at(s, c[i].slot, want->model, want->now)
        && lease_take(s, proc, c[i].slot, c[i].limit)) {
        *pidx = i;
        return TB_PICK_PREFERRED;
    }

    /* the highest tier with a healthy candidate that has room */
    for (;;) {
        int found = 0, best = 0, chosen = -1;
        apr_uint64_t total = 0, point;

        for (i = 0; i < n; ++i) {
            if (excluded[i] & ~SKIP || !c[i].weight
                || tb_sched_ready_at(s, c[i].slot, want->model, want->now)) {
                continue;
            }
            healthy_seen = 1;
            if (excluded[i] & SKIP || !has_room(s, &c[i])) {
                continue;
            }
            if (!found || c[i].priority > best) {
                best = c[i].priority;
                found = 1;
            }
        }
        if (!found) {
            break;
        }
        for (i = 0; i < n; ++i) {
            if (in_tier(s, &c[i], excluded[i], best, want)) {
                total += c[i].weight;
            }
        }
        if (!total) {
            continue;   /* a slot filled meanwhile: look again */
        }
        /* NB: rnd scaled into [0, total), not taken modulo total: a
         * tier's total passes 2^32 with large weights (rnd % total would
         * then never reach the last candidates), and the high bits are
         * the good ones of next_rnd's generator */
        point = rnd * (total >> 32)
              + (((apr_uint64_t)rnd * (total & 0xffffffffu)) >> 32);
        rnd = next_rnd(rnd);
        for (i = 0; i < n && chosen < 0; ++i) {
            if (in_tier(s, &c[i], excluded[i], best, want)) {
                if (point < c[i].weight) {
                    chosen = i;
                }
                else {
                    point -= c[i].weight;
                }
            }
        }
        if (chosen < 0) {
            continue;
        }
        if (lease_take(s, proc, c[chosen].slot, c[chosen].limit)) {
            *pidx = chosen;
            result = TB_PICK_HEALTHY;
            goto done;
        }
        skip[chosen] |= SKIP;   /* it filled up under us */
    }
    if (healthy_seen) {
        result = TB_PICK_FULL;  /* wait for a healthy one */
        goto done;
    }

    /* nothing healthy: the first to recover, so that one 429 never
     * becomes an error for everyone */
    for (;;) {
        int chosen = -1;
        apr_time_t first = 0;

        for (i = 0; i < n; ++i) {
            if (excluded[i] & ~SKIP || !c[i].weight
                || (r = tb_sched_ready_at(s, c[i].slot, want->model, want->now))
                   == APR_INT64_MAX) {
                continue;
            }
            usable_seen = 1;
            if (excluded[i] & SKIP || !has_room(s, &c[i])) {
                continue;
            }
            if (chosen < 0 || r < first) {
                chosen = i;
                first = r;
            }
        }
        if (chosen < 0) {
            break;
        }
        if (lease_take(s, proc, c[chosen].slot, c[chosen].limit)) {
            *pidx = chosen;
            result = TB_PICK_RECOVERING;
            goto done;
        }
        skip[chosen] |= SKIP;
    }
    result = usable_seen ? TB_PICK_FULL : TB_PICK_NONE;

done:
    for (i = 0; i < n; ++i) {
        skip[i] &= (unsigned char)~SKIP;
    }
    return result;
}

/* ---- health --------------------------------------------------------------- */

const char *tb_outcome_name(tb_outcome_t out)
{
    static const char *const names[TB_OUT__COUNT] = {
        "ok", "rate_limited", "quota_exhausted", "credential_refused",
        "server_error", "timeout", "connect_failed", "stream_failed"
    };

    return (unsigned int)out < TB_OUT__COUNT ? names[out] : "unknown";
}

/* The entry for `model`: its own, else a free one, else the one whose
 * cooldown ended (or ends) first. Under the writer lock. */
static cool_t *model_entry(slot_t *sl, apr_uint32_t model)
{
    cool_t *oldest = NULL;
    int i;

    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        if (sl->models[i].hash == model) {
            return &sl->models[i];
        }
    }
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        cool_t *e = &sl->models[i];
        if (!e->hash) {
            return e;
        }
        if (!oldest || e->until < oldest->until) {
            oldest = e;
        }
    }
    cool_clear(oldest);
    return oldest;
}

/* The n-th brief cooldown in a row: doubled each time, up to the most. */
static apr_interval_time_t backoff(const tb_sched_policy_t *pol,
                                   apr_uint32_t streak)
{
    apr_interval_time_t d = pol->error;
    apr_uint32_t i;

    for (i = 1; i < streak && d < pol->error_max; ++i) {
        d *= 2;
    }
    return d < pol->error_max ? d : pol->error_max;
}

/* A brief cooldown on `e` that doubles with repeats; a streak whose last
 * cooldown ended long ago starts again. */
static apr_interval_time_t cool_brief(cool_t *e, apr_uint32_t hash,
                                      tb_outcome_t out, int status,
                                      const tb_sched_policy_t *pol, apr_time_t now)
{
    apr_uint32_t streak = e->hash == hash ? e->streak : 0;
    apr_interval_time_t d;

    if (streak && (apr_time_t)e->until + pol->error_max < now) {
        streak = 0;
    }
    d = backoff(pol, ++streak);
    return cool_extend(e, hash, out, status, streak, now + d, now);
}

/* Does a success on this slot have anything to clear for `model`? */
static int success_clears(slot_t *sl, apr_uint32_t model)
{
    apr_uint32_t seq;
    int clears, i;

    do {
        seq = read_begin(sl);
        clears = LD64(&sl->account.until) != 0 || LD32(&sl->account.streak) != 0;
        for (i = 0; i < TB_SCHED_MODELS && !clears; ++i) {
            clears = LD32(&sl->models[i].hash) == model;
        }
    } while (read_retry(sl, seq));
    return clears;
}

/* Count an outcome in the current minute's bucket; the first count of a
 * new minute empties the bucket it reuses. NB: approximate by design: a
 * count racing with that reset may be lost; this is for humans. */
static void recent_count(slot_t *sl, apr_time_t now, int ok)
{
    apr_uint64_t minute = (apr_uint64_t)(now / apr_time_from_sec(60));
    recent_t *b = &sl->recent[minute % RECENT_BUCKETS];
    apr_uint64_t seen = __atomic_load_n(&b->minute, __ATOMIC_ACQUIRE);

    if (seen != minute && seen < minute
        && __atomic_compare_exchange_n(&b->minute, &seen, minute, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        ST32(&b->ok, 0);
        ST32(&b->failed, 0);
    }
    __atomic_fetch_add(ok ? &b->ok : &b->failed, 1, __ATOMIC_RELAXED);
}

void tb_sched_recent(tb_sched_t *s, int slot, apr_time_t now,
                     apr_uint64_t *pok, apr_uint64_t *pfailed)
{
    apr_uint64_t minute = (apr_uint64_t)(now / apr_time_from_sec(60));
    int i;

    *pok = *pfailed = 0;
    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return;
    }
    for (i = 0; i < RECENT_BUCKETS; ++i) {
        const recent_t *b = &slots(s)[slot].recent[i];
        apr_uint64_t m = __atomic_load_n(&b->minute, __ATOMIC_ACQUIRE);

        if (m <= minute && minute - m <= RECENT_MINUTES) {
            *pok += LD32(&b->ok);
            *pfailed += LD32(&b->failed);
        }
    }
}

apr_interval_time_t tb_sched_report(tb_sched_t *s, int slot, apr_uint32_t model,
                                    tb_outcome_t out, int status,
                                    apr_interval_time_t retry_after,
                                    const tb_sched_policy_t *pol,
                                    apr_time_t started, apr_time_t now)
{
    apr_interval_time_t d = 0;
    slot_t *sl;
    cool_t *e;
    int i;

    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return 0;
    }
    sl = &slots(s)[slot];
    recent_count(sl, now, out == TB_OUT_OK);
    if (out == TB_OUT_OK) {
        __atomic_fetch_add(&sl->successes, 1, __ATOMIC_RELAXED);
        ST64(&sl->last_success, (apr_uint64_t)now);
        /* the common case writes nothing under the lock */
        if (!success_clears(sl, model)) {
            return 0;
        }
        write_begin(sl);
        /* it answered: what kept it (or this model) away is over, unless
         * it was set after this attempt began (a request that was already
         * on its way proves nothing about a later 429) */
        if ((apr_time_t)sl->account.set_at <= started) {
            cool_clear(&sl->account);
        }
        for (i = 0; i < TB_SCHED_MODELS; ++i) {
            if (sl->models[i].hash == model
                && (apr_time_t)sl->models[i].set_at <= started) {
                cool_clear(&sl->models[i]);
            }
        }
        write_end(sl);
        return 0;
    }

    __atomic_fetch_add(&sl->failures, 1, __ATOMIC_RELAXED);
    ST64(&sl->last_failure, (apr_uint64_t)now);
    ST32(&sl->last_status, (apr_uint32_t)status);
    write_begin(sl);
    ST32(&sl->last_outcome, (apr_uint32_t)out);
    switch (out) {
    case TB_OUT_RATE_LIMITED:
        /* the upstream said how long; a burst is not an exhausted quota */
        d = retry_after >= 0 ? retry_after : pol->rate_limit;
        if (d > pol->rate_limit_max) {
            d = pol->rate_limit_max;
        }
        e = model_entry(sl, model);
        d = cool_extend(e, model, out, status,
                        e->hash == model ? e->streak + 1 : 1, now + d, now);
        break;
    case TB_OUT_QUOTA:
        d = cool_extend(&sl->account, 0, out, status, sl->account.streak + 1,
                        now + pol->quota, now);
        break;
    case TB_OUT_AUTH:
        if (!sl->error_at) {
            ST64(&sl->error_at, (apr_uint64_t)now);
            ST32(&sl->error_status, (apr_uint32_t)status);
            d = -1;   /* this report set the mark */
        }
        break;
    case TB_OUT_CONNECT:
        d = cool_brief(&sl->account, 0, out, status, pol, now);
        break;
    case TB_OUT_SERVER:
    case TB_OUT_TIMEOUT:
    case TB_OUT_STREAM:
    default:
        d = cool_brief(model_entry(sl, model), model, out, status, pol, now);
        break;
    }
    write_end(sl);
    return d;
}

int tb_sched_clear_error(tb_sched_t *s, int slot, apr_time_t before)
{
    slot_t *sl;
    int cleared = 0;

    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return 0;
    }
    sl = &slots(s)[slot];
    if (!LD64(&sl->error_at)) {
        return 0;
    }
    write_begin(sl);
    if (sl->error_at && (apr_time_t)sl->error_at <= before) {
        ST64(&sl->error_at, 0);
        ST32(&sl->error_status, 0);
        cleared = 1;
    }
    write_end(sl);
    return cleared;
}

apr_status_t tb_sched_view(tb_sched_t *s, int slot, tb_sched_view_t *v)
{
    slot_t *sl;
    apr_uint32_t seq;
    int i;

    memset(v, 0, sizeof(*v));
    if (!s || slot < 0 || (unsigned int)slot >= s->nslots) {
        return APR_NOTFOUND;
    }
    sl = &slots(s)[slot];
    if (!(v->account_id = (int)__atomic_load_n(&sl->account_id, __ATOMIC_ACQUIRE))) {
        return APR_NOTFOUND;
    }
    do {
        seq = read_begin(sl);
        v->error_at = (apr_time_t)LD64(&sl->error_at);
        v->error_status = (int)LD32(&sl->error_status);
        v->last_outcome = (tb_outcome_t)LD32(&sl->last_outcome);
        cool_copy(&v->account, &sl->account);
        for (i = 0; i < TB_SCHED_MODELS; ++i) {
            cool_copy(&v->models[i], &sl->models[i]);
        }
    } while (read_retry(sl, seq));
    v->in_flight = __atomic_load_n(&sl->in_flight, __ATOMIC_RELAXED);
    v->successes = LD64(&sl->successes);
    v->failures = LD64(&sl->failures);
    v->last_success = (apr_time_t)LD64(&sl->last_success);
    v->last_failure = (apr_time_t)LD64(&sl->last_failure);
    v->last_status = (int)LD32(&sl->last_status);
    return APR_SUCCESS;
}
