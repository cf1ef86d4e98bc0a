//! File source behaviours against the real agent and broker: small and odd files, paths that are
//! not readable files (permissions, directories, FIFOs, symlink loops), inotify discovery, gzip,
//! multiline, read_from.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::{Agent, Setup, TopicReader, brokers, create_topic};

fn messages(reader: &mut TopicReader, count: usize, timeout: Duration) -> Vec<String> {
    reader
        .read_until(count, Duration::from_millis(700), timeout)
        .iter()
        .map(|r| r.message().to_owned())
        .collect()
}

#[test]
fn one_byte_empty_and_unterminated_files_are_all_shipped() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "edges", 1);
    let setup = Setup::new();
    std::fs::write(setup.logs.join("one.log"), b"x").expect("write");
    std::fs::write(setup.logs.join("empty.log"), b"").expect("write");
    std::fs::write(setup.logs.join("open.log"), b"first\nno newline yet").expect("write");
    let config = setup.config(&brokers, &topic, "partial_line_timeout_ms = 500", "");
    let _agent = Agent::start(&setup, &config);

    std::thread::sleep(Duration::from_secs(1));
    std::fs::OpenOptions::new()
        .append(true)
        .open(setup.logs.join("empty.log"))
        .and_then(|mut f| f.write_all(b"grew later\n"))
        .expect("grow");
    let mut reader = TopicReader::new(&brokers, &topic);
    let mut got = messages(&mut reader, 4, Duration::from_secs(30));
    got.sort();
    assert_eq!(got, ["first", "grew later", "no newline yet", "x"]);
}

#[test]
fn directories_fifos_and_symlink_loops_are_reported_and_good_files_still_flow() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "badpaths", 1);
    let setup = Setup::new();
    std::fs::create_dir(setup.logs.join("dir.log")).expect("dir");
    nix::unistd::mkfifo(&setup.logs.join("fifo.log"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
    std::os::unix::fs::symlink(setup.logs.join("b.log"), setup.logs.join("a.log")).expect("link");
    std::os::unix::fs::symlink(setup.logs.join("a.log"), setup.logs.join("b.log")).expect("link");
    std::os::unix::fs::symlink(setup.logs.join("gone"), setup.logs.join("dangling.log"))
        .expect("link");
    std::fs::write(setup.logs.join("good.log"), b"still shipped\n").expect("write");
    let config = setup.config(&brokers, &topic, "", "");
    let agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    assert_eq!(
        messages(&mut reader, 1, Duration::from_secs(30)),
        ["still shipped"]
    );
    // dir.log, fifo.log, a.log, b.log and dangling.log: each reported once.
    let errors = agent.metric("logship_source_read_errors_total{source=\"app\"}");
    assert_eq!(errors, Some(5.0));
    let (status, _) = agent.terminate(Duration::from_secs(15));
    assert!(status.success(), "the agent survived them all");
}

#[test]
fn an_unreadable_file_is_reported_and_read_once_its_permissions_allow() {
    use std::os::unix::fs::PermissionsExt;
    let brokers = brokers();
    let topic = create_topic(&brokers, "noperm", 1);
    let setup = Setup::new();
    let locked = setup.logs.join("locked.log");
    std::fs::write(&locked, b"kept from us\n").expect("write");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    std::fs::write(setup.logs.join("good.log"), b"still shipped\n").expect("write");
    let config = setup.config(&brokers, &topic, "glob_interval_ms = 500", "");
    let agent = Agent::start_without_file_privileges(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    assert_eq!(
        messages(&mut reader, 1, Duration::from_secs(30)),
        ["still shipped"]
    );
    // Rescans keep trying; the error is counted and logged once.
    std::thread::sleep(Duration::from_secs(2));
    let errors = agent.metric("logship_source_read_errors_total{source=\"app\"}");
    assert_eq!(errors, Some(1.0));
    assert!(
        agent.log_text().contains("locked.log"),
        "the log names the file: {}",
        agent.log_text()
    );

    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(
        messages(&mut reader, 2, Duration::from_secs(30)),
        ["still shipped", "kept from us"]
    );
    let (status, _) = agent.terminate(Duration::from_secs(15));
    assert!(status.success(), "the agent survived it");

    // Locked again while stopped, and grown: its checkpoint waits for it, so once readable only
    // the new line is shipped, not the file again.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&locked)
        .and_then(|mut f| f.write_all(b"written while locked\n"))
        .expect("append");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let _agent = Agent::start_without_file_privileges(&setup, &config);
    std::thread::sleep(Duration::from_secs(3));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let got: Vec<&str> = reader
        .read_until(3, Duration::from_secs(2), Duration::from_secs(30))
        .iter()
        .map(|r| r.message())
        .collect();
    assert_eq!(
        got,
        ["still shipped", "kept from us", "written while locked"]
    );
}

#[test]
fn a_new_file_is_found_by_inotify_not_by_the_rescan() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "inotify", 1);
    let setup = Setup::new();
    // The rescan would take a minute: only inotify can find the file in time.
    let config = setup.config(
        &brokers,
        &topic,
        "glob_interval_ms = 60000\npoll_interval_ms = 5000",
        "",
    );
    let _agent = Agent::start(&setup, &config);
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    std::fs::write(setup.logs.join("new.log"), b"hello inotify\n").expect("write");
    let mut reader = TopicReader::new(&brokers, &topic);
    assert_eq!(
        messages(&mut reader, 1, Duration::from_secs(20)),
        ["hello inotify"]
    );
    let took = started.elapsed();
    println!("new file picked up and delivered in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: the rescan found it, not inotify"
    );
}

#[test]
fn gzip_files_are_read_once_and_never_again() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "gzip", 1);
    let setup = Setup::new();
    let lines: Vec<String> = (0..100).map(|i| format!("compressed line {i}")).collect();
    let file = std::fs::File::create(setup.logs.join("old.log.gz")).expect("create");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("gzip");
    gz.finish().expect("finish");
    let config = setup.config(&brokers, &topic, "", "");
    let config_text = std::fs::read_to_string(&config).expect("config").replace(
        "/*.log\"]",
        "/*.log\", \"{}/*.gz\"]"
            .replace("{}", &setup.logs.display().to_string())
            .as_str(),
    );
    std::fs::write(&config, config_text).expect("config");

    let agent = Agent::start(&setup, &config);
    let mut reader = TopicReader::new(&brokers, &topic);
    let got = messages(&mut reader, 100, Duration::from_secs(30));
    assert_eq!(got.len(), 100, "each line once");
    assert_eq!(got, lines);
    let (status, _) = agent.terminate(Duration::from_secs(15));
    assert!(status.success());

    let _agent = Agent::start(&setup, &config);
    std::thread::sleep(Duration::from_secs(3));
    let again = reader
        .read_until(101, Duration::from_secs(1), Duration::from_secs(3))
        .len();
    assert_eq!(
        again, 100,
        "the compressed file was shipped again after a restart"
    );
}

#[test]
fn java_stack_traces_become_one_event() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "multiline", 1);
    let setup = Setup::new();
    let trace = "2026-11-22 08:00:00 ERROR request failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.Service.handle(Service.java:42)\n\
\tat com.example.Server.run(Server.java:7)\n\
Caused by: java.io.IOException: disk\n\
\tat com.example.Disk.write(Disk.java:9)\n\
\t... 2 more\n\
2026-11-22 08:00:01 INFO next request\n";
    std::fs::write(setup.logs.join("app.log"), trace).expect("write");
    let config = setup.config(
        &brokers,
        &topic,
        "[sources.app.multiline]\npreset = \"java\"\ntimeout_ms = 300",
        "",
    );
    let _agent = Agent::start(&setup, &config);

    let mut reader = TopicReader::new(&brokers, &topic);
    let got = messages(&mut reader, 3, Duration::from_secs(30));
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0], "2026-11-22 08:00:00 ERROR request failed");
    assert!(got[1].starts_with("java.lang.IllegalStateException: boom\n\tat com.example.Service"));
    assert!(got[1].ends_with("\t... 2 more"), "{}", got[1]);
    assert_eq!(got[2], "2026-11-22 08:00:01 INFO next request");
}

#[test]
fn read_from_end_skips_what_was_there_at_start() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "fromend", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    std::fs::write(&path, b"old 1\nold 2\n").expect("write");
    let config = setup.config(&brokers, &topic, "read_from = \"end\"", "");
    let _agent = Agent::start(&setup, &config);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"new 1\n"))
        .expect("append");
    let mut reader = TopicReader::new(&brokers, &topic);
    assert_eq!(messages(&mut reader, 1, Duration::from_secs(20)), ["new 1"]);
}
