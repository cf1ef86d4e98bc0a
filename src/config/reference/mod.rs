//! The drift tests of the configuration's documentation: `docs/configuration.md` names every key
//! the code takes and no other, with its type and an enum's values, and the example files
//! (`config.example.toml`, `examples/logship-sink-*.toml`) show every key too (set, or in a
//! commented-out line). The code is the source of truth:
//!
//! - `agent_keys` and `sink_keys` walk the raw config structs from their roots with
//!   `recorder`, a serde `Deserializer` that records the field names serde derive hands it (its
//!   static `FIELDS` lists) and follows `Option`, `Vec`, maps and nested structs. Sources and
//!   steps are chosen by their `type` key outside serde, so each type in `SOURCE_TYPES` and
//!   `STEP_TYPES` is walked through the loader's own dispatch (`source`, `steps::build`) with a
//!   loader that records instead of loading. The few keys the loader takes off by hand before
//!   serde sees the rest (`sources`, `pipelines`, `tests`, each source's and step's `type`, a
//!   step's `when` and `on_error`) are added here, next to a note of where the code reads them.
//! - `markdown` reads the key tables of the reference; `example` reads what an example shows.
//!
//! A field added to a config struct without a row in the reference fails
//! `the_reference_documents_every_key_and_only_those`; a row for a key the code does not take
//! fails it too; so does a type that does not match or an enum value the row does not name.

mod example;
mod markdown;
mod recorder;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::document::Document;
use super::es_sink::{EsConfig, EsSettings};
use super::s3_sink::{S3Config, S3Settings};
use super::sink::{SinkRoot, SinkSection};
use super::{ConfigError, RootConfig, SOURCE_TYPES, source};
use crate::pipeline::OnError;
use crate::pipeline::cases::TestCase;
use crate::pipeline::steps::{self, Load, STEP_TYPES};
use recorder::{KeyId, KeyInfo, Keys, record, record_key};

/// Every key of the agent's configuration (`logship`).
fn agent_keys() -> Keys {
    let keys = RefCell::new(Keys::new());
    walk(record::<RootConfig>(&keys, None, ""));
    // `Config::from_toml` takes `sources`, `pipelines` and `tests` off the root;
    // `sources_settings` takes each source's `type` and dispatches with `source`.
    by_hand(&keys, "sources", "table", &[]);
    by_hand(&keys, "sources.<>.type", "string", SOURCE_TYPES);
    for kind in SOURCE_TYPES {
        let mut loader = Recording::new(&keys, kind, "sources.<>");
        let outcome = source(kind, &mut loader, &Document::new(""), "");
        loader.check(outcome);
    }
    // `pipeline::pipelines` takes `steps` off each pipeline; `pipeline::stage` takes `type`,
    // `when` and `on_error` off each step and dispatches with `steps::build`. `stage` reads
    // `on_error` as a string; its values are those of `OnError`, whose serde names are walked.
    by_hand(&keys, "pipelines", "table", &[]);
    by_hand(&keys, "pipelines.<>.steps", "array", &[]);
    by_hand(&keys, "pipelines.<>.steps[].type", "string", STEP_TYPES);
    walk(record_key::<String>(
        &keys,
        None,
        "pipelines.<>.steps[].when",
    ));
    walk(record_key::<OnError>(
        &keys,
        None,
        "pipelines.<>.steps[].on_error",
    ));
    for kind in STEP_TYPES {
        let mut loader = Recording::new(&keys, kind, "pipelines.<>.steps[]");
        let outcome = steps::build(kind, &mut loader);
        loader.check(outcome);
    }
    // `cases` deserializes `tests` as a whole.
    walk(record_key::<Vec<TestCase>>(&keys, None, "tests"));
    keys.into_inner()
}

/// Every key of the sinks' configurations (`logship-sink-es`, `logship-sink-s3`): what they share,
/// and each one's own section, which `SinkConfig::from_toml` takes off the root.
fn sink_keys() -> Keys {
    let keys = RefCell::new(Keys::new());
    walk(record::<SinkRoot>(&keys, None, ""));
    walk(record_key::<EsConfig>(&keys, None, EsSettings::SECTION));
    walk(record_key::<S3Config>(&keys, None, S3Settings::SECTION));
    keys.into_inner()
}

fn walk(outcome: Result<(), String>) {
    if let Err(reason) = outcome {
        panic!("{reason}");
    }
}

fn by_hand(keys: &RefCell<Keys>, path: &str, kind: &'static str, values: &[&'static str]) {
    keys.borrow_mut().insert(
        KeyId::new(None, path),
        KeyInfo {
            kind,
            values: values.to_vec(),
        },
    );
}

/// A `Load` for the loader's dispatchers that records the keys of the type asked for, under
/// `path` and the source or step type, and then fails, so the dispatcher never goes on to check
/// the placeholder values (which would fail for reasons of their own).
struct Recording<'k> {
    keys: &'k RefCell<Keys>,
    kind: &'k str,
    path: &'k str,
    walked: Option<Result<(), String>>,
}

const RECORDED: &str = "recorded, not loaded";

impl<'k> Recording<'k> {
    fn new(keys: &'k RefCell<Keys>, kind: &'k str, path: &'k str) -> Self {
        Self {
            keys,
            kind,
            path,
            walked: None,
        }
    }

    /// The dispatcher knew the type and asked for its keys, which were walked to the end.
    fn check<T>(self, outcome: Option<Result<T, ConfigError>>) {
        let kind = self.kind;
        match (outcome, self.walked) {
            (Some(Err(ConfigError::Invalid { reason, .. })), Some(Ok(())))
                if reason == RECORDED => {}
            (None, _) => panic!("`{kind}` is listed as a type but the dispatcher does not know it"),
            (_, Some(Err(reason))) => panic!("{reason}"),
            (_, _) => panic!("the dispatcher for `{kind}` did not load its keys"),
        }
    }
}

impl Load for Recording<'_> {
    type Error = ConfigError;

    fn load<T: DeserializeOwned>(&mut self) -> Result<T, ConfigError> {
        self.walked = Some(record::<T>(self.keys, Some(self.kind), self.path));
        Err(ConfigError::Invalid {
            key: self.path.to_owned(),
            line: None,
            reason: RECORDED.to_owned(),
        })
    }
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What is wrong between the code's keys and the reference's rows for one program.
fn reference_problems(program: &str, code: &Keys, rows: &markdown::Rows) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, info) in code {
        let Some(row) = rows.get(key) else {
            problems.push(format!("{program}: {key} has no row"));
            continue;
        };
        if row.kind != info.kind {
            problems.push(format!(
                "{program}: {key} (line {}) is documented as {:?}; the code takes {:?}",
                row.line, row.kind, info.kind
            ));
        }
        for value in &info.values {
            if !row.text.contains(&format!("\"{value}\"")) {
                problems.push(format!(
                    "{program}: {key} (line {}) does not name the value \"{value}\"",
                    row.line
                ));
            }
        }
    }
    for (key, row) in rows {
        if !code.contains_key(key) {
            problems.push(format!(
                "{program}: {key} (line {}) is documented, but the code takes no such key",
                row.line
            ));
        }
    }
    problems
}

/// What is wrong between the code's keys and the keys the examples show.
fn example_problems(files: &[&str], code: &Keys) -> Vec<String> {
    let mut shown = BTreeSet::new();
    for file in files {
        shown.extend(example::shown(&read(file), code, STEP_TYPES));
    }
    let mut problems = Vec::new();
    let names = files.join(" and ");
    for key in code.keys() {
        if !shown.contains(key) {
            problems.push(format!("{names} do not show {key}"));
        }
    }
    for key in &shown {
        if !code.contains_key(key) {
            problems.push(format!("{names} show {key}, which the code does not take"));
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(variant: Option<&str>, path: &str) -> KeyId {
        KeyId::new(variant, path)
    }

    #[test]
    fn the_walk_finds_nested_optional_and_listed_keys_with_their_kinds() {
        let agent = agent_keys();
        let info = |variant, path| {
            agent
                .get(&key(variant, path))
                .unwrap_or_else(|| panic!("{path} ({variant:?}) not found"))
        };
        assert_eq!(info(None, "kafka.tls.ca_file").kind, "string");
        assert_eq!(info(None, "kafka.tls").kind, "table");
        assert_eq!(info(None, "kafka.headers").kind, "table");
        assert_eq!(info(None, "spool.max_bytes").kind, "integer");
        assert_eq!(info(None, "spool.enabled").kind, "boolean");
        let mode = info(Some("file"), "sources.<>.multiline.mode");
        assert!(mode.values.contains(&"halt_with"), "{mode:?}");
        assert_eq!(
            info(Some("route"), "pipelines.<>.steps[].routes[].topic").kind,
            "string"
        );
        let types = info(Some("parse_regex"), "pipelines.<>.steps[].types");
        assert_eq!(types.values, ["string", "int", "float", "bool"]);
        assert_eq!(info(Some("set"), "pipelines.<>.steps[].value").kind, "any");
        assert_eq!(info(None, "tests[].inputs[].host").kind, "string");
        assert_eq!(info(None, "tests[].outputs").kind, "array");
        assert!(!agent.contains_key(&key(None, "sources.<>.include")));
        assert!(!agent.contains_key(&key(Some("drop"), "pipelines.<>.steps[].field")));
        let sinks = sink_keys();
        assert!(sinks.contains_key(&key(None, "kafka.group_id")));
        assert!(sinks.contains_key(&key(None, "elasticsearch.auth.api_key")));
        assert!(sinks.contains_key(&key(None, "s3.multipart_part_bytes")));
    }

    #[test]
    fn the_reference_documents_every_key_and_only_those() {
        let text = read("docs/configuration.md");
        let rows = markdown::rows(&text).unwrap_or_else(|e| panic!("docs/configuration.md: {e}"));
        let mut problems = reference_problems("logship", &agent_keys(), &rows.agent);
        problems.extend(reference_problems("sinks", &sink_keys(), &rows.sinks));
        assert_none(problems);
    }

    #[test]
    fn the_examples_show_every_key_and_only_those() {
        let mut problems = example_problems(&["config.example.toml"], &agent_keys());
        problems.extend(example_problems(
            &[
                "examples/logship-sink-es.toml",
                "examples/logship-sink-s3.toml",
            ],
            &sink_keys(),
        ));
        assert_none(problems);
    }
}
