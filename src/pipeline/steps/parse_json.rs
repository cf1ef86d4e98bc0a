//! `parse_json`: a field holding a JSON object (the line, by default) becomes fields, at the top
//! level or below `target`.

use serde::Deserialize;
use serde_json::Value;

use super::object::{ObjectConfig, ObjectTarget};
use super::{BuildError, Flow, Step, StepConfig, StepFailure};
use crate::event::Event;
use crate::pipeline::path::json_type;

#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Config(ObjectConfig);

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::ParseJson(ParseJson(self.0.build()?)))
    }
}

#[derive(Debug, Clone)]
pub struct ParseJson(pub ObjectTarget);

impl ParseJson {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let settings = &self.0;
        let text = settings.text(event)?;
        // A byte order mark before the JSON is not part of it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let value: Value = serde_json::from_str(text).map_err(|e| {
            StepFailure::new(
                "invalid_json",
                format!("`{}` is not JSON: {e}", settings.field),
            )
        })?;
        match (&settings.target, value) {
            (Some(target), value) => super::set(event, target, value)?,
            (None, Value::Object(map)) => settings.put(event, map)?,
            (None, other) => {
                return Err(StepFailure::new(
                    "not_an_object",
                    format!(
                        "`{}` holds JSON that is not an object ({}); set `target` to keep it",
                        settings.field,
                        json_type(&other)
                    ),
                ));
            }
        }
        Ok(Flow::Next)
    }
}
