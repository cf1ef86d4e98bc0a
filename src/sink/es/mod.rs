//! `logship-sink-es`: a consumer group that writes Kafka records to Elasticsearch with `_bulk`,
//! exactly once in effect. The pieces, in the order records flow: the index a record goes to
//! (`index`), the bulk body and per-item verdicts (`bulk`), the HTTP request (`client`), and
//! the batching, retries and dead letters (`writer`). `run` wires them to the consumer.

pub mod bulk;
pub mod client;
pub mod index;
pub mod writer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::EsSinkConfig;
use crate::sink::{SinkError, Stages};

/// Runs the sink until `stopped` resolves, then drains, commits and leaves the group.
pub async fn run(
    config: EsSinkConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    stopped: impl Future<Output = ()>,
) -> Result<(), SinkError> {
    let es = config.sink;
    let stages = Stages::start(&config.common, metrics, es.max_events).await?;
    let writer = Arc::new(writer::Writer {
        client: client::BulkClient::new(&es, stages.metrics.clone())?,
        dead_letters: stages.dead_letters.clone(),
        health: Arc::clone(&stages.health),
        metrics: stages.metrics.clone(),
        action: es.action,
        backoff: (es.retry_backoff, es.retry_backoff_max),
    });
    let stop = CancellationToken::new();
    let (records, consumer) = stages.consume(&config.common, stop.clone())?;
    let writing = tokio::spawn(async move { writer::run(&es, writer, records).await });
    stages.finish(stopped, stop, consumer, writing).await
}
