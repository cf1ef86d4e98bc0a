//! `parse_regex`: named captures of a regex become fields, converted to int, float or bool where
//! `types` says so.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::path::FieldPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "super::message_field")]
    field: String,
    /// A regex with named captures: `(?P<status>\d{3})` or `(?<status>\d{3})`. A capture name
    /// may not hold dots; use `__` for one (`http__status` → `http.status`).
    pattern: String,
    /// Conversions by capture name: "int", "float", "bool" (or "string").
    #[serde(default)]
    types: BTreeMap<String, Conversion>,
    /// Where the captures go; unset: top level.
    #[serde(default)]
    target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    String,
    Int,
    Float,
    Bool,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let regex = Regex::new(&self.pattern).map_err(|e| BuildError::new("pattern", e))?;
        let target = self
            .target
            .as_deref()
            .map(|t| field_path("target", t))
            .transpose()?;
        let mut captures = Vec::new();
        for (group, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            let dotted = name.replace("__", ".");
            let full = match &target {
                Some(t) => format!("{t}.{dotted}"),
                None => dotted,
            };
            captures.push(Capture {
                group,
                path: field_path("pattern", &full)?,
                conversion: self.types.get(name).copied().unwrap_or(Conversion::String),
            });
        }
        if captures.is_empty() {
            return Err(BuildError::new(
                "pattern",
                "has no named captures, so it would set no field",
            ));
        }
        if let Some(unknown) = self
            .types
            .keys()
            .find(|k| regex.capture_names().flatten().all(|n| n != k.as_str()))
        {
            return Err(BuildError::new(
                format!("types.{unknown}"),
                "names no capture of `pattern`",
            ));
        }
        Ok(Step::ParseRegex(ParseRegex {
            field: field_path("field", &self.field)?,
            regex,
            captures,
        }))
    }
}

#[derive(Debug, Clone)]
struct Capture {
    group: usize,
    path: FieldPath,
    conversion: Conversion,
}

#[derive(Debug, Clone)]
pub struct ParseRegex {
    field: FieldPath,
    regex: Regex,
    captures: Vec<Capture>,
}

impl ParseRegex {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        let Some(found) = self.regex.captures(&text) else {
            return Err(StepFailure::new(
                "no_match",
                format!("`{}` does not match the pattern", self.field),
            ));
        };
        let mut values = Vec::with_capacity(self.captures.len());
        for capture in &self.captures {
            let Some(m) = found.get(capture.group) else {
                continue;
            };
            // Access logs write `-` for "none" (no bytes sent, no referrer): no typed value.
            if capture.conversion != Conversion::String && m.as_str() == "-" {
                continue;
            }
            values.push((&capture.path, convert(m.as_str(), capture)?));
        }
        drop(found);
        drop(text);
        for (path, value) in values {
            super::set(event, path, value)?;
        }
        Ok(Flow::Next)
    }

    pub fn outputs(&self) -> Vec<Output> {
        self.captures
            .iter()
            .map(|c| Output::Field(c.path.clone()))
            .collect()
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}

fn convert(text: &str, capture: &Capture) -> Result<Value, StepFailure> {
    let bad = |what: &str| {
        StepFailure::new(
            "conversion",
            format!("`{}` captured `{text}`, which is not {what}", capture.path),
        )
    };
    Ok(match capture.conversion {
        Conversion::String => Value::String(text.to_owned()),
        Conversion::Int => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        Conversion::Float => {
            let f: f64 = text.parse().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad("a finite number"))?
        }
        Conversion::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Value::Bool(true),
            "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
    })
}
