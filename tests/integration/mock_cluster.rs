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

/// A Produce request rejected for good (not authorized): its records are counted as failed by
/// reason and given up, the agent keeps running, the rest arrives, and the file's checkpoint
/// still reaches its end.
#[test]
fn a_non_retriable_produce_error_is_counted_and_the_rest_flows() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    write_lines(&path, "na", 0..2_000);
    let config = setup.config(&bootstrap, TOPIC, "", "");
    let agent = Agent::start(&setup, &config);

    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let failed = agent
        .metric(&format!(
            "logship_kafka_events_failed_total{{topic=\"{TOPIC}\",reason=\"not_authorized\"}}"
        ))
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
