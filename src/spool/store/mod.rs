//! The spool directory: which segment files exist, where replay stands, how much disk the spool
//! uses, and what start-up recovery does with what it finds.
//!
//! ```text
//! <dir>/                       (0700; files 0600)
//!   00000000000000000007.seg   segments, {id:020}.seg; ids only grow; frames are read in
//!   00000000000000000008.seg   (id, offset) order, the newest segment is the one appended to
//!   position                   "logship-spool-position 1\n<segment> <offset>\n": the first frame
//!                              not yet delivered, where replay resumes after a restart
//!   damaged/                   what could not be read, kept for an operator: segments that are
//!                              not regular files, bytes cut off a torn write
//! ```
//!
//! [`Spool`] owns this layout: appending frames (a new segment once the current one reaches
//! `segment_max_bytes`, and always a new one after a restart), making them durable, reading them
//! back in order (only what an fsync made durable, including frames appended while replay
//! runs), tracking delivery (out of order allowed; only the contiguous delivered prefix moves the
//! position), deleting segments once every frame in and before them is delivered, persisting the
//! position atomically, and the byte accounting behind [`Spool::fits`].
//!
//! Damage is repaired, counted once and logged, never a blocking error:
//!
//! - A failed fsync is never retried on the same file (Linux reports a lost writeback once):
//!   the segment is given up, cut back to what was durable, and its unsynced frames, kept in
//!   memory, are written again to a fresh segment; [`Spool::sync`] succeeds only once they are
//!   durable there.
//! - At start, only the segment written last before a crash can end in a torn write: damage after
//!   its last good frame is copied into `damaged/` and cut off (`torn` bytes, not a loss: those
//!   records were never acknowledged). Damage anywhere else is corruption: skipped and counted
//!   (`corrupt`), the frames after it kept.
//! - A read that fails for a reason that may pass (EMFILE, ENOMEM, one EIO) is an error to retry;
//!   a segment that is no longer a regular file is moved aside; one cut short under the spool, or
//!   failing with EIO again and again, has its rest skipped (`unreadable`), keeping the frames
//!   before the failure.
//! - A missing or garbled position means "replay everything left"; a position past its segment's
//!   data resumes at that segment's end, one naming a segment that is gone at the next segment.
//!
//! Not here: the frame format, its checksums and finding the next frame after damage
//! (`segment`); when to spool, when to replay, blocking or dropping when the spool is full, and
//! how often to sync (the producer, which owns the one [`Spool`]).
//!
//! The roles, one file each: `layout` (file names, listing, directories, directory fsync),
//! `position` (the position file), `recovery` (what `open` does with what it finds), `append`
//! (writing and syncing segments), `replay` (reading in order, delivery, deleting what is done),
//! `progress` (which returned frames are delivered; no I/O), `error`.

mod append;
mod error;
mod layout;
mod position;
mod progress;
mod recovery;
mod replay;
#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use tracing::warn;

use super::segment::{SegmentReader, SegmentWriter, SpoolRecord};
pub use error::SpoolError;
use layout::{POSITION_TMP, create_private_dir, list_segment_ids, remove_if_present};
use position::read_position;
use progress::Progress;
pub use recovery::RecoveryReport;

/// Where the spool lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The spool directory; created if missing.
    pub dir: PathBuf,
    /// Most bytes of segment files on disk, as checked by [`Spool::fits`].
    pub max_bytes: u64,
    /// A new segment is started once the current one holds at least this many bytes.
    pub segment_max_bytes: u64,
}

/// Identifies one frame: its segment's id and its start offset in that segment. `Ord` is the
/// read order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FramePos {
    /// The segment's id (its file name).
    pub segment: u64,
    /// Where the frame starts in that segment.
    pub offset: u64,
}

impl FramePos {
    const fn at(segment: u64, offset: u64) -> Self {
        Self { segment, offset }
    }
}

/// One frame returned by [`Spool::next_frame`]; pass `pos` to [`Spool::delivered`] once every
/// record in it has been delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFrame {
    /// Where the frame is.
    pub pos: FramePos,
    /// Its records, in append order.
    pub records: Vec<SpoolRecord>,
}

/// Bytes of segment files skipped, by why. Each stretch is counted once, however often it is
/// read (rewinds, restarts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SkippedBytes {
    /// Cut off the segment written last before a crash: a write that never completed, whose
    /// records were never acknowledged (their sources send them again). Not a loss.
    pub torn: u64,
    /// Damaged frames and stretches without a frame: their records are lost.
    pub corrupt: u64,
    /// The rest of a segment after a read that kept failing, or that found the file cut
    /// short: its records are lost.
    pub unreadable: u64,
}

/// The spool's size and damage counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes of segment files on disk (and of frames waiting to be written again).
    pub bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Records appended or recovered and not delivered yet.
    pub records: u64,
    /// Damaged stretches (a frame, or several frames whose headers cannot be found) found since
    /// start, at or after where replay resumed; each counted once.
    pub corrupt_frames_total: u64,
    /// Segments lost since start: moved aside (not regular files), or vanished.
    pub lost_segments_total: u64,
    /// Bytes skipped since start, by why.
    pub skipped: SkippedBytes,
}

/// The spool directory, owned by the producer task (see the module docs). The intended use:
/// [`Spool::fits`] then [`Spool::append`] while Kafka cannot take records, [`Spool::sync`] as
/// the fsync policy says; [`Spool::next_frame`] to replay, [`Spool::delivered`] per frame once
/// Kafka acknowledged all of it, [`Spool::rewind`] when sends failed and must be retried;
/// [`Spool::persist_position`] now and then and at shutdown.
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    /// Segment files, by id (= read order).
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to: always the newest.
    writer: Option<(u64, SegmentWriter)>,
    /// Frames appended to the writer's segment since its last fsync, kept to be written again
    /// should that fsync fail.
    unsynced: Vec<Kept>,
    /// Frames of a segment whose fsync failed, to be written to a fresh segment before
    /// anything else.
    rewrite: VecDeque<Kept>,
    /// Id of the next segment created.
    next_id: u64,
    /// Where the next frame is read. Every frame before it was returned in this pass, or is
    /// before the delivered prefix.
    cursor: FramePos,
    /// Open on `cursor`, when not `None`.
    reader: Option<SegmentReader>,
    /// Frames returned by `next_frame` from the delivered prefix on.
    seen: Progress,
    /// Where each damaged stretch counted so far starts: counted once, however often read.
    counted: BTreeSet<FramePos>,
    /// EIO errors in a row reading at one place: after a few, the rest of that segment is
    /// skipped.
    io_errors: Option<(FramePos, u32)>,
    /// Delivered segments whose file could not be deleted, with their size: deleting them is
    /// tried again, and their bytes still count.
    undeleted: BTreeMap<u64, u64>,
    corrupt_frames_total: u64,
    lost_segments_total: u64,
    skipped: SkippedBytes,
    /// What the position file holds: `None` unknown, `Some(None)` no file.
    persisted: Option<Option<FramePos>>,
    last_persist: Option<Instant>,
}

/// One segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Bytes on disk.
    len: u64,
    /// Frames before this offset are durable and may be read: fsynced, or found at start.
    readable: u64,
    /// Records in its frames not delivered yet.
    records: u64,
}

/// A frame as appended, kept until its segment's fsync succeeded.
#[derive(Debug)]
struct Kept {
    frame: Vec<u8>,
    records: u64,
}

impl Spool {
    /// Opens (and creates) the spool directory and recovers what it holds; see the module docs.
    /// Fails only when the directory cannot be created or listed.
    pub fn open(settings: SpoolSettings) -> Result<(Spool, RecoveryReport), SpoolError> {
        let dir = settings.dir.clone();
        create_private_dir(&dir).map_err(|source| SpoolError::Dir {
            path: dir.clone(),
            source,
        })?;
        remove_if_present(&dir.join(POSITION_TMP));
        let stored = read_position(&dir);
        let ids = list_segment_ids(&dir)?;
        let recovered = recovery::recover(&dir, &ids, stored);
        let mut report = recovered.report;
        let mut spool = Spool {
            settings,
            segments: recovered.segments,
            writer: None,
            unsynced: Vec::new(),
            rewrite: VecDeque::new(),
            next_id: recovered.next_id,
            cursor: recovered.cursor,
            reader: None,
            seen: Progress::default(),
            counted: recovered.counted,
            io_errors: None,
            undeleted: BTreeMap::new(),
            corrupt_frames_total: report.corrupt_frames,
            lost_segments_total: report.moved_aside.len() as u64,
            skipped: SkippedBytes {
                torn: report.torn_bytes,
                corrupt: report.corrupt_bytes,
                unreadable: 0,
            },
            persisted: recovered.persisted,
            last_persist: None,
        };
        spool.settle_cursor();
        if let Err(err) = spool.release_delivered().1 {
            warn!(error = %err, "cannot delete a delivered spool segment; will retry");
        }
        let stats = spool.stats();
        report.segments = stats.segments;
        report.bytes = stats.bytes;
        report.records = stats.records;
        Ok((spool, report))
    }

    /// Current size and counters.
    pub fn stats(&self) -> SpoolStats {
        let kept = self.rewrite.iter();
        SpoolStats {
            bytes: self.segments.values().map(|s| s.len).sum::<u64>()
                + self.undeleted.values().sum::<u64>()
                + kept.clone().map(|k| k.frame.len() as u64).sum::<u64>(),
            segments: (self.segments.len() + self.undeleted.len()) as u64,
            records: self.segments.values().map(|s| s.records).sum::<u64>()
                + kept.map(|k| k.records).sum::<u64>(),
            corrupt_frames_total: self.corrupt_frames_total,
            lost_segments_total: self.lost_segments_total,
            skipped: self.skipped,
        }
    }

    /// Whether `estimate` more bytes stay within `max_bytes`. An empty spool always takes one
    /// frame, so a frame larger than `max_bytes` cannot wedge it.
    pub fn fits(&self, estimate: u64) -> bool {
        let bytes = self.stats().bytes;
        bytes == 0 || bytes.saturating_add(estimate) <= self.settings.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::layout::{POSITION_FILE, POSITION_TMP};
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::fs;
    use std::path::Path;
    use tempfile::TempDir;

    #[test]
    fn frames_span_segments_and_a_full_drain_leaves_nothing() {
        let dir = TempDir::new().unwrap();
        let (mut spool, report) = open(dir.path(), 300);
        assert_eq!(report.segments, 0);
        let positions: Vec<FramePos> = (0..10)
            .map(|i| spool.append(&batch(i * 3, 3)).unwrap())
            .collect();
        spool.sync().unwrap();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        let stats = spool.stats();
        assert!(segment_files(dir.path()).len() >= 3, "{stats:?}");
        assert_eq!(stats.segments, segment_files(dir.path()).len() as u64);
        assert_eq!(stats.bytes, bytes_on_disk(dir.path()));
        assert_eq!(stats.records, 30);
        assert!(spool.has_unread());

        let frames = read_all(&mut spool);
        assert_eq!(frames.iter().map(|f| f.pos).collect::<Vec<_>>(), positions);
        assert_eq!(ids(&frames), (0..30).collect::<Vec<_>>());
        assert!(!spool.has_unread());
        assert!(!spool.is_drained());
        for frame in &frames {
            spool.delivered(frame.pos).unwrap();
        }
        assert!(spool.is_drained());
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(spool.stats(), SpoolStats::default());
        assert!(!dir.path().join(POSITION_FILE).exists());

        drop(spool);
        let (mut spool, report) = open(dir.path(), 300);
        assert_eq!((report.segments, report.records, report.bytes), (0, 0, 0));
        assert!(spool.next_frame().unwrap().is_none());
        // A new segment after a drain: appends and reads work as before.
        let pos = spool.append(&batch(100, 1)).unwrap();
        assert!(read_all(&mut spool).is_empty(), "not durable yet");
        spool.sync().unwrap();
        assert_eq!(read_all(&mut spool)[0].pos, pos);
    }

    #[test]
    fn fits_allows_one_frame_into_an_empty_spool() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = Spool::open(SpoolSettings {
            dir: dir.path().to_path_buf(),
            max_bytes: 1000,
            segment_max_bytes: u64::MAX,
        })
        .unwrap();
        assert!(spool.fits(5000));
        let pos = spool.append(&batch(0, 1)).unwrap();
        spool.sync().unwrap();
        let used = spool.stats().bytes;
        assert!(used > 0 && used < 1000);
        assert!(spool.fits(1000 - used));
        assert!(!spool.fits(1000 - used + 1));
        assert!(!spool.fits(5000));
        spool.next_frame().unwrap();
        spool.delivered(pos).unwrap();
        assert!(spool.fits(5000));
    }

    /// Needs a small file system, e.g. `mount -t tmpfs -o size=256k tmpfs /mnt/small`, then
    /// `LOGSHIP_SMALL_FS=/mnt/small cargo test -- --ignored disk_full`.
    #[test]
    #[ignore = "needs LOGSHIP_SMALL_FS: a directory on a small file system"]
    fn a_full_disk_fails_appends_cleanly_and_replay_frees_it() {
        let small = std::env::var_os("LOGSHIP_SMALL_FS").expect("set LOGSHIP_SMALL_FS");
        let dir = TempDir::new_in(small).unwrap();
        let (mut spool, _) = open(dir.path(), 16 * 1024);
        let big = |id: u64| {
            let mut r = record(id);
            r.payload = (0..3000u64)
                .map(|i| record(id * 3000 + i).headers[0].1[0])
                .collect();
            r
        };
        let mut appended = 0;
        let err = loop {
            match spool.append(&[big(appended)]) {
                Ok(_) => appended += 1,
                Err(err) => break err,
            }
            assert!(appended < 10_000, "the file system never filled up");
        };
        assert!(err.is_disk_full(), "{err}");
        assert!(appended > 0);
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));
        assert!(spool.append(&[big(appended)]).unwrap_err().is_disk_full());
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));

        spool.sync().unwrap();
        let frames = read_all(&mut spool);
        assert_eq!(ids(&frames), (0..appended).collect::<Vec<_>>());
        for frame in &frames {
            // Persisting the position may fail until a deletion frees room; delivery counts.
            if let Err(err) = spool.delivered(frame.pos) {
                assert!(err.is_disk_full(), "{err}");
            }
        }
        assert!(spool.is_drained());
        assert!(segment_files(dir.path()).is_empty());
        assert!(!dir.path().join(POSITION_FILE).exists());
        assert!(!dir.path().join(POSITION_TMP).exists());
        let pos = spool.append(&[big(appended)]).unwrap();
        spool.sync().unwrap();
        assert_eq!(spool.next_frame().unwrap().unwrap().pos, pos);
    }

    #[test]
    fn spool_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Spool>();
    }

    #[test]
    fn open_fails_only_without_a_directory() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            Spool::open(settings(&file, 100)),
            Err(SpoolError::Dir { .. })
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u64),
        Next,
        Deliver(prop::sample::Index),
        Rewind,
        Reopen { persist: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..4).prop_map(Op::Append),
            3 => Just(Op::Next),
            3 => any::<prop::sample::Index>().prop_map(Op::Deliver),
            1 => Just(Op::Rewind),
            1 => any::<bool>().prop_map(|persist| Op::Reopen { persist }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_operations_never_lose_a_record(
            ops in proptest::collection::vec(op(), 1..80),
            segment_max_bytes in 50u64..600,
        ) {
            let dir = TempDir::new().unwrap();
            let d = dir.path();
            let (mut spool, _) = open(d, segment_max_bytes);
            let mut appended = 0u64;
            let mut delivered: HashSet<u64> = HashSet::new();
            // Frames returned since the last reopen, not yet delivered by this test (some were
            // forgotten by a rewind: their delivery reports arrive late).
            let mut pending: Vec<ReadFrame> = Vec::new();
            let mut last_in_pass: Option<u64> = None;
            // Records a rewind must return again (unless delivered late) before reading ends.
            let mut owed: HashSet<u64> = HashSet::new();
            for op in ops {
                match op {
                    Op::Append(n) => {
                        // Synced at once: this property is about reading and delivery; the
                        // crash property below is about durability.
                        spool.append(&batch(appended, n)).unwrap();
                        spool.sync().unwrap();
                        appended += n;
                    }
                    Op::Next => {
                        let unread = spool.has_unread();
                        let frame = spool.next_frame().unwrap();
                        prop_assert_eq!(unread, frame.is_some());
                        if let Some(frame) = frame {
                            for id in ids(std::slice::from_ref(&frame)) {
                                prop_assert!(last_in_pass.is_none_or(|last| id > last));
                                last_in_pass = Some(id);
                                owed.remove(&id);
                            }
                            pending.push(frame);
                        }
                    }
                    Op::Deliver(index) => {
                        if !pending.is_empty() {
                            let frame = pending.swap_remove(index.index(pending.len()));
                            spool.delivered(frame.pos).unwrap();
                            for id in ids(&[frame]) {
                                owed.remove(&id);
                                delivered.insert(id);
                            }
                        }
                    }
                    Op::Rewind => {
                        spool.rewind();
                        last_in_pass = None;
                        let undelivered = ids(&pending).into_iter().filter(|id| !delivered.contains(id));
                        owed.extend(undelivered);
                    }
                    Op::Reopen { persist } => {
                        if persist {
                            spool.persist_position().unwrap();
                        }
                        drop(spool);
                        spool = open(d, segment_max_bytes).0;
                        pending.clear();
                        last_in_pass = None;
                        owed.clear(); // the final reopen-and-drain checks these
                    }
                }
                if !spool.has_unread() {
                    prop_assert!(owed.is_empty(), "rewound records never re-read: {:?}", owed);
                }
                let stats = spool.stats();
                prop_assert_eq!(stats.bytes, bytes_on_disk(d));
                prop_assert_eq!(stats.segments, segment_files(d).len() as u64);
                prop_assert!(stats.records >= appended - delivered.len() as u64);
            }

            drop(spool);
            let (mut spool, _) = open(d, segment_max_bytes);
            let mut last = None;
            while let Some(frame) = spool.next_frame().unwrap() {
                for id in ids(std::slice::from_ref(&frame)) {
                    prop_assert!(last.is_none_or(|last| id > last));
                    last = Some(id);
                    delivered.insert(id);
                }
                spool.delivered(frame.pos).unwrap();
            }
            prop_assert_eq!(delivered.len() as u64, appended);
            prop_assert!(spool.is_drained());
            prop_assert_eq!(spool.stats(), SpoolStats::default());
            prop_assert!(segment_files(d).is_empty());
            prop_assert!(!d.join(POSITION_FILE).exists());
        }
    }

    /// What the crash proptest knows of one frame it appended.
    #[derive(Debug, Clone)]
    struct Appended {
        ids: Vec<u64>,
        /// Made durable by a sync (or by surviving a crash).
        durable: bool,
    }

    #[derive(Debug, Clone)]
    enum CrashOp {
        Append(u64),
        Sync,
        Next,
        Deliver(prop::sample::Index),
        Rewind,
        /// Power loss: what was not synced is lost, except a random part of the writer's
        /// unsynced tail (writeback got that far); optionally one durable frame's header is
        /// damaged too.
        Crash {
            survives: prop::sample::Index,
            damage: Option<(prop::sample::Index, prop::sample::Index)>,
        },
    }

    fn crash_op() -> impl Strategy<Value = CrashOp> {
        prop_oneof![
            4 => (1u64..4).prop_map(CrashOp::Append),
            2 => Just(CrashOp::Sync),
            4 => Just(CrashOp::Next),
            4 => any::<prop::sample::Index>().prop_map(CrashOp::Deliver),
            1 => Just(CrashOp::Rewind),
            1 => (
                any::<prop::sample::Index>(),
                proptest::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
            )
                .prop_map(|(survives, damage)| CrashOp::Crash { survives, damage }),
        ]
    }

    /// Where each of `frames` ends: the next frame of its segment, or the file's end.
    fn frame_ends(dir: &Path, frames: &BTreeMap<FramePos, Appended>) -> BTreeMap<FramePos, u64> {
        let positions: Vec<FramePos> = frames.keys().copied().collect();
        positions
            .iter()
            .enumerate()
            .map(|(i, pos)| {
                let end = match positions.get(i + 1) {
                    Some(next) if next.segment == pos.segment => next.offset,
                    _ => fs::metadata(layout::segment_path(dir, pos.segment))
                        .map_or(pos.offset, |m| m.len()),
                };
                (*pos, end)
            })
            .collect()
    }

    fn stored_position(dir: &Path) -> Option<FramePos> {
        let text = fs::read_to_string(dir.join(POSITION_FILE)).ok()?;
        let (segment, offset) = text.lines().nth(1)?.split_once(' ')?;
        Some(FramePos::at(segment.parse().ok()?, offset.parse().ok()?))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Review: the first proptest never reproduced a crash. Here a crash copies the spool
        /// directory as a power loss leaves it (the writer's unsynced tail cut, maybe partly
        /// kept), sometimes with one durable frame's header damaged, and the spool is reopened
        /// on the copy. Nothing delivered before the stored position comes back (the position
        /// never passes durable data: finding 4), and every durable frame comes back except the
        /// damaged one (damage costs that frame only: finding 1).
        #[test]
        fn a_crash_loses_only_what_was_never_synced(
            ops in proptest::collection::vec(crash_op(), 1..120),
            segment_max_bytes in 150u64..900,
        ) {
            let mut dir = TempDir::new().unwrap();
            let (mut spool, _) = open(dir.path(), segment_max_bytes);
            let mut appended = 0u64;
            let mut frames: BTreeMap<FramePos, Appended> = BTreeMap::new();
            // The segment appended to since the last (re)open, and its length at the last sync.
            let mut writer: Option<u64> = None;
            let mut synced_len: BTreeMap<u64, u64> = BTreeMap::new();
            let mut outstanding: Vec<ReadFrame> = Vec::new();
            let mut delivered: HashSet<u64> = HashSet::new();
            let mut gone: HashSet<u64> = HashSet::new();
            let mut last_in_pass: Option<u64> = None;
            for op in ops {
                match op {
                    CrashOp::Append(n) => {
                        let pos = spool.append(&batch(appended, n)).unwrap();
                        if writer.is_some_and(|w| w != pos.segment) {
                            // Starting a segment syncs the one before.
                            frames.values_mut().for_each(|f| f.durable = true);
                        }
                        writer = Some(pos.segment);
                        frames.insert(pos, Appended { ids: (appended..appended + n).collect(), durable: false });
                        appended += n;
                    }
                    CrashOp::Sync => {
                        spool.sync().unwrap();
                        frames.values_mut().for_each(|f| f.durable = true);
                        if let Some(w) = writer {
                            let len = fs::metadata(layout::segment_path(dir.path(), w)).map_or(0, |m| m.len());
                            synced_len.insert(w, len);
                        }
                    }
                    CrashOp::Next => {
                        if let Some(frame) = spool.next_frame().unwrap() {
                            prop_assert!(frames.contains_key(&frame.pos), "unknown frame {:?}", frame.pos);
                            for id in ids(std::slice::from_ref(&frame)) {
                                prop_assert!(!gone.contains(&id), "record {} came back", id);
                                prop_assert!(last_in_pass.is_none_or(|last| id > last));
                                last_in_pass = Some(id);
                            }
                            outstanding.push(frame);
                        }
                    }
                    CrashOp::Deliver(index) => {
                        if !outstanding.is_empty() {
                            let frame = outstanding.swap_remove(index.index(outstanding.len()));
                            let _ = spool.delivered(frame.pos);
                            delivered.extend(ids(&[frame]));
                        }
                    }
                    CrashOp::Rewind => {
                        spool.rewind();
                        last_in_pass = None;
                    }
                    CrashOp::Crash { survives, damage } => {
                        let ends = frame_ends(dir.path(), &frames);
                        let copy = TempDir::new().unwrap();
                        let mut kept: BTreeMap<u64, u64> = BTreeMap::new();
                        for path in segment_files(dir.path()) {
                            let bytes = fs::read(&path).unwrap();
                            let id = layout::parse_segment_name(path.file_name().unwrap().to_str().unwrap()).unwrap();
                            let len = if writer == Some(id) {
                                let synced = synced_len.get(&id).copied().unwrap_or(0).min(bytes.len() as u64);
                                synced + survives.index(bytes.len() - synced as usize + 1) as u64
                            } else {
                                bytes.len() as u64
                            };
                            fs::write(copy.path().join(path.file_name().unwrap()), &bytes[..len as usize]).unwrap();
                            kept.insert(id, len);
                        }
                        if let Ok(position) = fs::read(dir.path().join(POSITION_FILE)) {
                            fs::write(copy.path().join(POSITION_FILE), position).unwrap();
                        }
                        drop(spool);
                        // What a power loss kept: durable frames, and unsynced ones written out
                        // whole; not the segments the spool deleted (delivered).
                        frames.retain(|pos, frame| {
                            let Some(&len) = kept.get(&pos.segment) else {
                                gone.extend(&frame.ids);
                                return false;
                            };
                            if frame.durable || ends[pos] <= len {
                                frame.durable = true;
                                true
                            } else {
                                gone.extend(&frame.ids);
                                false
                            }
                        });
                        let covered = stored_position(copy.path());
                        if let Some(at) = covered {
                            let after = frames.split_off(&at);
                            for frame in frames.values() {
                                gone.extend(&frame.ids);
                            }
                            frames = after;
                        }
                        if let Some((which, byte)) = damage.filter(|_| !frames.is_empty()) {
                            let pos = *frames.keys().nth(which.index(frames.len())).unwrap();
                            let path = layout::segment_path(copy.path(), pos.segment);
                            let mut bytes = fs::read(&path).unwrap();
                            bytes[pos.offset as usize + byte.index(9)] ^= 0x20;
                            fs::write(&path, bytes).unwrap();
                            gone.extend(&frames.remove(&pos).unwrap().ids);
                        }
                        dir = copy;
                        spool = open(dir.path(), segment_max_bytes).0;
                        writer = None;
                        synced_len.clear();
                        outstanding.clear();
                        delivered.clear();
                        last_in_pass = None;
                    }
                }
            }

            // A clean stop and restart, then everything is read: every frame that survived,
            // and nothing that was lost or delivered before the stored position.
            spool.sync().unwrap();
            spool.persist_position().unwrap();
            drop(spool);
            let (mut spool, _) = open(dir.path(), segment_max_bytes);
            let mut read: HashSet<u64> = HashSet::new();
            while let Some(frame) = spool.next_frame().unwrap() {
                for id in ids(std::slice::from_ref(&frame)) {
                    prop_assert!(!gone.contains(&id), "record {} came back", id);
                    read.insert(id);
                }
                spool.delivered(frame.pos).unwrap();
            }
            for frame in frames.values() {
                for id in &frame.ids {
                    prop_assert!(read.contains(id) || delivered.contains(id), "record {} lost", id);
                }
            }
            prop_assert!(spool.is_drained());
        }
    }
}
