//! The `position` file: where replay resumes after a restart (the first frame not yet delivered).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use tracing::warn;

use super::layout::{POSITION_FILE, POSITION_MAGIC, POSITION_TMP, remove_if_present, sync_dir};
use super::{FramePos, SpoolError};

/// The position file as found at start.
pub(super) enum StoredPosition {
    Missing,
    Garbled,
    At(FramePos),
}

pub(super) fn read_position(dir: &Path) -> StoredPosition {
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

pub(super) fn parse_position(text: &str) -> Option<FramePos> {
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

/// Writes `pos` to the position file atomically, or removes the file for `None`.
pub(super) fn write_position(dir: &Path, pos: Option<FramePos>) -> Result<(), SpoolError> {
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
