//! `logship-sink-s3`: a consumer group that writes Kafka records to S3 (or a local directory)
//! as gzip NDJSON objects with deterministic keys, exactly once in effect. The pieces, in the
//! order records flow: the object being built (`object`), the batching and uploads (`writer`),
//! and the object store (`store`). `run` wires them to the consumer.

pub mod object;
pub mod store;
pub mod writer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::S3SinkConfig;
use crate::sink::{SinkError, Stages};

/// Records that may wait between the consumer and the writer.
const CHANNEL_RECORDS: usize = 10_000;

/// Runs the sink until `stopped` resolves, then drains, commits and leaves the group.
pub async fn run(
    config: S3SinkConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    stopped: impl Future<Output = ()>,
) -> Result<(), SinkError> {
    let s3 = config.sink;
    let stages = Stages::start(&config.common, metrics, CHANNEL_RECORDS).await?;
    let uploader = Arc::new(writer::Uploader {
        store: store::open(&s3.target)?,
        part_bytes: s3.part_bytes,
        backoff: (s3.retry_backoff, s3.retry_backoff_max),
        health: Arc::clone(&stages.health),
        metrics: stages.metrics.clone(),
    });
    let stop = CancellationToken::new();
    let (records, consumer) = stages.consume(&config.common, stop.clone())?;
    let writing = tokio::spawn(async move { writer::run(&s3, uploader, records).await });
    stages.finish(stopped, stop, consumer, writing).await
}
