//! Records the destination refuses for good (a mapping error, say) go to the dead-letter topic:
//! the same key and value, with headers naming where the record came from and why it was
//! refused. Only once Kafka acknowledged the dead letter does the record count as finished.
//! A dead letter Kafka refuses is sent again with backoff (and /health red) until it is taken;
//! one too large for Kafka goes with its value cut to `TRUNCATED_BYTES` and a
//! `logship.truncated` header. Without a dead-letter topic, the record is dropped and counted
//! (the configuration's choice).

use std::time::Duration;

use std::sync::Arc;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::health::SinkHealth;
use super::metrics::SinkMetrics;
use super::record::Record;
use crate::backoff::Backoff;
use crate::config::ConsumerSettings;

/// How much of a value too large for Kafka a dead letter keeps.
const TRUNCATED_BYTES: usize = 64 * 1024;

/// First and longest wait between attempts of a dead letter Kafka refused.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(30));

/// The dead-letter producer, when a topic is configured.
#[derive(Clone)]
pub struct DeadLetters {
    target: Option<(FutureProducer, String)>,
    health: Arc<SinkHealth>,
    metrics: SinkMetrics,
}

impl DeadLetters {
    pub fn new(
        settings: &ConsumerSettings,
        health: Arc<SinkHealth>,
        metrics: SinkMetrics,
    ) -> Result<Self, KafkaError> {
        let target = match &settings.dead_letter_topic {
            Some(topic) => Some((settings.producer.create()?, topic.clone())),
            None => None,
        };
        Ok(Self {
            target,
            health,
            metrics,
        })
    }

    /// Sends `record` to the dead-letter topic with why it was refused, then finishes it.
    pub async fn send(&self, record: Record, status: u16, reason: &str) {
        let Some((producer, topic)) = &self.target else {
            self.metrics.dropped(
                record.topic(),
                "no_dead_letter_topic",
                &format!("{status} {reason}"),
            );
            record.finish();
            return;
        };
        let mut backoff = Backoff::new(RETRY_BACKOFF.0, RETRY_BACKOFF.1);
        let mut keep = record.value.len();
        let mut failed = false;
        loop {
            if record.is_revoked() {
                // The new owner meets the same refusal and dead-letters it.
                return;
            }
            // `message.timeout.ms` is 0: librdkafka retries until Kafka answers for good.
            let sent = producer
                .send(letter(topic, &record, status, reason, keep), Duration::MAX)
                .await;
            match sent {
                Ok(_) => {
                    self.metrics.dead_lettered(record.topic(), status, reason);
                    if failed {
                        self.health.unblock();
                    }
                    record.finish();
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if keep > TRUNCATED_BYTES =>
                {
                    keep = TRUNCATED_BYTES;
                }
                Err((error, _)) => {
                    failed = true;
                    self.metrics.retried("dead_letter", 1, &error);
                    self.health
                        .block(format!("dead letters to {topic} fail: {error}"));
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }

    /// Waits up to `timeout` for dead letters still in librdkafka's queue.
    pub fn flush(&self, timeout: Duration) {
        if let Some((producer, _)) = &self.target
            && let Err(error) = producer.flush(timeout)
        {
            tracing::error!(%error, "dead letters not flushed");
        }
    }
}

/// The dead letter of `record`: its key, the first `keep` bytes of its value, and headers saying
/// where it came from and why it was refused.
fn letter<'a>(
    topic: &'a str,
    record: &'a Record,
    status: u16,
    reason: &str,
    keep: usize,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new()
        .insert(header("logship.error.status", &status.to_string()))
        .insert(header("logship.error.reason", reason))
        .insert(header("logship.source.topic", record.topic()))
        .insert(header(
            "logship.source.partition",
            &record.partition().to_string(),
        ))
        .insert(header("logship.source.offset", &record.offset.to_string()));
    if keep < record.value.len() {
        headers = headers.insert(header("logship.truncated", "true"));
    }
    let mut message = FutureRecord::to(topic)
        .payload(&record.value[..keep])
        .headers(headers);
    if let Some(key) = &record.key {
        message = message.key(key.as_slice());
    }
    message
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
