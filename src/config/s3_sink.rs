//! `[s3]` of `logship-sink-s3`: where objects go (an S3 bucket, or a local directory), how they
//! are named and cut, and the credentials.

use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;

use super::ConfigError;
use super::document::{Document, Node};
use super::sink::{SinkConfig, SinkSection};

/// `[s3]`, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `s3://bucket/prefix`, or `file:///directory/prefix` for a local directory.
    #[serde(default = "default_url")]
    pub url: String,
    /// S3-compatible endpoint (MinIO, Ceph, a local test server); AWS when unset.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Unset: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Static credentials. Unset: the `AWS_*` environment variables, a web identity token,
    /// or the instance profile.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// The time part of each key, strftime over the record's own time.
    #[serde(default = "default_time_partition")]
    pub time_partition: String,
    /// An object is cut after this many records...
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// ...or this many bytes of NDJSON (before gzip), or when a record of another time
    /// partition arrives. Nothing else cuts an object, so a replay writes the same objects.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Objects larger than this (compressed) go up as multipart uploads of parts this size.
    #[serde(default = "default_part_bytes")]
    pub multipart_part_bytes: usize,
    /// Uploads under way at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// First and longest wait between attempts of a failed upload; uploads are retried until
    /// they succeed.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
}

fn default_url() -> String {
    "file:///var/lib/logship/archive".to_owned()
}
fn default_time_partition() -> String {
    "year=%Y/month=%m/day=%d/hour=%H".to_owned()
}
const fn default_max_records() -> usize {
    100_000
}
const fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
const fn default_part_bytes() -> usize {
    8 * 1024 * 1024
}
const fn default_max_in_flight() -> usize {
    4
}
const fn default_retry_backoff_ms() -> u64 {
    200
}
const fn default_retry_backoff_max_ms() -> u64 {
    30_000
}

/// The smallest part S3 takes (all but the last part of a multipart upload).
const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

/// Where objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        path_style: bool,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    },
    Directory(std::path::PathBuf),
}

/// The checked `[s3]` settings.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub target: Target,
    /// Key prefix inside the bucket or directory, without slashes at either end; may be empty.
    pub prefix: String,
    pub time_partition: String,
    pub max_records: usize,
    pub max_bytes: usize,
    pub part_bytes: usize,
    pub max_in_flight: usize,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
}

/// The checked configuration `logship-sink-s3` runs with.
pub type S3SinkConfig = SinkConfig<S3Settings>;

impl SinkSection for S3Settings {
    const SECTION: &'static str = "s3";
    const DEFAULT_API: &'static str = "127.0.0.1:9600";
    const CLIENT_ID: &'static str = "logship-sink-s3";

    fn check(doc: &Document<'_>, node: Node<'_>) -> Result<Self, ConfigError> {
        let raw: S3Config = doc.deserialize(node, Self::SECTION)?;
        raw.settings(doc)
    }
}

impl S3Config {
    fn settings(&self, doc: &Document<'_>) -> Result<S3Settings, ConfigError> {
        let at =
            |key: &str, reason: &dyn std::fmt::Display| doc.error_at(&format!("s3.{key}"), reason);
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| at("url", &format!("`{}`: {e}", self.url)))?;
        let (target, prefix) = match url.scheme() {
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| at("url", &"names no bucket: s3://BUCKET/prefix"))?;
                let target = Target::S3 {
                    bucket: bucket.to_owned(),
                    endpoint: self.endpoint.clone(),
                    region: self.region.clone(),
                    path_style: self.path_style,
                    access_key_id: self.access_key_id.clone(),
                    secret_access_key: self.secret_access_key.clone(),
                    session_token: self.session_token.clone(),
                };
                (target, url.path().trim_matches('/').to_owned())
            }
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| at("url", &"is not an absolute file:// path"))?;
                (Target::Directory(path), String::new())
            }
            other => {
                return Err(at(
                    "url",
                    &format!("`{other}://` is not supported: use s3:// or file://"),
                ));
            }
        };
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(at(
                "access_key_id",
                &"`access_key_id` and `secret_access_key` go together",
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !matches!(
                reqwest::Url::parse(endpoint).map(|u| u.scheme().to_owned()),
                Ok(s) if s == "http" || s == "https"
            )
        {
            return Err(at(
                "endpoint",
                &format!("`{endpoint}` is not an http(s) URL"),
            ));
        }
        if self.time_partition.contains("{{")
            || StrftimeItems::new(&self.time_partition).any(|i| matches!(i, Item::Error))
        {
            return Err(at(
                "time_partition",
                &"must be a strftime format (%Y, %m, %d, %H) without fields",
            ));
        }
        for (key, value) in [
            ("max_records", self.max_records),
            ("max_bytes", self.max_bytes),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 {
                return Err(at(key, &"must be positive"));
            }
        }
        if self.multipart_part_bytes < MIN_PART_BYTES {
            return Err(at(
                "multipart_part_bytes",
                &format!("must be at least {MIN_PART_BYTES} (S3's smallest part)"),
            ));
        }
        let (retry_backoff, retry_backoff_max) =
            super::retry_backoff(doc, "s3", self.retry_backoff_ms, self.retry_backoff_max_ms)?;
        Ok(S3Settings {
            target,
            prefix,
            time_partition: self.time_partition.trim_matches('/').to_owned(),
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            part_bytes: self.multipart_part_bytes,
            max_in_flight: self.max_in_flight,
            retry_backoff,
            retry_backoff_max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
group_id = "s3"
topics = ["logs"]

[s3]
url = "s3://archive/logs/raw/"
endpoint = "http://127.0.0.1:9000"
path_style = true
"#;

    fn key_of(text: &str) -> String {
        match S3SinkConfig::from_toml(text, &|_| None) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn an_s3_url_gives_bucket_and_prefix() {
        let config = S3SinkConfig::from_toml(VALID, &|_| None).expect("valid");
        let s3 = &config.sink;
        assert_eq!(s3.prefix, "logs/raw");
        assert!(
            matches!(&s3.target, Target::S3 { bucket, path_style: true, .. } if bucket == "archive")
        );
        assert_eq!(s3.time_partition, "year=%Y/month=%m/day=%d/hour=%H");
        assert_eq!(config.common.api_address.to_string(), "127.0.0.1:9600");
        let local = VALID.replace("s3://archive/logs/raw/", "file:///tmp/archive");
        let config = S3SinkConfig::from_toml(&local, &|_| None).expect("valid");
        assert_eq!(config.sink.target, Target::Directory("/tmp/archive".into()));
    }

    #[test]
    fn errors_name_their_key() {
        assert_eq!(
            key_of(&VALID.replace("s3://archive", "gs://archive")),
            "s3.url"
        );
        assert_eq!(
            key_of(&VALID.replace("http://127", "ftp://127")),
            "s3.endpoint"
        );
        assert_eq!(
            key_of(&format!("{VALID}time_partition = \"%Q\"\n")),
            "s3.time_partition"
        );
        assert_eq!(
            key_of(&format!("{VALID}access_key_id = \"a\"\n")),
            "s3.access_key_id"
        );
        assert_eq!(
            key_of(&format!("{VALID}multipart_part_bytes = 1000\n")),
            "s3.multipart_part_bytes"
        );
        assert_eq!(key_of(&format!("{VALID}max_record = 1\n")), "s3.max_record");
    }
}
