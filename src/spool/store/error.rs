//! What the spool cannot handle itself, and which of it means a full disk.

use std::io;
use std::path::PathBuf;

use crate::spool::segment::SegmentError;

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
    /// Reading a segment failed for a reason that may pass (no file descriptor or memory left,
    /// a permission, an I/O error not yet repeated): nothing is skipped, the read is tried again
    /// later.
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
    /// Whether the records appended cannot be framed at all (a field or the batch too large):
    /// writing them again can never succeed.
    pub fn is_unwritable_batch(&self) -> bool {
        matches!(self, Self::Write { source, .. } if source.is_unwritable_batch())
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
}
