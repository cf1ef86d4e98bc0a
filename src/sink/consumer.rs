//! The consumer-group side of a sink: one thread polls librdkafka, hands records to the sink's
//! writers through a bounded channel, pauses its partitions while the writers are behind,
//! commits finished offsets, and drains on revocation.
//!
//! Offsets are committed per partition only up to the contiguous prefix of finished records
//! (`record::Claim`), every `commit_interval`, when partitions are revoked and at shutdown. On a
//! revocation the thread waits (up to the drain timeout) for the partition's handed records to
//! finish, commits, and only then lets the partition go; records still unwritten then are left to
//! the new owner, which reads them again from the committed offset. Writes are idempotent
//! (deterministic ids and keys), so a record written twice that way is still one document.
//!
//! All librdkafka calls happen on this one thread, rebalance callbacks included, so blocking in
//! a callback while the writers (on the async runtime) finish is safe.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::health::SinkHealth;
use super::metrics::SinkMetrics;
use super::record::{Claim, Record};
use crate::config::ConsumerSettings;
use crate::metrics::LogLimiter;

/// Longest wait in one poll when nothing waits: how soon a stop is noticed.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// How often a record waiting for the writers is offered again.
const HAND_OVER_WAIT: Duration = Duration::from_millis(2);

/// Writers behind for this long: the partitions are paused, and polling resumes so that the
/// consumer stays in its group (librdkafka's `max.poll.interval.ms`).
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// `SinkContext::paused`: whether this consumer paused its assignment. After an assignment it
/// is not known (librdkafka keeps a pause across a rebalance for partitions given back), so the
/// next loop turn resumes or pauses whatever it holds.
const RESUMED: u8 = 0;
const PAUSED: u8 = 1;
const UNKNOWN: u8 = 2;

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot create the Kafka consumer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("cannot start the consumer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The running consumer thread.
pub struct ConsumerThread {
    thread: std::thread::JoinHandle<()>,
}

impl ConsumerThread {
    /// Subscribes and starts polling; records go to `records` until `stop` is cancelled. Then
    /// the thread stops reading, closes `records`, waits up to `drain_timeout` for the records
    /// handed over to finish, commits, and leaves the group.
    pub fn start(
        settings: &ConsumerSettings,
        records: mpsc::Sender<Record>,
        stop: CancellationToken,
        drain_timeout: Duration,
        health: Arc<SinkHealth>,
        metrics: SinkMetrics,
    ) -> Result<Self, ConsumerError> {
        let context = SinkContext {
            claims: Mutex::new(BTreeMap::new()),
            drain_timeout,
            health,
            metrics,
            paused: AtomicU8::new(UNKNOWN),
            log: LogLimiter::per_minute(12),
        };
        let consumer: BaseConsumer<SinkContext> = settings
            .consumer
            .create_with_context(context)
            .map_err(ConsumerError::Create)?;
        let topics: Vec<&str> = settings.subscription.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| ConsumerError::Subscribe {
                topics: settings.subscription.clone(),
                source,
            })?;
        let commit_interval = settings.commit_interval;
        let thread = std::thread::Builder::new()
            .name("logship-consumer".into())
            .spawn(move || poll_loop(consumer, records, stop, commit_interval))
            .map_err(ConsumerError::Thread)?;
        Ok(Self { thread })
    }

    /// Waits for the thread to have committed and left the group.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the consumer thread panicked");
        }
    }
}

fn poll_loop(
    consumer: BaseConsumer<SinkContext>,
    records: mpsc::Sender<Record>,
    stop: CancellationToken,
    commit_interval: Duration,
) {
    let context = consumer.context();
    let mut pending: VecDeque<Record> = VecDeque::new();
    let mut last_commit = Instant::now();
    let mut behind_since: Option<Instant> = None;
    // The claim of the last record: records come in runs per partition, so most need no
    // lookup in the shared map (a lock and a key allocation).
    let mut last: Option<Arc<Claim>> = None;
    while !stop.is_cancelled() {
        if !hand_over(&mut pending, &records) {
            break;
        }
        if last_commit.elapsed() >= commit_interval {
            context.commit(&consumer, &context.claims());
            last_commit = Instant::now();
        }
        let wait = if pending.is_empty() {
            behind_since = None;
            context.pause_while_behind(&consumer, false);
            POLL_WAIT
        } else if behind_since.get_or_insert_with(Instant::now).elapsed() < PAUSE_AFTER {
            // The writers are behind: wait for a slot without polling, while librdkafka keeps
            // prefetching (pausing would make it drop what it fetched).
            std::thread::sleep(HAND_OVER_WAIT);
            continue;
        } else {
            // Behind for long: pause, and poll only to stay in the group.
            context.pause_while_behind(&consumer, true);
            HAND_OVER_WAIT
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                context.health.set_kafka_reachable(true);
                let (topic, partition) = (message.topic(), message.partition());
                let cached = last
                    .as_ref()
                    .filter(|c| c.partition == partition && &*c.topic == topic && !c.is_revoked());
                let claim = match cached {
                    Some(claim) => Arc::clone(claim),
                    None => match context.claim(topic, partition) {
                        Some(claim) => Arc::clone(last.insert(claim)),
                        None => continue,
                    },
                };
                claim.counters.read.increment(1);
                pending.push_back(claim.track(
                    message.offset(),
                    message.timestamp().to_millis(),
                    message.key().map(<[u8]>::to_vec),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(error)) if context.log.allow() => tracing::warn!(%error, "consumer error"),
            Some(Err(_)) | None => {}
        }
    }
    // Records not handed over hold their partitions' commits back: the next owner reads them.
    drop(pending);
    drop(records);
    let claims = context.claims();
    for claim in &claims {
        claim.start_draining();
    }
    context.drain(&claims, "shutdown");
    context.commit(&consumer, &claims);
    for claim in &claims {
        claim.revoke();
    }
    // Dropping the consumer leaves the group (the revocation it triggers finds nothing to wait
    // for).
    drop(consumer);
    tracing::info!("consumer closed: offsets committed, group left");
}

/// Hands pending records to the writers until the channel is full. False once it is closed.
fn hand_over(pending: &mut VecDeque<Record>, records: &mpsc::Sender<Record>) -> bool {
    while let Some(mut record) = pending.pop_front() {
        if record.is_revoked() {
            continue;
        }
        record.hand_over();
        match records.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(mut record)) => {
                record.take_back();
                pending.push_front(record);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
    }
    true
}

/// State librdkafka's callbacks share with the poll loop.
struct SinkContext {
    claims: Mutex<BTreeMap<(String, i32), Arc<Claim>>>,
    drain_timeout: Duration,
    health: Arc<SinkHealth>,
    metrics: SinkMetrics,
    paused: AtomicU8,
    log: LogLimiter,
}

impl SinkContext {
    fn claims(&self) -> Vec<Arc<Claim>> {
        self.lock().values().cloned().collect()
    }

    fn claim(&self, topic: &str, partition: i32) -> Option<Arc<Claim>> {
        self.lock().get(&(topic.to_owned(), partition)).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), Arc<Claim>>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses every assigned partition while the writers are behind; resumes after.
    fn pause_while_behind(&self, consumer: &BaseConsumer<Self>, behind: bool) {
        let wanted = if behind { PAUSED } else { RESUMED };
        if self.paused.load(Ordering::Relaxed) == wanted {
            return;
        }
        let result = consumer.assignment().and_then(|assigned| {
            if behind {
                consumer.pause(&assigned)
            } else {
                consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                self.paused.store(wanted, Ordering::Relaxed);
                self.metrics.paused.set(if behind { 1.0 } else { 0.0 });
            }
            Err(error) => tracing::warn!(%error, behind, "cannot pause or resume partitions"),
        }
    }

    /// Waits until every handed record of `claims` finished, or the drain timeout passed.
    fn drain(&self, claims: &[Arc<Claim>], why: &str) {
        let deadline = Instant::now() + self.drain_timeout;
        while claims.iter().any(|c| !c.drained() && !c.is_revoked()) {
            if Instant::now() >= deadline {
                tracing::warn!(
                    why,
                    timeout = ?self.drain_timeout,
                    "records still being written; committing what finished and leaving the rest to be read again"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Commits the finished prefix of every claim that moved since its last commit.
    fn commit(&self, consumer: &BaseConsumer<Self>, claims: &[Arc<Claim>]) {
        let mut offsets = TopicPartitionList::new();
        let mut due = Vec::new();
        for claim in claims {
            if let Some(offset) = claim.due() {
                let added = offsets.add_partition_offset(
                    &claim.topic,
                    claim.partition,
                    Offset::Offset(offset),
                );
                if added.is_ok() {
                    due.push((claim, offset));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                for (claim, offset) in due {
                    claim.committed(offset);
                    self.metrics
                        .committed(&claim.topic, claim.partition, offset);
                }
            }
            Err(error) => {
                self.metrics.commit_errors.increment(1);
                if self.log.allow() {
                    tracing::warn!(%error, "offset commit failed; retrying at the next interval");
                }
            }
        }
    }
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (id, partition) in &topic.partitions {
                if *id >= 0 && partition.consumer_lag >= 0 {
                    self.metrics.lag(name, *id, partition.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_kafka_reachable(false);
        }
        if self.log.allow() {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let revoked: Vec<Arc<Claim>> = {
                    let mut claims = self.lock();
                    partitions
                        .elements()
                        .iter()
                        .filter_map(|p| claims.remove(&(p.topic().to_owned(), p.partition())))
                        .collect()
                };
                self.metrics.rebalanced("revoke", revoked.len());
                for claim in &revoked {
                    claim.start_draining();
                }
                self.drain(&revoked, "rebalance");
                self.commit(consumer, &revoked);
                let mut left = 0;
                for claim in &revoked {
                    claim.revoke();
                    left += u64::from(!claim.drained());
                }
                if left > 0 {
                    tracing::warn!(
                        partitions = left,
                        "partitions revoked before their records were written"
                    );
                }
                self.health.set_partitions(self.lock().len());
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                // librdkafka unassigns everything after a failed rebalance: let every claim go,
                // so a later assignment starts afresh from the committed offsets.
                tracing::error!(%error, "rebalance failed; dropping every partition");
                let dropped: Vec<Arc<Claim>> =
                    std::mem::take(&mut *self.lock()).into_values().collect();
                for claim in &dropped {
                    claim.revoke();
                }
                self.health.set_partitions(0);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let mut claims = self.lock();
            for p in partitions.elements() {
                claims
                    .entry((p.topic().to_owned(), p.partition()))
                    .or_insert_with(|| {
                        Claim::new(p.topic(), p.partition(), self.metrics.topic(p.topic()))
                    });
            }
            self.health.set_partitions(claims.len());
            drop(claims);
            // librdkafka keeps a pause on partitions given back: the poll loop resumes (or
            // pauses) the whole assignment on its next turn.
            self.paused.store(UNKNOWN, Ordering::Relaxed);
            self.health.set_kafka_reachable(true);
            self.metrics.rebalanced("assign", partitions.count());
        }
    }
}
