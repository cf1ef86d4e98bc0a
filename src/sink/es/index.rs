//! The index a record is written to: a template over the record's own fields and its own time,
//! for example `logs-{{ service.name }}-%Y.%m.%d`. The time is the record's `@timestamp`
//! (RFC 3339), else the Kafka record's timestamp, never the wall clock, so a replay writes every
//! record to the index it went to the first time.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use crate::sink::record::record_time;

use crate::pipeline::template::{MissingField, Template, TemplateError};

/// Why an index template is refused.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("`{0}` holds a date format chrono does not know")]
    Date(String),
}

/// A parsed index template.
#[derive(Debug, Clone)]
pub struct IndexTemplate {
    text: String,
    names_fields: bool,
    /// The template of the last date seen: records of one batch mostly share their day.
    last: Option<(String, Template)>,
}

impl IndexTemplate {
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let names_fields = !Template::parse(text)?.is_static();
        if StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
            return Err(IndexError::Date(text.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            names_fields,
            last: None,
        })
    }

    /// Whether the template names record fields (and so needs a fallback for records without).
    pub fn names_fields(&self) -> bool {
        self.names_fields
    }

    /// The index for a record with `fields`, written at `time`, lower-cased as Elasticsearch
    /// requires. Date formats (`%Y`, `%m`, `%d`, `%H`) apply to the template's own text: a field
    /// value with a `%` in it stays as it is.
    pub fn render(
        &mut self,
        fields: &Map<String, Value>,
        time: DateTime<Utc>,
    ) -> Result<String, MissingField> {
        let dated = time
            .format_with_items(StrftimeItems::new(&self.text))
            .to_string();
        let template = match &self.last {
            Some((text, template)) if *text == dated => template,
            _ => {
                // The dated text parses: the template did, and dates add no braces.
                let template = Template::parse(&dated).map_err(|_| MissingField(dated.clone()))?;
                &self.last.insert((dated, template)).1
            }
        };
        Ok(template.render(fields)?.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn fields_and_the_records_own_date_make_the_index() {
        let mut template =
            IndexTemplate::parse("logs-{{ service.name }}-%Y.%m.%d").expect("template");
        let record =
            fields(json!({"@timestamp": "2026-11-22T23:59:59Z", "service": {"name": "Web%d"}}));
        let time = record_time(&record, Some(0)).expect("time");
        assert_eq!(
            template.render(&record, time).expect("index"),
            "logs-web%d-2026.11.22"
        );
        let missing = fields(json!({"message": "x"}));
        assert!(template.render(&missing, time).is_err());
        assert!(template.names_fields());
        assert!(
            !IndexTemplate::parse("logs-%Y")
                .expect("dated")
                .names_fields()
        );
        assert!(matches!(
            IndexTemplate::parse("logs-%Q"),
            Err(IndexError::Date(_))
        ));
    }

    #[test]
    fn the_kafka_timestamp_stands_in_for_a_missing_one() {
        let record = fields(json!({"message": "x", "@timestamp": "not a time"}));
        let time = record_time(&record, Some(1_795_000_000_000)).expect("time");
        assert_eq!(time.to_rfc3339(), "2026-11-18T11:06:40+00:00");
        assert_eq!(record_time(&record, None), None);
    }
}
