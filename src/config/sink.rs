//! What the sink binaries share: `shutdown_timeout_secs`, `[api]`, and `[kafka]` as a consumer
//! group (which topics, which group, where dead letters go) with the brokers, TLS and SASL keys
//! the agent's `[kafka]` has too. Each sink's own section comes from its module
//! (`config::es_sink`); `load` reads a sink's file and splits that section off.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::pipeline::steps::check_topic_name;

use super::document::{Document, Node};
use super::kafka::{SaslConfig, TlsConfig, check_brokers, check_native, set_options, set_security};
use super::{ApiConfig, ConfigError};

/// `[kafka]` of a sink, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// The consumer group: the sinks sharing it share the topics' partitions, and its committed
    /// offsets say where a restart resumes.
    pub group_id: String,
    /// Topics to read. Either this or `topic_pattern`.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression: every topic whose whole name matches is read, including topics
    /// created later.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Static group membership (`group.instance.id`): a sink restarted with the same id takes
    /// its partitions back at once, without a rebalance. Give each replica its own, stable id
    /// (a StatefulSet pod name). Unset: dynamic membership.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Where a partition the group has no committed offset for starts.
    #[serde(default)]
    pub start_from: StartFrom,
    /// Topic for records the destination refuses for good (mapping errors), with headers saying
    /// why. Unset: such records are dropped and counted.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// How often finished offsets are committed (also on rebalance and shutdown).
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Client id reported to the brokers.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Further librdkafka consumer properties, passed through as strings.
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

/// librdkafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

const fn default_commit_interval_ms() -> u64 {
    1000
}

/// Consumer properties set by first-class keys or fixed by the sinks' guarantees: offsets are
/// stored and committed by the sink, never automatically.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "group.id",
    "group.instance.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "statistics.interval.ms",
];

/// Prefetched records librdkafka may hold (`queued.max.messages.kbytes`, overridable).
const PREFETCH_KBYTES: &str = "16384";

/// Largest fetch response (`fetch.max.bytes`, overridable).
const FETCH_MAX_BYTES: &str = "8388608";

/// How often librdkafka reports statistics (consumer lag).
const STATISTICS_INTERVAL_MS: &str = "5000";

/// A sink's checked consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub consumer: ClientConfig,
    /// For dead letters: idempotent, acks=all, retried forever.
    pub producer: ClientConfig,
    /// Topic names, or one `^regex`, as librdkafka subscribes to them.
    pub subscription: Vec<String>,
    pub dead_letter_topic: Option<String>,
    pub commit_interval: Duration,
}

impl ConsumerConfig {
    pub fn settings(
        &self,
        doc: &Document<'_>,
        default_client_id: &str,
    ) -> Result<ConsumerSettings, ConfigError> {
        check_brokers(doc, &self.brokers)?;
        if self.group_id.is_empty() {
            return Err(doc.error_at("kafka.group_id", "must not be empty"));
        }
        let subscription = match (self.topics.is_empty(), &self.topic_pattern) {
            (false, None) => {
                for (i, topic) in self.topics.iter().enumerate() {
                    check_topic_name(topic)
                        .map_err(|r| doc.error_at(&format!("kafka.topics[{i}]"), r))?;
                }
                self.topics.clone()
            }
            (true, Some(pattern)) => {
                // librdkafka's own regex engine knows groups but not `(?:`.
                let anchored = format!("^({pattern})$");
                regex::Regex::new(&anchored).map_err(|e| doc.error_at("kafka.topic_pattern", e))?;
                vec![anchored]
            }
            (false, Some(_)) => {
                return Err(doc.error_at(
                    "kafka.topic_pattern",
                    "set either `topics` or `topic_pattern`, not both",
                ));
            }
            (true, None) => {
                return Err(doc.error_at("kafka.topics", "list the topics, or set `topic_pattern`"));
            }
        };
        if let Some(topic) = &self.dead_letter_topic {
            check_topic_name(topic).map_err(|r| doc.error_at("kafka.dead_letter_topic", r))?;
        }
        if self.commit_interval_ms == 0 {
            return Err(doc.error_at("kafka.commit_interval_ms", "must be positive"));
        }
        let client_id = self.client_id.as_deref().unwrap_or(default_client_id);

        let mut consumer = ClientConfig::new();
        // librdkafka prefetches up to 64 MiB, in fetch responses of up to 50 MiB, by default; a
        // sink on a shared node needs less (peak RSS 140 MiB with the defaults, BENCHMARKS.md).
        consumer
            .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
            .set("fetch.max.bytes", FETCH_MAX_BYTES);
        set_options(&mut consumer, doc, &self.librdkafka_options, RESERVED)?;
        set_security(&mut consumer, doc, self.tls.as_ref(), self.sasl.as_ref())?;
        consumer
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", client_id)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .set(
                "auto.offset.reset",
                match self.start_from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        if let Some(id) = &self.instance_id {
            if id.is_empty() {
                return Err(doc.error_at("kafka.instance_id", "must not be empty"));
            }
            consumer.set("group.instance.id", id);
        }
        check_native(&consumer, doc, &self.librdkafka_options)?;
        // Options are the consumer's; the dead-letter producer takes only the security keys.
        let mut producer = ClientConfig::new();
        set_security(&mut producer, doc, self.tls.as_ref(), self.sasl.as_ref())?;
        producer
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", format!("{client_id}-dead-letters"))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0");
        Ok(ConsumerSettings {
            group_id: self.group_id.clone(),
            consumer,
            producer,
            subscription,
            dead_letter_topic: self.dead_letter_topic.clone(),
            commit_interval: Duration::from_millis(self.commit_interval_ms),
        })
    }
}

/// The top-level keys every sink has: all but the sink's own section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkRoot {
    pub kafka: ConsumerConfig,
    /// How long SIGTERM waits for in-flight writes before committing and leaving the group.
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    #[serde(default)]
    pub api: Option<ApiConfig>,
}

const fn default_shutdown_timeout_secs() -> u64 {
    30
}

/// What every sink runs with, besides its own section.
#[derive(Debug, Clone)]
pub struct SinkCommon {
    /// Also the longest wait for in-flight writes on a rebalance.
    pub shutdown_timeout: Duration,
    pub api_address: SocketAddr,
    pub kafka: ConsumerSettings,
}

impl SinkRoot {
    pub fn common(
        &self,
        doc: &Document<'_>,
        default_api: &str,
        default_client_id: &str,
    ) -> Result<SinkCommon, ConfigError> {
        if self.shutdown_timeout_secs == 0 {
            return Err(doc.error_at("shutdown_timeout_secs", "must be positive"));
        }
        let address = self
            .api
            .as_ref()
            .map_or(default_api, |api| api.address.as_str());
        let api_address = address
            .parse()
            .map_err(|e| doc.error_at("api.address", format!("`{address}` is not ip:port: {e}")))?;
        Ok(SinkCommon {
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            api_address,
            kafka: self.kafka.settings(doc, default_client_id)?,
        })
    }
}

/// A sink's own section (`[elasticsearch]`, `[s3]`): its table, its defaults, and its check.
pub trait SinkSection: Sized {
    /// The table's name, required in the file.
    const SECTION: &'static str;
    /// `[api] address` when the file has none.
    const DEFAULT_API: &'static str;
    /// `kafka.client_id` when the file has none.
    const CLIENT_ID: &'static str;
    /// Deserializes and checks the section.
    fn check(doc: &Document<'_>, node: Node<'_>) -> Result<Self, ConfigError>;
}

/// A sink's checked configuration: what every sink has, and its own section.
#[derive(Debug, Clone)]
pub struct SinkConfig<S> {
    pub common: SinkCommon,
    pub sink: S,
}

impl<S: SinkSection> SinkConfig<S> {
    /// Reads and checks the file at `path`, taking `${VAR}` values from the environment.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::from_toml(&super::read(path)?, &|name| std::env::var(name).ok())
    }

    /// Checks configuration text, looking `${VAR}` references up with `env`.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = super::interpolated(text, env)?;
        let doc = Document::new(&text);
        let mut root = doc.root()?;
        let Some(node) = root.remove(S::SECTION) else {
            return Err(ConfigError::invalid(
                S::SECTION,
                None,
                "required key is missing",
            ));
        };
        let root_node = toml::Spanned::new(0..text.len(), toml::de::DeValue::Table(root));
        let raw: SinkRoot = doc.deserialize(root_node, "")?;
        let common = raw.common(&doc, S::DEFAULT_API, S::CLIENT_ID)?;
        let sink = S::check(&doc, node)?;
        Ok(Self { common, sink })
    }
}
