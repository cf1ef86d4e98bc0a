//! `[[tests]]` in the configuration, run by `logship test`: input lines (with the file path and
//! host they came from) go through a pipeline, and the events that come out are compared with the
//! expected ones, field by field. Only the fields a case names are compared; `"@topic"` names the
//! Kafka topic the event would go to (set by `route` or a dead letter). A case with
//! `dropped = true` expects no event at all.
//!
//! ```toml
//! [[tests]]
//! name = "an access line"
//! pipeline = "nginx"
//! [[tests.inputs]]
//! message = '10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8"'
//! [[tests.outputs]]
//! "http.response.status_code" = 200
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::Pipeline;
use super::path::{FieldPath, Fields};
use crate::event::{Event, FileOrigin};

/// One `[[tests]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub pipeline: String,
    pub inputs: Vec<Input>,
    /// Expected events in order: field path → value. Nested tables are paths too.
    #[serde(default)]
    pub outputs: Vec<toml::Table>,
    /// No event comes out.
    #[serde(default)]
    pub dropped: bool,
}

/// One input line and where it came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub message: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_host")]
    pub host: String,
    /// When the line was read (`@timestamp` before any parsing); the test's start when unset.
    #[serde(default)]
    pub timestamp: Option<String>,
}

fn default_path() -> String {
    "/var/log/test.log".into()
}
fn default_host() -> String {
    "test-host".into()
}

/// The pseudo-field naming an event's topic in `outputs`.
const TOPIC: &str = "@topic";

/// The result of one case: `None` when it passed, else the report of what differed.
pub fn run(case: &TestCase, pipeline: &Pipeline, default_topic: &str) -> Option<String> {
    let mut pipeline = pipeline.clone();
    let now = Utc::now();
    let mut produced = Vec::new();
    for (i, input) in case.inputs.iter().enumerate() {
        let event = match event_of(input, now) {
            Ok(event) => event,
            Err(reason) => return Some(format!("inputs[{i}]: {reason}")),
        };
        produced.extend(pipeline.process(event).into_event());
    }
    compare(case, &produced, default_topic)
}

fn event_of(input: &Input, now: DateTime<Utc>) -> Result<Event, String> {
    let at = match &input.timestamp {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map_err(|e| format!("timestamp `{t}` is not RFC 3339: {e}"))?
            .with_timezone(&Utc),
        None => now,
    };
    let origin = FileOrigin {
        host: Arc::from(input.host.as_str()),
        path: Arc::from(input.path.as_str()),
        offset: 0,
    };
    Ok(Event::from_file_line(input.message.clone(), at, origin))
}

fn compare(case: &TestCase, produced: &[Event], default_topic: &str) -> Option<String> {
    let mut report = String::new();
    let expected = if case.dropped { 0 } else { case.outputs.len() };
    if produced.len() != expected {
        let _ = writeln!(
            report,
            "  expected {expected} event(s), got {}{}",
            produced.len(),
            if case.dropped {
                " (the case says dropped = true)"
            } else {
                ""
            }
        );
    }
    for (i, (want, got)) in case.outputs.iter().zip(produced).enumerate() {
        let mut wanted = BTreeMap::new();
        flatten("", want, &mut wanted);
        let mut lines = String::new();
        for (path, value) in &wanted {
            let actual = actual_value(got, path, default_topic);
            if actual.as_ref() != Some(value) {
                let got_text = actual.map_or_else(|| "missing".to_owned(), |v| v.to_string());
                let _ = writeln!(lines, "    - {path}: {value}\n    + {path}: {got_text}");
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(
                report,
                "  output {i}:\n{lines}    event: {}",
                String::from_utf8_lossy(&got.to_json())
            );
        }
    }
    for (i, extra) in produced.iter().enumerate().skip(expected) {
        let _ = writeln!(
            report,
            "  unexpected output {i}: {}",
            String::from_utf8_lossy(&extra.to_json())
        );
    }
    (!report.is_empty()).then_some(report)
}

fn actual_value(event: &Event, path: &str, default_topic: &str) -> Option<Value> {
    if path == TOPIC {
        return Some(Value::String(
            event.topic.as_deref().unwrap_or(default_topic).to_owned(),
        ));
    }
    let path = FieldPath::parse(path).ok()?;
    event.field(&path).map(|f| f.to_value())
}

/// Leaves of a TOML table as dotted paths with JSON values.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, Value>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            other => {
                out.insert(path, toml_to_json(other));
            }
        }
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
