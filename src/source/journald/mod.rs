//! The journald source: runs `journalctl --follow --output=json`, turns each entry into an event,
//! and checkpoints the cursor of the newest entry delivered (with every entry before it).
//!
//! - `command`: journalctl's arguments (where it reads, where it starts, its filters).
//! - `entry`: one JSON line → an event (field mapping, binary values, unit and identifier
//!   filters).
//! - `cursor`: the crash-safe cursor file.
//!
//! This module is the driver. When journalctl exits it is started again after a backoff
//! (`restart_backoff_ms`, doubling), from the newest entry read; the restarts are counted and
//! /health shows the source as down meanwhile. Reading stops while the memory budget is spent
//! or the channel is full: journalctl then blocks on its pipe, and the journal is the buffer.

pub mod command;
pub mod cursor;
pub mod entry;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::AckTracker;
use crate::config::JournaldSourceSettings;
use crate::event::Event;
use crate::health::Health;
use crate::memory::{Batch, MemoryBudget, charge_for};
use crate::metrics::JournaldMetrics;
use crate::source::file::SourceControl;
use crate::source::file::reader::{Line, LineFramer};
use cursor::CursorStore;
use entry::EntryMaker;

/// Bytes read from journalctl's output at a time (the source's read buffer).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// A batch goes out at this many bytes of entries, or as soon as journalctl has nothing more
/// ready.
const BATCH_BYTES: usize = 256 * 1024;
/// Lines of journalctl's standard error logged per run of it.
const STDERR_LINES_LOGGED: usize = 20;

type Tracker = AckTracker<Option<String>>;

/// A journald source, ready to run.
pub struct JournaldSource {
    id: String,
    settings: JournaldSourceSettings,
    host: Arc<str>,
    memory: MemoryBudget,
    metrics: JournaldMetrics,
    health: Arc<Health>,
    store: CursorStore,
    /// Positions of the entries read, settled as their events are delivered.
    tracker: Arc<Tracker>,
    /// The newest entry read: where journalctl resumes when it is started again in this run.
    read: Option<String>,
    /// Entries tracked since the last batch was handed on: when the source stops, the events
    /// among them are never sent, and the filtered ones wait behind those in the tracker.
    tracked_unsent: usize,
}

/// How one run of journalctl ended.
enum Ended {
    /// The source must stop (shutdown, or nothing takes its batches any more).
    Stopped,
    /// journalctl exited or could not start; `entries` were read from it.
    Exited { entries: u64 },
}

impl JournaldSource {
    pub fn new(
        id: &str,
        settings: JournaldSourceSettings,
        data_dir: &Path,
        host: &str,
        memory: MemoryBudget,
        health: Arc<Health>,
    ) -> Self {
        let mut store = CursorStore::new(data_dir, id);
        let cursor = store.load().unwrap_or_else(|error| {
            // Never refuse to start: read as on a first start, which can only duplicate.
            let aside = store.path().with_extension("json.corrupt");
            tracing::error!(source = id, %error, aside = %aside.display(), "journald checkpoint unreadable; moved aside");
            if let Err(e) = std::fs::rename(store.path(), &aside) {
                tracing::error!(source = id, error = %e, "cannot move the bad checkpoint aside");
            }
            None
        });
        Self {
            id: id.to_owned(),
            settings,
            host: Arc::from(host),
            memory,
            metrics: JournaldMetrics::new(id),
            health,
            store,
            tracker: AckTracker::new(cursor.clone()),
            read: cursor,
            tracked_unsent: 0,
        }
    }

    /// Reads until `control.stop`, then waits until what it sent is settled (or
    /// `control.finish`) and writes the final checkpoint.
    pub async fn run(mut self, tx: mpsc::Sender<Batch>, control: SourceControl) {
        let store = std::mem::replace(&mut self.store, CursorStore::new(Path::new(""), ""));
        let done = CancellationToken::new();
        let writer = tokio::spawn(write_checkpoints(
            Arc::clone(&self.tracker),
            store,
            self.settings.checkpoint_interval,
            self.metrics.clone(),
            done.clone(),
        ));
        let mut backoff = self.settings.restart_backoff;
        while let Ended::Exited { entries } = self.follow(&tx, &control.stop).await {
            self.health.set_source_down(&self.id, true);
            self.metrics.reader_up.set(0.0);
            self.metrics.restarts.increment(1);
            if entries > 0 {
                backoff = self.settings.restart_backoff;
            }
            tracing::warn!(source = %self.id, wait_ms = backoff.as_millis() as u64, "journalctl is not running; starting it again");
            tokio::select! {
                _ = control.stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.settings.restart_backoff_max);
        }
        self.metrics.reader_up.set(0.0);
        drop(tx);
        // Once everything sent is settled, only the entries since the last batch handed on can
        // be outstanding.
        let (tracker, unsent) = (&self.tracker, self.tracked_unsent);
        control
            .settled(|| tracker.outstanding().saturating_sub(unsent))
            .await;
        done.cancel();
        if let Err(error) = writer.await {
            tracing::error!(source = %self.id, %error, "checkpoint writer failed before the final checkpoint");
        }
    }

    /// Runs journalctl once, sending its entries until it exits or the source must stop.
    async fn follow(&mut self, tx: &mpsc::Sender<Batch>, stop: &CancellationToken) -> Ended {
        let args = command::arguments(&self.settings, self.read.as_deref());
        let spawned = Command::new(&self.settings.journalctl_path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(source = %self.id, path = %self.settings.journalctl_path.display(), %error, "cannot start journalctl");
                return Ended::Exited { entries: 0 };
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Ended::Exited { entries: 0 };
        };
        self.health.set_source_down(&self.id, false);
        self.metrics.reader_up.set(1.0);
        let last_error = Arc::new(Mutex::new(String::new()));
        tokio::spawn(log_stderr(stderr, self.id.clone(), Arc::clone(&last_error)));

        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stdout);
        let mut framer = LineFramer::new(0, self.settings.max_entry_bytes);
        let mut lines = Vec::new();
        let mut pending = Vec::new();
        let mut pending_bytes = 0;
        let mut entries = 0;
        loop {
            let read = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ended::Stopped,
                read = reader.fill_buf() => read.map(|buf| {
                    framer.feed(buf, &mut lines);
                    buf.len()
                }),
                // Nothing more ready: what is read goes out now.
                () = std::future::ready(()), if !pending.is_empty() => {
                    if !self.send(tx, std::mem::take(&mut pending), stop).await {
                        return Ended::Stopped;
                    }
                    pending_bytes = 0;
                    continue;
                }
            };
            let read = match read {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(source = %self.id, %error, "cannot read journalctl's output");
                    break;
                }
            };
            reader.consume(read);
            self.metrics.bytes_read.increment(read as u64);
            for line in lines.drain(..) {
                entries += 1;
                if let Some(event) = self.entry(line) {
                    pending_bytes += event.message.as_ref().map_or(0, String::len);
                    pending.push(event);
                }
            }
            if pending_bytes >= BATCH_BYTES {
                if !self.send(tx, std::mem::take(&mut pending), stop).await {
                    return Ended::Stopped;
                }
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() && !self.send(tx, pending, stop).await {
            return Ended::Stopped;
        }
        let status = child.wait().await;
        let last_error = last_error.lock().map(|e| e.clone()).unwrap_or_default();
        tracing::warn!(source = %self.id, ?status, entries, last_error = %last_error, "journalctl exited");
        if entries == 0 && self.read.is_some() && last_error.contains("cursor") {
            // A cursor journalctl cannot seek to (a journal vacuumed or replaced): start over
            // as on a first start rather than never reading again.
            tracing::error!(source = %self.id, cursor = ?self.read, "journalctl rejected the checkpointed cursor; reading as on a first start");
            self.read = None;
        }
        Ended::Exited { entries }
    }

    /// One line of journalctl's output: an event to send, or nothing (filtered out, or dropped
    /// and counted). Every entry's cursor is tracked, so the checkpoint moves past entries that
    /// are not shipped too.
    fn entry(&mut self, line: Line) -> Option<Event> {
        if let Some(length) = line.truncated_from {
            let cursor = cursor_in(&line.bytes);
            let detail = format!("over max_entry_bytes, cursor {cursor:?}");
            self.metrics.entry_dropped("too_large", length, &detail);
            if let Some(cursor) = cursor {
                self.read = Some(cursor.clone());
                self.tracked_unsent += 1;
                self.tracker.track(Some(cursor)).settle();
            }
            return None;
        }
        let maker = EntryMaker {
            settings: &self.settings,
            host: Arc::clone(&self.host),
        };
        let entry = match maker.entry(&line.bytes) {
            Ok(entry) => entry,
            Err(error) => {
                self.metrics
                    .entry_dropped("invalid", line.bytes.len() as u64, &error);
                return None;
            }
        };
        self.read = Some(entry.cursor.clone());
        self.tracked_unsent += 1;
        let token = self.tracker.track(Some(entry.cursor));
        let Some(mut event) = entry.event else {
            token.settle();
            return None;
        };
        if entry.binary_message
            && let Some(cursor) = &self.read
        {
            self.metrics.binary_message(cursor);
        }
        self.metrics.events_read.increment(1);
        event.ack = Some(token);
        Some(event)
    }

    /// Sends one batch, waiting while the memory budget is spent or the channel is full. False
    /// when the source must stop.
    async fn send(
        &mut self,
        tx: &mpsc::Sender<Batch>,
        events: Vec<Event>,
        stop: &CancellationToken,
    ) -> bool {
        let room = async {
            let charge = self.memory.charge(charge_for(&events)).await;
            tx.reserve().await.map(|permit| (charge, permit))
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            room = room => match room {
                Ok((charge, permit)) => {
                    permit.send(Batch { events, charge });
                    // Every entry tracked so far is handed on or settled.
                    self.tracked_unsent = 0;
                    true
                }
                Err(_) => false,
            },
        }
    }
}

/// The `__CURSOR` value in an entry cut short, when its cut left it whole.
fn cursor_in(json: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"__CURSOR\":\"";
    let start = memchr::memmem::find(json, KEY)? + KEY.len();
    let length = memchr::memchr(b'"', &json[start..])?;
    String::from_utf8(json[start..start + length].to_vec()).ok()
}

/// Logs journalctl's standard error (the first lines of each run) and keeps its last line.
async fn log_stderr(stderr: impl AsyncRead + Unpin, source: String, last: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stderr).lines();
    let mut logged = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        if logged < STDERR_LINES_LOGGED {
            tracing::warn!(source = %source, line = %line, "journalctl");
            logged += 1;
        }
        if let Ok(mut last) = last.lock() {
            *last = line;
        }
    }
}

/// Writes the delivered cursor every `interval`, off the read loop, and once more at `done`.
async fn write_checkpoints(
    tracker: Arc<Tracker>,
    store: CursorStore,
    interval: Duration,
    metrics: JournaldMetrics,
    done: CancellationToken,
) {
    let store = Arc::new(Mutex::new(store));
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tokio::time::sleep(interval) => false,
        };
        if let Some(cursor) = tracker.position() {
            let store = Arc::clone(&store);
            let metrics = metrics.clone();
            let saved = tokio::task::spawn_blocking(move || {
                let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                match store.save(&cursor) {
                    Ok(true) => metrics.checkpoint_writes.increment(1),
                    Ok(false) => {}
                    Err(error) => metrics.checkpoint_error(store.path(), &error),
                }
            })
            .await;
            if saved.is_err() {
                tracing::error!("journald checkpoint writer failed; later cursors are not saved");
                return;
            }
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cursor_is_found_in_an_entry_cut_short() {
        let cut = br#"{"MESSAGE_ID":"x","__CURSOR":"s=ab;i=7","MESSAGE":"aaaa"#;
        assert_eq!(super::cursor_in(cut).as_deref(), Some("s=ab;i=7"));
        assert_eq!(super::cursor_in(br#"{"MESSAGE":"aaaa"#), None);
        assert_eq!(super::cursor_in(br#"{"__CURSOR":"s=a"#), None);
    }
}
