#include "tb_unit.h"
void test_sha256(apr_pool_t *p) { (void)p; }
