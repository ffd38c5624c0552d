/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "tb_sched.h"

int tb_sched_pick(const tb_route_t *routes, int n,
                  const unsigned char *excluded, apr_uint32_t rnd)
{
    int i, found = 0, best = 0;
    apr_uint64_t total = 0, point;

    for (i = 0; i < n; ++i) {
        const tb_account_t *a = routes[i].account;
        if (excluded[i] || a->weight == 0) {
            continue;
        }
        if (!found || a->priority > best) {
            best = a->priority;
            found = 1;
        }
    }
    if (!found) {
        return -1;
    }
    for (i = 0; i < n; ++i) {
        const tb_account_t *a = routes[i].account;
        if (!excluded[i] && a->weight && a->priority == best) {
            total += a->weight;
        }
    }
    point = rnd % total;
    for (i = 0; i < n; ++i) {
        const tb_account_t *a = routes[i].account;
        if (excluded[i] || !a->weight || a->priority != best) {
            continue;
        }
        if (point < a->weight) {
            return i;
        }
        point -= a->weight;
    }
    return -1; /* not reached */
}
