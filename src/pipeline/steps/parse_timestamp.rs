//! `parse_timestamp`: a field's time text (or epoch number) becomes `@timestamp` (or `target`),
//! trying strftime formats, RFC 3339 and epochs in order, in a configured time zone.

use serde::Deserialize;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path};
use crate::event::Event;
use crate::pipeline::parse::timestamp::TimestampParser;
use crate::pipeline::path::{FieldPath, Fields};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field holding the time.
    field: String,
    /// Tried in order: "rfc3339", "rfc2822", "unix", "unix_ms", "unix_us", "unix_ns", or a
    /// strftime format such as "%d/%b/%Y:%H:%M:%S %z".
    formats: Vec<String>,
    /// IANA time zone for times written without an offset; UTC when unset.
    #[serde(default)]
    timezone: Option<String>,
    /// Where the time goes.
    #[serde(default = "default_target")]
    target: String,
}

fn default_target() -> String {
    "@timestamp".into()
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let parser =
            TimestampParser::new(&self.formats, self.timezone.as_deref()).map_err(|e| {
                let key = match e {
                    crate::pipeline::parse::timestamp::TimestampConfigError::UnknownTimezone(_) => {
                        "timezone"
                    }
                    _ => "formats",
                };
                BuildError::new(key, e)
            })?;
        Ok(Step::ParseTimestamp(ParseTimestamp {
            field: field_path("field", &self.field)?,
            target: field_path("target", &self.target)?,
            parser,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct ParseTimestamp {
    field: FieldPath,
    target: FieldPath,
    parser: TimestampParser,
}

impl ParseTimestamp {
    /// A time without a year takes the year of the event's `@timestamp` (its read time, unless an
    /// earlier step set it), or the year before when that would put it in the future.
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let now = event.timestamp;
        let value = event
            .field(&self.field)
            .ok_or_else(|| super::missing(&self.field))?
            .to_value();
        let at = self
            .parser
            .parse(&value, now)
            .map_err(|e| StepFailure::new("invalid_timestamp", format!("`{}`: {e}", self.field)))?;
        if self.target.as_str() == "@timestamp" {
            event.timestamp = at;
        } else {
            super::set(
                event,
                &self.target,
                serde_json::Value::String(crate::event::timestamp(at)),
            )?;
        }
        Ok(Flow::Next)
    }

    pub fn outputs(&self) -> Vec<Output> {
        vec![Output::Field(self.target.clone())]
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}
