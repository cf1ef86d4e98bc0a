//! The on-disk format of one disk-spool segment file: writing frames, reading them back, and
//! checking a segment at start.
//!
//! A segment is an append-only sequence of frames, with no file header: a zero-length file is a
//! valid, empty segment. Each frame holds one batch of [`SpoolRecord`]s. This version writes
//! format 2:
//!
//! ```text
//! offset  size  field
//! 0       4     sync marker 89 4C 53 46 ("\x89LSF")
//! 4       1     format version (= 2)
//! 5       4     body length, u32 LE (1 ..= MAX_BODY_LEN)
//! 9       4     record count, u32 LE
//! 13      4     CRC32C of the body, u32 LE
//! 17      4     CRC32C of bytes 0..17 (the header above), u32 LE
//! 21      n     body: zlib stream (flate2, fast level) of the encoded batch
//! ```
//!
//! Format 1, written by older agents and still read (a segment is written by one agent run
//! only, so a file holds one format), had no marker and no header CRC:
//!
//! ```text
//! 0       4     body length, u32 LE (1 ..= 64 MiB)
//! 4       4     CRC32C over (version byte ‖ body), u32 LE
//! 8       1     format version (= 1)
//! 9       n     body
//! ```
//!
//! The decompressed body (at most [`MAX_BATCH_BYTES`]; 256 MiB in format 1) is, all lengths
//! little-endian:
//!
//! ```text
//! u32 record count, then per record:
//!   topic    u16 length + UTF-8 bytes
//!   key      u32 length (u32::MAX = no key) + bytes
//!   headers  u16 count, each: u16 name length + UTF-8 bytes, u32 value length + bytes
//!   payload  u32 length + bytes
//! ```
//!
//! Reading never trusts the file. A format-2 header is trusted once its CRC matches: its length
//! then locates the next frame even when the body is damaged, and its record count is known
//! without decompressing. A format-1 header is trusted only once the CRC over its body matches.
//! Where no trusted header starts, the reader scans forward for the next one (the marker and a
//! matching header CRC; for format 1, a plausible header whose body CRC matches) and reports the
//! bytes in between as one damaged stretch, so a bad length field costs its own frame, never
//! the frames after it. What to do with damage (count it; cut a torn write off the segment
//! written last before a crash) is the store's business.

mod codec;
mod file;

pub use codec::encode;
#[cfg(test)]
pub(crate) use file::faults;
pub use file::{Checked, SegmentReader, SegmentWriter};

/// Largest encoded batch a frame holds, and what a format-2 body may decompress to. The
/// producer's frames are about 1 MiB of records, or one record alone when it is larger
/// (`kafka.max_message_bytes` is held below [`MAX_RECORD_BYTES`] when the spool is on).
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Largest `kafka.max_message_bytes` the spool can take: one such record, with room to spare
/// for its topic, key and headers, fits in a frame.
pub const MAX_RECORD_BYTES: usize = MAX_BATCH_BYTES / 2;

/// One Kafka record as spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key, if any.
    pub key: Option<Vec<u8>>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record value.
    pub payload: Vec<u8>,
}

/// Errors from writing or reading a segment. Damaged content is not an error: it is reported
/// as [`Frame::Corrupt`] or [`Checked::Damaged`].
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file system failed.
    #[error("spool segment I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A record field is too long for its length prefix.
    #[error("spool record {field} is too long to encode ({len} bytes)")]
    FieldTooLong {
        /// Which field (topic, key, header count, header name, header value, payload).
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A batch exceeds [`MAX_BATCH_BYTES`] encoded.
    #[error("spool batch too large: {len} bytes encoded, limit {limit}")]
    BatchTooLarge {
        /// The batch's encoded size.
        len: usize,
        /// The limit it exceeds.
        limit: usize,
    },
}

impl SegmentError {
    /// Whether the records themselves cannot be framed (no retry can write them), as opposed
    /// to the file system failing.
    pub fn is_unwritable_batch(&self) -> bool {
        !matches!(self, Self::Io(_))
    }
}

/// What reading a segment found, frame by frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A good frame and the batch it holds.
    Records {
        /// Where the frame starts in the file.
        offset: u64,
        /// The batch, in append order.
        records: Vec<SpoolRecord>,
    },
    /// Damaged bytes, skipped: one frame whose header is good but whose body is not, or a
    /// stretch without a trusted header up to the next frame (or the end). Reading goes on
    /// after it.
    Corrupt {
        /// Where the damage starts.
        offset: u64,
        /// Bytes skipped.
        length: u64,
        /// Records lost, when a trusted header says (else 0).
        records: u64,
        /// What is wrong.
        reason: String,
    },
}
