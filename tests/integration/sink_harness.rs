//! What the sink tests need besides `harness`: the Elasticsearch-API servers from
//! `scripts/services.sh` (noida-db and osmem-server), records produced straight to a topic, the
//! group's committed offsets, and a sink's config. A missing server fails the test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use super::harness::Setup;

/// The URL in `variable`, once its server answers; panics with instructions otherwise.
fn server(variable: &str) -> String {
    let url = std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: run the tests with scripts/test.sh, which starts the servers"
        )
    });
    reqwest::blocking::get(&url)
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("the server at {url} ({variable}) does not answer: {e}"));
    url
}

/// noida-db's Elasticsearch API.
pub fn es_url() -> String {
    server("LOGSHIP_TEST_ES_URL")
}

/// osmem-server's OpenSearch API.
pub fn opensearch_url() -> String {
    server("LOGSHIP_TEST_OPENSEARCH_URL")
}

/// A request to an ES-API server; the answer's status and JSON body.
pub fn es(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.request(method, url).timeout(Duration::from_secs(30));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Documents in `index` (a name or pattern) after a refresh; 0 when it does not exist.
pub fn es_count(url: &str, index: &str) -> u64 {
    es(
        reqwest::Method::POST,
        &format!("{url}/{index}/_refresh"),
        None,
    );
    let (status, body) = es(reqwest::Method::GET, &format!("{url}/{index}/_count"), None);
    if status == 404 {
        return 0;
    }
    body["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{index}/_count answered {status}: {body}"))
}

/// Waits until `index` holds `count` documents; panics with the last count after `timeout`.
pub fn wait_for_count(url: &str, index: &str, count: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = es_count(url, index);
        if now == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{index} holds {now} documents, not {count}, after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Produces `values` to `topic`, keyed by their position so they spread over the partitions,
/// and waits until Kafka acknowledged them all.
pub fn produce(brokers: &str, topic: &str, values: impl IntoIterator<Item = Vec<u8>>) {
    send(
        brokers,
        topic,
        values.into_iter().map(|value| (None, value)),
    );
}

/// Produces `values` to `topic`, each to the partition given with it.
pub fn produce_to(brokers: &str, topic: &str, values: impl IntoIterator<Item = (i32, Vec<u8>)>) {
    send(
        brokers,
        topic,
        values.into_iter().map(|(p, value)| (Some(p), value)),
    );
}

/// Sends each value to its partition, or (`None`) keyed by its position, and waits for Kafka's
/// acknowledgements.
fn send(brokers: &str, topic: &str, values: impl Iterator<Item = (Option<i32>, Vec<u8>)>) {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (i, (partition, value)) in values.enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

fn group_consumer(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// The group's committed offset per partition (-1 where none is).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = group_consumer(brokers, group)
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// The end offset of every partition.
pub fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer = group_consumer(brokers, "logship-test-watermarks");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Waits until the group committed every partition to its end.
pub fn wait_for_commits_at_end(brokers: &str, group: &str, topic: &str, partitions: i32) {
    let end = end_offsets(brokers, topic, partitions);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = committed(brokers, group, topic, partitions);
        if now == end {
            return;
        }
        assert!(Instant::now() < deadline, "committed {now:?}, end {end:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Sets the (idle) group's offsets back to `offsets`, one per partition.
pub fn reset_group(brokers: &str, group: &str, topic: &str, offsets: &[i64]) {
    let mut list = TopicPartitionList::new();
    for (p, offset) in offsets.iter().enumerate() {
        list.add_partition_offset(topic, p as i32, Offset::Offset(*offset))
            .expect("offset");
    }
    let consumer = group_consumer(brokers, group);
    consumer.assign(&list).expect("assign");
    consumer
        .commit(&list, CommitMode::Sync)
        .expect("commit offsets");
    assert_eq!(
        committed(brokers, group, topic, offsets.len() as i32),
        offsets
    );
}

/// A member killed with -9 leaves the group within seconds, not librdkafka's 45 s (session) or
/// 300 s: noida-db holds a rebalance for a dead member until the rebalance timeout, which is the
/// members' max.poll.interval.ms.
const GROUP_OPTIONS: &str = r#"librdkafka_options = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "max.poll.interval.ms" = "10000" }"#;

/// Writes a `logship-sink-es` config reading `topic` as `group`, writing to `url` and `index`;
/// `kafka_extra` and `es_extra` are added to those tables.
pub fn es_sink_config(
    setup: &Setup,
    consumer: (&str, &str, &str),
    (url, index): (&str, &str),
    kafka_extra: &str,
    es_extra: &str,
) -> PathBuf {
    let section = format!(
        r#"[elasticsearch]
urls = ["{url}"]
index = "{index}"
linger_ms = 100
retry_backoff_ms = 50
retry_backoff_max_ms = 500
{es_extra}
"#
    );
    sink_config(setup, consumer, kafka_extra, &section)
}

/// Writes a sink's config: `[api]` on the setup's port, `[kafka]` reading `topic` as `group`
/// (unless `kafka_extra` sets a `topic_pattern`; with fast commits unless it sets
/// `commit_interval_ms`, and short group timeouts), then `section`.
fn sink_config(
    setup: &Setup,
    (brokers, topic, group): (&str, &str, &str),
    kafka_extra: &str,
    section: &str,
) -> PathBuf {
    let commit = if kafka_extra.contains("commit_interval_ms") {
        ""
    } else {
        "commit_interval_ms = 200\n"
    };
    let topics = if kafka_extra.contains("topic_pattern") {
        String::new()
    } else {
        format!("topics = [\"{topic}\"]\n")
    };
    let text = format!(
        r#"shutdown_timeout_secs = 10
[api]
address = "127.0.0.1:{port}"
[kafka]
brokers = ["{brokers}"]
group_id = "{group}"
{topics}{commit}{kafka_extra}
{GROUP_OPTIONS}
{section}"#,
        port = setup.api_port,
    );
    setup.write_config(&text)
}

/// moto's S3 API.
pub fn s3_endpoint() -> String {
    server("LOGSHIP_TEST_S3_ENDPOINT")
}

/// A fresh bucket on the S3 server at `endpoint`.
pub fn create_bucket(endpoint: &str) -> String {
    let bucket = format!("logship-{}-{}", std::process::id(), rand::random::<u32>());
    let (status, body) = es(reqwest::Method::PUT, &format!("{endpoint}/{bucket}"), None);
    assert_eq!(status, 200, "create bucket {bucket}: {body}");
    bucket
}

/// Every object under `root` (an S3 bucket on `endpoint`, or a directory): key → bytes.
pub fn objects(target: &logship::config::Target) -> std::collections::BTreeMap<String, Vec<u8>> {
    use futures_util::TryStreamExt;
    let store = logship::sink::s3::store::open(target).expect("object store");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
        let mut out = std::collections::BTreeMap::new();
        for meta in listed {
            let bytes = store
                .get(&meta.location)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            out.insert(meta.location.to_string(), bytes.to_vec());
        }
        out
    })
}

/// The moto bucket as a sink target (moto takes any credentials).
pub fn s3_target(endpoint: &str, bucket: &str) -> logship::config::Target {
    logship::config::Target::S3 {
        bucket: bucket.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".to_owned()),
        path_style: true,
        access_key_id: Some("test".to_owned()),
        secret_access_key: Some("test".to_owned()),
        session_token: None,
    }
}

/// The NDJSON lines of every object, with the key each came from.
pub fn object_lines(objects: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<(String, Value)> {
    use std::io::Read;
    let mut lines = Vec::new();
    for (key, bytes) in objects {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key} is not gzip: {e}"));
        for line in text.lines() {
            let value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}"));
            lines.push((key.clone(), value));
        }
    }
    lines
}

/// Writes a `logship-sink-s3` config reading `topic` as `group` into `url` (`s3://…` with
/// moto's endpoint, or `file://…`); `kafka_extra` and `s3_extra` are added to those tables.
pub fn s3_sink_config(
    setup: &Setup,
    consumer: (&str, &str, &str),
    url: &str,
    kafka_extra: &str,
    s3_extra: &str,
) -> PathBuf {
    // moto's endpoint and credentials for an s3:// URL (a missing moto fails the test).
    let s3 = if url.starts_with("s3://") {
        format!(
            "endpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            s3_endpoint()
        )
    } else {
        String::new()
    };
    let section = format!(
        r#"[s3]
url = "{url}"
{s3}retry_backoff_ms = 50
retry_backoff_max_ms = 500
{s3_extra}
"#
    );
    sink_config(setup, consumer, kafka_extra, &section)
}

/// nginx (a real reverse proxy, from scripts/deps.sh) in front of an Elasticsearch-API server,
/// the way clusters are often exposed: TLS with a certificate from a CA of the test's own, and
/// requests refused with 401 unless they carry `Basic <user:password>` or `ApiKey <key>`. One
/// process (`master_process off`): killing it leaves no worker behind holding the test's files.
pub struct SecureProxy {
    child: std::process::Child,
    /// `https://localhost:PORT`.
    pub url: String,
    /// The CA certificate (PEM) the proxy's certificate chains to.
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecureProxy {
    pub fn start(upstream: &str, (user, password): (&str, &str), api_key: &str) -> Self {
        use base64::Engine;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (scripts/deps.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=logship test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            path("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let port = super::harness::free_port();
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off;
master_process off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 100m;
    map $http_authorization $authorized {{
        "Basic {basic}" 1;
        "ApiKey {api_key}" 1;
        default 0;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location / {{
            if ($authorized = 0) {{ return 401; }}
            proxy_pass {upstream};
        }}
    }}
}}
"#
        );
        std::fs::write(path("nginx.conf"), conf).expect("nginx.conf");
        let child = std::process::Command::new("nginx")
            .args(["-c", &path("nginx.conf").display().to_string()])
            .args([
                "-p",
                &d.to_string(),
                "-e",
                &path("error.log").display().to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (scripts/deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(path("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("https://localhost:{port}"),
            ca: path("ca.pem"),
            _dir: dir,
        }
    }
}

impl Drop for SecureProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
