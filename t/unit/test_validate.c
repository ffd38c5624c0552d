/* tb_json_validate must accept exactly what jansson accepts (with
 * JSON_DECODE_ANY | JSON_ALLOW_NUL), apart from numbers beyond jansson's
 * range: checked on a corpus of edge cases and on many deterministic
 * mutations of real client bodies. */
#include <string.h>

#include <jansson.h>

#include "tb_json.h"
#include "tb_unit.h"

/* 1 accepted, 0 refused, -1 no comparison: jansson refused only for a
 * number's range, or the text holds a raw NUL byte (jansson's lexer lets
 * some through, e.g. after a number; JSON has none, and we refuse them) */
static int jansson_verdict(const char *buf, size_t len)
{
    json_error_t err;
    json_t *j;

    if (memchr(buf, '\0', len)) {
        return -1;
    }
    j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    if (j) {
        json_decref(j);
        return 1;
    }
    if (strstr(err.text, "too big") || strstr(err.text, "overflow")) {
        return -1;
    }
    return 0;
}

static int agrees(apr_pool_t *p, const char *buf, size_t len)
{
    int want = jansson_verdict(buf, len);
    int got = tb_json_validate(p, buf, len, NULL) == APR_SUCCESS;

    return want < 0 || want == got;
}

static int builds_alike_bad;

/* Our reader builds the tree jansson builds, and our writer's text reads
 * back (by jansson) as the same tree. */
static void builds_alike(apr_pool_t *p, const char *buf, size_t len)
{
    json_t *want, *got = NULL, *back;
    const char *out;
    apr_size_t olen;

    if (memchr(buf, '\0', len)
        || !(want = json_loadb(buf, len, JSON_ALLOW_NUL, NULL))) {
        return;
    }
    if (tb_json_parse(&got, p, buf, len, NULL) != APR_SUCCESS
        || !json_equal(want, got)) {
        if (!builds_alike_bad++) {
            OK(0, "parse builds what jansson builds: %.*s", (int)len, buf);
        }
        json_decref(want);
        return;
    }
    out = tb_json_dump(p, got, &olen);
    back = out ? json_loadb(out, olen, JSON_ALLOW_NUL, NULL) : NULL;
    if (!back || !json_equal(want, back)) {
        if (!builds_alike_bad++) {
            OK(0, "dump reads back alike: %.*s -> %s", (int)len, buf, out ? out : "NULL");
        }
    }
    json_decref(back);
    json_decref(want);
}

static const char *const corpus[] = {
    "{}", "[]", "1", "-0", "0.5e-3", "1E+2", "\"x\"", "true", "false", "null",
    " {\"a\" : [1, 2.0, {\"b\": null}] } ", "{\"a\":1,}", "[1,]", "[,1]",
    "{\"a\"}", "{\"a\":}", "{a:1}", "01", "1.", ".5", "-", "+1", "1e", "0x10",
    "\"\\u0041\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"\\ud83d\"",
    "\"\\ude00\"", "\"\\u0000\"", "\"\\x41\"", "\"\\/\"", "\"tab\there\"",
    "\"caf\xc3\xa9\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"",
    "tru", "nul", "[true false]", "{\"a\":1 \"b\":2}", "[1]]", "{}}", "",
    " ", "\"unterminated", "[\"\\\"]", "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
    "{\"dup\":1,\"dup\":2}", "1 2", "[1e999]", "[123456789012345678901234567890]",
    "\xef\xbb\xbf{}",
};

static const char *const seeds[] = {
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":"
    "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Say hi\"}],"
    "\"temperature\":0.2,\"max_completion_tokens\":50}",
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
    "[{\"type\":\"text\",\"text\":\"caf\xc3\xa9 \\u00e9 \\\"q\\\"\"}]}],"
    "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],\"n\":-1.5e3}",
};

void test_validate(apr_pool_t *p)
{
    static const char alphabet[] = "{}[]\",:\\ 0123456789.-+eEtrufalsn\x00\xc3\xa9\xff\n";
    apr_uint32_t rnd = 12345;
    size_t i, k;
    int bad = 0, runs = 0;
    char buf[1024];

    for (i = 0; i < sizeof(corpus) / sizeof(corpus[0]); ++i) {
        OK(agrees(p, corpus[i], strlen(corpus[i])),
           "validate agrees with jansson on corpus #%lu", (unsigned long)i);
        builds_alike(p, corpus[i], strlen(corpus[i]));
    }
    {
        static const char *const reals = "[0.1,0.2,1e-7,123456.789,-0.0,1e300,3.0,2.5e-300]";
        static const char *const escapes =
            "[\"\\u00e9\\ud83d\\ude00\\u0000x\\/\\b\\f\\n\\r\\t\\u001f\\u007f\"]";
        builds_alike(p, reals, strlen(reals));
        builds_alike(p, escapes, strlen(escapes));
    }
    OK(agrees(p, "\"a\\u0000b\"", 10), "validate accepts \\u0000 like jansson");
    OK(tb_json_validate(p, "[0.2\0]", 6, NULL) == APR_EINVAL
       && tb_json_validate(p, "\"a\0b\"", 5, NULL) == APR_EINVAL,
       "validate refuses raw NUL bytes, in and out of strings");

    /* mutations: flip, insert, delete a byte, or truncate */
    for (k = 0; k < sizeof(seeds) / sizeof(seeds[0]); ++k) {
        size_t slen = strlen(seeds[k]);
        for (i = 0; i < 15000; ++i) {
            size_t len = slen, pos;
            int op, n;

            memcpy(buf, seeds[k], slen);
            for (n = 0; n < 1 + (int)(i % 3); ++n) {
                rnd = rnd * 1103515245u + 12345u;
                op = (rnd >> 16) % 4;
                rnd = rnd * 1103515245u + 12345u;
                pos = len ? (rnd >> 8) % len : 0;
                rnd = rnd * 1103515245u + 12345u;
                switch (op) {
                case 0:
                    buf[pos] = alphabet[(rnd >> 16) % (sizeof(alphabet) - 1)];
                    break;
                case 1:
                    if (len < sizeof(buf) - 1) {
                        memmove(buf + pos + 1, buf + pos, len - pos);
                        buf[pos] = alphabet[(rnd >> 16) % (sizeof(alphabet) - 1)];
                        ++len;
                    }
                    break;
                case 2:
                    if (len) {
                        memmove(buf + pos, buf + pos + 1, len - pos - 1);
                        --len;
                    }
                    break;
                default:
                    len = pos;
                    break;
                }
            }
            ++runs;
            builds_alike(p, buf, len);
            if (!agrees(p, buf, len)) {
                if (!bad) {
                    OK(0, "validate agrees with jansson on mutation (len %lu): %.*s",
                       (unsigned long)len, (int)len, buf);
                }
                ++bad;
            }
        }
    }
    OK(bad == 0, "validate agrees with jansson on %d mutated bodies (%d disagreements)",
       runs, bad);
    OK(builds_alike_bad == 0, "parse and dump build and write what jansson does on the "
       "corpus and %d mutated bodies (%d differences)", runs, builds_alike_bad);
    OK(tb_json_validate(p, seeds[0], strlen(seeds[0]), NULL) == APR_SUCCESS,
       "validate accepts a real SDK body");
    {
        char deep[2100];
        memset(deep, '[', 600);
        memset(deep + 600, ']', 600);
        OK(tb_json_validate(p, deep, 1200, NULL) == APR_EINVAL,
           "validate refuses nesting deeper than 512");
    }
}
