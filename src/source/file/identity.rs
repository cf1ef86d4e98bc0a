//! A file's identity: (device, inode), plus a checksum of its first `fingerprint_bytes` once it
//! has that many, plus a checksum of the bytes just before a stored offset (the marker).
//!
//! The inode says which file this is right now; the fingerprint and the marker say whether the
//! file under that inode is still the one a checkpoint was written for. After a restart, an
//! inode reused by a new file, or a file truncated and rewritten past the old offset, fails one of
//! the two checks and is read from the start instead of from a stranger's offset.

use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// How many bytes before an offset the marker covers.
pub const MARKER_BYTES: u64 = 64;

/// A file's place on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub device: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// CRC32C of `len` bytes at `at`, or None when the file has fewer.
pub fn checksum_at(file: &File, at: u64, len: u64) -> std::io::Result<Option<u32>> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => return Ok(None),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(crc32c::crc32c(&buf)))
}

/// The fingerprint: a checksum of the first `len` bytes, once the file has them.
pub fn fingerprint(file: &File, len: u64) -> std::io::Result<Option<u32>> {
    checksum_at(file, 0, len)
}

/// The marker for `offset`: a checksum of the up to `MARKER_BYTES` bytes before it.
pub fn marker(file: &File, offset: u64) -> std::io::Result<Option<u32>> {
    let len = offset.min(MARKER_BYTES);
    if len == 0 {
        return Ok(None);
    }
    checksum_at(file, offset - len, len)
}

/// The marker of bytes already in memory: the up to `MARKER_BYTES` bytes that end at an offset.
pub fn marker_of(tail: &[u8]) -> Option<u32> {
    (!tail.is_empty()).then(|| crc32c::crc32c(tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_waits_for_enough_bytes() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"short").unwrap();
        assert_eq!(fingerprint(file.as_file(), 8).unwrap(), None);
        file.write_all(b" and now long").unwrap();
        assert_eq!(
            fingerprint(file.as_file(), 8).unwrap(),
            Some(crc32c::crc32c(b"short an"))
        );
    }

    #[test]
    fn marker_covers_the_bytes_before_the_offset() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..200u8).collect();
        file.write_all(&data).unwrap();
        assert_eq!(marker(file.as_file(), 0).unwrap(), None);
        assert_eq!(marker(file.as_file(), 10).unwrap(), marker_of(&data[..10]));
        assert_eq!(
            marker(file.as_file(), 150).unwrap(),
            marker_of(&data[86..150])
        );
        assert_eq!(
            marker(file.as_file(), 300).unwrap(),
            None,
            "past the end of the file"
        );
    }
}
