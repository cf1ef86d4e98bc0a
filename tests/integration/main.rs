//! Integration tests: the `logship` binary against the real broker started by
//! `scripts/services.sh` (see `harness`). One test binary, so rdkafka is linked once.

mod bad_input;
mod cli;
mod config_errors;
mod delivery;
mod es_sink;
mod es_sink_faults;
mod file_model;
mod file_source;
mod harness;
mod http_source;
mod journald;
mod memory;
mod metrics_reference;
mod mock_cluster;
mod outages;
mod packaging;
mod pipeline;
mod reload;
mod rotation;
mod s3_sink;
mod sink_config;
mod sink_harness;
mod spool;
