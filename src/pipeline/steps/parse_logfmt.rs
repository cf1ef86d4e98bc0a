//! `parse_logfmt`: `key=value key2="quoted value"` pairs become fields, at the top level or below
//! `target`. Values stay strings; a bare key is `true`; a repeated key keeps its last value.

use serde::Deserialize;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::parse::logfmt;
use crate::pipeline::path::FieldPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "super::message_field")]
    field: String,
    #[serde(default)]
    target: Option<String>,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::ParseLogfmt(ParseLogfmt {
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
pub struct ParseLogfmt {
    field: FieldPath,
    target: Option<FieldPath>,
}

impl ParseLogfmt {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        let pairs = logfmt::parse(&text)
            .map_err(|e| StepFailure::new("invalid_logfmt", format!("`{}`: {e}", self.field)))?;
        drop(text);
        let mut object = serde_json::Map::new();
        for (key, value) in pairs {
            object.insert(key, value);
        }
        match &self.target {
            Some(target) => super::set(event, target, serde_json::Value::Object(object))?,
            None => {
                for (key, value) in object {
                    super::set_key(event, key, value)?;
                }
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
