//! Happy path and graceful shutdown: every line arrives once, in order per file.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{
    Agent, NO_AUTO_CREATE, Setup, TopicReader, brokers, check_delivery, create_topic,
    create_topic_named, delete_topic, paced_writer, write_lines,
};

#[test]
fn lines_written_before_start_arrive_exactly_once_in_order() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "clean", 3);
    let setup = Setup::new();
    let mut expected = HashMap::new();
    for f in 0..4 {
        let path = setup.logs.join(format!("app-{f}.log"));
        let lines = write_lines(&path, &format!("f{f}"), 0..25_000);
        expected.insert(path.display().to_string(), lines);
    }
    let config = setup.config(&brokers, &topic, "", "");
    let started = unix_now();
    let agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(100_000, Duration::from_secs(2), Duration::from_secs(120));
    let duplicates = check_delivery(records, &expected, 0);
    assert_eq!(duplicates, 0, "a clean run delivers each line exactly once");

    // Records carry the ECS envelope.
    let first = &records[0].value;
    assert!(
        first["@timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(first["host"]["name"].is_string());
    assert!(first["log"]["offset"].is_u64());

    // Checkpoints reach the end of every file once everything is delivered.
    setup.wait_for_checkpoints_at_eof(expected.keys().map(std::path::Path::new));
    let delivered = agent.metric(&format!(
        "logship_kafka_events_delivered_total{{topic=\"{topic}\"}}"
    ));
    assert_eq!(delivered, Some(100_000.0));
    let last = agent.metric_value(&format!(
        "logship_kafka_last_delivery_timestamp_seconds{{topic=\"{topic}\"}}"
    ));
    let now = unix_now();
    assert!(
        started < last && last <= now,
        "last delivery at {last}: between the start ({started}) and now ({now})"
    );
    // Deliveries are timed once per run of records taken and acknowledged together (each run
    // holds at least one record, and a batch of records shares one send time), and nothing is
    // left in flight.
    let timed = agent.metric_value(&format!(
        "logship_kafka_delivery_latency_seconds_count{{topic=\"{topic}\"}}"
    ));
    assert!(
        (1.0..=10_000.0).contains(&timed),
        "{timed} samples for 100,000 records"
    );
    assert_eq!(agent.metric("logship_kafka_in_flight_bytes"), Some(0.0));
    let (status, _) = agent.terminate(Duration::from_secs(10));
    assert!(status.success());
}

#[test]
fn sigterm_while_shipping_exits_zero_and_restart_resends_nothing() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "sigterm", 2);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let writer = paced_writer(path.clone(), "t".into(), 0..150_000, 50_000);
    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);

    // Stop while lines are still being written and shipped.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !writer.is_finished(),
        "the writer finished before SIGTERM; the test proves nothing"
    );
    let (status, took) = agent.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took <= Duration::from_secs(10),
        "took {took:?}, shutdown_timeout_secs is 10"
    );
    let mut reader = TopicReader::new(&brokers, &topic);
    let before = reader
        .read_until(1, Duration::from_secs(1), Duration::from_secs(30))
        .len();
    let lines = writer.join().expect("writer");
    assert!(
        before < lines.len(),
        "everything shipped before SIGTERM; the test proves nothing"
    );

    let agent = Agent::start(&setup, &config);
    let records = reader.read_until(
        lines.len(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    );
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    let duplicates = check_delivery(records, &expected, 0);
    println!("SIGTERM after {before} records, restart delivered the rest: {duplicates} duplicates");
    assert_eq!(
        duplicates, 0,
        "a graceful stop resends nothing that was delivered"
    );
    drop(agent);
}

/// `[kafka]` record options: the topic from a template (with the fallback for events without its
/// field), the key from a template, and headers (a template's header left out when its field is
/// missing).
#[test]
fn topic_key_and_headers_come_from_templates() {
    let brokers = brokers();
    let chosen = create_topic(&brokers, "chosen", 1);
    let fallback = create_topic(&brokers, "fallback", 1);
    let setup = Setup::new();
    std::fs::write(
        setup.logs.join("app.log"),
        format!("dest={chosen} id=1\nid=2\n"),
    )
    .expect("write");
    let kafka = format!(
        r#"fallback_topic = "{fallback}"
key = "id-{{{{ id }}}}"
headers = {{ dest = "{{{{ dest }}}}", shipper = "logship" }}
[pipelines.p]
steps = [{{ type = "parse_logfmt" }}]
"#
    );
    let config = setup.config(&brokers, "{{ dest }}", "pipeline = \"p\"", &kafka);
    let _agent = Agent::start(&setup, &config);

    let mut chosen_reader = TopicReader::new(&brokers, &chosen);
    let records = chosen_reader.read_until(1, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value["id"], "1");
    assert_eq!(records[0].key.as_deref(), Some("id-1"));
    let mut headers = records[0].headers.clone();
    headers.sort();
    assert_eq!(
        headers,
        [
            ("dest".to_owned(), chosen.clone()),
            ("shipper".to_owned(), "logship".to_owned())
        ]
    );

    let mut fallback_reader = TopicReader::new(&brokers, &fallback);
    let records =
        fallback_reader.read_until(1, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value["id"], "2");
    assert_eq!(
        records[0].headers,
        [("shipper".to_owned(), "logship".to_owned())],
        "no `dest` header without the field"
    );
}

/// A configured topic that does not exist (the broker creates no topics here, `NO_AUTO_CREATE`):
/// every record would fail, so the agent stops and says why, instead of spooling or dropping, and
/// its checkpoint stays before the lines. Once the topic exists, a restart delivers them all.
#[test]
fn a_configured_topic_that_does_not_exist_stops_the_agent_and_a_restart_delivers() {
    let brokers = brokers();
    let topic = format!("absent-{}-{}", std::process::id(), rand::random::<u32>());
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, "absent", 0..10);
    let config = setup.config(&brokers, &topic, "", NO_AUTO_CREATE);
    let mut agent = Agent::start(&setup, &config);
    stopped_for_unknown_topic(&mut agent, &topic);
    let offsets = setup.checkpoint_offsets();
    let checkpoint = offsets.get(&path.display().to_string()).copied();
    assert!(
        checkpoint.unwrap_or(0) == 0,
        "checkpoint moved: {checkpoint:?}"
    );
    drop(agent);

    create_topic_named(&brokers, &topic, 1);
    let _agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(10, Duration::from_millis(500), Duration::from_secs(30));
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    assert_eq!(messages, lines);
}

/// The configured topic deleted while the agent runs (and not created again: the broker creates
/// no topics here): once librdkafka knows the topic is gone it refuses new records outright, and
/// the agent stops and says why, as when a delivery report tells, instead of offering them
/// again for ever. The checkpoint stays after the lines delivered before.
#[test]
fn the_configured_topic_deleted_while_running_stops_the_agent() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "deleted", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let before = write_lines(&path, "before", 0..10);
    let kafka = format!("{NO_AUTO_CREATE}\"topic.metadata.refresh.interval.ms\" = \"500\"\n");
    let config = setup.config(&brokers, &topic, "", &kafka);
    let mut agent = Agent::start(&setup, &config);
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let delivered = setup.checkpoint_offsets()[&path.display().to_string()];
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(10, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(records.len(), before.len());

    delete_topic(&brokers, &topic);
    // librdkafka's verdict: the topic missing from two metadata answers a second apart.
    std::thread::sleep(Duration::from_secs(3));
    write_lines(&path, "after", 0..10);
    let log = stopped_for_unknown_topic(&mut agent, &topic);
    assert!(!log.contains("offering it again"), "{log}");
    let offsets = setup.checkpoint_offsets();
    assert_eq!(offsets[&path.display().to_string()], delivered);
}

/// Waits for the agent to stop on its own, failed, with an error that names `topic` and a log
/// that says it is unknown; returns the log.
fn stopped_for_unknown_topic(agent: &mut Agent, topic: &str) -> String {
    let status = agent.wait_for_exit(Duration::from_secs(30));
    let log = agent.log_text();
    assert!(!status.success(), "{status}: {log}");
    assert!(
        log.contains(&format!("could not be delivered ({topic}: "))
            && log.contains("Unknown topic"),
        "the agent's error names the topic and the reason: {log}"
    );
    log
}

/// Now, in seconds since the epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
