//! Writing frames: the current segment, starting the next one, fsyncs, and what a failed write
//! or fsync leaves.
//!
//! Only the writer's segment ever holds frames not yet durable: a segment is fsynced before the
//! next one starts. A failed fsync is never retried on the same file: Linux reports a writeback
//! error once and may then mark the lost pages clean, so a second fsync could succeed with the
//! data gone ("fsyncgate"). The segment is given up instead, cut back to what was durable, and
//! the frames appended since, kept in memory for this, are written again to a fresh segment.

use std::fs;
use std::io;

use tracing::warn;

use super::layout::remove_if_present;
use super::{FramePos, Kept, Segment, Spool, SpoolError};
use crate::spool::segment::{self, SegmentError, SegmentWriter, SpoolRecord};

impl Spool {
    /// Appends `records` as one frame and returns where it is. Not durable, nor readable, until
    /// [`Spool::sync`]. Does not check `max_bytes` (see [`Spool::fits`]). After an error the
    /// spool is consistent and usable; nothing of the frame is readable.
    /// [`SpoolError::is_unwritable_batch`] says when the records themselves cannot be framed.
    pub fn append(&mut self, records: &[SpoolRecord]) -> Result<FramePos, SpoolError> {
        let frame = segment::encode(records).map_err(|source| SpoolError::Write {
            path: self.segment_path(self.writer_id().unwrap_or(self.next_id)),
            source,
        })?;
        let kept = Kept {
            frame,
            records: records.len() as u64,
        };
        self.write_rewrites()?;
        let full = self.writer.as_ref().is_some_and(|(_, writer)| {
            !writer.is_empty() && writer.len() >= self.settings.segment_max_bytes
        });
        if full {
            self.seal_writer()?;
        }
        self.write_kept(kept).map_err(|(err, _)| err)
    }

    /// Makes every appended frame durable, and readable. Returns the segments it fsynced.
    /// After a failure nothing is lost: the frames not durable are written again to a fresh
    /// segment by the next call (or append), which fsyncs that one instead.
    pub fn sync(&mut self) -> Result<Vec<u64>, SpoolError> {
        self.write_rewrites()?;
        let Some((id, writer)) = self.writer.as_mut() else {
            return Ok(Vec::new());
        };
        if writer.synced_len() == writer.len() {
            return Ok(Vec::new());
        }
        let id = *id;
        match writer.sync() {
            Ok(()) => {
                let len = writer.len();
                if let Some(segment) = self.segments.get_mut(&id) {
                    segment.readable = len;
                }
                self.unsynced.clear();
                Ok(vec![id])
            }
            Err(source) => {
                let path = writer.path().to_path_buf();
                self.fail_writer();
                Err(SpoolError::Write { path, source })
            }
        }
    }

    /// Whether frames wait for an fsync (or to be written again after a failed one).
    pub fn needs_sync(&self) -> bool {
        !self.rewrite.is_empty()
            || self
                .writer
                .as_ref()
                .is_some_and(|(_, writer)| writer.synced_len() < writer.len())
    }

    /// Bytes of frames held in memory until they are durable.
    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced
            .iter()
            .chain(&self.rewrite)
            .map(|kept| kept.frame.len() as u64)
            .sum()
    }

    // ---- private ----------------------------------------------------------------------------

    /// Appends one frame to the writer's segment, starting one if there is none; on failure
    /// the frame comes back.
    fn write_kept(&mut self, kept: Kept) -> Result<FramePos, (SpoolError, Kept)> {
        if self.writer.is_none()
            && let Err(err) = self.start_segment()
        {
            return Err((err, kept));
        }
        let Some((id, writer)) = self.writer.as_mut() else {
            let err = io::Error::other("no segment to append to");
            let path = self.segment_path(self.next_id);
            return Err((
                SpoolError::Write {
                    path,
                    source: err.into(),
                },
                kept,
            ));
        };
        let id = *id;
        match writer.append_encoded(&kept.frame) {
            Ok(offset) => {
                let len = writer.len();
                if let Some(segment) = self.segments.get_mut(&id) {
                    segment.len = len;
                    segment.records += kept.records;
                }
                self.unsynced.push(kept);
                Ok(FramePos::at(id, offset))
            }
            Err(source) => {
                let path = writer.path().to_path_buf();
                if matches!(source, SegmentError::Io(_)) {
                    self.check_after_failed_write(id);
                }
                Err((SpoolError::Write { path, source }, kept))
            }
        }
    }

    /// Writes the frames of a segment given up after a failed fsync, in order, before anything
    /// else.
    fn write_rewrites(&mut self) -> Result<(), SpoolError> {
        while let Some(kept) = self.rewrite.pop_front() {
            if let Err((err, kept)) = self.write_kept(kept) {
                self.rewrite.push_front(kept);
                return Err(err);
            }
        }
        Ok(())
    }

    /// Fsyncs the writer's segment and appends to it no more; if the fsync fails, its frames
    /// not yet durable go to a fresh segment (see [`Spool::sync`]).
    fn seal_writer(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        self.writer = None;
        Ok(())
    }

    /// Gives up the writer's segment without another fsync (one failed, or the file is
    /// damaged): the frames appended since its last fsync are to be written again, and are cut
    /// off it, so that a restart does not read them twice.
    pub(super) fn fail_writer(&mut self) {
        let Some((id, mut writer)) = self.writer.take() else {
            return;
        };
        let synced = writer.synced_len();
        let kept = std::mem::take(&mut self.unsynced);
        let records: u64 = kept.iter().map(|k| k.records).sum();
        let frames = kept.len();
        self.rewrite.extend(kept);
        let path = writer.path().to_path_buf();
        let cut = writer.cut_to(synced);
        if let Err(err) = &cut {
            warn!(path = %path.display(), error = %err, "cannot cut frames to be written again off a spool segment; they are not read there");
        }
        warn!(path = %path.display(), frames, "spool segment given up; its frames not yet durable go to a new segment");
        let actual = fs::symlink_metadata(&path).map_or(synced, |meta| meta.len());
        let Some(segment) = self.segments.get_mut(&id) else {
            return;
        };
        segment.records = segment.records.saturating_sub(records);
        segment.len = actual;
        segment.readable = segment.readable.min(synced);
        if actual == 0 && cut.is_ok() {
            remove_if_present(&path);
            self.segments.remove(&id);
            if self.cursor.segment == id {
                self.reader = None;
            }
        }
    }

    /// Creates the next segment; registers it only once it exists.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let id = self.next_id;
        let path = self.segment_path(id);
        // Ids only grow; the last one can have no successor (it is never used).
        let Some(next) = id.checked_add(1) else {
            let source = io::Error::other("spool segment ids exhausted").into();
            return Err(SpoolError::Write { path, source });
        };
        self.next_id = next;
        let writer = SegmentWriter::create(&path).map_err(|source| {
            let exists = io::ErrorKind::AlreadyExists;
            if !matches!(&source, SegmentError::Io(err) if err.kind() == exists) {
                remove_if_present(&path); // created, but its directory entry is not durable
            }
            SpoolError::Write { path, source }
        })?;
        self.writer = Some((id, writer));
        self.segments.insert(
            id,
            Segment {
                len: 0,
                readable: 0,
                records: 0,
            },
        );
        Ok(())
    }

    /// After a failed write, the writer has cut the partial frame off, normally. If the file
    /// does not end where the writer thinks, appends go to a new segment from now on (and
    /// reading never goes past the writer's end).
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
        if let Err(err) = self.seal_writer() {
            warn!(error = %err, "cannot sync a spool segment left after a failed write");
        }
        if let (Some(segment), Some(actual)) = (self.segments.get_mut(&id), actual) {
            segment.len = segment.len.max(actual);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use std::fs;
    use tempfile::TempDir;

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
        spool.sync().unwrap();
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));
        assert_eq!(spool.stats().records, 2);
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
    }

    /// Review finding 13: segments and the position file hold log data (or point into it) and
    /// were created 0644 in a 0755 directory.
    #[test]
    fn spool_files_are_private_to_the_agent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new().unwrap();
        let d = dir.path().join("spool");
        let (mut spool, _) = open(&d, u64::MAX);
        let pos = spool.append(&batch(0, 1)).unwrap();
        spool.append(&batch(1, 1)).unwrap();
        spool.sync().unwrap();
        let frame = spool.next_frame().unwrap().unwrap();
        assert_eq!(frame.pos, pos);
        spool.delivered(frame.pos).unwrap();
        spool.persist_position().unwrap();
        let mode =
            |path: &std::path::Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(
            mode(&super::super::layout::segment_path(&d, pos.segment)),
            0o600
        );
        assert_eq!(mode(&d.join(super::super::layout::POSITION_FILE)), 0o600);
    }
}
