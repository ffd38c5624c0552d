/* tb_sched: the scheduler's shared table. Slots found by account id,
 * leases against max_concurrency, per-process lease rows that let the
 * parent give back what a dead process held, health (cooldowns of the
 * account and of (account, model) pairs, the error mark), and the choice
 * among candidates: preferred, then priority tiers with weighted random
 * among the healthy with room, then the first to recover.
 *
 * Times are explicit `now` values; nothing here sleeps, and the threads
 * and processes check invariants, never durations. */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_thread_proc.h>

#include "tb_sched.h"
#include "tb_unit.h"

#define T0  ((apr_time_t)1700000000 * APR_USEC_PER_SEC)
#define SEC ((apr_interval_time_t)APR_USEC_PER_SEC)
#define NC  8               /* the most candidates a check here uses */

/* 60 s for a 429 without Retry-After, honoured up to 300 s; an hour for
 * an exhausted quota; brief failures 5 s doubling up to 60 s. */
static const tb_sched_policy_t POL = {
    60 * SEC, 300 * SEC, 3600 * SEC, 5 * SEC, 60 * SEC
};

/* ---- helpers -------------------------------------------------------------- */

/* splitmix64, a good generator (unlike the low bits of an LCG): the
 * weight checks then measure the scheduler, not the generator. */
static apr_uint32_t next_rnd(apr_uint64_t *state)
{
    apr_uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (apr_uint32_t)((z ^ (z >> 31)) >> 32);
}

/* A new table in pool memory (apr_palloc aligns for 64-bit atomics). */
static tb_sched_t *new_table(apr_pool_t *p, unsigned int slots,
                             unsigned int procs)
{
    return tb_sched_format(apr_palloc(p, tb_sched_size(slots, procs)), slots,
                           procs);
}

/* Memory that forked processes share with this one; NULL on failure. */
static void *shared_mem(apr_size_t size)
{
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    return m == MAP_FAILED ? NULL : m;
}

static tb_sched_cand_t cand(int slot, int priority, unsigned int weight,
                            unsigned int limit)
{
    tb_sched_cand_t c;

    c.slot = slot;
    c.priority = priority;
    c.weight = weight;
    c.limit = limit;
    return c;
}

static tb_sched_want_t want(apr_uint32_t model, apr_time_t now)
{
    tb_sched_want_t w;

    w.model = model;
    w.preferred = -1;
    w.strict = 0;
    w.now = now;
    w.rnd = 0;
    return w;
}

/* The slot's in-flight count as the status page sees it; -1 when the
 * slot is not in use. */
static long in_flight(tb_sched_t *s, int slot)
{
    tb_sched_view_t v;

    return tb_sched_view(s, slot, &v) == APR_SUCCESS ? (long)v.in_flight : -1;
}

/* Takes a lease on `slot` (limit `limit`) for row `proc`: 1 when taken. */
static int take(tb_sched_t *s, int proc, int slot, unsigned int limit)
{
    tb_sched_cand_t c = cand(slot, 0, 1, limit);
    tb_sched_want_t w = want(0, T0);
    unsigned char ex = 0;
    int idx;
    tb_pick_t r = tb_sched_pick(s, proc, &c, 1, &ex, &w, &idx);

    return (r == TB_PICK_HEALTHY || r == TB_PICK_RECOVERING) && idx == 0;
}

/* Reports an attempt that began and ended at `now`, under POL. */
static apr_interval_time_t report(tb_sched_t *s, int slot, apr_uint32_t model,
                                  tb_outcome_t out, int status,
                                  apr_interval_time_t retry_after,
                                  apr_time_t now)
{
    return tb_sched_report(s, slot, model, out, status, retry_after, &POL, now,
                           now);
}

/* Does every pick, over the extremes of rnd and 200 values from a fixed
 * sequence, come to `kind` with index `idx`, leaving `ex` as it was?
 * Each lease is given back at once. */
static int always(tb_sched_t *s, const tb_sched_cand_t *c, int n,
                  unsigned char *ex, tb_sched_want_t w, tb_pick_t kind,
                  int idx)
{
    static const apr_uint32_t edges[] = { 0, 1, 2, 3, 0x7fffffffu,
                                          0x80000000u, 0xffffffffu };
    const int nedges = (int)(sizeof(edges) / sizeof(edges[0]));
    unsigned char before[NC];
    apr_uint64_t state = 7;
    int i, got, ok = 1;
    tb_pick_t r;

    memcpy(before, ex, (size_t)n);
    for (i = 0; i < nedges + 200 && ok; ++i) {
        w.rnd = i < nedges ? edges[i] : next_rnd(&state);
        r = tb_sched_pick(s, -1, c, n, ex, &w, &got);
        ok = r == kind && got == idx && !memcmp(before, ex, (size_t)n);
        if (got >= 0 && got < n) {
            tb_sched_release(s, c[got].slot, -1);
        }
    }
    return ok;
}

/* How often each candidate is chosen over `rounds` picks (leases given
 * back at once); counts[n] gets the picks that came to no index, and
 * *pother those that were not of kind `kind`. */
static void tally(tb_sched_t *s, const tb_sched_cand_t *c, int n,
                  unsigned char *ex, tb_sched_want_t w, tb_pick_t kind,
                  int rounds, int *counts, int *pother)
{
    apr_uint64_t state = 12345;
    int i, got;

    memset(counts, 0, sizeof(int) * (size_t)(n + 1));
    *pother = 0;
    for (i = 0; i < rounds; ++i) {
        w.rnd = next_rnd(&state);
        *pother += tb_sched_pick(s, -1, c, n, ex, &w, &got) != kind;
        ++counts[got >= 0 && got < n ? got : n];
        if (got >= 0 && got < n) {
            tb_sched_release(s, c[got].slot, -1);
        }
    }
}

/* ---- the table ------------------------------------------------------------ */

static void table(apr_pool_t *p)
{
    apr_size_t size = tb_sched_size(4, 2);
    void *mem = apr_palloc(p, size);
    tb_sched_t *s, *again;
    tb_sched_view_t v;
    int a, b, ids[4], slot[4], i, distinct = 1, stable = 1;

    OK(size % 8 == 0 && tb_sched_size(5, 2) > size && tb_sched_size(4, 3) > size,
       "sched table: the size is a multiple of 8 and grows with slots and "
       "process rows (%lu)", (unsigned long)size);

    memset(mem, 0, size);
    OK(tb_sched_open(mem, size, 4, 2) == NULL,
       "sched table: zeroed memory is no table: open gives NULL");
    memset(mem, 0xa5, size);
    OK(tb_sched_open(mem, size, 4, 2) == NULL,
       "sched table: garbage is no table: open gives NULL");

    s = tb_sched_format(mem, 4, 2);
    OK(s == mem, "sched table: format lays the table at the start of mem");
    OK(tb_sched_view(s, 0, &v) == APR_NOTFOUND
       && tb_sched_view(s, 3, &v) == APR_NOTFOUND,
       "sched table: format clears the memory: no slot is in use");
    OK(tb_sched_open(mem, size, 4, 2) == s,
       "sched table: open of a formatted table with the same layout works");
    OK(tb_sched_open(mem, size, 5, 2) == NULL
       && tb_sched_open(mem, size, 3, 2) == NULL,
       "sched table: open with another slots count gives NULL");
    OK(tb_sched_open(mem, size, 4, 1) == NULL
       && tb_sched_open(mem, size, 4, 3) == NULL,
       "sched table: open with another process rows count gives NULL");
    OK(tb_sched_open(mem, size - 8, 4, 2) == NULL
       && tb_sched_open(mem, 4, 4, 2) == NULL,
       "sched table: open of memory smaller than the table gives NULL");

    a = tb_sched_slot(s, 42);
    b = tb_sched_slot(s, 7);
    OK(a >= 0 && a < 4 && b >= 0 && b < 4 && a != b,
       "sched table: two accounts get two slots (%d, %d)", a, b);
    OK(tb_sched_slot(s, 42) == a && tb_sched_slot(s, 7) == b,
       "sched table: the same account id gets the same slot again");
    OK(tb_sched_view(s, a, &v) == APR_SUCCESS && v.account_id == 42
       && v.in_flight == 0 && v.error_at == 0 && v.account.until == 0,
       "sched table: a claimed slot shows its account id and nothing else");

    /* the table, claimed slots included, outlives a reopen (a graceful
     * restart finds the same accounts in the same slots) */
    again = tb_sched_open(mem, size, 4, 2);
    OK(again && tb_sched_slot(again, 42) == a && tb_sched_slot(again, 7) == b,
       "sched table: after open, accounts are found in their slots");

    ids[0] = 42;
    ids[1] = 7;
    ids[2] = 1000003;
    ids[3] = 3;
    for (i = 0; i < 4; ++i) {
        int k;

        slot[i] = tb_sched_slot(s, ids[i]);
        for (k = 0; k < i; ++k) {
            distinct &= slot[i] >= 0 && slot[i] != slot[k];
        }
    }
    OK(distinct, "sched table: four accounts fill the four slots, one each");
    OK(tb_sched_slot(s, 99) == -1,
       "sched table: a fifth account finds the table full: -1");
    for (i = 0; i < 4; ++i) {
        stable &= tb_sched_slot(s, ids[i]) == slot[i];
    }
    OK(stable, "sched table: with the table full, each account still finds "
       "its slot");
    OK(tb_sched_slot(s, 0) == -1 && tb_sched_slot(s, -5) == -1,
       "sched table: account id 0 or negative gets no slot");
    OK(tb_sched_view(s, -1, &v) == APR_NOTFOUND
       && tb_sched_view(s, 4, &v) == APR_NOTFOUND,
       "sched table: view of a slot out of range is APR_NOTFOUND");

    OK(tb_sched_format(mem, 3, 2) == s && tb_sched_open(mem, size, 4, 2) == NULL
       && tb_sched_open(mem, size, 3, 2) == s,
       "sched table: formatted with 3 slots, it opens with 3, not with 4");
}

/* ---- weights and priority ------------------------------------------------- */

static void weights(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 1);
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];
    tb_sched_want_t w = want(tb_sched_model_hash("gpt-4o"), T0);
    const int rounds = 20000;
    int counts[NC + 1], other, i, same = 1, got1, got2;
    apr_uint64_t state = 99;
    double share[3];

    memset(ex, 0, sizeof(ex));
    c[0] = cand(tb_sched_slot(s, 1), 1, 1, 0);
    c[1] = cand(tb_sched_slot(s, 2), 1, 2, 0);
    c[2] = cand(tb_sched_slot(s, 3), 1, 3, 0);
    c[3] = cand(tb_sched_slot(s, 4), 1, 0, 0);      /* drained */
    c[4] = cand(tb_sched_slot(s, 5), 0, 100, 0);    /* standby tier */
    tally(s, c, 5, ex, w, TB_PICK_HEALTHY, rounds, counts, &other);
    for (i = 0; i < 3; ++i) {
        share[i] = 100.0 * counts[i] / rounds;
    }
    OK(other == 0 && counts[5] == 0,
       "sched weights: every one of %d picks is HEALTHY with an index", rounds);
    OK(share[0] > 100.0 / 6 - 3 && share[0] < 100.0 / 6 + 3
       && share[1] > 200.0 / 6 - 3 && share[1] < 200.0 / 6 + 3
       && share[2] > 50.0 - 3 && share[2] < 50.0 + 3,
       "sched weights: weights 1:2:3 split %d picks 16.7/33.3/50%% within "
       "3 points (%.1f/%.1f/%.1f)", rounds, share[0], share[1], share[2]);
    OK(counts[3] == 0, "sched weights: weight 0 in the top tier is never "
       "picked (%d)", counts[3]);
    OK(counts[4] == 0, "sched weights: the lower tier is never used while "
       "the top one has room, whatever its weight (%d)", counts[4]);
    OK(in_flight(s, c[0].slot) == 0 && in_flight(s, c[2].slot) == 0,
       "sched weights: every lease given back: nothing in flight");

    for (i = 0; i < 500; ++i) {
        w.rnd = next_rnd(&state);
        tb_sched_pick(s, -1, c, 5, ex, &w, &got1);
        tb_sched_release(s, c[got1].slot, -1);
        tb_sched_pick(s, -1, c, 5, ex, &w, &got2);
        tb_sched_release(s, c[got2].slot, -1);
        same &= got1 == got2;
    }
    OK(same, "sched weights: the same rnd gives the same pick");

    c[0] = cand(tb_sched_slot(s, 1), 2, 0, 0);
    c[1] = cand(tb_sched_slot(s, 2), 1, 1, 0);
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 1),
       "sched weights: a weight 0 candidate does not make its tier the top");
    c[1].weight = 0;
    OK(always(s, c, 2, ex, w, TB_PICK_NONE, -1),
       "sched weights: only weight 0 candidates: NONE");
    OK(always(s, c, 0, ex, w, TB_PICK_NONE, -1),
       "sched weights: no candidates at all: NONE");

    /* large weights: a total near or above 2^32 still splits by weight */
    c[0] = cand(tb_sched_slot(s, 1), 0, 2000000000u, 0);
    c[1] = cand(tb_sched_slot(s, 2), 0, 2000000000u, 0);
    tally(s, c, 2, ex, w, TB_PICK_HEALTHY, rounds, counts, &other);
    share[0] = 100.0 * counts[0] / rounds;
    OK(other == 0 && share[0] > 48 && share[0] < 52,
       "sched weights: two weights of 2e9 split 50/50 within 2 points "
       "(%.1f/%.1f)", share[0], 100 - share[0]);
    c[0].weight = c[1].weight = 0xffffffffu;
    tally(s, c, 2, ex, w, TB_PICK_HEALTHY, rounds, counts, &other);
    share[0] = 100.0 * counts[0] / rounds;
    OK(other == 0 && share[0] > 48 && share[0] < 52,
       "sched weights: two weights of 2^32-1 (a total above 2^32) split "
       "50/50 within 2 points (%.1f/%.1f)", share[0], 100 - share[0]);
}

static void tiers(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 1);
    apr_uint32_t m = tb_sched_model_hash("gpt-4o");
    tb_sched_want_t w = want(m, T0);
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];

    memset(ex, 0, sizeof(ex));
    c[0] = cand(tb_sched_slot(s, 1), 1, 100, 0);   /* low */
    c[1] = cand(tb_sched_slot(s, 2), 5, 1, 1);     /* top, limit 1 */
    c[2] = cand(tb_sched_slot(s, 3), 3, 10, 0);    /* middle */
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched priority: the top tier wins whatever the weights");

    ex[1] = 1;
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 2),
       "sched priority: top tier excluded: the next tier serves");
    ex[2] = 1;
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 0),
       "sched priority: two tiers excluded: the lowest serves");
    ex[0] = 1;
    OK(always(s, c, 3, ex, w, TB_PICK_NONE, -1),
       "sched priority: everything excluded: NONE");
    memset(ex, 0, sizeof(ex));

    report(s, c[1].slot, m, TB_OUT_SERVER, 500, -1, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 2),
       "sched priority: the top tier cooling: the next tier serves");
    w.now = T0 + POL.error;
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched priority: once its cooldown is over, the top tier serves again");
    w.now = T0;
    w.model = tb_sched_model_hash("other-model");
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched priority: a cooldown of another model does not move traffic");
    w.model = m;
    report(s, c[1].slot, m, TB_OUT_OK, 200, -1, T0);

    report(s, c[1].slot, m, TB_OUT_AUTH, 401, -1, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 2),
       "sched priority: the top tier marked error: the next tier serves");
    tb_sched_clear_error(s, c[1].slot, T0);

    OK(take(s, -1, c[1].slot, 1), "sched priority: the top tier's only "
       "slot taken");
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 2),
       "sched priority: the top tier full: the next tier serves");
    tb_sched_release(s, c[1].slot, -1);
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched priority: its lease given back, the top tier serves again");

    c[0] = cand(tb_sched_slot(s, 1), -5, 1, 0);
    c[1] = cand(tb_sched_slot(s, 2), -1, 1, 0);
    c[2] = cand(tb_sched_slot(s, 3), -3, 1, 0);
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched priority: negative priorities compare as numbers");
}

/* ---- leases ----------------------------------------------------------------- */

static void leases(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 2);
    tb_sched_want_t w = want(tb_sched_model_hash("gpt-4o"), T0);
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];
    int a = tb_sched_slot(s, 1), b = tb_sched_slot(s, 2);
    int i, idx, idx2, all = 1;
    tb_pick_t r1, r2, r3;

    memset(ex, 0, sizeof(ex));
    c[0] = cand(a, 0, 1, 2);
    r1 = tb_sched_pick(s, -1, c, 1, ex, &w, &idx);
    OK(r1 == TB_PICK_HEALTHY && idx == 0 && in_flight(s, a) == 1,
       "sched leases: a pick takes a lease: 1 in flight in the view");
    r2 = tb_sched_pick(s, -1, c, 1, ex, &w, &idx);
    OK(r2 == TB_PICK_HEALTHY && idx == 0 && in_flight(s, a) == 2,
       "sched leases: limit 2: a second pick takes the second (2 in flight)");
    idx = 5;
    r3 = tb_sched_pick(s, -1, c, 1, ex, &w, &idx);
    OK(r3 == TB_PICK_FULL && idx == -1 && in_flight(s, a) == 2,
       "sched leases: limit 2, a third pick on the lone candidate: FULL, "
       "index -1, still 2 in flight");
    tb_sched_release(s, a, -1);
    OK(in_flight(s, a) == 1, "sched leases: release gives one back");
    OK(tb_sched_pick(s, -1, c, 1, ex, &w, &idx) == TB_PICK_HEALTHY
       && in_flight(s, a) == 2,
       "sched leases: with one given back, a pick succeeds again");

    /* two candidates: the third goes to the other */
    c[1] = cand(b, 0, 1, 2);
    r1 = tb_sched_pick(s, -1, c, 2, ex, &w, &idx);
    OK(r1 == TB_PICK_HEALTHY && idx == 1 && in_flight(s, b) == 1,
       "sched leases: the first candidate full: the pick goes to the other");
    tb_sched_release(s, a, -1);
    tb_sched_release(s, a, -1);
    tb_sched_release(s, b, -1);
    OK(in_flight(s, a) == 0 && in_flight(s, b) == 0,
       "sched leases: all given back: 0 in flight");

    /* same tier, limit 1 each */
    c[0] = cand(a, 0, 1, 1);
    c[1] = cand(b, 0, 1, 1);
    w.rnd = 0;
    r1 = tb_sched_pick(s, -1, c, 2, ex, &w, &idx);
    r2 = tb_sched_pick(s, -1, c, 2, ex, &w, &idx2);
    OK(r1 == TB_PICK_HEALTHY && r2 == TB_PICK_HEALTHY && idx != idx2
       && in_flight(s, a) == 1 && in_flight(s, b) == 1,
       "sched leases: limit 1 each: the same rnd twice gives both candidates");
    OK(tb_sched_pick(s, -1, c, 2, ex, &w, &idx) == TB_PICK_FULL,
       "sched leases: both at their limit: FULL");
    tb_sched_release(s, a, -1);
    tb_sched_release(s, b, -1);

    /* tiers, limit 2 each: the top tier until it is full */
    c[0] = cand(a, 2, 1, 2);
    c[1] = cand(b, 1, 1, 2);
    for (i = 0; i < 4; ++i) {
        tb_sched_pick(s, -1, c, 2, ex, &w, &idx);
        all &= idx == (i < 2 ? 0 : 1);
    }
    OK(all && in_flight(s, a) == 2 && in_flight(s, b) == 2,
       "sched leases: picks fill the top tier's 2, then the lower tier's 2");
    OK(tb_sched_pick(s, -1, c, 2, ex, &w, &idx) == TB_PICK_FULL,
       "sched leases: both tiers full: FULL");
    tb_sched_release(s, a, -1);
    OK(tb_sched_pick(s, -1, c, 2, ex, &w, &idx) == TB_PICK_HEALTHY && idx == 0,
       "sched leases: a lease back on the top tier: it serves the next pick");
    for (i = 0; i < 2; ++i) {
        tb_sched_release(s, a, -1);
        tb_sched_release(s, b, -1);
    }

    /* limit 0: unlimited, but counted */
    c[0] = cand(a, 0, 1, 0);
    all = 1;
    for (i = 0; i < 100; ++i) {
        all &= tb_sched_pick(s, -1, c, 1, ex, &w, &idx) == TB_PICK_HEALTHY;
    }
    OK(all && in_flight(s, a) == 100,
       "sched leases: limit 0 is unlimited but counted: 100 picks, 100 in "
       "flight (%ld)", in_flight(s, a));
    for (i = 0; i < 100; ++i) {
        tb_sched_release(s, a, -1);
    }
    OK(in_flight(s, a) == 0, "sched leases: 100 releases: 0 in flight");
    tb_sched_release(s, a, -1);
    tb_sched_release(s, a, 0);
    OK(in_flight(s, a) == 0,
       "sched leases: a release with nothing in flight does not underflow");

    /* a candidate without a slot: no shared state, no limit */
    c[0] = cand(-1, 0, 1, 1);
    all = 1;
    for (i = 0; i < 3; ++i) {
        all &= tb_sched_pick(s, -1, c, 1, ex, &w, &idx) == TB_PICK_HEALTHY
            && idx == 0;
    }
    tb_sched_release(s, -1, -1);
    tb_sched_release(s, 8, -1);
    OK(all, "sched leases: slot -1 is always healthy and never full, even "
       "with limit 1; releasing slot -1 or out of range is a no-op");
}

/* ---- process rows --------------------------------------------------------- */

static apr_uint32_t dead_pid;       /* what alive() says is gone */
static int alive_calls;

static int alive(apr_uint32_t pid)
{
    ++alive_calls;
    return pid != dead_pid;
}

static void proc_rows(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 4, 3);
    int a = tb_sched_slot(s, 1), b = tb_sched_slot(s, 2), c = tb_sched_slot(s, 3);
    int r100, r200, r300, row400, r, i;

    OK(tb_sched_proc_join(s, 0) == -1, "sched procs: pid 0 gets no row");
    r100 = tb_sched_proc_join(s, 100);
    r200 = tb_sched_proc_join(s, 200);
    r300 = tb_sched_proc_join(s, 300);
    OK(r100 >= 0 && r200 >= 0 && r300 >= 0 && r100 != r200 && r100 != r300
       && r200 != r300,
       "sched procs: three processes join three rows (%d, %d, %d)", r100, r200,
       r300);
    OK(tb_sched_proc_join(s, 400) == -1,
       "sched procs: a fourth finds the rows taken: -1");

    /* 100 holds 2 on a and 1 on c; 200 holds 1 on a and 1 on b; 300
     * holds 1 on b; one lease on a is held outside any row */
    take(s, r100, a, 0);
    take(s, r100, a, 0);
    take(s, r100, c, 0);
    take(s, r200, a, 0);
    take(s, r200, b, 0);
    take(s, r300, b, 0);
    take(s, -1, a, 0);
    OK(in_flight(s, a) == 4 && in_flight(s, b) == 2 && in_flight(s, c) == 1,
       "sched procs: 4 in flight on a, 2 on b, 1 on c");

    OK(tb_sched_proc_reap(s, 100) == 3,
       "sched procs: reaping pid 100 gives back its 3 leases");
    OK(in_flight(s, a) == 2 && in_flight(s, b) == 2 && in_flight(s, c) == 0,
       "sched procs: in flight is now what the live processes hold (2 on a, "
       "2 on b, 0 on c)");
    tb_sched_release(s, c, r100);
    OK(in_flight(s, c) == 0,
       "sched procs: a release after the reap does not underflow the slot");
    OK(tb_sched_proc_reap(s, 100) == 0 && tb_sched_proc_reap(s, 12345) == 0
       && tb_sched_proc_reap(s, 0) == 0,
       "sched procs: reaping again, an unknown pid or pid 0 gives back 0");
    r = tb_sched_proc_join(s, 400);
    OK(r == r100, "sched procs: the reaped row is free again: pid 400 gets it");
    row400 = r;

    dead_pid = 200;
    alive_calls = 0;
    OK(tb_sched_proc_sweep(s, alive) == 2,
       "sched procs: sweep reaps the one alive() calls gone: 2 leases back");
    OK(alive_calls == 3, "sched procs: sweep asked about each of the 3 rows "
       "in use (%d)", alive_calls);
    OK(in_flight(s, a) == 1 && in_flight(s, b) == 1,
       "sched procs: after the sweep, 1 in flight on a (no row), 1 on b (300)");
    dead_pid = 0;
    alive_calls = 0;
    OK(tb_sched_proc_sweep(s, alive) == 0 && alive_calls == 2,
       "sched procs: a sweep with everyone alive reaps nothing");

    /* pid 300 exits unreported and a new process gets its pid */
    r = tb_sched_proc_join(s, 300);
    OK(r >= 0 && in_flight(s, b) == 0,
       "sched procs: a join with a reused pid gives back the leases of the "
       "row it left");
    OK(tb_sched_proc_join(s, 500) >= 0 && tb_sched_proc_join(s, 600) == -1,
       "sched procs: the reused pid took one row, not two");
    tb_sched_release(s, a, -1);
    OK(in_flight(s, a) == 0 && in_flight(s, b) == 0,
       "sched procs: everything given back: 0 in flight");
    OK(row400 >= 0 && tb_sched_proc_reap(s, 400) == 0,
       "sched procs: the late release left the reaped row at 0 (not wrapped "
       "round): its next owner holds nothing");

    /* a real process that dies holding leases */
    {
        apr_size_t size = tb_sched_size(4, 3);
        void *mem = shared_mem(size);
        tb_sched_t *sh;
        int status = -1, slot;
        pid_t pid;

        OK(mem != NULL, "sched procs: shared memory for a forked process");
        if (!mem) {
            return;
        }
        sh = tb_sched_format(mem, 4, 3);
        slot = tb_sched_slot(sh, 77);
        pid = fork();
        if (pid == 0) {
            int row = tb_sched_proc_join(sh, (apr_uint32_t)getpid()), ok = 1;

            for (i = 0; i < 3; ++i) {
                ok &= take(sh, row, slot, 5);
            }
            _exit(row >= 0 && ok ? 0 : 1);   /* no release: it "crashed" */
        }
        if (pid > 0) {
            waitpid(pid, &status, 0);
        }
        OK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0
           && in_flight(sh, slot) == 3,
           "sched procs: a forked process took 3 leases and exited without "
           "giving them back (%ld in flight)", in_flight(sh, slot));
        OK(tb_sched_proc_reap(sh, (apr_uint32_t)pid) == 3
           && in_flight(sh, slot) == 0,
           "sched procs: reaping its pid gives the 3 back: 0 in flight");
        munmap(mem, size);
    }
}

/* ---- health ----------------------------------------------------------------- */

/* The entry for `model` among the slot's model cooldowns, or NULL. */
static const tb_sched_cool_t *entry(const tb_sched_view_t *v, apr_uint32_t model)
{
    int i;

    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        if (v->models[i].model == model) {
            return &v->models[i];
        }
    }
    return NULL;
}

static void rate_limits(tb_sched_t *s)
{
    int slot = tb_sched_slot(s, 10);
    apr_uint32_t ma = tb_sched_model_hash("gpt-4o");
    apr_uint32_t mb = tb_sched_model_hash("gpt-4o-mini");
    apr_uint32_t mc = tb_sched_model_hash("o3");
    apr_uint32_t md = tb_sched_model_hash("o4-mini");
    tb_sched_policy_t pol = POL;
    const tb_sched_cool_t *e;
    tb_sched_view_t v;
    apr_interval_time_t d;

    d = report(s, slot, ma, TB_OUT_RATE_LIMITED, 429, 2 * SEC, T0);
    OK(d == 2 * SEC, "sched health: a 429 with Retry-After 2 s cools for 2 s "
       "(%" APR_TIME_T_FMT ")", d);
    OK(tb_sched_ready_at(s, slot, ma, T0) == T0 + 2 * SEC
       && tb_sched_ready_at(s, slot, ma, T0 + 2 * SEC - 1) == T0 + 2 * SEC,
       "sched health: ready_at gives the end of the (account, model) cooldown");
    OK(tb_sched_ready_at(s, slot, ma, T0 + 2 * SEC) == 0,
       "sched health: at the end of the cooldown the pair is ready (0)");
    OK(tb_sched_ready_at(s, slot, mb, T0) == 0,
       "sched health: another model on the same account is ready");
    tb_sched_view(s, slot, &v);
    e = entry(&v, ma);
    OK(e && e->until == T0 + 2 * SEC && e->reason == TB_OUT_RATE_LIMITED
       && e->status == 429 && e->streak == 1 && v.account.until == 0,
       "sched health: the view shows the pair cooling for the 429, the "
       "account not");

    d = report(s, slot, mb, TB_OUT_RATE_LIMITED, 429, -1, T0);
    OK(d == POL.rate_limit && tb_sched_ready_at(s, slot, mb, T0) == T0 + POL.rate_limit,
       "sched health: a 429 without Retry-After cools for pol.rate_limit");
    d = report(s, slot, mc, TB_OUT_RATE_LIMITED, 429, 1000 * SEC, T0);
    OK(d == POL.rate_limit_max
       && tb_sched_ready_at(s, slot, mc, T0) == T0 + POL.rate_limit_max,
       "sched health: a Retry-After of 1000 s is capped at rate_limit_max");
    pol.rate_limit = 2 * POL.rate_limit_max;
    d = tb_sched_report(s, slot, mc, TB_OUT_RATE_LIMITED, 429, -1, &pol, T0,
                        T0);
    OK(d == POL.rate_limit_max,
       "sched health: a rate_limit above rate_limit_max is capped too");
    d = report(s, slot, md, TB_OUT_RATE_LIMITED, 429, 0, T0);
    OK(d == 0 && tb_sched_ready_at(s, slot, md, T0) == 0,
       "sched health: Retry-After 0 cools nothing");
    d = report(s, slot, ma, TB_OUT_RATE_LIMITED, 429, 2 * SEC, T0 + SEC);
    tb_sched_view(s, slot, &v);
    e = entry(&v, ma);
    OK(e && e->streak == 2 && e->until == T0 + 3 * SEC,
       "sched health: a second 429 on the pair counts a streak of 2 and "
       "cools from its own now");
}

static void quota_and_auth(tb_sched_t *s)
{
    int q = tb_sched_slot(s, 20), x = tb_sched_slot(s, 21);
    apr_uint32_t ma = tb_sched_model_hash("gpt-4o");
    apr_uint32_t mb = tb_sched_model_hash("gpt-4o-mini");
    tb_sched_view_t v;
    apr_interval_time_t d;

    d = report(s, q, ma, TB_OUT_QUOTA, 402, -1, T0);
    tb_sched_view(s, q, &v);
    OK(d == POL.quota && tb_sched_ready_at(s, q, ma, T0) == T0 + POL.quota
       && tb_sched_ready_at(s, q, mb, T0) == T0 + POL.quota,
       "sched health: an exhausted quota cools the whole account, every "
       "model, for pol.quota");
    OK(v.account.until == T0 + POL.quota && v.account.reason == TB_OUT_QUOTA
       && v.account.status == 402 && v.account.model == 0 && !entry(&v, ma),
       "sched health: the view shows the account's own cooldown, no pair");
    report(s, q, mb, TB_OUT_OK, 200, -1, T0 + SEC);
    OK(tb_sched_ready_at(s, q, ma, T0 + SEC) == 0,
       "sched health: a success clears the account's cooldown");

    d = report(s, x, ma, TB_OUT_AUTH, 401, -1, T0);
    OK(d == -1, "sched health: the report that sets the error mark returns -1");
    OK(tb_sched_ready_at(s, x, ma, T0) == APR_INT64_MAX
       && tb_sched_ready_at(s, x, mb, T0 + 3650 * 86400 * SEC) == APR_INT64_MAX,
       "sched health: a marked account is never ready (APR_INT64_MAX), "
       "whatever the model or the time");
    d = report(s, x, ma, TB_OUT_AUTH, 403, -1, T0 + SEC);
    tb_sched_view(s, x, &v);
    OK(d == 0 && v.error_at == T0 && v.error_status == 401,
       "sched health: a second refusal returns 0 and keeps the first mark");
    OK(v.account.until == 0 && !entry(&v, ma),
       "sched health: the error mark is no cooldown");
    report(s, x, ma, TB_OUT_OK, 200, -1, T0 + 2 * SEC);
    OK(tb_sched_ready_at(s, x, ma, T0 + 2 * SEC) == APR_INT64_MAX,
       "sched health: a success does not clear the error mark");
    OK(tb_sched_clear_error(s, x, T0 - 1) == 0
       && tb_sched_ready_at(s, x, ma, T0) == APR_INT64_MAX,
       "sched health: clear_error with before < error_at leaves the mark");
    OK(tb_sched_clear_error(s, x, T0) == 1
       && tb_sched_ready_at(s, x, ma, T0) == 0,
       "sched health: clear_error with before == error_at clears it");
    tb_sched_view(s, x, &v);
    OK(v.error_at == 0 && v.error_status == 0 && tb_sched_clear_error(s, x, T0) == 0,
       "sched health: cleared, the view shows no mark and clearing again "
       "returns 0");
    d = report(s, x, ma, TB_OUT_AUTH, 401, -1, T0 + 10 * SEC);
    OK(d == -1 && tb_sched_clear_error(s, x, T0 + 5 * SEC) == 0
       && tb_sched_ready_at(s, x, ma, T0 + 10 * SEC) == APR_INT64_MAX,
       "sched health: a new mark set after the operator's re-enable stays");
    OK(tb_sched_clear_error(s, x, T0 + 20 * SEC) == 1,
       "sched health: a clear_error after the new mark clears it");
}

static void brief_failures(tb_sched_t *s)
{
    int d1 = tb_sched_slot(s, 30), f = tb_sched_slot(s, 31), h = tb_sched_slot(s, 32);
    apr_uint32_t ma = tb_sched_model_hash("gpt-4o");
    apr_uint32_t mb = tb_sched_model_hash("gpt-4o-mini");
    static const int expect[] = { 5, 10, 20, 40, 60, 60 };
    apr_interval_time_t d;
    const tb_sched_cool_t *e;
    tb_sched_view_t v;
    apr_time_t t = T0, until;
    int i, doubling = 1;

    /* each failure when the last cooldown ends: 5, 10, 20, 40, 60, 60 s */
    for (i = 0; i < 6; ++i) {
        d = report(s, d1, ma, TB_OUT_SERVER, 503, -1, t);
        doubling &= d == expect[i] * SEC
            && tb_sched_ready_at(s, d1, ma, t) == t + d;
        t += d;
    }
    tb_sched_view(s, d1, &v);
    e = entry(&v, ma);
    OK(doubling, "sched health: 5xx repeats cool the pair 5, 10, 20, 40 s, "
       "then the 60 s maximum");
    OK(e && e->streak == 6 && e->reason == TB_OUT_SERVER && e->status == 503
       && v.account.until == 0 && tb_sched_ready_at(s, d1, mb, T0) == 0,
       "sched health: the view counts a streak of 6; the account and other "
       "models are not cooled");

    report(s, d1, ma, TB_OUT_OK, 200, -1, t);
    tb_sched_view(s, d1, &v);
    OK(!entry(&v, ma) && tb_sched_ready_at(s, d1, ma, t) == 0,
       "sched health: a success removes the pair's entry");
    d = report(s, d1, ma, TB_OUT_SERVER, 500, -1, t);
    OK(d == POL.error, "sched health: after a success the back-off starts "
       "again at pol.error");

    /* a streak whose last cooldown ended long ago starts again */
    d = report(s, d1, ma, TB_OUT_TIMEOUT, 0, -1, t + d);
    until = tb_sched_ready_at(s, d1, ma, t);
    OK(d == 2 * POL.error, "sched health: a timeout on the pair continues "
       "the streak (10 s)");
    d = report(s, d1, ma, TB_OUT_SERVER, 502, -1, until + POL.error_max);
    OK(d == 4 * POL.error, "sched health: a failure error_max after the last "
       "cooldown ended still doubles (20 s)");
    until = tb_sched_ready_at(s, d1, ma, until + POL.error_max);
    d = report(s, d1, ma, TB_OUT_SERVER, 502, -1, until + POL.error_max + 1);
    tb_sched_view(s, d1, &v);
    e = entry(&v, ma);
    OK(d == POL.error && e && e->streak == 1,
       "sched health: a failure more than error_max after the last cooldown "
       "ended starts again at pol.error, streak 1");

    d = report(s, d1, mb, TB_OUT_TIMEOUT, 0, -1, T0);
    OK(d == POL.error && tb_sched_ready_at(s, d1, mb, T0) == T0 + POL.error,
       "sched health: a timeout cools its (account, model) for pol.error");
    d = report(s, d1, mb, TB_OUT_STREAM, 200, -1, T0 + POL.error);
    tb_sched_view(s, d1, &v);
    e = entry(&v, mb);
    OK(d == 2 * POL.error && e && e->reason == TB_OUT_STREAM && e->streak == 2
       && v.account.until == 0,
       "sched health: a failed stream cools the pair too, doubling the streak");

    d = report(s, f, ma, TB_OUT_CONNECT, 0, -1, T0);
    tb_sched_view(s, f, &v);
    OK(d == POL.error && tb_sched_ready_at(s, f, ma, T0) == T0 + POL.error
       && tb_sched_ready_at(s, f, mb, T0) == T0 + POL.error
       && v.account.reason == TB_OUT_CONNECT && !entry(&v, ma),
       "sched health: a connection failure cools the whole account for "
       "pol.error");
    d = report(s, f, mb, TB_OUT_CONNECT, 0, -1, T0 + POL.error);
    OK(d == 2 * POL.error, "sched health: connection failures double too");

    /* a success clears the account and that model, nothing else */
    report(s, h, ma, TB_OUT_SERVER, 500, -1, T0);
    report(s, h, mb, TB_OUT_SERVER, 500, -1, T0);
    report(s, h, ma, TB_OUT_CONNECT, 0, -1, T0);
    report(s, h, ma, TB_OUT_OK, 200, -1, T0 + 1);
    tb_sched_view(s, h, &v);
    OK(tb_sched_ready_at(s, h, ma, T0 + 1) == 0 && v.account.until == 0
       && v.account.streak == 0 && !entry(&v, ma),
       "sched health: a success clears the account's cooldown and the "
       "model's entry");
    OK(tb_sched_ready_at(s, h, mb, T0 + 1) == T0 + POL.error && entry(&v, mb),
       "sched health: another model's cooldown survives the success");

    OK(report(s, -1, ma, TB_OUT_SERVER, 500, -1, T0) == 0
       && report(NULL, 0, ma, TB_OUT_AUTH, 401, -1, T0) == 0
       && tb_sched_ready_at(s, -1, ma, T0) == 0,
       "sched health: reports without a slot or table are ignored");
}

/* Cooldowns meet: a shorter one never cuts a longer one short, and a
 * success clears only what was set before its own attempt began. */
static void overlaps(tb_sched_t *s)
{
    int slot = tb_sched_slot(s, 50), q = tb_sched_slot(s, 51);
    apr_uint32_t ma = tb_sched_model_hash("gpt-4o");
    apr_uint32_t mb = tb_sched_model_hash("gpt-4o-mini");
    const tb_sched_cool_t *e;
    tb_sched_view_t v;

    report(s, slot, ma, TB_OUT_RATE_LIMITED, 429, 60 * SEC, T0);
    report(s, slot, ma, TB_OUT_SERVER, 500, -1, T0 + SEC);
    tb_sched_view(s, slot, &v);
    e = entry(&v, ma);
    OK(tb_sched_ready_at(s, slot, ma, T0 + SEC) == T0 + 60 * SEC && e
       && e->reason == TB_OUT_RATE_LIMITED && e->status == 429 && e->streak == 2,
       "sched overlap: a 5 s failure during a 60 s rate limit leaves the "
       "60 s and its reason; the streak counts it (2)");
    report(s, slot, mb, TB_OUT_SERVER, 500, -1, T0);
    report(s, slot, mb, TB_OUT_RATE_LIMITED, 429, 30 * SEC, T0 + SEC);
    OK(tb_sched_ready_at(s, slot, mb, T0 + SEC) == T0 + 31 * SEC,
       "sched overlap: a longer cooldown replaces a shorter one");

    report(s, q, ma, TB_OUT_QUOTA, 402, -1, T0);
    report(s, q, ma, TB_OUT_CONNECT, 0, -1, T0 + SEC);
    tb_sched_view(s, q, &v);
    OK(tb_sched_ready_at(s, q, mb, T0 + SEC) == T0 + POL.quota
       && v.account.reason == TB_OUT_QUOTA,
       "sched overlap: a connection failure does not shorten the account's "
       "quota cooldown");

    /* successes of attempts that began before, or after, the failure */
    report(s, slot, ma, TB_OUT_OK, 200, -1, T0 + 2 * SEC);
    report(s, slot, mb, TB_OUT_OK, 200, -1, T0 + 2 * SEC);
    report(s, slot, ma, TB_OUT_SERVER, 503, -1, T0 + 10 * SEC);
    tb_sched_report(s, slot, ma, TB_OUT_OK, 200, -1, &POL, T0 + 5 * SEC,
                    T0 + 12 * SEC);
    OK(tb_sched_ready_at(s, slot, ma, T0 + 12 * SEC) == T0 + 15 * SEC,
       "sched overlap: a success of an attempt begun before the failure "
       "leaves the pair's cooldown");
    tb_sched_report(s, slot, ma, TB_OUT_OK, 200, -1, &POL, T0 + 10 * SEC,
                    T0 + 12 * SEC);
    tb_sched_view(s, slot, &v);
    OK(tb_sched_ready_at(s, slot, ma, T0 + 12 * SEC) == 0 && !entry(&v, ma),
       "sched overlap: a success of an attempt begun when the failure was "
       "reported clears it");

    tb_sched_report(s, q, ma, TB_OUT_OK, 200, -1, &POL, T0 + SEC - 1,
                    T0 + 2 * SEC);
    OK(tb_sched_ready_at(s, q, ma, T0 + 2 * SEC) == T0 + POL.quota,
       "sched overlap: a success begun before the account's last failure "
       "leaves the account's cooldown");
    tb_sched_report(s, q, ma, TB_OUT_OK, 200, -1, &POL, T0 + 2 * SEC,
                    T0 + 3 * SEC);
    tb_sched_view(s, q, &v);
    OK(tb_sched_ready_at(s, q, ma, T0 + 3 * SEC) == 0 && v.account.until == 0
       && v.successes == 2,
       "sched overlap: a success begun after it clears it; both successes "
       "are counted");
}

static void eviction_and_stats(tb_sched_t *s)
{
    int slot = tb_sched_slot(s, 40), st = tb_sched_slot(s, 41), i, kept = 1;
    apr_uint32_t m[TB_SCHED_MODELS + 1];
    tb_sched_view_t v;
    char name[16];

    /* eight models cool, the fourth ends first; a ninth evicts it */
    for (i = 0; i <= TB_SCHED_MODELS; ++i) {
        name[0] = 'm';
        name[1] = (char)('0' + i);
        name[2] = '\0';
        m[i] = tb_sched_model_hash(name);
    }
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        report(s, slot, m[i], TB_OUT_RATE_LIMITED, 429,
               (i == 3 ? 1 : 10 + i) * SEC, T0);
    }
    report(s, slot, m[TB_SCHED_MODELS], TB_OUT_RATE_LIMITED, 429, 30 * SEC,
           T0);
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        if (i != 3) {
            kept &= tb_sched_ready_at(s, slot, m[i], T0) == T0 + (10 + i) * SEC;
        }
    }
    tb_sched_view(s, slot, &v);
    OK(tb_sched_ready_at(s, slot, m[3], T0) == 0 && !entry(&v, m[3]),
       "sched health: the 9th model cooling evicts the entry that ends first");
    OK(kept, "sched health: the other 7 cooldowns are kept");
    OK(tb_sched_ready_at(s, slot, m[TB_SCHED_MODELS], T0) == T0 + 30 * SEC
       && entry(&v, m[TB_SCHED_MODELS])
       && entry(&v, m[TB_SCHED_MODELS])->streak == 1,
       "sched health: the 9th model cools in the freed entry, streak 1");

    report(s, st, m[0], TB_OUT_OK, 200, -1, T0);
    report(s, st, m[0], TB_OUT_OK, 200, -1, T0 + 1);
    report(s, st, m[0], TB_OUT_SERVER, 503, -1, T0 + 2);
    tb_sched_view(s, st, &v);
    OK(v.last_outcome == TB_OUT_SERVER && v.last_status == 503
       && v.last_failure == T0 + 2,
       "sched health: after a failure the view shows its outcome, status "
       "and time");
    report(s, st, m[1], TB_OUT_OK, 200, -1, T0 + 3);
    tb_sched_view(s, st, &v);
    OK(v.successes == 3 && v.failures == 1 && v.last_success == T0 + 3
       && v.last_failure == T0 + 2,
       "sched health: the view counts 3 successes and 1 failure, with the "
       "last time of each");
}

/* ---- pick with health ------------------------------------------------------- */

static void pick_health(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 1);
    apr_uint32_t m = tb_sched_model_hash("gpt-4o");
    tb_sched_want_t w = want(m, T0);
    int a = tb_sched_slot(s, 1), b = tb_sched_slot(s, 2), c3 = tb_sched_slot(s, 3);
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];
    int counts[NC + 1], other, idx;

    memset(ex, 0, sizeof(ex));
    c[0] = cand(a, 2, 1, 1);
    c[1] = cand(b, 0, 1, 1);    /* the lower tier */
    c[2] = cand(c3, 2, 1, 1);

    report(s, a, m, TB_OUT_SERVER, 500, -1, T0);
    tally(s, c, 3, ex, w, TB_PICK_HEALTHY, 300, counts, &other);
    OK(other == 0 && counts[0] == 0 && counts[2] == 300,
       "sched pick: a cooling candidate is skipped while its tier mate is "
       "healthy (%d/%d/%d)", counts[0], counts[1], counts[2]);
    report(s, c3, m, TB_OUT_SERVER, 500, -1, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_HEALTHY, 1),
       "sched pick: the whole top tier cooling: the healthy lower tier serves");

    /* all cooling: a until +5 s, b (lower tier) until +2 s, c until +60 s */
    report(s, b, m, TB_OUT_RATE_LIMITED, 429, 2 * SEC, T0);
    report(s, c3, m, TB_OUT_RATE_LIMITED, 429, 60 * SEC, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_RECOVERING, 1),
       "sched pick: all cooling: RECOVERING picks the one whose cooldown "
       "ends first, though in a lower tier");
    OK(tb_sched_pick(s, -1, c, 3, ex, &w, &idx) == TB_PICK_RECOVERING
       && idx == 1 && in_flight(s, b) == 1,
       "sched pick: RECOVERING takes a lease too");
    OK(always(s, c, 3, ex, w, TB_PICK_RECOVERING, 0),
       "sched pick: the first to recover full: the next to recover");
    OK(take(s, -1, a, 1) && take(s, -1, c3, 1)
       && always(s, c, 3, ex, w, TB_PICK_FULL, -1),
       "sched pick: all cooling and all full: FULL");
    tb_sched_release(s, a, -1);
    tb_sched_release(s, b, -1);
    tb_sched_release(s, c3, -1);

    w.now = T0 + 2 * SEC;   /* b recovered; a and c still cool */
    OK(take(s, -1, b, 1) && always(s, c, 3, ex, w, TB_PICK_FULL, -1),
       "sched pick: the only healthy one at its limit: FULL (wait for it), "
       "not a cooling one");
    tb_sched_release(s, b, -1);
    w.now = T0;

    /* error marks */
    report(s, a, m, TB_OUT_AUTH, 401, -1, T0);
    report(s, c3, m, TB_OUT_AUTH, 401, -1, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_RECOVERING, 1),
       "sched pick: error-marked candidates are passed over for a cooling one");
    ex[1] = 1;
    OK(always(s, c, 3, ex, w, TB_PICK_NONE, -1),
       "sched pick: only error-marked candidates left: NONE");
    ex[1] = 0;
    report(s, b, m, TB_OUT_AUTH, 401, -1, T0);
    OK(always(s, c, 3, ex, w, TB_PICK_NONE, -1),
       "sched pick: all error-marked: NONE");
    tb_sched_clear_error(s, a, T0);
    tb_sched_clear_error(s, b, T0);
    tb_sched_clear_error(s, c3, T0);
    report(s, a, m, TB_OUT_OK, 200, -1, T0);
    report(s, b, m, TB_OUT_OK, 200, -1, T0);
    report(s, c3, m, TB_OUT_OK, 200, -1, T0);
    OK(tb_sched_ready_at(s, a, m, T0) == 0 && tb_sched_ready_at(s, b, m, T0) == 0
       && tb_sched_ready_at(s, c3, m, T0) == 0,
       "sched pick: marks cleared and successes reported: all healthy again");
}

static void preferred(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 1);
    apr_uint32_t m = tb_sched_model_hash("gpt-4o");
    tb_sched_want_t w = want(m, T0);
    int a = tb_sched_slot(s, 1), b = tb_sched_slot(s, 2);
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];

    memset(ex, 0, sizeof(ex));
    c[0] = cand(a, 5, 1, 0);
    c[1] = cand(b, 1, 1, 1);    /* the preferred: lower tier, limit 1 */

    w.preferred = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_PREFERRED, 1),
       "sched preferred: healthy with room, it is taken over a higher tier "
       "(PREFERRED)");
    w.strict = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_PREFERRED, 1),
       "sched preferred: strict, healthy with room: PREFERRED");

    w.strict = 0;
    OK(take(s, -1, b, 1) && always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: full, not strict: the normal choice");
    w.strict = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_FULL, -1),
       "sched preferred: full and strict: FULL, though another has room");
    tb_sched_release(s, b, -1);

    report(s, b, m, TB_OUT_SERVER, 500, -1, T0);
    w.strict = 0;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: cooling, not strict: the normal choice");
    w.strict = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_PREFERRED, 1),
       "sched preferred: cooling and strict: taken anyway (PREFERRED)");
    OK(take(s, -1, b, 1) && always(s, c, 2, ex, w, TB_PICK_FULL, -1),
       "sched preferred: cooling, full and strict: FULL");
    tb_sched_release(s, b, -1);
    report(s, b, m, TB_OUT_OK, 200, -1, T0);

    /* a strict preference is the only choice: once it cannot serve at
     * all, nothing else may */
    report(s, b, m, TB_OUT_AUTH, 401, -1, T0);
    OK(always(s, c, 2, ex, w, TB_PICK_NONE, -1),
       "sched preferred: error-marked and strict: NONE, though another is "
       "healthy");
    w.strict = 0;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: error-marked, not strict: the normal choice");
    tb_sched_clear_error(s, b, T0);

    ex[1] = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: excluded, not strict: the normal choice");
    w.strict = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_NONE, -1),
       "sched preferred: excluded and strict: NONE");
    ex[1] = 0;

    c[1].weight = 0;
    OK(always(s, c, 2, ex, w, TB_PICK_PREFERRED, 1),
       "sched preferred: weight 0 and strict: still taken (it alone holds "
       "what the request refers to)");
    w.strict = 0;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: weight 0, not strict: the normal choice");
    c[1].weight = 1;

    w.preferred = 2;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: an index out of range is ignored");
    w.strict = 1;
    OK(always(s, c, 2, ex, w, TB_PICK_HEALTHY, 0),
       "sched preferred: an index out of range is ignored, strict too");
    w.strict = 0;

    /* preferred cooling, not strict, and everyone cooling: the first to
     * recover, the preferred or not */
    w.preferred = 1;
    report(s, a, m, TB_OUT_RATE_LIMITED, 429, 30 * SEC, T0);
    report(s, b, m, TB_OUT_RATE_LIMITED, 429, 10 * SEC, T0);
    OK(always(s, c, 2, ex, w, TB_PICK_RECOVERING, 1),
       "sched preferred: all cooling: RECOVERING, the first to recover");
}

static void excluded_kept(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 8, 1);
    apr_uint32_t m = tb_sched_model_hash("gpt-4o");
    tb_sched_want_t w = want(m, T0);
    static const unsigned char given[5] = { 0, 1, 0x7f, 2, 0 };
    unsigned char ex[NC];
    tb_sched_cand_t c[NC];
    int i, idx, same = 1, never = 1;
    apr_uint64_t state = 3;

    for (i = 0; i < 5; ++i) {
        c[i] = cand(tb_sched_slot(s, i + 1), i % 2, 1, 1);
    }
    memcpy(ex, given, sizeof(given));
    /* healthy picks, then full (both free ones held), then recovering,
     * then none: the flags must be as given after each */
    for (i = 0; i < 400; ++i) {
        tb_pick_t r;

        w.rnd = next_rnd(&state);
        r = tb_sched_pick(s, -1, c, 5, ex, &w, &idx);
        same &= !memcmp(ex, given, sizeof(given));
        never &= r == TB_PICK_HEALTHY && (idx == 0 || idx == 4);
        tb_sched_release(s, c[idx < 0 ? 0 : idx].slot, -1);
    }
    OK(never, "sched excluded: candidates flagged 1, 2 and 0x7f are never "
       "picked");
    take(s, -1, c[0].slot, 1);
    take(s, -1, c[4].slot, 1);
    same &= tb_sched_pick(s, -1, c, 5, ex, &w, &idx) == TB_PICK_FULL
        && !memcmp(ex, given, sizeof(given));
    report(s, c[0].slot, m, TB_OUT_SERVER, 500, -1, T0);
    report(s, c[4].slot, m, TB_OUT_SERVER, 500, -1, T0);
    same &= tb_sched_pick(s, -1, c, 5, ex, &w, &idx) == TB_PICK_FULL
        && !memcmp(ex, given, sizeof(given));
    tb_sched_release(s, c[0].slot, -1);
    same &= tb_sched_pick(s, -1, c, 5, ex, &w, &idx) == TB_PICK_RECOVERING
        && idx == 0 && !memcmp(ex, given, sizeof(given));
    report(s, c[0].slot, m, TB_OUT_AUTH, 401, -1, T0);
    report(s, c[4].slot, m, TB_OUT_AUTH, 401, -1, T0);
    same &= tb_sched_pick(s, -1, c, 5, ex, &w, &idx) == TB_PICK_NONE
        && !memcmp(ex, given, sizeof(given));
    OK(same, "sched excluded: the flags are exactly as given after HEALTHY, "
       "FULL, RECOVERING and NONE picks");
}

/* ---- names and hashes, no table --------------------------------------------- */

static void names(void)
{
    static const char *const expect[TB_OUT__COUNT] = {
        "ok", "rate_limited", "quota_exhausted", "credential_refused",
        "server_error", "timeout", "connect_failed", "stream_failed"
    };
    int i, all = 1;

    for (i = 0; i < TB_OUT__COUNT; ++i) {
        all &= !strcmp(tb_outcome_name((tb_outcome_t)i), expect[i]);
    }
    OK(all, "sched names: each outcome has its name (ok, rate_limited, "
       "quota_exhausted, credential_refused, server_error, timeout, "
       "connect_failed, stream_failed)");
    OK(!strcmp(tb_outcome_name(TB_OUT__COUNT), "unknown")
       && !strcmp(tb_outcome_name((tb_outcome_t)-1), "unknown"),
       "sched names: a value out of range is \"unknown\"");

    OK(tb_sched_model_hash("gpt-4o") == tb_sched_model_hash("gpt-4o")
       && tb_sched_model_hash("gpt-4o") != tb_sched_model_hash("gpt-4o-mini"),
       "sched hash: stable for a model, different for another");
    OK(tb_sched_model_hash("") == 2166136261u
       && tb_sched_model_hash(NULL) == tb_sched_model_hash(""),
       "sched hash: FNV-1a: the empty name (or NULL) is the offset basis");
    OK(tb_sched_model_hash("ppkttia") == 1,
       "sched hash: a name whose FNV-1a is 0 hashes to 1, never 0");
}

static void null_table(void)
{
    tb_sched_cand_t c[NC];
    unsigned char ex[NC];
    tb_sched_want_t w = want(tb_sched_model_hash("gpt-4o"), T0);
    tb_sched_view_t v;
    int counts[NC + 1], other, i, idx, all = 1;

    memset(ex, 0, sizeof(ex));
    c[0] = cand(0, 1, 1, 1);
    c[1] = cand(1, 1, 3, 1);
    c[2] = cand(2, 0, 9, 1);
    tally(NULL, c, 3, ex, w, TB_PICK_HEALTHY, 4000, counts, &other);
    OK(other == 0 && counts[2] == 0 && counts[0] > 800 && counts[0] < 1200
       && counts[1] > 2800 && counts[1] < 3200,
       "sched null: without a table, plain priority and weight 1:3, no "
       "limits (%d/%d/%d)", counts[0], counts[1], counts[2]);
    for (i = 0; i < 10; ++i) {
        all &= tb_sched_pick(NULL, -1, c, 1, ex, &w, &idx) == TB_PICK_HEALTHY
            && idx == 0;
    }
    OK(all, "sched null: limit 1 without a table: 10 picks, none FULL");
    w.preferred = 2;
    OK(tb_sched_pick(NULL, -1, c, 3, ex, &w, &idx) == TB_PICK_PREFERRED
       && idx == 2, "sched null: the preferred candidate is taken");
    ex[2] = 1;
    OK(tb_sched_pick(NULL, -1, c, 3, ex, &w, &idx) == TB_PICK_HEALTHY
       && idx != 2, "sched null: excluded still counts");
    tb_sched_release(NULL, 0, 0);
    OK(tb_sched_slot(NULL, 1) == -1 && tb_sched_proc_join(NULL, 1) == -1
       && tb_sched_proc_reap(NULL, 1) == 0
       && tb_sched_proc_sweep(NULL, alive) == 0
       && tb_sched_ready_at(NULL, 0, 1, T0) == 0
       && tb_sched_clear_error(NULL, 0, T0) == 0
       && tb_sched_view(NULL, 0, &v) == APR_NOTFOUND,
       "sched null: every call on no table is a harmless no-op");
}

/* ---- concurrency ------------------------------------------------------------ */

#define HAMMER_ROUNDS 4000
#define NTHREADS 6
#define NCHILDREN 5
#define FLIPS 3000

/* One holder's loop: pick among `c` (two slots, each with a limit),
 * check the count the view shows under its lease, give it back. */
typedef struct hammer_t {
    tb_sched_t *s;
    tb_sched_cand_t c[2];
    int proc;                /* the process row, or -1 */
    int watch;               /* a slot another writer flips, or -1 */
    apr_uint64_t seed;
    unsigned int max[2];     /* the most in flight seen under a lease */
    unsigned long leased, full;
    unsigned long bad;       /* wrong result, count out of 1..limit,
                              * excluded changed, a torn view */
} hammer_t;

/* Is the account cooldown of `slot` as flip() leaves it after one of its
 * two writes, and not a mixture? */
static int whole(tb_sched_t *s, int slot)
{
    tb_sched_view_t v;

    if (tb_sched_view(s, slot, &v) != APR_SUCCESS) {
        return 0;
    }
    if (v.account.until == 0) {
        return v.account.reason == TB_OUT_OK && v.account.status == 0
            && v.account.streak == 0;
    }
    return v.account.until == T0 + POL.quota
        && v.account.reason == TB_OUT_QUOTA && v.account.status == 402
        && v.account.streak == 1;
}

/* Alternates a quota cooldown and a success on `slot`, n times. */
static void flip(tb_sched_t *s, int slot, int n)
{
    int i;

    for (i = 0; i < n; ++i) {
        report(s, slot, 1, TB_OUT_QUOTA, 402, -1, T0);
        report(s, slot, 1, TB_OUT_OK, 200, -1, T0);
    }
}

static void hammer(hammer_t *h)
{
    unsigned char ex[2] = { 0, 0 };
    tb_sched_want_t w = want(tb_sched_model_hash("gpt-4o"), T0);
    int i, idx;

    for (i = 0; i < HAMMER_ROUNDS; ++i) {
        tb_pick_t r;
        long seen;

        w.rnd = next_rnd(&h->seed);
        r = tb_sched_pick(h->s, h->proc, h->c, 2, ex, &w, &idx);
        h->bad += ex[0] != 0 || ex[1] != 0;
        if (h->watch >= 0) {
            h->bad += !whole(h->s, h->watch);
        }
        if (r == TB_PICK_FULL) {
            ++h->full;
            sched_yield();
            continue;
        }
        if (r != TB_PICK_HEALTHY || idx < 0 || idx > 1) {
            ++h->bad;
            continue;
        }
        ++h->leased;
        seen = in_flight(h->s, h->c[idx].slot);
        h->bad += seen < 1 || seen > (long)h->c[idx].limit;
        if (seen > (long)h->max[idx]) {
            h->max[idx] = (unsigned int)seen;
        }
        sched_yield();
        tb_sched_release(h->s, h->c[idx].slot, h->proc);
    }
}

static void hammer_init(hammer_t *h, tb_sched_t *s, unsigned int limit0,
                        unsigned int limit1, int proc, int watch,
                        apr_uint64_t seed)
{
    memset(h, 0, sizeof(*h));
    h->s = s;
    h->c[0] = cand(tb_sched_slot(s, 1), 0, 1, limit0);
    h->c[1] = cand(tb_sched_slot(s, 2), 0, 1, limit1);
    h->proc = proc;
    h->watch = watch;
    h->seed = seed;
}

static void *APR_THREAD_FUNC hammer_thread(apr_thread_t *t, void *data)
{
    hammer(data);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void *APR_THREAD_FUNC flip_thread(apr_thread_t *t, void *data)
{
    hammer_t *h = data;

    flip(h->s, h->watch, FLIPS);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Sums the holders' results into the checks. */
static void hammer_verdict(const char *who, tb_sched_t *s, const hammer_t *h,
                           int n)
{
    unsigned long leased = 0, full = 0, bad = 0;
    unsigned int max0 = 0, max1 = 0;
    int i;

    for (i = 0; i < n; ++i) {
        leased += h[i].leased;
        full += h[i].full;
        bad += h[i].bad;
        max0 = h[i].max[0] > max0 ? h[i].max[0] : max0;
        max1 = h[i].max[1] > max1 ? h[i].max[1] : max1;
    }
    OK(bad == 0, "sched %s: every pick HEALTHY or FULL, every count seen "
       "under a lease in 1..limit, excluded untouched, no torn view (%lu bad)",
       who, bad);
    OK(max0 <= h[0].c[0].limit && max1 <= h[0].c[1].limit,
       "sched %s: never more in flight than the limits %u and %u (the most "
       "seen: %u and %u; %lu leases, %lu FULL)", who, h[0].c[0].limit,
       h[0].c[1].limit, max0, max1, leased, full);
    OK(leased > 0, "sched %s: leases were taken (%lu)", who, leased);
    OK(in_flight(s, h[0].c[0].slot) == 0 && in_flight(s, h[0].c[1].slot) == 0,
       "sched %s: all given back: 0 in flight at the end", who);
}

static void threads(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 4, 2);
    hammer_t h[NTHREADS + 1];
    apr_thread_t *th[NTHREADS + 1];
    int i, started = 0, row = tb_sched_proc_join(s, (apr_uint32_t)getpid());
    int watch = tb_sched_slot(s, 3);

    for (i = 0; i <= NTHREADS; ++i) {
        hammer_init(&h[i], s, 3, 2, row, watch, (apr_uint64_t)i * 1000 + 1);
        if (apr_thread_create(&th[i], NULL, i < NTHREADS ? hammer_thread
                              : flip_thread, &h[i], p) != APR_SUCCESS) {
            break;
        }
        ++started;
    }
    for (i = 0; i < started; ++i) {
        apr_status_t rv;

        apr_thread_join(&rv, th[i]);
    }
    OK(started == NTHREADS + 1, "sched threads: %d holders and a writer "
       "started", NTHREADS);
    hammer_verdict("threads", s, h, started < NTHREADS ? started : NTHREADS);
    OK(whole(s, watch), "sched threads: the writer's last state is whole");
    OK(tb_sched_proc_reap(s, (apr_uint32_t)getpid()) == 0,
       "sched threads: the process row holds no lease at the end");
}

static void processes(void)
{
    apr_size_t tsize = tb_sched_size(4, NCHILDREN + 1);
    apr_size_t size = tsize + sizeof(hammer_t) * NCHILDREN;
    void *mem = shared_mem(size);
    hammer_t *h;
    tb_sched_t *s;
    pid_t pid[NCHILDREN];
    int i, exits = 0, reaped = 0, watch;

    OK(mem != NULL, "sched processes: shared memory");
    if (!mem) {
        return;
    }
    s = tb_sched_format(mem, 4, NCHILDREN + 1);
    h = (hammer_t *)((char *)mem + tsize);
    watch = tb_sched_slot(s, 3);
    for (i = 0; i < NCHILDREN; ++i) {
        hammer_init(&h[i], s, 2, 1, -1, watch, (apr_uint64_t)i * 7919 + 3);
        fflush(stdout);
        fflush(stderr);
        pid[i] = fork();
        if (pid[i] == 0) {
            h[i].proc = tb_sched_proc_join(s, (apr_uint32_t)getpid());
            h[i].bad += h[i].proc < 0;
            hammer(&h[i]);
            _exit(0);
        }
    }
    flip(s, watch, FLIPS);     /* health writes while the children pick */
    for (i = 0; i < NCHILDREN; ++i) {
        int status = -1;

        if (pid[i] > 0 && waitpid(pid[i], &status, 0) == pid[i]
            && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ++exits;
            reaped += tb_sched_proc_reap(s, (apr_uint32_t)pid[i]);
        }
    }
    OK(exits == NCHILDREN, "sched processes: %d of %d children ran to their "
       "end", exits, NCHILDREN);
    hammer_verdict("processes", s, h, NCHILDREN);
    OK(reaped == 0, "sched processes: the children's rows held no lease "
       "when they exited (%d)", reaped);
    munmap(mem, size);
}

/* ---- a writer that dies holding a slot's lock ------------------------------ */

/* A process that dies in the middle of a report (a crash, a kill) leaves
 * the slot's writer lock taken and its sequence count odd: every later
 * reader and writer would wait for good. To die there for sure, the
 * child reports with a NULL policy, which the report reads only inside
 * the lock. Each failure sets a bit of the exit status. */
#define CRASH_DIED      1   /* the child did not die in its report */
#define CRASH_TAKEN     2   /* then report and view were not whole */
#define CRASH_REAP      4   /* reaping its pid did not give back its lease */

static int crashed_writer_round(tb_sched_t *s, int slot, int reap_first)
{
    int bits = 0, status = -1;
    pid_t pid;

    pid = fork();
    if (pid == 0) {
        /* NB: its crash is meant: a sanitizer's report of it must not
         * reach the run's stderr, where it would fail a sanitizer run */
        int null = open("/dev/null", O_WRONLY);
        struct rlimit no_core = { 0, 0 };

        /* ... nor a core file land in the tree */
        setrlimit(RLIMIT_CORE, &no_core);
        if (null < 0 || dup2(null, STDERR_FILENO) < 0) {
            _exit(0);
        }
        take(s, tb_sched_proc_join(s, (apr_uint32_t)getpid()), slot, 0);
        tb_sched_report(s, slot, 1, TB_OUT_QUOTA, 402, -1, NULL, T0, T0);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid
        || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        bits |= CRASH_DIED;
    }
    if (reap_first && tb_sched_proc_reap(s, (apr_uint32_t)pid) != 1) {
        bits |= CRASH_REAP;
    }
    /* the lock is the dead child's: these must take it over */
    report(s, slot, 1, TB_OUT_OK, 200, -1, T0);
    report(s, slot, 1, TB_OUT_QUOTA, 402, -1, T0);
    if (!whole(s, slot) || tb_sched_ready_at(s, slot, 1, T0) != T0 + POL.quota) {
        bits |= CRASH_TAKEN;
    }
    report(s, slot, 1, TB_OUT_OK, 200, -1, T0);
    if (!whole(s, slot) || tb_sched_ready_at(s, slot, 1, T0) != 0) {
        bits |= CRASH_TAKEN;
    }
    if (!reap_first && tb_sched_proc_reap(s, (apr_uint32_t)pid) != 1) {
        bits |= CRASH_REAP;
    }
    if (in_flight(s, slot) != 0) {
        bits |= CRASH_REAP;
    }
    return bits;
}

static void crashed_writer(void)
{
    apr_size_t size = tb_sched_size(2, 2);
    void *mem = shared_mem(size);
    int status = -1, round, bits[2], slot;
    tb_sched_t *s;
    pid_t pid;

    OK(mem != NULL, "sched crashed writer: shared memory");
    if (!mem) {
        return;
    }
    s = tb_sched_format(mem, 2, 2);
    slot = tb_sched_slot(s, 1);
    for (round = 0; round < 2; ++round) {
        /* in a process of its own, under an alarm: a hang fails the
         * check instead of the run */
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid == 0) {
            alarm(60);
            _exit(crashed_writer_round(s, slot, round));
        }
        status = -1;
        if (pid > 0) {
            waitpid(pid, &status, 0);
        }
        bits[round] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        OK(bits[round] >= 0, "sched crashed writer: %s, nothing hangs on the "
           "dead writer's lock (%s %d)", round ? "its row reaped first"
           : "its row not reaped", WIFSIGNALED(status) ? "signal" : "exit",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        if (bits[round] < 0) {
            break;
        }
        OK(!(bits[round] & CRASH_DIED),
           "sched crashed writer: the writer died inside its report");
        OK(!(bits[round] & CRASH_TAKEN),
           "sched crashed writer: %s, the next reports take the lock over and "
           "leave the slot whole", round ? "reaped" : "not reaped");
        OK(!(bits[round] & CRASH_REAP),
           "sched crashed writer: reaping its pid %s gives back its lease",
           round ? "first" : "afterwards");
    }
    munmap(mem, size);
}

/* The status page's "recent": outcomes of the last five minutes. */
static void recent(apr_pool_t *p)
{
    tb_sched_t *s = new_table(p, 16, 1);
    int slot = tb_sched_slot(s, 77);
    apr_uint64_t ok, failed;
    apr_time_t t = T0 - T0 % apr_time_from_sec(60);   /* a minute's start */

    report(s, slot, 1, TB_OUT_OK, 200, -1, t);
    report(s, slot, 1, TB_OUT_OK, 200, -1, t + apr_time_from_sec(61));
    report(s, slot, 1, TB_OUT_SERVER, 500, -1, t + apr_time_from_sec(62));
    tb_sched_recent(s, slot, t + apr_time_from_sec(62), &ok, &failed);
    OK(ok == 2 && failed == 1, "recent: outcomes of this minute and the last "
       "counted (%lu/%lu)", (unsigned long)ok, (unsigned long)failed);
    tb_sched_recent(s, slot, t + apr_time_from_sec(5 * 60 + 30), &ok, &failed);
    OK(ok == 2 && failed == 1, "recent: still there five minutes on");
    tb_sched_recent(s, slot, t + apr_time_from_sec(6 * 60 + 1), &ok, &failed);
    OK(ok == 1 && failed == 1, "recent: the oldest minute drops out first "
       "(%lu/%lu)", (unsigned long)ok, (unsigned long)failed);
    report(s, slot, 1, TB_OUT_OK, 200, -1, t + apr_time_from_sec(7 * 60 + 5));
    tb_sched_recent(s, slot, t + apr_time_from_sec(7 * 60 + 5), &ok, &failed);
    OK(ok == 1 && failed == 0, "recent: a bucket reused for a new minute "
       "starts empty (%lu/%lu)", (unsigned long)ok, (unsigned long)failed);
    tb_sched_recent(s, -1, t, &ok, &failed);
    OK(ok == 0 && failed == 0, "recent: no slot, nothing");
}

void test_sched(apr_pool_t *p)
{
    apr_pool_t *sub;
    tb_sched_t *s;

    apr_pool_create(&sub, p);
    table(sub);
    weights(sub);
    tiers(sub);
    leases(sub);
    proc_rows(sub);
    s = new_table(sub, 16, 1);
    rate_limits(s);
    quota_and_auth(s);
    brief_failures(s);
    overlaps(s);
    eviction_and_stats(s);
    recent(sub);
    pick_health(sub);
    preferred(sub);
    excluded_kept(sub);
    names();
    null_table();
    threads(sub);
    processes();
    crashed_writer();
    apr_pool_destroy(sub);
}
