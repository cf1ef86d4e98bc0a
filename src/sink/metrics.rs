//! The sinks' metric names, help texts and handles: the one place besides `crate::metrics` (the
//! agent's) that names a metric. Names follow `logship_sink_<noun>[_unit][_total]`; labels are
//! topics and partitions from Kafka, statuses and reasons from fixed sets.

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics::LogLimiter;

pub const RECORDS_READ: &str = "logship_sink_records_read_total";
pub const RECORDS_WRITTEN: &str = "logship_sink_records_written_total";
pub const RECORDS_DEAD_LETTERED: &str = "logship_sink_records_dead_lettered_total";
pub const RECORDS_DROPPED: &str = "logship_sink_records_dropped_total";
pub const RECORDS_LEFT_TO_NEW_OWNER: &str = "logship_sink_records_left_to_new_owner_total";
pub const REQUESTS: &str = "logship_sink_requests_total";
pub const REQUEST_DURATION: &str = "logship_sink_request_duration_seconds";
pub const REQUEST_BYTES: &str = "logship_sink_request_bytes_total";
pub const RETRIES: &str = "logship_sink_retries_total";
pub const BATCH_SPLITS: &str = "logship_sink_batch_splits_total";
pub const BLOCKED: &str = "logship_sink_blocked";
pub const COMMITTED_OFFSET: &str = "logship_sink_committed_offset";
pub const COMMIT_ERRORS: &str = "logship_sink_commit_errors_total";
pub const CONSUMER_LAG: &str = "logship_sink_consumer_lag";
pub const CONSUMER_PAUSED: &str = "logship_sink_consumer_paused";
pub const REBALANCES: &str = "logship_sink_rebalances_total";

/// Installs the Prometheus recorder for a sink process and describes every sink metric.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION.to_owned()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ],
        )?
        .install_recorder()?;
    describe_counter!(RECORDS_READ, "Records read from Kafka.");
    describe_counter!(
        RECORDS_WRITTEN,
        "Records the destination acknowledged (a 409 on replay included)."
    );
    describe_counter!(
        RECORDS_DEAD_LETTERED,
        "Records the destination refused for good, delivered to the dead-letter topic, by status."
    );
    describe_counter!(
        RECORDS_DROPPED,
        "Records refused for good and dropped because no dead_letter_topic is set."
    );
    describe_counter!(
        RECORDS_LEFT_TO_NEW_OWNER,
        "Records not written because their partition was revoked first; the new owner writes them."
    );
    describe_counter!(REQUESTS, "Write requests, by HTTP status (or `error`).");
    describe_histogram!(REQUEST_DURATION, "Seconds per write request.");
    describe_counter!(REQUEST_BYTES, "Bytes of request bodies before compression.");
    describe_counter!(
        RETRIES,
        "Records or requests sent again, by reason: item (a per-item 429, 5xx, 401, 403 or missing index), status (a request-level 429 or 5xx), transport, garbled, dead_letter (Kafka refused the dead letter)."
    );
    describe_counter!(
        BATCH_SPLITS,
        "Requests split in two after the destination answered 413."
    );
    describe_gauge!(
        BLOCKED,
        "1 while writes are refused in a way only an operator can fix (401, 403)."
    );
    describe_gauge!(
        COMMITTED_OFFSET,
        "The last offset committed for the group, per partition."
    );
    describe_counter!(
        COMMIT_ERRORS,
        "Offset commits that failed (retried at the next interval)."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records between the committed offset and the partition's end, from librdkafka statistics."
    );
    describe_gauge!(
        CONSUMER_PAUSED,
        "1 while reading is paused because the writers are behind."
    );
    describe_counter!(
        REBALANCES,
        "Partition assignments and revocations, by kind."
    );
    Ok(handle)
}

/// Counters of one topic's records, held by each of its partitions' claims.
#[derive(Debug, Clone)]
pub struct TopicCounters {
    pub read: Counter,
    pub written: Counter,
}

impl Default for TopicCounters {
    /// Counters that count nowhere (unit tests).
    fn default() -> Self {
        Self {
            read: Counter::noop(),
            written: Counter::noop(),
        }
    }
}

/// Handles the sinks' stages use.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    pub requests_error: Counter,
    pub request_duration: Histogram,
    pub request_bytes: Counter,
    pub splits: Counter,
    pub paused: Gauge,
    pub commit_errors: Counter,
    log: LogLimiter,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SinkMetrics {
    pub fn new() -> Self {
        Self {
            requests_error: counter!(REQUESTS, "status" => "error"),
            request_duration: histogram!(REQUEST_DURATION),
            request_bytes: counter!(REQUEST_BYTES),
            splits: counter!(BATCH_SPLITS),
            paused: gauge!(CONSUMER_PAUSED),
            commit_errors: counter!(COMMIT_ERRORS),
            log: LogLimiter::per_minute(12),
        }
    }

    /// The per-topic counters of a partition's records, looked up once per assignment rather
    /// than once per record.
    pub fn topic(&self, topic: &str) -> TopicCounters {
        TopicCounters {
            read: counter!(RECORDS_READ, "topic" => topic.to_owned()),
            written: counter!(RECORDS_WRITTEN, "topic" => topic.to_owned()),
        }
    }

    pub fn answered(&self, status: u16) {
        counter!(REQUESTS, "status" => status.to_string()).increment(1);
    }

    /// Records or a request sent again; `reason` is `item`, `status`, `transport`, `garbled` or
    /// `dead_letter`.
    pub fn retried(&self, reason: &'static str, records: u64, error: &dyn std::fmt::Display) {
        counter!(RETRIES, "reason" => reason).increment(records);
        if self.log.allow() {
            tracing::warn!(reason, records, %error, "write failed; retrying with backoff");
        }
    }

    pub fn dead_lettered(&self, topic: &str, status: u16, reason: &str) {
        counter!(RECORDS_DEAD_LETTERED, "topic" => topic.to_owned(), "status" => status.to_string())
            .increment(1);
        if self.log.allow() {
            tracing::warn!(topic, status, %reason, "record refused by the destination; dead-lettered");
        }
    }

    /// A record refused for good and not dead-lettered: `reason` is `no_dead_letter_topic`.
    pub fn dropped(&self, topic: &str, reason: &'static str, detail: &dyn std::fmt::Display) {
        counter!(RECORDS_DROPPED, "topic" => topic.to_owned(), "reason" => reason).increment(1);
        if self.log.allow() {
            tracing::error!(topic, reason, %detail, "record refused by the destination; dropped");
        }
    }

    pub fn left_to_new_owner(&self, records: u64) {
        counter!(RECORDS_LEFT_TO_NEW_OWNER).increment(records);
    }

    pub fn committed(&self, topic: &str, partition: i32, offset: i64) {
        gauge!(COMMITTED_OFFSET, "topic" => topic.to_owned(), "partition" => partition.to_string())
            .set(offset as f64);
    }

    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        gauge!(CONSUMER_LAG, "topic" => topic.to_owned(), "partition" => partition.to_string())
            .set(lag as f64);
    }

    pub fn rebalanced(&self, kind: &'static str, partitions: usize) {
        counter!(REBALANCES, "kind" => kind).increment(1);
        tracing::info!(kind, partitions, "rebalance");
    }
}
