//! The file source: finds files by glob, follows them through rotation and truncation, reads new
//! lines, sends them as events, and checkpoints each file's delivered position.
//!
//! - `discovery`: glob expansion and inotify wake-ups.
//! - `identity`: (device, inode), fingerprint and offset marker.
//! - `tracked`: one file being read.
//! - `reader`: newline framing with the `max_line_bytes` cap.
//! - `multiline`: joining lines into one event.
//! - `files`: the set of files, as a synchronous state machine.
//! - `checkpoint`: the crash-safe checkpoint file.
//!
//! This module is the async driver: it decides when `FileSet` scans, reads, maintains and
//! checkpoints, and it sends the events. Reads are plain blocking reads of at most
//! `max_read_bytes` per file per turn (local files answer from the page cache); directory walks
//! run under `block_in_place`; checkpoints are fsynced by a writer task of their own, so neither
//! reading nor discovery ever waits for the disk.

pub mod checkpoint;
pub mod discovery;
pub mod files;
pub mod identity;
pub mod multiline;
pub mod reader;
pub mod tracked;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::FileSourceSettings;
use crate::event::Event;
use crate::memory::{Batch, MemoryBudget, charge_for};
use crate::metrics::FileSourceMetrics;
use checkpoint::{Checkpoint, CheckpointStore};
use discovery::Wakeups;
use files::FileSet;

/// Longest wait between two passes over all files for their timeouts.
const MAINTAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How often a stopped source looks whether everything it handed on is settled.
const SETTLED_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Signals that steer a source through shutdown, or through its restart at a reload.
#[derive(Debug, Clone)]
pub struct SourceControl {
    /// Stop reading and sending.
    pub stop: CancellationToken,
    /// Stop waiting for deliveries (they are drained, or timed out): write the final checkpoint
    /// and return.
    pub finish: CancellationToken,
}

impl SourceControl {
    /// After `stop`: returns once `unsettled()` reads 0, every event the source handed on being
    /// settled so that its final checkpoint covers all it sent, or at `finish`. A source that
    /// returns early tells the agent it is drained: at a reload, the restarted source then
    /// resumes exactly after what was delivered.
    pub async fn settled(&self, unsettled: impl Fn() -> usize) {
        while unsettled() > 0 {
            tokio::select! {
                _ = self.finish.cancelled() => return,
                _ = tokio::time::sleep(SETTLED_POLL) => {}
            }
        }
    }
}

/// A file source, ready to run.
pub struct FileSource {
    id: String,
    settings: FileSourceSettings,
    /// Events a scan produced while a batch waited for room in the channel; sent right after it.
    deferred: Vec<Event>,
    /// A scan ran during a wait: file indexes taken before it may be stale.
    scanned_while_blocked: bool,
    /// Handed to the checkpoint writer when the source runs.
    store: Option<CheckpointStore>,
    metrics: FileSourceMetrics,
    files: FileSet,
    /// Charged for every batch before it is sent.
    memory: MemoryBudget,
    /// Events read but never handed on because the source stopped: the newest of their files,
    /// tracked and never settled.
    unsent: usize,
}

/// Where a running source's batches and checkpoints go, and what wakes it.
struct Outlet {
    tx: mpsc::Sender<Batch>,
    stop: CancellationToken,
    writer: CheckpointWriter,
    wakeups: Wakeups,
    next_checkpoint: Instant,
}

/// Writes checkpoints on its own task, so the read loop never waits for an fsync: the loop
/// publishes the newest snapshot; the writer saves the newest one it has not saved yet, and the
/// last one published before `finish`.
struct CheckpointWriter {
    latest: watch::Sender<Option<Arc<Checkpoint>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CheckpointWriter {
    fn start(store: CheckpointStore, metrics: FileSourceMetrics) -> Self {
        let (latest, mut rx) = watch::channel(None::<Arc<Checkpoint>>);
        let task = tokio::spawn(async move {
            let store = Arc::new(std::sync::Mutex::new(store));
            loop {
                let closed = rx.changed().await.is_err();
                // After the sender is gone, the last value may still be unsaved: save() skips
                // what it wrote already.
                let Some(checkpoint) = rx.borrow_and_update().clone() else {
                    if closed {
                        return;
                    }
                    continue;
                };
                let store = Arc::clone(&store);
                let metrics = metrics.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                    match store.save(&checkpoint) {
                        Ok(true) => metrics.checkpoint_writes.increment(1),
                        Ok(false) => {}
                        Err(error) => metrics.checkpoint_error(store.path(), &error),
                    }
                })
                .await;
                if saved.is_err() {
                    tracing::error!("checkpoint writer failed; later positions are not saved");
                    return;
                }
                if closed {
                    return;
                }
            }
        });
        Self { latest, task }
    }

    fn publish(&self, checkpoint: Checkpoint) {
        self.latest.send_replace(Some(Arc::new(checkpoint)));
    }

    /// Saves `last` and stops: the final checkpoint, after deliveries drained.
    async fn finish(self, last: Checkpoint) {
        self.latest.send_replace(Some(Arc::new(last)));
        drop(self.latest);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "checkpoint writer failed before the final checkpoint");
        }
    }
}

impl FileSource {
    pub fn new(
        id: &str,
        settings: FileSourceSettings,
        data_dir: &Path,
        host: &str,
        memory: MemoryBudget,
    ) -> Self {
        let store = CheckpointStore::new(data_dir, id);
        let checkpoint = load_or_set_aside(&store, id);
        let metrics = FileSourceMetrics::new(id);
        let files = FileSet::new(settings.clone(), host, metrics.clone(), checkpoint);
        Self {
            id: id.to_owned(),
            settings,
            deferred: Vec::new(),
            scanned_while_blocked: false,
            store: Some(store),
            metrics,
            files,
            memory,
            unsent: 0,
        }
    }

    /// Reads until `control.stop`, then waits until what it sent is settled (or
    /// `control.finish`) and writes the final checkpoint. Spent memory budget or full channel:
    /// the send waits, so reading stops (backpressure).
    pub async fn run(mut self, tx: mpsc::Sender<Batch>, control: SourceControl) {
        let store = self
            .store
            .take()
            .expect("run consumes the source: the store is there once");
        let mut out = Outlet {
            tx,
            stop: control.stop.clone(),
            writer: CheckpointWriter::start(store, self.metrics.clone()),
            wakeups: Wakeups::new(&self.settings, &self.id),
            next_checkpoint: Instant::now() + self.settings.checkpoint_interval,
        };
        let mut next_scan = Instant::now();
        let mut next_maintain = Instant::now();
        let mut woken_by_inotify = false;
        'reading: while !control.stop.is_cancelled() {
            let changes = out.wakeups.take();
            let now = Instant::now();
            if now >= next_scan || changes.rescan || self.files.changed(&changes.modified) {
                let events = tokio::task::block_in_place(|| self.files.scan(now));
                out.wakeups.watch_roots(&self.id);
                next_scan = now + self.settings.glob_interval;
                if !self.send(&mut out, events).await {
                    break 'reading;
                }
            }
            let mut progressed = false;
            // The turn's indexes are taken now; a scan during a send below makes them stale.
            self.scanned_while_blocked = false;
            // Woken by inotify for some files only: read those. Otherwise (poll timeout, or data
            // left from the last pass) give every open file a turn.
            let turn = if woken_by_inotify && !changes.modified.is_empty() {
                self.files.open_files_among(&changes.modified)
            } else {
                self.files.open_files()
            };
            woken_by_inotify = false;
            for index in turn {
                let batch = self.files.read_turn(index, Instant::now());
                if batch.is_empty() {
                    continue;
                }
                progressed = true;
                if !self.send(&mut out, batch).await {
                    break 'reading;
                }
                // A scan during the wait may have added or removed files: take a fresh turn.
                if std::mem::take(&mut self.scanned_while_blocked) {
                    continue 'reading;
                }
            }
            // Timeouts have poll_interval granularity: with thousands of files, walking them all
            // on every inotify wake-up would cost more than the reading.
            if Instant::now() >= next_maintain {
                let events = self.files.maintain(Instant::now());
                next_maintain = Instant::now() + self.settings.poll_interval.min(MAINTAIN_INTERVAL);
                if !self.send(&mut out, events).await {
                    break 'reading;
                }
            }
            if Instant::now() >= out.next_checkpoint || self.files.needs_checkpoint() {
                self.publish_checkpoint(&mut out);
            }
            if !progressed {
                tokio::select! {
                    _ = control.stop.cancelled() => break,
                    _ = out.wakeups.notify.notified() => woken_by_inotify = true,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
        let Outlet { tx, writer, .. } = out;
        drop(tx);
        // The events never sent are the newest of their trackers, so once everything sent is
        // settled, what is outstanding is exactly those.
        let (files, unsent) = (&self.files, self.unsent);
        control
            .settled(|| files.outstanding().saturating_sub(unsent))
            .await;
        writer.finish(self.files.checkpoint()).await;
        // A source a reload removed must not show its files on /metrics for ever.
        self.metrics.files_open.set(0.0);
        self.metrics.files_watched.set(0.0);
    }

    /// Hands the checkpoint to the writer if a position moved, and schedules the next one.
    fn publish_checkpoint(&mut self, out: &mut Outlet) {
        if let Some(checkpoint) = self.files.checkpoint_if_changed() {
            out.writer.publish(checkpoint);
        }
        out.next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
    }

    /// Sends one batch (nothing when empty), waiting while the memory budget is spent or the
    /// channel is full. Checkpoints keep
    /// being written during the wait: under backpressure deliveries still settle, and a crash
    /// should not resend them. Files keep being discovered too: a file created and rotated out
    /// of the globs while nothing is read is opened (its inode held) before its name goes, and
    /// read once the channel has room. Returns false when the source must stop.
    async fn send(&mut self, out: &mut Outlet, mut batch: Vec<Event>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let mut next_scan = Instant::now() + self.settings.glob_interval;
        let mut last_scan = Instant::now()
            .checked_sub(self.settings.poll_interval)
            .unwrap_or_else(Instant::now);
        let tx = out.tx.clone();
        // One charge and one reservation for the whole wait, so this source keeps its place in
        // the budget's and the channel's queues however often inotify wakes the wait.
        let memory = self.memory.clone();
        let wait_for_room = |bytes| {
            let (memory, tx) = (memory.clone(), tx.clone());
            async move {
                let charge = memory.charge(bytes).await;
                tx.reserve_owned().await.map(|permit| (charge, permit))
            }
        };
        let reserve = wait_for_room(charge_for(&batch));
        tokio::pin!(reserve);
        loop {
            tokio::select! {
                biased;
                _ = out.stop.cancelled() => {
                    self.unsent += batch.len() + std::mem::take(&mut self.deferred).len();
                    return false;
                }
                room = &mut reserve => match room {
                    Ok((charge, permit)) => {
                        permit.send(Batch { events: batch, charge });
                        // What a scan flushed during the wait goes right after, in order.
                        if self.deferred.is_empty() {
                            return true;
                        }
                        batch = std::mem::take(&mut self.deferred);
                        reserve.set(wait_for_room(charge_for(&batch)));
                    }
                    Err(_) => {
                        self.unsent += batch.len() + std::mem::take(&mut self.deferred).len();
                        return false;
                    }
                },
                _ = tokio::time::sleep_until(out.next_checkpoint) => self.publish_checkpoint(out),
                _ = out.wakeups.notify.notified() => {
                    // Files appeared or moved: scan soon, but at most once per poll interval.
                    if out.wakeups.take_rescan() {
                        next_scan = next_scan.min(last_scan + self.settings.poll_interval);
                    }
                }
                _ = tokio::time::sleep_until(next_scan) => {
                    self.scan_while_blocked(&mut out.wakeups);
                    last_scan = Instant::now();
                    next_scan = last_scan + self.settings.glob_interval;
                }
            }
        }
    }

    fn scan_while_blocked(&mut self, wakeups: &mut Wakeups) {
        self.scanned_while_blocked = true;
        let events = tokio::task::block_in_place(|| self.files.scan(Instant::now()));
        wakeups.watch_roots(&self.id);
        self.deferred.extend(events);
    }
}

/// Never refuse to start over a bad checkpoint: set it aside and read from the start, which can
/// only duplicate lines, never lose them.
fn load_or_set_aside(store: &CheckpointStore, source: &str) -> Checkpoint {
    match store.load() {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            let aside = store.path().with_extension("json.corrupt");
            tracing::error!(source, %error, aside = %aside.display(), "checkpoint unreadable; moved aside, files are read from the start");
            if let Err(e) = std::fs::rename(store.path(), &aside) {
                tracing::error!(source, error = %e, "cannot move the bad checkpoint aside");
            }
            Checkpoint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, SourceSettings};

    const LINES: usize = 5000;

    /// A source over `dir/*.log` reading 4 KiB a turn (many batches), and its data directory.
    fn source(dir: &Path) -> (FileSource, std::path::PathBuf) {
        let lines: String = (0..LINES).map(|i| format!("line {i:05}\n")).collect();
        std::fs::write(dir.join("a.log"), lines).expect("write");
        let data = dir.join("data");
        let text = format!(
            "data_dir = \"{}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n\
             max_read_bytes = 4096\npoll_interval_ms = 10\n[kafka]\n\
             brokers = [\"127.0.0.1:9\"]\ntopic = \"logs\"\n",
            data.display(),
            dir.display()
        );
        let config = Config::from_toml(&text, &|_| None).expect("valid");
        let Some(SourceSettings::File(settings)) = config.sources.into_values().next() else {
            panic!("a file source");
        };
        let memory = MemoryBudget::new(1 << 30);
        (FileSource::new("app", settings, &data, "h", memory), data)
    }

    fn control() -> SourceControl {
        SourceControl {
            stop: CancellationToken::new(),
            finish: CancellationToken::new(),
        }
    }

    /// Runs the source into a channel of one batch, takes one batch (so one more waits in the
    /// channel and a third in `send`), stops it, and returns every event it sent.
    async fn stopped_while_blocked(
        source: FileSource,
        control: &SourceControl,
    ) -> (tokio::task::JoinHandle<()>, Vec<Event>) {
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(source.run(tx, control.clone()));
        let mut sent = rx.recv().await.expect("a batch").events;
        tokio::time::sleep(Duration::from_millis(200)).await;
        control.stop.cancel();
        while let Some(batch) = rx.recv().await {
            sent.extend(batch.events);
        }
        assert!(sent.len() < LINES, "the source stopped before the end");
        (task, sent)
    }

    fn end_of(event: &Event) -> u64 {
        let start = event.origin.as_ref().expect("file origin").offset;
        start + event.message.as_ref().expect("line").len() as u64 + 1
    }

    fn checkpointed(data: &Path) -> Vec<u64> {
        let checkpoint = CheckpointStore::new(data, "app")
            .load()
            .expect("checkpoint");
        checkpoint.files.values().map(|f| f.offset).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_source_returns_once_all_it_sent_is_settled_and_checkpoints_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (source, data) = source(dir.path());
        let control = control();
        let (task, mut sent) = stopped_while_blocked(source, &control).await;
        let mut last = sent.pop().expect("events");
        for mut event in sent {
            event.ack.take().expect("token").settle();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !task.is_finished(),
            "the last event sent is not settled yet"
        );
        let end = end_of(&last);
        last.ack.take().expect("token").settle();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("drained without being told to finish: the unsent batch does not count")
            .expect("source task");
        assert_eq!(checkpointed(&data), [end], "the end of what it sent");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finish_ends_a_drain_with_the_checkpoint_at_the_oldest_unsettled_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (source, data) = source(dir.path());
        let control = control();
        let (task, sent) = stopped_while_blocked(source, &control).await;
        let mut sent = sent.into_iter();
        let mut settled_end = 0;
        for mut event in sent.by_ref().take(10) {
            settled_end = end_of(&event);
            event.ack.take().expect("token").settle();
        }
        let unsettled: Vec<Event> = sent.collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!task.is_finished(), "waits for what it sent");
        control.finish.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("finish ends the wait")
            .expect("source task");
        assert_eq!(
            checkpointed(&data),
            [settled_end],
            "only what was delivered"
        );
        drop(unsettled);
    }
}
