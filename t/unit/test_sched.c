#include "tb_unit.h"
void test_sched(apr_pool_t *p) { (void)p; }
