//! Sinks: consumer-group binaries that ship Kafka topics on to Elasticsearch and S3, exactly
//! once in effect (design invariant 8).
//!
//! ```text
//! consumer thread ── Record ──▶ writer (batches, retries) ──▶ destination
//!      ▲ commit the finished prefix      │ finish() once written or dead-lettered
//!      └──────── record::Claim ◀─────────┘
//! ```
//!
//! - `record`: a record and the claim on its partition (what may be committed).
//! - `consumer`: the polling thread: hand-over, pause, commit, drain on rebalance.
//! - `dead_letter`: records refused for good go to the dead-letter topic.
//! - `health`, `metrics`: what /health and /metrics report.
//! - `es`: the Elasticsearch writer.
//! - `s3`: the S3 (or local directory) writer.
//!
//! `Stages` is what every sink binary runs besides its writer: the API server, the dead-letter
//! producer, the consumer, and the shutdown order.

pub mod consumer;
pub mod dead_letter;
pub mod es;
pub mod health;
pub mod metrics;
pub mod record;
pub mod s3;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SinkCommon;
use consumer::{ConsumerError, ConsumerThread};
use dead_letter::DeadLetters;
use health::SinkHealth;
use metrics::SinkMetrics;
use record::Record;

/// How long the writer and the dead-letter producer get after the consumer closed.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Why a sink stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot serve the API on {address}: {source}")]
    Api {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("cannot create the dead-letter producer: {0}")]
    DeadLetters(#[source] rdkafka::error::KafkaError),
    #[error(transparent)]
    Client(#[from] es::client::ClientError),
    #[error(transparent)]
    Store(#[from] s3::store::StoreError),
}

/// The parts every sink runs around its writer.
pub struct Stages {
    pub metrics: SinkMetrics,
    pub health: Arc<SinkHealth>,
    pub dead_letters: DeadLetters,
    /// Records waiting between the consumer and the writer.
    capacity: usize,
    drain_timeout: Duration,
    api_stop: CancellationToken,
    api_task: JoinHandle<std::io::Result<()>>,
    upkeep: JoinHandle<()>,
}

impl Stages {
    /// Serves /metrics and /health and creates the dead-letter producer. `capacity` records may
    /// wait for the writer before the consumer pauses.
    pub async fn start(
        common: &SinkCommon,
        handle: PrometheusHandle,
        capacity: usize,
    ) -> Result<Self, SinkError> {
        let metrics = SinkMetrics::new();
        let health = Arc::new(SinkHealth::default());
        let upkeep = crate::metrics::spawn_upkeep(handle.clone());
        let api_stop = CancellationToken::new();
        let (bound, serve) = crate::api::bind(
            common.api_address,
            handle,
            Arc::clone(&health) as Arc<dyn crate::api::Report>,
            api_stop.clone(),
        )
        .await
        .map_err(|source| SinkError::Api {
            address: common.api_address,
            source,
        })?;
        tracing::info!(address = %bound, "serving /metrics and /health");
        let api_task = tokio::spawn(serve);
        let dead_letters = DeadLetters::new(&common.kafka, Arc::clone(&health), metrics.clone())
            .map_err(SinkError::DeadLetters)?;
        Ok(Self {
            metrics,
            health,
            dead_letters,
            capacity,
            drain_timeout: common.shutdown_timeout,
            api_stop,
            api_task,
            upkeep,
        })
    }

    /// Joins the consumer group; records arrive on the returned channel until `stop`.
    pub fn consume(
        &self,
        common: &SinkCommon,
        stop: CancellationToken,
    ) -> Result<(mpsc::Receiver<Record>, ConsumerThread), SinkError> {
        let (sender, records) = mpsc::channel(self.capacity.max(1));
        let consumer = ConsumerThread::start(
            &common.kafka,
            sender,
            stop,
            self.drain_timeout,
            Arc::clone(&self.health),
            self.metrics.clone(),
        )?;
        Ok((records, consumer))
    }

    /// Runs until `stopped` (or the writer ends), then: the consumer stops reading, waits for
    /// the records under way, commits and leaves the group; the writer and dead letters get a
    /// last moment; the API stops.
    pub async fn finish(
        self,
        stopped: impl Future<Output = ()>,
        stop: CancellationToken,
        consumer: ConsumerThread,
        mut writing: JoinHandle<()>,
    ) -> Result<(), SinkError> {
        let mut writer_done = false;
        tokio::select! {
            () = stopped => {}
            _ = &mut writing => {
                writer_done = true;
                tracing::error!("the writer stopped early");
            }
        }
        stop.cancel();
        if tokio::task::spawn_blocking(move || consumer.join())
            .await
            .is_err()
        {
            tracing::error!("the consumer thread could not be joined");
        }
        if !writer_done
            && tokio::time::timeout(FINAL_FLUSH, &mut writing)
                .await
                .is_err()
        {
            // Only retries of records left uncommitted remain: the next owner writes them.
            writing.abort();
        }
        let dead_letters = self.dead_letters.clone();
        // librdkafka's flush blocks; the runtime must not.
        let _ = tokio::task::spawn_blocking(move || dead_letters.flush(FINAL_FLUSH)).await;
        self.api_stop.cancel();
        self.upkeep.abort();
        match self.api_task.await {
            Ok(Err(error)) => tracing::error!(%error, "API server failed"),
            Err(error) => tracing::error!(%error, "API server task failed"),
            Ok(Ok(())) => {}
        }
        Ok(())
    }
}
