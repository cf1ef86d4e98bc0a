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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::warn;

use super::segment::{
    self, Frame, Recovered, SegmentError, SegmentReader, SegmentWriter, SpoolRecord,
};

/// The position file's name in the spool directory.
const POSITION_FILE: &str = "position";
/// Where the position is written before it is renamed over [`POSITION_FILE`].
const POSITION_TMP: &str = "position.tmp";
/// First line of the position file: format name and version.
const POSITION_MAGIC: &str = "logship-spool-position 1";
/// Subdirectory receiving segments that cannot be read.
const DAMAGED_DIR: &str = "damaged";
/// Segment file names: exactly this many decimal digits, then [`SEGMENT_SUFFIX`].
const SEGMENT_ID_DIGITS: usize = 20;
const SEGMENT_SUFFIX: &str = ".seg";
/// [`Spool::delivered`] persists the position at most this often (and whenever it deleted a
/// segment).
const PERSIST_INTERVAL: Duration = Duration::from_millis(250);

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

/// What [`Spool::open`] found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: u64,
    /// Records still to be replayed.
    pub records: u64,
    /// Bytes of the segments kept.
    pub bytes: u64,
    /// Damaged frames found (they are skipped when reading).
    pub corrupt_frames: u64,
    /// Bytes of torn tails cut off.
    pub torn_bytes: u64,
    /// Segments that could not be read, and why: moved into `damaged/` (or, if even that
    /// failed, left in place and ignored).
    pub moved_aside: Vec<(PathBuf, String)>,
    /// Frames before the saved position in its segment: delivered before the restart, skipped.
    pub skipped_delivered_frames: u64,
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

/// Errors the spool cannot handle itself. Damage in the files is not an error: it is repaired,
/// counted and logged.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory cannot be created or listed: the spool cannot work at all.
    #[error("spool directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Creating, appending to or syncing a segment failed. The spool stays usable.
    #[error("writing spool segment {}: {source}", path.display())]
    Write {
        /// The segment.
        path: PathBuf,
        /// What failed.
        source: SegmentError,
    },
    /// Reading the segment being appended to failed. That segment is appended to no more; if it
    /// fails again it is moved aside like any other unreadable segment.
    #[error("reading spool segment {}: {source}", path.display())]
    Read {
        /// The segment.
        path: PathBuf,
        /// What failed.
        source: SegmentError,
    },
    /// Deleting a delivered segment, or writing or removing the position file, failed.
    #[error("updating spool file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl SpoolError {
    /// Whether the file system is full or the quota exhausted (ENOSPC, EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            Self::Dir { source, .. } | Self::File { source, .. } => Some(source),
            Self::Write { source, .. } | Self::Read { source, .. } => match source {
                SegmentError::Io(err) => Some(err),
                SegmentError::FieldTooLong { .. } | SegmentError::BatchTooLarge { .. } => None,
            },
        };
        io.is_some_and(|err| {
            // 28 = ENOSPC, 122 = EDQUOT (Linux).
            err.kind() == io::ErrorKind::StorageFull || matches!(err.raw_os_error(), Some(28 | 122))
        })
    }
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
    /// Frames returned by `next_frame` from the delivered prefix on. Undelivered ones before
    /// `cursor` are outstanding; after a rewind, delivered ones beyond it are skipped.
    seen: BTreeMap<FramePos, Seen>,
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

/// A frame `next_frame` returned.
#[derive(Debug, Clone, Copy)]
struct Seen {
    records: u64,
    delivered: bool,
    /// Where the following frame starts.
    next: FramePos,
}

/// The position file as found at start.
enum StoredPosition {
    Missing,
    Garbled,
    At(FramePos),
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
            seen: BTreeMap::new(),
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

    /// Appends `records` as one frame and returns where it is. Not durable until
    /// [`Spool::sync`]. Does not check `max_bytes` (see [`Spool::fits`]). After an error the
    /// spool is consistent and usable; nothing of the frame is readable.
    pub fn append(&mut self, records: &[SpoolRecord]) -> Result<FramePos, SpoolError> {
        let rotate = self.writer.as_ref().is_none_or(|(_, writer)| {
            !writer.is_empty() && writer.len() >= self.settings.segment_max_bytes
        });
        if rotate {
            self.start_segment()?;
        }
        let (id, writer) = self
            .writer
            .as_mut()
            .expect("start_segment installs a writer or fails");
        let id = *id;
        match writer.append(records) {
            Ok(offset) => {
                let len = writer.len();
                let segment = self
                    .segments
                    .get_mut(&id)
                    .expect("the writer's segment stays registered while it is the writer");
                segment.len = len;
                segment.records += records.len() as u64;
                Ok(FramePos::at(id, offset))
            }
            Err(source) => {
                let path = writer.path().to_path_buf();
                if matches!(source, SegmentError::Io(_)) {
                    self.check_after_failed_write(id);
                }
                Err(SpoolError::Write { path, source })
            }
        }
    }

    /// Makes every appended frame durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some((_, writer)) = self.writer.as_mut() {
            writer.sync().map_err(|source| SpoolError::Write {
                path: writer.path().to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    /// Whether there are frames (appended, recovered, or forgotten by a rewind) that
    /// [`Spool::next_frame`] has not returned yet. Damaged data counts until reading reaches it.
    pub fn has_unread(&self) -> bool {
        let cursor = self.cursor;
        let here = self.segments.get(&cursor.segment);
        here.is_some_and(|s| s.len > cursor.offset)
            || self.segments_after(cursor.segment).any(|(_, s)| s.len > 0)
    }

    /// The next frame in append order, or `None` when everything was read. It is outstanding
    /// until [`Spool::delivered`]. Corrupt frames are skipped (and counted once); a segment that
    /// fails to read is moved aside and reading goes on with the next one. A frame already
    /// delivered (out of order, before a [`Spool::rewind`]) is not returned again.
    pub fn next_frame(&mut self) -> Result<Option<ReadFrame>, SpoolError> {
        loop {
            self.settle_cursor();
            let id = self.cursor.segment;
            let Some(len) = self.segments.get(&id).map(|s| s.len) else {
                return Ok(None);
            };
            if self.cursor.offset >= len {
                return Ok(None);
            }
            let fresh = self.reader.is_none();
            if fresh {
                match SegmentReader::open_at(&self.segment_path(id), self.cursor.offset) {
                    Ok(reader) => self.reader = Some(reader),
                    Err(err) => {
                        self.read_failed(id, err)?;
                        continue;
                    }
                }
            }
            let reader = self.reader.as_mut().expect("a reader was opened above");
            let read = reader.next_frame();
            let (next, torn_at) = (reader.offset(), reader.torn_at());
            match read {
                Err(err) => {
                    self.reader = None;
                    self.read_failed(id, err)?;
                }
                Ok(Some(Frame::Records { offset, records })) => {
                    let pos = FramePos::at(id, offset);
                    self.cursor = FramePos::at(id, next);
                    if self.seen.get(&pos).is_some_and(|s| s.delivered) {
                        continue; // delivered out of order before a rewind
                    }
                    let records_len = records.len() as u64;
                    let seen = Seen {
                        records: records_len,
                        delivered: false,
                        next: self.cursor,
                    };
                    self.seen.insert(pos, seen);
                    self.settle_cursor();
                    return Ok(Some(ReadFrame { pos, records }));
                }
                Ok(Some(Frame::Corrupt {
                    offset,
                    length,
                    reason,
                })) => {
                    self.cursor.offset = next;
                    self.count_corrupt(FramePos::at(id, offset), length, &reason);
                }
                Ok(None) => {
                    self.reader = None;
                    // The end this reader saw at open: reopen to see frames appended since.
                    if torn_at.is_none() && !fresh {
                        continue;
                    }
                    warn!(
                        path = %self.segment_path(id).display(),
                        offset = self.cursor.offset,
                        ?torn_at,
                        "spool segment ends before its recorded length; skipping the rest of it"
                    );
                    self.abandon_rest(id, len);
                }
            }
        }
    }

    /// Marks a frame returned by [`Spool::next_frame`] as delivered, in any order. Frames that
    /// were never returned, or delivered already, are ignored. Deletes the segments the
    /// delivered prefix has passed and persists the position (at most once a second, and after
    /// every deletion). An error concerns only that housekeeping (typically a full disk, which
    /// the deletions themselves relieve): the delivery is recorded all the same, and the
    /// caller should log it and go on.
    pub fn delivered(&mut self, pos: FramePos) -> Result<(), SpoolError> {
        let Some(seen) = self.seen.get_mut(&pos).filter(|s| !s.delivered) else {
            return Ok(());
        };
        seen.delivered = true;
        let records = seen.records;
        if let Some(segment) = self.segments.get_mut(&pos.segment) {
            segment.records = segment.records.saturating_sub(records);
        }
        self.settle_cursor();
        let released = self.release_delivered();
        let due = self
            .last_persist
            .is_none_or(|at| at.elapsed() >= PERSIST_INTERVAL);
        if matches!(released, Ok(true)) || due {
            released.and(self.persist_position())
        } else {
            released.map(drop)
        }
    }

    /// Forgets the outstanding frames: reading starts again at the first frame not delivered,
    /// returning every frame after it except those delivered since start (duplicates of
    /// outstanding frames are possible, losses are not).
    pub fn rewind(&mut self) {
        let prefix = self.prefix();
        self.move_cursor(prefix);
        self.settle_cursor();
    }

    /// Whether nothing is unread and nothing is outstanding.
    pub fn is_drained(&self) -> bool {
        !self.has_unread() && self.seen.range(..self.cursor).all(|(_, s)| s.delivered)
    }

    /// Writes the first frame not delivered to the position file (atomically: temp file, fsync,
    /// rename, directory fsync), or removes the file when the spool holds no segment. Does
    /// nothing if the file already says so.
    pub fn persist_position(&mut self) -> Result<(), SpoolError> {
        let target = self.resume_position();
        if self.persisted == Some(target) {
            return Ok(());
        }
        self.last_persist = Some(Instant::now()); // failures too: `delivered` retries after the interval
        write_position(&self.settings.dir, target)?;
        self.persisted = Some(target);
        Ok(())
    }

    // ---- private ----------------------------------------------------------------------------

    fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.settings.dir, id)
    }

    fn segments_after(&self, id: u64) -> impl Iterator<Item = (&u64, &Segment)> {
        self.segments.range((Bound::Excluded(id), Bound::Unbounded))
    }

    fn writer_id(&self) -> Option<u64> {
        self.writer.as_ref().map(|(id, _)| *id)
    }

    /// Syncs the current segment and creates the next one; registers it only once it exists.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        if let Some((_, writer)) = self.writer.as_mut() {
            // `sync` reaches only the writer's segment: make the one being left durable now.
            writer.sync().map_err(|source| SpoolError::Write {
                path: writer.path().to_path_buf(),
                source,
            })?;
        }
        let id = self.next_id;
        self.next_id = id.saturating_add(1);
        let path = self.segment_path(id);
        let writer = SegmentWriter::create(&path).map_err(|source| {
            let exists = io::ErrorKind::AlreadyExists;
            if !matches!(&source, SegmentError::Io(err) if err.kind() == exists) {
                remove_if_present(&path); // created, but its directory entry is not durable
            }
            SpoolError::Write { path, source }
        })?;
        self.writer = Some((id, writer));
        self.segments.insert(id, Segment { len: 0, records: 0 });
        Ok(())
    }

    /// After a failed write, segment.rs has cut the partial frame off, normally. If the file
    /// does not end where the writer thinks, appends go to a new segment from now on.
    fn check_after_failed_write(&mut self, id: u64) {
        let Some((_, writer)) = &self.writer else {
            return;
        };
        let expected = writer.len();
        let actual = fs::metadata(writer.path()).ok().map(|meta| meta.len());
        if actual == Some(expected) {
            return;
        }
        warn!(
            path = %writer.path().display(),
            expected,
            ?actual,
            "partial frame left after a failed write; starting a new segment"
        );
        self.retire_writer();
        if let (Some(segment), Some(actual)) = (self.segments.get_mut(&id), actual) {
            segment.len = actual;
        }
    }

    /// Stops appending to the current segment (the next append starts a new one).
    fn retire_writer(&mut self) {
        if let Some((_, mut writer)) = self.writer.take() {
            if let Err(err) = writer.sync() {
                let path = writer.path().display();
                warn!(path = %path, error = %err, "cannot sync a retired spool segment");
            }
        }
    }

    fn move_cursor(&mut self, pos: FramePos) {
        if self.cursor != pos {
            self.cursor = pos;
            self.reader = None;
        }
    }

    /// Moves the cursor over frames already delivered and over finished segments, so that it
    /// rests on the next frame to read or at the end of the newest segment.
    fn settle_cursor(&mut self) {
        loop {
            if let Some(seen) = self.seen.get(&self.cursor).filter(|s| s.delivered) {
                let next = seen.next;
                self.move_cursor(next);
                continue;
            }
            let Some((&id, segment)) = self.segments.range(self.cursor.segment..).next() else {
                return;
            };
            if id != self.cursor.segment {
                self.move_cursor(FramePos::at(id, 0));
                continue;
            }
            let finished = self.cursor.offset >= segment.len && self.writer_id() != Some(id);
            let later = self.segments_after(id).next().map(|(&next, _)| next);
            match later {
                Some(next) if finished => self.move_cursor(FramePos::at(next, 0)),
                _ => return,
            }
        }
    }

    /// Skips what is left of segment `id` after damage that hides it.
    fn abandon_rest(&mut self, id: u64, len: u64) {
        if self.writer_id() == Some(id) {
            self.retire_writer();
        }
        self.move_cursor(FramePos::at(id, len));
    }

    /// A segment failed to read. The writer's segment is retired and the error returned; any
    /// other segment is moved aside and forgotten, and reading goes on.
    fn read_failed(&mut self, id: u64, err: SegmentError) -> Result<(), SpoolError> {
        let path = self.segment_path(id);
        self.reader = None;
        if self.writer_id() == Some(id) {
            warn!(
                path = %path.display(),
                error = %err,
                "cannot read the spool segment being written; appending to a new one"
            );
            self.retire_writer();
            return Err(SpoolError::Read { path, source: err });
        }
        move_aside(&self.settings.dir, &path, &format!("read failed: {err}"));
        self.segments.remove(&id);
        self.seen.retain(|pos, _| pos.segment != id);
        self.lost_segments_total += 1;
        Ok(())
    }

    fn count_corrupt(&mut self, pos: FramePos, length: u64, reason: &str) {
        if pos < self.corrupt_counted_until {
            return;
        }
        self.corrupt_frames_total += 1;
        self.corrupt_counted_until = FramePos::at(pos.segment, pos.offset.saturating_add(1));
        let path = self.segment_path(pos.segment);
        let offset = pos.offset;
        warn!(path = %path.display(), offset, length, reason, "corrupt spool frame skipped");
    }

    /// The first frame not delivered: every frame before it is delivered.
    fn prefix(&self) -> FramePos {
        self.seen
            .range(..self.cursor)
            .find(|(_, s)| !s.delivered)
            .map_or(self.cursor, |(pos, _)| *pos)
    }

    /// Forgets frames before the prefix and deletes the segments it has passed: every segment
    /// before its segment, and its segment too once it is fully read (the writer's segment only
    /// when nothing is unread). Returns whether it deleted any.
    fn release_delivered(&mut self) -> Result<bool, SpoolError> {
        let prefix = self.prefix();
        self.seen = self.seen.split_off(&prefix);
        let done: Vec<u64> = self
            .segments
            .range(..=prefix.segment)
            .filter(|&(&id, s)| id < prefix.segment || prefix.offset >= s.len)
            .map(|(&id, _)| id)
            .collect();
        let mut released = false;
        for id in done {
            if self.writer_id() == Some(id) {
                self.writer = None; // fully delivered and nothing unread: start afresh
            }
            if self.cursor.segment == id {
                self.reader = None;
            }
            let path = self.segment_path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(SpoolError::File { path, source }),
            }
            self.segments.remove(&id);
            released = true;
        }
        Ok(released)
    }

    /// Where replay should resume after a restart; `None` when no segment is left to read.
    fn resume_position(&self) -> Option<FramePos> {
        let prefix = self.prefix();
        let (&id, _) = self.segments.range(prefix.segment..).next()?;
        Some(if id == prefix.segment {
            prefix
        } else {
            FramePos::at(id, 0)
        })
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The ids of the `*.seg` files in `dir`, ascending.
fn list_segment_ids(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let dir_error = |source| SpoolError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(dir_error)? {
        let name = entry.map_err(dir_error)?.file_name();
        ids.extend(name.to_str().and_then(parse_segment_name));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Recovers every listed segment: empty ones are removed, unreadable ones moved aside.
fn recover_segments(
    dir: &Path,
    ids: &[u64],
    report: &mut RecoveryReport,
) -> BTreeMap<u64, Segment> {
    let mut segments = BTreeMap::new();
    for &id in ids {
        let path = segment_path(dir, id);
        match recover_segment(&path) {
            Ok((found, len)) => {
                report.corrupt_frames += found.corrupt_frames;
                report.torn_bytes += found.torn_bytes;
                if len == 0 {
                    remove_if_present(&path);
                } else {
                    let records = found.records;
                    segments.insert(id, Segment { len, records });
                }
            }
            Err(reason) => report.moved_aside.push(move_aside(dir, &path, &reason)),
        }
    }
    segments
}

/// Runs segment recovery; returns what it found and the length left, or why the file cannot be
/// used as a segment.
fn recover_segment(path: &Path) -> Result<(Recovered, u64), String> {
    let meta = fs::metadata(path).map_err(|err| format!("cannot stat: {err}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let found = segment::recover(path).map_err(|err| format!("cannot recover: {err}"))?;
    let len = fs::metadata(path)
        .map_err(|err| format!("cannot stat after recovery: {err}"))?
        .len();
    Ok((found, len))
}

/// Moves an unreadable segment into `damaged/`; returns it with the reason, saying where it went
/// or that it stays (ignored) because even the move failed.
fn move_aside(dir: &Path, path: &Path, reason: &str) -> (PathBuf, String) {
    let damaged = dir.join(DAMAGED_DIR);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let moved = fs::create_dir_all(&damaged).and_then(|()| {
        let target = free_name(&damaged, &name);
        fs::rename(path, &target).map(|()| target)
    });
    let outcome = match moved {
        Ok(target) => format!("{reason}; moved to {}", target.display()),
        Err(err) => format!("{reason}; cannot move it aside ({err}), ignored"),
    };
    warn!(path = %path.display(), reason = %outcome, "unreadable spool segment");
    (path.to_path_buf(), outcome)
}

/// `dir/name`, or `dir/name.1`, `dir/name.2`… if that is taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut candidate = dir.join(name);
    let mut n = 0u64;
    while fs::symlink_metadata(&candidate).is_ok() {
        n += 1;
        candidate = dir.join(format!("{name}.{n}"));
    }
    candidate
}

/// Removes a file if it exists; logs other failures. Returns whether it is gone.
fn remove_if_present(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => true,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot remove spool file");
            false
        }
    }
}

fn read_position(dir: &Path) -> StoredPosition {
    let path = dir.join(POSITION_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return StoredPosition::Missing,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot read the spool position");
            return StoredPosition::Garbled;
        }
    };
    match parse_position(&text) {
        Some(pos) => StoredPosition::At(pos),
        None => {
            warn!(path = %path.display(), "spool position is garbled; replaying everything");
            StoredPosition::Garbled
        }
    }
}

fn parse_position(text: &str) -> Option<FramePos> {
    let mut lines = text.lines();
    if lines.next()? != POSITION_MAGIC {
        return None;
    }
    let (segment, offset) = lines.next()?.split_once(' ')?;
    if lines.next().is_some() {
        return None;
    }
    Some(FramePos::at(segment.parse().ok()?, offset.parse().ok()?))
}

/// Checks a stored position against the recovered segments: its segment must exist and its
/// offset be a frame boundary in it. Returns it with the good frames and records before it.
fn resume_point(
    dir: &Path,
    segments: &BTreeMap<u64, Segment>,
    pos: FramePos,
) -> Option<(FramePos, u64, u64)> {
    if pos.offset > segments.get(&pos.segment)?.len {
        return None;
    }
    let mut reader = SegmentReader::open(&segment_path(dir, pos.segment)).ok()?;
    let (mut frames, mut records) = (0, 0);
    while reader.offset() < pos.offset {
        match reader.next_frame() {
            Ok(Some(Frame::Records { records: batch, .. })) => {
                frames += 1;
                records += batch.len() as u64;
            }
            Ok(Some(Frame::Corrupt { .. })) => {}
            Ok(None) | Err(_) => return None,
        }
    }
    (reader.offset() == pos.offset).then_some((pos, frames, records))
}

/// Writes `pos` to the position file atomically, or removes the file for `None`.
fn write_position(dir: &Path, pos: Option<FramePos>) -> Result<(), SpoolError> {
    let path = dir.join(POSITION_FILE);
    let Some(pos) = pos else {
        return match fs::remove_file(&path) {
            Ok(()) => sync_dir(dir),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError::File { path, source }),
        };
    };
    let tmp = dir.join(POSITION_TMP);
    let text = format!("{POSITION_MAGIC}\n{} {}\n", pos.segment, pos.offset);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(source) = written {
        remove_if_present(&tmp);
        return Err(SpoolError::File { path: tmp, source });
    }
    fs::rename(&tmp, &path).map_err(|source| SpoolError::File { path, source })?;
    sync_dir(dir)
}

/// Makes renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|source| SpoolError::File {
            path: dir.to_path_buf(),
            source,
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use tempfile::TempDir;

    /// A record whose payload names it and does not compress much, so frame sizes are stable.
    fn record(id: u64) -> SpoolRecord {
        let mut state = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let noise: Vec<u8> = (0..40)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        SpoolRecord {
            topic: "logs".to_string(),
            key: Some(id.to_le_bytes().to_vec()),
            headers: vec![("n".to_string(), noise)],
            payload: format!("record-{id}").into_bytes(),
        }
    }

    fn record_id(record: &SpoolRecord) -> u64 {
        let key = record.key.as_deref().expect("test records have keys");
        u64::from_le_bytes(key.try_into().expect("8-byte key"))
    }

    fn batch(first: u64, count: u64) -> Vec<SpoolRecord> {
        (first..first + count).map(record).collect()
    }

    fn settings(dir: &Path, segment_max_bytes: u64) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 30,
            segment_max_bytes,
        }
    }

    fn open(dir: &Path, segment_max_bytes: u64) -> (Spool, RecoveryReport) {
        Spool::open(settings(dir, segment_max_bytes)).unwrap()
    }

    /// Segment files in `dir`, by name.
    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        files.sort();
        files
    }

    fn bytes_on_disk(dir: &Path) -> u64 {
        segment_files(dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    fn read_all(spool: &mut Spool) -> Vec<ReadFrame> {
        std::iter::from_fn(|| spool.next_frame().unwrap()).collect()
    }

    fn ids(frames: &[ReadFrame]) -> Vec<u64> {
        frames
            .iter()
            .flat_map(|f| f.records.iter().map(record_id))
            .collect()
    }

    /// The size of one frame of `batch(_, 1)` (all such frames are about the same size).
    fn frame_len() -> u64 {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        spool.append(&batch(0, 1)).unwrap();
        spool.stats().bytes
    }

    /// Appends `frames` one-record frames, ids 0.., two frames per segment.
    fn two_frames_per_segment(dir: &Path, frames: u64) -> (Spool, Vec<FramePos>) {
        let (mut spool, _) = open(dir, frame_len() + 1);
        let positions = (0..frames)
            .map(|i| spool.append(&batch(i, 1)).unwrap())
            .collect();
        spool.sync().unwrap();
        (spool, positions)
    }

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
    fn reader_sees_frames_appended_after_it_reached_the_end() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        let first = spool.append(&batch(0, 2)).unwrap();
        assert_eq!(spool.next_frame().unwrap().unwrap().pos, first);
        assert!(spool.next_frame().unwrap().is_none());
        assert!(!spool.has_unread());

        let second = spool.append(&batch(2, 1)).unwrap();
        let third = spool.append(&batch(3, 1)).unwrap();
        assert_eq!(second.segment, first.segment);
        assert!(spool.has_unread());
        let frames = read_all(&mut spool);
        assert_eq!(
            frames.iter().map(|f| f.pos).collect::<Vec<_>>(),
            vec![second, third]
        );
        assert_eq!(ids(&frames), vec![2, 3]);
        assert!(!spool.has_unread());
    }

    #[test]
    fn out_of_order_delivery_advances_only_the_contiguous_prefix() {
        let dir = TempDir::new().unwrap();
        let (mut spool, pos) = two_frames_per_segment(dir.path(), 6);
        let segments: Vec<u64> = pos.iter().map(|p| p.segment).collect();
        assert_eq!(segments[0], segments[1]);
        assert_ne!(segments[1], segments[2]);
        assert_eq!(segments[2], segments[3]);
        assert_ne!(segments[3], segments[4]);
        assert_eq!(read_all(&mut spool).len(), 6);

        // The second segment is fully delivered, but the first frame is not: nothing goes.
        for p in [pos[1], pos[2], pos[3]] {
            spool.delivered(p).unwrap();
        }
        assert_eq!(segment_files(dir.path()).len(), 3);
        assert_eq!(spool.stats().records, 3);
        spool.persist_position().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(POSITION_FILE)).unwrap(),
            format!("logship-spool-position 1\n{} 0\n", segments[0])
        );

        // The prefix jumps over everything delivered: both older segments go.
        spool.delivered(pos[0]).unwrap();
        assert_eq!(
            segment_files(dir.path()),
            vec![segment_path(dir.path(), segments[4])]
        );
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));
        assert_eq!(
            fs::read_to_string(dir.path().join(POSITION_FILE)).unwrap(),
            format!("logship-spool-position 1\n{} 0\n", segments[4])
        );

        spool.delivered(pos[5]).unwrap();
        spool.delivered(pos[5]).unwrap(); // twice: ignored
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(spool.stats().records, 1);
        assert!(!spool.is_drained());
        spool.delivered(pos[4]).unwrap();
        assert!(spool.is_drained());
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(spool.stats(), SpoolStats::default());
        assert!(!dir.path().join(POSITION_FILE).exists());

        // The writer's segment went too: the next append starts a new one.
        let after = spool.append(&batch(6, 1)).unwrap();
        assert_eq!((after.offset, after.segment > segments[4]), (0, true));
        assert_eq!(ids(&read_all(&mut spool)), vec![6]);
    }

    #[test]
    fn rewind_rereads_from_the_first_undelivered_frame() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        let pos: Vec<FramePos> = (0..5)
            .map(|i| spool.append(&batch(i, 1)).unwrap())
            .collect();
        assert_eq!(read_all(&mut spool).len(), 5);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 2, 3, 4]);

        spool.delivered(pos[0]).unwrap();
        spool.delivered(pos[2]).unwrap();
        spool.rewind();
        assert!(spool.has_unread());
        assert!(!spool.is_drained());
        // From the first undelivered frame on; the one delivered out of order is not resent.
        let again = read_all(&mut spool);
        assert_eq!(
            again.iter().map(|f| f.pos).collect::<Vec<_>>(),
            vec![pos[1], pos[3], pos[4]]
        );
        assert_eq!(spool.stats().records, 3);
        for frame in &again {
            spool.delivered(frame.pos).unwrap();
        }
        assert!(spool.is_drained());
        assert_eq!(spool.stats(), SpoolStats::default());
    }

    #[test]
    fn late_delivery_after_rewind_is_honoured() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        let pos: Vec<FramePos> = (0..4)
            .map(|i| spool.append(&batch(i, 1)).unwrap())
            .collect();
        assert_eq!(read_all(&mut spool).len(), 4);
        spool.rewind();
        // Delivery reports for frames sent before the rewind still count.
        spool.delivered(pos[0]).unwrap();
        spool.delivered(pos[2]).unwrap();
        assert_eq!(ids(&read_all(&mut spool)), vec![1, 3]);
        spool.delivered(pos[1]).unwrap();
        spool.delivered(pos[3]).unwrap();
        assert!(spool.is_drained());
        assert!(segment_files(dir.path()).is_empty());
    }

    #[test]
    fn restart_resumes_at_the_first_undelivered_frame() {
        let dir = TempDir::new().unwrap();
        let (mut spool, pos) = two_frames_per_segment(dir.path(), 6);
        let frames: Vec<ReadFrame> = (0..4)
            .map(|_| spool.next_frame().unwrap().unwrap())
            .collect();
        for frame in &frames[..3] {
            spool.delivered(frame.pos).unwrap();
        }
        spool.persist_position().unwrap();
        let bytes = spool.stats().bytes;
        drop(spool);

        let (mut spool, report) = open(dir.path(), frame_len() + 1);
        assert_eq!(report.skipped_delivered_frames, 1);
        assert_eq!(report.records, 3);
        assert_eq!(report.segments, 2);
        assert_eq!(report.bytes, bytes);
        assert!(report.moved_aside.is_empty());
        let resumed = read_all(&mut spool);
        assert_eq!(
            resumed.iter().map(|f| f.pos).collect::<Vec<_>>(),
            pos[3..].to_vec()
        );
        assert_eq!(ids(&resumed), vec![3, 4, 5]);
        // Appends after a restart start a new segment.
        let new = spool.append(&batch(6, 1)).unwrap();
        assert!(new.segment > pos[5].segment && new.offset == 0);
        assert_eq!(ids(&read_all(&mut spool)), vec![6]);
    }

    #[test]
    fn a_stale_or_garbled_position_replays_from_the_oldest_segment() {
        let dir = TempDir::new().unwrap();
        let (spool, pos) = two_frames_per_segment(dir.path(), 4);
        drop(spool);
        let seg = pos[2].segment;
        let cases = [
            "garbage".to_string(),
            format!("logship-spool-position 2\n{seg} 0\n"),
            format!("logship-spool-position 1\n{seg} x\n"),
            format!("logship-spool-position 1\n{seg} 0\ntrailing\n"),
            "logship-spool-position 1\n99 0\n".to_string(), // no such segment
            format!("logship-spool-position 1\n{seg} 100000\n"), // past its end
            format!("logship-spool-position 1\n{seg} 1\n"), // not a frame start
        ];
        for case in cases {
            fs::write(dir.path().join(POSITION_FILE), &case).unwrap();
            let (mut spool, report) = open(dir.path(), u64::MAX);
            assert_eq!(report.skipped_delivered_frames, 0, "{case}");
            assert_eq!(report.records, 4, "{case}");
            assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 2, 3], "{case}");
            // A new segment never reuses an id a stale position names.
            let new = spool.append(&batch(9, 1)).unwrap();
            let named = if case.contains("\n99 ") {
                99
            } else {
                pos[3].segment
            };
            assert!(new.segment > named, "{case}");
            fs::remove_file(segment_path(dir.path(), new.segment)).unwrap();
        }
    }

    /// Writes a segment with `frames` one-record frames (ids from `first`); returns their offsets.
    fn write_segment(dir: &Path, id: u64, first: u64, frames: u64) -> Vec<u64> {
        let mut writer = SegmentWriter::create(&segment_path(dir, id)).unwrap();
        let offsets = (first..first + frames)
            .map(|i| writer.append(&batch(i, 1)).unwrap())
            .collect();
        writer.sync().unwrap();
        offsets
    }

    #[test]
    fn recovery_handles_damaged_segments_and_reports_each() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        // 1: a flipped byte inside the second frame's body.
        let offsets = write_segment(d, 1, 0, 3);
        let mut bytes = fs::read(segment_path(d, 1)).unwrap();
        bytes[offsets[1] as usize + 12] ^= 0x5a;
        fs::write(segment_path(d, 1), &bytes).unwrap();
        // 2: the last frame cut short.
        let offsets = write_segment(d, 2, 10, 3);
        File::options()
            .write(true)
            .open(segment_path(d, 2))
            .unwrap()
            .set_len(offsets[2] + 3)
            .unwrap();
        // 3: empty. 4: a directory, not a segment. 5: fine. 6: unreadable unless we are root.
        fs::write(segment_path(d, 3), b"").unwrap();
        fs::create_dir(segment_path(d, 4)).unwrap();
        write_segment(d, 5, 20, 2);
        write_segment(d, 6, 30, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(segment_path(d, 6), fs::Permissions::from_mode(0o000)).unwrap();
        }
        let unreadable = File::open(segment_path(d, 6)).is_err();
        // Not ours: ignored; a leftover temp position: removed.
        fs::write(d.join("notes.txt"), b"hello").unwrap();
        fs::write(d.join(POSITION_TMP), b"half").unwrap();

        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.corrupt_frames, 1);
        assert_eq!(report.torn_bytes, 3);
        assert_eq!(report.records, if unreadable { 6 } else { 7 });
        let moved: Vec<PathBuf> = report.moved_aside.iter().map(|(p, _)| p.clone()).collect();
        let mut expected = vec![segment_path(d, 4)];
        if unreadable {
            expected.push(segment_path(d, 6));
        }
        assert_eq!(moved, expected, "{:?}", report.moved_aside);
        assert!(report.moved_aside[0].1.contains("not a regular file"));
        assert!(
            d.join(DAMAGED_DIR)
                .join(segment_path(d, 4).file_name().unwrap())
                .is_dir()
        );
        assert!(!segment_path(d, 3).exists());
        assert!(!segment_path(d, 4).exists());
        assert!(d.join("notes.txt").exists());
        assert!(!d.join(POSITION_TMP).exists());
        assert_eq!(fs::metadata(segment_path(d, 2)).unwrap().len(), offsets[2]);
        assert_eq!(spool.stats().bytes, bytes_on_disk(d));

        let mut expected_ids = vec![0, 2, 10, 11, 20, 21];
        if !unreadable {
            expected_ids.push(30);
        }
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        // Counted at recovery, not again when read, nor after a rewind.
        assert_eq!(spool.stats().corrupt_frames_total, 1);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
    }

    #[test]
    fn corrupt_frames_found_while_reading_are_counted_once() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        let pos: Vec<FramePos> = (0..3)
            .map(|i| spool.append(&batch(i, 1)).unwrap())
            .collect();
        spool.sync().unwrap();
        let path = segment_path(dir.path(), pos[1].segment);
        let mut bytes = fs::read(&path).unwrap();
        bytes[pos[1].offset as usize + 12] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
    }

    #[test]
    fn a_segment_failing_to_read_is_moved_aside_and_replay_goes_on() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write_segment(d, 1, 0, 2);
        write_segment(d, 2, 10, 2);
        let (mut spool, _) = open(d, u64::MAX);
        // Replace segment 1 under the spool by something that fails to read.
        fs::remove_file(segment_path(d, 1)).unwrap();
        fs::create_dir(segment_path(d, 1)).unwrap();
        assert_eq!(ids(&read_all(&mut spool)), vec![10, 11]);
        let stats = spool.stats();
        assert_eq!(stats.lost_segments_total, 1);
        assert_eq!((stats.segments, stats.records), (1, 2));
        assert!(
            d.join(DAMAGED_DIR)
                .join(segment_path(d, 1).file_name().unwrap())
                .exists()
        );
    }

    #[test]
    fn a_failed_append_leaves_the_spool_usable() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        spool.append(&batch(0, 1)).unwrap();
        let mut too_long = record(1);
        too_long.topic = "t".repeat(70_000);
        assert!(matches!(
            spool.append(&[too_long]),
            Err(SpoolError::Write { .. })
        ));
        spool.append(&batch(2, 1)).unwrap();
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));
        assert_eq!(spool.stats().records, 2);
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
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

    #[test]
    fn disk_full_errors_are_recognised() {
        let write = |err: io::Error| SpoolError::Write {
            path: PathBuf::from("x.seg"),
            source: SegmentError::Io(err),
        };
        assert!(write(io::Error::from_raw_os_error(28)).is_disk_full());
        assert!(write(io::Error::from_raw_os_error(122)).is_disk_full());
        assert!(write(io::ErrorKind::StorageFull.into()).is_disk_full());
        assert!(
            SpoolError::File {
                path: PathBuf::from("position"),
                source: io::Error::from_raw_os_error(28),
            }
            .is_disk_full()
        );
        assert!(!write(io::ErrorKind::PermissionDenied.into()).is_disk_full());
        let too_long = SpoolError::Write {
            path: PathBuf::from("x.seg"),
            source: SegmentError::FieldTooLong {
                field: "topic",
                len: 70_000,
            },
        };
        assert!(!too_long.is_disk_full());
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
