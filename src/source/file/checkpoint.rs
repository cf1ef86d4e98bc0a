//! A file source's checkpoint file: where each file must resume, written crash-safely.
//!
//! Format: versioned JSON at `data_dir/checkpoints/<source>.json`, replaced crash-safely
//! (`source::durable`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::durable::{self, StateError, Versioned};

/// Version of the on-disk format; bump it when the layout changes and read the old one too.
const VERSION: u32 = 1;

pub use super::identity::FileId;

/// Where one file resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub path: PathBuf,
    #[serde(flatten)]
    pub id: FileId,
    /// Start of the oldest line not yet delivered.
    pub offset: u64,
    /// Checksum of the first `fingerprint_bytes`, once the file had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<u32>,
    /// Checksum of the bytes just before `offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<u32>,
    /// Read only after this file (the rotated predecessor or copy of its stream) is read to its
    /// end, so the stream stays in order across a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<FileId>,
    /// A compressed file read to its end and delivered: never read again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub complete: bool,
}

/// A file that was released (rotated away, deleted) after being read to `offset`; a compressed
/// copy of it that turns up later is read only past that offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub fingerprint: u32,
    pub offset: u64,
}

/// Everything a source resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub files: BTreeMap<FileId, FileCheckpoint>,
    /// Most recent last.
    pub released: Vec<Released>,
}

#[derive(Debug, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<FileCheckpoint>,
    #[serde(default)]
    released: Vec<Released>,
}

impl Versioned for CheckpointFile {
    fn version(&self) -> u32 {
        self.version
    }
}

/// `CheckpointFile` as written: borrows the checkpoint, which can hold thousands of files.
#[derive(Serialize)]
struct CheckpointFileRef<'a> {
    version: u32,
    files: Vec<&'a FileCheckpoint>,
    #[serde(skip_serializing_if = "<[Released]>::is_empty")]
    released: &'a [Released],
}

/// Why a checkpoint file could not be read.
pub type CheckpointError = StateError;

/// The checkpoint file of one source.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    last_written: Option<Vec<u8>>,
}

impl CheckpointStore {
    pub fn new(data_dir: &Path, source: &str) -> Self {
        Self {
            path: data_dir.join("checkpoints").join(format!("{source}.json")),
            last_written: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint; empty when none was written yet.
    pub fn load(&self) -> Result<Checkpoint, CheckpointError> {
        let Some(file) = durable::load::<CheckpointFile>(&self.path, VERSION)? else {
            return Ok(Checkpoint::default());
        };
        Ok(Checkpoint {
            files: file.files.into_iter().map(|c| (c.id, c)).collect(),
            released: file.released,
        })
    }

    /// Writes the checkpoint if it differs from what was last written. Returns whether it wrote.
    pub fn save(&mut self, checkpoint: &Checkpoint) -> std::io::Result<bool> {
        let file = CheckpointFileRef {
            version: VERSION,
            files: checkpoint.files.values().collect(),
            released: &checkpoint.released,
        };
        // Compact: with thousands of files every byte is written every interval.
        let body = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        if self.last_written.as_ref() == Some(&body) {
            return Ok(false);
        }
        durable::replace(&self.path, &body)?;
        self.last_written = Some(body);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_unchanged_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::new(dir.path(), "app");
        assert_eq!(store.load().unwrap(), Checkpoint::default());
        let entry = FileCheckpoint {
            path: "/var/log/a.log".into(),
            id: FileId {
                device: 1,
                inode: 2,
            },
            offset: 99,
            fingerprint: Some(7),
            marker: None,
            after: None,
            complete: false,
        };
        let checkpoint = Checkpoint {
            files: BTreeMap::from([(entry.id, entry)]),
            released: vec![Released {
                fingerprint: 7,
                offset: 5,
            }],
        };
        assert!(store.save(&checkpoint).unwrap());
        assert!(
            !store.save(&checkpoint).unwrap(),
            "unchanged checkpoint is not rewritten"
        );
        let loaded = CheckpointStore::new(dir.path(), "app").load().unwrap();
        assert_eq!(loaded, checkpoint);
        assert!(!store.path().with_extension("json.tmp").exists());
    }

    #[test]
    fn unknown_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "app");
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), br#"{"version":99,"files":[]}"#).unwrap();
        assert!(matches!(
            store.load(),
            Err(CheckpointError::Version { version: 99, .. })
        ));
    }
}
