//! Rotation and truncation while the agent runs.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{
    Agent, Setup, TopicReader, brokers, check_delivery, create_topic, write_lines,
};

#[test]
fn truncated_file_is_read_again_from_the_start() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "truncate", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let mut lines = write_lines(&path, "before", 0..1000);
    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers, &topic);
    reader.read_until(1000, Duration::from_millis(300), Duration::from_secs(30));

    // copytruncate's second half, or `> app.log`: the file restarts at 0, shorter than before.
    std::fs::File::create(&path).expect("truncate");
    lines.extend(write_lines(&path, "after", 0..100));
    let records = reader.read_until(1100, Duration::from_secs(1), Duration::from_secs(30));
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    // The new content starts again at offset 0: one jump back, and no line twice.
    assert_eq!(check_delivery(records, &expected, 1), 0);
    let resets = agent.metric("logship_source_files_truncated_total{source=\"app\"}");
    assert_eq!(resets, Some(1.0));
}

/// How a writer rotates its log.
#[derive(Clone, Copy)]
enum Rotation {
    /// logrotate's default: rename app.log to app.log.N, go on in a new app.log.
    Rename,
    /// logrotate's copytruncate: copy app.log to app.log.N, truncate app.log in place.
    CopyTruncate,
}

/// Writes `total` numbered lines to `path` at `rate` lines/s, rotating every `every` lines.
fn rotating_writer(
    path: PathBuf,
    total: usize,
    rate: usize,
    every: usize,
    rotation: Rotation,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open");
        let mut written = 0;
        while written < total {
            let chunk = 500.min(total - written);
            let mut buf = String::with_capacity(chunk * 64);
            for i in written..written + chunk {
                buf.push_str(&format!(
                    "rot {i:08} padding-to-look-like-a-real-log-line\n"
                ));
            }
            file.write_all(buf.as_bytes()).expect("write");
            written += chunk;
            if written % every == 0 && written < total {
                let rotated = path.with_extension(format!("log.{}", written / every));
                match rotation {
                    Rotation::Rename => {
                        std::fs::rename(&path, &rotated).expect("rename");
                        file = OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .expect("reopen");
                    }
                    Rotation::CopyTruncate => {
                        std::fs::copy(&path, &rotated).expect("copy");
                        file.set_len(0).expect("truncate");
                    }
                }
            }
            let due = Duration::from_secs_f64(written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    })
}

/// Ships 1,000,000 lines written at 50,000 lines/s with a rotation every 10,000 lines, and
/// checks: every line arrives, none twice, in written order (one stream, one partition).
/// The two 50,000 lines/s tests take both cores between agent, writer and reader; run them one at
/// a time so that neither measures the other.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ship_through_rotations(rotation: Rotation, prefix: &str) {
    const TOTAL: usize = 1_000_000;
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let brokers = brokers();
    let topic = create_topic(&brokers, prefix, 3);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let config = setup.config(&brokers, &topic, "", "");
    // The first file must be followed before it is rotated out of the glob 0.2 s later.
    std::fs::File::create(&path).expect("create");
    let agent = Agent::start(&setup, &config);
    agent.wait_for_metric(
        "logship_source_files_watched{source=\"app\"}",
        1.0,
        Duration::from_secs(30),
    );
    let writer = rotating_writer(path, TOTAL, 50_000, 10_000, rotation);

    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(TOTAL, Duration::from_secs(3), Duration::from_secs(180));
    writer.join().expect("writer");
    let mut seen = vec![0u32; TOTAL];
    let mut partitions = std::collections::HashSet::new();
    let mut last = None;
    let mut out_of_order = 0;
    for record in records {
        let n: usize = record.message()[4..12].parse().expect("line number");
        seen[n] += 1;
        partitions.insert(record.partition);
        if seen[n] == 1 {
            if last.is_some_and(|l| n < l) {
                out_of_order += 1;
            }
            last = Some(n);
        }
    }
    let missing = seen.iter().filter(|n| **n == 0).count();
    let mut gaps = Vec::new();
    for (i, n) in seen.iter().enumerate() {
        if *n == 0 && (i == 0 || seen[i - 1] != 0) {
            gaps.push(i);
        }
    }
    println!(
        "{prefix}: missing ranges start at {:?}",
        &gaps[..gaps.len().min(10)]
    );
    let duplicates: u32 = seen.iter().map(|n| n.saturating_sub(1)).sum();
    println!(
        "{prefix}: {} records for {TOTAL} lines: {missing} missing, {duplicates} duplicates, {out_of_order} out of order",
        records.len()
    );
    if missing > 0 {
        let log = agent.log_text();
        let lifecycle: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("reading") || l.contains("released") || l.contains("WARN"))
            .collect();
        println!("{}", lifecycle.join("\n"));
    }
    assert_eq!(missing, 0, "lines lost");
    assert_eq!(duplicates, 0, "duplicates without a kill");
    assert_eq!(partitions.len(), 1, "one stream keeps one key");
    assert_eq!(out_of_order, 0, "lines out of order");
    let rotated = match rotation {
        Rotation::Rename => agent.metric("logship_source_files_rotated_total{source=\"app\"}"),
        Rotation::CopyTruncate => {
            agent.metric("logship_source_files_truncated_total{source=\"app\"}")
        }
    };
    // A rotation can be noticed more than once (by a scan and by a read), never less.
    assert!(
        rotated.is_some_and(|n| n >= 99.0),
        "every rotation was seen: {rotated:?}"
    );
}

#[test]
fn rename_rotation_at_50k_lines_per_second_loses_nothing() {
    ship_through_rotations(Rotation::Rename, "rename");
}

#[test]
fn copytruncate_at_50k_lines_per_second_loses_nothing() {
    ship_through_rotations(Rotation::CopyTruncate, "copytruncate");
}
