//! Small state files (checkpoints, cursors): versioned JSON, read back strictly, and replaced
//! crash-safely: write a temp file, fsync it, rename it over the old one, fsync the directory.
//! After `kill -9` or a power cut the file holds the old or the new content, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has version {version}, this logship reads version {expected}", path.display())]
    Version {
        path: PathBuf,
        version: u32,
        expected: u32,
    },
}

/// A state file's content, which says which format version it is.
pub trait Versioned {
    fn version(&self) -> u32;
}

/// Reads the state file at `path`: `None` when there is none yet.
pub fn load<T: DeserializeOwned + Versioned>(
    path: &Path,
    expected: u32,
) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let state: T = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if state.version() != expected {
        return Err(StateError::Version {
            path: path.to_owned(),
            version: state.version(),
            expected,
        });
    }
    Ok(Some(state))
}

/// Replaces `path` with `body`, creating its directory if needed.
pub fn replace(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        super::replace(&path, b"one").unwrap();
        super::replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
