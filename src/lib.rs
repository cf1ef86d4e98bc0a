//! logship: a Kafka-native log shipper.
//!
//! ```text
//! source::file ── Event batches ──▶ pipeline ──▶ kafka::producer ──▶ Kafka
//!      ▲                                   │ delivery reports
//!      └──── ack::AckTracker ◀─────────────┘ (the only thing that marks an event delivered)
//!      checkpoints: the start of the oldest undelivered line, written by the source
//! ```
//!
//! - `config`: TOML → checked settings; every error names its key path and line.
//! - `event`: the event model and its JSON encoding (Elastic Common Schema names).
//! - `memory`: the memory budget; each batch carries its charge to the producer.
//! - `ack`: ordered acknowledgements; a position advances only past delivered events.
//! - `source`: where events come from (files today).
//! - `pipeline`: parse, enrich, filter, redact and route events; `[[tests]]` for `logship test`.
//! - `kafka`: the producer, one record per event, delivery reports → acks.
//! - `spool`: the disk spool: checksummed segment files, recovery, replay positions.
//! - `metrics`: every metric name, in one place.
//! - `health`: whether Kafka is reachable and deliveries progress.
//! - `api`: the HTTP server for /metrics and /health.
//! - `shutdown`: SIGTERM / SIGINT.
//! - `agent`: wires the stages together and drains them in order on shutdown.

pub mod ack;
pub mod agent;
pub mod api;
pub mod config;
pub mod event;
pub mod health;
pub mod kafka;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod shutdown;
pub mod source;
pub mod spool;
