//! `logship-sink-s3` against the moto S3 server and a local directory, with the real broker:
//! objects are cut only by the records, so a crash between upload and commit, then a restart,
//! writes the very same objects again (design invariant 8).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{Agent, Setup, brokers, create_topic};
use super::sink_harness::{
    committed, create_bucket, end_offsets, object_lines, objects, produce_to, s3_endpoint,
    s3_sink_config, s3_target,
};

const PARTITIONS: i32 = 3;

/// Record `i` of a run: to partition i % 3, in hour 10 for the first half and hour 11 for the
/// second; then one record per partition in hour 12, which stays in its open object (nothing
/// cuts it), so the 100,000 before it are all uploaded.
fn records(count: usize) -> Vec<(i32, Vec<u8>)> {
    let hour = |i: usize| if i < count / 2 { 10 } else { 11 };
    let mut records: Vec<(i32, Vec<u8>)> = (0..count)
        .map(|i| {
            let value = json!({
                "@timestamp": format!("2026-11-22T{:02}:00:00Z", hour(i)),
                "message": format!("line {i}"),
                "n": i,
            });
            ((i % 3) as i32, value.to_string().into_bytes())
        })
        .collect();
    for p in 0..PARTITIONS {
        let last =
            json!({"@timestamp": "2026-11-22T12:00:00Z", "message": "keeps the window open"});
        records.push((p, last.to_string().into_bytes()));
    }
    records
}

/// Waits until `target` holds `count` records of `run` and the object set stops changing.
fn wait_for_objects(
    target: &logship::config::Target,
    count: usize,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let now = objects(target);
        let lines = object_lines(&now).len();
        if lines == count {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{lines} records in {} objects, not {count}",
            now.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Each record `n` in 0..count exactly once across the objects, under its own hour.
fn assert_each_record_once(objects: &std::collections::BTreeMap<String, Vec<u8>>, count: usize) {
    let lines = object_lines(objects);
    let mut seen = BTreeSet::new();
    for (key, line) in &lines {
        let n = line["n"]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {line}")) as usize;
        assert!(seen.insert(n), "record {n} twice (again in {key})");
        let hour = if n < count / 2 { "hour=10" } else { "hour=11" };
        assert!(key.contains(hour), "record {n} in {key}");
    }
    assert_eq!(seen.len(), count);
}

#[test]
fn kill_9_between_upload_and_commit_then_restart_writes_the_identical_object_set() {
    let (endpoint, brokers) = (s3_endpoint(), brokers());
    let bucket = create_bucket(&endpoint);
    let topic = create_topic(&brokers, "s3-sink", PARTITIONS);
    let group = format!("s3-group-{}", rand::random::<u32>());
    produce_to(&brokers, &topic, records(100_000));
    let setup = Setup::new();
    let url = format!("s3://{bucket}/archive");
    // Run 1 uploads everything but commits nothing (the interval is far away), and is killed.
    let no_commits = s3_sink_config(
        &setup,
        (&brokers, &topic, &group),
        &url,
        "instance_id = \"s3-0\"\ncommit_interval_ms = 3600000",
        "max_records = 7000",
    );
    let target = s3_target(&endpoint, &bucket);
    let sink = Agent::start_sink_s3(&setup, &no_commits);
    let first = wait_for_objects(&target, 100_000);
    sink.kill9();
    assert_eq!(committed(&brokers, &group, &topic, PARTITIONS), vec![-1; 3]);
    assert_each_record_once(&first, 100_000);
    assert!(
        first
            .keys()
            .all(|k| k.starts_with(&format!("archive/{topic}/year=2026/month=11/day=22/hour=")))
    );
    assert!(
        first.len() >= 18,
        "cut by max_records and by hour: {} objects",
        first.len()
    );

    // Run 2 reads everything again, uploads the same objects, and commits.
    let commits = s3_sink_config(
        &setup,
        (&brokers, &topic, &group),
        &url,
        "instance_id = \"s3-0\"",
        "max_records = 7000",
    );
    let sink = Agent::start_sink_s3(&setup, &commits);
    let end = end_offsets(&brokers, &topic, PARTITIONS);
    let before_open: Vec<i64> = end.iter().map(|e| e - 1).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(&brokers, &group, &topic, PARTITIONS) != before_open {
        assert!(
            Instant::now() < deadline,
            "commits did not reach {before_open:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let second = objects(&target);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>(),
        "the same keys, no extra object"
    );
    assert!(first == second, "the same bytes in every object");
    let (status, _) = sink.terminate(Duration::from_secs(20));
    assert!(status.success());
}

#[test]
fn a_large_object_goes_up_as_a_multipart_upload() {
    let (endpoint, brokers) = (s3_endpoint(), brokers());
    let bucket = create_bucket(&endpoint);
    let topic = create_topic(&brokers, "s3-multipart", 1);
    let group = format!("s3-group-{}", rand::random::<u32>());
    // 8,000 records of 1 KiB of random text: about 6 MiB gzipped, over the 5 MiB part size.
    let values = (0..8000).map(|i| {
        let noise: String = (0..1024)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        let value = json!({"@timestamp": "2026-11-22T10:00:00Z", "n": i, "noise": noise});
        (0, value.to_string().into_bytes())
    });
    let closer = json!({"@timestamp": "2026-11-22T11:00:00Z", "n": -1});
    produce_to(
        &brokers,
        &topic,
        values.chain([(0, closer.to_string().into_bytes())]),
    );
    let setup = Setup::new();
    let config = s3_sink_config(
        &setup,
        (&brokers, &topic, &group),
        &format!("s3://{bucket}"),
        "",
        "multipart_part_bytes = 5242880",
    );
    let _sink = Agent::start_sink_s3(&setup, &config);
    let target = s3_target(&endpoint, &bucket);
    let stored = wait_for_objects(&target, 8000);
    assert_eq!(stored.len(), 1, "{:?}", stored.keys());
    let (key, bytes) = stored.iter().next().expect("one object");
    assert!(bytes.len() > 5 * 1024 * 1024, "{} bytes", bytes.len());
    assert_eq!(
        key,
        &format!(
            "{topic}/year=2026/month=11/day=22/hour=10/{topic}+0+00000000000000000000.ndjson.gz"
        )
    );
}

#[test]
fn a_local_directory_is_a_target_and_sigterm_commits_what_was_written() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "s3-local", PARTITIONS);
    let group = format!("s3-group-{}", rand::random::<u32>());
    produce_to(&brokers, &topic, records(3000));
    let setup = Setup::new();
    let dir = setup.dir.path().join("archive");
    let config = s3_sink_config(
        &setup,
        (&brokers, &topic, &group),
        &format!("file://{}", dir.display()),
        "",
        "max_records = 400",
    );
    let sink = Agent::start_sink_s3(&setup, &config);
    let target = logship::config::Target::Directory(dir.clone());
    let stored = wait_for_objects(&target, 3000);
    assert_each_record_once(&stored, 3000);
    let (status, _) = sink.terminate(Duration::from_secs(20));
    assert!(status.success());
    let end = end_offsets(&brokers, &topic, PARTITIONS);
    let before_open: Vec<i64> = end.iter().map(|e| e - 1).collect();
    assert_eq!(committed(&brokers, &group, &topic, PARTITIONS), before_open);
    assert!(sink_log_mentions_no_error(&setup));
}

/// No ERROR line in the sink's logs under `setup`.
fn sink_log_mentions_no_error(setup: &Setup) -> bool {
    std::fs::read_dir(setup.dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .all(|e| {
            !std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains("ERROR")
        })
}

#[test]
fn a_rebalance_between_two_sinks_leaves_each_record_in_one_object() {
    let (endpoint, brokers) = (s3_endpoint(), brokers());
    let bucket = create_bucket(&endpoint);
    let topic = create_topic(&brokers, "s3-rebalance", PARTITIONS);
    let group = format!("s3-group-{}", rand::random::<u32>());
    let all = records(20_000);
    let (first_half, second_half) = all.split_at(10_000);
    produce_to(&brokers, &topic, first_half.to_vec());
    let url = format!("s3://{bucket}");
    let config = |setup: &Setup| {
        s3_sink_config(
            setup,
            (&brokers, &topic, &group),
            &url,
            "",
            "max_records = 900",
        )
    };
    let (first_setup, second_setup) = (Setup::new(), Setup::new());
    let first = Agent::start_sink_s3(&first_setup, &config(&first_setup));
    let target = s3_target(&endpoint, &bucket);
    let deadline = Instant::now() + Duration::from_secs(60);
    while objects(&target).len() < 3 {
        assert!(Instant::now() < deadline, "nothing uploaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The second sink joins (a rebalance: every partition is revoked and handed out again),
    // records keep coming, and the first leaves (another one).
    let second = Agent::start_sink_s3(&second_setup, &config(&second_setup));
    produce_to(&brokers, &topic, second_half.to_vec());
    std::thread::sleep(Duration::from_secs(2));
    let first_log = first.log.clone();
    let (status, _) = first.terminate(Duration::from_secs(30));
    assert!(status.success());
    let stored = wait_for_objects(&target, 20_000);
    assert_each_record_once(&stored, 20_000);
    let end = end_offsets(&brokers, &topic, PARTITIONS);
    let before_open: Vec<i64> = end.iter().map(|e| e - 1).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(&brokers, &group, &topic, PARTITIONS) != before_open {
        assert!(
            Instant::now() < deadline,
            "commits did not reach {before_open:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let first_log = std::fs::read_to_string(first_log).unwrap_or_default();
    assert!(
        first_log.matches("kind=\"revoke\"").count() >= 2,
        "the first sink gave its partitions up when the second joined, and when it left:\n{first_log}"
    );
    for log in [first_log, second.log_text()] {
        assert!(
            !log.contains("records still being written"),
            "a rebalance waited for records that could not finish:\n{log}"
        );
    }
}
