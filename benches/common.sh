# common.sh — what every benchmark script does first; source it from benches/*.sh.
# Builds the release agent, starts the test broker, makes a work directory, and on exit kills the
# processes named in $agent and $writer, stops the broker if this script started it, and removes
# the work directory.
# Sets: target (build dir), work (temp dir), port (a free port for the agent's API).
target=${CARGO_TARGET_DIR:-$(pwd)/target}
scripts/deps.sh
cargo build --release --locked --bin logship >&2
stop_services=scripts/services.sh
scripts/services.sh status >/dev/null 2>&1 && stop_services=true
set -a
eval "$(scripts/services.sh start)"
set +a
work=$(mktemp -d)
agent=""
writer=""
trap '[ -n "$agent" ] && kill -9 $agent 2>/dev/null; [ -n "$writer" ] && kill $writer 2>/dev/null; $stop_services stop; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# create_topic NAME: a 3-partition topic on the test broker.
create_topic() {
  "$LOGSHIP_TEST_PYTHON" scripts/kafka.py --brokers "$LOGSHIP_TEST_BROKERS" create-topic "$1" --partitions 3 >&2
}

# write_config [SOURCE_EXTRA [KAFKA_EXTRA]]: $work/bench.toml, one file source over $work/logs/*.log
# into $topic on the test broker, with extra lines for the source and [kafka] tables.
write_config() {
  cat > "$work/bench.toml" <<TOML
data_dir = "$work/data"
[api]
address = "127.0.0.1:$port"
[sources.bench]
type = "file"
include = ["$work/logs/*.log"]
${1:-}
[kafka]
brokers = ["$LOGSHIP_TEST_BROKERS"]
topic = "$topic"
${2:-}
TOML
}
