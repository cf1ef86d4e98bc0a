#!/usr/bin/env bash
# many_files.sh — the agent's cost with many files: FILES files in one directory (default
# 10,000), ACTIVE of them (default 10) written at RATE lines/s each, the rest idle. After the
# initial files are shipped and the idle ones closed (close_idle_secs = 5), it measures for
# 30 s: open descriptors, CPU (utime+stime from /proc) and RSS.
# Target (issue 3): fewer than 100 open descriptors and under 2 % CPU.
# Usage: benches/many_files.sh [FILES [ACTIVE [RATE]]]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}
active=${2:-10}
rate=${3:-10}
. benches/common.sh

topic=many-$(date +%s)
create_topic "$topic"
mkdir -p "$work/logs"
python3 - "$work/logs" "$files" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/f{i:05}.log", "w") as f:
        f.write(f"file {i} line 0\nfile {i} line 1\n")
PY
write_config "close_idle_secs = 5
${LOGSHIP_BENCH_SOURCE_EXTRA:-}"
LOGSHIP_LOG=warn "$target/release/logship" run -c "$work/bench.toml" &
agent=$!
python3 - "$work/logs" "$active" "$rate" <<'PY' &
import sys, time
d, active, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = 0
while True:
    for i in range(active):
        with open(f"{d}/f{i:05}.log", "a") as f:
            f.write(f"active {i} line {n}\n")
    n += 1
    time.sleep(1 / rate)
PY
writer=$!
# Initial shipping, then every idle file closes after 5 s.
sleep 20
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$agent/stat; }
c0=$(cpu); t0=$(date +%s.%N)
max_fds=0
for _ in $(seq 1 30); do
  sleep 1
  fds=$(ls /proc/$agent/fd | wc -l)
  [ "$fds" -gt "$max_fds" ] && max_fds=$fds
done
c1=$(cpu); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$agent/status)
delivered=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^logship_kafka_events_delivered_total/ {print $2}')
watched=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^logship_source_files_watched/ {print $2}')
open=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^logship_source_files_open/ {print $2}')
python3 - "$files" "$active" "$rate" "$c0" "$c1" "$t0" "$t1" "$ticks" "$max_fds" "$rss" "$delivered" "$watched" "$open" <<'PY'
import sys
files, active, rate, c0, c1, t0, t1, ticks, fds, rss, delivered, watched, opened = sys.argv[1:]
cpu = (int(c1) - int(c0)) / int(ticks) / (float(t1) - float(t0)) * 100
print(f"files={files} active={active} rate_per_file={rate}/s watched={watched} open_files={opened} "
      f"max_fds={fds} cpu_percent={cpu:.2f} rss_MiB={int(rss)/1024:.1f} delivered={delivered}")
PY
