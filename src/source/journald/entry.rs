//! One journal entry, as `journalctl --output=json` prints it, turned into an event.
//!
//! Mapping: `MESSAGE` → `message`; `__REALTIME_TIMESTAMP` → `@timestamp`; `PRIORITY` →
//! `log.syslog.severity.code` and `.name`; `_SYSTEMD_UNIT` → `systemd.unit`; `_HOSTNAME` →
//! `host.name` (the agent's host name when absent); every other field under `journald.`,
//! lower-cased and without leading underscores (a trusted `_FIELD` wins over a user `FIELD` of
//! the same name). `__CURSOR` is the entry's position, not a field.
//!
//! journalctl prints a value that is not printable UTF-8 as an array of byte values, and a field
//! that occurs more than once as an array of its values. Bytes that are UTF-8 become text;
//! others become base64 (for `MESSAGE`, `journald.message_encoding = "base64"` says so).

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::{JournaldSourceSettings, PRIORITY_NAMES};
use crate::event::Event;

/// An entry read from journalctl.
#[derive(Debug)]
pub struct Entry {
    pub cursor: String,
    /// `None`: filtered out; its cursor still counts as read.
    pub event: Option<Event>,
    /// `MESSAGE` was not UTF-8 and went out as base64.
    pub binary_message: bool,
}

/// Why a line from journalctl is not an entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("the entry has no __CURSOR")]
    NoCursor,
}

/// What every entry of one source needs: its filters and the agent's host name.
pub struct EntryMaker<'a> {
    pub settings: &'a JournaldSourceSettings,
    pub host: Arc<str>,
}

impl EntryMaker<'_> {
    /// Parses one line of `journalctl --output=json`.
    pub fn entry(&self, line: &[u8]) -> Result<Entry, EntryError> {
        let mut fields: Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| EntryError::Json(e.to_string()))?;
        let cursor = match fields.remove("__CURSOR") {
            Some(Value::String(cursor)) => cursor,
            _ => return Err(EntryError::NoCursor),
        };
        if !self.wanted(&fields) {
            return Ok(Entry {
                cursor,
                event: None,
                binary_message: false,
            });
        }
        let (event, binary_message) = self.event(fields);
        Ok(Entry {
            cursor,
            event: Some(event),
            binary_message,
        })
    }

    /// The filters journalctl is not asked to apply: units (included and excluded) and
    /// identifiers.
    fn wanted(&self, fields: &Map<String, Value>) -> bool {
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        let unit = text("_SYSTEMD_UNIT");
        let settings = self.settings;
        if !settings.units.is_empty()
            && !unit.is_some_and(|u| settings.units.iter().any(|s| s == u))
        {
            return false;
        }
        if unit.is_some_and(|u| settings.exclude_units.iter().any(|s| s == u)) {
            return false;
        }
        settings.identifiers.is_empty()
            || text("SYSLOG_IDENTIFIER")
                .is_some_and(|id| settings.identifiers.iter().any(|s| s == id))
    }

    fn event(&self, mut fields: Map<String, Value>) -> (Event, bool) {
        let timestamp = fields
            .remove("__REALTIME_TIMESTAMP")
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|micros| micros.parse::<i64>().ok())
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .unwrap_or_else(Utc::now);
        let mut journald = Map::new();
        let mut binary_message = false;
        let message = match fields.remove("MESSAGE").map(decode) {
            Some(Decoded::Text(text)) => Some(text),
            Some(Decoded::Base64(text)) => {
                binary_message = true;
                journald.insert("message_encoding".into(), "base64".into());
                Some(text)
            }
            Some(Decoded::Other(value)) => {
                journald.insert("message".into(), value);
                None
            }
            None => None,
        };
        let host = match fields.remove("_HOSTNAME") {
            Some(Value::String(host)) => host,
            _ => self.host.to_string(),
        };
        let unit = fields
            .remove("_SYSTEMD_UNIT")
            .and_then(|u| match decode(u) {
                Decoded::Text(unit) => Some(unit),
                _ => None,
            });
        let priority = fields
            .remove("PRIORITY")
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| *p < PRIORITY_NAMES.len());
        // User fields first, so a trusted `_FIELD` overwrites a `FIELD` of the same name.
        let (trusted, user): (Vec<_>, Vec<_>) = fields
            .into_iter()
            .partition(|(name, _)| name.starts_with('_'));
        for (name, value) in user.into_iter().chain(trusted) {
            let name = name.trim_start_matches('_').to_ascii_lowercase();
            journald.insert(name, decode(value).into_value());
        }

        let mut out = Map::new();
        out.insert("host".into(), json!({ "name": host }));
        if let Some(code) = priority {
            out.insert(
                "log".into(),
                json!({ "syslog": { "severity": { "code": code, "name": PRIORITY_NAMES[code] } } }),
            );
        }
        let stream = unit
            .clone()
            .or_else(|| {
                journald
                    .get("syslog_identifier")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "journal".to_owned());
        if let Some(unit) = unit {
            out.insert("systemd".into(), json!({ "unit": unit }));
        }
        out.insert("journald".into(), Value::Object(journald));
        // One stream (unit, else identifier) per key: its entries stay in order on one partition.
        let key: Arc<[u8]> = format!("{host}:journald:{stream}").into_bytes().into();
        let event = Event {
            timestamp,
            message,
            origin: None,
            fields: out,
            ack: None,
            key: Some(key),
            topic: None,
        };
        (event, binary_message)
    }
}

/// A field's value, decoded.
enum Decoded {
    Text(String),
    /// Bytes that are not UTF-8, base64-encoded.
    Base64(String),
    /// Several values (a field that occurs more than once), or something unexpected.
    Other(Value),
}

impl Decoded {
    fn into_value(self) -> Value {
        match self {
            Self::Text(text) | Self::Base64(text) => Value::String(text),
            Self::Other(value) => value,
        }
    }
}

fn decode(value: Value) -> Decoded {
    match value {
        Value::String(text) => Decoded::Text(text),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(Value::as_u64)
                .filter_map(|b| u8::try_from(b).ok())
                .collect();
            match String::from_utf8(bytes) {
                Ok(text) => Decoded::Text(text),
                Err(e) => {
                    Decoded::Base64(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
                }
            }
        }
        Value::Array(items) => Decoded::Other(Value::Array(
            items.into_iter().map(|v| decode(v).into_value()).collect(),
        )),
        other => Decoded::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::Journal;

    fn settings() -> JournaldSourceSettings {
        JournaldSourceSettings {
            journalctl_path: PathBuf::from("journalctl"),
            journal: Journal::System,
            since_now: false,
            current_boot_only: true,
            units: Vec::new(),
            exclude_units: Vec::new(),
            identifiers: Vec::new(),
            max_priority: None,
            matches: Vec::new(),
            max_entry_bytes: 1 << 20,
            checkpoint_interval: Duration::from_secs(1),
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            pipeline: None,
        }
    }

    fn encode(settings: &JournaldSourceSettings, line: &str) -> Value {
        let maker = EntryMaker {
            settings,
            host: Arc::from("agent-host"),
        };
        let entry = maker.entry(line.as_bytes()).expect("an entry");
        let event = entry.event.expect("wanted");
        serde_json::from_slice(&event.to_json()).expect("JSON")
    }

    const ENTRY: &str = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795365392242258","__MONOTONIC_TIMESTAMP":"1","_BOOT_ID":"b0","MESSAGE":"hello","PRIORITY":"3","_SYSTEMD_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","_HOSTNAME":"node1","_PID":"42","PID":"7"}"#;

    #[test]
    fn fields_are_mapped_to_ecs_and_journald_names() {
        let value = encode(&settings(), ENTRY);
        assert_eq!(value["message"], "hello");
        assert_eq!(value["@timestamp"], "2026-11-22T16:36:32.242258000Z");
        assert_eq!(value["log"]["syslog"]["severity"]["code"], 3);
        assert_eq!(value["log"]["syslog"]["severity"]["name"], "err");
        assert_eq!(value["systemd"]["unit"], "app.service");
        assert_eq!(value["host"]["name"], "node1");
        let journald = &value["journald"];
        assert_eq!(journald["boot_id"], "b0");
        assert_eq!(journald["monotonic_timestamp"], "1");
        assert_eq!(journald["syslog_identifier"], "app");
        assert_eq!(journald["pid"], "42", "the trusted _PID wins");
        assert!(journald.get("cursor").is_none() && journald.get("message").is_none());
        assert!(journald.get("realtime_timestamp").is_none());
    }

    #[test]
    fn binary_messages_are_decoded_or_kept_as_base64() {
        // "héllo" as bytes, and bytes that are not UTF-8.
        let text = r#"{"__CURSOR":"c","MESSAGE":[104,195,169,108,108,111]}"#;
        assert_eq!(encode(&settings(), text)["message"], "héllo");
        let binary = r#"{"__CURSOR":"c","MESSAGE":[0,255,254,10]}"#;
        let value = encode(&settings(), binary);
        assert_eq!(value["message"], "AP/+Cg==");
        assert_eq!(value["journald"]["message_encoding"], "base64");
        assert_eq!(value["host"]["name"], "agent-host");
        let maker = EntryMaker {
            settings: &settings(),
            host: Arc::from("h"),
        };
        assert!(
            maker
                .entry(binary.as_bytes())
                .expect("entry")
                .binary_message
        );
    }

    #[test]
    fn repeated_fields_become_arrays() {
        let line = r#"{"__CURSOR":"c","MESSAGE":"m","TAG":["a",[98]]}"#;
        assert_eq!(
            encode(&settings(), line)["journald"]["tag"],
            json!(["a", "b"])
        );
    }

    #[test]
    fn units_and_identifiers_filter_entries() {
        let maker_with = |settings: &JournaldSourceSettings| {
            let maker = EntryMaker {
                settings,
                host: Arc::from("h"),
            };
            maker
                .entry(ENTRY.as_bytes())
                .expect("entry")
                .event
                .is_some()
        };
        let mut s = settings();
        s.units = vec!["other.service".into()];
        assert!(!maker_with(&s));
        s.units = vec!["app.service".into()];
        assert!(maker_with(&s));
        s.exclude_units = vec!["app.service".into()];
        assert!(!maker_with(&s));
        let mut s = settings();
        s.identifiers = vec!["sshd".into()];
        assert!(!maker_with(&s));
        s.identifiers.push("app".into());
        assert!(maker_with(&s));
    }

    #[test]
    fn lines_that_are_not_entries_are_errors() {
        let maker = EntryMaker {
            settings: &settings(),
            host: Arc::from("h"),
        };
        assert!(matches!(
            maker.entry(b"{\"MESSAGE\":\"x\""),
            Err(EntryError::Json(_))
        ));
        assert_eq!(
            maker.entry(b"{\"MESSAGE\":\"x\"}").unwrap_err(),
            EntryError::NoCursor
        );
    }
}
