//! A record taken from Kafka, and the claim of the partition it came from.
//!
//! Each assigned partition has a `Claim`: an `AckTracker<i64>` whose position is the offset to
//! commit (one past the contiguous prefix of finished records), and a flag set when the partition
//! is revoked. A record finishes when its write succeeded or it went to the dead-letter topic;
//! dropping it unfinished holds its partition's commit back, so a restart reads it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::ack::{AckToken, AckTracker};

/// No offset to commit yet.
pub const NOTHING: i64 = -1;

/// This consumer's hold on one partition, from assignment to revocation.
#[derive(Debug)]
pub struct Claim {
    pub topic: Arc<str>,
    pub partition: i32,
    tracker: Arc<AckTracker<i64>>,
    /// One past the last record handed to the sink.
    handed: AtomicI64,
    /// The last offset committed.
    committed: AtomicI64,
    revoked: AtomicBool,
}

impl Claim {
    pub fn new(topic: &str, partition: i32) -> Arc<Self> {
        Arc::new(Self {
            topic: Arc::from(topic),
            partition,
            tracker: AckTracker::new(NOTHING),
            handed: AtomicI64::new(NOTHING),
            committed: AtomicI64::new(NOTHING),
            revoked: AtomicBool::new(false),
        })
    }

    /// Takes the record at `offset` into the claim.
    pub fn track(
        self: &Arc<Self>,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Record {
        Record {
            claim: Arc::clone(self),
            offset,
            timestamp,
            key,
            value,
            token: self.tracker.track(offset + 1),
        }
    }

    /// The offset to commit: one past the contiguous prefix of finished records.
    pub fn position(&self) -> i64 {
        self.tracker.position()
    }

    /// Whether every record handed to the sink has finished.
    pub fn drained(&self) -> bool {
        self.position() >= self.handed.load(Ordering::Relaxed)
    }

    /// The offset to commit, when it moved past the last one committed.
    pub fn due(&self) -> Option<i64> {
        let position = self.position();
        (position > self.committed.load(Ordering::Relaxed)).then_some(position)
    }

    /// `offset` was committed.
    pub fn committed(&self, offset: i64) {
        self.committed.fetch_max(offset, Ordering::Relaxed);
    }

    /// The record ending at `end` (its offset + 1) was handed to the sink.
    pub fn handed(&self, end: i64) {
        self.handed.store(end, Ordering::Relaxed);
    }

    /// The partition went to another consumer: its records are no longer this one's to write.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

/// One Kafka record on its way to the destination.
#[derive(Debug)]
pub struct Record {
    pub claim: Arc<Claim>,
    pub offset: i64,
    /// Milliseconds since the epoch, when the record has a timestamp.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    token: AckToken,
}

impl Record {
    /// The record is written (or dead-lettered): its offset may be committed once the records
    /// before it are too.
    pub fn finish(self) {
        self.token.settle();
    }

    pub fn topic(&self) -> &str {
        &self.claim.topic
    }

    pub fn partition(&self) -> i32 {
        self.claim.partition
    }

    /// Its partition was revoked: the new owner writes it.
    pub fn is_revoked(&self) -> bool {
        self.claim.is_revoked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_position_is_past_the_finished_prefix_only() {
        let claim = Claim::new("logs", 0);
        let records: Vec<Record> = (10..13)
            .map(|offset| claim.track(offset, None, None, Vec::new()))
            .collect();
        claim.handed(13);
        assert_eq!(claim.position(), NOTHING);
        let mut records = records.into_iter();
        let (first, second, third) = (records.next(), records.next(), records.next());
        third.expect("third").finish();
        assert_eq!(claim.position(), NOTHING, "the first two are not written");
        first.expect("first").finish();
        assert_eq!(claim.position(), 11);
        assert!(!claim.drained());
        second.expect("second").finish();
        assert_eq!(claim.position(), 13);
        assert!(claim.drained());
        assert_eq!(claim.due(), Some(13));
        claim.committed(13);
        assert_eq!(claim.due(), None, "nothing new to commit");
    }
}
