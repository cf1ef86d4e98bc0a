//! Test harness: the real broker from `scripts/services.sh`, topics, a consumer that reads a topic
//! back, the agent binary as a child process, and small file helpers.
//!
//! Every test that needs the broker calls `brokers()`, which panics with instructions when
//! `LOGSHIP_TEST_BROKERS` is unset or the broker does not answer: a missing service is a failure,
//! never a skip.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use serde_json::Value;

/// The test broker's bootstrap address; panics when the test services are not running.
pub fn brokers() -> String {
    let brokers = std::env::var("LOGSHIP_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "LOGSHIP_TEST_BROKERS is not set: run the tests with scripts/test.sh, which starts \
             the broker (or `eval \"$(scripts/services.sh start)\"` first)"
        )
    });
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin client");
    admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the test broker at {brokers} does not answer: {e}"));
    brokers
}

/// A fresh topic with a unique name.
pub fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>());
    create_topic_named(brokers, &name, partitions);
    name
}

/// Creates the topic `name` (which must not exist yet).
pub fn create_topic_named(brokers: &str, name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin(brokers, async |admin| {
        admin.create_topics([&topic], &AdminOptions::new()).await
    });
    for result in results.expect("create_topics") {
        result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e:?}"));
    }
}

/// Deletes the topic `name`.
pub fn delete_topic(brokers: &str, name: &str) {
    let results = admin(brokers, async |admin| {
        admin.delete_topics(&[name], &AdminOptions::new()).await
    });
    for result in results.expect("delete_topics") {
        result.unwrap_or_else(|(t, e)| panic!("cannot delete topic {t}: {e:?}"));
    }
}

/// Runs one admin request against `brokers` to its end.
fn admin<T>(
    brokers: &str,
    request: impl AsyncFnOnce(&AdminClient<DefaultClientContext>) -> T,
) -> T {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(request(&admin))
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub value: Value,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn message(&self) -> &str {
        self.value["message"].as_str().expect("message is a string")
    }
    pub fn path(&self) -> &str {
        self.value["log"]["file"]["path"]
            .as_str()
            .expect("log.file.path")
    }
}

/// Reads a topic from the beginning of every partition.
pub struct TopicReader {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    pub fn new(brokers: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("test-reader-{}", rand::random::<u32>()))
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .unwrap_or_else(|| panic!("topic {topic} does not exist"))
            .partitions()
            .len();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .expect("assign");
        }
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads until at least `count` records arrived and none came for `settle`, or `timeout`.
    pub fn read_until(&mut self, count: usize, settle: Duration, timeout: Duration) -> &[Record] {
        let deadline = Instant::now() + timeout;
        let mut last = Instant::now();
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let value = serde_json::from_slice(message.payload().unwrap_or_default())
                        .expect("record value is JSON");
                    let headers = message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    let value = h.value.map(String::from_utf8_lossy);
                                    (h.key.to_owned(), value.unwrap_or_default().into_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    self.records.push(Record {
                        partition: message.partition(),
                        offset: message.offset(),
                        value,
                        key: message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned()),
                        headers,
                    });
                    last = Instant::now();
                }
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => {
                    if self.records.len() >= count && last.elapsed() >= settle {
                        break;
                    }
                }
            }
        }
        &self.records
    }
}

/// Checks what arrived against what was written: no line lost, nothing unknown, and per file
/// and partition `log.offset` only grows, except for at most `restarts` jumps back (an agent
/// killed and restarted resends from its checkpoint). Returns the number of duplicates.
pub fn check_delivery(
    records: &[Record],
    expected: &HashMap<String, Vec<String>>,
    restarts: usize,
) -> usize {
    let mut by_partition: Vec<&Record> = records.iter().collect();
    by_partition.sort_by_key(|r| (r.partition, r.offset));
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for record in &by_partition {
        *seen.entry((record.path(), record.message())).or_default() += 1;
    }
    let mut missing = 0;
    let mut duplicates = 0;
    for (path, lines) in expected {
        for line in lines {
            match seen.get(&(path.as_str(), line.as_str())) {
                None => missing += 1,
                Some(n) => duplicates += n - 1,
            }
        }
    }
    assert_eq!(missing, 0, "{missing} lines never arrived");
    let total: usize = expected.values().map(Vec::len).sum();
    assert_eq!(
        records.len(),
        total + duplicates,
        "records that were never written arrived"
    );

    let mut last: HashMap<(&str, i32), u64> = HashMap::new();
    let mut jumps: HashMap<(&str, i32), usize> = HashMap::new();
    for record in &by_partition {
        let offset = record.value["log"]["offset"].as_u64().expect("log.offset");
        let key = (record.path(), record.partition);
        if let Some(previous) = last.insert(key, offset)
            && offset <= previous
        {
            let n = jumps.entry(key).or_default();
            *n += 1;
            assert!(
                *n <= restarts,
                "{} went back from {previous} to {offset}: out of order ({restarts} restarts)",
                key.0
            );
        }
    }
    duplicates
}

/// A TCP proxy to the real broker that can be switched on later: the agent's bootstrap address,
/// for a broker that is down when the agent starts. It gates bootstrap only: the broker
/// advertises its own address, so once up, clients connect to it directly (`PrivateBroker` is
/// for outages later on).
pub struct Proxy {
    pub address: String,
    up: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free port; `up` says whether it forwards from the start.
    pub fn start(target: &str, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let proxy = Self {
            address,
            up: Arc::new(AtomicBool::new(up)),
        };
        let (target, up) = (target.to_owned(), Arc::clone(&proxy.up));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        proxy
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A broker of one test's own (noida-db, the binary `scripts/services.sh` installs), to freeze
/// with SIGSTOP: a broker that holds its connections but answers nothing, which is what an
/// overloaded or partitioned broker looks like. The shared broker cannot be frozen (other tests
/// use it), and a proxy cannot cut it off either: the broker advertises its own address, so
/// clients connect to it directly after bootstrap.
pub struct PrivateBroker {
    pub address: String,
    child: Child,
    _data: tempfile::TempDir,
}

impl PrivateBroker {
    pub fn start() -> Self {
        let binary = std::env::var("LOGSHIP_TEST_NOIDA").unwrap_or_else(|_| {
            panic!(
                "LOGSHIP_TEST_NOIDA is not set: run the tests through scripts/test.sh, or \
                 `set -a; . <(scripts/services.sh start); set +a` first"
            )
        });
        let data = tempfile::tempdir().expect("broker data dir");
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "start",
                "--host",
                "127.0.0.1",
                "--only",
                "kafka",
                "--data-dir",
            ])
            .arg(data.path())
            .args(["--kafka-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start noida-db");
        let broker = Self {
            address: format!("127.0.0.1:{port}"),
            child,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&broker.address).is_err() {
            assert!(Instant::now() < deadline, "private broker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the broker");
    }

    pub fn freeze(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes `count` numbered lines to `path` (appending) and returns them.
pub fn write_lines(path: &Path, prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    let mut buf = String::new();
    let mut lines = Vec::with_capacity(range.len());
    for i in range {
        let line = format!("{prefix} line {i:08} padding-to-look-like-a-real-log-line");
        buf.push_str(&line);
        buf.push('\n');
        lines.push(line);
    }
    file.write_all(buf.as_bytes()).expect("write log lines");
    lines
}

/// A test's directories and the agent's config.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub data: PathBuf,
    pub api_port: u16,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("logs");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&logs).expect("logs dir");
        Self {
            dir,
            logs,
            data,
            api_port: free_port(),
        }
    }

    /// Writes a config for one file source over `logs/*.log`; `source_extra` and
    /// `kafka_extra` are added to those tables.
    pub fn config(
        &self,
        brokers: &str,
        topic: &str,
        source_extra: &str,
        kafka_extra: &str,
    ) -> PathBuf {
        // Fast test defaults, unless the test sets the key itself.
        let defaults: String = [
            ("poll_interval_ms", 50),
            ("glob_interval_ms", 200),
            ("checkpoint_interval_ms", 100),
        ]
        .iter()
        .filter(|(key, _)| !source_extra.contains(key))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
        let text = format!(
            r#"data_dir = "{data}"
shutdown_timeout_secs = 10
[api]
address = "127.0.0.1:{port}"
[sources.app]
type = "file"
include = ["{logs}/*.log"]
{defaults}{source_extra}
[kafka]
brokers = ["{brokers}"]
topic = "{topic}"
{kafka_extra}
"#,
            data = self.data.display(),
            port = self.api_port,
            logs = self.logs.display(),
        );
        self.write_config(&text)
    }

    /// Writes `text` as the agent's config file and returns its path.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("logship.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The checkpoint of source `id`.
    pub fn checkpoint_of(&self, id: &str) -> Option<Value> {
        let bytes = std::fs::read(self.data.join(format!("checkpoints/{id}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until the checkpoint of every file in `paths` reaches that file's size.
    pub fn wait_for_checkpoints_at_eof<'a>(&self, paths: impl IntoIterator<Item = &'a Path>) {
        self.wait_for_source_at_eof("app", paths);
    }

    /// Waits until source `id`'s checkpoint has every file in `paths` at that file's size.
    pub fn wait_for_source_at_eof<'a>(&self, id: &str, paths: impl IntoIterator<Item = &'a Path>) {
        let paths: Vec<&Path> = paths.into_iter().collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let offsets = self.checkpoint_offsets_of(id);
            let at_eof = paths.iter().all(|p| {
                let size = std::fs::metadata(p).expect("log file").len();
                offsets.get(&p.display().to_string()) == Some(&size)
            });
            if at_eof {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "checkpoints did not reach EOF: {offsets:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Offsets in the checkpoint file, by path.
    pub fn checkpoint_offsets(&self) -> HashMap<String, u64> {
        self.checkpoint_offsets_of("app")
    }

    fn checkpoint_offsets_of(&self, id: &str) -> HashMap<String, u64> {
        let Some(checkpoint) = self.checkpoint_of(id) else {
            return HashMap::new();
        };
        checkpoint["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().expect("path").to_owned(),
                    f["offset"].as_u64().expect("offset"),
                )
            })
            .collect()
    }
}

/// A logship process under test: the agent, or a sink.
pub struct Agent {
    child: Child,
    pub api_port: u16,
    pub log: PathBuf,
}

/// librdkafka options for a `[kafka]` table: the test broker then answers "unknown topic" for a
/// topic nobody created, as a broker with `auto.create.topics.enable=false` does, and librdkafka
/// gives up on such a topic after one second instead of 30.
pub const NO_AUTO_CREATE: &str = r#"[kafka.librdkafka_options]
"allow.auto.create.topics" = "false"
"topic.metadata.propagation.max.ms" = "1000"
"#;

pub fn logship() -> Command {
    Command::new(env!("CARGO_BIN_EXE_logship"))
}

/// Writes `text`, with `DATA` standing for a fresh data directory, and runs
/// `logship COMMAND -c FILE` on it.
pub fn run_config(command: &str, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text.replace("DATA", &data.display().to_string())).expect("write");
    logship()
        .args([command, "-c"])
        .arg(&path)
        .env_remove("LOGSHIP_UNSET_VARIABLE")
        .output()
        .expect("run logship")
}

/// `validate`, `test` and `run` each exit 78 on `text` and name `key`.
pub fn assert_config_rejected(text: &str, key: &str) {
    for command in ["validate", "test", "run"] {
        let out = run_config(command, text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
        assert!(
            stderr.contains(key),
            "{command} should name `{key}`: {stderr}"
        );
    }
}

impl Agent {
    pub fn start(setup: &Setup, config: &Path) -> Self {
        Self::spawn(setup, config, logship())
    }

    /// Starts `logship-sink-es` instead: the same process handle, API and log.
    pub fn start_sink_es(setup: &Setup, config: &Path) -> Self {
        Self::spawn(
            setup,
            config,
            Command::new(env!("CARGO_BIN_EXE_logship-sink-es")),
        )
    }

    /// Starts `logship-sink-s3`.
    pub fn start_sink_s3(setup: &Setup, config: &Path) -> Self {
        Self::spawn(
            setup,
            config,
            Command::new(env!("CARGO_BIN_EXE_logship-sink-s3")),
        )
    }

    /// Starts the agent without the power to read files its permissions forbid. As root (the
    /// test machines) that means dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH with
    /// util-linux `setpriv`; any other user has no such power to drop.
    pub fn start_without_file_privileges(setup: &Setup, config: &Path) -> Self {
        let command = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("setpriv");
            c.arg("--bounding-set=-dac_override,-dac_read_search")
                .arg(env!("CARGO_BIN_EXE_logship"));
            c
        } else {
            logship()
        };
        Self::spawn(setup, config, command)
    }

    /// Starts the agent in a mount namespace of its own where `data_dir/spool` is a tmpfs of
    /// `bytes`: a spool disk that fills up (util-linux `unshare`; as root, or with user
    /// namespaces).
    pub fn start_with_spool_disk(setup: &Setup, config: &Path, bytes: u64) -> Self {
        let spool = setup.data.join("spool");
        std::fs::create_dir_all(&spool).expect("spool dir");
        let mut command = Command::new("unshare");
        command.args(["-rm", "sh", "-c"]).arg(format!(
            "mount -t tmpfs -o size={bytes} tmpfs '{}' && exec '{}' \"$@\"",
            spool.display(),
            env!("CARGO_BIN_EXE_logship")
        ));
        command.arg("logship");
        Self::spawn(setup, config, command)
    }

    fn spawn(setup: &Setup, config: &Path, mut command: Command) -> Self {
        let n = std::fs::read_dir(setup.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = setup.dir.path().join(format!("agent-{n}.log"));
        let stderr = std::fs::File::create(&log).expect("agent log");
        let child = command
            .args(["run", "-c"])
            .arg(config)
            .env(
                "LOGSHIP_LOG",
                std::env::var("LOGSHIP_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn logship");
        Self {
            child,
            api_port: setup.api_port,
            log,
        }
    }

    /// GET `path` on the agent's API: status and body, or `None` while it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let response = reqwest::blocking::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().ok()?))
    }

    /// /health's status code and body, once the API answers.
    pub fn health(&self) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((status, body)) = self.get("/health") {
                return (status, serde_json::from_str(&body).expect("health is JSON"));
            }
            assert!(
                Instant::now() < deadline,
                "the API never answered; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until /health answers 200; panics with its body after `timeout`.
    pub fn wait_until_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.health().0 != 200 {
            assert!(
                Instant::now() < deadline,
                "health never turned 200: {}",
                self.health().1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of one metric sample, e.g. `logship_source_lines_truncated_total{source="app"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
    }

    /// The value of one metric sample that must exist: a misspelt or missing sample fails the
    /// test instead of reading as 0.
    pub fn metric_value(&self, sample: &str) -> f64 {
        self.metric(sample)
            .unwrap_or_else(|| panic!("/metrics has no sample {sample}"))
    }

    /// Waits until the metric `sample` reads `value`; panics after `timeout`.
    pub fn wait_for_metric(&self, sample: &str, value: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.metric(sample) != Some(value) {
            assert!(
                Instant::now() < deadline,
                "{sample} is {:?}, not {value}, after {timeout:?}",
                self.metric(sample)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's resident memory now and at its peak (VmRSS, VmHWM), in bytes.
    pub fn resident_bytes(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the agent's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse()
                        .ok()
                })
                .map_or(0, |kib: u64| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGHUP: the agent loads its configuration file again.
    pub fn reload(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    }

    /// Sends SIGTERM and waits for the exit, up to `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let started = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        (self.wait_for_exit(timeout), started.elapsed())
    }

    /// Waits for the agent to exit, up to `timeout`; kills it and panics with its log after.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends `range` numbered lines to `path` at about `lines_per_sec`, in a thread; joining it
/// gives the lines written.
pub fn paced_writer(
    path: PathBuf,
    prefix: String,
    range: std::ops::Range<usize>,
    lines_per_sec: usize,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        const CHUNK: usize = 500;
        let started = Instant::now();
        let mut lines = Vec::with_capacity(range.len());
        let mut next = range.start;
        while next < range.end {
            let end = (next + CHUNK).min(range.end);
            lines.extend(write_lines(&path, &prefix, next..end));
            let due = Duration::from_secs_f64((end - range.start) as f64 / lines_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            next = end;
        }
        lines
    })
}
