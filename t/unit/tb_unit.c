#include <stdarg.h>
#include <stdio.h>

#include <apr_general.h>

#include "tb_unit.h"

int tb_unit_failed;
static int tests;

void tb_unit_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    printf("%s %d - ", cond ? "ok" : "not ok", ++tests);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        printf("#   failed at %s line %d\n", file, line);
        ++tb_unit_failed;
    }
}

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    test_sha256(p);
    test_json(p);
    test_sched(p);
    test_catalog(p);
    test_keycache(p);
    test_util(p);
    test_validate(p);
    test_sse(p);
    test_stream(p);
    test_convert(p);
    test_xstream(p);
    printf("1..%d\n", tests);
    apr_pool_destroy(p);
    apr_terminate();
    return tb_unit_failed ? 1 : 0;
}
