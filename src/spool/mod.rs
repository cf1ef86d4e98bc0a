//! The disk spool: where records go when Kafka cannot take them, to be replayed in order later
//! (design invariant 5).
//!
//! - `segment`: the segment file format (length-prefixed, CRC32C-checked, versioned, compressed
//!   frames), its writer and reader, and recovery of a segment at start.
//! - `store`: the spool directory: segments in order, reading and delivery progress, the
//!   position file, recovery of the whole directory at start.
//!
//! When records are spooled and replayed is the producer's business (`crate::kafka`).

pub mod segment;
pub mod store;

pub use segment::SpoolRecord;
pub use store::{FramePos, ReadFrame, Spool, SpoolError, SpoolSettings as StoreSettings};
