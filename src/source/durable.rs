//! Crash-safe replacement of a small state file (checkpoints, cursors): write a temp file, fsync
//! it, rename it over the old one, fsync the directory. After `kill -9` or a power cut the file
//! holds the old or the new content, never a torn one.

use std::io::Write;
use std::path::Path;

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
