/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_SHA256_H
#define TB_SHA256_H

#include <apr.h>

#define TB_SHA256_DIGEST_LEN 32
#define TB_SHA256_HEX_LEN    64

/* SHA-256 (FIPS 180-4) of a buffer, as 64 lower-case hex digits plus NUL.
 * Keys are stored and looked up by this digest; APR-util has no SHA-256
 * without a crypto driver, and it is small enough to carry. */
void tb_sha256_hex(const void *data, apr_size_t len,
                   char out[TB_SHA256_HEX_LEN + 1]);

void tb_sha256(const void *data, apr_size_t len,
               unsigned char out[TB_SHA256_DIGEST_LEN]);

#endif /* TB_SHA256_H */
