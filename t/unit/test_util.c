/* tb_util: allowlists, secret masking, number parsing, random numbers. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_util.h"
#include "tb_unit.h"

/* `s` quoted for a one-line test name, blanks made visible. */
static const char *shown(char *buf, apr_size_t size, const char *s)
{
    apr_size_t n = 0;

    if (!s) {
        return "NULL";
    }
    buf[n++] = '"';
    for (; *s && n + 4 < size; ++s) {
        if (*s == '\n' || *s == '\t') {
            buf[n++] = '\\';
            buf[n++] = *s == '\n' ? 'n' : 't';
        }
        else {
            buf[n++] = *s;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

static void permits(const char *list, const char *model, int want)
{
    char buf[128];
    int got = tb_allowlist_permits(list, model);

    OK(got == want, "allowlist %s %s \"%s\"", shown(buf, sizeof(buf), list),
       want ? "permits" : "refuses", model);
}

static void allowlist(void)
{
    /* no list, or a list with no entries: everything goes */
    permits(NULL, "gpt-4o", 1);
    permits("", "gpt-4o", 1);
    permits(" , ", "gpt-4o", 1);
    permits(" ,\t,\n, ", "anything-at-all", 1);

    /* exact matches only */
    permits("gpt-4o", "gpt-4o", 1);
    permits("gpt-4o", "gpt-4", 0);
    permits("gpt-4", "gpt-4o", 0);
    permits("gpt-4o", "gpt-4o-mini", 0);
    permits("gpt-4o-mini", "gpt-4o", 0);
    permits("gpt-4o", "GPT-4o", 0);
    permits("gpt-4o", "", 0);

    /* several entries, trimmed */
    permits("gpt-4o,claude-3,o1", "claude-3", 1);
    permits("gpt-4o,claude-3,o1", "o1", 1);
    permits("gpt-4o,claude-3,o1", "o", 0);
    permits("  gpt-4o ,\tclaude-3\n, o1  ", "gpt-4o", 1);
    permits("  gpt-4o ,\tclaude-3\n, o1  ", "claude-3", 1);
    permits("  gpt-4o ,\tclaude-3\n, o1  ", "o1", 1);
    permits(",,o1,,", "o1", 1);
    permits(",,o1,,", "o2", 0);
    permits("a, b ,c", "b", 1);
    permits("a, b ,c", " b ", 0);
    permits("a,b", "a,b", 0);

    /* an entry is the whole text between commas, inner blanks included */
    permits("my model, other", "my model", 1);
    permits("my model, other", "my", 0);
    permits("my model, other", "model", 0);
}

static void mask(apr_pool_t *p)
{
    const char *key = "tb-0123456789abcdefghijklmnopqrstuvwxyzABCD";
    const char *m;
    int head, len, leak = 0;
    char buf[65];

    OK(!strcmp(tb_mask_secret(p, NULL, 3), "****"), "mask NULL: ****");
    OK(!strcmp(tb_mask_secret(p, "", 3), "****"), "mask empty: ****");
    OK(!strcmp(tb_mask_secret(p, "sk-1234", 3), "****"),
       "mask a short secret: ****");
    OK(!strcmp(tb_mask_secret(p, "tb-abcd", 3), "****"),
       "mask a secret no longer than head + 4: ****, nothing shown");

    m = tb_mask_secret(p, key, 3);
    OK(!strcmp(m, "tb-..ABCD"), "mask a long key, head 3: tb-..ABCD (got %s)", m);
    m = tb_mask_secret(p, key, 8);
    OK(!strcmp(m, "tb-01234..ABCD"),
       "mask a long key, head 8: tb-01234..ABCD (got %s)", m);
    m = tb_mask_secret(p, key, 0);
    OK(!strcmp(m, "..ABCD"), "mask a long key, head 0: ..ABCD (got %s)", m);

    /* whatever the length, never more than head + 4 characters shown, and
     * never the whole secret */
    for (head = 0; head <= 8; ++head) {
        for (len = 0; len <= 64; ++len) {
            memset(buf, 'x', (apr_size_t)len);
            buf[len] = '\0';
            if (len) {
                buf[len / 2] = 'S';   /* a character from the middle */
            }
            m = tb_mask_secret(p, buf, head);
            if (strcmp(m, "****")) {
                leak |= strlen(m) != (apr_size_t)head + 2 + 4
                    || strchr(m, 'S') != NULL
                    || strncmp(m, buf, head) || strcmp(m + head + 2,
                                                       buf + len - 4)
                    || strncmp(m + head, "..", 2);
            }
        }
    }
    OK(!leak, "mask: for lengths 0..64 and heads 0..8, either **** or "
       "exactly head + .. + last 4, the middle never shown");
}

static void parse_long(void)
{
    long v;
    char big[64];

    v = -77;
    OK(tb_parse_long("0", 0, 10, &v) && v == 0, "parse_long \"0\" in [0,10]");
    OK(tb_parse_long("10", 0, 10, &v) && v == 10, "parse_long max is allowed");
    OK(tb_parse_long("-10", -10, 10, &v) && v == -10,
       "parse_long min is allowed");
    OK(tb_parse_long("123456", 1, 1000000, &v) && v == 123456,
       "parse_long \"123456\"");
    apr_snprintf(big, sizeof(big), "%ld", LONG_MAX);
    OK(tb_parse_long(big, 0, LONG_MAX, &v) && v == LONG_MAX,
       "parse_long LONG_MAX");

    v = -77;
    OK(!tb_parse_long("11", 0, 10, &v), "parse_long above max: refused");
    OK(!tb_parse_long("-1", 0, 10, &v), "parse_long below min: refused");
    OK(!tb_parse_long("12a", 0, 100, &v), "parse_long \"12a\": refused");
    OK(!tb_parse_long("a12", 0, 100, &v), "parse_long \"a12\": refused");
    OK(!tb_parse_long("", 0, 100, &v), "parse_long \"\": refused");
    OK(!tb_parse_long(" 1", 0, 100, &v), "parse_long \" 1\": refused");
    OK(!tb_parse_long("1 ", 0, 100, &v), "parse_long \"1 \": refused");
    OK(!tb_parse_long("\t1", 0, 100, &v), "parse_long \"\\t1\": refused");
    OK(!tb_parse_long("1.0", 0, 100, &v), "parse_long \"1.0\": refused");
    OK(!tb_parse_long("0x10", 0, 100, &v), "parse_long \"0x10\": refused");
    OK(!tb_parse_long("-", -10, 100, &v), "parse_long \"-\": refused");
    OK(!tb_parse_long(NULL, 0, 100, &v), "parse_long NULL: refused");
    OK(!tb_parse_long("99999999999999999999999", LONG_MIN, LONG_MAX, &v),
       "parse_long beyond the range of long: refused");
    OK(v == -77, "parse_long leaves *pv alone when refusing");
}

static void retry_after(void)
{
    apr_time_t now = apr_time_from_sec(1445412480);   /* 21 Oct 2015 07:28:00 */

    OK(tb_parse_retry_after("2", now) == apr_time_from_sec(2),
       "retry_after \"2\" = 2 s");
    OK(tb_parse_retry_after(" 3", now) == apr_time_from_sec(3),
       "retry_after \" 3\" = 3 s");
    OK(tb_parse_retry_after("\t 7", now) == apr_time_from_sec(7),
       "retry_after \"\\t 7\" = 7 s");
    OK(tb_parse_retry_after("0", now) == 0, "retry_after \"0\" = 0");
    OK(tb_parse_retry_after("3600", now) == apr_time_from_sec(3600),
       "retry_after \"3600\" = 3600 s");
    OK(tb_parse_retry_after("-1", now) == -1, "retry_after \"-1\": unparsable (-1)");
    OK(tb_parse_retry_after("-5", now) == -1, "retry_after \"-5\": unparsable (-1)");
    OK(tb_parse_retry_after("abc", now) == -1, "retry_after \"abc\": -1");
    OK(tb_parse_retry_after("", now) == -1, "retry_after \"\": -1");
    OK(tb_parse_retry_after("   ", now) == -1, "retry_after blanks only: -1");
    OK(tb_parse_retry_after("1.5", now) == -1, "retry_after \"1.5\": -1");
    OK(tb_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now)
       == apr_time_from_sec(30), "retry_after HTTP-date 30 s ahead = 30 s");
    OK(tb_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0,
       "retry_after HTTP-date in the past = 0");
    OK(tb_parse_retry_after("Fri, 21 Oct 2016 07:28:00 GMT", now)
       == apr_time_from_sec(7 * 86400), "retry_after HTTP-date a year ahead: "
       "a week at most");
    OK(tb_parse_retry_after("99999999999999999999", now) == -1,
       "retry_after absurdly large: -1");
    OK(tb_parse_retry_after(NULL, now) == -1, "retry_after NULL (absent): -1");
    OK(tb_parse_retry_after_ms("300") == apr_time_from_msec(300),
       "retry-after-ms \"300\" = 300 ms");
    OK(tb_parse_retry_after_ms(" 1.5") == 1500, "retry-after-ms \"1.5\" = 1500 us");
    OK(tb_parse_retry_after_ms("0") == 0, "retry-after-ms \"0\" = 0");
    OK(tb_parse_retry_after_ms("-3") == -1 && tb_parse_retry_after_ms("nan") == -1
       && tb_parse_retry_after_ms("inf") == -1 && tb_parse_retry_after_ms("1e400") == -1,
       "retry-after-ms: negative, nan, inf and overflow are unparsable");
    OK(tb_parse_retry_after_ms("300ms") == -1 && tb_parse_retry_after_ms("") == -1
       && tb_parse_retry_after_ms(NULL) == -1,
       "retry-after-ms: trailing junk, empty, absent: -1");
    OK(tb_parse_retry_after_ms("604800001") == -1,
       "retry-after-ms: more than a week: -1");
}

static int cmp_u32(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void random_u32(void)
{
    apr_uint32_t v[1000], ors = 0, ands = 0xffffffffu;
    int i, distinct = 1, changed = 0, high = 0;

    tb_random_seed(42);
    for (i = 0; i < 1000; ++i) {
        v[i] = tb_random_u32();
        ors |= v[i];
        ands &= v[i];
        high += v[i] >= 0x80000000u;
    }
    for (i = 1; i < 5; ++i) {
        changed += v[i] != v[0];
    }
    OK(changed == 4, "random_u32: the first five calls are not constant "
       "(%08x %08x %08x ...)", (unsigned)v[0], (unsigned)v[1], (unsigned)v[2]);
    qsort(v, 1000, sizeof(v[0]), cmp_u32);
    for (i = 1; i < 1000; ++i) {
        distinct += v[i] != v[i - 1];
    }
    OK(distinct >= 998, "random_u32: 1000 calls give %d distinct values",
       distinct);
    OK(ors == 0xffffffffu && ands == 0,
       "random_u32: every bit is seen both set and clear");
    OK(high > 400 && high < 600,
       "random_u32: about half of the values are >= 2^31 (%d/1000)", high);
}

void test_util(apr_pool_t *p)
{
    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    allowlist();
    mask(sub);
    parse_long();
    retry_after();
    random_u32();
    apr_pool_destroy(sub);
}
