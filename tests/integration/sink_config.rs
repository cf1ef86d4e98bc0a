//! The sink binaries on the command line: the example configs validate, mistakes exit 78 with
//! the key's path, for `validate` and `run` alike.

use std::process::Command;

fn sink_es() -> Command {
    Command::new(env!("CARGO_BIN_EXE_logship-sink-es"))
}

fn sink_s3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_logship-sink-s3"))
}

const VALID: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
group_id = "es"
topics = ["logs"]

[elasticsearch]
urls = ["http://127.0.0.1:9200"]
index = "logs-%Y.%m.%d"
"#;

/// `validate` and `run` both exit 78 on `text` and name `key`.
fn assert_rejected(program: fn() -> Command, text: &str, key: &str) {
    for command in ["validate", "run"] {
        let out = run_with(program(), command, text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
        assert!(
            stderr.contains(key),
            "{command} should name `{key}`: {stderr}"
        );
    }
}

fn run_with(mut program: Command, command: &str, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sink.toml");
    std::fs::write(&path, text).expect("write");
    program
        .args([command, "-c"])
        .arg(&path)
        .output()
        .expect("run logship-sink-es")
}

#[test]
fn the_example_configs_are_valid() {
    for (mut program, example) in [
        (sink_es(), "logship-sink-es.toml"),
        (sink_s3(), "logship-sink-s3.toml"),
    ] {
        let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let out = program
            .args(["validate", "-c", &path])
            .env("LOGSHIP_BROKERS", "127.0.0.1:9092")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{example}: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
}

#[test]
fn s3_mistakes_exit_78_naming_the_key() {
    let valid = VALID.replace(
        "[elasticsearch]\nurls = [\"http://127.0.0.1:9200\"]\nindex = \"logs-%Y.%m.%d\"\n",
        "[s3]\nurl = \"s3://bucket/prefix\"\n",
    );
    for (text, key) in [
        (
            valid.replace("s3://bucket", "gs://bucket"),
            "s3.url (line 8)",
        ),
        (
            format!("{valid}time_partition = \"%Q\"\n"),
            "s3.time_partition",
        ),
        (format!("{valid}max_records = 0\n"), "s3.max_records"),
        (valid.replace("[s3]", "[s4]"), "s3"),
    ] {
        assert_rejected(sink_s3, &text, key);
    }
}

#[test]
fn mistakes_exit_78_naming_the_key() {
    for (text, key) in [
        (VALID.replace("urls", "url"), "elasticsearch.url (line 8)"),
        (VALID.replace("group_id = \"es\"\n", ""), "kafka.group_id"),
        (
            VALID.replace("logs-%Y", "logs-{{ service }}-%Y"),
            "elasticsearch.fallback_index",
        ),
        (
            VALID.replace("127.0.0.1:9092", "nohost"),
            "kafka.brokers[0]",
        ),
        (
            format!("{VALID}max_in_flight = 0\n"),
            "elasticsearch.max_in_flight",
        ),
        (
            VALID.replace("[elasticsearch]", "[elastic]"),
            "elasticsearch",
        ),
    ] {
        assert_rejected(sink_es, &text, key);
    }
}

#[test]
fn version_is_printed() {
    let out = sink_es().arg("--version").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("logship-sink-es "));
}
