//! `[spool]`: where records wait on disk while Kafka cannot take them, how much disk they may
//! use, and how often they are made durable. The spool itself is `crate::spool`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::document::Document;

/// Keys of `[spool]`, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Divert records to `data_dir/spool` when Kafka cannot take them. Off: sources wait for
    /// Kafka instead (backpressure only), and records that exceed `kafka.message_timeout_ms` fall
    /// under `kafka.retry_max_elapsed_secs`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Most bytes of segment files on disk.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// What happens when the spool is full: `block` stops the sources until replay frees room;
    /// `drop_newest` drops the records that do not fit, counted.
    #[serde(default)]
    pub when_full: WhenFull,
    /// When spooled records are made durable (fsync): after every `batch` written, or every
    /// `fsync_interval_ms` (`interval`). A source's checkpoint passes a record only once it is.
    #[serde(default)]
    pub fsync: Fsync,
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// A new segment file is started once the current one holds this many bytes; a segment is
    /// deleted when all its records were delivered.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: default_max_bytes(),
            when_full: WhenFull::default(),
            fsync: Fsync::default(),
            fsync_interval_ms: default_fsync_interval_ms(),
            segment_max_bytes: default_segment_max_bytes(),
        }
    }
}

/// What a full spool does with more records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking records (sources pause) until replay frees room: nothing is lost.
    #[default]
    Block,
    /// Drop the records that do not fit, and count them.
    DropNewest,
}

/// When spooled records are fsynced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every batch written.
    #[default]
    Batch,
    /// Every `fsync_interval_ms`.
    Interval,
}

const fn default_true() -> bool {
    true
}
const fn default_max_bytes() -> u64 {
    1024 * 1024 * 1024
}
const fn default_fsync_interval_ms() -> u64 {
    1000
}
const fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}

/// The checked spool settings.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub store: crate::spool::StoreSettings,
    pub when_full: WhenFull,
    /// `None`: fsync after every batch.
    pub fsync_interval: Option<Duration>,
}

impl SpoolConfig {
    /// `None` when the spool is off.
    pub fn settings(
        &self,
        doc: &Document<'_>,
        data_dir: &Path,
    ) -> Result<Option<SpoolSettings>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        if self.max_bytes < 1024 * 1024 {
            return Err(doc.error_at("spool.max_bytes", "must be at least 1048576 (1 MiB)"));
        }
        if !(64 * 1024..=self.max_bytes).contains(&self.segment_max_bytes) {
            return Err(doc.error_at(
                "spool.segment_max_bytes",
                "must be at least 65536 and at most max_bytes",
            ));
        }
        let fsync_interval = match self.fsync {
            Fsync::Batch => None,
            Fsync::Interval if self.fsync_interval_ms == 0 => {
                return Err(doc.error_at("spool.fsync_interval_ms", "must be positive"));
            }
            Fsync::Interval => Some(Duration::from_millis(self.fsync_interval_ms)),
        };
        Ok(Some(SpoolSettings {
            store: crate::spool::StoreSettings {
                dir: data_dir.join("spool"),
                max_bytes: self.max_bytes,
                segment_max_bytes: self.segment_max_bytes,
            },
            when_full: self.when_full,
            fsync_interval,
        }))
    }
}
