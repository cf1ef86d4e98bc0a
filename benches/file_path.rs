//! The per-line hot path of the file source, without I/O: newline framing, event construction
//! with ack tracking, and JSON encoding of the record value. Run: `cargo bench --bench file_path`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logship::ack::AckTracker;
use logship::event::{Event, FileOrigin};
use logship::source::file::reader::{Line, LineFramer};

/// 10,000 lines shaped like an access log, about 1.2 MB.
fn input() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..10_000 {
        out.extend_from_slice(
            format!(
                "203.0.113.{} - - [22/Nov/2026:08:00:00 +0000] \"GET /api/orders/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
                i % 255,
                i * 7 % 10_000
            )
            .as_bytes(),
        );
    }
    out
}

fn frame_all(data: &[u8]) -> Vec<Line> {
    let mut framer = LineFramer::new(0, 1 << 20);
    let mut lines = Vec::with_capacity(10_000);
    for chunk in data.chunks(64 * 1024) {
        framer.feed(chunk, &mut lines);
    }
    lines
}

fn bench(c: &mut Criterion) {
    let data = input();
    let mut group = c.benchmark_group("file_path");
    group.throughput(Throughput::Bytes(data.len() as u64));

    group.bench_function("frame", |b| b.iter(|| frame_all(&data).len()));

    group.bench_function("frame_event_encode", |b| {
        b.iter(|| {
            let lines = frame_all(&data);
            let tracker = AckTracker::new(0u64);
            let host: std::sync::Arc<str> = "node-1".into();
            let path: std::sync::Arc<str> = "/var/log/nginx/access.log".into();
            let read_at = chrono::Utc::now();
            let mut bytes = 0;
            for line in lines {
                let origin = FileOrigin {
                    host: host.clone(),
                    path: path.clone(),
                    offset: line.start,
                };
                let message = String::from_utf8(line.bytes).unwrap_or_default();
                let mut event = Event::from_file_line(message, read_at, origin);
                event.ack = Some(tracker.track(line.end));
                bytes += event.to_json().len();
                if let Some(token) = event.ack.take() {
                    token.settle();
                }
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
