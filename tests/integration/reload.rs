//! SIGHUP while lines flow: sources added, removed and restarted with a changed pipeline; an HTTP
//! source changed on its own port; invalid files rejected while the running configuration goes
//! on; a global change (`[kafka] topic`) applied by restarting the agent in its process. Checked
//! with the harness's loss / duplicate / order check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{
    Agent, Record, Setup, TopicReader, brokers, check_delivery, create_topic, free_port, logship,
    paced_writer,
};

const APPLIED: &str = "logship_config_reloads_total{result=\"applied\"}";
const REJECTED: &str = "logship_config_reloads_total{result=\"rejected\"}";
const SUCCESS: &str = "logship_config_last_reload_success";

/// Lines in `path` now (the writers append whole lines).
fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

/// A file source `id` over `logs/<id>-*.log`, with fast test intervals.
fn file_source(setup: &Setup, id: &str, extra: &str) -> String {
    format!(
        "[sources.{id}]\ntype = \"file\"\ninclude = [\"{logs}/{id}-*.log\"]\npoll_interval_ms = 50\n\
         glob_interval_ms = 200\ncheckpoint_interval_ms = 100\n{extra}\n",
        logs = setup.logs.display()
    )
}

/// Pipeline `p`, which marks every event with `version`.
fn pipeline(version: u32) -> String {
    format!(
        "[pipelines.p]\nsteps = [{{ type = \"set\", field = \"version\", value = \"{version}\" }}]\n"
    )
}

/// An agent configuration with `tables` (sources and pipelines) and `[kafka] topic`.
fn agent_config(setup: &Setup, brokers: &str, topic: &str, tables: &str) -> String {
    format!(
        "data_dir = \"{data}\"\nshutdown_timeout_secs = 10\n[api]\naddress = \"127.0.0.1:{port}\"\n\
         {tables}\n[kafka]\nbrokers = [\"{brokers}\"]\ntopic = \"{topic}\"\n",
        data = setup.data.display(),
        port = setup.api_port,
    )
}

fn log_offset(record: &Record) -> u64 {
    record.value["log"]["offset"].as_u64().expect("log.offset")
}

/// Lines written to each of `paths` so far.
fn written(paths: &HashMap<&'static str, PathBuf>) -> HashMap<&'static str, usize> {
    paths.iter().map(|(name, p)| (*name, lines_in(p))).collect()
}

#[test]
fn sighup_adds_removes_and_restarts_sources_while_lines_flow() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "reload", 2);
    let setup = Setup::new();
    let before = [
        file_source(&setup, "kept", ""),
        file_source(&setup, "piped", "pipeline = \"p\""),
        file_source(&setup, "gone", ""),
        pipeline(1),
    ]
    .concat();
    let after = [
        file_source(&setup, "kept", ""),
        file_source(&setup, "piped", "pipeline = \"p\""),
        file_source(&setup, "added", ""),
        pipeline(2),
    ]
    .concat();
    let config = setup.write_config(&agent_config(&setup, &brokers, &topic, &before));

    // About 8,000 lines/s over 8 s: two busy files, and one each for the sources that go and
    // come (the added one's file is written from the start, before its source exists).
    let rates = [
        ("kept", 3000),
        ("piped", 3000),
        ("gone", 1000),
        ("added", 1000),
    ];
    let paths: HashMap<&'static str, PathBuf> = rates
        .iter()
        .map(|(name, _)| (*name, setup.logs.join(format!("{name}-0.log"))))
        .collect();
    let writers: Vec<_> = rates
        .iter()
        .map(|(name, rate)| {
            let writer = paced_writer(paths[name].clone(), (*name).into(), 0..rate * 8, *rate);
            (*name, writer)
        })
        .collect();
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));

    // What was written a second before the SIGHUP has been read by then.
    let at_sighup = written(&paths);
    std::thread::sleep(Duration::from_secs(1));
    setup.write_config(&agent_config(&setup, &brokers, &topic, &after));
    agent.reload();
    agent.wait_for_metric(APPLIED, 1.0, Duration::from_secs(30));
    let at_applied = written(&paths);
    assert!(
        writers.iter().all(|(_, w)| !w.is_finished()),
        "the writers finished before the reload; the test proves nothing"
    );
    assert_eq!(agent.metric_value(SUCCESS), 1.0);
    let lines: HashMap<&str, Vec<String>> = writers
        .into_iter()
        .map(|(name, w)| (name, w.join().expect("writer")))
        .collect();

    let shipped = ["kept", "piped", "added"];
    let total: usize = shipped.iter().map(|n| lines[n].len()).sum();
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(
        total + at_sighup["gone"],
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    let gone_path = paths["gone"].display().to_string();
    let (gone, rest): (Vec<Record>, Vec<Record>) =
        records.iter().cloned().partition(|r| r.path() == gone_path);

    // The sources that ship to the end: every line once, each file in order across the reload.
    let expected: HashMap<String, Vec<String>> = shipped
        .iter()
        .map(|n| (paths[n].display().to_string(), lines[n].clone()))
        .collect();
    let duplicates = check_delivery(&rest, &expected, 0);
    assert_eq!(duplicates, 0, "nothing delivered is sent again");

    // The removed source: what it had when the reload came, once each and in order, and
    // nothing written after the reload applied.
    let mut gone = gone;
    gone.sort_by_key(log_offset);
    let messages: Vec<&str> = gone.iter().map(Record::message).collect();
    let prefix: Vec<&str> = lines["gone"][..gone.len()]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        messages, prefix,
        "the removed source's lines: a prefix, once"
    );
    assert!(
        gone.len() >= at_sighup["gone"] && gone.len() <= at_applied["gone"],
        "removed source shipped {} lines; {} were written a second before SIGHUP, {} when it \
         applied",
        gone.len(),
        at_sighup["gone"],
        at_applied["gone"]
    );

    // The changed pipeline: version 1 up to the switch, 2 after, and 2 for every line written
    // after the reload applied.
    let piped_path = paths["piped"].display().to_string();
    let mut piped: Vec<&Record> = rest.iter().filter(|r| r.path() == piped_path).collect();
    piped.sort_by_key(|r| log_offset(r));
    let versions: Vec<&str> = piped
        .iter()
        .map(|r| r.value["version"].as_str().expect("version"))
        .collect();
    let switch = versions
        .iter()
        .position(|v| *v == "2")
        .expect("events after the reload carry the new field");
    assert!(switch > 0, "events before the reload carry the old field");
    assert!(versions[..switch].iter().all(|v| *v == "1"));
    assert!(versions[switch..].iter().all(|v| *v == "2"), "one switch");
    assert!(
        switch <= at_applied["piped"],
        "line {switch} is the first with the new pipeline; {} were written when it applied",
        at_applied["piped"]
    );
    // The added source read its file from the start (checked above); the kept one was never
    // stopped.
    let log = agent.log_text();
    let drained: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("draining source"))
        .collect();
    assert!(
        drained.iter().any(|l| l.contains("source=gone"))
            && drained.iter().any(|l| l.contains("source=piped")),
        "{log}"
    );
    assert!(!drained.iter().any(|l| l.contains("source=kept")), "{log}");
    assert!(
        log.contains("sources added: added; removed: gone; restarted: piped"),
        "{log}"
    );
    println!(
        "reload: {total} lines shipped by kept/piped/added, 0 lost, {duplicates} duplicates; \
         removed source shipped {} of {} ({} written 1 s before SIGHUP, {} when applied); \
         pipeline switched at \
         line {switch} of {} (applied at {})",
        gone.len(),
        lines["gone"].len(),
        at_sighup["gone"],
        at_applied["gone"],
        lines["piped"].len(),
        at_applied["piped"]
    );
}

#[test]
fn an_invalid_config_is_rejected_and_the_running_one_goes_on() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "reload-invalid", 1);
    let setup = Setup::new();
    let config = setup.config(&brokers, &topic, "", "");
    let good = std::fs::read_to_string(&config).expect("config");
    let path = setup.logs.join("app.log");
    let writer = paced_writer(path.clone(), "i".into(), 0..30_000, 3000);
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));

    // What `logship validate` says about the file is what the reload logs.
    let validate = |expect: &str| {
        let out = logship()
            .args(["validate", "-c"])
            .arg(&config)
            .output()
            .expect("validate");
        assert_eq!(out.status.code(), Some(78));
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert!(stderr.contains(expect), "{stderr}");
        stderr
            .strip_prefix("logship: ")
            .expect("validate's prefix")
            .to_owned()
    };

    // An unknown key.
    setup.write_config(&good.replace("type = \"file\"", "type = \"file\"\nmax_line_byte = 10"));
    let reason = validate("sources.app.max_line_byte");
    agent.reload();
    agent.wait_for_metric(REJECTED, 1.0, Duration::from_secs(30));
    assert_eq!(agent.metric_value(SUCCESS), 0.0);
    let log = agent.log_text();
    assert!(log.contains(&reason), "the log says why: {reason}\n{log}");
    assert!(reason.contains("unknown key"), "{reason}");

    // A syntax error.
    setup.write_config(&format!("{good}\n[kafka\n"));
    let reason = validate("line");
    agent.reload();
    agent.wait_for_metric(REJECTED, 2.0, Duration::from_secs(30));
    assert!(
        agent.log_text().contains(&reason),
        "the log says why: {reason}"
    );
    let read_so_far = agent.metric_value("logship_source_events_read_total{source=\"app\"}");

    // The running configuration was never touched: the same text again changes nothing.
    setup.write_config(&good);
    agent.reload();
    agent.wait_for_metric(APPLIED, 1.0, Duration::from_secs(30));
    assert_eq!(agent.metric_value(SUCCESS), 1.0);
    assert!(agent.log_text().contains("nothing changed"));
    assert!(
        !writer.is_finished(),
        "the writer finished; the test proves less"
    );

    let lines = writer.join().expect("writer");
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(lines.len(), Duration::from_secs(2), Duration::from_secs(60));
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    let duplicates = check_delivery(records, &expected, 0);
    assert_eq!(duplicates, 0);
    assert!(
        (read_so_far as usize) < records.len(),
        "lines kept flowing after the rejections"
    );
    assert_eq!(agent.metric_value(REJECTED), 2.0);
    assert!(
        !agent.log_text().contains("draining source"),
        "no source was stopped"
    );
    println!(
        "invalid reloads: 2 rejected, {} lines delivered, {duplicates} duplicates",
        records.len()
    );
}

#[test]
fn a_global_change_restarts_the_agent_in_place_and_later_lines_go_to_the_new_topic() {
    let brokers = brokers();
    let first = create_topic(&brokers, "reload-first", 2);
    let second = create_topic(&brokers, "reload-second", 2);
    let setup = Setup::new();
    let config = setup.config(&brokers, &first, "", "");
    let text = std::fs::read_to_string(&config).expect("config");
    let paths: HashMap<&'static str, PathBuf> = [("a", "app-0.log"), ("b", "app-1.log")]
        .into_iter()
        .map(|(name, file)| (name, setup.logs.join(file)))
        .collect();
    let writers: Vec<_> = paths
        .iter()
        .map(|(name, p)| paced_writer(p.clone(), (*name).into(), 0..20_000, 2500))
        .collect();
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));

    setup.write_config(&text.replace(
        &format!("topic = \"{first}\""),
        &format!("topic = \"{second}\""),
    ));
    agent.reload();
    // The API restarts with the agent; the metrics recorder (and the count) stays.
    agent.wait_for_metric(APPLIED, 1.0, Duration::from_secs(40));
    let at_applied = written(&paths);
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "the writers finished before the reload; the test proves nothing"
    );
    let expected: HashMap<String, Vec<String>> = paths
        .values()
        .zip(writers)
        .map(|(p, w)| (p.display().to_string(), w.join().expect("writer")))
        .collect();
    let total: usize = expected.values().map(Vec::len).sum();

    let mut first_reader = TopicReader::new(&brokers, &first);
    let before = first_reader
        .read_until(1, Duration::from_secs(2), Duration::from_secs(30))
        .to_vec();
    let mut second_reader = TopicReader::new(&brokers, &second);
    let after = second_reader
        .read_until(
            total - before.len(),
            Duration::from_secs(2),
            Duration::from_secs(120),
        )
        .to_vec();
    assert!(!before.is_empty() && !after.is_empty(), "both topics used");

    // One stream per file across both topics: the second topic's records after the first's.
    let mut all = before.clone();
    all.extend(after.iter().cloned().map(|mut r| {
        r.offset += 1 << 40;
        r
    }));
    let duplicates = check_delivery(&all, &expected, 0);
    assert_eq!(
        duplicates, 0,
        "nothing lost or sent twice across the restart"
    );
    for path in expected.keys() {
        let last_first = before
            .iter()
            .filter(|r| r.path() == path)
            .map(log_offset)
            .max();
        let first_second = after
            .iter()
            .filter(|r| r.path() == path)
            .map(log_offset)
            .min();
        assert!(
            last_first < first_second,
            "{path}: a clean switch of topics"
        );
    }
    let in_first: usize = before.len();
    let written_at_applied: usize = at_applied.values().sum();
    assert!(
        in_first <= written_at_applied,
        "lines written after the reload went to the new topic"
    );
    assert!(agent.log_text().contains("agent restarted for kafka"));
    println!(
        "global reload: {total} lines, {in_first} to the first topic, {} to the second, \
         {duplicates} duplicates",
        after.len()
    );
}

#[test]
fn an_http_source_changed_on_its_own_port_answers_every_request_once() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "reload-http", 1);
    let setup = Setup::new();
    let port = free_port();
    let source = format!(
        "[sources.api]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\npipeline = \"p\"\n"
    );
    let config = setup.write_config(&agent_config(
        &setup,
        &brokers,
        &topic,
        &format!("{source}{}", pipeline(1)),
    ));
    let agent = Agent::start(&setup, &config);
    agent.wait_until_healthy(Duration::from_secs(20));

    // Requests one after another, 10 events each, on fresh connections; a refused connection
    // (the port between two sources) is tried again, as a client would.
    let stop = Arc::new(AtomicBool::new(false));
    let client = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let client = reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut answered = Vec::new();
            let mut refused = 0;
            let mut request = 0;
            while !stop.load(Ordering::SeqCst) {
                let body: String = (0..10)
                    .map(|e| format!("{{\"message\":\"r{request}-{e}\"}}\n"))
                    .collect();
                match client
                    .post(format!("http://127.0.0.1:{port}/logs"))
                    .body(body)
                    .send()
                {
                    Ok(response) => {
                        answered.push((request, response.status().as_u16(), Instant::now()));
                        request += 1;
                    }
                    Err(_) => {
                        refused += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            (answered, refused)
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    setup.write_config(&agent_config(
        &setup,
        &brokers,
        &topic,
        &format!("{source}{}", pipeline(2)),
    ));
    agent.reload();
    agent.wait_for_metric(APPLIED, 1.0, Duration::from_secs(30));
    let applied = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let (answered, refused) = client.join().expect("client");

    let statuses: Vec<u16> = answered.iter().map(|(_, s, _)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every request answered 200: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let events = answered.len() * 10;
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(events, Duration::from_secs(2), Duration::from_secs(60));
    let mut seen: HashMap<&str, &Record> = HashMap::new();
    for record in records {
        assert!(
            seen.insert(record.message(), record).is_none(),
            "{} arrived twice",
            record.message()
        );
    }
    assert_eq!(records.len(), events, "every answered event, once");
    for (request, _, at) in &answered {
        let record = seen[format!("r{request}-0").as_str()];
        if *at > applied {
            assert_eq!(
                record.value["version"], "2",
                "request {request} after the reload"
            );
        }
    }
    assert!(
        answered.iter().any(|(_, _, at)| *at > applied),
        "requests after the reload"
    );
    println!(
        "HTTP reload: {} requests answered 200 ({events} events, each once), {refused} \
         connections refused while the port changed hands",
        answered.len()
    );
}
