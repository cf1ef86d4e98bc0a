//! `memory_limit_bytes`: one budget for the data the agent holds in memory, shared out between
//! librdkafka's queue, the sources' read buffers and the events waiting between them.
//!
//! - librdkafka: `kafka.queue_max_bytes` of record bytes plus `kafka.queue_max_events` times a
//!   fixed cost per record (librdkafka's own message header and batch buffers). Unset, the queue
//!   gets a quarter of the limit, at most 16 MiB, and one record per 512 bytes of it, at most
//!   20,000.
//! - Read buffers: each file source reads into one buffer of `max_read_bytes`; a journald source
//!   into 64 KiB.
//! - Events: the rest. Sources charge it per batch and pause while it is spent
//!   (`crate::memory`).
//!
//! The agent's fixed cost (code, runtime, threads, metrics) comes on top; ARCHITECTURE.md states
//! the measured figure.

use super::document::Document;
use super::{ConfigError, SourceSettings};

/// Default `memory_limit_bytes`: 64 MiB.
pub const DEFAULT_LIMIT: u64 = 64 * 1024 * 1024;
/// Smallest `memory_limit_bytes` taken.
const MIN_LIMIT: u64 = 4 * 1024 * 1024;
/// What librdkafka holds per queued record beyond its bytes, for the plan.
pub const LIBRDKAFKA_RECORD_COST: u64 = 256;
/// Default librdkafka queue: at most this many bytes and records.
const QUEUE_MAX_BYTES: u64 = 16 * 1024 * 1024;
const QUEUE_MAX_EVENTS: u64 = 20_000;

/// How `memory_limit_bytes` is shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    pub limit: u64,
    /// librdkafka's `queue.buffering.max.kbytes` (in bytes) and `queue.buffering.max.messages`.
    pub queue_bytes: u64,
    pub queue_events: u64,
    /// Sum of the sources' `max_read_bytes`.
    pub read_buffers: u64,
    /// Bytes of events that may wait between the sources and librdkafka.
    pub events: u64,
}

/// The Kafka keys the plan reads, as written.
pub struct QueueKeys {
    pub queue_max_bytes: Option<u64>,
    pub queue_max_events: Option<u64>,
}

impl MemoryPlan {
    /// Shares `limit` out; an error names the key to change and the figures.
    pub fn new(
        doc: &Document<'_>,
        limit: u64,
        queue: &QueueKeys,
        sources: &std::collections::BTreeMap<String, SourceSettings>,
    ) -> Result<Self, ConfigError> {
        if limit < MIN_LIMIT {
            return Err(doc.error_at(
                "memory_limit_bytes",
                format!("must be at least {MIN_LIMIT} (4 MiB)"),
            ));
        }
        let queue_bytes = match queue.queue_max_bytes {
            Some(bytes) if bytes < 1024 => {
                return Err(doc.error_at("kafka.queue_max_bytes", "must be at least 1024"));
            }
            Some(bytes) => bytes,
            None => (limit / 4).min(QUEUE_MAX_BYTES),
        };
        let queue_events = match queue.queue_max_events {
            Some(0) => return Err(doc.error_at("kafka.queue_max_events", "must be positive")),
            Some(events) => events,
            None => (queue_bytes / 512).clamp(1, QUEUE_MAX_EVENTS),
        };
        let mut read_buffers = 0;
        let mut largest_turn = 0;
        for source in sources.values() {
            let (buffer, turn) = source.read_sizes();
            read_buffers += buffer;
            largest_turn = largest_turn.max(turn);
        }
        let kafka = queue_bytes + queue_events * LIBRDKAFKA_RECORD_COST;
        // Room for two read turns of the largest source: one charged and on its way, one read.
        let needed = 2 * largest_turn;
        let events = limit.saturating_sub(kafka + read_buffers);
        if events < needed {
            return Err(doc.error_at(
                "memory_limit_bytes",
                format!(
                    "{limit} bytes leave {events} for events after librdkafka's queue ({kafka}: \
                     kafka.queue_max_bytes plus {LIBRDKAFKA_RECORD_COST} per \
                     kafka.queue_max_events) and the sources' read buffers ({read_buffers}); \
                     at least {needed} are needed (two read turns of the largest source: a file's \
                     max_read_bytes + max_line_bytes, a journal's 64 KiB + max_entry_bytes): \
                     raise it to {} or lower those",
                    kafka + read_buffers + needed
                ),
            ));
        }
        Ok(Self {
            limit,
            queue_bytes,
            queue_events,
            read_buffers,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn plan(extra_root: &str, extra_kafka: &str) -> Result<super::MemoryPlan, String> {
        let text = format!(
            "data_dir = \"/tmp\"\n{extra_root}\n[sources.a]\ntype = \"file\"\n\
             include = [\"/x/*.log\"]\n[kafka]\nbrokers = [\"127.0.0.1:9\"]\ntopic = \"logs\"\n\
             {extra_kafka}\n"
        );
        Config::from_toml(&text, &|_| None)
            .map(|c| c.memory)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_limit_gives_librdkafka_a_quarter_and_events_the_rest() {
        let plan = plan("", "").expect("valid");
        assert_eq!(plan.limit, 64 << 20);
        assert_eq!(plan.queue_bytes, 16 << 20);
        assert_eq!(plan.queue_events, 20_000);
        assert_eq!(plan.read_buffers, 256 << 10);
        assert_eq!(
            plan.events,
            (64 << 20) - (16 << 20) - 20_000 * 256 - (256 << 10)
        );
    }

    #[test]
    fn a_small_limit_shrinks_the_default_queue() {
        let plan = plan("memory_limit_bytes = 16777216", "").expect("valid");
        assert_eq!(plan.queue_bytes, 4 << 20);
        assert_eq!(plan.queue_events, 8192);
    }

    #[test]
    fn a_limit_the_queue_leaves_no_room_under_names_the_figures() {
        let error = plan("memory_limit_bytes = 8388608", "queue_max_bytes = 8000000")
            .expect_err("too small");
        assert!(error.starts_with("memory_limit_bytes (line 2): 8388608 bytes leave 0"));
        assert!(error.contains("raise it to"), "{error}");
        let error = plan("memory_limit_bytes = 1000", "").expect_err("too small");
        assert!(error.contains("must be at least 4194304"), "{error}");
    }
}
