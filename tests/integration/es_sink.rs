//! `logship-sink-es` against the real servers: noida-db (Elasticsearch 8 API) and osmem-server
//! (OpenSearch 3 API), with the real broker. Exactly once in effect: every record is one
//! document, whatever replays, restarts and kill -9 happen (design invariant 8).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::harness::{Agent, Setup, TopicReader, brokers, create_topic};
use super::sink_harness::{
    SecureProxy, committed, end_offsets, es, es_count, es_sink_config, es_url, opensearch_url,
    produce, reset_group, wait_for_commits_at_end, wait_for_count,
};

const PARTITIONS: i32 = 3;

/// `count` JSON records numbered from `from`, all of one day.
fn records(from: usize, count: usize) -> impl Iterator<Item = Vec<u8>> {
    (from..from + count).map(|i| {
        json!({"@timestamp": "2026-11-22T10:00:00Z", "message": format!("line {i}"), "n": i})
            .to_string()
            .into_bytes()
    })
}

/// Waits (up to 60 s) until `index` holds at least `count` documents: the sink is mid-way.
fn wait_for_at_least(url: &str, index: &str, count: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while es_count(url, index) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {count} written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique lower-case name for an index and a group.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

/// Ships 100,000 records, then sets the group back by `replay` records per partition (noida-db
/// overwrites documents about twenty times slower than it creates them: its replay is shorter).
fn ship_100k_and_replay(url: &str, replay: i64) {
    let brokers = brokers();
    let topic = create_topic(&brokers, "es-sink", PARTITIONS);
    let index = unique("logs");
    let group = unique("es-group");
    produce(&brokers, &topic, records(0, 100_000));
    let setup = Setup::new();
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (url, &format!("{index}-%Y.%m.%d")),
        "",
        "",
    );
    let sink = Agent::start_sink_es(&setup, &config);
    let dated = format!("{index}-2026.11.22");
    wait_for_count(url, &dated, 100_000, Duration::from_secs(240));
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    assert_eq!(sink.health().0, 200, "{}", sink.health().1);
    let (status, _) = sink.terminate(Duration::from_secs(20));
    assert!(status.success(), "SIGTERM exits 0");

    let end = end_offsets(&brokers, &topic, PARTITIONS);
    let back: Vec<i64> = end.iter().map(|e| (e - replay).max(0)).collect();
    let replayed: i64 = end.iter().zip(&back).map(|(e, b)| e - b).sum();
    reset_group(&brokers, &group, &topic, &back);
    let sink = Agent::start_sink_es(&setup, &config);
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    let written = sink.metric_value(&format!(
        "logship_sink_records_written_total{{topic=\"{topic}\"}}"
    ));
    assert_eq!(
        written, replayed as f64,
        "the replay wrote every record again"
    );
    assert_eq!(es_count(url, &dated), 100_000, "and added no document");
}

#[test]
fn ships_100k_records_to_elasticsearch_and_a_replay_adds_no_duplicate() {
    ship_100k_and_replay(&es_url(), 3000);
}

#[test]
fn ships_100k_records_to_opensearch_and_a_replay_adds_no_duplicate() {
    ship_100k_and_replay(&opensearch_url(), i64::MAX / 2);
}

/// Creates `index` with `n` mapped as a number.
fn create_index(url: &str, index: &str) {
    let (status, body) = es(
        Method::PUT,
        &format!("{url}/{index}"),
        Some(json!({"mappings": {"properties": {"n": {"type": "long"}}}})),
    );
    assert_eq!(status, 200, "{body}");
}

fn set_block(url: &str, index: &str, block: &str, on: bool) {
    let (status, body) = es(
        Method::PUT,
        &format!("{url}/{index}/_settings"),
        Some(json!({ format!("index.blocks.{block}"): on })),
    );
    assert_eq!(status, 200, "{body}");
}

/// A sink started on `count` records whose index has `index.blocks.<block>` set.
struct BlockedIndex {
    sink: Agent,
    _setup: Setup,
    url: String,
    brokers: String,
    topic: String,
    index: String,
    group: String,
    block: &'static str,
    count: u64,
}

impl BlockedIndex {
    fn start(block: &'static str, count: usize) -> Self {
        let (url, brokers) = (es_url(), brokers());
        let topic = create_topic(&brokers, "es-blocked", PARTITIONS);
        let (index, group) = (unique("blocked"), unique("es-group"));
        create_index(&url, &index);
        set_block(&url, &index, block, true);
        produce(&brokers, &topic, records(0, count));
        let setup = Setup::new();
        let config = es_sink_config(&setup, (&brokers, &topic, &group), (&url, &index), "", "");
        let sink = Agent::start_sink_es(&setup, &config);
        Self {
            sink,
            _setup: setup,
            url,
            brokers,
            topic,
            index,
            group,
            block,
            count: count as u64,
        }
    }

    /// Nothing is written and nothing committed while the block holds.
    fn assert_held(&self) {
        assert_eq!(es_count(&self.url, &self.index), 0);
        let committed = committed(&self.brokers, &self.group, &self.topic, PARTITIONS);
        assert_eq!(committed, vec![-1; 3]);
    }

    /// Lifts the block: every record arrives and every offset is committed.
    fn lift(&self) {
        set_block(&self.url, &self.index, self.block, false);
        wait_for_count(&self.url, &self.index, self.count, Duration::from_secs(30));
        wait_for_commits_at_end(&self.brokers, &self.group, &self.topic, PARTITIONS);
    }
}

#[test]
fn a_per_item_429_is_retried_until_the_block_is_lifted() {
    let blocked = BlockedIndex::start("read_only_allow_delete", 1000);
    let retried = "logship_sink_retries_total{reason=\"item\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while blocked.sink.metric(retried).unwrap_or(0.0) < 1000.0 {
        assert!(std::time::Instant::now() < deadline, "no item retried");
        std::thread::sleep(Duration::from_millis(100));
    }
    blocked.assert_held();
    assert_eq!(
        blocked.sink.health().0,
        200,
        "a 429 is back-pressure, not a block"
    );
    blocked.lift();
}

#[test]
fn a_403_blocks_turns_health_red_and_drops_nothing() {
    let blocked = BlockedIndex::start("write", 500);
    let sink = &blocked.sink;
    sink.wait_for_metric("logship_sink_blocked", 1.0, Duration::from_secs(30));
    let (status, health) = sink.health();
    assert_eq!(status, 503, "{health}");
    assert!(
        health["blocked"]
            .as_str()
            .unwrap_or_default()
            .contains("403"),
        "{health}"
    );
    blocked.assert_held();
    blocked.lift();
    sink.wait_until_healthy(Duration::from_secs(10));
    assert_eq!(sink.metric_value("logship_sink_blocked"), 0.0);
}

#[test]
fn mapping_errors_go_to_the_dead_letter_topic_with_why() {
    let (url, brokers) = (es_url(), brokers());
    let topic = create_topic(&brokers, "es-mapping", PARTITIONS);
    let dead = create_topic(&brokers, "es-dead", 1);
    let (index, group) = (unique("mapped"), unique("es-group"));
    create_index(&url, &index);
    let values = (0..100).map(|i| {
        let n = if i % 10 == 0 {
            json!("not a number")
        } else {
            json!(i)
        };
        json!({"message": format!("line {i}"), "n": n})
            .to_string()
            .into_bytes()
    });
    produce(&brokers, &topic, values);
    let setup = Setup::new();
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&url, &index),
        &format!("dead_letter_topic = \"{dead}\""),
        "",
    );
    let _sink = Agent::start_sink_es(&setup, &config);
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    assert_eq!(es_count(&url, &index), 90);
    let mut reader = TopicReader::new(&brokers, &dead);
    let letters = reader.read_until(10, Duration::from_secs(1), Duration::from_secs(30));
    assert_eq!(letters.len(), 10);
    for letter in letters {
        assert_eq!(letter.value["n"], "not a number");
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header: {:?}", letter.headers))
        };
        assert_eq!(header("logship.error.status"), "400");
        assert!(header("logship.error.reason").contains("parsing_exception"));
        assert_eq!(header("logship.source.topic"), topic);
        assert!(header("logship.source.offset").parse::<i64>().is_ok());
    }
}

#[test]
fn kill_9_mid_batch_then_restart_leaves_each_record_once() {
    let (url, brokers) = (es_url(), brokers());
    let topic = create_topic(&brokers, "es-kill", PARTITIONS);
    let (index, group) = (unique("killed"), unique("es-group"));
    produce(&brokers, &topic, records(0, 50_000));
    let setup = Setup::new();
    // Static membership: noida-db keeps a killed member in the group until it rejoins (it does
    // not expire sessions), and a member with the same instance id rejoins at once.
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&url, &index),
        "instance_id = \"sink-0\"",
        "max_events = 250\nmax_in_flight = 4",
    );
    let sink = Agent::start_sink_es(&setup, &config);
    wait_for_at_least(&url, &index, 5000);
    sink.kill9();
    let at_kill = es_count(&url, &index);
    assert!(at_kill < 50_000, "killed before the end ({at_kill})");

    let _sink = Agent::start_sink_es(&setup, &config);
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    assert_eq!(es_count(&url, &index), 50_000);
}

#[test]
fn two_sinks_share_the_partitions_and_a_rebalance_loses_nothing() {
    let (url, brokers) = (es_url(), brokers());
    let topic = create_topic(&brokers, "es-rebalance", PARTITIONS);
    let (index, group) = (unique("shared"), unique("es-group"));
    produce(&brokers, &topic, records(0, 30_000));
    let first_setup = Setup::new();
    let config = |setup: &Setup| {
        es_sink_config(
            setup,
            (&brokers, &topic, &group),
            (&url, &index),
            "",
            "max_events = 200",
        )
    };
    let first = Agent::start_sink_es(&first_setup, &config(&first_setup));
    wait_for_at_least(&url, &index, 3000);
    let second_setup = Setup::new();
    let second = Agent::start_sink_es(&second_setup, &config(&second_setup));
    produce(&brokers, &topic, records(30_000, 10_000));
    let (status, _) = first.terminate(Duration::from_secs(30));
    assert!(status.success());
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    assert_eq!(es_count(&url, &index), 40_000);
    assert!(
        second.log_text().contains("rebalance"),
        "{}",
        second.log_text()
    );
}

#[test]
fn data_stream_mode_creates_and_a_replay_of_409s_counts_as_written() {
    let (url, brokers) = (es_url(), brokers());
    let topic = create_topic(&brokers, "es-stream", PARTITIONS);
    let (stream, group) = (unique("stream"), unique("es-group"));
    let (status, body) = es(
        Method::PUT,
        &format!("{url}/_index_template/{stream}"),
        Some(json!({"index_patterns": [format!("{stream}*")], "data_stream": {}})),
    );
    assert_eq!(status, 200, "{body}");
    produce(&brokers, &topic, records(0, 1000));
    let setup = Setup::new();
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&url, &stream),
        "",
        "mode = \"data_stream\"",
    );
    let sink = Agent::start_sink_es(&setup, &config);
    wait_for_count(&url, &stream, 1000, Duration::from_secs(60));
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    let (status, _) = sink.terminate(Duration::from_secs(20));
    assert!(status.success());

    reset_group(&brokers, &group, &topic, &[0; PARTITIONS as usize]);
    let sink = Agent::start_sink_es(&setup, &config);
    wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
    let written = format!("logship_sink_records_written_total{{topic=\"{topic}\"}}");
    assert_eq!(
        sink.metric_value(&written),
        1000.0,
        "every 409 counts as written"
    );
    assert_eq!(es_count(&url, &stream), 1000, "and nothing was added");
}

#[test]
fn tls_with_a_ca_file_and_basic_auth_or_an_api_key_through_a_real_proxy() {
    let (url, brokers) = (es_url(), brokers());
    let proxy = SecureProxy::start(&url, ("logship", "s3cret"), "a2V5OnZhbHVl");
    let tls = format!(
        "[elasticsearch.tls]\nca_file = \"{}\"\n",
        proxy.ca.display()
    );
    for (label, auth) in [
        ("basic", "username = \"logship\"\npassword = \"s3cret\""),
        ("api-key", "api_key = \"a2V5OnZhbHVl\""),
    ] {
        let topic = create_topic(&brokers, &format!("es-{label}"), PARTITIONS);
        let (index, group) = (unique(label), unique("es-group"));
        produce(&brokers, &topic, records(0, 300));
        let setup = Setup::new();
        let extra = format!("{tls}[elasticsearch.auth]\n{auth}\n");
        let config = es_sink_config(
            &setup,
            (&brokers, &topic, &group),
            (&proxy.url, &index),
            "",
            &extra,
        );
        let sink = Agent::start_sink_es(&setup, &config);
        wait_for_count(&url, &index, 300, Duration::from_secs(30));
        wait_for_commits_at_end(&brokers, &group, &topic, PARTITIONS);
        assert_eq!(sink.health().0, 200, "{label}: {}", sink.health().1);
    }

    // A wrong password is a 401: the sink holds everything and says so.
    let topic = create_topic(&brokers, "es-401", PARTITIONS);
    let (index, group) = (unique("denied"), unique("es-group"));
    produce(&brokers, &topic, records(0, 100));
    let setup = Setup::new();
    let extra =
        format!("{tls}[elasticsearch.auth]\nusername = \"logship\"\npassword = \"wrong\"\n");
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&proxy.url, &index),
        "",
        &extra,
    );
    let sink = Agent::start_sink_es(&setup, &config);
    sink.wait_for_metric("logship_sink_blocked", 1.0, Duration::from_secs(30));
    let (status, health) = sink.health();
    assert_eq!(status, 503);
    assert!(
        health["blocked"]
            .as_str()
            .unwrap_or_default()
            .starts_with("401"),
        "{health}"
    );
    assert_eq!(committed(&brokers, &group, &topic, PARTITIONS), vec![-1; 3]);
    assert_eq!(es_count(&url, &index), 0);

    // Without the CA file the proxy's certificate is not trusted: nothing is written either.
    let topic = create_topic(&brokers, "es-untrusted", PARTITIONS);
    let (index, group) = (unique("untrusted"), unique("es-group"));
    produce(&brokers, &topic, records(0, 100));
    let setup = Setup::new();
    let extra = "[elasticsearch.auth]\napi_key = \"a2V5OnZhbHVl\"\n";
    let config = es_sink_config(
        &setup,
        (&brokers, &topic, &group),
        (&proxy.url, &index),
        "",
        extra,
    );
    let sink = Agent::start_sink_es(&setup, &config);
    let transport = "logship_sink_retries_total{reason=\"transport\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.metric(transport).unwrap_or(0.0) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no TLS failure seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(es_count(&url, &index), 0);
}

#[test]
fn a_topic_pattern_reads_every_matching_topic() {
    let (url, brokers) = (es_url(), brokers());
    let prefix = unique("es-pattern");
    let topics: Vec<String> = (0..2).map(|_| create_topic(&brokers, &prefix, 1)).collect();
    for topic in &topics {
        produce(&brokers, topic, records(0, 200));
    }
    let (index, group) = (unique("pattern"), unique("es-group"));
    let setup = Setup::new();
    let pattern = format!("topic_pattern = \"{prefix}-.*\"");
    let config = es_sink_config(&setup, (&brokers, "", &group), (&url, &index), &pattern, "");
    let _sink = Agent::start_sink_es(&setup, &config);
    wait_for_count(&url, &index, 400, Duration::from_secs(60));
    for topic in &topics {
        wait_for_commits_at_end(&brokers, &group, topic, 1);
    }
}
