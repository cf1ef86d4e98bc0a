//! Field steps: `set` (a literal or a template), `rename`, `remove`, `copy`, `lowercase` and
//! `uppercase`. A step whose source field is missing does nothing; `set` with a template that
//! names a missing field fails (and `on_error` of the pipeline's default, keep, applies).

use serde::Deserialize;
use serde_json::Value;

use super::{
    BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, template,
    template_reads,
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

/// `rename`: `from` moves to `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    from: String,
    to: String,
}

#[derive(Debug, Clone)]
pub struct Rename {
    from: FieldPath,
    to: FieldPath,
}

impl StepConfig for RenameConfig {
    fn build(self) -> Result<Step, BuildError> {
        let from = field_path("from", &self.from)?;
        if from.as_str() == "@timestamp" {
            return Err(BuildError::new(
                "from",
                "`@timestamp` cannot be moved; use `copy`",
            ));
        }
        Ok(Step::Rename(Rename {
            from,
            to: field_path("to", &self.to)?,
        }))
    }
}

impl Rename {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        // Set first: a target the event cannot take leaves the field where it was.
        if let Some(value) = event.field(&self.from).map(FieldRef::to_value) {
            super::set(event, &self.to, value)?;
            access::remove(event, &self.from).map_err(super::conflict)?;
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
        let mut fields = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            let path = field_path(&format!("fields[{i}]"), f)?;
            if path.as_str() == "@timestamp" {
                return Err(BuildError::new(
                    format!("fields[{i}]"),
                    "`@timestamp` cannot be removed",
                ));
            }
            fields.push(path);
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
        self.fields
            .iter()
            .enumerate()
            .map(|(i, path)| Read {
                key: format!("fields[{i}]"),
                path,
            })
            .collect()
    }
}

/// `copy`: `from`'s value is also set at `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    from: String,
    to: String,
}

#[derive(Debug, Clone)]
pub struct Copy {
    from: FieldPath,
    to: FieldPath,
}

impl StepConfig for CopyConfig {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Copy(Copy {
            from: field_path("from", &self.from)?,
            to: field_path("to", &self.to)?,
        }))
    }
}

impl Copy {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        if let Some(value) = event.field(&self.from).map(FieldRef::to_value) {
            super::set(event, &self.to, value)?;
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

/// `lowercase` / `uppercase`: the string in `field` changes case; other values stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseConfig {
    field: String,
}

pub type LowercaseConfig = Lower;
pub type UppercaseConfig = Upper;

#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Lower(CaseConfig);
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Upper(CaseConfig);

#[derive(Debug, Clone)]
pub struct Lowercase {
    field: FieldPath,
}
#[derive(Debug, Clone)]
pub struct Uppercase {
    field: FieldPath,
}

impl StepConfig for Lower {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Lowercase(Lowercase {
            field: field_path("field", &self.0.field)?,
        }))
    }
}

impl StepConfig for Upper {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Uppercase(Uppercase {
            field: field_path("field", &self.0.field)?,
        }))
    }
}

fn change_case(
    event: &mut Event,
    field: &FieldPath,
    change: fn(&str) -> String,
) -> Result<Flow, StepFailure> {
    let Some(text) = event.field(field).and_then(|f| f.as_str().map(change)) else {
        return Ok(Flow::Next);
    };
    super::set(event, field, Value::String(text))?;
    Ok(Flow::Next)
}

impl Lowercase {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        change_case(event, &self.field, str::to_lowercase)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        vec![Read {
            key: "field".into(),
            path: &self.field,
        }]
    }
}

impl Uppercase {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        change_case(event, &self.field, str::to_uppercase)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        vec![Read {
            key: "field".into(),
            path: &self.field,
        }]
    }
}
