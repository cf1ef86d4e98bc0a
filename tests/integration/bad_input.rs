//! Bad data in files: invalid UTF-8 and over-long lines are counted and shipped; neither crashes
//! the agent nor stalls the file.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::harness::{Agent, Setup, TopicReader, brokers, create_topic};

#[test]
fn invalid_utf8_and_long_lines_neither_crash_nor_stall() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "badinput", 1);
    let setup = Setup::new();
    let path = setup.logs.join("junk.log");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(b"before\n").unwrap();
    file.write_all(b"latin1 caf\xe9 and junk \xff\xfe\x00\x01\n")
        .unwrap();
    file.write_all(&vec![b'x'; 5 * 1024 * 1024]).unwrap();
    file.write_all(b"\nafter\n").unwrap();
    drop(file);
    let config = setup.config(&brokers, &topic, "max_line_bytes = 1024", "");
    let agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(4, Duration::from_secs(1), Duration::from_secs(60));
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0], "before");
    assert_eq!(
        messages[1],
        "latin1 caf\u{fffd} and junk \u{fffd}\u{fffd}\u{0}\u{1}"
    );
    assert_eq!(messages[2], "x".repeat(1024));
    assert_eq!(messages[3], "after");

    let mut counts = HashMap::new();
    for name in [
        "logship_source_lines_truncated_total",
        "logship_source_invalid_utf8_lines_total",
    ] {
        counts.insert(name, agent.metric(&format!("{name}{{source=\"app\"}}")));
    }
    assert_eq!(counts["logship_source_lines_truncated_total"], Some(1.0));
    assert_eq!(counts["logship_source_invalid_utf8_lines_total"], Some(1.0));

    // The file keeps flowing after the bad lines.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"later\n")
        .unwrap();
    let records = reader.read_until(5, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(records.last().map(|r| r.message()), Some("later"));
    let (status, _) = agent.terminate(Duration::from_secs(15));
    assert!(status.success());
}

#[test]
fn record_over_the_size_limit_is_counted_as_failed_and_the_file_moves_on() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "toolarge", 1);
    let setup = Setup::new();
    let path = setup.logs.join("big.log");
    let big = "y".repeat(5000);
    std::fs::write(&path, format!("small one\n{big}\nsmall two\n")).expect("write");
    let config = setup.config(
        &brokers,
        &topic,
        "",
        "batch_max_bytes = 2000\nlibrdkafka_options = { \"message.max.bytes\" = \"2000\" }",
    );
    let agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(2, Duration::from_secs(1), Duration::from_secs(30));
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(messages, ["small one", "small two"]);
    let failed =
        format!("logship_kafka_events_failed_total{{topic=\"{topic}\",reason=\"too_large\"}}");
    assert_eq!(
        agent.metric(&failed),
        Some(1.0),
        "the rejected record is counted by reason"
    );
    // Given up and counted, it no longer holds the checkpoint back.
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
}
