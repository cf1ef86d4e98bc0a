//! The spool directory's file names, listing its segments, creating its directories, and
//! making its changes durable.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::SpoolError;

/// The position file's name in the spool directory.
pub(super) const POSITION_FILE: &str = "position";

/// Where the position is written before it is renamed over [`POSITION_FILE`].
pub(super) const POSITION_TMP: &str = "position.tmp";

/// First line of the position file: format name and version.
pub(super) const POSITION_MAGIC: &str = "logship-spool-position 1";

/// Subdirectory receiving what cannot be read: segments that are not regular files, and the
/// bytes cut off a torn write.
pub(super) const DAMAGED_DIR: &str = "damaged";

/// Segment file names: exactly this many decimal digits, then [`SEGMENT_SUFFIX`].
pub(super) const SEGMENT_ID_DIGITS: usize = 20;

pub(super) const SEGMENT_SUFFIX: &str = ".seg";

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The ids of the `*.seg` files in `dir`, ascending.
pub(super) fn list_segment_ids(dir: &Path) -> Result<Vec<u64>, SpoolError> {
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

/// Creates `dir` (and its parents) if missing, readable by the agent only: segments hold log
/// records. An existing directory keeps its permissions.
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if let Some(parent) = dir.parent() {
        // The new entry itself must survive a crash, or the files inside vanish with it.
        let _ = sync_dir(parent);
    }
    Ok(())
}

/// Removes a file if it exists, durably; logs other failures. Returns whether it is gone.
pub(super) fn remove_if_present(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent()
                && let Err(err) = sync_dir(dir)
            {
                warn!(error = %err, "cannot sync the spool directory after a removal");
            }
            true
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => true,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot remove spool file");
            false
        }
    }
}

/// Makes renames and removals in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|source| SpoolError::File {
            path: dir.to_path_buf(),
            source,
        })
}
