/* tb_sched_pick: priority tiers first, then weighted random in the tier. */
#include <string.h>

#include "tb_sched.h"
#include "tb_util.h"
#include "tb_unit.h"

#define MAXR 8

typedef struct {
    tb_account_t acct[MAXR];
    tb_route_t route[MAXR];
    unsigned char excluded[MAXR];
    int n;
} fixture_t;

static void add(fixture_t *f, const char *name, int priority,
                unsigned int weight)
{
    tb_account_t *a = &f->acct[f->n];

    memset(a, 0, sizeof(*a));
    a->id = f->n + 1;
    a->name = name;
    a->priority = priority;
    a->weight = weight;
    a->active = 1;
    f->route[f->n].account = a;
    f->route[f->n].upstream_model = name;
    f->excluded[f->n] = 0;
    ++f->n;
}

static int pick(const fixture_t *f, apr_uint32_t rnd)
{
    return tb_sched_pick(f->route, f->n, f->excluded, rnd);
}

/* A fixed pseudo random sequence (Numerical Recipes LCG). Its low bits
 * cycle with short periods, which is fine for the tolerance checks here;
 * tb_random_u32 is exercised below for the real thing. */
static apr_uint32_t lcg(apr_uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

/* Does `pick` return `want` for all of a spread of rnd values? */
static int always(const fixture_t *f, int want)
{
    apr_uint32_t state = 7, i;
    static const apr_uint32_t edges[] = { 0, 1, 2, 3, 0x7fffffffu,
                                          0x80000000u, 0xffffffffu };

    for (i = 0; i < sizeof(edges) / sizeof(edges[0]); ++i) {
        if (pick(f, edges[i]) != want) {
            return 0;
        }
    }
    for (i = 0; i < 1000; ++i) {
        if (pick(f, lcg(&state)) != want) {
            return 0;
        }
    }
    return 1;
}

static void tiers(void)
{
    fixture_t f;

    f.n = 0;
    add(&f, "low", 1, 100);
    add(&f, "high", 5, 1);
    add(&f, "mid", 3, 10);
    OK(always(&f, 1), "sched: the highest priority tier wins whatever its weight");

    f.excluded[1] = 1;
    OK(always(&f, 2), "sched: with the top tier excluded, the next tier serves");
    f.excluded[2] = 1;
    OK(always(&f, 0), "sched: exclusions fall through to the lowest tier");
    f.excluded[0] = 1;
    OK(always(&f, -1), "sched: everything excluded gives -1");

    f.n = 0;
    add(&f, "a", -5, 1);
    add(&f, "b", -1, 1);
    add(&f, "c", -3, 1);
    OK(always(&f, 1), "sched: negative priorities compare as numbers");

    f.n = 0;
    add(&f, "a", 0, 1);
    add(&f, "b", 0, 1);
    add(&f, "c", 0, 1);
    f.excluded[0] = f.excluded[2] = 1;
    OK(always(&f, 1), "sched: the one not excluded in a tier is the pick");

    f.n = 0;
    OK(pick(&f, 0) == -1 && pick(&f, 12345) == -1,
       "sched: no routes at all gives -1");
}

static void zero_weight(void)
{
    fixture_t f;
    int i, seen_b = 0, seen_c = 0, seen_a = 0;
    apr_uint32_t state = 1;

    f.n = 0;
    add(&f, "drained", 9, 0);
    add(&f, "normal", 1, 1);
    OK(always(&f, 1),
       "sched: a weight 0 account does not make its tier the top one");

    f.n = 0;
    add(&f, "a", 2, 0);
    add(&f, "b", 2, 5);
    add(&f, "c", 2, 1);
    for (i = 0; i < 10000; ++i) {
        int r = pick(&f, lcg(&state));
        seen_a += r == 0;
        seen_b += r == 1;
        seen_c += r == 2;
    }
    OK(seen_a == 0 && seen_b && seen_c,
       "sched: weight 0 is never picked, its tier mates are (%d/%d/%d)",
       seen_a, seen_b, seen_c);

    f.n = 0;
    add(&f, "a", 2, 0);
    add(&f, "b", 1, 0);
    OK(always(&f, -1), "sched: only weight 0 accounts gives -1");
}

static void distribution(void)
{
    fixture_t f;
    apr_uint32_t state = 12345, rnd;
    int i, n = 40000, count[3] = { 0, 0, 0 }, det = 1;
    double share;

    f.n = 0;
    add(&f, "one", 1, 1);
    add(&f, "three", 1, 3);
    for (i = 0; i < n; ++i) {
        int r = pick(&f, lcg(&state));
        if (r >= 0 && r < 2) {
            ++count[r];
        }
    }
    share = (double)count[1] / n;
    OK(count[0] + count[1] == n, "sched: every draw picks one of the tier");
    OK(share > 0.72 && share < 0.78,
       "sched: weights 1:3 give the second ~75%% of %d draws (%.4f)", n, share);

    /* a whole cycle of consecutive rnd values splits exactly by weight */
    count[0] = count[1] = 0;
    for (rnd = 0; rnd < 4000; ++rnd) {
        ++count[pick(&f, rnd) == 1];
    }
    OK(count[0] == 1000 && count[1] == 3000,
       "sched: rnd 0..3999 split exactly 1000/3000 (%d/%d)", count[0],
       count[1]);

    /* the same rnd always gives the same answer */
    state = 99;
    for (i = 0; i < 2000; ++i) {
        rnd = lcg(&state);
        det &= pick(&f, rnd) == pick(&f, rnd);
    }
    OK(det, "sched: deterministic for a fixed rnd");

    /* with the library's own generator, over three accounts */
    f.n = 0;
    add(&f, "a", 4, 1);
    add(&f, "b", 4, 1);
    add(&f, "c", 4, 2);
    add(&f, "standby", 0, 50);
    count[0] = count[1] = count[2] = 0;
    for (i = 0; i < n; ++i) {
        int r = pick(&f, tb_random_u32());
        if (r >= 0 && r < 3) {
            ++count[r];
        }
    }
    OK(count[0] + count[1] + count[2] == n,
       "sched: the lower tier standby is never used while the top has room");
    OK(count[0] > 0.22 * n && count[0] < 0.28 * n
       && count[1] > 0.22 * n && count[1] < 0.28 * n
       && count[2] > 0.47 * n && count[2] < 0.53 * n,
       "sched: weights 1:1:2 with tb_random_u32 give ~25/25/50%% (%d/%d/%d)",
       count[0], count[1], count[2]);

    /* large weights must not overflow the tier's total */
    f.n = 0;
    add(&f, "big1", 0, 0xffffffffu);
    add(&f, "big2", 0, 0xffffffffu);
    {
        int lo = pick(&f, 0), hi = pick(&f, 0xffffffffu);

        OK(lo >= 0 && hi >= 0 && lo != hi,
           "sched: two weights of 2^32-1 do not overflow: both reachable "
           "(%d, %d)", lo, hi);
    }
}

void test_sched(apr_pool_t *p)
{
    (void)p;
    tiers();
    zero_weight();
    distribution();
}
