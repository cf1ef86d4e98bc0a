//! Bad data in files: invalid UTF-8 and over-long lines are counted and shipped; neither crashes
//! the agent nor stalls the file.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::harness::{Agent, Record, Setup, TopicReader, brokers, create_topic};

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

/// A 10,000-byte line with `max_message_bytes = 4096`, per `oversize`: the file moves on in every
/// case, and the metric says what happened.
fn oversize(
    action: &str,
    kafka_extra: &str,
    dead_topic: Option<&str>,
) -> (Setup, Agent, Vec<Record>) {
    let brokers = brokers();
    let topic = create_topic(&brokers, "oversize", 1);
    let setup = Setup::new();
    let path = setup.logs.join("big.log");
    let big = "y".repeat(10_000);
    std::fs::write(&path, format!("small one\n{big}\nsmall two\n")).expect("write");
    let config = setup.config(
        &brokers,
        &topic,
        "",
        &format!("max_message_bytes = 4096\n{kafka_extra}"),
    );
    let agent = Agent::start(&setup, &config);
    let expected = if action == "truncated" { 3 } else { 2 };
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader
        .read_until(expected, Duration::from_secs(1), Duration::from_secs(30))
        .to_vec();
    let counted =
        format!("logship_kafka_events_oversize_total{{topic=\"{topic}\",action=\"{action}\"}}");
    assert_eq!(agent.metric(&counted), Some(1.0), "{action} is counted");
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let dead = dead_topic.map(|t| {
        TopicReader::new(&brokers, t)
            .read_until(1, Duration::from_millis(500), Duration::from_secs(30))
            .to_vec()
    });
    (setup, agent, dead.unwrap_or(records))
}

#[test]
fn an_oversized_event_is_truncated_to_fit_by_default() {
    let (_setup, _agent, records) = oversize("truncated", "", None);
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(messages.len(), 3);
    assert_eq!((messages[0], messages[2]), ("small one", "small two"));
    let cut = &records[1];
    assert!(cut.message().starts_with("yyyy") && cut.message().len() < 4096);
    assert_eq!(cut.value["log"]["flags"], serde_json::json!(["truncated"]));
    assert!(cut.value.to_string().len() <= 4096);
}

#[test]
fn an_oversized_event_can_be_dropped() {
    let (_setup, _agent, records) = oversize("dropped", "oversize = \"drop\"", None);
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(messages, ["small one", "small two"]);
}

#[test]
fn an_oversized_event_can_be_dead_lettered() {
    let brokers = brokers();
    let dead = create_topic(&brokers, "oversize-dead", 1);
    let extra = format!("oversize = \"dead_letter\"\ndead_letter_topic = \"{dead}\"");
    let (_setup, _agent, records) = oversize("dead_lettered", &extra, Some(&dead));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value["error"]["type"], "oversize");
    assert!(records[0].message().starts_with("yyyy"));
}
