//! `[sources.<id>]` with `type = "http"`: the keys users write, and the checked settings the HTTP
//! source runs with.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::document::Document;
use crate::pipeline::path::FieldPath;

/// Keys of an HTTP source, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// Address to listen on, `ip:port`. Required.
    pub address: String,
    /// The path logs are POSTed to.
    #[serde(default = "default_path")]
    pub path: String,
    /// Requests must carry `Authorization: Bearer <auth_token>`. Unset: no authentication.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Largest body taken, after gzip decoding; larger: 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Requests handled at once; more wait.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u64,
    /// Requests per second one client IP may make (429 past it). Unset: no limit.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// Requests a client may make at once before the rate applies. Default: the rate.
    #[serde(default)]
    pub rate_limit_burst: Option<u32>,
    /// When the reply is sent: once the events are `delivered` to Kafka or spooled, or once
    /// they are `accepted` into the pipeline.
    #[serde(default)]
    pub ack: HttpAck,
    /// Longest wait for delivery with `ack = "delivered"`; then 503 (the events may still be
    /// delivered: a retry can duplicate them).
    #[serde(default = "default_ack_timeout_secs")]
    pub ack_timeout_secs: u64,
    /// How long a request waits for room (memory budget, channel) before it gets 429.
    #[serde(default = "default_queue_wait_ms")]
    pub queue_wait_ms: u64,
    /// Fields every event must have (dotted paths); an event without one: 400.
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// The field holding the event's time (RFC 3339, or seconds or milliseconds since the
    /// epoch); absent: the time of arrival.
    #[serde(default = "default_timestamp_field")]
    pub timestamp_field: String,
    /// The `[pipelines.<name>]` its events go through; none: shipped as received.
    #[serde(default)]
    pub pipeline: Option<String>,
}

/// When an HTTP request is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAck {
    #[default]
    Delivered,
    Accepted,
}

fn default_path() -> String {
    "/logs".to_owned()
}
const fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
const fn default_max_concurrent_requests() -> u64 {
    4
}
const fn default_ack_timeout_secs() -> u64 {
    30
}
const fn default_queue_wait_ms() -> u64 {
    1000
}
fn default_timestamp_field() -> String {
    "@timestamp".to_owned()
}

/// An HTTP source's checked settings.
#[derive(Debug, Clone)]
pub struct HttpSourceSettings {
    pub address: SocketAddr,
    pub path: String,
    pub auth_token: Option<String>,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
    /// Requests per second and burst, per client IP.
    pub rate_limit: Option<(u32, u32)>,
    pub ack: HttpAck,
    pub ack_timeout: Duration,
    pub queue_wait: Duration,
    pub required_fields: Vec<FieldPath>,
    pub timestamp_field: FieldPath,
    pub pipeline: Option<String>,
}

impl HttpSourceSettings {
    /// Bytes the source's request bodies may hold at once (for the memory plan).
    pub fn body_bytes(&self) -> u64 {
        (self.max_body_bytes as u64).saturating_mul(self.max_concurrent_requests as u64)
    }
}

impl HttpSourceConfig {
    /// Checks every key; `prefix` is the source's key path, for example `sources.api`.
    pub fn settings(
        &self,
        doc: &Document<'_>,
        prefix: &str,
    ) -> Result<HttpSourceSettings, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        let address = self.address.parse().map_err(|e| {
            doc.error_at(
                &key("address"),
                format!("`{}` is not ip:port: {e}", self.address),
            )
        })?;
        if !self.path.starts_with('/') {
            return Err(doc.error_at(&key("path"), "must start with /"));
        }
        if self.auth_token.as_deref() == Some("") {
            return Err(doc.error_at(
                &key("auth_token"),
                "must not be empty (leave it unset for no authentication)",
            ));
        }
        let positive = |k: &str, value: u64| -> Result<u64, ConfigError> {
            if value == 0 {
                return Err(doc.error_at(&key(k), "must be a positive number"));
            }
            Ok(value)
        };
        let rate_limit = match (self.rate_limit_per_second, self.rate_limit_burst) {
            (Some(0), _) => {
                return Err(
                    doc.error_at(&key("rate_limit_per_second"), "must be a positive number")
                );
            }
            (_, Some(0)) => {
                return Err(doc.error_at(&key("rate_limit_burst"), "must be a positive number"));
            }
            (None, Some(_)) => {
                return Err(doc.error_at(&key("rate_limit_burst"), "needs rate_limit_per_second"));
            }
            (Some(rate), burst) => Some((rate, burst.unwrap_or(rate))),
            (None, None) => None,
        };
        let field = |k: &str, path: &str| {
            FieldPath::parse(path).map_err(|e| doc.error_at(k, format!("`{path}`: {e}")))
        };
        let required_fields = self
            .required_fields
            .iter()
            .enumerate()
            .map(|(i, f)| field(&format!("{prefix}.required_fields[{i}]"), f))
            .collect::<Result<_, _>>()?;
        Ok(HttpSourceSettings {
            address,
            path: self.path.clone(),
            auth_token: self.auth_token.clone(),
            max_body_bytes: usize::try_from(positive("max_body_bytes", self.max_body_bytes)?)
                .unwrap_or(usize::MAX),
            max_concurrent_requests: usize::try_from(positive(
                "max_concurrent_requests",
                self.max_concurrent_requests,
            )?)
            .unwrap_or(usize::MAX),
            rate_limit,
            ack: self.ack,
            ack_timeout: Duration::from_secs(positive("ack_timeout_secs", self.ack_timeout_secs)?),
            queue_wait: Duration::from_millis(self.queue_wait_ms),
            required_fields,
            timestamp_field: field(&key("timestamp_field"), &self.timestamp_field)?,
            pipeline: self.pipeline.clone(),
        })
    }
}
