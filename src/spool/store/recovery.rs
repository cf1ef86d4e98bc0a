//! What `Spool::open` does with what it finds: segments checked (torn tails cut, corrupt frames
//! counted), unreadable ones moved into `damaged/`, empty ones removed, and the stored position
//! checked against what is left.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::layout::{DAMAGED_DIR, remove_if_present, segment_path};
use super::{FramePos, Segment};
use crate::spool::segment::{self, Frame, Recovered, SegmentReader};

/// What [`Spool::open`] found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: u64,
    /// Records still to be replayed.
    pub records: u64,
    /// Bytes of the segments kept.
    pub bytes: u64,
    /// Damaged frames found (they are skipped when reading).
    pub corrupt_frames: u64,
    /// Bytes of torn tails cut off.
    pub torn_bytes: u64,
    /// Segments that could not be read, and why: moved into `damaged/` (or, if even that
    /// failed, left in place and ignored).
    pub moved_aside: Vec<(PathBuf, String)>,
    /// Frames before the saved position in its segment: delivered before the restart, skipped.
    pub skipped_delivered_frames: u64,
}

/// Recovers every listed segment: empty ones are removed, unreadable ones moved aside.
pub(super) fn recover_segments(
    dir: &Path,
    ids: &[u64],
    report: &mut RecoveryReport,
) -> BTreeMap<u64, Segment> {
    let mut segments = BTreeMap::new();
    for &id in ids {
        let path = segment_path(dir, id);
        match recover_segment(&path) {
            Ok((found, len)) => {
                report.corrupt_frames += found.corrupt_frames;
                report.torn_bytes += found.torn_bytes;
                if len == 0 {
                    remove_if_present(&path);
                } else {
                    let records = found.records;
                    segments.insert(id, Segment { len, records });
                }
            }
            Err(reason) => report.moved_aside.push(move_aside(dir, &path, &reason)),
        }
    }
    segments
}

/// Runs segment recovery; returns what it found and the length left, or why the file cannot be
/// used as a segment.
pub(super) fn recover_segment(path: &Path) -> Result<(Recovered, u64), String> {
    let meta = fs::metadata(path).map_err(|err| format!("cannot stat: {err}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let found = segment::recover(path).map_err(|err| format!("cannot recover: {err}"))?;
    let len = fs::metadata(path)
        .map_err(|err| format!("cannot stat after recovery: {err}"))?
        .len();
    Ok((found, len))
}

/// Moves an unreadable segment into `damaged/`; returns it with the reason, saying where it went
/// or that it stays (ignored) because even the move failed.
pub(super) fn move_aside(dir: &Path, path: &Path, reason: &str) -> (PathBuf, String) {
    let damaged = dir.join(DAMAGED_DIR);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let moved = fs::create_dir_all(&damaged).and_then(|()| {
        let target = free_name(&damaged, &name);
        fs::rename(path, &target).map(|()| target)
    });
    let outcome = match moved {
        Ok(target) => format!("{reason}; moved to {}", target.display()),
        Err(err) => format!("{reason}; cannot move it aside ({err}), ignored"),
    };
    warn!(path = %path.display(), reason = %outcome, "unreadable spool segment");
    (path.to_path_buf(), outcome)
}

/// `dir/name`, or `dir/name.1`, `dir/name.2`… if that is taken.
pub(super) fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut candidate = dir.join(name);
    let mut n = 0u64;
    while fs::symlink_metadata(&candidate).is_ok() {
        n += 1;
        candidate = dir.join(format!("{name}.{n}"));
    }
    candidate
}

/// Checks a stored position against the recovered segments: its segment must exist and its
/// offset be a frame boundary in it. Returns it with the good frames and records before it.
pub(super) fn resume_point(
    dir: &Path,
    segments: &BTreeMap<u64, Segment>,
    pos: FramePos,
) -> Option<(FramePos, u64, u64)> {
    if pos.offset > segments.get(&pos.segment)?.len {
        return None;
    }
    let mut reader = SegmentReader::open(&segment_path(dir, pos.segment)).ok()?;
    let (mut frames, mut records) = (0, 0);
    while reader.offset() < pos.offset {
        match reader.next_frame() {
            Ok(Some(Frame::Records { records: batch, .. })) => {
                frames += 1;
                records += batch.len() as u64;
            }
            Ok(Some(Frame::Corrupt { .. })) => {}
            Ok(None) | Err(_) => return None,
        }
    }
    (reader.offset() == pos.offset).then_some((pos, frames, records))
}

#[cfg(test)]
mod tests {
    use super::super::layout::{DAMAGED_DIR, POSITION_FILE, POSITION_TMP, segment_path};
    use super::super::testing::*;
    use super::super::*;
    use std::fs::File;
    use tempfile::TempDir;

    #[test]
    fn restart_resumes_at_the_first_undelivered_frame() {
        let dir = TempDir::new().unwrap();
        let (mut spool, pos) = two_frames_per_segment(dir.path(), 6);
        let frames: Vec<ReadFrame> = (0..4)
            .map(|_| spool.next_frame().unwrap().unwrap())
            .collect();
        for frame in &frames[..3] {
            spool.delivered(frame.pos).unwrap();
        }
        spool.persist_position().unwrap();
        let bytes = spool.stats().bytes;
        drop(spool);

        let (mut spool, report) = open(dir.path(), frame_len() + 1);
        assert_eq!(report.skipped_delivered_frames, 1);
        assert_eq!(report.records, 3);
        assert_eq!(report.segments, 2);
        assert_eq!(report.bytes, bytes);
        assert!(report.moved_aside.is_empty());
        let resumed = read_all(&mut spool);
        assert_eq!(
            resumed.iter().map(|f| f.pos).collect::<Vec<_>>(),
            pos[3..].to_vec()
        );
        assert_eq!(ids(&resumed), vec![3, 4, 5]);
        // Appends after a restart start a new segment.
        let new = spool.append(&batch(6, 1)).unwrap();
        assert!(new.segment > pos[5].segment && new.offset == 0);
        assert_eq!(ids(&read_all(&mut spool)), vec![6]);
    }

    #[test]
    fn a_stale_or_garbled_position_replays_from_the_oldest_segment() {
        let dir = TempDir::new().unwrap();
        let (spool, pos) = two_frames_per_segment(dir.path(), 4);
        drop(spool);
        let seg = pos[2].segment;
        let cases = [
            "garbage".to_string(),
            format!("logship-spool-position 2\n{seg} 0\n"),
            format!("logship-spool-position 1\n{seg} x\n"),
            format!("logship-spool-position 1\n{seg} 0\ntrailing\n"),
            "logship-spool-position 1\n99 0\n".to_string(), // no such segment
            format!("logship-spool-position 1\n{seg} 100000\n"), // past its end
            format!("logship-spool-position 1\n{seg} 1\n"), // not a frame start
        ];
        for case in cases {
            fs::write(dir.path().join(POSITION_FILE), &case).unwrap();
            let (mut spool, report) = open(dir.path(), u64::MAX);
            assert_eq!(report.skipped_delivered_frames, 0, "{case}");
            assert_eq!(report.records, 4, "{case}");
            assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 2, 3], "{case}");
            // A new segment never reuses an id a stale position names.
            let new = spool.append(&batch(9, 1)).unwrap();
            let named = if case.contains("\n99 ") {
                99
            } else {
                pos[3].segment
            };
            assert!(new.segment > named, "{case}");
            fs::remove_file(segment_path(dir.path(), new.segment)).unwrap();
        }
    }

    #[test]
    fn recovery_handles_damaged_segments_and_reports_each() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        // 1: a flipped byte inside the second frame's body.
        let offsets = write_segment(d, 1, 0, 3);
        let mut bytes = fs::read(segment_path(d, 1)).unwrap();
        bytes[offsets[1] as usize + 12] ^= 0x5a;
        fs::write(segment_path(d, 1), &bytes).unwrap();
        // 2: the last frame cut short.
        let offsets = write_segment(d, 2, 10, 3);
        File::options()
            .write(true)
            .open(segment_path(d, 2))
            .unwrap()
            .set_len(offsets[2] + 3)
            .unwrap();
        // 3: empty. 4: a directory, not a segment. 5: fine. 6: unreadable unless we are root.
        fs::write(segment_path(d, 3), b"").unwrap();
        fs::create_dir(segment_path(d, 4)).unwrap();
        write_segment(d, 5, 20, 2);
        write_segment(d, 6, 30, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(segment_path(d, 6), fs::Permissions::from_mode(0o000)).unwrap();
        }
        let unreadable = File::open(segment_path(d, 6)).is_err();
        // Not ours: ignored; a leftover temp position: removed.
        fs::write(d.join("notes.txt"), b"hello").unwrap();
        fs::write(d.join(POSITION_TMP), b"half").unwrap();

        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.corrupt_frames, 1);
        assert_eq!(report.torn_bytes, 3);
        assert_eq!(report.records, if unreadable { 6 } else { 7 });
        let moved: Vec<PathBuf> = report.moved_aside.iter().map(|(p, _)| p.clone()).collect();
        let mut expected = vec![segment_path(d, 4)];
        if unreadable {
            expected.push(segment_path(d, 6));
        }
        assert_eq!(moved, expected, "{:?}", report.moved_aside);
        assert!(report.moved_aside[0].1.contains("not a regular file"));
        assert!(
            d.join(DAMAGED_DIR)
                .join(segment_path(d, 4).file_name().unwrap())
                .is_dir()
        );
        assert!(!segment_path(d, 3).exists());
        assert!(!segment_path(d, 4).exists());
        assert!(d.join("notes.txt").exists());
        assert!(!d.join(POSITION_TMP).exists());
        assert_eq!(fs::metadata(segment_path(d, 2)).unwrap().len(), offsets[2]);
        assert_eq!(spool.stats().bytes, bytes_on_disk(d));

        let mut expected_ids = vec![0, 2, 10, 11, 20, 21];
        if !unreadable {
            expected_ids.push(30);
        }
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        // Counted at recovery, not again when read, nor after a rewind.
        assert_eq!(spool.stats().corrupt_frames_total, 1);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
    }
}
