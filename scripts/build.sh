#!/usr/bin/env bash
# Configure (once) and build mod_tokenbay in the source tree.
# TB_SANITIZE=1: with AddressSanitizer and UndefinedBehaviorSanitizer (use
# it in a copy of the tree, as scripts/sanitize.sh does: it reconfigures).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ]; then
    if [ -n "${TB_SANITIZE:-}" ]; then
        # every report is fatal: UBSan would otherwise print and go on
        SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
        CFLAGS="-O1 -g $SAN -fno-omit-frame-pointer" \
        LDFLAGS="$SAN" ./configure --enable-werror
    else
        ./configure --enable-werror
    fi
fi
make -j2
make -j2 t/unit/tb_unit t/unit/tb_glue
