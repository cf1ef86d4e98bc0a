//! `[elasticsearch]` of `logship-sink-es`: where documents go, how bulk requests are cut, retried
//! and authenticated.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sink::es::bulk::Action;
use crate::sink::es::index::IndexTemplate;

use super::ConfigError;
use super::document::{Document, Node};
use super::sink::{SinkConfig, SinkSection};

/// `[elasticsearch]`, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsConfig {
    /// Base URLs of the cluster's nodes (`http://host:9200`); requests go round them.
    pub urls: Vec<String>,
    /// Index template over the record's fields and its own time, for example
    /// `logs-{{ service.name }}-%Y.%m.%d`. In `data_stream` mode: the data stream's name.
    pub index: String,
    /// Index for records that lack a field `index` names (date formats allowed, fields not).
    /// Required when `index` names fields.
    #[serde(default)]
    pub fallback_index: Option<String>,
    /// `index` writes or overwrites documents; `data_stream` writes with `create` (a document
    /// written before is a 409, which counts as written).
    #[serde(default)]
    pub mode: Mode,
    /// A bulk request is sent when it holds this many documents...
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// ...or this many bytes (before compression)...
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// ...or its first record waited this long.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Bulk requests under way at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Send bodies gzip-compressed (`Content-Encoding: gzip`).
    #[serde(default = "default_true")]
    pub gzip: bool,
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// First wait before a failed request or item is sent again; doubled per attempt, with
    /// jitter, up to `retry_backoff_max_ms`. Retries go on until they succeed.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    #[serde(default)]
    pub auth: Option<EsAuth>,
    #[serde(default)]
    pub tls: Option<EsTls>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Index,
    DataStream,
}

/// `[elasticsearch.auth]`: basic auth or an API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsAuth {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The encoded API key (`id:key` in base64), sent as `Authorization: ApiKey ...`.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// `[elasticsearch.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsTls {
    /// CA certificates (PEM) the cluster's certificate must chain to, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Check that the certificate names the host connected to.
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

const fn default_true() -> bool {
    true
}
const fn default_max_events() -> usize {
    1000
}
const fn default_max_bytes() -> usize {
    5 * 1024 * 1024
}
const fn default_linger_ms() -> u64 {
    1000
}
const fn default_max_in_flight() -> usize {
    2
}
const fn default_request_timeout_secs() -> u64 {
    60
}
const fn default_retry_backoff_ms() -> u64 {
    100
}
const fn default_retry_backoff_max_ms() -> u64 {
    30_000
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { username: String, password: String },
    ApiKey(String),
}

/// The checked `[elasticsearch]` settings.
#[derive(Debug, Clone)]
pub struct EsSettings {
    pub urls: Vec<reqwest::Url>,
    pub index: IndexTemplate,
    pub fallback_index: Option<IndexTemplate>,
    pub action: Action,
    pub max_events: usize,
    pub max_bytes: usize,
    pub linger: Duration,
    pub max_in_flight: usize,
    pub gzip: bool,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub credentials: Option<Credentials>,
    /// PEM text of extra CA certificates.
    pub ca_pem: Option<Vec<u8>>,
    pub verify_hostname: bool,
}

/// The checked configuration `logship-sink-es` runs with.
pub type EsSinkConfig = SinkConfig<EsSettings>;

impl SinkSection for EsSettings {
    const SECTION: &'static str = "elasticsearch";
    const DEFAULT_API: &'static str = "127.0.0.1:9599";
    const CLIENT_ID: &'static str = "logship-sink-es";

    fn check(doc: &Document<'_>, node: Node<'_>) -> Result<Self, ConfigError> {
        let raw: EsConfig = doc.deserialize(node, Self::SECTION)?;
        raw.settings(doc)
    }
}

impl EsConfig {
    fn settings(&self, doc: &Document<'_>) -> Result<EsSettings, ConfigError> {
        let at = |key: &str, reason: &dyn std::fmt::Display| {
            doc.error_at(&format!("elasticsearch.{key}"), reason)
        };
        if self.urls.is_empty() {
            return Err(at("urls", &"must list at least one URL"));
        }
        let urls = self
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| at(&format!("urls[{i}]"), &format!("`{url}`: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(at(
                        &format!("urls[{i}]"),
                        &format!("`{url}` is not an http:// or https:// URL with a host"),
                    ));
                }
                Ok(parsed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let index = IndexTemplate::parse(&self.index).map_err(|e| at("index", &e))?;
        let fallback_index = self
            .fallback_index
            .as_deref()
            .map(IndexTemplate::parse)
            .transpose()
            .map_err(|e| at("fallback_index", &e))?;
        if fallback_index
            .as_ref()
            .is_some_and(IndexTemplate::names_fields)
        {
            return Err(at(
                "fallback_index",
                &"may hold date formats but no {{ field }}: it is for records without them",
            ));
        }
        if index.names_fields() && fallback_index.is_none() {
            return Err(at(
                "fallback_index",
                &"required when `index` names fields: records without them go there",
            ));
        }
        for (key, value) in [
            ("max_events", self.max_events as u64),
            ("max_bytes", self.max_bytes as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("request_timeout_secs", self.request_timeout_secs),
        ] {
            if value == 0 {
                return Err(at(key, &"must be positive"));
            }
        }
        let (retry_backoff, retry_backoff_max) = super::retry_backoff(
            doc,
            "elasticsearch",
            self.retry_backoff_ms,
            self.retry_backoff_max_ms,
        )?;
        let credentials = match &self.auth {
            None => None,
            Some(EsAuth {
                username: Some(username),
                password: Some(password),
                api_key: None,
            }) => Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            Some(EsAuth {
                username: None,
                password: None,
                api_key: Some(key),
            }) => Some(Credentials::ApiKey(key.clone())),
            Some(_) => {
                return Err(at(
                    "auth",
                    &"set `username` and `password`, or `api_key` alone",
                ));
            }
        };
        let (ca_pem, verify_hostname) = match &self.tls {
            None => (None, true),
            Some(tls) => {
                let pem = tls
                    .ca_file
                    .as_ref()
                    .map(|path| {
                        let pem = std::fs::read(path).map_err(|e| {
                            at(
                                "tls.ca_file",
                                &format!("cannot read {}: {e}", path.display()),
                            )
                        })?;
                        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                            at(
                                "tls.ca_file",
                                &format!("{} is not PEM: {e}", path.display()),
                            )
                        })?;
                        Ok(pem)
                    })
                    .transpose()?;
                (pem, tls.verify_hostname)
            }
        };
        Ok(EsSettings {
            urls,
            index,
            fallback_index,
            action: match self.mode {
                Mode::Index => Action::Index,
                Mode::DataStream => Action::Create,
            },
            max_events: self.max_events,
            max_bytes: self.max_bytes,
            linger: Duration::from_millis(self.linger_ms),
            max_in_flight: self.max_in_flight,
            gzip: self.gzip,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            retry_backoff,
            retry_backoff_max,
            credentials,
            ca_pem,
            verify_hostname,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
group_id = "es"
topics = ["logs"]

[elasticsearch]
urls = ["http://127.0.0.1:9200"]
index = "logs-%Y.%m.%d"
"#;

    fn check(text: &str) -> Result<EsSinkConfig, ConfigError> {
        EsSinkConfig::from_toml(text, &|_| None)
    }

    fn key_of(text: &str) -> String {
        match check(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config = check(VALID).expect("valid");
        let es = &config.sink;
        assert_eq!(es.max_events, 1000);
        assert_eq!(es.action, Action::Index);
        assert!(es.gzip);
        let kafka = &config.common.kafka;
        assert_eq!(kafka.subscription, ["logs"]);
        assert_eq!(kafka.consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(kafka.consumer.get("group.id"), Some("es"));
        assert_eq!(kafka.producer.get("acks"), Some("all"));
        assert_eq!(config.common.api_address.to_string(), "127.0.0.1:9599");
    }

    #[test]
    fn errors_name_their_key() {
        assert_eq!(key_of(&VALID.replace("urls", "url")), "elasticsearch.url");
        assert_eq!(
            key_of(&VALID.replace("http://127.0.0.1:9200", "ftp://x")),
            "elasticsearch.urls[0]"
        );
        assert_eq!(
            key_of(&VALID.replace("logs-%Y", "logs-{{ service }}-%Y")),
            "elasticsearch.fallback_index"
        );
        assert_eq!(
            key_of(&VALID.replace("topics = [\"logs\"]", "")),
            "kafka.topics"
        );
        assert_eq!(
            key_of(&VALID.replace("topics = [\"logs\"]", "topic_pattern = \"(\"")),
            "kafka.topic_pattern"
        );
        assert_eq!(
            key_of(&format!(
                "{VALID}[elasticsearch.auth]\nusername = \"u\"\napi_key = \"k\"\n"
            )),
            "elasticsearch.auth"
        );
        assert_eq!(
            key_of(&VALID.replace(
                "group_id = \"es\"",
                "group_id = \"es\"\nlibrdkafka_options = { \"enable.auto.commit\" = \"true\" }"
            )),
            "kafka.librdkafka_options.enable.auto.commit"
        );
        let text = VALID.replace("[elasticsearch]", "[elastic]");
        assert_eq!(key_of(&text), "elasticsearch");
    }

    #[test]
    fn a_pattern_is_anchored() {
        let config =
            check(&VALID.replace("topics = [\"logs\"]", "topic_pattern = \"logs\\\\..*\""))
                .expect("valid");
        assert_eq!(config.common.kafka.subscription, ["^(logs\\..*)$"]);
    }
}
