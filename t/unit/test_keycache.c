#include "tb_unit.h"
void test_keycache(apr_pool_t *p) { (void)p; }
