//! Field paths and reading fields: `http.response.status_code` names a value nested in objects.
//! Paths are split once, when the configuration loads; conditions and templates read fields
//! through the `Fields` trait, which events and plain JSON objects implement.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A dotted field path, split at load time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: Box<str>,
    segments: Box<[Box<str>]>,
}

/// Why a field path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a field path cannot be empty")]
    Empty,
    #[error("field path `{0}` has an empty part (two dots, or a dot at an end)")]
    EmptySegment(String),
    #[error("field path `{path}` contains `{found}`; use letters, digits, `_`, `-`, `@` and dots")]
    BadCharacter { path: String, found: char },
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if let Some(found) = text
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | '.')))
        {
            return Err(PathError::BadCharacter {
                path: text.to_owned(),
                found,
            });
        }
        let segments: Box<[Box<str>]> = text.split('.').map(Box::from).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(PathError::EmptySegment(text.to_owned()));
        }
        Ok(Self {
            text: text.into(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Box<str>] {
        &self.segments
    }

    /// Whether `self` is `other` or lies below it (`http.status` starts with `http`).
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.segments.len() >= other.segments.len()
            && self.segments[..other.segments.len()] == other.segments[..]
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A field's value as conditions and templates see it. Events keep some fields typed (the line,
/// the file path, the offset, the time); the rest are JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Str(&'a str),
    Uint(u64),
    Time(DateTime<Utc>),
    Json(&'a Value),
}

impl<'a> FieldRef<'a> {
    /// The value as JSON (`@timestamp` as RFC 3339 text).
    pub fn to_value(self) -> Value {
        match self {
            FieldRef::Str(s) => Value::String(s.to_owned()),
            FieldRef::Uint(n) => Value::from(n),
            FieldRef::Time(t) => Value::String(crate::event::timestamp(t)),
            FieldRef::Json(v) => v.clone(),
        }
    }

    /// The string inside, when the value is one.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            FieldRef::Str(s) => Some(s),
            FieldRef::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// The JSON type of a value, for error messages: "a string", "an object", …
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Something fields can be read from by path.
pub trait Fields {
    fn field(&self, path: &FieldPath) -> Option<FieldRef<'_>>;
}

impl Fields for Map<String, Value> {
    fn field(&self, path: &FieldPath) -> Option<FieldRef<'_>> {
        lookup(self, path.segments()).map(FieldRef::Json)
    }
}

/// The value at `segments` below `map`.
pub fn lookup<'a>(map: &'a Map<String, Value>, segments: &[Box<str>]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    let mut value = map.get(&**first)?;
    for segment in rest {
        value = value.as_object()?.get(&**segment)?;
    }
    Some(value)
}

/// Test fixtures shared by the modules that read fields (conditions, templates).
#[cfg(test)]
pub mod fixtures {
    use chrono::TimeZone as _;

    use serde_json::{Map, Value};

    use super::{FieldPath, FieldRef, Fields};

    /// A JSON object's map, for tests that write events as `json!({...})`.
    pub fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Fields of the typed kinds events keep outside JSON.
    pub struct Typed;

    impl Fields for Typed {
        fn field(&self, path: &FieldPath) -> Option<FieldRef<'_>> {
            match path.as_str() {
                "@timestamp" => Some(FieldRef::Time(
                    chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
                )),
                "offset" => Some(FieldRef::Uint(4096)),
                "message" => Some(FieldRef::Str("GET /health 200")),
                "file" => Some(FieldRef::Str("/var/log/app.log")),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_split_on_dots_and_reject_empty_parts() {
        let p = FieldPath::parse("http.response.status_code").unwrap();
        assert_eq!(p.segments().len(), 3);
        assert_eq!(p.as_str(), "http.response.status_code");
        assert!(FieldPath::parse("@timestamp").is_ok());
        assert_eq!(FieldPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            FieldPath::parse("a..b"),
            Err(PathError::EmptySegment(_))
        ));
        assert!(matches!(
            FieldPath::parse("a b"),
            Err(PathError::BadCharacter { found: ' ', .. })
        ));
    }

    #[test]
    fn maps_are_read_by_path() {
        let Value::Object(map) = json!({"http": {"status": 200}, "a": 1}) else {
            unreachable!()
        };
        let status = FieldPath::parse("http.status").unwrap();
        assert_eq!(map.field(&status), Some(FieldRef::Json(&json!(200))));
        assert_eq!(map.field(&FieldPath::parse("a.b").unwrap()), None);
        assert!(status.starts_with(&FieldPath::parse("http").unwrap()));
    }
}
