//! The HTTP source with a real HTTP client (reqwest) against the running agent: every status
//! code path, events arriving in Kafka, `ack = "delivered"` waiting for the broker or the
//! spool, and backpressure answered with 429.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};

use crate::harness::{Agent, Setup, TopicReader, brokers, create_topic, free_port};

/// An agent config with HTTP sources (`[sources.<id>]` tables in `sources`) and `extra` keys at
/// the top and in `[kafka]`.
fn http_config(setup: &Setup, sources: &str, brokers: &str, topic: &str, kafka: &str) -> PathBuf {
    let text = format!(
        r#"data_dir = "{data}"
shutdown_timeout_secs = 5
[api]
address = "127.0.0.1:{port}"
{sources}
[kafka]
brokers = ["{brokers}"]
topic = "{topic}"
{kafka}
"#,
        data = setup.data.display(),
        port = setup.api_port,
    );
    setup.write_config(&text)
}

fn post(client: &Client, port: u16, token: Option<&str>, body: Vec<u8>, gzip: bool) -> Response {
    let mut request = client
        .post(format!("http://127.0.0.1:{port}/logs"))
        .timeout(Duration::from_secs(60))
        .body(body);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if gzip {
        request = request.header("Content-Encoding", "gzip");
    }
    request.send().expect("the HTTP source answers")
}

/// Waits until the source's port takes connections.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the HTTP source never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn status_count(agent: &Agent, source: &str, status: u16) -> f64 {
    agent
        .metric(&format!(
            "logship_http_requests_total{{source=\"{source}\",status=\"{status}\"}}"
        ))
        .unwrap_or(0.0)
}

/// 401, 400, 413, 429 and 200 (object, array, gzip NDJSON), each counted; the 200s' events are
/// in Kafka by the time they are answered (`ack = "delivered"`), with their fields.
#[test]
fn every_status_code_path_and_delivered_events_in_kafka() {
    let setup = Setup::new();
    let topic = create_topic(&brokers(), "http", 1);
    let (port, limited) = (free_port(), free_port());
    let sources = format!(
        r#"[sources.api]
type = "http"
address = "127.0.0.1:{port}"
auth_token = "s3cret"
max_body_bytes = 4000
required_fields = ["service"]
[sources.limited]
type = "http"
address = "127.0.0.1:{limited}"
rate_limit_per_second = 1
rate_limit_burst = 2
"#
    );
    let config = http_config(&setup, &sources, &brokers(), &topic, "");
    let agent = Agent::start(&setup, &config);
    wait_for_port(port);
    let client = Client::new();
    let token = Some("s3cret");
    let one = br#"{"message":"one","service":"web","@timestamp":"2026-11-22T10:00:00Z"}"#;

    assert_eq!(post(&client, port, None, one.to_vec(), false).status(), 401);
    assert_eq!(
        post(&client, port, Some("wrong"), one.to_vec(), false).status(),
        401
    );

    let response = post(
        &client,
        port,
        token,
        b"{\"message\":\"x\",\"service\":\"a\"}\n{\"mess".to_vec(),
        false,
    );
    assert_eq!(response.status(), 400);
    assert!(response.text().expect("body").contains("line 2"));
    let response = post(
        &client,
        port,
        token,
        br#"{"message":"no service"}"#.to_vec(),
        false,
    );
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .expect("body")
            .contains("required field `service`")
    );
    let junk: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 256) as u8).collect();
    let response = post(&client, port, token, junk.clone(), false);
    assert_eq!(response.status(), 400, "binary junk");
    assert_eq!(
        post(&client, port, token, junk, true).status(),
        400,
        "junk that is not gzip"
    );
    let big = format!(r#"{{"message":"{}","service":"a"}}"#, "x".repeat(5000));
    assert_eq!(
        post(&client, port, token, big.into_bytes(), false).status(),
        413
    );
    let bomb = gzip(format!(r#"{{"message":"{}","service":"a"}}"#, "y".repeat(50_000)).as_bytes());
    assert_eq!(
        post(&client, port, token, bomb, true).status(),
        413,
        "limit after gunzip"
    );

    let started = Instant::now();
    let response = post(&client, port, token, one.to_vec(), false);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().expect("body"), r#"{"accepted":1}"#);
    let array = br#"[{"message":"two","service":"db"},{"message":"three","service":"db"}]"#;
    assert_eq!(
        post(&client, port, token, array.to_vec(), false).status(),
        200
    );
    let ndjson =
        b"{\"message\":\"four\",\"service\":\"q\"}\n{\"message\":\"five\",\"service\":\"q\"}\n";
    assert_eq!(post(&client, port, token, gzip(ndjson), true).status(), 200);
    // Delivered means in Kafka already: the reader finds all five at once.
    let mut reader = TopicReader::new(&brokers(), &topic);
    let records = reader
        .read_until(5, Duration::from_millis(500), Duration::from_secs(10))
        .to_vec();
    let mut messages: Vec<_> = records.iter().map(|r| r.message().to_owned()).collect();
    messages.sort();
    assert_eq!(messages, ["five", "four", "one", "three", "two"]);
    let first = records.iter().find(|r| r.message() == "one").expect("one");
    assert_eq!(first.value["@timestamp"], "2026-11-22T10:00:00.000000000Z");
    assert_eq!(first.value["service"], "web");
    assert!(started.elapsed() < Duration::from_secs(30));

    wait_for_port(limited);
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            let body = format!(r#"{{"message":"limited {i}"}}"#).into_bytes();
            let response = post(&client, limited, None, body, false);
            if response.status() == 429 {
                let retry = response.headers().get("retry-after").expect("Retry-After");
                assert!(
                    retry
                        .to_str()
                        .expect("text")
                        .parse::<u64>()
                        .expect("seconds")
                        >= 1
                );
            }
            response.status().as_u16()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429], "a burst of 2, then the limit");

    assert_eq!(status_count(&agent, "api", 401), 2.0);
    assert_eq!(status_count(&agent, "api", 400), 4.0);
    assert_eq!(status_count(&agent, "api", 413), 2.0);
    assert_eq!(status_count(&agent, "api", 200), 3.0);
    assert_eq!(status_count(&agent, "limited", 429), 1.0);
}

/// `ack = "delivered"` with no broker: the request waits until its events are in the spool
/// (fsynced), then gets 200; they are counted as spooled.
#[test]
fn delivered_ack_with_the_broker_down_waits_for_the_spool() {
    let setup = Setup::new();
    let port = free_port();
    let sources = format!("[sources.api]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\n");
    let nowhere = format!("127.0.0.1:{}", free_port());
    let config = http_config(
        &setup,
        &sources,
        &nowhere,
        "logs",
        "message_timeout_ms = 1000",
    );
    let agent = Agent::start(&setup, &config);
    wait_for_port(port);
    let body = (0..50)
        .map(|i| format!("{{\"message\":\"spooled {i}\"}}\n"))
        .collect::<String>();
    let started = Instant::now();
    let response = post(&Client::new(), port, None, body.into_bytes(), false);
    assert_eq!(response.status(), 200, "{:?}", response.text());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the spool took the events: {:?}",
        started.elapsed()
    );
    assert_eq!(
        agent.metric_value("logship_spool_records_written_total"),
        50.0
    );
}

/// With nothing taking events (no broker, no spool, a tiny librdkafka queue), requests are
/// answered 429 with Retry-After once the queue and the memory budget stay full.
#[test]
fn backpressure_is_answered_with_429() {
    let setup = Setup::new();
    let port = free_port();
    let sources = format!(
        "[sources.api]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\nack = \"accepted\"\nqueue_wait_ms = 200\n"
    );
    let nowhere = format!("127.0.0.1:{}", free_port());
    let config = http_config(
        &setup,
        &format!("[spool]\nenabled = false\n{sources}"),
        &nowhere,
        "logs",
        "queue_max_events = 10",
    );
    let _agent = Agent::start(&setup, &config);
    wait_for_port(port);
    let client = Client::new();
    let body = (0..5)
        .map(|i| format!("{{\"message\":\"held {i}\"}}\n"))
        .collect::<String>();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = post(&client, port, None, body.clone().into_bytes(), false);
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 200, "accepted while there is room");
    assert!(
        statuses.contains(&429),
        "429 once nothing takes events: {statuses:?}"
    );
}
