//! Finding files: glob expansion (include minus exclude), and inotify wake-ups through `notify`
//! so a new or changed file is noticed at once. The periodic rescan (`glob_interval_ms`) stays as
//! the fallback: a missed or overflowed inotify event only delays a file, never loses it.

use std::collections::{BTreeMap, HashSet};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::identity::FileId;
use crate::config::FileSourceSettings;

/// A regular file that matches the globs.
pub struct Found {
    pub path: PathBuf,
    pub id: FileId,
    pub meta: Metadata,
}

/// Why a matching path is not a file the source can read.
#[derive(Debug)]
pub enum Skipped {
    /// A directory, FIFO, socket or device named like a log.
    NotRegular(PathBuf),
    /// `stat` failed: a dangling symlink, a symlink loop, no permission on the directory.
    Unreachable(PathBuf, std::io::Error),
}

/// Regular files matching an include glob and no exclude glob, by path; and what was skipped.
pub fn expand(settings: &FileSourceSettings) -> (Vec<Found>, Vec<Skipped>) {
    let mut found = BTreeMap::new();
    let mut skipped = Vec::new();
    for pattern in &settings.include {
        let Ok(paths) = glob::glob(pattern.as_str()) else {
            continue;
        };
        for path in paths.flatten() {
            if settings.exclude.iter().any(|x| x.matches_path(&path)) {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    let id = FileId::of(&meta);
                    found.insert(path.clone(), Found { path, id, meta });
                }
                Ok(_) => skipped.push(Skipped::NotRegular(path)),
                Err(e) => skipped.push(Skipped::Unreachable(path, e)),
            }
        }
    }
    (found.into_values().collect(), skipped)
}

/// The directory to watch for one glob, and whether below it at any depth.
fn watch_root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let is_glob = |part: &str| part.contains(['*', '?', '[', '{']);
    let parts: Vec<&str> = pattern.split('/').collect();
    let literal = parts.iter().take_while(|p| !is_glob(p)).count();
    // The last component is the file name itself, even without glob characters.
    let literal = literal.min(parts.len().saturating_sub(1));
    let root = match parts[..literal].join("/") {
        r if r.is_empty() && pattern.starts_with('/') => PathBuf::from("/"),
        r if r.is_empty() => PathBuf::from("."),
        r => PathBuf::from(r),
    };
    let depth = parts.len() - literal;
    let mode = if depth > 1 {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    (root, mode)
}

/// What inotify reported since the last look.
#[derive(Debug, Default)]
pub struct Changes {
    /// Files appeared, moved or vanished: expand the globs again.
    pub rescan: bool,
    /// Paths whose content changed.
    pub modified: HashSet<PathBuf>,
}

/// inotify wake-ups for a source's globs.
pub struct Wakeups {
    watcher: Option<RecommendedWatcher>,
    roots: Vec<(PathBuf, RecursiveMode, bool)>,
    changes: Arc<Mutex<Changes>>,
    /// Fires when anything changed.
    pub notify: Arc<Notify>,
}

impl Wakeups {
    pub fn new(settings: &FileSourceSettings, source: &str) -> Self {
        let changes = Arc::new(Mutex::new(Changes::default()));
        let notify = Arc::new(Notify::new());
        let watcher = {
            let changes = Arc::clone(&changes);
            let notify = Arc::clone(&notify);
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let mut changes = changes.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    Ok(event) => match event.kind {
                        EventKind::Modify(notify::event::ModifyKind::Data(_)) => {
                            changes.modified.extend(event.paths);
                        }
                        EventKind::Access(_) => return,
                        _ => changes.rescan = true,
                    },
                    // Overflow and friends: fall back to a full rescan.
                    Err(_) => changes.rescan = true,
                }
                notify.notify_one();
            })
        };
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(error) => {
                tracing::warn!(source, %error, "inotify unavailable; relying on the periodic rescan");
                None
            }
        };
        let roots = settings
            .include
            .iter()
            .map(|p| {
                let (root, mode) = watch_root(p.as_str());
                (root, mode, false)
            })
            .collect();
        let mut wakeups = Self {
            watcher,
            roots,
            changes,
            notify,
        };
        wakeups.watch_roots(source);
        wakeups
    }

    /// Starts watching roots that exist now (a directory may be created after the agent).
    pub fn watch_roots(&mut self, source: &str) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        for (root, mode, watching) in &mut self.roots {
            if *watching || !root.is_dir() {
                continue;
            }
            match watcher.watch(root, *mode) {
                Ok(()) => *watching = true,
                Err(error) => {
                    tracing::warn!(source, root = %root.display(), %error, "cannot watch directory; relying on the periodic rescan");
                    *watching = true;
                }
            }
        }
    }

    /// Takes only whether files appeared, moved or vanished, leaving content changes for `take`.
    pub fn take_rescan(&self) -> bool {
        std::mem::take(
            &mut self
                .changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rescan,
        )
    }

    /// Takes what changed since the last call.
    pub fn take(&self) -> Changes {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Looks for the file with identity `id` in `dir`: where a rotated file went.
pub fn find_in_dir(dir: &Path, id: FileId) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let meta = std::fs::metadata(entry.path()).ok()?;
        (meta.is_file() && FileId::of(&meta) == id).then(|| entry.path())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_roots_stop_at_the_first_glob() {
        assert_eq!(
            watch_root("/var/log/*.log"),
            (PathBuf::from("/var/log"), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            watch_root("/var/log/pods/*/*/*.log"),
            (PathBuf::from("/var/log/pods"), RecursiveMode::Recursive)
        );
        assert_eq!(
            watch_root("/var/log/**/x.log"),
            (PathBuf::from("/var/log"), RecursiveMode::Recursive)
        );
        assert_eq!(
            watch_root("/var/log/app.log"),
            (PathBuf::from("/var/log"), RecursiveMode::NonRecursive)
        );
    }
}
