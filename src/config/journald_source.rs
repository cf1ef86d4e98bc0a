//! `[sources.<id>]` with `type = "journald"`: the keys users write, and the checked settings the
//! journald source runs with.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::document::Document;

/// Keys of a journald source, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldSourceConfig {
    /// The journalctl binary.
    #[serde(default = "default_journalctl_path")]
    pub journalctl_path: PathBuf,
    /// Read the journal files in this directory instead of the system journal.
    #[serde(default)]
    pub journal_directory: Option<PathBuf>,
    /// Read these journal files (globs allowed) instead of the system journal.
    #[serde(default)]
    pub journal_files: Vec<String>,
    /// First start (no checkpoint): only entries written from now on.
    #[serde(default)]
    pub since_now: bool,
    /// First start (no checkpoint), unless `since_now`: from the start of the current boot;
    /// `false`: from the oldest entry in the journal.
    #[serde(default = "default_true")]
    pub current_boot_only: bool,
    /// Only entries of these systemd units (a name without a `.` gets `.service`). Empty: all.
    #[serde(default)]
    pub units: Vec<String>,
    /// Never entries of these units.
    #[serde(default)]
    pub exclude_units: Vec<String>,
    /// Only entries with one of these `SYSLOG_IDENTIFIER`s. Empty: all.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Only entries at this priority or more urgent: `emerg` … `debug`, or `0` … `7`.
    #[serde(default)]
    pub priority: Option<String>,
    /// journalctl matches, `FIELD=value`: entries must match every field named; several values
    /// of one field are alternatives.
    #[serde(default)]
    pub matches: Vec<String>,
    /// Longest journal entry taken, as journalctl prints it (JSON); longer ones are dropped,
    /// counted.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: u64,
    /// How often the delivered cursor is written to the checkpoint file.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// First wait before journalctl is started again after it exited; doubles up to
    /// `restart_backoff_max_ms`.
    #[serde(default = "default_restart_backoff_ms")]
    pub restart_backoff_ms: u64,
    #[serde(default = "default_restart_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// The `[pipelines.<name>]` its events go through; none: shipped as read.
    #[serde(default)]
    pub pipeline: Option<String>,
}

fn default_journalctl_path() -> PathBuf {
    PathBuf::from("journalctl")
}
const fn default_true() -> bool {
    true
}
const fn default_max_entry_bytes() -> u64 {
    1024 * 1024
}
const fn default_checkpoint_interval_ms() -> u64 {
    1000
}
const fn default_restart_backoff_ms() -> u64 {
    1000
}
const fn default_restart_backoff_max_ms() -> u64 {
    30_000
}

/// Syslog priorities, most urgent first (their index is the number).
pub const PRIORITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Where journalctl reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journal {
    System,
    Directory(PathBuf),
    Files(Vec<String>),
}

/// A journald source's checked settings.
#[derive(Debug, Clone)]
pub struct JournaldSourceSettings {
    pub journalctl_path: PathBuf,
    pub journal: Journal,
    pub since_now: bool,
    pub current_boot_only: bool,
    pub units: Vec<String>,
    pub exclude_units: Vec<String>,
    pub identifiers: Vec<String>,
    /// Most urgent is 0.
    pub max_priority: Option<u8>,
    pub matches: Vec<String>,
    pub max_entry_bytes: usize,
    pub checkpoint_interval: Duration,
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    pub pipeline: Option<String>,
}

impl JournaldSourceConfig {
    /// Checks every key; `prefix` is the source's key path, for example `sources.journal`.
    pub fn settings(
        &self,
        doc: &Document<'_>,
        prefix: &str,
    ) -> Result<JournaldSourceSettings, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        let journal = match (&self.journal_directory, self.journal_files.is_empty()) {
            (Some(_), false) => {
                return Err(doc.error_at(
                    &key("journal_files"),
                    "set journal_directory or journal_files, not both",
                ));
            }
            (Some(dir), true) => Journal::Directory(dir.clone()),
            (None, false) => Journal::Files(self.journal_files.clone()),
            (None, true) => Journal::System,
        };
        let max_priority = self
            .priority
            .as_deref()
            .map(|p| {
                parse_priority(p).ok_or_else(|| {
                    doc.error_at(
                        &key("priority"),
                        format!(
                            "`{p}` is not a priority: one of {} or 0 to 7",
                            PRIORITY_NAMES.join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        for (i, m) in self.matches.iter().enumerate() {
            check_match(m)
                .map_err(|reason| doc.error_at(&format!("{prefix}.matches[{i}]"), reason))?;
        }
        let positive = |k: &str, value: u64| -> Result<u64, ConfigError> {
            if value == 0 {
                return Err(doc.error_at(&key(k), "must be a positive number"));
            }
            Ok(value)
        };
        let max_entry_bytes = positive("max_entry_bytes", self.max_entry_bytes)?;
        if self.restart_backoff_max_ms < self.restart_backoff_ms {
            return Err(doc.error_at(
                &key("restart_backoff_max_ms"),
                "must be at least restart_backoff_ms",
            ));
        }
        Ok(JournaldSourceSettings {
            journalctl_path: self.journalctl_path.clone(),
            journal,
            since_now: self.since_now,
            current_boot_only: self.current_boot_only,
            units: self.units.iter().map(|u| unit_name(u)).collect(),
            exclude_units: self.exclude_units.iter().map(|u| unit_name(u)).collect(),
            identifiers: self.identifiers.clone(),
            max_priority,
            matches: self.matches.clone(),
            max_entry_bytes: usize::try_from(max_entry_bytes).unwrap_or(usize::MAX),
            checkpoint_interval: Duration::from_millis(positive(
                "checkpoint_interval_ms",
                self.checkpoint_interval_ms,
            )?),
            restart_backoff: Duration::from_millis(positive(
                "restart_backoff_ms",
                self.restart_backoff_ms,
            )?),
            restart_backoff_max: Duration::from_millis(self.restart_backoff_max_ms),
            pipeline: self.pipeline.clone(),
        })
    }
}

/// A priority name or number, as 0 (most urgent) to 7.
fn parse_priority(text: &str) -> Option<u8> {
    if let Ok(n) = text.parse::<u8>() {
        return (n < 8).then_some(n);
    }
    PRIORITY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .and_then(|i| u8::try_from(i).ok())
}

/// `FIELD=value`, with a field name journald accepts: upper-case letters, digits and `_`, not
/// starting with a digit.
fn check_match(text: &str) -> Result<(), String> {
    let Some((field, _)) = text.split_once('=') else {
        return Err(format!("`{text}` is not FIELD=value"));
    };
    let valid = !field.is_empty()
        && !field.starts_with(|c: char| c.is_ascii_digit())
        && field
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "`{field}` is not a journal field name (upper-case letters, digits and _)"
        ));
    }
    Ok(())
}

/// A unit name as journald records it: `nginx` means `nginx.service`.
fn unit_name(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_by_name_or_number() {
        assert_eq!(parse_priority("err"), Some(3));
        assert_eq!(parse_priority("WARNING"), Some(4));
        assert_eq!(parse_priority("7"), Some(7));
        assert_eq!(parse_priority("8"), None);
        assert_eq!(parse_priority("error"), None);
    }

    #[test]
    fn matches_need_a_journal_field_name() {
        assert!(check_match("_SYSTEMD_UNIT=a.service").is_ok());
        assert!(check_match("MESSAGE_ID=").is_ok());
        assert!(check_match("unit=a").is_err());
        assert!(check_match("NOEQUALS").is_err());
        assert!(check_match("=x").is_err());
    }

    #[test]
    fn bare_unit_names_are_services() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("cron.timer"), "cron.timer");
    }
}
