//! `[sources.<id>]` with `type = "file"`: the keys users write, and the checked settings the
//! file source runs with (compiled globs, durations).

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::document::Document;

/// Keys of a file source, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to read (`*`, `?`, `[...]`, and `**` for any depth).
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone even when `include` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Longest line kept, in bytes; the rest of a longer line is dropped and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// Most bytes read from one file before the next file gets its turn.
    #[serde(default = "default_max_read_bytes")]
    pub max_read_bytes: u64,
    /// How often the globs are expanded again to find new files.
    #[serde(default = "default_glob_interval_ms")]
    pub glob_interval_ms: u64,
    /// How long the source sleeps when no file had new data.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often delivered positions are written to the checkpoint file.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

const fn default_max_line_bytes() -> u64 {
    1024 * 1024
}
const fn default_max_read_bytes() -> u64 {
    256 * 1024
}
const fn default_glob_interval_ms() -> u64 {
    1000
}
const fn default_poll_interval_ms() -> u64 {
    250
}
const fn default_checkpoint_interval_ms() -> u64 {
    1000
}

/// A file source's checked settings.
#[derive(Debug, Clone)]
pub struct FileSourceSettings {
    pub include: Vec<glob::Pattern>,
    pub exclude: Vec<glob::Pattern>,
    pub max_line_bytes: usize,
    pub max_read_bytes: usize,
    pub glob_interval: Duration,
    pub poll_interval: Duration,
    pub checkpoint_interval: Duration,
}

impl FileSourceConfig {
    /// Checks every key; `prefix` is the source's key path, for example `sources.app`.
    pub fn settings(
        &self,
        doc: &Document<'_>,
        prefix: &str,
    ) -> Result<FileSourceSettings, ConfigError> {
        if self.include.is_empty() {
            return Err(doc.error_at(&format!("{prefix}.include"), "must name at least one glob"));
        }
        let compile = |key: &str, globs: &[String]| -> Result<Vec<glob::Pattern>, ConfigError> {
            globs
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    glob::Pattern::new(g).map_err(|e| {
                        doc.error_at(
                            &format!("{prefix}.{key}[{i}]"),
                            format!("invalid glob `{g}`: {e}"),
                        )
                    })
                })
                .collect()
        };
        let positive = |key: &str, value: u64| -> Result<usize, ConfigError> {
            match usize::try_from(value) {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(doc.error_at(&format!("{prefix}.{key}"), "must be a positive number")),
            }
        };
        let interval = |key: &str, ms: u64| -> Result<Duration, ConfigError> {
            positive(key, ms).map(|_| Duration::from_millis(ms))
        };
        Ok(FileSourceSettings {
            include: compile("include", &self.include)?,
            exclude: compile("exclude", &self.exclude)?,
            max_line_bytes: positive("max_line_bytes", self.max_line_bytes)?,
            max_read_bytes: positive("max_read_bytes", self.max_read_bytes)?,
            glob_interval: interval("glob_interval_ms", self.glob_interval_ms)?,
            poll_interval: interval("poll_interval_ms", self.poll_interval_ms)?,
            checkpoint_interval: interval("checkpoint_interval_ms", self.checkpoint_interval_ms)?,
        })
    }
}
