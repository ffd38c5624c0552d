#!/usr/bin/env bash
# Start a local mod_tokenbay demo: a throwaway MariaDB, the mock upstream as
# a demo provider, and httpd with the module on http://127.0.0.1:8080.
#   scripts/demo.sh          start (or show how to use the running demo)
#   scripts/demo.sh stop     stop everything it started
# Environment: TB_DEMO_PORT (8080), TB_RUN_DIR (/tmp/tokenbay-demo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

export TB_RUN_DIR=${TB_RUN_DIR:-/tmp/tokenbay-demo}
export TB_DB_PORT=${TB_DB_PORT:-13316}
MOCK_PORT=${TB_DEMO_MOCK_PORT:-18090}
PORT=${TB_DEMO_PORT:-8080}
CONF=$TB_RUN_DIR/httpd.conf
export TOKENBAY_DB_HOST=127.0.0.1 TOKENBAY_DB_PORT=$TB_DB_PORT \
       TOKENBAY_DB_USER=tokenbay TOKENBAY_DB_PASSWORD=tokenbay TOKENBAY_DB_NAME=tokenbay
ADMIN="perl $ROOT/scripts/tokenbay-admin"
HTTPD=$(command -v apache2 || command -v httpd || echo /usr/sbin/apache2)

if [ "${1:-start}" = stop ]; then
    [ -f "$CONF" ] && "$HTTPD" -f "$CONF" -k stop 2>/dev/null || true
    [ -f "$TB_RUN_DIR/mock.pid" ] && kill "$(cat "$TB_RUN_DIR/mock.pid")" 2>/dev/null || true
    scripts/db.sh stop
    echo "demo stopped"
    exit 0
fi

scripts/deps.sh
scripts/build.sh >/dev/null
scripts/db.sh start
chmod o+x "$ROOT" && d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done

if ! curl -fs -o /dev/null "http://127.0.0.1:$MOCK_PORT/v1/models"; then
    nohup python3 t/mock/upstream.py --port "$MOCK_PORT" --pidfile "$TB_RUN_DIR/mock.pid" \
        --quiet > "$TB_RUN_DIR/mock.log" 2>&1 &
    for _ in $(seq 1 50); do
        curl -fs -o /dev/null "http://127.0.0.1:$MOCK_PORT/v1/models" && break
        sleep 0.1
    done
fi

# demo data (idempotent): a model, a group, the mock as its provider; a key once
$ADMIN model add gpt-4o-mini --owned-by openai --aliases demo >/dev/null 2>&1 || true
$ADMIN group add demo >/dev/null 2>&1 || true
$ADMIN account add demo-mock --base-url "http://127.0.0.1:$MOCK_PORT/a/demo-mock/v1" \
    --groups demo --models gpt-4o-mini >/dev/null 2>&1 || true
# a provider that speaks the Responses API: chat requests to gpt-5-codex are
# converted for it, Responses requests to gpt-4o-mini converted for demo-mock
$ADMIN model add gpt-5-codex --owned-by openai >/dev/null 2>&1 || true
$ADMIN account add demo-responses --protocol openai-responses \
    --base-url "http://127.0.0.1:$MOCK_PORT/a/demo-responses/v1" \
    --groups demo --models gpt-5-codex >/dev/null 2>&1 || true
if [ ! -s "$TB_RUN_DIR/demo-key" ]; then
    $ADMIN --json key add --group demo --name demo \
        | perl -MJSON::PP -e 'print decode_json(join "", <STDIN>)->{key}' > "$TB_RUN_DIR/demo-key"
    chmod 600 "$TB_RUN_DIR/demo-key"
fi
KEY=$(cat "$TB_RUN_DIR/demo-key")

M=/usr/lib/apache2/modules
cat > "$CONF" <<CONF
ServerRoot "$TB_RUN_DIR"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile "$TB_RUN_DIR/httpd.pid"
ErrorLog "$TB_RUN_DIR/error_log"
LogLevel warn
User nobody
Group nogroup
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule authz_host_module $M/mod_authz_host.so
LoadModule dbd_module $M/mod_dbd.so
LoadModule socache_shmcb_module $M/mod_socache_shmcb.so
LoadModule tokenbay_module $ROOT/.libs/mod_tokenbay.so
LogFormat "%h %u \"%r\" %>s %D model=%{TOKENBAY_MODEL}n account=%{TOKENBAY_ACCOUNT}n tokens=%{TOKENBAY_TOTAL_TOKENS}n outcome=%{TOKENBAY_OUTCOME}n" tokenbay
CustomLog "$TB_RUN_DIR/access_log" tokenbay
DBDriver mysql
DBDParams "host=127.0.0.1 port=$TB_DB_PORT user=tokenbay pass=tokenbay dbname=tokenbay reconnect=0"
DBDMin 0
<Location /v1>
    TokenBay On
    AuthType tokenbay
    Require valid-user
</Location>
<Location /tokenbay-status>
    SetHandler tokenbay-status
    Require ip 127.0.0.1 ::1
</Location>
CONF
if [ -f "$TB_RUN_DIR/httpd.pid" ] && kill -0 "$(cat "$TB_RUN_DIR/httpd.pid")" 2>/dev/null; then
    "$HTTPD" -f "$CONF" -k graceful
else
    "$HTTPD" -f "$CONF" -k start || { tail -5 "$TB_RUN_DIR/error_log" >&2; exit 1; }
fi
for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/models" && break
    sleep 0.1
done

# The commands printed below carry the settings this demo was started
# with, so that they reach this demo and not one with the defaults.
OVERRIDES=
for v in TB_RUN_DIR TB_DB_PORT TB_DEMO_PORT TB_DEMO_MOCK_PORT; do
    case $v in
        TB_RUN_DIR)        d=/tmp/tokenbay-demo ;;
        TB_DB_PORT)        d=13316 ;;
        TB_DEMO_PORT)      d=8080 ;;
        TB_DEMO_MOCK_PORT) d=18090 ;;
    esac
    val=${!v:-$d}
    [ "$val" = "$d" ] || OVERRIDES+="$v=$(printf %q "$val") "
done

cat <<MSG

mod_tokenbay demo is running on http://127.0.0.1:$PORT (logs in $TB_RUN_DIR).
Demo key: $KEY

  curl -s http://127.0.0.1:$PORT/v1/chat/completions \\
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'

  curl -sN http://127.0.0.1:$PORT/v1/responses \\
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d '{"model":"gpt-5-codex","input":"Hello","stream":true}'

  curl -s http://127.0.0.1:$PORT/v1/models -H "Authorization: Bearer $KEY"

gpt-4o-mini is served by a Chat Completions provider, gpt-5-codex by a
Responses one; either route works with either model (README, "Protocols").

Manage it with:  TOKENBAY_DB_PORT=$TB_DB_PORT TOKENBAY_DB_HOST=127.0.0.1 \\
  TOKENBAY_DB_USER=tokenbay TOKENBAY_DB_PASSWORD=tokenbay TOKENBAY_DB_NAME=tokenbay \\
  $ROOT/scripts/tokenbay-admin key list
Accounts' health: curl -s 'http://127.0.0.1:$PORT/tokenbay-status?format=text'
  (or TOKENBAY_STATUS_URL=http://127.0.0.1:$PORT/tokenbay-status tokenbay-admin account status)
Stop it with:    ${OVERRIDES}$ROOT/scripts/demo.sh stop
MSG
