//! The event: the line and where it came from as typed fields, extra fields as a JSON map, and
//! the ack token that tells its source when it is delivered. Encoding to a Kafka record value
//! (one JSON object with Elastic Common Schema names) lives here.
//!
//! The core fields are typed rather than kept in the map because an event in a queue should cost
//! little more than its line: the origin's strings are shared by every event of a file.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::ack::AckToken;

/// One log event on its way to Kafka.
#[derive(Debug)]
pub struct Event {
    /// `@timestamp`: when the line was read (a pipeline may set it from the line).
    pub timestamp: DateTime<Utc>,
    /// `message`: the line, without its newline. `None` once a pipeline removed it or set it to
    /// something other than a string (which then lives in `fields`).
    pub message: Option<String>,
    /// `host.name`, `log.file.path`, `log.offset`. A pipeline that writes below `host` or `log`
    /// moves these into `fields` first (`pipeline::access`).
    pub origin: Option<FileOrigin>,
    /// Further fields, encoded after the core ones. Keys never repeat `@timestamp`, nor
    /// `message` while `message` is set, nor `host` or `log` while `origin` is set.
    pub fields: Map<String, Value>,
    /// Settled when Kafka acknowledges the record, or when the event is given up for a counted
    /// reason. `None` only for events nobody waits on (tests, benchmarks).
    pub ack: Option<AckToken>,
    /// Records of one stream share a key so they land on one partition in order.
    pub key: Option<Arc<[u8]>>,
    /// The Kafka topic, when a pipeline chose one (`route`, dead letters); else the configured
    /// topic.
    pub topic: Option<Arc<str>>,
}

/// Where a line came from in a file; the strings are shared by all lines of the file.
#[derive(Debug, Clone)]
pub struct FileOrigin {
    pub host: Arc<str>,
    pub path: Arc<str>,
    /// Byte offset of the line's first byte.
    pub offset: u64,
}

impl Event {
    /// An event for one line read from a file.
    pub fn from_file_line(message: String, read_at: DateTime<Utc>, origin: FileOrigin) -> Self {
        Self {
            timestamp: read_at,
            message: Some(message),
            origin: Some(origin),
            fields: Map::new(),
            ack: None,
            key: None,
            topic: None,
        }
    }

    /// Moves the event out, leaving an empty husk with the same time (for a step that keeps the
    /// event for later, such as a partial line waiting for its end).
    pub fn take(&mut self) -> Event {
        Event {
            timestamp: self.timestamp,
            message: self.message.take(),
            origin: self.origin.take(),
            fields: std::mem::take(&mut self.fields),
            ack: self.ack.take(),
            key: self.key.take(),
            topic: self.topic.take(),
        }
    }

    /// The Kafka record value: one JSON object.
    pub fn to_json(&self) -> Vec<u8> {
        let line = self.message.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(line + 160);
        // Strings, numbers and JSON maps always serialize into a Vec.
        serde_json::to_writer(&mut out, self).expect("an event serializes");
        out
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let core = 1 + usize::from(self.message.is_some()) + 2 * usize::from(self.origin.is_some());
        let mut map = serializer.serialize_map(Some(core + self.fields.len()))?;
        map.serialize_entry("@timestamp", &timestamp(self.timestamp))?;
        if let Some(message) = &self.message {
            map.serialize_entry("message", message)?;
        }
        if let Some(origin) = &self.origin {
            map.serialize_entry("host", &One("name", &*origin.host))?;
            map.serialize_entry("log", &Log { origin })?;
        }
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A JSON object with one entry.
struct One<'a, V: Serialize + ?Sized>(&'static str, &'a V);

impl<V: Serialize + ?Sized> Serialize for One<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// `{"file": {"path": …}, "offset": …}`
struct Log<'a> {
    origin: &'a FileOrigin,
}

impl Serialize for Log<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("file", &One("path", &*self.origin.path))?;
        map.serialize_entry("offset", &self.origin.offset)?;
        map.end()
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
            host: "node-1".into(),
            path: "/var/log/app.log".into(),
            offset: 42,
        };
        let at = DateTime::from_timestamp(1_795_305_600, 0).unwrap();
        let mut event = Event::from_file_line("hello \"x\"".into(), at, origin);
        event.fields.insert("service".into(), Value::from("api"));
        let json: Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "@timestamp": "2026-11-22T00:00:00.000000000Z",
                "message": "hello \"x\"",
                "host": { "name": "node-1" },
                "log": { "file": { "path": "/var/log/app.log" }, "offset": 42 },
                "service": "api"
            })
        );
    }

    #[test]
    fn timestamps_are_utc_with_nanoseconds() {
        let at = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.000000005Z");
    }
}
