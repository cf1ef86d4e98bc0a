//! `[kafka]`: the producer's keys as users write them, and the librdkafka client configuration
//! built from them. First-class keys own their librdkafka properties: `librdkafka_options` may add
//! properties but never override these, so idempotence and acks=all cannot be switched off.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use super::ConfigError;
use super::document::Document;

/// Keys of `[kafka]`, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic every event is produced to.
    pub topic: String,
    /// Batch compression codec.
    /// Topic for events a pipeline step could not process (`on_error = "dead_letter"`).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    #[serde(default)]
    pub compression: Compression,
    /// Client id reported to the brokers.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How long librdkafka waits to fill a batch (`linger.ms`).
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Largest batch of records sent to one partition (`batch.size`).
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: u64,
    /// Most bytes of records handed to librdkafka and not yet acknowledged: the in-flight window.
    #[serde(default = "default_queue_max_bytes")]
    pub queue_max_bytes: u64,
    /// Most records handed to librdkafka and not yet acknowledged.
    #[serde(default = "default_queue_max_events")]
    pub queue_max_events: u64,
    /// Further librdkafka properties, passed through as strings.
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

/// Codec for record batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    #[default]
    Zstd,
}

impl Compression {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

fn default_client_id() -> String {
    "logship".to_owned()
}
const fn default_linger_ms() -> u64 {
    5
}
const fn default_batch_max_bytes() -> u64 {
    1_000_000
}
const fn default_queue_max_bytes() -> u64 {
    16 * 1024 * 1024
}
const fn default_queue_max_events() -> u64 {
    20_000
}

/// librdkafka properties set by first-class keys or fixed by logship's guarantees.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "compression.type",
    "compression.codec",
    "linger.ms",
    "queue.buffering.max.ms",
    "batch.size",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "enable.gapless.guarantee",
];

/// The producer's checked settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub topic: String,
    /// Where pipelines send events with `on_error = "dead_letter"`.
    pub dead_letter_topic: Option<String>,
    pub client: ClientConfig,
}

impl KafkaConfig {
    pub fn settings(&self, doc: &Document<'_>) -> Result<KafkaSettings, ConfigError> {
        if self.brokers.is_empty() {
            return Err(doc.error_at("kafka.brokers", "must list at least one broker"));
        }
        for (i, broker) in self.brokers.iter().enumerate() {
            let valid = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(doc.error_at(
                    &format!("kafka.brokers[{i}]"),
                    format!("`{broker}` is not host:port"),
                ));
            }
        }
        if self.topic.is_empty() {
            return Err(doc.error_at("kafka.topic", "must not be empty"));
        }
        if self.queue_max_bytes < 1024 {
            return Err(doc.error_at("kafka.queue_max_bytes", "must be at least 1024"));
        }
        if self.queue_max_events == 0 {
            return Err(doc.error_at("kafka.queue_max_events", "must be positive"));
        }
        let mut client = ClientConfig::new();
        for (key, value) in &self.librdkafka_options {
            if RESERVED.contains(&key.as_str()) {
                return Err(doc.error_at(
                    &format!("kafka.librdkafka_options.{key}"),
                    "is set by logship itself; use the first-class key in [kafka] if there is one",
                ));
            }
            client.set(key, value);
        }
        client
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", self.compression.as_librdkafka())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_max_bytes.to_string())
            // Records wait for delivery forever: an unreachable broker stops reading (backpressure)
            // instead of failing records. The disk spool will bound this wait.
            .set("message.timeout.ms", "0")
            .set(
                "queue.buffering.max.kbytes",
                (self.queue_max_bytes / 1024).to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                self.queue_max_events.to_string(),
            );
        // librdkafka checks every property name and value here, without connecting anywhere.
        if let Err(e) = client.create_native_config() {
            let key = self
                .librdkafka_options
                .keys()
                .find(|k| e.to_string().contains(k.as_str()))
                .map_or_else(
                    || "kafka".to_owned(),
                    |k| format!("kafka.librdkafka_options.{k}"),
                );
            return Err(doc.error_at(&key, format!("librdkafka rejected the configuration: {e}")));
        }
        for (key, topic) in [
            ("topic", Some(&self.topic)),
            ("dead_letter_topic", self.dead_letter_topic.as_ref()),
        ] {
            if let Some(topic) = topic {
                crate::pipeline::steps::check_topic_name(topic)
                    .map_err(|reason| doc.error_at(&format!("kafka.{key}"), reason))?;
            }
        }
        Ok(KafkaSettings {
            topic: self.topic.clone(),
            dead_letter_topic: self.dead_letter_topic.clone(),
            client,
        })
    }
}
