//! A journald source's checkpoint: the cursor of the newest entry whose events (and all before
//! it) are delivered. Versioned JSON at `data_dir/checkpoints/<source>.json`, replaced
//! crash-safely (`source::durable`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::durable::{self, StateError, Versioned};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    version: u32,
    cursor: String,
}

impl Versioned for CursorFile {
    fn version(&self) -> u32 {
        self.version
    }
}

/// The cursor file of one source.
#[derive(Debug)]
pub struct CursorStore {
    path: PathBuf,
    saved: Option<String>,
}

impl CursorStore {
    pub fn new(data_dir: &Path, source: &str) -> Self {
        Self {
            path: data_dir.join("checkpoints").join(format!("{source}.json")),
            saved: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored cursor; `None` when none was written yet.
    pub fn load(&mut self) -> Result<Option<String>, StateError> {
        let cursor = durable::load::<CursorFile>(&self.path, VERSION)?.map(|file| file.cursor);
        self.saved.clone_from(&cursor);
        Ok(cursor)
    }

    /// Writes `cursor` unless it is what was saved last. Returns whether it wrote.
    pub fn save(&mut self, cursor: &str) -> std::io::Result<bool> {
        if self.saved.as_deref() == Some(cursor) {
            return Ok(false);
        }
        let body = serde_json::to_vec(&CursorFile {
            version: VERSION,
            cursor: cursor.to_owned(),
        })
        .map_err(std::io::Error::other)?;
        durable::replace(&self.path, &body)?;
        self.saved = Some(cursor.to_owned());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_unchanged_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CursorStore::new(dir.path(), "journal");
        assert_eq!(store.load().unwrap(), None);
        assert!(store.save("s=1;i=2").unwrap());
        assert!(!store.save("s=1;i=2").unwrap());
        let mut again = CursorStore::new(dir.path(), "journal");
        assert_eq!(again.load().unwrap().as_deref(), Some("s=1;i=2"));
        std::fs::write(again.path(), br#"{"version":9,"cursor":"x"}"#).unwrap();
        assert!(matches!(
            again.load(),
            Err(StateError::Version { version: 9, .. })
        ));
    }
}
