//! The journald source against real journal files: entries are written in journald's export
//! format through `systemd-journal-remote` (Debian package systemd-journal-remote, installed by
//! scripts/deps.sh) into a directory the source reads with the real journalctl.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Agent, Record, Setup, TopicReader, brokers, create_topic};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Appends entries to one journal file, as journald would have written them.
struct Journal {
    dir: PathBuf,
    /// Entries written so far: the next one's number.
    next: u64,
}

impl Journal {
    fn new(setup: &Setup) -> Self {
        let dir = setup.dir.path().join("journal");
        std::fs::create_dir_all(&dir).expect("journal dir");
        Self { dir, next: 0 }
    }

    /// Appends `count` entries of `unit`, with messages `j000000`, `j000001`, …
    fn append(&mut self, count: u64, unit: &str) -> Vec<String> {
        let mut export = Vec::new();
        let mut messages = Vec::new();
        for _ in 0..count {
            let message = format!("j{:06}", self.next);
            entry(&mut export, self.next, unit, message.as_bytes());
            messages.push(message);
            self.next += 1;
        }
        self.write(&export);
        messages
    }

    /// Appends one entry whose MESSAGE is `bytes` (a binary field in the export format).
    fn append_raw(&mut self, bytes: &[u8]) {
        let mut export = Vec::new();
        entry(&mut export, self.next, "app.service", bytes);
        self.next += 1;
        self.write(&export);
    }

    fn write(&self, export: &[u8]) {
        let mut child = Command::new(JOURNAL_REMOTE)
            .arg("-o")
            .arg(self.dir.join("remote.journal"))
            .arg("-")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{JOURNAL_REMOTE} does not run ({e}): scripts/deps.sh installs it")
            });
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(export)
            .expect("export entries");
        assert!(child.wait().expect("journal-remote").success());
    }
}

/// One entry in journald's export format; a MESSAGE that is not plain text goes as binary.
fn entry(out: &mut Vec<u8>, n: u64, unit: &str, message: &[u8]) {
    // Distinct times: journalctl takes entries equal in every respect for one.
    let realtime = 1_795_000_000_000_000 + n * 1000;
    write!(
        out,
        "__REALTIME_TIMESTAMP={realtime}\n__MONOTONIC_TIMESTAMP={}\n\
         _BOOT_ID=0123456789abcdef0123456789abcdef\nPRIORITY={}\n_SYSTEMD_UNIT={unit}\n\
         SYSLOG_IDENTIFIER=app\n_HOSTNAME=node-7\n",
        n + 1,
        n % 8
    )
    .expect("write");
    if message.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        out.extend_from_slice(b"MESSAGE=");
        out.extend_from_slice(message);
    } else {
        out.extend_from_slice(b"MESSAGE\n");
        out.extend_from_slice(&(message.len() as u64).to_le_bytes());
        out.extend_from_slice(message);
    }
    out.extend_from_slice(b"\n\n");
}

/// An agent config with one journald source reading `journal`, with `extra` source keys.
fn journald_config(setup: &Setup, journal: &Path, topic: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"data_dir = "{data}"
shutdown_timeout_secs = 10
[api]
address = "127.0.0.1:{port}"
[sources.journal]
type = "journald"
journal_directory = "{journal}"
current_boot_only = false
checkpoint_interval_ms = 100
restart_backoff_ms = 200
{extra}
[kafka]
brokers = ["{brokers}"]
topic = "{topic}"
"#,
        data = setup.data.display(),
        port = setup.api_port,
        journal = journal.display(),
        brokers = brokers(),
    );
    setup.write_config(&text)
}

/// How often each message arrived.
fn counts(records: &[Record]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for record in records {
        *counts.entry(record.message().to_owned()).or_default() += 1;
    }
    counts
}

fn read(reader: &mut TopicReader, count: usize) -> Vec<Record> {
    reader
        .read_until(count, Duration::from_secs(2), Duration::from_secs(60))
        .to_vec()
}

/// Entries written before the start, while running, and while stopped all arrive once, with
/// their fields mapped; excluded units stay out; a binary MESSAGE is shipped as base64.
#[test]
fn journal_entries_arrive_once_across_a_restart_with_their_fields() {
    let setup = Setup::new();
    let mut journal = Journal::new(&setup);
    let topic = create_topic(&brokers(), "journald", 1);
    let mut expected = journal.append(400, "app.service");
    journal.append(50, "noise.service");
    journal.append_raw(&[0, 255, 254, 10]);
    let config = journald_config(&setup, &journal.dir, &topic, "exclude_units = [\"noise\"]");
    let agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers(), &topic);
    let records = read(&mut reader, 401);
    let first = records
        .iter()
        .find(|r| r.value["message"] == "j000003")
        .expect("entry 3");
    assert_eq!(first.value["@timestamp"], "2026-11-18T11:06:40.003000000Z");
    assert_eq!(first.value["log"]["syslog"]["severity"]["code"], 3);
    assert_eq!(first.value["log"]["syslog"]["severity"]["name"], "err");
    assert_eq!(first.value["systemd"]["unit"], "app.service");
    assert_eq!(first.value["host"]["name"], "node-7");
    assert_eq!(
        first.value["journald"]["boot_id"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(first.value["journald"]["syslog_identifier"], "app");
    assert_eq!(first.key.as_deref(), Some("node-7:journald:app.service"));
    let binary = records
        .iter()
        .find(|r| r.value["journald"]["message_encoding"] == "base64")
        .expect("the binary entry");
    assert_eq!(binary.value["message"], "AP/+Cg==");
    assert_eq!(
        agent.metric_value("logship_journald_binary_messages_total{source=\"journal\"}"),
        1.0
    );

    expected.extend(journal.append(300, "app.service"));
    read(&mut reader, 701);
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.success());
    expected.extend(journal.append(300, "app.service"));
    let _agent = Agent::start(&setup, &config);
    let records = read(&mut reader, 1001);
    let counts = counts(&records);
    for message in &expected {
        assert_eq!(counts.get(message), Some(&1), "{message} once");
    }
    assert_eq!(records.len(), 1001, "nothing else: no noise, no duplicates");
}

/// kill -9 while entries stream in: after the restart every entry has arrived.
#[test]
fn kill_9_while_reading_the_journal_loses_nothing() {
    let setup = Setup::new();
    let mut journal = Journal::new(&setup);
    let topic = create_topic(&brokers(), "journald-kill", 1);
    let config = journald_config(&setup, &journal.dir, &topic, "");
    let agent = Agent::start(&setup, &config);
    let mut expected = Vec::new();
    for _ in 0..10 {
        expected.extend(journal.append(500, "app.service"));
        std::thread::sleep(Duration::from_millis(30));
    }
    agent.kill9();
    for _ in 0..4 {
        expected.extend(journal.append(500, "app.service"));
    }
    let _agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers(), &topic);
    let counts = counts(&read(&mut reader, expected.len()));
    let missing: Vec<_> = expected
        .iter()
        .filter(|m| !counts.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lost, first {:?}",
        missing.len(),
        missing.first()
    );
}

/// journalctl that exits is started again, from the entry after the last one read: every entry
/// arrives once, and the restarts are counted. One that cannot start at all shows on /health.
#[test]
fn journalctl_exiting_is_restarted_and_a_dead_reader_shows_on_health() {
    let setup = Setup::new();
    let mut journal = Journal::new(&setup);
    let topic = create_topic(&brokers(), "journald-restart", 1);
    let wrapper = setup.dir.path().join("journalctl-1s");
    std::fs::write(&wrapper, "#!/bin/sh\nexec timeout 1 journalctl \"$@\"\n").expect("wrapper");
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, executable).expect("chmod");
    let extra = format!("journalctl_path = \"{}\"", wrapper.display());
    let config = journald_config(&setup, &journal.dir, &topic, &extra);
    let mut expected = journal.append(300, "app.service");
    let agent = Agent::start(&setup, &config);
    std::thread::sleep(Duration::from_millis(2500));
    expected.extend(journal.append(300, "app.service"));
    let mut reader = TopicReader::new(&brokers(), &topic);
    let records = read(&mut reader, 600);
    assert_eq!(records.len(), 600, "no entry twice across restarts");
    let counts = counts(&records);
    assert!(expected.iter().all(|m| counts.get(m) == Some(&1)));
    let restarts = agent.metric_value("logship_journald_restarts_total{source=\"journal\"}");
    assert!(restarts >= 2.0, "journalctl was restarted: {restarts}");
    drop(agent);

    let dead = Setup::new();
    let config = journald_config(
        &dead,
        &journal.dir,
        &topic,
        "journalctl_path = \"/nonexistent/journalctl\"",
    );
    let agent = Agent::start(&dead, &config);
    agent.wait_for_metric(
        "logship_journald_reader_up{source=\"journal\"}",
        0.0,
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, health) = agent.health();
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["sources_down"], serde_json::json!(["journal"]));
    assert!(agent.metric_value("logship_journald_restarts_total{source=\"journal\"}") >= 1.0);
}

/// journalctl applies `priority` and `matches`; the source applies `units` and `identifiers`:
/// only entries passing all of them arrive.
#[test]
fn priority_matches_and_units_filter_what_is_shipped() {
    let setup = Setup::new();
    let mut journal = Journal::new(&setup);
    let topic = create_topic(&brokers(), "journald-filter", 1);
    // Priorities cycle 0..8 over the entries: 0 to 3 pass `priority = "err"`.
    let app = journal.append(80, "app.service");
    journal.append(40, "other.service");
    let filters = "priority = \"err\"\nmatches = [\"_HOSTNAME=node-7\"]\nunits = [\"app\"]\n\
                   identifiers = [\"app\"]";
    let config = journald_config(&setup, &journal.dir, &topic, filters);
    let _agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers(), &topic);
    let records = read(&mut reader, 40);
    let mut got: Vec<_> = records.iter().map(|r| r.message().to_owned()).collect();
    got.sort();
    let expected: Vec<_> = app
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 8 <= 3)
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(got, expected);
}

/// `since_now`: a first start skips what the journal holds and ships what comes after. An entry
/// over `max_entry_bytes` is dropped and counted, and the entries after it still arrive.
#[test]
fn since_now_skips_the_past_and_a_huge_entry_is_dropped_and_counted() {
    let setup = Setup::new();
    let mut journal = Journal::new(&setup);
    let topic = create_topic(&brokers(), "journald-now", 1);
    journal.append(100, "app.service");
    let config = journald_config(
        &setup,
        &journal.dir,
        &topic,
        "since_now = true\nmax_entry_bytes = 4000",
    );
    let agent = Agent::start(&setup, &config);
    agent.wait_for_metric(
        "logship_journald_reader_up{source=\"journal\"}",
        1.0,
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(500));
    journal.append_raw("x".repeat(10_000).as_bytes());
    let mut expected = journal.append(20, "app.service");
    expected.sort();
    let mut reader = TopicReader::new(&brokers(), &topic);
    let mut got: Vec<_> = read(&mut reader, 20)
        .iter()
        .map(|r| r.message().to_owned())
        .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "only what came after the start, less the huge entry"
    );
    let dropped = "logship_journald_entries_dropped_total{source=\"journal\",reason=\"too_large\"}";
    assert_eq!(agent.metric_value(dropped), 1.0);
}
