//! The producer: one Kafka record per event, and the delivery report as the only thing that
//! settles an event's ack token.
//!
//! librdkafka batches, compresses and retries (idempotent, acks=all, at most 5 requests in flight,
//! so retries keep order), and with `message.timeout.ms = 0` it retries forever. Errors are
//! classified: a full queue means wait for delivery reports (backpressure, never an error); a
//! record Kafka rejects for good is counted by reason and given up; any other failed delivery
//! stops the producer, and so the agent (exit 1). Producing the record again here could reorder
//! or duplicate it within its file; after a restart the file resumes, in order, from its
//! checkpoint, which still points before the failed record. (The disk spool will take such
//! records instead.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::ack::AckToken;
use crate::config::{Encoding, KafkaSettings, Oversize, RecordSettings};
use crate::event::Event;
use crate::health::Health;
use crate::metrics::{FailureReason, LogLimiter, ProducerMetrics};
use crate::pipeline::access;
use crate::pipeline::path::FieldPath;
use crate::pipeline::steps::check_topic_name;

/// Why the producer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
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

/// What rides along with a record until its delivery report.
struct InFlight {
    token: Option<AckToken>,
    key: Option<Arc<[u8]>>,
    /// A pipeline chose the topic, from the event's own data.
    routed: bool,
    /// When librdkafka took it, and its value's size, for the latency and in-flight metrics.
    sent_at: std::time::Instant,
    bytes: usize,
}

/// State the delivery callback (librdkafka's polling thread) shares with the produce loop.
struct Shared {
    metrics: ProducerMetrics,
    health: Arc<Health>,
    reported: Notify,
    /// The first delivery failure that was neither success nor a permanent rejection.
    undeliverable: Mutex<Option<String>>,
    in_flight_bytes: std::sync::atomic::AtomicI64,
    client_log: LogLimiter,
}

/// librdkafka callbacks.
struct DeliveryContext {
    shared: Arc<Shared>,
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

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut inflight: Self::DeliveryOpaque) {
        let shared = &self.shared;
        shared
            .metrics
            .delivery_latency
            .record(inflight.sent_at.elapsed().as_secs_f64());
        // The report can come before the sender added the bytes: the sum may dip below 0 briefly.
        let size = inflight.bytes as i64;
        let bytes = shared.in_flight_bytes.fetch_sub(size, Ordering::Relaxed) - size;
        shared.metrics.in_flight_bytes.set(bytes.max(0) as f64);
        match result {
            Ok(_) => {
                shared.health.reported(true);
                shared.metrics.delivered.increment(1);
                if let Some(token) = inflight.token.take() {
                    token.settle();
                }
            }
            Err((error, message)) => {
                shared.health.reported(false);
                match permanent_reason(error, inflight.routed) {
                    Some(reason) => {
                        shared.metrics.failed(reason, error);
                        // Given up and counted: the source may move past it (invariant 3).
                        if let Some(token) = inflight.token.take() {
                            token.settle();
                        }
                    }
                    None => {
                        // The token stays unsettled: the checkpoint never passes this record.
                        tracing::error!(topic = ?message.topic(), %error, "delivery failed");
                        let mut first = shared
                            .undeliverable
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert_with(|| error.to_string());
                    }
                }
            }
        }
        shared
            .metrics
            .in_flight
            .set(shared.health.in_flight() as f64);
        shared.reported.notify_one();
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

/// Room kept below `max_message_bytes` for the key, headers and record framing.
const RECORD_OVERHEAD: usize = 1024;

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

/// One record as it goes to librdkafka.
struct Outgoing<'a> {
    topic: &'a str,
    payload: &'a [u8],
    headers: Option<OwnedHeaders>,
}

/// The agent's Kafka producer: the configured topic, or the one a pipeline chose per event.
pub struct Producer {
    inner: Arc<BaseProducer<DeliveryContext>>,
    records: RecordSettings,
    /// The `topic` key when it is a plain name (else unused).
    static_topic: Arc<str>,
    shared: Arc<Shared>,
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
    fn start(producer: Arc<BaseProducer<DeliveryContext>>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kafka-delivery".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    producer.poll(POLL_WAIT);
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

/// Wait between attempts to hand a record to librdkafka after a local, transient refusal.
const SEND_RETRY_WAIT: Duration = Duration::from_millis(100);

impl Producer {
    pub fn new(settings: &KafkaSettings, health: Arc<Health>) -> Result<Self, ProducerError> {
        let shared = Arc::new(Shared {
            metrics: ProducerMetrics::new(&settings.topic),
            health,
            reported: Notify::new(),
            undeliverable: Mutex::new(None),
            in_flight_bytes: std::sync::atomic::AtomicI64::new(0),
            client_log: LogLimiter::per_minute(12),
        });
        let context = DeliveryContext {
            shared: Arc::clone(&shared),
        };
        let inner: Arc<BaseProducer<DeliveryContext>> = Arc::new(
            settings
                .client
                .create_with_context(context)
                .map_err(ProducerError::Create)?,
        );
        let poller = Poller::start(Arc::clone(&inner)).map_err(ProducerError::Thread)?;
        Ok(Self {
            inner,
            records: settings.records.clone(),
            static_topic: Arc::from(settings.topic.as_str()),
            shared,
            _poller: poller,
        })
    }

    /// Produces every event received until `stop`, then returns; events still in the channel are
    /// dropped unsettled, so their lines are read again after a restart.
    pub async fn run(
        &self,
        mut rx: mpsc::Receiver<Vec<Event>>,
        stop: CancellationToken,
    ) -> Result<(), ProducerError> {
        loop {
            self.check_failed()?;
            let batch = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                batch = rx.recv() => match batch {
                    Some(batch) => batch,
                    None => return Ok(()),
                },
            };
            for mut event in batch {
                let Some(payload) = self.payload(&mut event) else {
                    continue;
                };
                let (topic, routed) = self.topic_of(&mut event);
                let key = match &self.records.key {
                    Some(template) => template
                        .render(&event)
                        .map(|k| Arc::from(k.into_bytes()))
                        .ok()
                        .or(event.key.take()),
                    None => event.key.take(),
                };
                let headers = self.headers_of(&event);
                let inflight = Box::new(InFlight {
                    token: event.ack.take(),
                    key,
                    routed,
                    sent_at: std::time::Instant::now(),
                    bytes: payload.len(),
                });
                let record = Outgoing {
                    topic: &topic,
                    payload: &payload,
                    headers,
                };
                if !self.send(record, inflight, &stop).await? {
                    return Ok(());
                }
            }
        }
    }

    /// Hands one record to librdkafka, waiting while its queue is full. Returns false when `stop`
    /// came first (the record is then dropped unsettled).
    /// The record value, within `max_message_bytes` (less room for key and headers). An event too
    /// large is cut, dead-lettered (cut too) or dropped per `oversize`, and counted; `None` when
    /// it was dropped (its acknowledgement settled).
    fn payload(&self, event: &mut Event) -> Option<Vec<u8>> {
        let records = &self.records;
        let limit = records.max_message_bytes.saturating_sub(RECORD_OVERHEAD);
        let payload = encode(event, records.encoding);
        if payload.len() <= limit {
            return Some(payload);
        }
        let size = payload.len();
        let action = match records.oversize {
            Oversize::Drop => None,
            Oversize::Truncate => Some("truncated"),
            Oversize::DeadLetter => {
                event.topic = records.dead_letter_topic.clone();
                let reason = format!("{size} bytes, more than max_message_bytes allows ({limit})");
                let _ = set_field(event, "error.message", Value::String(reason));
                let _ = set_field(event, "error.type", Value::from("oversize"));
                Some("dead_lettered")
            }
        };
        let cut = action.and_then(|_| truncate(event, records.encoding, limit));
        match (action, cut) {
            (Some(action), Some(payload)) => {
                self.shared.metrics.oversize(action, size, limit);
                Some(payload)
            }
            _ => {
                self.shared.metrics.oversize("dropped", size, limit);
                // Given up and counted: the source may move past it.
                if let Some(token) = event.ack.take() {
                    token.settle();
                }
                None
            }
        }
    }

    /// The record's topic, and whether the event's data chose it (a `route` step, or a `topic`
    /// template): a pipeline's choice first, then the template, then `fallback_topic`.
    fn topic_of(&self, event: &mut Event) -> (Arc<str>, bool) {
        if let Some(topic) = event.topic.take() {
            return (topic, true);
        }
        let template = &self.records.topic;
        if template.is_static() {
            return (Arc::clone(&self.static_topic), false);
        }
        match template.render(&*event) {
            Ok(name) if check_topic_name(&name).is_ok() => (Arc::from(name), true),
            _ => (
                self.records
                    .fallback_topic
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&self.static_topic)),
                false,
            ),
        }
    }

    /// Headers whose templates render for this event.
    fn headers_of(&self, event: &Event) -> Option<OwnedHeaders> {
        if self.records.headers.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(self.records.headers.len());
        for (name, template) in &self.records.headers {
            if let Ok(value) = template.render(event) {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(&value),
                });
            }
        }
        Some(headers)
    }

    async fn send(
        &self,
        outgoing: Outgoing<'_>,
        mut inflight: Box<InFlight>,
        stop: &CancellationToken,
    ) -> Result<bool, ProducerError> {
        let Outgoing {
            topic,
            payload,
            headers,
        } = outgoing;
        loop {
            let key = inflight.key.clone();
            let mut record = BaseRecord::with_opaque_to(topic, inflight).payload(payload);
            if let Some(headers) = &headers {
                record = record.headers(headers.clone());
            }
            if let Some(key) = &key {
                record = record.key(&key[..]);
            }
            match self.inner.send(record) {
                Ok(()) => {
                    self.shared.health.sent();
                    let size = payload.len() as i64;
                    let bytes = self
                        .shared
                        .in_flight_bytes
                        .fetch_add(size, Ordering::Relaxed)
                        + size;
                    self.shared.metrics.in_flight_bytes.set(bytes.max(0) as f64);
                    return Ok(true);
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    inflight = record.delivery_opaque;
                    self.shared.metrics.queue_full_waits.increment(1);
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(false),
                        _ = self.shared.reported.notified() => {}
                        // A report can land between the failed send and the wait.
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                Err((error, mut record)) => {
                    self.check_failed()?;
                    match permanent_reason(&error, record.delivery_opaque.routed) {
                        Some(reason) => {
                            self.shared.metrics.failed(reason, &error);
                            if let Some(token) = record.delivery_opaque.token.take() {
                                token.settle();
                            }
                            return Ok(true);
                        }
                        None => {
                            self.shared.metrics.retrying(&error);
                            inflight = record.delivery_opaque;
                            tokio::select! {
                                _ = stop.cancelled() => return Ok(false),
                                _ = tokio::time::sleep(SEND_RETRY_WAIT) => {}
                            }
                        }
                    }
                }
            }
        }
    }

    /// Fails when librdkafka hit a fatal error or a delivery failed for a reason not known to be
    /// permanent.
    fn check_failed(&self) -> Result<(), ProducerError> {
        if let Some((code, reason)) = self.inner.client().fatal_error() {
            return Err(ProducerError::Fatal { code, reason });
        }
        let failed = self
            .shared
            .undeliverable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        failed.map_or(Ok(()), |e| Err(ProducerError::Undeliverable(e)))
    }

    /// Waits up to `timeout` for every record handed to librdkafka to be reported.
    pub async fn flush(&self, timeout: Duration) {
        let inner = Arc::clone(&self.inner);
        let flushed = tokio::task::spawn_blocking(move || inner.flush(timeout)).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("all records delivered"),
            Ok(Err(error)) => tracing::warn!(
                %error,
                in_flight = self.shared.health.in_flight(),
                "shutdown timeout reached with records in flight; they will be read again after restart"
            ),
            Err(error) => tracing::error!(%error, "flush task failed"),
        }
    }

    /// Asks the brokers for cluster metadata every `interval` and records whether they answered.
    /// Names no topic: some brokers create a topic that a metadata request names.
    pub async fn probe_brokers(&self, interval: Duration, stop: CancellationToken) {
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
            self.shared.health.set_kafka_reachable(answered);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
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
}
