//! Configuration: TOML text → checked runtime settings, in one pass at start.
//!
//! Loading goes: read the file, substitute `${VAR}` references (`interpolate`), parse with spans
//! (`document`), deserialize each section strictly (unknown keys are errors at every depth), then
//! check semantics (globs compile, the data directory is writable, brokers are `host:port`) and
//! build the typed settings the agent runs with. Every error names the key path, the line where
//! the key exists in the text, and the reason; the binary exits 78 (EX_CONFIG) on any of them.
//! A reload (SIGHUP) goes through the same `load`; `changes` says what differs from the running
//! configuration.

mod changes;
mod document;
mod es_sink;
mod file_source;
mod http_source;
mod interpolate;
mod journald_source;
mod kafka;
mod memory;
mod pipeline;
#[cfg(test)]
mod reference;
mod risks;
mod s3_sink;
mod sink;
mod spool;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeValue;

use crate::pipeline::Pipeline;
use crate::pipeline::cases::TestCase;
use crate::pipeline::steps::Load;

pub use changes::{Changes, Written};
pub use document::Document;
pub use es_sink::{Credentials, EsSettings, EsSinkConfig};
pub use file_source::{
    FileSourceConfig, FileSourceSettings, MultilineConfig, MultilineMode, ReadFrom,
};
pub use http_source::{HttpAck, HttpSourceConfig, HttpSourceSettings};
pub use interpolate::{InterpolationError, interpolate};
pub use journald_source::{Journal, JournaldSourceConfig, JournaldSourceSettings, PRIORITY_NAMES};
pub use kafka::{
    Compression, Encoding, KafkaConfig, KafkaSettings, LossPolicy, Oversize, RecordSettings,
};
pub use memory::MemoryPlan;
pub use s3_sink::{S3Settings, S3SinkConfig, Target};
pub use sink::{ConsumerSettings, SinkCommon, StartFrom};
pub use spool::{Fsync, SpoolConfig, SpoolSettings, WhenFull};

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {reason}", if key.is_empty() { "config" } else { key }, line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        /// Dotted key path, for example `sources.app.include[0]`; empty for the whole document.
        key: String,
        line: Option<usize>,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, line: Option<usize>, reason: &str) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            line,
            reason: reason.to_owned(),
        }
    }
}

/// Top-level keys other than `[sources]`, as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootConfig {
    /// Where checkpoints and the spool (`data_dir/spool`) live.
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    /// How long `run` waits for outstanding deliveries after SIGTERM or SIGINT.
    #[serde(default = "default_shutdown_timeout_secs")]
    shutdown_timeout_secs: u64,
    /// Memory for events in the agent: librdkafka's queue, read buffers and the events between
    /// them (`config::memory`).
    #[serde(default = "default_memory_limit_bytes")]
    memory_limit_bytes: u64,
    #[serde(default)]
    api: ApiConfig,
    kafka: KafkaConfig,
    #[serde(default)]
    spool: SpoolConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/logship")
}
const fn default_shutdown_timeout_secs() -> u64 {
    30
}
const fn default_memory_limit_bytes() -> u64 {
    memory::DEFAULT_LIMIT
}

/// `[api]`: the HTTP server for /metrics and /health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_api_address")]
    pub address: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            address: default_api_address(),
        }
    }
}

fn default_api_address() -> String {
    "127.0.0.1:9598".to_owned()
}

/// One configured source, by type.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    File(FileSourceSettings),
    Journald(JournaldSourceSettings),
    Http(HttpSourceSettings),
}

impl SourceSettings {
    /// The pipeline its events go through.
    pub fn pipeline(&self) -> Option<&str> {
        match self {
            Self::File(file) => file.pipeline.as_deref(),
            Self::Journald(journald) => journald.pipeline.as_deref(),
            Self::Http(http) => http.pipeline.as_deref(),
        }
    }

    /// Bytes of its read buffer, and the most one read turn can hold (for the memory plan).
    pub fn read_sizes(&self) -> (u64, u64) {
        match self {
            Self::File(file) => (
                file.max_read_bytes as u64,
                (file.max_read_bytes + file.max_line_bytes) as u64,
            ),
            Self::Journald(journald) => (
                crate::source::journald::READ_BUFFER_BYTES as u64,
                (crate::source::journald::READ_BUFFER_BYTES + journald.max_entry_bytes) as u64,
            ),
            // Bodies of the requests handled at once; one request's events at a time.
            Self::Http(http) => (http.body_bytes(), http.max_body_bytes as u64),
        }
    }
}

/// The checked configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub shutdown_timeout: Duration,
    pub api_address: SocketAddr,
    /// Sources by id, in id order.
    pub sources: BTreeMap<String, SourceSettings>,
    /// Pipelines by name.
    pub pipelines: BTreeMap<String, Pipeline>,
    /// `[[tests]]` for `logship test`.
    pub tests: Vec<TestCase>,
    pub kafka: KafkaSettings,
    /// `None` when `[spool] enabled = false`.
    pub spool: Option<SpoolSettings>,
    /// How `memory_limit_bytes` is shared out.
    pub memory: MemoryPlan,
    /// The text's sections as written, which a reload compares (`Changes`).
    pub written: Written,
}

impl Config {
    /// Reads and checks the file at `path`, taking `${VAR}` values from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?, &|name| std::env::var(name).ok())
    }

    /// Checks configuration text, looking `${VAR}` references up with `env`.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = interpolated(text, env)?;
        let doc = Document::new(&text);
        let mut root = doc.root()?;
        let sources = root.remove("sources");
        let pipelines = root.remove("pipelines");
        let tests = root.remove("tests");
        let root_node = toml::Spanned::new(0..text.len(), DeValue::Table(root));
        let raw: RootConfig = doc.deserialize(root_node, "")?;

        let api_address = raw.api.address.parse().map_err(|e| {
            doc.error_at(
                "api.address",
                format!("`{}` is not ip:port: {e}", raw.api.address),
            )
        })?;
        if raw.shutdown_timeout_secs == 0 {
            return Err(doc.error_at("shutdown_timeout_secs", "must be positive"));
        }
        check_data_dir(&raw.data_dir).map_err(|reason| doc.error_at("data_dir", reason))?;

        let spool = raw.spool.settings(&doc, &raw.data_dir)?;
        let sources = sources_settings(&doc, sources)?;
        let memory = MemoryPlan::new(
            &doc,
            raw.memory_limit_bytes,
            &raw.kafka.queue_keys(),
            &sources,
        )?;
        let kafka = raw.kafka.settings(&doc, spool.is_some(), &memory)?;
        let pipelines = pipeline::pipelines(&doc, pipelines, kafka.dead_letter_topic.as_deref())?;
        for (id, source) in &sources {
            if let Some(name) = source.pipeline()
                && !pipelines.contains_key(name)
            {
                return Err(doc.error_at(
                    &format!("sources.{id}.pipeline"),
                    format!("no pipeline named `{name}` (define it as [pipelines.{name}])"),
                ));
            }
        }
        let tests = cases(&doc, tests, &pipelines)?;
        Ok(Self {
            data_dir: raw.data_dir,
            shutdown_timeout: Duration::from_secs(raw.shutdown_timeout_secs),
            api_address,
            sources,
            pipelines,
            tests,
            kafka,
            spool,
            memory,
            written: Written::parse(&text),
        })
    }
}

/// `<section>.retry_backoff_ms` and `retry_backoff_max_ms` as waits: the first must be positive
/// and at most the longest.
fn retry_backoff(
    doc: &Document<'_>,
    section: &str,
    first_ms: u64,
    max_ms: u64,
) -> Result<(Duration, Duration), ConfigError> {
    if first_ms == 0 || first_ms > max_ms {
        return Err(doc.error_at(
            &format!("{section}.retry_backoff_ms"),
            "must be positive and at most retry_backoff_max_ms",
        ));
    }
    Ok((
        Duration::from_millis(first_ms),
        Duration::from_millis(max_ms),
    ))
}

/// Reads a configuration file.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The text with `${VAR}` references substituted; an undefined one is an error at its key.
fn interpolated(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let original = Document::new(text);
    interpolate(text, env).map_err(|e| {
        let key = original.key_at_offset(e.offset()).unwrap_or_default();
        ConfigError::invalid(
            &key,
            Some(original.line_of_offset(e.offset())),
            &e.to_string(),
        )
    })
}

/// `[sources.<id>]` tables are chosen by their `type` key and deserialized one by one, so an error
/// deep inside a source keeps its full key path (serde loses paths inside tagged enums).
fn sources_settings(
    doc: &Document<'_>,
    sources: Option<document::Node<'_>>,
) -> Result<BTreeMap<String, SourceSettings>, ConfigError> {
    let Some(sources) = sources else {
        return Err(doc.error_at("sources", "at least one source is required"));
    };
    let DeValue::Table(table) = sources.into_inner() else {
        return Err(doc.error_at("sources", "must be a table of named sources"));
    };
    if table.is_empty() {
        return Err(doc.error_at("sources", "at least one source is required"));
    }
    let mut out = BTreeMap::new();
    for (id, node) in table {
        let id = id.into_inner().into_owned();
        let prefix = format!("sources.{id}");
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(doc.error_at(
                &prefix,
                "source ids may hold only letters, digits, `_` and `-`",
            ));
        }
        let span = node.span();
        let DeValue::Table(mut fields) = node.into_inner() else {
            return Err(doc.error_at(&prefix, "must be a table"));
        };
        let kind = match fields.remove("type").map(toml::Spanned::into_inner) {
            Some(DeValue::String(kind)) => kind.into_owned(),
            Some(_) => return Err(doc.error_at(&format!("{prefix}.type"), "must be a string")),
            None => return Err(doc.error_at(&format!("{prefix}.type"), "required key is missing")),
        };
        let node = toml::Spanned::new(span, DeValue::Table(fields));
        let mut loader = document::Loader::new(doc, node, &prefix);
        let Some(settings) = source(&kind, &mut loader, doc, &prefix) else {
            return Err(doc.error_at(
                &format!("{prefix}.type"),
                format!(
                    "unknown source type `{kind}`, expected one of: {}",
                    SOURCE_TYPES.join(", ")
                ),
            ));
        };
        out.insert(id, settings?);
    }
    Ok(out)
}

/// Every source type, as written in `type = "…"`.
const SOURCE_TYPES: &[&str] = &["file", "journald", "http"];

/// Loads a source of type `kind` with `loader` and checks it; `None` for an unknown type. The
/// loader is a parameter so that `reference` can walk every type's keys with the same dispatch.
fn source<L: Load<Error = ConfigError>>(
    kind: &str,
    loader: &mut L,
    doc: &Document<'_>,
    prefix: &str,
) -> Option<Result<SourceSettings, ConfigError>> {
    Some(match kind {
        "file" => loader
            .load::<FileSourceConfig>()
            .and_then(|raw| raw.settings(doc, prefix).map(SourceSettings::File)),
        "journald" => loader
            .load::<JournaldSourceConfig>()
            .and_then(|raw| raw.settings(doc, prefix).map(SourceSettings::Journald)),
        "http" => loader
            .load::<HttpSourceConfig>()
            .and_then(|raw| raw.settings(doc, prefix).map(SourceSettings::Http)),
        _ => return None,
    })
}

/// `[[tests]]`: each case names a pipeline that exists.
fn cases(
    doc: &Document<'_>,
    node: Option<document::Node<'_>>,
    pipelines: &BTreeMap<String, Pipeline>,
) -> Result<Vec<TestCase>, ConfigError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let cases: Vec<TestCase> = doc.deserialize(node, "tests")?;
    for (i, case) in cases.iter().enumerate() {
        if !pipelines.contains_key(&case.pipeline) {
            return Err(doc.error_at(
                &format!("tests[{i}].pipeline"),
                format!("no pipeline named `{}`", case.pipeline),
            ));
        }
    }
    Ok(cases)
}

/// The data directory must exist or be creatable, and be writable by this process.
fn check_data_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".logship-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    // The probe is ours and empty; failing to remove it is harmless.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, &|name| {
            (name == "BROKER").then(|| "127.0.0.1:9092".to_owned())
        })
    }

    fn minimal(extra_source: &str, extra_kafka: &str) -> String {
        let dir = std::env::temp_dir().join("logship-config-test");
        format!(
            "data_dir = \"{}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"/var/log/*.log\"]\n{extra_source}\n[kafka]\nbrokers = [\"${{BROKER}}\"]\ntopic = \"logs\"\n{extra_kafka}\n",
            dir.display()
        )
    }

    fn invalid(text: &str) -> (String, Option<usize>, String) {
        match check(text) {
            Err(ConfigError::Invalid { key, line, reason }) => (key, line, reason),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_is_valid_with_defaults() {
        let config = check(&minimal("", "")).unwrap();
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(config.api_address.to_string(), "127.0.0.1:9598");
        let SourceSettings::File(file) = &config.sources["app"] else {
            panic!("a file source");
        };
        assert_eq!(file.max_line_bytes, 1024 * 1024);
        assert_eq!(
            config.kafka.client.get("bootstrap.servers"),
            Some("127.0.0.1:9092")
        );
        assert_eq!(config.kafka.client.get("acks"), Some("all"));
        assert_eq!(config.kafka.client.get("compression.type"), Some("zstd"));
    }

    #[test]
    fn unknown_nested_key_names_path_and_line() {
        let (key, line, reason) = invalid(&minimal("max_line_byte = 10", ""));
        assert_eq!(key, "sources.app.max_line_byte");
        assert_eq!(line, Some(5));
        assert!(reason.starts_with("unknown key"), "{reason}");
    }

    #[test]
    fn wrong_type_names_path_and_line() {
        let (key, line, reason) = invalid(&minimal("max_line_bytes = \"big\"", ""));
        assert_eq!(key, "sources.app.max_line_bytes");
        assert_eq!(line, Some(5));
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn missing_brokers_is_named() {
        let text = minimal("", "").replace("brokers = [\"${BROKER}\"]\n", "");
        let (key, _, reason) = invalid(&text);
        assert_eq!(key, "kafka.brokers");
        assert_eq!(reason, "required key is missing");
    }

    #[test]
    fn missing_top_level_table_is_not_blamed_on_line_1() {
        let text = minimal("", "");
        let text = &text[..text.find("[kafka]").unwrap()];
        let (key, line, _) = invalid(text);
        assert_eq!(key, "kafka");
        assert_eq!(line, None);
    }

    #[test]
    fn bad_glob_names_the_item() {
        let text = minimal("", "").replace("/var/log/*.log", "/var/log/[.log");
        let (key, line, _) = invalid(&text);
        assert_eq!(key, "sources.app.include[0]");
        assert_eq!(line, Some(4));
    }

    #[test]
    fn undefined_env_var_names_the_key() {
        let text = minimal("", "").replace("${BROKER}", "${NOT_SET_ANYWHERE}");
        let (key, line, reason) = invalid(&text);
        assert_eq!(key, "kafka.brokers");
        assert_eq!(line, Some(7));
        assert!(reason.contains("NOT_SET_ANYWHERE"), "{reason}");
    }

    #[test]
    fn reserved_librdkafka_option_is_rejected() {
        let (key, _, _) = invalid(&minimal("", "librdkafka_options = { acks = \"1\" }"));
        assert_eq!(key, "kafka.librdkafka_options.acks");
    }

    #[test]
    fn unknown_librdkafka_option_is_rejected() {
        let (key, _, reason) = invalid(&minimal(
            "",
            "librdkafka_options = { \"no.such.thing\" = \"1\" }",
        ));
        assert_eq!(key, "kafka.librdkafka_options.no.such.thing");
        assert!(reason.contains("librdkafka"), "{reason}");
    }

    #[test]
    fn unknown_source_type_is_rejected() {
        let text = minimal("", "").replace("type = \"file\"", "type = \"carrier_pigeon\"");
        let (key, line, _) = invalid(&text);
        assert_eq!(key, "sources.app.type");
        assert_eq!(line, Some(3));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (_, line, _) = invalid("data_dir = \n[kafka]\n");
        assert_eq!(line, Some(1));
    }

    #[test]
    fn unknown_top_level_key_is_rejected() {
        let (key, line, _) = invalid(&format!("dat_dir = 1\n{}", minimal("", "")));
        assert_eq!(key, "dat_dir");
        assert_eq!(line, Some(1));
    }

    #[test]
    fn a_template_topic_needs_a_fallback() {
        let text = minimal("", "").replace("topic = \"logs\"", "topic = \"logs.{{ service }}\"");
        let (key, _, reason) = invalid(&text);
        assert_eq!(key, "kafka.fallback_topic");
        assert!(reason.contains("template"), "{reason}");
        let with_fallback = text.replace("[kafka]\n", "[kafka]\nfallback_topic = \"logs\"\n");
        assert!(check(&with_fallback).is_ok());
    }

    #[test]
    fn tls_sasl_and_partitioner_map_to_librdkafka() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let extra = format!(
            "partitioner = \"murmur2\"\n[kafka.tls]\nca_file = \"{}\"\nverify_hostname = false\n\
             [kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\npassword = \"p\"\n",
            ca.display()
        );
        let config = check(&minimal("", &extra)).unwrap();
        let client = &config.kafka.client;
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(client.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.username"), Some("u"));
        assert_eq!(client.get("ssl.ca.location"), Some(ca.to_str().unwrap()));
        assert_eq!(
            client.get("ssl.endpoint.identification.algorithm"),
            Some("none")
        );
        assert_eq!(client.get("partitioner"), Some("murmur2"));
        assert_eq!(client.get("retry.backoff.ms"), Some("100"));
        assert_eq!(client.get("retry.backoff.max.ms"), Some("1000"));
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let extra = "[kafka.tls]\nca_file = \"/nonexistent/ca.pem\"\n";
        let (key, _, reason) = invalid(&minimal("", extra));
        assert_eq!(key, "kafka.tls.ca_file");
        assert!(reason.contains("/nonexistent/ca.pem"), "{reason}");
    }

    #[test]
    fn security_settings_cannot_come_through_librdkafka_options() {
        let (key, _, _) = invalid(&minimal(
            "",
            "librdkafka_options = { \"sasl.password\" = \"x\" }",
        ));
        assert_eq!(key, "kafka.librdkafka_options.sasl.password");
    }
}
