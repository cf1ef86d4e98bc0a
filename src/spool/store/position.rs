//! The `position` file: where replay resumes after a restart (the first frame not yet delivered).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
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

/// The largest position file [`write_position`] writes (magic, two u64s, separators), with
/// room to spare; anything larger is not one.
const MAX_POSITION_LEN: u64 = 128;

pub(super) fn read_position(dir: &Path) -> StoredPosition {
    let path = dir.join(POSITION_FILE);
    let garbled = |why: &dyn std::fmt::Display| {
        warn!(path = %path.display(), %why, "spool position is garbled; replaying everything");
        StoredPosition::Garbled
    };
    // Not opened unless it is a regular file: opening a FIFO would block the start for good.
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return garbled(&"not a regular file"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return StoredPosition::Missing,
        Err(err) => return garbled(&err),
    }
    let mut text = String::new();
    let read = File::open(&path)
        .and_then(|file| file.take(MAX_POSITION_LEN + 1).read_to_string(&mut text));
    match read {
        Ok(len) if len as u64 > MAX_POSITION_LEN => return garbled(&"too large"),
        Ok(_) => {}
        Err(err) => return garbled(&err),
    }
    match parse_position(&text) {
        // Ids only grow, and the next segment's id must exist: the last id is never a
        // position (review finding 6: it made every new segment id u64::MAX).
        Some(pos) if pos.segment == u64::MAX => garbled(&"segment id out of range"),
        Some(pos) => StoredPosition::At(pos),
        None => garbled(&"not a position"),
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
    let written = open_private(&tmp).and_then(|mut file| {
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

/// Creates or truncates `path` for writing, readable by the agent only.
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tempfile::TempDir;

    /// Review finding 7: a FIFO where the position file belongs blocked the agent's start for
    /// good (opening it waits for a writer); a huge file was read whole.
    #[test]
    fn a_position_that_is_not_a_small_regular_file_is_garbled() {
        let dir = TempDir::new().unwrap();
        let fifo = dir.path().join(POSITION_FILE);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.path().to_path_buf();
        std::thread::spawn(move || tx.send(matches!(read_position(&d), StoredPosition::Garbled)));
        let answer = rx.recv_timeout(Duration::from_secs(5));
        if answer.is_err() {
            // Release the reader blocked in open(2) before failing.
            let _ = fs::OpenOptions::new().write(true).open(&fifo);
        }
        assert_eq!(answer, Ok(true), "reading a FIFO position blocked");

        fs::remove_file(&fifo).unwrap();
        let mut huge = format!("{POSITION_MAGIC}\n1 0\n").into_bytes();
        huge.resize(16 << 20, b'\n');
        fs::write(&fifo, &huge).unwrap();
        assert!(matches!(read_position(dir.path()), StoredPosition::Garbled));

        fs::write(&fifo, format!("{POSITION_MAGIC}\n7 42\n")).unwrap();
        assert!(matches!(
            read_position(dir.path()),
            StoredPosition::At(FramePos {
                segment: 7,
                offset: 42
            })
        ));
    }
}
