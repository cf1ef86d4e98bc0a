//! The agent: builds the stages from the configuration, runs them, and drains them in order.
//!
//! Drain order on shutdown: sources stop reading; the producer stops taking new events; librdkafka
//! gets until `shutdown_timeout` to deliver what it holds; then every source writes its final
//! checkpoint, which reflects only settled events. With a spool, what librdkafka still holds then
//! is spooled; without one (or with what was still in a channel), it is read again after the
//! restart.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::{Config, SourceSettings};
use crate::health::Health;
use crate::kafka::{Producer, ProducerError};
use crate::memory::{Batch, MemoryBudget};
use crate::pipeline;
use crate::source::file::{FileSource, SourceControl};
use crate::source::http::HttpSource;
use crate::source::journald::JournaldSource;

/// Batches waiting in each channel between a source, its pipeline and the producer. The memory
/// budget bounds their bytes; this keeps the number small, since a few batches of one read turn
/// each keep the producer busy (more only made resident memory grow: BENCHMARKS.md).
const CHANNEL_BATCHES: usize = 4;
/// How often the brokers are asked for metadata, for /health.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Part of `shutdown_timeout` kept for the final checkpoints (at most a quarter of it).
const FINAL_CHECKPOINT_RESERVE: Duration = Duration::from_secs(2);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("source {id}: cannot listen on {address}: {source}")]
    Listen {
        id: String,
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve the API on {address}: {source}")]
    Api {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs until `shutdown` resolves (or the producer fails), then drains.
pub async fn run(
    config: Config,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let health = Arc::new(Health::new(config.kafka.stall_after));
    // Opening the spool reads its segment headers (and checks the newest segment's checksums):
    // blocking file work, kept off the async workers' other tasks.
    let producer = tokio::task::block_in_place(|| {
        Producer::new(&config.kafka, config.spool.as_ref(), Arc::clone(&health))
    });
    let producer = Arc::new(producer?);

    let api_stop = CancellationToken::new();
    let upkeep = crate::metrics::spawn_upkeep(metrics.clone());
    let (bound, serve) = api::bind(
        config.api_address,
        metrics,
        Arc::clone(&health) as Arc<dyn api::Report>,
        api_stop.clone(),
    )
    .await
    .map_err(|source| AgentError::Api {
        address: config.api_address,
        source,
    })?;
    let api_task = tokio::spawn(serve);
    tracing::info!(address = %bound, "serving /metrics and /health");

    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let control = SourceControl {
        stop: CancellationToken::new(),
        finish: CancellationToken::new(),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let memory = MemoryBudget::new(usize::try_from(config.memory.events).unwrap_or(usize::MAX));
    let mut sources = Vec::new();
    for (id, settings) in &config.sources {
        let source_tx = through_pipeline(&config, settings.pipeline(), &tx);
        let task = match settings {
            SourceSettings::File(file) => {
                let source =
                    FileSource::new(id, file.clone(), &config.data_dir, &host, memory.clone());
                tokio::spawn(source.run(source_tx, control.clone()))
            }
            SourceSettings::Journald(journald) => {
                let source = JournaldSource::new(
                    id,
                    journald.clone(),
                    &config.data_dir,
                    &host,
                    memory.clone(),
                    Arc::clone(&health),
                );
                tokio::spawn(source.run(source_tx, control.clone()))
            }
            SourceSettings::Http(http) => {
                let source =
                    HttpSource::bind(id, http.clone(), source_tx, memory.clone(), &control)
                        .await
                        .map_err(|source| AgentError::Listen {
                            id: id.clone(),
                            address: http.address,
                            source,
                        })?;
                tracing::info!(source = %id, address = ?source.local_addr().ok(), "HTTP source listening");
                tokio::spawn(source.run(control.clone()))
            }
        };
        sources.push(task);
    }
    drop(tx);
    tracing::info!(sources = sources.len(), "agent started");

    let producer_stop = CancellationToken::new();
    let probe = tokio::spawn({
        let producer = Arc::clone(&producer);
        let stop = producer_stop.clone();
        async move { producer.probe_brokers(PROBE_INTERVAL, stop).await }
    });
    let mut producing = tokio::spawn({
        let producer = Arc::clone(&producer);
        let stop = producer_stop.clone();
        async move { producer.run(rx, stop).await }
    });

    let outcome = tokio::select! {
        () = shutdown => None,
        done = &mut producing => Some(done),
    };
    // One deadline for the whole drain: flush, then final checkpoints, then the API.
    let draining = Instant::now();
    let deadline = draining + config.shutdown_timeout;
    let reserve = FINAL_CHECKPOINT_RESERVE.min(config.shutdown_timeout / 4);
    control.stop.cancel();
    producer_stop.cancel();
    probe.abort();
    let result = match outcome {
        Some(done) => done,
        None => producing.await,
    };
    let result = result.unwrap_or_else(|join| Err(ProducerError::Panicked(join.to_string())));
    let left = (deadline - reserve).saturating_duration_since(Instant::now());
    producer.flush(left).await;
    control.finish.cancel();
    let finished = tokio::time::timeout_at(deadline, join_sources(sources)).await;
    if finished.is_err() {
        tracing::error!(
            "sources did not write their final checkpoints before the shutdown deadline"
        );
    }
    api_stop.cancel();
    upkeep.abort();
    if tokio::time::timeout_at(deadline, api_task).await.is_err() {
        tracing::warn!("API connections still open at the shutdown deadline");
    }
    tracing::info!(
        elapsed_ms = draining.elapsed().as_millis() as u64,
        "agent stopped"
    );
    result.map_err(AgentError::from)
}

/// Where a source sends its batches: straight to the producer, or through its own copy of its
/// pipeline on a task of its own (another bounded channel, so backpressure still reaches the
/// source). The task ends when the source drops its sender.
fn through_pipeline(
    config: &Config,
    pipeline: Option<&str>,
    producer_tx: &mpsc::Sender<Batch>,
) -> mpsc::Sender<Batch> {
    let Some(pipeline) = pipeline.and_then(|name| config.pipelines.get(name)) else {
        return producer_tx.clone();
    };
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let name = pipeline.name.clone();
    let task = tokio::spawn(pipeline::run(
        pipeline.clone().with_metrics(),
        rx,
        producer_tx.clone(),
    ));
    // A pipeline that panicked closes its channel, which stops its source: say so.
    tokio::spawn(async move {
        if let Err(error) = task.await {
            tracing::error!(pipeline = %name, %error, "pipeline task failed; its source stopped");
        }
    });
    tx
}

/// Awaits every task; a task that panicked is logged.
async fn join_sources(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        if let Err(error) = task.await {
            tracing::error!(%error, "source task failed");
        }
    }
}
