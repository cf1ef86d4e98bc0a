//! The producer's disk side (design invariant 5): what is written to the spool, when it is made
//! durable, what a full spool does, and how replay is paced. The segment files are
//! `crate::spool`; when the producer spools and replays is `producer.rs`.
//!
//! Records reach the spool in order: first those taken back from librdkafka (sorted by send
//! time), then new events. Each write appends frames of at most `min(1 MiB, segment_max_bytes /
//! 2)`; a record's acknowledgement settles once its frame is fsynced, so its source's checkpoint
//! may pass it. A failed fsync keeps /health red until the frames are durable: the spool writes
//! them again to a fresh segment (never fsyncing the failed one again) and only that fsync
//! settles them. A record no frame can hold is dropped, counted and settled, never retried for
//! ever. Replay hands frames back to librdkafka, a few at a time; a frame is delivered when
//! every record in it was acknowledged. When one fails, the frames in flight are waited for, the
//! spool rewinds to its oldest undelivered frame, and replay starts again after an exponential
//! backoff with jitter.

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

/// Frames held in memory until they are durable (the spool keeps them to write them again if
/// an fsync fails) are fsynced once they reach this many bytes, whatever the fsync policy:
/// memory stays bounded (invariant 2).
const UNSYNCED_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes of a record's encoding besides its fields: length prefixes, and per header two more.
const RECORD_FRAMING_BYTES: u64 = 12;
const HEADER_FRAMING_BYTES: u64 = 6;

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
        let damaged = report.corrupt_frames > 0 || report.torn_bytes > 0;
        if report.records > 0 || damaged || !report.moved_aside.is_empty() {
            tracing::info!(
                dir = %settings.store.dir.display(),
                segments = report.segments,
                records = report.records,
                corrupt_frames = report.corrupt_frames,
                corrupt_bytes = report.corrupt_bytes,
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
        // After a batch that cannot be framed, records go one per frame until the queue empties.
        let mut one_by_one = false;
        while !self.pending.is_empty() {
            // At least one record per frame, then as many as `frame_max_bytes` holds.
            let mut end = 0;
            let mut estimate = 0;
            for record in &self.pending {
                let size = encoded_size(record);
                if end > 0 && (one_by_one || estimate + size > self.frame_max_bytes) {
                    break;
                }
                end += 1;
                estimate += size;
            }
            if !self.spool.fits(estimate) {
                break;
            }
            match self.spool.append(&self.pending[..end]) {
                Ok(_) => {}
                Err(error) if error.is_unwritable_batch() => {
                    if end == 1 {
                        self.drop_unwritable(&error);
                    }
                    one_by_one = true;
                    continue;
                }
                Err(error) => {
                    self.write_failed(&error);
                    return (written, true);
                }
            }
            self.pending.drain(..end);
            self.unsynced
                .extend(self.pending_tokens.drain(..end).flatten());
            written += end;
            if self.spool.unsynced_bytes() >= UNSYNCED_MAX_BYTES && !self.sync() {
                return (written, true);
            }
        }
        (written, false)
    }

    /// The record at the front of the queue can never be spooled (no frame holds it): a
    /// permanent verdict, like Kafka rejecting it for good. Dropped, counted, and settled so
    /// its source moves on (invariant 3); the queue behind it flows again.
    fn drop_unwritable(&mut self, error: &SpoolError) {
        let record = self.pending.remove(0);
        self.metrics.too_large(&record.topic, error);
        if let Some(token) = self.pending_tokens.remove(0) {
            token.settle();
        }
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
        if self.unsynced.is_empty() && !self.spool.needs_sync() {
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
    /// again from their sources after the restart. The position is saved whatever else failed:
    /// it only says which durable frames were delivered.
    pub fn close(&mut self) {
        self.write_pending();
        self.sync();
        if !self.pending.is_empty() {
            tracing::warn!(
                records = self.pending.len(),
                "records could not be spooled at shutdown; they are read again from their sources"
            );
        }
        if let Err(error) = self.spool.persist_position() {
            tracing::warn!(%error, "cannot record spool progress at shutdown");
        }
    }

    fn update_gauges(&self) {
        let stats = self.spool.stats();
        self.metrics.bytes.set(stats.bytes as f64);
        self.metrics.segments.set(stats.segments as f64);
        self.metrics.records.set(stats.records as f64);
        self.metrics.losses(&stats);
    }
}

/// About what `record` takes in a frame before compression: its fields and their framing.
fn encoded_size(record: &SpoolRecord) -> u64 {
    let headers: u64 = record
        .headers
        .iter()
        .map(|(name, value)| (name.len() + value.len()) as u64 + HEADER_FRAMING_BYTES)
        .sum();
    let key = record.key.as_ref().map_or(0, Vec::len);
    (record.topic.len() + key + record.payload.len()) as u64 + headers + RECORD_FRAMING_BYTES
}

#[cfg(test)]
mod tests {
    //! The spooler on a real spool directory: what settles when, what a failed fsync or an
    //! unwritable record does, and what shutdown leaves in the position file.
    use super::*;
    use crate::ack::AckTracker;
    use crate::spool::StoreSettings;
    use crate::spool::segment::faults;
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
    use tempfile::TempDir;

    fn settings(dir: &std::path::Path, max_bytes: u64, segment_max_bytes: u64) -> SpoolSettings {
        SpoolSettings {
            store: StoreSettings {
                dir: dir.to_path_buf(),
                max_bytes,
                segment_max_bytes,
            },
            when_full: WhenFull::Block,
            fsync_interval: None,
        }
    }

    /// A spooler whose metrics go to a recorder of the test's own.
    fn spooler(settings: &SpoolSettings) -> (Spooler, PrometheusRecorder) {
        let recorder = PrometheusBuilder::new().build_recorder();
        let spooler = metrics::with_local_recorder(&recorder, || {
            let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
            let health = Arc::new(Health::new(Duration::from_secs(60)));
            Spooler::open(settings, backoff, health).unwrap()
        });
        (spooler, recorder)
    }

    fn sample(recorder: &PrometheusRecorder, name: &str) -> Option<f64> {
        let text = recorder.handle().render();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    }

    fn record(n: u64, payload_bytes: usize) -> SpoolRecord {
        SpoolRecord {
            topic: "logs".to_owned(),
            key: Some(n.to_le_bytes().to_vec()),
            headers: Vec::new(),
            payload: noise(n, payload_bytes),
        }
    }

    /// Bytes that do not compress.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// Replays everything the spool holds, delivered; returns each frame's record keys.
    fn replay_all(spooler: &mut Spooler) -> Vec<Vec<u64>> {
        let mut frames = Vec::new();
        while let Some(frame) = spooler.next_replay() {
            let keys = frame
                .records
                .iter()
                .map(|r| u64::from_le_bytes(r.key.clone().unwrap().try_into().unwrap()))
                .collect();
            spooler.replayed(frame.pos, frame.records.len(), false);
            frames.push(keys);
        }
        frames
    }

    /// `fsync = "interval"` (invariant 1): written records settle only at the interval's fsync,
    /// never at the write, so a checkpoint cannot pass a record a crash could still lose.
    #[test]
    fn with_an_interval_records_settle_at_the_fsync_not_at_the_write() {
        let dir = TempDir::new().unwrap();
        let mut settings = settings(dir.path(), 1 << 30, 1 << 26);
        settings.fsync_interval = Some(Duration::from_millis(300));
        let (mut spooler, _) = spooler(&settings);
        let tracker = AckTracker::new(0u64);
        for n in 0..3 {
            spooler.hold(record(n, 100), Some(tracker.track(n + 1)));
        }
        faults::take_syncs();
        spooler.write_pending();
        spooler.sync_if_due();
        assert_eq!(tracker.position(), 0, "written, not yet fsynced");
        let early = faults::take_syncs();
        assert!(
            early.is_empty(),
            "a segment fsynced before the interval: {early:?}"
        );
        std::thread::sleep(Duration::from_millis(350));
        spooler.sync_if_due();
        let synced = faults::take_syncs();
        assert!(
            synced.iter().any(|(_, failed)| !failed),
            "the interval's fsync: {synced:?}"
        );
        assert_eq!(tracker.position(), 3, "settled by the fsync");
    }

    /// Review finding 2 (fsyncgate): after a failed fsync, the next turn fsynced the same file
    /// again, which Linux answers with success although the data may never reach the disk, and
    /// settled the records. They must be written again to a fresh segment, and settle only
    /// once that one is fsynced. (The failed fsync is the one injected fault: see
    /// `segment::faults`.)
    #[test]
    fn a_failed_fsync_is_never_retried_on_the_same_segment() {
        let dir = TempDir::new().unwrap();
        let (mut spooler, _) = spooler(&settings(dir.path(), 1 << 30, 1 << 26));
        let tracker = AckTracker::new(0u64);
        for n in 0..3 {
            spooler.hold(record(n, 100), Some(tracker.track(n + 1)));
        }
        faults::take_syncs();
        faults::fail_next_syncs(1);
        spooler.write_pending();
        assert_eq!(
            tracker.position(),
            0,
            "nothing settles after a failed fsync"
        );
        spooler.write_pending();
        let syncs = faults::take_syncs();
        assert!(syncs.len() >= 2 && syncs[0].1, "{syncs:?}");
        let failed = &syncs[0].0;
        assert!(
            syncs[1..].iter().all(|(path, _)| path != failed),
            "the failed segment was fsynced again: {syncs:?}"
        );
        assert_eq!(
            tracker.position(),
            3,
            "settled once a fresh segment is fsynced"
        );
        let keys: Vec<u64> = replay_all(&mut spooler).concat();
        assert_eq!(keys, vec![0, 1, 2], "each record once");
    }

    /// Review finding 5: a record no frame can hold stayed at the front of the queue and every
    /// write failed on it, for ever. It is dropped, counted, and settled; the rest flows.
    #[test]
    fn a_record_too_large_for_a_frame_is_dropped_counted_and_settled() {
        let dir = TempDir::new().unwrap();
        let (mut spooler, recorder) = spooler(&settings(dir.path(), 1 << 30, 1 << 26));
        let tracker = AckTracker::new(0u64);
        let mut unwritable = record(1, 10);
        unwritable.topic = "t".repeat(70_000);
        spooler.hold(record(0, 10), Some(tracker.track(1)));
        spooler.hold(unwritable, Some(tracker.track(2)));
        spooler.hold(record(2, 10), Some(tracker.track(3)));
        spooler.write_pending();
        assert!(!spooler.has_pending());
        assert_eq!(tracker.position(), 3);
        assert_eq!(replay_all(&mut spooler).concat(), vec![0, 2]);
        let dropped = "logship_spool_records_dropped_total{reason=\"too_large\"}";
        assert_eq!(sample(&recorder, dropped), Some(1.0));
    }

    /// Review finding 13: the frame size estimate left out keys and headers, so records with
    /// large headers made frames many times `frame_max_bytes`.
    #[test]
    fn keys_and_headers_count_toward_a_frames_size() {
        let dir = TempDir::new().unwrap();
        let (mut spooler, _) = spooler(&settings(dir.path(), 1 << 30, 1 << 26));
        for n in 0..10 {
            let mut record = record(n, 10);
            record.headers = vec![("big".to_owned(), noise(n, 300_000))];
            spooler.hold(record, None);
        }
        spooler.write_pending();
        let frames = replay_all(&mut spooler);
        assert_eq!(frames.concat(), (0..10).collect::<Vec<_>>());
        assert!(
            frames.len() >= 3,
            "{} frames of 1 MiB at most",
            frames.len()
        );
    }

    /// Review finding 11: with records still waiting (a full spool) at shutdown, the position
    /// was not written, so frames delivered since the last write were replayed again.
    #[test]
    fn close_persists_the_position_even_with_records_waiting() {
        let dir = TempDir::new().unwrap();
        let (mut spooler, _) = spooler(&settings(dir.path(), 1_900_000, 1 << 26));
        for n in 0..4 {
            spooler.hold(record(n, 600_000), None);
        }
        spooler.write_pending();
        assert!(spooler.has_pending(), "the fourth record does not fit");
        let first = spooler.next_replay().unwrap();
        let second = spooler.next_replay().unwrap();
        spooler.replayed(first.pos, 1, false);
        spooler.replayed(second.pos, 1, false);
        spooler.close();
        let third = spooler.next_replay().unwrap();
        let position = std::fs::read_to_string(dir.path().join("position")).unwrap();
        let expected = format!(
            "logship-spool-position 1\n{} {}\n",
            third.pos.segment, third.pos.offset
        );
        assert_eq!(position, expected);
    }
}
