//! Every metric name, its help text, and the handles call sites use; no other module names a
//! metric. Names follow `logship_<subsystem>_<noun>_<unit>[_total]`. Labels are bounded: source
//! ids and topics come from the config, reasons from fixed enums, never file paths.
//!
//! Counters that can count a loss are paired with their log line in one method here, so the two
//! cannot drift; those log lines are rate-limited with governor.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SOURCE_EVENTS_READ: &str = "logship_source_events_read_total";
pub const SOURCE_BYTES_READ: &str = "logship_source_bytes_read_total";
pub const SOURCE_LINES_TRUNCATED: &str = "logship_source_lines_truncated_total";
pub const SOURCE_INVALID_UTF8_LINES: &str = "logship_source_invalid_utf8_lines_total";
pub const SOURCE_READ_ERRORS: &str = "logship_source_read_errors_total";
pub const SOURCE_FILES_WATCHED: &str = "logship_source_files_watched";
pub const SOURCE_OFFSET_RESETS: &str = "logship_source_offset_resets_total";
pub const SOURCE_FILES_OPEN: &str = "logship_source_files_open";
pub const SOURCE_FILES_ADDED: &str = "logship_source_files_added_total";
pub const SOURCE_FILES_ROTATED: &str = "logship_source_files_rotated_total";
pub const SOURCE_FILES_TRUNCATED: &str = "logship_source_files_truncated_total";
pub const SOURCE_FILES_DELETED: &str = "logship_source_files_deleted_total";
pub const SOURCE_FILES_VANISHED: &str = "logship_source_files_vanished_total";
pub const SOURCE_UNREAD_BYTES: &str = "logship_source_unread_bytes_total";
pub const JOURNALD_RESTARTS: &str = "logship_journald_restarts_total";
pub const JOURNALD_ENTRIES_DROPPED: &str = "logship_journald_entries_dropped_total";
pub const JOURNALD_BINARY_MESSAGES: &str = "logship_journald_binary_messages_total";
pub const JOURNALD_READER_UP: &str = "logship_journald_reader_up";
pub const HTTP_REQUESTS: &str = "logship_http_requests_total";
pub const CHECKPOINT_WRITES: &str = "logship_checkpoint_writes_total";
pub const CHECKPOINT_WRITE_ERRORS: &str = "logship_checkpoint_write_errors_total";
pub const KAFKA_EVENTS_DELIVERED: &str = "logship_kafka_events_delivered_total";
pub const KAFKA_LAST_DELIVERY: &str = "logship_kafka_last_delivery_timestamp_seconds";
pub const KAFKA_EVENTS_FAILED: &str = "logship_kafka_events_failed_total";
pub const KAFKA_EVENTS_IN_FLIGHT: &str = "logship_kafka_events_in_flight";
pub const KAFKA_QUEUE_FULL_WAITS: &str = "logship_kafka_queue_full_waits_total";
pub const KAFKA_EVENTS_OVERSIZE: &str = "logship_kafka_events_oversize_total";
pub const KAFKA_DELIVERY_LATENCY: &str = "logship_kafka_delivery_latency_seconds";
pub const KAFKA_IN_FLIGHT_BYTES: &str = "logship_kafka_in_flight_bytes";
pub const KAFKA_EVENTS_GIVEN_UP: &str = "logship_kafka_events_given_up_total";
pub const SPOOL_BYTES: &str = "logship_spool_bytes";
pub const SPOOL_SEGMENTS: &str = "logship_spool_segments";
pub const SPOOL_RECORDS: &str = "logship_spool_records";
pub const SPOOL_RECORDS_WRITTEN: &str = "logship_spool_records_written_total";
pub const SPOOL_RECORDS_REPLAYED: &str = "logship_spool_records_replayed_total";
pub const SPOOL_RECORDS_DROPPED: &str = "logship_spool_records_dropped_total";
pub const SPOOL_CORRUPT_FRAMES: &str = "logship_spool_corrupt_frames_total";
pub const SPOOL_SEGMENTS_MOVED_ASIDE: &str = "logship_spool_segments_moved_aside_total";
pub const SPOOL_REPLAY_RETRIES: &str = "logship_spool_replay_retries_total";
pub const SPOOL_WRITE_ERRORS: &str = "logship_spool_write_errors_total";
pub const SPOOL_SKIPPED_BYTES: &str = "logship_spool_skipped_bytes_total";
pub const PIPELINE_EVENTS_DROPPED: &str = "logship_pipeline_events_dropped_total";
pub const PIPELINE_STEP_ERRORS: &str = "logship_pipeline_step_errors_total";
pub const PIPELINE_DEAD_LETTERED: &str = "logship_pipeline_events_dead_lettered_total";
pub const PIPELINE_METRIC_SERIES_OVERFLOW: &str = "logship_pipeline_metric_series_overflow_total";
pub const PIPELINE_CONTAINER_LINES_TRUNCATED: &str =
    "logship_pipeline_container_lines_truncated_total";
pub const MEMORY_EVENTS_BUDGET: &str = "logship_memory_events_budget_bytes";
pub const MEMORY_CHARGED: &str = "logship_memory_events_bytes";
pub const MEMORY_WAITS: &str = "logship_memory_waits_total";
pub const CONFIG_RELOADS: &str = "logship_config_reloads_total";
pub const CONFIG_LAST_RELOAD_SUCCESS: &str = "logship_config_last_reload_success";
pub const CONFIG_LAST_RELOAD_TIMESTAMP: &str = "logship_config_last_reload_timestamp_seconds";

/// Installs the Prometheus recorder for this process and describes every metric.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(KAFKA_DELIVERY_LATENCY.to_owned()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ],
        )?
        .install_recorder()?;
    describe_gauge!(
        MEMORY_EVENTS_BUDGET,
        "Bytes of events that may wait between the sources and librdkafka: memory_limit_bytes less librdkafka's queue and the read buffers."
    );
    describe_gauge!(
        MEMORY_CHARGED,
        "Bytes of events waiting between the sources and librdkafka (lines plus a fixed cost per event)."
    );
    describe_counter!(
        MEMORY_WAITS,
        "Times a source paused because the memory budget was spent."
    );
    describe_histogram!(
        KAFKA_DELIVERY_LATENCY,
        "Seconds from the producer taking a record (waits for room in librdkafka's queue included) to its acknowledgement (or rejection). One sample per batch the producer took together (the latency of its first acknowledged record): _count counts batches; logship_kafka_events_delivered_total counts records."
    );
    describe_gauge!(
        KAFKA_IN_FLIGHT_BYTES,
        "Bytes of record values handed to librdkafka and not yet acknowledged."
    );
    describe_counter!(
        KAFKA_EVENTS_OVERSIZE,
        "Events larger than max_message_bytes, by action: truncated, dead_lettered, dropped (also when cutting the line could not make the record fit)."
    );
    describe_counter!(
        KAFKA_EVENTS_GIVEN_UP,
        "Records Kafka did not take within retry_max_elapsed_secs, by action: dropped, or dead_lettered (one attempt to dead_letter_topic)."
    );
    describe_gauge!(SPOOL_BYTES, "Bytes of spool segment files on disk.");
    describe_gauge!(SPOOL_SEGMENTS, "Spool segment files on disk.");
    describe_gauge!(
        SPOOL_RECORDS,
        "Records in the spool not yet delivered to Kafka."
    );
    describe_counter!(
        SPOOL_RECORDS_WRITTEN,
        "Records written to the spool because Kafka could not take them."
    );
    describe_counter!(
        SPOOL_RECORDS_REPLAYED,
        "Spooled records Kafka acknowledged on replay."
    );
    describe_counter!(
        SPOOL_RECORDS_DROPPED,
        "Records the spool did not take, by reason: full (a full spool with when_full = \"drop_newest\"), too_large (no spool frame can hold the record); not delivered."
    );
    describe_counter!(
        SPOOL_CORRUPT_FRAMES,
        "Damaged stretches of spool segments (a frame, or several whose headers cannot be found), counted once each; their records are lost."
    );
    describe_counter!(
        SPOOL_SEGMENTS_MOVED_ASIDE,
        "Spool segment files lost: not regular files (moved to spool/damaged/) or vanished; their records are not replayed."
    );
    describe_counter!(
        SPOOL_SKIPPED_BYTES,
        "Bytes of spool segments skipped, by reason: torn (a write a crash interrupted, cut off at start; never acknowledged, so not a loss), corrupt (damaged frames), unreadable (the rest of a segment that kept failing to read or was cut short)."
    );
    describe_counter!(
        SPOOL_REPLAY_RETRIES,
        "Replay attempts that failed and were retried after a backoff."
    );
    describe_counter!(
        SPOOL_WRITE_ERRORS,
        "Failed writes to the spool (for example a full disk); the records wait and are written again."
    );
    describe_counter!(
        PIPELINE_EVENTS_DROPPED,
        "Events a pipeline dropped on purpose, by pipeline and reason (drop, sampled, throttled, on_error)."
    );
    describe_counter!(
        PIPELINE_STEP_ERRORS,
        "Events a pipeline step could not process (a parser met input it cannot parse, a template named a missing field), by pipeline, step and kind; on_error says what became of them."
    );
    describe_counter!(
        PIPELINE_DEAD_LETTERED,
        "Events a pipeline sent to the dead-letter topic."
    );
    describe_counter!(
        PIPELINE_CONTAINER_LINES_TRUNCATED,
        "Container lines whose joined parts passed parse_container's max_bytes; the rest was cut off."
    );
    describe_counter!(
        PIPELINE_METRIC_SERIES_OVERFLOW,
        "Events a `metric` step did not count because the metric had max_series label sets already."
    );
    describe_counter!(SOURCE_EVENTS_READ, "Events read, per source.");
    describe_counter!(SOURCE_BYTES_READ, "Bytes read, per source.");
    describe_counter!(
        SOURCE_LINES_TRUNCATED,
        "Lines longer than max_line_bytes; the excess bytes were dropped."
    );
    describe_counter!(
        SOURCE_INVALID_UTF8_LINES,
        "Lines with invalid UTF-8; invalid bytes were replaced with U+FFFD."
    );
    describe_counter!(SOURCE_READ_ERRORS, "Errors opening or reading a file.");
    describe_counter!(
        JOURNALD_RESTARTS,
        "Times journalctl exited (or could not start) and was started again, per source."
    );
    describe_counter!(
        JOURNALD_ENTRIES_DROPPED,
        "Journal entries not shipped, by reason: too_large (over max_entry_bytes), invalid (not a JSON object)."
    );
    describe_counter!(
        JOURNALD_BINARY_MESSAGES,
        "Journal entries whose MESSAGE was not UTF-8 text, shipped base64-encoded."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "Requests an HTTP source answered, by status: 200 delivered (or accepted), 400 malformed, 401 unauthorized, 413 too large, 429 rate limit or backpressure, 503 not delivered in time."
    );
    describe_gauge!(
        JOURNALD_READER_UP,
        "1 while the source's journalctl runs, 0 while it is down and waits to be started again."
    );
    describe_gauge!(SOURCE_FILES_WATCHED, "Files the source currently tracks.");
    describe_counter!(
        SOURCE_OFFSET_RESETS,
        "Checkpoints that no longer fit their file (shorter, other fingerprint, other bytes before the offset: inode reuse); the file is read from 0. Label why."
    );
    describe_gauge!(SOURCE_FILES_OPEN, "File descriptors the source holds open.");
    describe_counter!(SOURCE_FILES_ADDED, "Files the source started reading.");
    describe_counter!(
        SOURCE_FILES_ROTATED,
        "Files renamed away from their path (rotation)."
    );
    describe_counter!(
        SOURCE_FILES_TRUNCATED,
        "Files truncated while read (copytruncate), read again from 0."
    );
    describe_counter!(
        SOURCE_FILES_DELETED,
        "Files deleted while tracked; read to the end through the open descriptor."
    );
    describe_counter!(
        SOURCE_FILES_VANISHED,
        "Checkpointed or closed files that could not be found again; their unread bytes are lost."
    );
    describe_counter!(
        SOURCE_UNREAD_BYTES,
        "Bytes never read because their file vanished, where known."
    );
    describe_counter!(CHECKPOINT_WRITES, "Checkpoint files written, per source.");
    describe_counter!(
        CHECKPOINT_WRITE_ERRORS,
        "Checkpoint writes that failed, per source."
    );
    describe_counter!(
        KAFKA_EVENTS_DELIVERED,
        "Records acknowledged by Kafka, per topic."
    );
    describe_gauge!(
        KAFKA_LAST_DELIVERY,
        "Unix time (seconds, millisecond precision) of the last acknowledgement from Kafka, per topic."
    );
    describe_counter!(
        KAFKA_EVENTS_FAILED,
        "Records Kafka rejected for good, by reason and action: dead_lettered (delivered to dead_letter_topic) or dropped."
    );
    describe_gauge!(
        KAFKA_EVENTS_IN_FLIGHT,
        "Records handed to librdkafka, not yet acknowledged."
    );
    describe_counter!(
        KAFKA_QUEUE_FULL_WAITS,
        "Times the producer queue was full and the producer waited for delivery reports."
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads (SIGHUP), by result: applied, rejected (invalid or not applicable; the running configuration stays), failed (partly applied: a source could not start again)."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESS,
        "1 when the last reload (or the start) applied its configuration, 0 when it did not."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_TIMESTAMP,
        "Unix time of the last reload attempt (or of the start)."
    );
    Ok(handle)
}

/// Drains histogram samples every 5 s, so a process nobody scrapes does not grow by 8 bytes
/// per recorded sample (the recorder keeps each until it is drained: by a scrape, or here).
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// A log line that fires at most a few times a minute; the counters beside it count every case.
#[derive(Debug, Clone)]
pub struct LogLimiter(Arc<DefaultDirectRateLimiter>);

impl LogLimiter {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::direct(Quota::per_minute(n))))
    }

    /// True when this occurrence may be logged.
    pub fn allow(&self) -> bool {
        self.0.check().is_ok()
    }
}

/// How a configuration reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied = 0,
    /// Invalid, or could not be applied: the running configuration stays as it was.
    Rejected = 1,
    /// Applied in part: a source could not start with its new settings and is not running.
    Failed = 2,
}

impl ReloadResult {
    pub const ALL: [Self; 3] = [Self::Applied, Self::Rejected, Self::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// Handles for configuration reloads; each result's counter, gauges and log line come from
/// `reloaded`, so they cannot drift.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    reloads: [Counter; 3],
    last_success: Gauge,
    last_timestamp: Gauge,
}

impl ReloadMetrics {
    /// The handles (in `ReloadResult::ALL` order, which is discriminant order), with the start
    /// counted as a successful load (as Prometheus does), so an
    /// alert on `logship_config_last_reload_success == 0` means a reload did not apply.
    pub fn new() -> Self {
        let metrics = Self {
            reloads: ReloadResult::ALL
                .map(|result| counter!(CONFIG_RELOADS, "result" => result.label())),
            last_success: gauge!(CONFIG_LAST_RELOAD_SUCCESS),
            last_timestamp: gauge!(CONFIG_LAST_RELOAD_TIMESTAMP),
        };
        metrics.stamp(true);
        metrics
    }

    /// A reload ended with `result`; `what` says what changed or why it did not.
    pub fn reloaded(&self, result: ReloadResult, what: &dyn std::fmt::Display) {
        self.reloads[result as usize].increment(1);
        self.stamp(result == ReloadResult::Applied);
        match result {
            ReloadResult::Applied => tracing::info!("configuration reloaded: {what}"),
            ReloadResult::Rejected => {
                tracing::error!(
                    "configuration reload rejected, the running configuration stays: {what}"
                );
            }
            ReloadResult::Failed => tracing::error!("configuration reload applied in part: {what}"),
        }
    }

    fn stamp(&self, success: bool) {
        self.last_success.set(if success { 1.0 } else { 0.0 });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_timestamp.set(now);
    }
}

impl Default for ReloadMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles for one pipeline copy (one per source that uses it; the series are shared). Counters
/// are looked up once per label set, not per event: a sampling or filtering pipeline drops most
/// of its events.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pipeline: String,
    pub dead_lettered: Counter,
    dropped: Vec<(&'static str, Counter)>,
    step_errors: HashMap<(Arc<str>, &'static str), Counter>,
    log: LogLimiter,
}

impl PipelineMetrics {
    pub fn new(pipeline: &str) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
            dead_lettered: counter!(PIPELINE_DEAD_LETTERED, "pipeline" => pipeline.to_owned()),
            dropped: Vec::new(),
            step_errors: HashMap::new(),
            log: LogLimiter::per_minute(12),
        }
    }

    /// An event dropped on purpose; `reason` is one of a fixed set.
    pub fn dropped(&mut self, reason: &'static str) {
        if let Some((_, counter)) = self.dropped.iter().find(|(r, _)| *r == reason) {
            counter.increment(1);
            return;
        }
        let counter = counter!(PIPELINE_EVENTS_DROPPED, "pipeline" => self.pipeline.clone(), "reason" => reason);
        counter.increment(1);
        self.dropped.push((reason, counter));
    }

    /// A step failed on an event; the log line says why (rate-limited).
    pub fn step_failed(&mut self, step: &Arc<str>, kind: &'static str, reason: &str) {
        let pipeline = &self.pipeline;
        self.step_errors
            .entry((Arc::clone(step), kind))
            .or_insert_with(|| {
                counter!(
                    PIPELINE_STEP_ERRORS,
                    "pipeline" => pipeline.clone(),
                    "step" => step.to_string(),
                    "kind" => kind
                )
            })
            .increment(1);
        if self.log.allow() {
            tracing::warn!(pipeline = %self.pipeline, step = %step, kind, reason, "pipeline step failed");
        }
    }
}

/// A joined container line was cut at `max_bytes`.
pub fn container_line_truncated() {
    counter!(PIPELINE_CONTAINER_LINES_TRUNCATED).increment(1);
}

/// The overflow counter of a user's `metric` step.
pub fn metric_series_overflow(metric: &str) -> Counter {
    counter!(PIPELINE_METRIC_SERIES_OVERFLOW, "metric" => metric.to_owned())
}

/// Handles for one file source.
#[derive(Debug, Clone)]
pub struct FileSourceMetrics {
    pub events_read: Counter,
    pub bytes_read: Counter,
    pub files_watched: Gauge,
    pub files_open: Gauge,
    pub files_added: Counter,
    pub files_rotated: Counter,
    pub files_deleted: Counter,
    pub checkpoint_writes: Counter,
    files_truncated: Counter,
    files_vanished: Counter,
    unread_bytes: Counter,
    source: String,
    lines_truncated: Counter,
    invalid_utf8: Counter,
    read_errors: Counter,
    checkpoint_errors: Counter,
    log: LogLimiter,
}

impl FileSourceMetrics {
    pub fn new(source: &str) -> Self {
        Self {
            events_read: counter!(SOURCE_EVENTS_READ, "source" => source.to_owned()),
            bytes_read: counter!(SOURCE_BYTES_READ, "source" => source.to_owned()),
            files_watched: gauge!(SOURCE_FILES_WATCHED, "source" => source.to_owned()),
            files_open: gauge!(SOURCE_FILES_OPEN, "source" => source.to_owned()),
            files_added: counter!(SOURCE_FILES_ADDED, "source" => source.to_owned()),
            files_rotated: counter!(SOURCE_FILES_ROTATED, "source" => source.to_owned()),
            files_deleted: counter!(SOURCE_FILES_DELETED, "source" => source.to_owned()),
            files_truncated: counter!(SOURCE_FILES_TRUNCATED, "source" => source.to_owned()),
            files_vanished: counter!(SOURCE_FILES_VANISHED, "source" => source.to_owned()),
            unread_bytes: counter!(SOURCE_UNREAD_BYTES, "source" => source.to_owned()),
            source: source.to_owned(),
            checkpoint_writes: counter!(CHECKPOINT_WRITES, "source" => source.to_owned()),
            lines_truncated: counter!(SOURCE_LINES_TRUNCATED, "source" => source.to_owned()),
            invalid_utf8: counter!(SOURCE_INVALID_UTF8_LINES, "source" => source.to_owned()),
            read_errors: counter!(SOURCE_READ_ERRORS, "source" => source.to_owned()),
            checkpoint_errors: counter!(CHECKPOINT_WRITE_ERRORS, "source" => source.to_owned()),
            log: LogLimiter::per_minute(12),
        }
    }

    pub fn line_truncated(&self, path: &str, offset: u64, length: u64, kept: usize) {
        self.lines_truncated.increment(1);
        if self.log.allow() {
            tracing::warn!(
                path,
                offset,
                length,
                kept,
                "line longer than max_line_bytes truncated"
            );
        }
    }

    pub fn invalid_utf8(&self, path: &str, offset: u64) {
        self.invalid_utf8.increment(1);
        if self.log.allow() {
            tracing::warn!(
                path,
                offset,
                "line is not valid UTF-8; invalid bytes replaced"
            );
        }
    }

    pub fn read_error(&self, path: &str, error: &std::io::Error) {
        self.read_errors.increment(1);
        if self.log.allow() {
            tracing::warn!(path, %error, "cannot read file");
        }
    }

    /// A checkpoint that no longer fits its file; `why` is a fixed reason.
    pub fn offset_reset(&self, path: &str, offset: u64, size: u64, why: &'static str) {
        counter!(SOURCE_OFFSET_RESETS, "source" => self.source.clone(), "why" => why).increment(1);
        tracing::warn!(
            path,
            offset,
            size,
            why,
            "checkpoint does not fit the file any more; reading it from the start"
        );
    }

    pub fn file_truncated(&self, path: &str) {
        self.files_truncated.increment(1);
        if self.log.allow() {
            tracing::info!(path, "file truncated; reading it again from the start");
        }
    }

    /// A file that could not be found again; `unread` bytes of it were never read, when known.
    pub fn file_vanished(&self, path: &str, unread: Option<u64>) {
        self.files_vanished.increment(1);
        self.unread_bytes.increment(unread.unwrap_or(0));
        if self.log.allow() {
            tracing::warn!(path, unread, "file vanished before it was read to its end");
        }
    }

    pub fn checkpoint_error(&self, path: &std::path::Path, error: &std::io::Error) {
        self.checkpoint_errors.increment(1);
        if self.log.allow() {
            tracing::error!(path = %path.display(), %error, "cannot write checkpoint");
        }
    }
}

/// Handles for one journald source.
#[derive(Debug, Clone)]
pub struct JournaldMetrics {
    pub events_read: Counter,
    pub bytes_read: Counter,
    pub restarts: Counter,
    pub reader_up: Gauge,
    pub checkpoint_writes: Counter,
    checkpoint_errors: Counter,
    binary_messages: Counter,
    source: String,
    log: LogLimiter,
}

impl JournaldMetrics {
    pub fn new(source: &str) -> Self {
        let label = || source.to_owned();
        Self {
            events_read: counter!(SOURCE_EVENTS_READ, "source" => label()),
            bytes_read: counter!(SOURCE_BYTES_READ, "source" => label()),
            restarts: counter!(JOURNALD_RESTARTS, "source" => label()),
            reader_up: gauge!(JOURNALD_READER_UP, "source" => label()),
            checkpoint_writes: counter!(CHECKPOINT_WRITES, "source" => label()),
            checkpoint_errors: counter!(CHECKPOINT_WRITE_ERRORS, "source" => label()),
            binary_messages: counter!(JOURNALD_BINARY_MESSAGES, "source" => label()),
            source: label(),
            log: LogLimiter::per_minute(12),
        }
    }

    /// An entry not shipped; `reason` is `too_large` or `invalid`.
    pub fn entry_dropped(&self, reason: &'static str, bytes: u64, detail: &dyn std::fmt::Display) {
        counter!(JOURNALD_ENTRIES_DROPPED, "source" => self.source.clone(), "reason" => reason)
            .increment(1);
        if self.log.allow() {
            tracing::warn!(source = %self.source, reason, bytes, %detail, "journal entry dropped");
        }
    }

    pub fn binary_message(&self, cursor: &str) {
        self.binary_messages.increment(1);
        if self.log.allow() {
            tracing::info!(source = %self.source, cursor, "journal MESSAGE is not UTF-8; shipped as base64");
        }
    }

    pub fn checkpoint_error(&self, path: &std::path::Path, error: &std::io::Error) {
        self.checkpoint_errors.increment(1);
        if self.log.allow() {
            tracing::error!(path = %path.display(), %error, "cannot write checkpoint");
        }
    }
}

/// Handles for one HTTP source.
#[derive(Debug, Clone)]
pub struct HttpSourceMetrics {
    pub events_read: Counter,
    pub bytes_read: Counter,
    source: String,
}

impl HttpSourceMetrics {
    pub fn new(source: &str) -> Self {
        Self {
            events_read: counter!(SOURCE_EVENTS_READ, "source" => source.to_owned()),
            bytes_read: counter!(SOURCE_BYTES_READ, "source" => source.to_owned()),
            source: source.to_owned(),
        }
    }

    /// One reply; `status` is one of the few the source sends.
    pub fn replied(&self, status: u16) {
        counter!(HTTP_REQUESTS, "source" => self.source.clone(), "status" => status.to_string())
            .increment(1);
    }
}

/// Handles for the disk spool.
#[derive(Debug, Clone)]
pub struct SpoolMetrics {
    pub bytes: Gauge,
    pub segments: Gauge,
    pub records: Gauge,
    pub written: Counter,
    pub replayed: Counter,
    pub replay_retries: Counter,
    corrupt_frames: Counter,
    moved_aside: Counter,
    dropped_full: Counter,
    dropped_too_large: Counter,
    skipped_torn: Counter,
    skipped_corrupt: Counter,
    skipped_unreadable: Counter,
    write_errors: Counter,
    log: LogLimiter,
}

impl Default for SpoolMetrics {
    fn default() -> Self {
        Self {
            bytes: gauge!(SPOOL_BYTES),
            segments: gauge!(SPOOL_SEGMENTS),
            records: gauge!(SPOOL_RECORDS),
            written: counter!(SPOOL_RECORDS_WRITTEN),
            replayed: counter!(SPOOL_RECORDS_REPLAYED),
            replay_retries: counter!(SPOOL_REPLAY_RETRIES),
            corrupt_frames: counter!(SPOOL_CORRUPT_FRAMES),
            moved_aside: counter!(SPOOL_SEGMENTS_MOVED_ASIDE),
            dropped_full: counter!(SPOOL_RECORDS_DROPPED, "reason" => "full"),
            dropped_too_large: counter!(SPOOL_RECORDS_DROPPED, "reason" => "too_large"),
            skipped_torn: counter!(SPOOL_SKIPPED_BYTES, "reason" => "torn"),
            skipped_corrupt: counter!(SPOOL_SKIPPED_BYTES, "reason" => "corrupt"),
            skipped_unreadable: counter!(SPOOL_SKIPPED_BYTES, "reason" => "unreadable"),
            write_errors: counter!(SPOOL_WRITE_ERRORS),
            log: LogLimiter::per_minute(12),
        }
    }
}

impl SpoolMetrics {
    /// Sets the damage counters to the spool's own totals (it counts each stretch once).
    pub fn losses(&self, stats: &crate::spool::SpoolStats) {
        self.corrupt_frames.absolute(stats.corrupt_frames_total);
        self.moved_aside.absolute(stats.lost_segments_total);
        self.skipped_torn.absolute(stats.skipped.torn);
        self.skipped_corrupt.absolute(stats.skipped.corrupt);
        self.skipped_unreadable.absolute(stats.skipped.unreadable);
    }

    /// Records a full spool with `drop_newest` did not take.
    pub fn dropped(&self, records: u64, max_bytes: u64) {
        self.dropped_full.increment(records);
        if self.log.allow() {
            tracing::error!(
                records,
                max_bytes,
                "spool full: records dropped (when_full = \"drop_newest\")"
            );
        }
    }

    /// A record no spool frame can hold (a field or the record too large): dropped.
    pub fn too_large(&self, topic: &str, error: &dyn std::fmt::Display) {
        self.dropped_too_large.increment(1);
        if self.log.allow() {
            tracing::error!(topic, %error, "record too large for the spool: dropped");
        }
    }

    /// A spool write or fsync failed; the records wait and are written again.
    pub fn write_failed(&self, error: &dyn std::fmt::Display) {
        self.write_errors.increment(1);
        if self.log.allow() {
            tracing::error!(%error, "cannot write to the spool; sources wait until it can be written");
        }
    }
}

/// Why Kafka rejected a record for good: the `reason` label of `KAFKA_EVENTS_FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    TooLarge,
    NotAuthorized,
    InvalidRecord,
    InvalidTopic,
    /// A topic a pipeline chose (`route`) does not exist.
    UnknownTopic,
}

impl FailureReason {
    pub const ALL: [Self; 5] = [
        Self::TooLarge,
        Self::NotAuthorized,
        Self::InvalidRecord,
        Self::InvalidTopic,
        Self::UnknownTopic,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotAuthorized => "not_authorized",
            Self::InvalidRecord => "invalid_record",
            Self::InvalidTopic => "invalid_topic",
            Self::UnknownTopic => "unknown_topic",
        }
    }
}

/// Handles for the Kafka producer of one topic.
#[derive(Debug, Clone)]
pub struct ProducerMetrics {
    delivered: Counter,
    last_delivery: Gauge,
    pub in_flight: Gauge,
    pub in_flight_bytes: Gauge,
    pub delivery_latency: Histogram,
    pub queue_full_waits: Counter,
    topic: String,
    log: LogLimiter,
}

impl ProducerMetrics {
    pub fn new(topic: &str) -> Self {
        // Every reason exists from the start at 0, so alerts on `increase()` see the first failure.
        for reason in FailureReason::ALL {
            for action in ["dropped", "dead_lettered"] {
                counter!(KAFKA_EVENTS_FAILED, "topic" => topic.to_owned(), "reason" => reason.label(), "action" => action)
                    .absolute(0);
            }
        }
        Self {
            delivered: counter!(KAFKA_EVENTS_DELIVERED, "topic" => topic.to_owned()),
            last_delivery: gauge!(KAFKA_LAST_DELIVERY, "topic" => topic.to_owned()),
            in_flight: gauge!(KAFKA_EVENTS_IN_FLIGHT),
            in_flight_bytes: gauge!(KAFKA_IN_FLIGHT_BYTES),
            delivery_latency: histogram!(KAFKA_DELIVERY_LATENCY, "topic" => topic.to_owned()),
            queue_full_waits: counter!(KAFKA_QUEUE_FULL_WAITS, "topic" => topic.to_owned()),
            topic: topic.to_owned(),
            log: LogLimiter::per_minute(12),
        }
    }

    /// `records` acknowledged by Kafka just now.
    pub fn records_delivered(&self, records: u64) {
        self.delivered.increment(records);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        if let Ok(since_epoch) = now {
            self.last_delivery.set(since_epoch.as_secs_f64());
        }
    }

    /// A record Kafka rejected for good, and what became of it: `dropped`, or `dead_lettered`
    /// (delivered to `dead_letter_topic`).
    pub fn failed(
        &self,
        reason: FailureReason,
        action: &'static str,
        error: &dyn std::fmt::Display,
    ) {
        let reason = reason.label();
        counter!(KAFKA_EVENTS_FAILED, "topic" => self.topic.clone(), "reason" => reason, "action" => action)
            .increment(1);
        if self.log.allow() {
            tracing::error!(topic = %self.topic, reason, action, %error, "record rejected by Kafka");
        }
    }

    /// An event too large for one record; `action` is `truncated`, `dead_lettered` or `dropped`.
    pub fn oversize(&self, action: &'static str, size: usize, limit: usize) {
        counter!(KAFKA_EVENTS_OVERSIZE, "topic" => self.topic.clone(), "action" => action)
            .increment(1);
        if self.log.allow() {
            tracing::warn!(topic = %self.topic, action, size, limit, "event larger than max_message_bytes");
        }
    }

    /// Records given up after `retry_max_elapsed_secs`; `action` is `dropped` or `dead_lettered`.
    pub fn given_up(&self, action: &'static str, records: u64) {
        counter!(KAFKA_EVENTS_GIVEN_UP, "topic" => self.topic.clone(), "action" => action)
            .increment(records);
        if self.log.allow() {
            tracing::error!(topic = %self.topic, action, records, "records given up after retry_max_elapsed_secs");
        }
    }

    /// librdkafka refused to take a record for a transient reason; it is offered again.
    pub fn retrying(&self, error: &dyn std::fmt::Display) {
        if self.log.allow() {
            tracing::warn!(topic = %self.topic, %error, "producer refused the record; offering it again");
        }
    }
}
