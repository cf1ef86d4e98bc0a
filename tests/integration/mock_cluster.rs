//! Produce faults no real broker here can be made to produce on demand, from librdkafka's mock
//! cluster: it runs in this test process and listens on real TCP ports, and the `logship` binary
//! connects to it like to any broker. Retriable Produce errors, a partition leader change and a
//! broker going down and up: every line arrives, and idempotence keeps duplicates at 0.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::harness::{Agent, Setup, TopicReader, check_delivery, paced_writer, write_lines};

const TOPIC: &str = "mocked";

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(3).expect("mock cluster");
    cluster.create_topic(TOPIC, 3, 3).expect("mock topic");
    cluster
}

#[test]
fn retriable_produce_errors_lose_nothing_and_duplicate_nothing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    // The next 12 Produce requests fail with errors a broker sends under leader elections and
    // load; librdkafka retries them, in order, under idempotence.
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let setup = Setup::new();
    let mut expected = HashMap::new();
    for f in 0..2 {
        let path = setup.logs.join(format!("app-{f}.log"));
        expected.insert(
            path.display().to_string(),
            write_lines(&path, &format!("m{f}"), 0..10_000),
        );
    }
    let config = setup.config(&bootstrap, TOPIC, "", "");
    let _agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&bootstrap, TOPIC);
    let records = reader.read_until(20_000, Duration::from_secs(2), Duration::from_secs(60));
    assert_eq!(check_delivery(records, &expected, 0), 0, "no duplicates");
    setup.wait_for_checkpoints_at_eof(expected.keys().map(std::path::Path::new));
}

#[test]
fn a_leader_change_and_a_broker_down_and_up_lose_nothing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let config = setup.config(&bootstrap, TOPIC, "", "");
    let _agent = Agent::start(&setup, &config);
    let writer = paced_writer(path.clone(), "lc".into(), 0..30_000, 10_000);

    std::thread::sleep(Duration::from_millis(700));
    for partition in 0..3 {
        cluster
            .partition_leader(TOPIC, partition, Some(2))
            .expect("move leaders");
    }
    std::thread::sleep(Duration::from_millis(700));
    cluster.broker_down(2).expect("broker down");
    std::thread::sleep(Duration::from_secs(2));
    for partition in 0..3 {
        cluster
            .partition_leader(TOPIC, partition, Some(3))
            .expect("move leaders again");
    }
    cluster.broker_up(2).expect("broker up");
    let lines = writer.join().expect("writer");

    let mut reader = TopicReader::new(&bootstrap, TOPIC);
    let records = reader.read_until(30_000, Duration::from_secs(2), Duration::from_secs(90));
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    assert_eq!(check_delivery(records, &expected, 0), 0, "no duplicates");
}

/// A cluster whose next Produce request is rejected for good (topic authorization failed).
fn rejecting_the_next_produce() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = cluster();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    cluster
}

/// The `failed` counter of one reason and action.
fn failed_metric(reason: &str, action: &str) -> String {
    format!(
        "logship_kafka_events_failed_total{{topic=\"{TOPIC}\",reason=\"{reason}\",action=\"{action}\"}}"
    )
}

/// A Produce request rejected for good (not authorized), no dead-letter topic: its records are
/// counted as dropped by reason, the agent keeps running, the rest arrives, and the file's
/// checkpoint still reaches its end.
#[test]
fn a_non_retriable_produce_error_is_counted_and_the_rest_flows() {
    let cluster = rejecting_the_next_produce();
    let bootstrap = cluster.bootstrap_servers();
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    write_lines(&path, "na", 0..2_000);
    let config = setup.config(&bootstrap, TOPIC, "", "");
    let agent = Agent::start(&setup, &config);

    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let failed = agent
        .metric(&failed_metric("not_authorized", "dropped"))
        .unwrap_or(0.0);
    let delivered = agent
        .metric(&format!(
            "logship_kafka_events_delivered_total{{topic=\"{TOPIC}\"}}"
        ))
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "the rejected records are counted: {failed}");
    assert_eq!(
        failed + delivered,
        2_000.0,
        "every line delivered or counted"
    );
    let (status, health) = agent.health();
    assert_eq!(status, 200, "still running and healthy: {health}");
}

/// With a `dead_letter_topic`, records Kafka rejects for good go there once, as they were, with
/// headers that say why; they are counted as dead-lettered, every line ends up in one topic or
/// the other, and the checkpoint waits for the dead letters before reaching the end.
#[test]
fn records_rejected_for_good_go_to_the_dead_letter_topic_with_the_reason() {
    const DEAD: &str = "mocked-dead";
    let cluster = rejecting_the_next_produce();
    cluster.create_topic(DEAD, 1, 3).expect("dead-letter topic");
    let bootstrap = cluster.bootstrap_servers();
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, "dl", 0..2_000);
    let config = setup.config(
        &bootstrap,
        TOPIC,
        "",
        &format!("dead_letter_topic = \"{DEAD}\""),
    );
    let agent = Agent::start(&setup, &config);
    setup.wait_for_checkpoints_at_eof([path.as_path()]);

    let dead_lettered = agent
        .metric(&failed_metric("not_authorized", "dead_lettered"))
        .unwrap_or(0.0);
    assert!(dead_lettered >= 1.0, "the rejected batch is dead-lettered");
    let dropped = agent.metric(&failed_metric("not_authorized", "dropped"));
    assert_eq!(dropped, Some(0.0));
    let mut dead = TopicReader::new(&bootstrap, DEAD);
    let letters = dead
        .read_until(
            dead_lettered as usize,
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .to_vec();
    assert_eq!(letters.len(), dead_lettered as usize);
    for letter in &letters {
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("logship.rejected.reason"), Some("not_authorized"));
        assert_eq!(header("logship.rejected.topic"), Some(TOPIC));
        assert!(header("logship.rejected.error").is_some_and(|e| !e.is_empty()));
        assert_eq!(
            letter.path(),
            path.display().to_string(),
            "the event as it was"
        );
    }
    let mut main = TopicReader::new(&bootstrap, TOPIC);
    let delivered = main
        .read_until(
            2_000 - letters.len(),
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
        .to_vec();
    let mut seen: Vec<&str> = letters
        .iter()
        .chain(&delivered)
        .map(|r| r.message())
        .collect();
    seen.sort_unstable();
    let mut expected: Vec<&str> = lines.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every line in one topic or the other, once");
}

/// Records spooled through an outage and rejected for good when replayed go to the dead-letter
/// topic: every line ends up once in one topic or the other, the spool drains, and a restart
/// replays nothing (the frames were done with only after their dead letters were delivered).
#[test]
fn spooled_records_rejected_on_replay_go_to_the_dead_letter_topic() {
    const DEAD: &str = "mocked-dead";
    let cluster = cluster();
    cluster.create_topic(DEAD, 1, 3).expect("dead-letter topic");
    let bootstrap = cluster.bootstrap_servers();
    for broker in 1..=3 {
        cluster.broker_down(broker).expect("broker down");
    }
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, "sp", 0..2_000);
    let config = setup.config(
        &bootstrap,
        TOPIC,
        "",
        &format!("message_timeout_ms = 1000\ndead_letter_topic = \"{DEAD}\""),
    );
    let agent = Agent::start(&setup, &config);
    agent.wait_for_metric(
        "logship_spool_records_written_total",
        2_000.0,
        Duration::from_secs(30),
    );

    // The first Produce request after the outage is a replay; Kafka rejects it for good.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    for broker in 1..=3 {
        cluster.broker_up(broker).expect("broker up");
    }
    agent.wait_for_metric("logship_spool_records", 0.0, Duration::from_secs(60));
    let dead_lettered = agent.metric_value(&failed_metric("not_authorized", "dead_lettered"));
    assert!(dead_lettered >= 1.0, "the rejected replay is dead-lettered");
    assert_eq!(
        agent.metric_value(&failed_metric("not_authorized", "dropped")),
        0.0
    );
    let replayed = agent.metric_value("logship_spool_records_replayed_total");
    assert_eq!(
        replayed + dead_lettered,
        2_000.0,
        "replayed counts what reached its topic"
    );

    let read = |topic: &str, count: usize| {
        let mut reader = TopicReader::new(&bootstrap, topic);
        reader
            .read_until(count, Duration::from_secs(1), Duration::from_secs(30))
            .iter()
            .map(|r| r.message().to_owned())
            .collect::<Vec<_>>()
    };
    let mut seen = read(DEAD, dead_lettered as usize);
    seen.extend(read(TOPIC, 2_000 - dead_lettered as usize));
    seen.sort_unstable();
    let mut expected = lines.clone();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every line in one topic or the other, once");

    // Nothing is replayed again after a restart.
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    drop(agent);
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        agent.metric_value("logship_spool_records_replayed_total"),
        0.0
    );
    let again = read(DEAD, dead_lettered as usize).len()
        + read(TOPIC, 2_000 - dead_lettered as usize).len();
    assert_eq!(again, 2_000, "no record twice");
}

/// Without a spool, `retry_max_elapsed_secs` with `on_retry_exhausted = "dead_letter"`: records
/// whose partition leader stays down are given up after 2 s and sent once to the dead-letter
/// topic (led by a broker that is up), counted as given up and dead-lettered, and the file's
/// checkpoint reaches its end. A mock, because one real broker cannot be down for one topic and
/// up for another.
#[test]
fn records_given_up_after_retry_max_elapsed_secs_go_to_the_dead_letter_topic() {
    const DEAD: &str = "mocked-exhausted";
    let cluster = cluster();
    cluster.create_topic(DEAD, 1, 3).expect("dead-letter topic");
    for partition in 0..3 {
        cluster
            .partition_leader(TOPIC, partition, Some(1))
            .expect("leaders on broker 1");
    }
    cluster
        .partition_leader(DEAD, 0, Some(2))
        .expect("dead-letter leader on broker 2");
    let bootstrap = cluster.bootstrap_servers();
    let setup = Setup::new();
    let config = setup.config(
        &bootstrap,
        TOPIC,
        "",
        &format!(
            "retry_max_elapsed_secs = 2\non_retry_exhausted = \"dead_letter\"\n\
             dead_letter_topic = \"{DEAD}\"\n[spool]\nenabled = false"
        ),
    );
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));
    cluster.broker_down(1).expect("broker down");
    let path = setup.logs.join("app.log");
    let mut lines = write_lines(&path, "gu", 0..1_000);

    let given_up = format!(
        "logship_kafka_events_given_up_total{{topic=\"{TOPIC}\",action=\"dead_lettered\"}}"
    );
    agent.wait_for_metric(&given_up, 1_000.0, Duration::from_secs(60));
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let dropped =
        format!("logship_kafka_events_given_up_total{{topic=\"{TOPIC}\",action=\"dropped\"}}");
    assert_eq!(agent.metric(&dropped).unwrap_or(0.0), 0.0);
    // Up again before reading: the test's consumer treats a refused connection as an error.
    cluster.broker_up(1).expect("broker up");
    let mut dead = TopicReader::new(&bootstrap, DEAD);
    let mut seen: Vec<String> = dead
        .read_until(1_000, Duration::from_secs(1), Duration::from_secs(30))
        .iter()
        .map(|r| r.message().to_owned())
        .collect();
    seen.sort_unstable();
    lines.sort_unstable();
    assert_eq!(
        seen, lines,
        "each given-up line once in the dead-letter topic"
    );
}
