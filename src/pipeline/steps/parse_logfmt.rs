//! `parse_logfmt`: `key=value key2="quoted value"` pairs become fields, at the top level or below
//! `target`. Values stay strings; a bare key is `true`; a repeated key keeps its last value.

use serde::Deserialize;

use super::object::{ObjectConfig, ObjectTarget};
use super::{BuildError, Flow, Step, StepConfig, StepFailure};
use crate::event::Event;
use crate::pipeline::parse::logfmt;

#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Config(ObjectConfig);

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::ParseLogfmt(ParseLogfmt(self.0.build()?)))
    }
}

#[derive(Debug, Clone)]
pub struct ParseLogfmt(pub ObjectTarget);

impl ParseLogfmt {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let text = self.0.text(event)?;
        let pairs = logfmt::parse(&text)
            .map_err(|e| StepFailure::new("invalid_logfmt", format!("`{}`: {e}", self.0.field)))?;
        drop(text);
        self.0.put(event, pairs.into_iter().collect())?;
        Ok(Flow::Next)
    }
}
