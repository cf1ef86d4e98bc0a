//! Bad configurations: `validate` and `run` exit 78 and name the key; the shipped example
//! configuration is valid.

use crate::harness::{assert_config_rejected, logship, run_config};

const VALID: &str = r#"
data_dir = "DATA"
[sources.app]
type = "file"
include = ["/var/log/app/*.log"]
[kafka]
brokers = ["127.0.0.1:9092"]
topic = "logs"
"#;

fn assert_config_valid(text: &str) {
    let out = run_config("validate", text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn valid_config_passes_validate() {
    assert_config_valid(VALID);
}

#[test]
fn unknown_nested_key() {
    assert_config_rejected(
        &VALID.replace("type = \"file\"", "type = \"file\"\nincldue = []"),
        "sources.app.incldue (line 5)",
    );
}

#[test]
fn one_broker_entry_may_list_several_and_each_is_checked() {
    assert_config_valid(&VALID.replace("brokers = [", "brokers = [\"k1:9092, k2:9093\", "));
    assert_config_rejected(
        &VALID.replace("brokers = [", "brokers = [\"k1:9092,k2\", "),
        "kafka.brokers[0]",
    );
}

#[test]
fn wrong_type() {
    assert_config_rejected(
        &VALID.replace("topic = \"logs\"", "topic = 7"),
        "kafka.topic (line 8)",
    );
}

#[test]
fn missing_brokers() {
    assert_config_rejected(
        &VALID.replace("brokers = [\"127.0.0.1:9092\"]\n", ""),
        "kafka.brokers",
    );
}

#[test]
fn bad_glob() {
    assert_config_rejected(&VALID.replace("*.log", "[.log"), "sources.app.include[0]");
}

#[test]
fn unwritable_data_dir() {
    let text = VALID.replace(
        "data_dir = \"DATA\"",
        "data_dir = \"/proc/logship-cannot-write-here\"",
    );
    assert_config_rejected(&text, "data_dir (line 2)");
}

#[test]
fn undefined_env_var() {
    let text = VALID.replace("\"logs\"", "\"${LOGSHIP_UNSET_VARIABLE}\"");
    assert_config_rejected(&text, "kafka.topic (line 8)");
}

#[test]
fn example_config_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let out = logship()
        .args(["validate", "-c", example])
        .env("LOGSHIP_DATA_DIR", dir.path())
        .output()
        .expect("run logship");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn spool_and_retry_mistakes_name_their_key() {
    for (extra, key) in [
        ("[spool]\nmax_bytes = 1000", "spool.max_bytes"),
        ("[spool]\nwhen_full = \"drop_oldest\"", "spool.when_full"),
        (
            "[spool]\nsegment_max_bytes = 2147483648",
            "spool.segment_max_bytes",
        ),
        (
            "[spool]\nfsync = \"interval\"\nfsync_interval_ms = 0",
            "spool.fsync_interval_ms",
        ),
    ] {
        assert_config_rejected(&format!("{VALID}\n{extra}\n"), key);
    }
    for (extra, key) in [
        ("message_timeout_ms = 10", "kafka.message_timeout_ms"),
        ("retry_max_elapsed_secs = 0", "kafka.retry_max_elapsed_secs"),
        (
            "on_retry_exhausted = \"dead_letter\"",
            "kafka.on_retry_exhausted",
        ),
        ("on_rejected = \"dead_letter\"", "kafka.on_rejected"),
    ] {
        let text = VALID.replace("topic = \"logs\"", &format!("topic = \"logs\"\n{extra}"));
        assert_config_rejected(&text, key);
    }
}

/// `memory_limit_bytes` too small for librdkafka's queue and the sources' read turns: exit 78,
/// the key, and the figure to raise it to.
#[test]
fn a_memory_limit_too_small_for_the_queue_names_the_figure_to_raise_it_to() {
    let text = VALID.replace(
        "data_dir = \"DATA\"",
        "data_dir = \"DATA\"\nmemory_limit_bytes = 8388608",
    );
    let text = text.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nqueue_max_bytes = 6291456",
    );
    assert_config_rejected(&text, "memory_limit_bytes");
    let out = run_config("validate", &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("raise it to"), "{stderr}");
    for (limit, key) in [("1024", "memory_limit_bytes"), ("-1", "memory_limit_bytes")] {
        let text = VALID.replace(
            "data_dir = \"DATA\"",
            &format!("data_dir = \"DATA\"\nmemory_limit_bytes = {limit}"),
        );
        assert_config_rejected(&text, key);
    }
}

/// Journald source mistakes: exit 78 with the key path.
#[test]
fn journald_mistakes_name_their_key() {
    for (keys, key) in [
        ("priority = \"error\"", "sources.journal.priority"),
        ("matches = [\"unit=x\"]", "sources.journal.matches[0]"),
        (
            "journal_directory = \"/j\"\njournal_files = [\"/j/a.journal\"]",
            "sources.journal.journal_files",
        ),
        ("max_entry_bytes = 0", "sources.journal.max_entry_bytes"),
        (
            "restart_backoff_max_ms = 10",
            "sources.journal.restart_backoff_max_ms",
        ),
        ("cursor = \"x\"", "sources.journal.cursor"),
    ] {
        let text = VALID.replace(
            "[kafka]",
            &format!("[sources.journal]\ntype = \"journald\"\n{keys}\n[kafka]"),
        );
        assert_config_rejected(&text, key);
    }
}

#[test]
fn validate_warns_about_settings_that_lose_data_by_design() {
    let quiet = run_config("validate", VALID);
    assert!(quiet.status.success());
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("warning"),
        "the defaults are safe"
    );
    let risky = VALID.replace(
        "include = [\"/var/log/app/*.log\"]",
        "include = [\"/var/log/app/*.log\"]\nread_from = \"end\"",
    ) + "oversize = \"drop\"\nretry_max_elapsed_secs = 60\n[spool]\nwhen_full = \"drop_newest\"\n";
    let out = run_config("validate", &risky);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "warnings do not fail validation: {stderr}"
    );
    for key in [
        "sources.app.read_from = \"end\"",
        "spool.when_full = \"drop_newest\"",
        "kafka.retry_max_elapsed_secs",
        "kafka.oversize = \"drop\"",
    ] {
        assert!(
            stderr.contains(&format!("warning: {key}")),
            "no warning for {key}: {stderr}"
        );
    }
}

/// Review finding 5: with the spool on, a record larger than a spool frame holds could never be
/// spooled (and wedged the spool); such a `max_message_bytes` is refused at load time.
#[test]
fn max_message_bytes_beyond_a_spool_frame_is_refused_with_the_spool_on() {
    let large = VALID.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nmax_message_bytes = 100000000",
    );
    assert_config_rejected(&large, "kafka.max_message_bytes");
    let without_spool = format!("{large}[spool]\nenabled = false\n");
    let out = run_config("validate", &without_spool);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
