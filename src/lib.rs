//! logship: a Kafka-native log shipper.
//!
//! ```text
//! source::{file, journald, http} ── Event batches ──▶ pipeline ──▶ kafka::producer ──▶ Kafka
//!      ▲                                                  │ delivery reports
//!      └──── ack::AckTracker / Countdown ◀────────────────┘ (the only thing that marks an
//!                                                          event delivered)
//!      checkpoints: the oldest undelivered line or journal entry; an HTTP 200 after delivery
//! ```
//!
//! - `config`: TOML → checked settings; every error names its key path and line.
//! - `event`: the event model and its JSON encoding (Elastic Common Schema names).
//! - `memory`: the memory budget; each batch carries its charge to the producer.
//! - `ack`: ordered acknowledgements; a position advances only past delivered events.
//! - `source`: where events come from: files, the systemd journal, HTTP requests.
//! - `pipeline`: parse, enrich, filter, redact and route events; `[[tests]]` for `logship test`.
//! - `kafka`: the producer, one record per event, delivery reports → acks.
//! - `spool`: the disk spool: checksummed segment files, recovery, replay positions.
//! - `metrics`: every metric name, in one place.
//! - `health`: whether Kafka is reachable and deliveries progress.
//! - `api`: the HTTP server for /metrics and /health.
//! - `backoff`: exponential backoff with jitter.
//! - `cli`: what the binaries' command lines share.
//! - `shutdown`: SIGTERM / SIGINT (drain), SIGHUP (reload).
//! - `agent`: wires the stages together, applies reloads, and drains them in order on shutdown.
//! - `sink`: the sink binaries' consumer group, dead letters, and writers (Elasticsearch, S3).

pub mod ack;
pub mod agent;
pub mod api;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod event;
pub mod health;
pub mod kafka;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod spool;
