//! `parse_syslog`: an RFC 3164 or RFC 5424 line becomes `@timestamp`, `message` and the ECS
//! `log.syslog.*` fields, structured data included.

use serde::Deserialize;

use super::{BuildError, Flow, Output, Read, Step, StepConfig, StepFailure, field_path, text_of};
use crate::event::Event;
use crate::pipeline::parse::syslog;
use crate::pipeline::path::FieldPath;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "super::message_field")]
    field: String,
    /// IANA time zone of timestamps written without one (RFC 3164); UTC when unset.
    #[serde(default)]
    timezone: Option<String>,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let timezone = self
            .timezone
            .as_deref()
            .map(|tz| {
                tz.parse::<chrono_tz::Tz>().map_err(|_| {
                    BuildError::new("timezone", format!("`{tz}` is not an IANA time zone"))
                })
            })
            .transpose()?;
        let paths = FIELDS
            .iter()
            .map(|name| Ok((*name, field_path("type", name)?)))
            .collect::<Result<_, BuildError>>()?;
        Ok(Step::ParseSyslog(ParseSyslog {
            field: field_path("field", &self.field)?,
            timezone,
            paths,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct ParseSyslog {
    field: FieldPath,
    timezone: Option<chrono_tz::Tz>,
    /// `FIELDS`, parsed once.
    paths: std::collections::HashMap<&'static str, FieldPath>,
}

/// Every field the step may set.
const FIELDS: &[&str] = &[
    "@timestamp",
    "message",
    "log.syslog.priority",
    "log.syslog.facility.code",
    "log.syslog.facility.name",
    "log.syslog.severity.code",
    "log.syslog.severity.name",
    "log.syslog.hostname",
    "log.syslog.appname",
    "log.syslog.procid",
    "log.syslog.msgid",
    "log.syslog.version",
    "log.syslog.structured_data",
];

pub fn outputs() -> Vec<Output> {
    FIELDS
        .iter()
        .filter_map(|f| crate::pipeline::path::FieldPath::parse(f).ok())
        .map(Output::Field)
        .collect()
}

impl ParseSyslog {
    /// A time without a year takes the year of the event's `@timestamp` (its read time, unless an
    /// earlier step set it), or the year before when that would put it in the future.
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let now = event.timestamp;
        let text = text_of(event, &self.field).ok_or_else(|| super::missing(&self.field))?;
        let parsed = syslog::parse(&text, now, self.timezone)
            .map_err(|e| StepFailure::new("invalid_syslog", format!("`{}`: {e}", self.field)))?;
        drop(text);
        if let Some(at) = parsed.timestamp {
            event.timestamp = at;
        }
        let fields = parsed
            .fields
            .into_iter()
            .chain([("message", serde_json::Value::String(parsed.message))]);
        for (name, value) in fields {
            if let Some(path) = self.paths.get(name) {
                super::set(event, path, value)?;
            }
        }
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        super::field_read(&self.field)
    }
}
