#!/usr/bin/env bash
# services.sh — install, start and stop the real services logship's tests run against.
#
# noida-db (PyPI) is one binary that speaks the Kafka protocol and the Elasticsearch API;
# osmem-server (PyPI) is an in-memory OpenSearch-API server, the second Elasticsearch-API
# implementation the sink is tested against; moto[server] (PyPI) serves the S3 API in memory.
# All run from a private virtualenv, next to confluent-kafka (used by scripts/kafka.py).
#
#   scripts/services.sh install     venv + pinned packages (a no-op when already installed)
#   scripts/services.sh start       test broker: Kafka on 127.0.0.1:19092, Elasticsearch on
#                                   127.0.0.1:19200, OpenSearch (osmem) on 127.0.0.1:19201, S3
#                                   (moto) on 127.0.0.1:19202; reuses those this script started
#   scripts/services.sh env         print the test variables without starting anything
#   scripts/services.sh status      list the brokers this script started (exit 3 if none runs)
#   scripts/services.sh stop        stop every broker this script started (and nothing else)
#   scripts/services.sh reset       stop, then delete their data and logs
#   scripts/services.sh start-broker [PORT [ES_PORT]]
#                                   quickstart: Kafka on 127.0.0.1:PORT (default 9092), plus
#                                   Elasticsearch on ES_PORT if given, unless PORT is already taken
#
# stdout carries only KEY=VALUE lines (progress goes to stderr), so a caller can do
#   set -a; eval "$(scripts/services.sh start)"; set +a
#
# Environment: LOGSHIP_CACHE_DIR (default ~/.cache/logship; the venv lives in it),
# LOGSHIP_STATE_DIR (default <repo>/target/services; data, logs, pidfiles),
# LOGSHIP_TEST_KAFKA_PORT (19092), LOGSHIP_TEST_ES_PORT (19200), LOGSHIP_TEST_OPENSEARCH_PORT (19201),
# LOGSHIP_TEST_S3_PORT (19202),
# LOGSHIP_SERVICES_TIMEOUT_SECS (60; how long to wait for a broker to answer).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQS=$REPO/scripts/requirements-services.txt
KAFKA_PY=$REPO/scripts/kafka.py
CACHE_DIR=${LOGSHIP_CACHE_DIR:-$HOME/.cache/logship}
VENV=$CACHE_DIR/venv
STATE_DIR=${LOGSHIP_STATE_DIR:-$REPO/target/services}
TEST_KAFKA_PORT=${LOGSHIP_TEST_KAFKA_PORT:-19092}
TEST_ES_PORT=${LOGSHIP_TEST_ES_PORT:-19200}
TEST_OS_PORT=${LOGSHIP_TEST_OPENSEARCH_PORT:-19201}
TEST_S3_PORT=${LOGSHIP_TEST_S3_PORT:-19202}
TIMEOUT_SECS=${LOGSHIP_SERVICES_TIMEOUT_SECS:-60}
HOST=127.0.0.1

log() { echo "services.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------------- install

apt_install() {
    command -v apt-get >/dev/null || die "need $*, and there is no apt-get to install it"
    log "apt-get install $*"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

venv_file() {  # the first file matching the glob $1 under the venv's site-packages
    local b
    for b in "$VENV"/lib/python3*/site-packages/$1; do
        [ -f "$b" ] && { echo "$b"; return 0; }
    done
    return 1
}
# The real binaries; bin/noida-db is a Python wrapper that would not pass signals on.
noida_bin() { venv_file noida_db/noida-db; }
osmem_bin() { venv_file osmem_server/bin/osmem-server; }

install() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/install.lock"
    flock 8
    local key stamp=$VENV/.logship-requirements.sha256
    key=$(sha256sum <"$REQS" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && "$VENV/bin/python" -c '' 2>/dev/null \
        && noida_bin >/dev/null && osmem_bin >/dev/null && [ -x "$VENV/bin/moto_server" ]; then
        exec 8>&-
        return 0
    fi
    log "installing $(grep -v '^#' "$REQS" | xargs) into $VENV"
    command -v python3 >/dev/null || apt_install python3 python3-venv
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >&2; then
        apt_install python3-venv
        rm -rf "$VENV"
        python3 -m venv "$VENV" >&2
    fi
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQS" >&2
    chmod +x "$(noida_bin)" "$(osmem_bin)"
    echo "$key" >"$stamp"
    exec 8>&-
}

# -------------------------------------------------------------------------------------- instances
# An instance is a directory $STATE_DIR/NAME holding data/, noida.log and noida.pid.

# Print the pid of instance NAME if it runs and is really our noida-db (pid reuse is possible).
our_pid() {
    local dir=$STATE_DIR/$1 pid cmd
    pid=$(cat "$dir/noida.pid" 2>/dev/null) || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    case "$cmd" in
        *noida-db\ start\ --data-dir\ "$dir/data"\ *) echo "$pid" ;;
        *) return 1 ;;
    esac
}

alive() {  # running, not a zombie
    local state
    read -r _ _ state _ 2>/dev/null <"/proc/$1/stat" && [ "$state" != Z ]
}

listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

es_ready() {
    "$VENV/bin/python" - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
EOF
}

# Wait until instance NAME's Kafka port answers a metadata request (and ES_PORT, if given, GET /).
wait_ready() {
    local name=$1 pid=$2 kport=$3 eport=$4 start=$SECONDS t0=${EPOCHREALTIME/[.,]/}
    while :; do
        alive "$pid" || { log "noida-db ($name) exited"; return 1; }
        if listening "$kport" \
            && "$VENV/bin/python" "$KAFKA_PY" --brokers "$HOST:$kport" ping --timeout-secs 2 \
                >/dev/null 2>&1 \
            && { [ -z "$eport" ] || es_ready "$eport"; }; then
            log "noida-db ($name, pid $pid) ready after $(((${EPOCHREALTIME/[.,]/} - t0) / 1000)) ms"
            return 0
        fi
        if ((SECONDS - start >= TIMEOUT_SECS)); then
            log "noida-db ($name) did not answer within $TIMEOUT_SECS s"
            return 1
        fi
        sleep 0.2
    done
}

# Start instance NAME with Kafka on KPORT and, if EPORT is not empty, Elasticsearch on EPORT;
# reuse it if it already runs with these ports.
start_instance() {
    local name=$1 kport=$2 eport=$3 dir=$STATE_DIR/$1 pid only=kafka
    local args=(--kafka-port "$kport")
    if [ -n "$eport" ]; then
        only=kafka,elasticsearch
        args+=(--elasticsearch-port "$eport")
    fi
    install
    if pid=$(our_pid "$name"); then
        if grep -qzx -- "$kport" "/proc/$pid/cmdline" \
            && { [ -z "$eport" ] || grep -qzx -- "$eport" "/proc/$pid/cmdline"; }; then
            log "reusing noida-db ($name, pid $pid)"
            kill -CONT "$pid"  # a test may have left it frozen
            wait_ready "$name" "$pid" "$kport" "$eport" && return 0
            log "it does not answer; restarting it"
        else
            log "noida-db ($name, pid $pid) runs on other ports; restarting it"
        fi
        stop_instance "$name"
    fi
    for p in "$kport" $eport; do
        ! listening "$p" || die "$HOST:$p is already in use by a process this script did not start"
    done
    mkdir -p "$dir/data"
    log "starting noida-db ($name): kafka $HOST:$kport${eport:+, elasticsearch $HOST:$eport}"
    echo "--- $(date -u +%FT%TZ) start" >>"$dir/noida.log"
    "$(noida_bin)" start --data-dir "$dir/data" --host "$HOST" --only "$only" "${args[@]}" \
        </dev/null >>"$dir/noida.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/noida.pid"
    if ! wait_ready "$name" "$pid" "$kport" "$eport"; then
        log "last lines of $dir/noida.log:"
        tail -n 20 "$dir/noida.log" >&2
        stop_instance "$name"
        exit 1
    fi
}

stop_instance() {
    local name=$1 dir=$STATE_DIR/$1 pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$dir/noida.pid"
        return 0
    fi
    log "stopping noida-db ($name, pid $pid)"
    kill -CONT "$pid" 2>/dev/null || true  # a frozen process would never act on TERM
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do  # 10 s: it writes its data to disk on TERM
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "still running after 10 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
    ! alive "$pid" || die "pid $pid does not go away"
    rm -f "$dir/noida.pid"
}

# Servers that keep everything in memory (osmem-server, the moto S3 server): $STATE_DIR/NAME
# holds only NAME.log and NAME.pid. Each is recognised by its port on its command line.
aux_pid() {  # NAME PORT: the pid of our NAME serving PORT
    local dir=$STATE_DIR/$1 pid cmd
    pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    case "$cmd" in
        *"$2"*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

start_aux() {  # NAME PORT COMMAND...: start COMMAND unless ours runs; wait until GET / answers
    local name=$1 port=$2 dir=$STATE_DIR/$1 pid start=$SECONDS
    shift 2
    if pid=$(aux_pid "$name" "$port"); then
        log "reusing $name (pid $pid)"
        return 0
    fi
    ! listening "$port" || die "$HOST:$port is already in use by a process this script did not start"
    mkdir -p "$dir"
    log "starting $name on $HOST:$port"
    "$@" </dev/null >>"$dir/$name.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/$name.pid"
    until es_ready "$port"; do
        alive "$pid" || { tail -n 20 "$dir/$name.log" >&2; die "$name exited"; }
        ((SECONDS - start < TIMEOUT_SECS)) || die "$name did not answer within $TIMEOUT_SECS s"
        sleep 0.1
    done
    log "$name (pid $pid) ready"
}

stop_aux() {  # NAME PORT
    local pid i
    if pid=$(aux_pid "$1" "$2"); then
        log "stopping $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        ! alive "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE_DIR/$1/$1.pid"
}

start_aux_servers() {
    start_aux osmem "$TEST_OS_PORT" "$(osmem_bin)" -addr "$HOST:$TEST_OS_PORT" -no-stdin-watch -no-ja
    start_aux moto "$TEST_S3_PORT" "$VENV/bin/moto_server" -H "$HOST" -p "$TEST_S3_PORT"
}

stop_aux_servers() {
    stop_aux osmem "$TEST_OS_PORT"
    stop_aux moto "$TEST_S3_PORT"
}

instances() {
    local f
    for f in "$STATE_DIR"/*/noida.pid; do
        [ -f "$f" ] && basename "$(dirname "$f")"
    done
    return 0
}

lock_state() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock 9
}

# -------------------------------------------------------------------------------------- commands

print_test_env() {
    echo "LOGSHIP_TEST_BROKERS=$HOST:$TEST_KAFKA_PORT"
    echo "LOGSHIP_TEST_ES_URL=http://$HOST:$TEST_ES_PORT"
    echo "LOGSHIP_TEST_OPENSEARCH_URL=http://$HOST:$TEST_OS_PORT"
    echo "LOGSHIP_TEST_S3_ENDPOINT=http://$HOST:$TEST_S3_PORT"
    echo "LOGSHIP_TEST_PYTHON=$VENV/bin/python"
    echo "LOGSHIP_TEST_KAFKA_PY=$KAFKA_PY"
    # Outage tests start private brokers of their own from this binary, to freeze them.
    echo "LOGSHIP_TEST_NOIDA=$(noida_bin)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    install)
        install
        ;;
    start)
        lock_state
        start_instance test "$TEST_KAFKA_PORT" "$TEST_ES_PORT"
        start_aux_servers
        print_test_env
        ;;
    env)
        print_test_env
        ;;
    start-broker)
        port=${1:-9092} es_port=${2:-}
        lock_state
        if ! our_pid "broker-$port" >/dev/null && listening "$port"; then
            log "something already listens on $HOST:$port; using it as it is"
        else
            start_instance "broker-$port" "$port" "$es_port"
        fi
        echo "LOGSHIP_BROKERS=$HOST:$port"
        [ -z "$es_port" ] || echo "LOGSHIP_ES_URL=http://$HOST:$es_port"
        ;;
    stop)
        lock_state
        for name in $(instances); do stop_instance "$name"; done
        stop_aux_servers
        ;;
    reset)
        lock_state
        for name in $(instances); do stop_instance "$name"; done
        stop_aux_servers
        log "deleting $STATE_DIR"
        find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
        ;;
    status)
        running=0
        for name in $(instances); do
            if pid=$(our_pid "$name"); then
                echo "$name: running, pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
                running=1
            else
                echo "$name: not running (stale pidfile)"
            fi
        done
        for aux in "osmem $TEST_OS_PORT" "moto $TEST_S3_PORT"; do
            # shellcheck disable=SC2086
            if pid=$(aux_pid $aux); then
                echo "${aux% *}: running, pid $pid"
                running=1
            fi
        done
        [ "$running" = 1 ] || { echo "no broker started by this script is running"; exit 3; }
        ;;
    *)
        sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac
