//! One `_bulk` request and what its answer means for each record.
//!
//! Every record is written with `_id` = `topic+partition+offset`, so writing it again (a replay
//! after a crash, a retry) overwrites the same document, or, in data-stream mode (`create`),
//! is refused with 409, which counts as written. Verdicts per item:
//! 2xx and 409 written; 429 and 5xx retried; 401 and 403 block the sink (credentials or an
//! index block that only an operator lifts; nothing is dropped), and so does a 404 for a missing
//! index; other 4xx (mapping errors, 400 and 404) go to the dead-letter topic with the reason.

use serde::Deserialize;
use serde_json::Value;

/// How documents are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `index`: create or overwrite.
    Index,
    /// `create`: data streams; a document that exists already is a 409.
    Create,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Create => "create",
        }
    }
}

/// One record's document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    pub index: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record value: a JSON object is the document; anything else goes as `message`.
    pub value: &'a [u8],
    /// Whether `value` is known to be a JSON object (the index step parsed it).
    pub object: bool,
}

/// The document id: the record's place in Kafka.
pub fn document_id(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}+{partition}+{offset}")
}

/// Appends one document's two NDJSON lines to a bulk body.
pub fn append(body: &mut Vec<u8>, action: Action, doc: &Document<'_>) {
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(action.name().as_bytes());
    body.extend_from_slice(b"\":{\"_id\":");
    // Writing strings into a Vec cannot fail.
    let _ = serde_json::to_writer(
        &mut *body,
        &document_id(doc.topic, doc.partition, doc.offset),
    );
    body.extend_from_slice(b",\"_index\":");
    let _ = serde_json::to_writer(&mut *body, doc.index);
    body.extend_from_slice(b"}}\n");
    crate::sink::record::write_json_line(body, doc.value, doc.object);
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Written,
    /// Worth sending again (429, 5xx).
    Retry,
    /// Never writable as it is: to the dead-letter topic, with the status and reason.
    DeadLetter {
        status: u16,
        reason: String,
    },
    /// The sink must stop and wait (401, 403): nothing is dropped.
    Blocked {
        status: u16,
        reason: String,
    },
}

/// The verdict for one item status (`kind`: the error's type, when it has one).
pub fn verdict(status: u16, kind: Option<&str>, reason: impl FnOnce() -> String) -> Verdict {
    match status {
        // A missing index (auto-creation off, no data-stream template) is the cluster's setup,
        // not the document's fault: wait for an operator rather than dead-letter everything.
        404 if kind == Some("index_not_found_exception") => Verdict::Blocked {
            status,
            reason: reason(),
        },
        200..=299 | 409 => Verdict::Written,
        429 | 500..=599 => Verdict::Retry,
        401 | 403 => Verdict::Blocked {
            status,
            reason: reason(),
        },
        _ => Verdict::DeadLetter {
            status,
            reason: reason(),
        },
    }
}

#[derive(Deserialize)]
struct Response {
    items: Vec<serde_json::Map<String, Value>>,
}

/// Why a bulk answer cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("the bulk response is not JSON with `items`: {0}")]
    Garbled(String),
    #[error("the bulk response has {got} items for {sent} documents")]
    Count { got: usize, sent: usize },
}

/// The verdict for each of the `sent` documents, in order, from a 200 answer's body.
pub fn verdicts(body: &[u8], sent: usize) -> Result<Vec<Verdict>, ResponseError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| ResponseError::Garbled(e.to_string()))?;
    if response.items.len() != sent {
        return Err(ResponseError::Count {
            got: response.items.len(),
            sent,
        });
    }
    response
        .items
        .iter()
        .map(|item| {
            let result = item
                .values()
                .next()
                .ok_or_else(|| ResponseError::Garbled("an empty item".into()))?;
            let status = result
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| ResponseError::Garbled("an item without a status".into()))?;
            let error = &result["error"];
            Ok(verdict(status, error["type"].as_str(), || {
                match (error["type"].as_str(), error["reason"].as_str()) {
                    (Some(kind), Some(reason)) => format!("{kind}: {reason}"),
                    _ => error.to_string(),
                }
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_is_two_lines_with_its_kafka_place_as_id() {
        let mut body = Vec::new();
        let doc = Document {
            index: "logs-2026.11.22",
            topic: "logs",
            partition: 2,
            offset: 41,
            value: br#"{"message":"a"}"#,
            object: true,
        };
        append(&mut body, Action::Index, &doc);
        let raw = Document {
            offset: 42,
            value: b"plain \xff line\n",
            object: false,
            ..doc.clone()
        };
        append(&mut body, Action::Create, &raw);
        let pretty = Document {
            offset: 43,
            value: b"{\n  \"message\": \"b\"\n}\n",
            object: true,
            ..doc.clone()
        };
        append(&mut body, Action::Index, &pretty);
        let text = String::from_utf8(body).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"index":{"_id":"logs+2+41","_index":"logs-2026.11.22"}}"#,
                r#"{"message":"a"}"#,
                r#"{"create":{"_id":"logs+2+42","_index":"logs-2026.11.22"}}"#,
                r#"{"message":"plain � line"}"#,
                r#"{"index":{"_id":"logs+2+43","_index":"logs-2026.11.22"}}"#,
                r#"{"message":"b"}"#,
            ]
        );
    }

    #[test]
    fn item_statuses_become_verdicts() {
        let body = br#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"index":{"status":429,"error":{"type":"cluster_block_exception","reason":"read-only"}}},
            {"index":{"status":503}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}},
            {"index":{"status":403,"error":{"type":"security_exception","reason":"no"}}},
            {"create":{"status":404,"error":{"type":"index_not_found_exception","reason":"no such index [logs]"}}}
        ]}"#;
        let verdicts = verdicts(body, 7).expect("verdicts");
        assert_eq!(verdicts[0], Verdict::Written);
        assert_eq!(verdicts[1], Verdict::Written, "409 on replay is written");
        assert_eq!(verdicts[2], Verdict::Retry);
        assert_eq!(verdicts[3], Verdict::Retry);
        assert_eq!(
            verdicts[4],
            Verdict::DeadLetter {
                status: 400,
                reason: "mapper_parsing_exception: failed to parse field [n]".into()
            }
        );
        assert!(matches!(verdicts[5], Verdict::Blocked { status: 403, .. }));
        assert!(matches!(verdicts[6], Verdict::Blocked { status: 404, .. }));
    }

    #[test]
    fn garbled_or_short_answers_are_errors() {
        assert!(matches!(
            verdicts(b"<html>", 1),
            Err(ResponseError::Garbled(_))
        ));
        assert_eq!(
            verdicts(br#"{"items":[]}"#, 2),
            Err(ResponseError::Count { got: 0, sent: 2 })
        );
        assert!(matches!(
            verdicts(br#"{"items":[{"index":{}}]}"#, 1),
            Err(ResponseError::Garbled(_))
        ));
    }
}
