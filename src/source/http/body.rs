//! A request body → events: gzip decoding within `max_body_bytes`, then one JSON object, a JSON
//! array of objects, or NDJSON (one object per line); each object checked for the required
//! fields and given its `@timestamp`. Any error names what is wrong, for the 400 (or 413) reply.

use std::io::Read;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::config::HttpSourceSettings;
use crate::event::Event;
use crate::pipeline::path::lookup;

/// Why a body is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the body is larger than max_body_bytes ({0})")]
    TooLarge(usize),
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
    #[error("the body is empty")]
    Empty,
    #[error("line {line}: {reason}")]
    Json { line: usize, reason: String },
    #[error("event {index}: {reason}")]
    Event { index: usize, reason: String },
}

/// The body as sent, gunzipped when `gzip`, at most `limit` bytes either way.
pub fn decode(body: &[u8], gzip: bool, limit: usize) -> Result<Vec<u8>, BodyError> {
    if body.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(out)
}

/// The JSON objects in a body: one object, an array of them, or NDJSON.
pub fn objects(body: &[u8]) -> Result<Vec<Map<String, Value>>, BodyError> {
    let text = body.trim_ascii();
    if text.is_empty() {
        return Err(BodyError::Empty);
    }
    if text.starts_with(b"[") {
        let values: Vec<Value> = serde_json::from_slice(text).map_err(|e| BodyError::Json {
            line: e.line(),
            reason: e.to_string(),
        })?;
        return values
            .into_iter()
            .enumerate()
            .map(|(index, value)| match value {
                Value::Object(map) => Ok(map),
                _ => Err(BodyError::Event {
                    index,
                    reason: "not a JSON object".into(),
                }),
            })
            .collect();
    }
    // One object, or one per line: NDJSON covers both.
    let mut out = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let map = serde_json::from_slice(line).map_err(|e| BodyError::Json {
            line: i + 1,
            reason: if line.starts_with(b"{") {
                e.to_string()
            } else {
                "not a JSON object".into()
            },
        })?;
        out.push(map);
    }
    Ok(out)
}

/// Turns objects into events: `message` (a string) and the timestamp field become the event's
/// own, the rest its fields. Every object must have the required fields.
pub fn events(
    objects: Vec<Map<String, Value>>,
    settings: &HttpSourceSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, BodyError> {
    objects
        .into_iter()
        .enumerate()
        .map(|(index, fields)| {
            let fail = |reason: String| BodyError::Event { index, reason };
            for field in &settings.required_fields {
                if lookup(&fields, field.segments()).is_none_or(Value::is_null) {
                    return Err(fail(format!("required field `{field}` is missing")));
                }
            }
            let timestamp = match lookup(&fields, settings.timestamp_field.segments()) {
                None | Some(Value::Null) => now,
                Some(value) => timestamp(value).ok_or_else(|| {
                    fail(format!(
                        "`{}` is not a timestamp (RFC 3339, or seconds or milliseconds since \
                         the epoch): {value}",
                        settings.timestamp_field
                    ))
                })?,
            };
            Ok(event(fields, timestamp))
        })
        .collect()
}

fn event(mut fields: Map<String, Value>, timestamp: DateTime<Utc>) -> Event {
    fields.remove("@timestamp");
    let message = match fields.remove("message") {
        Some(Value::String(message)) => Some(message),
        Some(other) => {
            fields.insert("message".into(), other);
            None
        }
        None => None,
    };
    Event {
        timestamp,
        message,
        origin: None,
        fields,
        ack: None,
        key: None,
        topic: None,
    }
}

/// RFC 3339 text, or a number of seconds (milliseconds when it is past the year 5138) since the
/// epoch.
fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(number) => {
            let seconds = number.as_f64()?;
            let millis = if seconds.abs() >= 1e11 {
                seconds
            } else {
                seconds * 1000.0
            };
            DateTime::from_timestamp_millis(millis as i64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::pipeline::path::FieldPath;

    fn settings(required: &[&str]) -> HttpSourceSettings {
        HttpSourceSettings {
            address: "127.0.0.1:0".parse().unwrap(),
            path: "/logs".into(),
            auth_token: None,
            max_body_bytes: 1 << 20,
            max_concurrent_requests: 4,
            rate_limit: None,
            ack: crate::config::HttpAck::Delivered,
            ack_timeout: std::time::Duration::from_secs(30),
            queue_wait: std::time::Duration::from_secs(1),
            required_fields: required
                .iter()
                .map(|f| FieldPath::parse(f).unwrap())
                .collect(),
            timestamp_field: FieldPath::parse("@timestamp").unwrap(),
            pipeline: None,
        }
    }

    #[test]
    fn one_object_an_array_and_ndjson_are_taken() {
        assert_eq!(objects(br#" {"message":"a"} "#).unwrap().len(), 1);
        assert_eq!(
            objects(br#"[{"message":"a"},{"message":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            objects(b"{\"message\":\"a\"}\n\n{\"message\":\"b\"}\n")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn malformed_bodies_say_where() {
        assert_eq!(objects(b"  ").unwrap_err(), BodyError::Empty);
        let error = objects(b"{\"message\":\"a\"}\n{\"message\":").unwrap_err();
        assert!(matches!(error, BodyError::Json { line: 2, .. }), "{error}");
        let error = objects(b"[1]").unwrap_err();
        assert_eq!(error.to_string(), "event 0: not a JSON object");
        assert!(matches!(
            objects(b"hello"),
            Err(BodyError::Json { line: 1, .. })
        ));
    }

    #[test]
    fn gzip_is_decoded_within_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[b'x'; 5000]).unwrap();
        let body = gz.finish().unwrap();
        assert_eq!(decode(&body, true, 5000).unwrap().len(), 5000);
        assert_eq!(
            decode(&body, true, 4999).unwrap_err(),
            BodyError::TooLarge(4999)
        );
        assert!(matches!(
            decode(b"plain", true, 100),
            Err(BodyError::Gzip(_))
        ));
        assert_eq!(
            decode(b"plain", false, 4).unwrap_err(),
            BodyError::TooLarge(4)
        );
    }

    #[test]
    fn required_fields_and_timestamps() {
        let now = Utc::now();
        let objects = objects(
            br#"[{"message":"a","service":{"name":"web"},"@timestamp":"2026-11-22T10:00:00Z"},
                 {"message":"b","service":{"name":"db"},"@timestamp":1795000000},
                 {"message":"c","service":{"name":"db"}}]"#,
        )
        .unwrap();
        let events = events(
            objects.clone(),
            &settings(&["service.name", "message"]),
            now,
        )
        .unwrap();
        assert_eq!(
            events[0].timestamp.to_rfc3339(),
            "2026-11-22T10:00:00+00:00"
        );
        assert_eq!(events[1].timestamp.timestamp(), 1_795_000_000);
        assert_eq!(events[2].timestamp, now, "set on arrival");
        assert_eq!(events[0].message.as_deref(), Some("a"));
        assert!(!events[0].fields.contains_key("@timestamp"));
        assert_eq!(events[0].fields["service"]["name"], "web");

        let error = super::events(objects, &settings(&["level"]), now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "event 0: required field `level` is missing"
        );
        let bad = super::objects(br#"{"message":"x","@timestamp":"yesterday"}"#).unwrap();
        let error = super::events(bad, &settings(&[]), now).unwrap_err();
        assert!(error.to_string().contains("is not a timestamp"), "{error}");
    }
}
