//! `[kafka]`: the producer's keys as users write them, and the librdkafka client configuration
//! built from them. First-class keys own their librdkafka properties: `librdkafka_options` may add
//! properties but never override these, so idempotence and acks=all cannot be switched off.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::pipeline::steps::check_topic_name;
use crate::pipeline::template::Template;

use super::ConfigError;
use super::document::Document;
use super::memory::{MemoryPlan, QueueKeys};

/// Keys of `[kafka]`, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`; an entry may list several, separated by commas.
    pub brokers: Vec<String>,
    /// Topic every event is produced to; a template (`logs.{{ service }}`) chooses it per event.
    pub topic: String,
    /// Topic for events whose `topic` template names a field they lack. Required with a template.
    #[serde(default)]
    pub fallback_topic: Option<String>,
    /// Record key template; unset: the source's stream key (`host:path` for a file), which keeps
    /// one file's records on one partition in order.
    #[serde(default)]
    pub key: Option<String>,
    /// Record headers: name → fixed text or template. A header whose template names a missing
    /// field is left out of that record.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How records with a key are spread over partitions (librdkafka `partitioner`).
    #[serde(default)]
    pub partitioner: Partitioner,
    /// Topic for events a pipeline step could not process (`on_error = "dead_letter"`).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Batch compression codec.
    #[serde(default)]
    pub compression: Compression,
    /// Record value: the event as a JSON object, or the raw line.
    #[serde(default)]
    pub encoding: Encoding,
    /// Largest record the brokers take (librdkafka `message.max.bytes`; keep it at or below the
    /// topic's `max.message.bytes`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// What happens to an event whose record would be larger.
    #[serde(default)]
    pub oversize: Oversize,
    /// First wait before a failed Produce request is retried; librdkafka doubles it per attempt,
    /// with jitter, up to `retry_backoff_max_ms`. Retries go on forever.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// /health turns unhealthy when records wait and none was delivered for this long.
    #[serde(default = "default_stall_secs")]
    pub stall_secs: u64,
    /// How long records may wait in librdkafka without any delivery before everything it holds
    /// moves to the disk spool. Without a spool, records wait in librdkafka for as long as
    /// `retry_max_elapsed_secs` allows.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// Give records up after this long failing, per `on_retry_exhausted`: without a spool, a
    /// record librdkafka retried this long; with one, once the brokers answer again, spooled
    /// records whose replay kept failing this long. Unset (the default): never.
    #[serde(default)]
    pub retry_max_elapsed_secs: Option<u64>,
    /// What happens to a record given up after `retry_max_elapsed_secs`: `drop` (counted), or
    /// `dead_letter` (one attempt to `dead_letter_topic`, dropped and counted if that fails too).
    #[serde(default)]
    pub on_retry_exhausted: LossPolicy,
    /// What happens to a record Kafka rejects for good (not authorized, too large for the
    /// topic): `dead_letter` (one attempt to `dead_letter_topic`, with headers saying why) or
    /// `drop`; counted either way. Unset: `dead_letter` when `dead_letter_topic` is set.
    #[serde(default)]
    pub on_rejected: Option<LossPolicy>,
    /// TLS to the brokers; off when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication; off when absent.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
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
    /// Unset: a quarter of `memory_limit_bytes`, at most 16 MiB.
    #[serde(default)]
    pub queue_max_bytes: Option<u64>,
    /// Most records handed to librdkafka and not yet acknowledged. Unset: one per 512 bytes of
    /// `queue_max_bytes`, at most 20,000.
    #[serde(default)]
    pub queue_max_events: Option<u64>,
    /// Further librdkafka properties, passed through as strings.
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

/// The record value's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One JSON object with Elastic Common Schema names.
    #[default]
    Json,
    /// The line (`message`) as it is, nothing else.
    Raw,
}

/// What to do with an event too large for one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// Cut `message` so the record fits, and add `log.flags: ["truncated"]`.
    #[default]
    Truncate,
    /// Send it, cut to fit, to `dead_letter_topic` with `error.message`.
    DeadLetter,
    /// Drop it.
    Drop,
}

/// What happens to a record given up: Kafka did not take it within `retry_max_elapsed_secs`,
/// or rejected it for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossPolicy {
    #[default]
    Drop,
    DeadLetter,
}

/// librdkafka's partitioners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// CRC32 of the key (the same key, the same partition); keyless records at random.
    #[default]
    ConsistentRandom,
    Consistent,
    /// The Java client's partitioner: the same partitions as Kafka's own producers.
    Murmur2,
    Murmur2Random,
    Fnv1a,
    Fnv1aRandom,
    Random,
}

impl Partitioner {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::ConsistentRandom => "consistent_random",
            Self::Consistent => "consistent",
            Self::Murmur2 => "murmur2",
            Self::Murmur2Random => "murmur2_random",
            Self::Fnv1a => "fnv1a",
            Self::Fnv1aRandom => "fnv1a_random",
            Self::Random => "random",
        }
    }
}

/// `[kafka.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM) the brokers' certificates must chain to; the system's when unset.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for brokers that require one.
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub key_password: Option<String>,
    /// Check that a broker's certificate names the host connected to.
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

const fn default_true() -> bool {
    true
}

/// `[kafka.sasl]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
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
const fn default_max_message_bytes() -> u64 {
    1_000_000
}
const fn default_stall_secs() -> u64 {
    60
}
const fn default_message_timeout_ms() -> u64 {
    30_000
}
const fn default_retry_backoff_ms() -> u64 {
    100
}
const fn default_retry_backoff_max_ms() -> u64 {
    1000
}

/// The smallest `max_message_bytes`: room for the envelope and some of the line.
const MIN_MESSAGE_BYTES: usize = 4096;

/// librdkafka properties set by `[kafka.tls]` and `[kafka.sasl]`, producers and consumers alike.
const SECURITY: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanisms",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
];

/// The producer's librdkafka properties set by first-class keys or fixed by logship's guarantees.
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
    "partitioner",
    "message.max.bytes",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "retries",
    "message.send.max.retries",
];

/// Every broker is `host:port`, and there is at least one. An entry may hold several separated
/// by commas, as librdkafka's `bootstrap.servers` does, so that one `${LOGSHIP_BROKERS}` can
/// carry a whole list.
pub(super) fn check_brokers(doc: &Document<'_>, brokers: &[String]) -> Result<(), ConfigError> {
    if brokers.is_empty() {
        return Err(doc.error_at("kafka.brokers", "must list at least one broker"));
    }
    for (i, entry) in brokers.iter().enumerate() {
        for broker in entry.split(',').map(str::trim) {
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
    }
    Ok(())
}

/// `librdkafka_options`, refusing the properties logship sets itself (`reserved`).
pub(super) fn set_options(
    client: &mut ClientConfig,
    doc: &Document<'_>,
    options: &BTreeMap<String, String>,
    reserved: &[&str],
) -> Result<(), ConfigError> {
    for (key, value) in options {
        if reserved.contains(&key.as_str()) || SECURITY.contains(&key.as_str()) {
            return Err(doc.error_at(
                &format!("kafka.librdkafka_options.{key}"),
                "is set by logship itself; use the first-class key in [kafka] if there is one",
            ));
        }
        client.set(key, value);
    }
    Ok(())
}

/// librdkafka checks every property name and value, without connecting anywhere; an error names
/// the `librdkafka_options` key it is about when there is one.
pub(super) fn check_native(
    client: &ClientConfig,
    doc: &Document<'_>,
    options: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    if let Err(e) = client.create_native_config() {
        let key = options
            .keys()
            .find(|k| e.to_string().contains(k.as_str()))
            .map_or_else(
                || "kafka".to_owned(),
                |k| format!("kafka.librdkafka_options.{k}"),
            );
        return Err(doc.error_at(&key, format!("librdkafka rejected the configuration: {e}")));
    }
    Ok(())
}

/// `security.protocol` and its TLS and SASL properties; files must be readable now.
pub(super) fn set_security(
    client: &mut ClientConfig,
    doc: &Document<'_>,
    tls: Option<&TlsConfig>,
    sasl: Option<&SaslConfig>,
) -> Result<(), ConfigError> {
    let protocol = match (tls, sasl) {
        (None, None) => "plaintext",
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    client.set("security.protocol", protocol);
    if let Some(tls) = tls {
        for (key, property, path) in [
            ("ca_file", "ssl.ca.location", &tls.ca_file),
            ("cert_file", "ssl.certificate.location", &tls.cert_file),
            ("key_file", "ssl.key.location", &tls.key_file),
        ] {
            if let Some(path) = path {
                std::fs::File::open(path).map_err(|e| {
                    doc.error_at(
                        &format!("kafka.tls.{key}"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                client.set(property, path.display().to_string());
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(doc.error_at("kafka.tls", "`cert_file` and `key_file` go together"));
        }
        if let Some(password) = &tls.key_password {
            client.set("ssl.key.password", password);
        }
        client.set(
            "ssl.endpoint.identification.algorithm",
            if tls.verify_hostname { "https" } else { "none" },
        );
    }
    if let Some(sasl) = sasl {
        client
            .set("sasl.mechanisms", sasl.mechanism.as_librdkafka())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", &sasl.password);
    }
    Ok(())
}

/// The producer's checked settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// The `topic` key as written (a name, or a template); labels the producer's metrics.
    pub topic: String,
    /// Topic, key, headers and size of each record.
    pub records: RecordSettings,
    pub stall_after: std::time::Duration,
    /// First and longest wait between replay attempts from the spool.
    pub retry_backoff: std::time::Duration,
    pub retry_backoff_max: std::time::Duration,
    /// With a spool: no delivery for this long while records wait moves them to the spool.
    pub spool_after: std::time::Duration,
    /// Give records up after this long (`retry_max_elapsed_secs`); `None`: never.
    pub give_up_after: Option<std::time::Duration>,
    /// Where records given up after `give_up_after` go; `None`: they are dropped, counted.
    pub exhausted_to: Option<String>,
    /// Where pipelines send events with `on_error = "dead_letter"`.
    pub dead_letter_topic: Option<String>,
    /// Where records Kafka rejects for good go; `None`: they are dropped, counted.
    pub rejected_to: Option<String>,
    /// `partitioner = "consistent_random"` (the default): keyed records are partitioned by
    /// `kafka::partition`, the same rule at less cost; otherwise by librdkafka.
    pub key_partitioner: bool,
    pub client: ClientConfig,
}

/// How each record's topic, key and headers are chosen.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    pub topic: Template,
    /// Set when `topic` is a template.
    pub fallback_topic: Option<std::sync::Arc<str>>,
    pub key: Option<Template>,
    pub headers: Vec<(String, Template)>,
    pub encoding: Encoding,
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    /// Set when `oversize = "dead_letter"`.
    pub dead_letter_topic: Option<std::sync::Arc<str>>,
}

impl KafkaConfig {
    fn record_settings(&self, doc: &Document<'_>) -> Result<RecordSettings, ConfigError> {
        let template = |key: &str, text: &str| {
            Template::parse(text).map_err(|e| doc.error_at(&format!("kafka.{key}"), e))
        };
        let topic = template("topic", &self.topic)?;
        let fallback_topic = match (topic.is_static(), &self.fallback_topic) {
            (true, _) => {
                check_topic_name(&self.topic).map_err(|r| doc.error_at("kafka.topic", r))?;
                None
            }
            (false, Some(fallback)) => Some(std::sync::Arc::from(fallback.as_str())),
            (false, None) => {
                return Err(doc.error_at(
                    "kafka.fallback_topic",
                    "required when `topic` is a template: events without its fields go there",
                ));
            }
        };
        let key = self
            .key
            .as_deref()
            .map(|k| template("key", k))
            .transpose()?;
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| Ok((name.clone(), template(&format!("headers.{name}"), value)?)))
            .collect::<Result<_, ConfigError>>()?;
        let max_message_bytes = usize::try_from(self.max_message_bytes)
            .ok()
            .filter(|&n| (MIN_MESSAGE_BYTES..=1_000_000_000).contains(&n))
            .ok_or_else(|| {
                doc.error_at(
                    "kafka.max_message_bytes",
                    format!("must be between {MIN_MESSAGE_BYTES} and 1000000000"),
                )
            })?;
        let dead_letter_topic = match (self.oversize, &self.dead_letter_topic) {
            (Oversize::DeadLetter, None) => {
                return Err(
                    doc.error_at("kafka.oversize", "`dead_letter` needs `dead_letter_topic`")
                );
            }
            (Oversize::DeadLetter, Some(t)) => Some(std::sync::Arc::from(t.as_str())),
            _ => None,
        };
        Ok(RecordSettings {
            topic,
            fallback_topic,
            key,
            headers,
            encoding: self.encoding,
            max_message_bytes,
            oversize: self.oversize,
            dead_letter_topic,
        })
    }

    /// librdkafka's `message.timeout.ms`: how long a record is retried inside librdkafka. With a
    /// spool, forever: librdkafka never fails records one by one (which would let records queued
    /// behind a failed one overtake it); the producer takes everything back at once after
    /// `message_timeout_ms` without a delivery. Without a spool it is the whole retry budget
    /// (0 = forever).
    fn message_timeout(&self, doc: &Document<'_>, spooling: bool) -> Result<String, ConfigError> {
        // librdkafka's limit for message.timeout.ms.
        const MAX_MS: u64 = i32::MAX as u64;
        if let Some(0) = self.retry_max_elapsed_secs {
            return Err(doc.error_at("kafka.retry_max_elapsed_secs", "must be positive"));
        }
        if spooling {
            if !(1000..=MAX_MS).contains(&self.message_timeout_ms) {
                return Err(doc.error_at(
                    "kafka.message_timeout_ms",
                    format!("must be between 1000 and {MAX_MS}"),
                ));
            }
            return Ok("0".to_owned());
        }
        let ms = self
            .retry_max_elapsed_secs
            .map_or(0, |secs| secs.saturating_mul(1000).min(MAX_MS));
        Ok(ms.to_string())
    }

    /// The keys `memory_limit_bytes` shares out with the rest of the agent.
    pub fn queue_keys(&self) -> QueueKeys {
        QueueKeys {
            queue_max_bytes: self.queue_max_bytes,
            queue_max_events: self.queue_max_events,
        }
    }

    /// With `spooling`, records librdkafka could not deliver within `message_timeout_ms` go to
    /// the spool; without, they wait in librdkafka until `retry_max_elapsed_secs` (or forever).
    /// librdkafka's queue is sized by `memory`.
    pub fn settings(
        &self,
        doc: &Document<'_>,
        spooling: bool,
        memory: &MemoryPlan,
    ) -> Result<KafkaSettings, ConfigError> {
        check_brokers(doc, &self.brokers)?;
        if self.topic.is_empty() {
            return Err(doc.error_at("kafka.topic", "must not be empty"));
        }
        let records = self.record_settings(doc)?;
        if spooling && records.max_message_bytes > crate::spool::MAX_RECORD_BYTES {
            // A larger record could never be spooled: no spool frame holds it.
            return Err(doc.error_at(
                "kafka.max_message_bytes",
                format!(
                    "must be at most {} with the spool enabled (a spool frame holds one such record); or set [spool] enabled = false",
                    crate::spool::MAX_RECORD_BYTES
                ),
            ));
        }
        let mut client = ClientConfig::new();
        set_options(&mut client, doc, &self.librdkafka_options, RESERVED)?;
        set_security(&mut client, doc, self.tls.as_ref(), self.sasl.as_ref())?;
        if self.stall_secs == 0 {
            return Err(doc.error_at("kafka.stall_secs", "must be positive"));
        }
        let (retry_backoff, retry_backoff_max) = super::retry_backoff(
            doc,
            "kafka",
            self.retry_backoff_ms,
            self.retry_backoff_max_ms,
        )?;
        client
            .set("message.max.bytes", self.max_message_bytes.to_string())
            .set("retry.backoff.ms", self.retry_backoff_ms.to_string())
            .set(
                "retry.backoff.max.ms",
                self.retry_backoff_max_ms.to_string(),
            )
            .set("partitioner", self.partitioner.as_librdkafka())
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", self.compression.as_librdkafka())
            .set("linger.ms", self.linger_ms.to_string())
            // librdkafka refuses a batch larger than the largest message.
            .set(
                "batch.size",
                self.batch_max_bytes.min(self.max_message_bytes).to_string(),
            )
            .set("message.timeout.ms", self.message_timeout(doc, spooling)?)
            .set(
                "queue.buffering.max.kbytes",
                (memory.queue_bytes / 1024).to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                memory.queue_events.to_string(),
            );
        check_native(&client, doc, &self.librdkafka_options)?;
        for (key, topic) in [
            ("fallback_topic", self.fallback_topic.as_ref()),
            ("dead_letter_topic", self.dead_letter_topic.as_ref()),
        ] {
            if let Some(topic) = topic {
                check_topic_name(topic)
                    .map_err(|reason| doc.error_at(&format!("kafka.{key}"), reason))?;
            }
        }
        for (key, policy) in [
            ("on_retry_exhausted", Some(self.on_retry_exhausted)),
            ("on_rejected", self.on_rejected),
        ] {
            if policy == Some(LossPolicy::DeadLetter) && self.dead_letter_topic.is_none() {
                return Err(doc.error_at(
                    &format!("kafka.{key}"),
                    "`dead_letter` needs `dead_letter_topic`",
                ));
            }
        }
        let rejected_to = match self.on_rejected {
            Some(LossPolicy::Drop) => None,
            Some(LossPolicy::DeadLetter) | None => self.dead_letter_topic.clone(),
        };
        let exhausted_to = match self.on_retry_exhausted {
            LossPolicy::Drop => None,
            LossPolicy::DeadLetter => self.dead_letter_topic.clone(),
        };
        Ok(KafkaSettings {
            records,
            stall_after: std::time::Duration::from_secs(self.stall_secs),
            retry_backoff,
            retry_backoff_max,
            spool_after: std::time::Duration::from_millis(self.message_timeout_ms),
            give_up_after: self
                .retry_max_elapsed_secs
                .map(std::time::Duration::from_secs),
            exhausted_to,
            key_partitioner: self.partitioner == Partitioner::ConsistentRandom,
            topic: self.topic.clone(),
            dead_letter_topic: self.dead_letter_topic.clone(),
            rejected_to,
            client,
        })
    }
}
