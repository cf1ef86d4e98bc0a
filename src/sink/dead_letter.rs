//! Records the destination refuses for good (a mapping error, say) go to the dead-letter topic:
//! the same key and value, with headers naming where the record came from and why it was
//! refused. Only once Kafka acknowledged the dead letter does the record count as finished.
//! Without a dead-letter topic, or when Kafka refuses the dead letter too, the record is dropped
//! and counted.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::metrics::SinkMetrics;
use super::record::Record;
use crate::config::ConsumerSettings;

/// The dead-letter producer, when a topic is configured.
#[derive(Clone)]
pub struct DeadLetters {
    target: Option<(FutureProducer, String)>,
    metrics: SinkMetrics,
}

impl DeadLetters {
    pub fn new(
        settings: &ConsumerSettings,
        metrics: SinkMetrics,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let target = match &settings.dead_letter_topic {
            Some(topic) => Some((settings.producer.create()?, topic.clone())),
            None => None,
        };
        Ok(Self { target, metrics })
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
        let partition = record.partition().to_string();
        let offset = record.offset.to_string();
        let status_text = status.to_string();
        let headers = OwnedHeaders::new()
            .insert(header("logship.error.status", &status_text))
            .insert(header("logship.error.reason", reason))
            .insert(header("logship.source.topic", record.topic()))
            .insert(header("logship.source.partition", &partition))
            .insert(header("logship.source.offset", &offset));
        let mut message = FutureRecord::to(topic)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        // `message.timeout.ms` is 0: librdkafka retries until Kafka answers for good.
        match producer.send(message, Duration::MAX).await {
            Ok(_) => self.metrics.dead_lettered(record.topic(), status, reason),
            Err((error, _)) => self
                .metrics
                .dropped(record.topic(), "dead_letter_failed", &error),
        }
        record.finish();
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

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
