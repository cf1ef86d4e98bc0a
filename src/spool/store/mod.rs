//! The spool directory: which segment files exist, where replay stands, how much disk the spool
//! uses, and what start-up recovery does with what it finds.
//!
//! ```text
//! <dir>/
//!   00000000000000000007.seg   segments, {id:020}.seg; ids only grow; frames are read in
//!   00000000000000000008.seg   (id, offset) order, the newest segment is the one appended to
//!   position                   "logship-spool-position 1\n<segment> <offset>\n": the first frame
//!                              not yet delivered, where replay resumes after a restart
//!   damaged/                   segments that could not be read, moved aside for an operator
//! ```
//!
//! [`Spool`] owns this layout: appending frames (a new segment once the current one reaches
//! `segment_max_bytes`, and always a new one after a restart), reading them back in order
//! (including frames appended while replay runs), tracking delivery (out of order allowed; only
//! the contiguous delivered prefix moves the position), deleting segments once every frame in
//! and before them is delivered, persisting the position atomically, and the byte accounting
//! behind [`Spool::fits`]. Recovery never fails because of one bad segment: torn tails are cut,
//! corrupt frames skipped and counted, unreadable segments moved into `damaged/`, empty ones
//! removed, and a missing, garbled or stale position file means "replay everything left".
//!
//! Not here: the frame format, its checksums and the torn-tail rule (`segment.rs`); when to
//! spool, when to replay, blocking or dropping when the spool is full, and how often to sync
//! (the producer, which owns the one [`Spool`]).
//!
//! The roles, one file each: `layout` (file names, listing, directory fsync), `position` (the
//! position file), `recovery` (what `open` does with what it finds), `append` (writing and
//! syncing segments), `replay` (reading in order, delivery, deleting what is done), `progress`
//! (which returned frames are delivered; no I/O), `error`.

mod append;
mod error;
mod layout;
mod position;
mod progress;
mod recovery;
mod replay;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use tracing::warn;

use super::segment::{SegmentReader, SegmentWriter, SpoolRecord};
pub use error::SpoolError;
use layout::{POSITION_TMP, list_segment_ids, remove_if_present};
use position::{StoredPosition, read_position};
use progress::Progress;
pub use recovery::RecoveryReport;
use recovery::{recover_segments, resume_point};

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

/// The spool's size and damage counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes of segment files on disk.
    pub bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Records appended or recovered and not delivered yet.
    pub records: u64,
    /// Corrupt frames found since start, recovery included; each counted once.
    pub corrupt_frames_total: u64,
    /// Segments moved aside since start (unreadable at recovery, or failing to read later).
    pub lost_segments_total: u64,
}

/// The spool directory, owned by the producer task (see the module docs). The intended use:
/// [`Spool::fits`] then [`Spool::append`] while Kafka cannot take records, [`Spool::sync`] as
/// the fsync policy says; [`Spool::next_frame`] to replay, [`Spool::delivered`] per frame once
/// Kafka acknowledged all of it, [`Spool::rewind`] when sends failed and must be retried;
/// [`Spool::persist_position`] now and then and at shutdown (after a final `sync`).
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    /// Segment files, by id (= read order).
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to: always the newest.
    writer: Option<(u64, SegmentWriter)>,
    /// Id of the next segment created.
    next_id: u64,
    /// Where the next frame is read. Every frame before it was returned in this pass, or is
    /// before the delivered prefix.
    cursor: FramePos,
    /// Open on `cursor`, when not `None`.
    reader: Option<SegmentReader>,
    /// Frames returned by `next_frame` from the delivered prefix on.
    seen: Progress,
    corrupt_frames_total: u64,
    /// Corrupt frames before this position have been counted already.
    corrupt_counted_until: FramePos,
    lost_segments_total: u64,
    /// What the position file holds: `None` unknown, `Some(None)` no file.
    persisted: Option<Option<FramePos>>,
    last_persist: Option<Instant>,
}

/// One segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Bytes on disk.
    len: u64,
    /// Records in its frames not delivered yet.
    records: u64,
}

impl Spool {
    /// Opens (and creates) the spool directory and recovers what it holds; see the module docs.
    /// Fails only when the directory cannot be created or listed.
    pub fn open(settings: SpoolSettings) -> Result<(Spool, RecoveryReport), SpoolError> {
        let dir = settings.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| SpoolError::Dir {
            path: dir.clone(),
            source,
        })?;
        remove_if_present(&dir.join(POSITION_TMP));
        let ids = list_segment_ids(&dir)?;
        let mut report = RecoveryReport::default();
        let mut segments = recover_segments(&dir, &ids, &mut report);
        let stored = read_position(&dir);
        let stored_at = match stored {
            StoredPosition::At(pos) => Some(pos),
            StoredPosition::Missing | StoredPosition::Garbled => None,
        };
        // Never reuse an id at or below a stale position: it would mark new frames delivered.
        let next_id = ids
            .last()
            .copied()
            .max(stored_at.map(|pos| pos.segment))
            .map_or(0, |id| id.saturating_add(1));
        let start = stored_at.and_then(|pos| resume_point(&dir, &segments, pos));
        if stored_at.is_some() && start.is_none() {
            let dir = dir.display();
            warn!(%dir, position = ?stored_at, "spool position is stale; replaying everything");
        }
        let cursor = match start {
            Some((pos, frames, records)) => {
                // Everything before the position was delivered; those segments go below.
                for (&id, segment) in segments.range_mut(..=pos.segment) {
                    segment.records = if id == pos.segment {
                        segment.records.saturating_sub(records)
                    } else {
                        0
                    };
                }
                report.skipped_delivered_frames = frames;
                pos
            }
            None => FramePos::at(segments.keys().next().copied().unwrap_or(next_id), 0),
        };
        let persisted = match (stored, start) {
            (StoredPosition::Missing, _) => Some(None),
            (StoredPosition::At(pos), Some(_)) => Some(Some(pos)),
            (StoredPosition::At(_) | StoredPosition::Garbled, _) => None,
        };

        let mut spool = Spool {
            settings,
            segments,
            writer: None,
            next_id,
            cursor,
            reader: None,
            seen: Progress::default(),
            corrupt_frames_total: report.corrupt_frames,
            corrupt_counted_until: FramePos::at(next_id, 0),
            lost_segments_total: report.moved_aside.len() as u64,
            persisted,
            last_persist: None,
        };
        spool.settle_cursor();
        if let Err(err) = spool.release_delivered() {
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
        SpoolStats {
            bytes: self.segments.values().map(|s| s.len).sum(),
            segments: self.segments.len() as u64,
            records: self.segments.values().map(|s| s.records).sum(),
            corrupt_frames_total: self.corrupt_frames_total,
            lost_segments_total: self.lost_segments_total,
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
                        spool.append(&batch(appended, n)).unwrap();
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
}
