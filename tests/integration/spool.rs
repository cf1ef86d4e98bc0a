//! The disk spool against brokers that stop answering: records Kafka cannot take go to
//! `data_dir/spool` and come back in order; kill -9 while spooling or replaying loses nothing;
//! a damaged spool is counted and survived; a full spool blocks or drops (counted); a full disk
//! turns /health red.
//!
//! Outages freeze a broker of the test's own (`PrivateBroker`, SIGSTOP): the shared broker serves
//! other tests meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logship::spool::segment::{SegmentWriter, SpoolRecord};

use crate::harness::{
    Agent, PrivateBroker, Record, Setup, TopicReader, brokers, create_topic, create_topic_named,
    write_lines,
};

/// Records go to the spool after 1 s in librdkafka without an acknowledgement.
const FAST_SPOOL: &str = "message_timeout_ms = 1000";

/// A broker of the test's own with a one-partition topic named after `prefix`, and an agent
/// config for it with `kafka_extra` (which may open further tables).
fn private_broker_setup(
    prefix: &str,
    kafka_extra: &str,
) -> (PrivateBroker, String, Setup, PathBuf) {
    let broker = PrivateBroker::start();
    let topic = create_topic(&broker.address, prefix, 1);
    let setup = Setup::new();
    let config = setup.config(&broker.address, &topic, "", kafka_extra);
    (broker, topic, setup, config)
}

/// Polls until `metric` is at least `value`.
fn wait_for_at_least(agent: &Agent, metric: &str, value: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let now = agent.metric(metric).unwrap_or(0.0);
        if now >= value {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{metric} is {now}, not at least {value}, after {timeout:?}; log:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the agent, freezes the broker once /health is green, writes `count` lines named after
/// `prefix` to app.log and waits until the spool has taken them all.
fn spool_lines(
    broker: &PrivateBroker,
    setup: &Setup,
    config: &Path,
    prefix: &str,
    count: usize,
) -> (Agent, PathBuf, Vec<String>) {
    let agent = Agent::start(setup, config);
    agent.wait_until_healthy(Duration::from_secs(30));
    broker.freeze();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, prefix, 0..count);
    wait_for_at_least(
        &agent,
        "logship_spool_records_written_total",
        count as f64,
        Duration::from_secs(30),
    );
    (agent, path, lines)
}

/// Polls until `metric` stops changing for `quiet`.
fn wait_until_steady(agent: &Agent, metric: &str, quiet: Duration, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    let mut last = agent.metric(metric).unwrap_or(0.0);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = agent.metric(metric).unwrap_or(0.0);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(Instant::now() < deadline, "{metric} never settled");
    }
}

/// Every line arrived, and per file the first arrival of each line is in written order (one
/// partition). Duplicates are allowed: a record taken back from librdkafka while in flight to a
/// frozen broker may still have been written once the broker woke, and is spooled and replayed
/// too;
/// a kill -9 during replay resends what was delivered since the spool's last position write.
/// Returns how many there were.
fn assert_all_arrived_in_order(records: &[Record], files: &[Vec<String>]) -> usize {
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    let arrived: std::collections::HashSet<&str> = messages.iter().copied().collect();
    let total: usize = files.iter().map(Vec::len).sum();
    let missing = files
        .iter()
        .flatten()
        .filter(|l| !arrived.contains(l.as_str()))
        .count();
    assert_eq!(missing, 0, "{missing} of {total} lines lost");
    assert_eq!(
        arrived.len(),
        total,
        "records that were never written arrived"
    );
    assert_in_order_per_file(&messages, files);
    records.len() - total
}

/// Wakes the broker, then reads the topic until every line arrived, in order.
fn thaw_and_expect_every_line(broker: &PrivateBroker, topic: &str, lines: Vec<String>) {
    broker.thaw();
    let mut reader = TopicReader::new(&broker.address, topic);
    let records = reader.read_until(
        lines.len(),
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    assert_all_arrived_in_order(records, &[lines]);
}

fn assert_in_order_per_file(messages: &[&str], files: &[Vec<String>]) {
    let mut position: HashMap<&str, (usize, usize)> = HashMap::new();
    for (f, lines) in files.iter().enumerate() {
        for (i, line) in lines.iter().enumerate() {
            position.insert(line, (f, i));
        }
    }
    let mut next = vec![0usize; files.len()];
    for message in messages {
        let (f, i) = position[message];
        if i < next[f] {
            continue; // a duplicate from a replay retry
        }
        assert_eq!(
            i, next[f],
            "file {f}: line {i} arrived before line {}",
            next[f]
        );
        next[f] = i + 1;
    }
}

/// The outage: a broker frozen for 60 s while 20,000 lines/s are written, with rename
/// rotation every 10 s and each rotated file deleted 5 s later. Deleted files' lines can only
/// come from the spool; all arrive, in order per file.
#[test]
fn a_60_second_outage_with_rotation_and_deletion_loses_nothing() {
    const RATE: usize = 20_000;
    let (broker, topic, setup, config) = private_broker_setup("outage", FAST_SPOOL);
    let agent = Agent::start(&setup, &config);
    let path = setup.logs.join("app.log");

    let mut files: Vec<Vec<String>> = Vec::new();
    let mut deletions: Vec<(Instant, PathBuf)> = Vec::new();
    let started = Instant::now();
    let mut frozen = false;
    let mut written = 0;
    // 10 s before the outage, 60 s of it, 10 s after.
    for second in 0..80 {
        if second == 10 {
            broker.freeze();
            frozen = true;
        }
        if second == 70 {
            broker.thaw();
            frozen = false;
        }
        if second % 10 == 0 {
            if second > 0 {
                let rotated = setup.logs.join(format!("app.log.{second}"));
                std::fs::rename(&path, &rotated).expect("rotate");
                deletions.push((Instant::now() + Duration::from_secs(5), rotated));
            }
            files.push(Vec::new());
        }
        for tenth in 0..10 {
            let prefix = format!("g{}", files.len());
            let end = written + RATE / 10;
            let lines = write_lines(&path, &prefix, written..end);
            files.last_mut().expect("a file").extend(lines);
            written = end;
            deletions.retain(|(when, rotated)| {
                let due = Instant::now() >= *when;
                if due {
                    std::fs::remove_file(rotated).expect("delete rotated file");
                }
                !due
            });
            let due = Duration::from_millis(second * 1000 + (tenth + 1) * 100);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    assert!(!frozen);
    for (_, rotated) in deletions {
        std::fs::remove_file(rotated).expect("delete rotated file");
    }
    let spooled = agent
        .metric("logship_spool_records_written_total")
        .unwrap_or(0.0);
    assert!(
        spooled > 100_000.0,
        "only {spooled} records were spooled during the outage"
    );

    let total = written;
    let mut reader = TopicReader::new(&broker.address, &topic);
    let records = reader.read_until(total, Duration::from_secs(3), Duration::from_secs(240));
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    let arrived: std::collections::HashSet<&str> = messages.iter().copied().collect();
    let missing = files
        .iter()
        .flatten()
        .filter(|l| !arrived.contains(l.as_str()))
        .count();
    assert_eq!(missing, 0, "{missing} of {total} lines lost");
    assert_in_order_per_file(&messages, &files);
    let duplicates = records.len() - total;
    println!(
        "outage: {total} lines written in {:?}, {spooled} spooled, {duplicates} duplicates",
        started.elapsed()
    );
    let replayed = wait_for_at_least(
        &agent,
        "logship_spool_records_replayed_total",
        spooled,
        Duration::from_secs(30),
    );
    assert!(replayed >= spooled);
    agent.wait_for_metric("logship_spool_records", 0.0, Duration::from_secs(30));
    agent.wait_for_metric("logship_spool_segments", 0.0, Duration::from_secs(30));
}

/// kill -9 while records go to the spool, and again while they come back from it.
#[test]
fn kill_9_while_spooling_and_while_replaying_loses_nothing() {
    let (broker, topic, setup, config) = private_broker_setup("spool-kill9", FAST_SPOOL);
    let path = setup.logs.join("app.log");
    let mut lines = write_lines(&path, "a", 0..1_000);
    let agent = Agent::start(&setup, &config);
    wait_for_at_least(
        &agent,
        &format!("logship_kafka_events_delivered_total{{topic=\"{topic}\"}}"),
        1_000.0,
        Duration::from_secs(30),
    );
    broker.freeze();
    lines.extend(write_lines(&path, "b", 0..300_000));
    wait_for_at_least(
        &agent,
        "logship_spool_records_written_total",
        50_000.0,
        Duration::from_secs(60),
    );
    agent.kill9();

    // Restart while the broker is still frozen: the spool is recovered, more is spooled.
    lines.extend(write_lines(&path, "c", 0..100_000));
    let agent = Agent::start(&setup, &config);
    agent.health(); // the API answers
    let recovered = agent.metric("logship_spool_records").unwrap_or(0.0) as usize;
    wait_for_at_least(
        &agent,
        "logship_spool_records_written_total",
        10_000.0,
        Duration::from_secs(60),
    );
    let written = |agent: &Agent| {
        agent
            .metric("logship_spool_records_written_total")
            .unwrap_or(0.0) as usize
    };
    broker.thaw();
    wait_for_at_least(
        &agent,
        "logship_spool_records_replayed_total",
        1.0,
        Duration::from_secs(60),
    );
    let spooled = written(&agent) + recovered;
    agent.kill9();

    let agent = Agent::start(&setup, &config);
    let total = lines.len();
    let mut reader = TopicReader::new(&broker.address, &topic);
    let records = reader.read_until(total, Duration::from_secs(3), Duration::from_secs(180));
    let duplicates = assert_all_arrived_in_order(records, &[lines]);
    println!(
        "kill -9 while spooling and replaying: {total} lines, {spooled} spooled, \
         {duplicates} duplicates"
    );
    // Each kill can repeat at most what was spooled: lines spooled after the last checkpoint
    // write (100 ms) are read and spooled again (first kill), and frames replayed after the
    // last position write (250 ms) are replayed again (second kill). Plus librdkafka's window
    // of records taken back while in flight to the frozen broker, yet written once it woke.
    // Reading a file already written, the agent spools and replays a few hundred thousand
    // lines a second, so both windows hold tens of thousands of lines here.
    assert!(
        duplicates <= 2 * spooled + 20_000,
        "{duplicates} duplicates: more than twice the spool plus the in-flight window"
    );
    agent.wait_for_metric("logship_spool_records", 0.0, Duration::from_secs(30));
}

fn spooled(topic: &str, message: &str) -> SpoolRecord {
    let value = serde_json::json!({
        "message": message,
        "log": {"file": {"path": "/spooled.log"}, "offset": 0},
    });
    SpoolRecord {
        topic: topic.to_owned(),
        key: None,
        headers: Vec::new(),
        payload: serde_json::to_vec(&value).expect("json"),
    }
}

/// Writes one segment of `frames` frames of 10 records each; returns the frames' offsets.
fn write_segment(path: &Path, topic: &str, name: &str, frames: usize) -> Vec<u64> {
    let mut writer = SegmentWriter::create(path).expect("segment");
    let offsets = (0..frames)
        .map(|f| {
            let records: Vec<SpoolRecord> = (0..10)
                .map(|r| spooled(topic, &format!("{name} frame {f} record {r}")))
                .collect();
            writer.append(&records).expect("append")
        })
        .collect();
    writer.sync().expect("sync");
    offsets
}

/// Cuts the last 7 bytes off a segment file.
fn cut_short(path: &Path) -> u64 {
    let len = std::fs::metadata(path).expect("len").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len - 7))
        .expect("cut");
    len - 7
}

/// A segment with a flipped byte, a sealed one cut short, a zero-length one, one that is not a
/// file, and the newest one ending in a torn write: the agent starts, counts the damage (the
/// torn write apart: it was never acknowledged), delivers every good record, and goes on.
#[test]
fn a_damaged_spool_is_counted_and_the_agent_goes_on() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "damaged-spool", 1);
    let setup = Setup::new();
    let spool = setup.data.join("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let segment = |id: u64| spool.join(format!("{id:020}.seg"));

    let flipped = write_segment(&segment(1), &topic, "flipped", 3);
    let mut bytes = std::fs::read(segment(1)).expect("read");
    bytes[flipped[1] as usize + 20] ^= 0xff;
    std::fs::write(segment(1), bytes).expect("write");
    write_segment(&segment(2), &topic, "cut", 2);
    cut_short(&segment(2));
    std::fs::File::create(segment(3)).expect("empty segment");
    std::fs::create_dir(segment(4)).expect("unreadable segment");
    let torn = write_segment(&segment(5), &topic, "torn", 2);
    let torn_len = cut_short(&segment(5)) - torn[1];

    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);
    let new_lines = write_lines(&setup.logs.join("app.log"), "new", 0..100);
    let mut reader = TopicReader::new(&brokers, &topic);
    // flipped: frames 0 and 2; torn: frame 0; then the new lines.
    let records = reader.read_until(140, Duration::from_secs(2), Duration::from_secs(60));
    let mut messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    let spooled_first: Vec<&str> = messages.drain(..40).collect();
    let expected: Vec<String> = [("flipped", 0), ("flipped", 2), ("cut", 0), ("torn", 0)]
        .iter()
        .flat_map(|(name, f)| (0..10).map(move |r| format!("{name} frame {f} record {r}")))
        .collect();
    assert_eq!(spooled_first, expected, "spooled records first, in order");
    assert_eq!(messages, new_lines, "then the new lines");
    assert_eq!(
        agent.metric("logship_spool_corrupt_frames_total"),
        Some(2.0),
        "the flipped frame and the sealed segment's cut frame"
    );
    assert_eq!(
        agent.metric("logship_spool_skipped_bytes_total{reason=\"torn\"}"),
        Some(torn_len as f64)
    );
    assert!(agent.metric_value("logship_spool_skipped_bytes_total{reason=\"corrupt\"}") > 0.0);
    let kept = std::fs::read_dir(spool.join("damaged"))
        .expect("damaged/")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".torn-at-"))
        .count();
    assert_eq!(kept, 1, "the torn write's bytes are kept for an operator");
    assert_eq!(
        agent.metric("logship_spool_segments_moved_aside_total"),
        Some(1.0)
    );
    assert!(
        spool
            .join("damaged")
            .join(format!("{:020}.seg", 4))
            .exists()
    );
    assert!(!segment(3).exists(), "the empty segment is removed");
    agent.wait_for_metric("logship_spool_segments", 0.0, Duration::from_secs(10));
    assert_eq!(agent.health().0, 200, "{}", agent.health().1);
}

/// `fsync = "interval"`: records spooled while the broker is frozen settle through the
/// interval's fsyncs, so the checkpoint reaches the end of the file during the outage (that they
/// settle at the fsync and not at the write is
/// `spooling::tests::with_an_interval_records_settle_at_the_fsync_not_at_the_write`);
/// /health reports the stall after `stall_secs` although nothing waits in librdkafka any more
/// (it once counted only records inside librdkafka, so a spooled outage never looked stalled);
/// after the thaw every line arrives in order and /health is green again.
#[test]
fn spooled_events_settle_on_the_interval_fsync_and_health_reports_the_stall() {
    let (broker, topic, setup, config) = private_broker_setup(
        "interval",
        &format!(
            "{FAST_SPOOL}\nstall_secs = 3\n[spool]\nfsync = \"interval\"\nfsync_interval_ms = 500"
        ),
    );
    let (agent, path, lines) = spool_lines(&broker, &setup, &config, "iv", 3_000);
    setup.wait_for_checkpoints_at_eof([path.as_path()]);

    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (status, health) = agent.health();
        if health["stalled"] == true {
            assert_eq!(status, 503, "{health}");
            break health;
        }
        assert!(Instant::now() < deadline, "never stalled: {health}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        health["events_in_flight"], 0,
        "they wait in the spool: {health}"
    );

    thaw_and_expect_every_line(&broker, &topic, lines);
    agent.wait_until_healthy(Duration::from_secs(30));
    assert_eq!(agent.health().1["stalled"], false);
}

/// A spool of 1 MiB: a long outage fills it.
fn small_spool(when_full: &str) -> String {
    format!(
        "{FAST_SPOOL}\n[spool]\nmax_bytes = 1048576\nsegment_max_bytes = 65536\nwhen_full = \"{when_full}\""
    )
}

/// Lines that compress about as badly as real logs do (zlib would shrink the numbered test
/// lines twentyfold, and the spool would hardly fill).
fn noisy_lines(path: &Path, count: usize) -> Vec<String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let lines: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "line {i:08} {:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            )
        })
        .collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    file.write_all(text.as_bytes()).expect("write");
    lines
}

/// A frozen broker, an agent with a 1 MiB spool, and 100,000 lines written to `app.log`.
struct FullSpool {
    broker: PrivateBroker,
    topic: String,
    setup: Setup,
    agent: Agent,
    path: PathBuf,
    lines: Vec<String>,
}

fn fill_small_spool(when_full: &str) -> FullSpool {
    let (broker, topic, setup, config) =
        private_broker_setup("spool-full", &small_spool(when_full));
    let agent = Agent::start(&setup, &config);
    broker.freeze();
    let path = setup.logs.join("app.log");
    let lines = noisy_lines(&path, 100_000);
    FullSpool {
        broker,
        topic,
        setup,
        agent,
        path,
        lines,
    }
}

#[test]
fn a_full_spool_that_blocks_pauses_the_source_and_loses_nothing() {
    let FullSpool {
        broker,
        topic,
        setup,
        agent,
        path,
        lines,
    } = fill_small_spool("block");
    let written = wait_until_steady(
        &agent,
        "logship_spool_records_written_total",
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    let bytes = agent.metric_value("logship_spool_bytes");
    assert!(
        bytes <= 1_048_576.0 + 65_536.0,
        "spool holds {bytes} bytes, over max_bytes"
    );
    assert!(written < 100_000.0, "everything fit: the spool is not full");
    let size = std::fs::metadata(&path).expect("size").len();
    let checkpoint = setup.checkpoint_offsets()[&path.display().to_string()];
    assert!(checkpoint < size, "the source went on past a full spool");

    thaw_and_expect_every_line(&broker, &topic, lines);
    assert_eq!(
        agent.metric("logship_spool_records_dropped_total{reason=\"full\"}"),
        Some(0.0)
    );
}

#[test]
fn a_full_spool_that_drops_newest_counts_exactly_what_it_dropped() {
    let FullSpool {
        broker,
        topic,
        setup,
        agent,
        path,
        lines,
    } = fill_small_spool("drop_newest");
    // Every line is spooled or dropped; the checkpoint passes both.
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let dropped = agent
        .metric("logship_spool_records_dropped_total{reason=\"full\"}")
        .unwrap_or(0.0) as usize;
    assert!(dropped > 0, "nothing dropped: the spool never filled");

    broker.thaw();
    let mut reader = TopicReader::new(&broker.address, &topic);
    let records = reader.read_until(
        lines.len() - dropped,
        Duration::from_secs(5),
        Duration::from_secs(120),
    );
    let arrived: std::collections::HashSet<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(arrived.len(), records.len(), "no duplicates");
    assert_eq!(
        arrived.len() + dropped,
        lines.len(),
        "delivered plus dropped is every line"
    );
}

/// The spool's disk fills (a 256 KiB tmpfs): /health turns red with the reason, the agent keeps
/// running, and once Kafka is back everything is delivered.
#[test]
fn a_full_spool_disk_turns_health_red_without_crashing() {
    let (broker, topic, setup, config) = private_broker_setup(
        "spool-disk-full",
        &format!("{FAST_SPOOL}\n[spool]\nsegment_max_bytes = 65536"),
    );
    let agent = Agent::start_with_spool_disk(&setup, &config, 256 * 1024);
    agent.health();
    broker.freeze();
    let path = setup.logs.join("app.log");
    let lines = noisy_lines(&path, 50_000);
    wait_for_at_least(
        &agent,
        "logship_spool_write_errors_total",
        1.0,
        Duration::from_secs(60),
    );
    // Records keep waiting for room on the full disk: /health stays red, and says why.
    std::thread::sleep(Duration::from_secs(1));
    let (status, health) = agent.health();
    assert_eq!(health["spool_writable"], false, "{health}");
    assert_eq!(status, 503, "{health}");
    assert!(
        agent.log_text().contains("cannot write to the spool"),
        "the log says why"
    );

    thaw_and_expect_every_line(&broker, &topic, lines);
    agent.wait_until_healthy(Duration::from_secs(30));
}

/// Without a spool, `retry_max_elapsed_secs` bounds the wait: records the frozen broker does not
/// take in time are given up, counted, and the source moves on.
#[test]
fn without_a_spool_records_are_given_up_after_retry_max_elapsed_secs_and_counted() {
    let (broker, topic, setup, config) = private_broker_setup(
        "give-up",
        "retry_max_elapsed_secs = 2\n[spool]\nenabled = false",
    );
    let agent = Agent::start(&setup, &config);
    agent.health();
    broker.freeze();
    let path = setup.logs.join("app.log");
    write_lines(&path, "lost", 0..5_000);
    let sample =
        format!("logship_kafka_events_given_up_total{{topic=\"{topic}\",action=\"dropped\"}}");
    agent.wait_for_metric(&sample, 5_000.0, Duration::from_secs(60));
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    assert!(!setup.data.join("spool").exists(), "no spool was made");
}

/// With a spool, `retry_max_elapsed_secs` does not count the outage itself: records spooled
/// through an outage three times as long are all delivered once the broker is back, none given
/// up. (It once counted from the outage's start, and the first replay gave everything up.)
#[test]
fn with_a_spool_an_outage_longer_than_retry_max_elapsed_secs_gives_nothing_up() {
    let (broker, topic, setup, config) = private_broker_setup(
        "outlast",
        "message_timeout_ms = 1000\nretry_max_elapsed_secs = 2",
    );
    let (agent, path, lines) = spool_lines(&broker, &setup, &config, "outlast", 5_000);
    std::thread::sleep(Duration::from_secs(5));

    thaw_and_expect_every_line(&broker, &topic, lines);
    for action in ["dropped", "dead_lettered"] {
        let sample =
            format!("logship_kafka_events_given_up_total{{topic=\"{topic}\",action=\"{action}\"}}");
        assert_eq!(agent.metric(&sample).unwrap_or(0.0), 0.0, "{action}");
    }
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
}

/// Review finding 11: a graceful stop during replay. Frames Kafka acknowledged while the
/// producer flushed were never recorded as delivered, so the restarted agent sent them again.
/// SIGTERM while 200,000 spooled records replay, restart: every record arrives exactly once.
#[test]
fn sigterm_during_replay_then_restart_sends_each_spooled_record_once() {
    const FRAMES: usize = 2_000;
    const PER_FRAME: usize = 100;
    let brokers = brokers();
    let topic = create_topic(&brokers, "spool-sigterm", 1);
    let setup = Setup::new();
    let spool = setup.data.join("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let mut writer = SegmentWriter::create(&spool.join(format!("{:020}.seg", 1))).expect("segment");
    for f in 0..FRAMES {
        let records: Vec<SpoolRecord> = (0..PER_FRAME)
            .map(|r| spooled(&topic, &format!("frame {f} record {r}")))
            .collect();
        writer.append(&records).expect("append");
    }
    writer.sync().expect("sync");
    drop(writer);
    let total = FRAMES * PER_FRAME;

    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);
    let replayed = "logship_spool_records_replayed_total";
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_stop = loop {
        let now = agent.metric(replayed).unwrap_or(0.0);
        if now > 0.0 {
            break now;
        }
        assert!(Instant::now() < deadline, "replay never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        (at_stop as usize) < total,
        "replay had finished before SIGTERM: nothing tested"
    );

    let agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(total, Duration::from_secs(3), Duration::from_secs(120));
    let arrived: std::collections::HashSet<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(arrived.len(), total, "records lost");
    assert_eq!(
        records.len() - total,
        0,
        "duplicates after a graceful stop during replay (stopped at {at_stop} replayed)"
    );
    agent.wait_for_metric("logship_spool_records", 0.0, Duration::from_secs(30));
}

/// The configured topic does not exist yet (the broker creates no topics here), and the spool
/// takes the records before librdkafka's verdict on the topic (`message_timeout_ms` 1 s, its
/// metadata propagation 3 s; 30 s each by default, a race). Replayed, they must not be given up as if a route had chosen a
/// topic that vanished: they wait in the spool, /health is red, and once the topic exists every
/// line arrives in order.
#[test]
fn records_spooled_for_a_configured_topic_not_yet_created_wait_for_it() {
    let brokers = brokers();
    let topic = format!("later-{}-{}", std::process::id(), rand::random::<u32>());
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, "later", 0..500);
    let config = setup.config(
        &brokers,
        &topic,
        "",
        &format!(
            "{FAST_SPOOL}\nstall_secs = 2\n[kafka.librdkafka_options]\n\"allow.auto.create.topics\" = \"false\"\n\"topic.metadata.propagation.max.ms\" = \"3000\"\n[spool]\n"
        ),
    );
    let agent = Agent::start(&setup, &config);
    wait_for_at_least(
        &agent,
        "logship_spool_records_written_total",
        500.0,
        Duration::from_secs(30),
    );
    // Replays are tried and fail meanwhile, past librdkafka's verdict on the topic (3 s after
    // the agent asked for it): nothing is given up.
    std::thread::sleep(Duration::from_secs(6));
    let (status, health) = agent.health();
    assert_eq!(status, 503, "{health}");
    let log = agent.log_text();
    assert!(
        !log.contains("record rejected by Kafka"),
        "nothing given up: {log}"
    );

    create_topic_named(&brokers, &topic, 1);
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(500, Duration::from_secs(1), Duration::from_secs(60));
    let messages: Vec<&str> = records.iter().map(Record::message).collect();
    assert_eq!(messages, lines);
    agent.wait_until_healthy(Duration::from_secs(30));
}
