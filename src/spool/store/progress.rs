//! Which frames `next_frame` returned and which of them are delivered: the delivered prefix
//! (every frame before it is delivered) moves the position. No I/O.

use std::collections::BTreeMap;

use super::FramePos;

/// A frame `next_frame` returned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) records: u64,
    pub(super) delivered: bool,
    /// Where the following frame starts.
    pub(super) next: FramePos,
}

/// Frames returned by `next_frame` from the delivered prefix on. Undelivered ones before the
/// cursor are outstanding; after a rewind, delivered ones beyond it are skipped.
#[derive(Debug, Default)]
pub(super) struct Progress {
    frames: BTreeMap<FramePos, Seen>,
}

impl Progress {
    /// Where the frame after `pos` starts, if the frame at `pos` is delivered.
    pub(super) fn delivered_next(&self, pos: FramePos) -> Option<FramePos> {
        self.frames
            .get(&pos)
            .filter(|s| s.delivered)
            .map(|s| s.next)
    }

    pub(super) fn is_delivered(&self, pos: FramePos) -> bool {
        self.frames.get(&pos).is_some_and(|s| s.delivered)
    }

    pub(super) fn insert(&mut self, pos: FramePos, seen: Seen) {
        self.frames.insert(pos, seen);
    }

    /// Marks the frame at `pos` delivered; returns its records, or `None` if it was never
    /// returned or is delivered already.
    pub(super) fn mark_delivered(&mut self, pos: FramePos) -> Option<u64> {
        let seen = self.frames.get_mut(&pos).filter(|s| !s.delivered)?;
        seen.delivered = true;
        Some(seen.records)
    }

    /// The first frame not delivered: every frame before it is delivered.
    pub(super) fn prefix(&self, cursor: FramePos) -> FramePos {
        self.frames
            .range(..cursor)
            .find(|(_, s)| !s.delivered)
            .map_or(cursor, |(pos, _)| *pos)
    }

    /// Whether every frame returned before `cursor` is delivered.
    pub(super) fn all_delivered_before(&self, cursor: FramePos) -> bool {
        self.frames.range(..cursor).all(|(_, s)| s.delivered)
    }

    /// Forgets the frames before `prefix`.
    pub(super) fn forget_before(&mut self, prefix: FramePos) {
        self.frames = self.frames.split_off(&prefix);
    }

    /// Forgets every frame of segment `id`.
    pub(super) fn forget_segment(&mut self, id: u64) {
        self.frames.retain(|pos, _| pos.segment != id);
    }
}
