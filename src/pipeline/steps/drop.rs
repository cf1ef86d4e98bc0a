//! `drop`: the event goes, on purpose and counted. Its condition is the step's `when`, which
//! `drop` requires (the loader checks it): `{ type = "drop", when = 'level == "debug"' }`.

use serde::Deserialize;

use super::{BuildError, Step, StepConfig};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

#[derive(Debug, Clone)]
pub struct Drop;

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        Ok(Step::Drop(Drop))
    }
}
