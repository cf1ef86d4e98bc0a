//! `parse_json`: a field holding a JSON object (the line, by default) becomes fields, at the top
//! level or below `target`.

use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::path::FieldPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field holding the JSON text.
    #[serde(default = "super::message_field")]
    field: String,
    /// Where the parsed value goes; unset: its keys become top-level fields.
    #[serde(default)]
    target: Option<String>,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::ParseJson(ParseJson {
            field: field_path("field", &self.field)?,
            target: self
                .target
                .as_deref()
                .map(|t| field_path("target", t))
                .transpose()?,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct ParseJson {
    field: FieldPath,
    target: Option<FieldPath>,
}

impl ParseJson {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        // A byte order mark before the JSON is not part of it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let value: Value = serde_json::from_str(text).map_err(|e| {
            StepFailure::new("invalid_json", format!("`{}` is not JSON: {e}", self.field))
        })?;
        match (&self.target, value) {
            (Some(target), value) => super::set(event, target, value)?,
            (None, Value::Object(map)) => {
                // The one key the event may refuse: check it before changing anything, so a
                // failed parse leaves the event as it was.
                if let Some(at) = map.get("@timestamp")
                    && at
                        .as_str()
                        .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
                {
                    return Err(StepFailure::new(
                        "conflict",
                        format!(
                            "`@timestamp` in the JSON is not an RFC 3339 time: {at}; parse it below a `target` and use parse_timestamp"
                        ),
                    ));
                }
                for (key, value) in map {
                    // Keys are not field paths (they may hold dots or spaces): set each as one
                    // top-level name.
                    super::set_key(event, key, value)?;
                }
            }
            (None, other) => {
                return Err(StepFailure::new(
                    "not_an_object",
                    format!(
                        "`{}` holds JSON that is not an object ({}); set `target` to keep it",
                        self.field,
                        kind(&other)
                    ),
                ));
            }
        }
        Ok(Flow::Next)
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![Output::Below(self.target.clone())]
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        vec![Read {
            key: "field".into(),
            path: &self.field,
        }]
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
