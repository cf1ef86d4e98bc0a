//! The running sources: building one (with its pipeline task), starting it, and draining one or
//! all of them.
//!
//! Every source has its own `SourceControl`, whose tokens are children of two shared ones: the
//! shutdown cancels the shared tokens and so every source at once; a reload cancels one source's
//! own. A source that stops drops its sender, which ends its pipeline task after the task has
//! handed on what it holds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AgentError, CHANNEL_BATCHES};
use crate::config::SourceSettings;
use crate::health::Health;
use crate::kafka::{Encoder, RecordBatch};
use crate::memory::{Batch, MemoryBudget};
use crate::pipeline::{self, Pipeline};
use crate::source::file::{FileSource, SourceControl};
use crate::source::http::HttpSource;
use crate::source::journald::JournaldSource;

/// How long a source that was told to finish (its drain timed out) has to write its final
/// checkpoint before its task is aborted.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// A source built and, for HTTP, bound: ready to spawn.
pub struct Prepared {
    control: SourceControl,
    kind: Kind,
}

/// Boxed: file and journald sources are large, and a prepared source is only moved.
enum Kind {
    File(Box<FileSource>, mpsc::Sender<Batch>),
    Journald(Box<JournaldSource>, mpsc::Sender<Batch>),
    Http(HttpSource),
}

struct Running {
    control: SourceControl,
    task: JoinHandle<()>,
    /// The address an HTTP source holds.
    address: Option<SocketAddr>,
}

/// The sources of one agent run and what building another needs.
pub struct Sources {
    running: BTreeMap<String, Running>,
    stop_all: CancellationToken,
    finish_all: CancellationToken,
    /// The producer's input: every source's processing task sends its records here.
    producer_tx: mpsc::Sender<RecordBatch>,
    /// What each source's processing task makes records with.
    encoder: Encoder,
    memory: MemoryBudget,
    health: Arc<Health>,
    host: String,
    data_dir: PathBuf,
}

impl Sources {
    pub fn new(
        producer_tx: mpsc::Sender<RecordBatch>,
        encoder: Encoder,
        memory: MemoryBudget,
        health: Arc<Health>,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            running: BTreeMap::new(),
            stop_all: CancellationToken::new(),
            finish_all: CancellationToken::new(),
            producer_tx,
            encoder,
            memory,
            health,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            data_dir,
        }
    }

    pub fn memory(&self) -> &MemoryBudget {
        &self.memory
    }

    pub fn count(&self) -> usize {
        self.running.len()
    }

    /// Whether a running source holds `address` (so a new listener on it must wait for that
    /// source to let go).
    pub fn holds(&self, address: SocketAddr) -> bool {
        self.running.values().any(|r| r.address == Some(address))
    }

    /// Builds source `id`: loads its checkpoint (so the source that had it before must have
    /// finished), starts its pipeline task, binds an HTTP source's address.
    pub async fn prepare(
        &self,
        id: &str,
        settings: &SourceSettings,
        pipelines: &BTreeMap<String, Pipeline>,
    ) -> Result<Prepared, AgentError> {
        let control = SourceControl {
            stop: self.stop_all.child_token(),
            finish: self.finish_all.child_token(),
        };
        let tx = self.processing(settings.pipeline(), pipelines);
        let kind = match settings {
            SourceSettings::File(file) => Kind::File(
                Box::new(FileSource::new(
                    id,
                    file.clone(),
                    &self.data_dir,
                    &self.host,
                    self.memory.clone(),
                )),
                tx,
            ),
            SourceSettings::Journald(journald) => Kind::Journald(
                Box::new(JournaldSource::new(
                    id,
                    journald.clone(),
                    &self.data_dir,
                    &self.host,
                    self.memory.clone(),
                    Arc::clone(&self.health),
                )),
                tx,
            ),
            SourceSettings::Http(http) => {
                let source = HttpSource::bind(id, http.clone(), tx, self.memory.clone(), &control)
                    .await
                    .map_err(|source| AgentError::Listen {
                        id: id.to_owned(),
                        address: http.address,
                        source,
                    })?;
                Kind::Http(source)
            }
        };
        Ok(Prepared { control, kind })
    }

    /// Starts a prepared source.
    pub fn spawn(&mut self, id: &str, prepared: Prepared) {
        let Prepared { control, kind } = prepared;
        let (task, address) = match kind {
            Kind::File(source, tx) => (tokio::spawn(source.run(tx, control.clone())), None),
            Kind::Journald(source, tx) => (tokio::spawn(source.run(tx, control.clone())), None),
            Kind::Http(source) => {
                let address = source.local_addr().ok();
                tracing::info!(source = %id, address = ?address, "HTTP source listening");
                (tokio::spawn(source.run(control.clone())), address)
            }
        };
        let running = Running {
            control,
            task,
            address,
        };
        self.running.insert(id.to_owned(), running);
    }

    /// Drains the sources `ids` at once, for a reload: each stops reading and, while the
    /// producer goes on, returns once everything it sent is settled, having written its final
    /// checkpoint; an HTTP source releases its port at once and returns once its requests are
    /// answered. One that has not returned by `timeout` is told to finish (its checkpoint still
    /// holds only what was delivered: the rest is read again, duplicates but no loss), and
    /// aborted if it does not within a grace period. Returns the ids that timed out.
    pub async fn drain(&mut self, ids: &[String], timeout: Duration) -> Vec<String> {
        let draining: Vec<(String, Running)> = ids
            .iter()
            .filter_map(|id| self.running.remove_entry(id))
            .collect();
        for (_, source) in &draining {
            source.control.stop.cancel();
        }
        let started = Instant::now();
        let deadline = started + timeout;
        let mut late = Vec::new();
        for (id, mut source) in draining {
            if tokio::time::timeout_at(deadline, &mut source.task)
                .await
                .is_ok()
            {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                tracing::info!(source = %id, elapsed_ms, "source drained: all it sent is delivered");
            } else {
                tracing::warn!(source = %id, timeout_secs = timeout.as_secs(), "source not drained in time; its checkpoint covers what was delivered, the rest is read again");
                source.control.finish.cancel();
                if tokio::time::timeout(FINISH_GRACE, &mut source.task)
                    .await
                    .is_err()
                {
                    tracing::error!(source = %id, "source did not write its final checkpoint; stopped");
                    source.task.abort();
                }
                late.push(id.clone());
            }
            self.health.set_source_down(&id, false);
        }
        late
    }

    /// Shutdown, first step: every source stops reading.
    pub fn stop_all(&self) {
        self.stop_all.cancel();
    }

    /// Shutdown, last step: every source writes its final checkpoint; waits for them until
    /// `deadline`. False when one did not make it.
    pub async fn finish_all(self, deadline: Instant) -> bool {
        self.finish_all.cancel();
        let join = async {
            for (id, source) in self.running {
                if let Err(error) = source.task.await {
                    tracing::error!(source = %id, %error, "source task failed");
                }
            }
        };
        tokio::time::timeout_at(deadline, join).await.is_ok()
    }

    /// Where a source sends its batches: a task of its own runs them through the source's copy
    /// of its pipeline (if it names one) and makes them into Kafka records, beside the
    /// producer's sending, then hands them to the producer (each hop a bounded channel, so
    /// backpressure still reaches the source). The task ends when the source drops its sender.
    fn processing(
        &self,
        pipeline: Option<&str>,
        pipelines: &BTreeMap<String, Pipeline>,
    ) -> mpsc::Sender<Batch> {
        let pipeline = pipeline.and_then(|name| pipelines.get(name));
        let name = pipeline.map(|p| p.name.clone());
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let encoder = self.encoder.clone();
        let task = tokio::spawn(pipeline::run(
            pipeline.map(|p| p.clone().with_metrics()),
            rx,
            self.producer_tx.clone(),
            move |batch| encoder.encode(batch),
        ));
        // A task that panicked closes its channel, which stops its source: say so.
        tokio::spawn(async move {
            if let Err(error) = task.await {
                tracing::error!(pipeline = ?name, %error, "processing task failed; its source stopped");
            }
        });
        tx
    }
}
