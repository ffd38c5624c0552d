/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <stdarg.h>
#include <apr_strings.h>

#include "tb_log.h"

static tb_log_is_level_cb *log_is_level;
static tb_log_print_cb    *log_print;

void tb_log_set(tb_log_is_level_cb *is_level, tb_log_print_cb *print)
{
    log_is_level = is_level;
    log_print = print;
}

int tb_log_is_level(apr_pool_t *p, tb_log_level_t level)
{
    return log_is_level && log_print && log_is_level(p, level);
}

void tb_log_perror(const char *file, int line, tb_log_level_t level,
                   apr_status_t rv, apr_pool_t *p, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    if (!tb_log_is_level(p, level)) {
        return;
    }
    va_start(ap, fmt);
    msg = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    log_print(file, line, level, rv, p, msg);
}
