//! The memory budget (`memory_limit_bytes`): with the broker frozen and far more input than the
//! agent may hold, resident memory stays under the limit plus the agent's fixed cost; the
//! sources pause (counted), and once the broker is back every line is delivered.
//!
//! Six sources, each through a pipeline of its own, read 2 MiB per turn: without the budget
//! their channels alone would hold about 50 MB of lines (six sources × four batches of 2 MiB:
//! two in the source's channel, one in its pipeline, one waiting for the producer's channel of
//! two more), and librdkafka's queue 16 MiB on top: over the limit plus the overhead asserted
//! here.

use std::time::{Duration, Instant};

use crate::harness::{Agent, PrivateBroker, Setup, create_topic};

const LIMIT: u64 = 48 << 20;
/// The agent's fixed cost on top of `memory_limit_bytes`: code, runtime, librdkafka's threads and
/// buffers, allocator slack (ARCHITECTURE.md, "Memory").
const OVERHEAD: u64 = 24 << 20;
const SOURCES: usize = 6;
const LINES_PER_SOURCE: usize = 30_000;
/// About 1 KiB per line: 180 MB of input in all.
const LINE_BYTES: usize = 1000;

#[test]
fn with_the_broker_frozen_resident_memory_stays_under_the_limit() {
    let broker = PrivateBroker::start();
    let topic = create_topic(&broker.address, "memory", 3);
    let setup = Setup::new();
    let config = write_config(&setup, &broker.address, &topic);
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(30));
    broker.freeze();

    let writers: Vec<_> = (0..SOURCES)
        .map(|s| {
            let dir = setup.logs.join(format!("s{s}"));
            std::thread::spawn(move || write_big_lines(&dir.join("app.log"), s))
        })
        .collect();
    // Input keeps growing while the agent runs into its limit.
    let mut peak = 0;
    let watch_until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < watch_until {
        peak = peak.max(agent.resident_bytes().0);
        std::thread::sleep(Duration::from_millis(20));
    }
    for writer in writers {
        writer.join().expect("writer");
    }
    let (_, high_water) = agent.resident_bytes();
    let waits = agent.metric_value("logship_memory_waits_total");
    let charged = agent.metric_value("logship_memory_events_bytes");
    let budget = agent.metric_value("logship_memory_events_budget_bytes");
    eprintln!(
        "peak RSS {:.1} MiB (VmHWM {:.1} MiB), limit {} MiB + overhead {} MiB; events charged \
         {:.1} of {:.1} MiB; {waits} waits",
        peak as f64 / 1048576.0,
        high_water as f64 / 1048576.0,
        LIMIT >> 20,
        OVERHEAD >> 20,
        charged / 1048576.0,
        budget / 1048576.0,
    );
    assert!(waits >= 1.0, "the sources paused for memory");
    // Full, give or take what the pipelines' steps added after the sources were let through.
    assert!(
        charged > budget / 2.0,
        "the events' share is in use: {charged} of {budget}"
    );
    assert!(
        high_water < LIMIT + OVERHEAD,
        "peak RSS {high_water} over {LIMIT} + {OVERHEAD}"
    );

    broker.thaw();
    let total = (SOURCES * LINES_PER_SOURCE) as f64;
    let delivered = format!("logship_kafka_events_delivered_total{{topic=\"{topic}\"}}");
    agent.wait_for_metric(&delivered, total, Duration::from_secs(180));
    for s in 0..SOURCES {
        let path = setup.logs.join(format!("s{s}/app.log"));
        setup.wait_for_source_at_eof(&format!("s{s}"), [path.as_path()]);
    }
}

fn write_config(setup: &Setup, brokers: &str, topic: &str) -> std::path::PathBuf {
    let mut text = format!(
        "data_dir = \"{data}\"\nmemory_limit_bytes = {LIMIT}\n[api]\n\
         address = \"127.0.0.1:{port}\"\n[spool]\nenabled = false\n\
         [kafka]\nbrokers = [\"{brokers}\"]\ntopic = \"{topic}\"\n\
         [pipelines.tag]\nsteps = [{{ type = \"set\", field = \"service.name\", value = \"api\" }}]\n",
        data = setup.data.display(),
        port = setup.api_port,
    );
    for s in 0..SOURCES {
        let dir = setup.logs.join(format!("s{s}"));
        std::fs::create_dir_all(&dir).expect("source dir");
        text.push_str(&format!(
            "[sources.s{s}]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\npipeline = \"tag\"\n\
             max_read_bytes = 2097152\nmax_line_bytes = 65536\npoll_interval_ms = 50\n\
             checkpoint_interval_ms = 100\n",
            dir.display()
        ));
    }
    let path = setup.dir.path().join("memory.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Appends `LINES_PER_SOURCE` lines of `LINE_BYTES` in chunks, so the file grows while read.
fn write_big_lines(path: &std::path::Path, source: usize) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create log");
    let pad = "x".repeat(LINE_BYTES - 24);
    for chunk in 0..LINES_PER_SOURCE / 1000 {
        let mut text = String::with_capacity(1000 * LINE_BYTES);
        for i in chunk * 1000..(chunk + 1) * 1000 {
            text.push_str(&format!("s{source} {i:08} {pad}\n"));
        }
        file.write_all(text.as_bytes()).expect("write log");
        std::thread::sleep(Duration::from_millis(100));
    }
}
