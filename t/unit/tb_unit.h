#ifndef TB_UNIT_H
#define TB_UNIT_H
/* A tiny TAP producer: t/unit.t runs the binary under Apache::Test and
 * prove-style parsing counts every check. */
#include <apr_pools.h>

extern int tb_unit_failed;
void tb_unit_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define OK(cond, ...) tb_unit_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

void test_sha256(apr_pool_t *p);
void test_json(apr_pool_t *p);
void test_sched(apr_pool_t *p);
void test_catalog(apr_pool_t *p);
void test_keycache(apr_pool_t *p);
void test_memo(apr_pool_t *p);
void test_util(apr_pool_t *p);
void test_validate(apr_pool_t *p);
void test_sse(apr_pool_t *p);
void test_stream(apr_pool_t *p);
void test_convert(apr_pool_t *p);
void test_xstream(apr_pool_t *p);

/* t/unit/tb_glue (test_state.c) */
void test_state_backoff(apr_pool_t *p);
void test_state_ttl(apr_pool_t *p);
void test_state_ttl_no_keeper(apr_pool_t *p);
void test_state_stale(apr_pool_t *p);
void test_state_query_error(apr_pool_t *p);
void test_state_cap(apr_pool_t *p);
void test_state_no_state(apr_pool_t *p);
void test_state_catalog(apr_pool_t *p);
#endif
