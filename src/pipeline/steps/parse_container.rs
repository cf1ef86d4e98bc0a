//! `parse_container`: Kubernetes container log lines (CRI, or docker's json-file) become
//! `@timestamp`, `stream` and `message`. Partial lines (CRI `P`, docker lines without a final
//! newline) are joined with the rest of their line, per file and stream; the joined event carries
//! the acknowledgements of every part, so no checkpoint passes a part before the whole is
//! delivered.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::ack::AckToken;
use crate::event::Event;
use crate::pipeline::access;
use crate::pipeline::parse::container::{self, ContainerLine, PartialMerger};
use crate::pipeline::path::{FieldPath, FieldRef, Fields};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_field")]
    field: String,
    /// "auto" (a line starting with `{` is docker's), "cri" or "docker".
    #[serde(default)]
    format: Format,
    /// Longest joined line; the rest of a longer one is cut off.
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
}

fn default_field() -> String {
    "message".into()
}
const fn default_max_bytes() -> usize {
    1024 * 1024
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
        Ok(Step::ParseContainer(ParseContainer {
            field: field_path("field", &self.field)?,
            format: self.format,
            max_bytes: self.max_bytes,
            stream_path: field_path("type", "stream")?,
            message_path: field_path("type", "message")?,
            file_path: field_path("type", "log.file.path")?,
            partials: HashMap::new(),
        }))
    }
}

/// Parts of one file's lines waiting for their end, with the parts' acknowledgements.
#[derive(Debug)]
struct Waiting {
    merger: PartialMerger,
    acks: Vec<AckToken>,
}

#[derive(Debug)]
pub struct ParseContainer {
    field: FieldPath,
    format: Format,
    max_bytes: usize,
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

impl ParseContainer {
    pub fn apply(&mut self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| {
            StepFailure::new("missing_field", format!("`{}` is missing", self.field))
        })?;
        let line = match self.format {
            Format::Auto => container::parse_auto(&text),
            Format::Cri => container::parse_cri(&text),
            Format::Docker => container::parse_docker(&text),
        }
        .map_err(|e| {
            StepFailure::new("invalid_container_line", format!("`{}`: {e}", self.field))
        })?;
        let line = ContainerLine {
            time: line.time,
            stream: line.stream,
            partial: line.partial,
            message: std::borrow::Cow::Owned(line.message.into_owned()),
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
            let max_bytes = self.max_bytes;
            let waiting = self.partials.entry(key).or_insert_with(|| Waiting {
                merger: PartialMerger::new(max_bytes),
                acks: Vec::new(),
            });
            waiting.merger.push(line);
            if let Some(token) = event.ack.take() {
                waiting.acks.push(token);
            }
            return Ok(Flow::Absorbed);
        }
        let (time, message) = match self.partials.remove(&key) {
            Some(mut waiting) => {
                let merged = waiting.merger.push(line);
                if let Some(token) = &mut event.ack {
                    for part in waiting.acks.drain(..) {
                        token.absorb(part);
                    }
                }
                match merged {
                    Some(merged) => (merged.time, merged.message),
                    None => return Ok(Flow::Absorbed),
                }
            }
            None => (line.time, line.message.into_owned()),
        };
        event.timestamp = time;
        let set = |event: &mut Event, path: &FieldPath, value: Value| {
            access::set(event, path, value).map_err(|e| StepFailure::new("conflict", e.to_string()))
        };
        set(event, &self.stream_path, Value::String(stream.to_owned()))?;
        set(event, &self.message_path, Value::String(message))?;
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        vec![Read {
            key: "field".into(),
            path: &self.field,
        }]
    }
}
