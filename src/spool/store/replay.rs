//! Reading frames back in order, recording their delivery, deleting segments that are done, and
//! persisting where replay stands. Reading stops at what an fsync made durable, so the position
//! never passes data a crash could take away.

use std::fs;
use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::warn;

use super::layout::segment_path;
use super::position::write_position;
use super::progress::Seen;
use super::recovery::move_aside;
use super::{FramePos, ReadFrame, Segment, Spool, SpoolError};
use crate::spool::segment::{Frame, SegmentError, SegmentReader};

/// [`Spool::delivered`] persists the position at most this often (and whenever it deleted a
/// segment).
const PERSIST_INTERVAL: Duration = Duration::from_millis(250);

/// EIO reading at the same place this many times in a row is damage, not a passing fault.
const EIO_ATTEMPTS: u32 = 3;
const EIO: i32 = 5;

/// What a failed read means.
enum ReadFailure {
    /// It may pass (EMFILE, ENFILE, ENOMEM, EACCES, one EIO): try again later.
    Passing,
    /// The data here cannot be read (cut short under the spool, EIO again and again): skip
    /// the rest of the segment.
    Damage,
    /// The file is gone or is no longer a regular file: forget the segment.
    Gone,
}

impl Spool {
    /// Whether there are frames (appended, recovered, waiting to be written again, or forgotten
    /// by a rewind) that [`Spool::next_frame`] has not returned yet, including frames it cannot
    /// return before the next [`Spool::sync`]. Damaged data counts until reading reaches it.
    pub fn has_unread(&self) -> bool {
        let cursor = self.cursor;
        !self.rewrite.is_empty()
            || self.segments.range(cursor.segment..).any(|(&id, segment)| {
                let end = self.unread_end(id, segment);
                end > if id == cursor.segment {
                    cursor.offset
                } else {
                    0
                }
            })
    }

    /// The next durable frame in append order, or `None` when everything durable was read. It
    /// is outstanding until [`Spool::delivered`]. Damaged data is skipped (and counted once);
    /// a read that may succeed later is an error (nothing skipped); a segment that is no longer
    /// a regular file is moved aside and reading goes on with the next one. A frame already
    /// delivered (out of order, before a [`Spool::rewind`]) is not returned again.
    pub fn next_frame(&mut self) -> Result<Option<ReadFrame>, SpoolError> {
        loop {
            self.settle_cursor();
            let id = self.cursor.segment;
            let Some(readable) = self.segments.get(&id).map(|s| s.readable) else {
                return Ok(None);
            };
            if self.cursor.offset >= readable {
                return Ok(None);
            }
            let reader = match self.reader.as_mut() {
                Some(reader) => reader,
                None => {
                    let path = self.segment_path(id);
                    match SegmentReader::open_at(&path, self.cursor.offset, readable) {
                        Ok(reader) => self.reader.insert(reader),
                        Err(err) => {
                            self.read_failed(err)?;
                            continue;
                        }
                    }
                }
            };
            reader.set_end(readable);
            let read = reader.next_frame();
            let next = reader.offset();
            match read {
                Err(err) => self.read_failed(err)?,
                Ok(None) => self.reader = None,
                Ok(Some(Frame::Records { offset, records })) => {
                    self.io_errors = None;
                    let pos = FramePos::at(id, offset);
                    self.cursor = FramePos::at(id, next);
                    if self.seen.is_delivered(pos) {
                        continue; // delivered out of order before a rewind
                    }
                    let seen = Seen {
                        records: records.len() as u64,
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
                    records,
                    reason,
                })) => {
                    self.io_errors = None;
                    self.cursor.offset = next;
                    self.count_corrupt(FramePos::at(id, offset), length, records, &reason);
                }
            }
        }
    }

    /// Marks a frame returned by [`Spool::next_frame`] as delivered, in any order. Frames that
    /// were never returned, or delivered already, are ignored. Deletes the segments the
    /// delivered prefix has passed and persists the position (at most every 250 ms, and after
    /// every deletion). An error concerns only that housekeeping (typically a full disk, which
    /// the deletions themselves relieve, or a segment that cannot be deleted): the delivery is
    /// recorded all the same, the position still saved, and the caller should log it and go on.
    pub fn delivered(&mut self, pos: FramePos) -> Result<(), SpoolError> {
        let Some(records) = self.seen.mark_delivered(pos) else {
            return Ok(());
        };
        if let Some(segment) = self.segments.get_mut(&pos.segment) {
            segment.records = segment.records.saturating_sub(records);
        }
        self.settle_cursor();
        let (released, failed) = self.release_delivered();
        let due = self
            .last_persist
            .is_none_or(|at| at.elapsed() >= PERSIST_INTERVAL);
        let persisted = if released || due {
            self.persist_position()
        } else {
            Ok(())
        };
        failed.and(persisted)
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
        !self.has_unread() && self.seen.all_delivered_before(self.cursor)
    }

    /// Writes the first frame not delivered to the position file (atomically: temp file, fsync,
    /// rename, directory fsync), or removes the file when the spool holds nothing. Does nothing
    /// if the file already says so.
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

    pub(super) fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.settings.dir, id)
    }

    pub(super) fn segments_after(&self, id: u64) -> impl Iterator<Item = (&u64, &Segment)> {
        self.segments.range((Bound::Excluded(id), Bound::Unbounded))
    }

    pub(super) fn writer_id(&self) -> Option<u64> {
        self.writer.as_ref().map(|(id, _)| *id)
    }

    /// Where the data of segment `id` ends for reading purposes: the writer's appended bytes
    /// (some waiting for an fsync), or a sealed segment's durable bytes.
    pub(super) fn unread_end(&self, id: u64, segment: &Segment) -> u64 {
        if self.writer_id() == Some(id) {
            segment.len
        } else {
            segment.readable
        }
    }

    pub(super) fn move_cursor(&mut self, pos: FramePos) {
        if self.cursor != pos {
            self.cursor = pos;
            self.reader = None;
        }
    }

    /// Moves the cursor over frames already delivered and over finished segments, so that it
    /// rests on the next frame to read or at the end of the newest segment.
    pub(super) fn settle_cursor(&mut self) {
        loop {
            if let Some(next) = self.seen.delivered_next(self.cursor) {
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
            let finished = self.cursor.offset >= segment.readable && self.writer_id() != Some(id);
            let later = self.segments_after(id).next().map(|(&next, _)| next);
            match later {
                Some(next) if finished => self.move_cursor(FramePos::at(next, 0)),
                _ => return,
            }
        }
    }

    /// A read at the cursor failed: an error to retry later, or damage to skip, or a segment to
    /// forget.
    fn read_failed(&mut self, err: SegmentError) -> Result<(), SpoolError> {
        let at = self.cursor;
        let path = self.segment_path(at.segment);
        self.reader = None;
        match self.classify(at, &err) {
            ReadFailure::Passing => Err(SpoolError::Read { path, source: err }),
            ReadFailure::Damage => {
                self.io_errors = None;
                self.skip_rest(at, &err);
                Ok(())
            }
            ReadFailure::Gone => {
                self.io_errors = None;
                let outcome = match fs::symlink_metadata(&path) {
                    Err(_) => format!("vanished ({err})"),
                    Ok(_) => {
                        move_aside(&self.settings.dir, &path, &format!("read failed: {err}")).1
                    }
                };
                warn!(path = %path.display(), reason = %outcome, "spool segment lost");
                self.forget_segment(at.segment);
                Ok(())
            }
        }
    }

    fn classify(&mut self, at: FramePos, err: &SegmentError) -> ReadFailure {
        let SegmentError::Io(io) = err else {
            return ReadFailure::Damage;
        };
        match fs::symlink_metadata(self.segment_path(at.segment)) {
            Err(meta) if meta.kind() == io::ErrorKind::NotFound => return ReadFailure::Gone,
            Ok(meta) if !meta.is_file() => return ReadFailure::Gone,
            _ => {}
        }
        match io.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => ReadFailure::Damage,
            _ if io.raw_os_error() == Some(EIO) => {
                let attempts = match self.io_errors {
                    Some((pos, n)) if pos == at => n + 1,
                    _ => 1,
                };
                self.io_errors = Some((at, attempts));
                if attempts >= EIO_ATTEMPTS {
                    ReadFailure::Damage
                } else {
                    ReadFailure::Passing
                }
            }
            _ => ReadFailure::Passing,
        }
    }

    /// Skips what is left of the cursor's segment after a read that cannot succeed, keeping
    /// the frames before it (returned already, they may be rewound to and read again).
    fn skip_rest(&mut self, at: FramePos, err: &SegmentError) {
        let Some(readable) = self.segments.get(&at.segment).map(|s| s.readable) else {
            return;
        };
        if self.writer_id() == Some(at.segment) {
            // Its frames not yet durable are still in memory: they go to a fresh segment.
            self.fail_writer();
        }
        let length = readable.saturating_sub(at.offset);
        if self.counted.insert(at) {
            self.skipped.unreadable += length;
            let path = self.segment_path(at.segment);
            warn!(path = %path.display(), offset = at.offset, length, error = %err, "unreadable spool data skipped");
        }
        self.move_cursor(FramePos::at(at.segment, readable.max(at.offset)));
    }

    /// Forgets a segment that is gone: its frames cannot be read, delivered or not.
    fn forget_segment(&mut self, id: u64) {
        if self.writer_id() == Some(id) {
            self.fail_writer();
        }
        self.segments.remove(&id);
        self.seen.forget_segment(id);
        self.lost_segments_total += 1;
        if self.cursor.segment == id {
            self.reader = None;
        }
    }

    /// Counts a damaged stretch once, however often it is read.
    fn count_corrupt(&mut self, pos: FramePos, length: u64, records: u64, reason: &str) {
        if !self.counted.insert(pos) {
            return;
        }
        self.corrupt_frames_total += 1;
        self.skipped.corrupt += length;
        if let Some(segment) = self.segments.get_mut(&pos.segment) {
            segment.records = segment.records.saturating_sub(records);
        }
        let path = self.segment_path(pos.segment);
        let offset = pos.offset;
        warn!(path = %path.display(), offset, length, reason, "corrupt spool data skipped");
    }

    /// The first frame not delivered: every frame before it is delivered.
    pub(super) fn prefix(&self) -> FramePos {
        self.seen.prefix(self.cursor)
    }

    /// Forgets frames before the prefix and deletes the segments it has passed: every segment
    /// before its segment, and its segment too once it is fully read (the writer's segment only
    /// when nothing is unread). Every deletion is tried, failed ones again next time. Returns
    /// whether it deleted any, and the first failure.
    pub(super) fn release_delivered(&mut self) -> (bool, Result<(), SpoolError>) {
        let prefix = self.prefix();
        self.seen.forget_before(prefix);
        self.counted = self.counted.split_off(&prefix);
        let done: Vec<(u64, u64)> = self
            .segments
            .range(..=prefix.segment)
            .filter(|&(&id, s)| id < prefix.segment || prefix.offset >= self.unread_end(id, s))
            .map(|(&id, s)| (id, s.len))
            .collect();
        for (id, len) in done {
            if self.writer_id() == Some(id) {
                self.writer = None; // fully delivered and nothing unread: start afresh
            }
            if self.cursor.segment == id {
                self.reader = None;
            }
            self.segments.remove(&id);
            self.undeleted.insert(id, len);
        }
        let mut released = false;
        let mut failed = Ok(());
        let mut removed_any = false;
        let undeleted: Vec<u64> = self.undeleted.keys().copied().collect();
        for id in undeleted {
            let path = self.segment_path(id);
            match fs::remove_file(&path) {
                Ok(()) => removed_any = true,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    if failed.is_ok() {
                        failed = Err(SpoolError::File { path, source });
                    }
                    continue;
                }
            }
            self.undeleted.remove(&id);
            released = true;
        }
        if removed_any && let Err(err) = super::layout::sync_dir(&self.settings.dir) {
            failed = failed.and(Err(err));
        }
        (released, failed)
    }

    /// Where replay should resume after a restart; `None` when nothing is left. With only
    /// segments left that are delivered but could not be deleted, a position past them, so
    /// that a restart does not send them again.
    pub(super) fn resume_position(&self) -> Option<FramePos> {
        let prefix = self.prefix();
        match self.segments.range(prefix.segment..).next() {
            Some((&id, _)) if id == prefix.segment => Some(prefix),
            Some((&id, _)) => Some(FramePos::at(id, 0)),
            None if !self.undeleted.is_empty() || !self.rewrite.is_empty() => {
                Some(FramePos::at(self.next_id, 0))
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::{DAMAGED_DIR, POSITION_FILE, segment_path};
    use super::super::testing::*;
    use super::super::*;
    use std::fs;
    use tempfile::TempDir;

    #[test]
    fn reader_sees_frames_appended_after_it_reached_the_end() {
        let dir = TempDir::new().unwrap();
        let (mut spool, _) = open(dir.path(), u64::MAX);
        let first = spool.append(&batch(0, 2)).unwrap();
        assert!(spool.next_frame().unwrap().is_none(), "not durable yet");
        assert!(spool.has_unread());
        spool.sync().unwrap();
        assert_eq!(spool.next_frame().unwrap().unwrap().pos, first);
        assert!(spool.next_frame().unwrap().is_none());
        assert!(!spool.has_unread());

        let second = spool.append(&batch(2, 1)).unwrap();
        let third = spool.append(&batch(3, 1)).unwrap();
        spool.sync().unwrap();
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
        spool.sync().unwrap();
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
        spool.sync().unwrap();
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
        spool.sync().unwrap();
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

    /// Runs the calling test again in a child process of its own, whose descriptor limit it
    /// may exhaust without disturbing the tests running beside it. True in the child.
    fn in_child_process(test: &str) -> bool {
        const CHILD: &str = "LOGSHIP_SPOOL_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            return true;
        }
        let module = module_path!().split_once("::").unwrap().1;
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::{test}"), "--test-threads=1"])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child test failed");
        false
    }

    /// Review finding 3: running out of file descriptors (EMFILE, a real one: the child's limit
    /// is lowered and used up) moved a whole undelivered segment to damaged/. It is a passing
    /// condition: the read fails, and succeeds once descriptors are free again.
    #[test]
    fn a_temporary_read_error_is_returned_and_the_segment_kept() {
        if !in_child_process("a_temporary_read_error_is_returned_and_the_segment_kept") {
            return;
        }
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write_segment(d, 1, 0, 2);
        write_segment(d, 2, 10, 2);
        let (mut spool, _) = open(d, u64::MAX);
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let open_now = fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        setrlimit(Resource::RLIMIT_NOFILE, open_now + 8, hard).unwrap();
        let mut hoard = Vec::new();
        let exhausted = loop {
            match fs::File::open("/dev/null") {
                Ok(file) => hoard.push(file),
                Err(err) => break err,
            }
        };
        assert_eq!(exhausted.raw_os_error(), Some(24), "{exhausted}"); // EMFILE
        assert!(matches!(spool.next_frame(), Err(SpoolError::Read { .. })));
        assert!(segment_path(d, 1).is_file());
        assert!(!d.join(DAMAGED_DIR).exists());
        drop(hoard);
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 10, 11]);
        assert_eq!(spool.stats().lost_segments_total, 0);
    }

    /// A payload that does not compress, so frames are larger than any read buffer.
    fn bulky(id: u64) -> Vec<crate::spool::SpoolRecord> {
        let mut record = record(id);
        let mut state = id | 1;
        record.payload = (0..20_000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 33) as u8
            })
            .collect();
        vec![record]
    }

    /// Review finding 3: when a segment failed to read partway, the frames read before the
    /// failure were forgotten with it: a rewind (their sends failed) never returned them again.
    #[test]
    fn a_segment_failing_partway_keeps_the_frames_before_the_failure() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let (mut spool, _) = open(d, u64::MAX);
        let pos: Vec<FramePos> = (0..4).map(|i| spool.append(&bulky(i)).unwrap()).collect();
        spool.sync().unwrap();
        drop(spool);
        let (mut spool, _) = open(d, u64::MAX);
        let first: Vec<ReadFrame> = (0..2)
            .map(|_| spool.next_frame().unwrap().unwrap())
            .collect();
        // Cut under the spool, in the middle of the third frame.
        let path = segment_path(d, pos[0].segment);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(pos[2].offset + 100)
            .unwrap();
        assert!(spool.next_frame().unwrap().is_none());
        spool.rewind();
        let again = read_all(&mut spool);
        assert_eq!(ids(&again), vec![0, 1]);
        assert_eq!(ids(&first), vec![0, 1]);
        for frame in &again {
            spool.delivered(frame.pos).unwrap();
        }
        assert!(spool.is_drained());
        assert!(!path.exists());
    }

    /// Review finding 9: a corrupt frame first noticed while replaying a segment recovered at
    /// start was skipped without being counted.
    #[test]
    fn corrupt_frames_first_seen_in_a_recovered_segment_are_counted() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let offsets = write_segment(d, 1, 0, 3);
        let (mut spool, _) = open(d, u64::MAX);
        let path = segment_path(d, 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[offsets[1] as usize + 30] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
    }

    /// Review finding 12: one delivered segment that could not be deleted stopped every later
    /// deletion and the position saves.
    #[test]
    fn a_segment_that_cannot_be_deleted_does_not_stop_the_others_or_the_position() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        for id in 1..=3 {
            write_segment(d, id, id * 10, 1);
        }
        let (mut spool, _) = open(d, u64::MAX);
        let frames: Vec<ReadFrame> = (0..2)
            .map(|_| spool.next_frame().unwrap().unwrap())
            .collect();
        // A non-empty directory where segment 1 was: unlink fails, even for root.
        fs::remove_file(segment_path(d, 1)).unwrap();
        fs::create_dir(segment_path(d, 1)).unwrap();
        fs::write(segment_path(d, 1).join("x"), b"x").unwrap();
        spool.delivered(frames[0].pos).unwrap_err();
        let _ = spool.delivered(frames[1].pos);
        assert!(
            !segment_path(d, 2).exists(),
            "segment 2 is deleted all the same"
        );
        assert_eq!(
            fs::read_to_string(d.join(POSITION_FILE)).unwrap(),
            "logship-spool-position 1\n3 0\n"
        );
        assert_eq!(ids(&read_all(&mut spool)), vec![30]);
    }
}
