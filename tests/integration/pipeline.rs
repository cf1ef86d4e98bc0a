//! Pipelines: the data-driven cases in tests/data/pipeline/ and the example configuration's
//! `[[tests]]` through `logship test`; a failing case's diff; and a pipeline in the running agent
//! against the real broker (parse, route, drop, dead letters, partial container lines).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::harness::{
    Agent, NO_AUTO_CREATE, Setup, TopicReader, assert_config_rejected, brokers, create_topic,
    logship,
};

/// What every data-driven case file is appended to: a source and Kafka settings that are valid
/// but never used by `logship test`.
const HEADER: &str = r#"
data_dir = "DATA"
[sources.app]
type = "file"
include = ["/nonexistent/*.log"]
[kafka]
brokers = ["127.0.0.1:9"]
topic = "logs"
dead_letter_topic = "dead-letters"
"#;

fn logship_test(config: &Path) -> Output {
    logship()
        .args(["test", "-c"])
        .arg(config)
        .output()
        .expect("run logship test")
}

fn case_file(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("cases.toml");
    let header = HEADER.replace("DATA", &dir.join("data").display().to_string());
    std::fs::write(&path, format!("{header}\n{body}")).expect("write cases");
    path
}

#[test]
fn every_data_driven_case_passes() {
    let cases = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pipeline");
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases)
        .expect("tests/data/pipeline")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "case files: {files:?}");
    let (mut passed, mut written) = (0, 0);
    for file in files {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = std::fs::read_to_string(&file).expect("read cases");
        written += body.lines().filter(|l| l.trim() == "[[tests]]").count();
        let out = logship_test(&case_file(dir.path(), &body));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}:\n{stdout}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        passed += stdout.lines().filter(|l| l.starts_with("ok ")).count();
    }
    assert_eq!(passed, written, "every case ran and passed");
    assert!(written >= 35, "only {written} cases");
}

/// The example configuration's own `[[tests]]`, plus the sample logs of tests/data/samples/
/// through its pipelines.
#[test]
fn the_example_configuration_tests_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/config.example.toml")).expect("example");
    let samples =
        std::fs::read_to_string(format!("{root}/tests/data/samples/example_pipelines.toml"))
            .expect("samples");
    let config = dir.path().join("example.toml");
    std::fs::write(&config, format!("{example}\n{samples}")).expect("write");
    let out = logship()
        .args(["test", "-c"])
        .arg(&config)
        .env("LOGSHIP_DATA_DIR", dir.path())
        .output()
        .expect("run logship test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 8,
        "{stdout}"
    );
}

#[test]
fn a_failing_case_prints_a_diff_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = r#"
[pipelines.p]
steps = [{ type = "parse_logfmt" }]
[[tests]]
name = "wrong expectation"
pipeline = "p"
[[tests.inputs]]
message = "status=200"
[[tests.outputs]]
status = 200
"#;
    let out = logship_test(&case_file(dir.path(), body));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  wrong expectation"), "{stdout}");
    assert!(stdout.contains("- status: 200"), "{stdout}");
    assert!(stdout.contains("+ status: \"200\""), "{stdout}");
}

fn rejected(body: &str, key: &str) {
    assert_config_rejected(&format!("{HEADER}\n{body}"), key);
}

#[test]
fn an_invalid_regex_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"parse_regex\", pattern = '(?P<a>[' }]",
        "pipelines.p.steps[0].pattern",
    );
}

#[test]
fn an_unknown_step_type_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"parse_xml\" }]",
        "pipelines.p.steps[0].type",
    );
}

#[test]
fn an_unknown_key_in_a_step_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"parse_json\", feild = \"x\" }]",
        "pipelines.p.steps[0].feild",
    );
}

#[test]
fn a_template_naming_a_field_nothing_writes_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"set\", field = \"a\", value = \"{{ servce }}\" }]",
        "pipelines.p.steps[0].value",
    );
}

#[test]
fn removing_a_field_nothing_writes_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"remove\", fields = [\"tiem\"] }]",
        "pipelines.p.steps[0].fields[0]",
    );
}

#[test]
fn a_condition_syntax_error_is_a_config_error() {
    rejected(
        "[pipelines.p]\nsteps = [{ type = \"drop\", when = 'message = \"x\"' }]",
        "pipelines.p.steps[0].when",
    );
}

#[test]
fn a_source_naming_a_missing_pipeline_is_a_config_error() {
    assert_config_rejected(
        &HEADER.replace("include = [", "pipeline = \"nope\"\ninclude = ["),
        "sources.app.pipeline",
    );
}

/// A pipeline in the running agent: parsed fields, a routed topic, dropped lines that still let
/// the checkpoint pass, dead letters, partial container lines joined into one record, and a
/// log-derived metric.
#[test]
fn the_agent_runs_pipelines_against_the_broker() {
    let brokers = brokers();
    let main = create_topic(&brokers, "pipe-main", 1);
    let errors = create_topic(&brokers, "pipe-errors", 1);
    let dead = create_topic(&brokers, "pipe-dead", 1);
    let setup = Setup::new();
    let pipeline = format!(
        r#"dead_letter_topic = "{dead}"
[pipelines.p]
steps = [
  {{ type = "parse_container", on_error = "dead_letter" }},
  {{ type = "parse_logfmt" }},
  {{ type = "drop", when = 'level == "debug"' }},
  {{ type = "route", routes = [{{ when = 'level == "error"', topic = "{errors}" }}] }},
  {{ type = "metric", name = "test_pod_lines_total", labels = {{ stream = "{{{{ stream }}}}" }} }},
]
"#
    );
    let config = setup.config(&brokers, &main, "pipeline = \"p\"", &pipeline);
    let path = setup.logs.join("pod.log");
    let lines = [
        "2026-11-22T10:00:00Z stdout F level=info msg=one",
        "2026-11-22T10:00:01Z stdout F level=debug msg=noise",
        "2026-11-22T10:00:02Z stderr F level=error msg=bad",
        "2026-11-22T10:00:03Z stdout P level=info msg=\"joined ",
        "2026-11-22T10:00:04Z stdout F line\"",
        "not a container line",
        "2026-11-22T10:00:05Z stdout F level=debug msg=last-and-dropped",
    ];
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let agent = Agent::start(&setup, &config);

    let read = |topic: &str, count: usize| -> Vec<serde_json::Value> {
        TopicReader::new(&brokers, topic)
            .read_until(count, Duration::from_secs(1), Duration::from_secs(30))
            .iter()
            .map(|r| r.value.clone())
            .collect()
    };
    let main_records = read(&main, 2);
    let msgs: Vec<&str> = main_records
        .iter()
        .map(|v| v["msg"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(msgs, ["one", "joined line"]);
    assert_eq!(
        main_records[1]["@timestamp"],
        "2026-11-22T10:00:03Z".replace('Z', ".000000000Z")
    );
    let error_records = read(&errors, 1);
    assert_eq!(error_records.len(), 1);
    assert_eq!(error_records[0]["msg"], "bad");
    assert_eq!(error_records[0]["stream"], "stderr");
    let dead_records = read(&dead, 1);
    assert_eq!(dead_records.len(), 1);
    assert_eq!(dead_records[0]["message"], "not a container line");
    assert_eq!(
        dead_records[0]["error"]["type"],
        "0:parse_container:invalid_container_line"
    );

    // Dropped lines are settled: the checkpoint reaches the end of the file, past the last
    // (dropped) line.
    setup.wait_for_checkpoints_at_eof([path.as_path()]);
    let dropped =
        agent.metric("logship_pipeline_events_dropped_total{pipeline=\"p\",reason=\"drop\"}");
    assert_eq!(dropped, Some(2.0));
    // The log-derived counter counts what reached its step.
    assert_eq!(
        agent.metric("test_pod_lines_total{stream=\"stdout\"}"),
        Some(2.0)
    );
    assert_eq!(
        agent.metric("test_pod_lines_total{stream=\"stderr\"}"),
        Some(1.0)
    );
    let failed = agent.metric(
        "logship_pipeline_step_errors_total{pipeline=\"p\",step=\"0:parse_container\",kind=\"invalid_container_line\"}",
    );
    assert_eq!(failed, Some(1.0));
}

/// A topic chosen from the event's own data that does not exist (the broker creates no topics
/// here, `NO_AUTO_CREATE`): that record goes to the dead-letter topic with the reason, counted as
/// `failed{reason="unknown_topic"}`; the records around it are delivered in order, and the
/// checkpoint still reaches the end of the file.
#[test]
fn a_routed_topic_that_does_not_exist_is_dead_lettered_and_the_rest_flows() {
    let brokers = brokers();
    let known = create_topic(&brokers, "route-known", 1);
    let fallback = create_topic(&brokers, "route-fallback", 1);
    let dead = create_topic(&brokers, "route-dead", 1);
    let ghost = format!("{known}-ghost");
    let setup = Setup::new();
    let kafka = format!(
        r#"fallback_topic = "{fallback}"
dead_letter_topic = "{dead}"
{NO_AUTO_CREATE}
[pipelines.p]
steps = [{{ type = "parse_logfmt" }}]
"#
    );
    let config = setup.config(&brokers, "{{ team }}", "pipeline = \"p\"", &kafka);
    let path = setup.logs.join("app.log");
    let lines = [
        format!("team={known} msg=one"),
        format!("team={ghost} msg=lost"),
        format!("team={known} msg=two"),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    let agent = Agent::start(&setup, &config);
    setup.wait_for_checkpoints_at_eof([path.as_path()]);

    let read = |topic: &str, count: usize| {
        TopicReader::new(&brokers, topic)
            .read_until(count, Duration::from_secs(1), Duration::from_secs(30))
            .to_vec()
    };
    let delivered = read(&known, 2);
    let msgs: Vec<&str> = delivered
        .iter()
        .map(|r| r.value["msg"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(msgs, ["one", "two"]);
    let letters = read(&dead, 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].value["msg"], "lost", "the event as it was");
    let header = |name: &str| {
        letters[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("logship.rejected.reason"), Some("unknown_topic"));
    assert_eq!(header("logship.rejected.topic"), Some(ghost.as_str()));
    assert!(
        read(&fallback, 0).is_empty(),
        "a topic was chosen: no fallback"
    );
    let failed = |action: &str| {
        agent.metric_value(&format!(
            "logship_kafka_events_failed_total{{topic=\"{{{{ team }}}}\",reason=\"unknown_topic\",action=\"{action}\"}}"
        ))
    };
    assert_eq!((failed("dead_lettered"), failed("dropped")), (1.0, 0.0));
}
