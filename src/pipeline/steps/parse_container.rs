//! `parse_container`: Kubernetes container log lines (CRI, or docker's json-file) become
//! `@timestamp`, `stream` and `message`. Partial lines (CRI `P`, docker lines without a final
//! newline) are joined with the rest of their line, per file and stream; the joined event carries
//! the acknowledgements of every part, so no checkpoint passes a part before the whole is
//! delivered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::parse::container::{self, ContainerLine, PartialMerger};
use crate::pipeline::path::{FieldPath, FieldRef, Fields};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "super::message_field")]
    field: String,
    /// "auto" (a line starting with `{` is docker's), "cri" or "docker".
    #[serde(default)]
    format: Format,
    /// Longest joined line; the rest of a longer one is cut off and counted.
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
    /// Parts whose end has not come for this long are shipped as they are (the container died
    /// mid-line, or its next line went to a new file), so they never hold a checkpoint back.
    #[serde(default = "default_partial_timeout_ms")]
    partial_timeout_ms: u64,
}

const fn default_max_bytes() -> usize {
    1024 * 1024
}
const fn default_partial_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Auto,
    Cri,
    Docker,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        if self.max_bytes == 0 {
            return Err(BuildError::new("max_bytes", "must be positive"));
        }
        if self.partial_timeout_ms == 0 {
            return Err(BuildError::new("partial_timeout_ms", "must be positive"));
        }
        Ok(Step::ParseContainer(ParseContainer {
            field: field_path("field", &self.field)?,
            format: self.format,
            max_bytes: self.max_bytes,
            partial_timeout: Duration::from_millis(self.partial_timeout_ms),
            stream_path: field_path("type", "stream")?,
            message_path: field_path("type", "message")?,
            file_path: field_path("type", "log.file.path")?,
            partials: HashMap::new(),
        }))
    }
}

/// Parts of one file's stream waiting for their end: the first part's event (whose
/// acknowledgement has absorbed the later parts') and the text so far.
#[derive(Debug)]
struct Waiting {
    merger: PartialMerger,
    first: Event,
    since: Instant,
}

#[derive(Debug)]
pub struct ParseContainer {
    field: FieldPath,
    format: Format,
    max_bytes: usize,
    partial_timeout: Duration,
    stream_path: FieldPath,
    message_path: FieldPath,
    file_path: FieldPath,
    /// By file (`log.file.path`) and stream.
    partials: HashMap<(Arc<str>, &'static str), Waiting>,
}

impl Clone for ParseContainer {
    /// A copy starts with nothing waiting: held parts belong to the pipeline that read them.
    fn clone(&self) -> Self {
        Self {
            field: self.field.clone(),
            format: self.format,
            max_bytes: self.max_bytes,
            partial_timeout: self.partial_timeout,
            stream_path: self.stream_path.clone(),
            message_path: self.message_path.clone(),
            file_path: self.file_path.clone(),
            partials: HashMap::new(),
        }
    }
}

pub fn outputs() -> Vec<Output> {
    ["@timestamp", "stream", "message"]
        .iter()
        .filter_map(|f| FieldPath::parse(f).ok())
        .map(Output::Field)
        .collect()
}

/// Moves `part`'s acknowledgement into `into`'s, so settling `into` settles both.
fn absorb(into: &mut Event, part: &mut Event) {
    match (&mut into.ack, part.ack.take()) {
        (Some(token), Some(other)) => token.absorb(other),
        (slot @ None, other) => *slot = other,
        (Some(_), None) => {}
    }
}

impl ParseContainer {
    pub fn apply(&mut self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        let line = match self.format {
            Format::Auto => container::parse_auto(&text),
            Format::Cri => container::parse_cri(&text),
            Format::Docker => container::parse_docker(&text),
        }
        .map_err(|e| {
            StepFailure::new("invalid_container_line", format!("`{}`: {e}", self.field))
        })?;
        let line = ContainerLine {
            message: Cow::Owned(line.message.into_owned()),
            ..line
        };
        drop(text);
        let stream = line.stream.as_str();
        let file: Arc<str> = match event.field(&self.file_path) {
            Some(FieldRef::Str(path)) => Arc::from(path),
            Some(FieldRef::Json(Value::String(path))) => Arc::from(path.as_str()),
            _ => Arc::from(""),
        };
        let key = (file, stream);
        if line.partial {
            match self.partials.get_mut(&key) {
                Some(waiting) => {
                    waiting.merger.push(line);
                    absorb(&mut waiting.first, event);
                }
                None => {
                    let mut merger = PartialMerger::new(self.max_bytes);
                    merger.push(line);
                    let waiting = Waiting {
                        merger,
                        first: event.take(),
                        since: Instant::now(),
                    };
                    self.partials.insert(key, waiting);
                }
            }
            return Ok(Flow::Absorbed);
        }
        let (time, message) = match self.partials.remove(&key) {
            Some(mut waiting) => {
                let time = line.time;
                let merged = waiting.merger.push(line);
                absorb(event, &mut waiting.first);
                match merged {
                    Some(merged) => {
                        if merged.truncated {
                            crate::metrics::container_line_truncated();
                        }
                        (merged.time, merged.message)
                    }
                    None => (time, String::new()),
                }
            }
            None => (line.time, line.message.into_owned()),
        };
        self.finish(event, time, stream, message)?;
        Ok(Flow::Next)
    }

    fn finish(
        &self,
        event: &mut Event,
        time: chrono::DateTime<chrono::Utc>,
        stream: &str,
        message: String,
    ) -> Result<(), StepFailure> {
        event.timestamp = time;
        super::set(event, &self.stream_path, Value::String(stream.to_owned()))?;
        super::set(event, &self.message_path, Value::String(message))
    }

    /// Parts that waited longer than `partial_timeout_ms`, as events (the joined text so far);
    /// they go on through the rest of the pipeline.
    pub fn flush_expired(&mut self, now: Instant) -> Vec<Event> {
        let timeout = self.partial_timeout;
        let expired: Vec<_> = self
            .partials
            .iter()
            .filter(|(_, w)| now.duration_since(w.since) >= timeout)
            .map(|(key, _)| key.clone())
            .collect();
        self.ship(expired, "partial container line shipped after its timeout")
    }

    /// Every part held, as events: the source stopped, so their ends will not come in this run.
    pub fn flush_all(&mut self) -> Vec<Event> {
        let keys: Vec<_> = self.partials.keys().cloned().collect();
        self.ship(keys, "partial container line shipped as its source stopped")
    }

    fn ship(&mut self, keys: Vec<(Arc<str>, &'static str)>, why: &'static str) -> Vec<Event> {
        let mut out = Vec::new();
        for key in keys {
            let Some(mut waiting) = self.partials.remove(&key) else {
                continue;
            };
            let merged = waiting.merger.flush();
            let time = merged.first().map_or(waiting.first.timestamp, |m| m.time);
            let text: String = merged.into_iter().map(|m| m.message).collect();
            let mut event = waiting.first;
            // The event was parsed before it waited; only the text and stream are left to set.
            if self.finish(&mut event, time, key.1, text).is_ok() {
                tracing::debug!(file = %key.0, stream = key.1, "{why}");
                out.push(event);
            }
        }
        out
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}
