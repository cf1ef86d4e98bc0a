#!/usr/bin/env bash
# sink_es.sh — issue 7's benchmark for logship-sink-es: records/s and CPU seconds per million
# records, against each local Elasticsearch-API server (noida-db, osmem-server).
#
# RECORDS JSON records of about 250 bytes (the agent's envelope) are produced to a fresh
# 3-partition topic first. Then, per server, the release sink reads the topic as a fresh group
# into a fresh index with the default batching (1000 documents, gzip, 2 requests in flight).
# Wall time runs from start until logship_sink_records_written_total shows every record; CPU is
# the sink's utime+stime from /proc, peak RSS its VmHWM. The servers share the machine's cores
# with the sink, so the figures are the sink and the server together.
# Usage: benches/sink_es.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
. benches/common.sh
program=logship-sink-es

topic=sink-es-$(date +%s)
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
PY
bytes=$((records * 250))
echo "input: $records records in $topic" >&2

# sink LABEL URL: the sink ships the topic to URL as a fresh group into a fresh index.
sink() {
  cat > "$work/bench.toml" <<TOML
[api]
address = "127.0.0.1:$port"
[kafka]
brokers = ["$LOGSHIP_TEST_BROKERS"]
group_id = "bench-$1-$(date +%s)"
topics = ["$topic"]
[elasticsearch]
urls = ["$2"]
index = "bench-$1-$(date +%s)-%Y.%m.%d"
TOML
  measure_until "$1" logship_sink_records_written_total "$records" "$bytes" > "$work/result"
  # measure_until counts "lines"; here they are records. Add CPU seconds per million records.
  awk -v n="$records" '{
      for (i = 1; i <= NF; i++) if ($i ~ /^cpu_seconds=/) { split($i, kv, "="); cpu = kv[2] }
      printf "%s cpu_seconds_per_million_records=%.2f\n", $0, cpu / n * 1e6
  }' "$work/result"
}
sink sink-es-noida "$LOGSHIP_TEST_ES_URL"
sink sink-es-osmem "$LOGSHIP_TEST_OPENSEARCH_URL"
