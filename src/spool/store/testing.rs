//! What the store's tests share: records that name themselves, spools in temp directories, and
//! reading everything back.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::layout::segment_path;
use super::{FramePos, ReadFrame, RecoveryReport, Spool, SpoolSettings};
use crate::spool::segment::{SegmentWriter, SpoolRecord};

/// A record whose payload names it and does not compress much, so frame sizes are stable.
pub(super) fn record(id: u64) -> SpoolRecord {
    let mut state = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let noise: Vec<u8> = (0..40)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    SpoolRecord {
        topic: "logs".to_string(),
        key: Some(id.to_le_bytes().to_vec()),
        headers: vec![("n".to_string(), noise)],
        payload: format!("record-{id}").into_bytes(),
    }
}

pub(super) fn record_id(record: &SpoolRecord) -> u64 {
    let key = record.key.as_deref().expect("test records have keys");
    u64::from_le_bytes(key.try_into().expect("8-byte key"))
}

pub(super) fn batch(first: u64, count: u64) -> Vec<SpoolRecord> {
    (first..first + count).map(record).collect()
}

pub(super) fn settings(dir: &Path, segment_max_bytes: u64) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
        segment_max_bytes,
    }
}

pub(super) fn open(dir: &Path, segment_max_bytes: u64) -> (Spool, RecoveryReport) {
    Spool::open(settings(dir, segment_max_bytes)).unwrap()
}

/// Segment files in `dir`, by name.
pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

pub(super) fn bytes_on_disk(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

pub(super) fn read_all(spool: &mut Spool) -> Vec<ReadFrame> {
    std::iter::from_fn(|| spool.next_frame().unwrap()).collect()
}

pub(super) fn ids(frames: &[ReadFrame]) -> Vec<u64> {
    frames
        .iter()
        .flat_map(|f| f.records.iter().map(record_id))
        .collect()
}

/// The size of one frame of `batch(_, 1)` (all such frames are about the same size).
pub(super) fn frame_len() -> u64 {
    let dir = TempDir::new().unwrap();
    let (mut spool, _) = open(dir.path(), u64::MAX);
    spool.append(&batch(0, 1)).unwrap();
    spool.stats().bytes
}

/// Appends `frames` one-record frames, ids 0.., two frames per segment.
pub(super) fn two_frames_per_segment(dir: &Path, frames: u64) -> (Spool, Vec<FramePos>) {
    let (mut spool, _) = open(dir, frame_len() + 1);
    let positions = (0..frames)
        .map(|i| spool.append(&batch(i, 1)).unwrap())
        .collect();
    spool.sync().unwrap();
    (spool, positions)
}

/// Writes a segment with `frames` one-record frames (ids from `first`); returns their offsets.
pub(super) fn write_segment(dir: &Path, id: u64, first: u64, frames: u64) -> Vec<u64> {
    let mut writer = SegmentWriter::create(&segment_path(dir, id)).unwrap();
    let offsets = (first..first + frames)
        .map(|i| writer.append(&batch(i, 1)).unwrap())
        .collect();
    writer.sync().unwrap();
    offsets
}
