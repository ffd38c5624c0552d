/* tb_sha256: FIPS 180-4 SHA-256, used to index gateway keys. */
#include <string.h>

#include <apr_strings.h>

#include "tb_sha256.h"
#include "tb_unit.h"

/* Hex digest of `len` bytes at `data`, compared with `want`. */
static void check_hex(const void *data, apr_size_t len, const char *want,
                      const char *what)
{
    char out[TB_SHA256_HEX_LEN + 1];

    memset(out, 'X', sizeof(out));
    tb_sha256_hex(data, len, out);
    OK(out[TB_SHA256_HEX_LEN] == '\0',
       "sha256 %s: hex digest is NUL terminated after 64 digits", what);
    OK(!strcmp(out, want), "sha256 %s = %s (got %.64s)", what, want, out);
}

/* `n` copies of 'a' (the padding-edge inputs). */
static void check_run_of_a(apr_pool_t *p, apr_size_t n, const char *want)
{
    char *buf = apr_palloc(p, n + 1);

    memset(buf, 'a', n);
    buf[n] = '\0';
    check_hex(buf, n, want, apr_psprintf(p, "of %lu x 'a'", (unsigned long)n));
}

static void fips_vectors(apr_pool_t *p)
{
    static const char m448[] =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const char m896[] =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

    check_hex("", 0,
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              "of the empty string");
    check_hex("abc", 3,
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
              "of \"abc\"");
    check_hex(m448, strlen(m448),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
              "of the 448-bit FIPS message");
    check_hex(m896, strlen(m896),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
              "of the 896-bit FIPS message");
    check_run_of_a(p, 1000000,
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the one-or-two padding block boundary (55 | 56) and the
 * block boundary (63 | 64 | 65), plus the same edges one block further. */
static void padding_edges(apr_pool_t *p)
{
    check_run_of_a(p, 55,
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check_run_of_a(p, 56,
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    check_run_of_a(p, 63,
        "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
    check_run_of_a(p, 64,
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    check_run_of_a(p, 65,
        "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
    check_run_of_a(p, 119,
        "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
    check_run_of_a(p, 120,
        "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c");
    check_run_of_a(p, 128,
        "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e");
}

static void binary_input_and_raw_digest(void)
{
    static const unsigned char bytes[] = { 0x00, 0xff, 0x80 };
    /* printf '\x00\xff\x80' | sha256sum */
    static const unsigned char want[TB_SHA256_DIGEST_LEN] = {
        0xf7, 0x42, 0xb9, 0x65, 0xf1, 0x56, 0xc1, 0x03,
        0x74, 0xbc, 0x23, 0xae, 0xa9, 0x6e, 0x3a, 0x8a,
        0xff, 0x8f, 0xac, 0xd6, 0xfc, 0x07, 0x9d, 0xef,
        0xea, 0xa3, 0x02, 0x19, 0xad, 0x86, 0xf2, 0x11
    };
    unsigned char raw[TB_SHA256_DIGEST_LEN];

    tb_sha256(bytes, sizeof(bytes), raw);
    OK(!memcmp(raw, want, sizeof(want)),
       "sha256 raw digest of bytes 00 ff 80 (NUL and high bytes are data)");
    check_hex(bytes, sizeof(bytes),
              "f742b965f156c10374bc23aea96e3a8aff8facd6fc079defeaa30219ad86f211",
              "hex of bytes 00 ff 80 is lower case and matches the raw digest");
}

void test_sha256(apr_pool_t *p)
{
    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    fips_vectors(sub);
    padding_edges(sub);
    binary_input_and_raw_digest();
    apr_pool_destroy(sub);
}
