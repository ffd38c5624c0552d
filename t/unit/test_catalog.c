#include "tb_unit.h"
void test_catalog(apr_pool_t *p) { (void)p; }
