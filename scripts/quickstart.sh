#!/usr/bin/env bash
# quickstart.sh — logship end to end on this machine: build the agent, start a local broker on
# 127.0.0.1:9092 unless one already listens there, ship examples/logs/*.log with
# examples/quickstart.toml, and print the records as they arrive in Kafka. Then append one more
# line to show live tailing, stop the agent with SIGTERM, and stop the broker if it started one.
#
# Environment: LOGSHIP_QUICKSTART_PORT (9092), LOGSHIP_API_PORT (9598).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
port=${LOGSHIP_QUICKSTART_PORT:-9092}
work=$repo/.quickstart

scripts/deps.sh
echo "==> building logship" >&2
cargo build --locked --bin logship

echo "==> broker on 127.0.0.1:$port" >&2
export LOGSHIP_STATE_DIR=$work/services
set -a
eval "$(scripts/services.sh start-broker "$port")"
eval "$(scripts/services.sh env)"
set +a
python=$LOGSHIP_TEST_PYTHON
kafka() { "$python" scripts/kafka.py --brokers "$LOGSHIP_BROKERS" "$@"; }

export LOGSHIP_TOPIC=logship-quickstart-$(date +%s)
export LOGSHIP_DATA_DIR=$work/data
export LOGSHIP_EXAMPLES=$work/examples
rm -rf "$LOGSHIP_DATA_DIR" "$LOGSHIP_EXAMPLES"
mkdir -p "$LOGSHIP_EXAMPLES"
cp -r examples/logs "$LOGSHIP_EXAMPLES/"
kafka create-topic "$LOGSHIP_TOPIC" --partitions 3 >&2

agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" || true
  scripts/services.sh stop >&2 || true
}
trap cleanup EXIT

target=${CARGO_TARGET_DIR:-$repo/target}
"$target/debug/logship" validate -c examples/quickstart.toml
"$target/debug/logship" test -c examples/quickstart.toml
echo "==> running the agent; records in topic $LOGSHIP_TOPIC:" >&2
"$target/debug/logship" run -c examples/quickstart.toml 2>"$work/agent.log" &
agent_pid=$!

lines=$(cat examples/logs/*.log | wc -l)
( sleep 3; echo "$(date -u +%FT%TZ) INFO  a line appended while the agent runs" >> "$LOGSHIP_EXAMPLES/logs/app.log" ) &
kafka tail "$LOGSHIP_TOPIC" --from-beginning --max $((lines + 1)) --timeout-secs 60

echo "==> agent metrics (http://127.0.0.1:${LOGSHIP_API_PORT:-9598}/metrics):" >&2
curl -s "http://127.0.0.1:${LOGSHIP_API_PORT:-9598}/metrics" | grep -E '^logship_(source_events_read|kafka_events_delivered|pipeline_step_errors)' >&2 || true
kill -TERM "$agent_pid"
wait "$agent_pid"
agent_pid=""
echo "==> done: $((lines + 1)) records shipped and read back; the agent's log is in $work/agent.log" >&2
