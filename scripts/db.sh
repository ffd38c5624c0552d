#!/usr/bin/env bash
# A throwaway MariaDB for tests and the demo: its own datadir, socket and
# port under $TB_RUN_DIR, never the system one.
#   db.sh start     start it (creating the database and schema if new)
#   db.sh stop      stop it
#   db.sh reset     stop, wipe and start fresh
#   db.sh sql       run the mariadb client (args passed on)
# Environment: TB_RUN_DIR (default /tmp/tokenbay), TB_DB_PORT (13306).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${TB_RUN_DIR:-/tmp/tokenbay}
PORT=${TB_DB_PORT:-13306}
DATA=$RUN/mariadb
SOCK=$RUN/mariadb.sock
PID=$RUN/mariadb.pid
USER_NAME=$(id -un)

client() { mariadb --no-defaults -S "$SOCK" -uroot "$@"; }

running() { [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; }

start() {
    mkdir -p "$RUN"
    chmod 755 "$RUN"
    if running; then
        return 0
    fi
    local fresh=0
    if [ ! -d "$DATA/mysql" ]; then
        fresh=1
        mariadb-install-db --no-defaults --datadir="$DATA" --user="$USER_NAME" \
            --auth-root-authentication-method=normal --skip-test-db >"$RUN/mariadb-install.log" 2>&1
    fi
    mariadbd --no-defaults --user="$USER_NAME" --datadir="$DATA" --socket="$SOCK" \
        --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$PID" --log-error="$RUN/mariadb.err" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
        --max-connections=500 >/dev/null 2>&1 &
    for _ in $(seq 1 100); do
        client -e 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.1
    done
    client -e 'SELECT 1' >/dev/null || { echo "db.sh: MariaDB did not start, see $RUN/mariadb.err" >&2; exit 1; }
    if [ "$fresh" = 1 ]; then
        client -e "CREATE DATABASE IF NOT EXISTS tokenbay CHARACTER SET utf8mb4;
                   CREATE USER IF NOT EXISTS 'tokenbay'@'127.0.0.1' IDENTIFIED BY 'tokenbay';
                   GRANT ALL ON tokenbay.* TO 'tokenbay'@'127.0.0.1';"
    fi
    client tokenbay < "$ROOT/conf/schema.sql"
}

stop() {
    if running; then
        kill "$(cat "$PID")"
        for _ in $(seq 1 100); do
            running || break
            sleep 0.1
        done
    fi
    rm -f "$PID"
}

case "${1:-}" in
    start) start ;;
    stop)  stop ;;
    reset) stop; rm -rf "$DATA"; start ;;
    sql)   shift; client tokenbay "$@" ;;
    *) echo "usage: $0 start|stop|reset|sql [args]" >&2; exit 64 ;;
esac
