//! One file being read: its handle (or none while idle), read position, line framing, multiline
//! grouping, ack tracker, and the checks that notice truncation and rewrites.
//!
//! Truncation is noticed two ways: the file is shorter than the read position, or it grew again
//! past it but the bytes just before the read position are no longer the ones read there (the
//! marker), which is copytruncate racing the reader. Either way the file is read again from 0
//! under a new tracker; what the old tracker still holds settles as before.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;
use tokio::time::Instant;

use super::identity::{self, FileId, MARKER_BYTES};
use super::multiline::Aggregator;
use super::reader::{Line, LineFramer};
use crate::ack::AckTracker;
use crate::config::FileSourceSettings;

/// Whether a file is read through gzip: by its name, as logrotate's `compress` names it.
pub fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Whether a file seen at `size` and `mtime` may differ from what was read (`read_pos` bytes,
/// last seen at `seen_mtime`). File timestamps tick coarsely (a few ms), so a rewrite to the same
/// size within one tick leaves both alone: a file modified in the last second may have changed.
fn may_have_changed(
    size: u64,
    mtime: Option<SystemTime>,
    read_pos: u64,
    seen_mtime: Option<SystemTime>,
) -> bool {
    let recent = mtime
        .and_then(|m| m.elapsed().ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(1));
    size != read_pos || mtime != seen_mtime || recent
}

/// Where the bytes come from.
enum Body {
    Plain(File),
    Gzip(Box<MultiGzDecoder<File>>),
    /// Idle, or a compressed file read to its end: no descriptor held.
    Closed,
}

/// Whether the file's path still leads to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// The path (or another matching path) leads to this file.
    Attached,
    /// Renamed away or deleted: read to the end, then released.
    Detached,
}

/// What a read turn found.
#[derive(Default)]
pub struct Turn {
    pub bytes: u64,
    /// The file was truncated and is read again from 0.
    pub truncated: Option<Truncation>,
}

/// What was left of a file's old content when it was truncated.
pub struct Truncation {
    /// The old content's fingerprint, to find a copy of it (copytruncate's rotated file).
    pub fingerprint: Option<u32>,
    /// Where the old content's undelivered, unshipped part starts: a copy is read from here.
    pub resume_at: u64,
    /// Lines held when the truncation was seen (partial line, multiline group): shipped from the
    /// old content when no copy is found.
    pub held: Vec<Line>,
    /// The old content's tracker; events of `held` belong to it.
    pub tracker: Arc<AckTracker<u64>>,
}

pub struct TrackedFile {
    pub id: FileId,
    pub path: PathBuf,
    pub path_str: Arc<str>,
    pub key: Arc<[u8]>,
    pub gzip: bool,
    body: Body,
    /// Offset of the next byte to read (decompressed, for gzip).
    pub read_pos: u64,
    /// The largest size seen on disk: shrinking below it is truncation, read or not.
    seen_size: u64,
    /// Modification time at the last check at EOF: a rewrite to the same size changes it.
    seen_mtime: Option<SystemTime>,
    framer: LineFramer,
    multiline: Option<Aggregator>,
    pub tracker: Arc<AckTracker<u64>>,
    /// The last up to `MARKER_BYTES` bytes read, ending at `read_pos`.
    tail: Vec<u8>,
    pub fingerprint: Option<u32>,
    fingerprint_len: u64,
    pub attachment: Attachment,
    /// When data last arrived (or the file was opened).
    pub last_data: Instant,
    pub at_eof: bool,
    /// Modification time seen when the file was closed as idle.
    closed_mtime: Option<SystemTime>,
    /// A compressed file read to its end.
    pub complete: bool,
    /// (position, marker) last computed for the checkpoint.
    marker_cache: Option<(u64, Option<u32>)>,
    /// Not read until this file (its rotated predecessor, or the copy of its old content) is read
    /// to its end, so the stream's lines stay in order.
    pub wait_for: Option<FileId>,
}

impl TrackedFile {
    /// Opens `path` at `offset`; for gzip, `offset` counts decompressed bytes.
    pub fn open(
        path: &Path,
        id: FileId,
        offset: u64,
        host: &str,
        settings: &FileSourceSettings,
        now: Instant,
    ) -> std::io::Result<Self> {
        let gzip = is_gzip(path);
        let path_str: Arc<str> = path.display().to_string().into();
        let key: Arc<[u8]> = format!("{host}:{path_str}").into_bytes().into();
        let mut tracked = Self {
            id,
            path: path.to_owned(),
            path_str,
            key,
            gzip,
            body: Body::Closed,
            read_pos: offset,
            seen_size: 0,
            seen_mtime: None,
            framer: LineFramer::new(offset, settings.max_line_bytes),
            multiline: settings.multiline.clone().map(Aggregator::new),
            tracker: AckTracker::new(offset),
            tail: Vec::new(),
            fingerprint: None,
            fingerprint_len: settings.fingerprint_bytes,
            attachment: Attachment::Attached,
            last_data: now,
            at_eof: false,
            closed_mtime: None,
            complete: false,
            marker_cache: None,
            wait_for: None,
        };
        tracked.body = tracked.open_body(path, offset)?;
        Ok(tracked)
    }

    fn open_body(&mut self, path: &Path, offset: u64) -> std::io::Result<Body> {
        let mut file = File::open(path)?;
        if self.gzip {
            let mut decoder = MultiGzDecoder::new(file);
            std::io::copy(&mut (&mut decoder).take(offset), &mut std::io::sink())?;
            return Ok(Body::Gzip(Box::new(decoder)));
        }
        file.seek(SeekFrom::Start(offset))?;
        self.seen_size = self.seen_size.max(file.metadata()?.len());
        if !self.tail.is_empty() {
            // Reopened after an idle close: the tail is what was read, to compare with the disk.
            return Ok(Body::Plain(file));
        }
        // First open: the bytes before the offset were checked against the checkpoint's marker.
        self.tail = match offset.min(MARKER_BYTES) {
            0 => Vec::new(),
            len => {
                let mut tail = vec![0; len as usize];
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, offset - len)?;
                tail
            }
        };
        Ok(Body::Plain(file))
    }

    /// Whether the open file has no name left (deleted); None when closed.
    pub fn is_unlinked(&self) -> Option<bool> {
        use std::os::unix::fs::MetadataExt;
        match &self.body {
            Body::Plain(file) => file.metadata().ok().map(|m| m.nlink() == 0),
            Body::Gzip(decoder) => decoder.get_ref().metadata().ok().map(|m| m.nlink() == 0),
            Body::Closed => None,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.body, Body::Closed)
    }

    /// Reads up to `budget` bytes; complete lines (grouped when multiline is on) go to `out`.
    pub fn read_turn(
        &mut self,
        chunk: &mut [u8],
        budget: usize,
        now: Instant,
        out: &mut Vec<Line>,
    ) -> std::io::Result<Turn> {
        let mut turn = Turn::default();
        if self.truncated_or_unchanged(&mut turn)? {
            return Ok(turn);
        }
        if turn.truncated.is_some() {
            // The old content's rest may come from a copy first; read the new content next turn.
            return Ok(turn);
        }
        let mut lines = Vec::new();
        let mut total = 0usize;
        self.at_eof = false;
        while total < budget {
            let want = chunk.len().min(budget - total);
            let n = match &mut self.body {
                Body::Plain(file) => file.read(&mut chunk[..want]),
                Body::Gzip(decoder) => decoder.read(&mut chunk[..want]),
                Body::Closed => Ok(0),
            };
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.at_eof = true;
                    return Err(e);
                }
            };
            if n == 0 {
                self.at_eof = true;
                break;
            }
            total += n;
            self.remember_tail(&chunk[..n]);
            self.framer.feed(&chunk[..n], &mut lines);
        }
        self.read_pos += total as u64;
        turn.bytes += total as u64;
        if total > 0 {
            self.last_data = now;
        }
        self.group(lines, now, out);
        Ok(turn)
    }

    /// Before a read: returns true when there is nothing new. Notices truncation (the file is
    /// shorter than what was read or seen), and a rewrite that raced past the read position (the
    /// bytes before it changed: copytruncate, or truncation then writes to the same size).
    fn truncated_or_unchanged(&mut self, turn: &mut Turn) -> std::io::Result<bool> {
        let Body::Plain(file) = &self.body else {
            return Ok(false);
        };
        let meta = file.metadata()?;
        let (size, mtime) = (meta.len(), meta.modified().ok());
        let seen_mtime = std::mem::replace(&mut self.seen_mtime, mtime);
        let changed = may_have_changed(size, mtime, self.read_pos, seen_mtime);
        let rewritten = size < self.read_pos.max(self.seen_size)
            || (changed
                && self.fingerprint.is_some()
                && identity::fingerprint(file, self.fingerprint_len)? != self.fingerprint)
            || (self.at_eof
                && changed
                && !self.tail.is_empty()
                && identity::marker(file, self.read_pos)? != identity::marker_of(&self.tail));
        if rewritten {
            turn.truncated = Some(self.restart_from_zero()?);
            self.seen_size = size;
            return Ok(false);
        }
        self.seen_size = self.seen_size.max(size);
        Ok(self.at_eof && !changed)
    }

    /// Whether a closed file may have changed since it was closed, by `stat` alone.
    pub fn changed_since_close(&self, meta: &std::fs::Metadata) -> bool {
        !self.is_open()
            && !self.complete
            && !self.gzip
            && may_have_changed(
                meta.len(),
                meta.modified().ok(),
                self.read_pos,
                self.closed_mtime,
            )
    }

    /// Whether the file at `path` is still this (closed) file and not a new one that got its
    /// freed inode: same fingerprint, same bytes before the read position.
    pub fn same_content_at(&self, path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        if self.fingerprint.is_some()
            && identity::fingerprint(&file, self.fingerprint_len)
                .ok()
                .flatten()
                != self.fingerprint
        {
            return false;
        }
        if self.fingerprint.is_none() && self.tail.is_empty() {
            // Nothing was read and nothing is known: without evidence it is a new file.
            return false;
        }
        self.tail.is_empty()
            || identity::marker(&file, self.read_pos).ok().flatten()
                == identity::marker_of(&self.tail)
    }

    /// Checks an open file for truncation or a rewrite without reading it (at a scan).
    pub fn check_rewrite(&mut self) -> std::io::Result<Turn> {
        let mut turn = Turn::default();
        if self.is_open() {
            self.truncated_or_unchanged(&mut turn)?;
        }
        Ok(turn)
    }

    /// Reads the file again from 0 under a new tracker; returns what is left of the old content.
    fn restart_from_zero(&mut self) -> std::io::Result<Truncation> {
        let resume_at = self.held_start().unwrap_or(self.read_pos);
        let mut held = Vec::new();
        self.flush_held(&mut held);
        if let Body::Plain(file) = &mut self.body {
            file.seek(SeekFrom::Start(0))?;
        }
        let max_line_bytes = self.framer.max_line_bytes();
        self.framer = LineFramer::new(0, max_line_bytes);
        let tracker = std::mem::replace(&mut self.tracker, AckTracker::new(0));
        self.read_pos = 0;
        self.at_eof = false;
        self.seen_size = 0;
        self.tail.clear();
        self.marker_cache = None;
        Ok(Truncation {
            fingerprint: self.fingerprint.take(),
            resume_at,
            held,
            tracker,
        })
    }

    /// Where the lines held back (partial line, multiline group) start.
    fn held_start(&self) -> Option<u64> {
        let group = self.multiline.as_ref().and_then(Aggregator::pending_start);
        let partial = self
            .framer
            .has_partial()
            .then(|| self.framer.pending_start());
        group.into_iter().chain(partial).min()
    }

    fn remember_tail(&mut self, bytes: &[u8]) {
        let keep = MARKER_BYTES as usize;
        if bytes.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    fn group(&mut self, lines: Vec<Line>, now: Instant, out: &mut Vec<Line>) {
        match &mut self.multiline {
            Some(aggregator) => {
                let now = now.into_std();
                lines.into_iter().for_each(|l| aggregator.push(l, now, out));
            }
            // Most turns: the lines as they are, without a copy.
            None if out.is_empty() => *out = lines,
            None => out.extend(lines),
        }
    }

    /// Ships what timed out: a partial last line after `partial_timeout` without data, and a
    /// multiline group after its own timeout.
    pub fn flush_expired(
        &mut self,
        now: Instant,
        partial_timeout: std::time::Duration,
        out: &mut Vec<Line>,
    ) {
        if self.framer.has_partial() && now.duration_since(self.last_data) >= partial_timeout {
            if let Some(line) = self.framer.flush_partial() {
                self.group(vec![line], now, out);
            }
        }
        if let Some(aggregator) = &mut self.multiline {
            aggregator.flush_expired(now.into_std(), out);
        }
    }

    /// Ships everything held: the partial line and the pending group.
    pub fn flush_held(&mut self, out: &mut Vec<Line>) {
        if let Some(line) = self.framer.flush_partial() {
            match &mut self.multiline {
                Some(aggregator) => aggregator.push(line, std::time::Instant::now(), out),
                None => out.push(line),
            }
        }
        if let Some(aggregator) = &mut self.multiline {
            aggregator.flush(out);
        }
    }

    /// Whether lines are held that are not events yet.
    pub fn holds_lines(&self) -> bool {
        self.framer.has_partial()
            || self
                .multiline
                .as_ref()
                .is_some_and(|m| m.pending_start().is_some())
    }

    /// Closes the descriptor; `reopen_if_changed` opens it again when the file changes.
    pub fn close(&mut self) {
        self.closed_mtime = match &self.body {
            Body::Plain(file) => file.metadata().and_then(|m| m.modified()).ok(),
            _ => None,
        };
        self.body = Body::Closed;
    }

    /// A closed file whose size or modification time changed is opened again at its read
    /// position (or at 0 when it was rewritten, which the returned turn tells).
    pub fn reopen_if_changed(&mut self, meta: &std::fs::Metadata) -> std::io::Result<Turn> {
        let mut turn = Turn::default();
        if self.is_open() || self.complete {
            return Ok(turn);
        }
        if !may_have_changed(
            meta.len(),
            meta.modified().ok(),
            self.read_pos,
            self.closed_mtime,
        ) {
            return Ok(turn);
        }
        let position = self.read_pos;
        self.body = self.open_body(&self.path.clone(), position)?;
        self.at_eof = true;
        // At EOF only if nothing new is there: a file waiting behind this one must wait.
        self.at_eof = self.truncated_or_unchanged(&mut turn)?;
        Ok(turn)
    }

    /// The fingerprint, computed once the file has `fingerprint_bytes`; `size` is a size just
    /// seen on disk.
    /// Returns true when the fingerprint was just taken (the checkpoint should say so).
    pub fn update_fingerprint(&mut self, size: u64) -> bool {
        let len = self.fingerprint_len;
        self.seen_size = self.seen_size.max(size);
        if self.fingerprint.is_some() || self.seen_size.max(self.read_pos) < len {
            return false;
        }
        if let Body::Plain(file) = &self.body {
            self.fingerprint = identity::fingerprint(file, len).ok().flatten();
        }
        self.fingerprint.is_some()
    }

    /// The marker for the delivered position, computed again only when the position moved.
    pub fn marker(&mut self, position: u64) -> Option<u32> {
        if let Some((at, marker)) = self.marker_cache
            && at == position
        {
            return marker;
        }
        let marker = if position == self.read_pos && !self.gzip {
            // Everything read is delivered: the bytes before the position are the tail in memory.
            identity::marker_of(&self.tail)
        } else {
            let Body::Plain(file) = &self.body else {
                return None;
            };
            identity::marker(file, position).ok().flatten()
        };
        self.marker_cache = Some((position, marker));
        marker
    }

    /// Marks the file as read to its end once it is delivered (compressed files only).
    pub fn finish_if_complete(&mut self) {
        if self.gzip && self.at_eof && !self.holds_lines() && self.tracker.outstanding() == 0 {
            self.complete = true;
            self.body = Body::Closed;
        }
    }
}
