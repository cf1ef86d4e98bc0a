//! What `Spool::open` does with what it finds: each segment checked (headers only for sealed
//! ones, checksums too for the one written last), a torn write at the end of that one cut off
//! (its bytes kept in `damaged/`), damage elsewhere counted and left to be skipped, segments that
//! are not regular files moved into `damaged/`, empty ones removed, and the stored position
//! turned into where replay resumes.
//!
//! Only damage at or after the resume position is counted: what lies before it was delivered
//! (or skipped and counted) before the restart. Where each counted stretch starts is recorded,
//! so replay does not count it again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::layout::{DAMAGED_DIR, create_private_dir, remove_if_present, segment_path, sync_dir};
use super::position::StoredPosition;
use super::{FramePos, Segment};
use crate::spool::segment::{Checked, SegmentReader};

/// What [`super::Spool::open`] found and did.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: u64,
    /// Records still to be replayed.
    pub records: u64,
    /// Bytes of the segments kept.
    pub bytes: u64,
    /// Damaged stretches found at or after the resume position (they are skipped when
    /// reading), and their bytes.
    pub corrupt_frames: u64,
    pub corrupt_bytes: u64,
    /// Bytes of a torn write cut off the segment written last (copied into `damaged/`).
    pub torn_bytes: u64,
    /// Segments that could not be used, and why: moved into `damaged/` (or, if even that
    /// failed, left in place and ignored).
    pub moved_aside: Vec<(PathBuf, String)>,
    /// Frames before the saved position in its segment: delivered before the restart, skipped.
    pub skipped_delivered_frames: u64,
}

/// Everything `open` needs from recovery.
pub(super) struct Recovered {
    pub(super) segments: BTreeMap<u64, Segment>,
    /// Where replay resumes.
    pub(super) cursor: FramePos,
    pub(super) next_id: u64,
    /// Where each counted damaged stretch starts.
    pub(super) counted: BTreeSet<FramePos>,
    /// What the position file holds, if known to match `cursor`.
    pub(super) persisted: Option<Option<FramePos>>,
    pub(super) report: RecoveryReport,
}

/// What checking one segment found.
struct Found {
    segment: Segment,
    /// Damaged stretches: offset, length, why.
    damage: Vec<(u64, u64, String)>,
    /// In the stored position's segment: the first frame boundary at or after its offset.
    resume: Option<u64>,
    /// Good frames before `resume`.
    frames_before: u64,
    torn: u64,
}

/// Recovers the segments `ids` of `dir` against the `stored` position.
pub(super) fn recover(dir: &Path, ids: &[u64], stored: StoredPosition) -> Recovered {
    let stored_at = match stored {
        StoredPosition::At(pos) => Some(pos),
        StoredPosition::Missing | StoredPosition::Garbled => None,
    };
    let mut report = RecoveryReport::default();
    let mut segments = BTreeMap::new();
    let mut counted = BTreeSet::new();
    let mut resume_in_stored = None;
    // The segment appended to when the agent stopped: the only one a crash can leave torn.
    let newest = ids.last().copied();
    for &id in ids {
        let path = segment_path(dir, id);
        if id == u64::MAX {
            // No segment could follow it: ids only grow.
            report
                .moved_aside
                .push(move_aside(dir, &path, "segment id out of range"));
            continue;
        }
        let found = match recover_segment(dir, id, Some(id) == newest, stored_at) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(reason) => {
                report.moved_aside.push(move_aside(dir, &path, &reason));
                continue;
            }
        };
        report.torn_bytes += found.torn;
        for (offset, length, reason) in &found.damage {
            // Damage ending before the position lies in what was delivered before the restart.
            let end = FramePos::at(id, offset + length);
            if stored_at.is_some_and(|at| end <= at) {
                continue;
            }
            report.corrupt_frames += 1;
            report.corrupt_bytes += length;
            counted.insert(FramePos::at(id, *offset));
            warn!(path = %path.display(), offset, length, %reason, "corrupt spool data skipped");
        }
        if stored_at.is_some_and(|at| at.segment == id) {
            resume_in_stored = found.resume;
            report.skipped_delivered_frames = found.frames_before;
        }
        segments.insert(id, found.segment);
    }
    let next_id = ids
        .iter()
        .copied()
        .filter(|&id| id != u64::MAX)
        .max()
        .max(stored_at.map(|at| at.segment))
        .and_then(|id| id.checked_add(1))
        .unwrap_or(0);
    let cursor = match stored_at {
        // Its segment is left: resume there (at its end if the position was past its data).
        Some(at) if segments.contains_key(&at.segment) => {
            FramePos::at(at.segment, resume_in_stored.unwrap_or(at.offset))
        }
        // Its segment is gone (emptied, or deleted): what comes before it was delivered.
        Some(at) => FramePos::at(
            segments
                .range(at.segment..)
                .next()
                .map_or(next_id, |(&id, _)| id),
            0,
        ),
        None => FramePos::at(segments.keys().next().copied().unwrap_or(next_id), 0),
    };
    if let Some(at) = stored_at
        && at != cursor
    {
        warn!(position = ?at, resume = ?cursor, "spool position is past the data left; resuming after it");
    }
    // Delivered before the restart: not counted as records still to send.
    for (&id, segment) in segments.range_mut(..=cursor.segment) {
        if id < cursor.segment {
            segment.records = 0;
        }
    }
    let persisted = match stored {
        StoredPosition::Missing => Some(None),
        StoredPosition::At(at) if at == cursor => Some(Some(at)),
        StoredPosition::At(_) | StoredPosition::Garbled => None,
    };
    Recovered {
        segments,
        cursor,
        next_id,
        counted,
        persisted,
        report,
    }
}

/// Checks one segment. `Ok(None)`: it was empty (and is removed). `Err`: it cannot be used as a
/// segment (why). A read error while checking keeps the segment unchecked: replay reads it as
/// it is, and counts what it finds.
fn recover_segment(
    dir: &Path,
    id: u64,
    newest: bool,
    stored: Option<FramePos>,
) -> Result<Option<Found>, String> {
    let path = segment_path(dir, id);
    let meta = fs::symlink_metadata(&path).map_err(|err| format!("cannot stat: {err}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let file_len = meta.len();
    if file_len == 0 {
        remove_if_present(&path);
        return Ok(None);
    }
    let from = stored.filter(|at| at.segment == id).map(|at| at.offset);
    let mut found = Found {
        segment: Segment {
            len: file_len,
            readable: file_len,
            records: 0,
        },
        damage: Vec::new(),
        resume: None,
        frames_before: 0,
        torn: 0,
    };
    // Sealed segments were fsynced before the next one started: their headers are checked
    // here, their bodies when replay reads them. The newest gets its checksums checked too: a
    // torn write can leave a good header over a body that never reached the disk.
    let checked = SegmentReader::open_at(&path, 0, file_len).and_then(|mut reader| {
        let mut good_end = 0;
        while let Some(item) = reader.next_checked(newest)? {
            let (offset, length) = match &item {
                Checked::Good { offset, length, .. } | Checked::Damaged { offset, length, .. } => {
                    (*offset, *length)
                }
            };
            if found.resume.is_none() && from.is_some_and(|from| offset >= from) {
                found.resume = Some(offset);
            }
            let before = from.is_some() && found.resume.is_none();
            match item {
                Checked::Good { records, .. } => {
                    good_end = offset + length;
                    if before {
                        found.frames_before += 1;
                    } else {
                        found.segment.records += records;
                    }
                }
                Checked::Damaged { reason, .. } => found.damage.push((offset, length, reason)),
            }
        }
        Ok(good_end)
    });
    let good_end = match checked {
        Ok(good_end) => good_end,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot check a spool segment at start; replay reads it as it is");
            found.damage.clear();
            found.resume = from.map(|from| from.min(file_len));
            return Ok(Some(found));
        }
    };
    if from.is_some() && found.resume.is_none() {
        found.resume = Some(file_len); // at or past its end: all of it was delivered
    }
    if newest && good_end < file_len {
        // Nothing good after this point: the write the crash interrupted.
        keep_cut_bytes(dir, &path, good_end, file_len);
        match cut(&path, good_end) {
            Ok(()) => found.segment.len = good_end,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot cut a torn write off a spool segment; it is not read")
            }
        }
        found.segment.readable = good_end;
        found.torn = file_len - good_end;
        found.damage.retain(|(offset, ..)| *offset < good_end);
        found.resume = found.resume.map(|at| at.min(good_end));
        warn!(path = %path.display(), offset = good_end, bytes = found.torn, "torn write at the end of the spool cut off (never acknowledged: its sources send it again)");
        if found.segment.len == 0 {
            remove_if_present(&path);
            return Ok(None);
        }
    }
    Ok(Some(found))
}

fn cut(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Copies bytes `from..to` of `path` into `damaged/` before they are cut off, for an operator
/// (best effort: a full disk must not stop recovery).
fn keep_cut_bytes(dir: &Path, path: &Path, from: u64, to: u64) {
    let damaged = dir.join(DAMAGED_DIR);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = free_name(&damaged, &format!("{name}.torn-at-{from}"));
    let copied = create_private_dir(&damaged).and_then(|()| {
        let mut source = File::open(path)?;
        source.seek(SeekFrom::Start(from))?;
        let mut copy = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)?;
        io::copy(&mut source.take(to - from), &mut copy)?;
        copy.sync_all()
    });
    match copied
        .map_err(|err| err.to_string())
        .and_then(|()| sync_dir(&damaged).map_err(|err| err.to_string()))
    {
        Ok(()) => {}
        Err(err) => {
            warn!(path = %target.display(), error = %err, "cannot keep the bytes of a torn spool write")
        }
    }
}

/// Moves an unusable segment into `damaged/`; returns it with the reason, saying where it went
/// or that it stays (ignored) because even the move failed.
pub(super) fn move_aside(dir: &Path, path: &Path, reason: &str) -> (PathBuf, String) {
    let damaged = dir.join(DAMAGED_DIR);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let moved = create_private_dir(&damaged).and_then(|()| {
        let target = free_name(&damaged, &name);
        fs::rename(path, &target).map(|()| target)
    });
    let outcome = match moved {
        Ok(target) => {
            // Both directory entries changed: make the move survive a crash.
            for changed in [dir, damaged.as_path()] {
                if let Err(err) = sync_dir(changed) {
                    warn!(error = %err, "cannot sync a spool directory after a move");
                }
            }
            format!("{reason}; moved to {}", target.display())
        }
        Err(err) => format!("{reason}; cannot move it aside ({err}), ignored"),
    };
    warn!(path = %path.display(), reason = %outcome, "unusable spool segment");
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

#[cfg(test)]
mod tests {
    use super::super::layout::{DAMAGED_DIR, POSITION_FILE, POSITION_TMP, segment_path};
    use super::super::testing::*;
    use super::super::*;
    use std::fs;
    use std::fs::File;
    use std::path::{Path, PathBuf};
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
        spool.sync().unwrap();
        assert!(new.segment > pos[5].segment && new.offset == 0);
        assert_eq!(ids(&read_all(&mut spool)), vec![6]);
    }

    #[test]
    fn a_garbled_position_replays_from_the_oldest_segment() {
        let dir = TempDir::new().unwrap();
        let (spool, pos) = two_frames_per_segment(dir.path(), 4);
        drop(spool);
        let seg = pos[2].segment;
        let cases = [
            "garbage".to_string(),
            format!("logship-spool-position 2\n{seg} 0\n"),
            format!("logship-spool-position 1\n{seg} x\n"),
            format!("logship-spool-position 1\n{seg} 0\ntrailing\n"),
        ];
        for case in cases {
            fs::write(dir.path().join(POSITION_FILE), &case).unwrap();
            let (mut spool, report) = open(dir.path(), u64::MAX);
            assert_eq!(report.skipped_delivered_frames, 0, "{case}");
            assert_eq!(report.records, 4, "{case}");
            assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 2, 3], "{case}");
            // A new segment never reuses an id a stale position names.
            let new = spool.append(&batch(9, 1)).unwrap();
            assert!(new.segment > pos[3].segment, "{case}");
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
        // 2: the last frame cut short; not the newest segment, so damage, not a torn write.
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
        assert_eq!(report.corrupt_frames, 2);
        assert_eq!(report.torn_bytes, 0);
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
        assert_eq!(
            fs::metadata(segment_path(d, 2)).unwrap().len(),
            offsets[2] + 3
        );
        assert_eq!(spool.stats().bytes, bytes_on_disk(d));

        let mut expected_ids = vec![0, 2, 10, 11, 20, 21];
        if !unreadable {
            expected_ids.push(30);
        }
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        // Counted at recovery, not again when read, nor after a rewind.
        assert_eq!(spool.stats().corrupt_frames_total, 2);
        spool.rewind();
        assert_eq!(ids(&read_all(&mut spool)), expected_ids);
        assert_eq!(spool.stats().corrupt_frames_total, 2);
    }

    fn write_position(dir: &Path, segment: u64, offset: u64) {
        let text = format!("logship-spool-position 1\n{segment} {offset}\n");
        fs::write(dir.join(POSITION_FILE), text).unwrap();
    }

    /// Review finding 4: a position past the data (a crash after replay had read frames that
    /// were never made durable) replayed the whole spool from its oldest segment.
    #[test]
    fn a_position_past_the_data_resumes_at_the_end_of_its_segment() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write_segment(d, 1, 0, 2);
        write_segment(d, 2, 10, 3);
        write_segment(d, 3, 20, 2);
        let len = fs::metadata(segment_path(d, 2)).unwrap().len();
        // Past the end of segment 2: it and segment 1 are delivered; segment 3 is not.
        write_position(d, 2, len + 100);
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(ids(&read_all(&mut spool)), vec![20, 21]);
        assert_eq!(report.records, 2);
        assert!(!segment_path(d, 1).exists() && !segment_path(d, 2).exists());
        drop(spool);

        // Inside a frame: that frame started before the position, so it was delivered.
        fs::remove_file(d.join(POSITION_FILE)).unwrap();
        let offsets = write_segment(d, 4, 30, 3);
        write_segment(d, 5, 40, 1);
        write_position(d, 4, offsets[1] + 1);
        let (mut spool, _) = open(d, u64::MAX);
        assert_eq!(ids(&read_all(&mut spool)), vec![32, 40]);
    }

    /// Review finding 4: a position naming a segment that is gone (emptied by recovery, or
    /// deleted) replayed everything; what comes before it was delivered.
    #[test]
    fn a_position_in_a_missing_segment_resumes_at_the_next_one() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write_segment(d, 1, 0, 2);
        write_segment(d, 3, 30, 2);
        write_position(d, 2, 0);
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.records, 2);
        assert_eq!(ids(&read_all(&mut spool)), vec![30, 31]);
        assert!(!segment_path(d, 1).exists());
        // Past every segment: everything was delivered.
        drop(spool);
        write_position(d, 7, 0);
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.records, 0);
        assert!(read_all(&mut spool).is_empty());
        let new = spool.append(&batch(9, 1)).unwrap();
        assert!(new.segment > 7);
    }

    /// Review finding 6: a position naming segment u64::MAX made every new segment id u64::MAX:
    /// the second segment could never be created.
    #[test]
    fn a_position_at_the_last_segment_id_is_garbled_not_a_wedge() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write_position(d, u64::MAX, 0);
        let (mut spool, _) = open(d, 1);
        for i in 0..3 {
            spool.append(&batch(i, 1)).unwrap();
        }
        spool.sync().unwrap();
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 2]);
        assert_eq!(segment_files(d).len(), 3);
    }

    /// Review finding 1: a damaged length field in the middle of a segment cut off every frame
    /// after it.
    #[test]
    fn a_damaged_frame_header_loses_only_that_frame() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let offsets = write_segment(d, 1, 0, 4);
        write_segment(d, 2, 10, 1);
        let path = segment_path(d, 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[offsets[1] as usize] ^= 0x01; // the length field (or sync marker) of frame 1
        fs::write(&path, &bytes).unwrap();
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(fs::metadata(&path).unwrap().len(), bytes.len() as u64);
        assert_eq!(report.records, 4);
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 2, 3, 10]);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
    }

    /// Review finding 1: only the segment written last before a crash can end in a torn
    /// write. Elsewhere the same damage is corruption: counted, never cut off.
    #[test]
    fn only_the_newest_segment_has_its_torn_tail_cut() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let first = write_segment(d, 1, 0, 3);
        let last = write_segment(d, 2, 10, 3);
        for (id, offsets) in [(1, &first), (2, &last)] {
            let path = segment_path(d, id);
            let len = fs::metadata(&path).unwrap().len();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(offsets[2] + (len - offsets[2]) / 2)
                .unwrap();
        }
        let sealed_len = fs::metadata(segment_path(d, 1)).unwrap().len();
        let cut = fs::metadata(segment_path(d, 2)).unwrap().len() - last[2];
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(fs::metadata(segment_path(d, 1)).unwrap().len(), sealed_len);
        assert_eq!(fs::metadata(segment_path(d, 2)).unwrap().len(), last[2]);
        assert_eq!(report.corrupt_frames, 1, "{report:?}");
        assert_eq!(ids(&read_all(&mut spool)), vec![0, 1, 10, 11]);
        assert_eq!(spool.stats().corrupt_frames_total, 1);
        // The cut bytes are kept for an operator.
        let kept: Vec<PathBuf> = fs::read_dir(d.join(DAMAGED_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(fs::metadata(&kept[0]).unwrap().len(), cut);
        assert!(sealed_len > first[2]);
    }

    /// Review finding 9: corrupt frames before the stored position were delivered or skipped
    /// before the restart; counting them again at every start inflated the counter.
    #[test]
    fn corrupt_frames_before_the_position_are_not_counted_again() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let offsets = write_segment(d, 1, 0, 3);
        let path = segment_path(d, 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[offsets[0] as usize + 30] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        write_position(d, 1, offsets[2]);
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.corrupt_frames, 0);
        assert_eq!(spool.stats().corrupt_frames_total, 0);
        assert_eq!(ids(&read_all(&mut spool)), vec![2]);
    }

    /// Review finding 13: a symlink named like a segment was followed, and its target recovered
    /// (and truncated) in place.
    #[test]
    fn a_symlink_named_like_a_segment_is_moved_aside_untouched() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let elsewhere = TempDir::new().unwrap();
        let target = elsewhere.path().join("precious");
        let offsets = write_segment(elsewhere.path(), 1, 0, 2);
        fs::rename(segment_path(elsewhere.path(), 1), &target).unwrap();
        let len = fs::metadata(&target).unwrap().len();
        File::options()
            .write(true)
            .open(&target)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        std::os::unix::fs::symlink(&target, segment_path(d, 1)).unwrap();
        let (mut spool, report) = open(d, u64::MAX);
        assert_eq!(report.moved_aside.len(), 1, "{report:?}");
        assert!(read_all(&mut spool).is_empty());
        assert_eq!(fs::metadata(&target).unwrap().len(), len - 3);
        assert!(offsets[1] < len);
    }
}
