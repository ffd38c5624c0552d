/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_SCHED_H
#define TB_SCHED_H

#include <apr.h>

#include "tb_catalog.h"

/* Pick the route for the next attempt: among routes not yet excluded, the
 * highest priority tier that has one with weight > 0, then weighted random
 * inside that tier using `rnd`. Returns the index, or -1 when nothing is
 * left. `excluded` has n flags (accounts already tried). */
int tb_sched_pick(const tb_route_t *routes, int n,
                  const unsigned char *excluded, apr_uint32_t rnd);

#endif /* TB_SCHED_H */
