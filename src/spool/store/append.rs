//! Writing frames: the current segment, starting the next one, and what a failed write leaves.

use std::fs;
use std::io;

use tracing::warn;

use super::layout::remove_if_present;
use super::{FramePos, Segment, Spool, SpoolError};
use crate::spool::segment::{SegmentError, SegmentWriter, SpoolRecord};

impl Spool {
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

    /// Syncs the current segment and creates the next one; registers it only once it exists.
    pub(super) fn start_segment(&mut self) -> Result<(), SpoolError> {
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
    pub(super) fn check_after_failed_write(&mut self, id: u64) {
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
    pub(super) fn retire_writer(&mut self) {
        if let Some((_, mut writer)) = self.writer.take() {
            if let Err(err) = writer.sync() {
                let path = writer.path().display();
                warn!(path = %path, error = %err, "cannot sync a retired spool segment");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
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
        assert_eq!(spool.stats().bytes, bytes_on_disk(dir.path()));
        assert_eq!(spool.stats().records, 2);
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2]);
    }
}
