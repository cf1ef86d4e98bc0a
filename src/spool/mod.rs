//! The disk spool: where records go when Kafka cannot take them, to be replayed in order later
//! (design invariant 5).
//!
//! - `segment`: the segment file format (marked, CRC32C-checked headers, versioned, compressed
//!   frames), its writer and reader, finding the next frame after damage.
//! - `store`: the spool directory: segments in order, durability, reading and delivery
//!   progress, the position file, recovery of the whole directory at start.
//!
//! When records are spooled and replayed is the producer's business (`crate::kafka`).

pub mod segment;
pub mod store;

pub use segment::{MAX_RECORD_BYTES, SpoolRecord};
pub use store::{
    FramePos, ReadFrame, SkippedBytes, Spool, SpoolError, SpoolSettings as StoreSettings,
    SpoolStats,
};
