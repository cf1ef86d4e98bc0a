//! The disk spool: where events go when Kafka cannot take them, to be replayed in order later
//! (design invariant 5).
//!
//! - `segment`: the segment file format (length-prefixed, CRC32C-checked, versioned, compressed
//!   frames), its writer and reader, and recovery of a segment at start.
//!
//! Not wired into the producer yet (issue 5): the spool directory, replay and `when_full` come
//! next.

pub mod segment;
