//! Field steps: `set` (a literal or a template), `rename`, `remove`, `copy`, `lowercase` and
//! `uppercase`. A step whose source field is missing does nothing; `set` with a template that
//! names a missing field fails (and `on_error` of the pipeline's default, keep, applies).

use serde::Deserialize;
use serde_json::Value;

use super::{
    BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, field_paths,
    list_reads, template, template_reads,
};
use crate::event::Event;
use crate::pipeline::access;
use crate::pipeline::path::{FieldPath, FieldRef, Fields};
use crate::pipeline::template::Template;

/// `set`: `field` takes `value`. A string value is a template (`"{{ service }}-{{ env }}"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    field: String,
    value: Value,
}

#[derive(Debug, Clone)]
pub struct Set {
    field: FieldPath,
    value: SetValue,
}

#[derive(Debug, Clone)]
enum SetValue {
    Literal(Value),
    Template(Template),
}

impl StepConfig for SetConfig {
    fn build(self) -> Result<Step, BuildError> {
        let value = match self.value {
            Value::String(text) => {
                let t = template("value", &text)?;
                if t.is_static() {
                    SetValue::Literal(Value::String(text))
                } else {
                    SetValue::Template(t)
                }
            }
            other => SetValue::Literal(other),
        };
        Ok(Step::Set(Set {
            field: field_path("field", &self.field)?,
            value,
        }))
    }
}

impl Set {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let value = match &self.value {
            SetValue::Literal(v) => v.clone(),
            SetValue::Template(t) => t
                .render_value(event)
                .map_err(|e| StepFailure::new("missing_field", e.to_string()))?,
        };
        super::set(event, &self.field, value)?;
        Ok(Flow::Next)
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![Output::Field(self.field.clone())]
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        match &self.value {
            SetValue::Template(t) => template_reads("value", t),
            SetValue::Literal(_) => Vec::new(),
        }
    }
}

/// `rename` and `copy`: `from`'s value is set at `to`; `rename` then removes `from`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RenameConfig(TransferConfig);
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct CopyConfig(TransferConfig);

/// A compiled `rename` or `copy`.
#[derive(Debug, Clone)]
pub struct Transfer {
    from: FieldPath,
    to: FieldPath,
    /// `rename`: `from` goes once `to` is set.
    remove_from: bool,
}

impl TransferConfig {
    fn build(self, remove_from: bool) -> Result<Transfer, BuildError> {
        let from = field_path("from", &self.from)?;
        if remove_from && from.as_str() == "@timestamp" {
            return Err(BuildError::new(
                "from",
                "`@timestamp` cannot be moved; use `copy`",
            ));
        }
        Ok(Transfer {
            from,
            to: field_path("to", &self.to)?,
            remove_from,
        })
    }
}

impl StepConfig for RenameConfig {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Rename(self.0.build(true)?))
    }
}

impl StepConfig for CopyConfig {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Copy(self.0.build(false)?))
    }
}

impl Transfer {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        // Set first: a target the event cannot take leaves the field where it was.
        if let Some(value) = event.field(&self.from).map(FieldRef::to_value) {
            super::set(event, &self.to, value)?;
            if self.remove_from {
                access::remove(event, &self.from).map_err(super::conflict)?;
            }
        }
        Ok(Flow::Next)
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![Output::Field(self.to.clone())]
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        vec![Read {
            key: "from".into(),
            path: &self.from,
        }]
    }
}

/// `remove`: every field in `fields` goes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveConfig {
    fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Remove {
    fields: Vec<FieldPath>,
}

impl StepConfig for RemoveConfig {
    fn build(self) -> Result<Step, BuildError> {
        let fields = field_paths("fields", &self.fields)?;
        if let Some(i) = fields.iter().position(|f| f.as_str() == "@timestamp") {
            return Err(BuildError::new(
                format!("fields[{i}]"),
                "`@timestamp` cannot be removed",
            ));
        }
        if fields.is_empty() {
            return Err(BuildError::new("fields", "names no field"));
        }
        Ok(Step::Remove(Remove { fields }))
    }
}

impl Remove {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        for field in &self.fields {
            access::remove(event, field).map_err(super::conflict)?;
        }
        Ok(Flow::Next)
    }

    /// A field to remove must be one that can exist: a misspelt name is caught at load time.
    pub fn reads(&self) -> Vec<Read<'_>> {
        list_reads("fields", &self.fields)
    }
}

/// `lowercase` / `uppercase`: the string in `field` changes case; other values stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseConfig {
    field: String,
}

#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct LowercaseConfig(CaseConfig);
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct UppercaseConfig(CaseConfig);

/// A compiled `lowercase` or `uppercase`.
#[derive(Debug, Clone)]
pub struct ChangeCase {
    field: FieldPath,
    change: fn(&str) -> String,
}

impl StepConfig for LowercaseConfig {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Lowercase(ChangeCase {
            field: field_path("field", &self.0.field)?,
            change: str::to_lowercase,
        }))
    }
}

impl StepConfig for UppercaseConfig {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Uppercase(ChangeCase {
            field: field_path("field", &self.0.field)?,
            change: str::to_uppercase,
        }))
    }
}

impl ChangeCase {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        if let Some(text) = event
            .field(&self.field)
            .and_then(|f| f.as_str().map(self.change))
        {
            super::set(event, &self.field, Value::String(text))?;
        }
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}
