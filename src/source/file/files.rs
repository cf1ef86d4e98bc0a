//! The set of files a source reads, as a synchronous state machine: `scan` finds files and
//! notices rotation, `read_turn` reads one file, `maintain` handles time (partial lines, idle
//! files, rotated files), `checkpoint` says where each file resumes. The async loop in `mod.rs`
//! only decides when to call these; the model-based test drives them step by step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::time::Instant;

use super::checkpoint::{Checkpoint, FileCheckpoint, Released};
use super::discovery::{self, Found, Skipped};
use super::identity::{self, FileId};
use super::reader::Line;
use super::tracked::{Attachment, TrackedFile, Turn, is_gzip};
use crate::ack::AckTracker;
use crate::config::{FileSourceSettings, ReadFrom};
use crate::event::{Event, FileOrigin};
use crate::metrics::FileSourceMetrics;

/// How many released files are remembered for recognising their compressed copies.
const RELEASED_HISTORY: usize = 1000;

pub struct FileSet {
    settings: FileSourceSettings,
    host: Arc<str>,
    metrics: FileSourceMetrics,
    files: Vec<TrackedFile>,
    /// Checkpoints of files not (yet) found again after a restart.
    unclaimed: BTreeMap<FileId, FileCheckpoint>,
    released: Vec<Released>,
    /// Paths that could not be opened or are not regular files, reported once each.
    reported: HashSet<PathBuf>,
    chunk: Vec<u8>,
    /// Set by `start_offset` for `add`: a checkpoint's fingerprint and offset to find a copy by.
    pending_rescue: Option<(u32, u64)>,
    scanned_once: bool,
    /// Indexes of open files, and paths of closed ones: what a wake-up looks at, so that it
    /// costs nothing per idle file. Rebuilt after every scan and maintenance pass.
    open: Vec<usize>,
    closed_paths: HashSet<PathBuf>,
    /// Indexes of the files `maintain` visits: open, rotated away, or holding lines.
    tended: Vec<usize>,
    /// Files were opened, closed, added or removed since the index was built.
    index_stale: bool,
    /// Digest of every position and identity in the last checkpoint handed out.
    last_digest: Option<u64>,
    /// Files were added, detached or released since the last checkpoint: write one now, so a
    /// crash cannot forget a file that was rotated away before the next periodic write.
    dirty: bool,
}

impl FileSet {
    pub fn new(
        settings: FileSourceSettings,
        host: &str,
        metrics: FileSourceMetrics,
        checkpoint: Checkpoint,
    ) -> Self {
        Self {
            settings,
            host: host.into(),
            metrics,
            files: Vec::new(),
            unclaimed: checkpoint.files,
            released: checkpoint.released,
            reported: HashSet::new(),
            chunk: vec![0; 64 * 1024],
            pending_rescue: None,
            open: Vec::new(),
            closed_paths: HashSet::new(),
            tended: Vec::new(),
            index_stale: true,
            last_digest: None,
            scanned_once: false,
            dirty: false,
        }
    }

    /// Events read and not settled yet (or waiting behind one that is not), over every file.
    pub fn outstanding(&self) -> usize {
        self.files.iter().map(|f| f.tracker.outstanding()).sum()
    }

    /// Whether the set of files changed since the last `checkpoint`.
    pub fn needs_checkpoint(&self) -> bool {
        self.dirty
    }

    /// Expands the globs: opens new files, follows renamed ones, detaches files whose path is
    /// gone, and reopens idle files that changed. Returns events flushed on the way.
    pub fn scan(&mut self, now: Instant) -> Vec<Event> {
        let (found, skipped) = discovery::expand(&self.settings);
        self.report_skipped(skipped);
        let mut events = Vec::new();
        let by_id: HashMap<FileId, &Found> = found.iter().map(|f| (f.id, f)).collect();
        let mut newly_detached = Vec::new();
        let mut stale = Vec::new();
        for (index, file) in self.files.iter_mut().enumerate() {
            match by_id.get(&file.id) {
                Some(f) if file.changed_since_close(&f.meta) && !file.same_content_at(&f.path) => {
                    // A closed file was deleted and a new file got its inode (at this path or
                    // another): not the same file.
                    stale.push(index);
                }
                Some(f) if f.path != file.path => {
                    // Renamed to another matching name (logrotate's app.log.1, dateext): the same
                    // file under a new path, read on without a break.
                    self.metrics.files_rotated.increment(1);
                    file.path = f.path.clone();
                    file.attachment = Attachment::Attached;
                }
                Some(_) => file.attachment = Attachment::Attached,
                None if file.attachment == Attachment::Attached => {
                    file.attachment = Attachment::Detached;
                    self.dirty = true;
                    // The descriptor knows: no name left is a deletion, else a rename.
                    match file.is_unlinked() {
                        Some(true) => self.metrics.files_deleted.increment(1),
                        Some(false) => self.metrics.files_rotated.increment(1),
                        None if file.path.exists() => self.metrics.files_rotated.increment(1),
                        None => self.metrics.files_deleted.increment(1),
                    }
                    newly_detached.push(index);
                }
                None => {}
            }
        }
        for index in newly_detached {
            self.reopen_detached(index);
        }
        for index in stale.into_iter().rev() {
            let file = self.files.remove(index);
            self.metrics.files_deleted.increment(1);
            tracing::info!(path = %file.path_str, "file deleted while idle; its inode now belongs to another file");
            self.dirty = true;
        }
        self.clear_dangling_waits();
        if !self.scanned_once {
            // First, files rotated while the agent was down: new files at their paths wait.
            self.resume_leftovers(&by_id, now);
        }
        let index_of: HashMap<FileId, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        for f in &found {
            if let Some(&index) = index_of.get(&f.id) {
                let file = &mut self.files[index];
                let turn = if file.is_open() {
                    file.check_rewrite()
                } else {
                    file.reopen_if_changed(&f.meta)
                };
                match turn {
                    Ok(turn) => events.extend(self.after_turn(index, turn, Vec::new(), now)),
                    Err(error) => self.metrics.read_error(&self.files[index].path_str, &error),
                }
                // Take the fingerprint as soon as the file has the bytes, read or not: a
                // copytruncate before the next read is then still recognised.
                self.dirty |= self.files[index].update_fingerprint(f.meta.len());
                continue;
            }
            if self.too_old(f) {
                continue;
            }
            self.add(f, now);
        }
        // Checkpoints of files gone have nothing left to resume. A file found but not opened
        // (no permission yet) keeps its checkpoint for the scan that opens it.
        self.scanned_once = true;
        self.unclaimed.retain(|id, _| by_id.contains_key(id));

        self.metrics.files_watched.set(self.files.len() as f64);
        // A scan may open, reopen, add or drop files: index again.
        self.index_stale = true;
        self.index_open_and_closed();
        events
    }

    fn too_old(&self, f: &Found) -> bool {
        let (Some(limit), Ok(modified)) = (self.settings.ignore_older, f.meta.modified()) else {
            return false;
        };
        modified.elapsed().is_ok_and(|age| age > limit)
    }

    fn report_skipped(&mut self, skipped: Vec<Skipped>) {
        for s in skipped {
            let (path, error) = match s {
                Skipped::NotRegular(path) => {
                    let e = std::io::Error::other("not a regular file");
                    (path, e)
                }
                Skipped::Unreachable(path, e) => (path, e),
            };
            if self.reported.insert(path.clone()) {
                self.metrics.read_error(&path.display().to_string(), &error);
            }
        }
    }

    /// Starts reading a newly found file: from its checkpoint when the checkpoint is still this
    /// file's, else per `read_from`.
    fn add(&mut self, f: &Found, now: Instant) {
        let after = self.unclaimed.get(&f.id).and_then(|c| c.after);
        let opened = self.start_offset(f).and_then(|start| {
            TrackedFile::open(&f.path, f.id, start, &self.host, &self.settings, now)
        });
        let rescue = self.pending_rescue.take();
        match opened {
            Ok(mut tracked) => {
                self.reported.remove(&f.path);
                // A new file at a rotated file's path continues its stream: after it.
                tracked.wait_for = after.or_else(|| self.chain_tail(&f.path, None));
                tracing::debug!(path = %tracked.path_str, id = ?tracked.id, wait_for = ?tracked.wait_for, "added");
                if let Some((fingerprint, resume_at)) = rescue
                    && let Some(mut copy) = self.open_copy(&f.path, fingerprint, resume_at, now)
                {
                    tracing::info!(path = %copy.path_str, offset = resume_at, "reading the rest of a file truncated while stopped from its copy");
                    copy.key = Arc::clone(&tracked.key);
                    tracked.wait_for = Some(copy.id);
                    self.files.push(copy);
                }
                tracked.update_fingerprint(f.meta.len());
                if let Some(c) = self.unclaimed.remove(&f.id)
                    && c.complete
                {
                    tracked.complete = true;
                    tracked.close();
                }
                tracing::info!(path = %tracked.path_str, offset = tracked.read_pos, "reading file");
                self.metrics.files_added.increment(1);
                self.files.push(tracked);
                self.dirty = true;
            }
            Err(error) => {
                if self.reported.insert(f.path.clone()) {
                    self.metrics
                        .read_error(&f.path.display().to_string(), &error);
                }
            }
        }
    }

    /// Fails when the file cannot be opened to check its checkpoint: the checkpoint then waits
    /// for a scan that can.
    fn start_offset(&mut self, f: &Found) -> std::io::Result<u64> {
        let path = f.path.display().to_string();
        if let Some(c) = self.unclaimed.get(&f.id) {
            match verify(&f.path, c, self.settings.fingerprint_bytes, f.meta.len())? {
                Verdict::Same => return Ok(c.offset),
                Verdict::Different(why) => {
                    self.metrics
                        .offset_reset(&path, c.offset, f.meta.len(), why);
                    // Truncated while stopped (copytruncate): the rest may be in a copy.
                    if let Some(c) = self.unclaimed.remove(&f.id)
                        && let Some(fingerprint) = c.fingerprint
                    {
                        self.pending_rescue = Some((fingerprint, c.offset));
                    }
                    return Ok(0);
                }
            }
        }
        if is_gzip(&f.path) {
            // A compressed copy of a file already shipped: skip what was read of it.
            if let Ok(Some(fp)) = gzip_fingerprint(&f.path, self.settings.fingerprint_bytes)
                && let Some(r) = self.released.iter().rev().find(|r| r.fingerprint == fp)
            {
                return Ok(r.offset);
            }
            return Ok(0);
        }
        // read_from = "end" applies only to files already there at start with no checkpoint;
        // files that appear while running are new and read whole.
        Ok(
            if !self.scanned_once && self.settings.read_from == ReadFrom::End {
                f.meta.len()
            } else {
                0
            },
        )
    }

    /// At the first scan: checkpointed files the globs no longer match were rotated while the
    /// agent was down. Find them by inode next to their old path and read their unread tail,
    /// under their old path's stream (key), before any new file at that path.
    fn resume_leftovers(&mut self, found: &HashMap<FileId, &Found>, now: Instant) {
        let leftovers: Vec<FileCheckpoint> = self
            .unclaimed
            .values()
            .filter(|c| !found.contains_key(&c.id) && !c.complete)
            .cloned()
            .collect();
        for c in leftovers {
            self.unclaimed.remove(&c.id);
            let dir = c.path.parent().unwrap_or(Path::new("/"));
            let opened = discovery::find_in_dir(dir, c.id).and_then(|path| {
                let size = std::fs::metadata(&path).ok()?.len();
                // Rewritten since the checkpoint: read it whole (duplicates, never loss).
                let offset = match verify(&path, &c, self.settings.fingerprint_bytes, size).ok()? {
                    Verdict::Same => c.offset,
                    Verdict::Different(why) => {
                        self.metrics
                            .offset_reset(&path.display().to_string(), c.offset, size, why);
                        0
                    }
                };
                TrackedFile::open(&path, c.id, offset, &self.host, &self.settings, now).ok()
            });
            match opened {
                Some(mut tracked) => {
                    tracing::info!(path = %tracked.path_str, offset = tracked.read_pos, "reading the rest of a file rotated while stopped");
                    tracked.key = format!("{}:{}", self.host, c.path.display())
                        .into_bytes()
                        .into();
                    tracked.path = c.path;
                    tracked.wait_for = c.after;
                    tracked.attachment = Attachment::Detached;
                    self.files.push(tracked);
                    self.dirty = true;
                }
                None => self
                    .metrics
                    .file_vanished(&c.path.display().to_string(), None),
            }
        }
    }

    /// A detached file whose descriptor was closed as idle: find it next to its old path (renamed
    /// away) to read what it got since; gone means deleted.
    fn reopen_detached(&mut self, index: usize) {
        let file = &mut self.files[index];
        if file.is_open() || file.complete {
            return;
        }
        let dir = file.path.parent().unwrap_or(Path::new("/")).to_owned();
        // Not found: deleted while closed; it is released like any detached file.
        if let Some(path) = discovery::find_in_dir(&dir, file.id)
            && let Ok(meta) = std::fs::metadata(&path)
        {
            file.path = path;
            // A rotated file is not truncated; a turn's truncation, if any, is seen when read.
            if file.reopen_if_changed(&meta).is_err() {
                self.metrics.file_vanished(&file.path_str, None);
            }
        }
    }

    /// Reads one turn of file `index`.
    pub fn read_turn(&mut self, index: usize, now: Instant) -> Vec<Event> {
        let budget = self.settings.max_read_bytes;
        let Some(file) = self.files.get(index) else {
            return Vec::new();
        };
        if let Some(id) = file.wait_for {
            // An inode is a file only while a descriptor holds it: look among open files.
            let waiting = self
                .files
                .iter()
                .any(|f| f.id == id && f.is_open() && !f.at_eof);
            if waiting {
                return Vec::new();
            }
            // Kept until the predecessor is released (delivered): the checkpoint must still
            // order the two after a crash.
        }
        let file = &mut self.files[index];
        if !file.is_open() {
            return Vec::new();
        }
        let mut lines = Vec::new();
        let turn = match file.read_turn(&mut self.chunk, budget, now, &mut lines) {
            Ok(turn) => turn,
            Err(error) => {
                self.metrics.read_error(&file.path_str, &error);
                Default::default()
            }
        };
        self.metrics.bytes_read.increment(turn.bytes);
        self.dirty |= file.update_fingerprint(0);
        self.after_turn(index, turn, lines, now)
    }

    /// Events for a turn's lines. After a truncation the old content's rest is read from its
    /// copy when one is found next to the file (copytruncate), else what was held is shipped.
    fn after_turn(
        &mut self,
        index: usize,
        turn: Turn,
        lines: Vec<Line>,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(truncation) = turn.truncated {
            let file = &self.files[index];
            self.metrics.file_truncated(&file.path_str);
            self.dirty = true;
            let copy = truncation.fingerprint.and_then(|fingerprint| {
                self.open_copy(&file.path, fingerprint, truncation.resume_at, now)
            });
            tracing::debug!(
                path = %self.files[index].path_str,
                fingerprint = ?truncation.fingerprint,
                resume_at = truncation.resume_at,
                copy = ?copy.as_ref().map(|c| c.path_str.clone()),
                "truncation"
            );
            match copy {
                Some(mut copy) => {
                    tracing::info!(path = %copy.path_str, offset = truncation.resume_at, "reading the rest of a truncated file from its copy");
                    // The copy holds the old content at the same offsets: it continues the old
                    // tracker, so its checkpoint stays at the oldest undelivered line.
                    copy.tracker = truncation.tracker;
                    // Same stream, same partition: the copy's lines go first.
                    copy.key = Arc::clone(&self.files[index].key);
                    // The chain stays whole: predecessor → copy → the truncated file.
                    copy.wait_for = self.files[index].wait_for.replace(copy.id);
                    self.files.push(copy);
                    self.dirty = true;
                    self.index_stale = true;
                }
                None => {
                    let file = &self.files[index];
                    let origin = (&truncation.tracker, &file.path_str, &file.key);
                    events.extend(self.events(origin, truncation.held));
                    // New content at a path whose rotated predecessor is still being read
                    // (a freed inode came back at the same path): after it.
                    let path = self.files[index].path.clone();
                    let predecessor = self.chain_tail(&path, Some(index));
                    if predecessor.is_some() {
                        self.files[index].wait_for = predecessor;
                    }
                }
            }
        }
        let file = &self.files[index];
        let read = self.events((&file.tracker, &file.path_str, &file.key), lines);
        if events.is_empty() {
            return read;
        }
        events.extend(read);
        events
    }

    /// The last rotated file of the stream at `path` that is still being read: the one no other
    /// rotated file of that path waits for. A new file at `path` is read after it.
    fn chain_tail(&self, path: &Path, except: Option<usize>) -> Option<FileId> {
        let rotated: Vec<&TrackedFile> = self
            .files
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                Some(*i) != except
                    && f.attachment == Attachment::Detached
                    && f.is_open()
                    && f.path == path
            })
            .map(|(_, f)| f)
            .collect();
        rotated
            .iter()
            .rev()
            .find(|f| rotated.iter().all(|g| g.wait_for != Some(f.id)))
            .map(|f| f.id)
    }

    /// copytruncate copied the old content before truncating it: find that copy (same
    /// fingerprint, at least `resume_at` long, not tracked) next to `original`, opened at
    /// `resume_at` and detached (its name does not match the globs).
    fn open_copy(
        &self,
        original: &Path,
        fingerprint: u32,
        resume_at: u64,
        now: Instant,
    ) -> Option<TrackedFile> {
        let dir = original.parent()?;
        let len = self.settings.fingerprint_bytes;
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let path = entry.path();
            let meta = std::fs::metadata(&path).ok()?;
            let id = FileId::of(&meta);
            let candidate = meta.is_file()
                && path != original
                && meta.len() >= resume_at.max(len)
                && !is_gzip(&path)
                // Only an open descriptor proves an inode is still that file; a closed one's
                // inode may have been freed and reused (by this very copy).
                && self.files.iter().all(|f| f.id != id || !f.is_open());
            if !candidate {
                return None;
            }
            let file = std::fs::File::open(&path).ok()?;
            if identity::fingerprint(&file, len).ok()?? != fingerprint {
                return None;
            }
            let mut copy =
                TrackedFile::open(&path, id, resume_at, &self.host, &self.settings, now).ok()?;
            copy.attachment = Attachment::Detached;
            copy.fingerprint = Some(fingerprint);
            Some(copy)
        })
    }

    /// Time-driven work: ships partial lines and multiline groups that timed out, closes idle
    /// files, releases rotated files read to their end and delivered. Visits only the files that
    /// can have such work (`tended`): a closed file waits for a scan or inotify to change.
    pub fn maintain(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let mut any_detached = false;
        for slot in 0..self.tended.len() {
            let index = self.tended[slot];
            let file = &mut self.files[index];
            let mut out = Vec::new();
            file.flush_expired(now, self.settings.partial_line_timeout, &mut out);
            let idle = now.duration_since(file.last_data);
            if file.attachment == Attachment::Detached {
                any_detached = true;
                if file.at_eof && idle >= self.settings.rotate_wait {
                    file.flush_held(&mut out);
                }
            } else if file.is_open()
                && file.at_eof
                && !file.gzip
                && !file.holds_lines()
                && file.tracker.outstanding() == 0
                && idle >= self.settings.close_idle
            {
                file.close();
                self.index_stale = true;
            }
            let was_open = file.is_open();
            file.finish_if_complete();
            self.index_stale |= was_open && !file.is_open();
            let file = &self.files[index];
            events.extend(self.events((&file.tracker, &file.path_str, &file.key), out));
        }
        if any_detached {
            self.release_finished(now);
        }
        self.index_open_and_closed();
        events
    }

    fn release_finished(&mut self, now: Instant) {
        let wait = self.settings.rotate_wait;
        let before = self.files.len();
        let mut released = Vec::new();
        self.files.retain(|f| {
            let done = f.attachment == Attachment::Detached
                && (f.at_eof || !f.is_open())
                && !f.holds_lines()
                && now.duration_since(f.last_data) >= wait
                && f.tracker.outstanding() == 0;
            if done {
                tracing::info!(path = %f.path_str, offset = f.tracker.position(), "rotated file released");
                if let Some(fingerprint) = f.fingerprint {
                    released.push(Released { fingerprint, offset: f.tracker.position() });
                }
            }
            !done
        });
        self.released.extend(released);
        self.clear_dangling_waits();
        let excess = self.released.len().saturating_sub(RELEASED_HISTORY);
        self.released.drain(..excess);
        if self.files.len() != before {
            self.metrics.files_watched.set(self.files.len() as f64);
            self.dirty = true;
            self.index_stale = true;
        }
    }

    /// A file waits only for a file still tracked: one released or removed cannot hold it back.
    fn clear_dangling_waits(&mut self) {
        if self.files.iter().all(|f| f.wait_for.is_none()) {
            return;
        }
        let tracked: HashSet<FileId> = self.files.iter().map(|f| f.id).collect();
        for f in &mut self.files {
            if f.wait_for.is_some_and(|id| !tracked.contains(&id)) {
                f.wait_for = None;
            }
        }
    }

    /// Whether inotify reported a change to a closed file (which a scan then reopens).
    pub fn changed(&self, modified: &HashSet<PathBuf>) -> bool {
        modified.iter().any(|p| self.closed_paths.contains(p))
    }

    /// Indexes of the files worth a read turn: the open ones.
    pub fn open_files(&self) -> Vec<usize> {
        self.open.clone()
    }

    /// Indexes of the open files among `paths` (what inotify reported modified), plus every
    /// rotated file: files wait for those, and their copies get no inotify events of their own.
    pub fn open_files_among(&self, paths: &HashSet<PathBuf>) -> Vec<usize> {
        self.open
            .iter()
            .copied()
            .filter(|&i| {
                self.files.get(i).is_some_and(|f| {
                    f.attachment == Attachment::Detached || paths.contains(&f.path)
                })
            })
            .collect()
    }

    fn index_open_and_closed(&mut self) {
        if !self.index_stale {
            return;
        }
        self.index_stale = false;
        self.open.clear();
        self.closed_paths.clear();
        self.tended.clear();
        for (index, file) in self.files.iter().enumerate() {
            if file.is_open() {
                self.open.push(index);
            } else if !file.complete {
                self.closed_paths.insert(file.path.clone());
            }
            if file.is_open() || file.attachment == Attachment::Detached || file.holds_lines() {
                self.tended.push(index);
            }
        }
        self.metrics.files_open.set(self.open.len() as f64);
    }

    /// The checkpoint, unless nothing in it changed since the last one handed out.
    pub fn checkpoint_if_changed(&mut self) -> Option<Checkpoint> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for f in &self.files {
            (
                f.id,
                f.tracker.position(),
                f.complete,
                f.wait_for,
                f.fingerprint,
            )
                .hash(&mut hasher);
        }
        (self.unclaimed.len(), self.released.len()).hash(&mut hasher);
        let digest = hasher.finish();
        if self.last_digest == Some(digest) && !self.dirty {
            return None;
        }
        self.last_digest = Some(digest);
        Some(self.checkpoint())
    }

    /// Where every file resumes.
    pub fn checkpoint(&mut self) -> Checkpoint {
        self.dirty = false;
        let mut files = self.unclaimed.clone();
        for f in &mut self.files {
            let offset = f.tracker.position();
            let marker = if f.gzip { None } else { f.marker(offset) };
            files.insert(
                f.id,
                FileCheckpoint {
                    path: f.path.clone(),
                    id: f.id,
                    offset,
                    fingerprint: f.fingerprint,
                    marker,
                    after: f.wait_for,
                    complete: f.complete,
                },
            );
        }
        Checkpoint {
            files,
            released: self.released.clone(),
        }
    }

    /// Events with ack tokens of `tracker` for `lines` read from the file at `path`.
    fn events(&self, (tracker, path, key): Stream<'_>, lines: Vec<Line>) -> Vec<Event> {
        if lines.is_empty() {
            return Vec::new();
        }
        self.metrics.events_read.increment(lines.len() as u64);
        let read_at = chrono::Utc::now();
        let tokens = tracker.track_all(lines.iter().map(|line| line.end));
        lines
            .into_iter()
            .zip(tokens)
            .map(|(line, token)| {
                if let Some(length) = line.truncated_from {
                    self.metrics
                        .line_truncated(path, line.start, length, line.bytes.len());
                }
                let message = String::from_utf8(line.bytes).unwrap_or_else(|e| {
                    self.metrics.invalid_utf8(path, line.start);
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                });
                let origin = FileOrigin {
                    host: Arc::clone(&self.host),
                    path: Arc::clone(path),
                    offset: line.start,
                };
                let mut event = Event::from_file_line(message, read_at, origin);
                event.ack = Some(token);
                event.key = Some(Arc::clone(key));
                event
            })
            .collect()
    }
}

/// The ack tracker, path and Kafka key that a file's events belong to.
type Stream<'a> = (&'a Arc<AckTracker<u64>>, &'a Arc<str>, &'a Arc<[u8]>);

/// Why a checkpoint no longer fits the file under its inode.
/// Whether a checkpoint still describes the file found under its (device, inode).
enum Verdict {
    Same,
    /// Not the same bytes any more; the reason labels the offset-reset metric.
    Different(&'static str),
}

fn verify(
    path: &Path,
    c: &FileCheckpoint,
    fingerprint_bytes: u64,
    size: u64,
) -> std::io::Result<Verdict> {
    if c.complete || is_gzip(path) {
        return Ok(Verdict::Same);
    }
    if size < c.offset {
        return Ok(Verdict::Different("shorter_than_checkpoint"));
    }
    let file = std::fs::File::open(path)?;
    if let Some(expected) = c.fingerprint
        && identity::fingerprint(&file, fingerprint_bytes)
            .ok()
            .flatten()
            != Some(expected)
    {
        return Ok(Verdict::Different("fingerprint_changed"));
    }
    if c.marker.is_some() && identity::marker(&file, c.offset).ok().flatten() != c.marker {
        return Ok(Verdict::Different("marker_changed"));
    }
    Ok(Verdict::Same)
}

/// The fingerprint of a compressed file's decompressed head.
fn gzip_fingerprint(path: &Path, len: u64) -> std::io::Result<Option<u32>> {
    use std::io::Read;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::fs::File::open(path)?);
    let mut head = Vec::with_capacity(len as usize);
    (&mut decoder).take(len).read_to_end(&mut head)?;
    Ok((head.len() as u64 == len).then(|| crc32c::crc32c(&head)))
}
