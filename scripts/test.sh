#!/usr/bin/env bash
# Run the whole test suite: installs what is missing, builds the module,
# starts a throwaway MariaDB and the mock upstream, seeds the database,
# runs the Apache::Test suite (which includes the C unit tests) and stops
# everything again. Exit status 0 only on "Result: PASS".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

scripts/deps.sh
scripts/clients.sh
scripts/build.sh

export TB_RUN_DIR=${TB_RUN_DIR:-/tmp/tokenbay-test}
export TB_DB_PORT=${TB_DB_PORT:-13306}
export TB_MOCK_PORT=${TB_MOCK_PORT:-18080}
export TB_MODULE_SO="$ROOT/.libs/mod_tokenbay.so"
export TB_ROOT="$ROOT"
export TOKENBAY_DB_HOST=127.0.0.1 TOKENBAY_DB_PORT=$TB_DB_PORT \
       TOKENBAY_DB_USER=tokenbay TOKENBAY_DB_PASSWORD=tokenbay TOKENBAY_DB_NAME=tokenbay

LOG=$TB_RUN_DIR/test.log
cleanup() {
    perl t/TEST.PL -stop-httpd >/dev/null 2>&1 || true
    [ -f "$TB_RUN_DIR/mock.pid" ] && kill "$(cat "$TB_RUN_DIR/mock.pid")" 2>/dev/null || true
    scripts/db.sh stop || true
}
trap cleanup EXIT

# a fresh database every run: tests own their data
scripts/db.sh reset
# httpd's children run as an unprivileged user and must reach the tree
chmod o+x "$ROOT" && d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done

python3 t/mock/upstream.py --port "$TB_MOCK_PORT" --pidfile "$TB_RUN_DIR/mock.pid" --quiet \
    > "$TB_RUN_DIR/mock.log" 2>&1 &
for _ in $(seq 1 50); do
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$TB_MOCK_PORT/__mock/reset" && break
    sleep 0.1
done
t/seed.sh > "$TB_RUN_DIR/seed.log"

HTTPD_ARGS=()
if [ -n "${TB_SANITIZE:-}" ]; then
    # httpd itself is not sanitized: preload ASan's runtime (UBSan's comes
    # with the module); httpd's own start-up allocations would trip the
    # leak checker, so leaks are not checked; use_sigaltstack=0: ASan's
    # thread-exit path trips over its own alternate signal stack (a false
    # report at every thread's end with this glibc)
    cat > "$TB_RUN_DIR/httpd-sanitized" <<WRAP
#!/bin/sh
LD_PRELOAD=$(gcc -print-file-name=libasan.so) \\
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:use_sigaltstack=0 \\
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \\
exec $(command -v apache2) "\$@"
WRAP
    chmod 755 "$TB_RUN_DIR/httpd-sanitized"
    HTTPD_ARGS=(-httpd "$TB_RUN_DIR/httpd-sanitized")
    # the same for the unit tests (they fork and start threads)
    export ASAN_OPTIONS=detect_leaks=0:use_sigaltstack=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

perl t/TEST.PL -clean >/dev/null 2>&1 || true
set +e
perl t/TEST.PL -apxs "$(command -v apxs)" -httpd_conf "$ROOT/t/conf/base.httpd" \
    "${HTTPD_ARGS[@]}" -user nobody -group nogroup "$@" 2>&1 | tee "$LOG"
set -e
if grep -qE 'ERROR: AddressSanitizer|runtime error:' t/logs/error_log 2>/dev/null; then
    echo "sanitizer reports in $ROOT/t/logs/error_log:" >&2
    grep -E -A20 'ERROR: AddressSanitizer|runtime error:' t/logs/error_log | head -60 >&2
    exit 1
fi
grep -q '^Result: PASS' "$LOG"
