//! The file source: finds files by glob, reads new lines, sends them as events, and checkpoints
//! the delivered position of each file.
//!
//! - `reader`: newline framing with the `max_line_bytes` cap.
//! - `checkpoint`: the crash-safe checkpoint file.
//!
//! One task per source polls its files in turn (at most `max_read_bytes` per file per turn) and
//! sleeps `poll_interval` when none had data. A file whose path no longer leads to it (renamed
//! away or deleted) is read to its end through the open handle, then released once every event
//! read from it is settled. Reads are plain blocking reads of at most `max_read_bytes`: local
//! files answer from the page cache in microseconds.

pub mod checkpoint;
pub mod reader;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ack::AckTracker;
use crate::config::FileSourceSettings;
use crate::event::{Event, FileOrigin};
use crate::metrics::FileSourceMetrics;
use checkpoint::{CheckpointStore, FileCheckpoint, FileId};
use reader::{Line, LineFramer};

/// A batch of events; bounded in bytes by `max_read_bytes + max_line_bytes` of input.
pub type Batch = Vec<Event>;

/// Signals that steer a source through shutdown.
#[derive(Debug, Clone)]
pub struct SourceControl {
    /// Stop reading and sending.
    pub stop: CancellationToken,
    /// Deliveries are drained (or timed out): write the final checkpoint and return.
    pub finish: CancellationToken,
}

/// A running file source's inputs.
pub struct FileSource {
    id: String,
    settings: FileSourceSettings,
    host: Arc<str>,
    store: CheckpointStore,
    metrics: FileSourceMetrics,
    /// Checkpoints read at start that no tracked file has claimed yet.
    unclaimed: BTreeMap<FileId, FileCheckpoint>,
    files: Vec<Tracked>,
    /// Paths that failed to open, so the error is counted once per file, not once per scan.
    unreadable: HashMap<PathBuf, FileId>,
    /// Read buffer shared by all files.
    chunk: Vec<u8>,
}

/// One file being read.
struct Tracked {
    id: FileId,
    path: PathBuf,
    path_str: Arc<str>,
    file: File,
    framer: LineFramer,
    tracker: Arc<AckTracker<u64>>,
    key: Arc<[u8]>,
    /// The path leads elsewhere now: read to the end, then let go.
    detached: bool,
    at_eof: bool,
}

impl FileSource {
    pub fn new(id: &str, settings: FileSourceSettings, data_dir: &Path, host: &str) -> Self {
        let store = CheckpointStore::new(data_dir, id);
        let unclaimed = match store.load() {
            Ok(map) => map,
            Err(error) => {
                // Never refuse to start over a bad checkpoint: set it aside and read from the
                // start, which can only duplicate lines, never lose them.
                let aside = store.path().with_extension("json.corrupt");
                tracing::error!(source = id, %error, aside = %aside.display(), "checkpoint unreadable; moved aside, files are read from the start");
                if let Err(e) = std::fs::rename(store.path(), &aside) {
                    tracing::error!(source = id, error = %e, "cannot move the bad checkpoint aside");
                }
                BTreeMap::new()
            }
        };
        Self {
            id: id.to_owned(),
            settings,
            host: host.into(),
            store,
            metrics: FileSourceMetrics::new(id),
            unclaimed,
            files: Vec::new(),
            unreadable: HashMap::new(),
            chunk: vec![0; 64 * 1024],
        }
    }

    /// Reads until `control.stop`, then waits for `control.finish` and writes the final
    /// checkpoint. Full channel: the send waits, so reading stops (backpressure).
    pub async fn run(mut self, tx: mpsc::Sender<Batch>, control: SourceControl) {
        let mut next_scan = Instant::now();
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
        let mut first_scan = true;
        'reading: while !control.stop.is_cancelled() {
            let now = Instant::now();
            if now >= next_scan {
                self.scan();
                if first_scan {
                    // Checkpoints of files that are gone by the first scan have nothing to resume.
                    self.unclaimed.clear();
                    first_scan = false;
                }
                next_scan = now + self.settings.glob_interval;
            }
            let mut progressed = false;
            for index in 0..self.files.len() {
                let batch = self.read_turn(index);
                if batch.is_empty() {
                    continue;
                }
                progressed = true;
                if !self
                    .send(&tx, batch, &control.stop, &mut next_checkpoint)
                    .await
                {
                    break 'reading;
                }
            }
            self.release_finished();
            if Instant::now() >= next_checkpoint {
                self.write_checkpoint();
                next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
            }
            if !progressed {
                tokio::select! {
                    _ = control.stop.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
        drop(tx);
        control.finish.cancelled().await;
        self.write_checkpoint();
    }

    /// Sends one batch, waiting while the channel is full. Checkpoints keep being written during
    /// the wait: under backpressure deliveries still settle, and a crash should not resend them.
    /// Returns false when the source must stop.
    async fn send(
        &mut self,
        tx: &mpsc::Sender<Batch>,
        batch: Batch,
        stop: &CancellationToken,
        next_checkpoint: &mut Instant,
    ) -> bool {
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return false,
                permit = tx.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(batch);
                        return true;
                    }
                    Err(_) => return false,
                },
                _ = tokio::time::sleep_until(*next_checkpoint) => {
                    self.write_checkpoint();
                    *next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
                }
            }
        }
    }

    /// Expands the globs: opens new files, detaches files whose path now leads elsewhere.
    fn scan(&mut self) {
        // Globbing walks directories: keep it off the async workers' hot path.
        let found = tokio::task::block_in_place(|| expand(&self.settings));
        let mut current: HashMap<&Path, FileId> = HashMap::new();
        for (path, id) in &found {
            current.insert(path.as_path(), *id);
        }
        for file in &mut self.files {
            if current.get(file.path.as_path()) != Some(&file.id) {
                file.detached = true;
            }
        }
        for (path, id) in &found {
            if self.files.iter().any(|f| f.id == *id) {
                continue;
            }
            match self.open(path, *id) {
                Ok(tracked) => {
                    self.unreadable.remove(path);
                    self.files.push(tracked);
                }
                Err(error) => {
                    if self.unreadable.insert(path.clone(), *id) != Some(*id) {
                        self.metrics.read_error(&path.display().to_string(), &error);
                    }
                }
            }
        }
        self.metrics.files_watched.set(self.files.len() as f64);
    }

    fn open(&mut self, path: &Path, id: FileId) -> std::io::Result<Tracked> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let path_str: Arc<str> = path.display().to_string().into();
        let mut offset = match self.unclaimed.remove(&id) {
            Some(checkpoint) => checkpoint.offset,
            None => 0,
        };
        if offset > size {
            self.metrics.offset_reset(&path_str, offset, size);
            offset = 0;
        }
        file.seek(SeekFrom::Start(offset))?;
        tracing::info!(source = %self.id, path = %path_str, offset, "reading file");
        let key: Arc<[u8]> = format!("{}:{}", self.host, path_str).into_bytes().into();
        Ok(Tracked {
            id,
            path: path.to_owned(),
            path_str,
            file,
            framer: LineFramer::new(offset, self.settings.max_line_bytes),
            tracker: AckTracker::new(offset),
            key,
            detached: false,
            at_eof: false,
        })
    }

    /// Reads up to `max_read_bytes` from one file and turns its complete lines into events.
    fn read_turn(&mut self, index: usize) -> Batch {
        let max_read = self.settings.max_read_bytes;
        let file = &mut self.files[index];
        let chunk = &mut self.chunk[..max_read.min(64 * 1024)];
        let mut lines: Vec<Line> = Vec::new();
        let mut total = 0usize;
        file.at_eof = false;
        while total < max_read {
            match file.file.read(chunk) {
                Ok(0) => {
                    file.at_eof = true;
                    if total == 0 {
                        Self::restart_if_truncated(
                            file,
                            &self.metrics,
                            self.settings.max_line_bytes,
                        );
                    }
                    break;
                }
                Ok(n) => {
                    total += n;
                    file.framer.feed(&chunk[..n], &mut lines);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.metrics.read_error(&file.path_str, &error);
                    file.at_eof = true;
                    break;
                }
            }
        }
        if total == 0 {
            return Vec::new();
        }
        self.metrics.bytes_read.increment(total as u64);
        self.metrics.events_read.increment(lines.len() as u64);
        let read_at = chrono::Utc::now();
        let file = &self.files[index];
        lines
            .into_iter()
            .map(|line| {
                if let Some(length) = line.truncated_from {
                    self.metrics.line_truncated(
                        &file.path_str,
                        line.start,
                        length,
                        line.bytes.len(),
                    );
                }
                let message = String::from_utf8(line.bytes).unwrap_or_else(|e| {
                    self.metrics.invalid_utf8(&file.path_str, line.start);
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                });
                let origin = FileOrigin {
                    host: Arc::clone(&self.host),
                    path: Arc::clone(&file.path_str),
                    offset: line.start,
                };
                let mut event = Event::from_file_line(message, read_at, origin);
                event.ack = Some(file.tracker.track(line.end));
                event.key = Some(Arc::clone(&file.key));
                event
            })
            .collect()
    }

    /// A file shorter than the read position was truncated (copytruncate, `> file`): read it
    /// again from 0 under a new tracker. Events of the old content stay settled by the old one.
    fn restart_if_truncated(
        file: &mut Tracked,
        metrics: &FileSourceMetrics,
        max_line_bytes: usize,
    ) {
        let (Ok(position), Ok(meta)) = (file.file.stream_position(), file.file.metadata()) else {
            return;
        };
        if meta.len() >= position {
            return;
        }
        metrics.offset_reset(&file.path_str, position, meta.len());
        if let Err(error) = file.file.seek(SeekFrom::Start(0)) {
            metrics.read_error(&file.path_str, &error);
            return;
        }
        file.framer = LineFramer::new(0, max_line_bytes);
        file.tracker = AckTracker::new(0);
        file.at_eof = false;
    }

    /// Lets go of detached files that are read to the end and fully settled.
    fn release_finished(&mut self) {
        let before = self.files.len();
        self.files.retain(|f| {
            let done = f.detached && f.at_eof && f.tracker.outstanding() == 0;
            if done {
                tracing::info!(path = %f.path_str, offset = f.tracker.position(), "file released");
            }
            !done
        });
        if self.files.len() != before {
            self.metrics.files_watched.set(self.files.len() as f64);
        }
    }

    fn write_checkpoint(&mut self) {
        let mut entries: Vec<FileCheckpoint> = self.unclaimed.values().cloned().collect();
        entries.extend(self.files.iter().map(|f| FileCheckpoint {
            path: f.path.clone(),
            id: f.id,
            offset: f.tracker.position(),
        }));
        // Two fsyncs: blocking work, moved off the async workers.
        match tokio::task::block_in_place(|| self.store.save(entries)) {
            Ok(true) => self.metrics.checkpoint_writes.increment(1),
            Ok(false) => {}
            Err(error) => self.metrics.checkpoint_error(self.store.path(), &error),
        }
    }
}

/// Regular files matching an include glob and no exclude glob, with their identities.
fn expand(settings: &FileSourceSettings) -> Vec<(PathBuf, FileId)> {
    let mut found = BTreeMap::new();
    for pattern in &settings.include {
        let Ok(paths) = glob::glob(pattern.as_str()) else {
            continue;
        };
        for path in paths.flatten() {
            if settings.exclude.iter().any(|x| x.matches_path(&path)) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                let id = FileId {
                    device: meta.dev(),
                    inode: meta.ino(),
                };
                found.insert(path, id);
            }
        }
    }
    found.into_iter().collect()
}
