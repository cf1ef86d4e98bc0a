//! The agent: builds the stages from the configuration, runs them, applies reloads, and drains
//! them in order.
//!
//! - `sources`: the running sources, each with its own controls: start one, drain one or all.
//! - `reload`: SIGHUP: load the file again, compare, restart what changed.
//!
//! Drain order on shutdown: sources stop reading; the producer stops taking new events; librdkafka
//! gets until `shutdown_timeout` to deliver what it holds; then every source writes its final
//! checkpoint, which reflects only settled events. With a spool, what librdkafka still holds then
//! is spooled; without one (or with what was still in a channel), it is read again after the
//! restart.

mod reload;
mod sources;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::Config;
use crate::health::Health;
use crate::kafka::{Producer, ProducerError};
use crate::memory::MemoryBudget;
use crate::metrics::ReloadMetrics;
use crate::shutdown::Signal;
use sources::Sources;

/// Batches waiting in each channel between a source, its pipeline and the producer. The memory
/// budget bounds their bytes; this keeps the number small, since a few batches of one read turn
/// each keep the producer busy (more only made resident memory grow: BENCHMARKS.md).
const CHANNEL_BATCHES: usize = 2;
/// How often the brokers are asked for metadata, for /health.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Part of `shutdown_timeout` kept for the final checkpoints (at most a quarter of it).
const FINAL_CHECKPOINT_RESERVE: Duration = Duration::from_secs(2);

/// Why the agent stopped with an error, or could not start.
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

/// Runs `config` until a stop signal (or the producer fails), then drains. A reload signal loads
/// `path` again and applies what changed (`reload`). The metrics recorder stays across reloads.
pub async fn run(
    config: Config,
    path: PathBuf,
    metrics: PrometheusHandle,
    mut signals: mpsc::Receiver<Signal>,
) -> Result<(), AgentError> {
    let reloads = ReloadMetrics::new();
    let mut agent = Agent::start(config, &metrics).await?;
    loop {
        match agent.serve(&mut signals).await {
            Wake::Stop => return agent.drain().await,
            Wake::Reload => agent = reload::reload(agent, &path, &metrics, &reloads).await?,
        }
    }
}

/// Why `Agent::serve` returned.
enum Wake {
    /// A stop signal, or the producer ended by itself.
    Stop,
    Reload,
}

/// One run of the stages with one configuration: what a shutdown drains and a global reload
/// replaces.
struct Agent {
    config: Config,
    sources: Sources,
    producer: Arc<Producer>,
    producer_stop: CancellationToken,
    producing: JoinHandle<Result<(), ProducerError>>,
    /// The producer's result, when it ended by itself.
    ended: Option<Result<Result<(), ProducerError>, tokio::task::JoinError>>,
    probe: JoinHandle<()>,
    api_stop: CancellationToken,
    api_task: JoinHandle<std::io::Result<()>>,
    upkeep: JoinHandle<()>,
}

impl Agent {
    /// Builds everything that can fail first (producer, spool, API listener, sources with their
    /// checkpoints and HTTP listeners), then starts the tasks: a failed start leaves nothing
    /// running and no port held, so the previous configuration can start again.
    async fn start(config: Config, metrics: &PrometheusHandle) -> Result<Self, AgentError> {
        let health = Arc::new(Health::new(config.kafka.stall_after));
        // Opening the spool reads its segment headers (and checks the newest segment's
        // checksums): blocking file work, kept off the async workers' other tasks.
        let producer = tokio::task::block_in_place(|| {
            Producer::new(&config.kafka, config.spool.as_ref(), Arc::clone(&health))
        });
        let producer = Arc::new(producer?);

        let api_stop = CancellationToken::new();
        let (bound, serve) = api::bind(
            config.api_address,
            metrics.clone(),
            Arc::clone(&health) as Arc<dyn api::Report>,
            api_stop.clone(),
        )
        .await
        .map_err(|source| AgentError::Api {
            address: config.api_address,
            source,
        })?;

        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let memory = MemoryBudget::new(usize::try_from(config.memory.events).unwrap_or(usize::MAX));
        let mut sources = Sources::new(
            tx,
            producer.encoder(),
            memory,
            Arc::clone(&health),
            config.data_dir.clone(),
        );
        let mut prepared = Vec::with_capacity(config.sources.len());
        for (id, settings) in &config.sources {
            prepared.push((id, sources.prepare(id, settings, &config.pipelines).await?));
        }

        let api_task = tokio::spawn(serve);
        tracing::info!(address = %bound, "serving /metrics and /health");
        let upkeep = crate::metrics::spawn_upkeep(metrics.clone());
        for (id, source) in prepared {
            sources.spawn(id, source);
        }
        tracing::info!(sources = sources.count(), "agent started");

        let producer_stop = CancellationToken::new();
        let probe = tokio::spawn({
            let producer = Arc::clone(&producer);
            let stop = producer_stop.clone();
            async move { producer.probe_brokers(PROBE_INTERVAL, stop).await }
        });
        let producing = tokio::spawn({
            let producer = Arc::clone(&producer);
            let stop = producer_stop.clone();
            async move { producer.run(rx, stop).await }
        });
        Ok(Self {
            config,
            sources,
            producer,
            producer_stop,
            producing,
            ended: None,
            probe,
            api_stop,
            api_task,
            upkeep,
        })
    }

    /// Waits for a signal, or for the producer to end by itself (an error).
    async fn serve(&mut self, signals: &mut mpsc::Receiver<Signal>) -> Wake {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(Signal::Reload) => Wake::Reload,
                Some(Signal::Stop(signal)) => {
                    tracing::info!(signal, "shutting down");
                    Wake::Stop
                }
                None => Wake::Stop,
            },
            done = &mut self.producing => {
                self.ended = Some(done);
                Wake::Stop
            }
        }
    }

    /// Drains in order within one deadline, `shutdown_timeout` away: sources stop reading, the
    /// producer stops taking events, librdkafka flushes (the deadline less a reserve), sources
    /// write their final checkpoints, the API stops.
    async fn drain(self) -> Result<(), AgentError> {
        let Self {
            config,
            sources,
            producer,
            producer_stop,
            producing,
            ended,
            probe,
            api_stop,
            api_task,
            upkeep,
        } = self;
        let draining = Instant::now();
        let deadline = draining + config.shutdown_timeout;
        let reserve = FINAL_CHECKPOINT_RESERVE.min(config.shutdown_timeout / 4);
        sources.stop_all();
        producer_stop.cancel();
        probe.abort();
        let result = match ended {
            Some(done) => done,
            None => producing.await,
        };
        let result = result.unwrap_or_else(|join| Err(ProducerError::Panicked(join.to_string())));
        let left = (deadline - reserve).saturating_duration_since(Instant::now());
        producer.flush(left).await;
        if !sources.finish_all(deadline).await {
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
}
