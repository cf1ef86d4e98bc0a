//! Pipeline steps per line, without I/O: JSON parse plus three field steps, the Apache combined
//! regex, syslog, and the full nginx pipeline of config.example.toml. Each iteration runs 10,000
//! lines through a pipeline; lines/s = 10,000 / time. Run: `cargo bench --bench pipeline`.
//! Targets (issue 4, one core): ≥ 400,000 lines/s for the Apache regex, ≥ 300,000 lines/s for
//! JSON plus three set/rename steps.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use logship::config::Config;
use logship::event::{Event, FileOrigin};
use logship::pipeline::{Outcome, Pipeline};

const LINES: usize = 10_000;

const PIPELINES: &str = r#"
data_dir = "DATA"
[sources.app]
type = "file"
include = ["/nonexistent/*.log"]
[kafka]
brokers = ["127.0.0.1:9"]
topic = "logs"

[pipelines.json]
steps = [
  { type = "parse_json" },
  { type = "set", field = "service.name", value = "{{ svc }}" },
  { type = "rename", from = "lvl", to = "log.level" },
  { type = "set", field = "labels.env", value = "prod" },
]

[pipelines.apache]
steps = [
  { type = "parse_regex", pattern = '^(?P<source__ip>\S+) \S+ (?P<user__name>\S+) \[(?P<time>[^\]]+)\] "(?P<http__request__method>[A-Z]+) (?P<url__original>\S+) HTTP/(?P<http__version>[\d.]+)" (?P<http__response__status_code>\d{3}) (?P<http__response__body__bytes>\d+|-) "(?P<http__request__referrer>[^"]*)" "(?P<user_agent__original>[^"]*)"', types = { http__response__status_code = "int", http__response__body__bytes = "int" } },
]

[pipelines.syslog]
steps = [{ type = "parse_syslog" }]
"#;

fn event(line: String) -> Event {
    let origin = FileOrigin {
        host: Arc::from("node-1"),
        path: Arc::from("/var/log/bench.log"),
        offset: 0,
    };
    Event::from_file_line(line, DateTime::<Utc>::UNIX_EPOCH, origin)
}

fn apache_line(i: usize) -> String {
    format!(
        "203.0.113.{} - - [22/Nov/2026:08:00:00 +0000] \"GET /api/orders/{i} HTTP/1.1\" 200 {} \"https://example.com/\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        i % 255,
        i * 7 % 10_000
    )
}

fn json_line(i: usize) -> String {
    format!(
        r#"{{"ts":"2026-11-22T08:00:00Z","lvl":"info","svc":"orders","msg":"order {i} shipped","took_ms":{},"user":{{"id":{i}}}}}"#,
        i % 500
    )
}

fn syslog_line(i: usize) -> String {
    format!(
        "<165>1 2026-11-22T08:00:00.003Z host-{} app 1234 ID47 [origin ip=\"10.0.0.{}\"] request {i} served",
        i % 50,
        i % 255
    )
}

fn run(pipeline: &mut Pipeline, events: Vec<Event>) -> usize {
    events
        .into_iter()
        .map(|e| matches!(pipeline.process(e), Outcome::Kept(_)) as usize)
        .sum()
}

fn bench_one(c: &mut Criterion, name: &str, pipeline: &Pipeline, line: fn(usize) -> String) {
    let lines: Vec<String> = (0..LINES).map(line).collect();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function(name, |b| {
        let mut pipeline = pipeline.clone();
        b.iter_batched(
            || lines.iter().cloned().map(event).collect::<Vec<_>>(),
            |events| {
                let kept = run(&mut pipeline, events);
                assert_eq!(kept, LINES, "every line parses");
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("logship-bench-pipeline");
    let text = PIPELINES.replace("DATA", &dir.display().to_string());
    let config = Config::from_toml(&text, &|_| None).expect("bench pipelines are valid");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
            .expect("config.example.toml");
    let example = Config::from_toml(&example, &|name| {
        (name == "LOGSHIP_DATA_DIR").then(|| dir.display().to_string())
    })
    .expect("the example configuration is valid");

    bench_one(
        c,
        "json_parse_plus_3_field_steps",
        &config.pipelines["json"],
        json_line,
    );
    bench_one(
        c,
        "apache_combined_regex",
        &config.pipelines["apache"],
        apache_line,
    );
    bench_one(
        c,
        "syslog_rfc5424",
        &config.pipelines["syslog"],
        syslog_line,
    );
    bench_one(
        c,
        "nginx_example_pipeline",
        &example.pipelines["nginx"],
        apache_line,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
