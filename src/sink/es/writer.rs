//! From records to written documents: records are grouped into bulk requests (cut by
//! `max_events`, `max_bytes` and `linger`), at most `max_in_flight` of which are under way. Each
//! request is sent until every document in it is done:
//!
//! - written (2xx, or 409 in data-stream mode): the record finishes;
//! - a per-item 429 or 5xx: that document goes again after a backoff with jitter;
//! - refused for good (400, 404): to the dead-letter topic, then it finishes;
//! - 401 or 403: /health turns red and the document goes again after a backoff; nothing drops;
//! - a request-level 413 splits the request in two (a single document too large is a dead letter).
//!
//! Records of a revoked partition are dropped before each attempt: the new owner writes them.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bulk::{self, Action, Verdict};
use super::client::{Answer, BulkClient};
use super::index::{IndexTemplate, record_time};
use crate::backoff::Backoff;
use crate::config::EsSettings;
use crate::sink::dead_letter::DeadLetters;
use crate::sink::health::SinkHealth;
use crate::sink::metrics::SinkMetrics;
use crate::sink::record::{Record, stamp};

/// Bytes a document adds to a bulk body besides its value: the action line.
const ACTION_LINE_BYTES: usize = 100;

/// A record with the index it goes to.
#[derive(Debug)]
struct Doc {
    record: Record,
    index: String,
    /// Whether the record value is a JSON object (written as it is).
    object: bool,
}

/// What every write task shares.
pub struct Writer {
    pub client: BulkClient,
    pub dead_letters: DeadLetters,
    pub health: Arc<SinkHealth>,
    pub metrics: SinkMetrics,
    pub action: Action,
    pub backoff: (std::time::Duration, std::time::Duration),
}

/// Writes records until `records` is closed, then finishes the requests under way.
pub async fn run(settings: &EsSettings, writer: Arc<Writer>, mut records: mpsc::Receiver<Record>) {
    let mut indexer = Indexer {
        template: settings.index.clone(),
        fallback: settings.fallback_index.clone(),
    };
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let mut tasks = JoinSet::new();
    let mut batch: Vec<Doc> = Vec::new();
    let mut bytes = 0;
    let mut deadline: Option<Instant> = None;
    let mut open = true;
    while open {
        let received = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, records.recv()).await.ok(),
            None => Some(records.recv().await),
        };
        let full = match received {
            Some(Some(record)) => {
                deadline.get_or_insert_with(|| Instant::now() + settings.linger);
                bytes += record.value.len() + ACTION_LINE_BYTES;
                batch.push(indexer.doc(record));
                batch.len() >= settings.max_events || bytes >= settings.max_bytes
            }
            Some(None) => {
                open = false;
                true
            }
            // The first record waited `linger`.
            None => true,
        };
        if full && !batch.is_empty() {
            let permit = Arc::clone(&permits).acquire_owned().await;
            let docs = std::mem::take(&mut batch);
            let writer = Arc::clone(&writer);
            tasks.spawn(async move {
                writer.write(docs).await;
                drop(permit);
            });
            bytes = 0;
            deadline = None;
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Chooses each record's index.
struct Indexer {
    template: IndexTemplate,
    fallback: Option<IndexTemplate>,
}

impl Indexer {
    fn doc(&mut self, record: Record) -> Doc {
        // Only a template that names fields needs them all; otherwise `@timestamp` is enough,
        // and far cheaper to find.
        let (object, fields) = if self.template.names_fields() {
            match serde_json::from_slice::<Map<String, Value>>(&record.value) {
                Ok(fields) => (true, fields),
                Err(_) => (false, Map::new()),
            }
        } else {
            stamp(&record.value)
        };
        // Without a time of its own (no `@timestamp`, no Kafka timestamp) a record is dated at
        // the epoch: the same index on every replay.
        let time = record_time(&fields, record.timestamp).unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let index = self
            .template
            .render(&fields, time)
            .ok()
            .or_else(|| {
                let fallback = self.fallback.as_mut()?;
                fallback.render(&fields, time).ok()
            })
            // Unreachable: the config requires a fallback when the template names fields, and a
            // fallback names none. An empty index would be refused per item, and dead-lettered.
            .unwrap_or_default();
        Doc {
            record,
            index,
            object,
        }
    }
}

impl Writer {
    /// Writes `docs` until each is written, dead-lettered or left to a partition's new owner.
    async fn write(&self, docs: Vec<Doc>) {
        let mut parts = vec![docs];
        while let Some(part) = parts.pop() {
            if let Some((first, second)) = self.write_part(part).await {
                self.metrics.splits.increment(1);
                parts.push(second);
                parts.push(first);
            }
        }
    }

    /// Writes one request's documents; returns them in two halves when the request is too large.
    async fn write_part(&self, mut part: Vec<Doc>) -> Option<(Vec<Doc>, Vec<Doc>)> {
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        loop {
            let before = part.len();
            part.retain(|doc| !doc.record.is_revoked());
            if part.len() < before {
                self.metrics.left_to_new_owner((before - part.len()) as u64);
            }
            if part.is_empty() {
                return None;
            }
            let mut body = Vec::new();
            for doc in &part {
                let record = &doc.record;
                bulk::append(
                    &mut body,
                    self.action,
                    &bulk::Document {
                        index: &doc.index,
                        topic: record.topic(),
                        partition: record.partition(),
                        offset: record.offset,
                        value: &record.value,
                        object: doc.object,
                    },
                );
            }
            match self.client.send(body, part.len()).await {
                Answer::Items(verdicts) => {
                    part = self.settle(part, verdicts).await;
                    if !part.is_empty() {
                        let wait = backoff.next_wait();
                        self.metrics.retried(
                            "item",
                            part.len() as u64,
                            &"per-item 429, 5xx, 401 or 403",
                        );
                        tokio::time::sleep(wait).await;
                    }
                }
                Answer::TooLarge if part.len() > 1 => {
                    let second = part.split_off(part.len() / 2);
                    return Some((part, second));
                }
                Answer::TooLarge => {
                    if let Some(doc) = part.pop() {
                        let reason = "request_entity_too_large: the document alone exceeds the cluster's http.max_content_length";
                        self.dead_letters.send(doc.record, 413, reason).await;
                    }
                    return None;
                }
                Answer::Retry { reason, detail } => {
                    self.metrics.retried(reason, part.len() as u64, &detail);
                    tokio::time::sleep(backoff.next_wait()).await;
                }
                Answer::Blocked { status, detail } => {
                    self.health.block(format!("{status}: {detail}"));
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }

    /// Finishes the documents that are done; returns those to send again.
    async fn settle(&self, part: Vec<Doc>, verdicts: Vec<Verdict>) -> Vec<Doc> {
        let mut again = Vec::new();
        let mut blocked = None;
        let mut dead_letters = JoinSet::new();
        for (doc, verdict) in part.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Written => {
                    doc.record.claim.counters.written.increment(1);
                    doc.record.finish();
                }
                Verdict::Retry => again.push(doc),
                Verdict::DeadLetter { status, reason } => {
                    let dead_letter = self.dead_letters.clone();
                    dead_letters.spawn(async move {
                        dead_letter.send(doc.record, status, &reason).await;
                    });
                }
                Verdict::Blocked { status, reason } => {
                    blocked = Some(format!("{status} on index {}: {reason}", doc.index));
                    again.push(doc);
                }
            }
        }
        match blocked {
            Some(reason) => self.health.block(reason),
            None => self.health.unblock(),
        }
        while dead_letters.join_next().await.is_some() {}
        again
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::Claim;

    #[test]
    fn records_without_the_templates_fields_or_a_time_still_get_a_stable_index() {
        let mut indexer = Indexer {
            template: IndexTemplate::parse("logs-{{ service }}-%Y.%m.%d").expect("template"),
            fallback: Some(IndexTemplate::parse("unrouted-%Y.%m").expect("fallback")),
        };
        let claim = Claim::new("logs", 0, Default::default());
        let index = |indexer: &mut Indexer, value: &str, kafka_time: Option<i64>| {
            let record = claim.track(0, kafka_time, None, value.as_bytes().to_vec());
            indexer.doc(record).index
        };
        let time = Some(1_795_000_000_000); // 2026-11-18
        assert_eq!(
            index(
                &mut indexer,
                r#"{"service":"Web","@timestamp":"2026-11-22T01:00:00Z"}"#,
                time
            ),
            "logs-web-2026.11.22",
            "the record's own time wins over Kafka's"
        );
        assert_eq!(
            index(&mut indexer, r#"{"service":"api"}"#, time),
            "logs-api-2026.11.18"
        );
        assert_eq!(index(&mut indexer, "plain text", time), "unrouted-2026.11");
        assert_eq!(index(&mut indexer, "plain text", None), "unrouted-1970.01");
        let mut dated = Indexer {
            template: IndexTemplate::parse("logs-%Y.%m.%d").expect("template"),
            fallback: None,
        };
        let record = claim.track(1, time, None, br#"{"@timestamp":12,"a":{"b":1}}"#.to_vec());
        let doc = dated.doc(record);
        assert_eq!(
            doc.index, "logs-2026.11.18",
            "a non-text @timestamp is not a time"
        );
        assert!(doc.object, "but the record is still a JSON object");
        let record = claim.track(
            2,
            time,
            None,
            br#"{"@timestamp":"2026-11-22T01:00:00Z"}"#.to_vec(),
        );
        assert_eq!(dated.doc(record).index, "logs-2026.11.22");
        let record = claim.track(3, time, None, br#"{"broken":"#.to_vec());
        assert!(!dated.doc(record).object);
    }
}
