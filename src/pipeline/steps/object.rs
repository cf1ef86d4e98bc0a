//! What the parsers that turn a field into an object of fields (`parse_json`, `parse_logfmt`)
//! share: the field they read, and where the object goes: its keys at the top level, or the
//! whole object below `target`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BuildError, Output, Read, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::path::FieldPath;

/// The settings as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectConfig {
    /// The field holding the text to parse.
    #[serde(default = "super::message_field")]
    field: String,
    /// Where the parsed value goes; unset: its keys become top-level fields.
    #[serde(default)]
    target: Option<String>,
}

impl ObjectConfig {
    pub fn build(self) -> Result<ObjectTarget, BuildError> {
        Ok(ObjectTarget {
            field: field_path("field", &self.field)?,
            target: self
                .target
                .as_deref()
                .map(|t| field_path("target", t))
                .transpose()?,
        })
    }
}

/// The compiled settings.
#[derive(Debug, Clone)]
pub struct ObjectTarget {
    pub field: FieldPath,
    pub target: Option<FieldPath>,
}

impl ObjectTarget {
    /// The text to parse.
    pub fn text<'a>(&self, event: &'a Event) -> Result<Cow<'a, str>, StepFailure> {
        text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))
    }

    /// Puts a parsed object below `target`, or its keys at the top level. Keys are names, not
    /// field paths (they may hold dots or spaces). At the top level `@timestamp` is the one key
    /// the event may refuse: it is checked first, so a failed step leaves the event as it was.
    pub fn put(&self, event: &mut Event, object: Map<String, Value>) -> Result<(), StepFailure> {
        if let Some(target) = &self.target {
            return super::set(event, target, Value::Object(object));
        }
        if let Some(at) = object.get("@timestamp")
            && at
                .as_str()
                .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
        {
            return Err(StepFailure::new(
                "conflict",
                format!(
                    "`@timestamp` in `{}` is not an RFC 3339 time: {at}; parse it below a `target` and use parse_timestamp",
                    self.field
                ),
            ));
        }
        for (key, value) in object {
            super::set_key(event, key, value)?;
        }
        Ok(())
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![Output::Below(self.target.clone())]
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileOrigin;
    use serde_json::json;

    #[test]
    fn a_refused_timestamp_leaves_the_event_as_it_was() {
        let origin = FileOrigin {
            host: "h".into(),
            path: "/var/log/a.log".into(),
            offset: 0,
        };
        let mut event = Event::from_file_line("x".into(), chrono::Utc::now(), origin);
        let before = event.to_json();
        let settings = ObjectConfig {
            field: "message".into(),
            target: None,
        }
        .build()
        .unwrap();
        let Value::Object(object) = json!({"a": 1, "@timestamp": "yesterday", "b": 2}) else {
            unreachable!()
        };
        let failure = settings.put(&mut event, object).unwrap_err();
        assert_eq!(failure.kind, "conflict");
        assert_eq!(event.to_json(), before, "nothing was set");
    }
}
