#!/usr/bin/env bash
# throughput.sh — end-to-end agent throughput, CPU and peak memory against the real broker.
#
# Writes LINES lines (default 1,000,000, ~140 bytes each) to one file, starts the release agent,
# and measures the time until Kafka acknowledged all of them (logship_kafka_events_delivered_total),
# the agent's CPU time (utime+stime from /proc) and its peak RSS (VmHWM).
# Usage: benches/throughput.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
. benches/common.sh

topic=bench-$(date +%s)
create_topic "$topic"
mkdir -p "$work/logs"
"$LOGSHIP_TEST_PYTHON" - "$work/logs/bench.log" "$lines" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        f.write(f'203.0.113.{i % 255} - - [22/Nov/2026:08:00:00 +0000] "GET /api/orders/{i} HTTP/1.1" 200 {i * 7 % 10000} "-" "Mozilla/5.0"\n')
PY
bytes=$(stat -c %s "$work/logs/bench.log")
write_config "" "${LOGSHIP_BENCH_KAFKA_EXTRA:-}"

start=$(date +%s.%N)
LOGSHIP_LOG=warn "$target/release/logship" run -c "$work/bench.toml" &
agent=$!
delivered=0
while [ "${delivered%.*}" -lt "$lines" ]; do
  sleep 0.05
  delivered=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^logship_kafka_events_delivered_total/ {print $2}')
  delivered=${delivered:-0}
done
end=$(date +%s.%N)
cpu_ticks() { awk '{print $14 + $15}' /proc/$agent/stat; }
busy=$(cpu_ticks)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$agent/status)
# Idle: the file is shipped; measure 10 s of doing nothing.
sleep 10
idle=$(( $(cpu_ticks) - busy ))
rss=$(awk '/VmRSS/ {print $2}' /proc/$agent/status)
ticks=$(getconf CLK_TCK)
python3 - "$lines" "$bytes" "$start" "$end" "$busy" "$ticks" "$hwm" "$idle" "$rss" <<'PY'
import sys
lines, nbytes, start, end, busy, ticks, hwm, idle, rss = sys.argv[1:]
secs = float(end) - float(start)
cpu = int(busy) / int(ticks)
print(f"lines={lines} bytes={nbytes} seconds={secs:.2f} lines_per_sec={int(lines)/secs:,.0f} "
      f"MiB_per_sec={int(nbytes)/secs/2**20:.1f} cpu_seconds={cpu:.2f} "
      f"cpu_us_per_line={cpu*1e6/int(lines):.2f} peak_rss_MiB={int(hwm)/1024:.1f} "
      f"idle_cpu_percent={int(idle)/int(ticks)/10*100:.2f} idle_rss_MiB={int(rss)/1024:.1f}")
PY
