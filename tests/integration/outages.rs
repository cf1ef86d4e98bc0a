//! Crashes and broker outages: kill -9 mid-stream, and a broker that is down when the agent
//! starts. Nothing may be lost; duplicates only come from the window that was not checkpointed.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use crate::harness::{
    Agent, Proxy, Setup, TopicReader, brokers, check_delivery, create_topic, paced_writer,
    write_lines,
};

/// Most records librdkafka may hold unacknowledged in these tests (`queue_max_events`).
const QUEUE_MAX_EVENTS: usize = 10_000;

#[test]
fn kill_9_while_shipping_loses_nothing_and_duplicates_stay_in_the_window() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "kill9", 3);
    let setup = Setup::new();
    let paths: Vec<_> = (0..2)
        .map(|f| setup.logs.join(format!("app-{f}.log")))
        .collect();
    // 200,000 lines over about 5 s, written while the agent ships them.
    let writers: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(f, p)| paced_writer(p.clone(), format!("k{f}"), 0..100_000, 20_000))
        .collect();
    let config = setup.config(
        &brokers,
        &topic,
        "",
        &format!("queue_max_events = {QUEUE_MAX_EVENTS}"),
    );
    let agent = Agent::start(&setup, &config);
    let kill_after = Duration::from_millis(rand::rng().random_range(500..4000));
    std::thread::sleep(kill_after);
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "writers finished before the kill"
    );
    agent.kill9();
    let checkpoint_at_kill = setup.checkpoint_offsets();

    let mut reader = TopicReader::new(&brokers, &topic);
    let arrived_before_kill = reader
        .read_until(1, Duration::from_secs(1), Duration::from_secs(30))
        .len();
    let rate = arrived_before_kill as f64 / kill_after.as_secs_f64();
    let expected: HashMap<String, Vec<String>> = paths
        .iter()
        .zip(writers)
        .map(|(p, w)| (p.display().to_string(), w.join().expect("writer")))
        .collect();
    assert!(
        arrived_before_kill < 200_000,
        "the agent finished before the kill"
    );

    let agent = Agent::start(&setup, &config);
    let records = reader.read_until(200_000, Duration::from_secs(3), Duration::from_secs(180));
    let duplicates = check_delivery(records, &expected, 1);

    // Every duplicate comes from at or after the checkpoint the killed agent left behind.
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for r in records {
        *counts.entry((r.path(), r.message())).or_default() += 1;
    }
    for r in records
        .iter()
        .filter(|r| counts[&(r.path(), r.message())] > 1)
    {
        let offset = r.value["log"]["offset"].as_u64().expect("offset");
        let checkpoint = checkpoint_at_kill.get(r.path()).copied().unwrap_or(0);
        assert!(
            offset >= checkpoint,
            "line at {offset} duplicated but was before the checkpoint {checkpoint}"
        );
    }
    // The window: what librdkafka holds, what waits in the channels (six read turns of 256 KiB
    // at most; 16 counted, for slack), and what was delivered since the last checkpoint write
    // (100 ms, doubled for scheduling slack).
    let channel_lines = 16 * (256 * 1024 / 60);
    let window = QUEUE_MAX_EVENTS + channel_lines + (rate * 0.2) as usize;
    println!(
        "kill -9 after {kill_after:?} with {arrived_before_kill} of 200000 records delivered: \
         {duplicates} duplicates (window {window}, {rate:.0} records/s)"
    );
    assert!(
        duplicates <= window,
        "{duplicates} duplicates exceed the in-flight window {window}"
    );
    drop(agent);
}

#[test]
fn broker_down_at_start_keeps_retrying_and_delivers_once_up() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "down", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    let lines = write_lines(&path, "d", 0..20_000);
    // The proxy the agent bootstraps from forwards nothing yet: the broker is down.
    let proxy = Proxy::start(&brokers, false);
    let config = setup.config(&proxy.address, &topic, "", "");
    let agent = Agent::start(&setup, &config);

    std::thread::sleep(Duration::from_secs(4));
    let (status, health) = agent.health();
    assert_eq!(status, 503, "health while the broker is down: {health}");
    assert_eq!(health["kafka_reachable"], false);
    // Not ready, but alive: a liveness probe must not restart an agent through an outage.
    let live = agent.get("/health/live").expect("/health/live answers");
    assert_eq!(live, (200, r#"{"live":true}"#.to_owned()));
    let offsets = setup.checkpoint_offsets();
    assert!(
        offsets.values().all(|o| *o == 0),
        "checkpoints moved without a broker: {offsets:?}"
    );

    // The broker comes up.
    proxy.up();
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(20_000, Duration::from_secs(2), Duration::from_secs(90));
    let expected = HashMap::from([(path.display().to_string(), lines)]);
    let duplicates = check_delivery(records, &expected, 0);
    assert_eq!(duplicates, 0);
    agent.wait_until_healthy(Duration::from_secs(15));
    let (status, _) = agent.terminate(Duration::from_secs(15));
    assert!(status.success());
}

/// While the broker is down the source waits for room (backpressure) and reads nothing, but it
/// keeps discovering: a file created and rotated out of the globs meanwhile is opened before its
/// name goes, and shipped, in order, once the broker is back.
#[test]
fn files_created_and_rotated_away_while_blocked_are_still_shipped() {
    let brokers = brokers();
    let topic = create_topic(&brokers, "blocked-rotation", 1);
    let setup = Setup::new();
    let path = setup.logs.join("app.log");
    // More than the channels and librdkafka's queue hold (a few read turns of 256 KiB, and
    // 20,000 records), so the source blocks.
    let mut lines = write_lines(&path, "first", 0..100_000);
    let proxy = Proxy::start(&brokers, false);
    // A small in-flight window, so the channel fills and the source blocks.
    let config = setup.config(&proxy.address, &topic, "", "queue_max_events = 100");
    let agent = Agent::start(&setup, &config);
    std::thread::sleep(Duration::from_secs(2));

    // logrotate twice while blocked: app.log → app.log.1, a new app.log written and rotated to
    // app.log.2 (neither name matches *.log), then a third app.log.
    std::fs::rename(&path, setup.logs.join("app.log.1")).expect("rotate");
    lines.extend(write_lines(&path, "second", 0..1_000));
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(&path, setup.logs.join("app.log.2")).expect("rotate");
    lines.extend(write_lines(&path, "third", 0..1_000));
    std::thread::sleep(Duration::from_millis(500));

    proxy.up();
    let mut reader = TopicReader::new(&brokers, &topic);
    let records = reader.read_until(102_000, Duration::from_secs(2), Duration::from_secs(90));
    let messages: Vec<&str> = records.iter().map(|r| r.message()).collect();
    let arrived: std::collections::HashSet<&str> = messages.iter().copied().collect();
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| !arrived.contains(l.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, first {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(records.len(), 102_000, "no duplicates");
    // One stream, in written order across the rotations.
    assert_eq!(
        messages,
        lines.iter().map(String::as_str).collect::<Vec<_>>()
    );
    drop(agent);
}
