//! `[sources.<id>]` with `type = "file"`: the keys users write, and the checked settings the
//! file source runs with (compiled globs, durations).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::document::Document;
use crate::source::file::multiline::{Mode, MultilineRules};

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
    /// How often the globs are expanded again: the fallback for what inotify does not report.
    #[serde(default = "default_glob_interval_ms")]
    pub glob_interval_ms: u64,
    /// How long the source sleeps when no file had new data.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often delivered positions are written to the checkpoint file.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// Where a file with no checkpoint starts: its beginning, or its current end.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Files not modified for this long are not picked up (until they change). No limit when
    /// unset.
    #[serde(default)]
    pub ignore_older_secs: Option<u64>,
    /// An open file with no new data for this long is closed, and reopened when it changes.
    #[serde(default = "default_close_idle_secs")]
    pub close_idle_secs: u64,
    /// A file renamed away or deleted is kept open and read until it has had no new data for
    /// this long, so lines written just after the rotation are not lost.
    #[serde(default = "default_rotate_wait_ms")]
    pub rotate_wait_ms: u64,
    /// How many leading bytes identify a file (with its inode).
    #[serde(default = "default_fingerprint_bytes")]
    pub fingerprint_bytes: u64,
    /// A last line without its newline is shipped after this long without new data.
    #[serde(default = "default_partial_line_timeout_ms")]
    pub partial_line_timeout_ms: u64,
    /// Joins lines into one event (stack traces); off when absent.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// The `[pipelines.<name>]` its events go through; none: shipped as read.
    #[serde(default)]
    pub pipeline: Option<String>,
}

/// Where a file with no checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// `[sources.<id>.multiline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// `java`, `python` or `go`: start and condition patterns and mode for their stack traces.
    /// Explicit keys below override the preset's.
    #[serde(default)]
    pub preset: Option<String>,
    /// A group starts at a line matching this regex.
    #[serde(default)]
    pub start_pattern: Option<String>,
    /// The regex `mode` applies to the following lines.
    #[serde(default)]
    pub condition_pattern: Option<String>,
    /// `continue_through`, `continue_past`, `halt_before` or `halt_with`.
    #[serde(default)]
    pub mode: Option<MultilineMode>,
    /// A group is shipped after this long without a new line.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
    /// Most lines in one group.
    #[serde(default = "default_multiline_max_lines")]
    pub max_lines: u64,
    /// Most bytes in one group; the rest is dropped and counted as truncated.
    #[serde(default = "default_multiline_max_bytes")]
    pub max_bytes: u64,
}

/// How following lines join a group (Vector's multiline modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultilineMode {
    ContinueThrough,
    ContinuePast,
    HaltBefore,
    HaltWith,
}

const fn default_max_line_bytes() -> u64 {
    1024 * 1024
}
const fn default_max_read_bytes() -> u64 {
    256 * 1024
}
const fn default_glob_interval_ms() -> u64 {
    10_000
}
const fn default_poll_interval_ms() -> u64 {
    250
}
const fn default_checkpoint_interval_ms() -> u64 {
    1000
}
const fn default_close_idle_secs() -> u64 {
    60
}
const fn default_rotate_wait_ms() -> u64 {
    5000
}
const fn default_fingerprint_bytes() -> u64 {
    1024
}
const fn default_partial_line_timeout_ms() -> u64 {
    5000
}
const fn default_multiline_timeout_ms() -> u64 {
    1000
}
const fn default_multiline_max_lines() -> u64 {
    500
}
const fn default_multiline_max_bytes() -> u64 {
    1024 * 1024
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
    pub read_from: ReadFrom,
    pub ignore_older: Option<Duration>,
    pub close_idle: Duration,
    pub rotate_wait: Duration,
    pub fingerprint_bytes: u64,
    pub partial_line_timeout: Duration,
    pub multiline: Option<Arc<MultilineRules>>,
    /// Name of the pipeline (checked to exist).
    pub pipeline: Option<String>,
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
            pipeline: self.pipeline.clone(),
            include: compile("include", &self.include)?,
            exclude: compile("exclude", &self.exclude)?,
            max_line_bytes: positive("max_line_bytes", self.max_line_bytes)?,
            max_read_bytes: positive("max_read_bytes", self.max_read_bytes)?,
            glob_interval: interval("glob_interval_ms", self.glob_interval_ms)?,
            poll_interval: interval("poll_interval_ms", self.poll_interval_ms)?,
            checkpoint_interval: interval("checkpoint_interval_ms", self.checkpoint_interval_ms)?,
            read_from: self.read_from,
            ignore_older: self.ignore_older_secs.map(Duration::from_secs),
            close_idle: Duration::from_secs(
                positive("close_idle_secs", self.close_idle_secs)? as u64
            ),
            rotate_wait: Duration::from_millis(self.rotate_wait_ms),
            fingerprint_bytes: positive("fingerprint_bytes", self.fingerprint_bytes)? as u64,
            partial_line_timeout: interval(
                "partial_line_timeout_ms",
                self.partial_line_timeout_ms,
            )?,
            multiline: self
                .multiline
                .as_ref()
                .map(|m| m.rules(doc, &format!("{prefix}.multiline")))
                .transpose()?
                .map(Arc::new),
        })
    }
}

impl MultilineConfig {
    fn rules(&self, doc: &Document<'_>, prefix: &str) -> Result<MultilineRules, ConfigError> {
        let preset = match &self.preset {
            Some(name) => Some(MultilineRules::preset(name).ok_or_else(|| {
                doc.error_at(
                    &format!("{prefix}.preset"),
                    format!("unknown preset `{name}`, expected one of: java, python, go"),
                )
            })?),
            None => None,
        };
        let pick = |key: &str, own: &Option<String>, from_preset: Option<String>| {
            own.clone().or(from_preset).ok_or_else(|| {
                doc.error_at(
                    &format!("{prefix}.{key}"),
                    "required unless `preset` is set",
                )
            })
        };
        let start = pick(
            "start_pattern",
            &self.start_pattern,
            preset.as_ref().map(|p| p.0.clone()),
        )?;
        let condition = pick(
            "condition_pattern",
            &self.condition_pattern,
            preset.as_ref().map(|p| p.1.clone()),
        )?;
        let mode = match (self.mode, preset.as_ref().map(|p| p.2)) {
            (Some(mode), _) => mode.into(),
            (None, Some(mode)) => mode,
            (None, None) => {
                return Err(
                    doc.error_at(&format!("{prefix}.mode"), "required unless `preset` is set")
                );
            }
        };
        let regex = |key: &str, pattern: &str| {
            regex::bytes::Regex::new(pattern).map_err(|e| {
                doc.error_at(&format!("{prefix}.{key}"), format!("invalid regex: {e}"))
            })
        };
        let positive = |key: &str, value: u64| match usize::try_from(value) {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(doc.error_at(&format!("{prefix}.{key}"), "must be a positive number")),
        };
        Ok(MultilineRules {
            start: regex("start_pattern", &start)?,
            condition: regex("condition_pattern", &condition)?,
            mode,
            timeout: Duration::from_millis(positive("timeout_ms", self.timeout_ms)? as u64),
            max_lines: positive("max_lines", self.max_lines)?,
            max_bytes: positive("max_bytes", self.max_bytes)?,
        })
    }
}

impl From<MultilineMode> for Mode {
    fn from(mode: MultilineMode) -> Self {
        match mode {
            MultilineMode::ContinueThrough => Self::ContinueThrough,
            MultilineMode::ContinuePast => Self::ContinuePast,
            MultilineMode::HaltBefore => Self::HaltBefore,
            MultilineMode::HaltWith => Self::HaltWith,
        }
    }
}
