//! Sinks: consumer-group binaries that ship Kafka topics on to Elasticsearch and S3, exactly
//! once in effect (design invariant 8). Being built (issue 7): so far the Elasticsearch bulk
//! request and its per-item verdicts. Offsets will be committed through `ack::AckTracker<i64>`
//! per partition (position = one past the contiguous prefix of finished records), the same
//! ordered acknowledgement the agent's sources use.

pub mod es;
