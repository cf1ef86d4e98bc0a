#!/usr/bin/env bash
# sinks.sh — issue 7's benchmark: records/s and CPU seconds per million records for each sink
# against the local servers: logship-sink-es to noida-db and osmem-server, logship-sink-s3 to
# moto and a local directory.
#
# RECORDS JSON records of about 250 bytes (the agent's envelope), all in one hour, are produced
# to a fresh 3-partition topic first, then one record per partition an hour later (it cuts the
# S3 sink's last object, which stays open until then; it is not counted). Then each run reads
# the topic as a fresh group with the default settings (ES: 1000 documents a request, gzip, 2 in
# flight; S3: objects of up to 100,000 records, 4 uploads in flight). Wall time runs from start
# until logship_sink_records_written_total shows every record; CPU is the sink's utime+stime from
# /proc, peak RSS its VmHWM. The servers share the machine's two cores with the sink.
# Usage: benches/sinks.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-100000}
. benches/common.sh

topic=sinks-$(date +%s)
create_topic "$topic"
"$LOGSHIP_TEST_PYTHON" - "$LOGSHIP_TEST_BROKERS" "$topic" "$records" <<'PY'
import json, sys
from confluent_kafka import Producer
brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "compression.type": "zstd"})
for i in range(n):
    value = json.dumps({
        "@timestamp": f"2026-11-22T08:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "message": f"order {i} accepted for customer {i * 7 % 100000} in 12 ms, items={i % 9 + 1}",
        "log": {"level": "info", "file": {"path": "/var/log/app/orders.log"}, "offset": i * 200},
        "host": {"name": "node-7"}, "service": {"name": "orders"},
    })
    while True:
        try:
            p.produce(topic, key=str(i), value=value)
            break
        except BufferError:
            p.poll(0.01)
p.flush()
for partition in range(3):
    p.produce(topic, partition=partition,
              value=json.dumps({"@timestamp": "2026-11-22T09:00:00Z", "message": "cut"}))
p.flush()
PY
bytes=$((records * 250))
echo "input: $records records in $topic" >&2

# sink LABEL PROGRAM SECTION: PROGRAM ships the topic as a fresh group, with SECTION (its own
# table) appended to the config.
sink() {
  program=$2
  cat > "$work/bench.toml" <<TOML
[api]
address = "127.0.0.1:$port"
[kafka]
brokers = ["$LOGSHIP_TEST_BROKERS"]
group_id = "bench-$1-$(date +%s)"
topics = ["$topic"]
$3
TOML
  measure_until "$1" logship_sink_records_written_total "$records" "$bytes" > "$work/result"
  # measure_until counts "lines"; here they are records. Add CPU seconds per million records.
  awk -v n="$records" '{
      for (i = 1; i <= NF; i++) if ($i ~ /^cpu_seconds=/) { split($i, kv, "="); cpu = kv[2] }
      printf "%s cpu_seconds_per_million_records=%.2f\n", $0, cpu / n * 1e6
  }' "$work/result"
}
es() { printf '[elasticsearch]\nurls = ["%s"]\nindex = "bench-%s-%%Y.%%m.%%d"\n' "$1" "$(date +%s%N)"; }
sink sink-es-noida logship-sink-es "$(es "$LOGSHIP_TEST_ES_URL")"
sink sink-es-osmem logship-sink-es "$(es "$LOGSHIP_TEST_OPENSEARCH_URL")"
bucket=bench-$(date +%s)
curl -sf -X PUT "$LOGSHIP_TEST_S3_ENDPOINT/$bucket" >/dev/null
sink sink-s3-moto logship-sink-s3 "[s3]
url = \"s3://$bucket/archive\"
endpoint = \"$LOGSHIP_TEST_S3_ENDPOINT\"
path_style = true
access_key_id = \"test\"
secret_access_key = \"test\""
sink sink-s3-local logship-sink-s3 "[s3]
url = \"file://$work/archive\""
