#include "tb_unit.h"
void test_json(apr_pool_t *p) { (void)p; }
