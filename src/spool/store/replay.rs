//! Reading frames back in order, recording their delivery, deleting segments that are done, and
//! persisting where replay stands.

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

impl Spool {
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
                    if self.seen.is_delivered(pos) {
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
        let Some(records) = self.seen.mark_delivered(pos) else {
            return Ok(());
        };
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
        !self.has_unread() && self.seen.all_delivered_before(self.cursor)
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

    pub(super) fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.settings.dir, id)
    }

    pub(super) fn segments_after(&self, id: u64) -> impl Iterator<Item = (&u64, &Segment)> {
        self.segments.range((Bound::Excluded(id), Bound::Unbounded))
    }

    pub(super) fn writer_id(&self) -> Option<u64> {
        self.writer.as_ref().map(|(id, _)| *id)
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
            let finished = self.cursor.offset >= segment.len && self.writer_id() != Some(id);
            let later = self.segments_after(id).next().map(|(&next, _)| next);
            match later {
                Some(next) if finished => self.move_cursor(FramePos::at(next, 0)),
                _ => return,
            }
        }
    }

    /// Skips what is left of segment `id` after damage that hides it.
    pub(super) fn abandon_rest(&mut self, id: u64, len: u64) {
        if self.writer_id() == Some(id) {
            self.retire_writer();
        }
        self.move_cursor(FramePos::at(id, len));
    }

    /// A segment failed to read. The writer's segment is retired and the error returned; any
    /// other segment is moved aside and forgotten, and reading goes on.
    pub(super) fn read_failed(&mut self, id: u64, err: SegmentError) -> Result<(), SpoolError> {
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
        self.seen.forget_segment(id);
        self.lost_segments_total += 1;
        Ok(())
    }

    pub(super) fn count_corrupt(&mut self, pos: FramePos, length: u64, reason: &str) {
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
    pub(super) fn prefix(&self) -> FramePos {
        self.seen.prefix(self.cursor)
    }

    /// Forgets frames before the prefix and deletes the segments it has passed: every segment
    /// before its segment, and its segment too once it is fully read (the writer's segment only
    /// when nothing is unread). Returns whether it deleted any.
    pub(super) fn release_delivered(&mut self) -> Result<bool, SpoolError> {
        let prefix = self.prefix();
        self.seen.forget_before(prefix);
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
    pub(super) fn resume_position(&self) -> Option<FramePos> {
        let prefix = self.prefix();
        let (&id, _) = self.segments.range(prefix.segment..).next()?;
        Some(if id == prefix.segment {
            prefix
        } else {
            FramePos::at(id, 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::{DAMAGED_DIR, POSITION_FILE, segment_path};
    use super::super::testing::*;
    use super::super::*;
    use tempfile::TempDir;

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
}
