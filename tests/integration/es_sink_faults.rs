//! `logship-sink-es` against faults no real Elasticsearch-API server produces on demand: a 503,
//! a garbled 200 and a request-level 413. A wiremock server (a mock, on purpose) answers the
//! bulk requests; Kafka is the real broker.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::harness::{Agent, Setup, brokers, create_topic};
use super::sink_harness::{es_sink_config, produce, wait_for_commits_at_end};

/// Most documents one request may hold before the mock answers 413.
const MAX_DOCUMENTS: usize = 100;

/// Answers the first bulk request with 503 and the second with a garbled body; after that,
/// 413 to any request of more than `MAX_DOCUMENTS` documents and 201 per item to the rest,
/// remembering the ids it took.
#[derive(Default)]
struct FaultyCluster {
    calls: AtomicUsize,
    written: Mutex<BTreeSet<String>>,
    sizes: Mutex<Vec<usize>>,
}

/// The mock's handle on the shared `FaultyCluster`.
struct Responder(Arc<FaultyCluster>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let cluster = &self.0;
        let ids: Vec<String> = String::from_utf8_lossy(&request.body)
            .lines()
            .step_by(2)
            .map(|line| {
                let action: Value = serde_json::from_str(line).expect("action line is JSON");
                action["index"]["_id"].as_str().expect("_id").to_owned()
            })
            .collect();
        cluster.sizes.lock().expect("sizes").push(ids.len());
        match cluster.calls.fetch_add(1, Ordering::SeqCst) {
            0 => ResponseTemplate::new(503),
            1 => ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"),
            _ if ids.len() > MAX_DOCUMENTS => ResponseTemplate::new(413),
            _ => {
                let items: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"index": {"_id": id, "status": 201}}))
                    .collect();
                cluster.written.lock().expect("written").extend(ids);
                ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": items}))
            }
        }
    }
}

#[test]
fn a_503_and_a_garbled_answer_are_retried_and_a_413_splits_the_request() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(MockServer::start());
    let cluster = Arc::new(FaultyCluster::default());
    runtime.block_on(
        Mock::given(method("POST"))
            .and(path("/_bulk"))
            .respond_with(Responder(Arc::clone(&cluster)))
            .mount(&server),
    );
    let brokers = brokers();
    let topic = create_topic(&brokers, "es-faults", 1);
    let group = format!("es-faults-{}", rand::random::<u32>());
    let records = (0..1000).map(|i| {
        json!({"message": format!("line {i}")})
            .to_string()
            .into_bytes()
    });
    produce(&brokers, &topic, records);
    let setup = Setup::new();
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&server.uri(), "logs"),
        "",
        "max_events = 400\ngzip = false\nmax_in_flight = 1",
    );
    let sink = Agent::start_sink_es(&setup, &config);
    wait_for_commits_at_end(&brokers, &group, &topic, 1);

    let written = cluster.written.lock().expect("written").clone();
    let expected: BTreeSet<String> = (0..1000).map(|o| format!("{topic}+0+{o}")).collect();
    assert_eq!(written, expected, "every record written");
    let sizes = cluster.sizes.lock().expect("sizes").clone();
    assert!(
        sizes[2] > MAX_DOCUMENTS,
        "the third request was too large: {sizes:?}"
    );
    assert!(sizes.iter().skip(3).any(|&n| n <= MAX_DOCUMENTS && n > 0));
    assert!(sink.metric_value("logship_sink_batch_splits_total") >= 2.0);
    assert!(sink.metric_value("logship_sink_retries_total{reason=\"status\"}") >= 1.0);
    assert!(sink.metric_value("logship_sink_retries_total{reason=\"garbled\"}") >= 1.0);
    assert_eq!(
        sink.metric_value("logship_sink_requests_total{status=\"413\"}"),
        sizes.iter().skip(2).filter(|&&n| n > MAX_DOCUMENTS).count() as f64
    );
    assert_eq!(sink.health().0, 200, "{}", sink.health().1);
    let (status, _) = sink.terminate(Duration::from_secs(20));
    assert!(status.success());
}
