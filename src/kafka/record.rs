//! Turning an event into one Kafka record: the value's encoding, events too large for a record,
//! and the record's topic, key and headers; `Encoder` does it for whole batches on each source's
//! task. Sending the record is `producer.rs`.

use std::sync::Arc;

use rdkafka::message::{Header, Headers, OwnedHeaders};
use serde_json::Value;

use crate::ack::AckToken;
use crate::config::{Encoding, Oversize, RecordSettings};
use crate::event::Event;
use crate::memory::{Batch, Charge, EVENT_OVERHEAD};
use crate::metrics::ProducerMetrics;
use crate::pipeline::access;
use crate::pipeline::path::FieldPath;
use crate::pipeline::steps::check_topic_name;
use crate::spool::SpoolRecord;

/// Room kept below `max_message_bytes` for the key, headers and record framing.
const RECORD_OVERHEAD: usize = 1024;

/// One event made into a record, with the acknowledgement it carries.
pub struct Prepared {
    pub topic: Arc<str>,
    /// The event's own data chose the topic (a `route` step, or a `topic` template).
    pub routed: bool,
    pub key: Option<Arc<[u8]>>,
    pub headers: Option<OwnedHeaders>,
    pub payload: Vec<u8>,
    pub token: Option<AckToken>,
}

impl Prepared {
    /// The record as the spool keeps it, and its acknowledgement.
    pub fn into_spool(self) -> (SpoolRecord, Option<AckToken>) {
        let record = SpoolRecord {
            topic: self.topic.to_string(),
            key: self.key.map(|k| k.to_vec()),
            headers: self.headers.as_ref().map_or_else(Vec::new, spool_headers),
            payload: self.payload,
        };
        (record, self.token)
    }
}

/// Record headers as the spool keeps them.
pub fn spool_headers(headers: &impl Headers) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
        .collect()
}

/// librdkafka headers for a spooled record.
pub fn owned_headers(headers: &[(String, Vec<u8>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: Some(value),
        });
    }
    Some(owned)
}

/// A batch of events made into records, with the memory charge it still holds: given back once
/// the producer has handed every record on.
pub struct RecordBatch {
    pub records: Vec<Prepared>,
    pub charge: Charge,
}

/// Makes each source's events into records on the source's own task (`pipeline::run`), so the
/// producer's task only sends: encoding and sending then run on both cores at once.
#[derive(Clone)]
pub struct Encoder {
    records: Arc<RecordMaker>,
    metrics: ProducerMetrics,
}

impl Encoder {
    /// The batch's events as records, charged for what they hold now (the values, not the
    /// events); `None` when every event was dropped as too large (counted, settled).
    pub fn encode(&self, batch: Batch) -> Option<RecordBatch> {
        let Batch { events, mut charge } = batch;
        let records: Vec<Prepared> = events
            .into_iter()
            .filter_map(|event| self.records.prepare(event, &self.metrics))
            .collect();
        if records.is_empty() {
            return None;
        }
        charge.resize(
            records
                .iter()
                .map(|r| r.payload.capacity() + EVENT_OVERHEAD)
                .sum(),
        );
        Some(RecordBatch { records, charge })
    }
}

/// Makes records from events, per the `[kafka]` record settings.
pub struct RecordMaker {
    settings: RecordSettings,
    /// The `topic` key when it is a plain name (else unused).
    static_topic: Arc<str>,
}

impl RecordMaker {
    pub fn new(settings: RecordSettings, topic: &str) -> Self {
        Self {
            settings,
            static_topic: Arc::from(topic),
        }
    }

    /// An encoder that makes records the way this maker does, counting into `metrics`.
    pub fn encoder(self: &Arc<Self>, metrics: ProducerMetrics) -> Encoder {
        Encoder {
            records: Arc::clone(self),
            metrics,
        }
    }

    /// The record for `event`; `None` when it was too large and dropped (its acknowledgement
    /// settled, counted).
    pub fn prepare(&self, mut event: Event, metrics: &ProducerMetrics) -> Option<Prepared> {
        let payload = self.payload(&mut event, metrics)?;
        let (topic, routed) = self.topic_of(&mut event);
        let key = match &self.settings.key {
            Some(template) => template
                .render(&event)
                .map(|k| Arc::from(k.into_bytes()))
                .ok()
                .or(event.key.take()),
            None => event.key.take(),
        };
        let headers = self.headers_of(&event);
        // Templates have read the event: a raw record can take its line without a copy.
        let payload =
            payload.unwrap_or_else(|| event.message.take().unwrap_or_default().into_bytes());
        Some(Prepared {
            headers,
            topic,
            routed,
            key,
            payload,
            token: event.ack.take(),
        })
    }

    /// The record value, within `max_message_bytes` (less room for key and headers). An event too
    /// large is cut, dead-lettered (cut too) or dropped per `oversize`, and counted; `None` when
    /// it was dropped (its acknowledgement settled). `Some(None)`: the value is the event's line
    /// as it is (raw encoding), taken once nothing else needs to read it.
    fn payload(&self, event: &mut Event, metrics: &ProducerMetrics) -> Option<Option<Vec<u8>>> {
        let settings = &self.settings;
        let limit = settings.max_message_bytes.saturating_sub(RECORD_OVERHEAD);
        let line = event.message.as_ref().map_or(0, String::len);
        if settings.encoding == Encoding::Raw && line <= limit {
            return Some(None);
        }
        let payload = encode(event, settings.encoding);
        if payload.len() <= limit {
            return Some(Some(payload));
        }
        let size = payload.len();
        let action = match settings.oversize {
            Oversize::Drop => None,
            Oversize::Truncate => Some("truncated"),
            Oversize::DeadLetter => {
                event.topic = settings.dead_letter_topic.clone();
                let reason = format!("{size} bytes, more than max_message_bytes allows ({limit})");
                let _ = set_field(event, "error.message", Value::String(reason));
                let _ = set_field(event, "error.type", Value::from("oversize"));
                Some("dead_lettered")
            }
        };
        let cut = action.and_then(|_| truncate(event, settings.encoding, limit));
        match (action, cut) {
            (Some(action), Some(payload)) => {
                metrics.oversize(action, size, limit);
                Some(Some(payload))
            }
            _ => {
                metrics.oversize("dropped", size, limit);
                // Given up and counted: the source may move past it.
                if let Some(token) = event.ack.take() {
                    token.settle();
                }
                None
            }
        }
    }

    /// Whether the event's data chose `topic` (a route, or the `topic` template), for a record
    /// whose event is gone (spooled): the configured topic and `fallback_topic` are not chosen.
    /// A route that chose one of those by name reads as not chosen, so a missing topic then
    /// makes its records wait (retried) instead of being given up.
    pub fn chose(&self, topic: &str) -> bool {
        let configured = self.settings.topic.is_static() && *self.static_topic == *topic;
        let fallback = self.settings.fallback_topic.as_deref() == Some(topic);
        !(configured || fallback)
    }

    /// The record's topic, and whether the event's data chose it: a pipeline's choice first,
    /// then the template, then `fallback_topic`.
    fn topic_of(&self, event: &mut Event) -> (Arc<str>, bool) {
        if let Some(topic) = event.topic.take() {
            return (topic, true);
        }
        let template = &self.settings.topic;
        if template.is_static() {
            return (Arc::clone(&self.static_topic), false);
        }
        match template.render(&*event) {
            Ok(name) if check_topic_name(&name).is_ok() => (Arc::from(name), true),
            _ => (
                self.settings
                    .fallback_topic
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&self.static_topic)),
                false,
            ),
        }
    }

    /// Headers whose templates render for this event.
    fn headers_of(&self, event: &Event) -> Option<OwnedHeaders> {
        if self.settings.headers.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(self.settings.headers.len());
        for (name, template) in &self.settings.headers {
            if let Ok(value) = template.render(event) {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(&value),
                });
            }
        }
        Some(headers)
    }
}

fn encode(event: &Event, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => event.to_json(),
        Encoding::Raw => event.message.clone().unwrap_or_default().into_bytes(),
    }
}

fn set_field(event: &mut Event, path: &str, value: Value) -> Option<()> {
    let path = FieldPath::parse(path).ok()?;
    access::set(event, &path, value).ok()
}

/// Cuts `message` (on a character boundary) until the record fits in `limit`, marking the event
/// `log.flags: ["truncated"]`. One cut nearly always does. `None` when the rest of the event
/// alone is too large.
fn truncate(event: &mut Event, encoding: Encoding, limit: usize) -> Option<Vec<u8>> {
    if encoding == Encoding::Json {
        set_field(event, "log.flags", serde_json::json!(["truncated"]))?;
    }
    for _ in 0..8 {
        let payload = encode(event, encoding);
        let Some(excess) = payload.len().checked_sub(limit).filter(|&e| e > 0) else {
            return Some(payload);
        };
        let message = event.message.as_mut().filter(|m| !m.is_empty())?;
        // A removed byte of the line is at least one byte of the record; with escapes it is more,
        // so never keep more of the line than its share of the limit either.
        let share = message.len().saturating_mul(limit) / payload.len();
        let keep = message.len().saturating_sub(excess + 16).min(share);
        let boundary = (0..=keep).rev().find(|&i| message.is_char_boundary(i))?;
        message.truncate(boundary);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileOrigin;

    fn event(line: &str) -> Event {
        let origin = FileOrigin {
            host: "h".into(),
            path: "/var/log/a.log".into(),
            offset: 0,
        };
        Event::from_file_line(line.into(), chrono::DateTime::UNIX_EPOCH, origin)
    }

    fn maker(kafka: &str) -> RecordMaker {
        let text = format!(
            "data_dir = \"/tmp\"\n[sources.a]\ntype = \"file\"\ninclude = [\"/x/*.log\"]\n\
             [kafka]\nbrokers = [\"127.0.0.1:9\"]\n{kafka}\n"
        );
        let config = crate::config::Config::from_toml(&text, &|_| None).expect("valid");
        RecordMaker::new(config.kafka.records, &config.kafka.topic)
    }

    #[test]
    fn a_spooled_record_for_the_configured_or_fallback_topic_was_not_chosen_by_its_event() {
        let fixed = maker("topic = \"logs\"");
        assert!(!fixed.chose("logs"));
        assert!(fixed.chose("errors"), "a route's choice");
        let template = maker("topic = \"logs.{{ team }}\"\nfallback_topic = \"logs-other\"");
        assert!(!template.chose("logs-other"));
        assert!(template.chose("logs.a"));
        assert!(
            template.chose("logs.{{ team }}"),
            "never a topic a record went to"
        );
    }

    #[test]
    fn raw_encoding_is_the_line_alone() {
        assert_eq!(encode(&event("plain line"), Encoding::Raw), b"plain line");
        let json: Value = serde_json::from_slice(&encode(&event("x"), Encoding::Json)).unwrap();
        assert_eq!(json["message"], "x");
    }

    #[test]
    fn truncation_fits_the_limit_even_with_escapes() {
        // Quotes double in JSON: the cut must count encoded bytes, not line bytes.
        let mut e = event(&"\"é".repeat(3000));
        let payload = truncate(&mut e, Encoding::Json, 2048).expect("fits");
        assert!(payload.len() <= 2048, "{}", payload.len());
        let json: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["log"]["flags"], serde_json::json!(["truncated"]));
        assert_eq!(json["log"]["file"]["path"], "/var/log/a.log");
        let mut raw = event(&"é".repeat(3000));
        let payload = truncate(&mut raw, Encoding::Raw, 1001).expect("fits");
        assert!(payload.len() <= 1001 && std::str::from_utf8(&payload).is_ok());
    }

    #[test]
    fn an_event_whose_fields_alone_are_too_large_cannot_be_cut_to_fit() {
        let mut e = event("short");
        e.fields
            .insert("blob".into(), Value::String("z".repeat(5000)));
        assert_eq!(truncate(&mut e, Encoding::Json, 2048), None);
    }

    #[test]
    fn a_prepared_record_keeps_its_headers_and_key_in_the_spool() {
        let headers = owned_headers(&[("source".into(), b"app".to_vec())]);
        let prepared = Prepared {
            topic: Arc::from("logs"),
            routed: false,
            key: Some(Arc::from(&b"k"[..])),
            headers,
            payload: b"{}".to_vec(),
            token: None,
        };
        let (record, _) = prepared.into_spool();
        assert_eq!(record.topic, "logs");
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.headers, vec![("source".to_owned(), b"app".to_vec())]);
    }
}
