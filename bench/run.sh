#!/usr/bin/env bash
# mod_tokenbay benchmark: one command, three targets, same run, same machine.
#
#   bench/run.sh          run it all, then stop everything it started
#   bench/run.sh stop     stop what an earlier BENCH_KEEP=1 run left running
#
# Targets (all on loopback):
#   direct      the C mock upstream itself               127.0.0.1:18180
#   proxy       httpd + mod_proxy_http -> the mock        127.0.0.1:18181
#   tokenbay    httpd + mod_tokenbay (cached key) -> mock 127.0.0.1:18182
# It prints a markdown table and saves it to bench/results/latest.md; raw
# outputs and logs stay in /tmp/tokenbay-bench. Everything it starts is
# stopped on exit (by pidfile).
#
# Environment (defaults in brackets):
#   BENCH_CASES      case groups to measure [small agent responses convert stream hold]:
#                      small      ~200-byte chat body, wrk at BENCH_CONNS
#                      agent      ~50 KB Chat and Responses bodies (Codex turn),
#                                 non-streaming, wrk at BENCH_AGENT_CONNS
#                      responses  small Responses body, wrk at BENCH_RESPONSES_CONNS,
#                                 and Responses streams (TTFB / first content / total)
#                      convert    mod_tokenbay alone: a Responses client's stream
#                                 from a chat account (converted) against the
#                                 same chat stream passed through (time to first
#                                 content), and bench/convert_cost on the
#                                 captured Codex request (µs to convert)
#                      stream     chat streams (TTFB / first content / total)
#                      hold       BENCH_HOLD simultaneous chat streams, RSS
#   BENCH_DURATION   seconds per wrk run of the small chat case [5]
#   BENCH_AGENT_DURATION  seconds per wrk run of the agent and Responses
#                    cases [2, or BENCH_DURATION if smaller]
#   BENCH_ROUNDS     interleaved rounds of wrk runs; the median is reported [3]
#   BENCH_CONNS      wrk concurrencies of the small chat case [1 16 64]
#   BENCH_AGENT_CONNS     wrk concurrencies of the agent cases [1 16]
#   BENCH_RESPONSES_CONNS wrk concurrencies of the small Responses case [16]
#   BENCH_STREAMS    sequential streams for the TTFB/total probes [50]
#   BENCH_HOLD       simultaneous streams [500]
#   BENCH_HOLD_DELAY ms between events in the simultaneous-streams test [100]
#   BENCH_TARGETS    which targets [direct proxy tokenbay]
#   BENCH_KEEP=1     leave the mock, both httpd and MariaDB running afterwards
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
RUN=/tmp/tokenbay-bench
BIN=$RUN/bin
LOGS=$RUN/logs
DB_PORT=13326
MOCK_PORT=18180
PROXY_PORT=18181
TB_PORT=18182
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-1 16 64}
STREAMS=${BENCH_STREAMS:-50}
HOLD=${BENCH_HOLD:-500}
HOLD_DELAY=${BENCH_HOLD_DELAY:-100}
TARGETS=${BENCH_TARGETS:-direct proxy tokenbay}
CASES=${BENCH_CASES:-small agent responses convert stream hold}
AGENT_DURATION=${BENCH_AGENT_DURATION:-$(( DURATION < 2 ? DURATION : 2 ))}
AGENT_CONNS=${BENCH_AGENT_CONNS:-1 16}
RESP_CONNS=${BENCH_RESPONSES_CONNS:-16}
HTTPD=/usr/sbin/apache2
MODDIR=/usr/lib/apache2/modules

export TOKENBAY_DB_HOST=127.0.0.1 TOKENBAY_DB_PORT=$DB_PORT \
       TOKENBAY_DB_USER=tokenbay TOKENBAY_DB_PASSWORD=tokenbay TOKENBAY_DB_NAME=tokenbay

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

db() { TB_RUN_DIR=$RUN TB_DB_PORT=$DB_PORT "$ROOT/scripts/db.sh" "$@"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stop the process named by pidfile $1 (TERM, then wait up to 10 s, then KILL).
stop_pidfile() {
    local pf=$1 pid
    alive "$pf" || { rm -f "$pf"; return 0; }
    pid=$(cat "$pf")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$pf"
}

stop_all() {
    stop_pidfile "$RUN/proxy/httpd.pid"
    stop_pidfile "$RUN/tokenbay/httpd.pid"
    stop_pidfile "$RUN/mock.pid"
    db stop >/dev/null 2>&1 || true
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 100); do
        port_busy "$1" && return 0
        sleep 0.1
    done
    return 1
}

# kv "LINE" KEY -> value of KEY=value in LINE
kv() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }

fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# want GROUP: is the case group selected in BENCH_CASES?
want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
for g in $CASES; do
    case $g in small|agent|responses|convert|stream|hold) ;;
        *) die "BENCH_CASES: unknown case group '$g' (small agent responses convert stream hold)" ;;
    esac
done

# ---- set-up ------------------------------------------------------------------

mkdir -p "$RUN" "$BIN" "$LOGS" "$BENCH/results"
stop_all                                   # leftovers of an earlier run
[ "${1:-}" = stop ] && { log "stopped"; exit 0; }
if [ "${BENCH_KEEP:-0}" = 1 ]; then
    trap '[ $? = 0 ] || stop_all' EXIT
else
    trap 'stop_all' EXIT
fi
trap 'exit 130' INT TERM

for p in $MOCK_PORT $PROXY_PORT $TB_PORT $DB_PORT; do
    port_busy "$p" && die "port $p is already in use"
done

log "dependencies"
"$ROOT/scripts/deps.sh"
log "building the module"
"$ROOT/scripts/build.sh" >"$LOGS/build.log" 2>&1 || { tail -20 "$LOGS/build.log" >&2; die "build failed"; }
[ -f "$ROOT/.libs/mod_tokenbay.so" ] || die "no $ROOT/.libs/mod_tokenbay.so"
log "building the C tools"
gcc -O2 -Wall -Wextra -o "$BIN/mock_upstream" "$BENCH/mock_upstream.c"
gcc -O2 -Wall -Wextra -o "$BIN/stream_probe" "$BENCH/stream_probe.c"
# the library as the module uses it (same objects, same flags)
gcc -O2 -Wall -Wextra -o "$BIN/convert_cost" "$BENCH/convert_cost.c" \
    -I"$ROOT/src" -I"$ROOT/src/proto" $(apr-1-config --cflags --cppflags --includes) \
    "$ROOT/src/.libs/libtokenbay.a" -ljansson -lcurl $(apr-1-config --link-ld --libs) $(apu-1-config --link-ld --libs) -lm
ulimit -n 65536 2>/dev/null || true

# The agent-sized and Responses cases (groups "agent" and "responses").
# A body case: CPATH (route), CBODY (body file), CMARK (what a good answer
# contains), CCONNS (wrk concurrencies), CKIND (chat / responses).
declare -A CPATH CBODY CMARK CCONNS CKIND
declare -A NA           # NA[case,target]: why the case is not measured there
CPATH[achat]=/v1/chat/completions; CBODY[achat]=$BENCH/bodies/agent-chat.json
CMARK[achat]='"object":"chat.completion"'; CCONNS[achat]=$AGENT_CONNS; CKIND[achat]=chat
CPATH[aresp]=/v1/responses; CBODY[aresp]=$BENCH/bodies/agent-responses.json
CMARK[aresp]='"object":"response"'; CCONNS[aresp]=$AGENT_CONNS; CKIND[aresp]=responses
CPATH[sresp]=/v1/responses; CBODY[sresp]=$BENCH/bodies/small-responses.json
CMARK[sresp]='"object":"response"'; CCONNS[sresp]=$RESP_CONNS; CKIND[sresp]=responses
CKIND[rstream]=responses  # the Responses streams (stream_probe -f responses)
declare -A CLABEL=([achat]="the agent-sized Chat body" [aresp]="the agent-sized Responses body"
                   [sresp]="the small Responses body" [rstream]="Responses streams")
BODY_CASES=""
want agent && BODY_CASES="achat aresp"
want responses && BODY_CASES="$BODY_CASES sresp"
for cs in $BODY_CASES; do
    [ -s "${CBODY[$cs]}" ] || die "missing ${CBODY[$cs]} (bench/make_bodies.py writes it)"
done

log "database (port $DB_PORT)"
db reset >/dev/null
ADMIN="$ROOT/scripts/tokenbay-admin"
"$ADMIN" model add bench-model --owned-by bench >/dev/null
"$ADMIN" group add bench >/dev/null
"$ADMIN" account add bench-mock --base-url "http://127.0.0.1:$MOCK_PORT/v1" \
    --groups bench --models bench-model >/dev/null
KEY=$("$ADMIN" --json key add --group bench --name bench \
      | perl -MJSON::PP -e 'print decode_json(join "", <STDIN>)->{key}')
[ -n "$KEY" ] || die "could not create a key"
export BENCH_KEY=$KEY
# The Responses cases measure pass-through: Responses requests must reach an
# account that speaks Responses (protocol openai-responses), not the chat
# account (which mod_tokenbay serves by converting). Accounts of one group
# are chosen by priority and weight only, so the Responses account gets a
# group (and key, RKEY) of its own; same mock, same model.
RKEY=$KEY
help=$("$ADMIN" account add --help 2>&1 || true)
if [[ $help == *--protocol* ]]; then
    "$ADMIN" group add bench-responses >/dev/null
    "$ADMIN" account add bench-mock-responses --protocol openai-responses \
        --base-url "http://127.0.0.1:$MOCK_PORT/v1" --groups bench-responses \
        --models bench-model >/dev/null
    RKEY=$("$ADMIN" --json key add --group bench-responses --name bench-responses \
           | perl -MJSON::PP -e 'print decode_json(join "", <STDIN>)->{key}')
    [ -n "$RKEY" ] || die "could not create the Responses key"
else
    log "tokenbay-admin knows no account protocols: the Responses cases use the chat account"
fi

log "mock upstream (port $MOCK_PORT)"
"$BIN/mock_upstream" "$MOCK_PORT" >"$LOGS/mock.log" 2>&1 &
echo $! >"$RUN/mock.pid"
wait_port "$MOCK_PORT" || die "the mock did not start"

# ---- httpd instances ------------------------------------------------------------
# Same core and MPM settings for both; only the /v1 handling differs.
# Each open stream holds a worker thread: 4 x 160 = 640 workers, all started
# up front (StartServers 4) and never reaped (MaxSpareThreads = all).
common_conf() { # name port
    local user=""
    [ "$(id -u)" = 0 ] && user=$'User nobody\nGroup nogroup'
    mkdir -p "$RUN/$1"
    cat <<CONF
ServerRoot "$RUN/$1"
ServerName 127.0.0.1
Listen 127.0.0.1:$2
ListenBacklog 1024
PidFile "$RUN/$1/httpd.pid"
DefaultRuntimeDir "$RUN/$1"
ErrorLog "$RUN/$1/error_log"
LogLevel warn
$user
LoadModule mpm_event_module $MODDIR/mod_mpm_event.so
LoadModule authz_core_module $MODDIR/mod_authz_core.so
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 5
ServerLimit 4
ThreadLimit 160
ThreadsPerChild 160
StartServers 4
MaxRequestWorkers 640
MinSpareThreads 64
MaxSpareThreads 640
AsyncRequestWorkerFactor 2
MaxConnectionsPerChild 0
# as in Debian's stock apache2.conf: no .htaccess lookups under /
<Directory />
    AllowOverride None
</Directory>
# no access log in either instance
CONF
}

{
    common_conf proxy $PROXY_PORT
    cat <<CONF
LoadModule proxy_module $MODDIR/mod_proxy.so
LoadModule proxy_http_module $MODDIR/mod_proxy_http.so
# backend connections are pooled and reused per child by default;
# keepalive=On adds TCP keepalive probes
ProxyPass /v1/ http://127.0.0.1:$MOCK_PORT/v1/ keepalive=On
<Location /v1/>
    Require all granted
</Location>
CONF
} >"$RUN/proxy.conf"

{
    common_conf tokenbay $TB_PORT
    cat <<CONF
LoadModule authn_core_module $MODDIR/mod_authn_core.so
LoadModule authz_user_module $MODDIR/mod_authz_user.so
LoadModule dbd_module $MODDIR/mod_dbd.so
LoadModule socache_shmcb_module $MODDIR/mod_socache_shmcb.so
LoadModule tokenbay_module $ROOT/.libs/mod_tokenbay.so
DBDriver mysql
DBDParams "host=127.0.0.1 port=$DB_PORT user=tokenbay pass=tokenbay dbname=tokenbay reconnect=0"
DBDMin 0
TokenBayKeyCacheTTL 300
TokenBayCatalogTTL 300
# as conf/tokenbay.conf ships it: the key checked in httpd's auth phase
<Location /v1>
    TokenBay On
    AuthType tokenbay
    Require valid-user
</Location>
CONF
} >"$RUN/tokenbay.conf"

for t in proxy tokenbay; do
    port=$PROXY_PORT; [ $t = tokenbay ] && port=$TB_PORT
    log "httpd $t (port $port)"
    "$HTTPD" -f "$RUN/$t.conf" -k start || { tail -5 "$RUN/$t/error_log" >&2; die "httpd $t did not start"; }
    wait_port "$port" || { tail -5 "$RUN/$t/error_log" >&2; die "httpd $t does not answer"; }
done

# ---- measurements ---------------------------------------------------------------

declare -A R            # R[target,metric]
declare -A W            # W[target,metric]: the values of each round

target_port() { case $1 in direct) echo $MOCK_PORT ;; proxy) echo $PROXY_PORT ;; tokenbay) echo $TB_PORT ;; esac; }
target_pid() { case $1 in direct) cat "$RUN/mock.pid" ;; *) cat "$RUN/$1/httpd.pid" ;; esac; }

wrk_run() { # port conns seconds logname
    wrk -t1 -c"$2" -d"$3"s --timeout 5s -s "$BENCH/chat.lua" \
        "http://127.0.0.1:$1/v1/chat/completions" >"$LOGS/$4" 2>&1 || true
    grep '^WRKRESULT' "$LOGS/$4" || echo "WRKRESULT rps=0 p50_ms=0 p99_ms=0 requests=0 errors=1 non2xx=0"
}

# the key of a case: RKEY (the Responses account's group) for the Responses cases
case_key() { if [ "${CKIND[$1]}" = responses ]; then echo "$RKEY"; else echo "$KEY"; fi; }

# a body case (bench/post.lua posts the case's body file)
wrk_body() { # case port conns seconds logname
    wrk -t1 -c"$3" -d"$4"s --timeout 5s -s "$BENCH/post.lua" \
        "http://127.0.0.1:$2${CPATH[$1]}" -- "${CBODY[$1]}" "$(case_key "$1")" >"$LOGS/$5" 2>&1 || true
    grep '^WRKRESULT' "$LOGS/$5" || echo "WRKRESULT rps=0 p50_ms=0 p99_ms=0 requests=0 errors=1 non2xx=0"
}

db_stmts() {
    db sql -N -e "SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'" 2>/dev/null | awk '{print $2}'
}

check_answer() { # target
    local port out
    port=$(target_port "$1")
    out=$(curl -s -w ' HTTP%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
          -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
          -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}')
    case $out in
        *'"chat.completion"'*HTTP200) ;;
        *) die "$1 does not answer a chat completion: $out" ;;
    esac
}

warm() { # target
    local port before after
    port=$(target_port "$1")
    check_answer "$1"
    if [ "$1" = tokenbay ]; then
        # every child must have the key (and catalogue) cached: fresh wrk
        # connections land on all children; then no DB statement may run.
        # The Responses key too, when the Responses cases run with one.
        for i in 1 2 3 4 5 6; do
            wrk_run "$port" 64 1 "warm-$1-$i.log" >/dev/null
            if [ "$RKEY" != "$KEY" ] && { [ -n "$BODY_CASES" ] || want responses; }; then
                wrk_body sresp "$port" 64 1 "warm-$1-responses-$i.log" >/dev/null
            fi
            before=$(db_stmts)
            wrk_run "$port" 64 1 "warm-$1-$i-check.log" >/dev/null
            if [ "$RKEY" != "$KEY" ] && { [ -n "$BODY_CASES" ] || want responses; }; then
                wrk_body sresp "$port" 64 1 "warm-$1-responses-$i-check.log" >/dev/null
            fi
            after=$(db_stmts)
            [ "$before" = "$after" ] && break
        done
        log "tokenbay warm: DB statements during the last warm-up second: $((after - before))"
    else
        wrk_run "$port" 64 2 "warm-$1.log" >/dev/null
    fi
}

# Targets are interleaved (each concurrency, each round of streams, runs on
# all targets back to back) so that drift in the machine's background load
# hits all of them alike.
for t in $TARGETS; do
    log "== $t: warm-up"
    warm "$t"
done

# ---- agent-sized and Responses cases: pre-checks -----------------------------------
# A Responses case that mod_tokenbay does not serve (a module without /v1/responses)
# is marked n/a instead of failing the run; anything else that does not
# answer as expected is an error of the benchmark or a regression: stop.
not_served() { # case target code what
    if [ "$2" = tokenbay ] && [ "${CKIND[$1]}" = responses ]; then
        case $3 in
            2??) NA[$1,$2]="n/a (unexpected answer)" ;;
            404|405|501) NA[$1,$2]="n/a (route not available)" ;;
            *) NA[$1,$2]="n/a (HTTP $3)" ;;
        esac
        log "  $2 does not serve ${CLABEL[$1]} (HTTP $3): ${NA[$1,$2]}, not measured; answer: $4"
    else
        die "$2 does not answer ${CLABEL[$1]} as expected (HTTP $3): $4"
    fi
}

precheck_body() { # case target
    local out code
    out=$(curl -s -m 10 -w ' HTTP%{http_code}' "http://127.0.0.1:$(target_port "$2")${CPATH[$1]}" \
          -H "Authorization: Bearer $(case_key "$1")" -H 'Content-Type: application/json' \
          --data-binary @"${CBODY[$1]}") || true
    code=${out##* HTTP}
    case $code in
        2??) [[ $out == *"${CMARK[$1]}"* ]] && return 0 ;;
    esac
    not_served "$1" "$2" "$code" "$(printf '%.300s' "${out% HTTP*}")"
}

precheck_rstream() { # target
    local code
    code=$(curl -s -N -m 10 -o "$LOGS/precheck-rstream-$1.txt" -w '%{http_code}' \
           "http://127.0.0.1:$(target_port "$1")/v1/responses" \
           -H "Authorization: Bearer $RKEY" -H 'Content-Type: application/json' \
           -H 'Accept: text/event-stream' \
           -d '{"model":"bench-model","input":"Say hello","stream":true}') || true
    case $code in
        2??) grep -q 'response.completed' "$LOGS/precheck-rstream-$1.txt" && return 0 ;;
    esac
    not_served rstream "$1" "$code" "$(head -c 300 "$LOGS/precheck-rstream-$1.txt" 2>/dev/null)"
}

if [ -n "$BODY_CASES" ] || want responses; then
    log "pre-checks of the agent-sized and Responses cases"
    for t in $TARGETS; do
        for cs in $BODY_CASES; do precheck_body "$cs" "$t"; done
        if want responses; then precheck_rstream "$t"; fi
    done
fi
R[tokenbay,db_before]=$(db_stmts)

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# CPU time (clock ticks) used so far by a server: its process and children
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
cpu_ticks() {
    local pid=$1 sum=0 p
    for p in $pid $(pgrep -P "$pid" || true); do
        sum=$(( sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) ))
    done
    echo "$sum"
}

# ---- small chat body (group "small") -------------------------------------------------

if want small; then
for r in $(seq 1 "$ROUNDS"); do
    for c in $CONNS; do
        for t in $TARGETS; do
            pid=$(target_pid "$t"); ticks=$(cpu_ticks "$pid")
            line=$(wrk_run "$(target_port "$t")" "$c" "$DURATION" "wrk-$t-c$c-r$r.log")
            ticks=$(( $(cpu_ticks "$pid") - ticks ))
            n=$(kv "$line" requests)
            if [ "${n:-0}" -gt 0 ]; then
                W[$t,cpu$c]="${W[$t,cpu$c]:-} $(( ticks * TICK_US / n ))"
            fi
            log "round $r, $t, wrk -t1 -c$c -d${DURATION}s: $line"
            W[$t,rps$c]="${W[$t,rps$c]:-} $(kv "$line" rps)"
            W[$t,p50_$c]="${W[$t,p50_$c]:-} $(kv "$line" p50_ms)"
            W[$t,p99_$c]="${W[$t,p99_$c]:-} $(kv "$line" p99_ms)"
            R[$t,err$c]=$(( ${R[$t,err$c]:-0} + $(kv "$line" errors) + $(kv "$line" non2xx) ))
        done
    done
done
for t in $TARGETS; do
    for c in $CONNS; do
        # shellcheck disable=SC2086  # the values are space-separated on purpose
        R[$t,rps$c]=$(median ${W[$t,rps$c]})
        # shellcheck disable=SC2086
        R[$t,p50_$c]=$(median ${W[$t,p50_$c]})
        # shellcheck disable=SC2086
        R[$t,p99_$c]=$(median ${W[$t,p99_$c]})
        # shellcheck disable=SC2086
        if [ -n "${W[$t,cpu$c]:-}" ]; then R[$t,cpu$c]=$(median ${W[$t,cpu$c]}); fi
    done
done
fi

# ---- agent-sized bodies and the small Responses body (groups "agent", "responses") ---
# Same method as the small chat case (wrk -t1, interleaved rounds, medians,
# server CPU per request), with bench/post.lua posting a body file.

if [ -n "$BODY_CASES" ]; then
for r in $(seq 1 "$ROUNDS"); do
    for cs in $BODY_CASES; do
        for c in ${CCONNS[$cs]}; do
            for t in $TARGETS; do
                [ -z "${NA[$cs,$t]:-}" ] || continue
                pid=$(target_pid "$t"); ticks=$(cpu_ticks "$pid")
                line=$(wrk_body "$cs" "$(target_port "$t")" "$c" "$AGENT_DURATION" "wrk-$cs-$t-c$c-r$r.log")
                ticks=$(( $(cpu_ticks "$pid") - ticks ))
                n=$(kv "$line" requests)
                if [ "${n:-0}" -gt 0 ]; then
                    W[$t,${cs}_cpu$c]="${W[$t,${cs}_cpu$c]:-} $(( ticks * TICK_US / n ))"
                fi
                log "round $r, $cs, $t, wrk -t1 -c$c -d${AGENT_DURATION}s: $line"
                W[$t,${cs}_rps$c]="${W[$t,${cs}_rps$c]:-} $(kv "$line" rps)"
                W[$t,${cs}_p50_$c]="${W[$t,${cs}_p50_$c]:-} $(kv "$line" p50_ms)"
                R[$t,${cs}_err$c]=$(( ${R[$t,${cs}_err$c]:-0} + $(kv "$line" errors) + $(kv "$line" non2xx) ))
            done
        done
    done
done
for t in $TARGETS; do
    for cs in $BODY_CASES; do
        for c in ${CCONNS[$cs]}; do
            [ -n "${W[$t,${cs}_rps$c]:-}" ] || continue
            # shellcheck disable=SC2086
            R[$t,${cs}_rps$c]=$(median ${W[$t,${cs}_rps$c]})
            # shellcheck disable=SC2086
            R[$t,${cs}_p50_$c]=$(median ${W[$t,${cs}_p50_$c]})
            # shellcheck disable=SC2086
            if [ -n "${W[$t,${cs}_cpu$c]:-}" ]; then R[$t,${cs}_cpu$c]=$(median ${W[$t,${cs}_cpu$c]}); fi
        done
    done
done
fi

# p-th percentile (nearest rank) of column $2 of file $1
pctl() { sort -n -k"$2,$2" "$1" | awk -v k="$2" -v p="$3" '{ v[NR] = $k }
    END { if (NR) { i = int(p * NR + 0.999999); if (i < 1) i = 1; print v[i] } }'; }

# Sequential streams: SROUNDS interleaved rounds of STREAMS/SROUNDS streams
# per target; kind chat (group "stream") or responses (group "responses").
# Results in R[target,<prefix>ttfb|second|total|...].
SROUNDS=5
per=$(( (STREAMS + SROUNDS - 1) / SROUNDS ))
stream_rounds() { # kind (chat, responses) prefix
    local kind=$1 pre=$2 r t line f key=$KEY
    [ "$kind" = chat ] || key=$RKEY
    log "$((per * SROUNDS)) sequential $kind streams per target, $SROUNDS interleaved rounds"
    for t in $TARGETS; do rm -f "$LOGS/${pre}streams-$t.txt" "$LOGS/${pre}probe-$t.err"; R[$t,${pre}s_err]=0; done
    for r in $(seq 1 $SROUNDS); do
        for t in $TARGETS; do
            [ -z "${NA[${pre:-chat}stream,$t]:-}" ] || continue
            line=$("$BIN/stream_probe" -f "$kind" -p "$(target_port "$t")" -k "$key" -n "$per" -c 1 -t 60 \
                   -o "$LOGS/${pre}streams-$t.txt" 2>>"$LOGS/${pre}probe-$t.err") || true
            log "  $t: $line"
            R[$t,${pre}s_err]=$(( ${R[$t,${pre}s_err]} + $(kv "$line" errors) ))
        done
    done
    for t in $TARGETS; do
        [ -z "${NA[${pre:-chat}stream,$t]:-}" ] || continue
        head -3 "$LOGS/${pre}probe-$t.err" >&2
        f=$LOGS/${pre}streams-$t.txt
        R[$t,${pre}s_ok]=$( [ -f "$f" ] && wc -l <"$f" || echo 0)
        [ "${R[$t,${pre}s_ok]}" -gt 0 ] || continue
        R[$t,${pre}ttfb]=$(pctl "$f" 1 0.5); R[$t,${pre}ttfb90]=$(pctl "$f" 1 0.9)
        R[$t,${pre}second]=$(pctl "$f" 2 0.5)
        R[$t,${pre}total]=$(pctl "$f" 3 0.5); R[$t,${pre}total90]=$(pctl "$f" 3 0.9)
    done
}
if want stream; then stream_rounds chat ""; fi
if want responses; then stream_rounds responses r; fi

# ---- conversion (group "convert"): mod_tokenbay alone ------------------------------
# The same chat upstream stream (the mock's 20 chat events), once passed
# through to a chat client and once converted for a Responses client
# (stream_probe -f responses with the chat account's key), interleaved: the
# difference in time to first content is what converting costs a client.
# Then the library's own timing of converting the captured Codex request.
if want convert; then
    log "converted streams: $((per * SROUNDS)) chat->chat and chat->Responses streams on mod_tokenbay"
    for kind in chat responses; do rm -f "$LOGS/cv-$kind.txt" "$LOGS/cv-$kind.err"; done
    for r in $(seq 1 $SROUNDS); do
        for kind in chat responses; do
            # the mock's 20 chat events become 24 Responses events (the
            # item and part openings and closings are the gateway's)
            line=$("$BIN/stream_probe" -f "$kind" -e "$([ "$kind" = chat ] && echo 20 || echo 24)" \
                   -p "$TB_PORT" -k "$KEY" -n "$per" -c 1 -t 60 \
                   -o "$LOGS/cv-$kind.txt" 2>>"$LOGS/cv-$kind.err") || true
            log "  $kind: $line"
        done
    done
    for kind in chat responses; do
        f=$LOGS/cv-$kind.txt
        [ -s "$f" ] || { head -3 "$LOGS/cv-$kind.err" >&2; die "no successful $kind stream on mod_tokenbay"; }
        R[cv,$kind,ok]=$(wc -l <"$f")
        R[cv,$kind,second]=$(pctl "$f" 2 0.5)
        R[cv,$kind,total]=$(pctl "$f" 3 0.5)
    done
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["body"]))' \
        "$ROOT/t/fixtures/codex-0.169-tool-followup.json" >"$RUN/codex-turn.json"
    for b in "$RUN/codex-turn.json" "$BENCH/bodies/agent-chat.json"; do
        "$BIN/convert_cost" "$b" 2000 >"$LOGS/convert-$(basename "$b" .json).txt" \
            || die "convert_cost $b failed"
        log "  $(head -1 "$LOGS/convert-$(basename "$b" .json).txt")"
    done
    cline=$(head -1 "$LOGS/convert-codex-turn.txt")
    R[cv,codex_bytes]=$(kv "$cline" bytes); R[cv,codex_scan]=$(kv "$cline" scan_us)
    R[cv,codex_conv]=$(kv "$cline" convert_us)
    cline=$(head -1 "$LOGS/convert-agent-chat.txt")
    R[cv,chat_bytes]=$(kv "$cline" bytes); R[cv,chat_conv]=$(kv "$cline" convert_us)
    R[cv,ev_pass]=$(kv "$(sed -n 2p "$LOGS/convert-codex-turn.txt")" us_per_event)
    R[cv,ev_conv]=$(kv "$(sed -n 3p "$LOGS/convert-codex-turn.txt")" us_per_event)
fi

if want hold; then
for t in $TARGETS; do
    log "$t: $HOLD simultaneous streams (${HOLD_DELAY} ms between events)"
    line=$("$BIN/stream_probe" -p "$(target_port "$t")" -k "$KEY" -n "$HOLD" -c "$HOLD" \
           -d "$HOLD_DELAY" -r "$(target_pid "$t")" -t 120 2>"$LOGS/hold-$t.err") || true
    log "  $line"; head -3 "$LOGS/hold-$t.err" >&2
    R[$t,h_ok]=$(kv "$line" ok); R[$t,h_err]=$(kv "$line" errors)
    R[$t,h_open]=$(kv "$line" peak_open)
    R[$t,h_rss]=$(kv "$line" peak_rss_kb); R[$t,h_base]=$(kv "$line" base_rss_kb)
    R[$t,h_pss]=$(kv "$line" peak_pss_kb); R[$t,h_bpss]=$(kv "$line" base_pss_kb)
done
fi
R[tokenbay,db_after]=$(db_stmts)

# ---- report ----------------------------------------------------------------------
# The cells take an optional case (achat, aresp, sresp; rstream for the
# Responses streams): its results are under keys prefixed "<case>_" ("r" for
# the Responses streams), and NA[case,target] replaces the cell.

na_cell() { # target case: prints the n/a text and succeeds when not measured
    [ -n "${2:-}" ] && [ -n "${NA[$2,$1]:-}" ] && { echo "${NA[$2,$1]}"; return 0; }
    return 1
}
cell_rps() { # target conns [case]
    na_cell "$1" "${3:-}" && return
    local p=${3:+${3}_}
    local v=${R[$1,${p}rps$2]:-} e=${R[$1,${p}err$2]:-0}
    [ -n "$v" ] || { echo "–"; return; }
    if [ "$e" != 0 ]; then echo "$(fmt "$v" '%.0f') ($e errors)"; else fmt "$v" '%.0f'; fi
}
cell_cpu() { # target conns [case]
    na_cell "$1" "${3:-}" && return
    local p=${3:+${3}_}
    [ -n "${R[$1,${p}cpu$2]:-}" ] || { echo "–"; return; }
    echo "${R[$1,${p}cpu$2]}"
}
cell_ms() { # value
    [ -n "${1:-}" ] || { echo "–"; return; }
    fmt "$1" '%.3f'
}
cell_p50() { # target case
    na_cell "$1" "$2" && return
    cell_ms "${R[$1,${2}_p50_1]:-}"
}
cell_stream() { # target key [prefix: "" chat, "r" Responses]
    local pre=${3:-}
    na_cell "$1" "${pre:+${pre}stream}" && return
    local ok=${R[$1,${pre}s_ok]:-}
    [ -n "$ok" ] || { echo "–"; return; }
    [ "$ok" -gt 0 ] || { echo "failed (${R[$1,${pre}s_err]} errors)"; return; }
    if [ "${R[$1,${pre}s_err]:-0}" != 0 ]; then
        echo "$(fmt "${R[$1,${pre}$2]}" '%.2f') (${R[$1,${pre}s_err]} errors)"
    else
        fmt "${R[$1,${pre}$2]}" '%.2f'
    fi
}
cell_hold() {
    local ok=${R[$1,h_ok]:-}
    [ -n "$ok" ] || { echo "–"; return; }
    echo "$ok/$HOLD ok, ${R[$1,h_err]} errors, ${R[$1,h_open]} open at once"
}
cell_rss() {
    [ -n "${R[$1,h_rss]:-}" ] || { echo "–"; return; }
    awk -v p="${R[$1,h_rss]}" -v b="${R[$1,h_base]}" \
        'BEGIN { printf "%.1f MiB (idle %.1f)", p / 1024, b / 1024 }'
}
cols() { local f=$1 out=""; shift; for t in direct proxy tokenbay; do out="$out | $($f "$t" "$@")"; done; echo "$out"; }
msc() { cell_ms "${R[$1,$2]:-}"; }

has() { [ -n "${R[$1,$2]:-}" ]; }
verdict() { # description, awk condition over p (proxy) and t (tokenbay), key p, key t [case]
    local desc=$1 cond=$2 pk=$3 tk=$4 cs=${5:-}
    if [ -n "$cs" ] && [ -n "${NA[$cs,tokenbay]:-}" ]; then
        echo "- not measured: $desc (mod_tokenbay: ${NA[$cs,tokenbay]})"
    elif has proxy "$pk" && has tokenbay "$tk"; then
        if awk -v p="${R[proxy,$pk]}" -v t="${R[tokenbay,$tk]}" "BEGIN { exit !($cond) }"; then
            echo "- MET: $desc"
        else
            echo "- MISSED: $desc"
        fi
    else
        echo "- not measured: $desc"
    fi
}
# " (+0.051 ms)" / " (74%)": tokenbay against proxy for keys $1 (proxy) $2 (tokenbay)
delta() { has proxy "$1" && has tokenbay "$2" && awk -v p="${R[proxy,$1]}" -v t="${R[tokenbay,$2]}" -v f="$3" 'BEGIN { printf f, t - p }'; }
ratio() { has proxy "$1" && has tokenbay "$2" && awk -v p="${R[proxy,$1]}" -v t="${R[tokenbay,$2]}" 'BEGIN { if (p > 0) printf " (%.0f%%)", 100 * t / p }'; }

# the per-round values of W[target,$1], printf format $2: "direct 1 2 3, proxy ..."
per_round() {
    local out="" t
    for t in $TARGETS; do
        [ -n "${W[$t,$1]:-}" ] || continue
        # shellcheck disable=SC2086,SC2059  # space-separated values; the format is ours
        out="$out${out:+, }$t$(printf " $2" ${W[$t,$1]})"
    done
    echo "${out:-–}"
}
kib() { awk -v n="$(stat -c %s "$1")" 'BEGIN { printf "%.0f KB", n / 1000 }'; }
declare -A CNAME
CNAME[achat]="Chat, $(kib "${CBODY[achat]}") agent body"
CNAME[aresp]="Responses, $(kib "${CBODY[aresp]}") agent body"
ALAST=${AGENT_CONNS##* }

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
if ! want small || [ -z "$BODY_CASES" ] || [ "$AGENT_DURATION" = "$DURATION" ]; then
    RUNS_DESC="$( want small && echo "$DURATION" || echo "$AGENT_DURATION")-second runs"
else
    RUNS_DESC="${DURATION}-second runs (agent-sized and Responses bodies: ${AGENT_DURATION}-second runs)"
fi
{
    echo "mod_tokenbay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $($HTTPD -v | sed -n 's/^Server version: //p'), mod_tokenbay $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo "wrk -t1; req/s and latencies are the median of $ROUNDS interleaved $RUNS_DESC; everything (wrk, httpd, mock, MariaDB) on the same $(nproc) cores."
    [ "$CASES" = "small agent responses stream hold" ] || echo "Case groups: $CASES."
    echo
    echo "| | direct (mock) | httpd + mod_proxy_http | httpd + mod_tokenbay |"
    echo "|---|---:|---:|---:|"
    if want small; then
        for c in $CONNS; do
            echo "| req/s, c=$c$(cols cell_rps "$c") |"
        done
        echo "| p50 latency, c=1 (ms)$(cols msc p50_1) |"
        echo "| server CPU per request, c=${CONNS##* } (µs)$(cols cell_cpu "${CONNS##* }") |"
    fi
    if want stream; then
        echo "| stream time to first byte, p50 (ms)$(cols cell_stream ttfb) |"
        echo "| stream time to first content (2nd event), p50 (ms)$(cols cell_stream second) |"
        echo "| stream total, 20 events × 5 ms, p50 (ms)$(cols cell_stream total) |"
    fi
    if want hold; then
        echo "| $HOLD streams at once (20 events × ${HOLD_DELAY} ms)$(cols cell_hold) |"
        echo "| peak RSS, $HOLD streams open$(cols cell_rss) |"
    fi
    if want agent; then
        for cs in achat aresp; do
            for c in $AGENT_CONNS; do
                echo "| ${CNAME[$cs]}, req/s, c=$c$(cols cell_rps "$c" "$cs") |"
            done
            echo "| ${CNAME[$cs]}, p50 latency, c=1 (ms)$(cols cell_p50 "$cs") |"
            echo "| ${CNAME[$cs]}, server CPU per request, c=$ALAST (µs)$(cols cell_cpu "$ALAST" "$cs") |"
        done
    fi
    if want responses; then
        for c in $RESP_CONNS; do
            echo "| Responses, small body, req/s, c=$c$(cols cell_rps "$c" sresp) |"
        done
        echo "| Responses stream time to first byte, p50 (ms)$(cols cell_stream ttfb r) |"
        echo "| Responses stream time to first content (1st output_text.delta, 5th event), p50 (ms)$(cols cell_stream second r) |"
        echo "| Responses stream total, 20 events × 5 ms, p50 (ms)$(cols cell_stream total r) |"
    fi
    if want convert; then
        echo
        echo "Conversion (mod_tokenbay alone; the same chat upstream stream, $((per * SROUNDS)) streams each):"
        echo
        echo "| | chat stream passed through to a chat client | converted for a Responses client |"
        echo "|---|---:|---:|"
        echo "| time to first content, p50 (ms) | ${R[cv,chat,second]} | ${R[cv,responses,second]} |"
        echo "| stream total, p50 (ms) | ${R[cv,chat,total]} | ${R[cv,responses,total]} |"
        echo "| library cost per upstream event (µs) | ${R[cv,ev_pass]} | ${R[cv,ev_conv]} |"
        echo
        echo "Converting a request, in the library (bench/convert_cost, 2000 iterations): the captured Codex turn ($(( ${R[cv,codex_bytes]} / 1024 )) KB, Responses → Chat) ${R[cv,codex_conv]} µs (its validating scan alone ${R[cv,codex_scan]} µs); the agent chat body ($(( ${R[cv,chat_bytes]} / 1024 )) KB, Chat → Responses) ${R[cv,chat_conv]} µs."
    fi
    echo
    echo "Targets (mod_tokenbay against mod_proxy_http):"
    if want small; then
        verdict "req/s at c=64 ≥ 60% of mod_proxy_http's$(ratio rps64 rps64)" 't >= 0.6 * p && p > 0' rps64 rps64
        verdict "p50 at c=1 within 0.3 ms of mod_proxy_http's$(delta p50_1 p50_1 ' (%+.3f ms)')" 't - p <= 0.3 && t > 0' p50_1 p50_1
    fi
    if want stream; then
        if [ "${R[tokenbay,s_ok]:-0}" -gt 0 ] && [ "${R[proxy,s_ok]:-0}" -gt 0 ]; then
            verdict "stream time to first byte within 1 ms of mod_proxy_http's$(delta ttfb ttfb ' (%+.2f ms)')" 't - p <= 1' ttfb ttfb
            verdict "(informative) stream time to first content within 1 ms of mod_proxy_http's$(delta second second ' (%+.2f ms)')" 't - p <= 1' second second
        else
            echo "- MISSED: stream time to first byte within 1 ms of mod_proxy_http's (no successful mod_tokenbay stream)"
        fi
    fi
    if want hold && [ -n "${R[tokenbay,h_ok]:-}" ]; then
        if [ "${R[tokenbay,h_ok]}" = "$HOLD" ] && [ "${R[tokenbay,h_err]}" = 0 ] \
           && [ "${R[tokenbay,h_open]}" = "$HOLD" ]; then
            echo "- MET: $HOLD simultaneous streams held without errors"
        else
            echo "- MISSED: $HOLD simultaneous streams held without errors"
        fi
    fi
    if want convert; then
        d=$(awk -v a="${R[cv,responses,second]}" -v b="${R[cv,chat,second]}" 'BEGIN { printf "%+.2f", a - b }')
        if awk -v d="$d" 'BEGIN { exit !(d <= 1) }'; then v=MET; else v=MISSED; fi
        echo "- $v: converted Responses stream: time to first content within 1 ms of the same stream passed through ($d ms)"
    fi
    if want agent; then
        for cs in achat aresp; do
            verdict "${CNAME[$cs]}: req/s at c=16 ≥ 80% of mod_proxy_http's$(ratio "${cs}_rps16" "${cs}_rps16")" \
                't >= 0.8 * p && p > 0' "${cs}_rps16" "${cs}_rps16" "$cs"
            verdict "${CNAME[$cs]}: p50 at c=1 within +0.1 ms of mod_proxy_http's$(delta "${cs}_p50_1" "${cs}_p50_1" ' (%+.3f ms)')" \
                't - p <= 0.1 && t > 0' "${cs}_p50_1" "${cs}_p50_1" "$cs"
        done
    fi
    if want responses; then
        verdict "Responses streams: time to first content within 1 ms of mod_proxy_http's$(delta rsecond rsecond ' (%+.2f ms)')" \
            't - p <= 1' rsecond rsecond rstream
    fi
    echo
    if want small || want stream || want hold; then
        echo "Details: p99 latency at c=64 (ms): direct $(msc direct p99_64), proxy $(msc proxy p99_64), tokenbay $(msc tokenbay p99_64);" \
             "stream TTFB p90 (ms): direct $(msc direct ttfb90), proxy $(msc proxy ttfb90), tokenbay $(msc tokenbay ttfb90);" \
             "peak PSS with $HOLD streams (MiB): $(for t in direct proxy tokenbay; do has "$t" h_pss && awk -v t="$t" -v p="${R[$t,h_pss]}" 'BEGIN { printf "%s %.1f ", t, p / 1024 }'; done)"
    fi
    if want small; then
        last=${CONNS##* }
        # shellcheck disable=SC2086
        echo "Per round, req/s at c=$last: $(for t in $TARGETS; do printf '%s%s; ' "$t" "$(printf ' %.0f' ${W[$t,rps$last]:-})"; done)p50 at c=1 (ms): $(for t in $TARGETS; do printf '%s%s; ' "$t" "$(printf ' %.3f' ${W[$t,p50_1]:-})"; done)"
    fi
    if want agent; then
        echo "Per round, agent bodies, req/s at c=$ALAST: chat: $(per_round "achat_rps$ALAST" %.0f); responses: $(per_round "aresp_rps$ALAST" %.0f); p50 at c=1 (ms): chat: $(per_round achat_p50_1 %.3f); responses: $(per_round aresp_p50_1 %.3f)."
    fi
    if want responses; then
        echo "Responses stream TTFB p90 (ms): direct $(msc direct rttfb90), proxy $(msc proxy rttfb90), tokenbay $(msc tokenbay rttfb90)."
    fi
    if has tokenbay db_before && has tokenbay db_after; then
        n=$(( ${R[tokenbay,db_after]} - ${R[tokenbay,db_before]} ))
        if [ "$n" = 0 ]; then
            echo "Database statements during the measurements: 0 (mod_tokenbay's key and catalogue caches stayed warm in every child)."
        else
            echo "Database statements during the measurements: $n (some lookups missed mod_tokenbay's caches)."
        fi
    fi
} >"$BENCH/results/latest.md"

echo
cat "$BENCH/results/latest.md"
log "saved to bench/results/latest.md; raw outputs in $LOGS"
if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "left running (BENCH_KEEP=1): mock :$MOCK_PORT, proxy :$PROXY_PORT, tokenbay :$TB_PORT, key $KEY (Responses cases: $RKEY); stop with bench/run.sh stop"
fi
