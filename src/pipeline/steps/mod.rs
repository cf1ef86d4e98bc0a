//! Pipeline steps: a closed set, one file per kind (the field steps share `fields.rs`), each
//! with its TOML settings, its compiled form and how it changes an event. Everything that can be
//! checked is checked when the configuration loads: regexes compile, templates and conditions
//! parse, and the fields they read can exist (`known.rs`).

mod drop;
mod fields;
mod kubernetes_path;
mod metric;
mod object;
mod parse_container;
mod parse_json;
mod parse_logfmt;
mod parse_regex;
mod parse_syslog;
mod parse_timestamp;
mod redact;
mod route;
mod sample;
mod throttle;

use serde::de::DeserializeOwned;

use super::access;
use super::path::FieldPath;
use super::template::Template;
use crate::event::Event;

pub use fields::{ChangeCase, Remove, Set, Transfer};
pub use route::check_topic_name;

/// Every step type, as written in `type = "…"`.
pub const STEP_TYPES: &[&str] = &[
    "parse_json",
    "parse_regex",
    "parse_logfmt",
    "parse_syslog",
    "parse_container",
    "parse_timestamp",
    "set",
    "rename",
    "remove",
    "copy",
    "lowercase",
    "uppercase",
    "drop",
    "sample",
    "throttle",
    "redact",
    "kubernetes_path",
    "route",
    "metric",
];

/// One compiled step.
#[derive(Debug, Clone)]
pub enum Step {
    ParseJson(parse_json::ParseJson),
    ParseRegex(parse_regex::ParseRegex),
    ParseLogfmt(parse_logfmt::ParseLogfmt),
    ParseSyslog(parse_syslog::ParseSyslog),
    ParseContainer(parse_container::ParseContainer),
    ParseTimestamp(parse_timestamp::ParseTimestamp),
    Set(Set),
    Rename(Transfer),
    Remove(Remove),
    Copy(Transfer),
    Lowercase(ChangeCase),
    Uppercase(ChangeCase),
    Drop(drop::Drop),
    Sample(sample::Sample),
    Throttle(throttle::Throttle),
    Redact(redact::Redact),
    KubernetesPath(kubernetes_path::KubernetesPath),
    Route(route::Route),
    Metric(metric::Metric),
}

/// What happens to the event after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// On to the next step.
    Next,
    /// Dropped on purpose, for the reason given (a metric label).
    Drop(&'static str),
    /// Merged into a later event that will carry its acknowledgement (partial container lines).
    Absorbed,
}

/// A step could not do its work on this event (a parser met input it cannot parse, a template
/// named a missing field). The step's `on_error` decides what follows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct StepFailure {
    /// A short label for metrics: `no_match`, `invalid_json`, `missing_field`, …
    pub kind: &'static str,
    pub reason: String,
}

impl StepFailure {
    pub fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }
}

/// A step's settings are wrong; `key` is relative to the step's table (`pattern`,
/// `routes[1].when`).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildError {
    pub key: String,
    pub reason: String,
}

impl BuildError {
    pub fn new(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// What a step may write, for the load-time check that fields read later can exist.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// This field.
    Field(FieldPath),
    /// Any field below this one (`None`: any field at all), as JSON and logfmt parsers write
    /// whatever the line holds.
    Below(Option<FieldPath>),
}

/// A field a step reads, with the key that names it, for the same check.
#[derive(Debug, Clone)]
pub struct Read<'a> {
    pub key: String,
    pub path: &'a FieldPath,
}

/// Whether a step type is a parser (only parsers take `on_error`).
pub fn is_parser(kind: &str) -> bool {
    kind.starts_with("parse_")
}

/// A step's settings as written; `build` checks and compiles them.
pub trait StepConfig: DeserializeOwned {
    fn build(self) -> Result<Step, BuildError>;
}

/// Deserializes a step's settings into the type `build` asks for; the configuration loader
/// implements it so that key paths and lines stay exact.
pub trait Load {
    type Error;
    fn load<T: DeserializeOwned>(&mut self) -> Result<T, Self::Error>;
}

/// Builds a step of type `kind`. `None` for an unknown type; the outer error is the loader's
/// (an unknown key, a wrong type), the inner one the step's own checks.
pub fn build<L: Load>(
    kind: &str,
    loader: &mut L,
) -> Option<Result<Result<Step, BuildError>, L::Error>> {
    fn with<T: StepConfig, L: Load>(loader: &mut L) -> Result<Result<Step, BuildError>, L::Error> {
        Ok(loader.load::<T>()?.build())
    }
    Some(match kind {
        "parse_json" => with::<parse_json::Config, L>(loader),
        "parse_regex" => with::<parse_regex::Config, L>(loader),
        "parse_logfmt" => with::<parse_logfmt::Config, L>(loader),
        "parse_syslog" => with::<parse_syslog::Config, L>(loader),
        "parse_container" => with::<parse_container::Config, L>(loader),
        "parse_timestamp" => with::<parse_timestamp::Config, L>(loader),
        "set" => with::<fields::SetConfig, L>(loader),
        "rename" => with::<fields::RenameConfig, L>(loader),
        "remove" => with::<fields::RemoveConfig, L>(loader),
        "copy" => with::<fields::CopyConfig, L>(loader),
        "lowercase" => with::<fields::LowercaseConfig, L>(loader),
        "uppercase" => with::<fields::UppercaseConfig, L>(loader),
        "drop" => with::<drop::Config, L>(loader),
        "sample" => with::<sample::Config, L>(loader),
        "throttle" => with::<throttle::Config, L>(loader),
        "redact" => with::<redact::Config, L>(loader),
        "kubernetes_path" => with::<kubernetes_path::Config, L>(loader),
        "route" => with::<route::Config, L>(loader),
        "metric" => with::<metric::Config, L>(loader),
        _ => return None,
    })
}

impl Step {
    /// Applies the step to `event`.
    pub fn apply(&mut self, event: &mut Event) -> Result<Flow, StepFailure> {
        match self {
            Step::ParseJson(s) => s.apply(event),
            Step::ParseRegex(s) => s.apply(event),
            Step::ParseLogfmt(s) => s.apply(event),
            Step::ParseSyslog(s) => s.apply(event),
            Step::ParseContainer(s) => s.apply(event),
            Step::ParseTimestamp(s) => s.apply(event),
            Step::Set(s) => s.apply(event),
            Step::Rename(s) | Step::Copy(s) => s.apply(event),
            Step::Remove(s) => s.apply(event),
            Step::Lowercase(s) | Step::Uppercase(s) => s.apply(event),
            Step::Drop(_) => Ok(Flow::Drop("drop")),
            Step::Sample(s) => Ok(s.apply(event)),
            Step::Throttle(s) => Ok(s.apply(event)),
            Step::Redact(s) => s.apply(event),
            Step::KubernetesPath(s) => s.apply(event),
            Step::Route(s) => s.apply(event),
            Step::Metric(s) => s.apply(event),
        }
    }

    /// What the step may write.
    pub fn outputs(&self) -> Vec<Output> {
        match self {
            Step::ParseJson(parse_json::ParseJson(s))
            | Step::ParseLogfmt(parse_logfmt::ParseLogfmt(s)) => s.outputs(),
            Step::ParseRegex(s) => s.outputs(),
            Step::ParseSyslog(_) => parse_syslog::outputs(),
            Step::ParseContainer(_) => parse_container::outputs(),
            Step::ParseTimestamp(s) => s.outputs(),
            Step::Set(s) => s.outputs(),
            Step::Rename(s) | Step::Copy(s) => s.outputs(),
            Step::KubernetesPath(_) => kubernetes_path::outputs(),
            Step::Remove(_)
            | Step::Lowercase(_)
            | Step::Uppercase(_)
            | Step::Drop(_)
            | Step::Sample(_)
            | Step::Throttle(_)
            | Step::Redact(_)
            | Step::Route(_)
            | Step::Metric(_) => Vec::new(),
        }
    }

    /// The fields the step reads, with the keys that name them.
    pub fn reads(&self) -> Vec<Read<'_>> {
        match self {
            Step::ParseJson(parse_json::ParseJson(s))
            | Step::ParseLogfmt(parse_logfmt::ParseLogfmt(s)) => s.reads(),
            Step::ParseRegex(s) => s.reads(),
            Step::ParseSyslog(s) => s.reads(),
            Step::ParseContainer(s) => s.reads(),
            Step::ParseTimestamp(s) => s.reads(),
            Step::Set(s) => s.reads(),
            Step::Rename(s) | Step::Copy(s) => s.reads(),
            Step::Lowercase(s) | Step::Uppercase(s) => s.reads(),
            Step::Sample(s) => s.reads(),
            Step::Throttle(s) => s.reads(),
            Step::Redact(s) => s.reads(),
            Step::KubernetesPath(s) => s.reads(),
            Step::Route(s) => s.reads(),
            Step::Metric(s) => s.reads(),
            Step::Remove(s) => s.reads(),
            Step::Drop(_) => Vec::new(),
        }
    }
}

/// The field parse steps read when `field` is not set.
pub fn message_field() -> String {
    "message".into()
}

/// Sets a field for a step; fails the step when the path runs through a value that is not an
/// object (or `@timestamp` gets something other than a time).
pub fn set(
    event: &mut Event,
    path: &FieldPath,
    value: serde_json::Value,
) -> Result<(), StepFailure> {
    access::set(event, path, value).map_err(conflict)
}

/// Sets a top-level field named by a parsed key (see `access::set_key`).
pub fn set_key(
    event: &mut Event,
    key: String,
    value: serde_json::Value,
) -> Result<(), StepFailure> {
    access::set_key(event, key, value).map_err(conflict)
}

/// A write the event's shape does not allow.
pub fn conflict(error: access::AccessError) -> StepFailure {
    StepFailure::new("conflict", error.to_string())
}

/// The step's input field is not there.
pub fn missing(path: &FieldPath) -> StepFailure {
    StepFailure::new("missing_field", format!("`{path}` is missing"))
}

impl Step {
    /// Events the step held and gives up waiting for (partial container lines past their
    /// timeout); they continue with the next step.
    pub fn flush_expired(&mut self, now: std::time::Instant) -> Vec<Event> {
        match self {
            Step::ParseContainer(s) => s.flush_expired(now),
            _ => Vec::new(),
        }
    }

    /// Every event the step holds, whatever its time: the input ended.
    pub fn flush_all(&mut self) -> Vec<Event> {
        match self {
            Step::ParseContainer(s) => s.flush_all(),
            _ => Vec::new(),
        }
    }
}

/// Parses a field path from a step's settings, naming `key` on failure.
pub fn field_path(key: &str, text: &str) -> Result<FieldPath, BuildError> {
    FieldPath::parse(text).map_err(|e| BuildError::new(key, e))
}

/// Parses a template from a step's settings, naming `key` on failure.
pub fn template(key: &str, text: &str) -> Result<Template, BuildError> {
    Template::parse(text).map_err(|e| BuildError::new(key, e))
}

/// Field paths from a list in a step's settings, each error naming `key[i]`.
pub fn field_paths(key: &str, texts: &[String]) -> Result<Vec<FieldPath>, BuildError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| field_path(&format!("{key}[{i}]"), text))
        .collect()
}

/// The read of a step's one input, its `field` key.
pub fn field_read(path: &FieldPath) -> Vec<Read<'_>> {
    vec![Read {
        key: "field".into(),
        path,
    }]
}

/// The reads of a list of fields named by `key[i]`.
pub fn list_reads<'a>(key: &str, paths: &'a [FieldPath]) -> Vec<Read<'a>> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| Read {
            key: format!("{key}[{i}]"),
            path,
        })
        .collect()
}

/// The reads of every placeholder in `template`, named by `key`.
pub fn template_reads<'a>(key: &str, template: &'a Template) -> Vec<Read<'a>> {
    template
        .fields()
        .into_iter()
        .map(|path| Read {
            key: key.to_owned(),
            path,
        })
        .collect()
}

/// The text of a field as parsers take it: strings as they are, other values as JSON text.
pub fn text_of<'a>(event: &'a Event, path: &FieldPath) -> Option<std::borrow::Cow<'a, str>> {
    use super::path::{FieldRef, Fields};
    match event.field(path)? {
        FieldRef::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
        FieldRef::Json(serde_json::Value::String(s)) => Some(std::borrow::Cow::Borrowed(s)),
        other => Some(std::borrow::Cow::Owned(match other.to_value() {
            serde_json::Value::String(s) => s,
            value => value.to_string(),
        })),
    }
}
