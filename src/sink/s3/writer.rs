//! From records to uploaded objects: each partition has at most one open object; a record of
//! another time partition, `max_records` or `max_bytes` cuts it. Cut objects are uploaded (at
//! most `max_in_flight` at once, retried with backoff until they succeed), and only then do
//! their records finish, so offsets are committed after the upload. Open objects of a revoked
//! partition, and all of them at shutdown, are dropped: their records are read again, and build
//! the same objects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::object::{Finished, OpenObject};
use super::store;
use crate::backoff::Backoff;
use crate::config::S3Settings;
use crate::sink::health::SinkHealth;
use crate::sink::metrics::SinkMetrics;
use crate::sink::record::{Record, record_time, stamp};

/// How often open objects of partitions being revoked are looked for (a rebalance waits for
/// them to be dropped).
const REVOKED_CHECK: Duration = Duration::from_millis(100);

/// What every upload task shares.
pub struct Uploader {
    pub store: Arc<dyn ObjectStore>,
    pub part_bytes: usize,
    pub backoff: (Duration, Duration),
    pub health: Arc<SinkHealth>,
    pub metrics: SinkMetrics,
}

/// Builds and uploads objects until `records` is closed, then finishes the uploads under way.
pub async fn run(
    settings: &S3Settings,
    uploader: Arc<Uploader>,
    mut records: mpsc::Receiver<Record>,
) {
    let mut open: HashMap<(Arc<str>, i32), OpenObject> = HashMap::new();
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let mut uploads = JoinSet::new();
    let mut tick = tokio::time::interval(REVOKED_CHECK);
    loop {
        let record = tokio::select! {
            record = records.recv() => match record {
                Some(record) => record,
                None => break,
            },
            _ = tick.tick() => {
                open.retain(|_, object| !object.abandoned());
                while uploads.try_join_next().is_some() {}
                continue;
            }
        };
        if record.claim.is_draining() || record.is_revoked() {
            // Its object could not be cut before the partition goes: the new owner writes it.
            uploader.metrics.left_to_new_owner(1);
            continue;
        }
        let (object, fields) = stamp(&record.value);
        let time = record_time(&fields, record.timestamp).unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let window = time.format(&settings.time_partition).to_string();
        let slot = (Arc::clone(&record.claim.topic), record.partition());
        let mut cut = Vec::new();
        if open.get(&slot).is_some_and(|o| !o.holds_claim_of(&record)) {
            // Left from before the partition was revoked and assigned again: never cut.
            open.remove(&slot);
        }
        if open.get(&slot).is_some_and(|o| o.window() != window) {
            cut.extend(open.remove(&slot));
        }
        let current = open
            .entry(slot.clone())
            .or_insert_with(|| OpenObject::new(&settings.prefix, window, &record));
        current.push(record, object);
        if current.is_full(settings.max_records, settings.max_bytes) {
            cut.extend(open.remove(&slot));
        }
        for object in cut {
            let permit = Arc::clone(&permits).acquire_owned().await;
            let uploader = Arc::clone(&uploader);
            uploads.spawn(async move {
                uploader.upload(object.finish()).await;
                drop(permit);
            });
        }
    }
    // Objects still open are not uploaded: their records were not finished, so they are read
    // again after a restart and make the same objects.
    drop(open);
    while uploads.join_next().await.is_some() {}
}

impl Uploader {
    /// Uploads `object` until it succeeds, then finishes its records; gives up only when its
    /// partition was revoked (the new owner uploads the same object).
    async fn upload(&self, object: Finished) {
        let Finished {
            key,
            bytes,
            records,
        } = object;
        let size = bytes.len() as u64;
        let payload = object_store::PutPayload::from(bytes);
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        loop {
            if records.first().is_some_and(Record::is_revoked) {
                self.metrics.left_to_new_owner(records.len() as u64);
                return;
            }
            let started = std::time::Instant::now();
            let result = store::put(self.store.as_ref(), &key, &payload, self.part_bytes).await;
            self.metrics
                .request_duration
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    self.metrics.request_bytes.increment(size);
                    self.metrics.answered(200);
                    if let Some(first) = records.first() {
                        first.claim.counters.written.increment(records.len() as u64);
                    }
                    self.health.unblock();
                    for record in records {
                        record.finish();
                    }
                    return;
                }
                Err(error) => {
                    self.metrics.requests_error.increment(1);
                    self.metrics
                        .retried("transport", records.len() as u64, &error);
                    // Retrying alone may not fix it (credentials, a missing bucket): say so.
                    self.health
                        .block(format!("upload of {key} failed: {error}"));
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }
}
