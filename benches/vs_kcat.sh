#!/usr/bin/env bash
# vs_kcat.sh — issue 5's benchmark: file → Kafka against `kcat -P` producing the same lines to the
# same broker, then the spool's write and replay throughput.
#
# LINES lines (default 1,000,000) of about 200 bytes are written to one file first. Then:
#   kcat        `kcat -P -l FILE`: each line as one record; acks=all, idempotent, zstd,
#               linger.ms=5, like the agent. Wall time until kcat exits (it waits for every
#               delivery report); CPU and peak RSS from wait4().
#   logship     the agent ships the file: each line in the JSON envelope (the default); wall
#               time from start to the acknowledgement that made
#               logship_kafka_events_delivered_total show every line (the agent's
#               logship_kafka_last_delivery_timestamp_seconds, polled every 250 ms).
#   raw         the same with `encoding = "raw"`: the very bytes kcat sends.
#   kcat-json   `kcat -P` producing the agent's own JSON records (read back from a first,
#               unmeasured run of the agent), one per line: the same bytes the JSON envelope
#               makes librdkafka copy, compress and send, so the part of the gap that is the
#               envelope's larger records, not the agent's per-record work, shows.
#   spool write the agent with its broker unreachable: every line goes to the disk spool; time
#               until logship_spool_records_written_total shows every line (includes the
#               1 s message_timeout_ms before the first record is taken back).
#   replay      the agent restarted with the broker back: time until the acknowledgement
#               that made logship_spool_records_replayed_total show every line (as above).
# CPU seconds per GB are per GB of input lines. Peak RSS is VmHWM.
# Every run gets a broker of its own, started fresh (benches/common.sh `fresh_broker`), and the
# ROUNDS rounds (default 3) interleave kcat, logship and raw, so no contender always runs first.
# Usage: benches/vs_kcat.sh [LINES [ROUNDS]]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
rounds=${2:-3}
scripts/deps.sh kcat
. benches/common.sh

mkdir -p "$work/logs"
log=$work/logs/bench.log
"$LOGSHIP_TEST_PYTHON" - "$log" "$lines" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        f.write(f'2026-11-22T08:00:{i % 60:02d}.{i % 1000:03d}Z INFO [http-nio-8080-exec-{i % 16}] '
                f'com.example.orders.OrderController - order {i} accepted for customer {i * 7 % 100000} '
                f'in 12 ms, items={i % 9 + 1}, total={i % 997}.99 EUR, trace=4bf92f3577b34da6a3ce929d0e0e{i % 10000:04d}\n')
PY
bytes=$(stat -c %s "$log")
echo "input: $lines lines, $bytes bytes, $((bytes / lines)) bytes a line" >&2

# run_kcat [LABEL FILE]: kcat producing FILE (default: the log), measured by wait4() in Python.
run_kcat() {
  fresh_broker
  topic=kcat-$(date +%s)
  create_topic "$topic"
  "$LOGSHIP_TEST_PYTHON" - "$lines" "$bytes" "$LOGSHIP_TEST_BROKERS" "$topic" "${2:-$log}" "${1:-kcat}" <<'PY'
import os, subprocess, sys, time
lines, nbytes, brokers, topic, log, label = sys.argv[1:]
cmd = ["kcat", "-P", "-b", brokers, "-t", topic, "-z", "zstd",
       "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5",
       "-X", "batch.size=1000000", "-l", log]
start = time.monotonic()
proc = subprocess.Popen(cmd)
# Each thread's CPU, sampled every 10 ms until kcat exits (the last 10 ms may be missed).
threads = {}
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    for task in os.listdir(f"/proc/{proc.pid}/task") if os.path.exists(f"/proc/{proc.pid}/task") else []:
        try:
            text = open(f"/proc/{proc.pid}/task/{task}/stat").read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        name = text[text.index("(") + 1:text.rindex(")")]
        threads[(name, task)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    time.sleep(0.01)
secs = time.monotonic() - start
assert status == 0, f"kcat failed: {status}"
cpu = usage.ru_utime + usage.ru_stime
lines, nbytes = int(lines), int(nbytes)
print(f"{label}: lines={lines} seconds={secs:.2f} lines_per_sec={lines/secs:,.0f} "
      f"MiB_per_sec={nbytes/secs/2**20:.1f} cpu_seconds={cpu:.2f} "
      f"cpu_seconds_per_GB={cpu/(nbytes/1e9):.1f} peak_rss_MiB={usage.ru_maxrss/1024:.1f}")
by_name = {}
for (name, _), secs in threads.items():
    by_name[name] = by_name.get(name, 0) + secs
print(f"{label} threads: " + " ".join(f"{n}={s:.2f}s" for n, s in sorted(by_name.items(), key=lambda i: -i[1]) if s > 0),
      file=sys.stderr)
PY
}

# ship LABEL KAFKA_EXTRA: the agent ships the file into a fresh topic, from a fresh data_dir.
ship() {
  fresh_broker
  topic=$1-$(date +%s)
  create_topic "$topic"
  rm -rf "$work/data"
  write_config "" "$2"
  measure_until "$1" logship_kafka_events_delivered_total "$lines" "$bytes" \
    logship_kafka_last_delivery_timestamp_seconds
}

# The agent's JSON records, for kcat-json: one unmeasured run, read back with kcat -C.
ship envelope "" >/dev/null
records=$work/records.json
kcat -C -b "$LOGSHIP_TEST_BROKERS" -t "$topic" -e -q -f '%s\n' > "$records"
echo "JSON records: $(wc -l < "$records") records, $(stat -c %s "$records") bytes" >&2

for ((round = 1; round <= rounds; round++)); do
  echo "round $round of $rounds" >&2
  run_kcat
  run_kcat kcat-json "$records"
  ship logship ""
  ship raw 'encoding = "raw"'
done

# The spool: write with the broker unreachable, then replay with it back.
fresh_broker
topic=spool-$(date +%s)
create_topic "$topic"
rm -rf "$work/data"
brokers=$LOGSHIP_TEST_BROKERS
LOGSHIP_TEST_BROKERS=127.0.0.1:$(free_port) write_config "" "message_timeout_ms = 1000"
sed -i '1i shutdown_timeout_secs = 5' "$work/bench.toml"
measure_until "spool write" logship_spool_records_written_total "$lines" "$bytes"
echo "spool on disk: $(du -sb "$work/data/spool" | cut -f1) bytes" >&2
sed -i "s/^brokers = .*/brokers = [\"$brokers\"]/" "$work/bench.toml"
measure_until "spool replay" logship_spool_records_replayed_total "$lines" "$bytes" \
  logship_kafka_last_delivery_timestamp_seconds
