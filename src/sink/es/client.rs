//! The HTTP side of `_bulk`: one request with a (gzip) NDJSON body, and what its answer means as a
//! whole. Per-item verdicts are `bulk::verdicts`; this module decides only about the request.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

use super::bulk::{self, ResponseError, Verdict};
use crate::config::{Credentials, EsSettings};
use crate::sink::metrics::SinkMetrics;

/// What a bulk request came to.
#[derive(Debug)]
pub enum Answer {
    /// The request was taken: one verdict per document.
    Items(Vec<Verdict>),
    /// 413: the body is too large for the cluster; send it in smaller parts.
    TooLarge,
    /// Worth sending again as it is: 429, 5xx, a transport error, a garbled answer.
    Retry {
        reason: &'static str,
        detail: String,
    },
    /// Refused in a way only an operator fixes (401, 403, a wrong URL): wait, drop nothing.
    Blocked { status: u16, detail: String },
}

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
    #[error("the credentials are not valid in an HTTP header")]
    Header,
}

/// Sends bulk requests to the cluster's nodes in turn.
pub struct BulkClient {
    http: reqwest::Client,
    urls: Vec<reqwest::Url>,
    next: AtomicUsize,
    authorization: Option<HeaderValue>,
    gzip: bool,
    metrics: SinkMetrics,
}

impl BulkClient {
    pub fn new(settings: &EsSettings, metrics: SinkMetrics) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .danger_accept_invalid_hostnames(!settings.verify_hostname);
        if let Some(pem) = &settings.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let authorization = settings
            .credentials
            .as_ref()
            .map(|credentials| {
                let text = match credentials {
                    Credentials::Basic { username, password } => {
                        use base64::Engine;
                        let pair = format!("{username}:{password}");
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(pair)
                        )
                    }
                    Credentials::ApiKey(key) => format!("ApiKey {key}"),
                };
                let mut value = HeaderValue::from_str(&text).map_err(|_| ClientError::Header)?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        let urls = settings
            .urls
            .iter()
            .map(|url| {
                let mut url = url.clone();
                let path = format!("{}/_bulk", url.path().trim_end_matches('/'));
                url.set_path(&path);
                url
            })
            .collect();
        Ok(Self {
            http: builder.build()?,
            urls,
            next: AtomicUsize::new(0),
            authorization,
            gzip: settings.gzip,
            metrics,
        })
    }

    /// Sends one bulk `body` holding `documents` documents.
    pub async fn send(&self, body: Vec<u8>, documents: usize) -> Answer {
        self.metrics.request_bytes.increment(body.len() as u64);
        let url = &self.urls[self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len()];
        let mut request = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        request = if self.gzip {
            request.header(CONTENT_ENCODING, "gzip").body(gzip(&body))
        } else {
            request.body(body)
        };
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await;
        self.metrics
            .request_duration
            .record(started.elapsed().as_secs_f64());
        let (status, answer) = match result {
            Ok(answer) => answer,
            Err(error) => {
                self.metrics.requests_error.increment(1);
                return Answer::Retry {
                    reason: "transport",
                    detail: format!("{url}: {error}"),
                };
            }
        };
        self.metrics.answered(status);
        let detail = || {
            format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            )
        };
        match status {
            200..=299 => match bulk::verdicts(&answer, documents) {
                Ok(verdicts) => Answer::Items(verdicts),
                Err(error @ (ResponseError::Garbled(_) | ResponseError::Count { .. })) => {
                    Answer::Retry {
                        reason: "garbled",
                        detail: format!("{url}: {error}"),
                    }
                }
            },
            413 => Answer::TooLarge,
            429 | 500..=599 => Answer::Retry {
                reason: "status",
                detail: detail(),
            },
            _ => Answer::Blocked {
                status,
                detail: detail(),
            },
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}
