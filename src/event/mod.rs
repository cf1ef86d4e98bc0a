//! The event: the line and where it came from as typed fields, extra fields as a JSON map, and
//! the ack token that tells its source when it is delivered. Encoding to a Kafka record value
//! (one JSON object with Elastic Common Schema names) lives here and in `json.rs`.
//!
//! The core fields are typed rather than kept in the map because an event in a queue should cost
//! little more than its line: the origin's strings are shared by every event of a file.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::ack::AckToken;

mod json;

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
        // The envelope's own text is about 100 bytes; fields are guessed at 64 bytes each.
        let line = self.message.as_ref().map_or(0, String::len);
        let origin = self
            .origin
            .as_ref()
            .map_or(0, |o| o.host.len() + o.path.len());
        let mut out = Vec::with_capacity(line + origin + 128 + 64 * self.fields.len());
        self.write_json(&mut out);
        out
    }

    /// Appends the event as one JSON object: `@timestamp`, `message`, `host.name`,
    /// `log.file.path` and `log.offset` first, then the other fields in their order.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"@timestamp\":\"");
        json::write_timestamp(out, self.timestamp);
        out.push(b'"');
        if let Some(message) = &self.message {
            out.extend_from_slice(b",\"message\":");
            json::write_str(out, message);
        }
        if let Some(origin) = &self.origin {
            out.extend_from_slice(b",\"host\":{\"name\":");
            json::write_str(out, &origin.host);
            out.extend_from_slice(b"},\"log\":{\"file\":{\"path\":");
            json::write_str(out, &origin.path);
            out.extend_from_slice(b"},\"offset\":");
            out.extend_from_slice(itoa::Buffer::new().format(origin.offset).as_bytes());
            out.push(b'}');
        }
        json::write_entries(out, &self.fields, true);
        out.push(b'}');
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
