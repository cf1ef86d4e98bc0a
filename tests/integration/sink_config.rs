//! `logship-sink-es` on the command line: the example config validates, mistakes exit 78 with
//! the key's path, for `validate` and `run` alike.

use std::process::Command;

fn sink_es() -> Command {
    Command::new(env!("CARGO_BIN_EXE_logship-sink-es"))
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

fn run(command: &str, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sink.toml");
    std::fs::write(&path, text).expect("write");
    sink_es()
        .args([command, "-c"])
        .arg(&path)
        .output()
        .expect("run logship-sink-es")
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/logship-sink-es.toml");
    let out = sink_es()
        .args(["validate", "-c", example])
        .env("LOGSHIP_BROKERS", "127.0.0.1:9092")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
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
        for command in ["validate", "run"] {
            let out = run(command, &text);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
            assert!(
                stderr.contains(key),
                "{command} should name `{key}`: {stderr}"
            );
        }
    }
}

#[test]
fn version_is_printed() {
    let out = sink_es().arg("--version").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("logship-sink-es "));
}
