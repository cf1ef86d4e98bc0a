//! The producer: one Kafka record per event, and the delivery report as the only thing that
//! settles an event's ack token (or its spooling: design invariants 1 and 5).
//!
//! librdkafka batches, compresses and retries (idempotent, acks=all, at most 5 requests in flight,
//! so retries keep order). A full queue means wait for delivery reports (backpressure, never an
//! error); a record Kafka rejects for good goes once to `dead_letter_topic` with headers saying
//! why (`on_rejected`), or is dropped; counted by reason and action either way.
//!
//! When records wait `message_timeout_ms` without any delivery, the delivery thread takes all of
//! them back from librdkafka (purge) and they go to the disk spool, sorted by when they were
//! sent; the producer switches to spooling, and every new event goes to the spool too, behind
//! them. (librdkafka itself retries forever: a record it failed alone would let the records
//! behind it overtake it.) Replay
//! hands spooled frames back to librdkafka, oldest first, while Kafka answers; when the spool is
//! drained and nothing is in flight, events go straight to librdkafka again. Within a partition,
//! records therefore keep their order across the outage.
//!
//! Without a spool a failed record is given up after `retry_max_elapsed_secs` (dropped, or one
//! attempt to the dead-letter topic, counted), or, with unbounded retries, stops the agent (exit
//! 1): its source's checkpoint still points before it, so the restart resumes in order.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext, PurgeConfig,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::partition::KeyPartitioner;
use super::record::{Encoder, Prepared, RecordBatch, RecordMaker, owned_headers, spool_headers};
use super::spooling::Spooler;
use crate::ack::AckToken;
use crate::backoff::Backoff;
use crate::config::{KafkaSettings, SpoolSettings};
use crate::health::Health;
use crate::metrics::{FailureReason, LogLimiter, ProducerMetrics};
use crate::spool::{FramePos, SpoolError, SpoolRecord};

/// Why the producer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot open the spool: {0}")]
    Spool(#[source] SpoolError),
    #[error("the Kafka producer hit a fatal error ({code:?}): {reason}")]
    Fatal {
        code: RDKafkaErrorCode,
        reason: String,
    },
    #[error(
        "a record could not be delivered ({0}); stopping so that the restart resumes in order \
         from the checkpoint"
    )]
    Undeliverable(String),
    #[error("cannot start the delivery-report thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the producer task failed: {0}")]
    Panicked(String),
}

/// Where a record came from, which decides what its failure means.
enum Origin {
    /// An event from a source.
    Direct,
    /// A record replayed from the spool, part of this frame.
    Replay(Arc<FrameProgress>),
    /// A record on its one attempt to the dead-letter topic. If Kafka fails it too, it is
    /// dropped, counted; if it is only taken back (an outage), it is kept for later.
    LastChance(LastChance),
}

/// Why a record goes to the dead-letter topic, and what waits for its report there.
struct LastChance {
    /// Rejected by Kafka (or librdkafka) for this reason; `None`: given up after
    /// `retry_max_elapsed_secs`.
    why: Option<FailureReason>,
    /// The replayed spool frame it came from: the frame is done with only once its dead letters
    /// are reported, so a crash before then replays it (a token does the same for an event).
    frame: Option<Arc<FrameProgress>>,
}

/// Reports still expected for one replayed spool frame, and what the ones in said.
struct FrameProgress {
    pos: FramePos,
    remaining: AtomicUsize,
    /// Records Kafka acknowledged (not those given up).
    delivered: AtomicUsize,
    /// A record needs delivering again: the frame is replayed later.
    failed: AtomicBool,
}

impl FrameProgress {
    fn new(pos: FramePos, records: usize) -> Self {
        Self {
            pos,
            remaining: AtomicUsize::new(records),
            delivered: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// Counts one report; true for the frame's last.
    fn report(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Delivered => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Retry => self.failed.store(true, Ordering::Relaxed),
            Outcome::GivenUp | Outcome::Handed => {}
        }
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// What one report meant for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// Given up for good (counted): nothing more to do for it here.
    GivenUp,
    /// It still needs delivering.
    Retry,
    /// It went on to the dead-letter topic, whose report counts for it.
    Handed,
}

/// What rides along with a record until its delivery report.
struct InFlight {
    token: Option<AckToken>,
    /// A pipeline chose the topic, from the event's own data.
    routed: bool,
    /// When the producer took it (an event's: when its batch arrived; waits for room in
    /// librdkafka's queue count), and its value's size, for the latency and in-flight metrics.
    sent_at: Instant,
    bytes: usize,
    /// Its place among every record handed to librdkafka: the spool takes failed records in
    /// this order.
    order: u64,
    origin: Origin,
}

impl InFlight {
    fn new(token: Option<AckToken>, routed: bool, bytes: usize, origin: Origin) -> Box<Self> {
        Self::taken_at(token, routed, bytes, origin, Instant::now())
    }

    /// One clock read serves a whole batch of events.
    fn taken_at(
        token: Option<AckToken>,
        routed: bool,
        bytes: usize,
        origin: Origin,
        sent_at: Instant,
    ) -> Box<Self> {
        Box::new(Self {
            token,
            routed,
            sent_at,
            bytes,
            order: 0,
            origin,
        })
    }
}

/// A record librdkafka gave up on, for the spool or the loss policy.
struct Diverted {
    record: SpoolRecord,
    token: Option<AckToken>,
    /// `InFlight::order`: reports of one outage (timeouts, purges) can come out of order, so the
    /// spool takes them sorted by this.
    order: u64,
}

/// A record Kafka rejected for good, on its way to the dead-letter topic.
struct Rejected {
    record: SpoolRecord,
    token: Option<AckToken>,
    reason: FailureReason,
    error: String,
    /// The replayed frame it came from, which waits for the dead letter's report.
    frame: Option<Arc<FrameProgress>>,
}

/// State the delivery callback (librdkafka's polling thread) shares with the produce loop.
struct Shared {
    metrics: ProducerMetrics,
    health: Arc<Health>,
    /// Wakes the run loop: the callback left news for it (diverted, rejected, frames done).
    news: Notify,
    /// Wakes a send waiting for room in librdkafka's queue: a report came.
    room: Notify,
    /// The first delivery failure that was neither success nor a permanent rejection, when such
    /// a failure stops the producer.
    undeliverable: Mutex<Option<String>>,
    in_flight_bytes: AtomicI64,
    client_log: LogLimiter,
    on_failure: OnFailure,
    /// Failed direct records for the spool or the loss policy, in report order.
    diverted: Mutex<Vec<Diverted>>,
    /// Where records Kafka rejects for good go (`on_rejected = "dead_letter"`); `None`: dropped.
    rejected_to: Option<Arc<str>>,
    /// Rejected records waiting to be sent there by the run loop.
    rejected: Mutex<Vec<Rejected>>,
    frames_done: Mutex<Vec<Arc<FrameProgress>>>,
    /// New events go to the spool. Set by the first diverted record when there is a spool; set
    /// and cleared through `start_spooling` and `stop_spooling` only, which tell /health too.
    spooling: AtomicBool,
    /// The delivery thread takes every record back from librdkafka (purge: queued and in
    /// flight), to be diverted in order. Set by the first diverted record of an outage.
    take_back: AtomicBool,
    /// Direct records handed to librdkafka and not yet reported. Decremented after a failed
    /// record was pushed to `diverted`, so zero means every diverted record is there.
    direct_in_flight: AtomicI64,
    /// Direct records Kafka acknowledged, which the delivery thread finishes once its poll
    /// returns (`finish_acked`): one clock read, one lock per tracker and one update of each
    /// shared counter per batch of reports, instead of per record.
    acked: Mutex<Vec<InFlight>>,
    /// The send time of the last delivery-latency sample (`sample_latency`).
    last_sampled: Mutex<Option<Instant>>,
    /// The next `InFlight::order`.
    next_order: std::sync::atomic::AtomicU64,
}

/// What a direct record that failed for a reason retrying might fix becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// It goes to the spool, and so does everything after it.
    Spool,
    /// It is given up after `retry_max_elapsed_secs` (no spool): dropped or dead-lettered.
    GiveUp,
    /// The producer stops (no spool, retries forever): the restart resumes from the checkpoint.
    Stop,
}

/// librdkafka callbacks.
struct DeliveryContext {
    shared: Arc<Shared>,
    /// Partitions keyed records (`partitioner = "consistent_random"`); `None`: librdkafka does.
    partitioner: Option<KeyPartitioner>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.health.set_kafka_reachable(false);
        }
        if self.shared.client_log.allow() {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl ProducerContext<KeyPartitioner> for DeliveryContext {
    type DeliveryOpaque = Box<InFlight>;

    fn get_custom_partitioner(&self) -> Option<&KeyPartitioner> {
        self.partitioner.as_ref()
    }

    fn delivery(&self, result: &DeliveryResult<'_>, mut inflight: Self::DeliveryOpaque) {
        let shared = &self.shared;
        if result.is_ok() && matches!(inflight.origin, Origin::Direct) {
            let mut acked = lock(&shared.acked);
            acked.push(*inflight);
            // rdkafka's poll serves reports until its whole wait is over: finish them here once
            // a batch is full, or when none is left in flight (the last of a burst, a lone HTTP
            // request's event), so no acknowledgement waits for the poll to end.
            let reported = acked.len();
            if reported >= ACKED_BATCH
                || reported as i64 >= shared.direct_in_flight.load(Ordering::Acquire)
            {
                drop(acked);
                shared.finish_acked();
            }
            return;
        }
        let now = Instant::now();
        shared.sample_latency(&mut lock(&shared.last_sampled), inflight.sent_at, now);
        // The in-flight gauges are set by the delivery thread after each poll, not per record.
        shared
            .in_flight_bytes
            .fetch_sub(inflight.bytes as i64, Ordering::Relaxed);
        shared.health.reported(result.is_ok(), now);
        let outcome = match result {
            Ok(_) => {
                shared.metrics.records_delivered(1);
                if let Origin::LastChance(last) = &inflight.origin {
                    match last.why {
                        Some(reason) => shared.metrics.failed(
                            reason,
                            "dead_lettered",
                            &"delivered to dead_letter_topic",
                        ),
                        None => shared.metrics.given_up("dead_lettered", 1),
                    }
                }
                settle(inflight.token.take());
                Outcome::Delivered
            }
            Err((error, message)) => shared.failed(error, message, &mut inflight),
        };
        if let Origin::Direct = inflight.origin {
            shared.direct_in_flight.fetch_sub(1, Ordering::AcqRel);
        } else {
            shared.reported(&inflight.origin, outcome);
        }
        shared.room.notify_one();
    }
}

impl Shared {
    fn new(
        topic: &str,
        health: Arc<Health>,
        on_failure: OnFailure,
        rejected_to: Option<Arc<str>>,
    ) -> Self {
        Self {
            metrics: ProducerMetrics::new(topic),
            health,
            news: Notify::new(),
            room: Notify::new(),
            undeliverable: Mutex::new(None),
            in_flight_bytes: AtomicI64::new(0),
            client_log: LogLimiter::per_minute(12),
            on_failure,
            diverted: Mutex::new(Vec::new()),
            rejected_to,
            rejected: Mutex::new(Vec::new()),
            frames_done: Mutex::new(Vec::new()),
            spooling: AtomicBool::new(false),
            take_back: AtomicBool::new(false),
            direct_in_flight: AtomicI64::new(0),
            acked: Mutex::new(Vec::new()),
            last_sampled: Mutex::new(None),
            next_order: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Finishes the acknowledged direct records the delivery callback set aside: their latency,
    /// their tokens settled, and the counters they move. Called after every poll, and by
    /// `flush` (librdkafka's flush polls on its caller's thread).
    fn finish_acked(&self) {
        let mut acked = lock(&self.acked);
        if acked.is_empty() {
            return;
        }
        let now = Instant::now();
        let records = acked.len();
        let mut bytes = 0;
        let mut last = lock(&self.last_sampled);
        let tokens = acked.drain(..).filter_map(|mut inflight| {
            self.sample_latency(&mut last, inflight.sent_at, now);
            bytes += inflight.bytes;
            inflight.token.take()
        });
        AckToken::settle_all(tokens);
        drop(acked);
        self.in_flight_bytes
            .fetch_sub(bytes as i64, Ordering::Relaxed);
        self.health.delivered(records, now);
        self.metrics.records_delivered(records as u64);
        self.direct_in_flight
            .fetch_sub(records as i64, Ordering::AcqRel);
        self.room.notify_one();
    }

    /// Records a delivery latency once per send time: the records of one batch (or replayed
    /// frame) were sent at the same instant, and the first of them acknowledged speaks for all.
    /// The exporter keeps every sample until the next upkeep, so a sample per record would cost
    /// memory in step with the rate (8 bytes a record, drained every 5 s: 40 MB at a million
    /// records a second), outside the memory budget. `last` is `last_sampled`, locked by the
    /// caller (once per run).
    fn sample_latency(&self, last: &mut Option<Instant>, sent_at: Instant, now: Instant) {
        if *last != Some(sent_at) {
            *last = Some(sent_at);
            self.metrics
                .delivery_latency
                .record(now.saturating_duration_since(sent_at).as_secs_f64());
        }
    }

    /// Switches new events to the spool, and /health with it; true when it was not spooling yet.
    fn start_spooling(&self) -> bool {
        let started = !self.spooling.swap(true, Ordering::AcqRel);
        self.health.set_spooling(true);
        started
    }

    /// The spool drained: events go to Kafka directly again, and /health says so.
    fn stop_spooling(&self) {
        self.spooling.store(false, Ordering::Release);
        self.health.set_spooling(false);
    }

    /// Sets the in-flight gauges; the sums may dip below 0 briefly when a report comes before
    /// its sender counted the record.
    fn show_in_flight(&self) {
        let bytes = self.in_flight_bytes.load(Ordering::Relaxed);
        self.metrics.in_flight_bytes.set(bytes.max(0) as f64);
        let records = self.health.in_flight();
        self.metrics.in_flight.set(records.max(0) as f64);
    }

    /// A record from the spool or on its way to the dead-letter topic is done with, or not: its
    /// spool frame learns it.
    fn reported(&self, origin: &Origin, outcome: Outcome) {
        match origin {
            Origin::Replay(frame) if outcome != Outcome::Handed => {
                self.frame_reported(frame, outcome);
            }
            Origin::LastChance(LastChance {
                frame: Some(frame), ..
            }) => {
                // Dead-lettered is not delivered to its topic: not counted as replayed.
                let outcome = match outcome {
                    Outcome::Delivered => Outcome::GivenUp,
                    other => other,
                };
                self.frame_reported(frame, outcome);
            }
            _ => {}
        }
    }

    /// One record of a replayed frame was reported; the frame's last report hands it back to
    /// the run loop.
    fn frame_reported(&self, frame: &Arc<FrameProgress>, outcome: Outcome) {
        if frame.report(outcome) {
            lock(&self.frames_done).push(Arc::clone(frame));
            self.news.notify_one();
        }
    }

    /// A record on its one attempt to the dead-letter topic failed too: dropped, counted once
    /// under what sent it there.
    fn last_chance_lost(&self, why: Option<FailureReason>, error: &dyn std::fmt::Display) {
        match why {
            Some(reason) => self.metrics.failed(reason, "dropped", error),
            None => self.metrics.given_up("dropped", 1),
        }
    }

    /// A record rejected for good: queued for the dead-letter topic with what waits for it
    /// (`Handed`), or dropped, counted and settled (`GivenUp`): a record rejected by the
    /// dead-letter topic itself is dropped. A record on its last chance is the caller's (`None`).
    fn reject(
        &self,
        record: impl Fn() -> SpoolRecord,
        reason: FailureReason,
        error: &KafkaError,
        inflight: &mut InFlight,
    ) -> Option<Outcome> {
        let frame = match &inflight.origin {
            Origin::LastChance(_) => return None,
            Origin::Replay(frame) => Some(Arc::clone(frame)),
            Origin::Direct => None,
        };
        if let Some(topic) = &self.rejected_to {
            let record = record();
            if record.topic != **topic {
                // Its dead letter carries the token: the source waits for that delivery.
                lock(&self.rejected).push(Rejected {
                    record,
                    token: inflight.token.take(),
                    reason,
                    error: error.to_string(),
                    frame,
                });
                self.news.notify_one();
                return Some(Outcome::Handed);
            }
        }
        // Given up and counted: the source may move past it (invariant 3).
        self.metrics.failed(reason, "dropped", error);
        settle(inflight.token.take());
        Some(Outcome::GivenUp)
    }

    /// A record on its one attempt to the dead-letter topic failed. Taken back from librdkafka
    /// (an outage, or shutdown), it is kept: its frame is replayed again, an event's record is
    /// spooled. Failed by Kafka, it is dropped, counted.
    fn last_chance_failed(
        &self,
        error: &KafkaError,
        record: impl Fn() -> SpoolRecord,
        inflight: &mut InFlight,
    ) -> Outcome {
        let Origin::LastChance(last) = &inflight.origin else {
            return Outcome::Retry;
        };
        if is_purge(error) {
            if let Some(token) = inflight.token.take() {
                lock(&self.diverted).push(Diverted {
                    record: record(),
                    token: Some(token),
                    order: inflight.order,
                });
                self.news.notify_one();
            }
            return Outcome::Retry;
        }
        self.last_chance_lost(last.why, error);
        settle(inflight.token.take());
        Outcome::GivenUp
    }

    /// A failed delivery: counted and given up when retrying cannot help, else diverted or
    /// recorded as fatal.
    /// A direct record for `topic` failed in a way that stops the producer at its next
    /// `check_failed`: the error names the topic. Its token stays unsettled, so the checkpoint
    /// never passes the record and the restart reads it again.
    fn undeliverable(&self, topic: &str, error: &KafkaError) {
        tracing::error!(topic, %error, "delivery failed");
        lock(&self.undeliverable).get_or_insert_with(|| format!("{topic}: {error}"));
        self.news.notify_one();
    }

    fn failed(
        &self,
        error: &KafkaError,
        message: &BorrowedMessage<'_>,
        inflight: &mut InFlight,
    ) -> Outcome {
        if let Some(reason) = permanent_reason(error, inflight.routed)
            && let Some(outcome) = self.reject(|| spool_record(message), reason, error, inflight)
        {
            return outcome;
        }
        match inflight.origin {
            Origin::Replay(_) => Outcome::Retry,
            Origin::LastChance(_) => {
                self.last_chance_failed(error, || spool_record(message), inflight)
            }
            Origin::Direct
                if self.on_failure != OnFailure::Stop
                    && !stops_the_agent(error, inflight.routed) =>
            {
                lock(&self.diverted).push(Diverted {
                    record: spool_record(message),
                    token: inflight.token.take(),
                    order: inflight.order,
                });
                if self.on_failure == OnFailure::Spool && self.start_spooling() {
                    // Records behind this one must not be delivered ahead of it.
                    self.take_back.store(true, Ordering::Release);
                }
                self.news.notify_one();
                Outcome::Retry
            }
            Origin::Direct => {
                self.undeliverable(message.topic(), error);
                Outcome::Retry
            }
        }
    }
}

/// Queues failed records for the spool sorted by when they were sent: reports of one outage
/// (timeouts, purges) can come out of order.
fn hold_diverted(spooler: &mut Spooler, mut diverted: Vec<Diverted>) {
    diverted.sort_by_key(|d| d.order);
    for Diverted { record, token, .. } in diverted {
        spooler.hold(record, token);
    }
}

fn settle(token: Option<AckToken>) {
    if let Some(token) = token {
        token.settle();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A failed record as the spool keeps it.
fn spool_record(message: &BorrowedMessage<'_>) -> SpoolRecord {
    SpoolRecord {
        topic: message.topic().to_owned(),
        key: message.key().map(<[u8]>::to_vec),
        headers: message.headers().map_or_else(Vec::new, spool_headers),
        payload: message.payload().unwrap_or_default().to_vec(),
    }
}

/// Rejections that retrying cannot fix. A topic that does not exist is one only when the event's
/// own data chose it (`route` with a template): a missing configured topic stops the agent, since
/// every record would fail, but one odd namespace must not.
fn permanent_reason(error: &KafkaError, routed: bool) -> Option<FailureReason> {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code()? {
        C::UnknownTopic | C::UnknownTopicOrPartition if routed => Some(FailureReason::UnknownTopic),
        C::MessageSizeTooLarge | C::InvalidMessageSize => Some(FailureReason::TooLarge),
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
            Some(FailureReason::NotAuthorized)
        }
        C::InvalidMessage | C::InvalidRecord => Some(FailureReason::InvalidRecord),
        C::InvalidTopic => Some(FailureReason::InvalidTopic),
        _ => None,
    }
}

/// librdkafka took the record back unsent (`purge`): not a verdict on it.
fn is_purge(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
    )
}

/// A configured topic that does not exist: every record would fail, so spooling cannot help.
fn stops_the_agent(error: &KafkaError, routed: bool) -> bool {
    use RDKafkaErrorCode as C;
    !routed
        && matches!(
            error.rdkafka_error_code(),
            Some(C::UnknownTopic | C::UnknownTopicOrPartition)
        )
}

/// One record as it goes to librdkafka.
struct Outgoing<'a> {
    topic: &'a str,
    payload: &'a [u8],
    key: Option<&'a [u8]>,
    headers: Option<&'a OwnedHeaders>,
}

/// What became of a record offered to librdkafka.
enum Sent {
    Taken,
    /// `stop` came first; the record is dropped unsettled.
    Stopped,
    /// The producer switched to spooling while a direct record waited for room: it goes to the
    /// spool instead, behind the records librdkafka still holds.
    Diverted(Box<InFlight>),
}

/// What to do after librdkafka refused a record.
enum Refusal {
    OfferAgain,
    GivenUp,
    Stopped,
}

/// The agent's Kafka producer: the configured topic, or the one a pipeline chose per event.
pub struct Producer {
    inner: Arc<BaseProducer<DeliveryContext, KeyPartitioner>>,
    records: Arc<RecordMaker>,
    shared: Arc<Shared>,
    /// The spool, while `run` is not using it (at start and at shutdown).
    spooler: tokio::sync::Mutex<Option<Spooler>>,
    give_up_after: Option<Duration>,
    /// Where records given up after `give_up_after` go; `None`: dropped.
    exhausted_to: Option<Arc<str>>,
    /// Stops the delivery-report thread when the producer goes.
    _poller: Poller,
}

/// How long one wait for delivery reports may block. rdkafka's `poll` spins through the last
/// fraction of a millisecond of every wait (its deadline is rounded down to whole milliseconds),
/// so the waits are long: with rdkafka's own `ThreadedProducer` and its 100 ms waits, that spin
/// was about 1 % of a core on an idle agent. Reports still arrive at once; only stopping the
/// thread waits for the current wait to end, and nothing waits for that.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// The thread that serves librdkafka's delivery reports (the `delivery` callback runs on it).
struct Poller {
    stop: Arc<AtomicBool>,
}

impl Poller {
    /// `spool_after`: with a spool, how long records may wait without a delivery before they are
    /// all taken back from librdkafka, so they reach the spool in order. librdkafka never fails
    /// them one by one (`message.timeout.ms = 0`): a record failing alone would let the ones
    /// behind it overtake it. Checked after every poll, so within a second of the limit.
    fn start(
        producer: Arc<BaseProducer<DeliveryContext, KeyPartitioner>>,
        shared: Arc<Shared>,
        spool_after: Option<Duration>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kafka-delivery".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    producer.poll(POLL_WAIT);
                    shared.finish_acked();
                    shared.show_in_flight();
                    let stalled = spool_after.is_some_and(|limit| shared.health.stalled_for(limit));
                    // Not inside a callback: purging serves no reports itself.
                    if shared.take_back.swap(false, Ordering::AcqRel) || stalled {
                        producer.purge(PurgeConfig::default().queue().inflight());
                    }
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for Poller {
    /// The thread ends after its current wait and drops its share of the client then.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Headers a dead letter of a rejected record carries: the reason (`not_authorized`,
/// `too_large`, …), the topic Kafka refused it for, and librdkafka's error text.
pub const REJECTED_REASON: &str = "logship.rejected.reason";
pub const REJECTED_TOPIC: &str = "logship.rejected.topic";
pub const REJECTED_ERROR: &str = "logship.rejected.error";

/// Acknowledged records the delivery callback sets aside before finishing them together.
const ACKED_BATCH: usize = 256;
/// Longest wait for room in librdkafka's queue before the record is offered again.
const ROOM_WAIT: Duration = Duration::from_millis(50);
/// Wait between attempts to hand a record to librdkafka after a local, transient refusal.
const SEND_RETRY_WAIT: Duration = Duration::from_millis(100);
/// How often the loop looks at the spool while spooling (fsync interval, backoff, replay).
const SPOOL_TICK: Duration = Duration::from_millis(100);

/// The run loop's own state.
struct Run<'a> {
    spooler: Option<&'a mut Spooler>,
    /// Events taken while the producer switched to spooling: they go to the spool behind the
    /// records librdkafka still holds.
    held: Vec<Prepared>,
    /// Since when Kafka has taken nothing while records wait (for `retry_max_elapsed_secs`).
    failing_since: Option<Instant>,
}

impl Producer {
    pub fn new(
        settings: &KafkaSettings,
        spool: Option<&SpoolSettings>,
        health: Arc<Health>,
    ) -> Result<Self, ProducerError> {
        let on_failure = match (spool, settings.give_up_after) {
            (Some(_), _) => OnFailure::Spool,
            (None, Some(_)) => OnFailure::GiveUp,
            (None, None) => OnFailure::Stop,
        };
        let rejected_to = settings.rejected_to.as_deref().map(Arc::from);
        let shared = Arc::new(Shared::new(
            &settings.topic,
            Arc::clone(&health),
            on_failure,
            rejected_to,
        ));
        let spooler = spool
            .map(|settings_| {
                let backoff = Backoff::new(
                    settings.retry_backoff,
                    settings.retry_backoff_max.max(Duration::from_secs(5)),
                );
                Spooler::open(settings_, backoff, health)
            })
            .transpose()
            .map_err(ProducerError::Spool)?;
        let context = DeliveryContext {
            shared: Arc::clone(&shared),
            partitioner: settings.key_partitioner.then(KeyPartitioner::default),
        };
        let inner: Arc<BaseProducer<DeliveryContext, KeyPartitioner>> = Arc::new(
            settings
                .client
                .create_with_context(context)
                .map_err(ProducerError::Create)?,
        );
        let spool_after = spool.map(|_| settings.spool_after);
        let poller = Poller::start(Arc::clone(&inner), Arc::clone(&shared), spool_after)
            .map_err(ProducerError::Thread)?;
        Ok(Self {
            inner,
            records: Arc::new(RecordMaker::new(settings.records.clone(), &settings.topic)),
            shared,
            spooler: tokio::sync::Mutex::new(spooler),
            give_up_after: settings.give_up_after,
            exhausted_to: settings.exhausted_to.as_deref().map(Arc::from),
            _poller: poller,
        })
    }

    /// Produces every event received until `stop`, then returns; events still in the channel are
    /// dropped unsettled, so their lines are read again after a restart.
    pub async fn run(
        &self,
        mut rx: mpsc::Receiver<RecordBatch>,
        stop: CancellationToken,
    ) -> Result<(), ProducerError> {
        let mut spooler = self.spooler.lock().await;
        let mut run = Run {
            spooler: spooler.as_mut(),
            held: Vec::new(),
            failing_since: None,
        };
        // Records an earlier run spooled go first, once a broker probe is answered.
        if run.spooler.as_ref().is_some_and(|s| s.has_unread()) {
            self.shared.health.delivery_failed();
            self.shared.start_spooling();
        }
        loop {
            self.check_failed()?;
            // One reading per turn, before `diverted` is taken: at zero, every failed direct
            // record is in it, and the turn's decisions all rest on that.
            let direct_idle = self.direct_in_flight() == 0;
            self.take_reports(&mut run, direct_idle, &stop).await?;
            let spooling = self.shared.spooling.load(Ordering::Acquire);
            if spooling && !self.spool_step(&mut run, direct_idle, &stop).await? {
                return Ok(());
            }
            let accepting = !spooling
                || (run.held.is_empty()
                    && direct_idle
                    && run.spooler.as_ref().is_some_and(|s| !s.has_pending()));
            let batch = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                batch = rx.recv(), if accepting => match batch {
                    Some(batch) => batch,
                    None => return Ok(()),
                },
                _ = self.shared.news.notified() => continue,
                _ = tokio::time::sleep(SPOOL_TICK), if spooling => continue,
            };
            // The batch's memory charge is given back once every record is handed on.
            let taken_at = Instant::now();
            for prepared in batch.records {
                if self.shared.spooling.load(Ordering::Acquire) {
                    run.held.push(prepared);
                    continue;
                }
                match self.send_direct(prepared, taken_at, &stop).await? {
                    (Sent::Stopped, _) => return Ok(()),
                    (Sent::Diverted(_), Some(prepared)) => run.held.push(prepared),
                    _ => {}
                }
            }
        }
    }

    /// What makes events into records, for each source's task.
    pub fn encoder(&self) -> Encoder {
        self.records.encoder(self.shared.metrics.clone())
    }

    fn direct_in_flight(&self) -> i64 {
        self.shared.direct_in_flight.load(Ordering::Acquire)
    }

    /// Sends one event's record to librdkafka; on `Sent::Diverted` the record comes back, with
    /// its acknowledgement, for the spool.
    async fn send_direct(
        &self,
        mut prepared: Prepared,
        taken_at: Instant,
        stop: &CancellationToken,
    ) -> Result<(Sent, Option<Prepared>), ProducerError> {
        let inflight = InFlight::taken_at(
            prepared.token.take(),
            prepared.routed,
            prepared.payload.len(),
            Origin::Direct,
            taken_at,
        );
        let outgoing = Outgoing {
            topic: &prepared.topic,
            payload: &prepared.payload,
            key: prepared.key.as_deref(),
            headers: prepared.headers.as_ref(),
        };
        match self.send(outgoing, inflight, stop).await? {
            Sent::Diverted(mut inflight) => {
                prepared.token = inflight.token.take();
                Ok((Sent::Diverted(inflight), Some(prepared)))
            }
            sent => Ok((sent, None)),
        }
    }

    /// Takes the delivery callback's news: records librdkafka gave up on go to the spool (or the
    /// loss policy); replayed frames are marked delivered or failed.
    async fn take_reports(
        &self,
        run: &mut Run<'_>,
        direct_idle: bool,
        stop: &CancellationToken,
    ) -> Result<(), ProducerError> {
        if !self.dead_letter_rejected(stop).await? {
            return Ok(());
        }
        let done = std::mem::take(&mut *lock(&self.shared.frames_done));
        // The spool takes an outage's failed records all at once, in the order they were sent;
        // the loss policy takes them as they come.
        let diverted = if direct_idle || run.spooler.is_none() {
            std::mem::take(&mut *lock(&self.shared.diverted))
        } else {
            Vec::new()
        };
        match run.spooler.as_deref_mut() {
            Some(spooler) => {
                if !diverted.is_empty() {
                    // Replay waits for a broker answer after this.
                    self.shared.health.delivery_failed();
                }
                hold_diverted(spooler, diverted);
                if direct_idle {
                    for prepared in run.held.drain(..) {
                        let (record, token) = prepared.into_spool();
                        spooler.hold(record, token);
                    }
                }
                for frame in done {
                    let failed = frame.failed.load(Ordering::Relaxed);
                    if failed {
                        // `retry_max_elapsed_secs` counts from the first failed replay.
                        run.failing_since.get_or_insert_with(Instant::now);
                        self.shared.health.delivery_failed();
                    } else if frame.delivered.load(Ordering::Relaxed) > 0 {
                        run.failing_since = None;
                    }
                    let delivered = frame.delivered.load(Ordering::Relaxed);
                    spooler.replayed(frame.pos, delivered, failed);
                }
            }
            None => {
                for Diverted { record, token, .. } in diverted {
                    if !self.give_up(&record, token, None, stop).await? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends what Kafka rejected for good to the dead-letter topic, once each, with headers that
    /// say why. False when `stop` came first.
    async fn dead_letter_rejected(&self, stop: &CancellationToken) -> Result<bool, ProducerError> {
        let Some(topic) = &self.shared.rejected_to else {
            return Ok(true);
        };
        let rejected = std::mem::take(&mut *lock(&self.shared.rejected));
        for Rejected {
            mut record,
            token,
            reason,
            error,
            frame,
        } in rejected
        {
            record.headers.extend([
                (
                    REJECTED_REASON.to_owned(),
                    reason.label().as_bytes().to_vec(),
                ),
                (REJECTED_TOPIC.to_owned(), record.topic.as_bytes().to_vec()),
                (REJECTED_ERROR.to_owned(), error.into_bytes()),
            ]);
            let origin = Origin::LastChance(LastChance {
                why: Some(reason),
                frame,
            });
            let inflight = InFlight::new(token, true, record.payload.len(), origin);
            if let Sent::Stopped = self.send_spooled(topic, &record, inflight, stop).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A record Kafka did not take within `retry_max_elapsed_secs`: dropped, or sent once to the
    /// dead-letter topic; counted either way (on its report when sent). It settles `token`, or
    /// reports to `frame`, once done with. False when `stop` came first.
    async fn give_up(
        &self,
        record: &SpoolRecord,
        token: Option<AckToken>,
        frame: Option<Arc<FrameProgress>>,
        stop: &CancellationToken,
    ) -> Result<bool, ProducerError> {
        let Some(topic) = &self.exhausted_to else {
            self.shared.metrics.given_up("dropped", 1);
            settle(token);
            if let Some(frame) = &frame {
                self.shared.frame_reported(frame, Outcome::GivenUp);
            }
            return Ok(true);
        };
        let origin = Origin::LastChance(LastChance { why: None, frame });
        let inflight = InFlight::new(token, true, record.payload.len(), origin);
        Ok(!matches!(
            self.send_spooled(topic, record, inflight, stop).await?,
            Sent::Stopped
        ))
    }

    /// One turn of spooling: write what waits, fsync when due, replay what Kafka may take now,
    /// and go back to sending directly once everything is delivered. False when `stop` came.
    async fn spool_step(
        &self,
        run: &mut Run<'_>,
        direct_idle: bool,
        stop: &CancellationToken,
    ) -> Result<bool, ProducerError> {
        let Some(spooler) = run.spooler.as_deref_mut() else {
            return Ok(true);
        };
        if direct_idle && run.held.is_empty() {
            // Errors are counted and shown on /health by the spooler; records wait and retry.
            spooler.write_pending();
            spooler.sync_if_due();
        }
        // A frozen or partitioned broker may still write what it was sent once it wakes: replay
        // into an outage would only make duplicates, so it waits for the brokers to answer.
        if !direct_idle || !self.shared.health.answered_since_failure() {
            return Ok(true);
        }
        let exhausted = self
            .give_up_after
            .zip(run.failing_since)
            .is_some_and(|(limit, since)| since.elapsed() >= limit);
        while let Some(frame) = spooler.next_replay() {
            if frame.records.is_empty() {
                spooler.replayed(frame.pos, 0, false);
                continue;
            }
            let progress = Arc::new(FrameProgress::new(frame.pos, frame.records.len()));
            if exhausted {
                // Dropped, or on their last attempt: the frame is done with once they are
                // reported, so a crash before then replays it.
                for record in &frame.records {
                    let frame = Some(Arc::clone(&progress));
                    if !self.give_up(record, None, frame, stop).await? {
                        return Ok(false);
                    }
                }
                continue;
            }
            // One send time for the frame: its records share a latency sample.
            let taken_at = Instant::now();
            for record in &frame.records {
                // A topic the event's data chose that vanished while its records waited is
                // given up, counted; the configured topic's records wait for it.
                let origin = Origin::Replay(Arc::clone(&progress));
                let len = record.payload.len();
                let routed = self.records.chose(&record.topic);
                let inflight = InFlight::taken_at(None, routed, len, origin, taken_at);
                let topic = &record.topic;
                if let Sent::Stopped = self.send_spooled(topic, record, inflight, stop).await? {
                    return Ok(false);
                }
            }
        }
        if run.held.is_empty() && direct_idle && spooler.is_drained() {
            self.shared.stop_spooling();
            run.failing_since = None;
            tracing::info!("spool drained; sending to Kafka directly again");
        }
        Ok(true)
    }

    /// Sends a record that was spooled (or taken back from librdkafka) to `topic`.
    async fn send_spooled(
        &self,
        topic: &str,
        record: &SpoolRecord,
        inflight: Box<InFlight>,
        stop: &CancellationToken,
    ) -> Result<Sent, ProducerError> {
        let headers = owned_headers(&record.headers);
        let outgoing = Outgoing {
            topic,
            payload: &record.payload,
            key: record.key.as_deref(),
            headers: headers.as_ref(),
        };
        self.send(outgoing, inflight, stop).await
    }

    /// Hands one record to librdkafka, waiting while its queue is full.
    async fn send(
        &self,
        outgoing: Outgoing<'_>,
        mut inflight: Box<InFlight>,
        stop: &CancellationToken,
    ) -> Result<Sent, ProducerError> {
        let Outgoing {
            topic,
            payload,
            key,
            headers,
        } = outgoing;
        inflight.order = self.shared.next_order.fetch_add(1, Ordering::Relaxed);
        loop {
            let direct = matches!(inflight.origin, Origin::Direct);
            if direct && self.shared.spooling.load(Ordering::Acquire) {
                return Ok(Sent::Diverted(inflight));
            }
            let mut record = BaseRecord::with_opaque_to(topic, inflight).payload(payload);
            if let Some(headers) = headers {
                record = record.headers(headers.clone());
            }
            if let Some(key) = key {
                record = record.key(key);
            }
            if direct {
                // Counted before librdkafka can report it.
                self.shared.direct_in_flight.fetch_add(1, Ordering::AcqRel);
            }
            match self.inner.send(record) {
                Ok(()) => {
                    if direct && self.shared.spooling.load(Ordering::Acquire) {
                        // The switch to spooling came between the check above and the send, so
                        // the take-back may have missed this record: take back again.
                        self.shared.take_back.store(true, Ordering::Release);
                    }
                    self.shared.health.sent();
                    self.shared
                        .in_flight_bytes
                        .fetch_add(payload.len() as i64, Ordering::Relaxed);
                    return Ok(Sent::Taken);
                }
                Err((error, record)) => {
                    if direct {
                        self.shared.direct_in_flight.fetch_sub(1, Ordering::AcqRel);
                    }
                    inflight = record.delivery_opaque;
                    let spooled = || SpoolRecord {
                        topic: topic.to_owned(),
                        key: key.map(<[u8]>::to_vec),
                        headers: headers.map_or_else(Vec::new, spool_headers),
                        payload: payload.to_vec(),
                    };
                    match self.refused(&error, &mut inflight, spooled, stop).await? {
                        Refusal::OfferAgain => {}
                        Refusal::GivenUp => return Ok(Sent::Taken),
                        Refusal::Stopped => return Ok(Sent::Stopped),
                    }
                }
            }
        }
    }

    /// librdkafka refused a record: wait for room (a full queue) or a moment, or give it up
    /// (settled, counted) when Kafka can never take it.
    async fn refused(
        &self,
        error: &KafkaError,
        inflight: &mut InFlight,
        record: impl Fn() -> SpoolRecord,
        stop: &CancellationToken,
    ) -> Result<Refusal, ProducerError> {
        if let KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) = error {
            self.shared.metrics.queue_full_waits.increment(1);
            // librdkafka frees a record's room only after its delivery callback returned, so the
            // last report's wake-up can come before the room: the wait is bounded. (Without the
            // bound, `outages::files_created_and_rotated_away_while_blocked_…` stalls for good.)
            tokio::select! {
                _ = stop.cancelled() => return Ok(Refusal::Stopped),
                _ = self.shared.room.notified() => {}
                _ = tokio::time::sleep(ROOM_WAIT) => {}
            }
            return Ok(Refusal::OfferAgain);
        }
        if matches!(inflight.origin, Origin::Direct) && stops_the_agent(error, inflight.routed) {
            // The configured topic is gone (deleted while the agent ran): the agent stops, as
            // when a delivery report says so.
            self.shared.undeliverable(&record().topic, error);
        }
        self.check_failed()?;
        if let Some(reason) = permanent_reason(error, inflight.routed) {
            // Refused by librdkafka itself, a record it can never send: handled as if Kafka had
            // rejected it.
            let outcome = self
                .shared
                .reject(&record, reason, error, inflight)
                .unwrap_or_else(|| self.shared.last_chance_failed(error, &record, inflight));
            self.shared.reported(&inflight.origin, outcome);
            return Ok(Refusal::GivenUp);
        }
        self.shared.metrics.retrying(error);
        tokio::select! {
            _ = stop.cancelled() => Ok(Refusal::Stopped),
            _ = tokio::time::sleep(SEND_RETRY_WAIT) => Ok(Refusal::OfferAgain),
        }
    }

    /// Fails when librdkafka hit a fatal error or a delivery failed for a reason not known to be
    /// permanent.
    fn check_failed(&self) -> Result<(), ProducerError> {
        if let Some((code, reason)) = self.inner.client().fatal_error() {
            return Err(ProducerError::Fatal { code, reason });
        }
        let failed = lock(&self.shared.undeliverable).clone();
        failed.map_or(Ok(()), |e| Err(ProducerError::Undeliverable(e)))
    }

    /// Waits up to `timeout` for every record handed to librdkafka to be reported. With a spool,
    /// records still undelivered then are taken back from librdkafka and spooled, so a file
    /// deleted meanwhile loses nothing; without one they are read again after the restart.
    pub async fn flush(&self, timeout: Duration) {
        let inner = Arc::clone(&self.inner);
        let flushed = tokio::task::spawn_blocking(move || inner.flush(timeout)).await;
        self.shared.finish_acked();
        match flushed {
            Ok(Ok(())) => tracing::info!("all records delivered"),
            Ok(Err(error)) => tracing::warn!(
                %error,
                in_flight = self.shared.health.in_flight(),
                "shutdown timeout reached with records in flight"
            ),
            Err(error) => tracing::error!(%error, "flush task failed"),
        }
        let mut spooler = self.spooler.lock().await;
        let Some(spooler) = spooler.as_mut() else {
            return;
        };
        if self.shared.health.in_flight() > 0 {
            self.inner.purge(PurgeConfig::default().queue().inflight());
            // The purged records' reports come through the delivery thread.
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.direct_in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.shared.finish_acked();
            }
        }
        // Replayed frames Kafka finished with while flushing: recorded before the position is
        // saved, so a restart does not send them again.
        for frame in std::mem::take(&mut *lock(&self.shared.frames_done)) {
            let failed = frame.failed.load(Ordering::Relaxed);
            let delivered = frame.delivered.load(Ordering::Relaxed);
            spooler.replayed(frame.pos, delivered, failed);
        }
        let diverted = std::mem::take(&mut *lock(&self.shared.diverted));
        if !diverted.is_empty() {
            tracing::info!(
                records = diverted.len(),
                "spooling records Kafka has not taken"
            );
        }
        hold_diverted(spooler, diverted);
        spooler.close();
    }

    /// Asks the brokers for cluster metadata every `interval` and records whether they answered.
    /// Names no topic: some brokers create a topic that a metadata request names.
    pub async fn probe_brokers(&self, interval: Duration, stop: CancellationToken) {
        // At start librdkafka replaces its bootstrap connection with one to the broker the
        // metadata names, and an idempotent producer asks for its producer id (without which
        // nothing is sent) only when metadata arrives or its 500 ms retry timer fires. A second
        // request at once is answered on the new connection and saves about half the starts
        // that wait (librdkafka 2.12).
        let mut again_at_once = true;
        loop {
            let inner = Arc::clone(&self.inner);
            let answered = tokio::task::spawn_blocking(move || {
                inner
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok()
            })
            .await
            .unwrap_or(false);
            self.shared.health.probed(answered);
            if answered && std::mem::take(&mut again_at_once) {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! How reports move acknowledgements and spool frames along when records are rejected,
    //! dead-lettered or taken back: the bookkeeping alone, without a broker.
    use super::*;
    use crate::ack::AckTracker;

    fn shared() -> Shared {
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        Shared::new("logs", health, OnFailure::Spool, Some(Arc::from("dead")))
    }

    fn record(topic: &str) -> SpoolRecord {
        SpoolRecord {
            topic: topic.to_owned(),
            key: None,
            headers: Vec::new(),
            payload: b"line".to_vec(),
        }
    }

    fn frame(records: usize) -> Arc<FrameProgress> {
        let pos = FramePos {
            segment: 1,
            offset: 0,
        };
        Arc::new(FrameProgress::new(pos, records))
    }

    fn rejected_error() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)
    }

    fn last_chance(shared: &Shared, token: Option<AckToken>) -> Box<InFlight> {
        let Rejected {
            token: t, frame, ..
        } = lock(&shared.rejected).pop().expect("queued");
        let origin = Origin::LastChance(LastChance {
            why: Some(FailureReason::NotAuthorized),
            frame,
        });
        InFlight::new(token.or(t), true, 4, origin)
    }

    #[test]
    fn a_replayed_frame_is_done_only_once_its_dead_letters_are_delivered() {
        let shared = shared();
        let progress = frame(2);
        shared.reported(&Origin::Replay(Arc::clone(&progress)), Outcome::Delivered);
        let mut rejected = InFlight::new(None, true, 4, Origin::Replay(Arc::clone(&progress)));
        let outcome = shared.reject(
            || record("logs"),
            FailureReason::NotAuthorized,
            &rejected_error(),
            &mut rejected,
        );
        assert_eq!(outcome, Some(Outcome::Handed));
        shared.reported(&rejected.origin, Outcome::Handed);
        assert!(
            lock(&shared.frames_done).is_empty(),
            "waits for the dead letter"
        );

        let letter = last_chance(&shared, None);
        shared.reported(&letter.origin, Outcome::Delivered);
        let done = std::mem::take(&mut *lock(&shared.frames_done));
        assert_eq!(
            done.len(),
            1,
            "the dead letter's report completes the frame"
        );
        assert_eq!(done[0].delivered.load(Ordering::Relaxed), 1, "one replayed");
        assert!(!done[0].failed.load(Ordering::Relaxed));
    }

    #[test]
    fn a_dead_letter_taken_back_in_an_outage_is_kept_for_the_spool_or_a_replay() {
        let shared = shared();
        let tracker = AckTracker::new(0u64);
        let mut direct = InFlight::new(Some(tracker.track(10)), false, 4, Origin::Direct);
        let error = rejected_error();
        assert_eq!(
            shared.reject(
                || record("logs"),
                FailureReason::NotAuthorized,
                &error,
                &mut direct
            ),
            Some(Outcome::Handed)
        );
        let mut letter = last_chance(&shared, None);
        assert!(
            letter.token.is_some(),
            "the dead letter carries the event's token"
        );
        let purged = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeInflight);
        let outcome = shared.last_chance_failed(&purged, || record("dead"), &mut letter);
        assert_eq!(outcome, Outcome::Retry);
        let diverted = std::mem::take(&mut *lock(&shared.diverted));
        assert_eq!(diverted.len(), 1, "spooled, to be sent again");
        assert_eq!(diverted[0].record.topic, "dead");
        assert!(diverted[0].token.is_some());
        assert_eq!(
            tracker.position(),
            0,
            "not settled: nothing counted as lost"
        );

        // One from a replayed frame fails the frame instead: it is replayed later.
        let progress = frame(1);
        let mut replayed = InFlight::new(None, true, 4, Origin::Replay(Arc::clone(&progress)));
        shared.reject(
            || record("logs"),
            FailureReason::NotAuthorized,
            &error,
            &mut replayed,
        );
        let mut letter = last_chance(&shared, None);
        let outcome = shared.last_chance_failed(&purged, || record("dead"), &mut letter);
        shared.reported(&letter.origin, outcome);
        let done = std::mem::take(&mut *lock(&shared.frames_done));
        assert!(
            done[0].failed.load(Ordering::Relaxed),
            "the frame is replayed again"
        );
    }

    #[test]
    fn a_dead_letter_kafka_fails_is_dropped_and_settled() {
        let shared = shared();
        let tracker = AckTracker::new(0u64);
        let mut letter = InFlight::new(
            Some(tracker.track(10)),
            true,
            4,
            Origin::LastChance(LastChance {
                why: None,
                frame: None,
            }),
        );
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        // On its last chance it is not dead-lettered again.
        assert_eq!(
            shared.reject(
                || record("dead"),
                FailureReason::TooLarge,
                &error,
                &mut letter
            ),
            None
        );
        let outcome = shared.last_chance_failed(&error, || record("dead"), &mut letter);
        assert_eq!(outcome, Outcome::GivenUp);
        assert_eq!(
            tracker.position(),
            10,
            "given up, counted: the source moves on"
        );
        assert!(lock(&shared.diverted).is_empty());
    }

    #[test]
    fn a_record_the_dead_letter_topic_rejects_is_dropped_not_sent_there_again() {
        let shared = shared();
        let progress = frame(1);
        let mut replayed = InFlight::new(None, true, 4, Origin::Replay(Arc::clone(&progress)));
        let outcome = shared.reject(
            || record("dead"),
            FailureReason::NotAuthorized,
            &rejected_error(),
            &mut replayed,
        );
        assert_eq!(outcome, Some(Outcome::GivenUp));
        assert!(lock(&shared.rejected).is_empty());
        shared.reported(&replayed.origin, Outcome::GivenUp);
        let done = std::mem::take(&mut *lock(&shared.frames_done));
        assert_eq!(done[0].delivered.load(Ordering::Relaxed), 0);
        assert!(
            !done[0].failed.load(Ordering::Relaxed),
            "done with, not replayed"
        );
    }
}
