#!/usr/bin/env bash
# Configure (once) and build mod_tokenbay in the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure --enable-werror ${TB_CONFIGURE_FLAGS:-}
make -j2
make -j2 t/unit/tb_unit
