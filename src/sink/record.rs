//! A record taken from Kafka, and the claim of the partition it came from.
//!
//! Each assigned partition has a `Claim`: an `AckTracker<i64>` whose position is the offset to
//! commit (one past the contiguous prefix of finished records), and a flag set when the partition
//! is revoked. A record finishes when its write succeeded or it went to the dead-letter topic;
//! dropping it unfinished holds its partition's commit back, so a restart reads it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::metrics::TopicCounters;
use crate::ack::{AckToken, AckTracker};

/// No offset to commit yet.
pub const NOTHING: i64 = -1;

/// This consumer's hold on one partition, from assignment to revocation.
#[derive(Debug)]
pub struct Claim {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Its topic's read and written counters.
    pub counters: TopicCounters,
    tracker: Arc<AckTracker<i64>>,
    /// Records handed to the writer and not yet finished or dropped.
    in_writer: AtomicUsize,
    /// The last offset committed.
    committed: AtomicI64,
    /// Set when the partition is about to be revoked: writes under way may finish, nothing new
    /// should start (an S3 object still open will not be cut in time, and is dropped).
    draining: AtomicBool,
    revoked: AtomicBool,
}

impl Claim {
    pub fn new(topic: &str, partition: i32, counters: TopicCounters) -> Arc<Self> {
        Arc::new(Self {
            topic: Arc::from(topic),
            partition,
            counters,
            tracker: AckTracker::new(NOTHING),
            in_writer: AtomicUsize::new(0),
            committed: AtomicI64::new(NOTHING),
            draining: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
        })
    }

    /// Takes the record at `offset` into the claim.
    pub fn track(
        self: &Arc<Self>,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Record {
        Record {
            claim: Arc::clone(self),
            offset,
            timestamp,
            key,
            value,
            token: Some(self.tracker.track(offset + 1)),
            handed: false,
        }
    }

    /// The offset to commit: one past the contiguous prefix of finished records.
    pub fn position(&self) -> i64 {
        self.tracker.position()
    }

    /// Whether the writer holds none of this partition's records any more: each one handed
    /// over was finished, or dropped (and so will be read again).
    pub fn drained(&self) -> bool {
        self.in_writer.load(Ordering::Relaxed) == 0
    }

    /// The offset to commit, when it moved past the last one committed.
    pub fn due(&self) -> Option<i64> {
        let position = self.position();
        (position > self.committed.load(Ordering::Relaxed)).then_some(position)
    }

    /// `offset` was committed.
    pub fn committed(&self, offset: i64) {
        self.committed.fetch_max(offset, Ordering::Relaxed);
    }

    /// The partition is about to go: finish what is under way, start nothing new.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The partition went to another consumer: its records are no longer this one's to write.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// One Kafka record on its way to the destination.
#[derive(Debug)]
pub struct Record {
    pub claim: Arc<Claim>,
    pub offset: i64,
    /// Milliseconds since the epoch, when the record has a timestamp.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Taken when the record finishes.
    token: Option<AckToken>,
    /// Counted in its claim's `in_writer` until dropped.
    handed: bool,
}

impl Record {
    /// The writer takes the record over: its claim is not drained until it is finished or
    /// dropped. Undone by `take_back` when the hand-over did not happen.
    pub fn hand_over(&mut self) {
        if !self.handed {
            self.handed = true;
            self.claim.in_writer.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn take_back(&mut self) {
        if self.handed {
            self.handed = false;
            self.claim.in_writer.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The record is written (or dead-lettered): its offset may be committed once the records
    /// before it are too.
    pub fn finish(mut self) {
        if let Some(token) = self.token.take() {
            token.settle();
        }
    }

    pub fn topic(&self) -> &str {
        &self.claim.topic
    }

    pub fn partition(&self) -> i32 {
        self.claim.partition
    }

    /// Its partition was revoked: the new owner writes it.
    pub fn is_revoked(&self) -> bool {
        self.claim.is_revoked()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.take_back();
    }
}

/// The record's own time: its `@timestamp`, else `kafka_time` (milliseconds since the epoch).
pub fn record_time(fields: &Map<String, Value>, kafka_time: Option<i64>) -> Option<DateTime<Utc>> {
    fields
        .get("@timestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| kafka_time.and_then(DateTime::from_timestamp_millis))
}

/// A JSON object's `@timestamp`, its other fields skipped (but checked to be valid JSON).
#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(rename = "@timestamp", default)]
    timestamp: Option<Value>,
}

/// Whether `value` is a JSON object, and its `@timestamp` (text) if it has one: all a record's
/// time needs, far cheaper than parsing every field.
pub fn stamp(value: &[u8]) -> (bool, Map<String, Value>) {
    if value.trim_ascii_start().first() != Some(&b'{') {
        return (false, Map::new());
    }
    match serde_json::from_slice::<Stamp>(value) {
        Ok(Stamp { timestamp }) => (
            true,
            Map::from_iter(timestamp.map(|t| ("@timestamp".to_owned(), t))),
        ),
        Err(_) => (false, Map::new()),
    }
}

/// Appends `value` as one NDJSON line: a JSON object as it is (compacted if it spans lines),
/// anything else as `{"message": text}` with invalid UTF-8 replaced.
pub fn write_json_line(out: &mut Vec<u8>, value: &[u8], object: bool) {
    let trimmed = value.trim_ascii();
    if object && !trimmed.contains(&b'\n') {
        out.extend_from_slice(trimmed);
    } else if let Some(compact) = object
        .then(|| serde_json::from_slice::<Value>(trimmed).ok())
        .flatten()
    {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &compact);
    } else {
        let text = String::from_utf8_lossy(value);
        let _ = serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "message": text.trim_end() }),
        );
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_position_is_past_the_finished_prefix_only() {
        let claim = Claim::new("logs", 0, TopicCounters::default());
        let records: Vec<Record> = (10..13)
            .map(|offset| {
                let mut record = claim.track(offset, None, None, Vec::new());
                record.hand_over();
                record
            })
            .collect();
        assert_eq!(claim.position(), NOTHING);
        let mut records = records.into_iter();
        let (first, second, third) = (records.next(), records.next(), records.next());
        third.expect("third").finish();
        assert_eq!(claim.position(), NOTHING, "the first two are not written");
        first.expect("first").finish();
        assert_eq!(claim.position(), 11);
        assert!(!claim.drained());
        second.expect("second").finish();
        assert_eq!(claim.position(), 13);
        assert!(claim.drained());
        assert_eq!(claim.due(), Some(13));
        claim.committed(13);
        assert_eq!(claim.due(), None, "nothing new to commit");
        let mut dropped = claim.track(13, None, None, Vec::new());
        dropped.hand_over();
        assert!(!claim.drained());
        drop(dropped);
        assert!(
            claim.drained(),
            "a dropped record is no longer in the writer"
        );
        assert_eq!(claim.position(), 13, "and holds the commit back");
    }

    #[test]
    fn values_become_one_json_line_each() {
        let mut out = Vec::new();
        write_json_line(&mut out, b"{\"a\": 1,\n \"b\": [2]}", true);
        write_json_line(&mut out, b"{\"a\":1}\n", true);
        write_json_line(&mut out, b"plain \xff\n", false);
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "{\"a\":1,\"b\":[2]}\n{\"a\":1}\n{\"message\":\"plain \u{fffd}\"}\n"
        );
        assert_eq!(
            stamp(b"{\"@timestamp\":\"t\",\"x\":{}}").1["@timestamp"],
            "t"
        );
        assert!(stamp(b"{\"@timestamp\":12}").0);
        assert!(!stamp(b"{\"unclosed\":").0);
        assert!(!stamp(b"text").0);
    }
}
