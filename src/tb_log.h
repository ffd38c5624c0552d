/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_LOG_H
#define TB_LOG_H

#include <apr_pools.h>

/* Library logging, injected by the host: the httpd glue installs callbacks
 * that forward to ap_log_perror; unit tests install none (silence) or their
 * own. Levels mirror httpd's so the glue maps them one to one. */
typedef enum {
    TB_LOG_EMERG, TB_LOG_ALERT, TB_LOG_CRIT, TB_LOG_ERR, TB_LOG_WARNING,
    TB_LOG_NOTICE, TB_LOG_INFO, TB_LOG_DEBUG,
    TB_LOG_TRACE1, TB_LOG_TRACE2, TB_LOG_TRACE3
} tb_log_level_t;

typedef int  tb_log_is_level_cb(apr_pool_t *p, tb_log_level_t level);
typedef void tb_log_print_cb(const char *file, int line, tb_log_level_t level,
                             apr_status_t rv, apr_pool_t *p, const char *msg);

void tb_log_set(tb_log_is_level_cb *is_level, tb_log_print_cb *print);
int  tb_log_is_level(apr_pool_t *p, tb_log_level_t level);

#define TB_LOG_MARK __FILE__, __LINE__

/* Formats only when the level is enabled. */
void tb_log_perror(const char *file, int line, tb_log_level_t level,
                   apr_status_t rv, apr_pool_t *p, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif /* TB_LOG_H */
