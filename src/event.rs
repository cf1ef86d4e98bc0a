//! The event: a JSON object of fields (Elastic Common Schema names where one exists) plus the ack
//! token that tells its source when it is delivered. Encoding to a Kafka record value lives here.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::ack::AckToken;

/// One log event on its way to Kafka.
#[derive(Debug)]
pub struct Event {
    /// The event's fields; nested objects for dotted ECS names (`log.file.path`).
    pub fields: Map<String, Value>,
    /// Settled when Kafka acknowledges the record, or when the event is given up for a counted
    /// reason. `None` only for events nobody waits on (tests, `logship test`).
    pub ack: Option<AckToken>,
    /// Records of one stream share a key so they land on one partition in order.
    pub key: Option<std::sync::Arc<[u8]>>,
}

/// Where a line came from in a file.
#[derive(Debug, Clone, Copy)]
pub struct FileOrigin<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// Byte offset of the line's first byte.
    pub offset: u64,
}

impl Event {
    /// An event for one line read from a file.
    pub fn from_file_line(message: String, read_at: &str, origin: FileOrigin<'_>) -> Self {
        let mut fields = Map::new();
        fields.insert("@timestamp".into(), Value::String(read_at.to_owned()));
        fields.insert("message".into(), Value::String(message));
        let mut event = Self {
            fields,
            ack: None,
            key: None,
        };
        event.insert("host.name", Value::String(origin.host.to_owned()));
        event.insert("log.file.path", Value::String(origin.path.to_owned()));
        event.insert("log.offset", Value::from(origin.offset));
        event
    }

    /// Sets the field at a dotted path, creating (or replacing non-object) parents on the way.
    pub fn insert(&mut self, path: &str, value: Value) {
        let mut map = &mut self.fields;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_owned(), value);
                return;
            }
            let child = map
                .entry(part.to_owned())
                .and_modify(|v| {
                    if !v.is_object() {
                        *v = Value::Object(Map::new());
                    }
                })
                .or_insert_with(|| Value::Object(Map::new()));
            map = match child {
                Value::Object(inner) => inner,
                _ => unreachable!("the entry was just made an object"),
            };
        }
    }

    /// The field at a dotted path, if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut value = self.fields.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// The Kafka record value: the fields as one JSON object.
    pub fn to_json(&self) -> Vec<u8> {
        // A map of JSON values always serializes.
        serde_json::to_vec(&self.fields).expect("a JSON map serializes")
    }
}

/// `@timestamp` format: RFC 3339, UTC, nanoseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_line_encodes_with_ecs_names() {
        let origin = FileOrigin {
            host: "node-1",
            path: "/var/log/app.log",
            offset: 42,
        };
        let event = Event::from_file_line("hello".into(), "2026-11-22T00:00:00.000000000Z", origin);
        let json: Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "@timestamp": "2026-11-22T00:00:00.000000000Z",
                "message": "hello",
                "host": { "name": "node-1" },
                "log": { "file": { "path": "/var/log/app.log" }, "offset": 42 }
            })
        );
        assert_eq!(
            event.get("log.file.path"),
            Some(&Value::from("/var/log/app.log"))
        );
        assert_eq!(event.get("log.nope"), None);
    }

    #[test]
    fn insert_replaces_a_scalar_parent() {
        let mut event = Event {
            fields: Map::new(),
            ack: None,
            key: None,
        };
        event.insert("a", Value::from(1));
        event.insert("a.b", Value::from(2));
        assert_eq!(event.get("a.b"), Some(&Value::from(2)));
    }

    #[test]
    fn timestamps_are_utc_with_nanoseconds() {
        let at = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.000000005Z");
    }
}
