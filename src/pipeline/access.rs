//! Reading and writing an event's fields by path. The event keeps its line, origin and time
//! typed (`event.rs`); here those typed fields and the JSON map look like one tree:
//! `message`, `@timestamp`, `host.name`, `log.file.path`, `log.offset`, and everything else.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::path::{FieldPath, FieldRef, Fields, lookup};
use crate::event::Event;

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessError {
    #[error("`@timestamp` takes an RFC 3339 time, not {0}")]
    Timestamp(String),
    #[error("`{0}` holds a value that is not an object, so nothing can be set below it")]
    NotAnObject(String),
    #[error("`@timestamp` cannot be removed")]
    TimestampRequired,
}

impl Fields for Event {
    fn field(&self, path: &FieldPath) -> Option<FieldRef<'_>> {
        match (path.segments(), &self.origin) {
            ([first], _) if &**first == "@timestamp" => Some(FieldRef::Time(self.timestamp)),
            ([first], _) if &**first == "message" && self.message.is_some() => {
                self.message.as_deref().map(FieldRef::Str)
            }
            ([a, b], Some(origin)) if (&**a, &**b) == ("host", "name") => {
                Some(FieldRef::Str(&origin.host))
            }
            ([a, b], Some(origin)) if (&**a, &**b) == ("log", "offset") => {
                Some(FieldRef::Uint(origin.offset))
            }
            ([a, b, c], Some(origin)) if (&**a, &**b, &**c) == ("log", "file", "path") => {
                Some(FieldRef::Str(&origin.path))
            }
            (segments, _) => lookup(&self.fields, segments).map(FieldRef::Json),
        }
    }
}

/// Sets the field at `path`, creating objects on the way.
pub fn set(event: &mut Event, path: &FieldPath, value: Value) -> Result<(), AccessError> {
    let segments = path.segments();
    match &*segments[0] {
        "@timestamp" if segments.len() == 1 => {
            event.timestamp = parse_time(&value)?;
            return Ok(());
        }
        "@timestamp" => return Err(AccessError::NotAnObject("@timestamp".into())),
        "message" if segments.len() == 1 => {
            match value {
                Value::String(line) => {
                    event.message = Some(line);
                    event.fields.remove("message");
                }
                other => {
                    event.message = None;
                    event.fields.insert("message".into(), other);
                }
            }
            return Ok(());
        }
        "message" if event.message.is_some() => {
            return Err(AccessError::NotAnObject("message".into()));
        }
        "host" | "log" => materialize_origin(event),
        _ => {}
    }
    insert(&mut event.fields, segments, value)
}

/// Sets the top-level field `key`, which is taken as one name even when it holds dots (keys of
/// parsed JSON objects).
pub fn set_key(event: &mut Event, key: String, value: Value) -> Result<(), AccessError> {
    match key.as_str() {
        "@timestamp" | "message" => {
            let path = FieldPath::parse(&key).map_err(|_| AccessError::NotAnObject(key.clone()))?;
            set(event, &path, value)
        }
        "host" | "log" => {
            materialize_origin(event);
            event.fields.insert(key, value);
            Ok(())
        }
        _ => {
            event.fields.insert(key, value);
            Ok(())
        }
    }
}

/// Removes the field at `path` and returns it.
pub fn remove(event: &mut Event, path: &FieldPath) -> Result<Option<Value>, AccessError> {
    let segments = path.segments();
    match &*segments[0] {
        "@timestamp" => return Err(AccessError::TimestampRequired),
        "message" if segments.len() == 1 && event.message.is_some() => {
            return Ok(event.message.take().map(Value::String));
        }
        "host" | "log" => materialize_origin(event),
        _ => {}
    }
    Ok(take(&mut event.fields, segments))
}

/// Moves the typed origin into the JSON map, so fields below `host` and `log` can be written
/// next to it.
pub fn materialize_origin(event: &mut Event) {
    let Some(origin) = event.origin.take() else {
        return;
    };
    let mut host = Map::new();
    host.insert("name".into(), Value::String(origin.host.to_string()));
    let mut file = Map::new();
    file.insert("path".into(), Value::String(origin.path.to_string()));
    let mut log = Map::new();
    log.insert("file".into(), Value::Object(file));
    log.insert("offset".into(), Value::from(origin.offset));
    event.fields.insert("host".into(), Value::Object(host));
    event.fields.insert("log".into(), Value::Object(log));
}

fn parse_time(value: &Value) -> Result<DateTime<Utc>, AccessError> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| AccessError::Timestamp(value.to_string()))
}

fn insert(
    map: &mut Map<String, Value>,
    segments: &[Box<str>],
    value: Value,
) -> Result<(), AccessError> {
    let Some((last, parents)) = segments.split_last() else {
        return Ok(());
    };
    let mut current = map;
    for (depth, segment) in parents.iter().enumerate() {
        let slot = current
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match slot {
            Value::Object(inner) => inner,
            _ => return Err(AccessError::NotAnObject(segments[..=depth].join("."))),
        };
    }
    current.insert(last.to_string(), value);
    Ok(())
}

fn take(map: &mut Map<String, Value>, segments: &[Box<str>]) -> Option<Value> {
    let (last, parents) = segments.split_last()?;
    let mut current = map;
    for segment in parents {
        current = current.get_mut(&**segment)?.as_object_mut()?;
    }
    current.remove(&**last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileOrigin;
    use serde_json::json;

    fn event() -> Event {
        let origin = FileOrigin {
            host: "node-1".into(),
            path: "/var/log/app.log".into(),
            offset: 7,
        };
        Event::from_file_line("hello".into(), DateTime::UNIX_EPOCH, origin)
    }

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    fn json_of(event: &Event) -> Value {
        serde_json::from_slice(&event.to_json()).unwrap()
    }

    #[test]
    fn typed_fields_read_like_the_rest() {
        let mut e = event();
        e.fields.insert("level".into(), json!("info"));
        assert_eq!(e.field(&path("message")), Some(FieldRef::Str("hello")));
        assert_eq!(e.field(&path("host.name")), Some(FieldRef::Str("node-1")));
        assert_eq!(
            e.field(&path("log.file.path")),
            Some(FieldRef::Str("/var/log/app.log"))
        );
        assert_eq!(e.field(&path("log.offset")), Some(FieldRef::Uint(7)));
        assert_eq!(
            e.field(&path("level")),
            Some(FieldRef::Json(&json!("info")))
        );
        assert_eq!(e.field(&path("nope")), None);
    }

    #[test]
    fn writing_below_log_keeps_the_origin_fields() {
        let mut e = event();
        set(&mut e, &path("log.level"), json!("warn")).unwrap();
        assert_eq!(
            json_of(&e)["log"],
            json!({"file": {"path": "/var/log/app.log"}, "offset": 7, "level": "warn"})
        );
        assert_eq!(
            e.field(&path("log.file.path")),
            Some(FieldRef::Json(&json!("/var/log/app.log")))
        );
    }

    #[test]
    fn message_moves_between_typed_and_json() {
        let mut e = event();
        set(&mut e, &path("message"), json!({"a": 1})).unwrap();
        assert_eq!(json_of(&e)["message"], json!({"a": 1}));
        set(&mut e, &path("message"), json!("text again")).unwrap();
        assert_eq!(json_of(&e)["message"], json!("text again"));
        assert_eq!(
            remove(&mut e, &path("message")).unwrap(),
            Some(json!("text again"))
        );
        assert!(json_of(&e).get("message").is_none());
    }

    #[test]
    fn timestamp_takes_rfc3339_and_cannot_go() {
        let mut e = event();
        set(
            &mut e,
            &path("@timestamp"),
            json!("2026-11-22T10:00:00+01:00"),
        )
        .unwrap();
        assert_eq!(
            json_of(&e)["@timestamp"],
            json!("2026-11-22T09:00:00.000000000Z")
        );
        assert!(set(&mut e, &path("@timestamp"), json!(5)).is_err());
        assert_eq!(
            remove(&mut e, &path("@timestamp")),
            Err(AccessError::TimestampRequired)
        );
    }

    #[test]
    fn nested_writes_create_objects_and_refuse_to_go_through_values() {
        let mut e = event();
        set(&mut e, &path("http.response.status_code"), json!(200)).unwrap();
        assert_eq!(
            json_of(&e)["http"],
            json!({"response": {"status_code": 200}})
        );
        assert_eq!(
            set(&mut e, &path("http.response.status_code.x"), json!(1)),
            Err(AccessError::NotAnObject("http.response.status_code".into()))
        );
        assert_eq!(
            remove(&mut e, &path("http.response.status_code")).unwrap(),
            Some(json!(200))
        );
        assert_eq!(remove(&mut e, &path("http.nothing.here")).unwrap(), None);
    }
}
