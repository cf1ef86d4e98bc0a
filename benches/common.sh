# common.sh — what every benchmark script does first; source it from benches/*.sh.
# Builds the release binaries (the agent and the sinks), starts the test broker, makes a work directory, and on exit kills the
# processes named in $agent and $writer, stops the broker if this script started it, and removes
# the work directory.
# Sets: target (build dir), work (temp dir), port (a free port for the agent's API).
target=${CARGO_TARGET_DIR:-$(pwd)/target}
scripts/deps.sh
cargo build --release --locked --bins >&2
stop_services=scripts/services.sh
scripts/services.sh status >/dev/null 2>&1 && stop_services=true
set -a
eval "$(scripts/services.sh start)"
set +a
work=$(mktemp -d)
agent=""
writer=""
trap '[ -n "$agent" ] && kill -9 $agent 2>/dev/null; [ -n "$writer" ] && kill $writer 2>/dev/null; LOGSHIP_STATE_DIR=$work/broker scripts/services.sh reset >/dev/null 2>&1; $stop_services stop; rm -rf "$work"' EXIT
# free_port: a TCP port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)

# fresh_broker: a Kafka broker of this benchmark's own (noida-db on a free port, its data under
# $work), started anew, with LOGSHIP_TEST_BROKERS pointing at it. noida-db keeps every record in
# memory, and after taking a million records it spends a whole core for tens of seconds on them,
# so a run right after another measured the previous run's cleanup (the first run of a script
# was always the fast one). Each comparative run starts with one of these instead.
bench_broker_port=$(free_port)
fresh_broker() {
  LOGSHIP_STATE_DIR=$work/broker scripts/services.sh reset >/dev/null 2>&1 || true
  LOGSHIP_STATE_DIR=$work/broker scripts/services.sh start-broker "$bench_broker_port" >/dev/null
  LOGSHIP_TEST_BROKERS=127.0.0.1:$bench_broker_port
}

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

# metric NAME: the first sample of metric NAME on the agent's /metrics, 0 when absent.
metric() {
  local v
  v=$(curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" 'index($1, m) == 1 {print $2; exit}')
  echo "${v:-0}"
}

# wait_for_metric NAME N [SECS]: polls every SECS (default 0.05) until metric NAME reaches N.
wait_for_metric() {
  local v=0
  while [ "${v%.*}" -lt "$2" ]; do
    sleep "${3:-0.05}"
    v=$(metric "$1")
  done
}

# start_agent: runs the release $program (default: the agent, logship) on $work/bench.toml in
# the background; sets $agent.
start_agent() {
  LOGSHIP_LOG=warn "$target/release/${program:-logship}" run -c "$work/bench.toml" &
  agent=$!
}

# stop_agent: SIGTERM, and wait for the agent to exit.
stop_agent() {
  kill -TERM "$agent"
  wait "$agent" || true
  agent=""
}

# thread_cpu LABEL: the agent's CPU seconds by thread name (tokio workers, librdkafka's broker
# threads that compress and send, the delivery-report thread), the largest first.
thread_cpu() {
  python3 - "$1" "$agent" "$(getconf CLK_TCK)" <<'PY'
import collections, glob, sys
label, pid, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])
cpu = collections.Counter()
for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    cpu[name] += (int(fields[11]) + int(fields[12])) / hz
print(f"{label} threads: " + " ".join(f"{n}={s:.2f}s" for n, s in cpu.most_common() if s > 0))
PY
}

# measure_until LABEL METRIC LINES BYTES [END_METRIC]: starts the agent, waits until METRIC
# reaches LINES, stops it, and prints the wall time, the agent's CPU time (utime+stime from
# /proc), CPU seconds per GB of BYTES of input, and its peak RSS (VmHWM). With END_METRIC (a
# Unix time the agent sets, logship_kafka_last_delivery_timestamp_seconds) the run ends there
# and METRIC is polled every 250 ms; else it ends at the poll (every 50 ms) that saw LINES.
# Each poll is a curl and an awk: every 50 ms they cost about 0.12 CPU s in a one-second run,
# on the cores the agent shares (perf sched), where kcat is timed by wait4().
measure_until() {
  local start end ticks hwm
  start=$(date +%s%N)
  start_agent
  if [ -n "${5:-}" ]; then
    wait_for_metric "$2" "$3" 0.25
    end=$(metric "$5" | awk '{printf "%.0f", $1 * 1e9}')
  else
    wait_for_metric "$2" "$3"
    end=$(date +%s%N)
  fi
  ticks=$(awk '{print $14 + $15}' "/proc/$agent/stat")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
  thread_cpu "$1" >&2
  stop_agent
  python3 - "$1" "$3" "$4" "$((end - start))" "$ticks" "$(getconf CLK_TCK)" "$hwm" <<'PY'
import sys
label, lines, nbytes, nanos, ticks, hz, hwm = sys.argv[1:]
lines, nbytes, secs = int(lines), int(nbytes), int(nanos) / 1e9
cpu = int(ticks) / int(hz)
print(f"{label}: lines={lines} seconds={secs:.2f} lines_per_sec={lines/secs:,.0f} "
      f"MiB_per_sec={nbytes/secs/2**20:.1f} cpu_seconds={cpu:.2f} "
      f"cpu_seconds_per_GB={cpu/(nbytes/1e9):.1f} peak_rss_MiB={int(hwm)/1024:.1f}")
PY
}
