//! A journald source's checkpoint: the cursor of the newest entry whose events (and all before
//! it) are delivered. Versioned JSON at `data_dir/checkpoints/<source>.json`, replaced
//! crash-safely (`source::durable`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    version: u32,
    cursor: String,
}

/// Why the cursor file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a journald checkpoint: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has version {version}, this logship reads version {VERSION}", path.display())]
    Version { path: PathBuf, version: u32 },
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
    pub fn load(&mut self) -> Result<Option<String>, CursorError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CursorError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: CursorFile =
            serde_json::from_slice(&bytes).map_err(|source| CursorError::Parse {
                path: self.path.clone(),
                source,
            })?;
        if file.version != VERSION {
            return Err(CursorError::Version {
                path: self.path.clone(),
                version: file.version,
            });
        }
        self.saved = Some(file.cursor.clone());
        Ok(Some(file.cursor))
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
        crate::source::durable::replace(&self.path, &body)?;
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
            Err(CursorError::Version { version: 9, .. })
        ));
    }
}
