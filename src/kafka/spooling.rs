//! The producer's disk side (design invariant 5): what is written to the spool, when it is made
//! durable, what a full spool does, and how replay is paced. The segment files are
//! `crate::spool`; when the producer spools and replays is `producer.rs`.
//!
//! Records reach the spool in order: first those taken back from librdkafka (sorted by send
//! time), then new events. Each write appends frames of at most `min(1 MiB, segment_max_bytes /
//! 2)`; a record's acknowledgement settles once its frame is fsynced, so its source's checkpoint
//! may pass it. A failed fsync is retried and keeps /health red until one succeeds. Replay hands frames back to librdkafka, a few
//! at a time; a frame is delivered when every record in it was acknowledged. When one fails, the
//! frames in flight are waited for, the spool rewinds to its oldest undelivered frame, and replay
//! starts again after an exponential backoff with jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ack::AckToken;
use crate::backoff::Backoff;
use crate::config::{SpoolSettings, WhenFull};
use crate::health::Health;
use crate::metrics::SpoolMetrics;
use crate::spool::{FramePos, ReadFrame, Spool, SpoolError, SpoolRecord};

/// Frames handed to librdkafka for replay and not yet all reported. librdkafka's own queue bound
/// (`queue_max_bytes`) still applies below this.
const REPLAY_FRAMES_IN_FLIGHT: usize = 8;

/// Largest frame written, by its records' size before compression (a read turn is 256 KiB of
/// lines; its JSON records about twice that).
const FRAME_MAX_BYTES: u64 = 1024 * 1024;

/// The spool as the producer uses it.
pub struct Spooler {
    spool: Spool,
    when_full: WhenFull,
    max_bytes: u64,
    fsync_interval: Option<Duration>,
    /// Records to write next, in order, and the acknowledgements they carry.
    pending: Vec<SpoolRecord>,
    pending_tokens: Vec<Option<AckToken>>,
    /// Largest frame written, by the records' size before compression.
    frame_max_bytes: u64,
    /// Acknowledgements of records written but not yet fsynced.
    unsynced: Vec<AckToken>,
    last_sync: Instant,
    /// The last fsync failed: /health stays red until one succeeds.
    sync_failed: bool,
    /// Frames handed to librdkafka for replay and not yet reported.
    replaying: usize,
    /// A replayed frame failed: rewind once the others are reported.
    replay_failed: bool,
    backoff: Backoff,
    next_attempt: Instant,
    health: Arc<Health>,
    metrics: SpoolMetrics,
}

impl Spooler {
    /// Opens the spool directory, recovering what a previous run left (never blocks on damage).
    pub fn open(
        settings: &SpoolSettings,
        backoff: Backoff,
        health: Arc<Health>,
    ) -> Result<Self, SpoolError> {
        let (spool, report) = Spool::open(settings.store.clone())?;
        if report.records > 0 || report.corrupt_frames > 0 || !report.moved_aside.is_empty() {
            tracing::info!(
                dir = %settings.store.dir.display(),
                segments = report.segments,
                records = report.records,
                corrupt_frames = report.corrupt_frames,
                torn_bytes = report.torn_bytes,
                moved_aside = report.moved_aside.len(),
                "spool recovered; its records are replayed before new events"
            );
        }
        for (path, reason) in &report.moved_aside {
            tracing::error!(path = %path.display(), reason, "unreadable spool segment moved aside");
        }
        let spooler = Self {
            spool,
            when_full: settings.when_full,
            max_bytes: settings.store.max_bytes,
            fsync_interval: settings.fsync_interval,
            pending: Vec::new(),
            pending_tokens: Vec::new(),
            frame_max_bytes: (settings.store.segment_max_bytes / 2).min(FRAME_MAX_BYTES),
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            sync_failed: false,
            replaying: 0,
            replay_failed: false,
            backoff,
            next_attempt: Instant::now(),
            health,
            metrics: SpoolMetrics::default(),
        };
        spooler.update_gauges();
        Ok(spooler)
    }

    /// Queues one record for the next write.
    pub fn hold(&mut self, record: SpoolRecord, token: Option<AckToken>) {
        self.pending.push(record);
        self.pending_tokens.push(token);
    }

    /// Whether records wait to be written (the spool was full or a write failed).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the queued records, one frame per `frame_max_bytes` of them, and, with
    /// `fsync = "batch"`, makes them durable and settles their acknowledgements. A full spool
    /// keeps the rest queued (`block`) or drops it, counted (`drop_newest`); a failed write
    /// keeps it queued for the next attempt (`has_pending` tells the caller either way).
    pub fn write_pending(&mut self) {
        let (written, failed) = self.write_frames();
        if written > 0 {
            self.metrics.written.increment(written as u64);
            self.update_gauges();
        }
        // With `fsync = "batch"` a failed fsync is retried on every turn, written or not, and
        // /health stays red until one succeeds.
        if failed || (self.fsync_interval.is_none() && !self.sync()) {
            return;
        }
        // Every write asked for succeeded (what is left, if anything, waits for room).
        if !self.sync_failed {
            self.health.set_spool_writable(true);
        }
        if !self.pending.is_empty() && self.when_full == WhenFull::DropNewest {
            self.metrics
                .dropped(self.pending.len() as u64, self.max_bytes);
            self.pending.clear();
            // Given up and counted: the sources may move past them (invariant 3).
            self.pending_tokens
                .drain(..)
                .flatten()
                .for_each(AckToken::settle);
        }
    }

    /// Appends frames from the front of the queue while they fit and the disk takes them;
    /// returns how many records were written, and whether a write failed.
    fn write_frames(&mut self) -> (usize, bool) {
        let mut written = 0;
        while !self.pending.is_empty() {
            // At least one record per frame, then as many as `frame_max_bytes` holds.
            let mut end = 0;
            let mut estimate = 0;
            for record in &self.pending {
                let size = (record.payload.len() + record.topic.len() + 64) as u64;
                if end > 0 && estimate + size > self.frame_max_bytes {
                    break;
                }
                end += 1;
                estimate += size;
            }
            if !self.spool.fits(estimate) {
                break;
            }
            if let Err(error) = self.spool.append(&self.pending[..end]) {
                self.write_failed(&error);
                return (written, true);
            }
            self.pending.drain(..end);
            self.unsynced
                .extend(self.pending_tokens.drain(..end).flatten());
            written += end;
        }
        (written, false)
    }

    /// With `fsync = "interval"`: fsyncs when the interval has passed.
    pub fn sync_if_due(&mut self) {
        if let Some(interval) = self.fsync_interval
            && self.last_sync.elapsed() >= interval
        {
            self.sync();
        }
    }

    /// Makes every written record durable, then settles their acknowledgements. False when the
    /// fsync failed (counted, shown on /health; the records stay unsettled).
    pub fn sync(&mut self) -> bool {
        self.last_sync = Instant::now();
        if self.unsynced.is_empty() {
            return true;
        }
        self.sync_failed = self
            .spool
            .sync()
            .map_err(|e| self.write_failed(&e))
            .is_err();
        if self.sync_failed {
            return false;
        }
        for token in self.unsynced.drain(..) {
            token.settle();
        }
        true
    }

    fn write_failed(&self, error: &SpoolError) {
        self.health.set_spool_writable(false);
        self.metrics.write_failed(error);
    }

    /// The next frame to replay, when replay may go on: no failure being handled, the backoff
    /// passed, fewer than `REPLAY_FRAMES_IN_FLIGHT` frames out.
    pub fn next_replay(&mut self) -> Option<ReadFrame> {
        if self.replay_failed
            || self.replaying >= REPLAY_FRAMES_IN_FLIGHT
            || Instant::now() < self.next_attempt
            || !self.spool.has_unread()
        {
            return None;
        }
        match self.spool.next_frame() {
            Ok(Some(frame)) => {
                self.replaying += 1;
                self.update_gauges();
                Some(frame)
            }
            Ok(None) => {
                self.update_gauges();
                None
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the spool; replay retries later");
                self.next_attempt = Instant::now() + self.backoff.next_wait();
                None
            }
        }
    }

    /// Every record of a replayed frame was reported. A frame delivered (or given up, counted)
    /// is done; a failed one makes the spool rewind once the frames still out are reported.
    pub fn replayed(&mut self, pos: FramePos, records: usize, failed: bool) {
        if failed {
            self.replaying = self.replaying.saturating_sub(1);
            self.replay_failed = true;
        } else {
            self.metrics.replayed.increment(records as u64);
            self.backoff.reset();
            self.frame_done(pos);
        }
        if self.replay_failed && self.replaying == 0 {
            self.spool.rewind();
            self.replay_failed = false;
            let wait = self.backoff.next_wait();
            self.next_attempt = Instant::now() + wait;
            self.metrics.replay_retries.increment(1);
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "replay from the spool failed; retrying from the oldest undelivered record"
            );
        }
        self.update_gauges();
    }

    /// A replayed frame that is done with: delivered, or its records given up
    /// (`retry_max_elapsed_secs`, counted by the caller).
    pub fn frame_done(&mut self, pos: FramePos) {
        self.replaying = self.replaying.saturating_sub(1);
        if let Err(error) = self.spool.delivered(pos) {
            tracing::warn!(%error, "cannot record spool progress; some records may be replayed twice after a restart");
        }
        self.update_gauges();
    }

    /// Nothing left: no record waiting, unread, unsynced or out for replay.
    pub fn is_drained(&self) -> bool {
        self.pending.is_empty()
            && self.unsynced.is_empty()
            && self.replaying == 0
            && self.spool.is_drained()
    }

    /// Records in the spool not yet delivered.
    pub fn has_unread(&self) -> bool {
        self.spool.has_unread()
    }

    /// Writes what is queued and fsyncs, at shutdown; records that cannot be written are read
    /// again from their sources after the restart.
    pub fn close(&mut self) {
        self.write_pending();
        if !self.has_pending() && self.sync() {
            if let Err(error) = self.spool.persist_position() {
                tracing::warn!(%error, "cannot record spool progress at shutdown");
            }
        } else if !self.pending.is_empty() {
            tracing::warn!(
                records = self.pending.len(),
                "records could not be spooled at shutdown; they are read again from their sources"
            );
        }
    }

    fn update_gauges(&self) {
        let stats = self.spool.stats();
        self.metrics.bytes.set(stats.bytes as f64);
        self.metrics.segments.set(stats.segments as f64);
        self.metrics.records.set(stats.records as f64);
        self.metrics
            .losses(stats.corrupt_frames_total, stats.lost_segments_total);
    }
}
