#!/usr/bin/env bash
# Configure (once) and build mod_tokenbay in the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ]; then
    if [ -n "${TB_ASAN:-}" ]; then
        # AddressSanitizer build (use a separate checkout: it reconfigures)
        CFLAGS="-O1 -g -fsanitize=address -fno-omit-frame-pointer" \
        LDFLAGS="-fsanitize=address" ./configure --enable-werror
    else
        ./configure --enable-werror
    fi
fi
make -j2
make -j2 t/unit/tb_unit
